// The Mailchimp sandbox's C++ driver, against the real sandbox: what the plugin's end-to-end
// tests rely on (the URL and key it hands out, seeding, reading members back, the request log,
// a restart that keeps state).
#include "support/mc_sandbox.hpp"

#include <curl/curl.h>

#include <catch2/catch.hpp>

namespace segpush::test {
namespace {

size_t append(char* data, size_t size, size_t count, void* target) {
    static_cast<std::string*>(target)->append(data, size * count);
    return size * count;
}

struct Answer {
    long status = 0;
    std::string body;
};

// One Marketing API call as the plugin makes it: HTTP Basic with the key as the password.
Answer call(const McSandbox& sandbox, const std::string& method, const std::string& path, const std::string& body,
            const std::string& key) {
    CURL* curl = curl_easy_init();
    Answer answer;
    const std::string url = sandbox.base_url() + path;
    const std::string user = "segpush:" + key;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CAINFO, sandbox.ca_file().c_str());
    curl_easy_setopt(curl, CURLOPT_USERPWD, user.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    REQUIRE(curl_easy_perform(curl) == CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
    curl_easy_cleanup(curl);
    return answer;
}

// md5("ann@shop.test")
const std::string kAnnHash = "37aa5e15c616d9f53a7a04f533860d69";

}  // namespace

TEST_CASE("McSandbox hands out a key of its data centre and reads back what the API wrote", "[mc_sandbox]") {
    McSandbox sandbox;
    CHECK(sandbox.api_key() == "0123456789abcdef0123456789abcdef-us7");
    CHECK(sandbox.base_url() == "https://127.0.0.1:" + std::to_string(sandbox.port()) + "/3.0");
    CHECK(call(sandbox, "GET", "/ping", "", sandbox.api_key()).status == 200);
    CHECK(call(sandbox, "GET", "/ping", "", "ffffffffffffffffffffffffffffffff-us7").status == 401);

    sandbox.seed(sandbox.list_id(), "left@shop.test", "unsubscribed");
    sandbox.add_merge_field(sandbox.list_id(), R"({"tag":"PLAN","type":"text"})");
    const Answer batch = call(sandbox, "POST", "/lists/" + sandbox.list_id(),
                              R"({"members":[{"email_address":"Ann@Shop.test","status":"subscribed",)"
                              R"("merge_fields":{"FNAME":"Ann","PLAN":"gold"}},)"
                              R"({"email_address":"left@shop.test","status":"subscribed"}],"update_existing":true})",
                              sandbox.api_key());
    CHECK(batch.status == 200);

    auto members = sandbox.members(sandbox.list_id());
    REQUIRE(members.size() == 2);
    CHECK(members["ann@shop.test"].email == "Ann@Shop.test");
    CHECK(members["ann@shop.test"].status == "subscribed");
    CHECK(members["ann@shop.test"].merge_fields ==
          std::map<std::string, std::string>{{"FNAME", "Ann"}, {"PLAN", "gold"}});
    CHECK(members["left@shop.test"].status == "unsubscribed");  // never resubscribed

    const Answer tags = call(sandbox, "POST", "/lists/" + sandbox.list_id() + "/members/" + kAnnHash + "/tags",
                             R"({"tags":[{"name":"vip","status":"active"}]})", sandbox.api_key());
    CHECK(tags.status == 204);
    CHECK(sandbox.members(sandbox.list_id())["ann@shop.test"].tags == std::vector<std::string>{"vip"});

    CHECK(sandbox.route_count("POST /3.0/lists/{list_id}") == 1);
    CHECK(sandbox.route_count("POST /3.0/lists/{list_id}/members/{hash}/tags") == 1);
    const auto log = sandbox.requests();
    REQUIRE(log.IsArray());
    CHECK(log.Size() == 4);
    CHECK(std::string(log[2]["body"]["members"][0]["email_address"].GetString()) == "Ann@Shop.test");
    sandbox.clear_request_log();
    CHECK(sandbox.requests().Size() == 0);
}

TEST_CASE("McSandbox keeps members across a restart when asked to", "[mc_sandbox]") {
    McSandbox::Options options;
    options.keep_state = true;
    options.lists = {"0f0f0f0f0f:Shop"};
    options.config_json = R"({"max_connections": 2})";
    McSandbox sandbox(options);
    sandbox.seed(sandbox.list_id(), R"([{"email":"b@shop.test","status":"cleaned","tags":["old"]}])");
    sandbox.set_double_optin(sandbox.list_id(), true);
    const int port = sandbox.port();
    sandbox.stop();
    sandbox.start();
    CHECK(sandbox.port() == port);
    auto members = sandbox.members("0f0f0f0f0f");
    CHECK(members["b@shop.test"].status == "cleaned");
    CHECK(members["b@shop.test"].tags == std::vector<std::string>{"old"});
    CHECK(sandbox.get("/__sandbox/lists/0f0f0f0f0f")["double_optin"].GetBool());
    CHECK(sandbox.get("/__sandbox/config")["max_connections"].GetInt() == 2);
}

}  // namespace segpush::test
