#include "plugins/registry.hpp"

#include <boost/dll/shared_library.hpp>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "log/log.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace fs = std::filesystem;

namespace {

// The descriptor size of ABI 1.0: every later minor version is at least this large.
constexpr size_t kMinimumDescriptorSize =
    offsetof(segpush_plugin, close_connection) + sizeof(segpush_plugin::close_connection);

bool is_valid_id(const char* id) {
    static const std::regex pattern("^[a-z0-9][a-z0-9_-]*$");
    return id && std::regex_match(id, pattern);
}

std::string check_schema(const char* name, const char* text) {
    if (!text) return std::string(name) + " is missing";
    rapidjson::Document doc;
    doc.Parse(text);
    if (doc.HasParseError()) {
        return std::string(name) + " is not valid JSON (" + rapidjson::GetParseError_En(doc.GetParseError()) +
               " at offset " + std::to_string(doc.GetErrorOffset()) + ")";
    }
    if (!doc.IsObject()) return std::string(name) + " is not a JSON object";
    auto type = doc.FindMember("type");
    if (type == doc.MemberEnd() || !type->value.IsString() || std::strcmp(type->value.GetString(), "object") != 0) {
        return std::string(name) + " must describe an object (\"type\": \"object\")";
    }
    return {};
}

// Everything the host relies on before calling the plugin; "" when the descriptor is usable.
std::string check_descriptor(const segpush_plugin& api) {
    if (!is_valid_id(api.id)) return "descriptor id is missing or not of the form [a-z0-9][a-z0-9_-]*";
    if (!api.name || !*api.name) return "descriptor name is missing";
    if (!api.version || !*api.version) return "descriptor version is missing";
    for (auto [name, text] : {std::pair{"connection_schema", api.connection_schema},
                              std::pair{"export_schema", api.export_schema}}) {
        if (auto problem = check_schema(name, text); !problem.empty()) return problem;
    }
    if (api.n_fields == 0 || !api.fields) return "descriptor declares no mapping fields";
    std::set<std::string> seen;
    for (size_t i = 0; i < api.n_fields; ++i) {
        const segpush_field& field = api.fields[i];
        if (field.struct_size < offsetof(segpush_field, description) + sizeof(field.description)) {
            return "mapping field " + std::to_string(i) + " has struct_size " + std::to_string(field.struct_size) +
                   ", smaller than ABI 1.0 requires";
        }
        if (!is_valid_id(field.id)) return "mapping field " + std::to_string(i) + " has no valid id";
        if (!field.label) return "mapping field '" + std::string(field.id) + "' has no label";
        if (!seen.insert(field.id).second) return "mapping field '" + std::string(field.id) + "' is declared twice";
    }
    const std::pair<const char*, const void*> functions[] = {
        {"open_connection", reinterpret_cast<const void*>(api.open_connection)},
        {"check_connection", reinterpret_cast<const void*>(api.check_connection)},
        {"begin_export", reinterpret_cast<const void*>(api.begin_export)},
        {"push_batch", reinterpret_cast<const void*>(api.push_batch)},
        {"finish_export", reinterpret_cast<const void*>(api.finish_export)},
        {"abort_export", reinterpret_cast<const void*>(api.abort_export)},
        {"close_connection", reinterpret_cast<const void*>(api.close_connection)},
    };
    for (const auto& [name, pointer] : functions) {
        if (!pointer) return std::string("descriptor function ") + name + " is NULL";
    }
    return {};
}

std::string version_text(uint32_t major, uint32_t minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

using EntryFunction = const segpush_plugin*(const segpush_host*);

// Loads one file; on failure returns nullptr and sets `reason`.
std::unique_ptr<LoadedPlugin> load_one(const fs::path& path, std::string& reason) {
    auto plugin = std::make_unique<LoadedPlugin>();
    plugin->file = path.string();
    plugin->host_context = std::make_unique<PluginHostContext>(PluginHostContext{path.filename().string()});
    plugin->host = std::make_unique<segpush_host>(make_host_services(plugin->host_context.get()));
    try {
        // rtld_now: an unresolved symbol fails here, naming it, not mid-export.
        // rtld_local: two plugins bundling the same library never share its symbols.
        plugin->library = std::make_shared<boost::dll::shared_library>(
            path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        reason = std::string("not a loadable shared library: ") + e.what();
        return nullptr;
    }
    if (!plugin->library->has(SEGPUSH_ENTRY_SYMBOL)) {
        reason = "does not export " SEGPUSH_ENTRY_SYMBOL " (not a segpush plugin?)";
        return nullptr;
    }
    auto& entry = plugin->library->get<EntryFunction>(SEGPUSH_ENTRY_SYMBOL);
    const segpush_plugin* raw = entry(plugin->host.get());
    if (!raw) {
        reason = SEGPUSH_ENTRY_SYMBOL " returned NULL: the plugin declined to load (see its log lines)";
        return nullptr;
    }
    constexpr size_t kVersionFieldsEnd = offsetof(segpush_plugin, abi_minor) + sizeof(raw->abi_minor);
    if (raw->struct_size < kVersionFieldsEnd) {
        reason = "descriptor struct_size " + std::to_string(raw->struct_size) + " is too small to hold a version";
        return nullptr;
    }
    if (raw->abi_major != SEGPUSH_ABI_MAJOR) {
        reason = "built for plugin ABI " + version_text(raw->abi_major, raw->abi_minor) + ", this host speaks " +
                 version_text(SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR) + " (major versions must match)";
        return nullptr;
    }
    if (raw->struct_size < kMinimumDescriptorSize) {
        reason = "descriptor struct_size " + std::to_string(raw->struct_size) + " is smaller than ABI " +
                 version_text(SEGPUSH_ABI_MAJOR, 0) + " requires (" + std::to_string(kMinimumDescriptorSize) + ")";
        return nullptr;
    }
    std::memcpy(&plugin->api, raw, std::min<size_t>(raw->struct_size, sizeof(segpush_plugin)));
    if (auto problem = check_descriptor(plugin->api); !problem.empty()) {
        reason = problem;
        return nullptr;
    }
    if (const segpush_limits* limits = plugin->api.limits) {
        std::memcpy(&plugin->limits, limits, std::min<size_t>(limits->struct_size, sizeof(segpush_limits)));
    }
    plugin->host_context->label = plugin->api.id;
    return plugin;
}

bool looks_like_shared_library(const fs::path& path) {
    const std::string name = path.filename().string();
    return name.front() != '.' && (path.extension() == ".so" || name.find(".so.") != std::string::npos);
}

}  // namespace

PluginRegistry PluginRegistry::load_directory(const std::string& directory) {
    PluginRegistry registry;
    std::error_code error;
    if (!fs::is_directory(directory, error)) {
        registry.directory_problem_ = "plugin directory " + directory + " does not exist or is not a directory";
        return registry;
    }
    std::vector<fs::path> candidates;
    for (const auto& entry : fs::directory_iterator(directory, error)) {
        if (entry.is_regular_file(error) && looks_like_shared_library(entry.path())) candidates.push_back(entry.path());
    }
    if (error) {
        registry.directory_problem_ = "cannot read plugin directory " + directory + ": " + error.message();
        return registry;
    }
    std::sort(candidates.begin(), candidates.end());

    std::vector<std::unique_ptr<LoadedPlugin>> loaded;
    for (const auto& path : candidates) {
        std::string reason;
        if (auto plugin = load_one(path, reason)) {
            loaded.push_back(std::move(plugin));
        } else {
            registry.refused_.push_back({path.string(), reason});
        }
    }
    // Two files claiming one id: refuse both, since picking one would silently depend on
    // file names. The message names the other file so the user knows which to remove.
    std::map<std::string, std::vector<size_t>> by_id;
    for (size_t i = 0; i < loaded.size(); ++i) by_id[loaded[i]->id()].push_back(i);
    for (size_t i = 0; i < loaded.size(); ++i) {
        const auto& same = by_id[loaded[i]->id()];
        if (same.size() == 1) {
            registry.loaded_.push_back(std::move(loaded[i]));
            continue;
        }
        std::vector<std::string> others;
        for (size_t j : same) {
            if (j != i) others.push_back(loaded[j]->file);
        }
        registry.refused_.push_back(
            {loaded[i]->file, "declares id '" + loaded[i]->id() + "', which " + join(others) + " also declares"});
    }
    std::sort(registry.refused_.begin(), registry.refused_.end(),
              [](const RefusedPlugin& a, const RefusedPlugin& b) { return a.file < b.file; });
    return registry;
}

const LoadedPlugin* PluginRegistry::find(const std::string& id) const {
    for (const auto& plugin : loaded_) {
        if (plugin->id() == id) return plugin.get();
    }
    return nullptr;
}

std::vector<std::string> PluginRegistry::ids() const {
    std::vector<std::string> out;
    for (const auto& plugin : loaded_) out.push_back(plugin->id());
    return out;
}

}  // namespace segpush
