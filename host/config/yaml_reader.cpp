#include "config/yaml_reader.hpp"

#include <regex>
#include <set>

#include "text/suggest.hpp"

namespace segpush {

namespace {

bool is_plain(const YAML::Node& scalar) { return scalar.Tag() == "?"; }

}  // namespace

ScalarKind scalar_kind(const YAML::Node& scalar) {
    if (scalar.IsNull()) return ScalarKind::null;
    if (!scalar.IsScalar() || !is_plain(scalar)) return ScalarKind::string;
    const std::string& text = scalar.Scalar();
    static const std::regex null_form("^(~|null|Null|NULL)$");
    static const std::regex bool_form("^(true|True|TRUE|false|False|FALSE)$");
    static const std::regex int_form("^[-+]?[0-9]+$");
    static const std::regex number_form(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
    if (text.empty() || std::regex_match(text, null_form)) return ScalarKind::null;
    if (std::regex_match(text, bool_form)) return ScalarKind::boolean;
    if (std::regex_match(text, int_form)) return ScalarKind::integer;
    if (std::regex_match(text, number_form)) return ScalarKind::number;
    return ScalarKind::string;
}

std::string describe_node_type(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return "nothing";
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    switch (scalar_kind(node)) {
        case ScalarKind::null: return "nothing";
        case ScalarKind::boolean: return "a boolean";
        case ScalarKind::integer: return "an integer";
        case ScalarKind::number: return "a number";
        case ScalarKind::string: return "a string";
    }
    return "a value";
}

SourcePos YamlReader::pos(const YAML::Node& node) const {
    if (!node.IsDefined()) return {file_, 0, 0};
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return {file_, 0, 0};
    return {file_, mark.line + 1, mark.column + 1};
}

void YamlReader::error(const YAML::Node& node, const std::string& path, const std::string& message) {
    diagnostics_.error(pos(node), path, message);
}

bool YamlReader::expect_map(const YAML::Node& node, const std::string& path, const std::vector<std::string>& allowed) {
    if (!node.IsMap()) {
        error(node, path, "expected a mapping of keys to values, found " + describe_node_type(node));
        return false;
    }
    std::set<std::string> seen;
    for (const auto& item : node) {
        const std::string key = item.first.Scalar();
        const std::string key_path = path.empty() ? key : path + "." + key;
        if (!seen.insert(key).second) {
            error(item.first, key_path, "key '" + key + "' is given twice in the same mapping");
            continue;
        }
        if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            error(item.first, key_path,
                  "unknown key '" + key + "'" + did_you_mean(key, allowed) + "; allowed keys: " + join(allowed));
        }
    }
    return true;
}

YAML::Node YamlReader::key_node(const YAML::Node& map, const std::string& key) const {
    if (map.IsMap()) {
        for (const auto& item : map) {
            if (item.first.Scalar() == key) return item.first;
        }
    }
    return YAML::Node(YAML::NodeType::Undefined);
}

void YamlReader::missing(const YAML::Node& map, const std::string& key, const std::string& path) {
    error(map, path.empty() ? key : path + "." + key, "missing required key '" + key + "'");
}

std::optional<std::string> YamlReader::string(const YAML::Node& map, const std::string& key, const std::string& path,
                                              bool required) {
    const YAML::Node value = map[key];
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (!value.IsDefined() || value.IsNull()) {
        if (required) missing(map, key, path);
        return std::nullopt;
    }
    if (!value.IsScalar()) {
        error(value, key_path, "expected a string, found " + describe_node_type(value));
        return std::nullopt;
    }
    return value.Scalar();
}

std::optional<bool> YamlReader::boolean(const YAML::Node& map, const std::string& key, const std::string& path) {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return std::nullopt;
    if (!value.IsScalar() || scalar_kind(value) != ScalarKind::boolean) {
        error(value, path.empty() ? key : path + "." + key,
              "expected true or false, found " + describe_node_type(value) +
                  (value.IsScalar() ? " '" + value.Scalar() + "'" : ""));
        return std::nullopt;
    }
    const std::string& text = value.Scalar();
    return text[0] == 't' || text[0] == 'T';
}

std::optional<uint64_t> YamlReader::positive_integer(const YAML::Node& map, const std::string& key,
                                                     const std::string& path) {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return std::nullopt;
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (!value.IsScalar() || scalar_kind(value) != ScalarKind::integer || value.Scalar()[0] == '-') {
        error(value, key_path,
              "expected a positive whole number, found " + describe_node_type(value) +
                  (value.IsScalar() ? " '" + value.Scalar() + "'" : ""));
        return std::nullopt;
    }
    try {
        const uint64_t number = std::stoull(value.Scalar());
        if (number == 0) {
            error(value, key_path, "must be at least 1");
            return std::nullopt;
        }
        return number;
    } catch (const std::exception&) {
        error(value, key_path, "number is too large");
        return std::nullopt;
    }
}

std::optional<double> YamlReader::ratio(const YAML::Node& map, const std::string& key, const std::string& path) {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return std::nullopt;
    const std::string key_path = path.empty() ? key : path + "." + key;
    const bool numeric = value.IsScalar() &&
                         (scalar_kind(value) == ScalarKind::integer || scalar_kind(value) == ScalarKind::number);
    double number = -1;
    if (numeric) {
        try {
            number = std::stod(value.Scalar());
        } catch (const std::exception&) {  // out of range: reported below
        }
    }
    if (!(number >= 0 && number <= 1)) {
        error(value, key_path,
              "expected a number from 0 to 1 (a share, e.g. 0.5 for half), found " +
                  (numeric ? "'" + value.Scalar() + "'"
                           : describe_node_type(value) + (value.IsScalar() ? " '" + value.Scalar() + "'" : "")));
        return std::nullopt;
    }
    return number;
}

std::optional<std::vector<std::string>> YamlReader::string_list(const YAML::Node& map, const std::string& key,
                                                                const std::string& path, bool required) {
    const YAML::Node value = map[key];
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (!value.IsDefined() || value.IsNull()) {
        if (required) missing(map, key, path);
        return std::nullopt;
    }
    if (value.IsScalar()) return std::vector<std::string>{value.Scalar()};
    if (!value.IsSequence()) {
        error(value, key_path, "expected a list of names, found " + describe_node_type(value));
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].IsScalar()) {
            error(value[i], key_path + "[" + std::to_string(i) + "]",
                  "expected a name, found " + describe_node_type(value[i]));
            return std::nullopt;
        }
        out.push_back(value[i].Scalar());
    }
    return out;
}

}  // namespace segpush
