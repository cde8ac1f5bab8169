// The run history: claiming an export so runs never overlap, closing the runs of dead
// processes, and what runs record. The TEMPLATE_TEST_CASEs are the contract every backend
// keeps (a backend joins by adding its type to RUN_HISTORY_BACKENDS); the plain TEST_CASEs
// are each backend's own (SQLite's columns and migrations, PostgreSQL's leases).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include "state/postgres.hpp"
#include "state/postgres_delivered_state.hpp"
#include "state/receipt_members.hpp"
#include "state/sqlite_run_history.hpp"
#include "state/state_file.hpp"
#include "state/state_store.hpp"
#include "support/postgres_server.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

// A backend under test: each object is a fresh, empty store that it removes when destroyed;
// open() gives a new handle on it, with its own connection, as another process's would be.
class SqliteBackend {
public:
    SqliteBackend() { StateFile created(path_); }

    std::shared_ptr<RunHistory> open() const {
        struct Opened {
            explicit Opened(const std::string& path) : file(path), history(file.db()) {}
            StateFile file;
            SqliteRunHistory history;
        };
        auto opened = std::make_shared<Opened>(path_);
        return std::shared_ptr<RunHistory>(opened, &opened->history);
    }

    const std::string& path() const { return path_; }

private:
    test::TempDir dir_;
    std::string path_ = dir_.file("state.db");
};

// A database of its own on the tests' PostgreSQL server, opened as a `serve` replica would.
class PostgresBackend {
public:
    PostgresBackend() : uri_(server().uri(server().create_database())) {}

    std::shared_ptr<RunHistory> open(const StateOptions& options = {}) const {
        const std::shared_ptr<StateStore> store = open_state_store(uri_, options);
        return std::shared_ptr<RunHistory>(store, &store->history());
    }
    std::shared_ptr<StateStore> open_store(const StateOptions& options = {}) const {
        return open_state_store(uri_, options);
    }

    const std::string& uri() const { return uri_; }

private:
    static test::PostgresServer& server() { return test::PostgresServer::shared(); }
    std::string uri_;
};

// Claims `export_name` in a child process that then dies without finishing its run; returns
// its pid once it is dead (collected when `collect`, else left a zombie).
template <typename Backend>
pid_t run_in_dying_process(const Backend& backend, const std::string& export_name, bool collect) {
    const pid_t child = fork();
    if (child == 0) {
        backend.open()->begin_run(export_name, false, false);
        _exit(0);
    }
    if (collect) {
        int status = 0;
        waitpid(child, &status, 0);
        return child;
    }
    // Until this process collects it, the child keeps its pid and its /proc entry, state Z.
    for (int tries = 0; tries < 500; ++tries) {
        std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
        const std::string line{std::istreambuf_iterator<char>(stat), std::istreambuf_iterator<char>()};
        if (line.find(") Z ") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return child;
}

}  // namespace

#define RUN_HISTORY_BACKENDS SqliteBackend, PostgresBackend

TEMPLATE_TEST_CASE("state: run history: a run of a live process blocks a second one, a dead process's run is "
                   "closed as interrupted",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    {
        TestType backend;
        const auto history = backend.open();
        history->begin_run("e", false, false);  // this process is alive
        CHECK_THROWS_AS(backend.open()->begin_run("e", false, false), AlreadyRunning);
        CHECK_NOTHROW(backend.open()->begin_run("other", false, false));  // other exports are free
    }
    TestType backend;
    const pid_t child = run_in_dying_process(backend, "e", true);
    const auto history = backend.open();
    const auto claim = history->begin_run("e", false, false);
    const auto runs = history->list_runs("e", 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].status == RunStatus::failed_retryable);
    CHECK_THAT(runs[1].error, Catch::Contains("interrupted: process " + std::to_string(child)));
    CHECK_FALSE(runs[1].finished_at.empty());
    CHECK(runs[0].id == claim.run_id);
}

TEMPLATE_TEST_CASE("state: run history: a run whose process is a zombie its parent has not collected is closed as "
                   "interrupted",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    TestType backend;
    const pid_t child = run_in_dying_process(backend, "e", false);
    const auto history = backend.open();
    CHECK_NOTHROW(history->begin_run("e", false, false));
    const auto runs = history->list_runs("e", 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].status == RunStatus::failed_retryable);
    int status = 0;
    waitpid(child, &status, 0);
}

TEMPLATE_TEST_CASE("state: run history: of several claims of one export at once, exactly one wins", "[run-history]",
                   RUN_HISTORY_BACKENDS) {
    TestType backend;
    constexpr int kClaims = 6;
    std::atomic<int> claimed{0}, refused{0};
    std::vector<std::string> errors(kClaims);
    std::vector<std::thread> claims;
    for (int i = 0; i < kClaims; ++i) {
        claims.emplace_back([&, i] {
            try {
                backend.open()->begin_run("e", false, false);
                ++claimed;
            } catch (const AlreadyRunning&) {
                ++refused;
            } catch (const std::exception& error) {
                errors[i] = error.what();
            }
        });
    }
    for (auto& thread : claims) thread.join();
    for (const auto& error : errors) CHECK(error.empty());
    CHECK(claimed == 1);
    CHECK(refused == kClaims - 1);
    const auto live = backend.open()->live_runs();
    REQUIRE(live.size() == 1);
    CHECK(live[0].export_name == "e");
    CHECK(live[0].pid == getpid());
}

TEMPLATE_TEST_CASE("state: run history: a --full run sets its own baseline and is continued until it finishes",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    TestType backend;
    const auto history = backend.open();
    const auto normal = history->begin_run("e", false, false);
    CHECK(normal.baseline == 0);
    CHECK_FALSE(normal.continues);
    history->finish_run(normal.run_id, RunStatus::succeeded, RunCounts{}, "", "");

    const auto full = history->begin_run("e", true, false);
    CHECK(full.baseline == full.run_id);
    CHECK_FALSE(full.continues);
    history->finish_run(full.run_id, RunStatus::cancelled, RunCounts{}, "cancelled", "");

    // A dry run in between neither continues the --full run nor hides it.
    const auto dry = history->begin_run("e", true, true);
    CHECK(dry.baseline == 0);
    CHECK_FALSE(dry.continues);
    history->finish_run(dry.run_id, RunStatus::succeeded, RunCounts{}, "", "");

    const auto resumed = history->begin_run("e", true, false);
    REQUIRE(resumed.continues);
    CHECK(*resumed.continues == full.run_id);
    CHECK(resumed.baseline == full.run_id);
    history->finish_run(resumed.run_id, RunStatus::failed_retryable, RunCounts{}, "gave up", "");

    const auto again = history->begin_run("e", true, false);  // continues the continuation
    REQUIRE(again.continues);
    CHECK(*again.continues == resumed.run_id);
    CHECK(again.baseline == full.run_id);
    history->finish_run(again.run_id, RunStatus::succeeded, RunCounts{}, "", "");

    const auto fresh = history->begin_run("e", true, false);  // the last one succeeded
    CHECK_FALSE(fresh.continues);
    CHECK(fresh.baseline == fresh.run_id);
    history->finish_run(fresh.run_id, RunStatus::failed_permanent, RunCounts{}, "bad key", "");
    const auto after_permanent = history->begin_run("e", true, false);  // a person changed something
    CHECK_FALSE(after_permanent.continues);
    CHECK(after_permanent.baseline == after_permanent.run_id);
}

TEMPLATE_TEST_CASE("state: run history: a finished run keeps its counts, error and report, newest listed first",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    TestType backend;
    const auto history = backend.open();
    const auto first = history->begin_run("e", true, false);
    // Each count its own value, so that no two can be swapped unseen.
    const RunCounts counts{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115};
    history->finish_run(first.run_id, RunStatus::failed_retryable, counts, "the server went away", "/r/1.csv");
    const auto other = history->begin_run("f", false, true);
    history->finish_run(other.run_id, RunStatus::succeeded, RunCounts{}, "", "");
    const auto running = history->begin_run("e", false, false);

    // Another handle, as `runs show` in another process, reads what was recorded.
    const auto reader = backend.open();
    const auto run = reader->get_run(first.run_id);
    REQUIRE(run);
    CHECK(run->export_name == "e");
    CHECK(run->status == RunStatus::failed_retryable);
    CHECK(run->full);
    CHECK_FALSE(run->dry_run);
    CHECK(run->pid == getpid());
    CHECK_FALSE(run->hostname.empty());
    CHECK_FALSE(run->started_at.empty());
    CHECK_FALSE(run->finished_at.empty());
    CHECK(run->error == "the server went away");
    CHECK(run->report_path == "/r/1.csv");
    const RunCounts& c = run->counts;
    CHECK(c.rows_read == 101);
    CHECK(c.invalid == 102);
    CHECK(c.duplicates == 103);
    CHECK(c.members == 104);
    CHECK(c.new_members == 105);
    CHECK(c.changed == 106);
    CHECK(c.unchanged == 107);
    CHECK(c.leaving == 108);
    CHECK(c.sent == 109);
    CHECK(c.accepted == 110);
    CHECK(c.rejected == 111);
    CHECK(c.removed == 112);
    CHECK(c.suppressed == 113);
    CHECK(c.resumed == 114);
    CHECK(c.pending == 115);

    const auto still = reader->get_run(running.run_id);
    REQUIRE(still);
    CHECK(still->status == RunStatus::running);
    CHECK(still->finished_at.empty());
    CHECK(still->error.empty());
    CHECK(still->report_path.empty());
    CHECK_FALSE(reader->get_run(running.run_id + 1));

    const auto all = reader->list_runs("", 10);
    REQUIRE(all.size() == 3);
    CHECK(all[0].id == running.run_id);
    CHECK(all[1].id == other.run_id);
    CHECK(all[1].dry_run);
    CHECK(all[2].id == first.run_id);
    CHECK(all[0].id > all[1].id);
    CHECK(all[1].id > all[2].id);
    const auto of_e = reader->list_runs("e", 10);
    REQUIRE(of_e.size() == 2);
    CHECK(of_e[0].id == running.run_id);
    CHECK(of_e[1].id == first.run_id);
    const auto newest = reader->list_runs("", 1);
    REQUIRE(newest.size() == 1);
    CHECK(newest[0].id == running.run_id);
    CHECK(reader->list_runs("nobody", 10).empty());
}

TEMPLATE_TEST_CASE("state: run history: live runs are those of live processes, and errors forget the keys asked",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    TestType backend;
    run_in_dying_process(backend, "dead", true);
    const auto history = backend.open();
    const auto done = history->begin_run("done", false, false);
    history->finish_run(done.run_id, RunStatus::failed_permanent, RunCounts{},
                        "the destination refused Ann@Example.com and ann@example.com, not bo@example.com", "");
    CHECK(history->live_runs().empty());  // a dead process's run is not live, though still recorded running
    const auto live = history->begin_run("live", false, false);
    const auto runs = history->live_runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].id == live.run_id);

    CHECK(history->redact_from_errors({"ann@example.com", "cy@example.com"}) == 1);
    CHECK(history->get_run(done.run_id)->error ==
          "the destination refused *************** and ***************, not bo@example.com");
    CHECK(history->redact_from_errors({"cy@example.com"}) == 0);
}

TEMPLATE_TEST_CASE("state: run history: of several claims of one scheduled slot, exactly one claimer gets it",
                   "[run-history]", RUN_HISTORY_BACKENDS) {
    TestType backend;
    constexpr int kReplicas = 4;
    std::vector<int> claimed(kReplicas, -1);
    std::vector<std::string> errors(kReplicas);
    std::vector<std::thread> replicas;
    for (int i = 0; i < kReplicas; ++i) {
        replicas.emplace_back([&, i] {
            try {
                claimed[i] = backend.open()->claim_slot("e", "2026-01-31T12:00:00Z", "replica-" + std::to_string(i));
            } catch (const std::exception& error) {
                errors[i] = error.what();
            }
        });
    }
    for (auto& thread : replicas) thread.join();
    for (const auto& error : errors) CHECK(error.empty());
    int winner = -1;
    for (int i = 0; i < kReplicas; ++i) {
        if (claimed[i] != 1) continue;
        CHECK(winner == -1);
        winner = i;
    }
    REQUIRE(winner >= 0);
    const auto history = backend.open();
    // Later asking changes nothing: the winner may ask again (its answer was lost), no one else wins.
    CHECK(history->claim_slot("e", "2026-01-31T12:00:00Z", "replica-" + std::to_string(winner)));
    CHECK_FALSE(history->claim_slot("e", "2026-01-31T12:00:00Z", "replica-" + std::to_string((winner + 1) % 4)));
    // Another slot, or the same time of another export, is a slot of its own.
    CHECK(history->claim_slot("e", "2026-01-31T13:00:00Z", "replica-9"));
    CHECK(history->claim_slot("f", "2026-01-31T12:00:00Z", "replica-9"));
}

TEST_CASE("state: run history: a run whose pid now belongs to another process is closed as interrupted") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    StateFile file(path);
    SqliteRunHistory history(file.db());
    const int64_t stale = history.begin_run("e", false, false).run_id;
    // The run's process died and the system gave its pid to another (this test process: alive
    // under the same pid), as after a reboot: the process it names started at another time.
    sqlite::Database other(path);
    other.exec("UPDATE runs SET process_identity = 'another-boot/12345' WHERE id = " + std::to_string(stale));
    StateFile next_file(path);
    SqliteRunHistory next(next_file.db());
    const auto claim = next.begin_run("e", false, false);
    const auto runs = next.list_runs("e", 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].status == RunStatus::failed_retryable);
    CHECK_THAT(runs[1].error, Catch::Contains("stopped without finishing"));
    CHECK(runs[0].id == claim.run_id);
    // A run recorded without the identity (by an earlier segpush) is judged by its pid alone.
    other.exec("UPDATE runs SET process_identity = NULL WHERE id = " + std::to_string(claim.run_id));
    StateFile third_file(path);
    CHECK_THROWS_AS(SqliteRunHistory(third_file.db()).begin_run("e", false, false), AlreadyRunning);
}

TEST_CASE("state: run history: a state file from before runs kept their process's identity gains the column") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        sqlite::Database old(path);
        old.exec(
            "CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, export TEXT NOT NULL, status TEXT NOT NULL, "
            "started_at TEXT NOT NULL, finished_at TEXT, pid INTEGER, hostname TEXT, "
            "full INTEGER NOT NULL DEFAULT 0, dry_run INTEGER NOT NULL DEFAULT 0, baseline INTEGER NOT NULL DEFAULT 0, "
            "rows_read INTEGER NOT NULL DEFAULT 0, invalid INTEGER NOT NULL DEFAULT 0, "
            "duplicates INTEGER NOT NULL DEFAULT 0, members INTEGER NOT NULL DEFAULT 0, "
            "new_members INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, "
            "unchanged INTEGER NOT NULL DEFAULT 0, leaving INTEGER NOT NULL DEFAULT 0, "
            "sent INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0, "
            "rejected INTEGER NOT NULL DEFAULT 0, removed INTEGER NOT NULL DEFAULT 0, error TEXT, report_path TEXT);"
            "INSERT INTO runs(export, status, started_at, pid, hostname) VALUES('e', 'succeeded', 'then', 1, 'h');"
            "PRAGMA user_version=6;");
    }
    StateFile file(path);
    SqliteRunHistory history(file.db());
    const auto claim = history.begin_run("e", false, false);
    const auto runs = history.list_runs("e", 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].id == claim.run_id);
    CHECK(runs[1].status == RunStatus::succeeded);
    // Counts later versions added read as 0 for runs recorded before them.
    CHECK(runs[1].counts.suppressed == 0);
    CHECK(runs[1].counts.resumed == 0);
    CHECK(runs[1].counts.pending == 0);
}

TEST_CASE("state: run history: statuses keep their names, and an unknown name reads as failed permanently") {
    for (const RunStatus status : {RunStatus::running, RunStatus::succeeded, RunStatus::succeeded_with_rejections,
                                   RunStatus::failed_retryable, RunStatus::failed_permanent, RunStatus::cancelled}) {
        CHECK(run_status_from(to_string(status)) == status);
    }
    CHECK(to_string(RunStatus::succeeded_with_rejections) == "succeeded_with_rejections");
    CHECK(to_string(RunStatus::failed_retryable) == "failed_will_retry");
    CHECK(to_string(RunStatus::failed_permanent) == "failed_permanently");
    CHECK(run_status_from("exploded") == RunStatus::failed_permanent);
}

TEST_CASE("state: run history: schedule slots claimed over a week ago are forgotten by the next claim") {
    SqliteBackend backend;
    const auto history = backend.open();
    CHECK(history->claim_slot("e", "2026-01-01T00:00:00Z", "a"));
    CHECK(history->claim_slot("e", "2026-01-02T00:00:00Z", "a"));
    sqlite::Database other(backend.path());
    other.exec("UPDATE schedule_slots SET claimed_at = claimed_at - 8 * 86400 WHERE due_at = '2026-01-01T00:00:00Z'");
    CHECK(history->claim_slot("e", "2026-01-03T00:00:00Z", "a"));
    auto left = other.prepare("SELECT due_at FROM schedule_slots ORDER BY due_at");
    REQUIRE(left.step());
    CHECK(left.text(0) == "2026-01-02T00:00:00Z");
    REQUIRE(left.step());
    CHECK(left.text(0) == "2026-01-03T00:00:00Z");
    CHECK_FALSE(left.step());
}

// PostgreSQL's own: leases, which let a replica take over an export whose run's host went quiet.

namespace {

// A run recorded as running by another replica (host `replica-b`, pid 4242), its last heartbeat
// `seconds_ago`, its lease 30 s; returns its id.
int64_t run_of_another_host(postgres::Connection& db, const std::string& export_name, int seconds_ago) {
    return db
        .exec("INSERT INTO runs(export, status, started_at, pid, hostname, process_identity, heartbeat_at, "
              "lease_seconds) VALUES($1, 'running', '2026-01-31T12:00:00Z', 4242, 'replica-b', 'boot/1', "
              "now() - $2 * interval '1 second', 30) RETURNING id",
              postgres::Params().add(export_name).add(seconds_ago))
        .integer(0, 0);
}

}  // namespace

TEST_CASE("state: run history: postgres: a run of another host holds its export while its lease holds, and is "
          "taken over once it ran out",
          "[run-history][postgres]") {
    PostgresBackend backend;
    const auto history = backend.open();
    postgres::Connection db(backend.uri());
    const int64_t fresh = run_of_another_host(db, "e", 5);
    try {
        history->begin_run("e", false, false);
        FAIL("claimed an export another host holds");
    } catch (const AlreadyRunning& running) {
        CHECK(running.run.id == fresh);
        CHECK(std::string(running.what()) == "export 'e' is already running as run #" + std::to_string(fresh) +
                                                 " (pid 4242 on replica-b, started 2026-01-31T12:00:00Z)");
    }
    REQUIRE(history->live_runs().size() == 1);

    db.exec("UPDATE runs SET heartbeat_at = now() - interval '45 seconds' WHERE id = $1",
            postgres::Params().add(fresh));
    CHECK(history->live_runs().empty());
    const auto claim = history->begin_run("e", false, false);
    const auto taken_over = history->get_run(fresh);
    REQUIRE(taken_over);
    CHECK(taken_over->status == RunStatus::failed_retryable);
    CHECK_FALSE(taken_over->finished_at.empty());
    CHECK_THAT(taken_over->error, Catch::Contains("lease") && Catch::Contains("ran out") &&
                                      Catch::Contains("process 4242 on replica-b") &&
                                      Catch::Contains("no heartbeat for 45 s") && Catch::Contains("lease: 30 s"));
    const auto mine = history->get_run(claim.run_id);
    REQUIRE(mine);
    CHECK(mine->status == RunStatus::running);
    CHECK(mine->pid == getpid());
}

TEST_CASE("state: run history: postgres: a running run renews its lease until it finishes", "[run-history][postgres]") {
    PostgresBackend backend;
    StateOptions options;
    options.lease = std::chrono::seconds(3);  // renewed every second
    const auto history = backend.open(options);
    const auto claim = history->begin_run("e", false, true);  // a dry run holds its export too
    postgres::Connection db(backend.uri());
    const auto heartbeat = [&] {
        return std::string(
            db.exec("SELECT heartbeat_at, lease_seconds FROM runs WHERE id = $1", postgres::Params().add(claim.run_id))
                .text(0, 0));
    };
    CHECK(db.exec("SELECT lease_seconds FROM runs WHERE id = $1", postgres::Params().add(claim.run_id)).integer(0, 0) ==
          3);
    const std::string first = heartbeat();
    std::string later = first;
    for (int tries = 0; tries < 40 && later == first; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        later = heartbeat();
    }
    CHECK(later != first);
    // Past several leases, the run is still its own: no one could take it over.
    std::this_thread::sleep_for(std::chrono::seconds(4));
    CHECK_THROWS_AS(backend.open(options)->begin_run("e", false, false), AlreadyRunning);
    history->finish_run(claim.run_id, RunStatus::succeeded, RunCounts{}, "", "");
    CHECK(history->get_run(claim.run_id)->status == RunStatus::succeeded);
    CHECK(history->live_runs().empty());
}

TEST_CASE("state: run history: postgres: a run closed by another process is no longer renewed",
          "[run-history][postgres]") {
    PostgresBackend backend;
    StateOptions options;
    options.lease = std::chrono::seconds(3);  // renewed every second
    const auto history = backend.open(options);
    const auto claim = history->begin_run("e", false, false);
    postgres::Connection db(backend.uri());
    const postgres::Params by_id = postgres::Params().add(claim.run_id);
    db.exec("UPDATE runs SET status = 'failed_will_retry' WHERE id = $1", by_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // a renewal finds the run closed, and stops
    db.exec("UPDATE runs SET status = 'running', heartbeat_at = '2000-01-01T00:00:00Z' WHERE id = $1", by_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    CHECK(db.exec("SELECT heartbeat_at = '2000-01-01T00:00:00Z' FROM runs WHERE id = $1", by_id).boolean(0, 0));
}

TEST_CASE("state: run history: postgres: a run taken over keeps the record of the takeover when it finishes late",
          "[run-history][postgres]") {
    PostgresBackend backend;
    const auto quiet = backend.open();
    const auto claim = quiet->begin_run("e", false, false);
    // Its heartbeat (every 10 s of a 30 s lease) was held up, as by a network cut.
    postgres::Connection db(backend.uri());
    db.exec("UPDATE runs SET heartbeat_at = now() - interval '31 seconds' WHERE id = $1",
            postgres::Params().add(claim.run_id));
    const auto other = backend.open();
    const auto next = other->begin_run("e", false, false);
    quiet->finish_run(claim.run_id, RunStatus::succeeded, RunCounts{5}, "", "/r/late.csv");
    const auto run = other->get_run(claim.run_id);
    REQUIRE(run);
    CHECK(run->status == RunStatus::failed_retryable);
    CHECK_THAT(run->error, Catch::Contains("ran out"));
    CHECK(run->counts.rows_read == 0);
    CHECK(run->report_path.empty());
    CHECK(other->get_run(next.run_id)->status == RunStatus::running);
}

TEST_CASE("state: run history: postgres: schedule slots claimed over a week ago are forgotten by the next claim",
          "[run-history][postgres]") {
    PostgresBackend backend;
    const auto history = backend.open();
    CHECK(history->claim_slot("e", "2026-01-01T00:00:00Z", "a"));
    CHECK(history->claim_slot("e", "2026-01-02T00:00:00Z", "a"));
    postgres::Connection db(backend.uri());
    db.exec("UPDATE schedule_slots SET claimed_at = now() - interval '8 days' WHERE due_at = '2026-01-01T00:00:00Z'");
    CHECK(history->claim_slot("e", "2026-01-03T00:00:00Z", "a"));
    const postgres::Result left = db.exec("SELECT due_at FROM schedule_slots ORDER BY due_at");
    REQUIRE(left.rows() == 2);
    CHECK(left.text(0, 0) == "2026-01-02T00:00:00Z");
    CHECK(left.text(1, 0) == "2026-01-03T00:00:00Z");
}

TEST_CASE("state: postgres: forgetting people removes their keys from every table and run error, and waits for "
          "no live run",
          "[run-history][postgres]") {
    PostgresBackend backend;
    const auto store = backend.open_store();
    postgres::Connection db(backend.uri());
    const std::string ann = "ann@example.com", bo = "bo@example.com";
    // As the delivered state records them (postgres_schema.cpp): keys are bytea.
    for (const std::string& key : {ann, bo}) {
        for (const char* export_name : {"e", "f"}) {
            db.exec("INSERT INTO delivered(export, member_key, key_value, hash, run_id) VALUES($1, $2, $2, 7, 1)",
                    postgres::Params().add(export_name).add_bytes(key));
        }
        db.exec("INSERT INTO removals VALUES('e', $1, 1700000000, 1)", postgres::Params().add_bytes(key));
        db.exec("INSERT INTO refused VALUES('f', $1, 9, 1, 1)", postgres::Params().add_bytes(key));
    }
    std::string both, only_ann;
    encode_receipt_member(both, 1, ann, "Ann@Example.com", "values");
    encode_receipt_member(both, 2, bo, bo);
    encode_receipt_member(only_ann, 1, ann, ann);
    db.exec("INSERT INTO unconfirmed(export, run_id, first_seq, last_seq, receipt, members) "
            "VALUES('e', 1, 0, 1, '\\x01', $1), ('e', 1, 2, 2, '\\x02', $2)",
            postgres::Params().add_bytes(both).add_bytes(only_ann));
    const auto live = store->history().begin_run("e", false, false);
    CHECK_THROWS_AS(store->forget_members({ann}), AlreadyRunning);
    CHECK(db.exec("SELECT COUNT(*) FROM delivered").integer(0, 0) == 4);  // nothing was forgotten
    store->history().finish_run(live.run_id, RunStatus::failed_permanent, RunCounts{},
                                "the destination refused ANN@example.com", "");

    const StateStore::Forgotten forgotten = store->forget_members({ann});
    CHECK(forgotten.delivered == 2);
    CHECK(forgotten.removals == 1);
    CHECK(forgotten.refusals == 1);
    CHECK(forgotten.awaiting_import == 2);
    CHECK(forgotten.run_errors == 1);
    for (const char* table : {"delivered", "removals", "refused"}) {
        CAPTURE(table);
        CHECK(db.exec(std::string("SELECT COUNT(*) FROM ") + table + " WHERE member_key = $1",
                      postgres::Params().add_bytes(ann))
                  .integer(0, 0) == 0);
        CHECK(db.exec(std::string("SELECT COUNT(*) FROM ") + table + " WHERE member_key = $1",
                      postgres::Params().add_bytes(bo))
                  .integer(0, 0) > 0);
    }
    const postgres::Result receipts = db.exec("SELECT members FROM unconfirmed");
    REQUIRE(receipts.rows() == 1);  // the receipt of ann alone is gone
    std::string bo_alone;
    encode_receipt_member(bo_alone, 2, bo, bo);
    CHECK(receipts.bytes(0, 0) == bo_alone);
    CHECK(store->history().get_run(live.run_id)->error == "the destination refused ***************");
}

TEST_CASE("state: postgres: forgetting people closes a run whose lease ran out, so its holder records nothing more",
          "[run-history][postgres]") {
    PostgresBackend backend;
    const auto holder = backend.open_store();
    const auto run = holder->history().begin_run("e", false, false);
    postgres::Connection db(backend.uri());
    // Another host's run, silent for an hour: its process may only be paused.
    db.exec("UPDATE runs SET hostname = 'elsewhere', heartbeat_at = now() - interval '1 hour' WHERE id = $1",
            postgres::Params().add(run.run_id));
    const auto other = backend.open_store();
    other->forget_members({"ann@example.com"});
    const std::optional<RunRecord> closed = other->history().get_run(run.run_id);
    REQUIRE(closed);
    CHECK(closed->status == RunStatus::failed_retryable);
    CHECK_THAT(closed->error, Catch::Contains("people were forgotten meanwhile"));
    // Its holder, back, cannot record the people again.
    DeliveryBatch batch;
    batch.deliver("ann@example.com", "ann@example.com", 1, false, false);
    CHECK_THROWS_AS(holder->delivered().record("e", run.run_id, batch), LeaseLost);
    CHECK(db.exec("SELECT COUNT(*) FROM delivered").integer(0, 0) == 0);
}
