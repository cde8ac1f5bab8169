#pragma once

#include <segpush/plugin.h>

#include <chrono>
#include <cstdint>
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
//
// Released (its unload hook called, then its library closed) when the registry that loaded
// it is destroyed: by then every connection on it must be closed.
struct LoadedPlugin {
    std::string file;
    segpush_plugin api{};
    segpush_limits limits{};  // zero where the plugin declares none: see the two getters below

    // Declared before `library` so they are destroyed after it: the plugin may log while
    // its library unloads.
    std::unique_ptr<PluginHostContext> host_context;
    std::unique_ptr<segpush_host> host;
    std::shared_ptr<boost::dll::shared_library> library;

    LoadedPlugin() = default;
    LoadedPlugin(const LoadedPlugin&) = delete;
    LoadedPlugin& operator=(const LoadedPlugin&) = delete;
    // Calls api.unload, if any, before the library goes.
    ~LoadedPlugin();

    std::string id() const { return api.id; }
    // The limits as the host applies them: a 0 means the ABI's named default.
    uint32_t max_records_per_batch() const {
        return limits.max_records_per_batch ? limits.max_records_per_batch : SEGPUSH_DEFAULT_MAX_RECORDS_PER_BATCH;
    }
    uint32_t max_concurrent_pushes() const {
        return limits.max_concurrent_pushes ? limits.max_concurrent_pushes : SEGPUSH_DEFAULT_MAX_CONCURRENT_PUSHES;
    }
};

// What a plugin file declares, as a probe in a child process found it: enough to list the
// plugin without loading it into this process.
struct PluginSummary {
    std::string file;
    std::string id;
    std::string name;
    std::string version;
    uint32_t abi_major = 0;
    uint32_t abi_minor = 0;
};

// A file in the plugin directory that could not be used, and why (one line).
struct RefusedPlugin {
    std::string file;
    std::string reason;
    std::string wanted_id;  // set when the file was opened as <wanted_id>.so for a command that needs it
};

// The plugins of one directory. Loading never stops at a bad file: it is recorded in
// refused() and the rest still load.
//
// Before any of a file's code runs, its path must pass check_trusted_path (owner and
// permissions of the file and of every directory above it). Then, when the process is
// single-threaded (the CLI always is while it loads plugins), the file is probed in a child
// process first, so that one that crashes, hangs or calls exit() while loading is refused by
// name instead of taking the command with it.
//
// A plugin's file is named after its id: <directory>/<id>.so. Where two files declare one id,
// the one named after it is used and the other refused; without such a file both are refused.
class PluginRegistry {
public:
    // How long a plugin may take to load in its probe before it is killed and refused.
    static constexpr std::chrono::seconds kProbeTimeout{10};

    // Every *.so file in `directory` (not recursive), in name order, checked and probed; none
    // is loaded into this process. For `plugins list`.
    static PluginRegistry survey_directory(const std::string& directory);
    // The same, then every plugin that passed is loaded into this process.
    static PluginRegistry load_directory(const std::string& directory);
    // Only what a command needs: <directory>/<id>.so for each id, refused unless it declares
    // that id. Only when some id has no such file are the other files of the directory probed
    // to find it (so plugins built under other names still work), and notes() says which file
    // provided it; a file elsewhere in the directory is otherwise never opened.
    static PluginRegistry load_plugins(const std::string& directory, const std::vector<std::string>& ids);

    const std::vector<std::unique_ptr<LoadedPlugin>>& loaded() const { return loaded_; }
    // Every plugin that passed its checks, whether or not it was loaded into this process.
    const std::vector<PluginSummary>& usable() const { return usable_; }
    const std::vector<RefusedPlugin>& refused() const { return refused_; }
    const LoadedPlugin* find(const std::string& id) const;
    // The refusal of the file opened as <id>.so for a command that needs it, if any.
    const RefusedPlugin* refused_for(const std::string& id) const;
    // The ids of usable().
    std::vector<std::string> ids() const;
    // One line each for things worth fixing that did not stop a plugin from loading.
    const std::vector<std::string>& notes() const { return notes_; }
    // Set when the directory itself is missing or unreadable.
    const std::string& directory_problem() const { return directory_problem_; }

private:
    std::vector<std::unique_ptr<LoadedPlugin>> loaded_;
    std::vector<PluginSummary> usable_;
    std::vector<RefusedPlugin> refused_;
    std::vector<std::string> notes_;
    std::string directory_problem_;
};

}  // namespace segpush
