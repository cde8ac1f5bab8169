#pragma once

#include <segpush/plugin.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/member_states.hpp"
#include "plugins/registry.hpp"

namespace segpush {

// The host's side of the plugin ABI: every call into a plugin's destination functions goes
// through here, so the rules of plugin.h are kept in one place. The host zeroes and stamps
// struct_size on everything it allocates (errors, outcome lists), copies what a plugin returns
// into host memory before handing it back through release, reads a later minor's fields only
// where SEGPUSH_HAS_FIELD says they are there, and releases the plugin's handles on every path
// (RAII): an export is aborted unless it finished, a connection is closed when it goes.
//
// These classes decide nothing about retries or run outcomes: the engine does.

// What a call returned: the plugin's status and, when not OK, its error.
struct PluginCallResult {
    segpush_status status = SEGPUSH_OK;
    std::string message;          // never empty when status is not OK
    std::string field;            // with SEGPUSH_ERR_CONFIG: the settings key at fault, if named
    uint32_t retry_after_ms = 0;  // the earliest to try again that the plugin gave (plugin.h: with RETRY), or 0
    int32_t vendor_code = 0;      // the destination's own code (an HTTP status), 0 when none

    bool ok() const { return status == SEGPUSH_OK; }
    // Worth trying the same call again: transient trouble, or the plugin's own failure.
    bool retryable() const { return status == SEGPUSH_RETRY || status == SEGPUSH_ERR_INTERNAL; }
    // "<what>: <class of failure>: <message>", for logs and run errors.
    std::string describe(const std::string& what) const;
};

// A call's result and the per-record outcomes the plugin reported with it, in host memory.
struct OutcomesResult {
    PluginCallResult call;
    std::vector<MemberOutcome> outcomes;
};

// The records of one call, as the plugin sees them: borrowed for the call.
struct BatchView {
    uint32_t n_fields = 0;
    const std::vector<uint64_t>* record_ids = nullptr;
    const std::vector<segpush_value>* values = nullptr;  // row-major, n_fields a record
    const std::vector<int64_t>* removed_at = nullptr;    // empty, or parallel to record_ids
    uint32_t action = SEGPUSH_ACTION_UPSERT;
};

// One begun export. Its calls follow plugin.h's threading: push() may run on several threads
// at once (up to the plugin's max_concurrent_pushes); the others are serial. Aborted when
// destroyed unless finish() ended it.
class DestinationExport {
public:
    DestinationExport(const segpush_plugin& api, segpush_export* handle) : api_(api), handle_(handle) {}
    DestinationExport(const DestinationExport&) = delete;
    DestinationExport& operator=(const DestinationExport&) = delete;
    ~DestinationExport();

    OutcomesResult push(const BatchView& batch);
    // Final outcomes of records pushed earlier, as far as they are known now; OK with none
    // when the plugin has no collect_outcomes.
    OutcomesResult collect();
    bool can_collect() const { return api_.collect_outcomes != nullptr; }
    // Asks the destination about records an earlier run left pending; receipts parallel to the
    // batch's records. Only when can_resume().
    OutcomesResult resume(const BatchView& batch, const std::vector<const char*>& receipts);
    bool can_resume() const { return api_.resume_pending != nullptr; }
    // The plugin's id, as the configuration names it.
    std::string plugin_id() const { return api_.id ? api_.id : ""; }
    // Waits for every pending record. Only a RETRY leaves the export open (to finish again or
    // abort); any other result ends it.
    OutcomesResult finish();
    // Drops the export without waiting for what is pending. Idempotent.
    void abort();

private:
    const segpush_plugin& api_;
    segpush_export* handle_;
};

// One open connection; closed when destroyed, after its export (which must not outlive it).
class DestinationConnection {
public:
    // Opens a connection with the resolved settings JSON; nullptr with `result` set when the
    // plugin refused.
    static std::unique_ptr<DestinationConnection> open(const LoadedPlugin& plugin, const std::string& settings_json,
                                                       PluginCallResult& result);
    DestinationConnection(const DestinationConnection&) = delete;
    DestinationConnection& operator=(const DestinationConnection&) = delete;
    ~DestinationConnection();

    PluginCallResult check();
    // Begins an export of `field_ids` (in the order of each record's values). `observer` gets
    // the plugin's progress and answers its cancellation polls; it must outlive the export.
    std::unique_ptr<DestinationExport> begin_export(const std::string& settings_json,
                                                    const std::vector<std::string>& field_ids, ExportObserver* observer,
                                                    PluginCallResult& result);

private:
    DestinationConnection(const segpush_plugin& api, segpush_connection* handle) : api_(api), handle_(handle) {}
    const segpush_plugin& api_;
    segpush_connection* handle_;
};

// The plugin's validate_settings for `kind` ("connection" or "export"): OK when it has none.
PluginCallResult validate_plugin_settings(const LoadedPlugin& plugin, const char* kind,
                                          const std::string& settings_json);

}  // namespace segpush
