#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace segpush::sqlite {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Statement;

// One connection. Busy waits up to 5 s, so two processes sharing a state file queue rather
// than fail.
class Database {
public:
    // `described_as` names the database in errors: "state file PATH" unless given.
    explicit Database(const std::string& path, std::string described_as = "");
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(const std::string& sql);
    Statement prepare(const std::string& sql);
    int64_t last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
    int changes() const { return sqlite3_changes(db_); }
    const std::string& path() const { return path_; }
    sqlite3* handle() { return db_; }

private:
    friend class Transaction;
    // Prepared once: BEGIN and COMMIT run for every batch's outcomes, and parsing them each
    // time showed in profiles of large exports.
    enum class Verb { begin_immediate, begin_deferred, commit, rollback };
    void run_verb(Verb verb);

    sqlite3* db_ = nullptr;
    std::string path_;
    std::string described_as_;
    sqlite3_stmt* verbs_[4] = {};
};

class Statement {
public:
    Statement(sqlite3* db, const std::string& sql);
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, int64_t value);
    Statement& bind(int index, const std::string& value);
    Statement& bind(int index, std::string_view value);
    Statement& bind_blob(int index, const void* data, size_t size);
    Statement& bind_null(int index);
    // Without a copy: `value` must stay alive until the bindings are cleared (reset() and
    // run() do, and a failing step()). For what is bound a million times a run: a copy is a
    // malloc and a free each.
    Statement& bind_unowned(int index, std::string_view value);
    Statement& bind_blob_unowned(int index, std::string_view value);
    Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
    Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
    Statement& bind(int index, uint64_t value) { return bind(index, static_cast<int64_t>(value)); }

    // True when a row is available; false when done.
    bool step();
    void run() {
        step();
        reset();
    }
    void reset();

    int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    std::string text(int column) const;
    std::string_view blob(int column) const;
    bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed. IMMEDIATE takes the write lock
// up front, so check-then-write sequences (claiming a run) are atomic across processes.
// `Lock::when_needed` (a deferred BEGIN) is for transactions that write only the connection's
// TEMP tables: they then take no lock on the state file at all.
class Transaction {
public:
    enum class Lock { up_front, when_needed };
    explicit Transaction(Database& db, Lock lock = Lock::up_front);
    ~Transaction();
    void commit();

private:
    Database& db_;
    bool done_ = false;
};

}  // namespace segpush::sqlite
