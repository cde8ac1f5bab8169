#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/member_states.hpp"
#include "engine/staged_file.hpp"
#include "engine/staged_keys.hpp"
#include "state/delivered_state.hpp"
#include "state/run_history.hpp"
#include "state/sqlite.hpp"

namespace segpush {

// A member an earlier, stopped run left pending at the destination, with the same values now.
struct ResumableMember {
    StagedMember member;
    std::string receipt;
};

// A row of the run's report: a row refused before sending ("invalid"), a member the
// destination refused ("rejected") or kept out ("suppressed"), or one it refused before with
// the same values, not sent ("held").
struct ReportedMember {
    std::string source;
    int64_t line = 0;
    std::string key;  // the key as the segment wrote it
    std::string outcome;
    std::string reason;
};

// What a run does with members the destination refused before, when they have the values it
// refused: they are sent again while those values were refused at most `retry_runs` runs in a
// row (the refusal may have been passing: a plan limit, a busy account), then held, not sent,
// until their values change, as the destination would only refuse them again.
struct RefusalPolicy {
    int64_t retry_runs = 3;  // the export's retry_rejected_runs; 0: held from the first refusal
    bool retry_all = false;  // --retry-rejected: sent again however often refused
};

// The members of one run of one export, from staging to their outcomes: the one owner of
// them. It stages each member once (the first row of a key wins), compares them with the
// delivered state, hands out what to send, applies the destination's outcomes (the rules are
// MemberStates') and records each batch of them in the delivered state, which is the
// checkpoint.
//
// Where the members are kept: their rows in a StagedFile (the run's spill file, so that a
// large export's memory stays bounded), their states in MemberStates, and in a scratch SQLite
// database of the run's own (a private file SQLite deletes when the run ends, or the OS after
// a crash) the rows refused before sending, the destination's reasons for refusals, and, only
// when something must find members by key (a diff, resuming receipts), an index of their keys.
// None of it needs to outlive the run: every run stages afresh, and the delivered state is
// the checkpoint.
//
// Not thread-safe: the run's orchestrating thread calls it.
class RunMembers {
public:
    // `delivered` must outlive this object. A plugin older than ABI 1.4 cannot tell a member it
    // removed from one already off the list: with `removals_are_own` false, no removal is
    // remembered as segpush's, so no one is ever taken for a member segpush removed.
    // `values_context`: the record plan's context hash, recorded with the values each member is
    // delivered with (encode_sent_values).
    RunMembers(DeliveredState& delivered, std::string export_name, int64_t run_id, bool removals_are_own,
               uint64_t values_context = 0);
    RunMembers(const RunMembers&) = delete;
    RunMembers& operator=(const RunMembers&) = delete;
    ~RunMembers();

    // Staging, in chunks of one transaction each (call begin_staging / end_staging around).
    void begin_staging();
    // False when the member's key was already staged in this run (a duplicate). Seqs rise.
    bool stage_member(int64_t seq, std::string_view key, std::string_view key_value, uint64_t hash,
                      std::string_view payload, int64_t source_index, int64_t line);
    void stage_reject(int64_t source_index, int64_t line, std::string_view key, std::string_view reason);
    void end_staging();
    // No more members come this run (leavers are staged by the diff): frees what staging
    // needed to find duplicates.
    void all_members_staged();

    // Before diff: what becomes of members refused before.
    void set_refusal_policy(const RefusalPolicy& policy) { refusal_policy_ = policy; }
    // Marks the members the destination already has with these values (delivered by a run
    // since `baseline`) unchanged and, with `stage_leavers`, stages the delivered members no
    // longer here for removal, from seq first_leaver_seq + 1 on, in key order. Members refused
    // with the values they have now are retried or held by the refusal policy (refusals older
    // than `baseline` do not hold anyone: a --full run sends everyone). Fills the diff's counts.
    void diff(int64_t baseline, bool stage_leavers, int64_t first_leaver_seq, RunCounts& counts);
    // Forgets the refusals the diff found obsolete: of members no longer in the segment, or
    // whom the destination holds with these values. Not for a dry run, which records nothing.
    void forget_obsolete_refusals();
    // The same, also handing `changed` each member the diff finds changed, with its seq and the
    // values it was last sent with (DeliveredMember::sent_values, valid for the call).
    using ChangedVisit = std::function<void(int64_t seq, std::string_view sent_values)>;
    void diff(int64_t baseline, bool stage_leavers, int64_t first_leaver_seq, RunCounts& counts,
              const ChangedVisit& changed);
    // Calls `visit` with the staged rows of `seqs` (ascending), leavers included.
    void visit_staged(const std::vector<int64_t>& seqs, const std::function<void(const StagedRow&)>& visit) {
        staged_.visit(seqs, visit);
    }
    // Whether the member is still to send (not unchanged), and whether it is a leaver.
    bool is_todo(int64_t seq) const { return states_.has(seq, MemberState::todo); }
    bool is_leaver(int64_t seq) const { return states_.is_leaver(seq); }
    // One past the highest seq staged.
    int64_t end_seq() const { return states_.end(); }

    // Up to `limit` members still to send, in seq order, after `after_seq`.
    std::vector<StagedMember> next_todo(int64_t after_seq, int limit);
    // Members that an earlier, stopped run (since `baseline`) left pending with a receipt and
    // whose values have not changed since: the plugin can confirm them instead of receiving
    // them again. Once their outcomes are applied, forget_earlier_receipts drops every receipt
    // of earlier runs (those of members that changed or left included).
    std::vector<ResumableMember> resumable(int64_t baseline);
    void forget_earlier_receipts();

    // Applies outcomes and records them in one transaction. A pending outcome with a receipt
    // is kept, durably, until the member's final outcome arrives.
    OutcomeTally apply_outcomes(const std::vector<MemberOutcome>& outcomes);
    // The same for what collect_outcomes reported: the members it gave back are remembered.
    OutcomeTally apply_collected(const std::vector<MemberOutcome>& outcomes);
    // The same for a push's own results, first removing from `outcomes` the stale PENDINGs of
    // members a collect gave back (MemberStates): what remains is what was taken.
    OutcomeTally apply_pushed(std::vector<MemberOutcome>& outcomes);
    // Every pending member becomes done (finish_export said so).
    OutcomeTally settle_pending();
    // Members still to send: never sent, or sent and given back (RETRY).
    int64_t count_todo() const { return states_.count(MemberState::todo); }

    // Rows refused before sending, then members refused or suppressed by the destination, or
    // held (refused before with the same values, not sent).
    std::vector<ReportedMember> reported_members(const std::vector<std::string>& sources);

private:
    OutcomeTally apply(const std::vector<MemberOutcome>& outcomes, ReportedBy reported_by);
    // Adds the members `seqs` (ascending) to `batch` as delivered; with `removals_are_own`, a
    // leaver's removal is remembered as segpush's. Members that were segpush's removals and are
    // now `settled` (ascending) have that removal forgotten.
    void deliver(const std::vector<int64_t>& seqs, bool removals_are_own, DeliveryBatch& batch);
    void forget_removals(const std::vector<int64_t>& settled, DeliveryBatch& batch);
    // The values the delivered state keeps for `row` (encode_sent_values), in sent_values_: valid
    // until the next call; empty for a leaver.
    std::string_view sent_values_of(const StagedRow& row);
    // The receipt encoding (receipt_members.hpp) of `seqs` (ascending).
    void encode_receipt(const std::vector<int64_t>& seqs, std::string& out);
    bool encode_from_recent_reads(const std::vector<int64_t>& seqs, std::string& out) const;
    // The staged members' keys, in the scratch database with an index, built once staging is
    // over and only by what finds members by key (a diff, resuming receipts): staging itself
    // de-duplicates through staged_keys_.
    void index_staged_keys();
    void insert_staged_key(int64_t seq, std::string_view key, int64_t hash);
    // The seq staged under `key` (with `hash`, when given), or 0. Needs the index.
    int64_t staged_seq(std::string_view key, std::optional<uint64_t> hash = std::nullopt);
    // Finds the members segpush itself removed from the destination in an earlier run, into rejoining_.
    void find_rejoining();
    // Finds the staged members the destination refused before, into refused_before_, and
    // holds those the refusal policy says not to send.
    void find_refused(int64_t baseline, RunCounts& counts);
    // Adds to `batch` the refusals of the members `rejected` (ascending) and forgets those of
    // the members `settled` (ascending) that had one.
    void record_refusals(const std::vector<int64_t>& rejected, const std::vector<int64_t>& settled,
                         DeliveryBatch& batch);

    DeliveredState& delivered_;
    const std::string export_name_;
    const int64_t run_id_;
    const bool removals_are_own_;
    const uint64_t values_context_;
    std::string sent_values_;  // deliver's and encode_receipt's buffer

    sqlite::Database scratch_;
    std::optional<sqlite::Transaction> staging_;
    std::optional<sqlite::Statement> reject_insert_;
    std::optional<sqlite::Statement> staged_key_insert_;
    std::optional<sqlite::Statement> find_staged_, find_staged_with_hash_;
    std::optional<sqlite::Statement> refuse_;
    int staged_in_transaction_ = 0;
    bool keys_indexed_ = false;

    StagedFile staged_;
    StagedKeys staged_keys_;
    // Each staged member's state in this run and the receipts they wait on. Kept in memory, so
    // that an outcome never rewrites a staged row: the staged file is only appended to. The
    // diff marks unchanged members here, and next_todo finds what to send here before it
    // reads any row.
    MemberStates states_;
    std::unordered_map<int64_t, int64_t> rejoining_;  // seq -> removed_at, for members segpush removed before
    RefusalPolicy refusal_policy_;
    // seq -> how many runs in a row refused the values it has now (0: other values were
    // refused), for staged members with a refusal recorded.
    std::unordered_map<int64_t, int64_t> refused_before_;
    std::vector<std::string> obsolete_refusals_;  // keys, by the diff, for forget_obsolete_refusals

    // What next_todo read of the members it handed out lately, encoded as a receipt holds them
    // (their keys and hashes): recording the receipt of a batch they become reads them here
    // rather than from the staged file a second time.
    struct RecentRead {
        std::vector<int64_t> seqs;  // ascending
        std::vector<size_t> ends;   // where each member's encoding ends in `encoded`
        std::string encoded;
    };
    static constexpr size_t kRecentReads = 32;
    std::vector<RecentRead> recent_reads_;  // the oldest replaced first
    size_t next_recent_read_ = 0;
};

}  // namespace segpush
