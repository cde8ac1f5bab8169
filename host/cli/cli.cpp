#include "cli/cli.hpp"
#include "cli/cli_support.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdlib>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "config/loader.hpp"
#include "config/settings_check.hpp"
#include "log/log.hpp"
#include "plugins/registry.hpp"
#include "secrets/redactor.hpp"
#include "text/suggest.hpp"

#ifndef SEGPUSH_VERSION
#define SEGPUSH_VERSION "0.0.0"
#endif

namespace segpush {

namespace {

const char* const kMainHelp = R"(segpush — push customer segments to marketing destinations through plugins.

Usage: segpush [--config FILE] [--plugin-dir DIR] COMMAND [ARGS...]
       segpush COMMAND --help

Commands:
  config check                   Validate the configuration; print every problem with file:line:column
  plugins list [--json]          Plugins loaded from plugin_dir, and files refused with the reason
  plugins describe ID [--json]   A plugin's connection and export settings, mapping fields and limits
  export run NAME [--dry-run [--show N] [--json]] [--full]
                                 Run one export now: send new and changed members, report the rest
  runs list [EXPORT] [--limit N] [--json]
                                 Run history, newest first
  runs show ID [--json]          One run: status, times, counts, error, its report
  serve                          Run every export on its schedule until stopped (SIGTERM, Ctrl-C)
  forget EMAIL... [--json]       Remove people from everything segpush keeps (erasure requests)
  help [COMMAND...]              Help on a command

Options:
  --config FILE      Configuration file (default: $SEGPUSH_CONFIG, else ./segpush.yaml)
  --plugin-dir DIR   Load plugins from DIR instead of the configuration's plugin_dir (which,
                     when not set, is ../lib/segpush/plugins from the segpush binary's folder)
  --log-format FMT   Log lines as text (default) or json, one object a line (also $SEGPUSH_LOG_FORMAT)
  --version          Print the version and the plugin ABI version
  -h, --help         This help

Secrets (API keys) are given in the configuration by reference, ${env:NAME} or ${file:PATH},
and are never printed by any command.

Exit status: 0 success, 1 failure, 2 usage or configuration error.
)";

const std::map<std::string, std::string> kCommandHelp = {
    {"config check", R"(Usage: segpush [--config FILE] config check

Reads the configuration file and every file it includes, loads the plugins from plugin_dir,
and checks everything that can be checked without contacting a destination:
  - keys and value types (unknown keys suggest the closest valid one);
  - segments, connections and exports refer to things that exist;
  - connection and export settings against each plugin's declared JSON Schema, and the
    plugin's own checks (e.g. ActiveCampaign's host must be a bare hostname);
  - secrets given by reference (${env:NAME}, ${file:PATH}) resolve;
  - every connection has privacy_consent: true;
  - mappings name the plugin's fields and cover its required ones;
  - files editable by contributors use only connections shared with contributors;
  - schedules are valid 5-field cron expressions (or on_change) that can fire.
Every problem is printed as FILE:LINE:COLUMN: error: KEY.PATH: MESSAGE.

Exit status: 0 valid (warnings may be printed), 2 problems found.
)"},
    {"export run", R"(Usage: segpush [--config FILE] export run NAME [--dry-run [--show N] [--json]] [--full]

Runs export NAME once, now:
  1. reads its segment files (CSV or JSON Lines); a row that cannot be read or has no valid
     email is rejected with file, line and reason and the run goes on; a column the mapping
     needs that a file lacks stops the run before anything is sent;
  2. maps and checks each row (values trimmed, empty optional values left out, emails checked);
     members with the same email (ignoring case) are collapsed, the first row wins;
  3. compares members with what earlier runs delivered: only new members and members whose
     mapped values changed are sent; with on_leave: unsubscribe, members who left the segment
     are unsubscribed;
  4. sends in batches within the plugin's limits, retrying temporary failures with backoff,
     and saves every outcome as it arrives, so a run that is stopped or killed continues
     where it stopped the next time.

Options:
  --dry-run   Do steps 1-3 and print what would be sent, with the batches the run would send
              (by the plugin's limits); the destination is not contacted
  --show N    With --dry-run: also print up to N members of each kind: new (their values),
              changed (each changed field, before -> after), leaving (kept or unsubscribed).
              Emails and values are personal data: printed only when asked, never logged
  --json      With --dry-run: the same as one JSON object (docs/operations.md)
  --full      Send every member, as if nothing had been delivered before

Ctrl-C (or SIGTERM) stops cleanly: batches in flight finish, their outcomes are saved and the
run is marked cancelled. A second Ctrl-C quits at once (still nothing saved is lost).
Rows refused before sending, members the destination rejected, and members it kept out
(suppressed: they unsubscribed from the list or bounced there) are listed with the reason in
<state folder>/reports/NAME-run-ID-report.csv. Suppressed members are not an error: they are
not sent again until their values change or --full is given.
Only one run of an export at a time: a second one is refused, naming the running one.

Exit status: 0 succeeded, 1 failed or cancelled (segpush runs show ID says why), 2 usage or
configuration error.
)"},
    {"runs list", R"(Usage: segpush [--config FILE] runs list [EXPORT] [--limit N] [--json]

The run history from the state file, newest first (20 unless --limit N): id, export, status,
start time (UTC), records sent, accepted, rejected (before sending and by the destination),
suppressed (kept out by the destination: unsubscribed or bounced there), unchanged, and the
error if any.

Statuses: running, succeeded, cancelled, failed_will_retry (temporary trouble outlasted the
retries; the next run continues from where this one stopped), failed_permanently (something
must be fixed first: credentials, settings, the segment file).

Exit status: 0, 2 when the configuration cannot be read.
)"},
    {"runs show", R"(Usage: segpush [--config FILE] runs show ID [--json]

Everything known about one run: status, start and end (UTC), the process that ran it, rows
read, members new / changed / unchanged / leaving, records sent, accepted, removed, rejected
and suppressed, the error, and the path of the run's report.

Exit status: 0, 1 when there is no such run.
)"},
    {"serve", R"(Usage: segpush [--config FILE] serve

Runs every export that has a schedule (5-field cron: minute hour day-of-month month
day-of-week, in UTC unless the export sets timezone:, e.g. Europe/Paris) until stopped. The
first run of each export is at its next scheduled time: starting serve, or saving an export,
does not run it. An export with schedule: on_change runs when one of its segment files is
replaced or modified and then stays unchanged for settle_seconds (default 5); publish a
segment by writing it beside its path and renaming it into place. Each run is logged with
its outcome; a failed run does not stop serve, and a run still going when its next time
comes is not started twice. SIGTERM or Ctrl-C stops: running exports finish their batches
in flight and save their state.

While it runs, serve answers GET /healthz, /readyz and /metrics (Prometheus text format) on
serve.listen (default 127.0.0.1:9464). Logs go to stderr: --log-format json writes one JSON
object a line.

Exit status: 0 after a clean stop, 2 when the configuration has errors or no schedules.
)"},
    {"forget", R"(Usage: segpush [--config FILE] forget EMAIL... [--json]

For an erasure request: removes each person (email, compared ignoring case and surrounding
spaces) from everything segpush keeps about them: the delivered state of every export, the
record of their removal from a list, imports awaiting confirmation, run errors that name
them (masked), and the rows of run reports. Deleted content is overwritten in the state file
and its write-ahead log emptied. Prints what was removed.

It does not touch the destinations: erase the person there too. If they are still in a
segment, the next run of its export sends them again as a new member. Refused while an export
of this state is running.

Exit status: 0, 1 while a run is in progress, 2 usage or configuration error.
)"},
    {"plugins list", R"(Usage: segpush [--config FILE | --plugin-dir DIR] plugins list [--json]

Tries every *.so file in the plugin directory, each in a child process of its own. Lists the
plugins that loaded (id, version, plugin ABI version, file) and every file that was refused
with the reason: not trusted (the file, or a folder above it, is writable by group or others
or owned by another user than root or you), not a shared library, no segpush_plugin_entry
symbol, a different ABI major version, a malformed descriptor, an id another file also
declares, or a plugin that crashed, called exit() or did not answer within 10 s while loading.

Other commands open only <plugin_dir>/<id>.so for each plugin id the connections name, and
the other files only when one has no file of its name.

Options:
  --json   Machine-readable output

Exit status: 0 (even when files were refused; they are listed), 2 when the directory is missing.
)"},
    {"plugins describe", R"(Usage: segpush [--config FILE | --plugin-dir DIR] plugins describe ID [--json]

Shows what a plugin needs and accepts: its connection settings and export settings (type,
required or optional, secret, constraints, description), its mapping fields (required or
optional) and its limits (records and bytes per batch, request rates, concurrency).

Options:
  --json   Machine-readable output, with the plugin's full JSON Schemas

Exit status: 0, 1 when no plugin has that id.
)"},
};

std::string abi_text(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

// " (plugin_dir is not set: the default, ...)" when the configuration leaves plugin_dir to its
// default and no --plugin-dir replaces it, else "": messages say which directory was used.
std::string plugin_dir_origin(const Config& config, const Options& options) {
    if (options.plugin_dir || !config.plugin_dir_is_default) return "";
    return " (plugin_dir is not set: the default, " + kDefaultPluginDirText + ")";
}

// The plugin directory: --plugin-dir, else the configuration's. Config problems that stop
// us from knowing it are printed. `origin`, when given, says where the directory came from
// when it is the default.
std::optional<std::string> plugin_directory(const Options& options, Printer& print, std::string* origin = nullptr) {
    if (options.plugin_dir) return options.plugin_dir;
    Diagnostics diagnostics;
    auto config = load_config(options.config_path, diagnostics);
    if (!config || config->plugin_dir.empty()) {
        print_diagnostics(print, diagnostics);
        print.err("segpush: cannot find the plugin directory: fix the configuration or pass --plugin-dir DIR\n");
        return std::nullopt;
    }
    if (origin) *origin = plugin_dir_origin(*config, options);
    return resolved_plugin_dir(*config);
}

void write_json(Printer& print, const rapidjson::Document& document) {
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    writer.SetIndent(' ', 2);
    document.Accept(writer);
    print.out(std::string(buffer.GetString()) + "\n");
}

int plugins_list(const Options& options, Printer& print) {
    std::string origin;
    const auto directory = plugin_directory(options, print, &origin);
    if (!directory) return kExitUsage;
    const auto registry = PluginRegistry::survey_directory(*directory);
    if (!registry.directory_problem().empty()) {
        print.err("segpush: " + registry.directory_problem() + origin + "\n");
        return kExitUsage;
    }
    if (options.json) {
        rapidjson::Document doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("plugin_dir", rapidjson::Value(directory->c_str(), a), a);
        rapidjson::Value loaded(rapidjson::kArrayType), refused(rapidjson::kArrayType);
        for (const auto& plugin : registry.usable()) {
            rapidjson::Value item(rapidjson::kObjectType);
            item.AddMember("id", rapidjson::Value(plugin.id.c_str(), a), a);
            item.AddMember("name", rapidjson::Value(plugin.name.c_str(), a), a);
            item.AddMember("version", rapidjson::Value(plugin.version.c_str(), a), a);
            item.AddMember("abi", rapidjson::Value(abi_text(plugin.abi_major, plugin.abi_minor).c_str(), a), a);
            item.AddMember("file", rapidjson::Value(plugin.file.c_str(), a), a);
            loaded.PushBack(item, a);
        }
        for (const auto& file : registry.refused()) {
            rapidjson::Value item(rapidjson::kObjectType);
            item.AddMember("file", rapidjson::Value(file.file.c_str(), a), a);
            item.AddMember("reason", rapidjson::Value(file.reason.c_str(), a), a);
            refused.PushBack(item, a);
        }
        doc.AddMember("loaded", loaded, a);
        doc.AddMember("refused", refused, a);
        write_json(print, doc);
        return kExitOk;
    }
    std::ostringstream text;
    text << "Plugins in " << *directory << origin << ":\n";
    if (registry.usable().empty()) text << "  (none loaded)\n";
    for (const auto& plugin : registry.usable()) {
        text << "  " << std::left << std::setw(18) << plugin.id << std::setw(10) << plugin.version << "ABI "
             << std::setw(6) << abi_text(plugin.abi_major, plugin.abi_minor) << plugin.file << "\n";
    }
    if (!registry.refused().empty()) {
        text << "Refused:\n";
        for (const auto& file : registry.refused()) text << "  " << file.file << ": " << file.reason << "\n";
    }
    print.out(text.str());
    return kExitOk;
}

std::string field_type_name(segpush_field_type type) {
    switch (type) {
        case SEGPUSH_FIELD_STRING: return "string";
        case SEGPUSH_FIELD_EMAIL: return "email";
        case SEGPUSH_FIELD_PHONE: return "phone";
        case SEGPUSH_FIELD_INTEGER: return "integer";
        case SEGPUSH_FIELD_NUMBER: return "number";
        case SEGPUSH_FIELD_DATE: return "date";
        case SEGPUSH_FIELD_BOOLEAN: return "boolean";
    }
    return "unknown";
}

std::string json_text(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return buffer.GetString();
}

// One line per property of a settings schema: name, type, required/optional, secret,
// constraints, then the description on its own line.
void describe_schema(std::ostringstream& text, const char* schema_json) {
    rapidjson::Document schema;
    schema.Parse(schema_json);
    std::vector<std::string> required;
    if (auto it = schema.FindMember("required"); it != schema.MemberEnd() && it->value.IsArray()) {
        for (const auto& name : it->value.GetArray()) required.push_back(name.GetString());
    }
    auto properties = schema.FindMember("properties");
    if (properties == schema.MemberEnd() || properties->value.ObjectEmpty()) {
        text << "  (none)\n";
        return;
    }
    for (const auto& property : properties->value.GetObject()) {
        const std::string name = property.name.GetString();
        const auto& spec = property.value;
        std::string type = spec.HasMember("type")
                               ? (spec["type"].IsString() ? spec["type"].GetString() : json_text(spec["type"]))
                               : "any";
        const bool is_required = std::find(required.begin(), required.end(), name) != required.end();
        std::vector<std::string> notes;
        notes.push_back(is_required ? "required" : "optional");
        if (schema_flag(spec, "x-secret")) notes.push_back("secret: give as ${env:NAME} or ${file:PATH}");
        if (schema_flag(spec, "x-file")) notes.push_back("a file, relative to the configuration file");
        for (const char* keyword : {"minimum", "maximum", "minLength", "maxLength", "pattern", "enum", "default"}) {
            if (spec.HasMember(keyword)) notes.push_back(std::string(keyword) + " " + json_text(spec[keyword]));
        }
        text << "  " << std::left << std::setw(26) << name << std::setw(9) << type << join(notes) << "\n";
        if (spec.HasMember("description") && spec["description"].IsString()) {
            text << "      " << spec["description"].GetString() << "\n";
        }
    }
}

int plugins_describe(const Options& options, Printer& print) {
    if (options.words.size() != 3) return usage_error(print, "plugins describe takes one plugin id");
    const std::string& id = options.words[2];
    const auto directory = plugin_directory(options, print);
    if (!directory) return kExitUsage;
    const auto registry = PluginRegistry::load_plugins(*directory, {id});
    const LoadedPlugin* plugin = registry.find(id);
    if (const RefusedPlugin* refused = registry.refused_for(id); !plugin && refused) {
        print.err("segpush: plugin '" + id + "' was refused: " + refused->file + ": " + refused->reason + "\n");
        return kExitFailure;
    }
    if (!plugin) {
        const auto ids = registry.ids();
        print.err("segpush: no plugin with id '" + id + "'" + did_you_mean(id, ids) + " in " + *directory +
                  (ids.empty() ? "" : "; loaded: " + join(ids)) + "\n");
        return kExitFailure;
    }
    const segpush_plugin& api = plugin->api;
    const segpush_limits& limits = plugin->limits;
    if (options.json) {
        rapidjson::Document doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        auto str = [&](const char* s) { return rapidjson::Value(s ? s : "", a); };
        doc.AddMember("id", str(api.id), a);
        doc.AddMember("name", str(api.name), a);
        doc.AddMember("version", str(api.version), a);
        doc.AddMember("abi", rapidjson::Value(abi_text(api.abi_major, api.abi_minor).c_str(), a), a);
        doc.AddMember("file", rapidjson::Value(plugin->file.c_str(), a), a);
        doc.AddMember("description", str(api.description), a);
        for (auto [key, text] :
             {std::pair{"connection_schema", api.connection_schema}, std::pair{"export_schema", api.export_schema}}) {
            rapidjson::Document schema(&a);
            schema.Parse(text);
            doc.AddMember(rapidjson::StringRef(key), rapidjson::Value(schema, a), a);
        }
        rapidjson::Value fields(rapidjson::kArrayType);
        for (size_t i = 0; i < api.n_fields; ++i) {
            const segpush_field& field = api.fields[i];
            rapidjson::Value item(rapidjson::kObjectType);
            item.AddMember("id", str(field.id), a);
            item.AddMember("label", str(field.label), a);
            item.AddMember("type", rapidjson::Value(field_type_name(field.type).c_str(), a), a);
            item.AddMember("required", (field.flags & SEGPUSH_FIELD_REQUIRED) != 0, a);
            item.AddMember("key", (field.flags & SEGPUSH_FIELD_KEY) != 0, a);
            if (field.description) item.AddMember("description", str(field.description), a);
            fields.PushBack(item, a);
        }
        doc.AddMember("fields", fields, a);
        doc.AddMember("custom_fields", (api.capabilities & SEGPUSH_CAP_EXTRA_FIELDS) != 0, a);
        doc.AddMember("removes_leavers", (api.capabilities & SEGPUSH_CAP_REMOVE) != 0, a);
        rapidjson::Value limit_values(rapidjson::kObjectType);
        limit_values.AddMember("max_records_per_batch", limits.max_records_per_batch, a);
        limit_values.AddMember("max_bytes_per_batch", limits.max_bytes_per_batch, a);
        limit_values.AddMember("requests_per_second", limits.requests_per_second, a);
        limit_values.AddMember("requests_per_minute", limits.requests_per_minute, a);
        limit_values.AddMember("max_concurrent_pushes", limits.max_concurrent_pushes, a);
        doc.AddMember("limits", limit_values, a);
        write_json(print, doc);
        return kExitOk;
    }
    auto limit = [](uint64_t value) { return value == 0 ? std::string("no limit") : std::to_string(value); };
    // The two counts the host always bounds: a 0 there is its default, not "no limit".
    auto bounded = [](uint64_t declared, uint64_t applied) {
        return declared == 0 ? std::to_string(applied) + " (the host's default)" : std::to_string(applied);
    };
    std::ostringstream text;
    text << api.name << " (" << api.id << ") " << api.version << ", plugin ABI "
         << abi_text(api.abi_major, api.abi_minor) << "\n";
    text << "File: " << plugin->file << "\n";
    if (api.description) text << api.description << "\n";
    text << "\nConnection settings (connections.NAME.settings):\n";
    describe_schema(text, api.connection_schema);
    text << "\nExport settings (exports.NAME.settings):\n";
    describe_schema(text, api.export_schema);
    text << "\nMapping fields (exports.NAME.mapping: FIELD: segment column):\n";
    for (size_t i = 0; i < api.n_fields; ++i) {
        const segpush_field& field = api.fields[i];
        text << "  " << std::left << std::setw(16) << field.id << std::setw(16) << field.label << std::setw(9)
             << field_type_name(field.type) << ((field.flags & SEGPUSH_FIELD_REQUIRED) ? "required" : "optional")
             << ((field.flags & SEGPUSH_FIELD_KEY) ? ", identifies the member" : "") << "\n";
        if (field.description) text << "      " << field.description << "\n";
    }
    if (api.capabilities & SEGPUSH_CAP_EXTRA_FIELDS) {
        text << "  field:NAME      Custom field    string   optional\n"
             << "      Fields the destination defines (by its id or name); checked when a run starts.\n";
    }
    if (api.capabilities & SEGPUSH_CAP_REMOVE) {
        text << "\nMembers who leave the segment can be removed: exports.NAME.on_leave: unsubscribe\n";
    }
    text << "\nLimits:\n"
         << "  records per batch      " << bounded(limits.max_records_per_batch, plugin->max_records_per_batch())
         << "\n"
         << "  bytes per batch        " << limit(limits.max_bytes_per_batch) << "\n"
         << "  requests per second    " << limit(limits.requests_per_second) << "\n"
         << "  requests per minute    " << limit(limits.requests_per_minute) << "\n"
         << "  concurrent pushes      " << bounded(limits.max_concurrent_pushes, plugin->max_concurrent_pushes())
         << "\n";
    print.out(text.str());
    return kExitOk;
}

int config_check(const Options& options, Printer& print) {
    Diagnostics diagnostics;
    auto setup = load_checked(options, diagnostics);
    print_diagnostics(print, diagnostics);
    if (!setup) {
        size_t errors = 0;
        for (const auto& item : diagnostics.items()) errors += item.severity == Diagnostic::Severity::error;
        print.err(std::to_string(errors) + " error(s) in " + options.config_path + "\n");
        return kExitUsage;
    }
    const Config& config = setup->config;
    print.out(options.config_path + ": OK (" + std::to_string(config.segments.size()) + " segment(s), " +
              std::to_string(config.connections.size()) + " connection(s), " + std::to_string(config.exports.size()) +
              " export(s))\n");
    print.out("plugins from " + (options.plugin_dir ? *options.plugin_dir : resolved_plugin_dir(config)) +
              plugin_dir_origin(config, options) + "\n");
    return kExitOk;
}

}  // namespace

int usage_error(Printer& print, const std::string& message) {
    print.err("segpush: " + message + "\nRun 'segpush --help' for usage.\n");
    return kExitUsage;
}

void print_diagnostics(Printer& print, const Diagnostics& diagnostics) {
    for (const auto& diagnostic : diagnostics.items()) print.err(diagnostic.format() + "\n");
}

std::optional<CheckedSetup> load_checked(const Options& options, Diagnostics& diagnostics) {
    auto config = load_config(options.config_path, diagnostics);
    if (!config) return std::nullopt;
    const std::string directory = options.plugin_dir ? *options.plugin_dir : resolved_plugin_dir(*config);
    CheckedSetup setup{std::move(*config), PluginRegistry{}};
    if (!setup.config.plugin_dir.empty() || options.plugin_dir) {
        // Only the plugins the connections name, so that a broken file elsewhere in the
        // directory does not stop an unrelated export.
        std::vector<std::string> needed;
        for (const auto& connection : setup.config.connections) {
            if (!connection.plugin.empty()) needed.push_back(connection.plugin);
        }
        setup.registry = PluginRegistry::load_plugins(directory, needed);
        if (!setup.registry.directory_problem().empty()) {
            diagnostics.error(setup.config.plugin_dir_pos, "plugin_dir",
                              setup.registry.directory_problem() +
                                  (options.plugin_dir ? " (given with --plugin-dir, which replaces this setting)"
                                                      : plugin_dir_origin(setup.config, options)));
        }
        for (const auto& refused : setup.registry.refused()) {
            if (!refused.wanted_id.empty()) continue;  // an error at the connection that names it
            diagnostics.warning(setup.config.plugin_dir_pos, "plugin_dir",
                                "plugin file " + refused.file + " was refused: " + refused.reason);
        }
        for (const auto& note : setup.registry.notes()) {
            diagnostics.warning(setup.config.plugin_dir_pos, "plugin_dir", note);
        }
        check_config(setup.config, setup.registry, diagnostics);
    }
    for (const auto& item : diagnostics.items()) {
        if (item.severity == Diagnostic::Severity::error) return std::nullopt;
    }
    return setup;
}

std::optional<CheckedSetup> load_checked_or_report(const Options& options, Printer& print) {
    Diagnostics diagnostics;
    auto setup = load_checked(options, diagnostics);
    print_diagnostics(print, diagnostics);
    if (!setup) print.err("segpush: fix the configuration first (segpush config check lists every problem)\n");
    return setup;
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Printer print(out, err);
    Options options;
    const char* env_config = std::getenv("SEGPUSH_CONFIG");
    options.config_path = env_config && *env_config ? env_config : "segpush.yaml";
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        auto value = [&](const std::string& name) -> std::optional<std::string> {
            if (i + 1 >= args.size()) return std::nullopt;
            (void)name;
            return args[++i];
        };
        if (arg == "-h" || arg == "--help") {
            options.help = true;
        } else if (arg == "--version") {
            print.out(std::string("segpush ") + SEGPUSH_VERSION + " (plugin ABI " +
                      abi_text(SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR) + ")\n");
            return kExitOk;
        } else if (arg == "--json") {
            options.json = true;
        } else if (arg == "--dry-run") {
            options.dry_run = true;
        } else if (arg == "--full") {
            options.full = true;
        } else if (arg == "--limit") {
            auto given = value(arg);
            if (!given || given->find_first_not_of("0123456789") != std::string::npos || given->empty() ||
                given->size() > 6) {
                return usage_error(print, "--limit needs a number of runs, e.g. --limit 50");
            }
            options.limit = std::stoi(*given);
        } else if (arg == "--show") {
            auto given = value(arg);
            if (!given || given->find_first_not_of("0123456789") != std::string::npos || given->empty() ||
                given->size() > 6) {
                return usage_error(print, "--show needs a number of members, e.g. --show 10");
            }
            options.show = std::stoi(*given);
        } else if (arg == "--config" || arg == "--plugin-dir") {
            auto given = value(arg);
            if (!given) return usage_error(print, arg + " needs a value");
            (arg == "--config" ? options.config_path : options.plugin_dir.emplace()) = *given;
        } else if (arg.rfind("--config=", 0) == 0) {
            options.config_path = arg.substr(9);
        } else if (arg.rfind("--plugin-dir=", 0) == 0) {
            options.plugin_dir = arg.substr(13);
        } else if (arg == "--log-format") {
            auto given = value(arg);
            if (!given) return usage_error(print, "--log-format needs a format: " + join(log_format_names(), " or "));
            options.log_format = *given;
        } else if (arg.rfind("--log-format=", 0) == 0) {
            options.log_format = arg.substr(13);
        } else if (arg.size() > 1 && arg[0] == '-') {
            return usage_error(print,
                               "unknown option " + arg +
                                   did_you_mean(arg, {"--config", "--plugin-dir", "--json", "--dry-run", "--full",
                                                      "--limit", "--show", "--log-format", "--help", "--version"}));
        } else {
            options.words.push_back(arg);
        }
    }
    // Before any command runs: a misspelt level or format must not log at another one.
    if (const std::string problem = configure_logging(options.log_format); !problem.empty()) {
        return usage_error(print, problem);
    }
    auto& words = options.words;
    if (!words.empty() && words[0] == "help") {
        words.erase(words.begin());
        options.help = true;
    }
    const std::string command = words.size() >= 2 ? words[0] + " " + words[1] : (words.empty() ? "" : words[0]);
    std::vector<std::string> known;
    for (const auto& [name, text] : kCommandHelp) known.push_back(name);
    if (options.help) {
        auto it = kCommandHelp.find(command);
        if (it != kCommandHelp.end()) print.out(it->second);
        else if (command.empty()) print.out(kMainHelp);
        else return usage_error(print, "no help for '" + command + "'" + did_you_mean(command, known));
        return kExitOk;
    }
    if (words.empty()) {
        print.err(kMainHelp);
        return kExitUsage;
    }
    if (command == "config check") {
        if (words.size() != 2) return usage_error(print, "config check takes no arguments");
        return config_check(options, print);
    }
    if (command == "plugins list") {
        if (words.size() != 2) return usage_error(print, "plugins list takes no arguments");
        return plugins_list(options, print);
    }
    if (command == "plugins describe") return plugins_describe(options, print);
    if ((options.dry_run || options.full || options.show) && command != "export run") {
        return usage_error(print, "--dry-run, --full and --show belong to 'export run'");
    }
    if (command == "export run") return export_run(options, print);
    if (command == "runs list") return runs_list(options, print);
    if (command == "runs show") return runs_show(options, print);
    if (words[0] == "serve") return serve(options, print);
    if (words[0] == "forget") return forget(options, print);
    return usage_error(print, "unknown command '" + join(words, " ") + "'" + did_you_mean(command, known));
}

}  // namespace segpush
