#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/diagnostics.hpp"
#include "notify/notify_policy.hpp"
#include "service/listen_address.hpp"
#include "state/state_store.hpp"

namespace segpush {

// Who may use a connection in their exports. Admins own the main file and any included file
// not declared editable by contributors.
enum class Role { admins, contributors };

struct SegmentConfig {
    std::string name;
    std::string source;  // "csv" | "jsonl"
    std::string path;    // resolved against the declaring file's folder
    // fifo_timeout_seconds: only with it is a FIFO read (how long its writer may stay silent).
    std::optional<std::chrono::seconds> fifo_timeout;
    SourcePos pos;
    // columns: the columns its file will have, declared so that config check can check the
    // mappings against them without reading the file (a FIFO, a file not there yet). Unset:
    // config check reads them from the file's start.
    std::optional<std::vector<std::string>> columns = std::nullopt;
};

// Settings as written (YAML) and, once checked against the plugin's schema, as the JSON the
// plugin receives, with secret references resolved.
struct Settings {
    YAML::Node yaml;
    YAML::Node owner;  // the entry's name, where errors go when there is no settings block
    SourcePos pos;
    std::string resolved_json;  // set by check_config; empty until then or when invalid
};

struct ConnectionConfig {
    std::string name;
    std::string plugin;
    SourcePos plugin_pos;
    std::string display_name;
    std::vector<Role> usable_by{Role::admins};
    bool privacy_consent = false;
    Settings settings;
    SourcePos pos;

    bool shared_with_contributors() const;
};

enum class OnLeave { keep, unsubscribe };

struct ExportConfig {
    std::string name;
    std::string connection;
    SourcePos connection_pos;
    std::vector<std::string> segments;
    SourcePos segments_pos;
    Settings settings;
    // destination field id -> segment column, in the order written
    std::vector<std::pair<std::string, std::string>> mapping;
    std::vector<SourcePos> mapping_pos;         // position of each mapping key
    std::vector<SourcePos> mapping_column_pos;  // and of its value, the column
    SourcePos mapping_block_pos;
    bool mapping_given = false;  // false: already reported as missing
    std::string schedule;        // empty: on demand only; a cron expression or kOnChangeSchedule
    std::string timezone;        // empty: UTC
    // With schedule: on_change, how long the segment files must stay unchanged before a run.
    std::chrono::seconds settle{5};
    // serve runs the export once at start when its last scheduled time (on_change: the last
    // change of its segment files) passed with no run since.
    bool catch_up = false;
    std::optional<uint64_t> max_profiles;
    // A run whose refused rows (invalid or rejected, rejected_ratio) are more than this share of
    // the rows read fails instead of succeeding with rejections.
    std::optional<double> max_rejected_ratio;
    OnLeave on_leave = OnLeave::keep;
    // The guard against mass change: the share of the delivered members one run may remove
    // (counted only when leavers are removed) or change before it stops, unsent, for a person
    // to confirm. 1 lets any share through.
    double max_leaving_ratio = 0.5;
    double max_changed_ratio = 1;
    // A blank optional value erases the destination's (true) or leaves it alone (false: a
    // blank in the segment more often means "unknown here" than "delete what is there").
    bool clear_blank_values = false;
    SourcePos clear_blank_values_pos;
    int retry_max_attempts = 8;  // tries of one call before the run gives up
    int retry_max_backoff_seconds = 120;
    // Members the destination refused are sent again by this many runs while their values stay
    // the same, then only once they change (or with --retry-rejected); 0: never unchanged.
    int64_t retry_rejected_runs = 3;
    // The configuration's notify: with this export's own notify: merged over it.
    NotifyPolicy notify;
    bool from_contributor_file = false;
    SourcePos pos;
};

// `schedule: on_change`: serve runs the export when its segment files change and settle.
inline const std::string kOnChangeSchedule = "on_change";

// Mapping keys "field:NAME" name destination fields a plugin with SEGPUSH_CAP_EXTRA_FIELDS
// resolves at run time (ActiveCampaign custom fields).
inline const std::string kExtraFieldPrefix = "field:";
inline bool is_extra_field(const std::string& field_id) { return field_id.rfind(kExtraFieldPrefix, 0) == 0; }

struct Config {
    std::string file;
    std::string base_dir;
    std::string plugin_dir;
    SourcePos plugin_dir_pos;
    // plugin_dir was not set: plugin_dir holds default_plugin_dir(), plugin_dir_pos the file's start.
    bool plugin_dir_is_default = false;
    // Where the state is (open_state_store): an SQLite file's path, or a PostgreSQL connection
    // string with its password resolved in it, never to be printed: state_shown is.
    std::string state_location;
    std::string state_shown;  // the file's path, or the connection string with the password masked
    SourcePos state_pos;
    StateOptions state_options;
    // Where run reports are written: `reports_dir`, else `reports` beside the SQLite state file
    // or, with PostgreSQL state, beside the configuration file.
    std::string reports_dir;
    // Run reports list people by their keys: each is deleted this many days after it was written.
    uint64_t report_retention_days = 30;
    // `strict: true`: unsafe file permissions (a secret file others can read, say) are errors
    // instead of warnings.
    bool strict = false;
    // Where `serve` answers /healthz, /readyz and /metrics (serve.listen): loopback unless the
    // configuration says otherwise, since the metrics name the exports and their outcomes.
    ListenAddress serve_listen;
    // The top-level notify: every export starts from.
    NotifyPolicy notify;
    std::vector<SegmentConfig> segments;
    std::vector<ConnectionConfig> connections;
    std::vector<ExportConfig> exports;

    const SegmentConfig* find_segment(const std::string& name) const;
    const ConnectionConfig* find_connection(const std::string& name) const;
    const ExportConfig* find_export(const std::string& name) const;
};

}  // namespace segpush
