// The Mailchimp sandbox (tests/sandbox/mc_sandbox.py) run for one test: HTTPS on 127.0.0.1
// with a certificate made for the test, so the plugin's real TLS path runs. The plugin reaches
// it through its `server` override (base_url()); the key's data centre is the sandbox's ("us7").
#pragma once

#include <rapidjson/document.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test {

struct McMember {
    std::string email;
    std::string status;  // subscribed | unsubscribed | cleaned | pending | transactional | archived | forgotten
    // Merge fields that hold a value; a value that is not text (an ADDRESS object) as its JSON.
    std::map<std::string, std::string> merge_fields;
    std::vector<std::string> tags;
};

class McSandbox {
public:
    struct Options {
        std::string api_key = "0123456789abcdef0123456789abcdef-us7";
        std::vector<std::string> lists{"a1b2c3d4e5:Sandbox audience"};  // ID[:NAME]
        std::string config_json;  // initial limits and faults, e.g. {"max_connections": 4}
        bool keep_state = false;  // audiences and members survive stop()/start() (--state-file)
    };

    McSandbox();
    explicit McSandbox(Options options);
    ~McSandbox();
    McSandbox(const McSandbox&) = delete;
    McSandbox& operator=(const McSandbox&) = delete;

    int port() const { return port_; }
    std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/3.0"; }
    const std::string& ca_file() const { return cert_; }
    const std::string& api_key() const { return options_.api_key; }
    // The first audience of Options::lists.
    std::string list_id() const;

    // The control API (/__sandbox/...): answers other than 2xx throw.
    rapidjson::Document get(const std::string& path);
    rapidjson::Document post(const std::string& path, const std::string& json_body);
    void configure(const std::string& json_body) { post("/__sandbox/config", json_body); }
    // Clears members, tags, batches, the request log and faults; `everything` also brings the
    // audiences (merge fields, double opt-in) and the config back to how they started.
    void reset(bool everything = false) { post("/__sandbox/reset", everything ? R"({"everything":true})" : "{}"); }

    // Puts members on the audience as if they had come another way (a form, the person
    // unsubscribing, a bounce, an erasure): `members_json` is an array of
    // {"email", "status", "merge_fields": {...}, "tags": [...]}.
    void seed(const std::string& list_id, const std::string& members_json);
    void seed(const std::string& list_id, const std::string& email, const std::string& status);
    // {"tag", "name", "type", "required", "options"}.
    void add_merge_field(const std::string& list_id, const std::string& field_json);
    void set_double_optin(const std::string& list_id, bool double_optin);

    // Every member of the audience (forgotten ones too, with that status), by lower-cased email.
    std::map<std::string, McMember> members(const std::string& list_id);
    // Requests received on a route such as "PUT /3.0/lists/{list_id}/members/{hash}".
    long long route_count(const std::string& route);
    long long total_requests();
    // The request log: [{"method", "path", "route", "query", "status", "auth", "body"}, ...].
    rapidjson::Document requests() { return get("/__sandbox/requests"); }
    void clear_request_log();

    // Writes the state file now (Options::keep_state), so that a SIGKILL of the sandbox
    // loses only what came after.
    void save() { post("/__sandbox/save", "{}"); }
    // Stops the server and starts it again on the same port: members are lost unless
    // Options::keep_state.
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
