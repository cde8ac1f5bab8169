// The ActiveCampaign sandbox (tests/sandbox/ac_sandbox.py) run for one test: HTTPS on
// 127.0.0.1 with a certificate made for the test, so the plugin's real TLS path runs.
#pragma once

#include <rapidjson/document.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test {

struct SandboxMember {
    std::string email;
    std::string first_name;
    std::string last_name;
    std::string phone;
    std::string status;  // subscribed | unsubscribed
};

class Sandbox {
public:
    struct Options {
        std::string api_key = "sandbox-key-6f1d2c9a8b7e";
        std::string lapsed_key;
        std::vector<std::string> lists{"1:Sandbox list"};
        std::string config_json;  // initial faults and limits, e.g. {"limits_enabled": false}
        bool keep_state = false;  // contacts, lists and imports survive stop()/start() (--state-file)
    };

    Sandbox();
    explicit Sandbox(Options options);
    ~Sandbox();
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;

    std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
    const std::string& ca_file() const { return cert_; }
    const std::string& api_key() const { return options_.api_key; }

    rapidjson::Document get(const std::string& path);
    rapidjson::Document post(const std::string& path, const std::string& json_body);
    void configure(const std::string& json_body) { post("/__sandbox/config", json_body); }
    void clear_request_log() { request("DELETE", "/__sandbox/requests", ""); }

    // Every member of the list, by lower-cased email.
    std::map<std::string, SandboxMember> members(int list_id);
    // Requests received on a route such as "POST /api/3/import/bulk_import".
    long long route_count(const std::string& route);
    long long total_requests();

    // Stops the server and starts it again on the same port: contacts are lost (as they
    // would be on a real outage only if the vendor lost data) unless Options::keep_state.
    void stop();
    void start();

private:
    Options options_;
    TempDir dir_;
    std::string cert_, key_;
    int port_ = 0;
    std::unique_ptr<BackgroundProcess> process_;
    std::string request(const std::string& method, const std::string& path, const std::string& body);
};

}  // namespace segpush::test
