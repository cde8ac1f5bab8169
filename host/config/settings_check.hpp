#pragma once

#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/yaml_reader.hpp"

namespace segpush {

// Turns a `settings:` block into the JSON object a plugin receives and checks it against the
// plugin's JSON Schema, reporting every problem at the line that caused it:
//  - unknown keys (with the closest declared one), missing required keys;
//  - each value against its property schema (RapidJSON's validator), one message per key;
//  - ${env:NAME} / ${file:PATH} references resolved; properties marked "x-secret" must be
//    given by reference, and their values never appear in any message;
//  - properties marked "x-file" name a file, relative to the configuration file's directory:
//    it must exist and be readable, and the plugin receives its full path;
//  - a ${file:PATH} secret that group or others may read or change is a warning, or an error
//    when `unsafe_permissions_are_errors` (the configuration's `strict: true`);
//  - the JSON is bounded (kMaxSettingsJsonBytes, kMaxYamlDepth), however many aliases repeat.
//  - a setting whose value cannot be had (a reference that does not resolve, a secret written
//    in clear) has its error, and `json` holds kSettingPlaceholder in its place when that fits
//    the key's schema (see `placeholders`).
struct CheckedSettings {
    std::string json;       // the keys that passed, so a plugin can still check those
    bool complete = false;  // true when there were no problems at all
    // Keys `json` gives kSettingPlaceholder instead of a value they could not get; each has
    // its error already, so a plugin's complaint about one of them says nothing new.
    std::vector<std::string> placeholders;
};

// What the plugin's checks see for a setting whose value cannot be had: plainly not a secret.
inline constexpr const char* kSettingPlaceholder = "segpush-placeholder-not-a-secret";

// Whether a property's schema carries a marker such as "x-secret" or "x-file" (true).
bool schema_flag(const rapidjson::Value& property, const char* flag);

CheckedSettings check_settings(YamlReader& reader, const YAML::Node& settings, const YAML::Node& owner,
                               const std::string& path, const std::string& schema_json, const std::string& base_dir,
                               bool unsafe_permissions_are_errors);

}  // namespace segpush
