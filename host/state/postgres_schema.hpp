#pragma once

#include <cstdint>

#include "state/postgres.hpp"

namespace segpush {

// The schema of the PostgreSQL state, created and migrated by segpush alone: the tables of
// the run history (PostgresRunHistory), of the delivered state (PostgresDeliveredState), and
// of what replicas share (scheduled slots, request budgets). Its version is the one row of
// segpush_schema; migrations run in one transaction under an advisory lock, so replicas
// starting together migrate once.
constexpr int64_t kPostgresSchemaVersion = 1;

// The version the database is at (0: no segpush schema yet).
int64_t postgres_schema_version(postgres::Connection& db);
// Brings the schema to kPostgresSchemaVersion and returns the version it found. Throws a runtime_error naming both
// versions when the database's is newer than this segpush knows: an older binary must not write to tables a newer one
// has changed.
int64_t migrate_postgres_schema(postgres::Connection& db);

}  // namespace segpush
