#include "state/postgres_schema.hpp"

#include <stdexcept>
#include <string>

namespace segpush {

namespace {

// Keys, keys as written, receipts and encoded values are bytea: bytes, never collated or
// checked as UTF-8, and ordered byte by byte as the engine's merge needs. Hashes are uint64
// stored as their bit pattern in a bigint. Times the CLI prints are text in UTC, as in the
// SQLite state; lease and slot times are the server's timestamptz, so replicas whose clocks
// disagree still agree on when a lease ran out.
const char* const kSchemaVersion1 = R"sql(
CREATE TABLE runs(
  id bigserial PRIMARY KEY,
  export text NOT NULL,
  status text NOT NULL,
  started_at text NOT NULL,
  finished_at text,
  pid bigint,
  process_identity text,
  hostname text,
  full_run boolean NOT NULL DEFAULT false,
  dry_run boolean NOT NULL DEFAULT false,
  baseline bigint NOT NULL DEFAULT 0,
  rows_read bigint NOT NULL DEFAULT 0, invalid bigint NOT NULL DEFAULT 0,
  duplicates bigint NOT NULL DEFAULT 0, members bigint NOT NULL DEFAULT 0,
  new_members bigint NOT NULL DEFAULT 0, changed bigint NOT NULL DEFAULT 0,
  unchanged bigint NOT NULL DEFAULT 0, leaving bigint NOT NULL DEFAULT 0,
  sent bigint NOT NULL DEFAULT 0, accepted bigint NOT NULL DEFAULT 0,
  rejected bigint NOT NULL DEFAULT 0, removed bigint NOT NULL DEFAULT 0,
  suppressed bigint NOT NULL DEFAULT 0,
  resumed bigint NOT NULL DEFAULT 0, pending bigint NOT NULL DEFAULT 0,
  rejected_retried bigint NOT NULL DEFAULT 0, rejected_held bigint NOT NULL DEFAULT 0,
  error text,
  report_path text,
  -- The lease of a running run: its holder renews heartbeat_at; once it is older than
  -- lease_seconds (server time), the run is abandoned and the next claim of its export closes it.
  heartbeat_at timestamptz,
  lease_seconds integer);
CREATE INDEX runs_by_export ON runs(export, id);
CREATE INDEX runs_running ON runs(export) WHERE status = 'running';

CREATE TABLE delivered(
  export text NOT NULL,
  member_key bytea NOT NULL,
  key_value bytea NOT NULL,
  hash bigint NOT NULL,
  run_id bigint NOT NULL,
  sent_values bytea,  -- the values last sent, encoded (encode_record); NULL: not recorded
  PRIMARY KEY(export, member_key));

-- Members segpush itself removed from the destination: the only ones it may put back.
CREATE TABLE removals(
  export text NOT NULL,
  member_key bytea NOT NULL,
  removed_at bigint NOT NULL,  -- seconds since 1970-01-01 UTC
  run_id bigint NOT NULL,
  PRIMARY KEY(export, member_key));

-- Members the destination refused, with the hash of the values refused (no values, no reason).
CREATE TABLE refused(
  export text NOT NULL,
  member_key bytea NOT NULL,
  hash bigint NOT NULL,
  refusals bigint NOT NULL,
  run_id bigint NOT NULL,
  PRIMARY KEY(export, member_key));

-- Imports awaiting confirmation, one row per receipt, its members encoded (receipt_members.hpp).
CREATE TABLE unconfirmed(
  id bigserial PRIMARY KEY,
  export text NOT NULL,
  run_id bigint NOT NULL,
  first_seq bigint NOT NULL,
  last_seq bigint NOT NULL,
  receipt bytea NOT NULL,
  members bytea NOT NULL,
  confirmed boolean NOT NULL DEFAULT false);
-- One row per import: a batch recorded again (its COMMIT's acknowledgement lost) finds its
-- receipts' rows rather than adding second ones. It also finds an export's receipts by run.
CREATE UNIQUE INDEX unconfirmed_once ON unconfirmed(export, run_id, first_seq, last_seq, receipt);

-- Scheduled runs claimed by a replica: the primary key lets one replica alone claim a slot.
CREATE TABLE schedule_slots(
  export text NOT NULL,
  due_at text NOT NULL,  -- the slot's time, UTC, as the schedule computed it
  claimed_by text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY(export, due_at));
CREATE INDEX schedule_slots_by_age ON schedule_slots(claimed_at);  -- claims are pruned by age

-- Request budgets shared by every replica: the next free slot, in server time.
CREATE TABLE budgets(
  name text PRIMARY KEY,
  next_slot timestamptz NOT NULL);
)sql";

const char* const kMigrations[] = {kSchemaVersion1};

// Any fixed number: the advisory lock that serialises migrations of one database.
constexpr int64_t kMigrationLock = 0x5e67'7573'6801;

}  // namespace

int64_t postgres_schema_version(postgres::Connection& db) {
    const postgres::Result table = db.exec("SELECT to_regclass('segpush_schema') IS NOT NULL");
    if (!table.boolean(0, 0)) return 0;
    const postgres::Result version = db.exec("SELECT version FROM segpush_schema");
    return version.rows() == 0 ? 0 : version.integer(0, 0);
}

int64_t migrate_postgres_schema(postgres::Connection& db) {
    // Most opens find the schema current: they read its version and change nothing, so a role
    // that may only read and write rows can use a schema its owner migrated.
    if (const int64_t found = postgres_schema_version(db); found == kPostgresSchemaVersion) return found;
    postgres::Transaction transaction(db);
    db.exec("SELECT pg_advisory_xact_lock($1)", postgres::Params().add(kMigrationLock));
    db.exec("CREATE TABLE IF NOT EXISTS segpush_schema(version bigint NOT NULL)");
    int64_t version = postgres_schema_version(db);
    if (version > kPostgresSchemaVersion) {
        throw std::runtime_error(db.described_as() + " has schema version " + std::to_string(version) +
                                 ", newer than this segpush knows (" + std::to_string(kPostgresSchemaVersion) +
                                 "): a newer segpush wrote it; run that version, or upgrade this one");
    }
    const int64_t found = version;
    if (version == kPostgresSchemaVersion) return found;
    for (; version < kPostgresSchemaVersion; ++version) db.exec(kMigrations[version]);
    db.exec("DELETE FROM segpush_schema");
    db.exec("INSERT INTO segpush_schema VALUES($1)", postgres::Params().add(version));
    transaction.commit();
    return found;
}

}  // namespace segpush
