#include "engine/mass_change.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "text/suggest.hpp"

namespace segpush {

namespace {

// A setting's value as written in YAML: 0.5, 0.05, 1.
std::string ratio_text(double ratio) {
    std::ostringstream text;
    text << ratio;
    return text.str();
}

// The share as a percentage with as few decimals as show that it is over `limit`: 96 %, but
// 50.01 % (not 50 %) over 0.5.
std::string percent_over(int64_t part, int64_t whole, double limit) {
    const double percent = 100.0 * static_cast<double>(part) / static_cast<double>(whole);
    int decimals = 0;
    for (double scale = 1; decimals < 3; ++decimals, scale *= 10) {
        if (std::round(percent * scale) / scale > 100.0 * limit) break;
    }
    std::ostringstream text;
    text << std::fixed << std::setprecision(decimals) << percent << " %";
    return text.str();
}

std::string delivered_text(int64_t count) {
    return grouped_digits(count) + (count == 1 ? " delivered member" : " delivered members");
}

}  // namespace

std::string grouped_digits(int64_t number) {
    std::string digits = std::to_string(number < 0 ? -number : number);
    for (size_t at = digits.size(); at > 3; at -= 3) digits.insert(at - 3, ",");
    return (number < 0 ? "-" : "") + digits;
}

std::string MassChange::text() const { return join(findings, "; "); }

std::string MassChange::error(const ExportConfig& export_config) const {
    std::string how = "run 'segpush export run " + export_config.name + " --allow-mass-change' once to go ahead";
    if (!settings.empty()) {
        std::vector<std::string> raise;
        for (const auto& setting : settings) {
            const double now = setting == "max_leaving_ratio" ? export_config.max_leaving_ratio
                                                              : export_config.max_changed_ratio;
            raise.push_back(setting + " (now " + ratio_text(now) + ")");
        }
        how += ", or raise " + join(raise, " and ") + " in the export's configuration";
    }
    return "guard against mass change: " + text() + "; nothing was sent. If this is intended, " + how;
}

MassChange find_mass_change(const RunCounts& counts, const ExportConfig& export_config, bool removes_leavers,
                            bool full) {
    MassChange change;
    const int64_t delivered = counts.changed + counts.unchanged + counts.leaving;
    if (delivered <= 0) return change;  // a first delivery changes nothing that was there
    if (removes_leavers && counts.members == 0) {
        change.findings.push_back("the segment has no members" +
                                  (counts.rows_read == 0
                                       ? std::string(" (no rows after its header)")
                                       : " (" + grouped_digits(counts.rows_read) + " rows read, none valid)") +
                                  ", so the run would remove all " + delivered_text(delivered) +
                                  " (on_leave: unsubscribe); an empty segment always needs a confirmation");
        return change;
    }
    // Over means strictly more: a share equal to the limit passes.
    auto over = [&](int64_t part, double limit) {
        return static_cast<double>(part) / static_cast<double>(delivered) > limit;
    };
    if (removes_leavers && over(counts.leaving, export_config.max_leaving_ratio)) {
        change.findings.push_back("would remove " + grouped_digits(counts.leaving) + " of " +
                                  delivered_text(delivered) + " (" +
                                  percent_over(counts.leaving, delivered, export_config.max_leaving_ratio) +
                                  "), over max_leaving_ratio " + ratio_text(export_config.max_leaving_ratio));
        change.settings.push_back("max_leaving_ratio");
    }
    if (!full && over(counts.changed, export_config.max_changed_ratio)) {
        change.findings.push_back("would change " + grouped_digits(counts.changed) + " of " +
                                  delivered_text(delivered) + " (" +
                                  percent_over(counts.changed, delivered, export_config.max_changed_ratio) +
                                  "), over max_changed_ratio " + ratio_text(export_config.max_changed_ratio));
        change.settings.push_back("max_changed_ratio");
    }
    return change;
}

}  // namespace segpush
