#pragma once

#include "state/delivered_state.hpp"
#include "state/postgres.hpp"
#include "state/state_store.hpp"

namespace segpush {

// The delivered state in the PostgreSQL state database (tables delivered, removals, refused,
// unconfirmed: postgres_schema.cpp), over the store's connection.
class PostgresDeliveredState : public DeliveredState {
public:
    // `db` must have the schema and outlive this object.
    PostgresDeliveredState(postgres::Connection& db, const StateOptions& options);

    bool nothing_recorded(const std::string& export_name) override;
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
    postgres::Connection& db_;
    StateOptions options_;
};

}  // namespace segpush
