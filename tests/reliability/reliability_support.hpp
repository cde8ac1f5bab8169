// Shared pieces of the reliability suite: segments with a known invalid part, a configuration
// tuned for fast runs against the sandbox, checks that the list is exactly the valid part and
// that every record is accounted for, and the API-key leak scan.
#pragma once

#include <rapidjson/document.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "support/export_fixture.hpp"

namespace segpush::test::reliability {

// A segment of `size` rows where 1% of the emails are invalid (no '@', a space, no dot in the
// domain, an apostrophe), all refused by the host before sending.
struct Segment {
    std::vector<Profile> rows;           // in file order
    std::vector<Profile> valid;          // what the list must hold at the end
    std::set<std::string> host_invalid;  // emails (as written) the host rejects
    std::set<std::string> dest_invalid;  // emails the destination rejects
};
Segment make_segment(size_t size, size_t first = 0);
// Moves `emails` from the valid part to the destination-rejected part (for fail_emails).
void mark_destination_rejected(Segment& segment, const std::vector<std::string>& emails);

// Valid emails the suite's sandbox refuses in bulk imports (fail_emails): the destination's
// own rejections. mark_destination_rejected(segment, kRefusedEmails) when they are in it.
extern const std::vector<std::string> kRefusedEmails;
// Sandbox options for the suite: limits scaled 50x, small latency, kRefusedEmails refused.
Sandbox::Options fast_sandbox(bool keep_state = false, const std::string& extra_config = "");

struct ConfigOptions {
    std::string connection_extra;  // YAML lines under connections.ac.settings (6 spaces)
    std::string export_extra;      // YAML lines under exports.vip_export (4 spaces)
    int max_attempts = 6;
    int max_backoff_seconds = 2;
};
// Writes segpush.yaml in the fixture folder: the real ActiveCampaign plugin against the
// sandbox, paced to the sandbox's scaled limits.
void write_config(ExportFixture& fixture, const ConfigOptions& options = {});
std::string config_text(ExportFixture& fixture, const ConfigOptions& options = {});

// A run of the real binary in the background, with `action` called (on this thread) once the
// sandbox has received `after_bulk` bulk import requests of this run. The result goes to the
// fixture's history.
Run run_with_fault(ExportFixture& fixture, long long after_bulk, const std::function<void()>& action,
                   const std::string& args = "export run vip_export");

// The latest run of vip_export, from `runs list --json`.
rapidjson::Document latest_run(ExportFixture& fixture);
std::string status_of(const rapidjson::Document& run);
int64_t count_of(const rapidjson::Document& run, const char* name);

// The list holds exactly `expected` (subscribed, same email, names and phone), nothing else.
void require_list_exact(Sandbox& sandbox, const std::vector<Profile>& expected);
// The latest run read every row, rejected exactly the invalid ones (report CSV names each),
// and accepted + rejected + unchanged covers every member.
void check_accounting(ExportFixture& fixture, const Segment& segment);

// Every run's output and every file under the fixture folder (state database and its WAL,
// reports, logs of background runs) is free of each of `secrets` (the fixture's key always).
void check_no_secret_anywhere(const ExportFixture& fixture, std::vector<std::string> secrets = {});

// Exit code of a Run that ended by signal: run_shell gives 128+N from /bin/sh, BackgroundProcess -N.
bool ended_by_signal(int exit_code);

}  // namespace segpush::test::reliability
