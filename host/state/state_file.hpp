#pragma once

#include <cstdint>
#include <string>

#include "state/sqlite.hpp"

namespace segpush {

// The SQLite state file and the one connection to it that a process's state objects share:
// the run history (SqliteRunHistory) and the delivered state (SqliteDeliveredState) keep their tables
// in this one file, under one schema version, so that forgetting a person can check for live
// runs and delete in one transaction. Opening it makes the file and its WAL private, sets the
// connection up (WAL, caches, the TEMP database's pages) and brings the schema of every table
// to the current version, migrating older files: the schema and its migrations live here alone.
// A file whose version is newer than this segpush knows is refused (sqlite::Error).
class StateFile {
public:
    explicit StateFile(const std::string& path);
    StateFile(const StateFile&) = delete;
    StateFile& operator=(const StateFile&) = delete;

    sqlite::Database& db() { return db_; }
    // The schema version the file was at when opened (0: a new file).
    int64_t found_version() const { return found_version_; }
    static constexpr int64_t kSchemaVersion = 11;

private:
    sqlite::Database db_;
    int64_t found_version_ = 0;
};

}  // namespace segpush
