// Connection and export settings of the ActiveCampaign plugin: their JSON Schemas and the
// checks a schema cannot express. Pure functions, no I/O, so the host can call them at
// `config check` time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace segpush::activecampaign {

extern const char* const kConnectionSchema;
extern const char* const kExportSchema;

// Why a host value is refused and the form that would be accepted.
struct HostProblem {
    std::string message;
};

// The host must be a bare hostname (optionally ":port"), as ActiveCampaign shows it under
// Settings > Developer without the scheme. Returns the problem, naming the corrected form.
std::optional<HostProblem> check_host(const std::string& host);

struct ConnectionSettings {
    std::string api_key;
    std::string host;
    std::string ca_bundle;             // empty: the system trust store
    uint32_t requests_per_second = 5;  // the account-wide API budget
    uint32_t bulk_requests_per_minute = 100;
    uint32_t import_poll_budget_seconds = 600;
    uint32_t timeout_seconds = 60;
};

struct ExportSettings {
    uint64_t list_id = 0;
    std::vector<std::string> tags;
    bool exclude_automations = false;
};

// A setting that cannot be used: the dotted key and a sentence for people (never the value of
// a secret).
struct SettingsProblem {
    std::string field;
    std::string message;
};

// Parse settings the host has validated against the schemas; still defensive about types.
std::variant<ConnectionSettings, SettingsProblem> parse_connection_settings(const char* json);
std::variant<ExportSettings, SettingsProblem> parse_export_settings(const char* json);

}  // namespace segpush::activecampaign
