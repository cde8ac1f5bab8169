// The host killed with SIGKILL ten times at random points of one export (seeded; set
// SEGPUSH_KILL_SEED to replay a seed), then a final run: the list is exactly the valid part.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "reliability/reliability_support.hpp"

using namespace segpush::test;
using namespace segpush::test::reliability;

TEST_CASE("kill: SIGKILL ten times at random points of one export, then the list is exact") {
    const char* given = std::getenv("SEGPUSH_KILL_SEED");
    const uint32_t seed = given && *given ? static_cast<uint32_t>(std::stoul(given)) : std::random_device{}();
    std::cout << "reliability kill test: seed " << seed << " (replay with SEGPUSH_KILL_SEED=" << seed << ")"
              << std::endl;
    INFO("seed " << seed);
    std::mt19937 rng(seed);

    // Slower than the other tests (50 ms per request, 20 bulk imports a second) so ten kills
    // land inside one 30,000-profile export.
    ExportFixture fixture(fast_sandbox(false, R"("latency_ms": 50)"));
    Segment segment = make_segment(30000);
    mark_destination_rejected(segment, kRefusedEmails);
    fixture.dir.write("vip.csv", to_csv(segment.rows));
    ConfigOptions config;
    config.connection_extra = "";
    write_config(fixture, config);
    // Pace at 1,200 bulk imports a minute instead of the suite's 4,000.
    std::string text = config_text(fixture, config);
    text.replace(text.find("bulk_requests_per_minute: 4000"), 30, "bulk_requests_per_minute: 1200");
    fixture.dir.write("segpush.yaml", text);

    const char* const bulk = "POST /api/3/import/bulk_import";
    for (int kill = 1; kill <= 10; ++kill) {
        const bool by_count = rng() % 2 == 0;
        const long long after = 1 + static_cast<long long>(rng() % 8);   // bulk requests
        const auto delay = std::chrono::milliseconds(50 + rng() % 700);  // or time
        const long long start = fixture.sandbox.route_count(bulk);
        BackgroundProcess run(fixture.segpush_argv("export run vip_export"), fixture.dir.file("kill.out"),
                              fixture.dir.file("kill.err"), fixture.env());
        if (by_count) {
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (run.running() && fixture.sandbox.route_count(bulk) - start < after &&
                   std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        } else {
            std::this_thread::sleep_for(delay);
        }
        INFO("kill " << kill
                     << (by_count ? " after " + std::to_string(after) + " bulk requests"
                                  : " after " + std::to_string(delay.count()) + " ms"));
        const bool was_running = run.running();
        run.signal(SIGKILL);
        const int code = run.wait();
        const Run output{code, read_file(fixture.dir.file("kill.out")), read_file(fixture.dir.file("kill.err"))};
        fixture.history.push_back(output);
        INFO(output.out << output.err);
        REQUIRE(was_running);  // the export must not have finished before its tenth kill
        CHECK(code == -SIGKILL);
        std::cout << "  kill " << kill << ": "
                  << (by_count ? "after " + std::to_string(after) + " bulk requests"
                               : "after " + std::to_string(delay.count()) + " ms")
                  << ", bulk requests so far " << fixture.sandbox.route_count(bulk) << std::endl;
    }
    const Run last = fixture.segpush("export run vip_export");
    INFO(last.out << last.err);
    REQUIRE(last.exit_code == 3);  // succeeded_with_rejections: the segment's refused rows
    require_list_exact(fixture.sandbox, segment.valid);
    check_accounting(fixture, segment);
    const Run history = fixture.segpush("runs list vip_export --limit 20");
    CHECK_THAT(history.out, Catch::Contains("interrupted"));
    check_no_secret_anywhere(fixture);
}
