#include "state/state_store.hpp"

#include <algorithm>
#include <ctime>
#include <map>

#include <segpush/plugin.h>

#include "secrets/redactor.hpp"

namespace segpush {

namespace {

constexpr int kStagingChunk = 20000;

// Text that came from a plugin or a server (run errors, refusal reasons) may echo a secret:
// it is scrubbed before it reaches the file, its WAL or a report read from it later.
std::string scrubbed(const std::string& text) { return Redactor::instance().scrub(text); }

// A receipt's members: for each, its hash (8 bytes), its key's length (4 bytes), both little
// endian, and the key. When the key as written differs from the key (an email with capitals),
// the length's top bit is set and the key as written follows, its length first (4 bytes);
// receipts written before version 8 never set it.
constexpr uint32_t kKeyValueFollows = 0x80000000u;

void encode_receipt_member(std::string& out, uint64_t hash, std::string_view email_key, std::string_view key_value) {
    auto put_length = [&](uint32_t length) {
        for (int byte = 0; byte < 4; ++byte) out.push_back(static_cast<char>(length >> (8 * byte)));
    };
    for (int byte = 0; byte < 8; ++byte) out.push_back(static_cast<char>(hash >> (8 * byte)));
    const bool differs = !key_value.empty() && key_value != email_key;
    put_length(static_cast<uint32_t>(email_key.size()) | (differs ? kKeyValueFollows : 0));
    out.append(email_key);
    if (!differs) return;
    put_length(static_cast<uint32_t>(key_value.size()));
    out.append(key_value);
}

template <typename Visit>
void decode_receipt_members(std::string_view in, const Visit& visit) {
    auto take = [&](int bytes) {
        uint64_t value = 0;
        for (int byte = 0; byte < bytes; ++byte) value |= uint64_t{static_cast<unsigned char>(in[byte])} << (8 * byte);
        in.remove_prefix(bytes);
        return value;
    };
    while (in.size() >= 12) {
        const uint64_t hash = take(8);
        const auto length_and_flag = static_cast<uint32_t>(take(4));
        const size_t length = length_and_flag & ~kKeyValueFollows;
        if (length > in.size()) break;  // a torn row confirms what it can
        const std::string_view key = in.substr(0, length);
        in.remove_prefix(length);
        std::string_view key_value = key;
        if (length_and_flag & kKeyValueFollows) {
            if (in.size() < 4) break;
            const auto value_length = static_cast<size_t>(take(4));
            if (value_length > in.size()) break;
            key_value = in.substr(0, value_length);
            in.remove_prefix(value_length);
        }
        visit(hash, key, key_value);
    }
}

// The i-th of the pieces written end to end into `text`, each ending at ends[i].
std::string_view piece(std::string_view text, const std::vector<size_t>& ends, size_t i) {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    return text.substr(begin, ends[i] - begin);
}

}  // namespace

StateStore::StateStore(const std::string& path) : file_(path), db_(file_.db()), history_(db_) {}

void StateStore::start_run() {
    // The TEMP tables hold one run: a run starting on a store that ran another (tests do)
    // starts from empty ones. In a fresh connection, as every segpush run has, they are.
    sqlite::Transaction transaction(db_, sqlite::Transaction::Lock::when_needed);
    db_.exec("DROP INDEX IF EXISTS temp.staged_by_key; DELETE FROM temp.staged_keys; DELETE FROM temp.refusals; "
             "DELETE FROM temp.rejects;");
    keys_indexed_ = false;
    staged_keys_.clear();
    staged_.clear();
    recent_reads_.clear();
    next_recent_read_ = 0;
    members_.clear();
    rejoining_.clear();
    transaction.commit();
}

StateStore::Forgotten StateStore::forget_members(const std::set<std::string>& keys) {
    Forgotten forgotten;
    {
        sqlite::Transaction transaction(db_);
        // In this transaction, which holds the state file's write lock: no run starts until it ends.
        const std::vector<RunRecord> live = history_.live_runs();
        if (!live.empty()) {
            const RunRecord& run = live.front();
            throw AlreadyRunning(run, "export '" + run.export_name + "' is running as run #" + std::to_string(run.id) +
                                          " (pid " + std::to_string(run.pid) + " on " + run.hostname +
                                          "); forget once it has finished, or it may record the people again");
        }
        auto exports_delivered = db_.prepare("SELECT COUNT(*) FROM (SELECT export FROM delivered WHERE email_key=?1 "
                                             "UNION SELECT export FROM delivered_log WHERE email_key=?1)");
        for (const std::string& key : keys) {
            exports_delivered.bind(1, key).step();
            forgotten.delivered += exports_delivered.integer(0);
            exports_delivered.reset();
            for (const char* table : {"delivered", "delivered_log", "removals"}) {
                db_.prepare(std::string("DELETE FROM ") + table + " WHERE email_key=?").bind(1, key).run();
            }
            forgotten.removals += db_.changes();  // of the last DELETE, the removals'
        }
        // Receipts keep their members' keys in a blob: each is written again without them.
        auto receipts = db_.prepare("SELECT id, members FROM unconfirmed");
        std::vector<std::pair<int64_t, std::string>> rewritten;
        while (receipts.step()) {
            std::string kept;
            int64_t dropped = 0;
            decode_receipt_members(receipts.blob(1), [&](uint64_t hash, std::string_view key, std::string_view value) {
                if (keys.count(std::string(key))) {
                    ++dropped;
                } else {
                    encode_receipt_member(kept, hash, key, value);
                }
            });
            if (dropped == 0) continue;
            forgotten.awaiting_import += dropped;
            rewritten.emplace_back(receipts.integer(0), std::move(kept));
        }
        receipts.reset();
        for (const auto& [id, members] : rewritten) {
            if (members.empty()) {
                db_.prepare("DELETE FROM unconfirmed WHERE id=?").bind(1, id).run();
            } else {
                db_.prepare("UPDATE unconfirmed SET members=? WHERE id=?")
                    .bind_blob(1, members.data(), members.size())
                    .bind(2, id)
                    .run();
            }
        }
        forgotten.run_errors = history_.redact_from_errors(keys);
        transaction.commit();
    }
    // Pages freed earlier (by merges, by leavers) may still hold old copies of the rows: the
    // file is rebuilt without them, and the WAL, which holds the pages' earlier versions, is
    // emptied once the rebuilt pages are written back.
    db_.exec("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);");
    return forgotten;
}

// Staging writes only the staged file and TEMP tables: its transactions take no lock on the
// state file (other exports' runs write on), and its statements are kept until all members
// are staged, a run staging in hundreds of slices while it sends.
void StateStore::begin_staging() {
    staging_.emplace(db_, sqlite::Transaction::Lock::when_needed);
    if (!reject_insert_) {
        reject_insert_.emplace(db_.prepare("INSERT INTO rejects(source, line, email, reason) VALUES(?, ?, ?, ?)"));
    }
    staged_in_transaction_ = 0;
}

bool StateStore::stage_member(int64_t seq, std::string_view email_key, std::string_view key_value, uint64_t hash,
                              std::string_view payload, int64_t source_index, int64_t line) {
    if (seq <= 0 || seq > static_cast<int64_t>(UINT32_MAX)) {
        throw std::runtime_error("a run can stage at most 4,294,967,295 members");
    }
    auto key_of = [this](uint32_t other) {
        std::string key;
        staged_.visit({other}, [&](const StagedRow& row) { key = row.email_key; });
        return key;
    };
    const StagedKeys::Place place = staged_keys_.find(email_key, key_of);
    if (place.held != 0) return false;
    StagedRow row;
    row.seq = seq;
    row.hash = static_cast<int64_t>(hash);
    row.source = source_index;
    row.line = line;
    row.email_key = email_key;
    row.key_value = key_value;
    row.payload = payload;
    // Refuses a seq no higher than an earlier one before its key is recorded: a key recorded
    // for a row that was never written would shadow the next copy of it.
    staged_.append(row);
    staged_keys_.add(place, static_cast<uint32_t>(seq));
    members_.set(seq, MemberState::todo);
    if (keys_indexed_) insert_staged_key(row.seq, row.email_key, row.hash);
    if (++staged_in_transaction_ >= kStagingChunk) {
        staging_->commit();
        staging_.emplace(db_, sqlite::Transaction::Lock::when_needed);
        staged_in_transaction_ = 0;
    }
    return true;
}

void StateStore::stage_reject(int64_t source_index, int64_t line, std::string_view email, std::string_view reason) {
    reject_insert_->bind(1, source_index).bind(2, line).bind(3, email).bind(4, reason).run();
}

void StateStore::end_staging() {
    if (!staging_) return;
    // The transaction ends here whatever fails (rolled back by reset() if it cannot commit):
    // left open, the run's own end (finish_run) would be written inside it and never committed.
    try {
        // SQLite counts a TEMP database's dirty pages at every commit that includes it (every
        // BEGIN IMMEDIATE does) to decide whether to write them: pages left dirty (rejected
        // rows) would make each outcome batch's commit walk them all. Written now, once; only
        // a saving, so a failure here is left to the commit to report.
        try {
            db_.write_dirty_pages();
        } catch (const sqlite::Error&) {
        }
        staging_->commit();
    } catch (...) {
        staging_.reset();
        throw;
    }
    staging_.reset();
}

void StateStore::all_members_staged() {
    staged_keys_.release();
    reject_insert_.reset();
}

// Delivered outcomes are appended to delivered_log as they arrive (sequential pages: a batch
// costs the WAL a few pages, where upserting into delivered, ordered by email, dirtied a page
// per member: 3.7 KB of WAL per member) and merged into delivered in email order, each page
// written once, when the export's next run diffs. The log is in the state file and committed
// with the outcomes, so it is as much a checkpoint as delivered itself. It holds one run's
// outcomes (the next run merges it before recording any), at most one per member.
void StateStore::merge_delivered_log(const std::string& export_name) {
    // The members of receipts kept confirmed (see the unconfirmed table), through a TEMP copy
    // that SQLite sorts, so that delivered's pages are written in key order, each once.
    auto confirmed = db_.prepare("SELECT run_id, members FROM unconfirmed WHERE export=?1 AND confirmed=1");
    confirmed.bind(1, export_name);
    bool any_confirmed = false;
    {
        auto copy = db_.prepare(
            "INSERT INTO temp.confirmed_members(email_key, key_value, hash, run_id) VALUES(?, ?, ?, ?)");
        while (confirmed.step()) {
            any_confirmed = true;
            const int64_t run = confirmed.integer(0);
            decode_receipt_members(confirmed.blob(1),
                                   [&](uint64_t hash, std::string_view key, std::string_view key_value) {
                                       copy.bind_unowned(1, key)
                                           .bind_unowned(2, key_value)
                                           .bind(3, static_cast<int64_t>(hash))
                                           .bind(4, run)
                                           .run();
                                   });
        }
    }
    confirmed.reset();
    if (any_confirmed) {
        db_.prepare("INSERT INTO delivered(export, email_key, key_value, hash, run_id) "
                    "SELECT ?1, email_key, key_value, hash, run_id FROM temp.confirmed_members WHERE true "
                    "ORDER BY email_key "
                    "ON CONFLICT(export, email_key) DO UPDATE SET key_value=excluded.key_value, hash=excluded.hash, "
                    "run_id=excluded.run_id")
            .bind(1, export_name)
            .run();
        db_.exec("DELETE FROM temp.confirmed_members;");
        db_.prepare("DELETE FROM unconfirmed WHERE export=?1 AND confirmed=1").bind(1, export_name).run();
    }
    db_.prepare("INSERT INTO delivered(export, email_key, key_value, hash, run_id) "
                "SELECT export, email_key, key_value, hash, run_id FROM delivered_log WHERE export=?1 AND removed=0 "
                "ORDER BY email_key, rowid "
                "ON CONFLICT(export, email_key) DO UPDATE SET key_value=excluded.key_value, hash=excluded.hash, "
                "run_id=excluded.run_id")
        .bind(1, export_name)
        .run();
    db_.prepare("DELETE FROM delivered WHERE export=?1 AND email_key IN "
                "(SELECT email_key FROM delivered_log WHERE export=?1 AND removed=1)")
        .bind(1, export_name)
        .run();
    db_.prepare("DELETE FROM delivered_log WHERE export=?1").bind(1, export_name).run();
}

void StateStore::index_staged_keys() {
    if (keys_indexed_) return;
    // The keys go into a TEMP table 64 to a statement, each under its seq; the index holds,
    // with the hash, all the diff reads of a staged member (its seq is the rowid): the diff
    // walks it in key order and never reads the staged file. Staging leaves one member per
    // key (StagedKeys); the index, unique on the pair, does not check that itself (the
    // state tests do). Leavers have no place here.
    // Inside the caller's transaction when there is one (staging's, or the diff's when
    // something was recorded after it looked), else in one of its own.
    std::optional<sqlite::Transaction> transaction;
    if (sqlite3_get_autocommit(db_.handle()) != 0) transaction.emplace(db_, sqlite::Transaction::Lock::when_needed);
    constexpr size_t kRowsPerInsert = 64;
    // Rows that follow the last one inserted take their seqs as SQLite's next rowids: an
    // explicit rowid makes every row seek its place to check that none holds it, a large
    // share of the cost of building the index. Other rows keep the explicit seq.
    std::string rows = "(?, ?)";
    for (size_t more = 1; more < kRowsPerInsert; ++more) rows += ", (?, ?)";
    auto insert_following = db_.prepare("INSERT INTO staged_keys(email_key, hash) VALUES" + rows);
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
            if (db_.last_insert_id() != keys.back().seq) {
                throw std::logic_error("staged keys took seqs other than their own; the run stops");
            }
        } else {
            for (const Key& key : keys) {
                insert_staged_key(key.seq, bytes.substr(key.at, key.size), key.hash);
            }
        }
        last_inserted = keys.back().seq;
        keys.clear();
        text.clear();
    };
    try {
        staged_.visit_all([&](const StagedRow& row) {
            if (row.action != static_cast<int>(MemberAction::upsert)) return;
            keys.push_back({row.seq, row.hash, text.size(), row.email_key.size()});
            text.append(row.email_key);
            if (keys.size() == kRowsPerInsert) insert();
        });
        if (!keys.empty()) insert();
        db_.exec("CREATE UNIQUE INDEX IF NOT EXISTS temp.staged_by_key ON staged_keys(email_key, hash)");
        if (transaction) transaction->commit();
    } catch (...) {
        // The TEMP database keeps no rollback journal: what was inserted stays unless deleted,
        // and a second attempt would meet it.
        try {
            db_.exec("DROP INDEX IF EXISTS temp.staged_by_key; DELETE FROM temp.staged_keys;");
        } catch (const sqlite::Error&) {
        }
        throw;
    }
    keys_indexed_ = true;
}

void StateStore::insert_staged_key(int64_t seq, std::string_view email_key, int64_t hash) {
    if (!staged_key_insert_) {
        staged_key_insert_.emplace(db_.prepare("INSERT INTO staged_keys(seq, email_key, hash) VALUES(?, ?, ?)"));
    }
    staged_key_insert_->bind(1, seq).bind_unowned(2, email_key).bind(3, hash).run();
}

bool StateStore::nothing_recorded(const std::string& export_name) {
    auto query = db_.prepare("SELECT EXISTS(SELECT 1 FROM delivered WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM delivered_log WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM unconfirmed WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM removals WHERE export=?1)");
    query.bind(1, export_name).step();
    return query.integer(0) == 0;
}

void StateStore::diff(const std::string& export_name, int64_t baseline, bool stage_leavers, int64_t first_leaver_seq,
                      RunCounts& counts) {
    // The TEMP index is private to this connection: built before the write lock is taken,
    // so other writers (serve's runs) do not wait while a large segment's is built. A first
    // delivery needs none.
    if (!nothing_recorded(export_name)) index_staged_keys();
    sqlite::Transaction transaction(db_);
    merge_delivered_log(export_name);
    auto delivered_any = db_.prepare("SELECT EXISTS(SELECT 1 FROM delivered WHERE export=?)");
    delivered_any.bind(1, export_name).step();
    const bool first_delivery = delivered_any.integer(0) == 0;
    delivered_any.reset();
    if (first_delivery) {
        // Nothing delivered yet (a first run): every member is new, nobody leaves. This skips
        // three scans of the staged rows, which would delay a large export's first send.
        counts.members = counts.new_members = members_.count();
        counts.changed = counts.unchanged = counts.leaving = 0;
        find_rejoining(export_name);
        transaction.commit();
        return;
    }
    index_staged_keys();  // unless built above: something was recorded since
    // One pass over the export's delivered members in key order, each looked up among the
    // staged ones through their key index in the same order: both are read page by page, in
    // order. Not UPDATE ... WHERE EXISTS to mark unchanged rows, nor NOT EXISTS to count: they
    // look delivered members up in seq order, a page read at random per member, and rewrite
    // every unchanged staged row, the bulk of a large refresh's cost.
    auto matches = db_.prepare("SELECT s.seq, s.hash = d.hash AND d.run_id >= ?2 FROM delivered AS d "
                               "LEFT JOIN staged_keys AS s ON s.email_key = d.email_key WHERE d.export = ?1");
    matches.bind(1, export_name).bind(2, baseline);
    int64_t matched = 0;
    counts.unchanged = counts.leaving = 0;
    while (matches.step()) {
        if (matches.is_null(0)) {
            ++counts.leaving;
            continue;
        }
        ++matched;
        if (matches.integer(1) != 0) {
            ++counts.unchanged;
            members_.set(matches.integer(0), MemberState::unchanged);
        }
    }
    matches.reset();
    counts.members = members_.count();
    counts.new_members = counts.members - matched;
    counts.changed = matched - counts.unchanged;
    if (stage_leavers && counts.leaving > 0) {
        // Staged after every member, in key order, with no payload: a leaver is sent its key.
        auto leavers = db_.prepare("SELECT d.email_key, d.key_value FROM delivered d WHERE d.export=?1 AND NOT EXISTS "
                                   "(SELECT 1 FROM staged_keys s WHERE s.email_key=d.email_key) ORDER BY d.email_key");
        leavers.bind(1, export_name);
        StagedRow leaver;
        leaver.seq = first_leaver_seq;
        leaver.action = static_cast<int>(MemberAction::remove);
        leaver.has_payload = false;
        while (leavers.step()) {
            ++leaver.seq;
            leaver.email_key = leavers.blob(0);
            leaver.key_value = leavers.blob(1);
            staged_.append(leaver);
            members_.set(leaver.seq, MemberState::todo, true);
        }
    }
    find_rejoining(export_name);
    transaction.commit();
}

void StateStore::find_rejoining(const std::string& export_name) {
    auto any = db_.prepare("SELECT EXISTS(SELECT 1 FROM removals WHERE export=?1)");
    any.bind(1, export_name).step();
    if (any.integer(0) == 0) return;
    any.reset();
    index_staged_keys();
    auto rejoining = db_.prepare("SELECT s.seq, r.removed_at FROM removals AS r "
                                 "JOIN staged_keys AS s ON s.email_key = r.email_key WHERE r.export=?1");
    rejoining.bind(1, export_name);
    while (rejoining.step()) {
        if (members_.has(rejoining.integer(0), MemberState::todo))
            rejoining_[rejoining.integer(0)] = rejoining.integer(1);
    }
}

std::vector<StagedMember> StateStore::next_todo(int64_t after_seq, int limit) {
    // Members past the cursor are still to send unless the diff found them unchanged or
    // resume_pending settled them: found in memory, then their rows read.
    const auto wanted = static_cast<size_t>(std::max(limit, 0));
    std::vector<int64_t> seqs;
    seqs.reserve(wanted);
    for (int64_t seq = std::max<int64_t>(after_seq + 1, 1); seq < members_.end() && seqs.size() < wanted; ++seq) {
        if (members_.has(seq, MemberState::todo)) seqs.push_back(seq);
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
        encode_receipt_member(read.encoded, static_cast<uint64_t>(row.hash), row.email_key, row.key_value);
        read.ends.push_back(read.encoded.size());
    });
    // Pointed into once the string has stopped growing.
    for (size_t i = 0; i < members.size(); ++i) members[i].payload = piece(*payloads, ends, i);
    return members;
}

std::vector<ResumableMember> StateStore::resumable_members(const std::string& export_name, int64_t run_id,
                                                           int64_t baseline) {
    // The newest receipt per member, should a run have died between recording a resumed
    // member's new receipt and forgetting its old one. A --full run resends everything
    // delivered before its baseline, so receipts from before it do not count either.
    auto any = db_.prepare(
        "SELECT EXISTS(SELECT 1 FROM unconfirmed WHERE export=?1 AND run_id<?2 AND run_id>=?3 AND confirmed=0)");
    any.bind(1, export_name).bind(2, run_id).bind(3, baseline).step();
    if (any.integer(0) == 0) return {};
    any.reset();
    index_staged_keys();
    auto receipts = db_.prepare("SELECT receipt, members FROM unconfirmed WHERE export=?1 AND run_id<?2 AND run_id>=?3 "
                                "AND confirmed=0 ORDER BY run_id, id");
    receipts.bind(1, export_name).bind(2, run_id).bind(3, baseline);
    auto member = db_.prepare("SELECT seq FROM staged_keys WHERE email_key=? AND hash=?");  // no leaver there
    std::map<int64_t, std::string> receipt_of;  // by seq: a later receipt for the same member wins
    while (receipts.step()) {
        const std::string receipt = receipts.text(0);
        decode_receipt_members(receipts.blob(1), [&](uint64_t hash, std::string_view email_key, std::string_view) {
            member.bind(1, email_key).bind(2, static_cast<int64_t>(hash));
            if (member.step()) {
                const int64_t seq = member.integer(0);
                if (members_.has(seq, MemberState::todo)) receipt_of[seq] = receipt;
            }
            member.reset();
        });
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
        resumable.receipt = std::move(receipt_of[row.seq]);
        members.push_back(std::move(resumable));
    });
    return members;
}

void StateStore::forget_earlier_receipts(const std::string& export_name, int64_t run_id) {
    db_.prepare("DELETE FROM unconfirmed WHERE export=? AND run_id<? AND confirmed=0")
        .bind(1, export_name)
        .bind(2, run_id)
        .run();
}

// Outcomes: the states in memory; to the state file go the delivered members (a row each,
// read from the staged file) and the receipts (a row per receipt). A record already ACCEPTED or REJECTED is final, so a
// late PENDING (collect_outcomes may overtake a push's own result) changes nothing.
struct StateStore::OutcomeStatements {
    OutcomeStatements(sqlite::Database& db, StagedFile& staged)
        : staged(staged),
          remember_receipt(db.prepare("INSERT INTO unconfirmed(export, run_id, first_seq, last_seq, receipt, members) "
                                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")),
          forget_receipt(db.prepare("DELETE FROM unconfirmed WHERE id=?")),
          // 0 and 1 take no room in a record: the row is rewritten in place, its members untouched.
          confirm_receipt(db.prepare("UPDATE unconfirmed SET confirmed=1 WHERE id=?")),
          refuse(db.prepare("INSERT OR REPLACE INTO refusals(seq, reason) VALUES(?1, ?2)")),
          deliver_member(db.prepare("INSERT INTO delivered_log(export, email_key, key_value, hash, run_id, removed) "
                                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")),
          remember_removal(db.prepare("INSERT OR REPLACE INTO removals(export, email_key, removed_at, run_id, reason) "
                                      "VALUES(?1, ?2, ?3, ?4, 'left the segment (on_leave: unsubscribe)')")),
          forget_removal(db.prepare("DELETE FROM removals WHERE export=?1 AND email_key=?2")) {}
    StagedFile& staged;
    sqlite::Statement remember_receipt, forget_receipt, confirm_receipt, refuse, deliver_member, remember_removal,
        forget_removal;

    // A receipt's members (`seqs` ascending) encoded for its row.
    void encode_members(const std::vector<int64_t>& seqs, std::string& out) {
        out.clear();
        staged.visit(seqs, [&](const StagedRow& row) {
            encode_receipt_member(out, static_cast<uint64_t>(row.hash), row.email_key, row.key_value);
        });
    }

    // Appends the members `seqs` (ascending) to delivered_log, a leaver as removed; with
    // `removed_by_us`, a leaver's removal is remembered as segpush's own (see removals).
    void deliver(const std::vector<int64_t>& seqs, const std::string& export_name, int64_t run_id, bool removed_by_us) {
        const auto now = static_cast<int64_t>(std::time(nullptr));
        staged.visit(seqs, [&](const StagedRow& row) {
            deliver_member.bind_unowned(1, export_name)
                .bind_unowned(2, row.email_key)
                .bind_unowned(3, row.key_value_or_key())
                .bind(4, row.hash)
                .bind(5, run_id)
                .bind(6, row.action)
                .run();
            if (removed_by_us && row.action == static_cast<int>(MemberAction::remove)) {
                remember_removal.bind_unowned(1, export_name)
                    .bind_unowned(2, row.email_key)
                    .bind(3, now)
                    .bind(4, run_id)
                    .run();
            }
        });
    }

    // The members `seqs` (ascending) are on the destination's books again, or kept out by it:
    // their removal by segpush is history.
    void forget_removals(const std::vector<int64_t>& seqs, const std::string& export_name) {
        staged.visit(seqs, [&](const StagedRow& row) {
            forget_removal.bind_unowned(1, export_name).bind_unowned(2, row.email_key).run();
        });
    }
};

StateStore::~StateStore() = default;

OutcomeTally StateStore::apply_outcomes(int64_t run_id, const std::string& export_name,
                                        const std::vector<MemberOutcome>& outcomes) {
    return apply(run_id, export_name, outcomes, ReportedBy::other);
}

OutcomeTally StateStore::apply_collected(int64_t run_id, const std::string& export_name,
                                         const std::vector<MemberOutcome>& outcomes) {
    return apply(run_id, export_name, outcomes, ReportedBy::collect);
}

OutcomeTally StateStore::apply_pushed(int64_t run_id, const std::string& export_name,
                                      std::vector<MemberOutcome>& outcomes) {
    members_.drop_stale(outcomes);
    return apply(run_id, export_name, outcomes, ReportedBy::push);
}

OutcomeTally StateStore::apply(int64_t run_id, const std::string& export_name,
                               const std::vector<MemberOutcome>& outcomes, ReportedBy reported_by) {
    if (outcomes.empty()) return {};
    if (!outcome_statements_) outcome_statements_ = std::make_unique<OutcomeStatements>(db_, staged_);
    OutcomeStatements& sql = *outcome_statements_;
    const MemberStates::Changes changes = members_.plan(outcomes, reported_by);
    // Written in one transaction; the members' states follow only once it is committed, so
    // memory and the state file agree that these outcomes arrived, or that none did.
    std::vector<int64_t> new_rows;
    sqlite::Transaction transaction(db_);
    for (const int64_t row : changes.rows_confirmed) sql.confirm_receipt.bind(1, row).run();
    for (const int64_t row : changes.rows_forgotten) sql.forget_receipt.bind(1, row).run();
    for (const auto& refusal : changes.refusals)
        sql.refuse.bind(1, refusal.seq).bind(2, scrubbed(*refusal.reason)).run();
    sql.deliver(changes.delivered, export_name, run_id, removals_are_own_);
    sql.deliver(changes.suppressed, export_name, run_id, false);
    std::vector<int64_t> returned;  // members segpush had removed, now settled again
    for (const int64_t seq : changes.settled) {
        if (rejoining_.count(seq)) returned.push_back(seq);
    }
    sql.forget_removals(returned, export_name);
    std::string members;
    for (const auto& [receipt, seqs] : changes.new_receipts) {
        if (!encode_from_recent_reads(seqs, members)) sql.encode_members(seqs, members);
        sql.remember_receipt.bind(1, export_name)
            .bind(2, run_id)
            .bind(3, seqs.front())
            .bind(4, seqs.back())
            .bind(5, receipt)
            .bind_blob(6, members.data(), members.size())
            .run();
        new_rows.push_back(db_.last_insert_id());
    }
    transaction.commit();
    members_.commit(changes, new_rows);
    return changes.tally;
}

bool StateStore::encode_from_recent_reads(const std::vector<int64_t>& seqs, std::string& out) const {
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

OutcomeTally StateStore::settle_pending(int64_t run_id, const std::string& export_name) {
    const std::vector<int64_t> settled = members_.pending();
    if (settled.empty()) return {};  // plugins that report every outcome leave nothing pending
    if (!outcome_statements_) outcome_statements_ = std::make_unique<OutcomeStatements>(db_, staged_);
    OutcomeStatements& sql = *outcome_statements_;
    sqlite::Transaction transaction(db_);
    db_.prepare("DELETE FROM unconfirmed WHERE run_id=? AND confirmed=0").bind(1, run_id).run();
    sql.deliver(settled, export_name, run_id, removals_are_own_);
    std::vector<int64_t> returned;
    for (const int64_t seq : settled) {
        if (rejoining_.count(seq)) returned.push_back(seq);
    }
    sql.forget_removals(returned, export_name);
    transaction.commit();
    return members_.settle_pending();
}

int64_t StateStore::count_todo() { return members_.count(MemberState::todo); }

std::vector<ReportedMember> StateStore::reported_members(const std::vector<std::string>& sources) {
    auto source_name = [&](int64_t index) {
        return index >= 0 && index < static_cast<int64_t>(sources.size()) ? sources[index] : std::string();
    };
    std::vector<ReportedMember> out;
    auto rejects = db_.prepare("SELECT source, line, COALESCE(email, ''), reason FROM rejects ORDER BY source, line");
    while (rejects.step()) {
        out.push_back(
            {source_name(rejects.integer(0)), rejects.integer(1), rejects.text(2), "invalid", rejects.text(3)});
    }
    // The state in memory is what counts: a reason written by outcomes whose transaction
    // failed can stay in refusals (the TEMP tables keep no rollback journal).
    std::vector<int64_t> seqs;
    std::map<int64_t, std::pair<const char*, std::string>> outcomes;  // by seq: outcome, reason
    auto refused = db_.prepare("SELECT seq, reason FROM refusals ORDER BY seq");
    while (refused.step()) {
        const int64_t seq = refused.integer(0);
        const char* outcome = members_.has(seq, MemberState::rejected)     ? "rejected"
                              : members_.has(seq, MemberState::suppressed) ? "suppressed"
                                                                           : nullptr;
        if (!outcome) continue;
        seqs.push_back(seq);
        outcomes[seq] = {outcome, refused.text(1)};
    }
    staged_.visit(seqs, [&](const StagedRow& row) {
        auto& [outcome, reason] = outcomes[row.seq];
        out.push_back(
            {source_name(row.source), row.line, std::string(row.key_value_or_key()), outcome, std::move(reason)});
    });
    return out;
}

}  // namespace segpush
