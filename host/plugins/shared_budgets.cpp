#include "plugins/shared_budgets.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "plugins/budget_sharing.hpp"
#include "state/postgres.hpp"

namespace segpush {

namespace {

constexpr size_t kMaxNameLength = 128;
constexpr const char* kBootIdFile = "/proc/sys/kernel/random/boot_id";

}  // namespace

uint64_t take_slot(uint64_t& next, uint64_t interval_ns) {
    const uint64_t slot = std::max({SharedBudgets::now_ns(), next, uint64_t{1}});
    next = saturating_add(slot, interval_ns);
    return slot;
}

// One budget of this process: `mutex` serialises its threads, `next` is its next free slot as
// this process last saw it.
struct SharedBudgets::Budget {
    std::mutex mutex;
    uint64_t next = 0;
};

SharedBudgets& SharedBudgets::process() {
    // Never destroyed: a plugin thread may still reserve a slot while the process exits.
    static SharedBudgets* const instance = new SharedBudgets;
    return *instance;
}

SharedBudgets::SharedBudgets() = default;
SharedBudgets::~SharedBudgets() = default;

void SharedBudgets::use_state_file(const std::string& location) {
    std::string key = location;
    const bool postgres = postgres::is_postgres_location(location);
    if (!postgres) {
        std::filesystem::path directory = std::filesystem::path(location).parent_path();
        if (directory.empty()) directory = ".";
        key = (directory / "budgets").string();
    }
    std::lock_guard<std::mutex> guard(sharing_mutex_);
    if (key == sharing_key_) return;  // the same place: keep its files, connection and warning given
    sharing_key_ = key;
    sharing_ = postgres ? make_budget_table(key) : make_budget_files(key);
}

std::shared_ptr<BudgetSharing> SharedBudgets::sharing() {
    std::lock_guard<std::mutex> guard(sharing_mutex_);
    return sharing_;
}

bool SharedBudgets::valid_name(const char* budget) {
    if (!budget) return false;
    size_t length = 0;
    for (const char* c = budget; *c; ++c, ++length) {
        const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                        *c == '_' || *c == '-';
        if (!ok || length >= kMaxNameLength) return false;
    }
    const std::string_view name(budget, length);
    return length > 0 && name != "." && name != "..";
}

uint64_t SharedBudgets::now_ns() {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
}

const std::string& SharedBudgets::boot_id() {
    static const std::string id = [] {
        std::ifstream in(kBootIdFile);
        std::string text;
        std::getline(in, text);
        // A uuid; anything else (a space would break the file format) counts as unreadable.
        const bool ok = !text.empty() && text.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos;
        return ok ? text : std::string();
    }();
    return id;
}

SharedBudgets::Budget& SharedBudgets::budget(const std::string& name) {
    std::lock_guard<std::mutex> guard(budgets_mutex_);
    auto& slot = budgets_[name];
    if (!slot) slot = std::make_unique<Budget>();
    return *slot;  // never erased, so the reference stays valid
}

uint64_t SharedBudgets::reserve_slot(const char* budget, uint64_t interval_ns) {
    if (!valid_name(budget)) return 0;
    Budget& entry = this->budget(budget);
    const std::shared_ptr<BudgetSharing> shared = sharing();
    std::lock_guard<std::mutex> guard(entry.mutex);
    return shared ? shared->reserve_slot(budget, entry.next, interval_ns) : take_slot(entry.next, interval_ns);
}

void SharedBudgets::hold_budget(const char* budget, uint64_t until_ns) {
    if (!valid_name(budget)) return;
    Budget& entry = this->budget(budget);
    const std::shared_ptr<BudgetSharing> shared = sharing();
    std::lock_guard<std::mutex> guard(entry.mutex);
    if (shared) {
        shared->hold_budget(budget, entry.next, until_ns);
    } else {
        hold_until(entry.next, until_ns);
    }
}

}  // namespace segpush
