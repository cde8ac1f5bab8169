// How SharedBudgets shares a budget beyond this process: through flock()ed files beside an
// SQLite state file (budget_files.cpp), or through the `budgets` table of a PostgreSQL state
// (budget_postgres.cpp). Internal to SharedBudgets (shared_budgets.hpp says what each promises).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

namespace segpush {

// Each call runs under the budget's in-process mutex, with `next`: the budget's next free slot
// as this process sees it (steady_clock ns). A sharing that cannot reach its store for a budget
// still hands out real slots, from `next` alone (take_slot, hold_until), and keeps `next` up to
// date whatever it does, so a later fall-back continues where the shared budget was.
class BudgetSharing {
public:
    virtual ~BudgetSharing() = default;
    virtual uint64_t reserve_slot(const std::string& name, uint64_t& next, uint64_t interval_ns) = 0;
    virtual void hold_budget(const std::string& name, uint64_t& next, uint64_t until_ns) = 0;
};

// `directory`: the budgets folder (`<state directory>/budgets`), made on first use.
std::unique_ptr<BudgetSharing> make_budget_files(std::string directory);
// `location`: a postgresql:// state location; connects on first use.
std::unique_ptr<BudgetSharing> make_budget_table(std::string location);

inline uint64_t saturating_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// The in-process steps. A slot is never 0 (it would mean "cannot share" to plugins).
uint64_t take_slot(uint64_t& next, uint64_t interval_ns);
inline void hold_until(uint64_t& next, uint64_t until_ns) { next = std::max(next, until_ns); }

}  // namespace segpush
