#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace segpush {

// A staged member's state in a run. todo: to send (never sent, or given back); pending: the
// destination took it and will say later; done, rejected, suppressed: final; unchanged: the
// destination already has these values, not sent; held: the destination refused these values
// often enough already, not sent (RunMembers' refusal policy).
enum class MemberState : int { todo = 0, pending = 1, done = 2, rejected = 3, unchanged = 4, suppressed = 5, held = 6 };

// A text many outcomes carry, such as the receipt of a batch's 250 members: copies share it
// (a copy each would be an allocation and a free per member).
class SharedText {
public:
    SharedText() = default;
    SharedText(const char* text) : SharedText(std::string(text)) {}
    SharedText(std::string text) {
        if (!text.empty()) text_ = std::make_shared<const std::string>(std::move(text));
    }
    const std::string& str() const {
        static const std::string none;
        return text_ ? *text_ : none;
    }
    bool empty() const { return !text_; }

private:
    std::shared_ptr<const std::string> text_;
};

enum class MemberAction : int { upsert = 0, remove = 1 };

// A member as the run hands it to the plugin.
struct StagedMember {
    int64_t seq = 0;  // the record id the plugin sees
    MemberAction action = MemberAction::upsert;
    std::string_view payload;  // encoded field values (see engine/record.hpp), in `storage`
    // The bytes `payload` points into, shared by the members read together (a string each
    // would be an allocation and a free per member).
    std::shared_ptr<const std::string> storage;
    // When segpush itself removed this member from the destination in an earlier run (seconds
    // since the epoch, UTC), for a member re-joining since; 0 otherwise.
    int64_t removed_at = 0;
};

// What the destination said of one member: todo stands for RETRY (not delivered, send again).
struct MemberOutcome {
    int64_t seq = 0;
    MemberState state = MemberState::done;
    std::string reason;
    SharedText receipt;  // with pending: where the destination holds it (see RunMembers::resumable)
};

// Which call reported a list of outcomes: the rules differ for a push's own results and for
// what collect_outcomes reports meanwhile.
enum class ReportedBy { push, collect, other };

// What a set of outcomes did, by kind.
struct OutcomeTally {
    int64_t accepted = 0;  // upserts the destination now has
    int64_t removed = 0;   // leavers removed
    int64_t rejected = 0;
    int64_t suppressed = 0;
};

// Each staged member's state in one run, and the receipts its pending members wait on: the
// member state machine, in memory, without I/O. RunMembers asks it what a list of
// outcomes changes (plan), records that in the delivered state in one transaction, and only then
// applies it here (commit): memory never runs ahead of the durable state, whatever fails in between.
//
// The rules, in one place:
// - A member's reports in one list net to one outcome: the first final report (accepted,
//   rejected, suppressed) wins; a later report replaces an earlier pending or retry; a pending
//   report without a receipt keeps the receipt an earlier one brought.
// - A final state is never left: a late pending (a push's own result overtaken by a collect)
//   changes nothing.
// - Pending members with a receipt wait on the receipt's row. A row goes once no member waits
//   on it. When one list of outcomes accepts every member it still waits on, and none left it
//   otherwise before, it is kept, confirmed, as their delivery (one row instead of a delivered
//   row each); otherwise its accepted members are delivered one by one and it is deleted. A
//   member given back (retry), or pending again under a new receipt, leaves its old row.
// - A member collect_outcomes gave back (retry: the destination lost it) is not taken as
//   pending by a push's own result that arrives later: a push that took several requests can
//   report PENDING after a collect has given some of its records back, and that PENDING would
//   have finish count them as delivered.
// - Leavers (members staged to be removed) never wait on receipts; their acceptance counts
//   as removed.
class MemberStates {
public:
    // Forgets every member and receipt: a new run.
    void clear();

    // Staging and the diff: the member's state, marking a leaver.
    void set(int64_t seq, MemberState state, bool leaver = false);
    bool exists(int64_t seq) const;
    // The member's state is `state` (a leaver's included).
    bool has(int64_t seq, MemberState state) const;
    bool is_leaver(int64_t seq) const;
    // One past the highest seq held.
    int64_t end() const { return static_cast<int64_t>(states_.size()); }
    int64_t count() const;
    int64_t count(MemberState state) const;

    // The unconfirmed row the member's receipt is in, or 0.
    int64_t receipt_row_of(int64_t seq) const;

    // What a list of outcomes changes, computed without changing anything.
    struct Changes {
        OutcomeTally tally;
        // Members the destination now has, to record as delivered (ascending): accepted
        // without a receipt row that delivers them, and leavers removed.
        std::vector<int64_t> delivered;
        std::vector<int64_t> suppressed;  // recorded as delivered too, never as removed by segpush
        std::vector<int64_t> settled;     // not leavers, now done or suppressed (ascending)
        std::vector<int64_t> rejected;    // not leavers, now rejected (ascending)
        struct Refusal {
            int64_t seq;
            const std::string* reason;  // in the outcomes planned
        };
        std::vector<Refusal> refusals;  // rejected or suppressed, with the destination's reason
        struct NewReceipt {
            std::string_view receipt;   // in the outcomes planned
            std::vector<int64_t> seqs;  // ascending
        };
        std::vector<NewReceipt> new_receipts;  // to record; commit needs each one's row
        std::vector<int64_t> rows_confirmed;   // left by all, all accepted with it: keep, confirmed
        std::vector<int64_t> rows_forgotten;   // left by all otherwise: delete

        // Internal to commit: the states to set and the rows' new waiting counts.
        std::vector<std::pair<int64_t, uint8_t>> new_states;
        std::vector<int64_t> leaving_receipts;
        std::vector<int64_t> given_back;  // by collect_outcomes
        struct RowWait {
            int64_t members = 0;
            bool all_accepted = true;
        };
        std::unordered_map<int64_t, RowWait> rows;  // the rows members left, as they are after
    };
    // `outcomes` must outlive `changes`: refusals and new receipts point into it. A push's
    // results go through drop_stale first.
    Changes plan(const std::vector<MemberOutcome>& outcomes, ReportedBy reported_by = ReportedBy::other) const;
    // Removes from a push's results the PENDINGs of members a collect gave back (see above).
    void drop_stale(std::vector<MemberOutcome>& pushed) const;
    // Applies `changes` once the state file holds them; `new_rows[i]` is the row recorded for
    // changes.new_receipts[i].
    void commit(const Changes& changes, const std::vector<int64_t>& new_rows);

    // The pending members, ascending.
    std::vector<int64_t> pending() const;
    // finish_export said so: every pending member is done, and no receipt waits any more.
    // Returns what that did.
    OutcomeTally settle_pending();

private:
    using RowWait = Changes::RowWait;
    static constexpr uint8_t kLeaver = 0x80, kAbsent = 0x7f, kStateBits = 0x7f;
    // A byte a member, by seq: a MemberState, plus kLeaver; kAbsent where no member has the seq.
    std::vector<uint8_t> states_;
    // By seq, an index into receipt_rows_ (0: none). A hash map would take a node, an
    // allocation and a free per pending member; this takes 4 bytes a member.
    std::vector<uint32_t> receipt_of_;
    std::vector<int64_t> receipt_rows_{0};  // unconfirmed.id, appended as recorded
    // By unconfirmed.id: how many members the row still waits on, and whether every member
    // that left it was accepted with it.
    std::unordered_map<int64_t, RowWait> waiting_in_row_;
    std::unordered_set<int64_t> given_back_;  // by collect_outcomes, this run
    const uint8_t* slot(int64_t seq) const;
};

}  // namespace segpush
