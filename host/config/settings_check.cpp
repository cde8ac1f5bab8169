#include "config/settings_check.hpp"

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "config/paths.hpp"
#include "config/yaml_bounds.hpp"
#include "secrets/redactor.hpp"
#include "secrets/reference.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace {

using rapidjson::Document;
using rapidjson::Value;

// What converting one settings block may still produce. An alias repeats the whole value it
// names each time it is used (yaml-cpp shares the node; the JSON cannot), so the conversion
// counts the JSON it writes, at most what RapidJSON will write for it, and stops past
// kMaxSettingsJsonBytes or kMaxYamlDepth levels. The loader's node limits hold for files;
// this also holds for large values repeated by aliases.
struct JsonBudget {
    size_t bytes_left = kMaxSettingsJsonBytes;
    bool exceeded = false;
    bool too_deep = false;  // which limit it was

    // False (and stays false) once the conversion is past a limit.
    bool spend(size_t bytes, int depth = 1) {
        if (exceeded) return false;
        too_deep = depth > kMaxYamlDepth;
        if (too_deep || bytes > bytes_left) exceeded = true;
        else bytes_left -= bytes;
        return !exceeded;
    }

    std::string problem() const {
        const std::string limit = too_deep ? std::to_string(kMaxYamlDepth) + " levels"
                                           : describe_bytes(kMaxSettingsJsonBytes) + " of JSON";
        return "the settings grow past " + limit +
               " once aliases are expanded (each *alias repeats what it names); segpush refuses them so that a few "
               "lines of anchors and aliases cannot exhaust its memory";
    }
};

// The most a string takes as JSON: quotes, and \u00XX for each character that needs escaping.
size_t json_string_bytes(const std::string& text) {
    size_t bytes = 2;
    for (const unsigned char c : text) bytes += c < 0x20 || c == '"' || c == '\\' ? 6 : 1;
    return bytes;
}

// Every value is followed by a comma or a closing bracket: one byte more than the value.
Value to_json(const YAML::Node& node, Document::AllocatorType& allocator, JsonBudget& budget, int depth = 1) {
    if (node.IsMap()) {
        Value object(rapidjson::kObjectType);
        if (!budget.spend(2, depth)) return Value(rapidjson::kNullType);
        for (const auto& item : node) {
            const std::string& key = item.first.Scalar();
            if (!budget.spend(json_string_bytes(key) + 1, depth)) break;  // "key":
            Value value = to_json(item.second, allocator, budget, depth + 1);
            if (budget.exceeded) break;
            object.AddMember(Value(key.c_str(), allocator), value, allocator);
        }
        return object;
    }
    if (node.IsSequence()) {
        Value array(rapidjson::kArrayType);
        if (!budget.spend(2, depth)) return Value(rapidjson::kNullType);
        for (const auto& item : node) {
            Value value = to_json(item, allocator, budget, depth + 1);
            if (budget.exceeded) break;
            array.PushBack(value, allocator);
        }
        return array;
    }
    const std::string& text = node.IsScalar() ? node.Scalar() : std::string();
    const ScalarKind kind = scalar_kind(node);
    // Numbers: RapidJSON writes a double in at most 25 characters, an integer in no more than
    // it was written with; null and booleans in at most 5.
    const size_t written = kind == ScalarKind::string   ? json_string_bytes(text)
                           : kind == ScalarKind::number ? std::max<size_t>(text.size(), 25)
                                                        : std::max<size_t>(json_string_bytes(text), 5);
    if (!budget.spend(written + 1, depth)) return Value(rapidjson::kNullType);
    switch (kind) {
        case ScalarKind::null: return Value(rapidjson::kNullType);
        case ScalarKind::boolean: return Value(text[0] == 't' || text[0] == 'T');
        case ScalarKind::integer:
            try {
                if (text[0] == '-') return Value(static_cast<int64_t>(std::stoll(text)));
                return Value(static_cast<uint64_t>(std::stoull(text)));
            } catch (const std::exception&) {
                return Value(text.c_str(), allocator);  // too large: the schema will say so
            }
        case ScalarKind::number: try { return Value(std::stod(text));
            } catch (const std::exception&) {
                return Value(text.c_str(), allocator);  // 1e999: out of a double's range, as above
            }
        case ScalarKind::string: break;
    }
    return Value(text.c_str(), allocator);
}

std::string json_type_name(const Value& value) {
    if (value.IsNull()) return "nothing";
    if (value.IsBool()) return "a boolean";
    if (value.IsInt64() || value.IsUint64()) return "an integer";
    if (value.IsNumber()) return "a number";
    if (value.IsString()) return "a string";
    if (value.IsArray()) return "a list";
    return "a mapping";
}

std::string schema_type_name(const Value& type) {
    auto one = [](const std::string& name) -> std::string {
        if (name == "integer") return "a whole number";
        if (name == "number") return "a number";
        if (name == "string") return "a string";
        if (name == "boolean") return "true or false";
        if (name == "array") return "a list";
        if (name == "object") return "a mapping";
        return name;
    };
    if (type.IsString()) return one(type.GetString());
    std::vector<std::string> names;
    if (type.IsArray()) {
        for (const auto& item : type.GetArray()) {
            if (item.IsString()) names.push_back(one(item.GetString()));
        }
    }
    return join(names, " or ");
}

std::string shown(const Value& value, bool secret) {
    if (secret) return "";
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    std::string text = buffer.GetString();
    if (text.size() > 80) text = text.substr(0, 77) + "...";
    return " " + text;
}

std::string number_text(const Value& number) {
    if (number.IsInt64()) return std::to_string(number.GetInt64());
    if (number.IsUint64()) return std::to_string(number.GetUint64());
    std::string text = std::to_string(number.GetDouble());
    return text;
}

// A message for the first schema violation of `value`, in the words of the keyword broken.
std::string explain(const Value& schema, const Value& value, bool secret, std::string& sub_path) {
    rapidjson::SchemaDocument schema_document(schema);
    rapidjson::SchemaValidator validator(schema_document);
    if (value.Accept(validator)) return {};
    const std::string keyword = validator.GetInvalidSchemaKeyword();
    const Value* failing_schema = validator.GetInvalidSchemaPointer().Get(const_cast<Value&>(schema));
    const rapidjson::Pointer document_pointer = validator.GetInvalidDocumentPointer();
    const Value* failing_value = document_pointer.Get(const_cast<Value&>(value));
    for (size_t i = 0; i < document_pointer.GetTokenCount(); ++i) {
        sub_path += "." + std::string(document_pointer.GetTokens()[i].name, document_pointer.GetTokens()[i].length);
    }
    if (!failing_schema) failing_schema = &schema;
    if (!failing_value) failing_value = &value;
    auto member = [&](const char* name) -> const Value* {
        auto it = failing_schema->FindMember(name);
        return it == failing_schema->MemberEnd() ? nullptr : &it->value;
    };
    const std::string got = json_type_name(*failing_value) + shown(*failing_value, secret);
    if (keyword == "type" && member("type")) return "expected " + schema_type_name(*member("type")) + ", found " + got;
    if (keyword == "minimum" && member("minimum"))
        return "must be at least " + number_text(*member("minimum")) + ", found" + shown(*failing_value, secret);
    if (keyword == "maximum" && member("maximum"))
        return "must be at most " + number_text(*member("maximum")) + ", found" + shown(*failing_value, secret);
    if (keyword == "minLength" && member("minLength")) {
        return member("minLength")->GetUint() <= 1
                   ? "must not be empty"
                   : "must be at least " + number_text(*member("minLength")) + " characters";
    }
    if (keyword == "maxLength" && member("maxLength"))
        return "must be at most " + number_text(*member("maxLength")) + " characters";
    if (keyword == "pattern" && member("pattern"))
        return std::string("must match the pattern ") + member("pattern")->GetString();
    if (keyword == "enum" && member("enum")) {
        std::vector<std::string> allowed;
        for (const auto& item : member("enum")->GetArray()) allowed.push_back(shown(item, false).substr(1));
        return "must be one of " + join(allowed) + ", found" + shown(*failing_value, secret);
    }
    if (keyword == "minItems" && member("minItems"))
        return "must have at least " + number_text(*member("minItems")) + " items";
    if (keyword == "maxItems" && member("maxItems"))
        return "must have at most " + number_text(*member("maxItems")) + " items";
    if (keyword == "required") return "is missing a required key";
    if (keyword == "additionalProperties") return "has a key the plugin does not know";
    return "does not satisfy the plugin's schema (" + keyword + ")";
}

const Value* property_schema(const Document& schema, const std::string& key) {
    auto properties = schema.FindMember("properties");
    if (properties == schema.MemberEnd() || !properties->value.IsObject()) return nullptr;
    auto property = properties->value.FindMember(key.c_str());
    return property == properties->value.MemberEnd() ? nullptr : &property->value;
}

bool has_flag(const Value* property, const char* flag_name) { return property && schema_flag(*property, flag_name); }

// What is wrong with the file a "x-file" setting names, or empty when it can be read.
std::string file_problem(const std::string& path) {
    std::error_code error;
    const auto status = std::filesystem::status(path, error);
    if (error && error != std::errc::no_such_file_or_directory) {
        return "names a file segpush cannot look at: " + path + " (" + error.message() + ")";
    }
    if (!std::filesystem::exists(status)) return "names a file that does not exist: " + path;
    if (!std::filesystem::is_regular_file(status)) return "names something that is not a file: " + path;
    if (!std::ifstream(path)) return "names a file segpush cannot read: " + path;
    return {};
}

// A key node inside `map` for a dotted sub-path, to point errors at nested values.
YAML::Node locate(const YAML::Node& value, const std::string& sub_path) {
    YAML::Node node = value;
    size_t start = 1;
    while (start <= sub_path.size() && !sub_path.empty()) {
        size_t end = sub_path.find('.', start);
        if (end == std::string::npos) end = sub_path.size();
        const std::string token = sub_path.substr(start, end - start);
        YAML::Node next;
        if (node.IsMap()) next = std::as_const(node)[token];
        else if (node.IsSequence()) next = std::as_const(node)[std::stoul(token)];
        if (!next.IsDefined()) break;
        node = next;
        start = end + 1;
    }
    return node;
}

}  // namespace

bool schema_flag(const rapidjson::Value& property, const char* flag) {
    if (!property.IsObject()) return false;
    auto member = property.FindMember(flag);
    return member != property.MemberEnd() && member->value.IsBool() && member->value.GetBool();
}

CheckedSettings check_settings(YamlReader& reader, const YAML::Node& settings, const YAML::Node& owner,
                               const std::string& path, const std::string& schema_json, const std::string& base_dir,
                               bool unsafe_permissions_are_errors) {
    Document schema;
    schema.Parse(schema_json.c_str());
    bool ok = true;
    auto fail = [&](const YAML::Node& node, const std::string& key_path, const std::string& message) {
        reader.error(node, key_path, message);
        ok = false;
    };

    std::vector<std::string> declared;
    if (auto properties = schema.FindMember("properties"); properties != schema.MemberEnd()) {
        for (const auto& property : properties->value.GetObject()) declared.push_back(property.name.GetString());
    }
    const auto additional = schema.FindMember("additionalProperties");
    const bool closed = additional != schema.MemberEnd() && additional->value.IsBool() && !additional->value.GetBool();

    YAML::Node block = settings;
    if (!block.IsDefined() || block.IsNull()) {
        block = YAML::Node(YAML::NodeType::Map);
    } else if (!reader.expect_map(block, path, closed ? declared : std::vector<std::string>{})) {
        return {};
    } else if (closed) {
        for (const auto& item : block) {
            if (std::find(declared.begin(), declared.end(), item.first.Scalar()) == declared.end()) ok = false;
        }
    }
    const YAML::Node anchor = settings.IsDefined() && !settings.IsNull() ? settings : owner;

    Document resolved(rapidjson::kObjectType);
    auto& allocator = resolved.GetAllocator();
    JsonBudget budget;
    budget.spend(2);  // the braces around it all
    std::vector<std::string> placeholders;
    // A setting whose value cannot be had has its error already, and the plugin's
    // validate_settings must still check every other setting. It returns only its first
    // complaint, and plugins check required keys first (ActiveCampaign's api_key comes before
    // its host check), so leaving the key out would hide every problem after it until this
    // one is fixed. The plugin gets a placeholder instead, when it passes the key's schema:
    // validate_settings does no I/O, and settings with an error never reach open_connection,
    // so the placeholder goes nowhere; the plugin's complaint about that key, if any, is
    // dropped (check_plugin_settings). A key whose schema the placeholder does not fit (a
    // pattern, a number) is left out, and the plugin checks what it can without it.
    auto stand_in = [&](const std::string& key, const Value* property) {
        Value placeholder(kSettingPlaceholder, allocator);
        std::string ignored;
        if (property && !explain(*property, placeholder, false, ignored).empty()) return;
        if (!budget.spend(json_string_bytes(key) + json_string_bytes(kSettingPlaceholder) + 2)) return;
        resolved.AddMember(Value(key.c_str(), allocator), placeholder, allocator);
        placeholders.push_back(key);
    };
    for (const auto& item : block) {
        const std::string key = item.first.Scalar();
        const std::string key_path = path + "." + key;
        if (!budget.spend(json_string_bytes(key) + 1)) {
            fail(item.first, key_path, budget.problem());
            return {};
        }
        const Value* property = property_schema(schema, key);
        const bool secret = has_flag(property, "x-secret");
        Value value;
        const auto reference = item.second.IsScalar() ? parse_secret_reference(item.second.Scalar()) : std::nullopt;
        if (reference && reference->kind == SecretReference::Kind::file && has_flag(property, "x-file")) {
            fail(item.second, key_path,
                 "names a file: write its path (" + key + ": " + reference->target +
                     "), not ${file:...}, which "
                     "would pass the file's contents");
            continue;
        }
        if (reference) {
            std::string problem;
            auto secret_value = resolve_secret_reference(*reference, base_dir, problem);
            if (!secret_value) {
                fail(item.second, key_path, problem);
                stand_in(key, property);
                continue;
            }
            if (reference->kind == SecretReference::Kind::file) {
                if (const std::string exposure = secret_file_exposure(*reference, base_dir); !exposure.empty()) {
                    if (unsafe_permissions_are_errors) {
                        fail(item.second, key_path, exposure + " (strict: true makes unsafe permissions errors)");
                        stand_in(key, property);
                        continue;
                    }
                    reader.diagnostics().warning(reader.pos(item.second), key_path, exposure);
                }
            }
            if (!budget.spend(json_string_bytes(*secret_value) + 1)) {
                fail(item.second, key_path, budget.problem());
                return {};
            }
            value.SetString(secret_value->c_str(), allocator);
        } else if (secret) {
            if (item.second.IsScalar()) Redactor::instance().add_secret(item.second.Scalar());
            fail(item.second, key_path,
                 "is a secret: give it by reference as ${env:NAME} or ${file:PATH} so it never sits in a "
                 "configuration file");
            stand_in(key, property);
            continue;
        } else {
            value = to_json(item.second, allocator, budget);
            if (budget.exceeded) {
                fail(item.second, key_path, budget.problem());
                return {};
            }
        }
        if (property) {
            std::string sub_path;
            const std::string problem = explain(*property, value, secret, sub_path);
            if (!problem.empty()) {
                fail(locate(item.second, sub_path), key_path + sub_path, problem);
                continue;
            }
        }
        if (has_flag(property, "x-file") && value.IsString()) {
            // Checked here, so `config check` finds it, and passed on as the path it checked.
            const std::string file = config_path(base_dir, value.GetString());
            if (const std::string problem = file_problem(file); !problem.empty()) {
                fail(item.second, key_path, problem);
                continue;
            }
            if (!budget.spend(json_string_bytes(file))) {  // the path as written is counted already
                fail(item.second, key_path, budget.problem());
                return {};
            }
            value.SetString(file.c_str(), allocator);
        }
        resolved.AddMember(Value(key.c_str(), allocator), value, allocator);
    }
    if (auto required = schema.FindMember("required"); required != schema.MemberEnd() && required->value.IsArray()) {
        for (const auto& name : required->value.GetArray()) {
            if (!name.IsString() || std::as_const(block)[name.GetString()].IsDefined()) continue;
            std::string hint;
            if (const Value* property = property_schema(schema, name.GetString())) {
                if (auto description = property->FindMember("description");
                    description != property->MemberEnd() && description->value.IsString()) {
                    hint = std::string(" — ") + description->value.GetString();
                }
            }
            fail(anchor, path + "." + name.GetString(),
                 std::string("missing required setting '") + name.GetString() + "'" + hint);
        }
    }
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    resolved.Accept(writer);
    return {buffer.GetString(), ok, placeholders};
}

}  // namespace segpush
