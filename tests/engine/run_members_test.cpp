// The members of a run over the SQLite state: staging with de-duplication, the diff against
// the delivered state, outcomes as checkpoints; and what the state store does with them
// (claiming an export is tested with the run history, tests/state).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/run_members.hpp"
#include "engine/staged_keys.hpp"
#include "state/sqlite.hpp"
#include "state/sqlite_state_store.hpp"
#include "support/process.hpp"  // read_file
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

// A run of an export as the engine makes one: claimed in the run history, then its members,
// fresh for the run.
struct Run {
    explicit Run(StateStore& state, bool full = false, const std::string& export_name = "e",
                 bool removals_are_own = true)
        : claim(state.history().begin_run(export_name, full, false)),
          members(state.delivered(), export_name, claim.run_id, removals_are_own) {}

    RunHistory::Claim claim;
    RunMembers members;
    RunCounts counts;
};

// Stages members with the given keys and hashes (each key is its own value, its payload
// "payload-<key>"); returns how many were new keys.
int stage(RunMembers& run, const std::vector<std::pair<std::string, uint64_t>>& members) {
    run.begin_staging();
    int inserted = 0;
    int64_t seq = 0;
    for (const auto& [key, hash] : members) {
        if (run.stage_member(seq + 1, key, key, hash, "payload-" + key, 0, seq + 2)) {
            ++seq;
            ++inserted;
        }
    }
    run.end_staging();
    return inserted;
}

// A run of export "e" that staged `staged` and diffed it (nobody leaves).
struct DiffedRun : Run {
    DiffedRun(StateStore& state, const std::vector<std::pair<std::string, uint64_t>>& staged) : Run(state) {
        stage(members, staged);
        members.diff(claim.baseline, false, 100, counts);
    }
};

void accept_all(RunMembers& run) {
    std::vector<MemberOutcome> outcomes;
    for (const auto& member : run.next_todo(0, 1000)) outcomes.push_back({member.seq, MemberState::done, "", ""});
    run.apply_outcomes(outcomes);
}

void finish(StateStore& state, const Run& run, RunStatus status, const std::string& error = "") {
    state.history().finish_run(run.claim.run_id, status, run.counts, error, "");
}

}  // namespace

TEST_CASE("run members: duplicates are ignored (the first wins), the diff finds new, changed, unchanged and leaving") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    Run first(state);
    CHECK(stage(first.members, {{"a", 1}, {"b", 2}, {"a", 99}, {"c", 3}}) == 3);
    first.members.diff(first.claim.baseline, false, 100, first.counts);
    CHECK(first.counts.members == 3);
    CHECK(first.counts.new_members == 3);
    auto todo = first.members.next_todo(0, 10);
    REQUIRE(todo.size() == 3);
    CHECK(todo[0].payload == "payload-a");  // the first "a", not the duplicate
    accept_all(first.members);
    finish(state, first, RunStatus::succeeded);

    Run second(state);
    stage(second.members, {{"a", 1}, {"b", 20}, {"d", 4}});
    RunCounts again;
    second.members.diff(second.claim.baseline, true, 100, again);
    CHECK(again.unchanged == 1);    // a
    CHECK(again.changed == 1);      // b
    CHECK(again.new_members == 1);  // d
    CHECK(again.leaving == 1);      // c
    todo = second.members.next_todo(0, 10);
    REQUIRE(todo.size() == 3);  // b, d, and c as a removal
    CHECK(todo.back().action == MemberAction::remove);
    CHECK(todo.back().payload == "c");
}

TEST_CASE("run members: outcomes are the checkpoint, only what was confirmed counts as delivered") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    Run run(state);
    stage(run.members, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    run.members.diff(run.claim.baseline, false, 100, run.counts);
    const auto tally = run.members.apply_outcomes(
        {{1, MemberState::done, "", ""}, {2, MemberState::rejected, "bad", ""}, {3, MemberState::pending, "", ""}});
    CHECK(tally.accepted == 1);
    CHECK(tally.rejected == 1);
    const auto rejected = run.members.reported_members({"seg.csv"});
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].source == "seg.csv");
    CHECK(rejected[0].key == "b");
    CHECK(rejected[0].outcome == "rejected");
    CHECK(rejected[0].reason == "bad");
    // The run stops here (as after a crash, which a later run closes the same way): the next
    // run sends b (rejected last time), c (never confirmed) and d (never sent), not a.
    finish(state, run, RunStatus::failed_retryable, "interrupted");
    Run next(state);
    stage(next.members, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    next.members.diff(next.claim.baseline, false, 100, next.counts);
    CHECK(next.counts.unchanged == 1);
    CHECK(next.counts.new_members == 3);
}

TEST_CASE("run members: an interrupted --full run is continued by the next --full run, not restarted") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    {
        Run normal(state);
        stage(normal.members, {{"a", 1}, {"b", 2}});
        normal.members.diff(normal.claim.baseline, false, 100, normal.counts);
        accept_all(normal.members);
        finish(state, normal, RunStatus::succeeded);
    }

    Run full(state, true);
    CHECK(full.claim.baseline == full.claim.run_id);
    stage(full.members, {{"a", 1}, {"b", 2}});
    full.members.diff(full.claim.baseline, false, 100, full.counts);
    CHECK(full.counts.unchanged == 0);                              // --full resends everyone
    full.members.apply_outcomes({{1, MemberState::done, "", ""}});  // a delivered, then it stops
    finish(state, full, RunStatus::cancelled, "cancelled");

    Run resumed(state, true);
    REQUIRE(resumed.claim.continues);
    CHECK(*resumed.claim.continues == full.claim.run_id);
    stage(resumed.members, {{"a", 1}, {"b", 2}});
    resumed.members.diff(resumed.claim.baseline, false, 100, resumed.counts);
    CHECK(resumed.counts.unchanged == 1);  // a, already re-sent by the interrupted --full run
    CHECK(resumed.counts.changed == 1);    // b still to resend
}

TEST_CASE("state: several exports opening a new state file at once all start (serve starts them together)") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    for (int round = 0; round < 5; ++round) {
        std::filesystem::remove(path);
        std::vector<std::thread> exports;
        std::atomic<int> started{0};
        std::vector<std::string> errors(4);
        for (int i = 0; i < 4; ++i) {
            exports.emplace_back([&, i] {
                try {
                    SqliteStateStore state(path);
                    const Run run(state, false, "export" + std::to_string(i));
                    finish(state, run, RunStatus::succeeded);
                    ++started;
                } catch (const std::exception& error) {
                    errors[i] = error.what();
                }
            });
        }
        for (auto& thread : exports) thread.join();
        INFO(errors[0] << errors[1] << errors[2] << errors[3]);
        CHECK(started == 4);
    }
}

TEST_CASE("run members: a receipt kept with a pending member outlives the process and comes back while the values "
          "are unchanged") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);
        Run run(state);
        stage(run.members, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
        run.members.diff(run.claim.baseline, false, 100, run.counts);
        run.members.apply_outcomes({{1, MemberState::pending, "", "import-7"},
                                    {2, MemberState::pending, "", "import-7"},
                                    {3, MemberState::pending, "", "import-8"},
                                    {4, MemberState::pending, "", ""}});
        // import-8 settles before the process dies: its receipt is forgotten.
        run.members.apply_outcomes({{3, MemberState::done, "", ""}});
        // The process dies here (closed as the next claim would close it), with a, b and d unconfirmed.
        finish(state, run, RunStatus::failed_retryable, "interrupted");
    }

    SqliteStateStore state(path);
    {
        Run next(state);
        // b changed since (hash 2 -> 22): its old receipt no longer says anything about it.
        stage(next.members, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
        next.members.diff(next.claim.baseline, false, 100, next.counts);
        CHECK(next.counts.unchanged == 1);  // c only: a pending record is not delivered until confirmed
        const auto resumable = next.members.resumable(next.claim.baseline);
        REQUIRE(resumable.size() == 1);
        CHECK(resumable[0].member.seq == 1);
        CHECK(resumable[0].receipt == "import-7");
        CHECK(resumable[0].member.payload == "payload-a");
        // Confirmed, and the earlier run's receipts (b's, whose values changed, included) are
        // forgotten; a receipt this run records is kept until its member settles.
        next.members.apply_outcomes({{1, MemberState::done, "", ""}, {4, MemberState::pending, "", "import-9"}});
        next.members.forget_earlier_receipts();
        finish(state, next, RunStatus::failed_retryable, "interrupted");
    }
    {
        Run third(state);
        stage(third.members, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
        third.members.diff(third.claim.baseline, false, 100, third.counts);
        CHECK(third.counts.unchanged == 2);  // a (confirmed by its receipt) and c
        const auto left = third.members.resumable(third.claim.baseline);
        REQUIRE(left.size() == 1);
        CHECK(left[0].member.seq == 4);
        CHECK(left[0].receipt == "import-9");
        finish(state, third, RunStatus::failed_retryable, "interrupted");
    }
    // --full resends everything: receipts from before it confirm nothing.
    Run full(state, true);
    stage(full.members, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
    full.members.diff(full.claim.baseline, false, 100, full.counts);
    CHECK(full.members.resumable(full.claim.baseline).empty());
}

TEST_CASE("run members: a batch's receipt stays while any of its members is pending, and is forgotten after") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    auto stopped_run = [&](const std::vector<MemberOutcome>& settled) {
        SqliteStateStore state(path);
        DiffedRun run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        run.members.apply_outcomes({{1, MemberState::pending, "", "import-7"},
                                    {2, MemberState::pending, "", "import-7"},
                                    {3, MemberState::pending, "", "import-7"}});
        run.members.apply_outcomes(settled);
        run.members.forget_earlier_receipts();
        finish(state, run, RunStatus::failed_retryable, "interrupted");
    };
    auto resumable_now = [&] {
        SqliteStateStore state(path);
        DiffedRun run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        std::vector<int64_t> seqs;
        for (const auto& member : run.members.resumable(run.claim.baseline)) {
            CHECK(member.receipt == "import-7");
            CHECK(member.member.payload == "payload-" + std::string(1, static_cast<char>('a' + member.member.seq - 1)));
            seqs.push_back(member.member.seq);
        }
        finish(state, run, RunStatus::failed_retryable, "interrupted");
        return seqs;
    };

    // b was refused while a and c were still being imported: the receipt stays, and the next
    // run asks about all three through it (b's refusal again, rather than sending b again).
    stopped_run({{2, MemberState::rejected, "bad", ""}});
    CHECK(resumable_now() == std::vector<int64_t>{1, 2, 3});
    // All three settled: the receipt has nothing left to confirm.
    stopped_run(
        {{1, MemberState::done, "", ""}, {2, MemberState::rejected, "bad", ""}, {3, MemberState::done, "", ""}});
    CHECK(resumable_now().empty());
}

TEST_CASE("run members: a member reported several times in one call ends as its reports say in order") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);
        DiffedRun run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"f", 5}});
        run.members.apply_outcomes({{5, MemberState::pending, "", "import-5"}});
        // Given back, then pending again without a receipt: import-5 no longer speaks for it.
        run.members.apply_outcomes({{5, MemberState::todo, "lost", ""}, {5, MemberState::pending, "", ""}});
        const OutcomeTally tally = run.members.apply_outcomes(
            {{1, MemberState::pending, "", "import-1"},
             {2, MemberState::pending, "", "import-2"},
             {3, MemberState::rejected, "bad", ""},
             {4, MemberState::pending, "", "import-4"},
             {1, MemberState::done, "", ""},        // settled in the same call: no receipt kept
             {2, MemberState::pending, "", ""},     // still pending: keeps import-2
             {3, MemberState::done, "", ""},        // the first final report wins
             {4, MemberState::todo, "lost", ""}});  // given back: its receipt says nothing now
        CHECK(tally.accepted == 1);
        CHECK(tally.rejected == 1);
        CHECK(run.members.count_todo() == 1);
        const auto refused = run.members.reported_members({"segment.csv"});
        REQUIRE(refused.size() == 1);
        CHECK(refused[0].key == "c");
        CHECK(refused[0].reason == "bad");
        finish(state, run, RunStatus::failed_retryable, "interrupted");
    }
    SqliteStateStore state(path);
    DiffedRun next(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"f", 5}});
    CHECK(next.counts.unchanged == 1);  // a
    const auto resumable = next.members.resumable(next.claim.baseline);
    REQUIRE(resumable.size() == 1);
    CHECK(resumable[0].member.seq == 2);
    CHECK(resumable[0].receipt == "import-2");
}

TEST_CASE("run members: outcomes whose transaction fails leave memory as if they never arrived") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);
        DiffedRun run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
        run.members.apply_outcomes({{1, MemberState::pending, "", "import-1"},
                                    {2, MemberState::pending, "", "import-1"},
                                    {3, MemberState::pending, "", "import-2"}});
        // The state file refuses to keep import-2's row as c's delivery (as a full disk would),
        // from another connection: the statement fails after the members' states, both
        // receipts' counts and import-1's row (kept for a and b) were already done in this call.
        sqlite::Database other(path);
        other.exec("CREATE TRIGGER refuse_c BEFORE UPDATE ON unconfirmed WHEN NEW.receipt = 'import-2' "
                   "BEGIN SELECT RAISE(ABORT, 'no room'); END");
        CHECK_THROWS_WITH(run.members.apply_outcomes({{1, MemberState::done, "", ""},
                                                      {2, MemberState::done, "", ""},
                                                      {3, MemberState::done, "", ""},
                                                      {4, MemberState::pending, "", "import-3"}}),
                          Catch::Contains("no room"));
        CHECK(run.members.count_todo() == 1);  // d: still to send, as before the call
        other.exec("DROP TRIGGER refuse_c");
        // Outcomes arriving after count and record their members: had memory kept the failed
        // call's states, a and c would be skipped as already final and never recorded.
        const OutcomeTally tally = run.members.apply_outcomes({{1, MemberState::done, "", ""},
                                                               {3, MemberState::done, "", ""},
                                                               {4, MemberState::pending, "", "import-3"}});
        CHECK(tally.accepted == 2);
        CHECK(run.members.count_todo() == 0);
        // import-2's row is kept as c's delivery (c was found on it again); import-1's waits on
        // b (a, accepted without b, went to the log) and import-3's row is new.
        auto receipts = other.prepare("SELECT group_concat(receipt || ':' || confirmed) FROM "
                                      "(SELECT receipt, confirmed FROM unconfirmed ORDER BY receipt)");
        REQUIRE(receipts.step());
        CHECK(receipts.text(0) == "import-1:0,import-2:1,import-3:0");
        finish(state, run, RunStatus::failed_retryable, "interrupted");
    }
    SqliteStateStore state(path);
    DiffedRun next(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    CHECK(next.counts.unchanged == 2);  // a and c
    // b still waits on import-1: the failed call's count of its waiting members was restored
    // (left at zero, a's confirmation would have dropped the row). d waits on import-3.
    const auto resumable = next.members.resumable(next.claim.baseline);
    REQUIRE(resumable.size() == 2);
    CHECK(resumable[0].member.seq == 2);
    CHECK(resumable[0].receipt == "import-1");
    CHECK(resumable[1].member.seq == 4);
    CHECK(resumable[1].receipt == "import-3");
}

TEST_CASE("run members: a refresh sends only the changed members among many, and their receipts bring them back") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    std::vector<std::pair<std::string, uint64_t>> members;
    for (int i = 1; i <= 1000; ++i) members.emplace_back("m" + std::to_string(i), static_cast<uint64_t>(i));
    {
        SqliteStateStore state(path);
        DiffedRun run(state, members);
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    // Five members changed: next_todo's first four (10, 500, 997, 998) lie far apart and are
    // read one by one; the rest (999 and the new 1001) lie together and are read in one range.
    for (const int changed : {10, 500, 997, 998, 999}) members[changed - 1].second += 5000;
    members.emplace_back("m1001", 1001);  // and one new
    SqliteStateStore state(path);
    {
        DiffedRun run(state, members);
        CHECK(run.counts.members == 1001);
        CHECK(run.counts.new_members == 1);
        CHECK(run.counts.changed == 5);
        CHECK(run.counts.unchanged == 995);
        CHECK(run.counts.leaving == 0);
        std::vector<int64_t> seqs;
        std::vector<std::string> payloads;
        for (const auto& member : run.members.next_todo(0, 4)) {
            seqs.push_back(member.seq);
            payloads.emplace_back(member.payload);
        }
        CHECK(seqs == std::vector<int64_t>{10, 500, 997, 998});
        CHECK(payloads == std::vector<std::string>{"payload-m10", "payload-m500", "payload-m997", "payload-m998"});
        const auto rest = run.members.next_todo(998, 250);
        REQUIRE(rest.size() == 2);
        CHECK(rest[0].seq == 999);
        CHECK(rest[1].payload == "payload-m1001");
        // All six pending on one import when the process stops.
        std::vector<MemberOutcome> pending;
        for (const int64_t seq : {10, 500, 997, 998, 999, 1001})
            pending.push_back({seq, MemberState::pending, "", "import-r"});
        run.members.apply_outcomes(pending);
        finish(state, run, RunStatus::failed_retryable, "interrupted");
    }
    // The receipt's members, spread over the run, are found again by key and values.
    DiffedRun next(state, members);
    std::vector<int64_t> resumed;
    for (const auto& member : next.members.resumable(next.claim.baseline)) {
        CHECK(member.receipt == "import-r");
        resumed.push_back(member.member.seq);
    }
    CHECK(resumed == std::vector<int64_t>{10, 500, 997, 998, 999, 1001});
}
TEST_CASE("staged keys: every key found again across growth, a fingerprint match is checked against the key") {
    StagedKeys keys;
    std::vector<std::string> stored(1);  // seq -> key, as the staged file holds them
    auto key_of = [&](uint32_t seq) { return stored.at(seq); };
    for (uint32_t i = 1; i <= 100000; ++i) {
        stored.push_back("member" + std::to_string(i) + "@example.com");
        const auto place = keys.find(stored.back(), key_of);
        REQUIRE(place.held == 0);
        keys.add(place, i);
    }
    for (uint32_t i = 1; i <= 100000; i += 997) {
        CHECK(keys.find("member" + std::to_string(i) + "@example.com", key_of).held == i);
    }
    // Seqs only grow: an older one would overwrite the fingerprint another key is found by.
    CHECK_THROWS_AS(keys.add(keys.find("late@example.com", key_of), 5), std::logic_error);

    // Same fingerprint, different key (a hash collision): key_of is the judge, so a key it
    // does not confirm is recorded as a member of its own.
    StagedKeys colliding;
    auto says_other = [](uint32_t) { return std::string("someone-else@example.com"); };
    auto first = colliding.find("ada@example.com", says_other);
    CHECK(first.held == 0);
    colliding.add(first, 1);
    auto second = colliding.find("ada@example.com", says_other);
    CHECK(second.held == 0);
    colliding.add(second, 2);
    auto says_ada = [](uint32_t) { return std::string("ada@example.com"); };
    CHECK(colliding.find("ada@example.com", says_ada).held == 1);

    // Released, then used again: starts empty.
    colliding.release();
    CHECK(colliding.find("ada@example.com", says_ada).held == 0);
}

TEST_CASE("staging: a member whose row failed to be written is not taken for a duplicate, nor hides one") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    Run run(state);
    run.members.begin_staging();
    REQUIRE(run.members.stage_member(1, "a@example.com", "a@example.com", 1, "{}", 0, 2));
    // Seq 1 is taken: the row is refused, so its key must not be recorded under seq 1.
    CHECK_THROWS(run.members.stage_member(1, "b@example.com", "b@example.com", 2, "{}", 0, 3));
    CHECK_FALSE(run.members.stage_member(2, "a@example.com", "a@example.com", 1, "{}", 0, 4));
    CHECK(run.members.stage_member(2, "b@example.com", "b@example.com", 2, "{}", 0, 5));
    CHECK_FALSE(run.members.stage_member(3, "b@example.com", "b@example.com", 2, "{}", 0, 6));
    run.members.end_staging();
}

TEST_CASE("run members: a receipt whose every member is accepted is kept as their delivery, emails as written") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);
        Run run(state);
        run.members.begin_staging();
        REQUIRE(run.members.stage_member(1, "ann@x.io", "Ann@X.io", 11, "payload-ann", 0, 2));
        REQUIRE(run.members.stage_member(2, "bo@x.io", "bo@x.io", 12, "payload-bo", 0, 3));
        REQUIRE(run.members.stage_member(3, "cy@x.io", "cy@x.io", 13, "payload-cy", 0, 4));
        run.members.end_staging();
        run.members.all_members_staged();
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        run.members.apply_outcomes({{1, MemberState::pending, "", "import-A"},
                                    {2, MemberState::pending, "", "import-A"},
                                    {3, MemberState::pending, "", "import-B"}});
        const OutcomeTally tally = run.members.apply_outcomes(
            {{1, MemberState::done, "", ""}, {2, MemberState::done, "", ""}, {3, MemberState::rejected, "no", ""}});
        CHECK(tally.accepted == 2);
        CHECK(tally.rejected == 1);
        sqlite::Database other(path);
        auto rows = other.prepare("SELECT group_concat(receipt || ':' || confirmed) FROM unconfirmed");
        REQUIRE(rows.step());
        CHECK(rows.text(0) == "import-A:1");  // import-B went: cy was refused
        auto logged = other.prepare("SELECT COUNT(*) FROM delivered_log");
        REQUIRE(logged.step());
        CHECK(logged.integer(0) == 0);
        finish(state, run, RunStatus::succeeded);
    }
    // The next run finds ann and bo delivered (they leave, with ann's email as written) and cy
    // still new; the kept receipt is merged, nothing is left to resume.
    SqliteStateStore state(path);
    Run next(state);
    next.members.begin_staging();
    REQUIRE(next.members.stage_member(1, "cy@x.io", "cy@x.io", 13, "payload-cy", 0, 2));
    next.members.end_staging();
    next.members.all_members_staged();
    next.members.diff(next.claim.baseline, true, 100, next.counts);
    CHECK(next.counts.new_members == 1);
    CHECK(next.counts.leaving == 2);
    CHECK(next.members.resumable(next.claim.baseline).empty());
    std::vector<std::string> payloads;
    for (const auto& member : next.members.next_todo(0, 10)) payloads.emplace_back(member.payload);
    CHECK(payloads == std::vector<std::string>{"payload-cy", "Ann@X.io", "bo@x.io"});
    sqlite::Database other(path);
    auto rows = other.prepare("SELECT COUNT(*) FROM unconfirmed");
    REQUIRE(rows.step());
    CHECK(rows.integer(0) == 0);
}

TEST_CASE("state: a version-7 unconfirmed table gains the confirmed column, its receipts still resumable") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);  // creates every table, then the unconfirmed table is made version 7's
        sqlite::Database old(path);
        old.exec("DROP TABLE unconfirmed;"
                 "CREATE TABLE unconfirmed(id INTEGER PRIMARY KEY, export TEXT NOT NULL, run_id INTEGER NOT NULL, "
                 "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, receipt TEXT NOT NULL, members BLOB NOT NULL);"
                 "PRAGMA user_version=7;");
    }
    {
        SqliteStateStore state(path);
        DiffedRun run(state, {{"a", 1}});
        run.members.apply_outcomes({{1, MemberState::pending, "", "import-7"}});
        finish(state, run, RunStatus::failed_retryable, "stopped");
    }
    SqliteStateStore state(path);
    DiffedRun next(state, {{"a", 1}});
    const auto resumable = next.members.resumable(next.claim.baseline);
    REQUIRE(resumable.size() == 1);
    CHECK(resumable[0].receipt == "import-7");
}

TEST_CASE("run members: a suppressed member counts apart, is reported, and is not sent again while unchanged") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    DiffedRun first(state, {{"a", 1}, {"b", 2}});
    const auto tally = first.members.apply_outcomes(
        {{1, MemberState::done, "", ""}, {2, MemberState::suppressed, "unsubscribed from list 3", ""}});
    CHECK(tally.accepted == 1);
    CHECK(tally.suppressed == 1);
    CHECK(tally.rejected == 0);
    const auto reported = first.members.reported_members({"seg.csv"});
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].key == "b");
    CHECK(reported[0].outcome == "suppressed");
    CHECK(reported[0].reason == "unsubscribed from list 3");
    first.counts.suppressed = tally.suppressed;
    finish(state, first, RunStatus::succeeded);
    CHECK(state.history().get_run(first.claim.run_id)->counts.suppressed == 1);

    DiffedRun again(state, {{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(again.counts.unchanged == 2);  // b too: its values have not changed
    CHECK(again.counts.new_members == 1);
    finish(state, again, RunStatus::cancelled);
    DiffedRun changed(state, {{"a", 1}, {"b", 20}});
    CHECK(changed.counts.changed == 1);  // new values: sent again, to be suppressed again or not
}

namespace {

// A run of export "e" that stages `staged`, diffs it under `policy` (and --full when `full`),
// has the destination refuse every member it sends, and ends. Returns the keys it sent.
struct RefusingRun : Run {
    RefusingRun(StateStore& state, const std::vector<std::pair<std::string, uint64_t>>& staged,
                const RefusalPolicy& policy = {}, bool full = false)
        : Run(state, full) {
        stage(members, staged);
        members.set_refusal_policy(policy);
        members.diff(claim.baseline, false, 100, counts);
        members.forget_obsolete_refusals();
        std::vector<MemberOutcome> outcomes;
        for (const auto& member : members.next_todo(0, 1000)) {
            sent.emplace_back(member.payload.substr(std::string("payload-").size()));
            outcomes.push_back({member.seq, MemberState::rejected, "invalid address", ""});
        }
        counts.rejected = members.apply_outcomes(outcomes).rejected;
        finish(state, *this, RunStatus::succeeded);
    }
    std::vector<std::string> sent;
};

using Keys = std::vector<std::string>;

}  // namespace

TEST_CASE("run members: a refused member is sent again by the next retry_rejected_runs runs, then held while its "
          "values stay the same") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    const std::vector<std::pair<std::string, uint64_t>> members{{"a", 1}, {"b", 2}};
    const RefusingRun first(state, members);  // the default policy: 3 runs
    CHECK(first.sent == Keys{"a", "b"});
    CHECK(first.counts.rejected == 2);
    CHECK(first.counts.rejected_retried == 0);
    for (int retry = 1; retry <= 3; ++retry) {
        INFO("retry " << retry);
        const RefusingRun again(state, members);
        CHECK(again.sent == Keys{"a", "b"});
        CHECK(again.counts.new_members == 2);  // never delivered: still new
        CHECK(again.counts.rejected_retried == 2);
        CHECK(again.counts.rejected_held == 0);
        CHECK(state.history().get_run(again.claim.run_id)->counts.rejected_retried == 2);
    }
    for (int held = 0; held < 2; ++held) {
        RefusingRun after(state, members);
        CHECK(after.sent.empty());
        CHECK(after.counts.rejected == 0);
        CHECK(after.counts.rejected_retried == 0);
        CHECK(after.counts.rejected_held == 2);
        CHECK(after.members.count_todo() == 0);
        const auto reported = after.members.reported_members({"seg.csv"});
        REQUIRE(reported.size() == 2);
        CHECK(reported[0].key == "a");
        CHECK(reported[0].outcome == "held");
        CHECK(reported[0].reason ==
              "refused by the destination on 4 runs with these values; not sent again until they change (or "
              "--retry-rejected)");
        CHECK(state.history().get_run(after.claim.run_id)->counts.rejected_held == 2);
    }
    // A new member beside them is sent; the held ones are not.
    const RefusingRun with_new(state, {{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(with_new.sent == Keys{"c"});
    CHECK(with_new.counts.rejected_held == 2);
}

TEST_CASE("run members: with retry_rejected_runs 0 a refused member is held from the next run, and 1 retries it once") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    const RefusalPolicy never{0, false}, once{1, false};
    CHECK(RefusingRun(state, {{"a", 1}}, never).sent == Keys{"a"});
    const RefusingRun held(state, {{"a", 1}}, never);
    CHECK(held.sent.empty());
    CHECK(held.counts.rejected_held == 1);
    // The policy is the run's: with 1, the member refused once is retried, then held.
    CHECK(RefusingRun(state, {{"a", 1}}, once).sent == Keys{"a"});
    CHECK(RefusingRun(state, {{"a", 1}}, once).sent.empty());
}

TEST_CASE("run members: a held member is sent again when its values change, with --retry-rejected, and with --full") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    const RefusalPolicy never{0, false}, retry_all{0, true};
    RefusingRun(state, {{"a", 1}, {"b", 2}, {"c", 3}}, never);
    CHECK(RefusingRun(state, {{"a", 1}, {"b", 2}, {"c", 3}}, never).sent.empty());

    // a's values change: sent as a new member, not as a retry; refused, its count starts again.
    const RefusingRun changed(state, {{"a", 10}, {"b", 2}, {"c", 3}}, never);
    CHECK(changed.sent == Keys{"a"});
    CHECK(changed.counts.rejected_retried == 0);
    CHECK(changed.counts.rejected_held == 2);
    CHECK(RefusingRun(state, {{"a", 10}, {"b", 2}, {"c", 3}}, never).sent.empty());

    // --retry-rejected sends every refused member, however often refused.
    const RefusingRun retried(state, {{"a", 10}, {"b", 2}, {"c", 3}}, retry_all);
    CHECK(retried.sent == Keys{"a", "b", "c"});
    CHECK(retried.counts.rejected_retried == 3);
    CHECK(retried.counts.rejected_held == 0);
    CHECK(RefusingRun(state, {{"a", 10}, {"b", 2}, {"c", 3}}, never).sent.empty());  // and held again after

    // --full resends everything, refusals included.
    const RefusingRun full(state, {{"a", 10}, {"b", 2}, {"c", 3}}, never, true);
    CHECK(full.sent == Keys{"a", "b", "c"});
    CHECK(full.counts.rejected_retried == 3);
    CHECK(RefusingRun(state, {{"a", 10}, {"b", 2}, {"c", 3}}, never).sent.empty());
}

TEST_CASE("run members: a refusal is forgotten once the member is accepted or kept out, or leaves the segment") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    auto refused_keys = [&] {
        Keys keys;
        state.delivered().visit_refused("e", [&](const RefusedMember& member) { keys.emplace_back(member.key); });
        std::sort(keys.begin(), keys.end());
        return keys;
    };
    const RefusalPolicy never{0, false}, retry_all{0, true};
    RefusingRun(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}}, never);
    CHECK(refused_keys() == Keys{"a", "b", "c", "d"});
    {
        // Sent again (--retry-rejected): a is accepted, b kept out; c is given back, d stays refused.
        Run run(state);
        stage(run.members, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
        run.members.set_refusal_policy(retry_all);
        run.members.diff(run.claim.baseline, false, 100, run.counts);
        run.members.apply_outcomes({{1, MemberState::done, "", ""},
                                    {2, MemberState::suppressed, "unsubscribed", ""},
                                    {3, MemberState::pending, "", "import-1"},
                                    {4, MemberState::rejected, "invalid", ""}});
        CHECK(refused_keys() == Keys{"c", "d"});
        run.members.settle_pending();  // c's import confirmed at the end
        CHECK(refused_keys() == Keys{"d"});
        finish(state, run, RunStatus::succeeded);
    }
    // The next run does not stage d: its refusal goes, but not in a dry run (it records nothing).
    Run dry(state);
    stage(dry.members, {{"a", 1}});
    dry.members.diff(dry.claim.baseline, false, 100, dry.counts);
    CHECK(refused_keys() == Keys{"d"});
    finish(state, dry, RunStatus::succeeded);
    Run next(state);
    stage(next.members, {{"a", 1}});
    next.members.diff(next.claim.baseline, false, 100, next.counts);
    next.members.forget_obsolete_refusals();
    CHECK(refused_keys().empty());
    CHECK(next.counts.unchanged == 1);
    finish(state, next, RunStatus::succeeded);
}

TEST_CASE("state: a version-9 state file, without refusals or their counts, opens and keeps them from then on") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);  // every table, then made version 9's
        DiffedRun run(state, {{"a", 1}});
        accept_all(run.members);
        run.counts.accepted = 1;
        finish(state, run, RunStatus::succeeded);
    }
    {
        sqlite::Database old(path);
        old.exec("DROP TABLE refused; ALTER TABLE runs DROP COLUMN rejected_retried; "
                 "ALTER TABLE runs DROP COLUMN rejected_held; PRAGMA user_version=9;");
    }
    SqliteStateStore state(path);
    const auto before = state.history().get_run(1);
    REQUIRE(before);
    CHECK(before->counts.accepted == 1);
    CHECK(before->counts.rejected_retried == 0);
    const RefusingRun refused(state, {{"a", 1}, {"b", 2}});
    CHECK(refused.sent == Keys{"b"});  // a is unchanged: delivered before the migration
    const RefusingRun retried(state, {{"a", 1}, {"b", 2}});
    CHECK(retried.sent == Keys{"b"});
    CHECK(state.history().get_run(retried.claim.run_id)->counts.rejected_retried == 1);
    sqlite::Database db(path);
    auto version = db.prepare("PRAGMA user_version");
    version.step();
    CHECK(version.integer(0) == 11);
}

TEST_CASE("run members: segpush remembers its own removals, not the destination's, and a re-joining member carries "
          "its time") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    SqliteStateStore state(path);
    auto removals = [&] {
        sqlite::Database db(path);
        auto query = db.prepare("SELECT email_key, reason FROM removals ORDER BY email_key");
        std::vector<std::string> keys;
        while (query.step()) {
            keys.push_back(query.text(0));
            CHECK(query.text(1) == "left the segment (on_leave: unsubscribe)");
        }
        return keys;
    };
    {
        DiffedRun run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    const int64_t before = static_cast<int64_t>(std::time(nullptr));
    {
        // b and c leave: the destination takes b's removal, and had c off the list already.
        Run run(state);
        stage(run.members, {{"a", 1}});
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        CHECK(run.counts.leaving == 2);
        const auto todo = run.members.next_todo(0, 10);
        REQUIRE(todo.size() == 2);
        const auto tally = run.members.apply_outcomes(
            {{todo[0].seq, MemberState::done, "", ""},
             {todo[1].seq, MemberState::suppressed, "unsubscribed; nothing to remove", ""}});
        CHECK(tally.removed == 1);
        CHECK(tally.suppressed == 1);
        finish(state, run, RunStatus::succeeded);
    }
    CHECK(removals() == std::vector<std::string>{"b"});
    {
        // Both come back: only b was removed by segpush, so only b carries the removal's time.
        Run run(state);
        stage(run.members, {{"a", 1}, {"b", 2}, {"c", 3}});
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        CHECK(run.counts.new_members == 2);
        const auto todo = run.members.next_todo(0, 10);
        REQUIRE(todo.size() == 2);
        CHECK(todo[0].seq == 2);
        CHECK(todo[0].removed_at >= before);
        CHECK(todo[0].removed_at <= static_cast<int64_t>(std::time(nullptr)));
        CHECK(todo[1].removed_at == 0);
        // Refused this time: the removal is still segpush's, for the next try.
        run.members.apply_outcomes({{2, MemberState::rejected, "later", ""}, {3, MemberState::done, "", ""}});
        CHECK(removals() == std::vector<std::string>{"b"});
        finish(state, run, RunStatus::succeeded);
    }
    {
        Run run(state);
        stage(run.members, {{"a", 1}, {"b", 2}, {"c", 3}});
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        const auto todo = run.members.next_todo(0, 10);
        REQUIRE(todo.size() == 1);
        CHECK(todo[0].removed_at != 0);
        run.members.apply_outcomes({{todo[0].seq, MemberState::done, "", ""}});  // put back
        CHECK(removals().empty());
        finish(state, run, RunStatus::succeeded);
    }
}

TEST_CASE("run members: an export whose only record is a removal is not taken for a first delivery") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    {
        DiffedRun run(state, {{"a", 1}});
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    {
        Run run(state);
        stage(run.members, {});
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        run.members.apply_outcomes({{run.members.next_todo(0, 10).at(0).seq, MemberState::done, "", ""}});
        finish(state, run, RunStatus::succeeded);
    }
    CHECK_FALSE(state.delivered().nothing_recorded("e"));  // delivered is empty, but a removal is remembered
    Run run(state);
    stage(run.members, {{"a", 1}});
    run.members.diff(run.claim.baseline, true, 100, run.counts);
    const auto todo = run.members.next_todo(0, 10);
    REQUIRE(todo.size() == 1);
    CHECK(todo[0].removed_at != 0);
}

TEST_CASE("run members: removals a plugin older than ABI 1.4 reports are not remembered as segpush's own") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    SqliteStateStore state(path);
    {
        DiffedRun run(state, {{"a", 1}, {"b", 2}});
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    // Such a plugin reports ACCEPTED for a leaver the destination had off the list already.
    Run run(state, false, "e", false);
    stage(run.members, {{"a", 1}});
    run.members.diff(run.claim.baseline, true, 100, run.counts);
    const auto tally = run.members.apply_outcomes(
        {{run.members.next_todo(0, 10).at(0).seq, MemberState::done, "", ""}});
    CHECK(tally.removed == 1);
    finish(state, run, RunStatus::succeeded);
    sqlite::Database db(path);
    auto rows = db.prepare("SELECT COUNT(*) FROM removals");
    rows.step();
    CHECK(rows.integer(0) == 0);
}

TEST_CASE("state: forgetting a person removes them from delivered state, refusals, receipts and run errors, and leaves "
          "no copy in the file") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore state(path);
        DiffedRun run(state,
                      {{"ann@example.com", 1}, {"bob@example.com", 2}, {"cy@example.com", 3}, {"dee@example.com", 4}});
        run.members.apply_outcomes({{1, MemberState::done, "", ""},
                                    {2, MemberState::done, "", ""},
                                    {3, MemberState::pending, "", "import-9"},
                                    {4, MemberState::rejected, "role address", ""}});
        finish(state, run, RunStatus::failed_retryable, "the destination refused Ann@Example.com: bad domain");
        // A second run of the export, so that Ann's row is written again and freed pages hold copies.
        DiffedRun again(state, {{"ann@example.com", 11}, {"bob@example.com", 2}, {"cy@example.com", 3}});
        accept_all(again.members);
        finish(state, again, RunStatus::succeeded);
    }
    SqliteStateStore state(path);
    const auto forgotten = state.forget_members(
        {"ann@example.com", "cy@example.com", "dee@example.com", "nobody@example.com"});
    CHECK(forgotten.delivered == 2);
    CHECK(forgotten.refusals == 1);         // Dee's, refused by the first run
    CHECK(forgotten.awaiting_import == 1);  // Cy, left pending by the first run
    CHECK(forgotten.run_errors == 1);
    CHECK(state.history().get_run(1)->error == "the destination refused ***************: bad domain");

    // The next run knows only Bob: Ann and Cy are new again.
    DiffedRun next(state, {{"ann@example.com", 11}, {"bob@example.com", 2}, {"cy@example.com", 3}});
    CHECK(next.counts.new_members == 2);
    CHECK(next.counts.unchanged == 1);
    std::string bytes;  // the state file and its WAL, as anyone reading the disk would see them
    for (const char* file : {"state.db", "state.db-wal"}) {
        if (std::filesystem::exists(dir.file(file))) bytes += test::read_file(dir.file(file));
    }
    CHECK(bytes.find("ann@example.com") == std::string::npos);
    CHECK(bytes.find("Ann@Example.com") == std::string::npos);
    CHECK(bytes.find("cy@example.com") == std::string::npos);
    CHECK(bytes.find("dee@example.com") == std::string::npos);
    CHECK(bytes.find("bob@example.com") != std::string::npos);
}

TEST_CASE("state: forgetting is refused while a live process runs an export of the state") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    const Run run(state);  // this process, alive
    CHECK_THROWS_AS(state.forget_members({"ann@example.com"}), AlreadyRunning);
}

TEST_CASE("run members: the diff matches keys byte by byte, prefixes and bytes from 0x80 included, and stages "
          "leavers in key order") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    // In byte order: a < ab < a\xc3\xa8 < a\xc3\xa9 < b < \xc3\xa9. Compared as signed chars,
    // the keys with a byte from 0x80 would sort before "ab" and "a", and the merge of the
    // delivered keys with the staged ones would miss matches.
    {
        DiffedRun run(state, {{"b", 5}, {"a\xc3\xa9", 4}, {"\xc3\xa9", 6}, {"a", 1}, {"a\xc3\xa8", 3}, {"ab", 2}});
        CHECK(run.counts.new_members == 6);
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    const std::vector<std::pair<std::string, uint64_t>> staying = {
        {"b", 5}, {"a\xc3\xa9", 4}, {"a", 10}, {"a\xc3", 7}, {"ac", 8}};
    {
        Run run(state);
        stage(run.members, staying);
        run.members.all_members_staged();
        run.members.diff(run.claim.baseline, true, 100, run.counts);
        CHECK(run.counts.members == 5);
        CHECK(run.counts.unchanged == 2);    // b, a\xc3\xa9
        CHECK(run.counts.changed == 1);      // a
        CHECK(run.counts.new_members == 2);  // a\xc3 (a prefix of two delivered keys), ac
        CHECK(run.counts.leaving == 3);      // ab, a\xc3\xa8, \xc3\xa9
        std::vector<int64_t> seqs;
        std::vector<MemberAction> actions;
        std::vector<std::string> payloads;
        for (const auto& member : run.members.next_todo(0, 10)) {
            seqs.push_back(member.seq);
            actions.push_back(member.action);
            payloads.emplace_back(member.payload);
        }
        CHECK(seqs == std::vector<int64_t>{3, 4, 5, 101, 102, 103});
        CHECK(actions == std::vector<MemberAction>{MemberAction::upsert, MemberAction::upsert, MemberAction::upsert,
                                                   MemberAction::remove, MemberAction::remove, MemberAction::remove});
        CHECK(payloads ==
              std::vector<std::string>{"payload-a", "payload-a\xc3", "payload-ac", "ab", "a\xc3\xa8", "\xc3\xa9"});
        accept_all(run.members);
        finish(state, run, RunStatus::succeeded);
    }
    // What the run delivered is found again under the same bytes: nothing changed, nobody left.
    DiffedRun again(state, staying);
    CHECK(again.counts.unchanged == 5);
    CHECK(again.counts.leaving == 0);
    CHECK(again.members.next_todo(0, 10).empty());
}

TEST_CASE("run members: a first delivery counts every member new, stages no leaver and resumes nothing, whatever "
          "other exports hold") {
    test::TempDir dir;
    SqliteStateStore state(dir.file("state.db"));
    // Another export of the state has the same members delivered and one awaiting its import.
    {
        Run other(state, false, "other");
        stage(other.members, {{"a", 1}, {"b", 2}, {"c", 3}});
        other.members.diff(other.claim.baseline, true, 100, other.counts);
        other.members.apply_outcomes({{1, MemberState::done, "", ""},
                                      {2, MemberState::done, "", ""},
                                      {3, MemberState::pending, "", "import-1"}});
        finish(state, other, RunStatus::failed_retryable, "interrupted");
    }
    REQUIRE(state.delivered().nothing_recorded("e"));
    Run run(state);
    CHECK(stage(run.members, {{"a", 1}, {"b", 2}, {"a", 9}, {"c", 3}}) == 3);
    run.members.all_members_staged();
    run.members.diff(run.claim.baseline, true, 100, run.counts);
    CHECK(run.counts.members == 3);
    CHECK(run.counts.new_members == 3);
    CHECK(run.counts.changed == 0);
    CHECK(run.counts.unchanged == 0);
    CHECK(run.counts.leaving == 0);
    CHECK(run.members.resumable(run.claim.baseline).empty());
    const auto todo = run.members.next_todo(0, 10);
    REQUIRE(todo.size() == 3);
    for (const auto& member : todo) {
        CHECK(member.action == MemberAction::upsert);
        CHECK(member.removed_at == 0);
    }
    CHECK(run.members.count_todo() == 3);
}
