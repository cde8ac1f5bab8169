#include "state/sqlite_state_store.hpp"

#include <filesystem>

#include "state/postgres_schema.hpp"
#include "state/postgres_state_store.hpp"
#include "state/receipt_members.hpp"

namespace segpush {

std::unique_ptr<StateStore> open_state_store(const std::string& location, const StateOptions& options) {
    if (postgres::is_postgres_location(location)) return std::make_unique<PostgresStateStore>(location, options);
    return std::make_unique<SqliteStateStore>(location);
}

StateStore::SchemaVersions peek_schema_versions(const std::string& location) {
    if (postgres::is_postgres_location(location)) {
        postgres::Connection db(location);
        return {postgres_schema_version(db), kPostgresSchemaVersion};
    }
    if (!std::filesystem::exists(location)) return {0, StateFile::kSchemaVersion};
    sqlite3* raw = nullptr;
    const int opened = sqlite3_open_v2(location.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
    sqlite3_stmt* raw_statement = nullptr;
    if (opened != SQLITE_OK ||
        sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &raw_statement, nullptr) != SQLITE_OK) {
        throw sqlite::Error("cannot read state file " + location + ": " +
                            (raw ? sqlite3_errmsg(raw) : "out of memory"));
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw_statement, sqlite3_finalize);
    if (sqlite3_step(raw_statement) != SQLITE_ROW) {
        throw sqlite::Error("cannot read state file " + location + ": " + sqlite3_errmsg(raw));
    }
    return {sqlite3_column_int64(raw_statement, 0), StateFile::kSchemaVersion};
}

StateStore::Forgotten SqliteStateStore::forget_members(const std::set<std::string>& keys) {
    sqlite::Database& db = file_.db();
    Forgotten forgotten;
    {
        sqlite::Transaction transaction(db);
        // In this transaction, which holds the state file's write lock: no run starts until it ends.
        const std::vector<RunRecord> live = history_.live_runs();
        if (!live.empty()) {
            const RunRecord& run = live.front();
            throw AlreadyRunning(run, "export '" + run.export_name + "' is running as run #" + std::to_string(run.id) +
                                          " (pid " + std::to_string(run.pid) + " on " + run.hostname +
                                          "); forget once it has finished, or it may record the people again");
        }
        auto exports_delivered = db.prepare("SELECT COUNT(*) FROM (SELECT export FROM delivered WHERE email_key=?1 "
                                            "UNION SELECT export FROM delivered_log WHERE email_key=?1)");
        for (const std::string& key : keys) {
            exports_delivered.bind(1, key).step();
            forgotten.delivered += exports_delivered.integer(0);
            exports_delivered.reset();
            for (const char* table : {"delivered", "delivered_log", "removals"}) {
                db.prepare(std::string("DELETE FROM ") + table + " WHERE email_key=?").bind(1, key).run();
            }
            forgotten.removals += db.changes();  // of the last DELETE, the removals'
            db.prepare("DELETE FROM refused WHERE email_key=?").bind(1, key).run();
            forgotten.refusals += db.changes();
        }
        // Receipts keep their members' keys in a blob: each is written again without them.
        auto receipts = db.prepare("SELECT id, members FROM unconfirmed");
        std::vector<std::pair<int64_t, std::string>> rewritten;
        while (receipts.step()) {
            int64_t dropped = 0;
            std::string kept = receipt_members_without(receipts.blob(1), keys, dropped);
            if (dropped == 0) continue;
            forgotten.awaiting_import += dropped;
            rewritten.emplace_back(receipts.integer(0), std::move(kept));
        }
        receipts.reset();
        for (const auto& [id, members] : rewritten) {
            if (members.empty()) {
                db.prepare("DELETE FROM unconfirmed WHERE id=?").bind(1, id).run();
            } else {
                db.prepare("UPDATE unconfirmed SET members=? WHERE id=?")
                    .bind_blob(1, members.data(), members.size())
                    .bind(2, id)
                    .run();
            }
        }
        forgotten.run_errors = history_.redact_from_errors(keys);
        transaction.commit();
    }
    // Pages freed earlier (by merges, by leavers) may still hold old copies of the rows: the
    // file is rebuilt without them, and the WAL, which holds the pages' earlier versions, is
    // emptied once the rebuilt pages are written back.
    db.exec("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);");
    return forgotten;
}

}  // namespace segpush
