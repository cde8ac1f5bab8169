// Runs the real segpush binary as a user would and checks exit codes and output.
#include <rapidjson/document.h>
#include <signal.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <thread>

#include "support/abi.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "text/suggest.hpp"
#include "text/wording.hpp"

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
                             Catch::Contains("  0  success\n  1  failure\n  2  usage or configuration error"));
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
    CHECK_THAT(good.out, Catch::Contains("segpush.yaml: OK (1 segment, 1 connection, 1 export)"));

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
                            Catch::Contains("2 errors in bad.yaml"));

    const Run missing = run("--config nowhere.yaml config check");
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::Contains("cannot read configuration file nowhere.yaml"));
}

TEST_CASE("cli: config check of the example configuration is clean, and finds every mistake in one pass") {
    // Run from a folder of its own (run_shell leaves its output files there), on the file in the tree.
    segpush::test::TempDir dir;
    const std::string plugins = std::string(" --plugin-dir ") + SEGPUSH_PLUGIN_DIR + " config check";
    const Run example = run_shell(dir.path().string(), std::string("env AC_API_KEY=not-a-real-key ") + SEGPUSH_BINARY +
                                                           " --config " + SEGPUSH_SOURCE_DIR + "/config/segpush.yaml" +
                                                           plugins);
    CHECK(example.exit_code == 0);
    CHECK(example.err.empty());  // no warning either: the sample segment has every mapped column
    CHECK_THAT(example.out, Catch::Contains("config/segpush.yaml: OK (1 segment, 1 connection, 1 export)"));

    // A copy with a typo in a mapped column, and without the key: both, in file order.
    const std::string check = std::string(SEGPUSH_BINARY) + " --config config/segpush.yaml" + plugins;
    dir.write("config/segments/vip_customers.csv",
              read_file(std::string(SEGPUSH_SOURCE_DIR) + "/config/segments/vip_customers.csv"));
    std::string yaml = read_file(std::string(SEGPUSH_SOURCE_DIR) + "/config/segpush.yaml");
    const auto typo = yaml.find("email: Email");
    REQUIRE(typo != std::string::npos);
    dir.write("config/segpush.yaml", yaml.replace(typo, 12, "email: Emial"));
    const Run broken = run_shell(dir.path().string(), "env -u AC_API_KEY " + check);
    CHECK(broken.exit_code == 2);
    CHECK(broken.err ==
          "config/segpush.yaml:20:16: error: connections.ac_marketing.settings.api_key: environment variable "
          "AC_API_KEY is not set\n"
          "config/segpush.yaml:38:14: error: exports.vip_to_newsletter.mapping.email: segment 'vip_customers' has no "
          "column 'Emial' (did you mean 'Email'?); the header of config/segments/vip_customers.csv has Email, "
          "FirstName, LastName, Phone, LifetimeValue\n"
          "2 errors in config/segpush.yaml\n");
}

TEST_CASE_METHOD(CliFixture, "cli: plugins list shows loaded plugins and refused files") {
    const Run list = run(std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR + " plugins list");
    CHECK(list.exit_code == 0);
    CHECK_THAT(list.out, Catch::Contains("c-example") && Catch::Contains(kHostAbi) && Catch::Contains("Refused:") &&
                             Catch::Contains(std::string("wrong_abi.so: built for plugin ABI 2.0, this host speaks ") +
                                             kHostAbiNumber) &&
                             Catch::Contains("two_keys.so: plugin 'broken' declares 2 key fields (SEGPUSH_FIELD_KEY): "
                                             "'user_id', 'email'"));

    const Run json = run(std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR + " plugins list --json");
    rapidjson::Document doc;
    doc.Parse(json.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(doc["loaded"].Size() == 1);
    CHECK(doc["refused"].Size() == 9);

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
    CHECK(unknown.exit_code == 2);
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
                                               std::string("--plugin-dir ") + SEGPUSH_TEST_PLUGIN_DIR + " plugins list",
                                               "config check --json",
                                               "--config typo.yaml config check --json"};
    for (const auto& command : commands) run(command);
    // Also a key written inline, which must be refused without being echoed.
    dir.write("inline.yaml", "plugin_dir: " + std::string(SEGPUSH_PLUGIN_DIR) +
                                 "\nconnections:\n  ac:\n    plugin: activecampaign\n    privacy_consent: true\n"
                                 "    settings: {host: acme.api-us1.com, api_key: " +
                                 kSecret + "}\n");
    const Run inline_key = run("--config inline.yaml config check");
    CHECK(inline_key.exit_code == 2);
    CHECK(run("--config inline.yaml config check --json").exit_code == 2);

    REQUIRE(history.size() == commands.size() + 2);
    for (const auto& result : history) {
        CHECK(result.out.find(kSecret) == std::string::npos);
        CHECK(result.err.find(kSecret) == std::string::npos);
    }
    CHECK_THAT(history[8].err, Catch::Contains("did you mean 'api_key'?"));
    CHECK_THAT(history[8].err, Catch::Contains("without the scheme \"https://\" and the credentials"));
    // The JSON diagnostics say the same, scrubbed the same way.
    CHECK_THAT(history[11].out, Catch::Contains("did you mean 'api_key'?") &&
                                    Catch::Contains("without the scheme \\\"https://\\\" and the credentials"));
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

TEST_CASE_METHOD(CliFixture, "cli: every command refuses an option it does not take, naming the ones it takes") {
    // An option of another command: refused, with what this one takes.
    const std::map<std::string, std::string> not_taken = {
        {"plugins list --limit 5", "plugins list does not take --limit; plugins list takes --plugin-dir DIR, --json"},
        {"config check --dry-run", "config check does not take --dry-run; config check takes --plugin-dir DIR, --json"},
        {"serve --full", "serve does not take --full; serve takes --plugin-dir DIR, --json"},
        {"runs show 1 --limit 3", "runs show does not take --limit; runs show takes --json"},
        {"runs list --plugin-dir x", "runs list does not take --plugin-dir; runs list takes --limit N, --json"},
        {"forget a@example.com --dry-run", "forget does not take --dry-run; forget takes --json"},
        {"plugins describe activecampaign --show 3", "plugins describe does not take --show"},
        {"runs list --allow-mass-change", "runs list does not take --allow-mass-change"},
    };
    for (const auto& [command, message] : not_taken) {
        INFO(command);
        const Run refused = run(command);
        CHECK(refused.exit_code == 2);
        CHECK(refused.out.empty());
        CHECK_THAT(refused.err, Catch::Contains("segpush: " + message) &&
                                    Catch::Contains("(and --config FILE, --log-format FMT, --help, as every command)"));
    }
    // A typo: the closest option of that command.
    const std::map<std::string, std::string> typos = {
        {"export run vip_export --dryrun",
         "export run: unknown option --dryrun (did you mean '--dry-run'?); export run "
         "takes --plugin-dir DIR, --dry-run, --full, --show N, --allow-mass-change, "
         "--retry-rejected, --json"},
        {"runs list --limt 5", "runs list: unknown option --limt (did you mean '--limit'?)"},
        {"config check --jsn", "config check: unknown option --jsn (did you mean '--json'?)"},
        {"export run vip_export --retry-rejeced", "(did you mean '--retry-rejected'?)"},
        // --dry-run is export run's: never suggested to a command that would refuse it.
        {"config check --dryrun", "config check: unknown option --dryrun; config check takes"},
    };
    for (const auto& [command, message] : typos) {
        INFO(command);
        const Run refused = run(command);
        CHECK(refused.exit_code == 2);
        CHECK_THAT(refused.err, Catch::Contains(message));
    }
    CHECK_THAT(run("runs list --limt 5").err, Catch::Contains("Run 'segpush runs list --help' for usage."));
    // Numbers: not a number, negative, or (for --limit) zero.
    for (const std::string value : {"x", "-5", "0", "5x", "99999999999"}) {
        const Run refused = run("runs list --limit " + value);
        INFO(value);
        CHECK(refused.exit_code == 2);
        CHECK_THAT(refused.err,
                   Catch::Contains("--limit needs a whole number of runs, 1 or more (e.g. --limit 50), not '" + value));
    }
    const Run show = run("export run vip_export --dry-run --show -1");
    CHECK(show.exit_code == 2);
    CHECK_THAT(show.err,
               Catch::Contains("--show needs a whole number of members, 0 or more (e.g. --show 10), not '-1'"));
    CHECK_THAT(run("runs list --limit").err, Catch::Contains("--limit needs a value: --limit N"));
    CHECK_THAT(run("runs list --json=yes").err, Catch::Contains("--json takes no value"));
    // What a command takes still works, in either spelling and place.
    const Run limited = run("runs list --limit=3 --json");
    CHECK(limited.exit_code == 0);
    CHECK(limited.out == "[]\n");
    CHECK(run("--json runs list --limit 3").out == "[]\n");
}

TEST_CASE_METHOD(CliFixture, "cli: group help lists the group's commands, one line each") {
    const std::map<std::string, std::vector<std::string>> groups = {
        {"config", {"config check"}},
        {"plugins", {"plugins list", "plugins describe ID"}},
        {"export", {"export run NAME"}},
        {"runs", {"runs list [EXPORT]", "runs show ID"}},
    };
    for (const auto& [group, commands] : groups) {
        INFO(group);
        const Run help = run(group + " --help");
        CHECK(help.exit_code == 0);
        CHECK(help.err.empty());
        CHECK_THAT(help.out, Catch::StartsWith("Usage: segpush [--config FILE] " + group + " COMMAND"));
        std::vector<std::string> listed;
        for (const auto& line : segpush::test::lines_of(help.out)) {
            if (line.rfind("  " + group + " ", 0) == 0) listed.push_back(line);
        }
        REQUIRE(listed.size() == commands.size());
        for (size_t i = 0; i < commands.size(); ++i) {
            CHECK_THAT(listed[i], Catch::StartsWith("  " + commands[i] + "  "));  // then its summary, same line
        }
        CHECK(run("help " + group).out == help.out);
        CHECK(run(group + " -h").out == help.out);
        // No command: the same help, as an error.
        const Run bare = run(group);
        CHECK(bare.exit_code == 2);
        CHECK(bare.out.empty());
        CHECK_THAT(bare.err,
                   Catch::StartsWith("segpush: " + group + " needs a command\n\n") && Catch::EndsWith(help.out));
    }
}

TEST_CASE_METHOD(CliFixture, "cli: every help text fits an 80-column terminal") {
    std::vector<std::string> helps = {"--help", "config --help", "plugins --help", "export --help", "runs --help"};
    for (const std::string command : {"config check", "plugins list", "plugins describe", "export run", "runs list",
                                      "runs show", "serve", "forget"}) {
        helps.push_back(command + " --help");
    }
    for (const auto& command : helps) {
        const Run help = run(command);
        REQUIRE(help.exit_code == 0);
        for (const auto& line : segpush::test::lines_of(help.out)) {
            INFO(command << ": " << line);
            CHECK(segpush::text_columns(line) <= 80);
        }
    }
    // Paragraphs are filled again, not cut: the usage and the option columns keep their places.
    const Run serve = run("serve --help");
    CHECK_THAT(serve.out, Catch::Contains("Usage: segpush [--config FILE] serve [--json]\n") &&
                              Catch::Contains("\n  --json             Once serve is ready,") &&
                              Catch::Contains("\nExit status:\n  0  stopped cleanly\n"));
}

TEST_CASE("cli: plurals, durations and wrapping are worded one way") {
    CHECK(segpush::plural(0, "member") == "0 members");
    CHECK(segpush::plural(1, "member") == "1 member");
    CHECK(segpush::plural(2, "member") == "2 members");
    CHECK(segpush::plural(3, "entry", "entries") == "3 entries");
    CHECK(segpush::duration_text(3.21) == "3.2 s");
    CHECK(segpush::duration_text(59.97) == "1 min 0 s");
    CHECK(segpush::duration_text(65) == "1 min 5 s");
    CHECK(segpush::duration_text(7445) == "2 h 4 min 5 s");
    CHECK(segpush::duration_text(-1) == "0.0 s");
    CHECK(segpush::wrap_text("  --flag   one two three four\n           five six\n", 24) ==
          "  --flag   one two three\n           four five six\n");
    CHECK(segpush::wrap_text("Usage: x [--limit N] [--json]\n       x --help\n", 20) ==
          "Usage: x [--limit N]\n       [--json]\n       x --help\n");
    CHECK(segpush::wrap_text("- a b\n  c d\n\n1. e f\n", 80) == "- a b c d\n\n1. e f\n");
}

TEST_CASE_METHOD(CliFixture, "cli: config check --json gives every diagnostic with its file, line, column and key") {
    dir.write("two.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + R"(
include: [more.yaml]
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
    schedule: "61 * * * *"
)");
    dir.write("more.yaml", R"(exports:
  other_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 4 }
    mapping: { email: Email }
    schedul: "0 3 * * *"
)");
    const Run checked = run("--config two.yaml config check --json");
    CHECK(checked.exit_code == 2);
    CHECK(checked.err.empty());
    rapidjson::Document doc;
    doc.Parse(checked.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(doc["valid"].IsFalse());
    CHECK(doc["errors"].GetInt() == 2);
    CHECK(doc["warnings"].GetInt() == 0);
    REQUIRE(doc["diagnostics"].Size() == 2);
    std::map<std::string, const rapidjson::Value*> by_file;
    for (const auto& item : doc["diagnostics"].GetArray()) by_file[item["file"].GetString()] = &item;
    REQUIRE(by_file.count("two.yaml"));
    REQUIRE(by_file.count("more.yaml"));
    const auto& schedule = *by_file["two.yaml"];
    CHECK(std::string(schedule["severity"].GetString()) == "error");
    CHECK(schedule["line"].GetInt() == 18);
    CHECK(schedule["column"].GetInt() == 15);
    CHECK(std::string(schedule["key"].GetString()) == "exports.vip_export.schedule");
    CHECK(std::string(schedule["message"].GetString()) == "minute '61' is not valid (allowed 0-59)");
    const auto& typo = *by_file["more.yaml"];
    CHECK(std::string(typo["severity"].GetString()) == "error");
    CHECK(typo["line"].GetInt() == 7);
    CHECK(typo["column"].GetInt() == 5);
    CHECK(std::string(typo["key"].GetString()) == "exports.other_export.schedul");
    CHECK_THAT(typo["message"].GetString(), Catch::StartsWith("unknown key 'schedul' (did you mean 'schedule'?)"));

    const Run good = run("config check --json");
    CHECK(good.exit_code == 0);
    doc.Parse(good.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(doc["valid"].IsTrue());
    CHECK(doc["errors"].GetInt() == 0);
    CHECK(doc["diagnostics"].Empty());

    // A file that cannot be read: the whole file is at fault, no line.
    const Run missing = run("--config nowhere.yaml config check --json");
    CHECK(missing.exit_code == 2);
    doc.Parse(missing.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    REQUIRE(doc["diagnostics"].Size() == 1);
    CHECK(doc["diagnostics"][0]["line"].IsNull());
    CHECK(doc["diagnostics"][0]["column"].IsNull());
}

TEST_CASE_METHOD(CliFixture, "cli: serve --json prints what it serves once it is ready") {
    dir.write("serve.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + R"(
serve: { listen: "127.0.0.1:0" }
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
  nightly:
    connection: ac
    segments: [vip]
    settings: { list_id: 3 }
    mapping: { email: Email }
    schedule: "0 3 * * *"
    timezone: Europe/Paris
  on_arrival:
    connection: ac
    segments: [vip]
    settings: { list_id: 3 }
    mapping: { email: Email }
    schedule: on_change
    settle_seconds: 2
  by_hand:
    connection: ac
    segments: [vip]
    settings: { list_id: 3 }
    mapping: { email: Email }
)");
    const std::string out_file = dir.file("serve.out"), err_file = dir.file("serve.err");
    segpush::test::BackgroundProcess serve({SEGPUSH_BINARY, "--config", dir.file("serve.yaml"), "serve", "--json"},
                                           out_file, err_file, {std::string("AC_API_KEY=") + kSecret});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);  // a watchdog only
    while (read_file(out_file).find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline &&
           serve.running()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const std::string start = read_file(out_file);
    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
    INFO(start << read_file(err_file));
    REQUIRE(segpush::test::lines_of(start).size() == 1);  // one object, one line
    rapidjson::Document doc;
    doc.Parse(start.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(std::string(doc["config"].GetString()) == dir.file("serve.yaml"));
    CHECK(doc["pid"].GetInt() == serve.pid());
    CHECK_THAT(doc["listen"].GetString(), Catch::Matches(R"(127\.0\.0\.1:[1-9][0-9]*)"));
    REQUIRE(doc["exports"].Size() == 2);  // by_hand has no schedule
    std::map<std::string, const rapidjson::Value*> exports;
    for (const auto& item : doc["exports"].GetArray()) exports[item["name"].GetString()] = &item;
    const auto& nightly = *exports.at("nightly");
    CHECK(std::string(nightly["schedule"].GetString()) == "0 3 * * *");
    CHECK(std::string(nightly["timezone"].GetString()) == "Europe/Paris");
    // 03:00 in Paris is 01:00 or 02:00 UTC, by the season.
    CHECK_THAT(nightly["next_run"].GetString(), Catch::Matches(R"(\d{4}-\d\d-\d\dT0[12]:00:00Z)"));
    CHECK_FALSE(nightly.HasMember("segment_files"));
    const auto& on_arrival = *exports.at("on_arrival");
    CHECK(std::string(on_arrival["schedule"].GetString()) == "on_change");
    CHECK(std::string(on_arrival["timezone"].GetString()) == "UTC");
    CHECK(on_arrival["next_run"].IsNull());
    REQUIRE(on_arrival["segment_files"].Size() == 1);
    CHECK(std::string(on_arrival["segment_files"][0].GetString()) == dir.file("vip.csv"));
    CHECK(on_arrival["settle_seconds"].GetInt() == 2);
    // The log goes on as JSON lines, since no format was asked for.
    const std::string log = read_file(err_file);
    CHECK_THAT(log, Catch::StartsWith("{\"time\":") && Catch::Contains("serve: stopping"));
    CHECK(start.find(kSecret) == std::string::npos);
    CHECK(log.find(kSecret) == std::string::npos);
}

TEST_CASE_METHOD(CliFixture, "cli: a name or id that does not exist exits 2 with the closest one") {
    const Run list = run("runs list vip_exprt");
    CHECK(list.exit_code == 2);
    CHECK(list.out.empty());
    CHECK_THAT(list.err, Catch::Contains("no export named 'vip_exprt' in segpush.yaml or in the run history (did you "
                                         "mean 'vip_export'?) (exports: vip_export)"));
    CHECK(run("runs list vip_exprt --json").exit_code == 2);
    // An export of the configuration without runs is no mistake.
    const Run none = run("runs list vip_export");
    CHECK(none.exit_code == 0);
    CHECK_THAT(none.out, Catch::StartsWith("No runs yet of export vip_export"));

    const Run show = run("runs show 99999");
    CHECK(show.exit_code == 2);
    CHECK_THAT(show.err, Catch::Contains("no run #99999 in ") && Catch::Contains("(no runs yet)"));
    CHECK(run("runs show 99999 --json").exit_code == 2);

    // An abbreviation of a plugin id, or the name of the connection that uses it.
    const Run describe = run("plugins describe ac");
    CHECK(describe.exit_code == 2);
    CHECK_THAT(describe.err, Catch::Contains("no plugin with id 'ac' (did you mean 'activecampaign'?)"));
    dir.write("crm.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR +
                              "\nconnections:\n  crm:\n    plugin: activecampaign\n");
    const Run connection = run("--config crm.yaml plugins describe crm");
    CHECK(connection.exit_code == 2);
    CHECK_THAT(connection.err, Catch::Contains("(did you mean 'activecampaign', the plugin of connection crm?)"));

    const Run export_run = run("export run vip_exprt");
    CHECK(export_run.exit_code == 2);
    CHECK_THAT(export_run.err,
               Catch::Contains("no export named 'vip_exprt' in segpush.yaml (did you mean 'vip_export'?)"));
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
