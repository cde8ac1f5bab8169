#pragma once

#include "state/sqlite_delivered_state.hpp"
#include "state/sqlite_run_history.hpp"
#include "state/state_file.hpp"
#include "state/state_store.hpp"

namespace segpush {

// The embedded state: one SQLite file (StateFile) holding the run history and the delivered
// state, over one connection.
class SqliteStateStore : public StateStore {
public:
    explicit SqliteStateStore(const std::string& path) : file_(path), history_(file_.db()), delivered_(file_.db()) {}

    RunHistory& history() override { return history_; }
    DeliveredState& delivered() override { return delivered_; }
    // Deleted content is overwritten (secure_delete) and the WAL emptied, so no copy is left
    // in the file.
    Forgotten forget_members(const std::set<std::string>& keys) override;
    SchemaVersions schema_versions() const override { return {file_.found_version(), StateFile::kSchemaVersion}; }
    const char* backend_name() const override { return "SQLite"; }

private:
    StateFile file_;
    SqliteRunHistory history_;
    SqliteDeliveredState delivered_;
};

}  // namespace segpush
