// Every request the Mailchimp plugin sends over whole exports validates against the matching
// operation of Mailchimp's published API description (fixtures/mailchimp-openapi-subset.json,
// version 3.0.55 cut down to the operations used; see fixtures/README.md). Request schemas are
// `$ref`s into components.schemas, so each is validated as a document holding the reference
// and those components. One fault of the published description is corrected here, as the
// fixture's README lists: merge field values are typed `object` where they are text or numbers.
#include <map>
#include <string>

#include "mailchimp/mc_support.hpp"
#include "support/api_description.hpp"

using namespace segpush::test;
using namespace segpush::test::mc;

namespace {

// Mailchimp's description, with one fault corrected: merge field values are typed `object`
// where they are text, numbers, or an object (an address).
ApiDescription mailchimp_description() {
    ApiDescription api(MC_OPENAPI_JSON, "/3.0");
    REQUIRE(api.document().HasMember("components"));
    for (auto& schema : api.document()["components"]["schemas"].GetObject()) {
        if (!schema.value.IsObject() || !schema.value.HasMember("properties")) continue;
        auto& properties = schema.value["properties"];
        if (properties.HasMember("merge_fields") && properties["merge_fields"].HasMember("additionalProperties")) {
            properties["merge_fields"]["additionalProperties"].SetObject();
        }
    }
    return api;
}

// Validates every logged /3.0 request; returns the operations seen ("PUT /lists/{list_id}/...").
std::map<std::string, int> validate_request_log(ApiDescription& api, McSandbox& sandbox) {
    std::map<std::string, int> seen;
    const auto requests = sandbox.requests();
    for (const auto& request : requests.GetArray()) {
        const std::string method = request["method"].GetString();
        const std::string path = request["path"].GetString();
        if (path.rfind("/3.0/", 0) != 0) continue;
        INFO(method << " " << path << " " << to_json(request["query"]) << " " << to_json(request["body"]));
        CHECK(std::string(request["auth"].GetString()) == "valid");
        const auto op = api.find(method, path);
        REQUIRE(op.operation != nullptr);  // a documented operation
        ++seen[method + " " + op.path_template];
        const auto declared = ApiDescription::query_parameters(op);
        for (const auto& parameter : request["query"].GetObject()) {
            INFO("query parameter " << parameter.name.GetString());
            CHECK(declared.count(parameter.name.GetString()) == 1);
        }
        const rapidjson::SchemaDocument* schema = api.body_schema(op);
        if (method == "GET" || method == "DELETE") {
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

TEST_CASE("request schemas: every request of whole exports validates against Mailchimp's API description") {
    ApiDescription api = mailchimp_description();
    McExport fixture;
    const std::string list = "a1b2c3d4e5";
    fixture.sandbox.seed(list, R"([{"email": "member0@shop.test", "merge_fields": {"FNAME": "Old"}},
                                   {"email": "member1@shop.test", "status": "unsubscribed"}])");
    fixture.write_config("{ list_id: a1b2c3d4e5, tags: [vip, \"spring sale\"] }");
    auto run_with = [&](const std::vector<Person>& rows) {
        fixture.write_segment(rows);
        const Run run = fixture.run_export();
        INFO(run.out << run.err);
        REQUIRE((run.exit_code == 0 || run.exit_code == 3));
    };
    // New members in two batches, existing ones updated and tagged; then some change and ten
    // leave (read, archived); then the leavers come back (read, put back).
    run_with(people(600));
    run_with(people(590, 0, "-changed"));
    run_with(people(600));
    CHECK(fixture.sandbox.members(list).at("member595@shop.test").status == "subscribed");

    const auto seen = validate_request_log(api, fixture.sandbox);
    std::string routes;
    for (const auto& [route, n] : seen) routes += route + ": " + std::to_string(n) + "\n";
    INFO(routes);
    for (const char* route :
         {"GET /ping", "GET /lists/{list_id}", "GET /lists/{list_id}/merge-fields", "POST /lists/{list_id}",
          "PUT /lists/{list_id}/members/{subscriber_hash}", "GET /lists/{list_id}/members/{subscriber_hash}",
          "DELETE /lists/{list_id}/members/{subscriber_hash}",
          "POST /lists/{list_id}/members/{subscriber_hash}/tags"}) {
        INFO(route);
        CHECK(seen.count(route) == 1);
    }
    fixture.check_key_never_printed();
}
