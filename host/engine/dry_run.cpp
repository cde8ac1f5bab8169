#include "engine/dry_run.hpp"

#include <segpush/plugin.h>

#include <algorithm>

#include "engine/record.hpp"
#include "engine/run_members.hpp"

namespace segpush {

namespace {

// The values of an encoded record, by field; nullopt when the payload does not decode for
// these fields.
std::optional<std::vector<std::optional<std::string>>> decoded(const RecordPlan& plan, std::string_view payload) {
    std::vector<segpush_value> raw(plan.fields.size());
    if (!decode_record(payload, raw.size(), raw.data())) return std::nullopt;
    std::vector<std::optional<std::string>> values;
    values.reserve(raw.size());
    for (const segpush_value& value : raw) {
        if (value.data) {
            values.emplace_back(std::string(value.data, value.size));
        } else {
            values.emplace_back(std::nullopt);
        }
    }
    return values;
}

std::vector<ShownValue> shown_values(const RecordPlan& plan, const std::vector<std::optional<std::string>>& values) {
    std::vector<ShownValue> shown;
    for (size_t i = 0; i < values.size(); ++i) shown.push_back({plan.fields[i].id, values[i]});
    return shown;
}

}  // namespace

DryRunPreviewBuilder::DryRunPreviewBuilder(const RecordPlan& plan, BatchPacking packing, int show, bool removes_leavers)
    : plan_(plan), packing_(packing), show_(std::max(show, 0)), removes_leavers_(removes_leavers) {}

void DryRunPreviewBuilder::changed(int64_t seq, std::string_view sent_values) {
    if (seq >= static_cast<int64_t>(changed_.size())) changed_.resize(static_cast<size_t>(seq) + 1, false);
    changed_[static_cast<size_t>(seq)] = true;
    // The diff goes in key order, the preview shows the first changed members in segment
    // order: the values of the `show` lowest seqs so far are kept.
    if (show_ == 0) return;
    shown_changed_before_.emplace_back(seq, std::string(sent_values));
    if (shown_changed_before_.size() > static_cast<size_t>(show_)) {
        const auto highest = std::max_element(shown_changed_before_.begin(), shown_changed_before_.end(),
                                              [](const auto& a, const auto& b) { return a.first < b.first; });
        shown_changed_before_.erase(highest);
    }
}

DryRunPreview DryRunPreviewBuilder::build(RunMembers& members, const std::vector<int64_t>& resumed, bool can_resume) {
    DryRunPreview preview;
    preview.shown_limit = show_;
    RequestPlan& plan = preview.requests;
    plan.max_records_per_batch = packing_.max_records;
    plan.max_bytes_per_batch = packing_.max_bytes;
    if (can_resume && !resumed.empty()) {
        plan.resumed_records = static_cast<int64_t>(resumed.size());
        plan.resume_calls = (plan.resumed_records + packing_.max_records - 1) / packing_.max_records;
    }
    std::vector<int64_t> seqs;
    for (int64_t seq = 1; seq < members.end_seq(); ++seq) {
        if (members.is_todo(seq)) seqs.push_back(seq);
    }
    const auto is_changed = [&](int64_t seq) {
        return seq < static_cast<int64_t>(changed_.size()) && changed_[static_cast<size_t>(seq)];
    };
    const auto is_resumed = [&](int64_t seq) {
        return can_resume && std::binary_search(resumed.begin(), resumed.end(), seq);
    };
    // Run::next_batch's loop, counted: fetches of up to max_records members, each taken into
    // the batch until one does not fit.
    size_t fetched = 0, records = 0;
    uint64_t bytes = 0;
    uint32_t batch_action = SEGPUSH_ACTION_UPSERT;
    const auto close_batch = [&] {
        if (records > 0) ++(batch_action == SEGPUSH_ACTION_REMOVE ? plan.remove_batches : plan.upsert_batches);
        fetched = records = 0;
        bytes = 0;
    };
    const auto limit = static_cast<size_t>(show_);
    members.visit_staged(seqs, [&](const StagedRow& row) {
        const bool leaver = members.is_leaver(row.seq);
        if (leaver) {
            if (preview.leaving.size() < limit) {
                ShownMember shown;
                shown.key = std::string(row.key_value_or_key());
                shown.unsubscribe = removes_leavers_;
                preview.leaving.push_back(std::move(shown));
            }
            if (!removes_leavers_) return;  // kept: nothing is sent for them
        } else if (is_changed(row.seq)) {
            if (preview.changed.size() < limit) {
                ShownMember shown;
                shown.key = std::string(row.key_value_or_key());
                const auto after = decoded(plan_, row.payload);
                std::string_view before_values;
                for (const auto& [seq, values] : shown_changed_before_) {
                    if (seq == row.seq) before_values = values;
                }
                const auto before_payload = sent_payload(before_values, plan_.context_hash);
                const auto before = before_payload ? decoded(plan_, *before_payload) : std::nullopt;
                if (!before || !after) {
                    shown.before_recorded = false;
                    if (after) shown.values = shown_values(plan_, *after);
                } else {
                    for (size_t i = 0; i < after->size(); ++i) {
                        if ((*before)[i] != (*after)[i])
                            shown.changes.push_back({plan_.fields[i].id, (*before)[i], (*after)[i]});
                    }
                }
                preview.changed.push_back(std::move(shown));
            }
        } else if (preview.new_members.size() < limit) {
            ShownMember shown;
            shown.key = std::string(row.key_value_or_key());
            if (const auto values = decoded(plan_, row.payload)) shown.values = shown_values(plan_, *values);
            preview.new_members.push_back(std::move(shown));
        }
        if (is_resumed(row.seq)) return;  // confirmed, not sent
        const uint32_t action = leaver ? SEGPUSH_ACTION_REMOVE : SEGPUSH_ACTION_UPSERT;
        const uint64_t size = packing_.size_of(row.payload_or_key_value().size());
        if (packing_.fit(records, batch_action, bytes, action, size) == BatchPacking::Fit::next_batch) close_batch();
        ++fetched;
        if (packing_.fit(records, batch_action, bytes, action, size) == BatchPacking::Fit::too_large) {
            ++plan.too_large_records;
        } else {
            ++records;
            bytes += size;
            batch_action = action;
            ++(leaver ? plan.remove_records : plan.upsert_records);
        }
        if (fetched == packing_.max_records) close_batch();
    });
    close_batch();
    return preview;
}

}  // namespace segpush
