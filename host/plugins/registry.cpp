#include "plugins/registry.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <sys/stat.h>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "log/log.hpp"
#include "plugins/plugin_trust.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace fs = std::filesystem;

namespace {

// The descriptor size of ABI 1.0: every later minor version is at least this large.
constexpr size_t kMinimumDescriptorSize = offsetof(segpush_plugin, close_connection) +
                                          sizeof(segpush_plugin::close_connection);

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
    for (auto [name, text] :
         {std::pair{"connection_schema", api.connection_schema}, std::pair{"export_schema", api.export_schema}}) {
        if (auto problem = check_schema(name, text); !problem.empty()) return problem;
    }
    if (api.n_fields == 0 || !api.fields) return "descriptor declares no mapping fields";
    std::set<std::string> seen;
    for (size_t i = 0; i < api.n_fields; ++i) {
        const segpush_field& field = api.fields[i];
        // The array is read with this host's stride, which is right only for elements of
        // exactly this size (segpush_field is fixed-size in every minor version).
        if (field.struct_size != sizeof(segpush_field)) {
            return "mapping field " + std::to_string(i) + " has struct_size " + std::to_string(field.struct_size) +
                   ", not sizeof(segpush_field) (" + std::to_string(sizeof(segpush_field)) + ")";
        }
        if (!is_valid_id(field.id)) return "mapping field " + std::to_string(i) + " has no valid id";
        if (!field.label) return "mapping field '" + std::string(field.id) + "' has no label";
        if (!seen.insert(field.id).second) return "mapping field '" + std::string(field.id) + "' is declared twice";
    }
    // One field identifies a member: the host de-duplicates, diffs and detects leavers by it,
    // and the ABI gives several KEY fields no meaning. A plugin without one falls back on its
    // first email field (plugins built before KEY existed); without either nothing identifies members.
    std::vector<std::string> keys;
    bool has_email = false;
    for (size_t i = 0; i < api.n_fields; ++i) {
        if (api.fields[i].flags & SEGPUSH_FIELD_KEY) keys.push_back("'" + std::string(api.fields[i].id) + "'");
        has_email = has_email || api.fields[i].type == SEGPUSH_FIELD_EMAIL;
    }
    if (keys.size() > 1) {
        return "plugin '" + std::string(api.id) + "' declares " + std::to_string(keys.size()) +
               " key fields (SEGPUSH_FIELD_KEY): " + join(keys) +
               "; a plugin declares exactly one field that identifies a member";
    }
    if (keys.empty() && !has_email) {
        return "plugin '" + std::string(api.id) +
               "' declares no key field (SEGPUSH_FIELD_KEY) and no email field to identify members by";
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

std::string version_text(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

using EntryFunction = const segpush_plugin*(const segpush_host*);

// Loads one file (`path` as found in the plugin directory, `real_path` where it passed the
// trust checks); on failure returns nullptr and sets `reason`.
std::unique_ptr<LoadedPlugin> load_one(const fs::path& path, const std::string& real_path, std::string& reason) {
    auto plugin = std::make_unique<LoadedPlugin>();
    plugin->file = path.string();
    plugin->host_context = std::make_unique<PluginHostContext>(PluginHostContext{path.filename().string()});
    plugin->host = std::make_unique<segpush_host>(make_host_services(plugin->host_context.get()));
    try {
        // rtld_now: an unresolved symbol fails here, naming it, not mid-export.
        // rtld_local: two plugins bundling the same library never share its symbols.
        plugin->library = std::make_shared<boost::dll::shared_library>(
            fs::path(real_path), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
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
    // Checked in a copy: a refused descriptor's unload is never called.
    segpush_plugin api{};
    std::memcpy(&api, raw, std::min<size_t>(raw->struct_size, sizeof(segpush_plugin)));
    if (auto problem = check_descriptor(api); !problem.empty()) {
        reason = problem;
        return nullptr;
    }
    plugin->api = api;
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

PluginSummary summary_of(const fs::path& file, const segpush_plugin& api) {
    return {file.string(), api.id, api.name, api.version, api.abi_major, api.abi_minor};
}

// A probe's answer: 'L' and the summary's fields, or 'R' and the reason for refusing.
std::string encode_summary(const PluginSummary& summary) {
    std::string text = "L";
    for (const std::string& field : {summary.id, summary.name, summary.version, std::to_string(summary.abi_major),
                                     std::to_string(summary.abi_minor)}) {
        text += field;
        text += '\0';
    }
    return text;
}

bool decode_summary(const std::string& text, PluginSummary& summary) {
    std::vector<std::string> fields;
    size_t start = 1;
    for (size_t end; (end = text.find('\0', start)) != std::string::npos; start = end + 1) {
        fields.push_back(text.substr(start, end - start));
    }
    if (text.empty() || text[0] != 'L' || fields.size() != 5 || start != text.size()) return false;
    summary.id = fields[0];
    summary.name = fields[1];
    summary.version = fields[2];
    summary.abi_major = static_cast<uint32_t>(std::strtoul(fields[3].c_str(), nullptr, 10));
    summary.abi_minor = static_cast<uint32_t>(std::strtoul(fields[4].c_str(), nullptr, 10));
    return true;
}

// One plugin file on its way to being loaded or refused.
struct Examined {
    fs::path file;
    std::string wanted_id;  // opened as <wanted_id>.so
    std::string real_path;
    PluginSummary summary;  // when `reason` is empty
    std::string reason;
    std::unique_ptr<LoadedPlugin> plugin;  // once loaded into this process
};

// Checks the file's path, then loads it: in a child process when `isolate`, here otherwise.
Examined examine(const fs::path& file, bool isolate) {
    Examined examined;
    examined.file = file;
    const TrustedPath trusted = check_trusted_path(file.string(), TrustedKind::regular_file);
    if (!trusted.problem.empty()) {
        examined.reason = "not trusted: " + trusted.problem;
        return examined;
    }
    examined.real_path = trusted.real_path;
    if (!isolate) {
        examined.plugin = load_one(file, examined.real_path, examined.reason);
        if (examined.plugin) examined.summary = summary_of(file, examined.plugin->api);
        return examined;
    }
    const ChildOutcome outcome = run_isolated(
        [&] {
            std::string reason;
            std::unique_ptr<LoadedPlugin> plugin = load_one(file, examined.real_path, reason);
            if (!plugin) return "R" + reason;
            const std::string answer = encode_summary(summary_of(file, plugin->api));
            // Never released, so its unload hook never runs here: that would run more of the
            // plugin's code, and the child ends with _exit right after answering.
            (void)plugin.release();
            return answer;
        },
        PluginRegistry::kProbeTimeout);
    if (!outcome.answered) {
        examined.reason = outcome.problem + " while loading";
    } else if (!outcome.answer.empty() && outcome.answer[0] == 'R') {
        examined.reason = outcome.answer.substr(1);
    } else if (!decode_summary(outcome.answer, examined.summary)) {
        examined.reason = "its probe gave an unreadable answer";
    } else {
        examined.summary.file = file.string();
    }
    return examined;
}

// Loads into this process a plugin that passed its probe; on failure sets its reason.
bool ensure_loaded(Examined& examined) {
    if (examined.plugin) return true;
    std::string reason;
    examined.plugin = load_one(examined.file, examined.real_path, reason);
    if (!examined.plugin) examined.reason = reason;
    return examined.plugin != nullptr;
}

// Two files declaring one id: the file named after the id is used and the other refused;
// without one, both are refused, since picking one would silently depend on file names. The
// message names the other file so the user knows which to remove.
void settle_duplicates(std::vector<Examined>& files) {
    std::map<std::string, std::vector<size_t>> by_id;
    for (size_t i = 0; i < files.size(); ++i) {
        if (files[i].reason.empty()) by_id[files[i].summary.id].push_back(i);
    }
    for (const auto& [id, same] : by_id) {
        if (same.size() < 2) continue;
        const Examined* named = nullptr;
        for (size_t i : same) {
            if (files[i].file.filename() == id + ".so") named = &files[i];
        }
        for (size_t i : same) {
            if (&files[i] == named) continue;
            if (named) {
                files[i].reason = "declares id '" + id + "', which " + named->file.string() +
                                  " declares too and is the one used, being named after it";
                continue;
            }
            std::vector<std::string> others;
            for (size_t j : same) {
                if (j != i) others.push_back(files[j].file.string());
            }
            files[i].reason = "declares id '" + id + "', which " + join(others) + " also declares";
        }
    }
}

// The *.so files of `directory` (following symbolic links), in name order; sets `problem`
// when the directory is missing or cannot be read.
std::vector<fs::path> plugin_files(const std::string& directory, std::string& problem) {
    std::error_code error;
    if (!fs::is_directory(directory, error)) {
        problem = "plugin directory " + directory + " does not exist or is not a directory";
        return {};
    }
    std::vector<fs::path> candidates;
    for (const auto& entry : fs::directory_iterator(directory, error)) {
        if (entry.is_regular_file(error) && looks_like_shared_library(entry.path())) candidates.push_back(entry.path());
    }
    if (error) {
        problem = "cannot read plugin directory " + directory + ": " + error.message();
        return {};
    }
    std::sort(candidates.begin(), candidates.end());
    return candidates;
}

// Every *.so file of `directory`, checked and probed, one file kept per id; none when the
// directory cannot be read (then `problem` says why).
std::vector<Examined> examine_directory(const std::string& directory, std::string& problem) {
    std::vector<Examined> files;
    const auto candidates = plugin_files(directory, problem);
    if (!problem.empty()) return files;
    const bool isolate = can_isolate();
    for (const auto& path : candidates) files.push_back(examine(path, isolate));
    settle_duplicates(files);
    return files;
}

}  // namespace

LoadedPlugin::~LoadedPlugin() {
    if (api.unload) api.unload();
}

PluginRegistry PluginRegistry::survey_directory(const std::string& directory) {
    PluginRegistry registry;
    for (auto& file : examine_directory(directory, registry.directory_problem_)) {
        if (file.reason.empty()) {
            registry.usable_.push_back(file.summary);
        } else {
            registry.refused_.push_back({file.file.string(), file.reason, {}});
        }
    }
    return registry;
}

PluginRegistry PluginRegistry::load_directory(const std::string& directory) {
    PluginRegistry registry;
    for (auto& file : examine_directory(directory, registry.directory_problem_)) {
        if (file.reason.empty() && ensure_loaded(file)) {
            registry.usable_.push_back(file.summary);
            registry.loaded_.push_back(std::move(file.plugin));
        } else {
            registry.refused_.push_back({file.file.string(), file.reason, {}});
        }
    }
    return registry;
}

PluginRegistry PluginRegistry::load_plugins(const std::string& directory, const std::vector<std::string>& ids) {
    PluginRegistry registry;
    std::error_code error;
    if (!fs::is_directory(directory, error)) {
        registry.directory_problem_ = "plugin directory " + directory + " does not exist or is not a directory";
        return registry;
    }
    const bool isolate = can_isolate();
    std::vector<Examined> files;
    std::set<std::string> missing;
    std::set<fs::path> opened;
    for (const std::string& id : std::set<std::string>(ids.begin(), ids.end())) {
        const fs::path path = fs::path(directory) / (id + ".so");
        struct stat st {};
        // An id that could not be a file name (a typo, "../x") is looked for by the scan below,
        // which reports it as unknown with suggestions.
        if (!is_valid_id(id.c_str()) || lstat(path.c_str(), &st) != 0) {
            missing.insert(id);
            continue;
        }
        Examined file = examine(path, isolate);
        file.wanted_id = id;
        if (file.reason.empty() && file.summary.id != id) {
            file.reason = "declares id '" + file.summary.id + "', not '" + id +
                          "': a plugin's file is named after its id (rename it to " + file.summary.id + ".so)";
        }
        opened.insert(path);
        files.push_back(std::move(file));
    }
    if (!missing.empty()) {
        for (const auto& path : plugin_files(directory, registry.directory_problem_)) {
            if (!opened.count(path)) files.push_back(examine(path, isolate));
        }
        if (!registry.directory_problem_.empty()) return registry;
    }
    settle_duplicates(files);
    for (auto& file : files) {
        const bool needed = !file.wanted_id.empty() || (file.reason.empty() && missing.count(file.summary.id));
        if (file.reason.empty() && (!needed || ensure_loaded(file))) {
            registry.usable_.push_back(file.summary);
            if (!needed) continue;
            registry.loaded_.push_back(std::move(file.plugin));
            if (file.wanted_id.empty()) {
                registry.notes_.push_back("plugin '" + file.summary.id + "' was found in " + file.file.string() +
                                          " only by opening every file in " + directory + "; rename it to " +
                                          file.summary.id + ".so so that only it is opened");
            }
            continue;
        }
        registry.refused_.push_back({file.file.string(), file.reason, file.wanted_id});
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

const RefusedPlugin* PluginRegistry::refused_for(const std::string& id) const {
    for (const auto& refused : refused_) {
        if (refused.wanted_id == id) return &refused;
    }
    return nullptr;
}

std::vector<std::string> PluginRegistry::ids() const {
    std::vector<std::string> out;
    for (const auto& plugin : usable_) out.push_back(plugin.id);
    return out;
}

}  // namespace segpush
