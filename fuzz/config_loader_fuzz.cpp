// libFuzzer target for the configuration loader (host/config): the input is the main YAML
// file. load_config and check_config (with no plugins) must turn every input into a Config
// and/or diagnostics: no crash, no escaping exception, no leak, no undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "config/loader.hpp"
#include "fuzz_support.hpp"
#include "plugins/registry.hpp"

namespace {

// `include:` opens the files it names. Inputs that could name a device or a /proc or /sys file
// (which may never end, or block on a terminal) are skipped: that is the harness's limit, not
// a property of the loader. A backslash could spell those names with YAML escapes.
bool may_open_special_files(std::string_view text) {
    for (const char* word : {"dev", "proc", "sys", "\\"}) {
        if (text.find(word) != std::string_view::npos) return true;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static segpush::fuzz::TempFile file("segpush.yaml");
    static const segpush::PluginRegistry no_plugins;
    if (may_open_special_files({reinterpret_cast<const char*>(data), size})) return -1;  // not added to the corpus

    const std::string& path = file.write(data, size);
    segpush::Diagnostics diagnostics;
    auto config = segpush::load_config(path, diagnostics);
    if (config) {
        segpush::check_config(*config, no_plugins, diagnostics);
        (void)segpush::resolved_plugin_dir(*config);
    } else if (!diagnostics.has_errors()) {
        std::abort();  // no config must come with a reason
    }
    for (const auto& item : diagnostics.items()) {
        if (item.message.empty()) std::abort();
        (void)item.format();
    }
    return 0;
}
