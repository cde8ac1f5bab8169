// `segpush state migrate` and `config check` on the state's schema, with a real PostgreSQL and
// an SQLite file: created, already current, newer than this segpush (refused by every command
// that would write it), unreachable; the database password never in any output.
#include <sqlite3.h>

#include <catch2/catch.hpp>

#include "state/postgres.hpp"
#include "support/export_fixture.hpp"
#include "support/postgres_server.hpp"

using namespace segpush;
using namespace segpush::test;

namespace {

void use_state(ExportFixture& fixture, const std::string& state_yaml) {
    fixture.write_config();
    std::string text = read_file(fixture.dir.file("segpush.yaml"));
    const std::string sqlite_state = "state: state/segpush.db\n";
    text.replace(text.find(sqlite_state), sqlite_state.size(), state_yaml);
    fixture.dir.write("segpush.yaml", text);
    fixture.write_segment(make_profiles(3));
}

void check_no_password(const ExportFixture& fixture) {
    for (const Run& run : fixture.history) {
        CHECK(run.out.find(PostgresServer::password()) == std::string::npos);
        CHECK(run.err.find(PostgresServer::password()) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("state migrate: a PostgreSQL schema is created, found current, and a newer one is refused everywhere") {
    PostgresServer& postgres = PostgresServer::shared();
    const std::string database = postgres.create_database();
    ExportFixture fixture;
    use_state(fixture, postgres.state_yaml(database, 30));
    const std::string shown = postgres.uri_without_password(database);

    Run migrate = fixture.segpush("state migrate");
    INFO(migrate.out << migrate.err);
    CHECK(migrate.exit_code == 0);
    CHECK(migrate.out == "PostgreSQL state " + shown + ": schema created at version 1\n");
    migrate = fixture.segpush("state migrate --json");
    CHECK(migrate.exit_code == 0);
    CHECK_THAT(migrate.out, Catch::Contains(R"("backend": "PostgreSQL")") && Catch::Contains(R"("from_version": 1)") &&
                                Catch::Contains(R"("to_version": 1)") && Catch::Contains(shown));
    CHECK(fixture.segpush("config check").exit_code == 0);

    postgres::Connection db(postgres.uri(database));
    db.exec("UPDATE segpush_schema SET version = 2");
    const Run check = fixture.segpush("config check");
    CHECK(check.exit_code == 2);
    CHECK_THAT(check.err,
               Catch::Contains("error: state: " + shown + " has schema version 2, newer than this segpush knows (1)"));
    migrate = fixture.segpush("state migrate");
    CHECK(migrate.exit_code == 1);
    CHECK_THAT(migrate.err, Catch::Contains("has schema version 2, newer than this segpush knows (1)"));
    const Run run = fixture.segpush("export run vip_export");
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Catch::Contains("newer than this segpush knows"));
    CHECK(db.exec("SELECT count(*) FROM runs").integer(0, 0) == 0);  // nothing written
    check_no_password(fixture);
}

TEST_CASE("state migrate: a state database out of reach is a warning for config check and an error for a run") {
    PostgresServer postgres;
    const std::string database = postgres.create_database();
    ExportFixture fixture;
    use_state(fixture, postgres.state_yaml(database, 30));
    postgres.stop();
    const Run check = fixture.segpush("config check");
    INFO(check.out << check.err);
    CHECK(check.exit_code == 0);
    CHECK_THAT(check.err, Catch::Contains("warning: state: its schema cannot be checked: cannot connect to "
                                          "PostgreSQL state at 127.0.0.1:" +
                                          std::to_string(postgres.port()) + "/" + database));
    const Run migrate = fixture.segpush("state migrate");
    CHECK(migrate.exit_code == 1);
    CHECK_THAT(migrate.err, Catch::Contains("cannot connect to PostgreSQL state at 127.0.0.1"));
    check_no_password(fixture);
}

TEST_CASE("state migrate: an SQLite state file newer than this segpush is refused, not written") {
    ExportFixture fixture;
    fixture.write_config();
    fixture.write_segment(make_profiles(3));
    CHECK(fixture.segpush("state migrate").out == "SQLite state state/segpush.db: schema created at version 11\n");
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(fixture.dir.file("state/segpush.db").c_str(), &db) == SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version=12", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    const Run check = fixture.segpush("config check");
    CHECK(check.exit_code == 2);
    CHECK_THAT(check.err, Catch::Contains("has schema version 12, newer than this segpush knows (11)"));
    const Run run = fixture.segpush("export run vip_export");
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Catch::Contains("has schema version 12, newer than this segpush knows (11)"));
}
