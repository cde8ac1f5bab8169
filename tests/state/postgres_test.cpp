// The libpq wrapper the PostgreSQL state backend is built on, against a real server
// (support/postgres_server.hpp).
#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "state/postgres.hpp"
#include "state/postgres_schema.hpp"
#include "support/postgres_server.hpp"

using namespace segpush;
using segpush::test::PostgresServer;

TEST_CASE("postgres: bytes go to bytea and come back byte for byte, NUL and invalid UTF-8 included", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    postgres::Connection db(server.uri(server.create_database()));
    db.exec("CREATE TABLE t(k bytea PRIMARY KEY, n bigint, s text)");
    const std::string key("a\0b\xff\xfe", 5);
    db.exec("INSERT INTO t VALUES($1, $2, $3)", postgres::Params().add_bytes(key).add(int64_t{-7}).add("é"));
    const postgres::Result rows = db.exec("SELECT k, n, s, NULL FROM t");
    REQUIRE(rows.rows() == 1);
    CHECK(rows.bytes(0, 0) == key);
    CHECK(rows.integer(0, 1) == -7);
    CHECK(rows.text(0, 2) == "é");
    CHECK(rows.is_null(0, 3));
    // A uint64 hash is stored as its bit pattern in a bigint.
    db.exec("INSERT INTO t VALUES('\\x01', $1, '')", postgres::Params().add(uint64_t{0xffffffffffffffffULL}));
    CHECK(static_cast<uint64_t>(db.exec("SELECT n FROM t WHERE k='\\x01'").integer(0, 0)) == 0xffffffffffffffffULL);
}

TEST_CASE("postgres: a failed statement names the server and the SQLSTATE, never the password", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    const std::string database = server.create_database();
    postgres::Connection db(server.uri(database));
    try {
        db.exec("SELECT * FROM missing_table");
        FAIL("no error");
    } catch (const postgres::Error& error) {
        CHECK(error.sqlstate == "42P01");
        CHECK_FALSE(error.connection_lost);
        CHECK(std::string(error.what()).find("127.0.0.1:" + std::to_string(server.port()) + "/" + database) !=
              std::string::npos);
        CHECK(std::string(error.what()).find(PostgresServer::password()) == std::string::npos);
    }
    const std::string wrong = "postgresql://segpush:not-the-password@127.0.0.1:" + std::to_string(server.port()) + "/" +
                              database;
    try {
        postgres::Connection refused(wrong);
        FAIL("connected with a wrong password");
    } catch (const postgres::Error& error) {
        CHECK(std::string(error.what()).find("not-the-password") == std::string::npos);
        CHECK(std::string(error.what()).find("password authentication failed") != std::string::npos);
    }
}

TEST_CASE("postgres: a transaction not committed is rolled back", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    postgres::Connection db(server.uri(server.create_database()));
    db.exec("CREATE TABLE t(n bigint)");
    {
        postgres::Transaction transaction(db);
        db.exec("INSERT INTO t VALUES(1)");
    }
    {
        postgres::Transaction transaction(db);
        db.exec("INSERT INTO t VALUES(2)");
        transaction.commit();
    }
    const postgres::Result rows = db.exec("SELECT n FROM t");
    REQUIRE(rows.rows() == 1);
    CHECK(rows.integer(0, 0) == 2);
}

TEST_CASE("postgres: a write transaction left idle past the limit is ended, and its row locks released", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    const std::string uri = server.uri(server.create_database());
    postgres::Connection stalled(uri), other(uri);
    stalled.exec("CREATE TABLE runs(id bigint PRIMARY KEY, status text)");
    stalled.exec("INSERT INTO runs VALUES(1, 'running')");
    stalled.end_idle_write_transactions_after(std::chrono::seconds(1));
    postgres::Transaction stalled_transaction(stalled);
    stalled.exec("SELECT status FROM runs WHERE id = 1 FOR SHARE");
    // As a process stopped half-way through recording a batch: the other connection's lock waits
    // only until the server ends the idle transaction.
    const auto started = std::chrono::steady_clock::now();
    other.exec("SET lock_timeout = 20000");
    CHECK(other.exec("UPDATE runs SET status = 'failed_will_retry' WHERE id = 1").affected() == 1);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(20));
    // Woken, the stalled process finds its connection gone: its work is retried, never committed.
    try {
        stalled.exec("SELECT 1");
        FAIL("the idle transaction was not ended");
    } catch (const postgres::Error& error) {
        CHECK(error.connection_lost);
    }
    // Read-only transactions and connections without a limit are left alone.
    other.exec("SET lock_timeout = 0");
    {
        postgres::Transaction reading(other, postgres::Transaction::Access::read_only);
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        CHECK(other.exec("SELECT status FROM runs").text(0, 0) == "failed_will_retry");
    }
}

TEST_CASE("postgres: work is tried again on a new connection once a restarted server is back", "[postgres]") {
    PostgresServer server;  // its own: this test stops it
    postgres::Connection db(server.uri(server.create_database()));
    db.exec("CREATE TABLE t(n bigint)");
    server.stop();
    std::thread restart([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        server.start();
    });
    int tries = 0, retries_told = 0;
    db.retrying(
        [&] {
            ++tries;
            postgres::Transaction transaction(db);
            db.exec("INSERT INTO t VALUES(1)");
            transaction.commit();
        },
        std::chrono::seconds(30),
        [&](const postgres::Error& error) {
            CHECK(error.connection_lost);
            ++retries_told;
        });
    restart.join();
    CHECK(tries >= 2);
    CHECK(retries_told >= tries - 1);  // and one for each failed reconnection
    CHECK(db.exec("SELECT count(*) FROM t").integer(0, 0) == 1);
}

TEST_CASE("postgres: a lost server is given up on after the patience, with the last error", "[postgres]") {
    PostgresServer server;
    postgres::Connection db(server.uri(server.create_database()));
    server.stop();
    CHECK_THROWS_AS(db.retrying([&] { db.exec("SELECT 1"); }, std::chrono::seconds(2)), postgres::Error);
}

TEST_CASE("postgres: the password is masked wherever segpush prints a connection string", "[postgres]") {
    CHECK(postgres::masked_conninfo("postgresql://u:s3cret@db:5432/x?sslmode=require") ==
          "postgresql://u:***@db:5432/x?sslmode=require");
    CHECK(postgres::masked_conninfo("postgresql://u@db/x?password=s3cret&sslmode=require") ==
          "postgresql://u@db/x?password=***&sslmode=require");
    CHECK(postgres::masked_conninfo("host=db password='a b' user=u") == "host=db password=*** user=u");
    CHECK(postgres::masked_conninfo("postgresql://db/x") == "postgresql://db/x");
    CHECK(postgres::is_postgres_location("postgres://db/x"));
    CHECK_FALSE(postgres::is_postgres_location("state/postgresql.db"));
}

TEST_CASE("postgres: the schema is created once, and a newer one than this segpush knows is refused", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    postgres::Connection db(server.uri(server.create_database()));
    CHECK(postgres_schema_version(db) == 0);
    migrate_postgres_schema(db);
    CHECK(postgres_schema_version(db) == kPostgresSchemaVersion);
    migrate_postgres_schema(db);  // already there: nothing to do
    CHECK(postgres_schema_version(db) == kPostgresSchemaVersion);
    db.exec("UPDATE segpush_schema SET version = version + 1");
    try {
        migrate_postgres_schema(db);
        FAIL("a newer schema was accepted");
    } catch (const std::runtime_error& error) {
        CHECK_THAT(error.what(), Catch::Contains("has schema version " + std::to_string(kPostgresSchemaVersion + 1) +
                                                 ", newer than this segpush knows"));
    }
}
