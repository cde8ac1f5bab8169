#include "state/state_file.hpp"

#include <chrono>
#include <filesystem>
#include <thread>

#include "state/private_files.hpp"

namespace segpush {

namespace {

// The schema of every table the state file keeps, run history's and delivered state's alike
// (the TEMP table is the connection's own).

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  export TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  pid INTEGER,
  process_identity TEXT,
  hostname TEXT,
  full INTEGER NOT NULL DEFAULT 0,
  dry_run INTEGER NOT NULL DEFAULT 0,
  baseline INTEGER NOT NULL DEFAULT 0,
  rows_read INTEGER NOT NULL DEFAULT 0, invalid INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0, members INTEGER NOT NULL DEFAULT 0,
  new_members INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0,
  unchanged INTEGER NOT NULL DEFAULT 0, leaving INTEGER NOT NULL DEFAULT 0,
  sent INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0, removed INTEGER NOT NULL DEFAULT 0,
  suppressed INTEGER NOT NULL DEFAULT 0,
  resumed INTEGER NOT NULL DEFAULT 0, pending INTEGER NOT NULL DEFAULT 0,
  rejected_retried INTEGER NOT NULL DEFAULT 0, rejected_held INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  report_path TEXT);
CREATE INDEX IF NOT EXISTS runs_by_export ON runs(export, id);

CREATE TABLE IF NOT EXISTS delivered(
  export TEXT NOT NULL,
  email_key TEXT NOT NULL,
  key_value TEXT NOT NULL,
  hash INTEGER NOT NULL,
  run_id INTEGER NOT NULL,
  sent_values BLOB,  -- the values last sent, encoded (encode_record); NULL: not recorded
  PRIMARY KEY(export, email_key)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS delivered_log(
  export TEXT NOT NULL,
  email_key TEXT NOT NULL,
  key_value TEXT NOT NULL,
  hash INTEGER NOT NULL,
  run_id INTEGER NOT NULL,
  removed INTEGER NOT NULL DEFAULT 0,
  sent_values BLOB);

-- Members segpush itself removed from the destination (a leaver's REMOVE the destination
-- accepted), with when and why: the only ones it may put back when they join the segment
-- again. A leaver the destination had already kept out (SUPPRESSED) is never here, so a person
-- who unsubscribed themselves is never taken for one segpush removed. A row goes once the
-- member is delivered (or kept out) again.
CREATE TABLE IF NOT EXISTS removals(
  export TEXT NOT NULL,
  email_key TEXT NOT NULL,
  removed_at INTEGER NOT NULL,  -- seconds since 1970-01-01 UTC
  run_id INTEGER NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY(export, email_key)) WITHOUT ROWID;

-- Members the destination refused (REJECTED), with the hash of the values it refused and how
-- many runs in a row refused them: later runs send them again a few times
-- (retry_rejected_runs), then only once their values change. A row goes once the member is
-- accepted or kept out, or is no longer in the segment. Keys and hashes only: the reasons
-- stay in the runs' reports.
CREATE TABLE IF NOT EXISTS refused(
  export TEXT NOT NULL,
  email_key TEXT NOT NULL,
  hash INTEGER NOT NULL,
  refusals INTEGER NOT NULL,
  run_id INTEGER NOT NULL,
  PRIMARY KEY(export, email_key)) WITHOUT ROWID;

-- One row per receipt: in `members`, the key and hash of each member it covers (see
-- encode_receipt_member), by which the next run finds them; first_seq and last_seq, the
-- lowest and highest seq among them, say which part of the run it was. A row per member
-- wrote and then deleted a B-tree row per member: a third of the state file's writes. The
-- table holds the imports awaiting confirmation: a run finds its rows by id, the next run
-- reads them all. A receipt whose every member the destination accepted at once is kept,
-- marked `confirmed`: its members are delivered, and merged into `delivered` with the log
-- (merge_delivered_log). Copying them into delivered_log instead (a B-tree row each, read
-- from the staged rows) was a tenth of an export's CPU.
CREATE TABLE IF NOT EXISTS unconfirmed(
  id INTEGER PRIMARY KEY,
  export TEXT NOT NULL,
  run_id INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  receipt TEXT NOT NULL,
  members BLOB NOT NULL,
  confirmed INTEGER NOT NULL DEFAULT 0);

-- Scheduled runs claimed by a `serve` (SqliteRunHistory::claim_slot): the primary key lets one
-- claimer alone have a slot. Rows older than a week are pruned by later claims.
CREATE TABLE IF NOT EXISTS schedule_slots(
  export TEXT NOT NULL,
  due_at TEXT NOT NULL,  -- the slot's time, UTC, as the schedule computed it
  claimed_by TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,  -- seconds since 1970-01-01 UTC
  PRIMARY KEY(export, due_at)) WITHOUT ROWID;

-- The confirmed receipts' members, copied here to be sorted by key as the log is folded
-- into delivered (SqliteDeliveredState).
CREATE TEMP TABLE IF NOT EXISTS confirmed_members(
  email_key TEXT NOT NULL,
  key_value TEXT NOT NULL,
  hash INTEGER NOT NULL,
  run_id INTEGER NOT NULL,
  sent_values BLOB);

)sql";

}  // namespace

StateFile::StateFile(const std::string& path)
    : db_([&] {
          // SQLite gives the WAL and shared-memory files the state file's mode, so a private
          // state file keeps them private too; ones an older segpush left readable are tightened.
          create_private_directories(std::filesystem::path(path).parent_path().string());
          ensure_private_file(path);
          for (const char* suffix : {"-wal", "-shm"}) {
              if (std::filesystem::exists(path + suffix)) ensure_private_file(path + suffix);
          }
          return path;
      }()) {
    // WAL: readers (runs list) never block the running export; NORMAL sync is durable
    // across process crashes, which is what checkpoints must survive. Switching a new file to
    // WAL can meet another process doing the same (serve starts several exports at once) and
    // SQLite then answers "locked" without waiting, so it is tried again for a while.
    // Checkpoints every 64 MiB of WAL (SQLite's default is about 4): delivered rows land on
    // random pages, and a longer window writes each page back once for many commits.
    for (int attempt = 0;; ++attempt) {
        try {
            db_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=16384;");
            break;
        } catch (const sqlite::Error&) {
            if (attempt == 50) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    // Deleted rows (members who left, people forgotten, merged logs) hold emails: they are
    // overwritten rather than left in free pages. Debian builds SQLite this way already;
    // other builds do not.
    db_.exec("PRAGMA secure_delete=ON;");
    // The run's own members never come here (RunMembers keeps them in files of the run's own).
    // The TEMP database only sorts the members of confirmed receipts while the log is folded
    // into delivered: a private file SQLite deletes when the connection closes, with no
    // rollback journal (its rows are rebuilt by every fold), 16 KiB pages (fewer pwrite and
    // pread calls) and a 16 MiB cache, given back once the fold is done. The state file is
    // written sequentially and read in key order, so 4 MiB serve it: a bigger cache would buy
    // little.
    db_.exec("PRAGMA temp.page_size=16384; PRAGMA main.cache_size=-4096; PRAGMA temp.cache_size=-16384; PRAGMA "
             "temp.journal_mode=OFF;");
    // The schema in one IMMEDIATE transaction: it takes the write lock up front (waiting its
    // turn), where separate statements would upgrade read locks and deadlock.
    sqlite::Transaction setup(db_);
    // Versions 1 and 2 kept staged rows and rejects in the state file (version 1 keyed by
    // email, which made every read a random one). They only matter to a run in progress, whose
    // delivered records are checkpointed separately, so the old tables are simply dropped.
    // Version 4 added the unconfirmed table, version 5 keyed it by run and seq and added
    // delivered_log (created below like every table), version 6 made it a row per receipt,
    // version 7 added runs.process_identity, version 10 the refused table (created below) and
    // the runs' rejected_retried and rejected_held, version 11 the schedule_slots table (created below).
    const int64_t version = [&] {
        sqlite::Statement query = db_.prepare("PRAGMA user_version");
        query.step();
        return query.integer(0);
    }();
    if (version > kSchemaVersion) {
        throw sqlite::Error("state file " + path + " has schema version " + std::to_string(version) +
                            ", newer than this segpush knows (" + std::to_string(kSchemaVersion) +
                            "): a newer segpush wrote it; run that version, or upgrade this one");
    }
    found_version_ = version;
    if (version < kSchemaVersion) {
        db_.exec("DROP TABLE IF EXISTS main.staged; DROP TABLE IF EXISTS main.rejects;");
        // Versions 4 and 5 kept a receipt per member; losing them only means a batch in
        // flight at a crash is sent again.
        if (version == 4 || version == 5) db_.exec("DROP TABLE IF EXISTS main.unconfirmed;");
        db_.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";");
    }
    db_.exec(kSchema);
    // Columns later versions added to tables kept from before them (CREATE TABLE IF NOT EXISTS
    // leaves an existing table as it is).
    auto add_column_if_missing = [&](const std::string& table, const std::string& column, const std::string& type) {
        sqlite::Statement present = db_.prepare("SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name=?2");
        present.bind(1, table).bind(2, column).step();
        const bool missing = present.integer(0) == 0;
        present.reset();
        if (missing) db_.exec("ALTER TABLE " + table + " ADD COLUMN " + column + " " + type + ";");
    };
    add_column_if_missing("runs", "process_identity", "TEXT");                        // version 7
    add_column_if_missing("unconfirmed", "confirmed", "INTEGER NOT NULL DEFAULT 0");  // version 8
    add_column_if_missing("runs", "suppressed", "INTEGER NOT NULL DEFAULT 0");        // version 9
    add_column_if_missing("runs", "resumed", "INTEGER NOT NULL DEFAULT 0");           // version 10
    add_column_if_missing("runs", "pending", "INTEGER NOT NULL DEFAULT 0");           // version 10
    add_column_if_missing("runs", "rejected_retried", "INTEGER NOT NULL DEFAULT 0");  // version 10
    add_column_if_missing("runs", "rejected_held", "INTEGER NOT NULL DEFAULT 0");     // version 10
    // Version 10 also: the values last sent. Members delivered before have none (NULL) until sent again.
    add_column_if_missing("delivered", "sent_values", "BLOB");
    add_column_if_missing("delivered_log", "sent_values", "BLOB");
    setup.commit();
}

}  // namespace segpush
