// Budgets shared through a PostgreSQL state's `budgets` table (name, next_slot), for replicas
// on several hosts. Each reservation or hold is one statement, atomic on the server, and no
// lock is held between statements. Slots are counted in the server's clock alone, since the
// replicas' clocks may disagree; each answer says how long from the server's now the slot is,
// and that wait is added to this process's steady clock.
//
// Converting a server time to a local one cannot be exact: the server read its clock somewhere
// between the statement's sending and its answer's arrival. Both conversions err on the late
// side, which never overruns a budget: a slot's wait is added to the local time the answer
// arrived (not earlier than the server's reading), and a hold's remaining time is measured from
// the local time before sending (not later than the server's reading). So consecutive slots are
// at least `interval` apart on the server, and their local deadlines are too, less the time
// one answer took to come back.
#include <chrono>
#include <mutex>

#include "log/log.hpp"
#include "plugins/budget_sharing.hpp"
#include "plugins/shared_budgets.hpp"
#include "state/postgres.hpp"
#include "state/postgres_schema.hpp"

namespace segpush {

namespace {

// How long a lost connection is tried again before this process paces on its own; and how long
// it then paces on its own before trying the server again. Plugins' threads wait meanwhile.
constexpr std::chrono::seconds kPatience{10};
constexpr std::chrono::seconds kRetryAfter{60};

// The budget's row is made or updated in one INSERT ... ON CONFLICT DO UPDATE: the row lock it
// takes makes a concurrent caller's statement wait for this one's end, then update the newest
// next_slot, so no two callers ever get the same slot. The server's clock is read once (the
// CTE), before the row lock; the slot is GREATEST(next_slot, that reading) and next_slot
// becomes slot + interval. The answer is the slot's wait from that reading, in microseconds
// (timestamptz's resolution), never negative. A reading made before waiting for the lock is
// earlier than the server's true now, which only lengthens the wait.
const char* const kReserveSlot = R"sql(
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now)
INSERT INTO budgets AS b(name, next_slot)
SELECT $1, clock.now + $2::bigint * interval '1 microsecond' FROM clock
ON CONFLICT (name) DO UPDATE
    SET next_slot = GREATEST(b.next_slot + $2::bigint * interval '1 microsecond', excluded.next_slot)
RETURNING ceil(extract(epoch FROM b.next_slot - $2::bigint * interval '1 microsecond'
                                 - (SELECT now FROM clock)) * 1000000)::bigint
)sql";

// No slot before the server's now + $2 microseconds; a hold never shortens an earlier one.
const char* const kHoldBudget = R"sql(
INSERT INTO budgets AS b(name, next_slot) VALUES($1, clock_timestamp() + $2::bigint * interval '1 microsecond')
ON CONFLICT (name) DO UPDATE SET next_slot = GREATEST(b.next_slot, excluded.next_slot)
)sql";

// libpq's messages run over several lines ("...failed: Connection refused\n\tIs the server
// running..."): one log line takes them with each run of blanks made one space.
std::string one_line(const std::string& text) {
    std::string line;
    for (const char c : text) {
        const bool blank = c == '\n' || c == '\t' || c == ' ' || c == '\r';
        if (!blank) {
            line.push_back(c);
        } else if (!line.empty() && line.back() != ' ') {
            line.push_back(' ');
        }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
}

int64_t microseconds_rounded_up(uint64_t ns) { return static_cast<int64_t>(ns / 1000 + (ns % 1000 != 0)); }

class BudgetTable final : public BudgetSharing {
public:
    explicit BudgetTable(std::string location)
        : location_(std::move(location)), described_as_(postgres::described_as(location_)) {}

    uint64_t reserve_slot(const std::string& name, uint64_t& next, uint64_t interval_ns) override {
        const int64_t interval_us = microseconds_rounded_up(interval_ns);
        int64_t wait_us = 0;
        const bool shared = run([&](postgres::Connection& db) {
            wait_us = db.exec(kReserveSlot, postgres::Params().add(name).add(interval_us)).integer(0, 0);
        });
        if (!shared) return take_slot(next, interval_ns);
        const uint64_t wait_ns = static_cast<uint64_t>(std::max<int64_t>(wait_us, 0)) * 1000;
        const uint64_t slot = std::max(saturating_add(SharedBudgets::now_ns(), wait_ns), uint64_t{1});
        next = std::max(next, saturating_add(slot, interval_ns));
        return slot;
    }

    void hold_budget(const std::string& name, uint64_t& next, uint64_t until_ns) override {
        hold_until(next, until_ns);
        const uint64_t now = SharedBudgets::now_ns();
        if (until_ns <= now) return;  // over already: no slot would start later for it
        const int64_t remaining_us = microseconds_rounded_up(until_ns - now);
        run([&](postgres::Connection& db) { db.exec(kHoldBudget, postgres::Params().add(name).add(remaining_us)); });
    }

private:
    // Runs `statement` on the server (connecting and migrating the schema first if needed) and
    // returns true; false when the budget is not shared now: the server cannot be reached, or
    // refused the statement. A new connection is tried once: when it fails, budgets pace in
    // this process at once and the server is tried again a minute later, so plugins' threads
    // never queue on a server that is down. A connection lost while in use is tried again for
    // kPatience, long enough for a server restart. A connection lost after the server ran a
    // reservation makes the next try reserve again: a slot goes unused, never overrunning.
    template <typename Statement>
    bool run(Statement statement) {
        std::lock_guard<std::mutex> guard(mutex_);
        if (!db_) {
            if (failing_ && std::chrono::steady_clock::now() < retry_at_) return false;
            try {
                db_ = std::make_unique<postgres::Connection>(location_);
                migrate_postgres_schema(*db_);
            } catch (const std::exception& error) {
                db_.reset();
                fall_back(error.what());
                return false;
            }
        }
        try {
            db_->retrying([&] { statement(*db_); }, kPatience);
        } catch (const std::exception& error) {
            db_.reset();
            fall_back(error.what());
            return false;
        }
        if (failing_) {
            failing_ = false;
            log_line(LogLevel::info, "request budgets: shared again through " + described_as_);
        }
        return true;
    }

    // Under mutex_: one warning per outage. The errors of postgres:: name the server by host,
    // port and database, never with the password; others get that name added.
    void fall_back(const std::string& why) {
        if (!failing_) {
            const std::string what = why.find(described_as_) != std::string::npos
                                         ? one_line(why)
                                         : "cannot use " + described_as_ + ": " + one_line(why);
            log_line(LogLevel::warn, "request budgets: " + what +
                                         "; exports of this process pace together, but not with other segpush "
                                         "processes using the same state database, until it can be used again");
        }
        failing_ = true;
        retry_at_ = std::chrono::steady_clock::now() + kRetryAfter;
    }

    const std::string location_;  // may hold the password: never printed
    const std::string described_as_;
    std::mutex mutex_;                          // guards what follows: plugins' threads call in concurrently
    std::unique_ptr<postgres::Connection> db_;  // null until first use, and after a failure
    bool failing_ = false;                      // warned; pacing in-process until retry_at_
    std::chrono::steady_clock::time_point retry_at_;
};

}  // namespace

std::unique_ptr<BudgetSharing> make_budget_table(std::string location) {
    return std::make_unique<BudgetTable>(std::move(location));
}

}  // namespace segpush
