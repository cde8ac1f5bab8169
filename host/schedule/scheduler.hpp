#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/model.hpp"
#include "schedule/cron.hpp"
#include "schedule/segment_watch.hpp"
#include "state/run_history.hpp"

namespace segpush {

// What `serve` runs: every export with a schedule, on a thread of its own. A cron export runs
// at its next scheduled time; a run still going when that time comes is not started again (that
// time is skipped, with a warning). An `on_change` export runs when its segment files changed and
// then stayed unchanged a while (SegmentWatch); a change seen while its run goes on starts one
// more run after it. Starting the scheduler runs nothing: the first run of each export is at its
// next time or change (or at once, for a catch_up export whose last time or change was missed,
// when serve asks for catch_up_missed).
//
// A cron export whose run fails permanently (a person must change something first) backs off:
// after its k-th such failure in a row it runs again at the first scheduled time at least
// min(interval * 2^(k-1), one day) after the failed run's time, where interval is the
// schedule's own gap there (never less than that gap: a weekly export stays weekly). So the
// first failure waits for the next scheduled time, later ones skip times, the gap doubling.
// A run that succeeds or fails transiently, or a reload that changes the export's definition,
// ends the backoff. Transient failures change nothing: the next scheduled time runs as usual.
// An on_change export that fails permanently runs again at the next change of its files.
class Scheduler {
public:
    using Clock = std::chrono::system_clock;
    // How a run ended; nullopt when it did not start (another process runs the export).
    struct RunOutcome {
        RunStatus status = RunStatus::succeeded;
        std::string error;
    };
    // Runs one export to its end; called on the export's own thread, never twice at once for
    // one export. It must not throw. `occasion` names what started the run, the same in every
    // replica serving the configuration, so that replicas can claim it once among them:
    // "schedule 2026-01-31T03:00:00Z" (the scheduled time, also for a catch-up run),
    // "change SIZE:MTIME:CTIME,..." (the segment files' version: SegmentWatch::version_text),
    // or what start_now was given.
    using RunExport = std::function<std::optional<RunOutcome>(const ExportConfig&, const std::string& occasion)>;

    struct ScheduledExport {
        // Shares ownership of what the export's runs use (the configuration, its plugins): a
        // run started before a reload keeps them alive until it ends.
        std::shared_ptr<const ExportConfig> exp;
        // Anything a run depends on (the export, its connection, its segments) as text: a reload
        // that changes it ends the export's backoff.
        std::string definition;
        // The paths of the export's segment files: what an on_change export watches.
        std::vector<std::string> segment_files;
    };

    // Exports without a schedule, or with one that does not parse or an unknown time zone
    // (config check reports both), are left out. `now` is when watching segment files starts.
    Scheduler(std::vector<ScheduledExport> exports, RunExport run, Clock::time_point now);
    // `exports` must outlive the scheduler.
    Scheduler(const std::vector<ExportConfig>& exports, RunExport run, Clock::time_point now);
    // Waits for the runs still going.
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    bool empty() const { return slots_.empty(); }
    // Logs each export's schedule and next run.
    void log_schedules() const;
    // Each scheduled export's name and next run time (nullopt for on_change exports), for
    // monitoring. Same thread as start_due.
    std::vector<std::pair<std::string, std::optional<Clock::time_point>>> next_runs() const;
    // Takes in the outcomes of runs that ended, looks at the watched segment files, then starts
    // every export whose time has come by `now` (or whose files' change has settled) and moves
    // its next time on. serve calls it several times a second.
    void start_due(Clock::time_point now);
    // Waits for the runs still going.
    void wait_for_runs();
    // Starts a run of the export now, out of its schedule, unless one is going on: for a run
    // another replica abandoned, which this one takes over. Its scheduled times are unchanged.
    // False when the export is not scheduled here or is running.
    bool start_now(const std::string& export_name, const std::string& occasion);

    // Switches to a new set of exports (a configuration reload). Next times are computed from
    // `now`. Runs going on finish with the configuration they started with; an export still
    // running is not started again until that run ends, even under its new definition.
    void replace(std::vector<ScheduledExport> exports, RunExport run, Clock::time_point now);

    // For each catch_up export: the last scheduled time at or before `now` (for an on_change
    // export, the newest modification time of its segment files) and whether a run of the export
    // started since then (`ran_since`). When none did, a cron export runs at the next start_due,
    // an on_change export as soon as its files have settled.
    void catch_up_missed(const std::function<bool(const ExportConfig&, Clock::time_point)>& ran_since,
                         Clock::time_point now);

private:
    struct Slot {
        std::shared_ptr<const ExportConfig> exp;
        std::string definition;
        RunExport run;
        // What starts the export's runs: one of the two.
        std::optional<CronSchedule> schedule;
        std::optional<SegmentWatch> watch;
        Clock::time_point next;  // the next time of the schedule; for a watch, now or never (max)
        // While backing off: the next time the export runs; scheduled times before it are skipped.
        Clock::time_point held_until{};
        int permanent_failures = 0;  // in a row
        std::string last_failure;
        std::thread worker;
        std::atomic<bool> busy{false};
        // Set by the worker before it clears `busy`; read by start_due after.
        std::optional<RunOutcome> outcome;
        bool outcome_pending = false;  // a run started and its outcome is not taken in yet
        Clock::time_point run_time{};  // the scheduled time of the last run started
        std::string run_definition;    // the definition that run started with
    };

    void add_slots(std::vector<ScheduledExport> exports, const RunExport& run, Clock::time_point now);
    // Sets what starts the slot's runs: `schedule`, or a watch on `segment_files` when there is
    // none (on_change). A watch on the same files is kept, with any change it has seen.
    static void arm(Slot& slot, std::optional<CronSchedule> schedule, std::vector<std::string> segment_files,
                    Clock::time_point now);
    // The slot's next time after `now`: the schedule's next, or never for a watch.
    static Clock::time_point following(const Slot& slot, Clock::time_point now);
    // Looks at an on_change slot's files: due now when their change has settled and no run of
    // the export is going on.
    static void watch_files(Slot& slot, Clock::time_point now);
    void take_outcome(Slot& slot);
    // Starts the slot's worker thread on a run for `occasion`.
    static void launch(Slot& slot, const std::string& occasion);
    static std::string next_run_text(const Slot& slot);
    static Clock::time_point next_run_of(const Slot& slot) { return std::max(slot.next, slot.held_until); }

    std::list<Slot> slots_;     // a list: slots hold threads and atomics, never moved
    std::list<Slot> retiring_;  // slots of exports a reload removed whose runs are still going
};

}  // namespace segpush
