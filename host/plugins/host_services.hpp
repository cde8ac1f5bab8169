#pragma once

#include <segpush/plugin.h>

#include <cstdint>
#include <string>

namespace segpush {

// What the host passes as begin_export's export_token: the run that receives the plugin's
// progress reports and answers its cancellation polls. Implemented by the engine.
class ExportObserver {
public:
    virtual ~ExportObserver() = default;
    virtual void on_plugin_progress(uint64_t done, uint64_t total, const std::string& message) = 0;
    virtual bool cancel_requested() const = 0;
};

// Per-plugin host_data: lets plugin log lines carry the plugin's name.
struct PluginHostContext {
    std::string label;  // the plugin id once known, the file name before
};

// The segpush_host table for one plugin; `context` must outlive every use of the table.
segpush_host make_host_services(PluginHostContext* context);

}  // namespace segpush
