// A plugin folder that passes the host's trust checks, for the plugin-loading tests that run in
// the test's process (tests/plugins/) and those that run the real binary (tests/system/).
// Needs SEGPUSH_TEST_PLUGIN_DIR and SEGPUSH_MISBEHAVING_PLUGIN_DIR (tests/CMakeLists.txt).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "plugins/registry.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test {

// A plugin folder below the build tree, whose every ancestor passes the trust checks, so that
// each test makes exactly one thing untrusted.
struct PluginFolder {
    TempDir root{SEGPUSH_TRUSTED_SCRATCH_DIR};
    std::string dir;

    PluginFolder() : dir(root.file("plugins")) {
        std::filesystem::create_directory(dir);
        chmod(dir.c_str(), 0755);
    }
    // Copies `source` in as `name`, mode 0755.
    std::string add(const std::string& source, const std::string& name) const {
        const std::string target = dir + "/" + name;
        std::filesystem::copy_file(source, target);
        chmod(target.c_str(), 0755);
        return target;
    }
    std::string add_c_example(const std::string& name = "c_example.so") const {
        return add(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", name);
    }
};

// The built plugin that crashes, hangs or exits while loading, by file name.
inline std::string misbehaving(const std::string& name) {
    return std::string(SEGPUSH_MISBEHAVING_PLUGIN_DIR) + "/" + name;
}

// Why the registry refused the file named `file_name`, or "(not refused)".
inline std::string refusal_for(const PluginRegistry& registry, const std::string& file_name) {
    for (const auto& refused : registry.refused()) {
        if (std::filesystem::path(refused.file).filename() == file_name) return refused.reason;
    }
    return "(not refused)";
}

}  // namespace segpush::test
