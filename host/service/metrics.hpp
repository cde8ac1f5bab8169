#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "state/run_history.hpp"

namespace segpush {

// What `serve` exposes on /metrics, in the Prometheus text exposition format (version 0.0.4).
// Runs report here when they start and end, the push pipeline for every retry, the scheduler
// for every next run time. Every update takes one mutex for a few map operations, and a scrape
// formats a copy made under it: a slow scraper never holds up an export.
//
// The process has one (process()); tests make their own.
class ServiceMetrics {
public:
    using Clock = std::chrono::system_clock;

    static ServiceMetrics& process();

    // Makes the export's series exist at zero before its first run, so dashboards and alerts see
    // the export from the start rather than a missing series.
    void declare_export(const std::string& export_name);
    void run_started(const std::string& export_name);
    // A run that ended with a recorded status and counts; `finished` is when it ended.
    void run_finished(const std::string& export_name, RunStatus status, const RunCounts& counts, double seconds,
                      Clock::time_point finished);
    // A scheduled run that never became a run: `outcome` "skipped" (another process was running
    // the export) or "error" (it failed before the run history recorded it).
    void run_not_started(const std::string& export_name, const std::string& outcome);
    // A call to destination plugin `destination` that will be tried again; `code` is the
    // destination's own code the plugin reported (an HTTP status such as 429), 0 when none. A
    // plugin's codes are its own: past kMaxCodesPerDestination distinct ones, the rest count
    // as code "other", so a plugin cannot grow the exposition without bound.
    void retry(const std::string& destination, int32_t code);
    // nullopt: the export has no next time (it runs when its segment files change).
    void next_run(const std::string& export_name, std::optional<Clock::time_point> when);

    // Every metric, HELP and TYPE lines first, series sorted by labels.
    std::string exposition() const;

    static constexpr size_t kMaxCodesPerDestination = 32;

private:
    struct ExportSeries {
        int64_t in_progress = 0;
        std::map<std::string, int64_t> runs_by_status;
        std::optional<double> last_success_seconds;  // since the epoch
        std::optional<double> last_duration_seconds;
        std::optional<double> next_run_seconds;
        RunCounts records;
    };

    mutable std::mutex mutex_;
    std::map<std::string, ExportSeries> exports_;
    std::map<std::pair<std::string, std::string>, int64_t> retries_;  // (destination, code) -> count
};

// A label value as the exposition format quotes it: backslash, double quote and newline escaped.
std::string exposition_label_value(const std::string& value);
// A sample value: integers as integers, others with millisecond precision.
std::string exposition_number(double value);

}  // namespace segpush
