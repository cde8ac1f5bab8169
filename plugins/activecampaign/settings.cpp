#include "settings.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace segpush::activecampaign {

const char* const kConnectionSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "required": ["api_key", "host"],
  "properties": {
    "api_key": {
      "type": "string", "minLength": 1, "x-secret": true,
      "description": "API key from ActiveCampaign Settings > Developer. Give it by reference: ${env:NAME} or ${file:PATH}."
    },
    "host": {
      "type": "string", "minLength": 1,
      "description": "REST endpoint hostname without https://, e.g. youraccount.api-us1.com (optionally :port)."
    },
    "ca_bundle": {
      "type": "string", "minLength": 1, "x-file": true,
      "description": "PEM file of CA certificates to trust instead of the system store (private CAs, proxies). TLS verification cannot be turned off."
    },
    "requests_per_second": {
      "type": "integer", "minimum": 1, "maximum": 1000,
      "description": "Account-wide API request budget. ActiveCampaign's default is 5."
    },
    "bulk_requests_per_minute": {
      "type": "integer", "minimum": 1, "maximum": 10000,
      "description": "Bulk import requests per minute. ActiveCampaign's default is 100."
    },
    "import_poll_budget_seconds": {
      "type": "integer", "minimum": 1, "maximum": 86400,
      "description": "How long finishing an export waits for ActiveCampaign to process bulk imports before leaving the rest to the next run. Default 600."
    },
    "timeout_seconds": {
      "type": "integer", "minimum": 5, "maximum": 600,
      "description": "Longest time one HTTP request may take. Default 60."
    }
  }
})json";

const char* const kExportSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "required": ["list_id"],
  "properties": {
    "list_id": {
      "type": "integer", "minimum": 1,
      "description": "Numeric id of the ActiveCampaign list members are subscribed to (Lists > the list's URL shows it)."
    },
    "tags": {
      "type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}, "uniqueItems": true,
      "description": "Tag names applied to every exported contact; ActiveCampaign creates missing tags."
    },
    "exclude_automations": {
      "type": "boolean",
      "description": "true: bulk imports do not start automations for the imported contacts (faster). Default false."
    }
  }
})json";

namespace {

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool is_hostname_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; }

}  // namespace

std::optional<HostProblem> check_host(const std::string& host) {
    std::string rest = host;
    std::vector<std::string> removed;
    // Peel off everything a URL may carry around the hostname, remembering what went.
    if (auto scheme = rest.find("://"); scheme != std::string::npos) {
        removed.push_back("the scheme \"" + rest.substr(0, scheme + 3) + "\"");
        rest = rest.substr(scheme + 3);
    }
    if (auto at = rest.find('@'); at != std::string::npos && at < rest.find('/')) {
        removed.push_back("the credentials before '@'");
        rest = rest.substr(at + 1);
    }
    if (auto cut = rest.find_first_of("/?#"); cut != std::string::npos) {
        removed.push_back("the path or query");
        rest = rest.substr(0, cut);
    }
    std::string name = rest;
    std::string port;
    if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        name = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    const bool port_ok = port.empty() ||
                         (port.size() <= 5 &&
                          std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }) &&
                          std::stoul(port) > 0 && std::stoul(port) <= 65535);
    const bool name_ok = !name.empty() && name.front() != '.' && name.back() != '.' &&
                         std::all_of(name.begin(), name.end(), is_hostname_char);
    if (!name_ok || !port_ok || rest.find(':') != rest.rfind(':')) {
        return HostProblem{"host \"" + name + (port.empty() ? "" : ":" + port) +
                           "\" is not a hostname; expected something like youraccount.api-us1.com"};
    }
    if (removed.empty()) return std::nullopt;
    std::string what;
    for (size_t i = 0; i < removed.size(); ++i) {
        what += (i == 0 ? "" : (i + 1 == removed.size() ? " and " : ", ")) + removed[i];
    }
    return HostProblem{"host must be the hostname only, without " + what + "; write host: " + lowercase(name) +
                       (port.empty() ? "" : ":" + port)};
}

namespace {

bool read_uint(const rapidjson::Value& object, const char* key, uint64_t min, uint64_t max, uint64_t& out,
               std::optional<SettingsProblem>& problem) {
    auto it = object.FindMember(key);
    if (it == object.MemberEnd() || it->value.IsNull()) return false;
    if (!it->value.IsUint64() || it->value.GetUint64() < min || it->value.GetUint64() > max) {
        problem = SettingsProblem{key, std::string(key) + " must be a whole number from " + std::to_string(min) +
                                           " to " + std::to_string(max)};
        return false;
    }
    out = it->value.GetUint64();
    return true;
}

}  // namespace

std::variant<ConnectionSettings, SettingsProblem> parse_connection_settings(const char* json) {
    rapidjson::Document doc;
    doc.Parse(json ? json : "");
    if (doc.HasParseError() || !doc.IsObject()) return SettingsProblem{"", "connection settings are not a JSON object"};
    ConnectionSettings out;
    auto key = doc.FindMember("api_key");
    if (key == doc.MemberEnd() || !key->value.IsString() || key->value.GetStringLength() == 0) {
        return SettingsProblem{"api_key", "api_key is missing; give the key from ActiveCampaign Settings > Developer"};
    }
    out.api_key.assign(key->value.GetString(), key->value.GetStringLength());
    for (char c : out.api_key) {
        if (c == '\r' || c == '\n' || c == '\0') {
            return SettingsProblem{"api_key", "api_key contains a line break; copy the key again without it"};
        }
    }
    auto host = doc.FindMember("host");
    if (host == doc.MemberEnd() || !host->value.IsString()) {
        return SettingsProblem{"host", "host is missing; expected something like youraccount.api-us1.com"};
    }
    out.host = host->value.GetString();
    if (auto problem = check_host(out.host)) return SettingsProblem{"host", problem->message};
    auto ca = doc.FindMember("ca_bundle");
    if (ca != doc.MemberEnd() && ca->value.IsString()) out.ca_bundle = ca->value.GetString();
    std::optional<SettingsProblem> problem;
    uint64_t value = 0;
    if (read_uint(doc, "requests_per_second", 1, 1000, value, problem)) out.requests_per_second = uint32_t(value);
    if (read_uint(doc, "bulk_requests_per_minute", 1, 10000, value, problem))
        out.bulk_requests_per_minute = uint32_t(value);
    if (read_uint(doc, "import_poll_budget_seconds", 1, 86400, value, problem))
        out.import_poll_budget_seconds = uint32_t(value);
    if (read_uint(doc, "timeout_seconds", 5, 600, value, problem)) out.timeout_seconds = uint32_t(value);
    if (problem) return *problem;
    return out;
}

std::variant<ExportSettings, SettingsProblem> parse_export_settings(const char* json) {
    rapidjson::Document doc;
    doc.Parse(json ? json : "");
    if (doc.HasParseError() || !doc.IsObject()) return SettingsProblem{"", "export settings are not a JSON object"};
    ExportSettings out;
    std::optional<SettingsProblem> problem;
    uint64_t value = 0;
    if (!read_uint(doc, "list_id", 1, UINT64_MAX, value, problem)) {
        if (problem) return *problem;
        return SettingsProblem{"list_id", "list_id is missing: the numeric id of the ActiveCampaign list"};
    }
    out.list_id = value;
    auto tags = doc.FindMember("tags");
    if (tags != doc.MemberEnd() && !tags->value.IsNull()) {
        if (!tags->value.IsArray()) return SettingsProblem{"tags", "tags must be a list of tag names"};
        for (const auto& tag : tags->value.GetArray()) {
            if (!tag.IsString() || tag.GetStringLength() == 0) {
                return SettingsProblem{"tags", "every tag must be a non-empty name"};
            }
            out.tags.emplace_back(tag.GetString(), tag.GetStringLength());
        }
    }
    auto exclude = doc.FindMember("exclude_automations");
    if (exclude != doc.MemberEnd() && !exclude->value.IsNull()) {
        if (!exclude->value.IsBool())
            return SettingsProblem{"exclude_automations", "exclude_automations must be true or false"};
        out.exclude_automations = exclude->value.GetBool();
    }
    return out;
}

}  // namespace segpush::activecampaign
