#pragma once

#include "state/run_history.hpp"
#include "state/sqlite.hpp"

namespace segpush {

// The run history in the SQLite state file (its `runs` table), over the connection a
// StateFile opened: it shares that connection, and so its transactions, with the SqliteDeliveredState
// of the same file. A process's liveness is judged by its pid, and on Linux its boot and start
// time (process_liveness.hpp).
class SqliteRunHistory : public RunHistory {
public:
    // `db` must have the state schema (StateFile) and outlive this object.
    explicit SqliteRunHistory(sqlite::Database& db) : db_(db) {}

    // Claims in one IMMEDIATE transaction: SQLite's write lock makes the check and the insert
    // atomic across processes sharing the file.
    Claim begin_run(const std::string& export_name, bool full, bool dry_run) override;
    void finish_run(int64_t run_id, RunStatus status, const RunCounts& counts, const std::string& error,
                    const std::string& report_path) override;
    std::vector<RunRecord> list_runs(const std::string& export_name, int limit) override;
    std::optional<RunRecord> get_run(int64_t id) override;
    // Within a transaction the caller holds on the shared connection, when it must be atomic
    // with what the caller writes there (SqliteStateStore::forget_members).
    std::vector<RunRecord> live_runs() override;
    std::vector<RunRecord> abandoned_runs() override;
    int64_t redact_from_errors(const std::set<std::string>& keys) override;
    bool claim_slot(const std::string& export_name, const std::string& due_at_utc, const std::string& claimer) override;

private:
    // The runs recorded as running whose process is alive (`alive`), or gone.
    std::vector<RunRecord> recorded_running(bool alive);
    sqlite::Database& db_;
};

}  // namespace segpush
