#include "settings.hpp"

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
      "type": "string", "minLength": 1,
      "description": "PEM file of CA certificates to trust instead of the system store (private CAs, proxies). TLS verification cannot be turned off."
    },
    "requests_per_second": {
      "type": "integer", "minimum": 1, "maximum": 1000,
      "description": "Account-wide API request budget. ActiveCampaign's default is 5."
    },
    "bulk_requests_per_minute": {
      "type": "integer", "minimum": 1, "maximum": 10000,
      "description": "Bulk import requests per minute. ActiveCampaign's default is 100."
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
    }
  }
})json";

namespace {

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool is_hostname_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
}

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
    const bool port_ok = port.empty() || (port.size() <= 5 &&
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
    return HostProblem{"host must be the hostname only, without " + what + "; write host: " +
                       lowercase(name) + (port.empty() ? "" : ":" + port)};
}

}  // namespace segpush::activecampaign
