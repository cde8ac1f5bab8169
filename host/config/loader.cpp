#include "config/loader.hpp"

#include <fnmatch.h>
#include <rapidjson/document.h>
#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "config/paths.hpp"
#include "config/secret_setting.hpp"
#include "config/settings_check.hpp"
#include "config/yaml_bounds.hpp"
#include "config/yaml_reader.hpp"
#include "plugins/destination.hpp"
#include "plugins/registry.hpp"
#include "schedule/cron.hpp"
#include "secrets/redactor.hpp"
#include "segments/segment_reader.hpp"
#include "state/postgres.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace fs = std::filesystem;

namespace {

// The `settings` block of an entry. On a const node, node["settings"] is an invalid ("zombie")
// node when the key is absent, and assigning that to a YAML::Node member throws InvalidNode:
// an entry without settings crashed `config check`. An absent block is kept as Undefined.
YAML::Node settings_block(const YAML::Node& node) {
    const YAML::Node settings = node["settings"];
    return settings.IsDefined() ? settings : YAML::Node(YAML::NodeType::Undefined);
}

const std::vector<std::string> kMainKeys = {"plugin_dir", "state",    "report_retention_days", "reports_dir", "strict",
                                            "include",    "segments", "connections",           "exports",     "serve",
                                            "notify"};
const std::vector<std::string> kPostgresStateKeys = {"url", "password", "lease_seconds"};
const std::vector<std::string> kAdminIncludeKeys = {"segments", "connections", "exports"};
const std::vector<std::string> kContributorIncludeKeys = {"exports"};
const std::vector<std::string> kSegmentKeys = {"source", "path", "fifo_timeout_seconds", "columns"};
const std::vector<std::string> kConnectionKeys = {"plugin", "display_name", "usable_by", "privacy_consent", "settings"};
const std::vector<std::string> kExportKeys = {"connection",
                                              "segments",
                                              "settings",
                                              "mapping",
                                              "schedule",
                                              "timezone",
                                              "max_profiles",
                                              "on_leave",
                                              "retry",
                                              "clear_blank_values",
                                              "catch_up",
                                              "notify",
                                              "settle_seconds",
                                              "max_rejected_ratio",
                                              "max_leaving_ratio",
                                              "max_changed_ratio",
                                              "retry_rejected_runs"};
const std::vector<std::string> kSources = {"csv", "jsonl"};
const std::vector<std::string> kRoles = {"admins", "contributors"};

const char* const kConsentExplanation =
    "privacy_consent must be true: exporting sends personal data (email addresses, names, phone numbers) of "
    "everyone in the segments to this destination, which stores and processes it under its own terms and "
    "possibly in another region. Setting privacy_consent: true records that your organisation has a lawful "
    "basis for this transfer and agrees to those terms";

bool valid_name(const std::string& name) {
    static const std::regex pattern("^[A-Za-z0-9][A-Za-z0-9_.-]*$");
    return std::regex_match(name, pattern);
}

struct IncludedFile {
    std::string path;
    bool contributors = false;
    YAML::Node where;  // the include entry, for errors
};

class Loader {
public:
    Loader(Config& config, Diagnostics& diagnostics) : config_(config), diagnostics_(diagnostics) {}

    // Parses one file; an undefined node means it could not be read (already reported). The
    // file is read only up to kMaxConfigFileBytes, and checked against the node and depth
    // limits event by event before yaml-cpp builds it, so no file costs more than the limits.
    YAML::Node parse(const std::string& path, const SourcePos& referenced_from) {
        const SourcePos where = referenced_from.file.empty() ? SourcePos{path, 0, 0} : referenced_from;
        if (nodes_read_ >= kMaxYamlNodesPerConfig) return YAML::Node(YAML::NodeType::Undefined);  // said once
        try {
            std::error_code error;
            if (fs::is_directory(path, error)) {
                diagnostics_.error(where, "", "cannot read configuration file " + path + ": it is a directory");
                return YAML::Node(YAML::NodeType::Undefined);
            }
            std::string text;
            if (!read_bounded(path, text)) {
                diagnostics_.error(where, "", "cannot read configuration file " + path);
                return YAML::Node(YAML::NodeType::Undefined);
            }
            if (text.size() > kMaxConfigFileBytes) {
                diagnostics_.error(where, "",
                                   "configuration file " + path + " is larger than " +
                                       describe_bytes(kMaxConfigFileBytes) +
                                       ", the most segpush reads: is it the right file? A larger "
                                       "configuration can be split into included files");
                return YAML::Node(YAML::NodeType::Undefined);
            }
            uint64_t nodes = 0;
            const uint64_t budget = std::min(kMaxYamlNodesPerFile, kMaxYamlNodesPerConfig - nodes_read_);
            if (const auto problem = check_yaml_bounds(text, budget, nodes)) {
                diagnostics_.error({path, problem->line, problem->column}, problem->key_path, problem->message);
                // Past the whole configuration's limit nothing more is read; past one file's,
                // the other files still are, so that each problem is reported.
                if (nodes > budget && budget < kMaxYamlNodesPerFile) nodes_read_ = kMaxYamlNodesPerConfig;
                return YAML::Node(YAML::NodeType::Undefined);
            }
            nodes_read_ += nodes;
            return YAML::Load(text);
        } catch (const YAML::DeepRecursion& e) {  // the node limits come first; kept as a backstop
            diagnostics_.error({path, e.mark.line + 1, e.mark.column + 1}, "",
                               "malformed YAML: nested too deeply (" + std::to_string(e.depth()) + " levels)");
        } catch (const YAML::ParserException& e) {
            diagnostics_.error({path, e.mark.line + 1, e.mark.column + 1}, "", "malformed YAML: " + e.msg);
        } catch (const std::exception& e) {  // an I/O error while reading, say
            diagnostics_.error(where, "", "cannot read configuration file " + path + ": " + e.what());
        }
        return YAML::Node(YAML::NodeType::Undefined);
    }

    void read_main(const YAML::Node& root) {
        YamlReader reader(config_.file, diagnostics_);
        if (root.IsNull()) {
            diagnostics_.error({config_.file, 1, 1}, "", "the file is empty; expected keys " + join(kMainKeys));
            return;
        }
        if (!reader.expect_map(root, "", kMainKeys)) return;
        if (!root["plugin_dir"].IsDefined() || root["plugin_dir"].IsNull()) {
            config_.plugin_dir_is_default = true;
            config_.plugin_dir_pos = {config_.file, 1, 1};
            std::string problem;
            config_.plugin_dir = default_plugin_dir(problem);
            if (config_.plugin_dir.empty()) {
                diagnostics_.error(config_.plugin_dir_pos, "plugin_dir",
                                   "not set, and the default (" + kDefaultPluginDirText +
                                       ") cannot be found: " + problem + "; set plugin_dir");
            }
        } else if (auto dir = reader.string(root, "plugin_dir", "", true)) {
            config_.plugin_dir = *dir;
            config_.plugin_dir_pos = reader.pos(root["plugin_dir"]);
        }
        if (auto days = reader.positive_integer(root, "report_retention_days", "")) {
            if (*days > 36500) {
                reader.error(root["report_retention_days"], "report_retention_days",
                             "keeps reports at most 36500 days (100 years); reports hold personal data");
            } else {
                config_.report_retention_days = *days;
            }
        }
        config_.strict = reader.boolean(root, "strict", "").value_or(false);
        read_state(reader, root);
        read_serve(reader, root["serve"]);
        // Before the exports: each merges its own notify: over this one.
        config_.notify = read_notify_policy(reader, root["notify"], "notify", NotifyPolicy{}, false, config_.strict);
        read_entities(reader, root, config_.base_dir, false);
        for (const auto& included : expand_includes(reader, root["include"])) {
            const YAML::Node file_root = parse(included.path, reader.pos(included.where));
            if (!file_root.IsDefined() || file_root.IsNull()) continue;
            YamlReader included_reader(included.path, diagnostics_);
            if (!included_reader.expect_map(file_root, "",
                                            included.contributors ? kContributorIncludeKeys : kAdminIncludeKeys)) {
                continue;
            }
            read_entities(included_reader, file_root, fs::path(included.path).parent_path().string(),
                          included.contributors);
        }
    }

private:
    // `state:` is an SQLite file's path (the default, segpush-state.db), a postgresql:// URI, or
    // a map {url, password, lease_seconds} for PostgreSQL with the password given by reference.
    void read_state(YamlReader& reader, const YAML::Node& root) {
        const YAML::Node state = root["state"];
        config_.state_pos = state.IsDefined() ? reader.pos(state) : SourcePos{config_.file, 1, 1};
        std::string url, password;
        const bool is_map = state.IsDefined() && state.IsMap();  // an absent key's node throws on IsMap()
        if (is_map) {
            if (!reader.expect_map(state, "state", kPostgresStateKeys)) return;
            const auto given = reader.string(state, "url", "state", true);
            if (!given) return;
            url = *given;
            if (!postgres::is_postgres_location(url)) {
                reader.error(state["url"], "state.url",
                             "is not a postgresql:// URI; an SQLite state file is given as state: PATH");
                return;
            }
            if (state["password"].IsDefined()) {
                const auto secret = read_secret_setting(reader, state, "password", "state", true, config_.strict);
                if (!secret) return;
                password = *secret;
            }
            if (state["lease_seconds"].IsDefined()) {
                const auto lease = reader.positive_integer(state, "lease_seconds", "state");
                if (!lease) return;
                if (*lease < 3 || *lease > 3600) {
                    reader.error(state["lease_seconds"], "state.lease_seconds",
                                 "must be from 3 to 3600 seconds: how long a replica that stopped answering keeps "
                                 "its exports before another takes them over");
                    return;
                }
                config_.state_options.lease = std::chrono::seconds(*lease);
            }
        } else {
            const auto given = reader.string(root, "state", "", false);
            if (!given) {
                config_.state_location = config_.state_shown = config_path(config_.base_dir, "segpush-state.db");
                config_.reports_dir = reports_dir(reader, root, config_.state_location);
                return;
            }
            if (!postgres::is_postgres_location(*given)) {
                config_.state_location = config_.state_shown = config_path(config_.base_dir, *given);
                config_.reports_dir = reports_dir(reader, root, config_.state_location);
                return;
            }
            url = *given;
        }
        // A password written in the URI itself stays there (libpq reads it) but is scrubbed from
        // every output, and the user is told where it belongs.
        if (const std::string written = postgres::password_in(url); !written.empty()) {
            Redactor::instance().add_secret(written);
            const std::string where = is_map ? "state.url" : "state";
            const std::string message = "holds a password: give it as state.password: ${env:NAME} or ${file:PATH}";
            if (config_.strict) {
                reader.error(is_map ? state["url"] : state, where, message);
                return;
            }
            diagnostics_.warning(reader.pos(is_map ? state["url"] : state), where, message);
        }
        config_.state_location = postgres::segpush_conninfo(url, password);
        config_.state_shown = postgres::masked_conninfo(url);
        std::string problem;
        if (!postgres::valid_conninfo(config_.state_location, problem)) {
            reader.error(is_map ? state["url"] : state, is_map ? "state.url" : "state", problem);
        }
        config_.reports_dir = reports_dir(reader, root, config_.file);
    }

    // `reports_dir`, else `reports` beside `beside` (the SQLite state file, or with PostgreSQL
    // state the configuration file: reports hold personal data and stay on the host that ran).
    std::string reports_dir(YamlReader& reader, const YAML::Node& root, const std::string& beside) {
        if (auto dir = reader.string(root, "reports_dir", "", false)) return config_path(config_.base_dir, *dir);
        return (fs::path(beside).parent_path() / "reports").string();
    }

    void read_serve(YamlReader& reader, const YAML::Node& serve) {
        if (!serve.IsDefined() || serve.IsNull() || !reader.expect_map(serve, "serve", {"listen"})) return;
        if (auto listen = reader.string(serve, "listen", "serve", false)) {
            std::string problem;
            if (auto address = parse_listen_address(*listen, problem)) {
                config_.serve_listen = *address;
            } else {
                reader.error(serve["listen"], "serve.listen", problem);
            }
        }
    }

    // Reads at most one byte more than kMaxConfigFileBytes, so `text` tells whether the file
    // is larger; false when it cannot be opened or read.
    static bool read_bounded(const std::string& path, std::string& text) {
        std::ifstream in(path, std::ios::binary);
        if (!in) return false;
        char chunk[65536];
        while (text.size() <= kMaxConfigFileBytes) {
            in.read(chunk, sizeof chunk);
            text.append(chunk, static_cast<size_t>(in.gcount()));
            if (!in) break;
        }
        return !in.bad();
    }

    std::vector<IncludedFile> expand_includes(YamlReader& reader, const YAML::Node& includes) {
        std::vector<IncludedFile> files;
        if (!includes.IsDefined() || includes.IsNull()) return files;
        if (!includes.IsSequence()) {
            reader.error(includes, "include", "expected a list of files or {path, editable_by} entries");
            return files;
        }
        for (size_t i = 0; i < includes.size(); ++i) {
            const YAML::Node entry = includes[i];
            const std::string path = "include[" + std::to_string(i) + "]";
            std::string pattern;
            bool contributors = false;
            if (entry.IsScalar()) {
                pattern = entry.Scalar();
            } else if (reader.expect_map(entry, path, {"path", "editable_by"})) {
                pattern = reader.string(entry, "path", path, true).value_or("");
                const std::string editor = reader.string(entry, "editable_by", path, false).value_or("admins");
                if (editor != "admins" && editor != "contributors") {
                    reader.error(entry["editable_by"], path + ".editable_by",
                                 "must be admins or contributors" + did_you_mean(editor, kRoles));
                }
                contributors = editor == "contributors";
            }
            if (pattern.empty()) continue;
            const fs::path full = fs::path(config_path(config_.base_dir, pattern));
            const std::string name = full.filename().string();
            if (name.find_first_of("*?[") == std::string::npos) {
                std::error_code missing;
                if (!fs::exists(full, missing)) {
                    reader.error(entry, path, "included file " + full.string() + " does not exist");
                    continue;
                }
                files.push_back({full.string(), contributors, entry});
                continue;
            }
            std::vector<std::string> matches;
            std::error_code error;
            for (const auto& item : fs::directory_iterator(full.parent_path(), error)) {
                if (item.is_regular_file() && fnmatch(name.c_str(), item.path().filename().c_str(), 0) == 0) {
                    matches.push_back(item.path().string());
                }
            }
            std::sort(matches.begin(), matches.end());
            for (const auto& match : matches) files.push_back({match, contributors, entry});
        }
        return files;
    }

    // Reports a name defined twice (across all files) and returns false for the second one.
    bool claim(YamlReader& reader, const YAML::Node& key, const std::string& kind, const std::string& name) {
        const std::string path = kind + "." + name;
        if (!valid_name(name)) {
            reader.error(key, path, "name '" + name + "' may use only letters, digits, '_', '-' and '.'");
            return false;
        }
        auto [it, inserted] = defined_.emplace(path, reader.pos(key));
        if (!inserted) {
            reader.error(key, path,
                         kind.substr(0, kind.size() - 1) + " '" + name + "' is already defined at " + it->second.file +
                             ":" + std::to_string(it->second.line));
        }
        return inserted;
    }

    void read_entities(YamlReader& reader, const YAML::Node& root, const std::string& base_dir, bool contributors) {
        const YAML::Node segments = root["segments"];
        if (!contributors && segments.IsDefined() && !segments.IsNull() &&
            reader.expect_map(segments, "segments", {})) {
            for (const auto& item : segments) read_segment(reader, item.first, item.second, base_dir);
        }
        const YAML::Node connections = root["connections"];
        if (!contributors && connections.IsDefined() && !connections.IsNull() &&
            reader.expect_map(connections, "connections", {})) {
            for (const auto& item : connections) read_connection(reader, item.first, item.second);
        }
        const YAML::Node exports = root["exports"];
        if (exports.IsDefined() && !exports.IsNull() && reader.expect_map(exports, "exports", {})) {
            for (const auto& item : exports) read_export(reader, item.first, item.second, contributors);
        }
    }

    void read_segment(YamlReader& reader, const YAML::Node& key, const YAML::Node& node, const std::string& base_dir) {
        const std::string name = key.Scalar();
        const std::string path = "segments." + name;
        if (!claim(reader, key, "segments", name) || !reader.expect_map(node, path, kSegmentKeys)) return;
        SegmentConfig segment;
        segment.name = name;
        segment.pos = reader.pos(key);
        const auto file = reader.string(node, "path", path, true);
        if (!file) return;
        if (*file == "-") {
            reader.error(node["path"], path + ".path",
                         "'-' (standard input) cannot be a segment: write the segment to a file, or to a FIFO "
                         "with fifo_timeout_seconds (a file named '-' is ./-)");
            return;
        }
        segment.path = config_path(base_dir, *file);
        if (auto seconds = reader.positive_integer(node, "fifo_timeout_seconds", path)) {
            if (*seconds > 86400) {
                reader.error(node["fifo_timeout_seconds"], path + ".fifo_timeout_seconds",
                             "waits for a FIFO's writer at most 86400 seconds (a day)");
            } else {
                segment.fifo_timeout = std::chrono::seconds(*seconds);
            }
        }
        if (auto columns = reader.string_list(node, "columns", path, false)) {
            read_declared_columns(reader, node["columns"], path + ".columns", *columns, segment);
        }
        const std::string extension = fs::path(*file).extension().string();
        std::string inferred = extension == ".csv"                                 ? "csv"
                               : (extension == ".jsonl" || extension == ".ndjson") ? "jsonl"
                                                                                   : "";
        segment.source = reader.string(node, "source", path, false).value_or(inferred);
        if (segment.source.empty()) {
            reader.error(node, path + ".source",
                         "cannot tell the format from the file name; add source: csv or source: jsonl");
            return;
        }
        if (std::find(kSources.begin(), kSources.end(), segment.source) == kSources.end()) {
            reader.error(node["source"], path + ".source",
                         "unknown source '" + segment.source + "'" + did_you_mean(segment.source, kSources) +
                             "; supported: " + join(kSources));
            return;
        }
        std::error_code unreadable;  // a symlink loop, say: reported when the export reads it
        const fs::file_status status = fs::status(segment.path, unreadable);
        if (fs::status_known(status)) unreadable.clear();  // "not found" is not a failure to read
        if (!fs::exists(status) && !unreadable) {
            diagnostics_.warning(reader.pos(node["path"]), path + ".path",
                                 "segment file " + segment.path + " does not exist yet");
        } else if (status.type() == fs::file_type::fifo && !segment.fifo_timeout) {
            diagnostics_.warning(reader.pos(node["path"]), path + ".path",
                                 "segment file " + segment.path +
                                     " is a FIFO (named pipe): runs refuse it unless "
                                     "the segment sets fifo_timeout_seconds");
        } else if (fs::exists(status) && status.type() != fs::file_type::regular &&
                   status.type() != fs::file_type::fifo) {
            const fs::file_type type = status.type();
            const char* kind = type == fs::file_type::directory   ? "a directory"
                               : type == fs::file_type::character ? "a character device"
                               : type == fs::file_type::block     ? "a block device"
                               : type == fs::file_type::socket    ? "a socket"
                                                                  : "a special file";
            diagnostics_.warning(reader.pos(node["path"]), path + ".path",
                                 "segment file " + segment.path + " is " + kind +
                                     ", not a regular file: runs refuse it");
        }
        config_.segments.push_back(segment);
    }

    // A declared column list: names a mapping could read, each once (as a CSV header must).
    static void read_declared_columns(YamlReader& reader, const YAML::Node& node, const std::string& path,
                                      const std::vector<std::string>& columns, SegmentConfig& segment) {
        if (columns.empty()) {
            reader.error(node, path, "lists no columns; list the columns the segment's file has, or remove columns");
            return;
        }
        for (size_t i = 0; i < columns.size(); ++i) {
            const YAML::Node at = node.IsSequence() ? node[i] : node;
            if (columns[i].empty()) {
                reader.error(at, path + "[" + std::to_string(i) + "]", "a column needs a name");
                return;
            }
            if (std::find(columns.begin(), columns.begin() + static_cast<std::ptrdiff_t>(i), columns[i]) !=
                columns.begin() + static_cast<std::ptrdiff_t>(i)) {
                reader.error(at, path + "[" + std::to_string(i) + "]", "column '" + columns[i] + "' is listed twice");
                return;
            }
        }
        segment.columns = columns;
    }

    void read_connection(YamlReader& reader, const YAML::Node& key, const YAML::Node& node) {
        const std::string name = key.Scalar();
        const std::string path = "connections." + name;
        if (!claim(reader, key, "connections", name) || !reader.expect_map(node, path, kConnectionKeys)) return;
        ConnectionConfig connection;
        connection.name = name;
        connection.pos = reader.pos(key);
        connection.plugin = reader.string(node, "plugin", path, true).value_or("");
        connection.plugin_pos = reader.pos(node["plugin"].IsDefined() ? node["plugin"] : key);
        connection.display_name = reader.string(node, "display_name", path, false).value_or(name);
        if (auto roles = reader.string_list(node, "usable_by", path, false)) {
            connection.usable_by.clear();
            for (const auto& role : *roles) {
                if (role == "admins") connection.usable_by.push_back(Role::admins);
                else if (role == "contributors") connection.usable_by.push_back(Role::contributors);
                else
                    reader.error(node["usable_by"], path + ".usable_by",
                                 "unknown role '" + role + "'" + did_you_mean(role, kRoles) +
                                     "; roles: " + join(kRoles));
            }
            // Admins can always use what contributors can.
            if (!connection.usable_by.empty() && std::find(connection.usable_by.begin(), connection.usable_by.end(),
                                                           Role::admins) == connection.usable_by.end()) {
                connection.usable_by.push_back(Role::admins);
            }
        }
        const auto consent = reader.boolean(node, "privacy_consent", path);
        connection.privacy_consent = consent.value_or(false);
        if (!connection.privacy_consent) {
            reader.error(consent ? node["privacy_consent"] : key, path + ".privacy_consent", kConsentExplanation);
        }
        const YAML::Node settings = settings_block(node);
        connection.settings = {settings, key, reader.pos(settings.IsDefined() ? settings : key), ""};
        connection.settings.pos.file = reader.file();
        config_.connections.push_back(connection);
    }

    void read_export(YamlReader& reader, const YAML::Node& key, const YAML::Node& node, bool contributors) {
        const std::string name = key.Scalar();
        const std::string path = "exports." + name;
        if (!claim(reader, key, "exports", name) || !reader.expect_map(node, path, kExportKeys)) return;
        ExportConfig item;
        item.name = name;
        item.pos = reader.pos(key);
        item.from_contributor_file = contributors;
        item.connection = reader.string(node, "connection", path, true).value_or("");
        item.connection_pos = reader.pos(node["connection"].IsDefined() ? node["connection"] : key);
        item.segments = reader.string_list(node, "segments", path, true).value_or(std::vector<std::string>{});
        item.segments_pos = reader.pos(node["segments"].IsDefined() ? node["segments"] : key);
        const YAML::Node settings = settings_block(node);
        item.settings = {settings, key, reader.pos(settings.IsDefined() ? settings : key), ""};
        item.settings.pos.file = reader.file();
        const YAML::Node mapping = node["mapping"];
        item.mapping_block_pos = reader.pos(mapping.IsDefined() ? mapping : key);
        if (!mapping.IsDefined() || mapping.IsNull()) {
            reader.error(key, path + ".mapping",
                         "missing required key 'mapping' (destination field: segment column, e.g. email: Email)");
        } else if (reader.expect_map(mapping, path + ".mapping", {})) {
            item.mapping_given = true;
            for (const auto& field : mapping) {
                const std::string field_path = path + ".mapping." + field.first.Scalar();
                if (!field.second.IsScalar() || field.second.Scalar().empty()) {
                    reader.error(field.second.IsDefined() ? field.second : field.first, field_path,
                                 "expected the name of a segment column, found " + describe_node_type(field.second));
                    continue;
                }
                item.mapping.emplace_back(field.first.Scalar(), field.second.Scalar());
                item.mapping_pos.push_back(reader.pos(field.first));
                item.mapping_column_pos.push_back(reader.pos(field.second));
            }
        }
        item.schedule = reader.string(node, "schedule", path, false).value_or("");
        if (!item.schedule.empty() && item.schedule != kOnChangeSchedule) {
            std::string problem;
            const bool one_word = item.schedule.find_first_of(" \t") == std::string::npos;
            if (one_word && item.schedule[0] != '@') {
                reader.error(node["schedule"], path + ".schedule",
                             "'" + item.schedule + "' is not a schedule: write " + kOnChangeSchedule +
                                 " (run when the segment files change), a shorthand such as @daily, or 5 cron "
                                 "fields such as \"0 3 * * *\"" +
                                 did_you_mean(item.schedule, {kOnChangeSchedule}));
            } else if (!CronSchedule::parse(item.schedule, problem)) {
                reader.error(node["schedule"], path + ".schedule", problem);
            }
        }
        item.timezone = reader.string(node, "timezone", path, false).value_or("");
        if (!item.timezone.empty() && !known_time_zone(item.timezone)) {
            reader.error(node["timezone"], path + ".timezone",
                         "unknown time zone '" + item.timezone + "'; use an IANA name such as Europe/Paris");
        }
        if (!item.timezone.empty() && item.schedule == kOnChangeSchedule) {
            reader.diagnostics().warning(
                reader.pos(node["timezone"]), path + ".timezone",
                "has no effect: schedule: on_change runs when the segment files change, at any hour");
        }
        if (auto settle = reader.positive_integer(node, "settle_seconds", path)) {
            if (item.schedule != kOnChangeSchedule) {
                reader.error(node["settle_seconds"], path + ".settle_seconds",
                             "settle_seconds is for schedule: on_change (how long the segment files must stay "
                             "unchanged before a run)");
            } else if (*settle > 3600) {
                reader.error(node["settle_seconds"], path + ".settle_seconds",
                             "at most 3600 (an hour); a segment still changing after that is better published by "
                             "renaming a finished file into place");
            } else {
                item.settle = std::chrono::seconds(*settle);
            }
        }
        item.max_profiles = reader.positive_integer(node, "max_profiles", path);
        const std::string on_leave = reader.string(node, "on_leave", path, false).value_or("keep");
        if (on_leave == "unsubscribe") item.on_leave = OnLeave::unsubscribe;
        else if (on_leave != "keep") {
            reader.error(node["on_leave"], path + ".on_leave",
                         "must be keep (members who leave the segment stay in the destination) or unsubscribe" +
                             did_you_mean(on_leave, {"keep", "unsubscribe"}));
        }
        item.max_rejected_ratio = reader.ratio(node, "max_rejected_ratio", path);
        item.max_leaving_ratio = reader.ratio(node, "max_leaving_ratio", path).value_or(item.max_leaving_ratio);
        item.max_changed_ratio = reader.ratio(node, "max_changed_ratio", path).value_or(item.max_changed_ratio);
        item.clear_blank_values = reader.boolean(node, "clear_blank_values", path).value_or(false);
        item.catch_up = reader.boolean(node, "catch_up", path).value_or(false);
        item.clear_blank_values_pos = reader.pos(node["clear_blank_values"].IsDefined() ? node["clear_blank_values"]
                                                                                        : key);
        const YAML::Node retry = node["retry"];
        if (retry.IsDefined() && !retry.IsNull() &&
            reader.expect_map(retry, path + ".retry", {"max_attempts", "max_backoff_seconds"})) {
            if (auto attempts = reader.positive_integer(retry, "max_attempts", path + ".retry")) {
                item.retry_max_attempts = static_cast<int>(std::min<uint64_t>(*attempts, 1000));
            }
            if (auto backoff = reader.positive_integer(retry, "max_backoff_seconds", path + ".retry")) {
                item.retry_max_backoff_seconds = static_cast<int>(std::min<uint64_t>(*backoff, 86400));
            }
        }
        // 0 is a setting of its own here (never resend unchanged), which positive_integer refuses.
        if (const YAML::Node runs = node["retry_rejected_runs"]; runs.IsDefined() && !runs.IsNull()) {
            const std::string& text = runs.IsScalar() ? runs.Scalar() : std::string();
            if (scalar_kind(runs) == ScalarKind::integer && text.find_first_not_of("0123456789") == std::string::npos) {
                item.retry_rejected_runs = text.size() > 4 ? 1000 : std::min<int64_t>(std::stoll(text), 1000);
            } else {
                reader.error(runs, path + ".retry_rejected_runs",
                             "expected a number of runs, 0 or more (0: a refused member is sent again only once "
                             "its values change), found " +
                                 describe_node_type(runs) + (runs.IsScalar() ? " '" + runs.Scalar() + "'" : ""));
            }
        }
        item.notify = read_notify_policy(reader, node["notify"], path + ".notify", config_.notify, contributors,
                                         config_.strict);
        config_.exports.push_back(item);
    }

    Config& config_;
    Diagnostics& diagnostics_;
    std::map<std::string, SourcePos> defined_;
    uint64_t nodes_read_ = 0;  // in the files parsed so far, against kMaxYamlNodesPerConfig
};

// Points a plugin's validate_settings complaint at the key it names.
YAML::Node settings_key(const YAML::Node& settings, const std::string& field) {
    if (!field.empty() && settings.IsMap() && settings[field].IsDefined()) return settings[field];
    return settings;
}

bool check_plugin_settings(YamlReader& reader, const LoadedPlugin& plugin, const char* kind, Settings& settings,
                           const YAML::Node& owner, const std::string& path, const std::string& schema,
                           const std::string& base_dir, bool unsafe_permissions_are_errors) {
    const CheckedSettings checked = check_settings(reader, settings.yaml, owner, path, schema, base_dir,
                                                   unsafe_permissions_are_errors);
    bool ok = checked.complete;
    // The plugin checks whatever passed the schema, so one run reports every problem. A
    // complaint about a key the schema refused (so the plugin saw it as missing) is dropped:
    // that key already has its error.
    if (!checked.json.empty()) {
        const PluginCallResult refusal = validate_plugin_settings(plugin, kind, checked.json);
        if (!refusal.ok()) {
            const std::string& field = refusal.field;
            rapidjson::Document passed;
            passed.Parse(checked.json.c_str());
            // (Also when the key is missing altogether: the schema has said so already.) The same
            // for a key the plugin saw a placeholder in: its own error says what is wrong.
            const bool refused_by_schema = !field.empty() && !checked.complete && passed.IsObject() &&
                                           !passed.HasMember(field.c_str());
            const std::string top_key = field.substr(0, field.find('.'));
            const bool placeholder = std::find(checked.placeholders.begin(), checked.placeholders.end(), top_key) !=
                                     checked.placeholders.end();
            if (refused_by_schema || placeholder) return false;
            const YAML::Node at = settings.yaml.IsDefined() ? settings_key(settings.yaml, field) : owner;
            reader.error(at, field.empty() ? path : path + "." + field, refusal.message);
            ok = false;
        }
    }
    if (ok) settings.resolved_json = checked.json;
    return ok;
}

// The fields the export's plugin requires; none when its connection or plugin is unknown.
std::vector<std::string> required_fields(const Config& config, const ExportConfig& item,
                                         const PluginRegistry& registry) {
    std::vector<std::string> required;
    const ConnectionConfig* connection = config.find_connection(item.connection);
    const LoadedPlugin* plugin = connection ? registry.find(connection->plugin) : nullptr;
    for (size_t i = 0; plugin && i < plugin->api.n_fields; ++i) {
        if (plugin->api.fields[i].flags & SEGPUSH_FIELD_REQUIRED) required.push_back(plugin->api.fields[i].id);
    }
    return required;
}

// Names for a message: a header of thousands of columns is summed up, not listed, and a name
// of a megabyte (a binary file read as CSV) is cut short.
std::string listed(const std::vector<std::string>& names) {
    constexpr size_t kListed = 30, kLongest = 60;
    std::vector<std::string> shown;
    for (size_t i = 0; i < names.size() && i < kListed; ++i) {
        size_t cut = std::min(names[i].size(), kLongest);
        while (cut < names[i].size() && cut > 0 && (names[i][cut] & 0xC0) == 0x80) --cut;  // whole characters
        shown.push_back(cut < names[i].size() ? names[i].substr(0, cut) + "..." : names[i]);
    }
    if (names.size() > kListed) shown.push_back("and " + std::to_string(names.size() - kListed) + " more");
    return join(shown);
}

// Checks the columns an export's mapping reads against each of its segments, as a run will
// find them: a CSV file's header row, the keys of a JSON Lines file's first records, or the
// columns the segment declares (then its file is not read). A CSV run refuses a file without
// a mapped column, so that is an error; a JSON Lines key may still come after the records
// read, and a run stops only when no row at all has a required field's, so a key missing
// there is an error for a required field and a warning for an optional one. A file that
// cannot be read now (not there yet, a FIFO, unreadable) is a warning: not checked.
void check_mapping_columns(const Config& config, const ExportConfig& item, const std::vector<std::string>& required,
                           Diagnostics& diagnostics) {
    if (item.mapping.empty()) return;
    std::vector<std::string> wanted;
    for (const auto& pair : item.mapping) {
        if (std::find(wanted.begin(), wanted.end(), pair.second) == wanted.end()) wanted.push_back(pair.second);
    }
    const std::string path = "exports." + item.name + ".mapping";
    for (const auto& name : item.segments) {
        const SegmentConfig* segment = config.find_segment(name);
        if (!segment) continue;  // reported already
        SegmentColumns columns;
        if (segment->columns) {
            columns.present = *segment->columns;
            for (const auto& column : wanted) {
                if (std::find(columns.present.begin(), columns.present.end(), column) == columns.present.end()) {
                    columns.absent.push_back(column);
                }
            }
        } else {
            try {
                columns = peek_segment_columns(segment->path, segment->source, wanted);
            } catch (const SegmentError& error) {
                diagnostics.warning(item.mapping_block_pos, path,
                                    "not checked against the columns of segment '" + name + "': " + error.what() +
                                        "; declare them in the segment (columns: [...]) to have them checked");
                continue;
            }
        }
        const bool sampled = !segment->columns && segment->source == "jsonl";
        for (size_t i = 0; i < item.mapping.size(); ++i) {
            const auto& [field, column] = item.mapping[i];
            if (std::find(columns.absent.begin(), columns.absent.end(), column) == columns.absent.end()) continue;
            const std::string suggestion = did_you_mean(column, columns.present);
            if (!sampled) {
                diagnostics.error(item.mapping_column_pos[i], path + "." + field,
                                  "segment '" + name + "' has no column '" + column + "'" + suggestion + "; " +
                                      (segment->columns ? "its declared columns: "
                                                        : "the header of " + segment->path + " has ") +
                                      listed(columns.present));
                continue;
            }
            const bool is_required = std::find(required.begin(), required.end(), field) != required.end();
            const std::string message = "none of the first " + std::to_string(columns.records_read) +
                                        " records of segment '" + name + "' (" + segment->path + ") has the key '" +
                                        column + "'" + suggestion + "; their keys: " + listed(columns.present) +
                                        (is_required ? "" : " (rows without it leave " + field + " empty)");
            if (is_required) diagnostics.error(item.mapping_column_pos[i], path + "." + field, message);
            else diagnostics.warning(item.mapping_column_pos[i], path + "." + field, message);
        }
    }
}

}  // namespace

std::optional<Config> load_config(const std::string& path, Diagnostics& diagnostics) {
    Config config;
    config.file = path;
    config.base_dir = fs::path(path).parent_path().string();
    if (config.base_dir.empty()) config.base_dir = ".";
    Loader loader(config, diagnostics);
    const YAML::Node root = loader.parse(path, {});
    if (!root.IsDefined()) return std::nullopt;
    loader.read_main(root);
    return config;
}

std::string resolved_plugin_dir(const Config& config) { return config_path(config.base_dir, config.plugin_dir); }

std::string default_plugin_dir(std::string& problem) {
    // The running binary, not argv[0] or PATH: an install extracted or moved anywhere (dpkg -x,
    // cmake --install --prefix) finds the plugins it was installed with.
    std::error_code error;
    const fs::path binary = fs::read_symlink("/proc/self/exe", error);
    if (error) {
        problem = "/proc/self/exe: " + error.message();
        return "";
    }
    return (binary.parent_path() / SEGPUSH_PLUGIN_DIR_FROM_BINARY).lexically_normal().string();
}

void check_config(Config& config, const PluginRegistry& registry, Diagnostics& diagnostics) {
    const std::vector<std::string> plugin_ids = registry.ids();
    for (auto& connection : config.connections) {
        YamlReader reader(connection.settings.pos.file, diagnostics);
        const std::string path = "connections." + connection.name;
        const LoadedPlugin* plugin = registry.find(connection.plugin);
        if (!plugin) {
            if (connection.plugin.empty()) continue;
            if (const RefusedPlugin* refused = registry.refused_for(connection.plugin)) {
                diagnostics.error(connection.plugin_pos, path + ".plugin",
                                  "plugin '" + connection.plugin + "' was refused: " + refused->file + ": " +
                                      refused->reason);
                continue;
            }
            std::string known = plugin_ids.empty() ? "no plugins are loaded from " + resolved_plugin_dir(config)
                                                   : "loaded plugins: " + join(plugin_ids);
            if (!registry.refused().empty()) {
                known += "; " + std::to_string(registry.refused().size()) +
                         " file(s) were refused, see `segpush plugins list`";
            }
            diagnostics.error(connection.plugin_pos, path + ".plugin",
                              "unknown plugin '" + connection.plugin + "'" +
                                  did_you_mean(connection.plugin, plugin_ids) + "; " + known);
            continue;
        }
        const std::string base_dir = fs::path(connection.settings.pos.file).parent_path().string();
        check_plugin_settings(reader, *plugin, "connection", connection.settings, connection.settings.owner,
                              path + ".settings", plugin->api.connection_schema, base_dir.empty() ? "." : base_dir,
                              config.strict);
    }

    std::vector<std::string> segment_names, connection_names;
    for (const auto& segment : config.segments) segment_names.push_back(segment.name);
    for (const auto& connection : config.connections) connection_names.push_back(connection.name);

    for (auto& item : config.exports) {
        YamlReader reader(item.settings.pos.file, diagnostics);
        const std::string path = "exports." + item.name;
        for (const auto& segment : item.segments) {
            if (!config.find_segment(segment)) {
                diagnostics.error(item.segments_pos, path + ".segments",
                                  "unknown segment '" + segment + "'" + did_you_mean(segment, segment_names) +
                                      (segment_names.empty() ? "; no segments are defined"
                                                             : "; defined: " + join(segment_names)));
            }
        }
        if (item.segments.empty())
            diagnostics.error(item.pos, path + ".segments", "an export needs at least one segment");
        check_mapping_columns(config, item, required_fields(config, item, registry), diagnostics);
        if (item.schedule == kOnChangeSchedule) {
            for (const auto& name : item.segments) {
                const SegmentConfig* segment = config.find_segment(name);
                if (segment && segment->fifo_timeout) {
                    diagnostics.error(item.segments_pos, path + ".segments",
                                      "schedule: on_change watches files for changes, and segment '" + name +
                                          "' is read from a FIFO; run this export on a cron schedule or on demand");
                }
            }
        }
        const ConnectionConfig* connection = config.find_connection(item.connection);
        if (!connection) {
            if (!item.connection.empty()) {
                diagnostics.error(item.connection_pos, path + ".connection",
                                  "unknown connection '" + item.connection + "'" +
                                      did_you_mean(item.connection, connection_names) +
                                      (connection_names.empty() ? "; no connections are defined"
                                                                : "; defined: " + join(connection_names)));
            }
            continue;
        }
        if (item.from_contributor_file && !connection->shared_with_contributors()) {
            diagnostics.error(item.connection_pos, path + ".connection",
                              "connection '" + connection->name +
                                  "' is for admins only, and this file is editable by "
                                  "contributors; an admin can share it by adding contributors to its usable_by");
        }
        const LoadedPlugin* plugin = registry.find(connection->plugin);
        if (!plugin) continue;  // already reported on the connection
        const std::string base_dir = fs::path(item.settings.pos.file).parent_path().string();
        check_plugin_settings(reader, *plugin, "export", item.settings, item.settings.owner, path + ".settings",
                              plugin->api.export_schema, base_dir.empty() ? "." : base_dir, config.strict);

        if (item.clear_blank_values && plugin->api.abi_minor < 4) {
            diagnostics.error(
                item.clear_blank_values_pos, path + ".clear_blank_values",
                "plugin '" + plugin->id() + "' is built for plugin ABI " + std::to_string(plugin->api.abi_major) + "." +
                    std::to_string(plugin->api.abi_minor) +
                    ", which cannot clear values (1.4 can): remove clear_blank_values or update the plugin");
        }
        std::vector<std::string> field_ids;
        for (size_t i = 0; i < plugin->api.n_fields; ++i) field_ids.push_back(plugin->api.fields[i].id);
        const bool extra_fields = (plugin->api.capabilities & SEGPUSH_CAP_EXTRA_FIELDS) != 0;
        for (size_t i = 0; i < item.mapping.size(); ++i) {
            const std::string& field = item.mapping[i].first;
            if (is_extra_field(field)) {
                // Whether the destination has it is known only at run time: begin_export checks.
                if (!extra_fields) {
                    diagnostics.error(item.mapping_pos[i], path + ".mapping." + field,
                                      "plugin '" + plugin->id() +
                                          "' has no custom fields (field:NAME); its fields: " + join(field_ids));
                } else if (field.size() == kExtraFieldPrefix.size()) {
                    diagnostics.error(item.mapping_pos[i], path + ".mapping." + field,
                                      "a custom field needs a name after 'field:', e.g. field:LOYALTY_TIER");
                }
                continue;
            }
            if (std::find(field_ids.begin(), field_ids.end(), field) == field_ids.end()) {
                diagnostics.error(item.mapping_pos[i], path + ".mapping." + field,
                                  "plugin '" + plugin->id() + "' has no field '" + field + "'" +
                                      did_you_mean(field, field_ids) + "; its fields: " + join(field_ids));
            }
        }
        for (size_t i = 0; i < plugin->api.n_fields; ++i) {
            const segpush_field& field = plugin->api.fields[i];
            if (!(field.flags & SEGPUSH_FIELD_REQUIRED)) continue;
            const bool mapped = std::any_of(item.mapping.begin(), item.mapping.end(),
                                            [&](const auto& pair) { return pair.first == field.id; });
            if (!mapped && item.mapping_given) {
                diagnostics.error(item.mapping_block_pos, path + ".mapping." + field.id,
                                  std::string("the ") + field.label + " field is required by plugin '" + plugin->id() +
                                      "': map it to a segment column, e.g. " + field.id + ": " + field.label);
            }
        }
    }
}

}  // namespace segpush
