#include "state/sqlite_delivered_state.hpp"

#include <ctime>

#include "state/receipt_members.hpp"

namespace segpush {

namespace {

// Values not recorded are stored as NULL, which takes no room in a row.
void bind_values(sqlite::Statement& statement, int index, std::string_view sent_values) {
    if (sent_values.empty()) {
        statement.bind_null(index);
    } else {
        statement.bind_blob_unowned(index, sent_values);
    }
}

}  // namespace

struct SqliteDeliveredState::Statements {
    explicit Statements(sqlite::Database& db)
        : remember_receipt(db.prepare("INSERT INTO unconfirmed(export, run_id, first_seq, last_seq, receipt, members) "
                                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")),
          forget_receipt(db.prepare("DELETE FROM unconfirmed WHERE id=?")),
          // 0 and 1 take no room in a record: the row is rewritten in place, its members untouched.
          confirm_receipt(db.prepare("UPDATE unconfirmed SET confirmed=1 WHERE id=?")),
          forget_run_receipts(db.prepare("DELETE FROM unconfirmed WHERE run_id=? AND confirmed=0")),
          deliver(db.prepare("INSERT INTO delivered_log(export, email_key, key_value, hash, run_id, removed, "
                             "sent_values) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")),
          remember_removal(db.prepare("INSERT OR REPLACE INTO removals(export, email_key, removed_at, run_id, reason) "
                                      "VALUES(?1, ?2, ?3, ?4, 'left the segment (on_leave: unsubscribe)')")),
          forget_removal(db.prepare("DELETE FROM removals WHERE export=?1 AND email_key=?2")),
          refuse(db.prepare("INSERT OR REPLACE INTO refused(export, email_key, hash, refusals, run_id) "
                            "VALUES(?1, ?2, ?3, ?4, ?5)")),
          forget_refusal(db.prepare("DELETE FROM refused WHERE export=?1 AND email_key=?2")) {}
    sqlite::Statement remember_receipt, forget_receipt, confirm_receipt, forget_run_receipts, deliver, remember_removal,
        forget_removal, refuse, forget_refusal;
};

SqliteDeliveredState::SqliteDeliveredState(sqlite::Database& db) : db_(db) {}
SqliteDeliveredState::~SqliteDeliveredState() = default;

bool SqliteDeliveredState::nothing_recorded(const std::string& export_name) {
    auto query = db_.prepare("SELECT EXISTS(SELECT 1 FROM delivered WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM delivered_log WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM unconfirmed WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM removals WHERE export=?1) OR "
                             "EXISTS(SELECT 1 FROM refused WHERE export=?1)");
    query.bind(1, export_name).step();
    return query.integer(0) == 0;
}

// The log, and the members of receipts kept confirmed (see the unconfirmed table), into
// delivered in key order, so that its pages are written each once: the receipts' members
// through a TEMP copy that SQLite sorts. The log holds at most one run's outcomes, since each
// run of the export folds it before it records any.
void SqliteDeliveredState::fold_log(const std::string& export_name) {
    // The TEMP database keeps no journal: rows an earlier fold that failed left there are gone
    // only once deleted, and would otherwise be folded into this export.
    db_.exec("DELETE FROM temp.confirmed_members;");
    auto confirmed = db_.prepare("SELECT run_id, members FROM unconfirmed WHERE export=?1 AND confirmed=1");
    confirmed.bind(1, export_name);
    bool any_confirmed = false;
    {
        auto copy = db_.prepare("INSERT INTO temp.confirmed_members(email_key, key_value, hash, run_id, sent_values) "
                                "VALUES(?, ?, ?, ?, ?)");
        while (confirmed.step()) {
            any_confirmed = true;
            const int64_t run = confirmed.integer(0);
            decode_receipt_members(confirmed.blob(1), [&](uint64_t hash, std::string_view key,
                                                          std::string_view key_value, std::string_view sent_values) {
                copy.bind_unowned(1, key).bind_unowned(2, key_value).bind(3, static_cast<int64_t>(hash)).bind(4, run);
                bind_values(copy, 5, sent_values);
                copy.run();
            });
        }
    }
    confirmed.reset();
    if (any_confirmed) {
        db_.prepare("INSERT INTO delivered(export, email_key, key_value, hash, run_id, sent_values) "
                    "SELECT ?1, email_key, key_value, hash, run_id, sent_values FROM temp.confirmed_members WHERE true "
                    "ORDER BY email_key "
                    "ON CONFLICT(export, email_key) DO UPDATE SET key_value=excluded.key_value, hash=excluded.hash, "
                    "run_id=excluded.run_id, sent_values=excluded.sent_values")
            .bind(1, export_name)
            .run();
        db_.exec("DELETE FROM temp.confirmed_members;");
        db_.prepare("DELETE FROM unconfirmed WHERE export=?1 AND confirmed=1").bind(1, export_name).run();
    }
    db_.prepare("INSERT INTO delivered(export, email_key, key_value, hash, run_id, sent_values) "
                "SELECT export, email_key, key_value, hash, run_id, sent_values FROM delivered_log "
                "WHERE export=?1 AND removed=0 ORDER BY email_key, rowid "
                "ON CONFLICT(export, email_key) DO UPDATE SET key_value=excluded.key_value, hash=excluded.hash, "
                "run_id=excluded.run_id, sent_values=excluded.sent_values")
        .bind(1, export_name)
        .run();
    db_.prepare("DELETE FROM delivered WHERE export=?1 AND email_key IN "
                "(SELECT email_key FROM delivered_log WHERE export=?1 AND removed=1)")
        .bind(1, export_name)
        .run();
    db_.prepare("DELETE FROM delivered_log WHERE export=?1").bind(1, export_name).run();
}

void SqliteDeliveredState::visit_delivered(const std::string& export_name,
                                           const std::function<void(const DeliveredMember&)>& visit) {
    {
        sqlite::Transaction transaction(db_);
        fold_log(export_name);
        transaction.commit();
    }
    // The fold's sort filled the TEMP cache; given back now, for what the caller builds next.
    sqlite3_db_release_memory(db_.handle());
    // The primary key's order: BINARY collation compares bytes as memcmp does.
    auto members = db_.prepare("SELECT email_key, key_value, hash, run_id, sent_values FROM delivered WHERE export=?1 "
                               "ORDER BY email_key");
    members.bind(1, export_name);
    while (members.step()) {
        // NULL (a row from before values were kept) reads as empty: not recorded.
        visit({members.blob(0), members.blob(1), static_cast<uint64_t>(members.integer(2)), members.integer(3),
               members.blob(4)});
    }
}

void SqliteDeliveredState::visit_removals(const std::string& export_name,
                                          const std::function<void(std::string_view key, int64_t removed_at)>& visit) {
    auto removals = db_.prepare("SELECT email_key, removed_at FROM removals WHERE export=?1");
    removals.bind(1, export_name);
    while (removals.step()) visit(removals.blob(0), removals.integer(1));
}

void SqliteDeliveredState::visit_refused(const std::string& export_name,
                                         const std::function<void(const RefusedMember&)>& visit) {
    auto refused = db_.prepare("SELECT email_key, hash, refusals, run_id FROM refused WHERE export=?1");
    refused.bind(1, export_name);
    while (refused.step()) {
        visit({refused.blob(0), static_cast<uint64_t>(refused.integer(1)), refused.integer(2), refused.integer(3)});
    }
}

void SqliteDeliveredState::visit_open_receipts(
    const std::string& export_name, int64_t since_run, int64_t before_run,
    const std::function<void(std::string_view receipt, std::string_view members)>& visit) {
    auto receipts = db_.prepare("SELECT receipt, members FROM unconfirmed WHERE export=?1 AND run_id<?2 AND run_id>=?3 "
                                "AND confirmed=0 ORDER BY run_id, id");
    receipts.bind(1, export_name).bind(2, before_run).bind(3, since_run);
    while (receipts.step()) visit(receipts.blob(0), receipts.blob(1));
}

void SqliteDeliveredState::forget_receipts_before(const std::string& export_name, int64_t run_id) {
    db_.prepare("DELETE FROM unconfirmed WHERE export=? AND run_id<? AND confirmed=0")
        .bind(1, export_name)
        .bind(2, run_id)
        .run();
}

std::vector<int64_t> SqliteDeliveredState::record(const std::string& export_name, int64_t run_id,
                                                  const DeliveryBatch& batch) {
    std::vector<int64_t> new_receipts;
    if (batch.empty()) return new_receipts;
    if (!statements_) statements_ = std::make_unique<Statements>(db_);
    Statements& sql = *statements_;
    const auto now = static_cast<int64_t>(std::time(nullptr));
    sqlite::Transaction transaction(db_);
    if (batch.settles_run) sql.forget_run_receipts.bind(1, run_id).run();
    for (const int64_t id : batch.receipts_confirmed) sql.confirm_receipt.bind(1, id).run();
    for (const int64_t id : batch.receipts_forgotten) sql.forget_receipt.bind(1, id).run();
    for (size_t i = 0; i < batch.delivered_count(); ++i) {
        const DeliveryBatch::Member member = batch.delivered(i);
        sql.deliver.bind_unowned(1, export_name)
            .bind_unowned(2, member.key)
            .bind_unowned(3, member.key_value)
            .bind(4, static_cast<int64_t>(member.hash))
            .bind(5, run_id)
            .bind(6, member.removed ? 1 : 0);
        bind_values(sql.deliver, 7, member.sent_values);
        sql.deliver.run();
        if (member.removed_by_us) {
            sql.remember_removal.bind_unowned(1, export_name)
                .bind_unowned(2, member.key)
                .bind(3, now)
                .bind(4, run_id)
                .run();
        }
    }
    for (size_t i = 0; i < batch.removals_forgotten_count(); ++i) {
        sql.forget_removal.bind_unowned(1, export_name).bind_unowned(2, batch.removal_forgotten(i)).run();
    }
    for (size_t i = 0; i < batch.refusals_forgotten_count(); ++i) {
        sql.forget_refusal.bind_unowned(1, export_name).bind_unowned(2, batch.refusal_forgotten(i)).run();
    }
    for (size_t i = 0; i < batch.refused_count(); ++i) {
        const RefusedMember refusal = batch.refused(i);
        sql.refuse.bind_unowned(1, export_name)
            .bind_unowned(2, refusal.key)
            .bind(3, static_cast<int64_t>(refusal.hash))
            .bind(4, refusal.refusals)
            .bind(5, run_id)
            .run();
    }
    for (size_t i = 0; i < batch.receipt_count(); ++i) {
        const DeliveryBatch::Receipt receipt = batch.receipt(i);
        sql.remember_receipt.bind(1, export_name)
            .bind(2, run_id)
            .bind(3, receipt.first_seq)
            .bind(4, receipt.last_seq)
            .bind_unowned(5, receipt.receipt)
            .bind_blob_unowned(6, receipt.members)
            .run();
        new_receipts.push_back(db_.last_insert_id());
    }
    transaction.commit();
    return new_receipts;
}

}  // namespace segpush
