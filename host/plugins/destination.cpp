#include "plugins/destination.hpp"

#include <cstring>

namespace segpush {

namespace {

const char* status_class(segpush_status status) {
    switch (status) {
        case SEGPUSH_RETRY: return "temporary failure";
        case SEGPUSH_ERR_CONFIG: return "configuration refused";
        case SEGPUSH_ERR_AUTH: return "credentials refused";
        case SEGPUSH_ERR_DATA: return "request refused";
        case SEGPUSH_ERR_CANCELLED: return "cancelled";
        default: return "plugin error";
    }
}

// An error as the host hands it to the plugin: zeroed, struct_size this host's.
segpush_error fresh_error() {
    segpush_error error{};
    error.struct_size = sizeof error;
    return error;
}

// An outcome list as the host hands it to the plugin: zeroed, struct_size this host's, so a
// plugin built against a later minor writes none of its newer fields past our struct.
segpush_outcomes fresh_outcomes() {
    segpush_outcomes outcomes{};
    outcomes.struct_size = sizeof outcomes;
    return outcomes;
}

// The fixed-size texts are read only up to their size: a plugin may have filled them to the end.
PluginCallResult result_of(segpush_status status, const segpush_error& error) {
    PluginCallResult result;
    result.status = status;
    if (status == SEGPUSH_OK) return result;
    result.message.assign(error.message, strnlen(error.message, sizeof error.message));
    if (result.message.empty()) result.message = "(no message)";
    result.field.assign(error.field, strnlen(error.field, sizeof error.field));
    result.retry_after_ms = error.retry_after_ms;
    result.vendor_code = error.vendor_code;
    return result;
}

// A status this host does not know (a later minor's) is RETRY: never counted as delivered.
MemberState member_state(segpush_record_status status) {
    switch (status) {
        case SEGPUSH_RECORD_ACCEPTED: return MemberState::done;
        case SEGPUSH_RECORD_PENDING: return MemberState::pending;
        case SEGPUSH_RECORD_REJECTED: return MemberState::rejected;
        case SEGPUSH_RECORD_SUPPRESSED: return MemberState::suppressed;
        default: return MemberState::todo;
    }
}

// Copies a plugin's outcome list into host memory and hands it back to the plugin.
std::vector<MemberOutcome> take_outcomes(segpush_outcomes& outcomes) {
    std::vector<MemberOutcome> out;
    out.reserve(outcomes.items ? outcomes.count : 0);
    const char* const* receipts = outcomes.items && SEGPUSH_HAS_FIELD(&outcomes, segpush_outcomes, receipts)
                                      ? outcomes.receipts
                                      : nullptr;
    // A plugin may point every record a receipt covers at the same text (ours does): copied
    // once, then shared. Equal texts behind different pointers are simply copied each.
    const char* last_receipt = nullptr;
    SharedText last_copy;
    for (size_t i = 0; i < outcomes.count && outcomes.items; ++i) {
        const auto& item = outcomes.items[i];
        const char* receipt = receipts ? receipts[i] : nullptr;
        if (receipt != last_receipt) {
            last_copy = receipt ? SharedText(receipt) : SharedText();
            last_receipt = receipt;
        }
        out.push_back({static_cast<int64_t>(item.record_id), member_state(item.status),
                       item.reason ? std::string(item.reason) : std::string(), last_copy});
    }
    if (outcomes.release) outcomes.release(&outcomes);
    return out;
}

segpush_batch abi_batch(const BatchView& view) {
    return {sizeof(segpush_batch),
            view.n_fields,
            view.record_ids->size(),
            view.record_ids->data(),
            view.values->data(),
            view.action,
            view.removed_at && !view.removed_at->empty() ? view.removed_at->data() : nullptr};
}

// Calls `call(outcomes, error)` with fresh host-owned structs and returns what it reported.
template <typename Call>
OutcomesResult call_with_outcomes(Call&& call) {
    segpush_outcomes outcomes = fresh_outcomes();
    segpush_error error = fresh_error();
    const segpush_status status = call(&outcomes, &error);
    OutcomesResult result;
    result.outcomes = take_outcomes(outcomes);
    result.call = result_of(status, error);
    return result;
}

}  // namespace

std::string PluginCallResult::describe(const std::string& what) const {
    return what + ": " + status_class(status) + ": " + message;
}

DestinationExport::~DestinationExport() { abort(); }

OutcomesResult DestinationExport::push(const BatchView& batch) {
    const segpush_batch records = abi_batch(batch);
    return call_with_outcomes([&](segpush_outcomes* outcomes, segpush_error* error) {
        return api_.push_batch(handle_, &records, outcomes, error);
    });
}

OutcomesResult DestinationExport::collect() {
    if (!api_.collect_outcomes) return {};
    return call_with_outcomes([&](segpush_outcomes* outcomes, segpush_error* error) {
        return api_.collect_outcomes(handle_, outcomes, error);
    });
}

OutcomesResult DestinationExport::resume(const BatchView& batch, const std::vector<const char*>& receipts) {
    const segpush_batch records = abi_batch(batch);
    return call_with_outcomes([&](segpush_outcomes* outcomes, segpush_error* error) {
        return api_.resume_pending(handle_, &records, receipts.data(), outcomes, error);
    });
}

OutcomesResult DestinationExport::finish() {
    OutcomesResult result = call_with_outcomes(
        [&](segpush_outcomes* outcomes, segpush_error* error) { return api_.finish_export(handle_, outcomes, error); });
    if (result.call.status != SEGPUSH_RETRY) handle_ = nullptr;  // the plugin freed it
    return result;
}

void DestinationExport::abort() {
    if (!handle_) return;
    api_.abort_export(handle_);
    handle_ = nullptr;
}

std::unique_ptr<DestinationConnection> DestinationConnection::open(const LoadedPlugin& plugin,
                                                                   const std::string& settings_json,
                                                                   PluginCallResult& result) {
    segpush_connection* handle = nullptr;  // the ABI defines it only on OK
    segpush_error error = fresh_error();
    const segpush_status status = plugin.api.open_connection(settings_json.c_str(), &handle, &error);
    result = result_of(status, error);
    if (status != SEGPUSH_OK) return nullptr;
    return std::unique_ptr<DestinationConnection>(new DestinationConnection(plugin.api, handle));
}

DestinationConnection::~DestinationConnection() { api_.close_connection(handle_); }

PluginCallResult DestinationConnection::check() {
    segpush_error error = fresh_error();
    const segpush_status status = api_.check_connection(handle_, &error);
    return result_of(status, error);
}

std::unique_ptr<DestinationExport> DestinationConnection::begin_export(const std::string& settings_json,
                                                                       const std::vector<std::string>& field_ids,
                                                                       ExportObserver* observer,
                                                                       PluginCallResult& result) {
    std::vector<const char*> ids;
    for (const auto& id : field_ids) ids.push_back(id.c_str());
    segpush_export* handle = nullptr;
    segpush_error error = fresh_error();
    const segpush_status status = api_.begin_export(handle_, settings_json.c_str(), ids.data(), ids.size(), observer,
                                                    &handle, &error);
    result = result_of(status, error);
    if (status != SEGPUSH_OK) return nullptr;
    return std::make_unique<DestinationExport>(api_, handle);
}

PluginCallResult validate_plugin_settings(const LoadedPlugin& plugin, const char* kind,
                                          const std::string& settings_json) {
    if (!plugin.api.validate_settings) return {};
    segpush_error error = fresh_error();
    const segpush_status status = plugin.api.validate_settings(kind, settings_json.c_str(), &error);
    return result_of(status, error);
}

}  // namespace segpush
