#include "settings.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>

namespace segpush::mailchimp {

const char* const kConnectionSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "required": ["api_key"],
  "properties": {
    "api_key": {
      "type": "string", "minLength": 1, "x-secret": true,
      "description": "API key from Mailchimp Profile > Extras > API keys; it ends in the data centre (-us6). Give it by reference: ${env:NAME} or ${file:PATH}."
    },
    "server": {
      "type": "string", "minLength": 1,
      "description": "Base URL of the API instead of the one the key's data centre names, e.g. a proxy: https://mailchimp-proxy.internal/3.0."
    },
    "ca_bundle": {
      "type": "string", "minLength": 1, "x-file": true,
      "description": "PEM file of CA certificates to trust instead of the system store (private CAs, proxies). TLS verification cannot be turned off."
    },
    "concurrency": {
      "type": "integer", "minimum": 1, "maximum": 10,
      "description": "Requests in flight at once. Mailchimp allows 10 simultaneous connections per API key (the default); lower it when other tools use the same key."
    },
    "timeout_seconds": {
      "type": "integer", "minimum": 5, "maximum": 600,
      "description": "Longest time one HTTP request may take. Default 130 (Mailchimp ends calls at 120 s)."
    }
  }
})json";

const char* const kExportSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "required": ["list_id"],
  "properties": {
    "list_id": {
      "type": "string", "minLength": 1, "maxLength": 64,
      "description": "Audience ID (Audience > Settings > Audience name and defaults), e.g. a1b2c3d4e5; not the number in the web app's URL."
    },
    "tags": {
      "type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}, "uniqueItems": true,
      "description": "Tag names applied to every exported member; Mailchimp creates missing tags."
    }
  }
})json";

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

bool is_dc_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// The server override as a base URL without a trailing '/', or the problem with it.
std::variant<std::string, SettingsProblem> check_server(std::string server) {
    while (!server.empty() && server.back() == '/') server.pop_back();
    const std::string scheme = "https://";
    std::string lower = server;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.rfind(scheme, 0) != 0) {
        return SettingsProblem{"server", "server must be an https:// URL, e.g. https://mailchimp-proxy.internal/3.0 "
                                         "(the API key is never sent in clear)"};
    }
    const std::string rest = server.substr(scheme.size());
    const size_t host_end = rest.find('/');
    const std::string authority = rest.substr(0, host_end);
    if (authority.empty() || authority.find('@') != std::string::npos) {
        return SettingsProblem{"server", "server must name a host after https:// and no credentials"};
    }
    if (rest.find_first_of("?# \t\r\n") != std::string::npos) {
        return SettingsProblem{"server", "server must be a base URL without a query, fragment or spaces"};
    }
    return server;
}

}  // namespace

std::optional<std::string> data_centre_of(const std::string& api_key) {
    const size_t dash = api_key.rfind('-');
    if (dash == std::string::npos || dash == 0 || dash + 1 >= api_key.size()) return std::nullopt;
    std::string dc = api_key.substr(dash + 1);
    if (dc.size() > 16 || !std::all_of(dc.begin(), dc.end(), is_dc_char)) return std::nullopt;
    std::transform(dc.begin(), dc.end(), dc.begin(), [](unsigned char c) { return std::tolower(c); });
    return dc;
}

std::variant<ConnectionSettings, SettingsProblem> parse_connection_settings(const char* json) {
    rapidjson::Document doc;
    doc.Parse(json ? json : "");
    if (doc.HasParseError() || !doc.IsObject()) return SettingsProblem{"", "connection settings are not a JSON object"};
    ConnectionSettings out;
    auto key = doc.FindMember("api_key");
    if (key == doc.MemberEnd() || !key->value.IsString() || key->value.GetStringLength() == 0) {
        return SettingsProblem{"api_key", "api_key is missing; give a key from Mailchimp Profile > Extras > API keys"};
    }
    out.api_key.assign(key->value.GetString(), key->value.GetStringLength());
    for (char c : out.api_key) {
        if (c == '\r' || c == '\n' || c == '\0' || c == ' ' || c == '\t') {
            return SettingsProblem{"api_key", "api_key contains a space or line break; copy the key again without it"};
        }
    }
    auto server = doc.FindMember("server");
    if (server != doc.MemberEnd() && server->value.IsString()) {
        auto checked = check_server(server->value.GetString());
        if (auto* problem = std::get_if<SettingsProblem>(&checked)) return *problem;
        out.base_url = std::get<std::string>(checked);
    } else {
        const auto dc = data_centre_of(out.api_key);
        if (!dc) {
            return SettingsProblem{"api_key",
                                   "api_key does not end in a data centre such as -us6, so segpush cannot tell which "
                                   "Mailchimp server holds the account: copy the whole key from Profile > Extras > "
                                   "API keys (older keys without one must be replaced), or set server"};
        }
        out.base_url = "https://" + *dc + ".api.mailchimp.com/3.0";
    }
    auto ca = doc.FindMember("ca_bundle");
    if (ca != doc.MemberEnd() && ca->value.IsString()) out.ca_bundle = ca->value.GetString();
    std::optional<SettingsProblem> problem;
    uint64_t value = 0;
    if (read_uint(doc, "concurrency", 1, kMaxConnections, value, problem)) out.concurrency = uint32_t(value);
    if (read_uint(doc, "timeout_seconds", 5, 600, value, problem)) out.timeout_seconds = uint32_t(value);
    if (problem) return *problem;
    return out;
}

std::variant<ExportSettings, SettingsProblem> parse_export_settings(const char* json) {
    rapidjson::Document doc;
    doc.Parse(json ? json : "");
    if (doc.HasParseError() || !doc.IsObject()) return SettingsProblem{"", "export settings are not a JSON object"};
    ExportSettings out;
    auto list = doc.FindMember("list_id");
    if (list == doc.MemberEnd() || !list->value.IsString() || list->value.GetStringLength() == 0) {
        return SettingsProblem{"list_id", "list_id is missing: the audience ID from Audience > Settings > Audience "
                                          "name and defaults"};
    }
    out.list_id.assign(list->value.GetString(), list->value.GetStringLength());
    if (!std::all_of(out.list_id.begin(), out.list_id.end(), [](unsigned char c) { return std::isalnum(c); })) {
        return SettingsProblem{"list_id", "list_id \"" + out.list_id +
                                              "\" is not an audience ID (letters and digits, e.g. a1b2c3d4e5): copy it "
                                              "from Audience > Settings > Audience name and defaults"};
    }
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
    return out;
}

}  // namespace segpush::mailchimp
