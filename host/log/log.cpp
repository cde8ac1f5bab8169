#include "log/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

#include "secrets/redactor.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace {

LogLevel threshold_from_environment() {
    const char* value = std::getenv("SEGPUSH_LOG_LEVEL");
    if (!value) return LogLevel::info;
    if (std::strcmp(value, "debug") == 0) return LogLevel::debug;
    if (std::strcmp(value, "warn") == 0) return LogLevel::warn;
    if (std::strcmp(value, "error") == 0) return LogLevel::error;
    return LogLevel::info;
}

std::atomic<int> g_threshold{static_cast<int>(threshold_from_environment())};
std::mutex g_write_mutex;

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "?";
}

}  // namespace

void set_log_threshold(LogLevel level) { g_threshold = static_cast<int>(level); }

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_threshold.load(); }

void log_line(LogLevel level, const std::string& message) {
    if (!log_enabled(level)) return;
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    const std::string clean = printable(Redactor::instance().scrub(message));
    std::lock_guard<std::mutex> lock(g_write_mutex);
    std::fprintf(stderr, "%s.%03dZ %-5s %s\n", stamp, static_cast<int>(millis), level_name(level), clean.c_str());
}

}  // namespace segpush
