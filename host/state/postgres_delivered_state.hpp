#pragma once

#include <stdexcept>

#include "state/delivered_state.hpp"
#include "state/postgres.hpp"
#include "state/state_store.hpp"

namespace segpush {

// record() found its run closed by someone else: another replica saw the run's lease run out
// and closed it, so this process no longer owns the export's run and must stop. Nothing of the
// batch was recorded.
class LeaseLost : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The delivered state in the PostgreSQL state database (tables delivered, removals, refused,
// unconfirmed: postgres_schema.cpp), over the store's connection. Each call waits up to the
// options' patience for an unreachable server, trying its work again on a new connection; a
// visit is tried again only while it has given its callback no row. record() throws LeaseLost
// when the run is no longer this process's (its row in runs is closed).
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
    // Runs `query` through a cursor, calling visit_row for each row, never holding more than
    // one fetch's rows.
    void visit_rows(const std::string& query, const postgres::Params& params,
                    const std::function<void(const postgres::Result& rows, int row)>& visit_row);
    void retrying(const std::function<void()>& work);

    postgres::Connection& db_;
    StateOptions options_;
};

}  // namespace segpush
