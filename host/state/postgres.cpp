#include "state/postgres.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <regex>
#include <thread>

namespace segpush::postgres {

namespace {

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

// Where the connection string points, from libpq's own parse of it: "HOST:PORT/DATABASE".
std::string server_named_by(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (!options) {
        if (error) PQfreemem(error);
        return "PostgreSQL state (an unreadable connection string)";
    }
    std::string host = "localhost", port = "5432", database;
    for (PQconninfoOption* option = options; option->keyword; ++option) {
        if (!option->val || !*option->val) continue;
        const std::string keyword = option->keyword;
        if (keyword == "host" || (keyword == "hostaddr" && host == "localhost")) host = option->val;
        if (keyword == "port") port = option->val;
        if (keyword == "dbname") database = option->val;
    }
    PQconninfoFree(options);
    return "PostgreSQL state at " + host + ":" + port + (database.empty() ? "" : "/" + database);
}

bool is_connection_class(const std::string& sqlstate) {
    // 08: connection exceptions; 57P01-57P03: the server is shutting down or starting.
    return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

}  // namespace

Params& Params::add(int64_t value) { return add_text(std::to_string(value)); }

Params& Params::add_text(std::string_view value) {
    values_.emplace_back(value);
    lengths_.push_back(0);
    formats_.push_back(0);
    null_.push_back(false);
    return *this;
}

Params& Params::add_bytes(std::string_view value) {
    values_.emplace_back(value);
    lengths_.push_back(static_cast<int>(value.size()));
    formats_.push_back(1);
    null_.push_back(false);
    return *this;
}

Params& Params::add_null() {
    values_.emplace_back();
    lengths_.push_back(0);
    formats_.push_back(0);
    null_.push_back(true);
    return *this;
}

const char* const* Params::values() const {
    pointers_.clear();
    for (size_t i = 0; i < values_.size(); ++i) pointers_.push_back(null_[i] ? nullptr : values_[i].data());
    return pointers_.data();
}

std::string_view Result::text(int row, int column) const {
    return std::string_view(PQgetvalue(result_.get(), row, column),
                            static_cast<size_t>(PQgetlength(result_.get(), row, column)));
}

int64_t Result::integer(int row, int column) const {
    if (is_null(row, column)) return 0;
    return std::strtoll(PQgetvalue(result_.get(), row, column), nullptr, 10);
}

std::string Result::bytes(int row, int column) const {
    const std::string_view hex = text(row, column);
    if (hex.size() < 2 || hex[0] != '\\' || hex[1] != 'x') return std::string(hex);  // not bytea's hex form
    auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    std::string bytes;
    bytes.reserve((hex.size() - 2) / 2);
    for (size_t i = 2; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
    }
    return bytes;
}

int64_t Result::affected() const {
    const char* count = PQcmdTuples(result_.get());
    return count && *count ? std::strtoll(count, nullptr, 10) : 0;
}

std::string described_as(const std::string& conninfo) { return server_named_by(conninfo); }

Connection::Connection(std::string conninfo, std::chrono::seconds patience,
                       const std::function<void(const Error&)>& on_retry)
    : conninfo_(std::move(conninfo)), described_as_(server_named_by(conninfo_)), conn_(nullptr, PQfinish) {
    retrying([] {}, patience, on_retry);  // connects first, as every try does
}

void Connection::connect() {
    conn_.reset(PQconnectdb(conninfo_.c_str()));
    if (!conn_) throw Error("cannot connect to " + described_as_ + ": out of memory", "", true);
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
        throw Error("cannot connect to " + described_as_ + ": " + trimmed(PQerrorMessage(conn_.get())), "", true);
    }
    // Notices (a table already there, ...) are not errors: libpq would print them to stderr.
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
    // Result::bytes() reads bytea in hex, whatever the database or role sets as its default.
    exec("SET bytea_output = hex");
}

void Connection::fail(const std::string& what, const PGresult* result) {
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    const std::string sqlstate = state ? state : "";
    const bool lost = PQstatus(conn_.get()) != CONNECTION_OK || is_connection_class(sqlstate);
    const char* message = result ? PQresultErrorMessage(result) : PQerrorMessage(conn_.get());
    throw Error(described_as_ + ": " + what + ": " + trimmed(message ? message : "unknown error"), sqlstate, lost);
}

Result Connection::exec(const std::string& sql, const Params& params) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) fail("not connected");
    // Without parameters, PQexec: it takes several statements at once (a migration's script).
    PGresult* raw = params.count() == 0 ? PQexec(conn_.get(), sql.c_str())
                                        : PQexecParams(conn_.get(), sql.c_str(), params.count(), nullptr,
                                                       params.values(), params.lengths(), params.formats(), 0);
    Result result(raw);
    const ExecStatusType status = PQresultStatus(raw);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail("statement failed", raw);
    return result;
}

void Connection::retrying(const std::function<void()>& work, std::chrono::seconds patience,
                          const std::function<void(const Error&)>& on_retry) {
    const auto give_up_at = std::chrono::steady_clock::now() + patience;
    auto wait = std::chrono::milliseconds(500);
    for (;;) {
        try {
            if (PQstatus(conn_.get()) != CONNECTION_OK) connect();
            work();
            return;
        } catch (const Error& error) {
            if (!error.connection_lost || std::chrono::steady_clock::now() + wait > give_up_at) throw;
            if (on_retry) on_retry(error);
            std::this_thread::sleep_for(wait);
            wait = std::min(wait * 2, std::chrono::milliseconds(5000));
        }
    }
}

Transaction::Transaction(Connection& connection, Access access) : connection_(connection) {
    if (access == Access::read_only) {
        connection_.exec("BEGIN READ ONLY");
        return;
    }
    const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(connection_.idle_write_limit());
    // One round trip: PQexec takes both statements.
    connection_.exec(limit.count() > 0
                         ? "BEGIN; SET LOCAL idle_in_transaction_session_timeout = " + std::to_string(limit.count())
                         : std::string("BEGIN"));
}

Transaction::~Transaction() {
    if (done_) return;
    try {
        connection_.exec("ROLLBACK");
    } catch (...) {  // a broken connection has rolled back on its own
    }
}

void Transaction::commit() {
    done_ = true;
    connection_.exec("COMMIT");
}

std::string masked_conninfo(const std::string& conninfo) {
    // URI user-info: postgresql://user:password@host
    static const std::regex uri_password(R"(^(postgres(?:ql)?://[^:@/?#]*):[^@/?#]*@)");
    // Keyword form, and the URI's ?password= parameter.
    static const std::regex keyword_password(R"((^|[\s?&])password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]*))");
    std::string masked = std::regex_replace(conninfo, uri_password, "$1:***@");
    return std::regex_replace(masked, keyword_password, "$1password=***");
}

std::string segpush_conninfo(const std::string& url, const std::string& password) {
    std::string conninfo = url;
    auto add = [&](const std::string& keyword, const std::string& value) {
        const size_t query = conninfo.find('?');
        const std::string parameters = query == std::string::npos ? "" : conninfo.substr(query + 1);
        if (std::regex_search(parameters, std::regex("(^|&)" + keyword + "="))) return;
        conninfo += (query == std::string::npos ? "?" : "&") + keyword + "=" + value;
    };
    if (!password.empty()) {
        std::string encoded;
        for (const unsigned char c : password) {
            static const char kHex[] = "0123456789ABCDEF";
            if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                encoded.push_back(static_cast<char>(c));
            } else {
                encoded += {'%', kHex[c >> 4], kHex[c & 15]};
            }
        }
        add("password", encoded);
    }
    add("application_name", "segpush");
    add("connect_timeout", "10");
    // A connection whose network was cut without a reset fails within about 30 s instead of
    // TCP's default quarter of an hour: a run waits for the database, retrying, not for ever.
    add("keepalives", "1");
    add("keepalives_idle", "10");
    add("keepalives_interval", "5");
    add("keepalives_count", "3");
    add("tcp_user_timeout", "30000");
    return conninfo;
}

std::string password_in(const std::string& conninfo) {
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
    std::string password;
    for (PQconninfoOption* option = options; option && option->keyword; ++option) {
        if (std::string(option->keyword) == "password" && option->val) password = option->val;
    }
    PQconninfoFree(options);
    return password;
}

bool valid_conninfo(const std::string& conninfo, std::string& problem) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (options) {
        PQconninfoFree(options);
        return true;
    }
    // libpq's message quotes the part it could not read, which may be the password.
    if (error) PQfreemem(error);
    problem = "is not a connection URI libpq can read (check its percent-escapes, port and parameter names)";
    return false;
}

bool is_postgres_location(const std::string& location) {
    return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

}  // namespace segpush::postgres
