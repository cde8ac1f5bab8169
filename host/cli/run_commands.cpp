// The commands that run exports (once, or on their schedules) and read the run history.
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <list>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "cli/cli_support.hpp"
#include "cli/dry_run_output.hpp"
#include "config/loader.hpp"
#include "engine/export_runner.hpp"
#include "engine/member_key.hpp"
#include "engine/record.hpp"
#include "engine/run_report.hpp"
#include "log/log.hpp"
#include "notify/notifier.hpp"
#include "plugins/registry.hpp"
#include "plugins/shared_budgets.hpp"
#include "schedule/scheduler.hpp"
#include "service/http_endpoint.hpp"
#include "service/metrics.hpp"
#include "state/postgres.hpp"
#include "state/state_store.hpp"
#include "systemd/service_notifier.hpp"
#include "text/suggest.hpp"
#include "text/wording.hpp"

namespace segpush {

namespace {

// Set by SIGINT/SIGTERM. The first signal asks running exports to stop cleanly (in-flight
// batches finish, their outcomes are saved); a second one ends the process at once, which
// is still safe because every saved outcome is already committed.
std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int signal_number) {
    if (g_stop.exchange(true)) {
        std::signal(signal_number, SIG_DFL);
        std::raise(signal_number);
        return;
    }
    // For a person at a terminal. JSON logs stay one object a line: serve logs its stop, a run its end.
    if (current_log_format() != LogFormat::text) return;
    static const char kNote[] = "\nsegpush: stopping after the batches in flight (press Ctrl-C again to quit now)\n";
    (void)!write(STDERR_FILENO, kNote, sizeof kNote - 1);
}

class StopOnSignal {
public:
    StopOnSignal() {
        g_stop = false;
        struct sigaction action {};
        action.sa_handler = on_stop_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &previous_int_);
        sigaction(SIGTERM, &action, &previous_term_);
    }
    ~StopOnSignal() {
        sigaction(SIGINT, &previous_int_, nullptr);
        sigaction(SIGTERM, &previous_term_, nullptr);
    }

private:
    struct sigaction previous_int_ {};
    struct sigaction previous_term_ {};
};

// Set by SIGHUP: serve's main loop reads the configuration again (never the handler itself).
std::atomic<bool> g_reload{false};

extern "C" void on_reload_signal(int) { g_reload = true; }

class ReloadOnSignal {
public:
    ReloadOnSignal() {
        g_reload = false;
        struct sigaction action {};
        action.sa_handler = on_reload_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        sigaction(SIGHUP, &action, &previous_hup_);
    }
    ~ReloadOnSignal() { sigaction(SIGHUP, &previous_hup_, nullptr); }

private:
    struct sigaction previous_hup_ {};
};

std::string count(int64_t n) { return std::to_string(n); }

// How an export's members' key is called (key_noun), from its plugin's key field; "key" when
// the export or its plugin is gone. For run history, which needs no plugin otherwise.
std::string key_name_of(const Options& options, const Config& config, const std::string& export_name) {
    const ExportConfig* exp = config.find_export(export_name);
    const ConnectionConfig* connection = exp ? config.find_connection(exp->connection) : nullptr;
    if (!connection || connection->plugin.empty()) return "key";
    const std::string directory = options.plugin_dir ? *options.plugin_dir : resolved_plugin_dir(config);
    const auto registry = PluginRegistry::load_plugins(directory, {connection->plugin});
    const LoadedPlugin* plugin = registry.find(connection->plugin);
    const segpush_field* key = plugin ? key_field_of(plugin->api) : nullptr;
    return key ? key_noun(key->type, key->id) : "key";
}

// A run's counts in the words of RunCounts (defined for users in `export run --help`), as the
// run summary and `runs show` print them. `on_leave` is the export's, when known; `key_name`
// how its members' key is called (key_noun).
std::string counts_text(const RunCounts& c, std::optional<OnLeave> on_leave, bool dry_run,
                        const std::string& key_name) {
    const bool removes = on_leave == OnLeave::unsubscribe;
    std::ostringstream text;
    text << "  rows read     " << count(c.rows_read) << " (" << count(c.invalid) << " invalid, refused before sending; "
         << plural(c.duplicates, "duplicate") << " collapsed, the first row of each " << key_name << " wins)\n"
         << "  members       " << count(c.members) << ": " << count(c.new_members) << " new, " << count(c.changed)
         << " changed, " << count(c.unchanged) << " unchanged\n"
         << "  leaving       " << count(c.leaving);
    if (on_leave) text << (removes ? " (unsubscribed: on_leave is unsubscribe)" : " (kept: on_leave is keep)");
    text << "\n";
    if (c.rejected_retried + c.rejected_held > 0) {
        text << "  retried       " << count(c.rejected_retried) << " refused before with the same values, "
             << (dry_run ? "would be sent again" : "sent again") << "\n"
             << "  held          " << count(c.rejected_held)
             << " refused before with the same values, not sent (until they change, or --retry-rejected)\n";
    }
    if (dry_run) {
        text << "  would send    " << count(c.new_members + c.changed - c.rejected_held + (removes ? c.leaving : 0))
             << " records\n";
        return text.str();
    }
    text << "  sent          " << count(c.sent) << "\n";
    if (c.resumed > 0) text << "  resumed       " << count(c.resumed) << "\n";
    text << "  accepted      " << count(c.accepted) << (removes || c.removed > 0 ? ", removed " + count(c.removed) : "")
         << "\n"
         << "  rejected      " << count(c.rejected) << " by the destination\n"
         << "  suppressed    " << count(c.suppressed)
         << " kept out by the destination (unsubscribed or bounced there; not sent again while unchanged)\n"
         << "  pending       " << count(c.pending) << "\n";
    return text.str();
}

std::string summary_text(const ExportConfig& exp, const RunSummary& summary, bool dry_run) {
    std::ostringstream text;
    if (dry_run) {
        text << "Dry run of export " << exp.name << " (run #" << summary.run_id << "): nothing was sent.\n";
    } else {
        text << "Export " << exp.name << ", run #" << summary.run_id << ": " << to_string(summary.status) << " in "
             << duration_text(summary.seconds) << ".\n";
    }
    text << counts_text(summary.counts, exp.on_leave, dry_run, summary.key_name);
    if (!summary.report_path.empty()) {
        text << "  report        " << summary.report_path
             << " (invalid, rejected, suppressed and held rows, and why)\n";
    }
    if (!summary.error.empty()) text << "  error         " << summary.error << "\n";
    if (!summary.mass_change.empty() && !summary.guarded) {
        text << "  mass change   " << summary.mass_change << "; "
             << (!dry_run ? "allowed by --allow-mass-change"
                          : "a real run stops here, sending nothing, unless given --allow-mass-change")
             << "\n";
    }
    return text.str();
}

// " (did you mean 'x'?) (exports: x, y)" after a name that is no export of `config`.
std::string export_names_hint(const Config& config, const std::string& name) {
    std::vector<std::string> names;
    for (const auto& exp : config.exports) names.push_back(exp.name);
    return did_you_mean(name, names) + (names.empty() ? "" : " (exports: " + join(names, ", ") + ")");
}

const ExportConfig* find_export_or_report(const Config& config, const std::string& name, Printer& print) {
    if (const ExportConfig* exp = config.find_export(name)) return exp;
    usage_error(print, "no export named '" + name + "' in " + config.file + export_names_hint(config, name),
                "export run");
    return nullptr;
}

int exit_code_for(RunStatus status) {
    if (status == RunStatus::succeeded) return kExitOk;
    return status == RunStatus::succeeded_with_rejections ? kExitRejections : kExitFailure;
}

// Run history needs only the configuration as read (the state file's place, the exports'
// names), so a configuration with other problems (a plugin that no longer loads, say) still
// shows what happened before.
std::optional<Config> history_config(const Options& options, Printer& print) {
    Diagnostics diagnostics;
    auto config = load_config(options.config_path, diagnostics);
    if (!config) print_diagnostics(print, diagnostics);
    return config;
}

std::unique_ptr<StateStore> open_state(const Config& config) {
    return open_state_store(config.state_location, config.state_options);
}

// The configuration's state for a command that only reads it, or nullptr when it is an SQLite
// file not made yet: reading must not create it.
std::unique_ptr<StateStore> existing_state(const Config& config) {
    if (!postgres::is_postgres_location(config.state_location) && !std::filesystem::exists(config.state_location)) {
        return nullptr;
    }
    return open_state(config);
}

void add_run_json(rapidjson::Value& target, const RunRecord& run, rapidjson::Document::AllocatorType& alloc) {
    auto text = [&](const std::string& value) { return rapidjson::Value(value.c_str(), alloc); };
    target.SetObject();
    target.AddMember("id", run.id, alloc);
    target.AddMember("export", text(run.export_name), alloc);
    target.AddMember("status", text(to_string(run.status)), alloc);
    target.AddMember("started_at", text(run.started_at), alloc);
    target.AddMember("finished_at", text(run.finished_at), alloc);
    target.AddMember("full", run.full, alloc);
    target.AddMember("dry_run", run.dry_run, alloc);
    // Which process ran it: with replicas sharing a PostgreSQL state, which replica.
    target.AddMember("pid", run.pid, alloc);
    target.AddMember("hostname", text(run.hostname), alloc);
    rapidjson::Value counts(rapidjson::kObjectType);
    for (const auto& [name, value] : named_counts(run.counts))
        counts.AddMember(rapidjson::StringRef(name), value, alloc);
    target.AddMember("counts", counts, alloc);
    target.AddMember("error", text(run.error), alloc);
    target.AddMember("report", text(run.report_path), alloc);
}

std::string json_text(const rapidjson::Document& document) {
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    document.Accept(writer);
    return std::string(buffer.GetString()) + "\n";
}

// A dry run as one JSON object: the run, its counts, the requests it would make and the
// members shown (docs/operations.md, "Dry runs").
std::string dry_run_json(const ExportConfig& exp, const RunSummary& summary) {
    rapidjson::Document document(rapidjson::kObjectType);
    auto& alloc = document.GetAllocator();
    document.AddMember("export", rapidjson::Value(exp.name.c_str(), alloc), alloc);
    document.AddMember("run_id", summary.run_id, alloc);
    document.AddMember("dry_run", true, alloc);
    document.AddMember("status", rapidjson::Value(to_string(summary.status).c_str(), alloc), alloc);
    rapidjson::Value counts(rapidjson::kObjectType);
    for (const auto& [name, value] : named_counts(summary.counts))
        counts.AddMember(rapidjson::StringRef(name), value, alloc);
    document.AddMember("counts", counts, alloc);
    document.AddMember("on_leave", rapidjson::StringRef(exp.on_leave == OnLeave::unsubscribe ? "unsubscribe" : "keep"),
                       alloc);
    if (summary.preview) {
        add_dry_run_json(document, *summary.preview, alloc);
    } else {  // stopped before it compared the members: nothing to predict
        document.AddMember("requests", rapidjson::Value(rapidjson::kNullType), alloc);
        document.AddMember("shown", rapidjson::Value(rapidjson::kNullType), alloc);
    }
    // What the guard against mass change would say ("" when nothing is over its limits).
    document.AddMember("mass_change", rapidjson::Value(summary.mass_change.c_str(), alloc), alloc);
    document.AddMember("error", rapidjson::Value(summary.error.c_str(), alloc), alloc);
    return json_text(document);
}

// This process among the replicas sharing a state, as claims name it: "HOST pid PID #TOKEN".
// The random token keeps it unique where host name and pid are not (containers sharing the
// host's name each have a pid 1) and across restarts.
const std::string& replica_name() {
    static const std::string name = [] {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        std::random_device random;
        char token[16];
        std::snprintf(token, sizeof token, "%08x", random());
        return std::string(host) + " pid " + std::to_string(getpid()) + " #" + token;
    }();
    return name;
}

// The occasion take_over_abandoned_runs gives a run it takes over.
const std::string kResumeOccasion = "resume run #";

// One scheduled run inside `serve`: its outcome goes to the log, never an exception; the
// scheduler gets it too (nullopt: the run did not start).
std::optional<Scheduler::RunOutcome> run_scheduled(const CheckedSetup& setup, const ExportConfig& exp,
                                                   const std::string& occasion) {
    const LogRunScope log_scope(exp.name);
    ServiceMetrics& metrics = ServiceMetrics::process();
    metrics.run_started(exp.name);
    const bool takeover = occasion.rfind(kResumeOccasion, 0) == 0;
    try {
        const auto state = open_state(setup.config);
        // Replicas serving this configuration all reach this point for the same occasion: the
        // one that claims it runs it. A takeover is not claimed: begin_run lets one replica
        // alone continue the run, and a claim would be lost with a replica that died before that.
        if (!takeover && !state->history().claim_slot(exp.name, occasion, replica_name())) {
            metrics.run_not_started(exp.name, "other_replica");
            log_line(LogLevel::info, "export " + exp.name + ": another replica took this run (" + occasion + ")");
            return std::nullopt;
        }
        ExportRunner runner(setup.config, exp, setup.registry, *state, g_stop);
        const RunSummary summary = runner.run(RunOptions{});
        metrics.run_finished(exp.name, summary.status, summary.counts, summary.seconds,
                             std::chrono::system_clock::now());
        const RunCounts& c = summary.counts;
        const LogLevel level = summary.status == RunStatus::succeeded                   ? LogLevel::info
                               : summary.status == RunStatus::succeeded_with_rejections ? LogLevel::warn
                                                                                        : LogLevel::error;
        log_line(level, "export " + exp.name + ": run #" + std::to_string(summary.run_id) + " " +
                            to_string(summary.status) + " in " + duration_text(summary.seconds) + ": sent " +
                            count(c.sent) + ", accepted " + count(c.accepted) + ", rejected " + count(c.rejected) +
                            ", invalid " + count(c.invalid) + ", suppressed " + count(c.suppressed) + ", pending " +
                            count(c.pending) + ", unchanged " + count(c.unchanged) + ", retried " +
                            count(c.rejected_retried) + ", held " + count(c.rejected_held) +
                            (summary.error.empty() ? "" : "; " + summary.error));
        notify_run_finished(exp, state->history(), summary.run_id);  // queued: never holds up the schedule
        return Scheduler::RunOutcome{summary.status, summary.error};
    } catch (const AlreadyRunning& running) {
        if (takeover) {  // another replica was quicker to take it over
            metrics.run_not_started(exp.name, "other_replica");
            log_line(LogLevel::info, "export " + exp.name + ": another replica took this run (" + occasion + ")");
            return std::nullopt;
        }
        metrics.run_not_started(exp.name, "skipped");
        log_line(LogLevel::warn, "export " + exp.name + ": skipped this time: " + running.what());
    } catch (const std::exception& error) {
        metrics.run_not_started(exp.name, "error");
        log_line(LogLevel::error, "export " + exp.name + ": run failed: " + error.what());
    }
    return std::nullopt;
}

// What an export's runs depend on, so that a reload can tell whether it changed. Hashed: the
// resolved settings hold secrets, which need not be kept twice.
std::string export_definition(const Config& config, const ExportConfig& exp) {
    std::ostringstream text;
    auto settings = [&](const Settings& given) {
        text << YAML::Dump(given.yaml) << "\n" << given.resolved_json << "\n";
    };
    text << exp.name << "\n"
         << exp.connection << "\n"
         << exp.schedule << " " << exp.settle.count() << "\n"
         << exp.timezone << "\n"
         << exp.max_profiles.value_or(0) << " " << static_cast<int>(exp.on_leave) << " " << exp.clear_blank_values
         << " " << exp.retry_max_attempts << " " << exp.retry_max_backoff_seconds << " " << exp.catch_up << " "
         << exp.max_leaving_ratio << " " << exp.max_changed_ratio << "\n"
         << exp.retry_rejected_runs << " " << exp.max_rejected_ratio.value_or(-1) << "\n";
    settings(exp.settings);
    for (const auto& [field, column] : exp.mapping) text << field << "=" << column << "\n";
    for (const auto& name : exp.segments) {
        text << "segment " << name << "\n";
        if (const SegmentConfig* segment = config.find_segment(name)) {
            text << segment->source << " " << segment->path << " "
                 << (segment->fifo_timeout ? segment->fifo_timeout->count() : -1) << "\n";
        }
    }
    if (const ConnectionConfig* connection = config.find_connection(exp.connection)) {
        text << "connection " << connection->plugin << "\n";
        settings(connection->settings);
    }
    return std::to_string(std::hash<std::string>{}(text.str()));
}

// The scheduled exports of `setup`, each sharing ownership of it: a run keeps the
// configuration and the plugins it started with alive to its end, whatever a reload does.
std::vector<Scheduler::ScheduledExport> scheduled_exports(const std::shared_ptr<const CheckedSetup>& setup) {
    std::vector<Scheduler::ScheduledExport> exports;
    for (const auto& exp : setup->config.exports) {
        std::vector<std::string> segment_files;
        for (const auto& name : exp.segments) {
            if (const SegmentConfig* segment = setup->config.find_segment(name)) segment_files.push_back(segment->path);
        }
        exports.push_back({std::shared_ptr<const ExportConfig>(setup, &exp), export_definition(setup->config, exp),
                           std::move(segment_files)});
    }
    return exports;
}

Scheduler::RunExport runs_under(const std::shared_ptr<const CheckedSetup>& setup) {
    return
        [setup](const ExportConfig& exp, const std::string& occasion) { return run_scheduled(*setup, exp, occasion); };
}

// serve's configuration read again (SIGHUP), checked as fully as at start. Every problem goes
// to the log as config check words it (file:line:col); nullptr when the running configuration
// must stay.
std::shared_ptr<const CheckedSetup> reload_setup(const Options& options) {
    log_line(LogLevel::info, "serve: reloading the configuration from " + options.config_path);
    std::optional<CheckedSetup> setup;
    try {
        Diagnostics diagnostics;
        setup = load_checked(options, diagnostics);
        for (const auto& item : diagnostics.items()) {
            log_line(item.severity == Diagnostic::Severity::error ? LogLevel::error : LogLevel::warn,
                     "serve: reload: " + item.format());
        }
    } catch (const std::exception& error) {
        log_line(LogLevel::error, "serve: reload: " + std::string(error.what()));
        setup.reset();
    }
    if (setup) {
        bool any_scheduled = false;
        for (const auto& exp : setup->config.exports) any_scheduled = any_scheduled || !exp.schedule.empty();
        if (any_scheduled) return std::make_shared<const CheckedSetup>(std::move(*setup));
        log_line(LogLevel::error, "serve: reload: no export of the new configuration has a schedule");
    }
    log_line(LogLevel::error,
             "serve: the new configuration was not taken; the running one goes on unchanged (fix it, check it with "
             "'segpush config check', and send SIGHUP again)");
    return nullptr;
}

// Whether a run (not a dry run) of the export started at or after `since`, by the run history.
bool ran_since(const Config& config, const std::string& export_name, Scheduler::Clock::time_point since) {
    try {
        const auto state = existing_state(config);
        if (!state) return false;
        for (const auto& run : state->history().list_runs(export_name, 100)) {
            if (run.dry_run) continue;
            std::tm started{};
            std::istringstream text(run.started_at);
            text >> std::get_time(&started, "%Y-%m-%dT%H:%M:%S");
            if (text.fail()) return true;  // unreadable: do not run twice on a guess
            return Scheduler::Clock::from_time_t(timegm(&started)) >= since;
        }
        return false;
    } catch (const std::exception& error) {
        log_line(LogLevel::warn, "export " + export_name + ": catch_up cannot read the run history (" + error.what() +
                                     "); no catch-up run");
        return true;
    }
}

std::string utc_text(std::chrono::system_clock::time_point time) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

// serve --json: what serve runs and where it answers, as one line once it is ready. The shape is
// documented in `serve --help` and docs/operations.md; a program waits for this line.
std::string serve_start_json(const Config& config, const Scheduler& scheduler, const std::string& listening) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    auto text = [&](const std::string& value) { return rapidjson::Value(value.c_str(), a); };
    doc.AddMember("config", text(config.file), a);
    doc.AddMember("pid", static_cast<int64_t>(getpid()), a);
    doc.AddMember("listen", listening.empty() ? rapidjson::Value() : text(listening), a);
    rapidjson::Value exports(rapidjson::kArrayType);
    for (const auto& [name, next] : scheduler.next_runs()) {
        const ExportConfig* exp = config.find_export(name);
        if (!exp) continue;
        rapidjson::Value item(rapidjson::kObjectType);
        item.AddMember("name", text(name), a);
        item.AddMember("schedule", text(exp->schedule), a);
        item.AddMember("timezone", text(exp->timezone.empty() ? "UTC" : exp->timezone), a);
        item.AddMember("next_run", next ? text(utc_text(*next)) : rapidjson::Value(), a);
        if (!next) {
            rapidjson::Value files(rapidjson::kArrayType);
            for (const auto& segment_name : exp->segments) {
                if (const SegmentConfig* segment = config.find_segment(segment_name))
                    files.PushBack(text(segment->path), a);
            }
            item.AddMember("segment_files", files, a);
            item.AddMember("settle_seconds", static_cast<int64_t>(exp->settle.count()), a);
        }
        exports.PushBack(item, a);
    }
    doc.AddMember("exports", exports, a);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    doc.Accept(writer);
    return std::string(buffer.GetString()) + "\n";
}

}  // namespace

int export_run(const Options& options, Printer& print) {
    if (options.words.size() != 3)
        return usage_error(print, "export run takes one export name: segpush export run NAME");
    if (options.show && !options.dry_run) {
        return usage_error(print, "--show belongs to a dry run: segpush export run NAME --dry-run --show N");
    }
    auto setup = load_checked_or_report(options, print);
    if (!setup) return kExitUsage;
    const ExportConfig* exp = find_export_or_report(setup->config, options.words[2], print);
    if (!exp) return kExitUsage;
    const auto state = open_state(setup->config);
    // Plugins' request budgets are shared with the other segpush processes of this state.
    SharedBudgets::process().use_state_file(setup->config.state_location);
    StopOnSignal stop_on_signal;
    const LogRunScope log_scope(exp->name);
    ExportRunner runner(setup->config, *exp, setup->registry, *state, g_stop);
    RunOptions run_options;
    run_options.dry_run = options.dry_run;
    run_options.full = options.full;
    run_options.allow_mass_change = options.allow_mass_change;
    run_options.retry_rejected = options.retry_rejected;
    run_options.progress_on_terminal = isatty(STDERR_FILENO) != 0;
    run_options.show = options.show.value_or(0);
    try {
        const RunSummary summary = runner.run(run_options);
        if (options.json && options.dry_run) {
            print.out(dry_run_json(*exp, summary));
        } else if (options.json) {
            // The run as the history keeps it: the same object as `runs show ID --json`.
            rapidjson::Document document;
            if (const auto run = state->history().get_run(summary.run_id)) {
                add_run_json(document, *run, document.GetAllocator());
            }
            print.out(json_text(document));
        } else {
            print.out(summary_text(*exp, summary, options.dry_run));
            if (summary.preview) {
                print.out(dry_run_text(*exp, setup->config.find_connection(exp->connection)->plugin, *summary.preview,
                                       summary.counts));
            }
        }
        notify_run_finished(*exp, state->history(), summary.run_id);
        Notifier::process().finish(kNotifyWaitAtExit);  // bounded: the exit is not held up for long
        return summary.guarded ? kExitGuarded : exit_code_for(summary.status);
    } catch (const AlreadyRunning& running) {
        print.err("segpush: " + std::string(running.what()) + "\n");
        return kExitFailure;
    }
}

int runs_list(const Options& options, Printer& print) {
    if (options.words.size() > 3) return usage_error(print, "runs list takes at most one export name");
    const auto config = history_config(options, print);
    if (!config) return kExitUsage;
    const std::string export_name = options.words.size() == 3 ? options.words[2] : "";
    std::vector<RunRecord> runs;
    if (const auto state = existing_state(*config)) {
        runs = state->history().list_runs(export_name, options.limit.value_or(20));
    }
    // An export removed from the configuration still has its history; a name in neither is a typo.
    if (!export_name.empty() && runs.empty() && !config->find_export(export_name)) {
        return usage_error(print,
                           "no export named '" + export_name + "' in " + config->file + " or in the run history" +
                               export_names_hint(*config, export_name),
                           "runs list");
    }
    if (options.json) {
        rapidjson::Document document(rapidjson::kArrayType);
        for (const auto& run : runs) {
            rapidjson::Value item;
            add_run_json(item, run, document.GetAllocator());
            document.PushBack(item, document.GetAllocator());
        }
        print.out(json_text(document));
        return kExitOk;
    }
    if (runs.empty()) {
        print.out("No runs yet" + (export_name.empty() ? std::string() : " of export " + export_name) + " in " +
                  config->state_shown + ".\n");
        return kExitOk;
    }
    std::ostringstream text;
    // The counts' words as everywhere else: REJECTED is the destination's, INVALID refused before sending.
    text << std::left << std::setw(6) << "ID" << std::setw(22) << "EXPORT" << std::setw(32) << "STATUS" << std::setw(22)
         << "STARTED" << std::right << std::setw(10) << "SENT" << std::setw(10) << "ACCEPTED" << std::setw(10)
         << "REJECTED" << std::setw(9) << "INVALID" << std::setw(11) << "SUPPRESSED" << std::setw(9) << "PENDING"
         << std::setw(11) << "UNCHANGED"
         << "  ERROR\n";
    for (const auto& run : runs) {
        std::string error = run.error.size() > 60 ? run.error.substr(0, 57) + "..." : run.error;
        text << std::left << std::setw(6) << run.id << std::setw(22) << run.export_name << std::setw(32)
             << (to_string(run.status) + (run.dry_run ? " (dry)" : "")) << std::setw(22) << run.started_at << std::right
             << std::setw(10) << run.counts.sent << std::setw(10) << run.counts.accepted << std::setw(10)
             << run.counts.rejected << std::setw(9) << run.counts.invalid << std::setw(11) << run.counts.suppressed
             << std::setw(9) << run.counts.pending << std::setw(11) << run.counts.unchanged << "  " << error << "\n";
    }
    print.out(text.str());
    return kExitOk;
}

int runs_show(const Options& options, Printer& print) {
    if (options.words.size() != 3) return usage_error(print, "runs show takes one run id: segpush runs show ID");
    int64_t id = 0;
    try {
        size_t used = 0;
        id = std::stoll(options.words[2], &used);
        if (used != options.words[2].size()) throw std::invalid_argument("trailing text");
    } catch (const std::exception&) {
        return usage_error(print,
                           "run id must be a number, as 'segpush runs list' shows it, not '" + options.words[2] + "'");
    }
    const auto config = history_config(options, print);
    if (!config) return kExitUsage;
    std::optional<RunRecord> run;
    std::vector<RunRecord> newest;
    if (const auto state = existing_state(*config)) {
        run = state->history().get_run(id);
        if (!run) newest = state->history().list_runs("", 1);
    }
    if (!run) {
        return usage_error(print,
                           "no run #" + std::to_string(id) + " in " + config->state_shown +
                               (newest.empty() ? " (no runs yet)"
                                               : " (the newest is #" + std::to_string(newest.front().id) +
                                                     "; segpush runs list shows the runs)"),
                           "runs show");
    }
    if (options.json) {
        rapidjson::Document document;
        add_run_json(document, *run, document.GetAllocator());
        print.out(json_text(document));
        return kExitOk;
    }
    std::ostringstream text;
    text << "Run #" << run->id << " of export " << run->export_name << "\n"
         << "  status        " << to_string(run->status) << (run->dry_run ? " (dry run)" : "")
         << (run->full ? " (--full)" : "") << "\n"
         << "  started       " << run->started_at << "\n"
         << "  finished      " << (run->finished_at.empty() ? "-" : run->finished_at) << "\n"
         << "  process       " << run->pid << " on " << run->hostname << "\n"
         << counts_text(run->counts, std::nullopt, run->dry_run, key_name_of(options, *config, run->export_name));
    if (!run->report_path.empty()) text << "  report        " << run->report_path << "\n";
    if (!run->error.empty()) text << "  error         " << run->error << "\n";
    print.out(text.str());
    return kExitOk;
}

int forget(const Options& options, Printer& print) {
    if (options.words.size() < 2) {
        return usage_error(print, "forget takes one or more people by their keys: segpush forget KEY...");
    }
    // Each person as given (trimmed), and every key an export may have recorded them under: a
    // case-sensitive id as written, an email case-folded, a phone number in E.164.
    std::set<std::string> people, keys;
    for (size_t i = 1; i < options.words.size(); ++i) {
        const auto possible = possible_keys(options.words[i]);
        if (possible.empty()) return usage_error(print, "forget: an empty key was given");
        people.emplace(trim_value(options.words[i]));
        keys.insert(possible.begin(), possible.end());
    }
    const auto config = history_config(options, print);
    if (!config) return kExitUsage;
    StateStore::Forgotten forgotten;
    if (const auto state = existing_state(*config)) {
        try {
            forgotten = state->forget_members(keys);
        } catch (const AlreadyRunning& running) {
            print.err("segpush: nothing was forgotten: " + std::string(running.what()) + "\n");
            return kExitFailure;
        }
    }
    const auto reports = forget_in_reports(config->reports_dir, people);
    int64_t report_rows = 0;
    for (const auto& [report, rows] : reports) report_rows += rows;
    if (options.json) {
        rapidjson::Document document(rapidjson::kObjectType);
        auto& alloc = document.GetAllocator();
        rapidjson::Value given(rapidjson::kArrayType), changed(rapidjson::kArrayType);
        rapidjson::Value searched(rapidjson::kArrayType);
        for (const auto& person : people) given.PushBack(rapidjson::Value(person.c_str(), alloc), alloc);
        for (const auto& key : keys) searched.PushBack(rapidjson::Value(key.c_str(), alloc), alloc);
        for (const auto& [report, rows] : reports) changed.PushBack(rapidjson::Value(report.c_str(), alloc), alloc);
        // "emails" is what `forget --json` printed when every key was an email: kept, so that
        // scripts written then go on working.
        rapidjson::Value emails(given, alloc);
        document.AddMember("emails", emails, alloc);
        document.AddMember("people", given, alloc);
        document.AddMember("keys", searched, alloc);
        document.AddMember("state", rapidjson::Value(config->state_shown.c_str(), alloc), alloc);
        document.AddMember("delivered", forgotten.delivered, alloc);
        document.AddMember("removals", forgotten.removals, alloc);
        document.AddMember("refusals", forgotten.refusals, alloc);
        document.AddMember("awaiting_import", forgotten.awaiting_import, alloc);
        document.AddMember("run_errors", forgotten.run_errors, alloc);
        document.AddMember("report_rows", report_rows, alloc);
        document.AddMember("reports", changed, alloc);
        print.out(json_text(document));
        return kExitOk;
    }
    std::ostringstream text;
    text << "Forgot " << join(std::vector<std::string>(people.begin(), people.end())) << " in " << config->state_shown
         << ":\n"
         << "  delivered records          " << forgotten.delivered << "\n"
         << "  removal records            " << forgotten.removals << "\n"
         << "  refusal records            " << forgotten.refusals << "\n"
         << "  awaiting import            " << forgotten.awaiting_import << "\n"
         << "  run errors naming them     " << forgotten.run_errors << "\n"
         << "  report rows                " << report_rows << " in "
         << plural(static_cast<int64_t>(reports.size()), "report") << "\n"
         << "segpush keeps nothing else about them. The destinations still hold them: erase them there too.\n"
            "If they are still in a segment, its next run sends them again as new members.\n";
    print.out(text.str());
    return kExitOk;
}

// With state shared by hosts (PostgreSQL), a run whose replica stopped renewing its lease is
// taken over by the first replica that serves its export to see it: it continues the export
// from the checkpoint and receipts, so only the batches in flight are sent again. `state` is
// the serve loop's own connection, opened on first use and again after an error. An SQLite
// state has one host: its runs are continued by the export's next run, as without serve.
void take_over_abandoned_runs(const Config& config, Scheduler& scheduler, std::unique_ptr<StateStore>& state) {
    if (!postgres::is_postgres_location(config.state_location)) return;
    try {
        // One try, no waiting for a database that is down: this is serve's main loop, which must
        // keep telling systemd's watchdog it is alive and answer SIGTERM. It looks again soon.
        StateOptions once = config.state_options;
        once.patience = std::chrono::seconds(0);
        if (!state) state = open_state_store(config.state_location, once);
        for (const RunRecord& run : state->history().abandoned_runs()) {
            if (run.dry_run) continue;  // nothing to continue: the next claim closes it
            if (scheduler.start_now(run.export_name, kResumeOccasion + std::to_string(run.id))) {
                log_line(LogLevel::warn, "export " + run.export_name + ": run #" + std::to_string(run.id) + " (pid " +
                                             std::to_string(run.pid) + " on " + run.hostname +
                                             ") stopped renewing its lease; taking it over from its checkpoint");
            }
        }
    } catch (const std::exception& error) {
        state.reset();
        log_line(LogLevel::warn, std::string("serve: cannot look for abandoned runs: ") + error.what());
    }
}

int serve(const Options& options, Printer& print) {
    if (options.words.size() != 1) return usage_error(print, "serve takes no arguments");
    auto loaded = load_checked_or_report(options, print);
    if (!loaded) return kExitUsage;
    // Shared: a reload replaces it while runs started under it still use it.
    std::shared_ptr<const CheckedSetup> setup = std::make_shared<const CheckedSetup>(std::move(*loaded));
    // Plugins' request budgets are shared by every export here and with the other segpush
    // processes of this state (an `export run` from cron, say).
    SharedBudgets::process().use_state_file(setup->config.state_location);
    Scheduler scheduler(scheduled_exports(setup), runs_under(setup), std::chrono::system_clock::now());
    if (scheduler.empty()) {
        print.err(
            "segpush: no export has a schedule, so there is nothing to serve; add schedule: \"0 3 * * *\" "
            "(5-field cron, UTC unless timezone: is given) or schedule: on_change (when its segment files change) "
            "to an export, or run one with 'segpush export run NAME'\n");
        return kExitUsage;
    }
    ServiceMetrics& metrics = ServiceMetrics::process();
    for (const auto& [name, next] : scheduler.next_runs()) metrics.declare_export(name);
    // The configuration and its plugins are loaded (the address comes from it): ready once the
    // scheduler runs, not while stopping.
    Readiness readiness;
    readiness.block("scheduler", "the scheduler is not running yet");
    // Monitoring must not stop the exports: when the address cannot be used, serve says so and
    // runs without the endpoint (its monitoring then sees the target down).
    std::optional<HttpEndpoint> endpoint;
    std::string listening;  // the endpoint's address, once it has one
    try {
        endpoint.emplace(setup->config.serve_listen, readiness, [&metrics] { return metrics.exposition(); });
        ListenAddress bound = setup->config.serve_listen;
        bound.port = endpoint->port();
        listening = listen_address_text(bound);
        log_line(LogLevel::info, "serve: health and metrics on http://" + listen_address_text(bound) +
                                     " (/healthz, /readyz, /metrics)");
    } catch (const std::exception& error) {
        log_line(LogLevel::error, "serve: no health and metrics endpoint: " + std::string(error.what()) +
                                      " (another process may hold the port; set serve.listen in " + setup->config.file +
                                      "); the exports run on");
    }
    StopOnSignal stop_on_signal;
    ReloadOnSignal reload_on_signal;
    scheduler.catch_up_missed(
        [setup](const ExportConfig& exp, Scheduler::Clock::time_point since) {
            return ran_since(setup->config, exp.name, since);
        },
        std::chrono::system_clock::now());
    scheduler.log_schedules();
    ServiceNotifier service_manager;  // systemd's Type=notify: a no-op when not started by systemd
    service_manager.ready("serving the scheduled exports");
    readiness.clear("scheduler");
    if (options.json) print.out(serve_start_json(setup->config, scheduler, listening));
    std::unique_ptr<StateStore> takeover_state;
    auto next_takeover_look = std::chrono::steady_clock::now();
    while (!g_stop) {
        if (g_reload.exchange(false)) {
            service_manager.reloading();
            if (auto reloaded = reload_setup(options)) {
                if (listen_address_text(reloaded->config.serve_listen) !=
                    listen_address_text(setup->config.serve_listen)) {
                    log_line(LogLevel::warn, "serve: serve.listen changed; the health and metrics endpoint keeps "
                                             "its address until serve restarts");
                }
                setup = std::move(reloaded);
                takeover_state.reset();  // the state may have moved
                SharedBudgets::process().use_state_file(setup->config.state_location);
                scheduler.replace(scheduled_exports(setup), runs_under(setup), std::chrono::system_clock::now());
                for (const auto& [name, next] : scheduler.next_runs()) metrics.declare_export(name);
                log_line(LogLevel::info, "serve: the new configuration is running");
                scheduler.log_schedules();
            }
            service_manager.ready("serving the scheduled exports");
        }
        scheduler.start_due(std::chrono::system_clock::now());
        if (std::chrono::steady_clock::now() >= next_takeover_look) {
            // A third of a lease: a run is taken over within about 1.3 leases of its holder's last renewal.
            next_takeover_look = std::chrono::steady_clock::now() +
                                 std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1),
                                                                               setup->config.state_options.lease / 3);
            take_over_abandoned_runs(setup->config, scheduler, takeover_state);
        }
        service_manager.alive();
        for (const auto& [name, next] : scheduler.next_runs()) metrics.next_run(name, next);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    readiness.block("scheduler", "stopping: running exports are finishing their batches in flight");
    service_manager.stopping();
    log_line(LogLevel::info, "serve: stopping; running exports finish their batches in flight and save their state");
    scheduler.wait_for_runs();
    Notifier::process().finish(kNotifyWaitAtExit);
    return kExitOk;
}

}  // namespace segpush

namespace segpush {

int state_migrate(const Options& options, Printer& print) {
    if (options.words.size() != 2) return usage_error(print, "state migrate takes no arguments");
    const auto config = history_config(options, print);
    if (!config) return kExitUsage;
    StateStore::SchemaVersions versions;
    std::string backend;
    try {
        const auto state = open_state(*config);
        versions = state->schema_versions();
        backend = state->backend_name();
    } catch (const std::exception& error) {
        print.err("segpush: " + std::string(error.what()) + "\n");
        return kExitFailure;
    }
    if (options.json) {
        rapidjson::Document document(rapidjson::kObjectType);
        auto& alloc = document.GetAllocator();
        document.AddMember("state", rapidjson::Value(config->state_shown.c_str(), alloc), alloc);
        document.AddMember("backend", rapidjson::Value(backend.c_str(), alloc), alloc);
        document.AddMember("from_version", versions.found, alloc);
        document.AddMember("to_version", versions.current, alloc);
        print.out(json_text(document));
        return kExitOk;
    }
    const std::string where = backend + " state " + config->state_shown;
    if (versions.found == versions.current) {
        print.out(where + ": schema version " + std::to_string(versions.current) + ", already this segpush's\n");
    } else if (versions.found == 0) {
        print.out(where + ": schema created at version " + std::to_string(versions.current) + "\n");
    } else {
        print.out(where + ": schema migrated from version " + std::to_string(versions.found) + " to " +
                  std::to_string(versions.current) + "\n");
    }
    return kExitOk;
}

}  // namespace segpush
