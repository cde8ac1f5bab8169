#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "engine/run_members.hpp"

namespace segpush {

struct Config;

// A run's report lists the rows refused before sending and the members the destination
// refused or kept out, each with its reason: EXPORT-run-ID-report.csv in the configuration's
// reports_dir (Config::reports_dir). Reports hold personal data: they are private to the user (0600 in a 0700
// folder), pruned after the configured number of days, and `segpush forget` removes a person
// from them.

std::string report_path_for(const Config& config, const std::string& export_name, int64_t run_id);

// One CSV cell as a report writes it, safe to open in a spreadsheet: a value a spreadsheet
// would run as a formula (starting with = + - @, a tab or a carriage return) is prefixed with
// an apostrophe, control bytes are written as \xNN (and a backslash as \\, so nothing is
// ambiguous), and the cell is quoted when it holds a comma, a quote or a space at its ends.
std::string report_cell(const std::string& value);

// Writes `members` to `path` (replacing it), private to the user; the key's column is headed
// `key_name` (key_noun). Throws std::runtime_error.
void write_report(const std::string& path, const std::vector<ReportedMember>& members,
                  const std::string& key_name = "email");

// Deletes the reports in `directory` last written more than `keep` ago. Returns their paths.
std::vector<std::string> prune_reports(const std::string& directory, std::chrono::hours keep);

// Removes from every report in `directory` the rows whose key names one of `people` (as given
// to `segpush forget`), compared by the rule of the report's key: case-folded for an email,
// else as written or as the same phone number. Returns, per report changed, its path and the
// rows removed.
std::vector<std::pair<std::string, int64_t>> forget_in_reports(const std::string& directory,
                                                               const std::set<std::string>& people);

}  // namespace segpush
