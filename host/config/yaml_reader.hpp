#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "config/diagnostics.hpp"

namespace segpush {

// Typed reads from one YAML file that record a precise diagnostic (file:line:column, key
// path) for every problem instead of throwing.
class YamlReader {
public:
    YamlReader(std::string file, Diagnostics& diagnostics) : file_(std::move(file)), diagnostics_(diagnostics) {}

    const std::string& file() const { return file_; }
    Diagnostics& diagnostics() { return diagnostics_; }
    SourcePos pos(const YAML::Node& node) const;

    void error(const YAML::Node& node, const std::string& path, const std::string& message);

    // True when `node` is a map; reports duplicate keys and keys not in `allowed`, with the
    // closest allowed key as a suggestion.
    bool expect_map(const YAML::Node& node, const std::string& path, const std::vector<std::string>& allowed);

    // The key node (for its position) of `key` in `map`, or an undefined node.
    YAML::Node key_node(const YAML::Node& map, const std::string& key) const;

    std::optional<std::string> string(const YAML::Node& map, const std::string& key, const std::string& path,
                                      bool required);
    std::optional<bool> boolean(const YAML::Node& map, const std::string& key, const std::string& path);
    std::optional<uint64_t> positive_integer(const YAML::Node& map, const std::string& key, const std::string& path);
    // A share: a number from 0 to 1 (0, 0.25, 1).
    std::optional<double> ratio(const YAML::Node& map, const std::string& key, const std::string& path);
    // A scalar or a sequence of scalars.
    std::optional<std::vector<std::string>> string_list(const YAML::Node& map, const std::string& key,
                                                        const std::string& path, bool required);

private:
    void missing(const YAML::Node& map, const std::string& key, const std::string& path);

    std::string file_;
    Diagnostics& diagnostics_;
};

// A plain (unquoted) YAML scalar's value type under the YAML 1.2 core schema, so `3` is a
// number and `"3"` a string, as the user wrote them.
enum class ScalarKind { null, boolean, integer, number, string };
ScalarKind scalar_kind(const YAML::Node& scalar);

std::string describe_node_type(const YAML::Node& node);

}  // namespace segpush
