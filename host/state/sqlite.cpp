#include "state/sqlite.hpp"

namespace segpush::sqlite {

namespace {

// Before the first connection: SQLite's allocation statistics take a global mutex on every
// malloc and free, which showed in profiles of large exports; nothing here reads them.
void configure_sqlite_once() {
    static const bool configured = [] {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        return true;
    }();
    (void)configured;
}

}  // namespace

Database::Database(const std::string& path, std::string described_as)
    : path_(path), described_as_(described_as.empty() ? "state file " + path : std::move(described_as)) {
    configure_sqlite_once();
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        throw Error("cannot open " + described_as_ + ": " + message);
    }
    sqlite3_busy_timeout(db_, 5000);
    // The WAL is left for the next connection to checkpoint instead of being folded into the
    // database when the last one closes: up to 64 MiB of writing and an fsync between an
    // export's last confirmation and its exit otherwise. The WAL is as durable as the file.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

Database::~Database() {
    for (sqlite3_stmt* verb : verbs_) sqlite3_finalize(verb);
    sqlite3_close_v2(db_);
}

void Database::run_verb(Verb verb) {
    static const char* const kSql[] = {"BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK"};
    const auto index = static_cast<size_t>(verb);
    sqlite3_stmt*& statement = verbs_[index];
    if (!statement && sqlite3_prepare_v2(db_, kSql[index], -1, &statement, nullptr) != SQLITE_OK) {
        throw Error(described_as_ + ": " + sqlite3_errmsg(db_));
    }
    if (sqlite3_step(statement) != SQLITE_DONE) {
        const std::string message = sqlite3_errmsg(db_);
        sqlite3_reset(statement);
        throw Error(described_as_ + ": " + message);
    }
    sqlite3_reset(statement);
}

void Database::exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
        const std::string text = message ? message : "unknown error";
        sqlite3_free(message);
        throw Error(described_as_ + ": " + text);
    }
}

Statement Database::prepare(const std::string& sql) { return Statement(db_, sql); }

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK) {
        throw Error(std::string("state query failed to prepare: ") + sqlite3_errmsg(db));
    }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }

Statement& Statement::bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::bind_blob(int index, const void* data, size_t size) {
    sqlite3_bind_blob(stmt_, index, data, static_cast<int>(size), SQLITE_TRANSIENT);
    return *this;
}

Statement& Statement::bind_unowned(int index, std::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    return *this;
}

Statement& Statement::bind_blob_unowned(int index, std::string_view value) {
    sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    return *this;
}

Statement& Statement::bind_null(int index) {
    sqlite3_bind_null(stmt_, index);
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const std::string message = sqlite3_errmsg(db_);
    reset();
    throw Error("state query failed: " + message);
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

std::string Statement::text(int column) const {
    const auto* data = sqlite3_column_text(stmt_, column);
    return data ? std::string(reinterpret_cast<const char*>(data), sqlite3_column_bytes(stmt_, column)) : std::string();
}

std::string_view Statement::blob(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    return data ? std::string_view(static_cast<const char*>(data), sqlite3_column_bytes(stmt_, column))
                : std::string_view();
}

Transaction::Transaction(Database& db, Lock lock) : db_(db) {
    db_.run_verb(lock == Lock::up_front ? Database::Verb::begin_immediate : Database::Verb::begin_deferred);
}

Transaction::~Transaction() {
    if (!done_) {
        try {
            db_.run_verb(Database::Verb::rollback);
        } catch (...) {
        }
    }
}

void Transaction::commit() {
    db_.run_verb(Database::Verb::commit);
    done_ = true;
}

}  // namespace segpush::sqlite
