// A vendor's published OpenAPI description (JSON), for tests that check every request a plugin
// sent is one it describes: the operation found by method and path, its query parameters, and
// its JSON request body validated against the operation's schema.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <catch2/catch.hpp>

#include <cctype>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace segpush::test {

inline std::string to_json(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return buffer.GetString();
}

class ApiDescription {
public:
    // `file`: the description; `base_path`: what its paths are under in a request ("/3.0").
    ApiDescription(const std::string& file, std::string base_path) : base_path_(std::move(base_path)) {
        std::ifstream in(file, std::ios::binary);
        REQUIRE(in.good());
        std::stringstream text;
        text << in.rdbuf();
        doc_.Parse(text.str().c_str());
        REQUIRE_FALSE(doc_.HasParseError());
        REQUIRE(doc_.HasMember("paths"));
    }

    // The description itself, for a test to correct a known fault of the published one.
    rapidjson::Document& document() { return doc_; }

    struct Operation {
        std::string path_template;
        const rapidjson::Value* operation = nullptr;
    };

    // The operation for a request path (literal paths before templated ones).
    Operation find(const std::string& method, const std::string& path) const {
        std::string lower_method = method;
        for (auto& c : lower_method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const std::string rest = path.substr(base_path_.size());
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

    // The operation's JSON request body schema, compiled once together with the description's
    // components so that its $refs resolve; nullptr when it takes no JSON body. A $ref to anything
    // but an existing components.schemas entry fails the test: an unresolved reference would
    // accept any body.
    const rapidjson::SchemaDocument* body_schema(const Operation& op) {
        auto cached = schemas_.find(op.operation);
        if (cached != schemas_.end()) return cached->second.get();
        const rapidjson::Value& operation = *op.operation;
        const rapidjson::Value* schema = nullptr;
        if (operation.HasMember("requestBody") && operation["requestBody"].HasMember("content") &&
            operation["requestBody"]["content"].HasMember("application/json") &&
            operation["requestBody"]["content"]["application/json"].HasMember("schema")) {
            schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        }
        if (!schema) return schemas_.emplace(op.operation, nullptr).first->second.get();
        INFO(op.path_template);
        require_resolvable_refs(*schema);
        rapidjson::Document whole;
        whole.CopyFrom(*schema, whole.GetAllocator());
        if (doc_.HasMember("components")) {
            rapidjson::Value components;
            components.CopyFrom(doc_["components"], whole.GetAllocator());
            whole.AddMember("components", components, whole.GetAllocator());
        }
        return schemas_.emplace(op.operation, std::make_unique<rapidjson::SchemaDocument>(whole)).first->second.get();
    }

    // Names of the query parameters an operation declares.
    static std::set<std::string> query_parameters(const Operation& op) {
        std::set<std::string> names;
        if (!op.operation->HasMember("parameters")) return names;
        for (const auto& parameter : (*op.operation)["parameters"].GetArray()) {
            if (std::string(parameter["in"].GetString()) == "query") names.insert(parameter["name"].GetString());
        }
        return names;
    }

    // Checks `body` against `schema`, saying where it does not validate.
    static void check_body(const rapidjson::SchemaDocument& schema, const rapidjson::Value& body,
                           const std::string& method, const Operation& op) {
        rapidjson::SchemaValidator validator(schema);
        if (!body.Accept(validator)) {
            rapidjson::StringBuffer schema_at, document_at;
            validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_at);
            validator.GetInvalidDocumentPointer().StringifyUriFragment(document_at);
            FAIL_CHECK("request body does not validate against "
                       << method << " " << op.path_template << ": keyword '" << validator.GetInvalidSchemaKeyword()
                       << "' at schema " << schema_at.GetString() << ", body " << document_at.GetString());
        }
    }

private:
    void require_resolvable_refs(const rapidjson::Value& value) const {
        if (value.IsObject()) {
            for (const auto& member : value.GetObject()) {
                if (std::string(member.name.GetString()) == "$ref") {
                    const std::string ref = member.value.IsString() ? member.value.GetString() : "";
                    const std::string prefix = "#/components/schemas/";
                    INFO("$ref " << ref);
                    REQUIRE(ref.rfind(prefix, 0) == 0);
                    REQUIRE(doc_.HasMember("components"));
                    REQUIRE(doc_["components"].HasMember("schemas"));
                    REQUIRE(doc_["components"]["schemas"].HasMember(ref.substr(prefix.size()).c_str()));
                } else {
                    require_resolvable_refs(member.value);
                }
            }
        } else if (value.IsArray()) {
            for (const auto& item : value.GetArray()) require_resolvable_refs(item);
        }
    }

    std::string base_path_;
    rapidjson::Document doc_;
    std::map<const rapidjson::Value*, std::unique_ptr<rapidjson::SchemaDocument>> schemas_;
};

}  // namespace segpush::test
