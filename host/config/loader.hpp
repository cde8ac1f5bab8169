#pragma once

#include <optional>
#include <string>

#include "config/diagnostics.hpp"
#include "config/model.hpp"

namespace segpush {

class PluginRegistry;

// Reads the main file and every file it includes, checking structure (keys, types, names,
// references between segments, connections and exports). Nothing here needs a plugin.
// Returns nullopt only when the main file cannot be read or parsed at all; otherwise returns
// what could be read, with every problem in `diagnostics`.
std::optional<Config> load_config(const std::string& path, Diagnostics& diagnostics);

// The checks that need the plugins: each connection's plugin is loaded, settings match the
// plugin's schemas (secrets resolved), mappings name the plugin's fields and cover the
// required ones, consent is given, contributor files use only shared connections.
// Fills Settings::resolved_json where valid.
void check_config(Config& config, const PluginRegistry& registry, Diagnostics& diagnostics);

// plugin_dir from the config, resolved against the config file's folder.
std::string resolved_plugin_dir(const Config& config);

// plugin_dir when the configuration names none: the plugins installed with segpush, found from
// the running binary (bin/segpush -> lib/segpush/plugins). Empty, with `problem` saying why,
// when the running binary cannot be found.
std::string default_plugin_dir(std::string& problem);
// How messages name that default.
inline const std::string kDefaultPluginDirText = std::string(SEGPUSH_PLUGIN_DIR_FROM_BINARY) +
                                                 " from the folder of the segpush binary";

}  // namespace segpush
