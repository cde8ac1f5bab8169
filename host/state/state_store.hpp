#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "state/delivered_state.hpp"
#include "state/run_history.hpp"

namespace segpush {

// The durable state a process keeps: the run history and the delivered state, in one store
// so that forgetting people can check for live runs and delete everywhere at once. The
// engine and the CLI see only this; open_state_store picks the backend.
class StateStore {
public:
    virtual ~StateStore() = default;

    virtual RunHistory& history() = 0;
    virtual DeliveredState& delivered() = 0;

    // What forget_members removed.
    struct Forgotten {
        int64_t delivered = 0;        // delivered records (one per export that sent the person)
        int64_t removals = 0;         // records of members segpush removed from a destination
        int64_t refusals = 0;         // records of values a destination refused (one per export)
        int64_t awaiting_import = 0;  // members of imports still awaiting confirmation
        int64_t run_errors = 0;       // run errors that named them
    };
    // Removes the members with these keys (as engine/member_key.hpp makes them) from everything the
    // store keeps, for an erasure request, leaving no copy behind in the store's files. Throws
    // AlreadyRunning while a live process runs an export of this state: it would record them
    // again.
    virtual Forgotten forget_members(const std::set<std::string>& keys) = 0;

    // What opening the store did to its schema: the version it found (0: none yet) and the one
    // it is at now, this segpush's. Opening refuses a schema newer than this segpush knows.
    struct SchemaVersions {
        int64_t found = 0;
        int64_t current = 0;
    };
    virtual SchemaVersions schema_versions() const = 0;
    // "SQLite" or "PostgreSQL".
    virtual const char* backend_name() const = 0;
};

// How a store shared by several processes on several hosts (PostgreSQL) treats their runs.
struct StateOptions {
    // A running run whose holder has not renewed its lease for this long is abandoned: the
    // next claim of its export closes it and carries on from its checkpoint.
    std::chrono::seconds lease{30};
    // How long a call waits for an unreachable database to come back before it fails.
    std::chrono::seconds patience{60};
};

// The schema version of the state at `location` and this segpush's, read without creating or
// migrating anything (found 0: no state there yet). Throws when it cannot be read (a server
// that cannot be reached, a file that is not an SQLite database).
StateStore::SchemaVersions peek_schema_versions(const std::string& location);

// The state at `location`: a postgresql:// URI (postgres::is_postgres_location), or the path
// of an SQLite state file, made if absent.
std::unique_ptr<StateStore> open_state_store(const std::string& location, const StateOptions& options = {});

}  // namespace segpush
