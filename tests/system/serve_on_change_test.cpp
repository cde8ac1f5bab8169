// `segpush serve` with schedule: on_change: an export runs when its segment is published
// (renamed into place) or rewritten, once the file has settled, never on a half-written file.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "system/serve_support.hpp"

using namespace segpush::test;

TEST_CASE("serve: schedule: on_change runs an export on each published segment, never on a half-written one") {
    ExportFixture fixture;
    fixture.dir.write("vip.csv", to_csv(make_profiles(5)));
    std::filesystem::create_directories(fixture.dir.file("out"));
    fixture.dir.write("segpush.yaml", fixture.config_yaml("  vip: { path: vip.csv }\n", R"(  fresh:
    connection: files
    segments: [vip]
    settings: { path: "fresh.csv" }
    mapping: { email: Email }
    schedule: on_change
    settle_seconds: 2
)",
                                                          "",
                                                          "  files:\n    plugin: file\n    privacy_consent: true\n    "
                                                          "settings: { directory: \"" +
                                                              fixture.dir.file("out") + "\" }\n") +
                                          "serve:\n  listen: 127.0.0.1:0\n");
    const Run check = fixture.segpush("config check");
    REQUIRE(check.exit_code == 0);

    const std::string log_file = fixture.dir.file("serve.err");
    BackgroundProcess serve(fixture.segpush_argv("serve"), fixture.dir.file("serve.out"), log_file, fixture.env());
    auto require_eventually = [&](const char* what, const std::function<bool()>& done) {
        if (!eventually(done, std::chrono::seconds(30))) FAIL(what << "\n" << read_file(log_file));
    };
    require_eventually("serve watches the segment", [&] {
        return read_file(log_file).find("export fresh runs when its segment files change") != std::string::npos;
    });
    // Starting serve runs nothing: the segment as it is was there before.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    CHECK(newest_runs(fixture).empty());

    // Published the documented way: written beside it, renamed into place.
    fixture.dir.write("vip.csv.tmp", to_csv(make_profiles(7)));
    std::filesystem::rename(fixture.dir.file("vip.csv.tmp"), fixture.dir.file("vip.csv"));
    require_eventually("the published segment runs", [&] {
        const auto runs = newest_runs(fixture);
        return runs.count("fresh") && runs.at("fresh").status == "succeeded";
    });
    CHECK(newest_runs(fixture)["fresh"].rows_read == 7);

    // Rewritten in place by a writer that pauses (0.3 s, well under settle_seconds) between rows: no run
    // until it is done, then one run that reads every row.
    const std::string rows = to_csv(make_profiles(40, 100));
    {
        std::ofstream segment(fixture.dir.file("vip.csv"), std::ios::binary | std::ios::trunc);
        std::istringstream lines(rows);
        int written = 0;
        for (std::string line; std::getline(lines, line); ++written) {
            segment << line << "\n" << std::flush;
            if (written % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        }
    }
    require_eventually("the rewritten segment runs", [&] {
        const RunSeen newest = newest_runs(fixture)["fresh"];
        return newest.status == "succeeded" && newest.rows_read == 40;
    });
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const Run list = fixture.segpush("runs list --json");
    INFO(list.out << read_file(log_file));
    rapidjson::Document runs;
    runs.Parse(list.out.c_str());
    REQUIRE(runs.IsArray());
    CHECK(runs.Size() == 2);  // one run per version, none on a part of one
    CHECK(newest_runs(fixture)["fresh"].rows_read == 40);
    CHECK_THAT(read_file(fixture.dir.file("out/fresh.csv")), Catch::Contains("member139@example.com"));

    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
    CHECK_THAT(read_file(log_file), Catch::Contains("changed and has settled; run starting"));
}
