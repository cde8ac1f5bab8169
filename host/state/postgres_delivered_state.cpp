#include "state/postgres_delivered_state.hpp"

#include <algorithm>
#include <ctime>
#include <exception>
#include <string>
#include <vector>

#include "log/log.hpp"
#include "state/receipt_members.hpp"

namespace segpush {

namespace {

// Rows a visit fetches at a time: a visit of a million members never holds them all.
constexpr int kFetchRows = 10000;

// One-dimensional arrays in PostgreSQL's binary form (array_send), sent as one parameter each:
// a batch's thousands of members go to the server in a handful of parameters, in one statement
// per table, with no escaping. The alternative, COPY into a temporary table and then one INSERT
// from it, is as fast but takes a temporary table per connection and more statements per batch.
constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kBigintOid = 20;

class BinaryArray {
public:
    BinaryArray(uint32_t element_type, size_t count) : element_type_(element_type), count_(count) {}

    void add_bytes(std::string_view bytes) {
        put(static_cast<uint32_t>(bytes.size()));
        elements_.append(bytes);
    }
    void add_null() {
        put(0xffffffffu);  // length -1
        has_null_ = true;
    }
    void add(int64_t value) {
        put(8);
        put(static_cast<uint32_t>(static_cast<uint64_t>(value) >> 32));
        put(static_cast<uint32_t>(value));
    }

    // The array as the server reads it: header, dimension, then the elements.
    std::string encoded() const {
        std::string out;
        const auto put_to = [&out](uint32_t value) {
            for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
        };
        put_to(count_ == 0 ? 0 : 1);  // dimensions: an empty array has none
        put_to(has_null_ ? 1 : 0);
        put_to(element_type_);
        if (count_ > 0) {
            put_to(static_cast<uint32_t>(count_));
            put_to(1);  // lower bound
        }
        out.append(elements_);
        return out;
    }

private:
    void put(uint32_t value) {
        for (int shift = 24; shift >= 0; shift -= 8) elements_.push_back(static_cast<char>(value >> shift));
    }

    uint32_t element_type_;
    size_t count_;
    bool has_null_ = false;
    std::string elements_;
};

std::string bytea_array(const std::vector<std::string_view>& values) {
    BinaryArray array(kByteaOid, values.size());
    for (const std::string_view value : values) array.add_bytes(value);
    return array.encoded();
}

std::vector<std::string_view> sorted_unique(std::vector<std::string_view> keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
}

// What a batch leaves of one delivered member: its row, or (removed) no row.
struct DeliveredRow {
    std::string_view key, key_value, sent_values;
    uint64_t hash = 0;
    int64_t run_id = 0;
    bool removed = false;
};

std::string run_status_of(postgres::Connection& db, int64_t run_id, bool& found) {
    const postgres::Result status = db.exec("SELECT status FROM runs WHERE id=$1 FOR SHARE",
                                            postgres::Params().add(run_id));
    found = status.rows() == 1;
    return found ? std::string(status.text(0, 0)) : std::string();
}

}  // namespace

PostgresDeliveredState::PostgresDeliveredState(postgres::Connection& db, const StateOptions& options)
    : db_(db), options_(options) {}

void PostgresDeliveredState::retrying(const std::function<void()>& work) {
    db_.retrying(work, options_.patience, [](const postgres::Error& error) {
        log_line(LogLevel::warn, std::string("state database unreachable (") + error.what() + "); retrying");
    });
}

void PostgresDeliveredState::visit_rows(const std::string& query, const postgres::Params& params,
                                        const std::function<void(const postgres::Result& rows, int row)>& visit_row) {
    bool given = false;
    // A connection lost once rows were given: the visit cannot start again (its callback would
    // see those rows twice), so the error goes to the caller, once retrying has returned.
    std::exception_ptr lost_after_rows;
    retrying([&] {
        try {
            // Read only, so ended by the Transaction's rollback: the cursor's one snapshot of
            // the rows, and nothing to commit that a lost connection could lose.
            postgres::Transaction transaction(db_, postgres::Transaction::Access::read_only);
            db_.exec("DECLARE visit_cursor NO SCROLL CURSOR FOR " + query, params);
            for (;;) {
                const postgres::Result rows = db_.exec("FETCH " + std::to_string(kFetchRows) + " FROM visit_cursor");
                for (int row = 0; row < rows.rows(); ++row) {
                    given = true;
                    visit_row(rows, row);
                }
                if (rows.rows() < kFetchRows) break;
            }
        } catch (const postgres::Error& error) {
            if (!given || !error.connection_lost) throw;
            lost_after_rows = std::current_exception();
        }
    });
    if (lost_after_rows) std::rethrow_exception(lost_after_rows);
}

bool PostgresDeliveredState::nothing_recorded(const std::string& export_name) {
    bool nothing = true;
    retrying([&] {
        nothing = !db_.exec("SELECT EXISTS(SELECT 1 FROM delivered WHERE export=$1) OR "
                            "EXISTS(SELECT 1 FROM unconfirmed WHERE export=$1) OR "
                            "EXISTS(SELECT 1 FROM removals WHERE export=$1) OR "
                            "EXISTS(SELECT 1 FROM refused WHERE export=$1)",
                            postgres::Params().add(export_name))
                       .boolean(0, 0);
    });
    return nothing;
}

void PostgresDeliveredState::visit_delivered(const std::string& export_name,
                                             const std::function<void(const DeliveredMember&)>& visit) {
    // bytea orders byte by byte, as memcmp does, shorter first when one prefixes the other: the
    // primary key's order, read from its index.
    visit_rows(
        "SELECT member_key, key_value, hash, run_id, sent_values FROM delivered WHERE export=$1 "
        "ORDER BY member_key",
        postgres::Params().add(export_name), [&](const postgres::Result& rows, int row) {
            const std::string key = rows.bytes(row, 0), key_value = rows.bytes(row, 1);
            // NULL: no values recorded, which reads as empty.
            const std::string sent_values = rows.is_null(row, 4) ? std::string() : rows.bytes(row, 4);
            visit({key, key_value, static_cast<uint64_t>(rows.integer(row, 2)), rows.integer(row, 3), sent_values});
        });
}

void PostgresDeliveredState::visit_removals(
    const std::string& export_name, const std::function<void(std::string_view key, int64_t removed_at)>& visit) {
    visit_rows("SELECT member_key, removed_at FROM removals WHERE export=$1", postgres::Params().add(export_name),
               [&](const postgres::Result& rows, int row) { visit(rows.bytes(row, 0), rows.integer(row, 1)); });
}

void PostgresDeliveredState::visit_refused(const std::string& export_name,
                                           const std::function<void(const RefusedMember&)>& visit) {
    visit_rows(
        "SELECT member_key, hash, refusals, run_id FROM refused WHERE export=$1", postgres::Params().add(export_name),
        [&](const postgres::Result& rows, int row) {
            const std::string key = rows.bytes(row, 0);
            visit({key, static_cast<uint64_t>(rows.integer(row, 1)), rows.integer(row, 2), rows.integer(row, 3)});
        });
}

void PostgresDeliveredState::visit_open_receipts(
    const std::string& export_name, int64_t since_run, int64_t before_run,
    const std::function<void(std::string_view receipt, std::string_view members)>& visit) {
    visit_rows("SELECT receipt, members FROM unconfirmed WHERE export=$1 AND run_id<$2 AND run_id>=$3 "
               "AND NOT confirmed ORDER BY run_id, id",
               postgres::Params().add(export_name).add(before_run).add(since_run),
               [&](const postgres::Result& rows, int row) { visit(rows.bytes(row, 0), rows.bytes(row, 1)); });
}

void PostgresDeliveredState::forget_receipts_before(const std::string& export_name, int64_t run_id) {
    retrying([&] {
        db_.exec("DELETE FROM unconfirmed WHERE export=$1 AND run_id<$2 AND NOT confirmed",
                 postgres::Params().add(export_name).add(run_id));
    });
}

std::vector<int64_t> PostgresDeliveredState::record(const std::string& export_name, int64_t run_id,
                                                    const DeliveryBatch& batch) {
    std::vector<int64_t> new_receipts;
    if (batch.empty()) return new_receipts;
    const auto now = static_cast<int64_t>(std::time(nullptr));
    // Tried again from the start when the connection is lost, even after a COMMIT whose
    // acknowledgement was lost: every statement leaves the same rows when run twice (upserts,
    // deletes, and receipts unique by what identifies them).
    retrying([&] {
        new_receipts.clear();
        postgres::Transaction transaction(db_);
        // Fencing: the run's row, held against a concurrent close until this commits. A run
        // without a row (the delivered state used on its own) records as it is.
        bool run_known = false;
        const std::string status = run_status_of(db_, run_id, run_known);
        if (run_known && status != "running") {
            throw LeaseLost("run " + std::to_string(run_id) + " of export '" + export_name +
                            "' is no longer this process's: another replica closed it (" + status +
                            ") after its lease ran out; nothing of this batch was recorded");
        }
        if (batch.settles_run) {
            db_.exec("DELETE FROM unconfirmed WHERE export=$1 AND run_id=$2 AND NOT confirmed",
                     postgres::Params().add(export_name).add(run_id));
        }

        // A confirmed receipt's row goes at once, its members delivered here: no row is kept
        // confirmed to be folded later, as the SQLite backend does (an upsert is cheap here).
        // The delivered rows this batch leaves, confirmed receipts' members first (as delivered by
        // the run that sent them), oldest receipt first, then the batch's own deliveries: the
        // last word on a key wins.
        std::vector<DeliveredRow> rows;
        std::vector<std::string> receipt_members;  // what the confirmed receipts' rows point into
        if (!batch.receipts_confirmed.empty()) {
            BinaryArray ids(kBigintOid, batch.receipts_confirmed.size());
            for (const int64_t id : batch.receipts_confirmed) ids.add(id);
            const postgres::Result confirmed = db_.exec(
                "DELETE FROM unconfirmed WHERE export=$1 AND id = ANY($2::bigint[]) "
                "RETURNING id, run_id, members",
                postgres::Params().add(export_name).add_bytes(ids.encoded()));
            std::vector<std::pair<int64_t, int>> by_id;
            for (int row = 0; row < confirmed.rows(); ++row) by_id.emplace_back(confirmed.integer(row, 0), row);
            std::sort(by_id.begin(), by_id.end());
            receipt_members.reserve(by_id.size());  // no reallocation: rows keep views into these strings
            for (const auto& [id, row] : by_id) {
                const int64_t receipt_run = confirmed.integer(row, 1);
                receipt_members.push_back(confirmed.bytes(row, 2));
                decode_receipt_members(receipt_members.back(),
                                       [&](uint64_t hash, std::string_view key, std::string_view key_value,
                                           std::string_view sent_values) {
                                           rows.push_back({key, key_value, sent_values, hash, receipt_run, false});
                                       });
            }
        }
        if (!batch.receipts_forgotten.empty()) {
            BinaryArray ids(kBigintOid, batch.receipts_forgotten.size());
            for (const int64_t id : batch.receipts_forgotten) ids.add(id);
            db_.exec("DELETE FROM unconfirmed WHERE export=$1 AND id = ANY($2::bigint[])",
                     postgres::Params().add(export_name).add_bytes(ids.encoded()));
        }
        std::vector<std::string_view> removed_by_us;
        for (size_t i = 0; i < batch.delivered_count(); ++i) {
            const DeliveryBatch::Member member = batch.delivered(i);
            rows.push_back({member.key, member.key_value, member.removed ? std::string_view() : member.sent_values,
                            member.hash, run_id, member.removed});
            if (member.removed_by_us) removed_by_us.push_back(member.key);
        }
        // In key order, one row per key (one statement may not change a row twice), which also
        // takes the rows' locks in the same order in every transaction.
        std::stable_sort(rows.begin(), rows.end(),
                         [](const DeliveredRow& a, const DeliveredRow& b) { return a.key < b.key; });
        size_t kept = 0, upserts = 0;
        for (size_t i = 0; i < rows.size(); ++i) {
            if (i + 1 < rows.size() && rows[i + 1].key == rows[i].key) continue;  // a later word on the key
            rows[kept++] = rows[i];
            if (!rows[kept - 1].removed) ++upserts;
        }
        rows.resize(kept);
        if (upserts > 0) {
            BinaryArray keys(kByteaOid, upserts), key_values(kByteaOid, upserts), hashes(kBigintOid, upserts),
                runs(kBigintOid, upserts), values(kByteaOid, upserts);
            for (const DeliveredRow& row : rows) {
                if (row.removed) continue;
                keys.add_bytes(row.key);
                key_values.add_bytes(row.key_value);
                hashes.add(static_cast<int64_t>(row.hash));
                runs.add(row.run_id);
                if (row.sent_values.empty()) {
                    values.add_null();  // none recorded: NULL takes no room
                } else {
                    values.add_bytes(row.sent_values);
                }
            }
            db_.exec("INSERT INTO delivered(export, member_key, key_value, hash, run_id, sent_values) "
                     "SELECT $1, * FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bytea[]) "
                     "ON CONFLICT (export, member_key) DO UPDATE SET key_value=excluded.key_value, "
                     "hash=excluded.hash, run_id=excluded.run_id, sent_values=excluded.sent_values",
                     postgres::Params()
                         .add(export_name)
                         .add_bytes(keys.encoded())
                         .add_bytes(key_values.encoded())
                         .add_bytes(hashes.encoded())
                         .add_bytes(runs.encoded())
                         .add_bytes(values.encoded()));
        }
        if (upserts < rows.size()) {
            std::vector<std::string_view> removed;
            for (const DeliveredRow& row : rows)
                if (row.removed) removed.push_back(row.key);
            db_.exec("DELETE FROM delivered WHERE export=$1 AND member_key = ANY($2::bytea[])",
                     postgres::Params().add(export_name).add_bytes(bytea_array(removed)));
        }
        if (!removed_by_us.empty()) {
            db_.exec("INSERT INTO removals(export, member_key, removed_at, run_id) "
                     "SELECT $1, key, $3, $4 FROM unnest($2::bytea[]) AS key "
                     "ON CONFLICT (export, member_key) DO UPDATE SET removed_at=excluded.removed_at, "
                     "run_id=excluded.run_id",
                     postgres::Params()
                         .add(export_name)
                         .add_bytes(bytea_array(sorted_unique(removed_by_us)))
                         .add(now)
                         .add(run_id));
        }
        // Forgotten removals after the batch's removals, forgotten refusals before its refusals,
        // as the SQLite backend applies them.
        if (batch.removals_forgotten_count() > 0) {
            std::vector<std::string_view> keys;
            for (size_t i = 0; i < batch.removals_forgotten_count(); ++i) keys.push_back(batch.removal_forgotten(i));
            db_.exec("DELETE FROM removals WHERE export=$1 AND member_key = ANY($2::bytea[])",
                     postgres::Params().add(export_name).add_bytes(bytea_array(keys)));
        }
        if (batch.refusals_forgotten_count() > 0) {
            std::vector<std::string_view> keys;
            for (size_t i = 0; i < batch.refusals_forgotten_count(); ++i) keys.push_back(batch.refusal_forgotten(i));
            db_.exec("DELETE FROM refused WHERE export=$1 AND member_key = ANY($2::bytea[])",
                     postgres::Params().add(export_name).add_bytes(bytea_array(keys)));
        }
        if (batch.refused_count() > 0) {
            // The last refusal of a key in the batch wins, one row per key.
            std::vector<size_t> order(batch.refused_count());
            for (size_t i = 0; i < order.size(); ++i) order[i] = i;
            std::stable_sort(order.begin(), order.end(),
                             [&](size_t a, size_t b) { return batch.refused(a).key < batch.refused(b).key; });
            std::vector<RefusedMember> refusals;
            for (size_t i = 0; i < order.size(); ++i) {
                if (i + 1 < order.size() && batch.refused(order[i + 1]).key == batch.refused(order[i]).key) continue;
                refusals.push_back(batch.refused(order[i]));
            }
            BinaryArray keys(kByteaOid, refusals.size()), hashes(kBigintOid, refusals.size()),
                counts(kBigintOid, refusals.size());
            for (const RefusedMember& refusal : refusals) {
                keys.add_bytes(refusal.key);
                hashes.add(static_cast<int64_t>(refusal.hash));
                counts.add(refusal.refusals);
            }
            db_.exec("INSERT INTO refused(export, member_key, hash, refusals, run_id) "
                     "SELECT $1, key, hash, refusals, $5 FROM unnest($2::bytea[], $3::bigint[], $4::bigint[]) "
                     "AS refusal(key, hash, refusals) "
                     "ON CONFLICT (export, member_key) DO UPDATE SET hash=excluded.hash, "
                     "refusals=excluded.refusals, run_id=excluded.run_id",
                     postgres::Params()
                         .add(export_name)
                         .add_bytes(keys.encoded())
                         .add_bytes(hashes.encoded())
                         .add_bytes(counts.encoded())
                         .add(run_id));
        }
        // One statement a receipt (a batch holds one per import it started, a few at most), so
        // that each id comes back beside its receipt. Recorded again after a lost COMMIT
        // acknowledgement, a receipt finds its row and gives back the id it already has.
        for (size_t i = 0; i < batch.receipt_count(); ++i) {
            const DeliveryBatch::Receipt receipt = batch.receipt(i);
            const postgres::Result id = db_.exec(
                "INSERT INTO unconfirmed(export, run_id, first_seq, last_seq, receipt, members) "
                "VALUES($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (export, run_id, first_seq, last_seq, receipt) DO UPDATE SET "
                "members=excluded.members RETURNING id",
                postgres::Params()
                    .add(export_name)
                    .add(run_id)
                    .add(receipt.first_seq)
                    .add(receipt.last_seq)
                    .add_bytes(receipt.receipt)
                    .add_bytes(receipt.members));
            new_receipts.push_back(id.integer(0, 0));
        }
        transaction.commit();
    });
    return new_receipts;
}

}  // namespace segpush
