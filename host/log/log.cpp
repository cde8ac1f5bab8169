#include "log/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "secrets/redactor.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace {

const std::vector<std::string> kLevelNames = {"debug", "info", "warn", "error"};
const std::vector<std::string> kFormatNames = {"text", "json"};

// Library code and tests log before (or without) configure_logging: a name that does not parse
// keeps the default here, and the CLI refuses it at start-up.
LogLevel threshold_from_environment() {
    const char* value = std::getenv("SEGPUSH_LOG_LEVEL");
    return value ? log_level_named(value).value_or(LogLevel::info) : LogLevel::info;
}

std::atomic<int> g_threshold{static_cast<int>(threshold_from_environment())};
std::atomic<int> g_format{static_cast<int>(LogFormat::text)};
static_assert(std::atomic<int>::is_always_lock_free, "the format is read in signal handlers");
std::mutex g_write_mutex;

thread_local std::string t_export;
thread_local int64_t t_run_id = 0;

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "?";
}

// The length of the valid UTF-8 sequence starting at `at`, or 0 when it is not one.
size_t utf8_sequence_length(const std::string& text, size_t at) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) length = 2;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;  // no UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (at + length > text.size()) return 0;
    if (byte(at + 1) < low || byte(at + 1) > high) return 0;
    for (size_t i = 2; i < length; ++i) {
        if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) return 0;
    }
    return length;
}

// `text` as a JSON string literal. Bytes that are not UTF-8 (a segment in Latin-1, say) become
// U+FFFD, so every line stays valid JSON whatever a message quotes.
std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (size_t i = 0; i < text.size();) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            out += escaped;
        } else if (c >= 0x80) {
            const size_t length = utf8_sequence_length(text, i);
            if (length == 0) {
                out += "\\ufffd";
                ++i;
                continue;
            }
            out.append(text, i, length);
            i += length;
            continue;
        } else {
            out += static_cast<char>(c);
        }
        ++i;
    }
    return out + "\"";
}

// Lines logged outside a run's scope (the scheduler's, on serve's main thread) name their
// export the way every export's line starts: "export NAME: ...".
std::string export_named_by(const std::string& message) {
    static const std::string kPrefix = "export ";
    if (message.compare(0, kPrefix.size(), kPrefix) != 0) return "";
    const size_t colon = message.find(':', kPrefix.size());
    if (colon == std::string::npos || colon == kPrefix.size()) return "";
    const std::string name = message.substr(kPrefix.size(), colon - kPrefix.size());
    return name.find_first_of(" \t\n") == std::string::npos ? name : "";
}

std::string utc_now_text() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char text[48];
    std::snprintf(text, sizeof text, "%s.%03dZ", stamp, static_cast<int>(millis));
    return text;
}

}  // namespace

void set_log_threshold(LogLevel level) { g_threshold = static_cast<int>(level); }

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_threshold.load(); }

void set_log_format(LogFormat format) { g_format = static_cast<int>(format); }

LogFormat current_log_format() { return static_cast<LogFormat>(g_format.load()); }

const std::vector<std::string>& log_level_names() { return kLevelNames; }

const std::vector<std::string>& log_format_names() { return kFormatNames; }

std::optional<LogLevel> log_level_named(const std::string& name) {
    for (size_t i = 0; i < kLevelNames.size(); ++i) {
        if (name == kLevelNames[i]) return static_cast<LogLevel>(i);
    }
    return std::nullopt;
}

std::optional<LogFormat> log_format_named(const std::string& name) {
    if (name == "text") return LogFormat::text;
    if (name == "json") return LogFormat::json;
    return std::nullopt;
}

std::string configure_logging(const std::optional<std::string>& format_option) {
    if (const char* level_text = std::getenv("SEGPUSH_LOG_LEVEL")) {
        const auto level = log_level_named(level_text);
        if (!level) {
            return "SEGPUSH_LOG_LEVEL is '" + printable(level_text) + "', which is not a log level" +
                   did_you_mean(level_text, kLevelNames) + "; use one of " + join(kLevelNames);
        }
        set_log_threshold(*level);
    }
    const char* format_env = std::getenv("SEGPUSH_LOG_FORMAT");
    if (format_option || format_env) {
        const std::string name = format_option ? *format_option : format_env;
        const std::string source = format_option ? "--log-format" : "SEGPUSH_LOG_FORMAT";
        const auto format = log_format_named(name);
        if (!format) {
            return source + " is '" + printable(name) + "', which is not a log format" +
                   did_you_mean(name, kFormatNames) + "; use one of " + join(kFormatNames);
        }
        set_log_format(*format);
    }
    return "";
}

std::string format_log_line(LogFormat format, const std::string& time_utc, LogLevel level,
                            const std::string& export_name, int64_t run_id, const std::string& message) {
    const Redactor& redactor = Redactor::instance();
    if (format == LogFormat::text) {
        char head[64];
        std::snprintf(head, sizeof head, "%s %-5s ", time_utc.c_str(), level_name(level));
        return head + printable(redactor.scrub(message));
    }
    std::string line = "{\"time\":" + json_string(time_utc) + ",\"level\":" + json_string(level_name(level));
    if (!export_name.empty()) line += ",\"export\":" + json_string(redactor.scrub(export_name));
    if (run_id > 0) line += ",\"run_id\":" + std::to_string(run_id);
    return line + ",\"message\":" + json_string(redactor.scrub(message)) + "}";
}

void log_line(LogLevel level, const std::string& message) {
    if (!log_enabled(level)) return;
    const std::string export_name = t_export.empty() ? export_named_by(message) : t_export;
    const std::string line = format_log_line(static_cast<LogFormat>(g_format.load()), utc_now_text(), level,
                                             export_name, t_export.empty() ? 0 : t_run_id, message);
    std::lock_guard<std::mutex> lock(g_write_mutex);
    std::fprintf(stderr, "%s\n", line.c_str());
}

LogRunScope::LogRunScope(const std::string& export_name) : previous_export_(t_export), previous_run_id_(t_run_id) {
    t_export = export_name;
    t_run_id = 0;
}

LogRunScope::LogRunScope(const Context& context) : previous_export_(t_export), previous_run_id_(t_run_id) {
    t_export = context.export_name;
    t_run_id = context.run_id;
}

LogRunScope::Context LogRunScope::current() { return {t_export, t_run_id}; }

LogRunScope::~LogRunScope() {
    t_export = previous_export_;
    t_run_id = previous_run_id_;
}

void LogRunScope::set_run_id(int64_t run_id) {
    if (!t_export.empty()) t_run_id = run_id;
}

}  // namespace segpush
