// Every request the plugin sends validates against the matching operation of ActiveCampaign's
// published API description (activecampaign-openapi.json). That file describes POST
// /import/bulk_import itself (the separate activecampaign-bulk-import-openapi.yml carries the
// same schema), and its request schemas use no $ref (components has only securitySchemes): a
// $ref appearing in a later version of the file fails the test loudly rather than being
// skipped (ApiDescription::body_schema).
#include <map>
#include <string>

#include "activecampaign/ac_support.hpp"
#include "support/api_description.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;

namespace {

// Validates every logged /api/3 request; returns the routes seen ("POST /import/bulk_import").
std::map<std::string, int> validate_request_log(ApiDescription& api, Sandbox& sandbox) {
    std::map<std::string, int> seen;
    const auto requests = sandbox.get("/__sandbox/requests");
    for (const auto& request : requests.GetArray()) {
        const std::string method = request["method"].GetString();
        const std::string path = request["path"].GetString();
        if (path.rfind("/api/3/", 0) != 0) continue;
        INFO(method << " " << path << " " << to_json(request["query"]) << " " << to_json(request["body"]));
        const auto op = api.find(method, path);
        REQUIRE(op.operation != nullptr);  // a documented operation
        ++seen[method + " " + op.path_template];
        // Query parameters: declared by the operation, or the API-wide paging pair.
        const auto declared = ApiDescription::query_parameters(op);
        for (const auto& parameter : request["query"].GetObject()) {
            const std::string name = parameter.name.GetString();
            INFO("query parameter " << name);
            CHECK((declared.count(name) || name == "limit" || name == "offset"));
        }
        const rapidjson::SchemaDocument* schema = api.body_schema(op);
        if (method == "GET") {
            CHECK(request["body"].IsNull());
            continue;
        }
        REQUIRE(schema != nullptr);
        REQUIRE(request["body"].IsObject());
        ApiDescription::check_body(*schema, request["body"], method, op);
    }
    return seen;
}

}  // namespace

TEST_CASE("request schemas: every request of whole exports validates against the published API description") {
    ApiDescription api(AC_OPENAPI_JSON, "/api/3");
    ExportFixture fixture(fast_sandbox());
    fixture.sandbox.post("/__sandbox/fields",
                         R"({"id": 7, "title": "Loyalty tier", "perstag": "LOYALTY_TIER", "type": "text"})");
    // Two exports to the same list: a bulk one (tags, a custom field) and a small one (no tags,
    // at most ten contacts: contact/sync + contactLists).
    const std::string mapping =
        R"(    mapping: { email: Email, first_name: FirstName, last_name: LastName, phone: Phone, "field:LOYALTY_TIER": Tier }
)";
    fixture.dir.write("segpush.yaml", fixture.config_yaml(R"(  vip: { path: vip.csv }
  few: { path: few.csv }
)",
                                                          R"(  vip_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 1, tags: [vip, "spring sale"] }
    on_leave: unsubscribe
)" + mapping + R"(  small_export:
    connection: ac
    segments: [few]
    settings: { list_id: 1 }
    on_leave: unsubscribe
)" + mapping,
                                                          kPacingAtScale20));
    auto segment = [&](const std::string& file, const std::string& prefix, size_t count, size_t removed_from) {
        std::string csv = "Email,FirstName,LastName,Phone,Tier\n";
        for (size_t i = 0; i < count && i < removed_from; ++i) {
            const std::string n = std::to_string(i);
            csv += prefix + n + "@example.com," + (i % 5 ? "First" + n : "") + ",Last" + n + "," +
                   (i % 3 ? "+1-555-" + n : "") + "," + (i % 2 ? "gold" : "") + "\n";
        }
        fixture.dir.write(file, csv);
    };
    auto run_export = [&](const std::string& name) {
        const Run run = fixture.segpush("export run " + name);
        INFO(run.out << run.err);
        REQUIRE(run.exit_code == 0);
        return run;
    };

    // 1. Bulk path: 600 members with tags and a custom field; then 40 leave (bulk unsubscribe).
    segment("vip.csv", "member", 600, 600);
    run_export("vip_export");
    segment("vip.csv", "member", 600, 560);
    CHECK_THAT(run_export("vip_export").out, Catch::Contains("removed 40"));
    // 2. Small path: 5 members one by one; then 2 leave, found by email and unsubscribed.
    segment("few.csv", "few", 5, 5);
    run_export("small_export");
    segment("few.csv", "few", 5, 3);
    CHECK_THAT(run_export("small_export").out, Catch::Contains("removed 2"));
    const auto members = fixture.sandbox.members(1);
    CHECK(members.at("member1@example.com").first_name == "First1");
    CHECK(members.at("member560@example.com").status == "unsubscribed");
    CHECK(members.at("few1@example.com").first_name == "First1");
    CHECK(members.at("few0@example.com").first_name.empty());
    CHECK(members.at("few4@example.com").status == "unsubscribed");

    const auto seen = validate_request_log(api, fixture.sandbox);
    std::string routes;
    for (const auto& [route, n] : seen) routes += route + ": " + std::to_string(n) + "\n";
    INFO(routes);
    WARN("validated requests by operation:\n" << routes);
    // Each kind of request the plugin makes was exercised and checked.
    for (const char* route : {"GET /users/me", "GET /lists/{id}", "GET /fields", "POST /import/bulk_import",
                              "GET /import/info", "POST /contact/sync", "POST /contactLists", "GET /contacts"}) {
        INFO(route);
        CHECK(seen.count(route) == 1);
    }
    CHECK(seen.at("POST /contact/sync") == 5);
    CHECK(seen.at("POST /contactLists") == 5 + 2);
}
