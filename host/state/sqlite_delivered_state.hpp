#pragma once

#include <memory>

#include "state/delivered_state.hpp"
#include "state/sqlite.hpp"

namespace segpush {

// The delivered state in the SQLite state file, over the connection a StateFile opened (its
// tables: delivered, delivered_log, removals, refused, unconfirmed; see state_file.cpp).
//
// Outcomes are appended to delivered_log as they arrive (sequential pages: a batch costs the
// WAL a few pages, where upserting into delivered, ordered by key, dirties a page per member)
// and folded into delivered in key order, each page written once, when the export's members
// are next visited. The log is committed with the outcomes, so it is as much a checkpoint as
// delivered itself.
class SqliteDeliveredState : public DeliveredState {
public:
    // `db` must have the state schema (StateFile) and outlive this object.
    explicit SqliteDeliveredState(sqlite::Database& db);
    ~SqliteDeliveredState() override;

    bool nothing_recorded(const std::string& export_name) override;
    // Folds the log and the confirmed receipts into delivered first, in one transaction.
    void visit_delivered(const std::string& export_name,
                         const std::function<void(const DeliveredMember&)>& visit) override;
    void visit_removals(const std::string& export_name,
                        const std::function<void(std::string_view key, int64_t removed_at)>& visit) override;
    void visit_refused(const std::string& export_name, const std::function<void(const RefusedMember&)>& visit) override;
    void visit_open_receipts(
        const std::string& export_name, int64_t since_run, int64_t before_run,
        const std::function<void(std::string_view receipt, std::string_view members)>& visit) override;
    void forget_receipts_before(const std::string& export_name, int64_t run_id) override;
    std::vector<int64_t> record(const std::string& export_name, int64_t run_id, const DeliveryBatch& batch) override;

private:
    void fold_log(const std::string& export_name);
    sqlite::Database& db_;
    struct Statements;
    std::unique_ptr<Statements> statements_;  // prepared on the first record, kept
};

}  // namespace segpush
