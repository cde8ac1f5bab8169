#include "cli/cli.hpp"
#include "cli/cli_support.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cctype>
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
#include "state/state_store.hpp"
#include "text/suggest.hpp"
#include "text/wording.hpp"

#ifndef SEGPUSH_VERSION
#define SEGPUSH_VERSION "0.0.0"
#endif

namespace segpush {

namespace {

// The main help around its list of commands, which comes from kCommands.
const char* const kMainHelpUsage = R"(segpush — push customer segments to marketing destinations through plugins.

Usage: segpush [--config FILE] COMMAND [ARGS...] [OPTIONS]
       segpush COMMAND --help
)";

const char* const kMainHelpOptions = R"(
Options every command takes:
  --config FILE      Configuration file (default: $SEGPUSH_CONFIG, else ./segpush.yaml)
  --log-format FMT   Log lines as text (default) or json, one object a line (also
                     $SEGPUSH_LOG_FORMAT)
  -h, --help         Help on the command
  --version          Print the version and the plugin ABI version

Commands that load plugins also take --plugin-dir DIR: load them from DIR instead of the
configuration's plugin_dir (which, when not set, is ../lib/segpush/plugins from the segpush
binary's folder). An option a command does not take is an error (exit status 2).

Secrets (API keys) are given in the configuration by reference, ${env:NAME} or ${file:PATH},
and are never printed by any command.

Exit status (each command's --help gives its own):
  0  success
  1  failure
  2  usage or configuration error, or a name or id that does not exist
  3  export run: the run succeeded, but some rows were refused (before sending or by
     the destination); runs show ID and the run's report say which
  4  export run: stopped by the guard against mass change, nothing was sent
     (confirm with --allow-mass-change)
)";

const std::map<std::string, std::string> kCommandHelp = {
    {"config check", R"(Usage: segpush [--config FILE] config check [--json]

Reads the configuration file and every file it includes, loads the plugins from plugin_dir,
and checks everything that can be checked without contacting a destination:
  - keys and value types (unknown keys suggest the closest valid one);
  - segments, connections and exports refer to things that exist;
  - connection and export settings against each plugin's declared JSON Schema, and the
    plugin's own checks (e.g. ActiveCampaign's host must be a bare hostname);
  - secrets given by reference (${env:NAME}, ${file:PATH}) resolve; one that does not is
    named, and the plugin's checks of the other settings still run;
  - every connection has privacy_consent: true;
  - mappings name the plugin's fields and cover its required ones, and read columns their
    segments have: a CSV file's header, the keys of a JSON Lines file's first 100 records, or
    the segment's declared columns (a file that cannot be read yet, or a FIFO, is a warning);
  - files editable by contributors use only connections shared with contributors;
  - schedules are valid 5-field cron expressions (or on_change) that can fire.
Every problem is printed as FILE:LINE:COLUMN: error: KEY.PATH: MESSAGE, sorted by file, line
and column.

Options:
  --plugin-dir DIR   Load the plugins from DIR instead of plugin_dir
  --json             Print one JSON object on stdout instead: valid (true or false),
                     errors and warnings (how many), and diagnostics, each with
                     severity ("error" or "warning"), file, line and column (null
                     when unknown), key (the key path, "" for a whole file) and message

Exit status:
  0  valid (warnings may be printed)
  2  problems found
)"},
    {"export run", R"(Usage: segpush [--config FILE] export run NAME [--dry-run [--show N]] [--full]
                                    [--allow-mass-change] [--retry-rejected] [--json]

Runs export NAME once, now:
  1. reads its segment files (CSV or JSON Lines); a row that cannot be read or has no valid
     key (the field that identifies a member: an email, an id, a phone number) is rejected
     with file, line and reason and the run goes on; a column the mapping needs that a file
     lacks stops the run before anything is sent;
  2. maps and checks each row (values trimmed, empty optional values left out, emails checked);
     members with the same key are collapsed, the first row wins: emails are compared
     ignoring case, phone numbers in international form (E.164), any other key exactly;
  3. compares members with what earlier runs delivered: only new members and members whose
     mapped values changed are sent; with on_leave: unsubscribe, members who left the segment
     are removed in the destination's own way (ActiveCampaign: unsubscribed from the list;
     Mailchimp: archived, since it never lets an API subscribe an unsubscribed member again);
  4. stops, sending nothing, when that would remove more of the members delivered before than
     max_leaving_ratio allows (default 0.5; with on_leave: unsubscribe), change more than
     max_changed_ratio allows (default 1: any), or remove every one of them (a segment
     without members): the guard against mass change;
  5. sends in batches within the plugin's limits, retrying temporary failures with backoff,
     and saves every outcome as it arrives, so a run that is stopped or killed continues
     where it stopped the next time.

Options:
  --dry-run             Do steps 1-4 and print what would be sent, with the batches the run
                        would send (by the plugin's limits), and what the guard would say;
                        the destination is not contacted
  --show N              With --dry-run: also print up to N members of each kind: new (their
                        values), changed (each changed field, before -> after), leaving
                        (kept or unsubscribed). Keys and values are personal data:
                        printed only when asked, never logged
  --full                Send every member, as if nothing had been delivered before
  --allow-mass-change   Go ahead this once although the guard against mass change would stop
  --retry-rejected      Send again the members the destination refused before, even those
                        held (see retry_rejected_runs)
  --json                Print the run as one JSON object, as runs show ID --json does; with
                        --dry-run, the dry run's counts, batches and members shown
                        (docs/operations.md)
  --plugin-dir DIR      Load the plugins from DIR instead of plugin_dir

Ctrl-C (or SIGTERM) stops cleanly: batches in flight finish, their outcomes are saved and the
run is marked cancelled. A second Ctrl-C quits at once (still nothing saved is lost).
Rows refused before sending, members the destination rejected, and members it kept out
(suppressed: they unsubscribed from the list or bounced there) are listed with the reason in
<state folder>/reports/NAME-run-ID-report.csv. Suppressed members are not an error: they are
not sent again until their values change or --full is given.
Members the destination rejected are sent again by the next runs while their values stay the
same (retry_rejected_runs, 3 unless set), then held: not sent until their values change,
--retry-rejected or --full is given. The summary counts those retried and those held.
Only one run of an export at a time: a second one is refused, naming the running one.

Counts (the same words in every output; docs/operations.md has the table):
  rows read   data rows read from the segment files
  invalid     rows refused before sending (unreadable, no valid key, too large)
  duplicates  rows whose key (an email ignoring case) came earlier; the first row wins
  members     distinct valid members: new, changed (other values than last
              delivered), unchanged (not sent); leaving: delivered, no longer in it
  sent        records in a request the destination answered
  resumed     records an interrupted run sent, whose outcome this run learnt
  accepted    taken by the destination; removed: leavers it removed
  rejected    refused by the destination
  suppressed  kept out by the destination (unsubscribed or bounced there)
  pending     sent, outcome not known when the run ended: the next run learns it
For every run: sent + resumed = accepted + removed + rejected + suppressed + pending.

Exit status:
  0  succeeded
  1  failed or cancelled (segpush runs show ID says why)
  2  usage or configuration error, or no export of that name
  3  succeeded_with_rejections: rows were refused before sending (invalid) or by
     the destination (rejected); everyone else got in
  4  stopped by the guard against mass change: nothing was sent
)"},
    {"runs list", R"(Usage: segpush [--config FILE] runs list [EXPORT] [--limit N] [--json]

The run history from the state file, newest first (20 unless --limit N): id, export, status,
start time (UTC), records sent, accepted, rejected (by the destination), invalid (refused
before sending), suppressed (kept out by the destination: unsubscribed or bounced there),
pending (sent, outcome not known yet), unchanged, and the error if any. The counts are
defined in 'segpush export run --help'.

Statuses: running, succeeded, succeeded_with_rejections (the run got to its end, but some rows
were invalid or rejected: its report says which), cancelled, failed_will_retry (temporary
trouble outlasted the retries; the next run continues from where this one stopped),
failed_permanently (something must be fixed first: credentials, settings, the segment file,
a mass change to confirm, or refused rows over max_rejected_ratio).

Options:
  --limit N   Show the N newest runs (1 or more; default 20)
  --json      Machine-readable output: an array of runs

Exit status:
  0  the runs (or none yet)
  2  the configuration cannot be read, or EXPORT is neither an export of the
     configuration nor in the run history
)"},
    {"runs show", R"(Usage: segpush [--config FILE] runs show ID [--json]

Everything known about one run: status, start and end (UTC), the process that ran it, rows
read, members new / changed / unchanged / leaving, records sent, accepted, removed, rejected
and suppressed, the error, and the path of the run's report.

Options:
  --json   Machine-readable output

Exit status:
  0  the run
  2  the configuration cannot be read, or there is no run with that id
)"},
    {"serve", R"(Usage: segpush [--config FILE] serve [--json]

Runs every export that has a schedule (5-field cron: minute hour day-of-month month
day-of-week, in UTC unless the export sets timezone:, e.g. Europe/Paris) until stopped. The
first run of each export is at its next scheduled time: starting serve, or saving an export,
does not run it. An export with schedule: on_change runs when one of its segment files is
replaced or modified and then stays unchanged for settle_seconds (default 5); publish a
segment by writing it beside its path and renaming it into place. Each run is logged with
its outcome; a failed run does not stop serve, and a run still going when its next time
comes is not started twice. SIGTERM or Ctrl-C stops: running exports finish their batches
in flight and save their state.

With the state in PostgreSQL, several serve processes (on several hosts) may serve the same
configuration: each scheduled run is claimed by one of them, and a run whose process stopped
renewing its lease (state.lease_seconds, default 30) is taken over by another, which
continues it from its checkpoint (docs/scale-out.md).

While it runs, serve answers GET /healthz, /readyz and /metrics (Prometheus text format) on
serve.listen (default 127.0.0.1:9464). Logs go to stderr: --log-format json writes one JSON
object a line.

Options:
  --plugin-dir DIR   Load the plugins from DIR instead of plugin_dir
  --json             Once serve is ready, print one line on stdout: a JSON object
                     with config (the file), pid, listen (the health and metrics
                     address, null when it could not be opened) and exports, each
                     with name, schedule (a cron expression or "on_change"), timezone,
                     next_run (UTC, RFC 3339; null for on_change), and for on_change
                     its segment_files and settle_seconds. Logs are then JSON lines
                     too, unless --log-format or $SEGPUSH_LOG_FORMAT says otherwise

Exit status:
  0  stopped cleanly
  2  the configuration has errors, or no export has a schedule
)"},
    {"forget", R"(Usage: segpush [--config FILE] forget KEY... [--json]

For an erasure request: removes each person, named by the key exports know them by (an email,
compared ignoring case; a phone number, in any spelling with its country code; any other id,
exactly; surrounding spaces ignored), from everything segpush keeps about them: the delivered state of every export, the
record of their removal from a list or of their refusal, imports awaiting confirmation, run
errors that name them (masked), and the rows of run reports. Deleted content is overwritten in the state file
and its write-ahead log emptied. Prints what was removed.

It does not touch the destinations: erase the person there too. If they are still in a
segment, the next run of its export sends them again as a new member. Refused while an export
of this state is running.

Options:
  --json   Machine-readable output

Exit status:
  0  forgotten (also when nothing was kept about them)
  1  refused: a run is in progress
  2  usage or configuration error
)"},
    {"state migrate", R"(Usage: segpush [--config FILE] state migrate [--json]

Brings the state's schema to the version this segpush uses, and says which version it was
at. Every command that opens the state migrates it too; this one lets you do it at a time you
choose (before starting new replicas, say) and see the outcome. With PostgreSQL state it runs
in one transaction that other replicas wait for, so replicas starting together migrate once.

A state whose schema is newer than this segpush knows is left untouched: a newer segpush
wrote it, and this one must not write tables it does not know. Run that version instead.

Options:
  --json   Machine-readable output: {"state", "backend", "from_version", "to_version"}

Exit status:
  0  the schema is at this segpush's version (it was, or now is)
  1  the state cannot be reached, or its schema is newer than this segpush
  2  usage or configuration error
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
  --plugin-dir DIR   List DIR instead of plugin_dir
  --json             Machine-readable output

Exit status:
  0  listed (even when files were refused; they are listed)
  2  the plugin directory is missing
)"},
    {"plugins describe", R"(Usage: segpush [--config FILE | --plugin-dir DIR] plugins describe ID [--json]

Shows what a plugin needs and accepts: its connection settings and export settings (type,
required or optional, secret, constraints, description), its mapping fields (required or
optional) and its limits (records and bytes per batch, request rates, concurrency).

Options:
  --plugin-dir DIR   Look in DIR instead of plugin_dir
  --json             Machine-readable output, with the plugin's full JSON Schemas

Exit status:
  0  described
  1  the plugin's file was refused (the message says why)
  2  no plugin has that id, or the plugin directory cannot be found
)"},
};

// Every option: its name and, for one that takes a value, what the value is.
struct OptionSpec {
    std::string name;
    std::string value;  // "N", "FILE"; empty for a flag
};

const std::vector<OptionSpec> kOptions = {
    {"--config", "FILE"},
    {"--log-format", "FMT"},
    {"--help", ""},
    {"--version", ""},
    {"--plugin-dir", "DIR"},
    {"--json", ""},
    {"--dry-run", ""},
    {"--full", ""},
    {"--limit", "N"},
    {"--show", "N"},
    {"--allow-mass-change", ""},
    {"--retry-rejected", ""},
};

// What every command takes, besides its own.
const std::vector<std::string> kGlobalOptions = {"--config", "--log-format", "--help", "--version"};

// Every command, the options it takes and its line in the lists of commands. The one place that
// says which command takes which option: anything else given to a command is refused.
struct CommandSpec {
    std::string name;                  // "export run"
    std::string arguments;             // "NAME", for the lists of commands
    std::vector<std::string> options;  // besides kGlobalOptions
    std::string summary;               // one line, for the lists of commands
};

const std::vector<CommandSpec> kCommands = {
    {"config check", "", {"--plugin-dir", "--json"}, "Check the configuration; every problem with file:line"},
    {"plugins list", "", {"--plugin-dir", "--json"}, "Plugins loaded, and files refused with the reason"},
    {"plugins describe", "ID", {"--plugin-dir", "--json"}, "A plugin's settings, mapping fields and limits"},
    {"export run",
     "NAME",
     {"--plugin-dir", "--dry-run", "--full", "--show", "--allow-mass-change", "--retry-rejected", "--json"},
     "Run one export now: send new and changed members"},
    {"runs list", "[EXPORT]", {"--limit", "--json"}, "Run history, newest first"},
    {"runs show", "ID", {"--json"}, "One run: status, times, counts, error, its report"},
    {"serve", "", {"--plugin-dir", "--json"}, "Run every export on its schedule until stopped"},
    {"forget", "KEY...", {"--json"}, "Erase people from everything segpush keeps"},
    {"state migrate", "", {"--json"}, "Bring the state's schema to this segpush's version"},
};

const OptionSpec* find_option(const std::string& name) {
    for (const auto& option : kOptions) {
        if (option.name == name) return &option;
    }
    return nullptr;
}

const CommandSpec* find_command(const std::string& name) {
    for (const auto& command : kCommands) {
        if (command.name == name) return &command;
    }
    return nullptr;
}

// "config", "plugins", "export", "runs": the first word of commands of two words.
bool is_group(const std::string& word) {
    for (const auto& command : kCommands) {
        if (command.name.rfind(word + " ", 0) == 0) return true;
    }
    return false;
}

bool takes(const CommandSpec& command, const std::string& option) {
    return std::find(kGlobalOptions.begin(), kGlobalOptions.end(), option) != kGlobalOptions.end() ||
           std::find(command.options.begin(), command.options.end(), option) != command.options.end();
}

// "--limit N, --json", for messages that say what a command takes.
std::string options_text(const std::vector<std::string>& names) {
    std::vector<std::string> items;
    for (const auto& name : names) {
        const OptionSpec* option = find_option(name);
        items.push_back(option && !option->value.empty() ? name + " " + option->value : name);
    }
    return join(items);
}

std::string takes_text(const CommandSpec& command) {
    return command.name + " takes " +
           (command.options.empty() ? "no options of its own" : options_text(command.options)) + " (and " +
           options_text({"--config", "--log-format", "--help"}) + ", as every command)";
}

// The commands (of `group`, or all) one line each: name, arguments and summary.
std::string command_list(const std::string& group) {
    std::ostringstream text;
    text << "Commands:\n";
    for (const auto& command : kCommands) {
        if (!group.empty() && command.name.rfind(group + " ", 0) != 0) continue;
        std::string usage = command.name + (command.arguments.empty() ? "" : " " + command.arguments);
        text << "  " << std::left << std::setw(20) << usage << "  " << command.summary << "\n";
    }
    return text.str();
}

std::string main_help() {
    return kMainHelpUsage + std::string("\n") + command_list("") +
           "  help [COMMAND...]     Help on a command, or a group of them\n" + kMainHelpOptions;
}

std::string group_help(const std::string& group) {
    return "Usage: segpush [--config FILE] " + group + " COMMAND [ARGS...] [OPTIONS]\n\n" + command_list(group) +
           "\nRun 'segpush " + group + " COMMAND --help' for a command's options and exit status.\n";
}

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

// " (did you mean 'activecampaign'?)" for an id that is not a plugin's: the closest id, the one
// id it begins (an abbreviation, such as "ac"), or the plugin of a connection of that name.
std::string plugin_suggestion(const Options& options, const std::string& id, const std::vector<std::string>& ids) {
    if (std::string close = did_you_mean(id, ids); !close.empty()) return close;
    std::vector<std::string> starting;
    for (const auto& candidate : ids) {
        if (candidate.size() > id.size() && std::equal(id.begin(), id.end(), candidate.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            })) {
            starting.push_back(candidate);
        }
    }
    if (starting.size() == 1) return " (did you mean '" + starting.front() + "'?)";
    Diagnostics ignored;  // a configuration that does not load only gives no hint
    if (auto config = load_config(options.config_path, ignored)) {
        if (const ConnectionConfig* connection = config->find_connection(id);
            connection && !connection->plugin.empty()) {
            return " (did you mean '" + connection->plugin + "', the plugin of connection " + id + "?)";
        }
    }
    return "";
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
        print.err("segpush: no plugin with id '" + id + "'" + plugin_suggestion(options, id, ids) + " in " +
                  *directory + (ids.empty() ? "" : "; loaded: " + join(ids)) + "\n");
        return kExitUsage;
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

// config check --json: one object, its shape documented in `config check --help`.
void print_diagnostics_json(Printer& print, const Diagnostics& diagnostics, bool valid) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    auto text = [&](const std::string& value) { return rapidjson::Value(value.c_str(), a); };
    int64_t errors = 0, warnings = 0;
    rapidjson::Value items(rapidjson::kArrayType);
    for (const auto& diagnostic : diagnostics.items()) {
        const bool error = diagnostic.severity == Diagnostic::Severity::error;
        (error ? errors : warnings) += 1;
        rapidjson::Value item(rapidjson::kObjectType);
        item.AddMember("severity", rapidjson::StringRef(error ? "error" : "warning"), a);
        item.AddMember("file", text(diagnostic.pos.file), a);
        rapidjson::Value line, column;  // null when the position is not known
        if (diagnostic.pos.line > 0) {
            line.SetInt(diagnostic.pos.line);
            column.SetInt(diagnostic.pos.column);
        }
        item.AddMember("line", line, a);
        item.AddMember("column", column, a);
        item.AddMember("key", text(diagnostic.key_path), a);
        // Scrubbed here as format() scrubs the text line; the printer scrubs the whole again.
        item.AddMember("message", text(Redactor::instance().scrub(diagnostic.message)), a);
        items.PushBack(item, a);
    }
    doc.AddMember("valid", valid, a);
    doc.AddMember("errors", errors, a);
    doc.AddMember("warnings", warnings, a);
    doc.AddMember("diagnostics", items, a);
    write_json(print, doc);
}

// The state's schema, as far as it can be read without changing it: one newer than this
// segpush knows is an error (runs would refuse it); a state that cannot be reached is a
// warning, since the configuration may be checked where the database is out of reach.
void check_state_schema(const Config& config, Diagnostics& diagnostics) {
    try {
        const StateStore::SchemaVersions versions = peek_schema_versions(config.state_location);
        if (versions.found > versions.current) {
            diagnostics.error(config.state_pos, "state",
                              config.state_shown + " has schema version " + std::to_string(versions.found) +
                                  ", newer than this segpush knows (" + std::to_string(versions.current) +
                                  "): a newer segpush wrote it; run that version, or upgrade this one");
        }
    } catch (const std::exception& error) {
        diagnostics.warning(config.state_pos, "state", std::string("its schema cannot be checked: ") + error.what());
    }
}

int config_check(const Options& options, Printer& print) {
    Diagnostics diagnostics;
    auto setup = load_checked(options, diagnostics);
    if (setup) {
        check_state_schema(setup->config, diagnostics);
        for (const auto& item : diagnostics.items()) {
            if (item.severity == Diagnostic::Severity::error) setup.reset();
        }
    }
    if (options.json) {
        print_diagnostics_json(print, diagnostics, setup.has_value());
        return setup ? kExitOk : kExitUsage;
    }
    print_diagnostics(print, diagnostics);
    if (!setup) {
        int64_t errors = 0;
        for (const auto& item : diagnostics.items()) errors += item.severity == Diagnostic::Severity::error;
        print.err(plural(errors, "error") + " in " + options.config_path + "\n");
        return kExitUsage;
    }
    const Config& config = setup->config;
    print.out(options.config_path + ": OK (" + plural(static_cast<int64_t>(config.segments.size()), "segment") + ", " +
              plural(static_cast<int64_t>(config.connections.size()), "connection") + ", " +
              plural(static_cast<int64_t>(config.exports.size()), "export") + ")\n");
    print.out("plugins from " + (options.plugin_dir ? *options.plugin_dir : resolved_plugin_dir(config)) +
              plugin_dir_origin(config, options) + "\n");
    return kExitOk;
}

}  // namespace

int usage_error(Printer& print, const std::string& message, const std::string& command) {
    print.err("segpush: " + message + "\nRun 'segpush " + (command.empty() ? "" : command + " ") +
              "--help' for usage.\n");
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

namespace {

// An option as given on the command line.
struct GivenOption {
    const OptionSpec* spec;
    std::string value;
};

// A whole number for --limit or --show, at least `minimum`; nullopt when the value is not one.
std::optional<int> count_value(const std::string& value, int minimum) {
    if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string::npos) {
        return std::nullopt;
    }
    const int number = std::stoi(value);
    if (number < minimum) return std::nullopt;
    return number;
}

// Puts the given options into `options`; a usage error's message, or "" when all are good.
std::string apply_options(const std::vector<GivenOption>& given, Options& options) {
    for (const auto& [spec, value] : given) {
        const std::string& name = spec->name;
        if (name == "--help") {
            options.help = true;
        } else if (name == "--json") {
            options.json = true;
        } else if (name == "--dry-run") {
            options.dry_run = true;
        } else if (name == "--full") {
            options.full = true;
        } else if (name == "--allow-mass-change") {
            options.allow_mass_change = true;
        } else if (name == "--retry-rejected") {
            options.retry_rejected = true;
        } else if (name == "--limit") {
            options.limit = count_value(value, 1);
            if (!options.limit)
                return "--limit needs a whole number of runs, 1 or more (e.g. --limit 50), not '" + value + "'";
        } else if (name == "--show") {
            options.show = count_value(value, 0);
            if (!options.show) {
                return "--show needs a whole number of members, 0 or more (e.g. --show 10), not '" + value + "'";
            }
        } else if (name == "--config") {
            options.config_path = value;
        } else if (name == "--plugin-dir") {
            options.plugin_dir = value;
        } else if (name == "--log-format") {
            options.log_format = value;
        }
    }
    return "";
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Printer print(out, err);
    Options options;
    const char* env_config = std::getenv("SEGPUSH_CONFIG");
    options.config_path = env_config && *env_config ? env_config : "segpush.yaml";
    // Words and options, wherever they are; which options the command takes is checked once the
    // words name it.
    std::vector<GivenOption> given;
    std::vector<std::string> unknown;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        // "-5" is a word (a run id, say): no option starts with a digit.
        if (arg.size() < 2 || arg[0] != '-' || std::isdigit(static_cast<unsigned char>(arg[1]))) {
            options.words.push_back(arg);
            continue;
        }
        std::string name = arg == "-h" ? "--help" : arg;
        std::optional<std::string> value;
        if (const size_t equals = name.find('='); name.rfind("--", 0) == 0 && equals != std::string::npos) {
            value = name.substr(equals + 1);
            name.resize(equals);
        }
        const OptionSpec* spec = find_option(name);
        if (!spec) {
            unknown.push_back(name);
            continue;
        }
        if (spec->value.empty() && value) return usage_error(print, name + " takes no value");
        if (!spec->value.empty() && !value) {
            if (i + 1 >= args.size()) {
                return usage_error(print,
                                   name + " needs a value: " + name + " " + spec->value +
                                       (name == "--log-format" ? " (" + join(log_format_names(), " or ") + ")" : ""));
            }
            value = args[++i];
        }
        given.push_back({spec, value.value_or("")});
    }
    for (const auto& option : given) {
        if (option.spec->name == "--version") {
            print.out(std::string("segpush ") + SEGPUSH_VERSION + " (plugin ABI " +
                      abi_text(SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR) + ")\n");
            return kExitOk;
        }
    }
    auto& words = options.words;
    const bool help_word = !words.empty() && words[0] == "help";
    if (help_word) words.erase(words.begin());
    const CommandSpec* command = nullptr;
    if (words.size() >= 2) command = find_command(words[0] + " " + words[1]);
    if (!command && !words.empty() && !is_group(words[0])) command = find_command(words[0]);
    const std::string group = !command && !words.empty() && is_group(words[0]) ? words[0] : "";

    if (!unknown.empty()) {
        std::vector<std::string> candidates;
        for (const auto& option : kOptions) {
            if (!command || takes(*command, option.name)) candidates.push_back(option.name);
        }
        const std::string& name = unknown.front();
        if (!command) return usage_error(print, "unknown option " + name + did_you_mean(name, candidates));
        return usage_error(print,
                           command->name + ": unknown option " + name + did_you_mean(name, candidates) + "; " +
                               takes_text(*command),
                           command->name);
    }
    if (const std::string problem = apply_options(given, options); !problem.empty()) {
        return usage_error(print, problem, command ? command->name : "");
    }
    std::vector<std::string> known;
    for (const auto& spec : kCommands) known.push_back(spec.name);
    const std::string named = join(words, " ");
    if (options.help || help_word) {
        if (command) {
            print.out(wrap_text(kCommandHelp.at(command->name)));
        } else if (!group.empty() && words.size() == 1) {
            print.out(wrap_text(group_help(group)));
        } else if (words.empty()) {
            print.out(wrap_text(main_help()));
        } else {
            return usage_error(print, "no help for '" + named + "'" + did_you_mean(named, known));
        }
        return kExitOk;
    }
    if (words.empty()) {
        print.err(wrap_text(main_help()));
        return kExitUsage;
    }
    if (!command) {
        if (!group.empty() && words.size() == 1) {
            print.err("segpush: " + group + " needs a command\n\n" + wrap_text(group_help(group)));
            return kExitUsage;
        }
        const std::string attempted = words.size() >= 2 ? words[0] + " " + words[1] : words[0];
        return usage_error(print, "unknown command '" + named + "'" + did_you_mean(attempted, known));
    }
    for (const auto& option : given) {
        if (takes(*command, option.spec->name)) continue;
        return usage_error(print, command->name + " does not take " + option.spec->name + "; " + takes_text(*command),
                           command->name);
    }
    // serve --json is for a program: its log lines are JSON too, unless a format was chosen.
    if (command->name == "serve" && options.json && !options.log_format && !std::getenv("SEGPUSH_LOG_FORMAT")) {
        options.log_format = "json";
    }
    // Before any command runs: a misspelt level or format must not log at another one.
    if (const std::string problem = configure_logging(options.log_format); !problem.empty()) {
        return usage_error(print, problem);
    }
    const std::string& name = command->name;
    if (name == "config check") {
        if (words.size() != 2) return usage_error(print, "config check takes no arguments", name);
        return config_check(options, print);
    }
    if (name == "plugins list") {
        if (words.size() != 2) return usage_error(print, "plugins list takes no arguments", name);
        return plugins_list(options, print);
    }
    if (name == "plugins describe") return plugins_describe(options, print);
    if (name == "export run") return export_run(options, print);
    if (name == "runs list") return runs_list(options, print);
    if (name == "runs show") return runs_show(options, print);
    if (name == "state migrate") return state_migrate(options, print);
    if (name == "serve") return serve(options, print);
    return forget(options, print);
}

}  // namespace segpush
