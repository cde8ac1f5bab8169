#pragma once

#include <optional>
#include <string>

#include "notify/notify_policy.hpp"
#include "state/run_history.hpp"

namespace segpush {

// Why a run is notified.
enum class NotifyEvent { failure, threshold, recovery };
std::string to_string(NotifyEvent event);

// Whether a finished run is a problem `policy` notifies: a failure it covers, or a run that got
// to its end above its rejected_ratio_above (rejected_ratio in run_history.hpp).
std::optional<NotifyEvent> problem_of(const NotifyPolicy& policy, const RunRecord& run);

// What `run` warrants under `policy`, given the export's previous finished run (not a dry run,
// not cancelled; nullopt: none). A problem is notified every time; a recovery is the first
// fine run (got to its end, under the threshold) after a run that was a problem. Dry runs,
// cancelled runs and runs still running warrant nothing.
std::optional<NotifyEvent> notice_for(const NotifyPolicy& policy, const RunRecord& run,
                                      const std::optional<RunRecord>& previous);

// One line for people (the webhook's Slack-compatible `text`).
std::string notice_text(NotifyEvent event, const RunRecord& run);

// The notice as the command hook's stdin and the webhook's body: one JSON object, documented
// in docs/configuration.md (notice_version 1). `hostname` is the machine segpush runs on.
std::string notice_json(NotifyEvent event, const RunRecord& run, const std::string& hostname);

// Lower-case hex HMAC-SHA256 of `body` keyed with `secret`.
std::string hmac_sha256_hex(const std::string& secret, const std::string& body);
// The X-Segpush-Signature header's value: "sha256=" + hmac_sha256_hex(secret, body).
std::string signature_header_value(const std::string& secret, const std::string& body);

}  // namespace segpush
