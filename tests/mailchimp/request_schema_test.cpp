// Every request the Mailchimp plugin sends over whole exports validates against the matching
// operation of Mailchimp's published API description (fixtures/mailchimp-openapi-subset.json,
// version 3.0.55 cut down to the operations used; see fixtures/README.md). Request schemas are
// `$ref`s into components.schemas, so each is validated as a document holding the reference
// and those components. One fault of the published description is corrected here, as the
// fixture's README lists: merge field values are typed `object` where they are text or numbers.
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "mailchimp/mc_support.hpp"

using namespace segpush::test;
using namespace segpush::test::mc;

namespace {

std::string to_json(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return buffer.GetString();
}

class ApiDescription {
public:
    ApiDescription() {
        std::ifstream in(MC_OPENAPI_JSON, std::ios::binary);
        REQUIRE(in.good());
        std::stringstream text;
        text << in.rdbuf();
        doc_.Parse(text.str().c_str());
        REQUIRE_FALSE(doc_.HasParseError());
        REQUIRE(doc_.HasMember("paths"));
        REQUIRE(doc_.HasMember("components"));
        // Merge field values: text, numbers, or an object (an address).
        for (auto& schema : doc_["components"]["schemas"].GetObject()) {
            if (!schema.value.IsObject() || !schema.value.HasMember("properties")) continue;
            auto& properties = schema.value["properties"];
            if (properties.HasMember("merge_fields") && properties["merge_fields"].HasMember("additionalProperties")) {
                properties["merge_fields"]["additionalProperties"].SetObject();
            }
        }
    }

    struct Operation {
        std::string path_template;
        const rapidjson::Value* operation = nullptr;
    };

    // The operation for a request path under /3.0 (literal paths before templated ones).
    Operation find(const std::string& method, const std::string& path) const {
        std::string lower_method = method;
        for (auto& c : lower_method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const std::string rest = path.substr(std::string("/3.0").size());
        Operation templated;
        for (const auto& item : doc_["paths"].GetObject()) {
            const std::string name = item.name.GetString();
            if (!item.value.HasMember(lower_method.c_str())) continue;
            if (name == rest) return {name, &item.value[lower_method.c_str()]};
            const std::string pattern = std::regex_replace(name, std::regex("\\{[^}]+\\}"), "[^/]+");
            if (!templated.operation && std::regex_match(rest, std::regex(pattern))) {
                templated = {name, &item.value[lower_method.c_str()]};
            }
        }
        return templated;
    }

    // The JSON request body schema of an operation, with the components it refers to.
    const rapidjson::SchemaDocument* body_schema(const Operation& op) {
        auto cached = schemas_.find(op.operation);
        if (cached != schemas_.end()) return cached->second.get();
        const rapidjson::Value& operation = *op.operation;
        if (!operation.HasMember("requestBody")) return schemas_.emplace(op.operation, nullptr).first->second.get();
        const rapidjson::Value& schema = operation["requestBody"]["content"]["application/json"]["schema"];
        rapidjson::Document whole;
        whole.CopyFrom(schema, whole.GetAllocator());
        rapidjson::Value components;
        components.CopyFrom(doc_["components"], whole.GetAllocator());
        whole.AddMember("components", components, whole.GetAllocator());
        return schemas_.emplace(op.operation, std::make_unique<rapidjson::SchemaDocument>(whole)).first->second.get();
    }

    static std::set<std::string> query_parameters(const Operation& op) {
        std::set<std::string> names;
        if (!op.operation->HasMember("parameters")) return names;
        for (const auto& parameter : (*op.operation)["parameters"].GetArray()) {
            if (std::string(parameter["in"].GetString()) == "query") names.insert(parameter["name"].GetString());
        }
        return names;
    }

private:
    rapidjson::Document doc_;
    std::map<const rapidjson::Value*, std::unique_ptr<rapidjson::SchemaDocument>> schemas_;
};

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
        rapidjson::SchemaValidator validator(*schema);
        if (!request["body"].Accept(validator)) {
            rapidjson::StringBuffer schema_at, document_at;
            validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_at);
            validator.GetInvalidDocumentPointer().StringifyUriFragment(document_at);
            FAIL_CHECK("request body does not validate against "
                       << method << " " << op.path_template << ": keyword '" << validator.GetInvalidSchemaKeyword()
                       << "' at schema " << schema_at.GetString() << ", body " << document_at.GetString());
        }
    }
    return seen;
}

}  // namespace

TEST_CASE("request schemas: every request of whole exports validates against Mailchimp's API description") {
    ApiDescription api;
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
