#pragma once

#include <atomic>
#include <optional>
#include <string>

#include "config/model.hpp"
#include "engine/dry_run.hpp"
#include "state/state_store.hpp"

namespace segpush {

class PluginRegistry;

struct RunOptions {
    bool dry_run = false;            // read, map, validate and diff; never call the destination
    bool full = false;               // send every member, ignoring what was delivered before
    bool allow_mass_change = false;  // go ahead once past the guard against mass change
    bool retry_rejected = false;     // send members refused before even when retry_rejected_runs says to hold them
    bool progress_on_terminal = false;
    int show = 0;  // in a dry run, members shown per class (new, changed, leaving)
};

struct RunSummary {
    int64_t run_id = 0;
    RunStatus status = RunStatus::running;
    RunCounts counts;
    std::string error;
    std::string report_path;
    // How counts and the report name the members' key: "email", or the key field's id.
    std::string key_name = "email";
    double seconds = 0;
    // The guard against mass change stopped the run before it sent anything (failed_permanent).
    bool guarded = false;
    // What the guard found over the export's limits, also when it let the run go on
    // (--dry-run, --allow-mass-change); empty when nothing was.
    std::string mass_change;
    std::optional<DryRunPreview> preview;  // a dry run's, once it compared the members
};

// Runs one export end to end: stream the segments, map and validate each row, stage members
// (de-duplicated by key, as its field's type says; the first row wins), diff against what was delivered,
// push new and changed members (and leavers, with on_leave: unsubscribe) in batches within
// the plugin's limits with bounded concurrency, and record every outcome as it arrives.
//
// `cancel` is polled throughout: once set, no new batch starts, in-flight batches finish,
// their outcomes are saved and the run ends as cancelled.
class ExportRunner {
public:
    ExportRunner(const Config& config, const ExportConfig& export_config, const PluginRegistry& plugins,
                 StateStore& state, const std::atomic<bool>& cancel);

    // Throws AlreadyRunning when another live process runs this export; every other problem
    // ends up in the summary (and the run history).
    RunSummary run(const RunOptions& options);

private:
    const Config& config_;
    const ExportConfig& export_;
    const PluginRegistry& plugins_;
    StateStore& state_;
    const std::atomic<bool>& cancel_;
};

}  // namespace segpush
