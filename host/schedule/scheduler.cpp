#include "schedule/scheduler.hpp"

#include "log/log.hpp"

namespace segpush {

Scheduler::Scheduler(const std::vector<ExportConfig>& exports, RunExport run, Clock::time_point now)
    : run_(std::move(run)) {
    for (const auto& exp : exports) {
        if (exp.schedule.empty()) continue;
        std::string problem;
        auto schedule = CronSchedule::parse(exp.schedule, problem);
        if (!schedule || !known_time_zone(exp.timezone)) continue;
        auto& slot = slots_.emplace_back();
        slot.exp = &exp;
        slot.schedule = *schedule;
        slot.next = schedule->next_after(now, exp.timezone);
    }
}

Scheduler::~Scheduler() { wait_for_runs(); }

void Scheduler::log_schedules() const {
    for (const auto& slot : slots_) {
        log_line(LogLevel::info, "serve: export " + slot.exp->name + " runs on \"" + slot.exp->schedule + "\"" +
                                     (slot.exp->timezone.empty() ? " (UTC)" : " (" + slot.exp->timezone + ")") +
                                     "; next run " + wall_clock_text(slot.next, slot.exp->timezone));
    }
}

void Scheduler::start_due(Clock::time_point now) {
    for (auto& slot : slots_) {
        if (now < slot.next) continue;
        if (slot.busy) {
            log_line(LogLevel::warn,
                     "export " + slot.exp->name + ": the previous run is still going; this scheduled run is skipped");
        } else {
            if (slot.worker.joinable()) slot.worker.join();
            slot.busy = true;
            log_line(LogLevel::info, "export " + slot.exp->name + ": scheduled run starting");
            slot.worker = std::thread([this, &slot] {
                run_(*slot.exp);
                slot.busy = false;
            });
        }
        slot.next = slot.schedule.next_after(now, slot.exp->timezone);
        log_line(LogLevel::info,
                 "export " + slot.exp->name + ": next run " + wall_clock_text(slot.next, slot.exp->timezone));
    }
}

std::vector<std::pair<std::string, Scheduler::Clock::time_point>> Scheduler::next_runs() const {
    std::vector<std::pair<std::string, Clock::time_point>> runs;
    for (const auto& slot : slots_) runs.emplace_back(slot.exp->name, slot.next);
    return runs;
}

void Scheduler::wait_for_runs() {
    for (auto& slot : slots_) {
        if (slot.worker.joinable()) slot.worker.join();
    }
}

}  // namespace segpush
