#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace segpush {

class YamlReader;

// A program run for each notice, with the notice (JSON) on its standard input. No shell:
// argv[0] is a path or a name looked up in PATH.
struct CommandHook {
    std::vector<std::string> argv;
    std::chrono::seconds timeout{10};  // then the program (its process group) is killed
};

// An HTTPS POST of the notice (JSON) to `url`.
struct Webhook {
    std::string url;        // may carry a token (Slack's do): registered as a secret, never logged
    std::string shown_url;  // scheme://host[:port], what logs and errors name
    std::string secret;     // HMAC-SHA256 key for the signature header; empty: unsigned
    std::string ca_file;    // empty: the system's CA store
    std::chrono::seconds timeout{10};
    int max_attempts = 4;  // network errors, 5xx and 429 are retried with doubling waits
};

// What an export's runs are notified about, and where. The configuration's top-level
// `notify:` is every export's default; an export's own `notify:` replaces the keys it gives.
struct NotifyPolicy {
    bool enabled = true;
    // failed_permanent runs are always notified; failed_retryable ones (transient trouble that
    // outlasted the retries, which the next run picks up) only when this is set.
    bool on_retryable_failure = false;
    // A succeeded run whose (rejected + invalid) / rows_read is above this is notified.
    std::optional<double> rejected_ratio_above;
    // The first fine run after a notified one is notified as a recovery.
    bool on_recovery = true;
    std::optional<CommandHook> command;
    std::optional<Webhook> webhook;

    bool has_channel() const { return enabled && (command || webhook); }
};

// Reads the `notify:` block `block` (absent or null: `inherited` as is) at key path `path`,
// over `inherited`: each key given replaces the inherited one; `command: null` or
// `webhook: null` removes an inherited channel. Problems go to `reader` with their
// file:line:column. The webhook's secret (and URL, when given by reference) are resolved here
// and registered with the Redactor. A contributor-editable file may not set a channel: a
// command runs as segpush's user and a webhook receives run summaries.
NotifyPolicy read_notify_policy(YamlReader& reader, const YAML::Node& block, const std::string& path,
                                const NotifyPolicy& inherited, bool contributor_file, bool strict);

// "https://host[:port]" of a URL, without its path, query or credentials.
std::string url_origin(const std::string& url);

}  // namespace segpush
