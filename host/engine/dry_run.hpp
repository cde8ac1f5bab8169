#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch_packing.hpp"

namespace segpush {

class RunMembers;
struct RecordPlan;

// A field's value as a run sends it: nullopt when absent (left alone at the destination).
struct ShownValue {
    std::string field;
    std::optional<std::string> value;
};

struct FieldChange {
    std::string field;
    std::optional<std::string> before, after;
};

// A member a dry run shows. Personal data: shown only on request (--show), never logged.
struct ShownMember {
    std::string key;                   // as the segment wrote it
    std::vector<ShownValue> values;    // new: the values it would be sent
    bool before_recorded = true;       // changed: false when the values last sent are not known
    std::vector<FieldChange> changes;  // changed: each field whose value would change
    bool unsubscribe = false;          // leaving: on_leave would unsubscribe them (else they are kept)
};

// The push_batch calls a run would make, by the plugin's declared limits and the run's own
// batching (BatchPacking), if the destination takes every batch the first time: retries,
// and what a plugin does inside a batch (pacing, polls, reads of its own), come on top.
struct RequestPlan {
    uint32_t max_records_per_batch = 0;
    uint64_t max_bytes_per_batch = 0;  // 0: no limit
    int64_t upsert_batches = 0, upsert_records = 0;
    int64_t remove_batches = 0, remove_records = 0;
    // Members an earlier, stopped run left awaiting confirmation, with the same values: the
    // run asks the plugin to confirm them (resume_pending calls) instead of sending them.
    int64_t resume_calls = 0, resumed_records = 0;
    int64_t too_large_records = 0;  // refused without being sent: larger than one request may be
};

// What a dry run found it would send.
struct DryRunPreview {
    int shown_limit = 0;    // members shown per class
    bool email_key = true;  // the key is an email: JSON names it "email", else "key"
    std::vector<ShownMember> new_members, changed, leaving;
    RequestPlan requests;
};

// Builds a dry run's preview: RunMembers::diff hands it the changed members (changed()),
// then build() reads the members still to send in seq order, once, for the requests and the
// members shown.
class DryRunPreviewBuilder {
public:
    DryRunPreviewBuilder(const RecordPlan& plan, BatchPacking packing, int show, bool removes_leavers);

    // For RunMembers::diff: the member at `seq` changed; `sent_values` as the delivered state has them.
    void changed(int64_t seq, std::string_view sent_values);
    // `resumed`: the seqs (ascending) a run would ask the plugin to confirm; `can_resume`: it has
    // resume_pending.
    DryRunPreview build(RunMembers& members, const std::vector<int64_t>& resumed, bool can_resume);

private:
    const RecordPlan& plan_;
    const BatchPacking packing_;
    const int show_;
    const bool removes_leavers_;
    std::vector<bool> changed_;                                          // by seq
    std::vector<std::pair<int64_t, std::string>> shown_changed_before_;  // the first `show` changed: seq, values
};

}  // namespace segpush
