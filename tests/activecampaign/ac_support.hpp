// Helpers shared by the ActiveCampaign acceptance tests (issue #3).
#pragma once

#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <regex>
#include <string>

#include "support/export_fixture.hpp"

namespace segpush::test::ac {

// The sandbox's limits scaled up 20x (same ratios) so tests do not wait on the real 5 rps;
// `extra` adds more config keys (without braces), e.g. R"("storm_429": 5)".
inline Sandbox::Options fast_sandbox(const std::string& extra = "") {
    Sandbox::Options options;
    options.config_json = std::string(R"({"rate_scale": 20)") + (extra.empty() ? "" : ", " + extra) + "}";
    return options;
}

// Connection settings that let the plugin pace itself to the scaled-up sandbox.
// Replaces `from` (which must occur) by `to` in the fixture's segpush.yaml.
inline void edit_config(ExportFixture& fixture, const std::string& from, const std::string& to) {
    std::string text = read_file(fixture.dir.file("segpush.yaml"));
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    fixture.dir.write("segpush.yaml", text);
}

// The value after "  NAME" padded label in segpush's summary, e.g. summary_value(out, "report").
inline std::string summary_value(const std::string& out, const std::string& label) {
    std::smatch match;
    if (!std::regex_search(out, match, std::regex("\\n  " + label + " +([^\\n]*)"))) return {};
    return match[1].str();
}

// The rejected-records report named by a run's summary (relative to the fixture's folder).
inline std::string report_of(ExportFixture& fixture, const Run& run) {
    std::string path = summary_value(run.out, "report");
    REQUIRE_FALSE(path.empty());
    path = path.substr(0, path.find(' '));
    return read_file(path.front() == '/' ? path : fixture.dir.file(path));
}

// The run number from "Export NAME, run #N: ...".
inline std::string run_id_of(const Run& run) {
    std::smatch match;
    if (!std::regex_search(run.out, match, std::regex("run #([0-9]+)"))) return {};
    return match[1].str();
}

inline void check_secret_never_printed(const ExportFixture& fixture) {
    for (const auto& run : fixture.history) {
        CHECK(run.out.find(fixture.sandbox.api_key()) == std::string::npos);
        CHECK(run.err.find(fixture.sandbox.api_key()) == std::string::npos);
    }
}

// Every subscribed member is in `profiles` and every profile is subscribed with its fields.
inline void require_list_equals(Sandbox& sandbox, const std::vector<Profile>& profiles) {
    const auto members = sandbox.members(1);
    size_t subscribed = 0;
    for (const auto& [email, member] : members) subscribed += member.status == "subscribed";
    CHECK(subscribed == profiles.size());
    for (const auto& profile : profiles) {
        std::string key = profile.email;
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto it = members.find(key);
        INFO(profile.email);
        REQUIRE(it != members.end());
        CHECK(it->second.status == "subscribed");
        CHECK(it->second.first_name == profile.first_name);
        CHECK(it->second.last_name == profile.last_name);
        CHECK(it->second.phone == profile.phone);
    }
}

// How many times `email` was sent in bulk_import bodies and contact/sync bodies (any status).
inline long long times_sent(Sandbox& sandbox, const std::string& email) {
    const auto requests = sandbox.get("/__sandbox/requests");
    long long n = 0;
    for (const auto& request : requests.GetArray()) {
        const std::string path = request["path"].GetString();
        const auto& body = request["body"];
        if (!body.IsObject()) continue;
        if (path == "/api/3/import/bulk_import" && body.HasMember("contacts") && body["contacts"].IsArray()) {
            for (const auto& contact : body["contacts"].GetArray()) {
                if (contact.HasMember("email") && contact["email"].IsString() && contact["email"].GetString() == email)
                    ++n;
            }
        }
        if (path == "/api/3/contact/sync" && body.HasMember("contact") && body["contact"].HasMember("email") &&
            body["contact"]["email"].IsString() && body["contact"]["email"].GetString() == email) {
            ++n;
        }
    }
    return n;
}

inline long long stat(Sandbox& sandbox, const char* key) { return sandbox.get("/__sandbox/stats")[key].GetInt64(); }

}  // namespace segpush::test::ac
