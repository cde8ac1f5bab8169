#include "support/sandbox.hpp"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "support/sandbox_http.hpp"

#ifndef SEGPUSH_SOURCE_DIR
#error "SEGPUSH_SOURCE_DIR must point at the source tree (for tests/sandbox/ac_sandbox.py)"
#endif

namespace segpush::test {

Sandbox::Sandbox() : Sandbox(Options{}) {}

Sandbox::Sandbox(Options options) : options_(std::move(options)) {
    cert_ = dir_.file("cert.pem");
    key_ = dir_.file("key.pem");
    const Run made = run_shell(
        dir_.path().string(),
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 2 -keyout key.pem -out cert.pem");
    if (made.exit_code != 0) throw std::runtime_error("openssl could not make a test certificate: " + made.err);
    start();
}

Sandbox::~Sandbox() { stop(); }

void Sandbox::start() {
    const std::string port_file = dir_.file("port");
    std::filesystem::remove(port_file);
    std::vector<std::string> argv{"/usr/bin/python3",
                                  std::string(SEGPUSH_SOURCE_DIR) + "/tests/sandbox/ac_sandbox.py",
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
    if (!options_.lapsed_key.empty()) argv.insert(argv.end(), {"--lapsed-key", options_.lapsed_key});
    for (const auto& list : options_.lists) argv.insert(argv.end(), {"--list", list});
    if (!options_.config_json.empty()) argv.insert(argv.end(), {"--config", options_.config_json});
    if (options_.keep_state) argv.insert(argv.end(), {"--state-file", dir_.file("state.json")});
    process_ = std::make_unique<BackgroundProcess>(argv, dir_.file("sandbox.out"), dir_.file("sandbox.err"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(port_file) || read_file(port_file).empty()) {
        if (!process_->running() || std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("the sandbox did not start: " + read_file(dir_.file("sandbox.err")));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    port_ = std::stoi(read_file(port_file));
}

void Sandbox::stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (process_->running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    process_.reset();  // SIGKILLs it if it is still there
}

std::string Sandbox::request(const std::string& method, const std::string& path, const std::string& body) {
    return sandbox_request("https://" + host(), cert_, method, path, body);
}

rapidjson::Document Sandbox::get(const std::string& path) {
    return sandbox_json("https://" + host(), cert_, "GET", path, "");
}

rapidjson::Document Sandbox::post(const std::string& path, const std::string& json_body) {
    return sandbox_json("https://" + host(), cert_, "POST", path, json_body);
}

std::map<std::string, SandboxMember> Sandbox::members(int list_id) {
    const auto document = get("/__sandbox/lists/" + std::to_string(list_id) + "/members");
    std::map<std::string, SandboxMember> out;
    auto text = [](const rapidjson::Value& item, const char* key) {
        auto it = item.FindMember(key);
        return it != item.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString()) : std::string();
    };
    for (const auto& item : document.GetArray()) {
        SandboxMember member{text(item, "email"), text(item, "first_name"), text(item, "last_name"),
                             text(item, "phone"), text(item, "status")};
        std::string key = member.email;
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out[key] = member;
    }
    return out;
}

long long Sandbox::route_count(const std::string& route) {
    const auto stats = get("/__sandbox/stats");
    const auto& by_route = stats["by_route"];
    auto it = by_route.FindMember(route.c_str());
    return it == by_route.MemberEnd() ? 0 : it->value.GetInt64();
}

long long Sandbox::total_requests() { return get("/__sandbox/stats")["requests_total"].GetInt64(); }

}  // namespace segpush::test
