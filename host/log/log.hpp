#pragma once

#include <string>

namespace segpush {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// One line to stderr with a timestamp and level; secrets are scrubbed. Lines below the
// threshold (default info; SEGPUSH_LOG_LEVEL=debug|info|warn|error) are dropped.
void log_line(LogLevel level, const std::string& message);
void set_log_threshold(LogLevel level);
bool log_enabled(LogLevel level);

}  // namespace segpush
