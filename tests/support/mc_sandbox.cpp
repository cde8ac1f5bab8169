#include "support/mc_sandbox.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "support/sandbox_http.hpp"

#ifndef SEGPUSH_SOURCE_DIR
#error "SEGPUSH_SOURCE_DIR must point at the source tree (for tests/sandbox/mc_sandbox.py)"
#endif

namespace segpush::test {

namespace {

std::string json_text(const rapidjson::Value& value) {
    if (value.IsString()) return value.GetString();
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return buffer.GetString();
}

std::string quoted(const std::string& text) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
    return buffer.GetString();
}

}  // namespace

McSandbox::McSandbox() : McSandbox(Options{}) {}

McSandbox::McSandbox(Options options) : options_(std::move(options)) {
    cert_ = dir_.file("cert.pem");
    key_ = dir_.file("key.pem");
    const Run made = run_shell(
        dir_.path().string(),
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 2 -keyout key.pem -out cert.pem");
    if (made.exit_code != 0) throw std::runtime_error("openssl could not make a test certificate: " + made.err);
    start();
}

McSandbox::~McSandbox() { stop(); }

std::string McSandbox::list_id() const {
    if (options_.lists.empty()) return "a1b2c3d4e5";  // the sandbox's own default audience
    return options_.lists.front().substr(0, options_.lists.front().find(':'));
}

void McSandbox::start() {
    const std::string port_file = dir_.file("port");
    std::filesystem::remove(port_file);
    std::vector<std::string> argv{"/usr/bin/python3",
                                  std::string(SEGPUSH_SOURCE_DIR) + "/tests/sandbox/mc_sandbox.py",
                                  "--cert",
                                  cert_,
                                  "--key",
                                  key_,
                                  "--port-file",
                                  port_file,
                                  "--api-key",
                                  options_.api_key,
                                  "--port",
                                  std::to_string(port_)};
    for (const auto& list : options_.lists) argv.insert(argv.end(), {"--list", list});
    if (!options_.config_json.empty()) argv.insert(argv.end(), {"--config", options_.config_json});
    if (options_.keep_state) argv.insert(argv.end(), {"--state-file", dir_.file("state.json")});
    process_ = std::make_unique<BackgroundProcess>(argv, dir_.file("sandbox.out"), dir_.file("sandbox.err"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(port_file) || read_file(port_file).empty()) {
        if (!process_->running() || std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("the Mailchimp sandbox did not start: " + read_file(dir_.file("sandbox.err")));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    port_ = std::stoi(read_file(port_file));
}

void McSandbox::stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (process_->running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    process_.reset();  // SIGKILLs it if it is still there
}

std::string McSandbox::request(const std::string& method, const std::string& path, const std::string& body) {
    return sandbox_request("https://127.0.0.1:" + std::to_string(port_), cert_, method, path, body);
}

rapidjson::Document McSandbox::get(const std::string& path) {
    return sandbox_json("https://127.0.0.1:" + std::to_string(port_), cert_, "GET", path, "");
}

rapidjson::Document McSandbox::post(const std::string& path, const std::string& json_body) {
    return sandbox_json("https://127.0.0.1:" + std::to_string(port_), cert_, "POST", path, json_body);
}

void McSandbox::clear_request_log() { request("DELETE", "/__sandbox/requests", ""); }

void McSandbox::seed(const std::string& list_id, const std::string& members_json) {
    post("/__sandbox/lists/" + list_id + "/members", "{\"members\":" + members_json + "}");
}

void McSandbox::seed(const std::string& list_id, const std::string& email, const std::string& status) {
    seed(list_id, "[{\"email\":" + quoted(email) + ",\"status\":" + quoted(status) + "}]");
}

void McSandbox::add_merge_field(const std::string& list_id, const std::string& field_json) {
    post("/__sandbox/lists/" + list_id + "/merge-fields", field_json);
}

void McSandbox::set_double_optin(const std::string& list_id, bool double_optin) {
    post("/__sandbox/lists",
         "{\"id\":" + quoted(list_id) + ",\"double_optin\":" + (double_optin ? "true" : "false") + "}");
}

std::map<std::string, McMember> McSandbox::members(const std::string& list_id) {
    const auto document = get("/__sandbox/lists/" + list_id + "/members");
    std::map<std::string, McMember> out;
    for (const auto& item : document.GetArray()) {
        McMember member;
        member.email = item["email"].GetString();
        member.status = item["status"].GetString();
        for (const auto& field : item["merge_fields"].GetObject()) {
            member.merge_fields[field.name.GetString()] = json_text(field.value);
        }
        for (const auto& tag : item["tags"].GetArray()) member.tags.emplace_back(tag.GetString());
        std::string key = member.email;
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out[key] = std::move(member);
    }
    return out;
}

long long McSandbox::route_count(const std::string& route) {
    const auto stats = get("/__sandbox/stats");
    const auto& by_route = stats["by_route"];
    auto it = by_route.FindMember(route.c_str());
    return it == by_route.MemberEnd() ? 0 : it->value.GetInt64();
}

long long McSandbox::total_requests() { return get("/__sandbox/stats")["requests_total"].GetInt64(); }

}  // namespace segpush::test
