#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "config/yaml_reader.hpp"

namespace segpush {

// A setting that may hold a secret (a webhook's URL or key, the state database's password):
// "${env:NAME}" and "${file:PATH}" are resolved (a relative path from the configuration file's
// folder); anything else is taken as written. Either way the value is registered with the
// Redactor, so it is scrubbed from every output. `must_be_reference`: a value written inline is
// refused, since it would sit in the file. A ${file:} others may read is a warning, or an error
// when `strict`.
std::optional<std::string> read_secret_setting(YamlReader& reader, const YAML::Node& map, const std::string& key,
                                               const std::string& path, bool must_be_reference, bool strict);

}  // namespace segpush
