// Request budgets shared by every export of the process and by every segpush process that keeps
// its state in the same directory (segpush_host.reserve_slot and hold_budget, ABI 1.4).
//
// A destination's limits are often per account: two exports to one account, in one process
// (`serve`) or in two (`export run` from cron), must pace as one. Each budget is a "next free
// slot" time, in CLOCK_MONOTONIC nanoseconds (std::chrono::steady_clock), which is the same for
// every process of one boot.
//
// In a process, a mutex per budget name serialises threads. Across processes, each budget is a
// file `<state directory>/budgets/<name>` (the folder made 0700, files 0600) locked with flock(): the
// kernel drops the lock when its holder dies, kill -9 included. The file holds one line,
//     <boot id> <next free slot, 20 decimal digits>\n
// and a value written under another boot id (/proc/sys/kernel/random/boot_id) is ignored, since
// the monotonic clock restarts at boot.
//
// Until a state directory is given, budgets are shared within this process only. When the
// budgets folder or a file in it cannot be used, one warning is logged, naming the folder and
// the reason, and no more files are opened there: budgets without a file yet stay within this
// process. Callers get real slots either way; only 0 means "cannot share" (an invalid name).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace segpush {

class SharedBudgets {
public:
    // The one object every plugin's host services use.
    static SharedBudgets& process();

    SharedBudgets();  // in-process only until use_state_file
    ~SharedBudgets();
    SharedBudgets(const SharedBudgets&) = delete;
    SharedBudgets& operator=(const SharedBudgets&) = delete;

    // From now on budgets are also shared through `<directory of state_file>/budgets/`
    // (created on first use). Budgets already reserved keep their in-process next slot.
    void use_state_file(const std::string& state_file);

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
    // Under budget.mutex: makes sure budget.fd is open on the current directory's file, or -1.
    void attach(Budget& budget, const std::string& name);
    // Locks `name` (its mutex, then its file), lets `update` change its next free slot (the
    // larger of the file's and this process's), stores it, and returns what `update` returned.
    template <typename Update>
    uint64_t locked_update(const char* name, Update update);
    // One warning, then no more files are opened in the folder of `generation` (if current).
    void fall_back(uint64_t generation, const std::string& why);
    void fail_locked(const std::string& why);  // the same, under directory_mutex_

    std::mutex budgets_mutex_;  // guards budgets_ (the map, not the budgets in it)
    std::map<std::string, std::unique_ptr<Budget>> budgets_;

    // The files' folder. A budget's fd belongs to the generation it was opened under; a new
    // directory bumps the generation, so each budget reopens its file there on next use.
    std::mutex directory_mutex_;
    std::string directory_;  // empty: in-process only
    uint64_t generation_ = 0;
    bool directory_ready_ = false;   // the folder exists (made by us or already there)
    bool directory_failed_ = false;  // warned once; no more files are opened in it
};

}  // namespace segpush
