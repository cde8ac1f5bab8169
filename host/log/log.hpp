#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segpush {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// text: "2026-01-31T12:00:00.123Z info  message", for people. json: one object a line,
// {"time", "level", "export", "run_id", "message"}, for log collectors; export and run_id are
// present when the line belongs to a run (see LogRunScope).
enum class LogFormat { text, json };

// One line to stderr with a timestamp and level; secrets are scrubbed. Lines below the
// threshold (default info) are dropped.
void log_line(LogLevel level, const std::string& message);
void set_log_threshold(LogLevel level);
bool log_enabled(LogLevel level);
void set_log_format(LogFormat format);
// Safe in a signal handler (a lock-free atomic).
LogFormat current_log_format();

// The names the level and format are given by (SEGPUSH_LOG_LEVEL, SEGPUSH_LOG_FORMAT, --log-format).
const std::vector<std::string>& log_level_names();
const std::vector<std::string>& log_format_names();
std::optional<LogLevel> log_level_named(const std::string& name);
std::optional<LogFormat> log_format_named(const std::string& name);

// Sets the threshold from SEGPUSH_LOG_LEVEL and the format from `format_option` (--log-format),
// else SEGPUSH_LOG_FORMAT. Returns what is wrong (an unknown name, with the known ones), or ""
// when both are fine: a misspelt level must not silently log at another one.
std::string configure_logging(const std::optional<std::string>& format_option);

// The line as written to stderr, without the newline: `time_utc` is RFC 3339 with milliseconds.
// The message and export are scrubbed of secrets and made printable here.
std::string format_log_line(LogFormat format, const std::string& time_utc, LogLevel level,
                            const std::string& export_name, int64_t run_id, const std::string& message);

// While alive, the lines this thread logs belong to export `export_name` (and, once known, to
// run `run_id`): JSON lines carry them as fields. Scopes nest; the inner one wins.
class LogRunScope {
public:
    struct Context {
        std::string export_name;  // empty outside a run's scope
        int64_t run_id = 0;       // 0 until known
    };

    explicit LogRunScope(const std::string& export_name);
    // Takes over another thread's context: a run's helper threads log as the run.
    explicit LogRunScope(const Context& context);
    ~LogRunScope();
    LogRunScope(const LogRunScope&) = delete;
    LogRunScope& operator=(const LogRunScope&) = delete;

    // The run this thread's scope is for, once the run history has given it an id; ignored
    // outside a scope.
    static void set_run_id(int64_t run_id);
    // This thread's context, to hand to the threads it starts.
    static Context current();

private:
    std::string previous_export_;
    int64_t previous_run_id_;
};

}  // namespace segpush
