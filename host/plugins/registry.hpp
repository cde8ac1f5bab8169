#pragma once

#include <segpush/plugin.h>

#include <memory>
#include <string>
#include <vector>

#include "plugins/host_services.hpp"

namespace boost::dll {
class shared_library;
}

namespace segpush {

// A plugin that passed every load check. Its descriptor is copied into a zero-filled struct
// of this host's size, so fields a plugin built against an older minor version lacks read as
// NULL/0 instead of past the end of its struct.
struct LoadedPlugin {
    std::string file;
    segpush_plugin api{};
    segpush_limits limits{};  // zero ("no limit") when the plugin declares none

    // Declared before `library` so they are destroyed after it: the plugin may log while
    // its library unloads.
    std::unique_ptr<PluginHostContext> host_context;
    std::unique_ptr<segpush_host> host;
    std::shared_ptr<boost::dll::shared_library> library;

    std::string id() const { return api.id; }
};

// A file in the plugin directory that could not be used, and why (one line).
struct RefusedPlugin {
    std::string file;
    std::string reason;
};

// Every plugin in one directory. Loading never stops at a bad file: it is recorded in
// refused() and the rest still load.
class PluginRegistry {
public:
    // Tries every *.so file in `directory` (not recursive), in name order.
    static PluginRegistry load_directory(const std::string& directory);

    const std::vector<std::unique_ptr<LoadedPlugin>>& loaded() const { return loaded_; }
    const std::vector<RefusedPlugin>& refused() const { return refused_; }
    const LoadedPlugin* find(const std::string& id) const;
    std::vector<std::string> ids() const;
    // Set when the directory itself is missing or unreadable.
    const std::string& directory_problem() const { return directory_problem_; }

private:
    std::vector<std::unique_ptr<LoadedPlugin>> loaded_;
    std::vector<RefusedPlugin> refused_;
    std::string directory_problem_;
};

}  // namespace segpush
