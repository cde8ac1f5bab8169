#include "state/postgres_state_store.hpp"

#include "log/log.hpp"
#include "state/postgres_schema.hpp"
#include "state/receipt_members.hpp"

namespace segpush {

namespace {

void log_retry(const postgres::Error& error, const StateOptions& options) {
    log_line(LogLevel::warn, "state: " + std::string(error.what()) + "; trying again (for up to " +
                                 std::to_string(options.patience.count()) + " s)");
}

int64_t migrated(postgres::Connection& db, const StateOptions& options) {
    int64_t found = 0;
    db.retrying([&] { found = migrate_postgres_schema(db); }, options.patience,
                [&](const postgres::Error& error) { log_retry(error, options); });
    return found;
}

// Write transactions here (recording a batch, claiming a run, a migration, forgetting) take round
// trips only, never a wait on anything else, so one left idle for a whole lease belongs to a
// process that was stopped or cut off. The server ends it, and its locks (its run's row, its
// members' rows) go to whoever takes its run over once the lease has run out. A live process that
// is merely slow has its transaction tried again, as after a lost connection.
postgres::Connection& with_idle_writes_ended(postgres::Connection& db, const StateOptions& options) {
    db.end_idle_write_transactions_after(options.lease);
    return db;
}

}  // namespace

PostgresStateStore::PostgresStateStore(const std::string& conninfo, const StateOptions& options)
    : db_(conninfo, options.patience, [&options](const postgres::Error& error) { log_retry(error, options); }),
      found_version_(migrated(with_idle_writes_ended(db_, options), options)),
      history_(db_, conninfo, options),
      delivered_(db_, options),
      options_(options) {}

StateStore::Forgotten PostgresStateStore::forget_members(const std::set<std::string>& keys) {
    Forgotten forgotten;
    db_.retrying(
        [&] {
            forgotten = Forgotten{};
            postgres::Transaction transaction(db_);
            // Until this commits, no run can be claimed (begin_run inserts into runs) nor renew
            // its lease; runs already live are found below and refuse the forgetting.
            db_.exec("LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE");
            const std::vector<RunRecord> live = history_.live_runs();
            if (!live.empty()) {
                const RunRecord& run = live.front();
                throw AlreadyRunning(run, "export '" + run.export_name + "' is running as run #" +
                                              std::to_string(run.id) + " (pid " + std::to_string(run.pid) + " on " +
                                              run.hostname +
                                              "); forget once it has finished, or it may record the people again");
            }
            history_.close_abandoned_runs();
            for (const std::string& key : keys) {
                const postgres::Params by_key = postgres::Params().add_bytes(key);
                forgotten.delivered += db_.exec("DELETE FROM delivered WHERE member_key = $1", by_key).affected();
                forgotten.removals += db_.exec("DELETE FROM removals WHERE member_key = $1", by_key).affected();
                forgotten.refusals += db_.exec("DELETE FROM refused WHERE member_key = $1", by_key).affected();
            }
            // Receipts keep their members' keys in a blob: each is written again without them.
            const postgres::Result receipts = db_.exec("SELECT id, members FROM unconfirmed");
            for (int row = 0; row < receipts.rows(); ++row) {
                int64_t dropped = 0;
                const std::string kept = receipt_members_without(receipts.bytes(row, 1), keys, dropped);
                if (dropped == 0) continue;
                forgotten.awaiting_import += dropped;
                const int64_t id = receipts.integer(row, 0);
                if (kept.empty()) {
                    db_.exec("DELETE FROM unconfirmed WHERE id = $1", postgres::Params().add(id));
                } else {
                    db_.exec("UPDATE unconfirmed SET members = $1 WHERE id = $2",
                             postgres::Params().add_bytes(kept).add(id));
                }
            }
            forgotten.run_errors = history_.redact_from_errors(keys);
            transaction.commit();
        },
        options_.patience, [&](const postgres::Error& error) { log_retry(error, options_); });
    // PostgreSQL keeps a deleted row's bytes until its page is reused, and in its write-ahead log
    // and whatever backs the server up: those are the server's operators' to expire.
    return forgotten;
}

}  // namespace segpush
