// `segpush serve` reads its configuration again on SIGHUP: a bad one is reported and the running
// one goes on; a good one takes over while a run already going finishes under the old one.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "system/serve_support.hpp"

using namespace segpush::test;

namespace {

// The file plugin writing into out/, a FIFO segment (a run reading it goes on until the test
// writes it) and a plain one; serve's endpoint on a free port.
std::string reload_config(ExportFixture& fixture, const std::string& exports) {
    return fixture.config_yaml(
               "  held: { path: held.fifo, source: csv, fifo_timeout_seconds: 120 }\n  vip: { path: vip.csv }\n",
               exports, "",
               "  files:\n    plugin: file\n    privacy_consent: true\n    settings: { directory: \"" +
                   fixture.dir.file("out") + "\" }\n") +
           "serve:\n  listen: 127.0.0.1:0\n";
}

}  // namespace

TEST_CASE(
    "serve: SIGHUP with a bad configuration keeps the running one, a good one takes over after the run going on") {
    ExportFixture fixture;
    fixture.dir.write("vip.csv", to_csv(make_profiles(5)));
    REQUIRE(mkfifo(fixture.dir.file("held.fifo").c_str(), 0600) == 0);
    std::filesystem::create_directories(fixture.dir.file("out"));
    // catch_up: no run was ever recorded, so "first" runs at start and waits on its FIFO.
    fixture.dir.write("segpush.yaml", reload_config(fixture, R"(  first:
    connection: files
    segments: [held]
    settings: { path: "first.csv" }
    mapping: { email: Email }
    schedule: "* * * * *"
    catch_up: true
)"));
    const std::string log_file = fixture.dir.file("serve.err");
    BackgroundProcess serve(fixture.segpush_argv("serve"), fixture.dir.file("serve.out"), log_file, fixture.env());
    // Waits for `done`, a watchdog proving it happens at all; on failure shows serve's log.
    auto require_eventually = [&](const char* what, const std::function<bool()>& done, int watchdog_seconds) {
        if (!eventually(done, std::chrono::seconds(watchdog_seconds))) FAIL(what << "\n" << read_file(log_file));
    };
    require_eventually(
        "first runs at start", [&] { return newest_runs(fixture)["first"].status == "running"; }, 20);
    CHECK_THAT(read_file(log_file), Catch::Contains("catch_up runs it now"));

    // A bad configuration: its errors are logged where config check puts them, nothing changes.
    const std::string bad = reload_config(fixture, R"(  first:
    connection: files
    segments: [held]
    settings: { path: "first.csv" }
    mapping: { email: Email }
    schedule: "61 * * * *"
    catch_up: maybe
)");
    fixture.dir.write("segpush.yaml", bad);
    serve.signal(SIGHUP);
    require_eventually(
        "the bad configuration is refused",
        [&] { return read_file(log_file).find("was not taken") != std::string::npos; }, 20);
    const Run check = fixture.segpush("config check");
    CHECK(check.exit_code != 0);
    const std::string log = read_file(log_file);
    INFO(log);
    // Every error config check prints (file:line:col) is in serve's log too.
    size_t errors = 0;
    std::istringstream check_lines(check.err);
    for (std::string line; std::getline(check_lines, line);) {
        if (line.find(": error: ") == std::string::npos) continue;
        ++errors;
        CHECK_THAT(log, Catch::Contains(line));
    }
    CHECK(errors >= 2);
    CHECK_THAT(log, Catch::Contains("segpush.yaml:") && Catch::Contains("exports.first.schedule") &&
                        Catch::Contains("exports.first.catch_up"));
    CHECK(serve.running());

    // A good one: "first" now reads vip.csv, and "second" is new.
    fixture.dir.write("segpush.yaml", reload_config(fixture, R"(  first:
    connection: files
    segments: [vip]
    settings: { path: "first_v2.csv" }
    mapping: { email: Email }
    schedule: "* * * * *"
  second:
    connection: files
    segments: [vip]
    settings: { path: "second.csv" }
    mapping: { email: Email }
    schedule: "* * * * *"
)"));
    serve.signal(SIGHUP);
    require_eventually(
        "the good configuration is taken",
        [&] { return read_file(log_file).find("the new configuration is running") != std::string::npos; }, 20);
    CHECK_THAT(read_file(log_file), Catch::Contains("serve: export second runs on \"* * * * *\""));
    CHECK(newest_runs(fixture)["first"].status == "running");

    // The run going on still reads the FIFO of the configuration it started with.
    {
        std::ofstream fifo(fixture.dir.file("held.fifo"));
        fifo << to_csv(make_profiles(3, 100));
    }
    require_eventually(
        "the run going on finishes", [&] { return newest_runs(fixture)["first"].status == "succeeded"; }, 30);
    CHECK(newest_runs(fixture)["first"].rows_read == 3);
    CHECK_THAT(read_file(fixture.dir.file("out/first.csv")), Catch::Contains("member100@example.com"));

    // At the next whole minute both run under the new configuration.
    require_eventually(
        "both exports run under the new configuration",
        [&] {
            auto runs = newest_runs(fixture);
            return runs["second"].status == "succeeded" && runs["first"].status == "succeeded" &&
                   runs["first"].rows_read == 5;
        },
        90);
    CHECK_THAT(read_file(fixture.dir.file("out/second.csv")), Catch::Contains("member4@example.com"));
    CHECK_THAT(read_file(fixture.dir.file("out/first_v2.csv")), Catch::Contains("member4@example.com"));

    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
}
