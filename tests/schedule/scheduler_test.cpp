// serve's scheduler: each export at its scheduled time, never two runs of one export at once.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <ctime>
#include <mutex>

#include "schedule/scheduler.hpp"

using namespace segpush;
using Clock = Scheduler::Clock;

namespace {

Clock::time_point utc(int hour, int minute) {
    std::tm when{};
    when.tm_year = 2026 - 1900;
    when.tm_mon = 0;
    when.tm_mday = 15;
    when.tm_hour = hour;
    when.tm_min = minute;
    return Clock::from_time_t(timegm(&when));
}

ExportConfig scheduled(const std::string& name, const std::string& schedule) {
    ExportConfig exp;
    exp.name = name;
    exp.schedule = schedule;
    return exp;
}

// Runs that wait until released, so a test can hold one "still going".
struct Runs {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::string> started;
    bool released = false;

    void run(const ExportConfig& exp) {
        std::unique_lock<std::mutex> lock(mutex);
        started.push_back(exp.name);
        changed.notify_all();
        changed.wait(lock, [this] { return released; });
    }
    void wait_for(size_t count) {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return started.size() >= count; });
    }
    size_t count() {
        std::lock_guard<std::mutex> lock(mutex);
        return started.size();
    }
    void release() {
        std::lock_guard<std::mutex> lock(mutex);
        released = true;
        changed.notify_all();
    }
};

}  // namespace

TEST_CASE("scheduler: an export runs at its time, not before, and is not started again while its run goes on") {
    const std::vector<ExportConfig> exports{scheduled("hourly", "0 * * * *"), scheduled("on_demand", ""),
                                            scheduled("broken", "61 * * * *")};
    Runs runs;
    Scheduler scheduler(
        exports, [&](const ExportConfig& exp) { runs.run(exp); }, utc(10, 30));
    REQUIRE_FALSE(scheduler.empty());

    scheduler.start_due(utc(10, 59));  // starting serve runs nothing; 11:00 has not come
    CHECK(runs.count() == 0);
    scheduler.start_due(utc(11, 0));
    runs.wait_for(1);
    CHECK(runs.started == std::vector<std::string>{"hourly"});

    scheduler.start_due(utc(12, 0));  // the 11:00 run is still going: 12:00 is skipped
    CHECK(runs.count() == 1);
    runs.release();
    scheduler.wait_for_runs();
    scheduler.start_due(utc(12, 30));  // 12:00 was skipped, not postponed
    CHECK(runs.count() == 1);
    scheduler.start_due(utc(13, 0));
    runs.wait_for(2);
    scheduler.wait_for_runs();
    CHECK(runs.started == std::vector<std::string>{"hourly", "hourly"});
}

TEST_CASE("scheduler: exports without a valid schedule leave nothing to serve") {
    const std::vector<ExportConfig> exports{scheduled("on_demand", ""), scheduled("broken", "0 25 * * *")};
    Scheduler scheduler(
        exports, [](const ExportConfig&) { FAIL("nothing may run"); }, utc(10, 0));
    CHECK(scheduler.empty());
}
