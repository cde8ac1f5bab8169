// Connection and export settings of the Mailchimp plugin: their JSON Schemas and the checks a
// schema cannot express. Pure functions, no I/O, so the host can call them at `config check`
// time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace segpush::mailchimp {

extern const char* const kConnectionSchema;
extern const char* const kExportSchema;

// Mailchimp allows 10 simultaneous connections per API key; more are answered 429.
constexpr uint32_t kMaxConnections = 10;

struct ConnectionSettings {
    std::string api_key;
    // Where the API lives, up to and including "/3.0": from the key's data centre
    // (https://us6.api.mailchimp.com/3.0), or the `server` setting.
    std::string base_url;
    std::string ca_bundle;  // empty: the system trust store
    uint32_t concurrency = kMaxConnections;
    uint32_t timeout_seconds = 130;  // Mailchimp ends a call at 120 s
};

struct ExportSettings {
    std::string list_id;
    std::vector<std::string> tags;
};

// A setting that cannot be used: the dotted key and a sentence for people (never the value of
// a secret).
struct SettingsProblem {
    std::string field;
    std::string message;
};

// The data centre an API key names after its last '-' ("us6"), or nullopt when it names none.
std::optional<std::string> data_centre_of(const std::string& api_key);

// Parse settings the host has validated against the schemas; still defensive about types.
std::variant<ConnectionSettings, SettingsProblem> parse_connection_settings(const char* json);
std::variant<ExportSettings, SettingsProblem> parse_export_settings(const char* json);

}  // namespace segpush::mailchimp
