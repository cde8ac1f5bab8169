#include "service/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <tuple>
#include <vector>

namespace segpush {

namespace {

// Every way a scheduled run can end, declared at zero with the export so that rate() and
// increase() see the first of each.
const char* const kRunOutcomes[] = {"succeeded",         "succeeded_with_rejections",
                                    "failed_will_retry", "failed_permanently",
                                    "cancelled",         "skipped",
                                    "other_replica",     "error"};

double epoch_seconds(ServiceMetrics::Clock::time_point when) {
    return std::chrono::duration<double>(when.time_since_epoch()).count();
}

// Writes one metric family: its HELP and TYPE lines, then each sample.
class FamilyWriter {
public:
    explicit FamilyWriter(std::ostringstream& out) : out_(out) {}

    void family(const std::string& name, const char* type, const std::string& help) {
        name_ = name;
        out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    }
    void sample(const std::vector<std::pair<const char*, std::string>>& labels, double value) {
        out_ << name_;
        if (!labels.empty()) {
            out_ << "{";
            for (size_t i = 0; i < labels.size(); ++i) {
                out_ << (i ? "," : "") << labels[i].first << "=\"" << exposition_label_value(labels[i].second) << "\"";
            }
            out_ << "}";
        }
        out_ << " " << exposition_number(value) << "\n";
    }

private:
    std::ostringstream& out_;
    std::string name_;
};

}  // namespace

ServiceMetrics& ServiceMetrics::process() {
    static ServiceMetrics metrics;
    return metrics;
}

void ServiceMetrics::declare_export(const std::string& export_name) {
    std::lock_guard<std::mutex> lock(mutex_);
    ExportSeries& series = exports_[export_name];
    for (const char* outcome : kRunOutcomes) series.runs_by_status.emplace(outcome, 0);
}

void ServiceMetrics::run_started(const std::string& export_name) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++exports_[export_name].in_progress;
}

void ServiceMetrics::run_finished(const std::string& export_name, RunStatus status, const RunCounts& counts,
                                  double seconds, Clock::time_point finished) {
    std::lock_guard<std::mutex> lock(mutex_);
    ExportSeries& series = exports_[export_name];
    if (series.in_progress > 0) --series.in_progress;
    ++series.runs_by_status[to_string(status)];
    series.last_duration_seconds = seconds;
    if (ran_to_end(status)) series.last_success_seconds = epoch_seconds(finished);
    series.records.sent += counts.sent;
    series.records.resumed += counts.resumed;
    series.records.pending += counts.pending;
    series.records.rejected_retried += counts.rejected_retried;
    series.records.rejected_held += counts.rejected_held;
    series.records.accepted += counts.accepted;
    series.records.rejected += counts.rejected;
    series.records.invalid += counts.invalid;
    series.records.suppressed += counts.suppressed;
    series.records.removed += counts.removed;
}

void ServiceMetrics::run_not_started(const std::string& export_name, const std::string& outcome) {
    std::lock_guard<std::mutex> lock(mutex_);
    ExportSeries& series = exports_[export_name];
    if (series.in_progress > 0) --series.in_progress;
    ++series.runs_by_status[outcome];
}

void ServiceMetrics::retry(const std::string& destination, int32_t code) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::pair<std::string, std::string> key{destination, std::to_string(code)};
    if (!retries_.count(key)) {
        size_t codes = 0;
        for (const auto& [known, count] : retries_) codes += known.first == destination;
        if (codes >= kMaxCodesPerDestination) key.second = "other";
    }
    ++retries_[key];
}

void ServiceMetrics::next_run(const std::string& export_name, std::optional<Clock::time_point> when) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& seconds = exports_[export_name].next_run_seconds;
    if (when) seconds = epoch_seconds(*when);
    else seconds.reset();
}

std::string ServiceMetrics::exposition() const {
    std::map<std::string, ExportSeries> exports;
    std::map<std::pair<std::string, std::string>, int64_t> retries;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        exports = exports_;
        retries = retries_;
    }
    std::ostringstream text;
    FamilyWriter out(text);

    out.family("segpush_runs_total", "counter",
               "Scheduled runs by export and how they ended (a run status, or skipped: another process was "
               "running the export, other_replica: another replica claimed this run, or error: the run could "
               "not start).");
    for (const auto& [name, series] : exports) {
        for (const auto& [status, runs] : series.runs_by_status) {
            out.sample({{"export", name}, {"status", status}}, static_cast<double>(runs));
        }
    }
    out.family("segpush_runs_in_progress", "gauge", "Runs of the export going on now.");
    for (const auto& [name, series] : exports) out.sample({{"export", name}}, static_cast<double>(series.in_progress));

    using Optional = std::optional<double> ExportSeries::*;
    const std::tuple<const char*, const char*, Optional> optional_gauges[] = {
        {"segpush_last_success_timestamp_seconds",
         "When the export's last run that got to its end (succeeded, with or without rejections) ended (Unix time).",
         &ExportSeries::last_success_seconds},
        {"segpush_last_run_duration_seconds", "How long the export's last run took.",
         &ExportSeries::last_duration_seconds},
        {"segpush_next_run_timestamp_seconds", "When the export is next scheduled to run (Unix time).",
         &ExportSeries::next_run_seconds},
    };
    for (const auto& [metric, help, member] : optional_gauges) {
        out.family(metric, "gauge", help);
        for (const auto& [name, series] : exports) {
            if (const auto& value = series.*member) out.sample({{"export", name}}, *value);
        }
    }

    const std::tuple<const char*, const char*, int64_t RunCounts::*> record_counters[] = {
        {"segpush_records_sent_total",
         "Records in a request the destination answered (a retried record counts once a run).", &RunCounts::sent},
        {"segpush_records_resumed_total",
         "Records an interrupted run sent whose outcome a later run learned from their receipts.", &RunCounts::resumed},
        {"segpush_records_accepted_total", "Records the destination accepted.", &RunCounts::accepted},
        {"segpush_records_rejected_total", "Records the destination refused.", &RunCounts::rejected},
        {"segpush_records_invalid_total", "Segment rows refused before sending (unreadable, no valid key).",
         &RunCounts::invalid},
        {"segpush_records_suppressed_total",
         "Records the destination kept out by a choice made there (unsubscribed, bounced).", &RunCounts::suppressed},
        {"segpush_records_removed_total", "Members who left the segment removed at the destination.",
         &RunCounts::removed},
        {"segpush_records_pending_total",
         "Records sent whose outcome was not known when their run ended (learnt or sent again by the next run).",
         &RunCounts::pending},
        {"segpush_records_rejected_retried_total",
         "Members the destination refused before with the same values, sent again (retry_rejected_runs).",
         &RunCounts::rejected_retried},
        {"segpush_records_rejected_held_total",
         "Members the destination refused before with the same values, held: not sent until their values change.",
         &RunCounts::rejected_held},
    };
    for (const auto& [metric, help, member] : record_counters) {
        out.family(metric, "counter", help);
        for (const auto& [name, series] : exports) {
            out.sample({{"export", name}}, static_cast<double>(series.records.*member));
        }
    }

    out.family("segpush_destination_retries_total", "counter",
               "Calls to a destination plugin tried again after a temporary failure, by plugin id and the "
               "destination's own code the plugin reported (an HTTP status such as 429 or 503; 0 when none, "
               "e.g. a connection failure).");
    for (const auto& [key, count] : retries) {
        out.sample({{"destination", key.first}, {"code", key.second}}, static_cast<double>(count));
    }
    return text.str();
}

std::string exposition_label_value(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string exposition_number(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char text[64];
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        std::snprintf(text, sizeof text, "%.0f", value);
    } else {
        std::snprintf(text, sizeof text, "%.3f", value);
    }
    return text;
}

}  // namespace segpush
