#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "state/postgres.hpp"
#include "state/run_history.hpp"
#include "state/state_store.hpp"

namespace segpush {

// The run history in the PostgreSQL state database (table runs: postgres_schema.cpp), shared
// by every replica. A running run holds a lease: its process renews the run's heartbeat from
// a thread of its own (on a connection of its own) until finish_run; a run whose heartbeat is
// older than its lease is abandoned, whichever host ran it, and the next begin_run of its
// export closes it as failed_retryable and continues from its checkpoint.
class PostgresRunHistory : public RunHistory {
public:
    // `db` must have the schema and outlive this object; `conninfo` opens the heartbeat's connection.
    PostgresRunHistory(postgres::Connection& db, std::string conninfo, const StateOptions& options);
    ~PostgresRunHistory() override;

    Claim begin_run(const std::string& export_name, bool full, bool dry_run) override;
    void finish_run(int64_t run_id, RunStatus status, const RunCounts& counts, const std::string& error,
                    const std::string& report_path) override;
    std::vector<RunRecord> list_runs(const std::string& export_name, int limit) override;
    std::optional<RunRecord> get_run(int64_t id) override;
    std::vector<RunRecord> live_runs() override;
    std::vector<RunRecord> abandoned_runs() override;
    // Held while the last renewal, by this host's steady clock, is recent enough that the lease
    // cannot have run out at the server yet (a third of a lease to spare).
    Lease lease(int64_t run_id) const override;
    // Closes the runs abandoned_runs() lists, as begin_run would: for forgetting people, in the
    // caller's transaction, so that a holder that was only paused cannot come back, renew its
    // lease and record the people again.
    void close_abandoned_runs();
    int64_t redact_from_errors(const std::set<std::string>& keys) override;
    bool claim_slot(const std::string& export_name, const std::string& due_at_utc, const std::string& claimer) override;

private:
    // The runs recorded as running whose process is alive (`alive`), or gone.
    std::vector<RunRecord> recorded_running(bool alive);
    class Heartbeat;

    // Runs `work` on db_, again on a new connection when it was lost (for up to options_.patience).
    void retrying(const std::function<void()>& work);
    // Stops and joins the heartbeat of `run_id`, if it has one.
    void stop_heartbeat(int64_t run_id);

    postgres::Connection& db_;
    std::string conninfo_;
    StateOptions options_;
    // The heartbeats of this object's running runs, by run id. Touched only by the thread that
    // uses this object, like db_.
    mutable std::mutex heartbeats_mutex_;  // lease() is asked from other threads
    std::map<int64_t, std::unique_ptr<Heartbeat>> heartbeats_;
};

}  // namespace segpush
