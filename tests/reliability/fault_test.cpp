// Faults injected in the sandbox while a 20,000-profile export runs. Each scenario may end its
// first run failed_will_retry (temporary trouble outlasted the retries) but never
// failed_permanently; a second run then finishes, and the list is exactly the valid part of
// the segment with every rejected record accounted for.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "reliability/reliability_support.hpp"

using namespace segpush::test;
using namespace segpush::test::reliability;

namespace {

constexpr size_t kProfiles = 20000;

struct Scenario {
    Sandbox::Options sandbox = fast_sandbox();
    ConfigOptions config;
    long long after_bulk = 10;  // inject once this many bulk imports were sent
    std::function<void(ExportFixture&)> fault;
    std::function<void(ExportFixture&)> before_second_run;  // e.g. unstick imports
    bool must_need_second_run = false;
};

void run_scenario(Scenario scenario) {
    ExportFixture fixture(scenario.sandbox);
    Segment segment = make_segment(kProfiles);
    mark_destination_rejected(segment, kRefusedEmails);
    fixture.dir.write("vip.csv", to_csv(segment.rows));
    write_config(fixture, scenario.config);

    const auto started = std::chrono::steady_clock::now();
    const Run first = run_with_fault(fixture, scenario.after_bulk, [&] { scenario.fault(fixture); });
    INFO("first run:\n" << first.out << first.err);
    REQUIRE_FALSE(ended_by_signal(first.exit_code));
    CHECK(first.err.find("internal error") == std::string::npos);
    const auto first_record = latest_run(fixture);
    const std::string first_status = status_of(first_record);
    INFO("first run status " << first_status << ": " << first_record["error"].GetString());
    // The segment has rows refused before sending and by the destination: a run that gets to its
    // end says so (exit 3).
    REQUIRE((first_status == "succeeded_with_rejections" || first_status == "failed_will_retry"));
    CHECK(first.exit_code == (first_status == "succeeded_with_rejections" ? 3 : 1));
    if (scenario.must_need_second_run) CHECK(first_status == "failed_will_retry");

    if (first_status != "succeeded_with_rejections") {
        if (scenario.before_second_run) scenario.before_second_run(fixture);
        const Run second = fixture.segpush("export run vip_export");
        INFO("second run:\n" << second.out << second.err);
        REQUIRE(second.exit_code == 3);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    WARN("first run " << first_status << ", " << seconds << " s in all; bulk requests "
                      << fixture.sandbox.route_count("POST /api/3/import/bulk_import"));
    require_list_exact(fixture.sandbox, segment.valid);
    check_accounting(fixture, segment);
    check_no_secret_anywhere(fixture);
}

}  // namespace

TEST_CASE("faults: a 429 storm mid-export") {
    Scenario scenario;
    scenario.fault = [](ExportFixture& f) { f.sandbox.configure(R"({"storm_429": 25, "retry_after_seconds": 1})"); };
    run_scenario(scenario);
}

TEST_CASE("faults: bursts of 500, 502 and 503 mid-export") {
    Scenario scenario;
    scenario.fault = [](ExportFixture& f) {
        f.sandbox.configure(R"({"error_rates": {"500": 0.25, "502": 0.15, "503": 0.15}, "seed": 11})");
        std::this_thread::sleep_for(std::chrono::seconds(3));
        f.sandbox.configure(R"({"error_rates": {}})");
    };
    run_scenario(scenario);
}

TEST_CASE("faults: dropped connections mid-export") {
    Scenario scenario;
    scenario.fault = [](ExportFixture& f) {
        f.sandbox.configure(R"({"drop_rate": 0.25, "seed": 5})");
        std::this_thread::sleep_for(std::chrono::seconds(3));
        f.sandbox.configure(R"({"drop_rate": 0.0})");
    };
    run_scenario(scenario);
}

TEST_CASE("faults: responses slower than the plugin's timeout") {
    Scenario scenario;  // timeout_seconds is 5 (the schema's minimum) in the suite's config
    scenario.fault = [](ExportFixture& f) { f.sandbox.configure(R"({"slow_ms": 6500, "slow_count": 6})"); };
    run_scenario(scenario);
}

TEST_CASE("faults: the sandbox restarts mid-export and keeps its contacts") {
    Scenario scenario;
    scenario.sandbox = fast_sandbox(true);
    scenario.fault = [](ExportFixture& f) {
        f.sandbox.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        f.sandbox.start();
    };
    run_scenario(scenario);
}

TEST_CASE("faults: stuck imports outlast the poll budget, then come unstuck") {
    Scenario scenario;
    scenario.config.connection_extra = "      import_poll_budget_seconds: 3\n";
    scenario.after_bulk = 20;
    scenario.must_need_second_run = true;
    scenario.fault = [](ExportFixture& f) { f.sandbox.configure(R"({"stuck_imports": true})"); };
    scenario.before_second_run = [](ExportFixture& f) { f.sandbox.configure(R"({"stuck_imports": false})"); };
    run_scenario(scenario);
}

TEST_CASE("faults: failed imports") {
    Scenario scenario;  // plus, as in every scenario, three contacts the destination refuses
    scenario.fault = [](ExportFixture& f) { f.sandbox.configure(R"({"fail_next_imports": 6})"); };
    run_scenario(scenario);
}
