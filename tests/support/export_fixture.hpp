// An export set up end to end: a segment file, a configuration that points the real
// ActiveCampaign plugin at a sandbox on 127.0.0.1, and the real segpush binary.
#pragma once

#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/sandbox.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test {

struct Profile {
    std::string email, first_name, last_name, phone;
};

// Deterministic profiles: member i has email member<i>@example.com.
std::vector<Profile> make_profiles(size_t count, size_t first = 0);
std::string to_csv(const std::vector<Profile>& profiles);

// Connection settings that pace the plugin to a sandbox started with "rate_scale": 20, so
// tests move at 20 times ActiveCampaign's limits while keeping their ratios.
inline const std::string kPacingAtScale20 = "      requests_per_second: 100\n      bulk_requests_per_minute: 2000\n";

struct ExportFixture {
    explicit ExportFixture(Sandbox::Options options = {});

    Sandbox sandbox;
    TempDir dir;
    std::vector<Run> history;  // every run, for the secret check

    void write_segment(const std::vector<Profile>& profiles);
    // `export_extra`: YAML lines added to the export (indented by the caller to 4 spaces).
    // `connection_extra`: YAML lines added to the connection's settings (indented to 6 spaces),
    // e.g. "      import_poll_budget_seconds: 2\n".
    void write_config(const std::string& export_extra = "", const std::string& connection_extra = "");
    // What write_config writes.
    std::string config_text(const std::string& export_extra = "", const std::string& connection_extra = "") const;
    // A whole configuration around the sandbox: plugin_dir, state, the given `segments` and
    // `exports` blocks (entries indented by 2 spaces), and the connection "ac" to the sandbox
    // with `connection_extra` settings (indented by 6) and `more_connections` entries after it.
    std::string config_yaml(const std::string& segments, const std::string& exports,
                            const std::string& connection_extra = "", const std::string& more_connections = "") const;
    Run segpush(const std::string& args);
    // The same command line, started in the background.
    std::vector<std::string> segpush_argv(const std::string& args) const;
    std::vector<std::string> env() const;

    // Records in upsert requests since the sandbox's request log was last cleared: contacts in
    // bulk imports plus contact/sync calls.
    long long records_sent();
    void clear_request_log();
};

}  // namespace segpush::test
