// Cancelled means cancelled at every stage: SIGINT while the run waits for ActiveCampaign to
// finish its bulk imports (the sandbox keeps them stuck) ends the run `cancelled`, with every
// receipt kept, and the next run confirms those imports instead of sending them again.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <thread>

#include "reliability/reliability_support.hpp"

using namespace segpush::test;
using namespace segpush::test::reliability;

namespace {

const char* const kBulk = "POST /api/3/import/bulk_import";
const char* const kImportInfo = "GET /api/3/import/info";

// Waits up to `limit` for `done`; false when it never came.
bool wait_for(const std::function<bool()>& done, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

}  // namespace

TEST_CASE("cancel: SIGINT while the run waits for the destination's imports ends it cancelled, and resumable") {
    ExportFixture fixture(fast_sandbox(false, R"("stuck_imports": true)"));
    Segment segment = make_segment(1000);  // 990 valid members: 4 bulk imports
    mark_destination_rejected(segment, {"member5@example.com"});
    fixture.dir.write("vip.csv", to_csv(segment.rows));
    ConfigOptions config;
    // Far longer than the test: only the signal can end the wait.
    config.connection_extra = "      import_poll_budget_seconds: 600\n";
    write_config(fixture, config);

    BackgroundProcess process(fixture.segpush_argv("export run vip_export"), fixture.dir.file("cancel.out"),
                              fixture.dir.file("cancel.err"), fixture.env());
    REQUIRE(wait_for([&] { return fixture.sandbox.route_count(kBulk) >= 4 || !process.running(); },
                     std::chrono::seconds(60)));
    // Every import was requested: the run is now polling their status until they finish,
    // which the stuck imports never do.
    const long long polls = fixture.sandbox.route_count(kImportInfo);
    REQUIRE(wait_for([&] { return fixture.sandbox.route_count(kImportInfo) >= polls + 3 || !process.running(); },
                     std::chrono::seconds(30)));
    REQUIRE(process.running());
    process.signal(SIGINT);
    const bool ended = wait_for([&] { return !process.running(); }, std::chrono::seconds(30));
    if (!ended) process.signal(SIGKILL);
    const Run cancelled{process.wait(), read_file(fixture.dir.file("cancel.out")),
                        read_file(fixture.dir.file("cancel.err"))};
    fixture.history.push_back(cancelled);
    INFO(cancelled.out << cancelled.err);
    REQUIRE(ended);
    CHECK(cancelled.exit_code == 1);
    CHECK_THAT(cancelled.out, Catch::Contains("cancelled"));
    const auto first = latest_run(fixture);
    CHECK(status_of(first) == "cancelled");
    CHECK_THAT(std::string(first["error"].GetString()),
               Catch::Contains("cancelled while waiting for the destination to finish its imports"));
    CHECK(count_of(first, "accepted") == 0);  // nothing was confirmed: the imports are still stuck
    // Sent, and waiting for the destination: pending, which the next run learns (resumed).
    CHECK(count_of(first, "sent") > 0);
    CHECK(count_of(first, "pending") == count_of(first, "sent") - count_of(first, "rejected"));
    CHECK(fixture.sandbox.route_count(kBulk) == 4);

    // The imports finish at last; the next run confirms them through their receipts and sends
    // nobody again.
    fixture.sandbox.configure(R"({"stuck_imports": false})");
    fixture.clear_request_log();
    const Run resumed = fixture.segpush("export run vip_export");
    INFO(resumed.out << resumed.err);
    REQUIRE(resumed.exit_code == 3);  // succeeded_with_rejections: the segment's refused rows
    CHECK(fixture.records_sent() == 0);
    CHECK(count_of(latest_run(fixture), "sent") == 0);
    CHECK(count_of(latest_run(fixture), "resumed") == count_of(first, "pending"));
    CHECK(fixture.sandbox.route_count(kBulk) == 4);  // the counts are not cleared with the request log
    require_list_exact(fixture.sandbox, segment.valid);
    check_accounting(fixture, segment);
    check_no_secret_anywhere(fixture);
}
