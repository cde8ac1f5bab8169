#pragma once

#include "state/postgres.hpp"
#include "state/postgres_delivered_state.hpp"
#include "state/postgres_run_history.hpp"
#include "state/postgres_schema.hpp"
#include "state/state_store.hpp"

namespace segpush {

// The shared state: one PostgreSQL database holding the run history and the delivered state
// of every replica, over one connection per process (runs' heartbeats and request budgets open
// their own). Opening it migrates the schema (postgres_schema.hpp).
class PostgresStateStore : public StateStore {
public:
    PostgresStateStore(const std::string& conninfo, const StateOptions& options);

    RunHistory& history() override { return history_; }
    DeliveredState& delivered() override { return delivered_; }
    // PostgreSQL keeps deleted rows' bytes until VACUUM reuses their space, and in its
    // write-ahead log and backups: forgetting removes people from every table, not from those.
    Forgotten forget_members(const std::set<std::string>& keys) override;
    SchemaVersions schema_versions() const override { return {found_version_, kPostgresSchemaVersion}; }
    const char* backend_name() const override { return "PostgreSQL"; }

private:
    postgres::Connection db_;
    int64_t found_version_;  // the schema is migrated before the parts below are built on it
    PostgresRunHistory history_;
    PostgresDeliveredState delivered_;
    StateOptions options_;
};

}  // namespace segpush
