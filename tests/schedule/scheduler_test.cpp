// serve's scheduler: each export at its scheduled time, never two runs of one export at once.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <thread>

#include "schedule/scheduler.hpp"
#include "support/temp_dir.hpp"

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
        exports,
        [&](const ExportConfig& exp, const std::string&) {
            runs.run(exp);
            return std::optional<Scheduler::RunOutcome>(Scheduler::RunOutcome{});
        },
        utc(10, 30));
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

TEST_CASE("scheduler: each run names its occasion alike in every replica, and start_now runs an idle export at once") {
    const std::vector<ExportConfig> exports{scheduled("hourly", "0 * * * *"), scheduled("daily", "0 3 * * *")};
    Runs runs;
    std::vector<std::string> occasions;
    Scheduler scheduler(
        exports,
        [&](const ExportConfig& exp, const std::string& occasion) {
            {
                std::lock_guard<std::mutex> lock(runs.mutex);
                occasions.push_back(exp.name + ": " + occasion);
            }
            runs.run(exp);
            return std::optional<Scheduler::RunOutcome>(Scheduler::RunOutcome{});
        },
        utc(10, 30));
    scheduler.start_due(utc(11, 0) + std::chrono::milliseconds(700));  // a replica polling late still names 11:00
    runs.wait_for(1);
    CHECK_FALSE(scheduler.start_now("hourly", "resume run #7"));  // still going
    CHECK_FALSE(scheduler.start_now("not-scheduled-here", "resume run #8"));
    CHECK(scheduler.start_now("daily", "resume run #9"));
    runs.wait_for(2);
    runs.release();
    scheduler.wait_for_runs();
    scheduler.start_due(utc(11, 1));  // start_now moved no scheduled time: daily still waits for 03:00
    std::lock_guard<std::mutex> lock(runs.mutex);
    CHECK(occasions == std::vector<std::string>{"hourly: schedule 2026-01-15T11:00:00Z", "daily: resume run #9"});
}

TEST_CASE("scheduler: exports without a valid schedule leave nothing to serve") {
    const std::vector<ExportConfig> exports{scheduled("on_demand", ""), scheduled("broken", "0 25 * * *")};
    Scheduler scheduler(
        exports,
        [](const ExportConfig&, const std::string&) -> std::optional<Scheduler::RunOutcome> {
            FAIL("nothing may run");
            return std::nullopt;
        },
        utc(10, 0));
    CHECK(scheduler.empty());
}

namespace {

// A run that ends at once with the outcome the test sets, recording when (the test's clock) it ran.
struct ScriptedRuns {
    std::mutex mutex;
    Clock::time_point now;
    Scheduler::RunOutcome outcome{RunStatus::failed_permanent, "the API key was refused"};
    std::vector<std::pair<std::string, Clock::time_point>> started;

    Scheduler::RunExport runner() {
        return [this](const ExportConfig& exp, const std::string&) -> std::optional<Scheduler::RunOutcome> {
            std::lock_guard<std::mutex> lock(mutex);
            started.emplace_back(exp.name, now);
            return outcome;
        };
    }
    // Every whole hour from `from` for `hours` hours, each run taken in before the next hour.
    void drive_hours(Scheduler& scheduler, Clock::time_point from, int hours) {
        for (int hour = 0; hour < hours; ++hour) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                now = from + std::chrono::hours(hour);
            }
            scheduler.start_due(now);
            scheduler.wait_for_runs();
        }
    }
    std::vector<long> hours_after(Clock::time_point origin) {
        std::vector<long> hours;
        for (const auto& [name, when] : started) {
            hours.push_back(static_cast<long>(std::chrono::duration_cast<std::chrono::hours>(when - origin).count()));
        }
        return hours;
    }
};

std::vector<Scheduler::ScheduledExport> owned(const std::shared_ptr<const std::vector<ExportConfig>>& exports,
                                              const std::string& definition) {
    std::vector<Scheduler::ScheduledExport> scheduled;
    for (const auto& exp : *exports)
        scheduled.push_back({std::shared_ptr<const ExportConfig>(exports, &exp), definition, {}});
    return scheduled;
}

}  // namespace

TEST_CASE("scheduler: an export that fails permanently backs off, the gap doubling up to a day") {
    auto exports = std::make_shared<const std::vector<ExportConfig>>(
        std::vector<ExportConfig>{scheduled("refused", "0 * * * *")});
    ScriptedRuns runs;
    Scheduler scheduler(owned(exports, "v1"), runs.runner(), utc(10, 30));

    runs.drive_hours(scheduler, utc(11, 0), 24 * 4);
    // Hours after 11:00 of each run: the gaps are 1, 2, 4, 8, 16 hours, then a day at most.
    CHECK(runs.hours_after(utc(11, 0)) == std::vector<long>{0, 1, 3, 7, 15, 31, 55, 79});
    // Monitoring sees when it runs next, not the skipped times.
    REQUIRE(scheduler.next_runs().size() == 1);
    CHECK(scheduler.next_runs()[0].second == utc(11, 0) + std::chrono::hours(79 + 24));

    SECTION("a reload with the same definition keeps the backoff") {
        scheduler.replace(owned(exports, "v1"), runs.runner(), utc(11, 0) + std::chrono::hours(96));
        runs.drive_hours(scheduler, utc(11, 0) + std::chrono::hours(96), 6);
        CHECK(runs.started.size() == 8);
        CHECK(scheduler.next_runs()[0].second == utc(11, 0) + std::chrono::hours(79 + 24));
    }
    SECTION("a reload with a changed definition ends it: the next scheduled time runs") {
        scheduler.replace(owned(exports, "v2"), runs.runner(), utc(11, 0) + std::chrono::hours(96));
        runs.drive_hours(scheduler, utc(11, 0) + std::chrono::hours(96), 3);
        // A failure under the new definition starts the doubling afresh: 1 hour, then 2.
        CHECK(runs.hours_after(utc(11, 0)) == std::vector<long>{0, 1, 3, 7, 15, 31, 55, 79, 97, 98});
    }
    SECTION("a run that succeeds ends it: every hour again") {
        runs.outcome = Scheduler::RunOutcome{RunStatus::succeeded, ""};
        runs.drive_hours(scheduler, utc(11, 0) + std::chrono::hours(96), 24);  // the held run is at hour 103
        CHECK(runs.hours_after(utc(11, 0)).size() == 8 + 17);                  // hours 103 to 119
        CHECK(runs.hours_after(utc(11, 0))[8] == 103);
    }
}

TEST_CASE("scheduler: transient failures keep the schedule, and a daily export stays daily when it fails") {
    auto exports = std::make_shared<const std::vector<ExportConfig>>(
        std::vector<ExportConfig>{scheduled("flaky", "0 * * * *"), scheduled("daily", "0 3 * * *")});
    ScriptedRuns runs;
    runs.outcome = Scheduler::RunOutcome{RunStatus::failed_retryable, "the destination answered 503"};
    Scheduler scheduler(owned(exports, "v1"), runs.runner(), utc(10, 30));
    runs.drive_hours(scheduler, utc(11, 0), 6);
    CHECK(runs.hours_after(utc(11, 0)) == std::vector<long>{0, 1, 2, 3, 4, 5});

    runs.started.clear();
    runs.outcome = Scheduler::RunOutcome{RunStatus::failed_permanent, "list 404 does not exist"};
    runs.drive_hours(scheduler, utc(17, 0), 24 * 4);
    std::vector<long> daily;
    for (const auto& [name, when] : runs.started) {
        if (name == "daily") daily.push_back(static_cast<long>((when - utc(3, 0)) / std::chrono::hours(24)));
    }
    // The cap is a day, and never less than the schedule's own gap: every day at 03:00.
    CHECK(daily == std::vector<long>{1, 2, 3, 4});
}

TEST_CASE("scheduler: a reload switches to the new exports while a run going on finishes under its own") {
    auto first = std::make_shared<std::vector<ExportConfig>>(
        std::vector<ExportConfig>{scheduled("kept", "0 * * * *"), scheduled("dropped", "30 * * * *")});
    first->at(0).segments = {"old_segment"};
    std::weak_ptr<const std::vector<ExportConfig>> first_alive = first;

    Runs held;  // the first configuration's runs wait until released
    std::vector<std::string> segments_seen;
    std::mutex seen_mutex;
    auto run_first = [&](const ExportConfig& exp, const std::string&) -> std::optional<Scheduler::RunOutcome> {
        held.run(exp);
        std::lock_guard<std::mutex> lock(seen_mutex);
        segments_seen.insert(segments_seen.end(), exp.segments.begin(), exp.segments.end());
        return Scheduler::RunOutcome{};
    };
    Scheduler scheduler(owned(first, "v1"), run_first, utc(10, 50));
    scheduler.start_due(utc(11, 0));
    held.wait_for(1);  // "kept" runs under the first configuration

    auto second = std::make_shared<std::vector<ExportConfig>>(
        std::vector<ExportConfig>{scheduled("kept", "15 * * * *"), scheduled("added", "20 * * * *")});
    second->at(0).segments = {"new_segment"};
    ScriptedRuns runs;
    runs.outcome = Scheduler::RunOutcome{};
    first.reset();  // only the scheduler and the run going on hold the first configuration now
    scheduler.replace(owned(second, "v2"), runs.runner(), utc(11, 5));
    CHECK_FALSE(first_alive.expired());

    // Next times come from the new schedules; "dropped" is gone.
    const auto next = scheduler.next_runs();
    REQUIRE(next.size() == 2);
    CHECK(next[0].first == "kept");
    CHECK(next[0].second == utc(11, 15));
    CHECK(next[1].first == "added");
    CHECK(next[1].second == utc(11, 20));

    runs.now = utc(11, 15);
    scheduler.start_due(utc(11, 15));  // "kept" is still running its old run: not started twice
    runs.now = utc(11, 20);
    scheduler.start_due(utc(11, 20));
    scheduler.start_due(utc(11, 30));  // "dropped" no longer runs
    held.release();
    scheduler.wait_for_runs();
    CHECK(first_alive.expired());  // the old run ended: nothing holds its configuration
    CHECK(segments_seen == std::vector<std::string>{"old_segment"});
    CHECK(held.count() == 1);

    runs.now = utc(12, 15);
    scheduler.start_due(utc(12, 15));
    scheduler.wait_for_runs();
    REQUIRE(runs.started.size() == 2);
    CHECK(runs.started[0] == std::make_pair(std::string("added"), utc(11, 20)));
    CHECK(runs.started[1] == std::make_pair(std::string("kept"), utc(12, 15)));
}

TEST_CASE("scheduler: catch_up runs an export once at start when its last scheduled time was missed") {
    std::vector<ExportConfig> exports{scheduled("nightly", "0 3 * * *"), scheduled("plain", "0 3 * * *")};
    exports[0].catch_up = true;
    ScriptedRuns runs;
    runs.outcome = Scheduler::RunOutcome{};
    Scheduler scheduler(exports, runs.runner(), utc(10, 30));
    std::vector<std::pair<std::string, Clock::time_point>> asked;
    bool ran = false;
    auto ran_since = [&](const ExportConfig& exp, Clock::time_point since) {
        asked.emplace_back(exp.name, since);
        return ran;
    };

    SECTION("missed: it runs at once, then on its schedule") {
        scheduler.catch_up_missed(ran_since, utc(10, 30));
        CHECK(asked == std::vector<std::pair<std::string, Clock::time_point>>{{"nightly", utc(3, 0)}});
        runs.now = utc(10, 30);
        scheduler.start_due(utc(10, 30));
        scheduler.wait_for_runs();
        scheduler.start_due(utc(10, 31));
        scheduler.wait_for_runs();
        CHECK(runs.started == std::vector<std::pair<std::string, Clock::time_point>>{{"nightly", utc(10, 30)}});
        CHECK(scheduler.next_runs()[0].second == utc(3, 0) + std::chrono::hours(24));
    }
    SECTION("a run since then: nothing at start") {
        ran = true;
        scheduler.catch_up_missed(ran_since, utc(10, 30));
        scheduler.start_due(utc(10, 30));
        scheduler.wait_for_runs();
        CHECK(runs.started.empty());
    }
}

namespace {

// An export with schedule: on_change watching `files`, settling after 5 s.
std::vector<Scheduler::ScheduledExport> on_change(const std::shared_ptr<const std::vector<ExportConfig>>& exports,
                                                  const std::vector<std::string>& files) {
    std::vector<Scheduler::ScheduledExport> scheduled;
    for (const auto& exp : *exports)
        scheduled.push_back({std::shared_ptr<const ExportConfig>(exports, &exp), "v1", files});
    return scheduled;
}

std::shared_ptr<const std::vector<ExportConfig>> on_change_export(bool catch_up = false) {
    ExportConfig exp = scheduled("fresh", kOnChangeSchedule);
    exp.settle = std::chrono::seconds(5);
    exp.catch_up = catch_up;
    return std::make_shared<const std::vector<ExportConfig>>(std::vector<ExportConfig>{exp});
}

void publish(const segpush::test::TempDir& dir, const std::string& content) {
    // Past the file system's timestamp tick, so each version differs from the last.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    dir.write("vip.csv.tmp", content);
    std::filesystem::rename(dir.file("vip.csv.tmp"), dir.file("vip.csv"));
}

}  // namespace

TEST_CASE("scheduler: an on_change export runs once a change has settled, and once more for a change during its run") {
    segpush::test::TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    Runs held;
    Scheduler scheduler(
        on_change(on_change_export(), {vip}),
        [&](const ExportConfig& exp, const std::string&) {
            held.run(exp);
            return std::optional<Scheduler::RunOutcome>(Scheduler::RunOutcome{});
        },
        utc(10, 0));
    REQUIRE_FALSE(scheduler.empty());
    REQUIRE(scheduler.next_runs().size() == 1);
    CHECK_FALSE(scheduler.next_runs()[0].second);  // no time to show: it waits for a change

    scheduler.start_due(utc(11, 0));  // an hour on, the file as it was: nothing
    CHECK(held.count() == 0);

    publish(dir, "email\nb@example.com\n");
    const auto seen = utc(11, 1);
    scheduler.start_due(seen);
    scheduler.start_due(seen + std::chrono::seconds(4));
    CHECK(held.count() == 0);
    scheduler.start_due(seen + std::chrono::seconds(5));
    held.wait_for(1);

    // Two versions published while the run goes on: one more run, after it, on the last.
    publish(dir, "email\nc@example.com\n");
    scheduler.start_due(seen + std::chrono::seconds(10));
    publish(dir, "email\nd@example.com\n");
    scheduler.start_due(seen + std::chrono::seconds(12));
    scheduler.start_due(seen + std::chrono::seconds(30));
    CHECK(held.count() == 1);
    held.release();
    while (held.count() < 2) {  // the run ends on its thread; each pass takes its outcome in
        scheduler.start_due(seen + std::chrono::seconds(31));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    scheduler.wait_for_runs();
    scheduler.start_due(seen + std::chrono::seconds(120));
    scheduler.wait_for_runs();
    CHECK(held.count() == 2);
}

TEST_CASE("scheduler: an on_change export that fails permanently waits for the next change, not a backoff") {
    segpush::test::TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    ScriptedRuns runs;  // every run fails permanently
    Scheduler scheduler(on_change(on_change_export(), {vip}), runs.runner(), utc(10, 0));

    publish(dir, "email\nb@example.com\n");
    scheduler.start_due(utc(10, 1));
    scheduler.start_due(utc(10, 2));
    scheduler.wait_for_runs();
    runs.drive_hours(scheduler, utc(11, 0), 48);  // two days without a change: no retries
    CHECK(runs.started.size() == 1);

    publish(dir, "email\nc@example.com\n");
    scheduler.start_due(utc(13, 0));
    scheduler.start_due(utc(13, 1));
    scheduler.wait_for_runs();
    CHECK(runs.started.size() == 2);
}

TEST_CASE("scheduler: catch_up runs an on_change export whose files changed after its last run, once settled") {
    segpush::test::TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    ScriptedRuns runs;
    runs.outcome = Scheduler::RunOutcome{};
    Scheduler scheduler(on_change(on_change_export(true), {vip}), runs.runner(), utc(10, 0));
    std::vector<Clock::time_point> asked;
    bool ran = false;
    auto ran_since = [&](const ExportConfig&, Clock::time_point since) {
        asked.push_back(since);
        return ran;
    };

    SECTION("no run since the file's last change: it runs once the file has settled") {
        scheduler.catch_up_missed(ran_since, utc(10, 0));
        REQUIRE(asked.size() == 1);
        CHECK(Clock::now() - asked[0] < std::chrono::minutes(1));  // the file's modification time
        scheduler.start_due(utc(10, 0));
        scheduler.start_due(utc(10, 0) + std::chrono::seconds(5));
        scheduler.wait_for_runs();
        scheduler.start_due(utc(10, 5));
        scheduler.wait_for_runs();
        CHECK(runs.started.size() == 1);
    }
    SECTION("a run since: nothing at start") {
        ran = true;
        scheduler.catch_up_missed(ran_since, utc(10, 0));
        scheduler.start_due(utc(10, 0));
        scheduler.start_due(utc(10, 5));
        scheduler.wait_for_runs();
        CHECK(runs.started.empty());
    }
}
