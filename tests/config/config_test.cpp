// The bad-configuration catalogue: each case is one mistake a person makes, and asserts the
// exact place (file:line:column), key path and a message that says what to do.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>

#include "config/loader.hpp"
#include "config/settings_check.hpp"
#include "plugins/registry.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

const char* const kSecret = "ac-test-secret-8f41d2c7e9";

// Line numbers in the expectations below refer to this file.
const std::string kBase = R"(plugin_dir: PLUGIN_DIR
state: state.db
segments:
  vip: { source: csv, path: vip.csv }
connections:
  ac:
    plugin: activecampaign
    privacy_consent: true
    settings:
      host: acme.api-us1.com
      api_key: ${env:SEGPUSH_TEST_AC_KEY}
exports:
  vip_export:
    connection: ac
    segments: [vip]
    settings:
      list_id: 3
    mapping:
      email: Email
      first_name: FirstName
)";

std::string replace(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

struct Result {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    std::vector<std::string> items;  // errors and warnings, in the order they are printed
    std::optional<Config> config;

    std::string all() const {
        std::string out;
        for (const auto& line : errors) out += line + "\n";
        return out;
    }
    // The one error containing `fragment`; fails the test when there is none.
    std::string error_with(const std::string& fragment) const {
        for (const auto& line : errors) {
            if (line.find(fragment) != std::string::npos) return line;
        }
        FAIL("no error contains \"" << fragment << "\"; errors were:\n" << all());
        return {};
    }
};

struct ConfigFixture {
    test::TempDir dir;
    ConfigFixture() {
        setenv("SEGPUSH_TEST_AC_KEY", kSecret, 1);
        dir.write("vip.csv", "Email,FirstName\na@example.com,A\n");
    }

    Result check(const std::string& yaml) {
        const bool templated = yaml.find("PLUGIN_DIR") != std::string::npos;
        const std::string path = dir.write("segpush.yaml",
                                           templated ? replace(yaml, "PLUGIN_DIR", SEGPUSH_PLUGIN_DIR) : yaml);
        Diagnostics diagnostics;
        Result result;
        result.config = load_config(path, diagnostics);
        if (result.config) {
            const auto registry = PluginRegistry::load_directory(resolved_plugin_dir(*result.config));
            check_config(*result.config, registry, diagnostics);
        }
        for (const auto& item : diagnostics.items()) {
            const std::string text = item.format();
            // Paths in messages are the temp dir's; tests compare against the short name.
            std::string shortened = text;
            for (auto at = shortened.find(dir.path().string() + "/"); at != std::string::npos;
                 at = shortened.find(dir.path().string() + "/")) {
                shortened.erase(at, dir.path().string().size() + 1);
            }
            (item.severity == Diagnostic::Severity::error ? result.errors : result.warnings).push_back(shortened);
            result.items.push_back(shortened);
            CHECK(text.find(kSecret) == std::string::npos);
        }
        return result;
    }
};

}  // namespace

TEST_CASE_METHOD(ConfigFixture, "config: the base configuration is valid and resolves its secret") {
    const Result result = check(kBase);
    INFO(result.all());
    REQUIRE(result.errors.empty());
    REQUIRE(result.config);
    CHECK(result.config->connections[0].settings.resolved_json ==
          std::string(R"({"host":"acme.api-us1.com","api_key":")") + kSecret + "\"}");
    CHECK(result.config->exports[0].settings.resolved_json == R"({"list_id":3})");
    CHECK(result.config->exports[0].mapping.size() == 2);
}

TEST_CASE_METHOD(ConfigFixture, "config 1: a typo'd top-level key suggests the right one") {
    const Result result = check(replace(kBase, "plugin_dir:", "plugin_dirs:"));
    CHECK(result.error_with("unknown key 'plugin_dirs'") ==
          "segpush.yaml:1:1: error: plugin_dirs: unknown key 'plugin_dirs' (did you mean 'plugin_dir'?); allowed keys: "
          "plugin_dir, state, report_retention_days, reports_dir, strict, include, segments, connections, exports, "
          "serve, "
          "notify");
}

TEST_CASE_METHOD(ConfigFixture, "config 2: a typo'd connection key suggests the right one") {
    const Result result = check(replace(kBase, "privacy_consent: true", "privacy_consnt: true"));
    CHECK_THAT(result.error_with("privacy_consnt"),
               Catch::StartsWith("segpush.yaml:8:5: error: connections.ac.privacy_consnt: unknown key 'privacy_consnt' "
                                 "(did you mean 'privacy_consent'?)"));
}

TEST_CASE_METHOD(ConfigFixture, "config 3: a value of the wrong type says what was expected") {
    const Result result = check(replace(kBase, "privacy_consent: true", "privacy_consent: yes"));
    CHECK(result.error_with("expected true or false") ==
          "segpush.yaml:8:22: error: connections.ac.privacy_consent: expected true or false, found a string 'yes'");
}

TEST_CASE_METHOD(ConfigFixture, "config 4: a missing required setting is named, with what it is") {
    const Result result = check(replace(kBase, "      host: acme.api-us1.com\n", ""));
    CHECK_THAT(result.error_with("missing required setting"),
               Catch::StartsWith("segpush.yaml:10:7: error: connections.ac.settings.host: missing required setting "
                                 "'host' — REST endpoint hostname without https://"));
}

TEST_CASE_METHOD(ConfigFixture, "config 5: host with a scheme and path shows the corrected form") {
    const Result result = check(replace(kBase, "host: acme.api-us1.com", "host: https://acme.api-us1.com/api/3/"));
    CHECK(result.error_with("hostname only") ==
          "segpush.yaml:10:13: error: connections.ac.settings.host: host must be the hostname only, without the "
          "scheme \"https://\" and the path or query; write host: acme.api-us1.com");
}

TEST_CASE_METHOD(ConfigFixture, "config 6: a non-numeric list_id") {
    const Result result = check(replace(kBase, "list_id: 3", "list_id: newsletter"));
    CHECK(result.error_with("list_id") ==
          "segpush.yaml:17:16: error: exports.vip_export.settings.list_id: expected a whole number, found a string "
          "\"newsletter\"");
}

TEST_CASE_METHOD(ConfigFixture, "config 7: list_id out of range") {
    const Result result = check(replace(kBase, "list_id: 3", "list_id: 0"));
    CHECK(result.error_with("list_id") ==
          "segpush.yaml:17:16: error: exports.vip_export.settings.list_id: must be at least 1, found 0");
}

TEST_CASE_METHOD(ConfigFixture, "config 8: the required email mapping is missing") {
    const Result result = check(replace(kBase, "      email: Email\n", ""));
    CHECK(result.error_with("mapping.email") ==
          "segpush.yaml:19:7: error: exports.vip_export.mapping.email: the Email field is required by plugin "
          "'activecampaign': map it to a segment column, e.g. email: Email");
}

TEST_CASE_METHOD(ConfigFixture, "config 9: an unknown plugin suggests the loaded one") {
    const Result result = check(replace(kBase, "plugin: activecampaign", "plugin: activecampaing"));
    CHECK(result.error_with("unknown plugin") ==
          "segpush.yaml:7:13: error: connections.ac.plugin: unknown plugin 'activecampaing' (did you mean "
          "'activecampaign'?); loaded plugins: activecampaign, file, mailchimp");
}

TEST_CASE_METHOD(ConfigFixture, "config 10: an unknown connection suggests the defined one") {
    const Result result = check(replace(kBase, "connection: ac", "connection: acc"));
    CHECK(result.error_with("unknown connection") ==
          "segpush.yaml:14:17: error: exports.vip_export.connection: unknown connection 'acc' (did you mean 'ac'?); "
          "defined: ac");
}

TEST_CASE_METHOD(ConfigFixture, "config 11: no privacy consent is refused with what consenting means") {
    const Result result = check(replace(kBase, "privacy_consent: true", "privacy_consent: false"));
    const std::string error = result.error_with("privacy_consent");
    CHECK_THAT(error,
               Catch::StartsWith("segpush.yaml:8:22: error: connections.ac.privacy_consent: privacy_consent must "
                                 "be true: exporting sends personal data"));
    CHECK_THAT(error, Catch::Contains("lawful basis"));

    const Result absent = check(replace(kBase, "    privacy_consent: true\n", ""));
    CHECK_THAT(absent.error_with("privacy_consent"),
               Catch::StartsWith("segpush.yaml:6:3: error: connections.ac.privacy_consent"));
}

TEST_CASE_METHOD(ConfigFixture, "config 12: a contributor-editable file may not use an admin-only connection") {
    dir.write("exports.d/team.yaml",
              "exports:\n  team_export:\n    connection: ac\n    segments: vip\n    settings: {list_id: 4}\n"
              "    mapping: {email: Email}\n");
    const std::string yaml = kBase + "include:\n  - path: exports.d/*.yaml\n    editable_by: contributors\n";
    const Result result = check(yaml);
    CHECK(result.error_with("admins only") ==
          "exports.d/team.yaml:3:17: error: exports.team_export.connection: connection 'ac' is for admins only, and "
          "this file is editable by contributors; an admin can share it by adding contributors to its usable_by");

    const Result shared = check(
        replace(yaml, "privacy_consent: true", "privacy_consent: true\n    usable_by: [contributors]"));
    INFO(shared.all());
    CHECK(shared.errors.empty());
    REQUIRE(shared.config);
    CHECK(shared.config->find_export("team_export")->from_contributor_file);
}

TEST_CASE_METHOD(ConfigFixture, "config 13: an unset secret environment variable") {
    unsetenv("SEGPUSH_TEST_AC_KEY");
    const Result result = check(kBase);
    CHECK(result.error_with("not set") == "segpush.yaml:11:16: error: connections.ac.settings.api_key: environment "
                                          "variable SEGPUSH_TEST_AC_KEY is not set");
}

TEST_CASE_METHOD(ConfigFixture, "config 14: malformed YAML points at the line") {
    const Result result = check(
        replace(kBase, "vip: { source: csv, path: vip.csv }", "vip: { source: csv, path: vip.csv"));
    CHECK_THAT(result.error_with("malformed YAML"),
               Catch::Matches(R"(segpush\.yaml:[45]:\d+: error: malformed YAML: .+)"));
    CHECK_FALSE(result.config);
}

TEST_CASE_METHOD(ConfigFixture, "config 15: a secret written inline is refused and not echoed") {
    const Result result = check(replace(kBase, "${env:SEGPUSH_TEST_AC_KEY}", "inline-key-5a5a5a5a"));
    const std::string error = result.error_with("is a secret");
    CHECK_THAT(error, Catch::StartsWith("segpush.yaml:11:16: error: connections.ac.settings.api_key: is a secret: give "
                                        "it by reference as ${env:NAME} or ${file:PATH}"));
    CHECK(result.all().find("inline-key-5a5a5a5a") == std::string::npos);
}

TEST_CASE_METHOD(ConfigFixture, "config 16: a typo'd plugin setting suggests the declared one") {
    const Result result = check(replace(kBase, "list_id: 3", "list: 3"));
    CHECK_THAT(result.error_with("unknown key 'list'"),
               Catch::StartsWith("segpush.yaml:17:7: error: exports.vip_export.settings.list: unknown key 'list' (did "
                                 "you mean 'list_id'?)"));
    CHECK_THAT(result.error_with("missing required setting 'list_id'"), Catch::StartsWith("segpush.yaml:17:7:"));
}

TEST_CASE_METHOD(ConfigFixture, "config 17: an unknown segment suggests the defined one") {
    const Result result = check(replace(kBase, "segments: [vip]", "segments: [vipp]"));
    CHECK(result.error_with("unknown segment") ==
          "segpush.yaml:15:15: error: exports.vip_export.segments: unknown segment 'vipp' (did you mean 'vip'?); "
          "defined: vip");
}

TEST_CASE_METHOD(ConfigFixture, "config 18: a bad schedule names the cron field") {
    const Result result = check(
        replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n    schedule: \"0 25 * * *\"\n"));
    CHECK(result.error_with("schedule") ==
          "segpush.yaml:21:15: error: exports.vip_export.schedule: hour '25' is not valid (allowed 0-23)");
}

TEST_CASE_METHOD(ConfigFixture, "config 19: a typo'd mapping field suggests the plugin's field") {
    const Result result = check(replace(kBase, "first_name: FirstName", "frist_name: FirstName"));
    CHECK(result.error_with("frist_name") ==
          "segpush.yaml:20:7: error: exports.vip_export.mapping.frist_name: plugin 'activecampaign' has no field "
          "'frist_name' (did you mean 'first_name'?); its fields: email, first_name, last_name, phone");
}

TEST_CASE_METHOD(ConfigFixture, "config 20: a key given twice") {
    const Result result = check(
        replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n      email: Mail\n"));
    CHECK(result.error_with("twice") ==
          "segpush.yaml:21:7: error: exports.vip_export.mapping.email: key 'email' is given twice in the same mapping");
}

TEST_CASE_METHOD(ConfigFixture, "config 21: a secret file that does not exist") {
    const Result result = check(replace(kBase, "${env:SEGPUSH_TEST_AC_KEY}", "${file:secrets/ac.key}"));
    CHECK(result.error_with("secret file") ==
          "segpush.yaml:11:16: error: connections.ac.settings.api_key: cannot read secret file secrets/ac.key");
}

TEST_CASE_METHOD(ConfigFixture, "config 22: an unknown role in usable_by") {
    const Result result = check(
        replace(kBase, "privacy_consent: true", "privacy_consent: true\n    usable_by: [admin]"));
    CHECK_THAT(result.error_with("role"),
               Catch::StartsWith("segpush.yaml:9:16: error: connections.ac.usable_by: unknown role 'admin' (did you "
                                 "mean 'admins'?)"));
}

TEST_CASE_METHOD(ConfigFixture, "config 23: an unknown segment source") {
    const Result result = check(replace(kBase, "source: csv", "source: xls"));
    CHECK_THAT(result.error_with("source"),
               Catch::StartsWith("segpush.yaml:4:18: error: segments.vip.source: unknown source 'xls'"));
}

TEST_CASE_METHOD(ConfigFixture, "config 24: an included file that does not exist") {
    const Result result = check(kBase + "include: [more/exports.yaml]\n");
    CHECK_THAT(result.error_with("included file"),
               Catch::StartsWith("segpush.yaml:21:11: error: include[0]: included file") &&
                   Catch::EndsWith("more/exports.yaml does not exist"));
}

TEST_CASE_METHOD(ConfigFixture, "config 25: an export defined in two files") {
    dir.write("more.yaml",
              "exports:\n  vip_export:\n    connection: ac\n    segments: vip\n    settings: {list_id: 4}\n"
              "    mapping: {email: Email}\n");
    const Result result = check(kBase + "include: [more.yaml]\n");
    CHECK(result.error_with("already defined") ==
          "more.yaml:2:3: error: exports.vip_export: export 'vip_export' is already defined at segpush.yaml:13");
}

TEST_CASE_METHOD(ConfigFixture, "config 26: a plugin setting of the wrong type") {
    const Result result = check(
        replace(kBase, "host: acme.api-us1.com", "host: acme.api-us1.com\n      requests_per_second: fast"));
    CHECK(result.error_with("requests_per_second") ==
          "segpush.yaml:11:28: error: connections.ac.settings.requests_per_second: expected a whole number, found a "
          "string \"fast\"");
}

TEST_CASE_METHOD(ConfigFixture, "config 27: a contributor file may only declare exports") {
    dir.write("exports.d/team.yaml", "connections:\n  mine:\n    plugin: activecampaign\n");
    const Result result = check(kBase + "include:\n  - path: exports.d/*.yaml\n    editable_by: contributors\n");
    CHECK_THAT(result.error_with("connections"),
               Catch::StartsWith(
                   "exports.d/team.yaml:1:1: error: connections: unknown key 'connections'; allowed keys: exports"));
}

TEST_CASE_METHOD(ConfigFixture, "config 28: a file that is not a mapping") {
    const Result result = check("- just\n- a list\n");
    CHECK(result.error_with("expected a mapping") ==
          "segpush.yaml:1:1: error: expected a mapping of keys to values, found a list");
}

TEST_CASE_METHOD(ConfigFixture, "config 29: every problem is reported in one pass") {
    std::string yaml = replace(kBase, "list_id: 3", "list_id: x");
    yaml = replace(yaml, "connection: ac", "connection: ac\n    max_profiles: -5");
    yaml = replace(yaml, "host: acme.api-us1.com", "host: http://acme.api-us1.com");
    yaml = replace(yaml, "state: state.db", "state: state.db\nsegmnts: {}");
    const Result result = check(yaml);
    INFO(result.all());
    CHECK(result.errors.size() == 4);
    result.error_with("list_id");
    result.error_with("max_profiles");
    result.error_with("host must be the hostname only");
    result.error_with("did you mean 'segments'");
}

TEST_CASE_METHOD(ConfigFixture, "config 30: a segment file that does not exist yet is a warning, not an error") {
    const Result result = check(replace(kBase, "path: vip.csv", "path: later.csv"));
    CHECK(result.errors.empty());
    REQUIRE(result.warnings.size() == 2);  // the second: the mapping is not checked against it
    CHECK_THAT(result.warnings[0], Catch::StartsWith("segpush.yaml:4:29: warning: segments.vip.path: segment file"));
}

TEST_CASE_METHOD(ConfigFixture,
                 "config 31: a file setting is found from the configuration file's folder, a missing one at its line") {
    dir.write("certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const Result found = check(replace(kBase, "      host: acme.api-us1.com\n",
                                       "      host: acme.api-us1.com\n      ca_bundle: certs/ca.pem\n"));
    INFO(found.all());
    REQUIRE(found.errors.empty());
    // The plugin gets the path as checked (absolute when the configuration file's is): it
    // opens the file from wherever segpush was started.
    CHECK_THAT(found.config->connections[0].settings.resolved_json,
               Catch::Contains("\"ca_bundle\":\"" + dir.file("certs/ca.pem") + "\""));

    const Result missing = check(replace(kBase, "      host: acme.api-us1.com\n",
                                         "      host: acme.api-us1.com\n      ca_bundle: certs/other.pem\n"));
    CHECK(missing.error_with("ca_bundle") ==
          "segpush.yaml:11:18: error: connections.ac.settings.ca_bundle: names a file that does not exist: "
          "certs/other.pem");
    const Result folder = check(
        replace(kBase, "      host: acme.api-us1.com\n", "      host: acme.api-us1.com\n      ca_bundle: certs\n"));
    CHECK_THAT(folder.error_with("ca_bundle"), Catch::EndsWith("names something that is not a file: certs"));
    // ${file:...} would hand the plugin the file's contents as a path.
    const Result contents = check(replace(kBase, "      host: acme.api-us1.com\n",
                                          "      host: acme.api-us1.com\n      ca_bundle: ${file:certs/ca.pem}\n"));
    CHECK_THAT(contents.error_with("ca_bundle"), Catch::Contains("write its path (ca_bundle: certs/ca.pem)"));
}

TEST_CASE_METHOD(ConfigFixture, "config: a segment path of '-' (standard input) is refused at its line") {
    const Result result = check(replace(kBase, "path: vip.csv", "path: '-'"));
    CHECK(result.error_with("segments.vip.path") ==
          "segpush.yaml:4:29: error: segments.vip.path: '-' (standard input) cannot be a segment: write the segment "
          "to a file, or to a FIFO with fifo_timeout_seconds (a file named '-' is ./-)");
}

TEST_CASE_METHOD(ConfigFixture, "config: fifo_timeout_seconds is read, bounded, and a FIFO without it is a warning") {
    const Result with = check(replace(kBase, "path: vip.csv }", "path: vip.csv, fifo_timeout_seconds: 30 }"));
    INFO(with.all());
    REQUIRE(with.errors.empty());
    CHECK(with.config->segments[0].fifo_timeout == std::chrono::seconds(30));
    const Result without = check(kBase);
    REQUIRE(without.errors.empty());
    CHECK_FALSE(without.config->segments[0].fifo_timeout.has_value());

    const Result too_long = check(replace(kBase, "path: vip.csv }", "path: vip.csv, fifo_timeout_seconds: 86401 }"));
    CHECK(too_long.error_with("fifo_timeout_seconds") ==
          "segpush.yaml:4:60: error: segments.vip.fifo_timeout_seconds: waits for a FIFO's writer at most 86400 "
          "seconds (a day)");
    const Result zero = check(replace(kBase, "path: vip.csv }", "path: vip.csv, fifo_timeout_seconds: 0 }"));
    CHECK_THAT(zero.error_with("fifo_timeout_seconds"), Catch::EndsWith("must be at least 1"));

    REQUIRE(mkfifo(dir.file("pipe.csv").c_str(), 0600) == 0);
    const Result fifo = check(replace(kBase, "path: vip.csv", "path: pipe.csv"));
    REQUIRE(fifo.errors.empty());
    REQUIRE(fifo.warnings.size() == 2);  // the second: the mapping is not checked against it
    CHECK(fifo.warnings[0] == "segpush.yaml:4:29: warning: segments.vip.path: segment file pipe.csv is a FIFO (named "
                              "pipe): runs refuse it unless the segment sets fifo_timeout_seconds");
    const Result allowed = check(replace(kBase, "path: vip.csv }", "path: pipe.csv, fifo_timeout_seconds: 5 }"));
    CHECK(allowed.errors.empty());
    REQUIRE(allowed.warnings.size() == 1);
    CHECK_THAT(allowed.warnings[0], Catch::Contains("exports.vip_export.mapping: not checked"));

    const Result device = check(replace(kBase, "path: vip.csv", "path: /dev/null"));
    REQUIRE(device.warnings.size() == 2);
    CHECK_THAT(device.warnings[0], Catch::EndsWith("segment file /dev/null is a character device, not a regular file: "
                                                   "runs refuse it"));
}

// ---- bounded configuration: anchors and aliases, nesting, file sizes

namespace {

// The highest resident set size this process has had, in KiB. It only grows, so "the peak
// after minus the peak before" bounds what a step added at most.
long peak_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

// Nine lines whose last one stands for 10^9 strings ("billion laughs"), at settings level.
const std::string kAliasBomb = R"(      a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
)";

}  // namespace

TEST_CASE_METHOD(ConfigFixture,
                 "config: an alias bomb in settings stops at the alias past 100,000 nodes, in little memory") {
    const long peak_before = peak_rss_kib();
    const Result result = check(replace(kBase, "      list_id: 3\n", "      list_id: 3\n" + kAliasBomb));
    // d stands for 11,111 nodes: the 18 nodes before the bomb, a, b, c, d and seven uses of *d
    // inside e make 100,016, past the limit at e's seventh *d.
    CHECK(result.error_with("YAML nodes") ==
          "segpush.yaml:22:42: error: exports.vip_export.settings.e[7]: this file holds more than 100,000 YAML nodes "
          "once its aliases are expanded (alias *d stands for 11,111 nodes); segpush stops here so that a few lines "
          "of anchors and aliases cannot exhaust its memory: use fewer aliases, or split the configuration into "
          "included files");
    CHECK_FALSE(result.config);  // the main file is not read at all
    CHECK(result.errors.size() == 1);
    CHECK(peak_rss_kib() - peak_before < 100 * 1024);
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: an alias bomb in a contributor's exports.d file is refused, the rest still loads") {
    dir.write("exports.d/x.yaml", "exports:\n  x:\n    connection: ac\n    segments: [vip]\n"
                                  "    mapping: {email: Email}\n    settings:\n      list_id: 4\n" +
                                      kAliasBomb);
    const long peak_before = peak_rss_kib();
    const Result result = check(
        replace(kBase, "privacy_consent: true", "privacy_consent: true\n    usable_by: [contributors]") +
        "include:\n  - path: exports.d/*.yaml\n    editable_by: contributors\n");
    CHECK_THAT(result.error_with("YAML nodes"),
               Catch::StartsWith(
                   "exports.d/x.yaml:12:42: error: exports.x.settings.e[7]: this file holds more than "
                   "100,000 YAML nodes once its aliases are expanded (alias *d stands for 11,111 nodes)"));
    CHECK(result.errors.size() == 1);
    REQUIRE(result.config);
    CHECK_FALSE(result.config->find_export("x"));
    CHECK(result.config->find_export("vip_export")->settings.resolved_json == R"({"list_id":3})");
    CHECK(peak_rss_kib() - peak_before < 100 * 1024);
}

TEST_CASE_METHOD(ConfigFixture, "config: a large value repeated by aliases stops at 1 MiB of settings JSON") {
    const std::string big = std::string(600 * 1024, 'x');
    const long peak_before = peak_rss_kib();
    const Result result = check(
        replace(kBase, "      list_id: 3\n",
                "      list_id: 3\n      big: &big \"" + big + "\"\n      copies: [*big, *big, *big]\n"));
    CHECK(result.error_with("1 MiB") ==
          "segpush.yaml:19:15: error: exports.vip_export.settings.copies: the settings grow past 1 MiB of JSON once "
          "aliases are expanded (each *alias repeats what it names); segpush refuses them so that a few lines of "
          "anchors and aliases cannot exhaust its memory");
    REQUIRE(result.config);
    CHECK(result.config->exports[0].settings.resolved_json.empty());
    CHECK(peak_rss_kib() - peak_before < 100 * 1024);
}

TEST_CASE_METHOD(ConfigFixture, "config: nesting past 64 levels is refused before the YAML parser recurses deeply") {
    // 5,000 levels: yaml-cpp's own guard (500) would say only "bad file".
    const Result flow = check(
        replace(kBase, "      list_id: 3\n",
                "      list_id: 3\n      deep: " + std::string(5000, '[') + std::string(5000, ']') + "\n"));
    CHECK_THAT(flow.error_with("levels deep"),
               Catch::StartsWith("segpush.yaml:18:73: error: exports.vip_export.settings.deep[0][0][0]") &&
                   Catch::EndsWith(": nests more than 64 levels deep; segpush refuses deeper YAML so that reading it "
                                   "cannot exhaust its stack"));
    // Aliases add their depth where they are used.
    const std::string forty = std::string(40, '[') + std::string(40, ']');
    const Result aliased = check(replace(kBase, "      list_id: 3\n",
                                         "      list_id: 3\n      a: &a " + forty + "\n      b: " +
                                             std::string(30, '[') + "*a" + std::string(30, ']') + "\n"));
    CHECK_THAT(aliased.error_with("levels deep"),
               Catch::StartsWith("segpush.yaml:19:40: error: exports.vip_export.settings.b[0]") &&
                   Catch::Contains("nests more than 64 levels deep once alias *a is expanded"));
    // A list that contains itself would be endless to walk.
    const Result loop = check(replace(kBase, "      list_id: 3\n", "      list_id: 3\n      loop: &loop [1, *loop]\n"));
    CHECK(loop.error_with("endless") ==
          "segpush.yaml:18:23: error: exports.vip_export.settings.loop[1]: this alias names a list or mapping that "
          "contains it, which would make the value endless");
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: a configuration file over 4 MiB is refused by name, an included one at its include") {
    const std::string padding = "# " + std::string(5 * 1024 * 1024, '.') + "\n";
    const Result main = check(kBase + padding);
    CHECK(main.error_with("4 MiB") ==
          "segpush.yaml: error: configuration file segpush.yaml is larger than 4 MiB, the most segpush reads: is it "
          "the right file? A larger configuration can be split into included files");
    CHECK_FALSE(main.config);

    dir.write("more.yaml", "exports: {}\n" + padding);
    const Result included = check(kBase + "include: [more.yaml]\n");
    CHECK_THAT(included.error_with("4 MiB"),
               Catch::StartsWith("segpush.yaml:21:11: error: configuration file more.yaml is larger than 4 MiB"));
    REQUIRE(included.config);
    CHECK(included.config->exports.size() == 1);
}

TEST_CASE_METHOD(ConfigFixture, "config: an honest configuration with anchors and aliases still works") {
    // One settings block and one mapping shared by two exports: each use is converted in full.
    const Result result = check(
        replace(replace(kBase, "    settings:\n      list_id: 3\n", "    settings: &shared\n      list_id: 3\n"),
                "    mapping:\n", "    mapping: &columns\n") +
        "  second_export:\n    connection: ac\n    segments: [vip]\n    settings: *shared\n"
        "    mapping: *columns\n");
    INFO(result.all());
    REQUIRE(result.errors.empty());
    REQUIRE(result.config);
    REQUIRE(result.config->exports.size() == 2);
    for (const auto& item : result.config->exports) {
        CHECK(item.settings.resolved_json == R"({"list_id":3})");
        CHECK(item.mapping.size() == 2);
    }
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: a number beyond a double's range is kept as written, for the schema to judge") {
    // std::stod throws for 1e999: this was "internal error: stod" from config check.
    const Result result = check(replace(kBase, "list_id: 3", "list_id: 1e999"));
    CHECK_THAT(result.error_with("list_id"),
               Catch::StartsWith("segpush.yaml:17:16: error: exports.vip_export.settings.list_id: ") &&
                   Catch::Contains("1e999"));
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: a schedule that can never fire and an unknown time zone are refused at their values") {
    const Result result = check(replace(kBase, "      first_name: FirstName\n",
                                        "      first_name: FirstName\n    schedule: \"0 3 31 2 *\"\n"
                                        "    timezone: Europe/Pariss\n"));
    CHECK(result.error_with("never fires") ==
          "segpush.yaml:21:15: error: exports.vip_export.schedule: '0 3 31 2 *' never fires: February has no day 31");
    CHECK(result.error_with("time zone") == "segpush.yaml:22:15: error: exports.vip_export.timezone: unknown time zone "
                                            "'Europe/Pariss'; use an IANA name such as Europe/Paris");
    CHECK(result.errors.size() == 2);
}

TEST_CASE_METHOD(ConfigFixture, "config: schedule: on_change with settle_seconds, and its mistakes at their values") {
    const Result plain = check(
        replace(kBase, "      first_name: FirstName\n",
                "      first_name: FirstName\n    schedule: on_change\n    settle_seconds: 30\n"));
    INFO(plain.all());
    REQUIRE(plain.errors.empty());
    CHECK(plain.warnings.empty());
    CHECK(plain.config->exports[0].schedule == kOnChangeSchedule);
    CHECK(plain.config->exports[0].settle == std::chrono::seconds(30));
    const Result by_default = check(
        replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n    schedule: on_change\n"));
    CHECK(by_default.config->exports[0].settle == std::chrono::seconds(5));

    const Result typo = check(
        replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n    schedule: onchange\n"));
    CHECK(typo.error_with("schedule") ==
          "segpush.yaml:21:15: error: exports.vip_export.schedule: 'onchange' is not a schedule: write on_change "
          "(run when the segment files change), a shorthand such as @daily, or 5 cron fields such as \"0 3 * * *\" "
          "(did you mean 'on_change'?)");

    const Result cron_settle = check(replace(kBase, "      first_name: FirstName\n",
                                             "      first_name: FirstName\n    schedule: \"0 3 * * *\"\n"
                                             "    settle_seconds: 10\n"));
    CHECK_THAT(cron_settle.error_with("settle_seconds"),
               Catch::StartsWith("segpush.yaml:22:21: error: exports.vip_export.settle_seconds: settle_seconds is for "
                                 "schedule: on_change"));
    const Result long_settle = check(replace(kBase, "      first_name: FirstName\n",
                                             "      first_name: FirstName\n    schedule: on_change\n"
                                             "    settle_seconds: 7200\n"));
    CHECK_THAT(long_settle.error_with("settle_seconds"), Catch::Contains("at most 3600"));

    // A zone means nothing to it: said, not refused.
    const Result zoned = check(replace(kBase, "      first_name: FirstName\n",
                                       "      first_name: FirstName\n    schedule: on_change\n"
                                       "    timezone: Europe/Paris\n"));
    CHECK(zoned.errors.empty());
    REQUIRE(zoned.warnings.size() == 1);
    CHECK(zoned.warnings[0] == "segpush.yaml:22:15: warning: exports.vip_export.timezone: has no effect: schedule: "
                               "on_change runs when the segment files change, at any hour");

    // A FIFO has no version to watch.
    const Result fifo = check(replace(replace(kBase, "path: vip.csv }", "path: vip.csv, fifo_timeout_seconds: 30 }"),
                                      "      first_name: FirstName\n",
                                      "      first_name: FirstName\n    schedule: on_change\n"));
    CHECK_THAT(fifo.error_with("FIFO"), Catch::StartsWith("segpush.yaml:15:15: error: exports.vip_export.segments: "
                                                          "schedule: on_change watches files for changes, and "
                                                          "segment 'vip' is read from a FIFO"));
}

TEST_CASE_METHOD(ConfigFixture, "config: serve.listen defaults to loopback and a bad address names its line") {
    const Result plain = check(kBase);
    REQUIRE(plain.config);
    CHECK(listen_address_text(plain.config->serve_listen) == "127.0.0.1:9464");

    const Result opened = check(
        replace(kBase, "state: state.db\n", "state: state.db\nserve:\n  listen: \"[::]:9100\"\n"));
    INFO(opened.all());
    REQUIRE(opened.errors.empty());
    CHECK(listen_address_text(opened.config->serve_listen) == "[::]:9100");

    const Result named = check(
        replace(kBase, "state: state.db\n", "state: state.db\nserve:\n  listen: localhost:9464\n"));
    CHECK(named.error_with("serve.listen") ==
          "segpush.yaml:4:11: error: serve.listen: 'localhost' is not an IP address; give a numeric address "
          "(127.0.0.1, 0.0.0.0, or [::1] for IPv6)");
    const Result port = check(
        replace(kBase, "state: state.db\n", "state: state.db\nserve:\n  listen: 127.0.0.1:99999\n"));
    CHECK(port.error_with("serve.listen") ==
          "segpush.yaml:4:11: error: serve.listen: port '99999' is not a number from 0 to 65535");
    const Result typo = check(
        replace(kBase, "state: state.db\n", "state: state.db\nserve:\n  listn: 127.0.0.1:9464\n"));
    CHECK_THAT(typo.error_with("listn"), Catch::StartsWith("segpush.yaml:4:3: error: serve.listn: unknown key 'listn' "
                                                           "(did you mean 'listen'?)"));
}

// ---- every problem in one pass: secrets that do not resolve, mappings against the segments' columns, file order

TEST_CASE_METHOD(ConfigFixture, "config: an unset key variable and a bad host are reported together in one pass") {
    unsetenv("SEGPUSH_TEST_AC_KEY");
    const Result result = check(replace(kBase, "host: acme.api-us1.com", "host: https://acme.api-us1.com/app"));
    CHECK(result.items ==
          std::vector<std::string>{
              "segpush.yaml:10:13: error: connections.ac.settings.host: host must be the hostname only, without the "
              "scheme \"https://\" and the path or query; write host: acme.api-us1.com",
              "segpush.yaml:11:16: error: connections.ac.settings.api_key: environment variable SEGPUSH_TEST_AC_KEY "
              "is not set"});
    REQUIRE(result.config);
    CHECK(result.config->connections[0].settings.resolved_json.empty());  // the placeholder goes nowhere
}

TEST_CASE_METHOD(ConfigFixture, "config: a missing secret file, a schema error and the plugin's check in one pass") {
    std::string yaml = replace(kBase, "${env:SEGPUSH_TEST_AC_KEY}", "${file:secrets/ac.key}");
    yaml = replace(yaml, "host: acme.api-us1.com", "host: http://acme.api-us1.com\n      timeout_seconds: 1");
    const Result result = check(yaml);
    CHECK(result.items ==
          std::vector<std::string>{
              "segpush.yaml:10:13: error: connections.ac.settings.host: host must be the hostname only, without the "
              "scheme \"http://\"; write host: acme.api-us1.com",
              "segpush.yaml:11:24: error: connections.ac.settings.timeout_seconds: must be at least 5, found 1",
              "segpush.yaml:12:16: error: connections.ac.settings.api_key: cannot read secret file secrets/ac.key"});

    // A secret written in clear is refused, and the rest is still checked.
    const Result inline_key = check(replace(replace(kBase, "${env:SEGPUSH_TEST_AC_KEY}", "inline-key-77c1d0"),
                                            "host: acme.api-us1.com", "host: acme.api-us1.com/"));
    CHECK(inline_key.errors.size() == 2);
    CHECK_THAT(inline_key.errors[0], Catch::StartsWith("segpush.yaml:10:13: error: connections.ac.settings.host: host "
                                                       "must be the hostname only, without the path or query"));
    CHECK_THAT(inline_key.errors[1], Catch::StartsWith("segpush.yaml:11:16: error: connections.ac.settings.api_key: is "
                                                       "a secret"));
    for (const Result* each : {&result, &inline_key}) {
        for (const auto& line : each->items) {
            CHECK(line.find(kSettingPlaceholder) == std::string::npos);
            CHECK(line.find("inline-key-77c1d0") == std::string::npos);
        }
    }
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: a mapped column the CSV header lacks is an error at the column, with its columns") {
    const Result typo = check(replace(kBase, "email: Email", "email: Emial"));
    CHECK(typo.items == std::vector<std::string>{"segpush.yaml:19:14: error: exports.vip_export.mapping.email: segment "
                                                 "'vip' has no column 'Emial' (did you mean 'Email'?); the header of "
                                                 "vip.csv has Email, FirstName"});

    // The header is read as a run reads it: a BOM, quotes and spaces around the names.
    dir.write("vip.csv", "\xEF\xBB\xBF\"Email\",  First Name \r\na@example.com,A\r\n");
    const Result quoted = check(replace(kBase, "first_name: FirstName", "first_name: First Name"));
    INFO(quoted.all());
    CHECK(quoted.items.empty());
    const Result still_wrong = check(kBase);
    CHECK(
        still_wrong.items ==
        std::vector<std::string>{"segpush.yaml:20:19: error: exports.vip_export.mapping.first_name: segment 'vip' has "
                                 "no column 'FirstName' (did you mean 'First Name'?); the header of vip.csv has "
                                 "Email, First Name"});
}

TEST_CASE_METHOD(ConfigFixture,
                 "config: a mapped key no JSON Lines record has: an error when required, else a warning") {
    // A key holding null is there: the run reads it as empty.
    dir.write("people.jsonl", "{\"email\":\"a@example.com\",\"first\":\"A\",\"tier\":null}\n\n"
                              "{\"email\":\"b@example.com\",\"first\":\"B\"}\n");
    const std::string yaml = replace(kBase, "vip: { source: csv, path: vip.csv }", "vip: { path: people.jsonl }");
    const Result typo = check(replace(replace(yaml, "email: Email", "email: emial"), "first_name: FirstName",
                                      "first_name: frist\n      last_name: tier"));
    CHECK(typo.items ==
          std::vector<std::string>{
              "segpush.yaml:19:14: error: exports.vip_export.mapping.email: none of the first 2 records of segment "
              "'vip' (people.jsonl) has the key 'emial' (did you mean 'email'?); their keys: email, first, tier",
              "segpush.yaml:20:19: warning: exports.vip_export.mapping.first_name: none of the first 2 records of "
              "segment 'vip' (people.jsonl) has the key 'frist' (did you mean 'first'?); their keys: email, first, "
              "tier (rows without it leave first_name empty)"});

    // Only the first 100 records are read.
    std::string many;
    for (int i = 0; i < 150; ++i) many += "{\"email\":\"p" + std::to_string(i) + "@example.com\"}\n";
    dir.write("people.jsonl", many + "{\"email\":\"late@example.com\",\"first\":\"Late\"}\n");
    const Result late = check(replace(yaml, "first_name: FirstName", "first_name: first"));
    REQUIRE(late.warnings.size() == 1);
    CHECK_THAT(late.warnings[0], Catch::Contains("none of the first 100 records of segment 'vip' (people.jsonl) has "
                                                 "the key 'first'"));
}

TEST_CASE_METHOD(ConfigFixture, "config: declared columns are checked instead of a file that is not there yet") {
    const std::string yaml = replace(kBase, "vip: { source: csv, path: vip.csv }",
                                     "vip: { source: csv, path: later.csv, columns: [Email, FirstName] }");
    const Result typo = check(replace(yaml, "email: Email", "email: Emial"));
    CHECK(typo.errors ==
          std::vector<std::string>{"segpush.yaml:19:14: error: exports.vip_export.mapping.email: segment "
                                   "'vip' has no column 'Emial' (did you mean 'Email'?); its declared "
                                   "columns: Email, FirstName"});
    CHECK(typo.warnings == std::vector<std::string>{"segpush.yaml:4:29: warning: segments.vip.path: segment file "
                                                    "later.csv does not exist yet"});
    const Result good = check(yaml);
    INFO(good.all());
    CHECK(good.errors.empty());
    REQUIRE(good.config);
    CHECK(good.config->segments[0].columns == std::vector<std::string>{"Email", "FirstName"});

    const Result twice = check(replace(yaml, "[Email, FirstName]", "[Email, Email]"));
    CHECK(twice.error_with("twice") ==
          "segpush.yaml:4:57: error: segments.vip.columns[1]: column 'Email' is listed twice");
    const Result none = check(replace(yaml, "[Email, FirstName]", "[]"));
    CHECK_THAT(none.error_with("columns"), Catch::StartsWith("segpush.yaml:4:49: error: segments.vip.columns: lists no "
                                                             "columns"));
}

TEST_CASE_METHOD(ConfigFixture, "config: a segment file not there yet is a warning that the mapping was not checked") {
    const Result result = check(
        replace(replace(kBase, "path: vip.csv", "path: later.csv"), "email: Email", "email: Emial"));
    CHECK(result.errors.empty());
    CHECK(result.warnings ==
          std::vector<std::string>{"segpush.yaml:4:29: warning: segments.vip.path: segment file later.csv does not "
                                   "exist yet",
                                   "segpush.yaml:19:7: warning: exports.vip_export.mapping: not checked against the "
                                   "columns of segment 'vip': segment file later.csv does not exist yet; declare them "
                                   "in the segment (columns: [...]) to have them checked"});
}

TEST_CASE_METHOD(ConfigFixture, "config: a FIFO segment is neither read nor waited on") {
    const std::string fifo = dir.file("pipe.csv");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const std::string yaml = replace(kBase, "path: vip.csv }", "path: pipe.csv, fifo_timeout_seconds: 30 }");
    // No writer: a check that opened it to read would wait, or find nothing.
    const Result alone = check(yaml);
    CHECK(alone.errors.empty());
    CHECK(alone.warnings ==
          std::vector<std::string>{"segpush.yaml:19:7: warning: exports.vip_export.mapping: not checked against the "
                                   "columns of segment 'vip': segment file pipe.csv is a FIFO (named pipe), which only "
                                   "a run reads; declare them in the segment (columns: [...]) to have them checked"});

    // With rows waiting in it, they are all still there for the run afterwards.
    const int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(reader >= 0);
    const int writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    REQUIRE(writer >= 0);
    const std::string rows = "Email,FirstName\na@example.com,A\n";
    REQUIRE(write(writer, rows.data(), rows.size()) == static_cast<ssize_t>(rows.size()));
    const Result waiting = check(replace(yaml, "email: Email", "email: Emial"));
    CHECK(waiting.errors.empty());
    CHECK(waiting.warnings == alone.warnings);
    char buffer[256];
    CHECK(read(reader, buffer, sizeof buffer) == static_cast<ssize_t>(rows.size()));
    close(writer);
    close(reader);

    // Declared columns are checked, and the FIFO is still not opened.
    const Result declared = check(
        replace(replace(yaml, "fifo_timeout_seconds: 30 }", "fifo_timeout_seconds: 30, columns: [Email, FirstName] }"),
                "email: Email", "email: Emial"));
    CHECK(declared.warnings.empty());
    CHECK_THAT(declared.error_with("Emial"), Catch::StartsWith("segpush.yaml:19:14: error: "
                                                               "exports.vip_export.mapping.email: segment 'vip' has no "
                                                               "column 'Emial'"));
}

TEST_CASE_METHOD(ConfigFixture, "config: problems are printed by file, line and column, warnings among errors") {
    // Found in a different order: the included file's structure while reading, the plugin's
    // checks and the segment columns once everything is read.
    dir.write("more.yaml", "exports:\n"
                           "  more_export:\n"
                           "    connection: ac\n"
                           "    segments: [vip]\n"
                           "    settings: {list_id: 0}\n"
                           "    mapping: {email: Emial}\n"
                           "    max_profile: 5\n");
    std::string yaml = replace(kBase, "host: acme.api-us1.com", "host: https://acme.api-us1.com");
    yaml = replace(yaml, "first_name: FirstName",
                   "first_name: FirstNam\n    schedule: on_change\n"
                   "    timezone: Europe/Paris\n    on_leave: drop");
    const Result result = check(yaml + "include: [more.yaml]\n");
    CHECK(result.items ==
          std::vector<std::string>{
              "more.yaml:5:25: error: exports.more_export.settings.list_id: must be at least 1, found 0",
              "more.yaml:6:22: error: exports.more_export.mapping.email: segment 'vip' has no column 'Emial' (did "
              "you mean 'Email'?); the header of vip.csv has Email, FirstName",
              "more.yaml:7:5: error: exports.more_export.max_profile: unknown key 'max_profile' (did you mean "
              "'max_profiles'?); allowed keys: connection, segments, settings, mapping, schedule, timezone, "
              "max_profiles, on_leave, retry, clear_blank_values, catch_up, notify, settle_seconds, "
              "max_rejected_ratio, max_leaving_ratio, max_changed_ratio, retry_rejected_runs",
              "segpush.yaml:10:13: error: connections.ac.settings.host: host must be the hostname only, without the "
              "scheme \"https://\"; write host: acme.api-us1.com",
              "segpush.yaml:20:19: error: exports.vip_export.mapping.first_name: segment 'vip' has no column "
              "'FirstNam' (did you mean 'FirstName'?); the header of vip.csv has Email, FirstName",
              "segpush.yaml:22:15: warning: exports.vip_export.timezone: has no effect: schedule: on_change runs "
              "when the segment files change, at any hour",
              "segpush.yaml:23:15: error: exports.vip_export.on_leave: must be keep (members who leave the segment "
              "stay in the destination) or unsubscribe"});
}

TEST_CASE("config: diagnostics come out in file order, those at one place in the order reported") {
    Diagnostics diagnostics;
    diagnostics.error({"b.yaml", 3, 1}, "x", "third in b");
    diagnostics.warning({"a.yaml", 9, 2}, "y", "second in a");
    diagnostics.error({"b.yaml", 1, 5}, "z", "first in b");
    diagnostics.error({"a.yaml", 9, 2}, "y", "also second in a");
    diagnostics.error({"a.yaml", 0, 0}, "", "the whole of a");
    std::vector<std::string> order;
    for (const auto& item : diagnostics.items()) order.push_back(item.message);
    CHECK(order ==
          std::vector<std::string>{"the whole of a", "second in a", "also second in a", "first in b", "third in b"});
    diagnostics.warning({"a.yaml", 1, 1}, "w", "added later");
    CHECK(diagnostics.items()[1].message == "added later");
    CHECK(diagnostics.has_errors());
}

TEST_CASE_METHOD(ConfigFixture, "config: max_leaving_ratio and max_changed_ratio are shares from 0 to 1") {
    const Result defaults = check(kBase);
    REQUIRE(defaults.errors.empty());
    CHECK(defaults.config->exports[0].max_leaving_ratio == 0.5);
    CHECK(defaults.config->exports[0].max_changed_ratio == 1);  // off: changes alone never stop a run

    const Result given = check(replace(kBase, "      first_name: FirstName\n",
                                       "      first_name: FirstName\n    max_leaving_ratio: 0.05\n"
                                       "    max_changed_ratio: 0\n"));
    INFO(given.all());
    REQUIRE(given.errors.empty());
    CHECK(given.config->exports[0].max_leaving_ratio == 0.05);
    CHECK(given.config->exports[0].max_changed_ratio == 0);

    const Result bad = check(replace(kBase, "      first_name: FirstName\n",
                                     "      first_name: FirstName\n    max_leaving_ratio: 50%\n"
                                     "    max_changed_ratio: 1.5\n"));
    CHECK(bad.errors.size() == 2);
    CHECK(bad.error_with("max_leaving_ratio") ==
          "segpush.yaml:21:24: error: exports.vip_export.max_leaving_ratio: expected a number from 0 to 1 (a share, "
          "e.g. 0.5 for half), found a string '50%'");
    CHECK(bad.error_with("max_changed_ratio") ==
          "segpush.yaml:22:24: error: exports.vip_export.max_changed_ratio: expected a number from 0 to 1 (a share, "
          "e.g. 0.5 for half), found '1.5'");
    const Result typo = check(
        replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n    max_leaving_ration: 0.2\n"));
    CHECK_THAT(typo.error_with("max_leaving_ration"), Catch::Contains("did you mean 'max_leaving_ratio'?"));
}

TEST_CASE_METHOD(ConfigFixture, "config: retry_rejected_runs is 3 unless set, 0 allowed, and anything else refused at "
                                "its value") {
    auto with = [&](const std::string& line) {
        return check(replace(kBase, "      first_name: FirstName\n", "      first_name: FirstName\n" + line));
    };
    const Result by_default = with("");
    REQUIRE(by_default.config);
    CHECK(by_default.config->exports[0].retry_rejected_runs == 3);
    const Result never = with("    retry_rejected_runs: 0\n");
    INFO(never.all());
    REQUIRE(never.errors.empty());
    CHECK(never.config->exports[0].retry_rejected_runs == 0);
    CHECK(with("    retry_rejected_runs: 7\n").config->exports[0].retry_rejected_runs == 7);
    CHECK(with("    retry_rejected_runs: 99999999999999999999\n").config->exports[0].retry_rejected_runs == 1000);
    const Result negative = with("    retry_rejected_runs: -1\n");
    CHECK(negative.error_with("retry_rejected_runs") ==
          "segpush.yaml:21:26: error: exports.vip_export.retry_rejected_runs: expected a number of runs, 0 or more (0: "
          "a refused member is sent again only once its values change), found an integer '-1'");
    CHECK_THAT(with("    retry_rejected_runs: often\n").error_with("retry_rejected_runs"),
               Catch::Contains("exports.vip_export.retry_rejected_runs: expected a number of runs"));
    CHECK_THAT(with("    retry_rejected_runs: \"3\"\n").error_with("retry_rejected_runs"),
               Catch::Contains("found a string '3'"));
    CHECK_THAT(with("    retry_rejectd_runs: 2\n").error_with("retry_rejectd_runs"),
               Catch::Contains("did you mean 'retry_rejected_runs'"));
}

TEST_CASE_METHOD(ConfigFixture, "config: a PostgreSQL state is a URI or a map whose password is a reference") {
    // TCP keepalives and a user timeout: a cut network fails a statement in about 30 s.
    const std::string
        kAddedByUs = "&keepalives=1&keepalives_idle=10&keepalives_interval=5&keepalives_count=3&tcp_user_timeout=30000";
    SECTION("the URI form: connected with segpush's name and a connect timeout, shown as written") {
        const Result result = check(replace(kBase, "state: state.db", "state: postgresql://segpush@db.internal/sp"));
        INFO(result.all());
        REQUIRE(result.config);
        CHECK(result.config->state_location ==
              "postgresql://segpush@db.internal/sp?application_name=segpush&connect_timeout=10" + kAddedByUs);
        CHECK(result.config->state_shown == "postgresql://segpush@db.internal/sp");
        CHECK(result.config->state_options.lease == std::chrono::seconds(30));
        CHECK(result.config->reports_dir == (dir.path() / "reports").string());
    }
    SECTION("the map form: the password resolved into what segpush connects with, never into what it shows") {
        setenv("SEGPUSH_TEST_PG_PASSWORD", "pg p@ss/word", 1);
        const Result result = check(
            replace(kBase, "state: state.db",
                    "state:\n  url: postgresql://segpush@db.internal/sp?sslmode=verify-full\n"
                    "  password: ${env:SEGPUSH_TEST_PG_PASSWORD}\n  lease_seconds: 12\nreports_dir: /var/r"));
        INFO(result.all());
        REQUIRE(result.config);
        CHECK(result.config->state_location ==
              "postgresql://segpush@db.internal/sp?sslmode=verify-full&password=pg%20p%"
              "40ss%2Fword&application_name=segpush&connect_timeout=10" +
                  kAddedByUs);
        CHECK(result.config->state_shown == "postgresql://segpush@db.internal/sp?sslmode=verify-full");
        CHECK(result.config->state_options.lease == std::chrono::seconds(12));
        CHECK(result.config->reports_dir == "/var/r");
    }
    SECTION("a password written in the map is refused, one in the URI is a warning") {
        Result result = check(
            replace(kBase, "state: state.db", "state:\n  url: postgresql://segpush@db/sp\n  password: hunter2hunter2"));
        CHECK(result.error_with("state.password") ==
              "segpush.yaml:4:13: error: state.password: is a secret: give it by reference as ${env:NAME} or "
              "${file:PATH} so it never sits in a configuration file");
        result = check(replace(kBase, "state: state.db", "state: postgresql://segpush:hunter2hunter2@db/sp"));
        INFO(result.all());
        REQUIRE(result.warnings.size() == 1);
        CHECK(result.warnings[0] == "segpush.yaml:2:8: warning: state: holds a password: give it as state.password: "
                                    "${env:NAME} or ${file:PATH}");
        REQUIRE(result.config);
        CHECK(result.config->state_shown == "postgresql://segpush:***@db/sp");
    }
    SECTION("a URI libpq cannot read is refused without quoting it: it may hold the password") {
        const Result result = check(replace(kBase, "state: state.db", "state: postgresql://u:s3cr%zzet@db/sp"));
        CHECK(result.error_with("state: is not") ==
              "segpush.yaml:2:8: error: state: is not a connection URI libpq can read (check its percent-escapes, "
              "port and parameter names)");
        CHECK(result.all().find("s3cr") == std::string::npos);
    }
    SECTION("a map whose url is not PostgreSQL, a lease out of bounds, an unknown key") {
        CHECK(check(replace(kBase, "state: state.db", "state:\n  url: state.db")).error_with("state.url") ==
              "segpush.yaml:3:8: error: state.url: is not a postgresql:// URI; an "
              "SQLite state file is given as state: PATH");
        CHECK(check(replace(kBase, "state: state.db", "state:\n  url: postgresql://db/sp\n  lease_seconds: 2"))
                  .error_with("state.lease_seconds")
                  .find("must be from 3 to 3600 seconds") != std::string::npos);
        CHECK(check(replace(kBase, "state: state.db", "state:\n  url: postgresql://db/sp\n  lease: 20"))
                  .error_with("unknown key 'lease'")
                  .find("did you mean 'lease_seconds'?") != std::string::npos);
    }
}
