// Connection and export settings of the Mailchimp plugin: the data centre named by the key, the
// server override, the limits, and messages that never carry the key.
#include <catch2/catch.hpp>

#include <string>

#include "../../plugins/mailchimp/settings.hpp"

using namespace segpush::mailchimp;

namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef-us6";

ConnectionSettings connection(const std::string& json) {
    auto parsed = parse_connection_settings(json.c_str());
    if (auto* problem = std::get_if<SettingsProblem>(&parsed)) FAIL(problem->field + ": " + problem->message);
    return std::get<ConnectionSettings>(parsed);
}

SettingsProblem connection_problem(const std::string& json) {
    auto parsed = parse_connection_settings(json.c_str());
    REQUIRE(std::holds_alternative<SettingsProblem>(parsed));
    return std::get<SettingsProblem>(parsed);
}

}  // namespace

TEST_CASE("connection: the key's data centre names the API server") {
    const ConnectionSettings settings = connection(R"({"api_key":")" + kKey + R"("})");
    CHECK(settings.base_url == "https://us6.api.mailchimp.com/3.0");
    CHECK(settings.api_key == kKey);
    CHECK(settings.concurrency == 10);
    CHECK(data_centre_of("abc-US12") == std::string("us12"));
    CHECK(data_centre_of("a-b-us3") == std::string("us3"));
}

TEST_CASE("connection: a key without a data centre is refused without echoing it") {
    for (const std::string key :
         {"0123456789abcdef0123456789abcdef", "0123456789abcdef-", "-us7", "0123456789abcdef-us6.evil.example"}) {
        const SettingsProblem problem = connection_problem(R"({"api_key":")" + key + R"("})");
        CHECK(problem.field == "api_key");
        CHECK_THAT(problem.message, Catch::Contains("data centre"));
        CHECK(problem.message.find(key) == std::string::npos);
    }
}

TEST_CASE("connection: server overrides the data centre and must be an https base URL") {
    const ConnectionSettings settings = connection(
        R"({"api_key":"nodatacentre","server":"https://127.0.0.1:8443/3.0/"})");
    CHECK(settings.base_url == "https://127.0.0.1:8443/3.0");
    for (const std::string server : {"http://127.0.0.1/3.0", "127.0.0.1/3.0", "https://user:pw@proxy/3.0",
                                     "https://proxy/3.0?x=1", "https:///3.0"}) {
        const SettingsProblem problem = connection_problem(R"({"api_key":")" + kKey + R"(","server":")" + server +
                                                           "\"}");
        CHECK(problem.field == "server");
        CHECK(problem.message.find(kKey) == std::string::npos);
    }
}

TEST_CASE("connection: concurrency stays within Mailchimp's ten connections per key") {
    CHECK(connection(R"({"api_key":")" + kKey + R"(","concurrency":4})").concurrency == 4);
    const SettingsProblem problem = connection_problem(R"({"api_key":")" + kKey + R"(","concurrency":11})");
    CHECK(problem.field == "concurrency");
    CHECK_THAT(problem.message, Catch::Contains("1 to 10"));
    CHECK(connection_problem(R"({"api_key":"a-us1","timeout_seconds":1})").field == "timeout_seconds");
}

TEST_CASE("connection: a key with a space or line break is refused, naming neither the key nor its parts") {
    const SettingsProblem problem = connection_problem(R"({"api_key":"abc def-us6"})");
    CHECK(problem.field == "api_key");
    CHECK(problem.message.find("abc") == std::string::npos);
    CHECK(connection_problem(R"({})").field == "api_key");
}

TEST_CASE("export: the audience id and tags") {
    auto parsed = parse_export_settings(R"({"list_id":"a1b2c3d4e5","tags":["vip","2026 spring"]})");
    REQUIRE(std::holds_alternative<ExportSettings>(parsed));
    const ExportSettings settings = std::get<ExportSettings>(parsed);
    CHECK(settings.list_id == "a1b2c3d4e5");
    CHECK(settings.tags == std::vector<std::string>{"vip", "2026 spring"});
    auto missing = parse_export_settings(R"({"tags":[]})");
    REQUIRE(std::holds_alternative<SettingsProblem>(missing));
    CHECK(std::get<SettingsProblem>(missing).field == "list_id");
    auto odd = parse_export_settings(R"({"list_id":"../members"})");
    REQUIRE(std::holds_alternative<SettingsProblem>(odd));
    CHECK_THAT(std::get<SettingsProblem>(odd).message, Catch::Contains("audience ID"));
    auto empty_tag = parse_export_settings(R"({"list_id":"abc","tags":[""]})");
    REQUIRE(std::holds_alternative<SettingsProblem>(empty_tag));
    CHECK(std::get<SettingsProblem>(empty_tag).field == "tags");
}
