// Requests to a sandbox (ActiveCampaign's or Mailchimp's) on 127.0.0.1 from a test: HTTPS with
// the sandbox's own certificate, JSON bodies.
#pragma once

#include <rapidjson/document.h>

#include <string>

namespace segpush::test {

// `method` `base_url` + `path` with `body` (sent for POST and any method but GET), trusting
// `ca_file`. Returns the answer's body; throws naming the method and path when the request fails
// or the answer is not a 2xx.
std::string sandbox_request(const std::string& base_url, const std::string& ca_file, const std::string& method,
                            const std::string& path, const std::string& body);

// The same, with the answer read as JSON (throws when it is not).
rapidjson::Document sandbox_json(const std::string& base_url, const std::string& ca_file, const std::string& method,
                                 const std::string& path, const std::string& body);

}  // namespace segpush::test
