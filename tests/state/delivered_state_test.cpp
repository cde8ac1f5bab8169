// The delivered state: the members a destination holds as far as segpush knows, the members
// segpush removed, and the receipts of imports awaiting confirmation. The TEMPLATE_TEST_CASEs
// are the contract every backend keeps (a backend joins by adding its type to
// DELIVERED_STATE_BACKENDS); the plain TEST_CASEs are DeliveryBatch's, the receipt members'
// encoding's and each backend's own.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <ostream>
#include <thread>
#include <tuple>

#include "state/postgres.hpp"
#include "state/postgres_delivered_state.hpp"
#include "state/postgres_schema.hpp"
#include "state/receipt_members.hpp"
#include "state/sqlite.hpp"
#include "state/sqlite_state_store.hpp"
#include "support/captured_stderr.hpp"
#include "support/postgres_server.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
using segpush::test::PostgresServer;

namespace {

// A backend under test: each object is a fresh, empty store that it removes when destroyed.
// reopen() closes it and opens it again, as the next process would.
class SqliteBackend {
public:
    DeliveredState& state() { return store_->delivered(); }
    DeliveredState& reopen() {
        store_.reset();
        store_ = std::make_unique<SqliteStateStore>(path_);
        return state();
    }

private:
    test::TempDir dir_;
    std::string path_ = dir_.file("state.db");
    std::unique_ptr<SqliteStateStore> store_ = std::make_unique<SqliteStateStore>(path_);
};

// A database of its own on the tests' shared server; reopen() connects again, as the next
// process would.
class PostgresBackend {
public:
    PostgresBackend() { reopen(); }
    DeliveredState& state() { return *state_; }
    DeliveredState& reopen() {
        state_.reset();
        db_ = std::make_unique<postgres::Connection>(uri_);
        migrate_postgres_schema(*db_);
        state_ = std::make_unique<PostgresDeliveredState>(*db_, StateOptions{});
        return *state_;
    }

private:
    std::string uri_ = PostgresServer::shared().uri(PostgresServer::shared().create_database());
    std::unique_ptr<postgres::Connection> db_;
    std::unique_ptr<PostgresDeliveredState> state_;
};

// A delivered member as visit_delivered showed it, its views copied.
struct Seen {
    std::string key, key_value;
    uint64_t hash = 0;
    int64_t run_id = 0;
    bool operator==(const Seen& other) const {
        return std::tie(key, key_value, hash, run_id) == std::tie(other.key, other.key_value, other.hash, other.run_id);
    }
};
std::ostream& operator<<(std::ostream& out, const Seen& seen) {
    return out << "{" << seen.key << ", " << seen.key_value << ", " << seen.hash << ", run " << seen.run_id << "}";
}

std::vector<Seen> delivered(DeliveredState& state, const std::string& export_name) {
    std::vector<Seen> seen;
    state.visit_delivered(export_name, [&](const DeliveredMember& member) {
        seen.push_back({std::string(member.key), std::string(member.key_value), member.hash, member.run_id});
    });
    return seen;
}

std::map<std::string, int64_t> removals(DeliveredState& state, const std::string& export_name) {
    std::map<std::string, int64_t> seen;
    state.visit_removals(export_name, [&](std::string_view key, int64_t removed_at) {
        CHECK(seen.count(std::string(key)) == 0);  // each removal once
        seen[std::string(key)] = removed_at;
    });
    return seen;
}

// A refusal as visit_refused showed it: hash, refusals, run_id.
using SeenRefusal = std::tuple<uint64_t, int64_t, int64_t>;
std::map<std::string, SeenRefusal> refused(DeliveredState& state, const std::string& export_name) {
    std::map<std::string, SeenRefusal> seen;
    state.visit_refused(export_name, [&](const RefusedMember& member) {
        CHECK(seen.count(std::string(member.key)) == 0);  // each key once
        seen[std::string(member.key)] = SeenRefusal{member.hash, member.refusals, member.run_id};
    });
    return seen;
}

using Receipts = std::vector<std::pair<std::string, std::string>>;  // receipt, members
Receipts open_receipts(DeliveredState& state, const std::string& export_name, int64_t since_run, int64_t before_run) {
    Receipts seen;
    state.visit_open_receipts(export_name, since_run, before_run,
                              [&](std::string_view receipt, std::string_view members) {
                                  seen.emplace_back(std::string(receipt), std::string(members));
                              });
    return seen;
}

// A receipt's members, encoded as the engine encodes them.
struct ReceiptMember {
    std::string key, key_value;
    uint64_t hash;
};
std::string encoded(const std::vector<ReceiptMember>& members) {
    std::string out;
    for (const auto& member : members) encode_receipt_member(out, member.hash, member.key, member.key_value);
    return out;
}

// Records the members as delivered by `run_id` (key as written equal to the key), in one batch.
void deliver(DeliveredState& state, const std::string& export_name, int64_t run_id,
             const std::vector<std::pair<std::string, uint64_t>>& members) {
    DeliveryBatch batch;
    for (const auto& [key, hash] : members) batch.deliver(key, key, hash, false, false);
    state.record(export_name, run_id, batch);
}

// Records one receipt of `run_id`; returns its id.
int64_t add_receipt(DeliveredState& state, const std::string& export_name, int64_t run_id, const std::string& receipt,
                    const std::string& members) {
    DeliveryBatch batch;
    batch.add_receipt(receipt, 1, 2, members);
    const std::vector<int64_t> ids = state.record(export_name, run_id, batch);
    REQUIRE(ids.size() == 1);
    return ids[0];
}

std::vector<std::string> receipt_names(const Receipts& receipts) {
    std::vector<std::string> names;
    for (const auto& receipt : receipts) names.push_back(receipt.first);
    return names;
}

}  // namespace

#define DELIVERED_STATE_BACKENDS SqliteBackend, PostgresBackend

TEMPLATE_TEST_CASE("delivered state: an export has nothing recorded until a member is delivered, a receipt recorded, "
                   "a removal remembered or a refusal recorded",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    CHECK(state.nothing_recorded("e"));
    CHECK(delivered(state, "e").empty());
    CHECK(removals(state, "e").empty());
    CHECK(open_receipts(state, "e", 0, 1000).empty());
    CHECK(state.record("e", 1, DeliveryBatch{}).empty());  // an empty batch records nothing
    CHECK(state.nothing_recorded("e"));

    deliver(state, "delivered", 1, {{"a@x.io", 1}});
    CHECK_FALSE(state.nothing_recorded("delivered"));

    add_receipt(state, "awaiting", 2, "import-1", encoded({{"a@x.io", "", 1}}));
    CHECK_FALSE(state.nothing_recorded("awaiting"));

    // A member segpush removed without having delivered it in this state: its only record.
    DeliveryBatch removal;
    removal.deliver("a@x.io", "a@x.io", 1, true, true);
    state.record("removed", 3, removal);
    CHECK_FALSE(state.nothing_recorded("removed"));
    CHECK(delivered(state, "removed").empty());
    CHECK_FALSE(state.nothing_recorded("removed"));  // still, once the delivered members were visited

    // A member the destination refused, and nothing else: the next run must still compare.
    DeliveryBatch refusal;
    refusal.refuse("a@x.io", 1, 1);
    state.record("refused", 4, refusal);
    CHECK_FALSE(state.nothing_recorded("refused"));

    CHECK(state.nothing_recorded("e"));
    CHECK(backend.reopen().nothing_recorded("e"));
    CHECK_FALSE(backend.state().nothing_recorded("refused"));
    CHECK_FALSE(backend.state().nothing_recorded("delivered"));
    CHECK_FALSE(backend.state().nothing_recorded("awaiting"));
    CHECK_FALSE(backend.state().nothing_recorded("removed"));
}

TEMPLATE_TEST_CASE("delivered state: delivered members come back in ascending byte order, each key once, the latest "
                   "values winning",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    // A hash with its top bit set: a backend keeping signed integers must give it back as is.
    constexpr uint64_t kHighHash = 0xfedcba9876543210u;
    DeliveryBatch first;
    first.deliver("b@x.io", "b@x.io", 1, false, false);
    first.deliver("\xc3\xa9@x.io", "\xc3\x89@x.io", 2, false, false);  // é, written É
    first.deliver("ab", "AB", 3, false, false);
    first.deliver("\xff", "\xff", 4, false, false);
    first.deliver("a", "A", kHighHash, false, false);
    first.deliver("a\x80", "a\x80", 6, false, false);
    first.deliver("Z", "Z", 7, false, false);
    first.deliver("kept@x.io", "", 8, false, false);  // no key as written: the key
    state.record("e", 1, first);
    DeliveryBatch second;
    second.deliver("ab", "Ab", 30, false, false);
    state.record("e", 2, second);

    // Bytes compare unsigned: 0x80 and above sort after ASCII, a prefix before what it prefixes.
    const std::vector<Seen> expected{
        {"Z", "Z", 7, 1},
        {"a", "A", kHighHash, 1},
        {"ab", "Ab", 30, 2},
        {"a\x80", "a\x80", 6, 1},
        {"b@x.io", "b@x.io", 1, 1},
        {"kept@x.io", "kept@x.io", 8, 1},
        {"\xc3\xa9@x.io", "\xc3\x89@x.io", 2, 1},
        {"\xff", "\xff", 4, 1},
    };
    CHECK(delivered(state, "e") == expected);
    CHECK(delivered(state, "e") == expected);  // visiting changes nothing

    // Changed again after a visit, and a new key that sorts first.
    DeliveryBatch third;
    third.deliver("a\x80", "a\x80", 60, false, false);
    third.deliver("0", "0", 9, false, false);
    state.record("e", 3, third);
    std::vector<Seen> changed = expected;
    changed[3] = {"a\x80", "a\x80", 60, 3};
    changed.insert(changed.begin(), Seen{"0", "0", 9, 3});
    CHECK(delivered(state, "e") == changed);
    CHECK(delivered(backend.reopen(), "e") == changed);
}

TEMPLATE_TEST_CASE("delivered state: a member delivered as removed is no longer delivered, and only a removal by "
                   "segpush is remembered, until forgotten",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    deliver(state, "e", 1, {{"a@x.io", 1}, {"b@x.io", 2}, {"c@x.io", 3}, {"d@x.io", 4}});
    CHECK(delivered(state, "e").size() == 4);

    const int64_t before = std::time(nullptr);
    DeliveryBatch leavers;
    leavers.deliver("a@x.io", "a@x.io", 1, true, true);   // segpush removed it
    leavers.deliver("b@x.io", "b@x.io", 2, true, false);  // the destination kept it out already
    leavers.deliver("never@x.io", "never@x.io", 5, true, true);
    state.record("e", 2, leavers);
    // Delivered then removed in a later batch, with no visit in between.
    deliver(state, "e", 2, {{"late@x.io", 6}});
    DeliveryBatch late_leaver;
    late_leaver.deliver("late@x.io", "late@x.io", 6, true, false);
    state.record("e", 2, late_leaver);
    const int64_t after = std::time(nullptr);

    CHECK(delivered(state, "e") == std::vector<Seen>{{"c@x.io", "c@x.io", 3, 1}, {"d@x.io", "d@x.io", 4, 1}});
    auto removed = removals(state, "e");
    CHECK(removed.size() == 2);
    REQUIRE(removed.count("a@x.io"));
    REQUIRE(removed.count("never@x.io"));
    CHECK(removed["a@x.io"] >= before);
    CHECK(removed["a@x.io"] <= after);
    CHECK(removed["never@x.io"] >= before);
    CHECK(removed["never@x.io"] <= after);

    // Removed again: still one removal.
    DeliveryBatch again;
    again.deliver("a@x.io", "a@x.io", 1, true, true);
    state.record("e", 3, again);
    CHECK(removals(state, "e").size() == 2);

    // a rejoins in the next run, which visits the delivered members (its diff) before it
    // records anything: delivered again, its removal history.
    CHECK(delivered(state, "e").size() == 2);
    DeliveryBatch rejoined;
    rejoined.deliver("a@x.io", "A@x.io", 11, false, false);
    rejoined.forget_removal("a@x.io");
    state.record("e", 4, rejoined);
    CHECK(removals(state, "e") == std::map<std::string, int64_t>{{"never@x.io", removed["never@x.io"]}});
    CHECK(delivered(state, "e") ==
          std::vector<Seen>{{"a@x.io", "A@x.io", 11, 4}, {"c@x.io", "c@x.io", 3, 1}, {"d@x.io", "d@x.io", 4, 1}});
    // Forgetting a removal alone, and one never recorded, is no error.
    DeliveryBatch forget;
    forget.forget_removal("never@x.io");
    forget.forget_removal("nobody@x.io");
    state.record("e", 5, forget);
    CHECK(removals(backend.reopen(), "e").empty());
}

TEMPLATE_TEST_CASE("delivered state: receipts get growing ids and stay open, found by their run's range, members "
                   "byte for byte",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    // Members with a key as written, bytes >= 0x80 and hashes whose bytes include zeros.
    const std::string first_members = encoded(
        {{"a@x.io", "A@X.io", 0x0100000000000001u}, {"\xc3\xa9@x.io", "", 0xffffffffffffffffu}});
    const std::string second_members = encoded({{"b@x.io", "b@x.io", 0}});
    DeliveryBatch run_1;
    run_1.add_receipt("import-1", 1, 2, first_members);
    run_1.add_receipt("import-2", 3, 3, second_members);
    const std::vector<int64_t> ids_1 = state.record("e", 1, run_1);
    REQUIRE(ids_1.size() == 2);
    CHECK(ids_1[0] < ids_1[1]);
    const int64_t id_3 = add_receipt(state, "e", 2, "import-3", encoded({{"c@x.io", "", 3}}));
    CHECK(id_3 > ids_1[1]);
    const int64_t id_4 = add_receipt(state, "e", 3, "import-4", encoded({{"d@x.io", "", 4}}));
    CHECK(id_4 > id_3);

    const Receipts all = open_receipts(state, "e", 1, 4);
    CHECK(receipt_names(all) == std::vector<std::string>{"import-1", "import-2", "import-3", "import-4"});
    REQUIRE(all.size() == 4);
    CHECK(all[0].second == first_members);
    CHECK(all[1].second == second_members);
    std::vector<std::tuple<uint64_t, std::string, std::string>> decoded;
    decode_receipt_members(all[0].second,
                           [&](uint64_t hash, std::string_view key, std::string_view key_value, std::string_view) {
                               decoded.emplace_back(hash, std::string(key), std::string(key_value));
                           });
    CHECK(decoded ==
          std::vector<std::tuple<uint64_t, std::string, std::string>>{
              {0x0100000000000001u, "a@x.io", "A@X.io"}, {0xffffffffffffffffu, "\xc3\xa9@x.io", "\xc3\xa9@x.io"}});

    // [since_run, before_run): the first run counts, the last does not.
    CHECK(receipt_names(open_receipts(state, "e", 2, 3)) == std::vector<std::string>{"import-3"});
    CHECK(receipt_names(open_receipts(state, "e", 1, 2)) == std::vector<std::string>{"import-1", "import-2"});
    CHECK(receipt_names(open_receipts(state, "e", 2, 100)) == std::vector<std::string>{"import-3", "import-4"});
    CHECK(open_receipts(state, "e", 4, 100).empty());
    CHECK(open_receipts(state, "e", 0, 1).empty());
    // Open receipts are not delivered members.
    CHECK(delivered(state, "e").empty());

    CHECK(open_receipts(backend.reopen(), "e", 1, 4) == all);
    // A receipt recorded after reopening still gets a greater id than every receipt kept.
    CHECK(add_receipt(backend.state(), "e", 4, "import-5", encoded({{"f@x.io", "", 5}})) > id_4);
}

TEMPLATE_TEST_CASE("delivered state: a confirmed receipt's members are delivered and it is no longer open, a "
                   "forgotten one is gone",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    deliver(state, "e", 1, {{"b@x.io", 20}, {"z@x.io", 26}});
    CHECK(delivered(state, "e").size() == 2);  // as each run's diff does before the run sends
    const int64_t confirmed = add_receipt(state, "e", 2, "import-1",
                                          encoded({{"a@x.io", "A@x.io", 1}, {"b@x.io", "", 21}}));
    const int64_t forgotten = add_receipt(state, "e", 2, "import-2", encoded({{"c@x.io", "", 3}}));
    const int64_t waiting = add_receipt(state, "e", 2, "import-3", encoded({{"d@x.io", "", 4}}));
    CHECK(delivered(state, "e").size() == 2);

    DeliveryBatch outcomes;
    outcomes.receipts_confirmed = {confirmed};
    outcomes.receipts_forgotten = {forgotten};
    state.record("e", 3, outcomes);
    CHECK(open_receipts(state, "e", 0, 10) == Receipts{{"import-3", encoded({{"d@x.io", "", 4}})}});
    // Earlier runs' unconfirmed receipts forgotten: a confirmed receipt is a delivery, not one of them.
    state.forget_receipts_before("e", 10);
    CHECK(open_receipts(state, "e", 0, 10).empty());
    // Each member as the receipt held it, delivered by the run that sent the import.
    const std::vector<Seen> expected{{"a@x.io", "A@x.io", 1, 2},
                                     {"b@x.io", "b@x.io", 21, 2},
                                     {"z@x.io", "z@x.io", 26, 1}};
    CHECK(delivered(state, "e") == expected);
    CHECK(open_receipts(state, "e", 0, 10).empty());
    CHECK(delivered(backend.reopen(), "e") == expected);
    CHECK(waiting > confirmed);
}

TEMPLATE_TEST_CASE("delivered state: settling a run drops its unconfirmed receipts, and earlier runs' receipts are "
                   "forgotten on request",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    add_receipt(state, "e", 1, "import-1", encoded({{"a@x.io", "", 1}}));
    const int64_t confirmed = add_receipt(state, "e", 2, "import-2a", encoded({{"b@x.io", "", 2}}));
    add_receipt(state, "e", 2, "import-2b", encoded({{"c@x.io", "", 3}}));
    add_receipt(state, "e", 3, "import-3", encoded({{"d@x.io", "", 4}}));

    DeliveryBatch outcomes;
    outcomes.receipts_confirmed = {confirmed};
    state.record("e", 2, outcomes);
    // As finish_export settles run 2: its pending members delivered, none of its receipts waits.
    DeliveryBatch settle;
    settle.settles_run = true;
    settle.deliver("c@x.io", "c@x.io", 3, false, false);
    state.record("e", 2, settle);
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-1", "import-3"});
    CHECK(delivered(state, "e") == std::vector<Seen>{{"b@x.io", "b@x.io", 2, 2}, {"c@x.io", "c@x.io", 3, 2}});

    // Before run 3: run 1's receipt goes, run 3's stays.
    state.forget_receipts_before("e", 3);
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-3"});
    state.forget_receipts_before("e", 3);  // nothing more to forget
    CHECK(receipt_names(open_receipts(backend.reopen(), "e", 0, 10)) == std::vector<std::string>{"import-3"});
    // Settling a run without receipts, or forgetting before the first, changes nothing.
    DeliveryBatch settle_empty;
    settle_empty.settles_run = true;
    backend.state().record("e", 4, settle_empty);
    backend.state().forget_receipts_before("e", 1);
    CHECK(receipt_names(open_receipts(backend.state(), "e", 0, 10)) == std::vector<std::string>{"import-3"});
    CHECK(delivered(backend.state(), "e").size() == 2);
}

TEMPLATE_TEST_CASE("delivered state: a refusal is kept with its values' hash, its count and its run, the latest "
                   "replacing it, until forgotten",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    constexpr uint64_t kHighHash = 0xfedcba9876543210u;  // a backend keeping signed integers gives it back as is
    CHECK(refused(state, "e").empty());
    DeliveryBatch first;
    first.refuse("a@x.io", 1, 1);
    first.refuse(std::string("b\0\xff", 3), kHighHash, 1);  // keys are bytes
    first.deliver("c@x.io", "c@x.io", 3, false, false);
    state.record("e", 1, first);
    CHECK(refused(state, "e") ==
          std::map<std::string, SeenRefusal>{{"a@x.io", {1, 1, 1}}, {std::string("b\0\xff", 3), {kHighHash, 1, 1}}});
    // Refusals are not deliveries.
    CHECK(delivered(state, "e") == std::vector<Seen>{{"c@x.io", "c@x.io", 3, 1}});

    // Refused again (the count is the engine's), refused with other values, and a refusal forgotten.
    DeliveryBatch second;
    second.refuse("a@x.io", 1, 2);
    second.forget_refusal(std::string("b\0\xff", 3));
    second.refuse("d@x.io", 4, 1);
    state.record("e", 2, second);
    DeliveryBatch third;
    third.refuse("d@x.io", 40, 1);
    state.record("e", 3, third);
    const std::map<std::string, SeenRefusal> expected{{"a@x.io", {1, 2, 2}}, {"d@x.io", {40, 1, 3}}};
    CHECK(refused(state, "e") == expected);
    CHECK(refused(backend.reopen(), "e") == expected);

    // A batch's forgotten refusals go before its refusals: a key forgotten and refused again is refused.
    DeliveryBatch fourth;
    fourth.forget_refusal("a@x.io");
    fourth.refuse("a@x.io", 5, 1);
    fourth.forget_refusal("d@x.io");
    fourth.forget_refusal("never@x.io");  // nothing to forget: no harm
    backend.state().record("e", 4, fourth);
    CHECK(refused(backend.state(), "e") == std::map<std::string, SeenRefusal>{{"a@x.io", {5, 1, 4}}});
    CHECK(refused(backend.state(), "f").empty());  // kept apart by export
}

TEMPLATE_TEST_CASE("delivered state: exports are kept apart, one's members, removals and receipts never another's",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    deliver(state, "e", 1, {{"a@x.io", 1}, {"shared@x.io", 2}});
    deliver(state, "f", 2, {{"shared@x.io", 20}, {"z@x.io", 26}});
    DeliveryBatch e_leaver;
    e_leaver.deliver("gone@x.io", "gone@x.io", 3, true, true);
    state.record("e", 1, e_leaver);
    const int64_t e_receipt = add_receipt(state, "e", 1, "import-e", encoded({{"r@x.io", "", 4}}));
    add_receipt(state, "f", 2, "import-f", encoded({{"s@x.io", "", 5}}));

    CHECK(delivered(state, "e") == std::vector<Seen>{{"a@x.io", "a@x.io", 1, 1}, {"shared@x.io", "shared@x.io", 2, 1}});
    CHECK(delivered(state, "f") ==
          std::vector<Seen>{{"shared@x.io", "shared@x.io", 20, 2}, {"z@x.io", "z@x.io", 26, 2}});
    CHECK(removals(state, "e").size() == 1);
    CHECK(removals(state, "f").empty());
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-e"});
    CHECK(receipt_names(open_receipts(state, "f", 0, 10)) == std::vector<std::string>{"import-f"});
    CHECK(delivered(state, "e ").empty());  // names are compared whole
    CHECK(state.nothing_recorded("E"));

    // Changes to one export leave the other's alone.
    DeliveryBatch e_changes;
    e_changes.deliver("shared@x.io", "shared@x.io", 2, true, true);
    e_changes.receipts_confirmed = {e_receipt};
    state.record("e", 3, e_changes);
    state.forget_receipts_before("e", 100);
    CHECK(delivered(state, "e") == std::vector<Seen>{{"a@x.io", "a@x.io", 1, 1}, {"r@x.io", "r@x.io", 4, 1}});
    CHECK(delivered(state, "f") ==
          std::vector<Seen>{{"shared@x.io", "shared@x.io", 20, 2}, {"z@x.io", "z@x.io", 26, 2}});
    CHECK(removals(state, "f").empty());
    CHECK(receipt_names(open_receipts(state, "f", 0, 10)) == std::vector<std::string>{"import-f"});
}

// The values each member was last sent with, by key, as visit_delivered gives them.
std::map<std::string, std::string> sent_values(DeliveredState& state, const std::string& export_name) {
    std::map<std::string, std::string> seen;
    state.visit_delivered(export_name, [&](const DeliveredMember& member) {
        seen[std::string(member.key)] = std::string(member.sent_values);
    });
    return seen;
}

TEMPLATE_TEST_CASE("delivered state: the values last sent come back byte for byte with the latest delivery, from a "
                   "confirmed receipt too, and none are kept for a member delivered without them",
                   "[delivered-state]", DELIVERED_STATE_BACKENDS) {
    TestType backend;
    DeliveredState& state = backend.state();
    const std::string binary("v\0\xff\x01", 4);  // any byte, NUL included
    DeliveryBatch first;
    first.deliver("a@x.io", "a@x.io", 1, false, false, "a-1");
    first.deliver("b@x.io", "B@x.io", 2, false, false, binary);
    first.deliver("c@x.io", "c@x.io", 3, false, false);  // none recorded
    first.deliver("d@x.io", "d@x.io", 4, false, false, "d-1");
    state.record("e", 1, first);
    CHECK(sent_values(state, "e") ==
          std::map<std::string, std::string>{{"a@x.io", "a-1"}, {"b@x.io", binary}, {"c@x.io", ""}, {"d@x.io", "d-1"}});

    // The latest delivery's values win; one without values leaves none; a removed member has none left.
    DeliveryBatch second;
    second.deliver("a@x.io", "a@x.io", 11, false, false, "a-2");
    second.deliver("b@x.io", "B@x.io", 12, false, false);
    second.deliver("d@x.io", "d@x.io", 0, true, true, "ignored");
    state.record("e", 2, second);
    // A receipt's members bring theirs once it is confirmed.
    std::string members;
    encode_receipt_member(members, 13, "c@x.io", "", "c-3");
    encode_receipt_member(members, 15, "f@x.io", "F@x.io", "f-3");
    const int64_t receipt = add_receipt(state, "e", 3, "import-1", members);
    DeliveryBatch confirm;
    confirm.receipts_confirmed = {receipt};
    state.record("e", 3, confirm);
    const std::map<std::string, std::string> expected{
        {"a@x.io", "a-2"}, {"b@x.io", ""}, {"c@x.io", "c-3"}, {"f@x.io", "f-3"}};
    CHECK(sent_values(state, "e") == expected);
    CHECK(sent_values(backend.reopen(), "e") == expected);
    CHECK(sent_values(backend.state(), "other").empty());
}

TEST_CASE("delivered state: a batch that fails part way records none of it (SQLite)") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    SqliteStateStore store(path);
    DeliveredState& state = store.delivered();
    deliver(state, "e", 1, {{"a@x.io", 1}, {"b@x.io", 2}});
    DeliveryBatch leaver;
    leaver.deliver("gone@x.io", "gone@x.io", 3, true, true);
    state.record("e", 1, leaver);
    const int64_t to_confirm = add_receipt(state, "e", 1, "import-1", encoded({{"c@x.io", "", 4}}));
    const int64_t to_forget = add_receipt(state, "e", 1, "import-2", encoded({{"d@x.io", "", 5}}));
    DeliveryBatch refusal;
    refusal.refuse("refused@x.io", 9, 1);
    state.record("e", 1, refusal);
    const auto refused_before = refused(state, "e");
    const std::vector<Seen> delivered_before = delivered(state, "e");
    const auto removals_before = removals(state, "e");
    const Receipts receipts_before = open_receipts(state, "e", 0, 10);

    // Every kind of change, the failing one last: the second receipt's row is refused (as a
    // full disk would), from another connection, after all the rest was written.
    DeliveryBatch batch;
    batch.receipts_confirmed = {to_confirm};
    batch.receipts_forgotten = {to_forget};
    batch.deliver("a@x.io", "a@x.io", 10, false, false);
    batch.deliver("b@x.io", "b@x.io", 2, true, true);
    batch.deliver("new@x.io", "new@x.io", 6, false, false);
    batch.forget_removal("gone@x.io");
    batch.forget_refusal("refused@x.io");
    batch.refuse("other@x.io", 11, 1);
    batch.add_receipt("import-3", 1, 1, encoded({{"e@x.io", "", 7}}));
    batch.add_receipt("import-4", 2, 2, encoded({{"f@x.io", "", 8}}));
    sqlite::Database other(path);
    other.exec("CREATE TRIGGER refuse_import_4 BEFORE INSERT ON unconfirmed WHEN NEW.receipt = 'import-4' "
               "BEGIN SELECT RAISE(ABORT, 'no room'); END");
    CHECK_THROWS_WITH(state.record("e", 2, batch), Catch::Contains("no room"));
    CHECK(delivered(state, "e") == delivered_before);
    CHECK(removals(state, "e") == removals_before);
    CHECK(open_receipts(state, "e", 0, 10) == receipts_before);
    CHECK(refused(state, "e") == refused_before);

    // The same batch, once the file takes it, is recorded whole.
    other.exec("DROP TRIGGER refuse_import_4");
    CHECK(state.record("e", 2, batch).size() == 2);
    CHECK(delivered(state, "e") ==
          std::vector<Seen>{{"a@x.io", "a@x.io", 10, 2}, {"c@x.io", "c@x.io", 4, 1}, {"new@x.io", "new@x.io", 6, 2}});
    CHECK(removals(state, "e").count("b@x.io") == 1);
    CHECK(removals(state, "e").count("gone@x.io") == 0);
    CHECK(refused(state, "e") == std::map<std::string, SeenRefusal>{{"other@x.io", {11, 1, 2}}});
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-3", "import-4"});
}

TEST_CASE("delivered state: a delivery batch gives back its members and receipts as given") {
    DeliveryBatch batch;
    CHECK(batch.empty());
    {
        // Copied in: the caller's strings are gone before the batch is read.
        std::string key = "a@x.io", key_value = "A@x.io";
        batch.deliver(key, key_value, 0xfedcba9876543210u, false, false);
        key = "b@x.io";
        batch.deliver(key, key, 2, true, true);
        batch.deliver(std::string("c@x.io"), std::string("c@x.io"), 3, true, false);
        // Only a removal can be segpush's own.
        batch.deliver(std::string("d@x.io"), std::string(""), 4, false, true);
        batch.forget_removal(std::string("e@x.io"));
        batch.add_receipt(std::string("import-1"), 5, 9, std::string("\0\x80members\xff", 10));
    }
    CHECK_FALSE(batch.empty());
    // Enough more that the batch's bytes move: what it gives back must follow them.
    for (int i = 0; i < 2000; ++i)
        batch.deliver("m" + std::to_string(i) + "@x.io", "", static_cast<uint64_t>(i), false, false);

    REQUIRE(batch.delivered_count() == 2004);
    const DeliveryBatch::Member a = batch.delivered(0);
    CHECK(a.key == "a@x.io");
    CHECK(a.key_value == "A@x.io");
    CHECK(a.hash == 0xfedcba9876543210u);
    CHECK_FALSE(a.removed);
    CHECK_FALSE(a.removed_by_us);
    const DeliveryBatch::Member b = batch.delivered(1);
    CHECK(b.key == "b@x.io");
    CHECK(b.key_value == "b@x.io");
    CHECK(b.key_value.data() == b.key.data());  // a key as written equal to the key is stored once
    CHECK(b.hash == 2);
    CHECK(b.removed);
    CHECK(b.removed_by_us);
    const DeliveryBatch::Member c = batch.delivered(2);
    CHECK(c.key == "c@x.io");
    CHECK(c.removed);
    CHECK_FALSE(c.removed_by_us);
    const DeliveryBatch::Member d = batch.delivered(3);
    CHECK(d.key == "d@x.io");
    CHECK(d.key_value == "d@x.io");  // none given: the key
    CHECK_FALSE(d.removed);
    CHECK_FALSE(d.removed_by_us);
    const DeliveryBatch::Member last = batch.delivered(2003);
    CHECK(last.key == "m1999@x.io");
    CHECK(last.key_value == "m1999@x.io");
    CHECK(last.hash == 1999);

    REQUIRE(batch.removals_forgotten_count() == 1);
    CHECK(batch.removal_forgotten(0) == "e@x.io");
    REQUIRE(batch.receipt_count() == 1);
    const DeliveryBatch::Receipt receipt = batch.receipt(0);
    CHECK(receipt.receipt == "import-1");
    CHECK(receipt.first_seq == 5);
    CHECK(receipt.last_seq == 9);
    CHECK(receipt.members == std::string_view("\0\x80members\xff", 10));

    // Each kind of change alone makes a batch worth recording.
    DeliveryBatch confirming;
    confirming.receipts_confirmed.push_back(1);
    CHECK_FALSE(confirming.empty());
    DeliveryBatch forgetting;
    forgetting.receipts_forgotten.push_back(1);
    CHECK_FALSE(forgetting.empty());
    DeliveryBatch settling;
    settling.settles_run = true;
    CHECK_FALSE(settling.empty());
    DeliveryBatch forgetting_removal;
    forgetting_removal.forget_removal("a@x.io");
    CHECK_FALSE(forgetting_removal.empty());
    DeliveryBatch receipt_only;
    receipt_only.add_receipt("import-1", 1, 1, "");
    CHECK_FALSE(receipt_only.empty());
    DeliveryBatch refusing;
    refusing.refuse("a@x.io", 1, 1);
    CHECK_FALSE(refusing.empty());
    DeliveryBatch forgetting_refusal;
    forgetting_refusal.forget_refusal("a@x.io");
    CHECK_FALSE(forgetting_refusal.empty());
}

TEST_CASE("delivered state: a delivery batch gives back its refusals as given") {
    DeliveryBatch batch;
    {
        std::string key = "a@x.io";
        batch.refuse(key, 0xfedcba9876543210u, 3);
        key = "b@x.io";
        batch.forget_refusal(key);
    }
    for (int i = 0; i < 2000; ++i) batch.refuse("m" + std::to_string(i) + "@x.io", static_cast<uint64_t>(i), 1);
    REQUIRE(batch.refused_count() == 2001);
    const RefusedMember a = batch.refused(0);
    CHECK(a.key == "a@x.io");
    CHECK(a.hash == 0xfedcba9876543210u);
    CHECK(a.refusals == 3);
    CHECK(batch.refused(2000).key == "m1999@x.io");
    REQUIRE(batch.refusals_forgotten_count() == 1);
    CHECK(batch.refusal_forgotten(0) == "b@x.io");
}

TEST_CASE("delivered state: receipt members decode as encoded, and a torn list yields the members before the tear") {
    const std::string key_value_follows(300, 'K');  // a length over one byte
    std::string members;
    encode_receipt_member(members, 1, "a@x.io", "A@x.io");
    encode_receipt_member(members, 0, "b@x.io", "");
    encode_receipt_member(members, 0xffffffffffffffffu, "k", key_value_follows);
    encode_receipt_member(members, 4, "d@x.io", "d@x.io");
    encode_receipt_member(members, 5, "e@x.io", "E@x.io", "values-e");
    encode_receipt_member(members, 6, "f@x.io", "", "values-f");
    using Decoded = std::vector<std::tuple<uint64_t, std::string, std::string, std::string>>;
    auto decode = [](std::string_view in) {
        Decoded out;
        decode_receipt_members(in, [&](uint64_t hash, std::string_view key, std::string_view key_value,
                                       std::string_view values) {
            out.emplace_back(hash, std::string(key), std::string(key_value), std::string(values));
        });
        return out;
    };
    const Decoded all{{1, "a@x.io", "A@x.io", ""},
                      {0, "b@x.io", "b@x.io", ""},
                      {0xffffffffffffffffu, "k", key_value_follows, ""},
                      {4, "d@x.io", "d@x.io", ""},
                      {5, "e@x.io", "E@x.io", "values-e"},
                      {6, "f@x.io", "f@x.io", "values-f"}};
    CHECK(decode(members) == all);
    // A key as written equal to the key takes no room: d's entry is hash, length and key only;
    // values, when kept, follow with their length.
    CHECK(members.size() == (8 + 4 + 6 + 4 + 6) + (8 + 4 + 6) + (8 + 4 + 1 + 4 + 300) + (8 + 4 + 6) +
                                (8 + 4 + 6 + 4 + 6 + 4 + 8) + (8 + 4 + 6 + 4 + 8));
    for (size_t cut = 0; cut < members.size(); ++cut) {
        const Decoded torn = decode(std::string_view(members).substr(0, cut));
        REQUIRE(torn.size() <= all.size());
        CHECK(Decoded(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(torn.size())) == torn);
    }
    CHECK(decode(std::string_view(members).substr(0, members.size() - 1)).size() == 5);
}

TEST_CASE("delivered state: a state file from before values were kept opens, its members read as delivered without "
          "values, and new deliveries keep theirs (SQLite)") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        // The delivered tables as schema version 9 made them, with a member in each.
        sqlite::Database old(path);
        old.exec("CREATE TABLE delivered(export TEXT NOT NULL, email_key TEXT NOT NULL, key_value TEXT NOT NULL, "
                 "hash INTEGER NOT NULL, run_id INTEGER NOT NULL, PRIMARY KEY(export, email_key)) WITHOUT ROWID;"
                 "CREATE TABLE delivered_log(export TEXT NOT NULL, email_key TEXT NOT NULL, key_value TEXT NOT NULL, "
                 "hash INTEGER NOT NULL, run_id INTEGER NOT NULL, removed INTEGER NOT NULL DEFAULT 0);"
                 "INSERT INTO delivered VALUES('e', 'a@x.io', 'a@x.io', 1, 1);"
                 "INSERT INTO delivered_log VALUES('e', 'b@x.io', 'b@x.io', 2, 1, 0);"
                 "PRAGMA user_version=9;");
    }
    SqliteStateStore store(path);
    DeliveredState& state = store.delivered();
    CHECK(sent_values(state, "e") == std::map<std::string, std::string>{{"a@x.io", ""}, {"b@x.io", ""}});
    DeliveryBatch batch;
    batch.deliver("a@x.io", "a@x.io", 3, false, false, "a-2");
    state.record("e", 2, batch);
    CHECK(sent_values(state, "e") == std::map<std::string, std::string>{{"a@x.io", "a-2"}, {"b@x.io", ""}});
}

TEST_CASE("delivered state: forgetting a member erases the values last sent to it, from delivered rows and from "
          "receipts awaiting confirmation (SQLite)") {
    test::TempDir dir;
    const std::string path = dir.file("state.db");
    {
        SqliteStateStore store(path);
        DeliveredState& state = store.delivered();
        DeliveryBatch batch;
        batch.deliver("a@x.io", "a@x.io", 1, false, false, "Ada-Lovelace-values");
        batch.deliver("b@x.io", "b@x.io", 2, false, false, "Bob-kept-values");
        std::string members;
        encode_receipt_member(members, 3, "a@x.io", "", "Ada-pending-values");
        encode_receipt_member(members, 4, "c@x.io", "", "Cy-pending-values");
        batch.add_receipt("import-1", 1, 2, members);
        state.record("e", 1, batch);
        sent_values(state, "e");  // folds the log into delivered, as a run's diff does
        store.forget_members({"a@x.io"});
        CHECK(sent_values(state, "e") == std::map<std::string, std::string>{{"b@x.io", "Bob-kept-values"}});
        Receipts receipts = open_receipts(state, "e", 0, 10);
        REQUIRE(receipts.size() == 1);
        std::string kept;
        encode_receipt_member(kept, 4, "c@x.io", "", "Cy-pending-values");
        CHECK(receipts[0].second == kept);  // the others' values stay
    }
    std::string bytes;
    for (const char* suffix : {"", "-wal"}) {
        if (std::filesystem::exists(path + suffix)) bytes += test::read_file(path + suffix);
    }
    CHECK(bytes.find("Ada-Lovelace-values") == std::string::npos);
    CHECK(bytes.find("Ada-pending-values") == std::string::npos);
    CHECK(bytes.find("Bob-kept-values") != std::string::npos);
}

// A PostgreSQL delivered state on a database of `server`'s own, with the connection it uses.
struct PostgresState {
    explicit PostgresState(PostgresServer& server, std::chrono::seconds patience = std::chrono::seconds(60))
        : db(server.uri(server.create_database())), state(migrated(db), options(patience)) {}
    static postgres::Connection& migrated(postgres::Connection& db) {
        migrate_postgres_schema(db);
        return db;
    }
    static StateOptions options(std::chrono::seconds patience) {
        StateOptions options;
        options.patience = patience;
        return options;
    }
    postgres::Connection db;
    PostgresDeliveredState state;
};

TEST_CASE("delivered state: a run closed by another replica records nothing more, and says its lease is lost "
          "(PostgreSQL)",
          "[delivered-state][postgres]") {
    PostgresState pg(PostgresServer::shared());
    pg.db.exec("INSERT INTO runs(id, export, status, started_at) VALUES(7, 'e', 'running', '2026-01-01T00:00:00Z'), "
               "(8, 'e', 'failed_will_retry', '2026-01-01T00:00:00Z')");
    DeliveredState& state = pg.state;
    deliver(state, "e", 7, {{"a@x.io", 1}});  // its own run, still running: recorded
    const int64_t receipt = add_receipt(state, "e", 7, "import-1", encoded({{"b@x.io", "", 2}}));

    DeliveryBatch batch;
    batch.deliver("a@x.io", "a@x.io", 10, false, false);
    batch.deliver("c@x.io", "c@x.io", 3, true, true);
    batch.refuse("d@x.io", 4, 1);
    batch.receipts_confirmed = {receipt};
    batch.add_receipt("import-2", 1, 1, encoded({{"e@x.io", "", 5}}));
    // Run 8 was closed (its lease ran out and another replica took the export over).
    try {
        state.record("e", 8, batch);
        FAIL("a closed run recorded a batch");
    } catch (const LeaseLost& error) {
        CHECK_THAT(error.what(), Catch::Contains("run 8 of export 'e' is no longer this process's"));
        CHECK_THAT(error.what(), Catch::Contains("nothing of this batch was recorded"));
    }
    CHECK(delivered(state, "e") == std::vector<Seen>{{"a@x.io", "a@x.io", 1, 7}});
    CHECK(removals(state, "e").empty());
    CHECK(refused(state, "e").empty());
    CHECK(receipt_names(open_receipts(state, "e", 0, 100)) == std::vector<std::string>{"import-1"});

    // The same once run 7 is closed too: nothing more from it either.
    pg.db.exec("UPDATE runs SET status='succeeded' WHERE id=7");
    CHECK_THROWS_AS(state.record("e", 7, batch), LeaseLost);
    CHECK(delivered(state, "e") == std::vector<Seen>{{"a@x.io", "a@x.io", 1, 7}});
}

TEST_CASE("delivered state: a batch recorded twice, as after a lost COMMIT acknowledgement, leaves one row each and "
          "gives its receipts the same ids (PostgreSQL)",
          "[delivered-state][postgres]") {
    PostgresState pg(PostgresServer::shared());
    DeliveredState& state = pg.state;
    const int64_t earlier = add_receipt(state, "e", 1, "import-0", encoded({{"z@x.io", "", 26}}));
    DeliveryBatch batch;
    batch.deliver("a@x.io", "a@x.io", 1, false, false, "a-values");
    batch.deliver("gone@x.io", "gone@x.io", 2, true, true);
    batch.refuse("r@x.io", 3, 2);
    batch.receipts_confirmed = {earlier};
    batch.add_receipt("import-1", 1, 5, encoded({{"b@x.io", "", 4}}));
    batch.add_receipt("import-2", 6, 9, encoded({{"c@x.io", "", 5}}));
    const std::vector<int64_t> first = state.record("e", 2, batch);
    const std::vector<int64_t> second = state.record("e", 2, batch);
    CHECK(first == second);
    CHECK(pg.db.exec("SELECT count(*) FROM unconfirmed").integer(0, 0) == 2);
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-1", "import-2"});
    CHECK(delivered(state, "e") == std::vector<Seen>{{"a@x.io", "a@x.io", 1, 2}, {"z@x.io", "z@x.io", 26, 1}});
    CHECK(removals(state, "e").size() == 1);
    CHECK(refused(state, "e") == std::map<std::string, SeenRefusal>{{"r@x.io", {3, 2, 2}}});
}

TEST_CASE("delivered state: a key given twice in one batch keeps its last word, and a visit longer than one fetch "
          "sees every member once in order (PostgreSQL)",
          "[delivered-state][postgres]") {
    PostgresState pg(PostgresServer::shared());
    DeliveredState& state = pg.state;
    const int64_t receipt = add_receipt(state, "e", 1, "import-1", encoded({{"a@x.io", "", 1}, {"b@x.io", "", 2}}));
    DeliveryBatch twice;
    twice.receipts_confirmed = {receipt};
    twice.deliver("b@x.io", "b@x.io", 20, false, false);  // after the receipt: wins over it
    twice.deliver("c@x.io", "c@x.io", 3, false, false);
    twice.deliver("c@x.io", "c@x.io", 30, false, false);
    twice.deliver("d@x.io", "d@x.io", 4, false, false);
    twice.deliver("d@x.io", "d@x.io", 4, true, false);
    twice.refuse("r@x.io", 5, 1);
    twice.refuse("r@x.io", 50, 2);
    state.record("e", 2, twice);
    CHECK(delivered(state, "e") ==
          std::vector<Seen>{{"a@x.io", "a@x.io", 1, 1}, {"b@x.io", "b@x.io", 20, 2}, {"c@x.io", "c@x.io", 30, 2}});
    CHECK(refused(state, "e") == std::map<std::string, SeenRefusal>{{"r@x.io", {50, 2, 2}}});

    // More members than one fetch takes, recorded in an order that is not theirs.
    DeliveryBatch many;
    constexpr int kMembers = 25000;
    for (int i = kMembers - 1; i >= 0; --i) {
        const std::string key = "m" + std::to_string(i) + "@x.io";
        many.deliver(key, key, static_cast<uint64_t>(i), false, false);
    }
    state.record("many", 3, many);
    int seen = 0;
    std::string last;
    bool ordered = true;
    state.visit_delivered("many", [&](const DeliveredMember& member) {
        if (seen > 0 && !(last < member.key)) ordered = false;
        last = std::string(member.key);
        ++seen;
    });
    CHECK(seen == kMembers);
    CHECK(ordered);
}

TEST_CASE("delivered state: a batch recorded while the server restarts is recorded once it is back, exactly once "
          "(PostgreSQL)",
          "[delivered-state][postgres]") {
    PostgresServer server;  // its own: this test stops it
    PostgresState pg(server, std::chrono::seconds(30));
    DeliveredState& state = pg.state;
    const int64_t earlier = add_receipt(state, "e", 1, "import-0", encoded({{"z@x.io", "", 26}}));
    DeliveryBatch batch;
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "m" + std::to_string(i) + "@x.io";
        batch.deliver(key, key, static_cast<uint64_t>(i), false, false);
    }
    batch.deliver("gone@x.io", "gone@x.io", 2, true, true);
    batch.refuse("r@x.io", 3, 1);
    batch.receipts_confirmed = {earlier};
    batch.add_receipt("import-1", 1, 1000, encoded({{"b@x.io", "", 4}}));

    server.stop();
    std::thread restart([&] {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        server.start();
    });
    test::TempDir dir;
    std::vector<int64_t> ids;
    const std::string log = test::captured_stderr(dir, [&] { ids = state.record("e", 2, batch); });
    restart.join();
    CHECK_THAT(log, Catch::Contains("state database unreachable ("));
    CHECK_THAT(log, Catch::Contains("); retrying"));
    CHECK(log.find(PostgresServer::password()) == std::string::npos);

    REQUIRE(ids.size() == 1);
    const std::vector<Seen> members = delivered(state, "e");
    CHECK(members.size() == 1001);  // the batch's and the confirmed receipt's
    CHECK(pg.db.exec("SELECT count(*) FROM unconfirmed").integer(0, 0) == 1);
    CHECK(receipt_names(open_receipts(state, "e", 0, 10)) == std::vector<std::string>{"import-1"});
    CHECK(removals(state, "e").size() == 1);
    CHECK(refused(state, "e").size() == 1);
}

TEST_CASE("delivered state: a visit waits for a restarted server until it has given a row, and after that fails "
          "rather than give rows twice (PostgreSQL)",
          "[delivered-state][postgres]") {
    PostgresServer server;  // its own: this test stops it
    PostgresState pg(server, std::chrono::seconds(30));
    DeliveredState& state = pg.state;
    DeliveryBatch many;
    constexpr int kMembers = 15000;  // more than one fetch
    for (int i = 0; i < kMembers; ++i) {
        const std::string key = "m" + std::to_string(100000 + i) + "@x.io";
        many.deliver(key, key, static_cast<uint64_t>(i), false, false);
    }
    state.record("e", 1, many);

    // The server goes while the visit is under way: the rows given stay given, once each.
    std::map<std::string, int> given;
    CHECK_THROWS_AS(state.visit_delivered("e",
                                          [&](const DeliveredMember& member) {
                                              if (given.empty()) server.stop();
                                              ++given[std::string(member.key)];
                                          }),
                    postgres::Error);
    CHECK_FALSE(given.empty());
    CHECK(given.size() < static_cast<size_t>(kMembers));
    CHECK(std::count_if(given.begin(), given.end(), [](const auto& key_times) { return key_times.second != 1; }) == 0);

    // Down before the visit starts: it waits, then gives every member once.
    std::thread restart([&] {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        server.start();
    });
    test::TempDir dir;
    std::vector<Seen> members;
    const std::string log = test::captured_stderr(dir, [&] { members = delivered(state, "e"); });
    restart.join();
    CHECK_THAT(log, Catch::Contains("state database unreachable ("));
    CHECK(members.size() == static_cast<size_t>(kMembers));
}

// Not a check: a figure to compare the backends by (run it with "[.bench]").
template <typename Backend>
void time_backend(const char* name) {
    Backend backend;
    DeliveredState& state = backend.state();
    const auto start = std::chrono::steady_clock::now();
    for (int b = 0; b < 200; ++b) {
        DeliveryBatch batch;
        for (int i = 0; i < 1000; ++i) {
            const std::string key = "member-" + std::to_string(b * 1000 + i) + "@example.com";
            batch.deliver(key, key, static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15u, false, false, "values-of-" + key);
        }
        state.record("bench", 1, batch);
    }
    const auto recorded = std::chrono::steady_clock::now();
    int64_t seen = 0;
    state.visit_delivered("bench", [&](const DeliveredMember&) { ++seen; });
    const auto visited = std::chrono::steady_clock::now();
    using ms = std::chrono::milliseconds;
    std::cout << name << ": 200 batches of 1000 members recorded in "
              << std::chrono::duration_cast<ms>(recorded - start).count() << " ms, " << seen << " visited in "
              << std::chrono::duration_cast<ms>(visited - recorded).count() << " ms\n";
    CHECK(seen == 200000);
}

TEST_CASE("delivered state: recording and visiting 200,000 members, SQLite and PostgreSQL", "[.bench]") {
    time_backend<SqliteBackend>("SQLite");
    time_backend<PostgresBackend>("PostgreSQL");
}
