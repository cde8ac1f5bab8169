// Runs the real segpush binary as a user would and checks exit codes and output.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include "support/abi.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "text/suggest.hpp"

namespace {

const char* const kSecret = "sk-cli-test-3e9b1f0a7d";

using segpush::test::read_file;
using segpush::test::Run;
using segpush::test::run_shell;

struct CliFixture {
    segpush::test::TempDir dir;
    std::vector<Run> history;  // every run, for the secret check

    CliFixture() {
        dir.write("vip.csv", "Email\na@example.com\n");
        dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + R"(
segments:
  vip: { path: vip.csv }
connections:
  ac:
    plugin: activecampaign
    privacy_consent: true
    settings:
      host: acme.api-us1.com
      api_key: ${env:AC_API_KEY}
exports:
  vip_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 3 }
    mapping: { email: Email }
)");
    }

    Run run(const std::string& args, const std::string& env = std::string("AC_API_KEY=") + kSecret) {
        const Run result = run_shell(dir.path().string(), "env " + env + " " + SEGPUSH_BINARY + " " + args);
        history.push_back(result);
        return result;
    }
};

}  // namespace

TEST_CASE_METHOD(CliFixture, "cli: help on every command, exit 0") {
    const Run main = run("--help");
    CHECK(main.exit_code == 0);
    CHECK_THAT(main.out, Catch::Contains("config check") && Catch::Contains("plugins describe ID") &&
                             Catch::Contains("Exit status: 0 success, 1 failure, 2 usage or configuration error"));
    for (const std::string command : {"config check", "plugins list", "plugins describe"}) {
        const Run help = run(command + " --help");
        INFO(command);
        CHECK(help.exit_code == 0);
        CHECK_THAT(help.out, Catch::StartsWith("Usage: segpush"));
        CHECK(run("help " + command).out == help.out);
    }
}

TEST_CASE_METHOD(CliFixture, "cli: usage errors exit 2 with a suggestion") {
    const Run unknown = run("plugins lst");
    CHECK(unknown.exit_code == 2);
    CHECK_THAT(unknown.err, Catch::Contains("unknown command 'plugins lst' (did you mean 'plugins list'?)"));
    const Run option = run("--confg x config check");
    CHECK(option.exit_code == 2);
    CHECK_THAT(option.err, Catch::Contains("unknown option --confg (did you mean '--config'?)"));
    CHECK(run("").exit_code == 2);
}

TEST_CASE_METHOD(CliFixture, "cli: config check passes a good file and fails a bad one with every error") {
    const Run good = run("config check");
    CHECK(good.exit_code == 0);
    CHECK_THAT(good.out, Catch::Contains("segpush.yaml: OK (1 segment(s), 1 connection(s), 1 export(s))"));

    const Run unset = run("config check", "AC_API_KEY=");
    CHECK(unset.exit_code == 2);
    CHECK_THAT(unset.err, Catch::Contains("segpush.yaml:10:16: error: connections.ac.settings.api_key: environment "
                                          "variable AC_API_KEY is empty"));

    dir.write("bad.yaml", "plugin_dir: " + std::string(SEGPUSH_PLUGIN_DIR) +
                              "\nconnections:\n  ac:\n    plugin: activecampaign\n    settings:\n      host: "
                              "https://acme.api-us1.com\n      api_key: ${env:AC_API_KEY}\n");
    const Run bad = run("--config bad.yaml config check");
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("bad.yaml:3:3: error: connections.ac.privacy_consent") &&
                            Catch::Contains("bad.yaml:6:13: error: connections.ac.settings.host") &&
                            Catch::Contains("2 error(s) in bad.yaml"));

    const Run missing = run("--config nowhere.yaml config check");
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::Contains("cannot read configuration file nowhere.yaml"));
}

TEST_CASE_METHOD(CliFixture, "cli: plugins list shows loaded plugins and refused files") {
    const Run list = run(std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR + " plugins list");
    CHECK(list.exit_code == 0);
    CHECK_THAT(list.out, Catch::Contains("c-example") && Catch::Contains(kHostAbi) && Catch::Contains("Refused:") &&
                             Catch::Contains(std::string("wrong_abi.so: built for plugin ABI 2.0, this host speaks ") +
                                             kHostAbiNumber));

    const Run json = run(std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR + " plugins list --json");
    rapidjson::Document doc;
    doc.Parse(json.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(doc["loaded"].Size() == 1);
    CHECK(doc["refused"].Size() == 7);

    const Run from_config = run("plugins list");
    CHECK(from_config.exit_code == 0);
    CHECK_THAT(from_config.out, Catch::Contains("activecampaign"));

    CHECK(run("--plugin-dir /nonexistent plugins list").exit_code == 2);
}

TEST_CASE_METHOD(CliFixture, "cli: plugins describe shows schema, required and optional fields, limits") {
    const Run text = run("plugins describe activecampaign");
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("api_key") && Catch::Contains("secret: give as ${env:NAME}") &&
                             Catch::Contains("list_id") && Catch::Contains("records per batch      250"));
    CHECK_THAT(text.out, Catch::Matches(R"([\s\S]*email +Email +email +required[\s\S]*)"));
    CHECK_THAT(text.out, Catch::Matches(R"([\s\S]*phone +Phone +phone +optional[\s\S]*)"));

    const Run json = run("plugins describe activecampaign --json");
    rapidjson::Document doc;
    doc.Parse(json.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(std::string(doc["id"].GetString()) == "activecampaign");
    CHECK(doc["connection_schema"]["properties"]["api_key"]["x-secret"].GetBool());
    CHECK(doc["fields"][0]["required"].GetBool());
    CHECK_FALSE(doc["fields"][1]["required"].GetBool());
    CHECK(doc["limits"]["max_records_per_batch"].GetUint() == 250);

    const Run unknown = run("plugins describe activecampain");
    CHECK(unknown.exit_code == 1);
    CHECK_THAT(unknown.err, Catch::Contains("(did you mean 'activecampaign'?)"));
}

TEST_CASE_METHOD(CliFixture, "cli: the API key never appears in any output of any command") {
    dir.write("typo.yaml", "plugin_dir: " + std::string(SEGPUSH_PLUGIN_DIR) +
                               "\nconnections:\n  ac:\n    plugin: activecampaign\n    privacy_consent: true\n"
                               "    settings:\n      host: \"https://" +
                               kSecret +
                               "@acme.api-us1.com\"\n"
                               "      api_key: ${env:AC_API_KEY}\n      api_kee: ${env:AC_API_KEY}\n");
    const std::vector<std::string> commands = {"--help",
                                               "--version",
                                               "config check",
                                               "config check --help",
                                               "plugins list",
                                               "plugins list --json",
                                               "plugins describe activecampaign",
                                               "plugins describe activecampaign --json",
                                               "--config typo.yaml config check",
                                               std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR +
                                                   " plugins list"};
    for (const auto& command : commands) run(command);
    // Also a key written inline, which must be refused without being echoed.
    dir.write("inline.yaml", "plugin_dir: " + std::string(SEGPUSH_PLUGIN_DIR) +
                                 "\nconnections:\n  ac:\n    plugin: activecampaign\n    privacy_consent: true\n"
                                 "    settings: {host: acme.api-us1.com, api_key: " +
                                 kSecret + "}\n");
    const Run inline_key = run("--config inline.yaml config check");
    CHECK(inline_key.exit_code == 2);

    REQUIRE(history.size() == commands.size() + 1);
    for (const auto& result : history) {
        CHECK(result.out.find(kSecret) == std::string::npos);
        CHECK(result.err.find(kSecret) == std::string::npos);
    }
    CHECK_THAT(history[8].err, Catch::Contains("did you mean 'api_key'?"));
    CHECK_THAT(history[8].err, Catch::Contains("without the scheme \"https://\" and the credentials"));
}

TEST_CASE("cli: control characters from a binary file never reach the terminal raw") {
    CHECK(segpush::printable("ok\tline\n") == "ok\tline\n");
    CHECK(segpush::printable(std::string("\x1b[31mred\x07\0", 10)) == "\\x1b[31mred\\x07\\x00");
    segpush::test::TempDir dir;
    dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR +
                                  "\nsegments:\n  bin: { path: \"\x1b]0;pwned\x07.csv\" }\n");
    const std::string err = run_shell(dir.path().string(), std::string(SEGPUSH_BINARY) + " config check").err;
    CHECK(err.find('\x1b') == std::string::npos);
    CHECK(err.find('\x07') == std::string::npos);
}

TEST_CASE_METHOD(CliFixture, "cli: --retry-rejected belongs to export run, which explains it") {
    const Run help = run("export run --help");
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Catch::Contains("--retry-rejected") && Catch::Contains("retry_rejected_runs"));
    const Run elsewhere = run("--config segpush.yaml runs list --retry-rejected");
    CHECK(elsewhere.exit_code == 2);
    CHECK_THAT(elsewhere.err, Catch::Contains("--retry-rejected"));
    const Run typo = run("--config segpush.yaml export run vip_export --retry-rejectd");
    CHECK(typo.exit_code == 2);
    CHECK_THAT(typo.err, Catch::Contains("did you mean '--retry-rejected'"));
}
