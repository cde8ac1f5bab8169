#include "plugins/host_services.hpp"

#include "log/log.hpp"
#include "plugins/shared_budgets.hpp"

#ifndef SEGPUSH_VERSION
#define SEGPUSH_VERSION "0.0.0"
#endif

namespace segpush {

namespace {

void plugin_log(void* host_data, segpush_log_level level, const char* message) {
    const auto* context = static_cast<const PluginHostContext*>(host_data);
    LogLevel mapped = LogLevel::error;
    switch (level) {
        case SEGPUSH_LOG_DEBUG: mapped = LogLevel::debug; break;
        case SEGPUSH_LOG_INFO: mapped = LogLevel::info; break;
        case SEGPUSH_LOG_WARN: mapped = LogLevel::warn; break;
        default: break;
    }
    log_line(mapped, "[" + context->label + "] " + (message ? message : "(null)"));
}

void plugin_progress(void*, void* export_token, uint64_t done, uint64_t total, const char* message) {
    if (!export_token) return;
    static_cast<ExportObserver*>(export_token)->on_plugin_progress(done, total, message ? message : "");
}

int plugin_is_cancelled(void*, void* export_token) {
    return export_token && static_cast<const ExportObserver*>(export_token)->cancel_requested() ? 1 : 0;
}

// Budgets are process-wide, whichever plugin asks: a plugin's names carry its own prefix.
// Nothing may throw across the C ABI: a failure means "cannot share" (0) or no hold.
uint64_t plugin_reserve_slot(void*, const char* budget, uint64_t interval_ns) {
    try {
        return SharedBudgets::process().reserve_slot(budget, interval_ns);
    } catch (const std::exception&) {
        return 0;
    }
}

void plugin_hold_budget(void*, const char* budget, uint64_t until_ns) {
    try {
        SharedBudgets::process().hold_budget(budget, until_ns);
    } catch (const std::exception&) {
    }
}

}  // namespace

segpush_host make_host_services(PluginHostContext* context) {
    segpush_host host{};
    host.struct_size = sizeof(segpush_host);
    host.abi_major = SEGPUSH_ABI_MAJOR;
    host.abi_minor = SEGPUSH_ABI_MINOR;
    host.host_version = SEGPUSH_VERSION;
    host.host_data = context;
    host.log = plugin_log;
    host.progress = plugin_progress;
    host.is_cancelled = plugin_is_cancelled;
    host.reserve_slot = plugin_reserve_slot;
    host.hold_budget = plugin_hold_budget;
    return host;
}

}  // namespace segpush
