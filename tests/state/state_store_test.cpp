// The SQLite state: staging with de-duplication, the diff against delivered state, outcomes
// as checkpoints (claiming an export is tested with the run history, tests/state).
#include <catch2/catch.hpp>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "state/state_store.hpp"
#include "support/process.hpp"  // read_file
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

// Claims a run of the export as the engine does: in the run history, then a fresh staging.
RunHistory::Claim begin_run(StateStore& state, const std::string& export_name, bool full, bool dry_run) {
    const RunHistory::Claim claim = state.history().begin_run(export_name, full, dry_run);
    state.start_run();
    return claim;
}

// Stages members "m<i>@x.io" with the given hashes; returns how many were new keys.
int stage(StateStore& state, const std::vector<std::pair<std::string, uint64_t>>& members) {
    state.begin_staging();
    int inserted = 0;
    int64_t seq = 0;
    for (const auto& [key, hash] : members) {
        if (state.stage_member(seq + 1, key, key, hash, "payload-" + key, 0, seq + 2)) {
            ++seq;
            ++inserted;
        }
    }
    state.end_staging();
    return inserted;
}

// A run of export "e" that staged `members` and diffed them (nobody leaves).
struct DiffedRun {
    RunHistory::Claim claim;
    RunCounts counts;
};
DiffedRun diffed_run(StateStore& state, const std::vector<std::pair<std::string, uint64_t>>& members) {
    DiffedRun run{begin_run(state, "e", false, false), {}};
    stage(state, members);
    state.diff("e", run.claim.baseline, false, 100, run.counts);
    return run;
}

void accept_all(StateStore& state, int64_t run_id, const std::string& export_name) {
    std::vector<MemberOutcome> outcomes;
    for (const auto& member : state.next_todo(0, 1000)) outcomes.push_back({member.seq, MemberState::done, "", ""});
    state.apply_outcomes(run_id, export_name, outcomes);
}

}  // namespace

TEST_CASE("state: duplicates are ignored (the first wins), the diff finds new, changed, unchanged and leaving") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    const auto first = begin_run(state, "e", false, false);
    CHECK(stage(state, {{"a", 1}, {"b", 2}, {"a", 99}, {"c", 3}}) == 3);
    RunCounts counts;
    state.diff("e", first.baseline, false, 100, counts);
    CHECK(counts.members == 3);
    CHECK(counts.new_members == 3);
    auto todo = state.next_todo(0, 10);
    REQUIRE(todo.size() == 3);
    CHECK(todo[0].payload == "payload-a");  // the first "a", not the duplicate
    accept_all(state, first.run_id, "e");
    state.history().finish_run(first.run_id, RunStatus::succeeded, counts, "", "");

    const auto second = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}, {"b", 20}, {"d", 4}});
    RunCounts again;
    state.diff("e", second.baseline, true, 100, again);
    CHECK(again.unchanged == 1);    // a
    CHECK(again.changed == 1);      // b
    CHECK(again.new_members == 1);  // d
    CHECK(again.leaving == 1);      // c
    todo = state.next_todo(0, 10);
    REQUIRE(todo.size() == 3);  // b, d, and c as a removal
    CHECK(todo.back().action == MemberAction::remove);
    CHECK(todo.back().payload == "c");
}

TEST_CASE("state: outcomes are the checkpoint, only what was confirmed counts as delivered") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    const auto run = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    RunCounts counts;
    state.diff("e", run.baseline, false, 100, counts);
    const auto tally = state.apply_outcomes(
        run.run_id, "e",
        {{1, MemberState::done, "", ""}, {2, MemberState::rejected, "bad", ""}, {3, MemberState::pending, "", ""}});
    CHECK(tally.accepted == 1);
    CHECK(tally.rejected == 1);
    const auto rejected = state.reported_members({"seg.csv"});
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].source == "seg.csv");
    CHECK(rejected[0].email == "b");
    CHECK(rejected[0].outcome == "rejected");
    CHECK(rejected[0].reason == "bad");
    // The run stops here (as after a crash, which a later run closes the same way): the next
    // run sends b (rejected last time), c (never confirmed) and d (never sent), not a.
    state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    const auto next = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    RunCounts after;
    state.diff("e", next.baseline, false, 100, after);
    CHECK(after.unchanged == 1);
    CHECK(after.new_members == 3);
}

TEST_CASE("state: an interrupted --full run is continued by the next --full run, not restarted") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    const auto normal = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}, {"b", 2}});
    RunCounts counts;
    state.diff("e", normal.baseline, false, 100, counts);
    accept_all(state, normal.run_id, "e");
    state.history().finish_run(normal.run_id, RunStatus::succeeded, counts, "", "");

    const auto full = begin_run(state, "e", true, false);
    CHECK(full.baseline == full.run_id);
    stage(state, {{"a", 1}, {"b", 2}});
    RunCounts full_counts;
    state.diff("e", full.baseline, false, 100, full_counts);
    CHECK(full_counts.unchanged == 0);                                         // --full resends everyone
    state.apply_outcomes(full.run_id, "e", {{1, MemberState::done, "", ""}});  // a delivered, then it stops
    state.history().finish_run(full.run_id, RunStatus::cancelled, full_counts, "cancelled", "");

    const auto resumed = begin_run(state, "e", true, false);
    REQUIRE(resumed.continues);
    CHECK(*resumed.continues == full.run_id);
    stage(state, {{"a", 1}, {"b", 2}});
    RunCounts resumed_counts;
    state.diff("e", resumed.baseline, false, 100, resumed_counts);
    CHECK(resumed_counts.unchanged == 1);  // a, already re-sent by the interrupted --full run
    CHECK(resumed_counts.changed == 1);    // b still to resend
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
                    StateStore state(path);
                    const auto claim = begin_run(state, "export" + std::to_string(i), false, false);
                    state.history().finish_run(claim.run_id, RunStatus::succeeded, RunCounts{}, "", "");
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

TEST_CASE(
    "state: a receipt kept with a pending member outlives the process and comes back while the values are unchanged") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        StateStore state(path);
        const auto run = begin_run(state, "e", false, false);
        stage(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
        RunCounts counts;
        state.diff("e", run.baseline, false, 100, counts);
        state.apply_outcomes(run.run_id, "e",
                             {{1, MemberState::pending, "", "import-7"},
                              {2, MemberState::pending, "", "import-7"},
                              {3, MemberState::pending, "", "import-8"},
                              {4, MemberState::pending, "", ""}});
        // import-8 settles before the process dies: its receipt is forgotten.
        state.apply_outcomes(run.run_id, "e", {{3, MemberState::done, "", ""}});
        // The process dies here (closed as the next claim would close it), with a, b and d unconfirmed.
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    }

    StateStore state(path);
    const auto next = begin_run(state, "e", false, false);
    // b changed since (hash 2 -> 22): its old receipt no longer says anything about it.
    stage(state, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
    RunCounts counts;
    state.diff("e", next.baseline, false, 100, counts);
    CHECK(counts.unchanged == 1);  // c only: a pending record is not delivered until confirmed
    const auto resumable = state.resumable_members("e", next.run_id, next.baseline);
    REQUIRE(resumable.size() == 1);
    CHECK(resumable[0].member.seq == 1);
    CHECK(resumable[0].receipt == "import-7");
    CHECK(resumable[0].member.payload == "payload-a");
    // Confirmed, and the earlier run's receipts (b's, whose values changed, included) are
    // forgotten; a receipt this run records is kept until its member settles.
    state.apply_outcomes(next.run_id, "e", {{1, MemberState::done, "", ""}, {4, MemberState::pending, "", "import-9"}});
    state.forget_earlier_receipts("e", next.run_id);
    state.history().finish_run(next.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    const auto third = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
    RunCounts third_counts;
    state.diff("e", third.baseline, false, 100, third_counts);
    CHECK(third_counts.unchanged == 2);  // a (confirmed by its receipt) and c
    const auto left = state.resumable_members("e", third.run_id, third.baseline);
    REQUIRE(left.size() == 1);
    CHECK(left[0].member.seq == 4);
    CHECK(left[0].receipt == "import-9");
    // --full resends everything: receipts from before it confirm nothing.
    state.history().finish_run(third.run_id, RunStatus::failed_retryable, third_counts, "interrupted", "");
    const auto full = begin_run(state, "e", true, false);
    stage(state, {{"a", 1}, {"b", 22}, {"c", 3}, {"d", 4}});
    RunCounts full_counts;
    state.diff("e", full.baseline, false, 100, full_counts);
    CHECK(state.resumable_members("e", full.run_id, full.baseline).empty());
}

TEST_CASE("state: a batch's receipt stays while any of its members is pending, and is forgotten after") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    auto stopped_run = [&](const std::vector<MemberOutcome>& settled) {
        StateStore state(path);
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        state.apply_outcomes(run.run_id, "e",
                             {{1, MemberState::pending, "", "import-7"},
                              {2, MemberState::pending, "", "import-7"},
                              {3, MemberState::pending, "", "import-7"}});
        state.apply_outcomes(run.run_id, "e", settled);
        state.forget_earlier_receipts("e", run.run_id);
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    };
    auto resumable_now = [&] {
        StateStore state(path);
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        std::vector<int64_t> seqs;
        for (const auto& member : state.resumable_members("e", run.run_id, run.baseline)) {
            CHECK(member.receipt == "import-7");
            CHECK(member.member.payload == "payload-" + std::string(1, static_cast<char>('a' + member.member.seq - 1)));
            seqs.push_back(member.member.seq);
        }
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
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

TEST_CASE("state: a member reported several times in one call ends as its reports say in order") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        StateStore state(path);
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"f", 5}});
        state.apply_outcomes(run.run_id, "e", {{5, MemberState::pending, "", "import-5"}});
        // Given back, then pending again without a receipt: import-5 no longer speaks for it.
        state.apply_outcomes(run.run_id, "e", {{5, MemberState::todo, "lost", ""}, {5, MemberState::pending, "", ""}});
        const OutcomeTally tally = state.apply_outcomes(
            run.run_id, "e",
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
        CHECK(state.count_todo() == 1);
        const auto refused = state.reported_members({"segment.csv"});
        REQUIRE(refused.size() == 1);
        CHECK(refused[0].email == "c");
        CHECK(refused[0].reason == "bad");
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    }
    StateStore state(path);
    const auto [next, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"f", 5}});
    CHECK(counts.unchanged == 1);  // a
    const auto resumable = state.resumable_members("e", next.run_id, next.baseline);
    REQUIRE(resumable.size() == 1);
    CHECK(resumable[0].member.seq == 2);
    CHECK(resumable[0].receipt == "import-2");
}

TEST_CASE("state: outcomes whose transaction fails leave memory as if they never arrived") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        StateStore state(path);
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
        state.apply_outcomes(run.run_id, "e",
                             {{1, MemberState::pending, "", "import-1"},
                              {2, MemberState::pending, "", "import-1"},
                              {3, MemberState::pending, "", "import-2"}});
        // The state file refuses to keep import-2's row as c's delivery (as a full disk would),
        // from another connection: the statement fails after the members' states, both
        // receipts' counts and import-1's row (kept for a and b) were already done in this call.
        sqlite::Database other(path);
        other.exec("CREATE TRIGGER refuse_c BEFORE UPDATE ON unconfirmed WHEN NEW.receipt = 'import-2' "
                   "BEGIN SELECT RAISE(ABORT, 'no room'); END");
        CHECK_THROWS_WITH(state.apply_outcomes(run.run_id, "e",
                                               {{1, MemberState::done, "", ""},
                                                {2, MemberState::done, "", ""},
                                                {3, MemberState::done, "", ""},
                                                {4, MemberState::pending, "", "import-3"}}),
                          Catch::Contains("no room"));
        CHECK(state.count_todo() == 1);  // d: still to send, as before the call
        other.exec("DROP TRIGGER refuse_c");
        // Outcomes arriving after count and record their members: had memory kept the failed
        // call's states, a and c would be skipped as already final and never recorded.
        const OutcomeTally tally = state.apply_outcomes(run.run_id, "e",
                                                        {{1, MemberState::done, "", ""},
                                                         {3, MemberState::done, "", ""},
                                                         {4, MemberState::pending, "", "import-3"}});
        CHECK(tally.accepted == 2);
        CHECK(state.count_todo() == 0);
        // import-2's row is kept as c's delivery (c was found on it again); import-1's waits on
        // b (a, accepted without b, went to the log) and import-3's row is new.
        auto receipts = other.prepare("SELECT group_concat(receipt || ':' || confirmed) FROM "
                                      "(SELECT receipt, confirmed FROM unconfirmed ORDER BY receipt)");
        REQUIRE(receipts.step());
        CHECK(receipts.text(0) == "import-1:0,import-2:1,import-3:0");
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    }
    StateStore state(path);
    const auto [next, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
    CHECK(counts.unchanged == 2);  // a and c
    // b still waits on import-1: the failed call's count of its waiting members was restored
    // (left at zero, a's confirmation would have dropped the row). d waits on import-3.
    const auto resumable = state.resumable_members("e", next.run_id, next.baseline);
    REQUIRE(resumable.size() == 2);
    CHECK(resumable[0].member.seq == 2);
    CHECK(resumable[0].receipt == "import-1");
    CHECK(resumable[1].member.seq == 4);
    CHECK(resumable[1].receipt == "import-3");
}

TEST_CASE("state: a refresh sends only the changed members among many, and their receipts bring them back") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    std::vector<std::pair<std::string, uint64_t>> members;
    for (int i = 1; i <= 1000; ++i) members.emplace_back("m" + std::to_string(i), static_cast<uint64_t>(i));
    {
        StateStore state(path);
        auto [run, counts] = diffed_run(state, members);
        accept_all(state, run.run_id, "e");
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    // Five members changed: next_todo's first four (10, 500, 997, 998) lie far apart and are
    // read one by one; the rest (999 and the new 1001) lie together and are read in one range.
    for (const int changed : {10, 500, 997, 998, 999}) members[changed - 1].second += 5000;
    members.emplace_back("m1001", 1001);  // and one new
    StateStore state(path);
    {
        auto [run, counts] = diffed_run(state, members);
        CHECK(counts.members == 1001);
        CHECK(counts.new_members == 1);
        CHECK(counts.changed == 5);
        CHECK(counts.unchanged == 995);
        CHECK(counts.leaving == 0);
        std::vector<int64_t> seqs;
        std::vector<std::string> payloads;
        for (const auto& member : state.next_todo(0, 4)) {
            seqs.push_back(member.seq);
            payloads.emplace_back(member.payload);
        }
        CHECK(seqs == std::vector<int64_t>{10, 500, 997, 998});
        CHECK(payloads == std::vector<std::string>{"payload-m10", "payload-m500", "payload-m997", "payload-m998"});
        const auto rest = state.next_todo(998, 250);
        REQUIRE(rest.size() == 2);
        CHECK(rest[0].seq == 999);
        CHECK(rest[1].payload == "payload-m1001");
        // All six pending on one import when the process stops.
        std::vector<MemberOutcome> pending;
        for (const int64_t seq : {10, 500, 997, 998, 999, 1001})
            pending.push_back({seq, MemberState::pending, "", "import-r"});
        state.apply_outcomes(run.run_id, "e", pending);
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "interrupted", "");
    }
    // The receipt's members, spread over the run, are found again by key and values.
    auto [next, counts] = diffed_run(state, members);
    std::vector<int64_t> resumed;
    for (const auto& member : state.resumable_members("e", next.run_id, next.baseline)) {
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
    StateStore state(dir.file("state.db"));
    begin_run(state, "e", false, false);
    state.begin_staging();
    REQUIRE(state.stage_member(1, "a@example.com", "a@example.com", 1, "{}", 0, 2));
    // Seq 1 is taken: the row is refused, so its key must not be recorded under seq 1.
    CHECK_THROWS(state.stage_member(1, "b@example.com", "b@example.com", 2, "{}", 0, 3));
    CHECK_FALSE(state.stage_member(2, "a@example.com", "a@example.com", 1, "{}", 0, 4));
    CHECK(state.stage_member(2, "b@example.com", "b@example.com", 2, "{}", 0, 5));
    CHECK_FALSE(state.stage_member(3, "b@example.com", "b@example.com", 2, "{}", 0, 6));
    state.end_staging();
}

TEST_CASE("state: a receipt whose every member is accepted is kept as their delivery, emails as written") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        StateStore state(path);
        const auto run = begin_run(state, "e", false, false);
        state.begin_staging();
        REQUIRE(state.stage_member(1, "ann@x.io", "Ann@X.io", 11, "payload-ann", 0, 2));
        REQUIRE(state.stage_member(2, "bo@x.io", "bo@x.io", 12, "payload-bo", 0, 3));
        REQUIRE(state.stage_member(3, "cy@x.io", "cy@x.io", 13, "payload-cy", 0, 4));
        state.end_staging();
        state.all_members_staged();
        RunCounts counts;
        state.diff("e", run.baseline, true, 100, counts);
        state.apply_outcomes(run.run_id, "e",
                             {{1, MemberState::pending, "", "import-A"},
                              {2, MemberState::pending, "", "import-A"},
                              {3, MemberState::pending, "", "import-B"}});
        const OutcomeTally tally = state.apply_outcomes(
            run.run_id, "e",
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
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    // The next run finds ann and bo delivered (they leave, with ann's email as written) and cy
    // still new; the kept receipt is merged, nothing is left to resume.
    StateStore state(path);
    const auto next = begin_run(state, "e", false, false);
    state.begin_staging();
    REQUIRE(state.stage_member(1, "cy@x.io", "cy@x.io", 13, "payload-cy", 0, 2));
    state.end_staging();
    state.all_members_staged();
    RunCounts counts;
    state.diff("e", next.baseline, true, 100, counts);
    CHECK(counts.new_members == 1);
    CHECK(counts.leaving == 2);
    CHECK(state.resumable_members("e", next.run_id, next.baseline).empty());
    std::vector<std::string> payloads;
    for (const auto& member : state.next_todo(0, 10)) payloads.emplace_back(member.payload);
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
        StateStore state(path);  // creates every table, then the unconfirmed table is made version 7's
        sqlite::Database old(path);
        old.exec("DROP TABLE unconfirmed;"
                 "CREATE TABLE unconfirmed(id INTEGER PRIMARY KEY, export TEXT NOT NULL, run_id INTEGER NOT NULL, "
                 "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, receipt TEXT NOT NULL, members BLOB NOT NULL);"
                 "PRAGMA user_version=7;");
    }
    {
        StateStore state(path);
        const auto [run, counts] = diffed_run(state, {{"a", 1}});
        state.apply_outcomes(run.run_id, "e", {{1, MemberState::pending, "", "import-7"}});
        state.history().finish_run(run.run_id, RunStatus::failed_retryable, counts, "stopped", "");
    }
    StateStore state(path);
    const auto [next, counts] = diffed_run(state, {{"a", 1}});
    const auto resumable = state.resumable_members("e", next.run_id, next.baseline);
    REQUIRE(resumable.size() == 1);
    CHECK(resumable[0].receipt == "import-7");
}

TEST_CASE("state: a suppressed member counts apart, is reported, and is not sent again while unchanged") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    const auto [first, counts] = diffed_run(state, {{"a", 1}, {"b", 2}});
    const auto tally = state.apply_outcomes(first.run_id, "e",
                                            {{1, MemberState::done, "", ""},
                                             {2, MemberState::suppressed, "unsubscribed from list 3", ""}});
    CHECK(tally.accepted == 1);
    CHECK(tally.suppressed == 1);
    CHECK(tally.rejected == 0);
    const auto reported = state.reported_members({"seg.csv"});
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].email == "b");
    CHECK(reported[0].outcome == "suppressed");
    CHECK(reported[0].reason == "unsubscribed from list 3");
    RunCounts finished = counts;
    finished.suppressed = tally.suppressed;
    state.history().finish_run(first.run_id, RunStatus::succeeded, finished, "", "");
    CHECK(state.history().get_run(first.run_id)->counts.suppressed == 1);

    const auto [again, next] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
    CHECK(next.unchanged == 2);  // b too: its values have not changed
    CHECK(next.new_members == 1);
    state.history().finish_run(again.run_id, RunStatus::cancelled, next, "", "");
    const auto changed = diffed_run(state, {{"a", 1}, {"b", 20}});
    CHECK(changed.counts.changed == 1);  // new values: sent again, to be suppressed again or not
}

TEST_CASE(
    "state: segpush remembers its own removals, not the destination's, and a re-joining member carries its time") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    StateStore state(path);
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
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        accept_all(state, run.run_id, "e");
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    const int64_t before = static_cast<int64_t>(std::time(nullptr));
    {
        // b and c leave: the destination takes b's removal, and had c off the list already.
        const auto run = begin_run(state, "e", false, false);
        stage(state, {{"a", 1}});
        RunCounts counts;
        state.diff("e", run.baseline, true, 100, counts);
        CHECK(counts.leaving == 2);
        const auto todo = state.next_todo(0, 10);
        REQUIRE(todo.size() == 2);
        const auto tally = state.apply_outcomes(run.run_id, "e",
                                                {{todo[0].seq, MemberState::done, "", ""},
                                                 {todo[1].seq, MemberState::suppressed,
                                                  "unsubscribed; nothing to remove", ""}});
        CHECK(tally.removed == 1);
        CHECK(tally.suppressed == 1);
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    CHECK(removals() == std::vector<std::string>{"b"});
    {
        // Both come back: only b was removed by segpush, so only b carries the removal's time.
        const auto run = begin_run(state, "e", false, false);
        stage(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        RunCounts counts;
        state.diff("e", run.baseline, true, 100, counts);
        CHECK(counts.new_members == 2);
        const auto todo = state.next_todo(0, 10);
        REQUIRE(todo.size() == 2);
        CHECK(todo[0].seq == 2);
        CHECK(todo[0].removed_at >= before);
        CHECK(todo[0].removed_at <= static_cast<int64_t>(std::time(nullptr)));
        CHECK(todo[1].removed_at == 0);
        // Refused this time: the removal is still segpush's, for the next try.
        state.apply_outcomes(run.run_id, "e",
                             {{2, MemberState::rejected, "later", ""}, {3, MemberState::done, "", ""}});
        CHECK(removals() == std::vector<std::string>{"b"});
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    {
        const auto run = begin_run(state, "e", false, false);
        stage(state, {{"a", 1}, {"b", 2}, {"c", 3}});
        RunCounts counts;
        state.diff("e", run.baseline, true, 100, counts);
        const auto todo = state.next_todo(0, 10);
        REQUIRE(todo.size() == 1);
        CHECK(todo[0].removed_at != 0);
        state.apply_outcomes(run.run_id, "e", {{todo[0].seq, MemberState::done, "", ""}});  // put back
        CHECK(removals().empty());
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
}

TEST_CASE("state: an export whose only record is a removal is not taken for a first delivery") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    {
        const auto [run, counts] = diffed_run(state, {{"a", 1}});
        accept_all(state, run.run_id, "e");
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    {
        const auto run = begin_run(state, "e", false, false);
        stage(state, {});
        RunCounts counts;
        state.diff("e", run.baseline, true, 100, counts);
        state.apply_outcomes(run.run_id, "e", {{state.next_todo(0, 10).at(0).seq, MemberState::done, "", ""}});
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    CHECK_FALSE(state.nothing_recorded("e"));  // delivered is empty, but a removal is remembered
    const auto run = begin_run(state, "e", false, false);
    stage(state, {{"a", 1}});
    RunCounts counts;
    state.diff("e", run.baseline, true, 100, counts);
    const auto todo = state.next_todo(0, 10);
    REQUIRE(todo.size() == 1);
    CHECK(todo[0].removed_at != 0);
}

TEST_CASE("state: removals a plugin older than ABI 1.4 reports are not remembered as segpush's own") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    StateStore state(path);
    {
        const auto [run, counts] = diffed_run(state, {{"a", 1}, {"b", 2}});
        accept_all(state, run.run_id, "e");
        state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    }
    // Such a plugin reports ACCEPTED for a leaver the destination had off the list already.
    const auto run = begin_run(state, "e", false, false);
    state.set_removals_are_own(false);
    stage(state, {{"a", 1}});
    RunCounts counts;
    state.diff("e", run.baseline, true, 100, counts);
    const auto tally = state.apply_outcomes(run.run_id, "e",
                                            {{state.next_todo(0, 10).at(0).seq, MemberState::done, "", ""}});
    CHECK(tally.removed == 1);
    state.history().finish_run(run.run_id, RunStatus::succeeded, counts, "", "");
    sqlite::Database db(path);
    auto rows = db.prepare("SELECT COUNT(*) FROM removals");
    rows.step();
    CHECK(rows.integer(0) == 0);
}

TEST_CASE("state: forgetting a person removes them from delivered state, receipts and run errors, and leaves no copy "
          "in the file") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        StateStore state(path);
        auto run = diffed_run(state, {{"ann@example.com", 1}, {"bob@example.com", 2}, {"cy@example.com", 3}});
        state.apply_outcomes(run.claim.run_id, "e",
                             {{1, MemberState::done, "", ""},
                              {2, MemberState::done, "", ""},
                              {3, MemberState::pending, "", "import-9"}});
        state.history().finish_run(run.claim.run_id, RunStatus::failed_retryable, run.counts,
                                   "the destination refused Ann@Example.com: bad domain", "");
        // A second run of the export, so that Ann's row is written again and freed pages hold copies.
        auto again = diffed_run(state, {{"ann@example.com", 11}, {"bob@example.com", 2}, {"cy@example.com", 3}});
        accept_all(state, again.claim.run_id, "e");
        state.history().finish_run(again.claim.run_id, RunStatus::succeeded, again.counts, "", "");
    }
    StateStore state(path);
    const auto forgotten = state.forget_members({"ann@example.com", "cy@example.com", "nobody@example.com"});
    CHECK(forgotten.delivered == 2);
    CHECK(forgotten.awaiting_import == 1);  // Cy, left pending by the first run
    CHECK(forgotten.run_errors == 1);
    CHECK(state.history().get_run(1)->error == "the destination refused ***************: bad domain");

    // The next run knows only Bob: Ann and Cy are new again.
    auto next = diffed_run(state, {{"ann@example.com", 11}, {"bob@example.com", 2}, {"cy@example.com", 3}});
    CHECK(next.counts.new_members == 2);
    CHECK(next.counts.unchanged == 1);
    std::string bytes;  // the state file and its WAL, as anyone reading the disk would see them
    for (const char* file : {"state.db", "state.db-wal"}) {
        if (std::filesystem::exists(dir.file(file))) bytes += test::read_file(dir.file(file));
    }
    CHECK(bytes.find("ann@example.com") == std::string::npos);
    CHECK(bytes.find("Ann@Example.com") == std::string::npos);
    CHECK(bytes.find("cy@example.com") == std::string::npos);
    CHECK(bytes.find("bob@example.com") != std::string::npos);
}

TEST_CASE("state: forgetting is refused while a live process runs an export of the state") {
    test::TempDir dir;
    StateStore state(dir.file("state.db"));
    begin_run(state, "e", false, false);  // this process, alive
    CHECK_THROWS_AS(state.forget_members({"ann@example.com"}), AlreadyRunning);
}
