// What the CLI's commands share: parsed options, redacting output, and loading a checked
// configuration with its plugins.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "config/diagnostics.hpp"
#include "config/model.hpp"
#include "plugins/registry.hpp"
#include "secrets/redactor.hpp"
#include "text/suggest.hpp"

namespace segpush {

struct Options {
    std::string config_path;
    std::optional<std::string> plugin_dir;
    bool help = false;
    bool json = false;
    bool dry_run = false;
    bool full = false;
    std::optional<int> limit;
    std::optional<int> show;  // export run --dry-run --show N: members shown per class
    bool allow_mass_change = false;
    bool retry_rejected = false;
    std::optional<std::string> log_format;  // --log-format; SEGPUSH_LOG_FORMAT when not given
    std::vector<std::string> words;
};

// Everything a command prints goes through the secret redactor.
class Printer {
public:
    Printer(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}
    void out(const std::string& text) { out_ << printable(Redactor::instance().scrub(text)) << std::flush; }
    void err(const std::string& text) { err_ << printable(Redactor::instance().scrub(text)) << std::flush; }

private:
    std::ostream& out_;
    std::ostream& err_;
};

// Prints the message and where to read the usage (the command's --help when `command` is given).
int usage_error(Printer& print, const std::string& message, const std::string& command = "");
void print_diagnostics(Printer& print, const Diagnostics& diagnostics);

// The configuration, read and checked against its plugins.
struct CheckedSetup {
    Config config;
    PluginRegistry registry;
};

// Reads the configuration and loads its plugins, checking everything `config check` checks.
// Problems (errors and warnings) go to `diagnostics`; nullopt when there is any error.
std::optional<CheckedSetup> load_checked(const Options& options, Diagnostics& diagnostics);

// The same, printing every problem; nullopt (after printing) on any error.
std::optional<CheckedSetup> load_checked_or_report(const Options& options, Printer& print);

// Commands that run exports and read their history (run_commands.cpp).
int export_run(const Options& options, Printer& print);
int runs_list(const Options& options, Printer& print);
int runs_show(const Options& options, Printer& print);
int serve(const Options& options, Printer& print);
int forget(const Options& options, Printer& print);
int state_migrate(const Options& options, Printer& print);

}  // namespace segpush
