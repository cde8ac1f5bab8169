#include "state/postgres_run_history.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "log/log.hpp"
#include "secrets/redactor.hpp"
#include "state/process_liveness.hpp"

namespace segpush {

namespace {

// The server's time as the run history writes it (UTC, "2026-01-31T12:00:00Z"): every replica
// stamps runs by one clock.
const char* const kNowUtc = "to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

// read_run's columns; kRunColumnCount of them.
const char* const kRunColumns =
    "id, export, status, started_at, COALESCE(finished_at, ''), COALESCE(pid, 0), COALESCE(hostname, ''), full_run, "
    "dry_run, rows_read, invalid, duplicates, members, new_members, changed, unchanged, leaving, sent, accepted, "
    "rejected, removed, suppressed, resumed, pending, rejected_retried, rejected_held, COALESCE(error, ''), "
    "COALESCE(report_path, '')";
constexpr int kRunColumnCount = 28;

// After kRunColumns, what judges a running run: its process's identity, whether its lease holds
// (by the server's clock), how long since its last heartbeat and its lease, in seconds.
const char* const kLeaseColumns =
    ", COALESCE(process_identity, ''), "
    "COALESCE(heartbeat_at > statement_timestamp() - lease_seconds * interval '1 second', false), "
    "COALESCE(EXTRACT(EPOCH FROM statement_timestamp() - heartbeat_at)::bigint, 0), COALESCE(lease_seconds, 0)";

RunRecord read_run(const postgres::Result& rows, int row) {
    RunRecord run;
    run.id = rows.integer(row, 0);
    run.export_name = std::string(rows.text(row, 1));
    run.status = run_status_from(std::string(rows.text(row, 2)));
    run.started_at = std::string(rows.text(row, 3));
    run.finished_at = std::string(rows.text(row, 4));
    run.pid = rows.integer(row, 5);
    run.hostname = std::string(rows.text(row, 6));
    run.full = rows.boolean(row, 7);
    run.dry_run = rows.boolean(row, 8);
    RunCounts& c = run.counts;
    int64_t* fields[] = {&c.rows_read,  &c.invalid, &c.duplicates, &c.members,          &c.new_members,  &c.changed,
                         &c.unchanged,  &c.leaving, &c.sent,       &c.accepted,         &c.rejected,     &c.removed,
                         &c.suppressed, &c.resumed, &c.pending,    &c.rejected_retried, &c.rejected_held};
    constexpr int kCounts = sizeof fields / sizeof fields[0];
    for (int i = 0; i < kCounts; ++i) *fields[i] = rows.integer(row, 9 + i);
    run.error = std::string(rows.text(row, 9 + kCounts));
    run.report_path = std::string(rows.text(row, 10 + kCounts));
    static_assert(11 + kCounts == kRunColumnCount, "read_run reads every column of kRunColumns");
    return run;
}

// A running run read with kLeaseColumns, judged: alive, or why it is not (the error it is
// closed with).
struct Judged {
    RunRecord run;
    std::string abandoned;  // empty: alive
};

Judged judge(const postgres::Result& rows, int row) {
    Judged judged{read_run(rows, row), {}};
    const RunRecord& run = judged.run;
    const std::string identity(rows.text(row, kRunColumnCount));
    const bool leased = rows.boolean(row, kRunColumnCount + 1);
    const std::string process = "process " + std::to_string(run.pid) + " on " + run.hostname;
    // On this host the process itself says whether it is gone, sooner than its lease would.
    if (can_see_process(run.hostname, identity) && !process_alive(run.pid, identity)) {
        judged.abandoned = "interrupted: " + process + " stopped without finishing";
    } else if (!leased) {
        judged.abandoned = "interrupted: the lease of " + process + " ran out: no heartbeat for " +
                           std::to_string(rows.integer(row, kRunColumnCount + 2)) +
                           " s (lease: " + std::to_string(rows.integer(row, kRunColumnCount + 3)) + " s)";
    }
    return judged;
}

AlreadyRunning already_running(const RunRecord& run) {
    return AlreadyRunning(run, "export '" + run.export_name + "' is already running as run #" + std::to_string(run.id) +
                                   " (pid " + std::to_string(run.pid) + " on " + run.hostname + ", started " +
                                   run.started_at + ")");
}

}  // namespace

// Renews a running run's lease from a thread of its own, over a connection of its own (a
// Connection is not shared between threads), every third of the lease: a renewal may fail
// twice before the lease runs out.
class PostgresRunHistory::Heartbeat {
public:
    Heartbeat(const std::string& conninfo, int64_t run_id, std::chrono::seconds lease)
        : conninfo_(conninfo), run_id_(run_id), lease_(lease), context_(LogRunScope::current()), thread_([this] {
              beat();
          }) {}

    ~Heartbeat() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

    RunHistory::Lease lease() const {
        if (lost_) return RunHistory::Lease::lost;
        const auto renewed = std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(renewed_.load()));
        const auto spare = std::chrono::duration_cast<std::chrono::steady_clock::duration>(lease_) / 3;
        return std::chrono::steady_clock::now() < renewed + lease_ - spare ? RunHistory::Lease::held
                                                                           : RunHistory::Lease::renewing;
    }

private:
    void beat() {
        LogRunScope scope(context_);
        LogRunScope::set_run_id(run_id_);
        const auto every = std::max(std::chrono::milliseconds(100), std::chrono::milliseconds(lease_) / 3);
        std::unique_ptr<postgres::Connection> db;
        bool failing = false;
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                if (wake_.wait_for(lock, every, [this] { return stopping_; })) return;
            }
            try {
                if (!db) db = std::make_unique<postgres::Connection>(conninfo_);
                // Taken before the statement: the server's now() is at or after it, so the lease
                // runs out no sooner than `sent` + lease by this host's clock.
                const auto sent = std::chrono::steady_clock::now();
                const postgres::Result renewed = db->exec(
                    "UPDATE runs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'",
                    postgres::Params().add(run_id_));
                if (renewed.affected() == 0) {
                    lost_ = true;
                    log_line(LogLevel::error,
                             "run #" + std::to_string(run_id_) +
                                 " lost its lease: another process closed it after it had had no heartbeat for over " +
                                 std::to_string(lease_.count()) +
                                 " s, and may run its export now; this run's end will not be recorded");
                    return;
                }
                renewed_ = sent.time_since_epoch().count();
                if (failing)
                    log_line(LogLevel::info, "run #" + std::to_string(run_id_) + ": its lease is renewed again");
                failing = false;
            } catch (const std::exception& error) {
                // Tried again at the next beat, on a new connection; said once until a renewal succeeds.
                if (!failing) {
                    log_line(LogLevel::warn, "cannot renew the lease of run #" + std::to_string(run_id_) +
                                                 " (another process may take its export over once it has had no "
                                                 "heartbeat for " +
                                                 std::to_string(lease_.count()) + " s): " + error.what());
                }
                failing = true;
                db.reset();
            }
        }
    }

    const std::string conninfo_;
    const int64_t run_id_;
    const std::chrono::seconds lease_;
    const LogRunScope::Context context_;
    // When the last renewal was sent (begin_run's insert counts as one), steady clock ticks.
    std::atomic<std::chrono::steady_clock::rep> renewed_{std::chrono::steady_clock::now().time_since_epoch().count()};
    std::atomic<bool> lost_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;  // last: it starts once the members it reads are set
};

PostgresRunHistory::PostgresRunHistory(postgres::Connection& db, std::string conninfo, const StateOptions& options)
    : db_(db), conninfo_(std::move(conninfo)), options_(options) {}

PostgresRunHistory::~PostgresRunHistory() = default;  // joins the heartbeats

void PostgresRunHistory::retrying(const std::function<void()>& work) {
    // Inside a transaction the caller opened (PostgresStateStore::forget_members), a lost
    // connection took the caller's earlier statements with it: only the caller can start over.
    if (PQtransactionStatus(db_.handle()) != PQTRANS_IDLE && PQstatus(db_.handle()) == CONNECTION_OK) {
        work();
        return;
    }
    db_.retrying(work, options_.patience, [this](const postgres::Error& error) {
        log_line(LogLevel::warn, "run history: " + std::string(error.what()) + "; trying again (for up to " +
                                     std::to_string(options_.patience.count()) + " s)");
    });
}

void PostgresRunHistory::stop_heartbeat(int64_t run_id) {
    std::lock_guard<std::mutex> lock(heartbeats_mutex_);
    heartbeats_.erase(run_id);
}

void PostgresRunHistory::close_abandoned_runs() {
    for (const RunRecord& run : abandoned_runs()) {
        retrying([&] {
            db_.exec(std::string("UPDATE runs SET status = $1, finished_at = ") + kNowUtc +
                         ", error = $2 WHERE id = $3 AND status = 'running'",
                     postgres::Params()
                         .add(to_string(RunStatus::failed_retryable))
                         .add("interrupted: process " + std::to_string(run.pid) + " on " + run.hostname +
                              " stopped renewing its lease, and people were forgotten meanwhile")
                         .add(run.id));
        });
    }
}

RunHistory::Lease PostgresRunHistory::lease(int64_t run_id) const {
    std::lock_guard<std::mutex> lock(heartbeats_mutex_);
    const auto heartbeat = heartbeats_.find(run_id);
    return heartbeat == heartbeats_.end() ? Lease::lost : heartbeat->second->lease();
}

RunHistory::Claim PostgresRunHistory::begin_run(const std::string& export_name, bool full, bool dry_run) {
    const std::string hostname = this_hostname();
    const int64_t pid = getpid();
    const std::string identity = process_identity(pid);
    Claim claim;
    retrying([&] {
        claim = Claim{};
        postgres::Transaction transaction(db_);
        // Claims of one export queue here, so the check and the insert below are atomic. The lock
        // is the transaction's, not the session's: a session lock would be held by a replica
        // whose network was cut for as long as TCP takes to notice (many minutes), whereas the
        // claim itself is the run's row and its lease, which any replica can judge by the
        // server's clock, and which operators see in `runs list`.
        db_.exec("SELECT pg_advisory_xact_lock(hashtext('segpush:' || $1))", postgres::Params().add(export_name));
        const postgres::Result running = db_.exec(std::string("SELECT ") + kRunColumns + kLeaseColumns +
                                                      " FROM runs WHERE export = $1 AND status = 'running' ORDER BY id "
                                                      // Locked, and read as last committed: a holder finishing or
                                                      // renewing its lease meanwhile is seen so, never closed over.
                                                      "FOR UPDATE",
                                                  postgres::Params().add(export_name));
        for (int row = 0; row < running.rows(); ++row) {
            const Judged judged = judge(running, row);
            if (judged.abandoned.empty()) throw already_running(judged.run);
            db_.exec(std::string("UPDATE runs SET status = $1, finished_at = ") + kNowUtc +
                         ", error = $2 WHERE id = $3",
                     postgres::Params()
                         .add(to_string(RunStatus::failed_retryable))
                         .add(judged.abandoned)
                         .add(judged.run.id));
        }
        if (full && !dry_run) {
            // A --full run that did not finish is continued by the next --full run: members it
            // already delivered are not sent again.
            const postgres::Result last = db_.exec("SELECT id, baseline, status, full_run FROM runs WHERE export = $1 "
                                                   "AND NOT dry_run ORDER BY id DESC LIMIT 1",
                                                   postgres::Params().add(export_name));
            if (last.rows() == 1 && last.boolean(0, 3)) {
                const RunStatus status = run_status_from(std::string(last.text(0, 2)));
                if (!ran_to_end(status) && status != RunStatus::failed_permanent) {
                    claim.continues = last.integer(0, 0);
                    claim.baseline = last.integer(0, 1);
                }
            }
        }
        const postgres::Result inserted = db_.exec(
            std::string("INSERT INTO runs(export, status, started_at, pid, hostname, full_run, dry_run, baseline, "
                        "process_identity, heartbeat_at, lease_seconds) VALUES($1, 'running', ") +
                kNowUtc + ", $2, $3, $4, $5, $6, $7, now(), $8) RETURNING id",
            postgres::Params()
                .add(export_name)
                .add(pid)
                .add(hostname)
                .add(full)
                .add(dry_run)
                .add(claim.baseline)
                .add(identity)
                .add(static_cast<int64_t>(options_.lease.count())));
        claim.run_id = inserted.integer(0, 0);
        if (full && !dry_run && !claim.continues) {
            claim.baseline = claim.run_id;
            db_.exec("UPDATE runs SET baseline = $1 WHERE id = $1", postgres::Params().add(claim.run_id));
        }
        transaction.commit();
    });
    // Dry runs too: they hold the export while they run, like any other.
    auto heartbeat = std::make_unique<Heartbeat>(conninfo_, claim.run_id, options_.lease);
    std::lock_guard<std::mutex> lock(heartbeats_mutex_);
    heartbeats_[claim.run_id] = std::move(heartbeat);
    return claim;
}

void PostgresRunHistory::finish_run(int64_t run_id, RunStatus status, const RunCounts& counts, const std::string& error,
                                    const std::string& report_path) {
    // Renewing stops first: while the database cannot be reached, neither the heartbeat nor this
    // record gets through, so the lease gains nothing from the heartbeat running longer.
    stop_heartbeat(run_id);
    const RunCounts& c = counts;
    const int64_t values[] = {c.rows_read,  c.invalid, c.duplicates, c.members,          c.new_members,  c.changed,
                              c.unchanged,  c.leaving, c.sent,       c.accepted,         c.rejected,     c.removed,
                              c.suppressed, c.resumed, c.pending,    c.rejected_retried, c.rejected_held};
    const char* const names[] = {"rows_read",  "invalid", "duplicates", "members",          "new_members",  "changed",
                                 "unchanged",  "leaving", "sent",       "accepted",         "rejected",     "removed",
                                 "suppressed", "resumed", "pending",    "rejected_retried", "rejected_held"};
    static_assert(sizeof values / sizeof values[0] == sizeof names / sizeof names[0], "a name for each count");
    std::string sql = "UPDATE runs SET ";
    postgres::Params params;
    int next = 1;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; ++i) {
        sql += std::string(names[i]) + " = $" + std::to_string(next++) + ", ";
        params.add(values[i]);
    }
    const std::string status_at = "$" + std::to_string(next), error_at = "$" + std::to_string(next + 1),
                      report_at = "$" + std::to_string(next + 2), id_at = "$" + std::to_string(next + 3);
    sql += "status = " + status_at + ", finished_at = " + kNowUtc + ", error = " + error_at +
           ", report_path = " + report_at + " WHERE id = " + id_at +
           // A run another process closed after its lease ran out keeps that record: that process's
           // run has carried on from this one's checkpoints, and counts what it finds of its work.
           " AND status = 'running'";
    params.add(to_string(status));
    // The error may come from a plugin or a server, which may echo a secret: it is scrubbed
    // before it reaches the database or `runs show`.
    if (error.empty()) params.add_null();
    else params.add(Redactor::instance().scrub(error));
    if (report_path.empty()) params.add_null();
    else params.add(report_path);
    params.add(run_id);
    int64_t recorded = 0;
    retrying([&] { recorded = db_.exec(sql, params).affected(); });
    if (recorded == 0) {
        log_line(LogLevel::warn, "run #" + std::to_string(run_id) + " ended " + to_string(status) +
                                     ", but another process had closed it already (its lease had run out): the "
                                     "history keeps that process's record");
    }
}

std::vector<RunRecord> PostgresRunHistory::list_runs(const std::string& export_name, int limit) {
    std::vector<RunRecord> runs;
    retrying([&] {
        runs.clear();
        postgres::Params params;
        params.add(static_cast<int64_t>(limit));
        if (!export_name.empty()) params.add(export_name);
        const postgres::Result rows = db_.exec(std::string("SELECT ") + kRunColumns + " FROM runs" +
                                                   (export_name.empty() ? "" : " WHERE export = $2") +
                                                   " ORDER BY id DESC LIMIT $1",
                                               params);
        for (int row = 0; row < rows.rows(); ++row) runs.push_back(read_run(rows, row));
    });
    return runs;
}

std::optional<RunRecord> PostgresRunHistory::get_run(int64_t id) {
    std::optional<RunRecord> run;
    retrying([&] {
        const postgres::Result rows = db_.exec(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = $1",
                                               postgres::Params().add(id));
        run.reset();
        if (rows.rows() == 1) run = read_run(rows, 0);
    });
    return run;
}

std::vector<RunRecord> PostgresRunHistory::live_runs() { return recorded_running(true); }

std::vector<RunRecord> PostgresRunHistory::abandoned_runs() { return recorded_running(false); }

std::vector<RunRecord> PostgresRunHistory::recorded_running(bool alive) {
    std::vector<RunRecord> runs;
    retrying([&] {
        runs.clear();
        const postgres::Result running = db_.exec(std::string("SELECT ") + kRunColumns + kLeaseColumns +
                                                  " FROM runs WHERE status = 'running' ORDER BY id");
        for (int row = 0; row < running.rows(); ++row) {
            Judged judged = judge(running, row);
            if (judged.abandoned.empty() == alive) runs.push_back(std::move(judged.run));
        }
    });
    return runs;
}

int64_t PostgresRunHistory::redact_from_errors(const std::set<std::string>& keys) {
    int64_t changed = 0;
    retrying([&] {
        const postgres::Result errors = db_.exec("SELECT id, error FROM runs WHERE error IS NOT NULL");
        std::vector<std::pair<int64_t, std::string>> cleaned;
        for (int row = 0; row < errors.rows(); ++row) {
            if (auto masked = error_without_keys(std::string(errors.text(row, 1)), keys)) {
                cleaned.emplace_back(errors.integer(row, 0), *masked);
            }
        }
        // The changes and the count together: one transaction, unless the caller's holds them already.
        const bool own = PQtransactionStatus(db_.handle()) == PQTRANS_IDLE;
        std::unique_ptr<postgres::Transaction> transaction;
        if (own) transaction = std::make_unique<postgres::Transaction>(db_);
        for (const auto& [id, error] : cleaned) {
            db_.exec("UPDATE runs SET error = $1 WHERE id = $2", postgres::Params().add(error).add(id));
        }
        if (transaction) transaction->commit();
        changed = static_cast<int64_t>(cleaned.size());
    });
    return changed;
}

bool PostgresRunHistory::claim_slot(const std::string& export_name, const std::string& due_at_utc,
                                    const std::string& claimer) {
    bool claimed = false;
    retrying([&] {
        db_.exec("DELETE FROM schedule_slots WHERE claimed_at < now() - interval '7 days'");
        // Of claims made at once, the first insert wins; the others wait for it, then insert nothing.
        db_.exec("INSERT INTO schedule_slots(export, due_at, claimed_by) VALUES($1, $2, $3) ON CONFLICT DO NOTHING",
                 postgres::Params().add(export_name).add(due_at_utc).add(claimer));
        const postgres::Result holder = db_.exec(
            "SELECT claimed_by FROM schedule_slots WHERE export = $1 AND due_at = $2",
            postgres::Params().add(export_name).add(due_at_utc));
        claimed = holder.rows() == 1 && holder.text(0, 0) == claimer;
    });
    return claimed;
}

}  // namespace segpush
