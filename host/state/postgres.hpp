#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace segpush::postgres {

// A statement or the connection failed. `connection_lost`: the server could not be reached or
// the connection broke (SQLSTATE class 08, or libpq's CONNECTION_BAD): the work may be tried
// again on a new connection. Messages never hold the password: libpq does not print it, and
// they name the server by host, port and database alone.
class Error : public std::runtime_error {
public:
    Error(const std::string& message, std::string sqlstate, bool connection_lost)
        : std::runtime_error(message), sqlstate(std::move(sqlstate)), connection_lost(connection_lost) {}
    std::string sqlstate;  // "" when the server gave none
    bool connection_lost;
};

// A statement's parameters, $1 first. Text travels as text; bytes travel in binary form, so
// keys and blobs go to bytea columns byte for byte, with no escaping.
class Params {
public:
    Params& add(int64_t value);
    Params& add(int value) { return add(static_cast<int64_t>(value)); }
    Params& add(uint64_t value) { return add(static_cast<int64_t>(value)); }  // stored as its bit pattern
    Params& add(bool value) { return add_text(value ? "true" : "false"); }
    Params& add_text(std::string_view value);
    Params& add(const std::string& value) { return add_text(value); }
    Params& add(const char* value) { return add_text(value); }
    Params& add_bytes(std::string_view value);
    Params& add_null();

    int count() const { return static_cast<int>(values_.size()); }
    const char* const* values() const;
    const int* lengths() const { return lengths_.data(); }
    const int* formats() const { return formats_.data(); }

private:
    std::vector<std::string> values_;
    std::vector<int> lengths_, formats_;
    std::vector<bool> null_;
    mutable std::vector<const char*> pointers_;
};

// A statement's rows, in text form (bytea as libpq's hex text, decoded by bytes()).
class Result {
public:
    explicit Result(PGresult* result) : result_(result, PQclear) {}

    int rows() const { return PQntuples(result_.get()); }
    bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
    std::string_view text(int row, int column) const;
    int64_t integer(int row, int column) const;  // 0 for NULL
    bool boolean(int row, int column) const { return text(row, column) == "t"; }
    // A bytea column's bytes.
    std::string bytes(int row, int column) const;
    // The number of rows an INSERT, UPDATE or DELETE touched.
    int64_t affected() const;

private:
    std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

// One connection to the state database. Not shared between threads: each thread that needs
// the database (a run's heartbeat, request budgets) opens its own.
class Connection {
public:
    // `conninfo`: a libpq connection string or postgresql:// URI (it may hold a password; it is
    // kept only to reconnect, never printed). Throws Error when the server cannot be reached,
    // after trying again for up to `patience` (as retrying does) when it is unreachable.
    explicit Connection(std::string conninfo, std::chrono::seconds patience = std::chrono::seconds(0),
                        const std::function<void(const Error&)>& on_retry = nullptr);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // The server as errors and logs name it: "PostgreSQL state at HOST:PORT/DATABASE".
    const std::string& described_as() const { return described_as_; }

    // Runs `sql`: one statement with parameters, or, without, a script of several (the last
    // one's rows come back).
    Result exec(const std::string& sql, const Params& params = Params());
    // Runs `work` (which may open a Transaction) and returns; when the connection was lost
    // before or during it, reconnects and runs `work` again from the start, waiting 0.5 s, 1 s,
    // 2 s, ... (at most 5 s between tries) for up to `patience`, then throws the last error.
    // `work` must be safe to run again after a failed try: a transaction rolled back on its
    // own when the connection broke, so only what it did outside the database repeats.
    // `on_retry` is told each failure before the wait (to log it).
    void retrying(const std::function<void()>& work, std::chrono::seconds patience,
                  const std::function<void(const Error&)>& on_retry = nullptr);

    PGconn* handle() { return conn_.get(); }

    // Write transactions begun from now on are ended by the server (rolled back, the connection
    // closed) once left idle longer than `limit`; zero: never. A process stopped (SIGSTOP, a
    // frozen VM) or cut off half-way through one would otherwise keep its row locks for as long as
    // its connection lives, and whoever takes its work over would wait on them forever.
    void end_idle_write_transactions_after(std::chrono::seconds limit) { idle_write_limit_ = limit; }
    std::chrono::seconds idle_write_limit() const { return idle_write_limit_; }

private:
    void connect();
    [[noreturn]] void fail(const std::string& what, const PGresult* result = nullptr);

    std::string conninfo_;
    std::string described_as_;
    std::unique_ptr<PGconn, void (*)(PGconn*)> conn_;
    std::chrono::seconds idle_write_limit_{0};
};

// BEGIN ... COMMIT, rolled back unless committed. A read-write one is bounded by the connection's
// idle_write_limit().
class Transaction {
public:
    enum class Access { read_write, read_only };
    explicit Transaction(Connection& connection, Access access = Access::read_write);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Connection& connection_;
    bool done_ = false;
};

// `conninfo` with its password (URI user-info or `password=` keyword) replaced by "***", for
// what segpush prints about where its state is.
std::string masked_conninfo(const std::string& conninfo);

// The connection string segpush connects with: the postgresql:// URI `url`, plus `password`
// (when not empty, percent-encoded), application_name=segpush (so the server's
// pg_stat_activity names us), connect_timeout=10 and TCP keepalives with a user timeout (a dead
// server or a cut network fails in seconds, not at TCP's pace) unless the URI sets them.
std::string segpush_conninfo(const std::string& url, const std::string& password);
// The password written in `conninfo` ("" when none), as libpq reads it (percent-decoded).
std::string password_in(const std::string& conninfo);
// False, with what is wrong, when libpq cannot parse it (never libpq's words: they may quote
// the password).
bool valid_conninfo(const std::string& conninfo, std::string& problem);
// The server `conninfo` names, as Connection::described_as() does, without connecting: for
// messages about a server that could not be reached.
std::string described_as(const std::string& conninfo);

// True when `location` names a PostgreSQL database rather than an SQLite file.
bool is_postgres_location(const std::string& location);

}  // namespace segpush::postgres
