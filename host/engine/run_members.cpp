#include "engine/run_members.hpp"

#include <algorithm>
#include <map>

#include "engine/record.hpp"
#include "secrets/redactor.hpp"
#include "state/receipt_members.hpp"

namespace segpush {

namespace {

constexpr int kStagingChunk = 20000;

// Text that came from a plugin or a server (refusal reasons) may echo a secret: it is
// scrubbed before it reaches a file or a report.
std::string scrubbed(const std::string& text) { return Redactor::instance().scrub(text); }

// The i-th of the pieces written end to end into `text`, each ending at ends[i].
std::string_view piece(std::string_view text, const std::vector<size_t>& ends, size_t i) {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    return text.substr(begin, ends[i] - begin);
}

// The scratch database: SQLite makes a private file for the empty name and deletes it when
// the connection closes; the tables are in its TEMP database, which keeps no journal (nothing
// in it outlives the run, and a transaction is only rolled back when the run is failing
// anyway, after which its rows are read at most for the report). TEMP pages are 16 KiB and
// their cache 16 MiB: the keys of a few hundred thousand members outgrow the cache, and larger
// pages mean fewer pwrite and pread calls while a diff builds their index. The main
// database's cache, which also bounds the memory SQLite sorts in while it builds that index,
// stays at 4 MiB.
const char* const kScratchSchema = R"sql(
PRAGMA main.cache_size=-4096; PRAGMA temp.page_size=16384; PRAGMA temp.cache_size=-16384;
PRAGMA temp.journal_mode=OFF;
CREATE TEMP TABLE staged_keys(
  seq INTEGER PRIMARY KEY,
  member_key TEXT NOT NULL,
  hash INTEGER NOT NULL);
-- Why the destination refused or kept out a member, read only for the report: kept in
-- memory, a run whose every record is refused would hold a string a member.
CREATE TEMP TABLE refusals(
  seq INTEGER PRIMARY KEY,
  reason TEXT NOT NULL);
CREATE TEMP TABLE rejects(
  source INTEGER NOT NULL,
  line INTEGER NOT NULL,
  member_key TEXT,
  reason TEXT NOT NULL);
)sql";

}  // namespace

RunMembers::RunMembers(DeliveredState& delivered, std::string export_name, int64_t run_id, bool removals_are_own,
                       uint64_t values_context)
    : delivered_(delivered),
      export_name_(std::move(export_name)),
      run_id_(run_id),
      removals_are_own_(removals_are_own),
      values_context_(values_context),
      scratch_("", "the run's scratch database (in $TMPDIR, else /var/tmp or /tmp)") {
    scratch_.exec(kScratchSchema);
}

RunMembers::~RunMembers() = default;

void RunMembers::begin_staging() {
    staging_.emplace(scratch_, sqlite::Transaction::Lock::when_needed);
    if (!reject_insert_) {
        reject_insert_.emplace(
            scratch_.prepare("INSERT INTO rejects(source, line, member_key, reason) VALUES(?, ?, ?, ?)"));
    }
    staged_in_transaction_ = 0;
}

bool RunMembers::stage_member(int64_t seq, std::string_view key, std::string_view key_value, uint64_t hash,
                              std::string_view payload, int64_t source_index, int64_t line) {
    if (seq <= 0 || seq > static_cast<int64_t>(UINT32_MAX)) {
        throw std::runtime_error("a run can stage at most 4,294,967,295 members");
    }
    auto key_of = [this](uint32_t other) {
        std::string staged_key;
        staged_.visit({other}, [&](const StagedRow& row) { staged_key = row.member_key; });
        return staged_key;
    };
    const StagedKeys::Place place = staged_keys_.find(key, key_of);
    if (place.held != 0) return false;
    StagedRow row;
    row.seq = seq;
    row.hash = static_cast<int64_t>(hash);
    row.source = source_index;
    row.line = line;
    row.member_key = key;
    row.key_value = key_value;
    row.payload = payload;
    // Refuses a seq no higher than an earlier one before its key is recorded: a key recorded
    // for a row that was never written would shadow the next copy of it.
    staged_.append(row);
    staged_keys_.add(place, static_cast<uint32_t>(seq));
    states_.set(seq, MemberState::todo);
    if (keys_indexed_) insert_staged_key(row.seq, row.member_key, row.hash);
    if (staging_ && ++staged_in_transaction_ >= kStagingChunk) {
        staging_->commit();
        staging_.emplace(scratch_, sqlite::Transaction::Lock::when_needed);
        staged_in_transaction_ = 0;
    }
    return true;
}

void RunMembers::stage_reject(int64_t source_index, int64_t line, std::string_view key, std::string_view reason) {
    if (!reject_insert_) {
        reject_insert_.emplace(
            scratch_.prepare("INSERT INTO rejects(source, line, member_key, reason) VALUES(?, ?, ?, ?)"));
    }
    reject_insert_->bind(1, source_index).bind(2, line).bind(3, key).bind(4, reason).run();
}

void RunMembers::end_staging() {
    if (!staging_) return;
    // The transaction ends here whatever fails (rolled back if it cannot commit).
    try {
        staging_->commit();
    } catch (...) {
        staging_.reset();
        throw;
    }
    staging_.reset();
}

void RunMembers::all_members_staged() {
    staged_keys_.release();
    reject_insert_.reset();
}

void RunMembers::index_staged_keys() {
    if (keys_indexed_) return;
    // The keys go into the scratch database 64 to a statement, each under its seq; the index
    // holds, with the hash, all a diff reads of a staged member (its seq is the rowid): the
    // diff walks it in key order and never reads the staged file. Staging leaves one member
    // per key (StagedKeys); the index, unique on the pair, does not check that itself (the
    // tests do). Leavers have no place here.
    std::optional<sqlite::Transaction> transaction;
    if (!staging_) transaction.emplace(scratch_, sqlite::Transaction::Lock::when_needed);
    constexpr size_t kRowsPerInsert = 64;
    // Rows that follow the last one inserted take their seqs as SQLite's next rowids: an
    // explicit rowid makes every row seek its place to check that none holds it, a large
    // share of the cost of building the index. Other rows keep the explicit seq.
    std::string rows = "(?, ?)";
    for (size_t more = 1; more < kRowsPerInsert; ++more) rows += ", (?, ?)";
    auto insert_following = scratch_.prepare("INSERT INTO staged_keys(member_key, hash) VALUES" + rows);
    struct Key {
        int64_t seq, hash;
        size_t at, size;
    };
    std::vector<Key> keys;
    std::string text;  // the keys' bytes: a row's views last only until the file reads on
    int64_t last_inserted = 0;
    auto insert = [&] {
        const std::string_view bytes = text;
        if (keys.size() == kRowsPerInsert && keys.front().seq == last_inserted + 1 &&
            keys.back().seq == keys.front().seq + static_cast<int64_t>(kRowsPerInsert) - 1) {
            for (size_t i = 0; i < keys.size(); ++i) {
                insert_following.bind_unowned(static_cast<int>(i * 2 + 1), bytes.substr(keys[i].at, keys[i].size))
                    .bind(static_cast<int>(i * 2 + 2), keys[i].hash);
            }
            insert_following.run();
            if (scratch_.last_insert_id() != keys.back().seq) {
                throw std::logic_error("staged keys took seqs other than their own; the run stops");
            }
        } else {
            for (const Key& key : keys) insert_staged_key(key.seq, bytes.substr(key.at, key.size), key.hash);
        }
        last_inserted = keys.back().seq;
        keys.clear();
        text.clear();
    };
    try {
        staged_.visit_all([&](const StagedRow& row) {
            if (row.action != static_cast<int>(MemberAction::upsert)) return;
            keys.push_back({row.seq, row.hash, text.size(), row.member_key.size()});
            text.append(row.member_key);
            if (keys.size() == kRowsPerInsert) insert();
        });
        if (!keys.empty()) insert();
        scratch_.exec("CREATE UNIQUE INDEX IF NOT EXISTS temp.staged_by_key ON staged_keys(member_key, hash)");
        if (transaction) transaction->commit();
    } catch (...) {
        // Without a journal, what was inserted stays unless deleted, and a second attempt
        // would meet it.
        try {
            scratch_.exec("DROP INDEX IF EXISTS temp.staged_by_key; DELETE FROM staged_keys;");
        } catch (const sqlite::Error&) {
        }
        throw;
    }
    keys_indexed_ = true;
}

void RunMembers::insert_staged_key(int64_t seq, std::string_view key, int64_t hash) {
    if (!staged_key_insert_) {
        staged_key_insert_.emplace(scratch_.prepare("INSERT INTO staged_keys(seq, member_key, hash) VALUES(?, ?, ?)"));
    }
    staged_key_insert_->bind(1, seq).bind_unowned(2, key).bind(3, hash).run();
}

int64_t RunMembers::staged_seq(std::string_view key, std::optional<uint64_t> hash) {
    index_staged_keys();
    sqlite::Statement* query;
    if (hash) {
        if (!find_staged_with_hash_) {
            find_staged_with_hash_.emplace(
                scratch_.prepare("SELECT seq FROM staged_keys WHERE member_key=? AND hash=?"));
        }
        query = &*find_staged_with_hash_;
        query->bind(2, static_cast<int64_t>(*hash));
    } else {
        if (!find_staged_) find_staged_.emplace(scratch_.prepare("SELECT seq FROM staged_keys WHERE member_key=?"));
        query = &*find_staged_;
    }
    query->bind_unowned(1, key);
    const int64_t seq = query->step() ? query->integer(0) : 0;
    query->reset();
    return seq;
}

void RunMembers::diff(int64_t baseline, bool stage_leavers, int64_t first_leaver_seq, RunCounts& counts) {
    diff(baseline, stage_leavers, first_leaver_seq, counts, nullptr);
}

void RunMembers::diff(int64_t baseline, bool stage_leavers, int64_t first_leaver_seq, RunCounts& counts,
                      const ChangedVisit& changed) {
    counts.members = states_.count();
    counts.new_members = counts.members;
    counts.changed = counts.unchanged = counts.leaving = 0;
    // Nothing recorded (a first delivery): every member is new, nobody leaves, nobody was
    // removed before. No index is built and no staged row read again.
    if (delivered_.nothing_recorded(export_name_)) return;
    // One pass over the delivered members and the staged ones, both in key order (the
    // delivered state's and the index's), merged: each is read page by page, in order. The
    // staged keys' index is built at the first delivered member: by then the delivered state
    // has folded what the last run recorded and given back the memory that took, which the
    // index's cache then reuses.
    std::optional<sqlite::Statement> staged;
    bool more_staged = false;
    int64_t matched = 0;
    StagedRow leaver;
    leaver.seq = first_leaver_seq;
    leaver.action = static_cast<int>(MemberAction::remove);
    leaver.has_payload = false;
    // The merge is only right if the delivered keys ascend: out of order, members still in the
    // segment would pass for leavers and be removed. A backend that breaks that stops the run.
    std::string previous_key;
    bool first = true;
    delivered_.visit_delivered(export_name_, [&](const DeliveredMember& member) {
        if (!first && member.key <= std::string_view(previous_key)) {
            throw std::logic_error("the delivered state of export '" + export_name_ +
                                   "' listed its members out of key order; nothing was sent");
        }
        first = false;
        previous_key.assign(member.key);
        if (!staged) {
            index_staged_keys();
            staged.emplace(scratch_.prepare("SELECT seq, member_key, hash FROM staged_keys ORDER BY member_key"));
            more_staged = staged->step();
        }
        while (more_staged && staged->blob(1) < member.key) more_staged = staged->step();
        if (more_staged && staged->blob(1) == member.key) {
            ++matched;
            if (static_cast<uint64_t>(staged->integer(2)) == member.hash && member.run_id >= baseline) {
                ++counts.unchanged;
                states_.set(staged->integer(0), MemberState::unchanged);
            } else if (changed) {
                changed(staged->integer(0), member.sent_values);
            }
            more_staged = staged->step();
            return;
        }
        ++counts.leaving;
        if (!stage_leavers) return;
        // Staged after every member, in key order, with no payload: a leaver is sent its key.
        ++leaver.seq;
        leaver.member_key = member.key;
        leaver.key_value = member.key_value;
        staged_.append(leaver);
        states_.set(leaver.seq, MemberState::todo, true);
    });
    counts.new_members = counts.members - matched;
    counts.changed = matched - counts.unchanged;
    find_rejoining();
    find_refused(baseline, counts);
}

void RunMembers::find_refused(int64_t baseline, RunCounts& counts) {
    counts.rejected_retried = counts.rejected_held = 0;
    delivered_.visit_refused(export_name_, [&](const RefusedMember& refused) {
        int64_t seq = staged_seq(refused.key, refused.hash);
        const bool same_values = seq != 0;
        if (!same_values) seq = staged_seq(refused.key);
        if (seq == 0 || !states_.has(seq, MemberState::todo)) {
            // No longer in the segment, or the destination holds these values: nothing left to refuse.
            obsolete_refusals_.emplace_back(refused.key);
            return;
        }
        if (!same_values) {
            refused_before_[seq] = 0;  // new values: sent, and counted afresh should they be refused
            return;
        }
        refused_before_[seq] = refused.refusals;
        if (refusal_policy_.retry_all || refused.refusals <= refusal_policy_.retry_runs || refused.run_id < baseline) {
            ++counts.rejected_retried;
        } else {
            ++counts.rejected_held;
            states_.set(seq, MemberState::held);
        }
    });
}

void RunMembers::forget_obsolete_refusals() {
    if (obsolete_refusals_.empty()) return;
    DeliveryBatch batch;
    for (const std::string& key : obsolete_refusals_) batch.forget_refusal(key);
    delivered_.record(export_name_, run_id_, batch);
    obsolete_refusals_.clear();
}

void RunMembers::record_refusals(const std::vector<int64_t>& rejected, const std::vector<int64_t>& settled,
                                 DeliveryBatch& batch) {
    staged_.visit(rejected, [&](const StagedRow& row) {
        const auto before = refused_before_.find(row.seq);
        batch.refuse(row.member_key, static_cast<uint64_t>(row.hash),
                     before == refused_before_.end() ? 1 : before->second + 1);
    });
    if (refused_before_.empty()) return;
    std::vector<int64_t> no_longer_refused;
    for (const int64_t seq : settled) {
        if (refused_before_.count(seq)) no_longer_refused.push_back(seq);
    }
    staged_.visit(no_longer_refused, [&](const StagedRow& row) { batch.forget_refusal(row.member_key); });
}

void RunMembers::find_rejoining() {
    delivered_.visit_removals(export_name_, [&](std::string_view key, int64_t removed_at) {
        const int64_t seq = staged_seq(key);
        if (seq != 0 && states_.has(seq, MemberState::todo)) rejoining_[seq] = removed_at;
    });
}

std::vector<StagedMember> RunMembers::next_todo(int64_t after_seq, int limit) {
    // Members past the cursor are still to send unless the diff found them unchanged or
    // resuming settled them: found in memory, then their rows read.
    const auto wanted = static_cast<size_t>(std::max(limit, 0));
    std::vector<int64_t> seqs;
    seqs.reserve(wanted);
    for (int64_t seq = std::max<int64_t>(after_seq + 1, 1); seq < states_.end() && seqs.size() < wanted; ++seq) {
        if (states_.has(seq, MemberState::todo)) seqs.push_back(seq);
    }
    std::vector<StagedMember> members;
    if (seqs.empty()) return members;
    members.reserve(seqs.size());
    auto payloads = std::make_shared<std::string>();
    std::vector<size_t> ends;
    ends.reserve(seqs.size());
    if (recent_reads_.size() < kRecentReads) recent_reads_.emplace_back();
    RecentRead& read = recent_reads_[next_recent_read_++ % kRecentReads];
    read.seqs.clear();
    read.ends.clear();
    read.encoded.clear();
    staged_.visit(seqs, [&](const StagedRow& row) {
        const auto rejoining = rejoining_.find(row.seq);
        members.push_back({row.seq,
                           static_cast<MemberAction>(row.action),
                           {},
                           payloads,
                           rejoining == rejoining_.end() ? 0 : rejoining->second});
        payloads->append(row.payload_or_key_value());
        ends.push_back(payloads->size());
        read.seqs.push_back(row.seq);
        encode_receipt_member(read.encoded, static_cast<uint64_t>(row.hash), row.member_key, row.key_value,
                              sent_values_of(row));
        read.ends.push_back(read.encoded.size());
    });
    // Pointed into once the string has stopped growing.
    for (size_t i = 0; i < members.size(); ++i) members[i].payload = piece(*payloads, ends, i);
    return members;
}

std::vector<ResumableMember> RunMembers::resumable(int64_t baseline) {
    // A --full run resends everything delivered before its baseline, so receipts from before
    // it do not count. The receipts are read first and their members looked up after, so that
    // no read of the delivered state stays open while the key index is built.
    struct Candidate {
        std::string key;
        uint64_t hash;
        size_t receipt;  // in receipts
    };
    std::vector<std::string> receipts;
    std::vector<Candidate> candidates;
    delivered_.visit_open_receipts(export_name_, baseline, run_id_,
                                   [&](std::string_view receipt, std::string_view members) {
                                       receipts.emplace_back(receipt);
                                       decode_receipt_members(members, [&](uint64_t hash, std::string_view key,
                                                                           std::string_view, std::string_view) {
                                           candidates.push_back({std::string(key), hash, receipts.size() - 1});
                                       });
                                   });
    // Should a run have died between recording a resumed member's new receipt and forgetting
    // its old one, the newest receipt (the last read) wins.
    std::map<int64_t, size_t> receipt_of;  // by seq
    for (const Candidate& candidate : candidates) {
        const int64_t seq = staged_seq(candidate.key, candidate.hash);
        if (seq != 0 && states_.has(seq, MemberState::todo)) receipt_of[seq] = candidate.receipt;
    }
    std::vector<int64_t> seqs;
    seqs.reserve(receipt_of.size());
    for (const auto& [seq, receipt] : receipt_of) seqs.push_back(seq);
    std::vector<ResumableMember> members;
    members.reserve(seqs.size());
    staged_.visit(seqs, [&](const StagedRow& row) {
        ResumableMember resumable;
        resumable.member.seq = row.seq;
        resumable.member.action = MemberAction::upsert;
        resumable.member.storage = std::make_shared<const std::string>(row.payload);
        resumable.member.payload = *resumable.member.storage;
        resumable.receipt = receipts[receipt_of[row.seq]];
        members.push_back(std::move(resumable));
    });
    return members;
}

void RunMembers::forget_earlier_receipts() { delivered_.forget_receipts_before(export_name_, run_id_); }

OutcomeTally RunMembers::apply_outcomes(const std::vector<MemberOutcome>& outcomes) {
    return apply(outcomes, ReportedBy::other);
}

OutcomeTally RunMembers::apply_collected(const std::vector<MemberOutcome>& outcomes) {
    return apply(outcomes, ReportedBy::collect);
}

OutcomeTally RunMembers::apply_pushed(std::vector<MemberOutcome>& outcomes) {
    states_.drop_stale(outcomes);
    return apply(outcomes, ReportedBy::push);
}

std::string_view RunMembers::sent_values_of(const StagedRow& row) {
    if (!row.has_payload || row.action == static_cast<int>(MemberAction::remove)) return {};
    encode_sent_values(values_context_, row.payload, sent_values_);
    return sent_values_;
}

void RunMembers::deliver(const std::vector<int64_t>& seqs, bool removals_are_own, DeliveryBatch& batch) {
    staged_.visit(seqs, [&](const StagedRow& row) {
        const bool removed = row.action == static_cast<int>(MemberAction::remove);
        batch.deliver(row.member_key, row.key_value_or_key(), static_cast<uint64_t>(row.hash), removed,
                      removals_are_own, sent_values_of(row));
    });
}

void RunMembers::forget_removals(const std::vector<int64_t>& settled, DeliveryBatch& batch) {
    if (rejoining_.empty()) return;
    std::vector<int64_t> returned;
    for (const int64_t seq : settled) {
        if (rejoining_.count(seq)) returned.push_back(seq);
    }
    staged_.visit(returned, [&](const StagedRow& row) { batch.forget_removal(row.member_key); });
}

void RunMembers::encode_receipt(const std::vector<int64_t>& seqs, std::string& out) {
    if (encode_from_recent_reads(seqs, out)) return;
    out.clear();
    staged_.visit(seqs, [&](const StagedRow& row) {
        encode_receipt_member(out, static_cast<uint64_t>(row.hash), row.member_key, row.key_value, sent_values_of(row));
    });
}

OutcomeTally RunMembers::apply(const std::vector<MemberOutcome>& outcomes, ReportedBy reported_by) {
    if (outcomes.empty()) return {};
    const MemberStates::Changes changes = states_.plan(outcomes, reported_by);
    // The reasons first: the report asks the states in memory which members were refused, so
    // a reason whose outcomes then fail to be recorded is never shown.
    if (!changes.refusals.empty()) {
        if (!refuse_) refuse_.emplace(scratch_.prepare("INSERT OR REPLACE INTO refusals(seq, reason) VALUES(?1, ?2)"));
        sqlite::Transaction transaction(scratch_, sqlite::Transaction::Lock::when_needed);
        for (const auto& refusal : changes.refusals)
            refuse_->bind(1, refusal.seq).bind(2, scrubbed(*refusal.reason)).run();
        transaction.commit();
    }
    DeliveryBatch batch;
    batch.receipts_confirmed = changes.rows_confirmed;
    batch.receipts_forgotten = changes.rows_forgotten;
    deliver(changes.delivered, removals_are_own_, batch);
    deliver(changes.suppressed, false, batch);
    forget_removals(changes.settled, batch);
    record_refusals(changes.rejected, changes.settled, batch);
    std::string members;
    for (const auto& [receipt, seqs] : changes.new_receipts) {
        encode_receipt(seqs, members);
        batch.add_receipt(receipt, seqs.front(), seqs.back(), members);
    }
    // The states follow only once the batch is recorded, so memory and the delivered state
    // agree that these outcomes arrived, or that none did.
    const std::vector<int64_t> new_rows = delivered_.record(export_name_, run_id_, batch);
    states_.commit(changes, new_rows);
    return changes.tally;
}

bool RunMembers::encode_from_recent_reads(const std::vector<int64_t>& seqs, std::string& out) const {
    out.clear();
    // A receipt's members are mostly one read's, one after another: each is looked for next
    // to the last one found before the reads are searched.
    const RecentRead* read = nullptr;
    size_t at = 0;
    for (const int64_t seq : seqs) {
        if (read == nullptr || at >= read->seqs.size() || read->seqs[at] != seq) {
            read = nullptr;
            for (const RecentRead& candidate : recent_reads_) {
                if (candidate.seqs.empty() || seq < candidate.seqs.front() || seq > candidate.seqs.back()) continue;
                const auto found = std::lower_bound(candidate.seqs.begin(), candidate.seqs.end(), seq);
                if (found == candidate.seqs.end() || *found != seq) continue;
                read = &candidate;
                at = static_cast<size_t>(found - candidate.seqs.begin());
                break;
            }
            if (read == nullptr) return false;
        }
        out.append(piece(read->encoded, read->ends, at++));
    }
    return true;
}

OutcomeTally RunMembers::settle_pending() {
    const std::vector<int64_t> settled = states_.pending();
    if (settled.empty()) return {};  // plugins that report every outcome leave nothing pending
    DeliveryBatch batch;
    batch.settles_run = true;
    deliver(settled, removals_are_own_, batch);
    forget_removals(settled, batch);
    record_refusals({}, settled, batch);
    delivered_.record(export_name_, run_id_, batch);
    return states_.settle_pending();
}

std::vector<ReportedMember> RunMembers::reported_members(const std::vector<std::string>& sources) {
    auto source_name = [&](int64_t index) {
        return index >= 0 && index < static_cast<int64_t>(sources.size()) ? sources[index] : std::string();
    };
    std::vector<ReportedMember> out;
    auto rejects = scratch_.prepare(
        "SELECT source, line, COALESCE(member_key, ''), reason FROM rejects ORDER BY source, line");
    while (rejects.step()) {
        out.push_back(
            {source_name(rejects.integer(0)), rejects.integer(1), rejects.text(2), "invalid", rejects.text(3)});
    }
    // The states in memory are what count: a reason whose outcomes failed to be recorded can
    // stay in refusals.
    std::vector<int64_t> seqs;
    std::map<int64_t, std::pair<const char*, std::string>> outcomes;  // by seq: outcome, reason
    auto refused = scratch_.prepare("SELECT seq, reason FROM refusals ORDER BY seq");
    while (refused.step()) {
        const int64_t seq = refused.integer(0);
        const char* outcome = states_.has(seq, MemberState::rejected)     ? "rejected"
                              : states_.has(seq, MemberState::suppressed) ? "suppressed"
                                                                          : nullptr;
        if (!outcome) continue;
        seqs.push_back(seq);
        outcomes[seq] = {outcome, refused.text(1)};
    }
    // Held members were not sent: the reason is their earlier refusals.
    for (const auto& [seq, refusals] : refused_before_) {
        if (!states_.has(seq, MemberState::held)) continue;
        seqs.push_back(seq);
        outcomes[seq] = {"held", "refused by the destination on " + std::to_string(refusals) +
                                     (refusals == 1 ? " run" : " runs") +
                                     " with these values; not sent again until they change (or --retry-rejected)"};
    }
    std::sort(seqs.begin(), seqs.end());
    staged_.visit(seqs, [&](const StagedRow& row) {
        auto& [outcome, reason] = outcomes[row.seq];
        out.push_back(
            {source_name(row.source), row.line, std::string(row.key_value_or_key()), outcome, std::move(reason)});
    });
    return out;
}

}  // namespace segpush
