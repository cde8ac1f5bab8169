// The run history: claiming an export so runs never overlap, closing the runs of dead
// processes, and what runs record. The TEMPLATE_TEST_CASEs are the contract every backend
// keeps (a backend joins by adding its type to RUN_HISTORY_BACKENDS); the plain TEST_CASEs
// are the SQLite backend's own (its columns, its migrations).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include "state/sqlite_run_history.hpp"
#include "state/state_file.hpp"
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

#define RUN_HISTORY_BACKENDS SqliteBackend

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
