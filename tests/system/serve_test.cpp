// `segpush serve` runs exports on their schedules: one to ActiveCampaign (the sandbox) and
// one to files in the same process, and goes on when another export fails.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/export_fixture.hpp"

using namespace segpush::test;

TEST_CASE(
    "serve: every-minute schedules run an ActiveCampaign export and a file export, a failing one does not stop them") {
    Sandbox::Options options;
    options.config_json = R"({"rate_scale": 20})";
    ExportFixture fixture(options);
    const auto profiles = make_profiles(300);
    fixture.write_segment(profiles);
    fixture.dir.write("segpush.yaml", fixture.config_yaml(R"(  vip: { path: vip.csv }
)",
                                                          R"(  to_ac:
    connection: ac
    segments: [vip]
    settings: { list_id: 1 }
    mapping: { email: Email, first_name: FirstName, last_name: LastName, phone: Phone }
    schedule: "* * * * *"
  to_file:
    connection: files
    segments: [vip]
    settings: { path: "vip.csv" }
    mapping: { email: Email, first_name: FirstName }
    schedule: "* * * * *"
    timezone: Europe/Paris
  broken:
    connection: ac
    segments: [vip]
    settings: { list_id: 404 }
    mapping: { email: Email }
    schedule: "* * * * *"
)",
                                                          "", R"(  files:
    plugin: file
    privacy_consent: true
    settings: { directory: ")" + fixture.dir.file("out") + R"(" }
)"));
    std::filesystem::create_directories(fixture.dir.file("out"));
    // Saving the configuration runs nothing: serve waits for the next whole minute.
    BackgroundProcess serve(fixture.segpush_argv("serve"), fixture.dir.file("serve.out"), fixture.dir.file("serve.err"),
                            fixture.env());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    REQUIRE(serve.running());

    auto finished_runs = [&] {
        const Run list = fixture.segpush("runs list --json");
        rapidjson::Document runs;
        runs.Parse(list.out.c_str());
        std::map<std::string, std::string> status;
        if (runs.IsArray()) {
            for (const auto& run : runs.GetArray()) {
                const std::string name = run["export"].GetString();
                const std::string state = run["status"].GetString();
                if (state != "running" && !status.count(name)) status[name] = state;
            }
        }
        return status;
    };
    std::map<std::string, std::string> status;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(100);
    while (std::chrono::steady_clock::now() < deadline && serve.running()) {
        status = finished_runs();
        if (status.size() == 3) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
    const std::string log = read_file(fixture.dir.file("serve.err"));
    INFO(log);
    REQUIRE(status.size() == 3);
    CHECK(status["to_ac"] == "succeeded");
    CHECK(status["to_file"] == "succeeded");
    CHECK(status["broken"] == "failed_permanently");
    CHECK_THAT(log, Catch::Contains("export to_ac runs on \"* * * * *\" (UTC)") && Catch::Contains("(Europe/Paris)") &&
                        Catch::Contains("scheduled run starting") && Catch::Contains("404"));
    CHECK(fixture.sandbox.members(1).size() == profiles.size());
    const std::string written = read_file(fixture.dir.file("out/vip.csv"));
    CHECK_THAT(written, Catch::Contains("member0@example.com") && Catch::Contains("member299@example.com"));
    CHECK(log.find(fixture.sandbox.api_key()) == std::string::npos);
}

TEST_CASE("serve: refuses to start without any schedule, saying how to add one") {
    Sandbox::Options options;
    ExportFixture fixture(options);
    fixture.write_segment(make_profiles(1));
    fixture.write_config();
    const Run run = fixture.segpush("serve");
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("no export has a schedule") && Catch::Contains("schedule: \"0 3 * * *\""));
}
