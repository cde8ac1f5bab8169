// The member state machine in memory: what a list of outcomes changes, before any of it is
// written, and how receipts' rows are kept, confirmed or forgotten.
#include <catch2/catch.hpp>

#include <segpush/plugin.h>

#include "engine/member_states.hpp"

using namespace segpush;

namespace {

MemberOutcome outcome(int64_t seq, MemberState state, const char* receipt = nullptr, std::string reason = "") {
    return {seq, state, std::move(reason), receipt ? SharedText(receipt) : SharedText()};
}

// Members 1..n, all to send.
MemberStates to_send(int64_t n) {
    MemberStates members;
    for (int64_t seq = 1; seq <= n; ++seq) members.set(seq, MemberState::todo);
    return members;
}

// Plans and commits `outcomes` as the state store does, giving new receipt rows ids from `next_row`.
MemberStates::Changes apply(MemberStates& members, const std::vector<MemberOutcome>& outcomes, int64_t& next_row) {
    MemberStates::Changes changes = members.plan(outcomes);
    std::vector<int64_t> rows;
    for (size_t i = 0; i < changes.new_receipts.size(); ++i) rows.push_back(next_row++);
    members.commit(changes, rows);
    return changes;
}

}  // namespace

TEST_CASE("member states: planning changes nothing until it is committed") {
    MemberStates members = to_send(2);
    const std::vector<MemberOutcome> outcomes = {outcome(1, MemberState::done),
                                                 outcome(2, MemberState::rejected, nullptr, "bad")};
    const auto changes = members.plan(outcomes);  // its refusals point into `outcomes`
    CHECK(members.has(1, MemberState::todo));
    CHECK(members.has(2, MemberState::todo));
    CHECK(changes.tally.accepted == 1);
    CHECK(changes.tally.rejected == 1);
    CHECK(changes.delivered == std::vector<int64_t>{1});
    REQUIRE(changes.refusals.size() == 1);
    CHECK(*changes.refusals[0].reason == "bad");
    members.commit(changes, {});
    CHECK(members.has(1, MemberState::done));
    CHECK(members.has(2, MemberState::rejected));
    CHECK(members.count(MemberState::todo) == 0);
}

TEST_CASE("member states: the first final report wins, and a late pending changes nothing") {
    MemberStates members = to_send(3);
    int64_t next_row = 100;
    // In one list: accepted then pending; retry then accepted; pending then rejected.
    const auto changes = apply(members,
                               {outcome(1, MemberState::done), outcome(1, MemberState::pending, "import-1"),
                                outcome(2, MemberState::todo), outcome(2, MemberState::done),
                                outcome(3, MemberState::pending, "import-1"), outcome(3, MemberState::rejected)},
                               next_row);
    CHECK(members.has(1, MemberState::done));
    CHECK(members.has(2, MemberState::done));
    CHECK(members.has(3, MemberState::rejected));
    CHECK(changes.new_receipts.empty());
    // In a later list: a final state is never left.
    apply(members, {outcome(1, MemberState::pending, "import-2"), outcome(3, MemberState::todo)}, next_row);
    CHECK(members.has(1, MemberState::done));
    CHECK(members.has(3, MemberState::rejected));
    CHECK(members.receipt_row_of(1) == 0);
}

TEST_CASE("member states: a receipt's row accepted whole is kept as their delivery, confirmed") {
    MemberStates members = to_send(3);
    int64_t next_row = 7;
    const std::vector<MemberOutcome> sent = {outcome(1, MemberState::pending, "import-1"),
                                             outcome(2, MemberState::pending, "import-1"),
                                             outcome(3, MemberState::pending, "import-1")};
    const auto pending = apply(members, sent, next_row);  // its receipts point into `sent`
    REQUIRE(pending.new_receipts.size() == 1);
    CHECK(pending.new_receipts[0].receipt == "import-1");
    CHECK(pending.new_receipts[0].seqs == std::vector<int64_t>({1, 2, 3}));
    CHECK(members.receipt_row_of(2) == 7);
    CHECK(members.pending() == std::vector<int64_t>({1, 2, 3}));

    // All three accepted in one list (an import's completion): the row is kept, confirmed,
    // as their delivery; they are not delivered one by one.
    auto whole = apply(members,
                       {outcome(1, MemberState::done), outcome(2, MemberState::done), outcome(3, MemberState::done)},
                       next_row);
    CHECK(whole.tally.accepted == 3);
    CHECK(whole.rows_confirmed == std::vector<int64_t>{7});
    CHECK(whole.delivered.empty());
    CHECK(members.receipt_row_of(3) == 0);
}

TEST_CASE("member states: a row's members accepted in parts are delivered one by one, and the row goes") {
    MemberStates members = to_send(3);
    int64_t next_row = 7;
    apply(members,
          {outcome(1, MemberState::pending, "import-1"), outcome(2, MemberState::pending, "import-1"),
           outcome(3, MemberState::pending, "import-1")},
          next_row);
    auto part = apply(members, {outcome(1, MemberState::done), outcome(2, MemberState::done)}, next_row);
    CHECK(part.delivered == std::vector<int64_t>({1, 2}));
    CHECK(part.rows_confirmed.empty());
    CHECK(part.rows_forgotten.empty());  // member 3 still waits on it
    auto rest = apply(members, {outcome(3, MemberState::done)}, next_row);
    CHECK(rest.delivered == std::vector<int64_t>{3});
    CHECK(rest.rows_forgotten == std::vector<int64_t>{7});
}

TEST_CASE("member states: a row not all accepted is forgotten, and its accepted members are delivered one by one") {
    MemberStates members = to_send(2);
    int64_t next_row = 1;
    apply(members, {outcome(1, MemberState::pending, "import-1"), outcome(2, MemberState::pending, "import-1")},
          next_row);
    auto first = apply(members, {outcome(2, MemberState::rejected, nullptr, "invalid email")}, next_row);
    CHECK(first.rows_forgotten.empty());  // member 1 still waits on it
    auto second = apply(members, {outcome(1, MemberState::done)}, next_row);
    CHECK(second.rows_forgotten == std::vector<int64_t>{1});
    CHECK(second.rows_confirmed.empty());
    CHECK(second.delivered == std::vector<int64_t>{1});
}

TEST_CASE("member states: a member given back, or pending under a new receipt, leaves its old row") {
    MemberStates members = to_send(2);
    int64_t next_row = 1;
    apply(members, {outcome(1, MemberState::pending, "import-1"), outcome(2, MemberState::pending, "import-1")},
          next_row);
    // Member 1 is resubmitted under a new import; member 2 was lost (RETRY).
    auto changes = apply(members, {outcome(1, MemberState::pending, "import-2"), outcome(2, MemberState::todo)},
                         next_row);
    CHECK(changes.rows_forgotten == std::vector<int64_t>{1});
    REQUIRE(changes.new_receipts.size() == 1);
    CHECK(changes.new_receipts[0].seqs == std::vector<int64_t>{1});
    CHECK(members.receipt_row_of(1) == 2);
    CHECK(members.receipt_row_of(2) == 0);
    CHECK(members.has(2, MemberState::todo));
    CHECK(members.count(MemberState::todo) == 1);
}

TEST_CASE("member states: leavers count as removed, never wait on a receipt, and settle as removed") {
    MemberStates members = to_send(1);
    members.set(2, MemberState::todo, true);
    members.set(3, MemberState::todo, true);
    int64_t next_row = 1;
    auto changes = apply(members, {outcome(2, MemberState::done), outcome(3, MemberState::pending, "import-9")},
                         next_row);
    CHECK(changes.tally.removed == 1);
    CHECK(changes.tally.accepted == 0);
    CHECK(changes.delivered == std::vector<int64_t>{2});
    CHECK(changes.settled.empty());  // a leaver never counts as a member settled again
    CHECK(changes.new_receipts.empty());
    CHECK(members.is_leaver(3));
    const OutcomeTally settled = members.settle_pending();
    CHECK(settled.removed == 1);
    CHECK(members.has(3, MemberState::done));
    CHECK(members.is_leaver(3));
}

TEST_CASE("member states: outcomes for records that are not members, and over-long receipts, are ignored") {
    MemberStates members = to_send(1);
    int64_t next_row = 1;
    const std::string long_receipt(SEGPUSH_RECEIPT_MAX + 1, 'r');
    auto changes = apply(members,
                         {outcome(5, MemberState::done), outcome(1, MemberState::pending, long_receipt.c_str())},
                         next_row);
    CHECK(changes.tally.accepted == 0);
    CHECK(changes.new_receipts.empty());  // the member is pending without a receipt: resent if the run stops
    CHECK(members.has(1, MemberState::pending));
    CHECK_FALSE(members.exists(5));
}

TEST_CASE("member states: a push's PENDING after collect gave the member back is stale and ignored") {
    MemberStates members = to_send(2);
    int64_t next_row = 1;
    // collect_outcomes: the destination lost member 1's request.
    MemberStates::Changes collected = members.plan({outcome(1, MemberState::todo)}, ReportedBy::collect);
    members.commit(collected, {});
    // The push that sent both finishes later and reports them PENDING: member 1's is stale.
    std::vector<MemberOutcome> results = {outcome(1, MemberState::pending, "import-1"),
                                          outcome(2, MemberState::pending, "import-1")};
    members.drop_stale(results);
    REQUIRE(results.size() == 1);
    CHECK(results[0].seq == 2);
    MemberStates::Changes pushed = members.plan(results, ReportedBy::push);
    std::vector<int64_t> rows;
    for (size_t i = 0; i < pushed.new_receipts.size(); ++i) rows.push_back(next_row++);
    members.commit(pushed, rows);
    CHECK(members.has(1, MemberState::todo));  // sent again, never settled as delivered by finish
    CHECK(members.has(2, MemberState::pending));
    REQUIRE(pushed.new_receipts.size() == 1);
    CHECK(pushed.new_receipts[0].seqs == std::vector<int64_t>{2});
    // The same PENDING from any other call is taken.
    MemberStates::Changes resumed = members.plan({outcome(1, MemberState::pending, "import-2")});
    CHECK(resumed.new_receipts.size() == 1);
}
