#pragma once

#include <filesystem>
#include <string>

namespace segpush {

// A path written in a configuration file: relative ones are relative to that file's
// directory, wherever segpush is started from.
inline std::string config_path(const std::filesystem::path& config_dir, const std::string& path) {
    std::filesystem::path resolved(path);
    if (resolved.is_relative()) resolved = config_dir / resolved;
    return resolved.lexically_normal().string();
}

}  // namespace segpush
