#pragma once

#include <string>
#include <vector>

#include "config/model.hpp"
#include "state/run_history.hpp"

namespace segpush {

// The guard against mass change: after the diff, before anything is sent, a run that would
// remove or change more of the destination's members than the export allows stops for a
// person to confirm. An upstream job that wrote a truncated or empty segment must not empty a
// list on its own.
struct MassChange {
    // What is over the limits, each as "would remove 4,812 of 5,000 delivered members (96 %),
    // over max_leaving_ratio 0.5"; empty when the run is within them.
    std::vector<std::string> findings;
    // The settings that would let such a run through when raised (a segment without members
    // has none: it always needs the confirmation).
    std::vector<std::string> settings;

    bool found() const { return !findings.empty(); }
    // The findings in one line.
    std::string text() const;
    // The run's error: the findings, that nothing was sent, and how to go ahead.
    std::string error(const ExportConfig& export_config) const;
};

// Measures the diff's `counts` against the export's limits. The delivered members are those
// the destination holds by the delivered state (changed, unchanged and leaving).
// - Leavers count only when `removes_leavers` (on_leave: unsubscribe with a plugin that
//   removes): with on_leave: keep they change nothing at the destination.
// - A segment without members while members are delivered is a mass change whatever the
//   ratios, when leavers are removed.
// - Changed members do not count with `full`: --full resends every member on purpose.
MassChange find_mass_change(const RunCounts& counts, const ExportConfig& export_config, bool removes_leavers,
                            bool full);

// 4812 -> "4,812".
std::string grouped_digits(int64_t number);

}  // namespace segpush
