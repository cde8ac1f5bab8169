#include "schedule/scheduler.hpp"

#include <algorithm>
#include <ctime>

#include "log/log.hpp"

namespace segpush {

namespace {

constexpr std::chrono::hours kLongestBackoff{24};

// Whether serve can run the export: on_change (`schedule` left empty), or a cron expression
// that parses (in `schedule`) in a known time zone.
bool valid_schedule(const ExportConfig& exp, std::optional<CronSchedule>& schedule) {
    if (exp.schedule.empty()) return false;
    if (exp.schedule == kOnChangeSchedule) return true;
    std::string problem;
    schedule = CronSchedule::parse(exp.schedule, problem);
    return schedule && known_time_zone(exp.timezone);
}

// The last time the schedule fired at or before `now`, looking back at most about five years.
// Windows grow so that a frequent schedule is not stepped through for years.
std::optional<Scheduler::Clock::time_point> last_time_at_or_before(const CronSchedule& schedule,
                                                                   const std::string& timezone,
                                                                   Scheduler::Clock::time_point now) {
    using std::chrono::hours;
    for (const hours window : {hours(2), hours(26), hours(24 * 8), hours(24 * 32), hours(24 * 367), hours(24 * 1830)}) {
        std::optional<Scheduler::Clock::time_point> last;
        for (auto t = schedule.next_after(now - window, timezone); t <= now; t = schedule.next_after(t, timezone)) {
            last = t;
        }
        if (last) return last;
    }
    return std::nullopt;
}

// `when` in UTC, RFC 3339, to the second: how occasions name scheduled times, which every
// replica must write alike.
std::string utc_text(Scheduler::Clock::time_point when) {
    const std::time_t seconds = Scheduler::Clock::to_time_t(when);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string reason_text(const std::string& error) { return error.empty() ? "no error was recorded" : error; }

std::string file_list(const std::vector<std::string>& files) {
    std::string text;
    for (const auto& file : files) text += (text.empty() ? "" : ", ") + file;
    return text;
}

std::string settle_text(const SegmentWatch& watch) {
    return "once the files have stayed unchanged for " + std::to_string(watch.settle().count()) + " s";
}

}  // namespace

Scheduler::Scheduler(std::vector<ScheduledExport> exports, RunExport run, Clock::time_point now) {
    add_slots(std::move(exports), run, now);
}

Scheduler::Scheduler(const std::vector<ExportConfig>& exports, RunExport run, Clock::time_point now) {
    std::vector<ScheduledExport> scheduled;
    for (const auto& exp : exports) {
        // Not owning: the caller keeps `exports` alive.
        scheduled.push_back({std::shared_ptr<const ExportConfig>(std::shared_ptr<const ExportConfig>(), &exp), "", {}});
    }
    add_slots(std::move(scheduled), run, now);
}

Scheduler::~Scheduler() { wait_for_runs(); }

void Scheduler::add_slots(std::vector<ScheduledExport> exports, const RunExport& run, Clock::time_point now) {
    for (auto& scheduled : exports) {
        std::optional<CronSchedule> schedule;
        if (!valid_schedule(*scheduled.exp, schedule)) continue;
        auto& slot = slots_.emplace_back();
        slot.exp = std::move(scheduled.exp);
        slot.definition = std::move(scheduled.definition);
        slot.run = run;
        arm(slot, std::move(schedule), std::move(scheduled.segment_files), now);
    }
}

void Scheduler::arm(Slot& slot, std::optional<CronSchedule> schedule, std::vector<std::string> segment_files,
                    Clock::time_point now) {
    slot.schedule = std::move(schedule);
    if (slot.schedule) {
        slot.watch.reset();
    } else if (!slot.watch || slot.watch->files() != segment_files || slot.watch->settle() != slot.exp->settle) {
        slot.watch.emplace(std::move(segment_files), slot.exp->settle, now);
    }
    slot.next = following(slot, now);
}

Scheduler::Clock::time_point Scheduler::following(const Slot& slot, Clock::time_point now) {
    return slot.schedule ? slot.schedule->next_after(now, slot.exp->timezone) : Clock::time_point::max();
}

void Scheduler::replace(std::vector<ScheduledExport> exports, RunExport run, Clock::time_point now) {
    std::list<Slot> old;
    old.splice(old.end(), slots_);
    for (auto& scheduled : exports) {
        std::optional<CronSchedule> schedule;
        if (!valid_schedule(*scheduled.exp, schedule)) continue;
        const auto same_name = std::find_if(old.begin(), old.end(),
                                            [&](const Slot& slot) { return slot.exp->name == scheduled.exp->name; });
        // The same export keeps its slot: its run going on (if any) and, while its definition is
        // unchanged, its backoff.
        if (same_name != old.end()) {
            slots_.splice(slots_.end(), old, same_name);
        } else {
            slots_.emplace_back();
        }
        Slot& slot = slots_.back();
        if (slot.definition != scheduled.definition && slot.permanent_failures > 0) {
            log_line(LogLevel::info, "export " + scheduled.exp->name +
                                         ": its definition changed, so its backoff after permanent failures ends");
            slot.permanent_failures = 0;
            slot.held_until = {};
        }
        slot.exp = std::move(scheduled.exp);
        slot.definition = std::move(scheduled.definition);
        slot.run = run;
        arm(slot, std::move(schedule), std::move(scheduled.segment_files), now);
        if (!slot.schedule) {
            slot.held_until = {};  // an on_change export waits for its next change instead
        } else if (slot.held_until != Clock::time_point{}) {
            // Still backing off under the new schedule: from its first time not before the hold.
            auto held = slot.next;
            for (int step = 0; held < slot.held_until && step < 100000; ++step) {
                held = slot.schedule->next_after(held, slot.exp->timezone);
            }
            slot.held_until = held;
        }
    }
    for (auto& slot : old) {
        log_line(LogLevel::info, "export " + slot.exp->name + ": no longer scheduled (not in the new configuration" +
                                     std::string(slot.busy ? "; its run going on finishes)" : ")"));
    }
    retiring_.splice(retiring_.end(), old);
}

void Scheduler::catch_up_missed(const std::function<bool(const ExportConfig&, Clock::time_point)>& ran_since,
                                Clock::time_point now) {
    for (auto& slot : slots_) {
        if (!slot.exp->catch_up) continue;
        if (slot.watch) {
            const auto modified = slot.watch->newest_modification();
            if (!modified || ran_since(*slot.exp, *modified)) continue;
            slot.watch->forget_seen();
            log_line(LogLevel::info, "export " + slot.exp->name + ": its segment files changed at " +
                                         wall_clock_text(*modified, "") + " with no run since; catch_up runs it " +
                                         settle_text(*slot.watch));
            continue;
        }
        const auto last = last_time_at_or_before(*slot.schedule, slot.exp->timezone, now);
        if (!last || ran_since(*slot.exp, *last)) continue;
        slot.next = now;
        log_line(LogLevel::info, "export " + slot.exp->name + ": its run of " +
                                     wall_clock_text(*last, slot.exp->timezone) +
                                     " was missed (no run since); catch_up runs it now");
    }
}

void Scheduler::log_schedules() const {
    for (const auto& slot : slots_) {
        if (slot.watch) {
            log_line(LogLevel::info, "serve: export " + slot.exp->name + " runs when its segment files change (" +
                                         file_list(slot.watch->files()) + "), " + settle_text(*slot.watch));
            continue;
        }
        log_line(LogLevel::info, "serve: export " + slot.exp->name + " runs on \"" + slot.exp->schedule + "\"" +
                                     (slot.exp->timezone.empty() ? " (UTC)" : " (" + slot.exp->timezone + ")") + "; " +
                                     next_run_text(slot));
    }
}

std::string Scheduler::next_run_text(const Slot& slot) {
    if (slot.watch) return "next run when its segment files change";
    return "next run " + wall_clock_text(next_run_of(slot), slot.exp->timezone);
}

void Scheduler::watch_files(Slot& slot, Clock::time_point now) {
    const bool was_pending = slot.watch->change_pending();
    const bool settled = slot.watch->settled(now);
    if (!was_pending && slot.watch->change_pending()) {
        log_line(LogLevel::info, "export " + slot.exp->name + ": " + file_list(slot.watch->changed_files()) +
                                     " changed; it runs " + settle_text(*slot.watch) +
                                     (slot.busy ? ", after its run going on" : ""));
    }
    slot.next = settled && !slot.busy && !slot.outcome_pending ? now : Clock::time_point::max();
}

void Scheduler::take_outcome(Slot& slot) {
    slot.outcome_pending = false;
    if (!slot.outcome || slot.run_definition != slot.definition) return;  // not started, or a reload since
    const RunOutcome& outcome = *slot.outcome;
    if (ran_to_end(outcome.status) || outcome.status == RunStatus::failed_retryable) {
        if (slot.permanent_failures > 0) {
            log_line(LogLevel::info, "export " + slot.exp->name + ": " +
                                         (ran_to_end(outcome.status) ? "succeeded" : "failed transiently") +
                                         " after failing permanently; back on its schedule");
        }
        slot.permanent_failures = 0;
        slot.held_until = {};
        return;
    }
    if (outcome.status != RunStatus::failed_permanent) return;  // cancelled: stopping, nothing learnt
    if (slot.watch) {
        log_line(LogLevel::warn, "export " + slot.exp->name + ": failed permanently (" + reason_text(outcome.error) +
                                     "); it runs again when its segment files change");
        return;
    }
    ++slot.permanent_failures;
    slot.last_failure = reason_text(outcome.error);
    const auto following = slot.schedule->next_after(slot.run_time, slot.exp->timezone);
    const auto interval = following - slot.run_time;
    auto gap = interval;
    for (int doubling = 1; doubling < slot.permanent_failures && gap < kLongestBackoff; ++doubling) gap *= 2;
    gap = std::max<Clock::duration>(interval, std::min<Clock::duration>(gap, kLongestBackoff));
    const auto earliest = slot.run_time + gap;
    auto held = std::max(following, slot.next);
    for (int step = 0; held < earliest && step < 100000; ++step)
        held = slot.schedule->next_after(held, slot.exp->timezone);
    slot.held_until = held;
    log_line(LogLevel::warn,
             "export " + slot.exp->name + ": failed permanently " +
                 (slot.permanent_failures == 1 ? std::string()
                                               : std::to_string(slot.permanent_failures) + " times in a row ") +
                 "(" + slot.last_failure + "); it runs again " + wall_clock_text(held, slot.exp->timezone) +
                 ", not before; while it keeps failing so, its runs space out (doubling, up to a day) until one "
                 "succeeds or a reload changes the export");
}

void Scheduler::start_due(Clock::time_point now) {
    for (auto it = retiring_.begin(); it != retiring_.end();) {
        if (it->busy) {
            ++it;
            continue;
        }
        if (it->worker.joinable()) it->worker.join();
        it = retiring_.erase(it);
    }
    for (auto& slot : slots_) {
        if (slot.outcome_pending && !slot.busy) {
            if (slot.worker.joinable()) slot.worker.join();
            take_outcome(slot);
        }
        if (slot.watch) watch_files(slot, now);
        if (now < slot.next) continue;
        if (slot.next < slot.held_until) {
            const auto skipped = slot.next;
            slot.next = following(slot, now);
            log_line(LogLevel::warn, "export " + slot.exp->name + ": scheduled run of " +
                                         wall_clock_text(skipped, slot.exp->timezone) +
                                         " skipped: it failed permanently " + std::to_string(slot.permanent_failures) +
                                         " times in a row (" + slot.last_failure + "); " + next_run_text(slot));
            continue;
        }
        if (slot.busy || slot.outcome_pending) {
            log_line(LogLevel::warn,
                     "export " + slot.exp->name + ": the previous run is still going; this scheduled run is skipped");
        } else {
            slot.run_time = slot.next;
            std::string occasion;
            if (slot.watch) {
                log_line(LogLevel::info, "export " + slot.exp->name + ": " + file_list(slot.watch->changed_files()) +
                                             " changed and has settled; run starting");
                occasion = "change " + slot.watch->version_text();
                slot.watch->run_starting();
            } else {
                log_line(LogLevel::info, "export " + slot.exp->name + ": scheduled run starting");
                occasion = "schedule " + utc_text(slot.run_time);
            }
            launch(slot, occasion);
        }
        slot.next = following(slot, now);
        log_line(LogLevel::info, "export " + slot.exp->name + ": " + next_run_text(slot));
    }
}

void Scheduler::launch(Slot& slot, const std::string& occasion) {
    if (slot.worker.joinable()) slot.worker.join();
    slot.busy = true;
    slot.outcome_pending = true;
    slot.outcome.reset();
    slot.run_definition = slot.definition;
    // The run keeps its own copies: a reload may change the slot while it goes on.
    slot.worker = std::thread([&slot, run = slot.run, exp = slot.exp, occasion] {
        auto outcome = run(*exp, occasion);
        slot.outcome = std::move(outcome);
        slot.busy = false;
    });
}

bool Scheduler::start_now(const std::string& export_name, const std::string& occasion) {
    for (auto& slot : slots_) {
        if (slot.exp->name != export_name) continue;
        if (slot.busy || slot.outcome_pending) return false;
        launch(slot, occasion);
        return true;
    }
    return false;
}

std::vector<std::pair<std::string, std::optional<Scheduler::Clock::time_point>>> Scheduler::next_runs() const {
    std::vector<std::pair<std::string, std::optional<Clock::time_point>>> runs;
    for (const auto& slot : slots_) {
        runs.emplace_back(slot.exp->name, slot.watch ? std::nullopt : std::optional(next_run_of(slot)));
    }
    return runs;
}

void Scheduler::wait_for_runs() {
    for (auto& slot : slots_) {
        if (slot.worker.joinable()) slot.worker.join();
    }
    for (auto& slot : retiring_) {
        if (slot.worker.joinable()) slot.worker.join();
    }
    retiring_.clear();
}

}  // namespace segpush
