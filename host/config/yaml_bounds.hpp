#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace segpush {

// What reading a configuration may cost. YAML anchors and aliases let a few lines stand for a
// tree of billions of nodes ("billion laughs"): yaml-cpp shares the aliased node, but anything
// that walks or converts the tree expands it again at every use. yaml-cpp's parser also
// recurses once per nesting level. No honest configuration comes near these limits; the
// limits are listed in docs/configuration.md.
inline constexpr size_t kMaxConfigFileBytes = size_t{4} << 20;    // each file
inline constexpr uint64_t kMaxYamlNodesPerFile = 100'000;         // aliases counted at every use
inline constexpr uint64_t kMaxYamlNodesPerConfig = 1'000'000;     // the main file and its includes
inline constexpr int kMaxYamlDepth = 64;                          // levels, aliases expanded
inline constexpr size_t kMaxSettingsJsonBytes = size_t{1} << 20;  // one settings block as JSON

// "4 MiB", "100,000": how the limits read in messages.
std::string describe_bytes(size_t bytes);
std::string describe_count(uint64_t count);

// The first limit a document crosses, where it crosses it.
struct YamlBoundProblem {
    int line = 0;  // 1-based
    int column = 0;
    std::string key_path;  // "exports.x.settings.a[2]"; empty at the top
    std::string message;
};

// Reads the first document of `text` event by event, without building it, counting each node
// as often as aliases repeat it, and stops at the first node past kMaxYamlDepth levels or past
// `node_budget` nodes (kMaxYamlNodesPerFile, or less when earlier files of the configuration
// used part of kMaxYamlNodesPerConfig). Cost: one pass over the text, whatever the aliases.
// `nodes` receives the document's node count (exact when there is no problem).
// Throws YAML::ParserException for malformed YAML.
std::optional<YamlBoundProblem> check_yaml_bounds(const std::string& text, uint64_t node_budget, uint64_t& nodes);

}  // namespace segpush
