// Request budgets shared by every export of the process and by every segpush process that keeps
// its state in the same place (segpush_host.reserve_slot and hold_budget, ABI 1.4).
//
// A destination's limits are often per account: two exports to one account, in one process
// (`serve`) or in two (`export run` from cron, replicas on several hosts), must pace as one.
// Each budget is a "next free slot"; callers get slots as CLOCK_MONOTONIC nanoseconds
// (std::chrono::steady_clock) of their own process. In a process, a mutex per budget name
// serialises threads. Across processes, it depends on the state (budget_sharing.hpp):
//   - SQLite state: a file `<state directory>/budgets/<name>` per budget, locked with flock(),
//     shared by the processes of one host (budget_files.cpp). Slots there are monotonic times,
//     the same for every process of one boot.
//   - PostgreSQL state: the row `name` of the `budgets` table, shared by every replica using the
//     database (budget_postgres.cpp). Slots there are the server's times, one atomic statement
//     per reservation; each is converted to this process's clock on the late side, so local
//     slots of two replicas are `interval` apart less at most one answer's return time.
//
// Until a state location is given, budgets are shared within this process only. When the
// budgets folder, a file in it, or the database cannot be used, one warning is logged, naming
// the folder or the server (never a password) and the reason, and budgets go on within this
// process: a folder is not tried again, a database after a minute. Callers get real slots
// either way; only 0 means "cannot share" (an invalid name).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace segpush {

class BudgetSharing;

class SharedBudgets {
public:
    // The one object every plugin's host services use.
    static SharedBudgets& process();

    SharedBudgets();  // in-process only until use_state_file
    ~SharedBudgets();
    SharedBudgets(const SharedBudgets&) = delete;
    SharedBudgets& operator=(const SharedBudgets&) = delete;

    // From now on budgets are also shared through the state at `location`: the PostgreSQL
    // database a postgresql:// location names (connected to on first use), or else
    // `<directory of the state file>/budgets/` (created on first use). Budgets already reserved
    // keep their in-process next slot. The same location again changes nothing.
    void use_state_file(const std::string& location);

    // The next start under `budget`: max(now, next free slot); the slot after it is
    // interval_ns later. 0 when `budget` is not a valid name (the caller paces on its own).
    uint64_t reserve_slot(const char* budget, uint64_t interval_ns);
    // No start under `budget` before until_ns. Ignored for an invalid name.
    void hold_budget(const char* budget, uint64_t until_ns);

    // [A-Za-z0-9._-]{1,128}; "." and ".." are refused too (they are not file names).
    static bool valid_name(const char* budget);
    // The monotonic clock, in the nanoseconds slots are counted in.
    static uint64_t now_ns();
    // This boot's id (/proc/sys/kernel/random/boot_id, without the newline); empty if unreadable.
    static const std::string& boot_id();

private:
    struct Budget;

    Budget& budget(const std::string& name);
    std::shared_ptr<BudgetSharing> sharing();

    std::mutex budgets_mutex_;  // guards budgets_ (the map, not the budgets in it)
    std::map<std::string, std::unique_ptr<Budget>> budgets_;

    // Replaced as a whole by use_state_file; a call under way finishes on the one it took.
    std::mutex sharing_mutex_;
    std::string sharing_key_;                 // the budgets folder or the database location
    std::shared_ptr<BudgetSharing> sharing_;  // null: in-process only
};

}  // namespace segpush
