#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/model.hpp"
#include "schedule/cron.hpp"

namespace segpush {

// What `serve` runs: every export with a schedule, each at its next scheduled time, on a
// thread of its own. A run still going when its export's next time comes is not started
// again (that time is skipped, with a warning). Starting the scheduler runs nothing: the
// first run of each export is at its next time.
class Scheduler {
public:
    using Clock = std::chrono::system_clock;
    // Runs one export to its end; called on the export's own thread, never twice at once for
    // one export. It must not throw.
    using RunExport = std::function<void(const ExportConfig&)>;

    // Exports without a schedule, or with one that does not parse or an unknown time zone
    // (config check reports both), are left out. `exports` must outlive the scheduler.
    Scheduler(const std::vector<ExportConfig>& exports, RunExport run, Clock::time_point now);
    // Waits for the runs still going.
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    bool empty() const { return slots_.empty(); }
    // Logs each export's schedule and next run.
    void log_schedules() const;
    // Each scheduled export's name and next run time, for monitoring. Same thread as start_due.
    std::vector<std::pair<std::string, Clock::time_point>> next_runs() const;
    // Starts every export whose time has come by `now` and moves its next time on.
    void start_due(Clock::time_point now);
    // Waits for the runs still going.
    void wait_for_runs();

private:
    struct Slot {
        const ExportConfig* exp = nullptr;
        CronSchedule schedule;
        Clock::time_point next;
        std::thread worker;
        std::atomic<bool> busy{false};
    };

    RunExport run_;
    std::list<Slot> slots_;  // a list: slots hold threads and atomics, never moved
};

}  // namespace segpush
