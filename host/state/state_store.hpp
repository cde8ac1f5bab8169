#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "state/member_states.hpp"
#include "state/run_history.hpp"
#include "state/sqlite.hpp"
#include "state/sqlite_run_history.hpp"
#include "state/staged_file.hpp"
#include "state/staged_keys.hpp"
#include "state/state_file.hpp"

namespace segpush {

enum class MemberAction : int { upsert = 0, remove = 1 };

struct StagedMember {
    int64_t seq = 0;  // the record id the plugin sees
    MemberAction action = MemberAction::upsert;
    std::string_view payload;  // encoded field values (see engine/record.hpp), in `storage`
    // The bytes `payload` points into, shared by the members read together (next_todo reads a
    // batch's payloads into one string: a string each would be an allocation and a free per member).
    std::shared_ptr<const std::string> storage;
    // When segpush itself removed this member from the destination in an earlier run (seconds
    // since the epoch, UTC), for a member re-joining since; 0 otherwise (the removals table).
    int64_t removed_at = 0;
};

// A member an earlier run left pending at the destination, with the same values now.
struct ResumableMember {
    StagedMember member;
    std::string receipt;
};

// A row of the run's report: a row refused before sending ("invalid"), or a member the
// destination refused ("rejected") or kept out ("suppressed").
struct ReportedMember {
    std::string source;
    int64_t line = 0;
    std::string email;
    std::string outcome;
    std::string reason;
};

// The embedded SQLite state of members: the per-export delivered state (what each member's
// values hashed to when last accepted), with the run's staged members (in a StagedFile and
// the connection's TEMP tables: a store stages one run at a time, and each run opens its
// own). Delivered state is written in the same transaction as each batch's outcomes, so it is
// also the checkpoint: after a crash, the next run sends only what was not yet confirmed. The
// run history lives in the same file, on the same connection: history() is it.
class StateStore {
public:
    explicit StateStore(const std::string& path);
    ~StateStore();

    RunHistory& history() { return history_; }

    // Empties what the store held of an earlier run (its staged members, their states, keys
    // and receipts): call it once a run is claimed, before staging.
    void start_run();

    // What forget_members removed.
    struct Forgotten {
        int64_t delivered = 0;        // delivered records (one per export that sent the person)
        int64_t removals = 0;         // records of members segpush removed from a destination
        int64_t awaiting_import = 0;  // members of imports still awaiting confirmation
        int64_t run_errors = 0;       // run errors that named them
    };
    // Removes the members with these keys (trimmed, case-folded emails) from everything the
    // state file keeps, for an erasure request. Deleted content is overwritten and the WAL
    // emptied, so no copy is left in the file. Throws AlreadyRunning while a live process runs
    // an export of this state: it would record them again.
    Forgotten forget_members(const std::set<std::string>& keys);

    // Staging, in chunks of one transaction each (call begin_staging / end_staging around).
    void begin_staging();
    // False when the member's key was already staged in this run (a duplicate).
    bool stage_member(int64_t seq, std::string_view email_key, std::string_view key_value, uint64_t hash,
                      std::string_view payload, int64_t source_index, int64_t line);
    void stage_reject(int64_t source_index, int64_t line, std::string_view email, std::string_view reason);
    void end_staging();
    // No more members come this run (leavers are staged by the diff): frees what staging
    // needed to find duplicates.
    void all_members_staged();

    // True when the state file holds nothing about the export: no member delivered, none
    // awaiting confirmation. Every member of its next run is new, so that run needs no diff.
    bool nothing_recorded(const std::string& export_name);
    // Marks unchanged members, optionally stages leavers for removal; fills the diff counts.
    void diff(const std::string& export_name, int64_t baseline, bool stage_leavers, int64_t first_leaver_seq,
              RunCounts& counts);

    // Up to `limit` members still to send, in seq order, after `after_seq`.
    std::vector<StagedMember> next_todo(int64_t after_seq, int limit);
    // Members of this run that an earlier, stopped run left pending with a receipt and whose
    // values have not changed since: the plugin can confirm them instead of receiving them
    // again. Once their outcomes are applied, forget_earlier_receipts drops every receipt of
    // earlier runs (those of members that changed or left included).
    std::vector<ResumableMember> resumable_members(const std::string& export_name, int64_t run_id, int64_t baseline);
    void forget_earlier_receipts(const std::string& export_name, int64_t run_id);
    // Whether a leaver whose removal the plugin reports ACCEPTED was removed by segpush (and
    // goes to the removals table). Only a plugin of ABI 1.4 or later tells a member already off
    // the list (SUPPRESSED) from one it removed; an older one's removals are not remembered,
    // so that no one is ever taken for a member segpush removed. True until said otherwise.
    void set_removals_are_own(bool own) { removals_are_own_ = own; }
    // Records outcomes and updates delivered state in one transaction. A pending outcome with
    // a receipt is kept, durably, until the member's final outcome arrives.
    OutcomeTally apply_outcomes(int64_t run_id, const std::string& export_name,
                                const std::vector<MemberOutcome>& outcomes);
    // The same for what collect_outcomes reported: the members it gave back are remembered.
    OutcomeTally apply_collected(int64_t run_id, const std::string& export_name,
                                 const std::vector<MemberOutcome>& outcomes);
    // The same for a push's own results, first removing from `outcomes` the stale PENDINGs of
    // members a collect gave back (MemberStates): what remains is what was taken.
    OutcomeTally apply_pushed(int64_t run_id, const std::string& export_name, std::vector<MemberOutcome>& outcomes);
    // Every pending member of the run becomes done (finish_export said so).
    OutcomeTally settle_pending(int64_t run_id, const std::string& export_name);
    // Members of the run still to send: never sent, or sent and given back (RETRY).
    int64_t count_todo();

    // Rows refused before sending, then members refused or suppressed by the destination.
    std::vector<ReportedMember> reported_members(const std::vector<std::string>& sources);

private:
    OutcomeTally apply(int64_t run_id, const std::string& export_name, const std::vector<MemberOutcome>& outcomes,
                       ReportedBy reported_by);
    void merge_delivered_log(const std::string& export_name);
    // Finds the staged members segpush itself removed from the destination in an earlier run
    // (the removals table), into rejoining_. Inside the diff's transaction.
    void find_rejoining(const std::string& export_name);
    std::unordered_map<int64_t, int64_t> rejoining_;  // seq -> removed_at, for this run's members
    bool removals_are_own_ = true;
    // The staged members' keys, in a TEMP table with an index, built once staging is over
    // and only by what finds members by key (a diff, resuming receipts): staging itself
    // de-duplicates through staged_keys_.
    void index_staged_keys();
    // One key into the TEMP table: a member staged after the index was built, or one whose seq
    // does not follow on while it is built.
    void insert_staged_key(int64_t seq, std::string_view email_key, int64_t hash);
    std::optional<sqlite::Statement> staged_key_insert_;

    StateFile file_;
    sqlite::Database& db_;  // file_'s connection, shared with history_
    SqliteRunHistory history_;
    std::optional<sqlite::Transaction> staging_;
    StagedFile staged_;
    bool keys_indexed_ = false;
    std::optional<sqlite::Statement> reject_insert_;
    StagedKeys staged_keys_;
    int staged_in_transaction_ = 0;
    // Each staged member's state in this run and the receipts they wait on. Kept in memory, so
    // that an outcome never rewrites a staged row (payload included): the staged file is only
    // appended to. A refused member's reason goes to the refusals table, for the report. The
    // diff marks unchanged members here too, and next_todo finds what to send here before it
    // reads any row.
    MemberStates members_;
    // What next_todo read of the members it handed out lately, encoded as a receipt row holds
    // them (their keys and hashes): recording the receipt of a batch they become reads them
    // here rather than from the staged file a second time.
    struct RecentRead {
        std::vector<int64_t> seqs;  // ascending
        std::vector<size_t> ends;   // where each member's encoding ends in `encoded`
        std::string encoded;
    };
    static constexpr size_t kRecentReads = 32;
    std::vector<RecentRead> recent_reads_;  // the oldest replaced first
    size_t next_recent_read_ = 0;
    // The receipt encoding of `seqs` (ascending) from recent reads; false if one is not there.
    bool encode_from_recent_reads(const std::vector<int64_t>& seqs, std::string& out) const;
    struct OutcomeStatements;
    std::unique_ptr<OutcomeStatements> outcome_statements_;  // prepared on first use, kept for the run
};

}  // namespace segpush
