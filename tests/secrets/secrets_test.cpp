#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>

#include "config/loader.hpp"
#include "plugins/registry.hpp"
#include "secrets/redactor.hpp"
#include "secrets/reference.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

TEST_CASE("secret references parse only in their exact form") {
    CHECK(parse_secret_reference("${env:AC_KEY}")->kind == SecretReference::Kind::env);
    CHECK(parse_secret_reference("${file:keys/ac.txt}")->target == "keys/ac.txt");
    CHECK_FALSE(parse_secret_reference("prefix ${env:AC_KEY}"));
    CHECK_FALSE(parse_secret_reference("${vault:x}"));
    CHECK_FALSE(parse_secret_reference("plain-value"));
}

TEST_CASE("resolved secrets are scrubbed from anything printed afterwards") {
    test::TempDir dir;
    dir.write("key.txt", "file-secret-value-77\n");
    std::string problem;
    auto value = resolve_secret_reference({SecretReference::Kind::file, "key.txt"}, dir.path().string(), problem);
    REQUIRE(value);
    CHECK(*value == "file-secret-value-77");  // trailing newline dropped
    CHECK(Redactor::instance().scrub("sent file-secret-value-77 twice: file-secret-value-77") == "sent *** twice: ***");
}

TEST_CASE("unresolvable references explain themselves without values") {
    std::string problem;
    unsetenv("SEGPUSH_TEST_UNSET_VARIABLE");
    CHECK_FALSE(resolve_secret_reference({SecretReference::Kind::env, "SEGPUSH_TEST_UNSET_VARIABLE"}, ".", problem));
    CHECK(problem == "environment variable SEGPUSH_TEST_UNSET_VARIABLE is not set");
    CHECK_FALSE(resolve_secret_reference({SecretReference::Kind::file, "/nonexistent/key"}, ".", problem));
    CHECK_THAT(problem, Catch::Contains("cannot read secret file /nonexistent/key"));
}

// ---- secret files at rest

namespace {

// `config check` on a configuration whose API key is ${file:ac.key}, the key file at `mode`:
// its warnings and errors, formatted.
struct KeyFileCheck {
    std::vector<std::string> warnings;
    std::vector<std::string> errors;
};

KeyFileCheck check_key_file(mode_t mode, bool strict) {
    test::TempDir dir;
    const std::string key_file = dir.write("ac.key", "file-secret-value-91\n");
    REQUIRE(chmod(key_file.c_str(), mode) == 0);
    dir.write("vip.csv", "Email\na@example.com\n");
    const std::string config_file = dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + "\n" +
                                                                  (strict ? "strict: true\n" : "") +
                                                                  R"(segments:
  vip: { path: vip.csv }
connections:
  ac:
    plugin: activecampaign
    privacy_consent: true
    settings:
      host: acme.api-us1.com
      api_key: ${file:ac.key}
exports:
  vip_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 3 }
    mapping: { email: Email }
)");
    Diagnostics diagnostics;
    auto config = load_config(config_file, diagnostics);
    REQUIRE(config);
    const auto registry = PluginRegistry::load_directory(resolved_plugin_dir(*config));
    check_config(*config, registry, diagnostics);
    KeyFileCheck result;
    for (const auto& item : diagnostics.items()) {
        std::string text = item.format();
        const std::string folder = dir.path().string() + "/";
        for (auto at = text.find(folder); at != std::string::npos; at = text.find(folder))
            text.erase(at, folder.size());
        CHECK(text.find("file-secret-value-91") == std::string::npos);
        (item.severity == Diagnostic::Severity::error ? result.errors : result.warnings).push_back(text);
    }
    return result;
}

}  // namespace

TEST_CASE("a secret file others can read is a warning naming the file and the chmod that fixes it") {
    const KeyFileCheck result = check_key_file(0644, false);
    CHECK(result.errors.empty());
    REQUIRE(result.warnings.size() == 1);
    CHECK(result.warnings[0] ==
          "segpush.yaml:10:16: warning: connections.ac.settings.api_key: secret file ac.key can be read by group or "
          "others (mode 0644): make it private to its owner with chmod 600 ac.key");
    // Group write alone: someone else could swap the key.
    const KeyFileCheck writable = check_key_file(0620, false);
    REQUIRE(writable.warnings.size() == 1);
    CHECK_THAT(writable.warnings[0], Catch::Contains("can be changed by group or others (mode 0620)"));
}

TEST_CASE("with strict: true a secret file others can read is an error") {
    const KeyFileCheck result = check_key_file(0640, true);
    CHECK(result.warnings.empty());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0] ==
          "segpush.yaml:11:16: error: connections.ac.settings.api_key: secret file ac.key can be read by group or "
          "others (mode 0640): make it private to its owner with chmod 600 ac.key (strict: true makes unsafe "
          "permissions errors)");
}

TEST_CASE("a secret file private to its owner passes silently, strict or not") {
    for (const bool strict : {false, true}) {
        const KeyFileCheck result = check_key_file(0600, strict);
        CHECK(result.errors.empty());
        CHECK(result.warnings.empty());
    }
    CHECK(secret_file_exposure({SecretReference::Kind::env, "HOME"}, ".").empty());
}

TEST_CASE("a secret file larger than any key is refused, without reading it all") {
    std::string problem;
    CHECK_FALSE(resolve_secret_reference({SecretReference::Kind::file, "/dev/zero"}, ".", problem));
    CHECK(problem == "secret file /dev/zero is larger than 64 KiB, more than any key or token: is it the right file?");
}

TEST_CASE("a secret is scrubbed in every form segpush writes it: raw, JSON-escaped and URL-encoded") {
    const std::string secret = "k\"ey\\with/odd chars+7f3a";
    Redactor::instance().add_secret(secret);
    CHECK(Redactor::instance().scrub("raw " + secret) == "raw ***");
    CHECK(Redactor::instance().scrub(R"({"api_key":"k\"ey\\with/odd chars+7f3a"})") == R"({"api_key":"***"})");
    CHECK(Redactor::instance().scrub("?key=k%22ey%5Cwith%2Fodd%20chars%2B7f3a&x") == "?key=***&x");
    CHECK(Redactor::instance().scrub("?key=k%22ey%5cwith%2fodd%20chars%2b7f3a") == "?key=***");
    CHECK(Redactor::instance().scrub("nothing secret here") == "nothing secret here");
}
