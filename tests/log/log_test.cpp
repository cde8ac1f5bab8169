// Log lines as text and as JSON: fields, escaping, secrets scrubbed, and unknown levels and
// formats refused rather than silently replaced.
#include <rapidjson/document.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "log/log.hpp"
#include "secrets/redactor.hpp"
#include "support/captured_stderr.hpp"
#include "support/process.hpp"  // lines_of
#include "support/temp_dir.hpp"

using namespace segpush;
using namespace segpush::test;

namespace {

rapidjson::Document parsed(const std::string& line) {
    rapidjson::Document document;
    document.Parse(line.c_str(), line.size());
    INFO(line);
    REQUIRE_FALSE(document.HasParseError());
    REQUIRE(document.IsObject());
    return document;
}

// Sets an environment variable for one test, restoring what was there.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) previous_ = old;
        if (value) ::setenv(name, value, 1);
        else ::unsetenv(name);
    }
    ~ScopedEnv() {
        if (previous_.empty()) ::unsetenv(name_);
        else ::setenv(name_, previous_.c_str(), 1);
    }

private:
    const char* name_;
    std::string previous_;
};

// Puts the process's logging back as the tests found it.
struct DefaultLogging {
    ~DefaultLogging() {
        set_log_format(LogFormat::text);
        set_log_threshold(LogLevel::info);
    }
};

}  // namespace

TEST_CASE("log: a text line is time, level and message") {
    CHECK(format_log_line(LogFormat::text, "2026-01-31T12:00:00.123Z", LogLevel::warn, "vip", 7, "slow\x1b[2J") ==
          "2026-01-31T12:00:00.123Z warn  slow\\x1b[2J");
}

TEST_CASE("log: a JSON line is one object with time, level, export, run id and message") {
    const std::string line = format_log_line(LogFormat::json, "2026-01-31T12:00:00.123Z", LogLevel::error, "vip", 42,
                                             "line one\nline \"two\"\t\x01 caf\xc3\xa9 \xff end");
    CHECK(line.find('\n') == std::string::npos);
    const auto document = parsed(line);
    CHECK(std::string(document["time"].GetString()) == "2026-01-31T12:00:00.123Z");
    CHECK(std::string(document["level"].GetString()) == "error");
    CHECK(std::string(document["export"].GetString()) == "vip");
    CHECK(document["run_id"].GetInt64() == 42);
    // Control characters escaped, UTF-8 kept, a byte that is not UTF-8 replaced.
    CHECK(std::string(document["message"].GetString()) == "line one\nline \"two\"\t\x01 caf\xc3\xa9 \xef\xbf\xbd end");

    const auto outside_a_run = parsed(format_log_line(LogFormat::json, "t", LogLevel::info, "", 0, "serve: stopping"));
    CHECK_FALSE(outside_a_run.HasMember("export"));
    CHECK_FALSE(outside_a_run.HasMember("run_id"));
}

TEST_CASE("log: secrets are scrubbed from JSON lines in every form") {
    const std::string secret = "tok\"en\\with-quote";
    Redactor::instance().add_secret(secret);
    const std::string line = format_log_line(LogFormat::json, "t", LogLevel::warn, "vip", 1,
                                             "server said: denied for " + secret +
                                                 " and {\"api_key\":\"tok\\\"en\\\\"
                                                 "with-quote\"}");
    INFO(line);
    CHECK(line.find("tok") == std::string::npos);
    CHECK(std::string(parsed(line)["message"].GetString()) == "server said: denied for *** and {\"api_key\":\"***\"}");
}

TEST_CASE("log: lines logged in a run's scope carry its export and run id") {
    DefaultLogging restore;
    TempDir dir;
    set_log_format(LogFormat::json);
    const std::string output = captured_stderr(dir, [] {
        log_line(LogLevel::info, "serve: starting");
        log_line(LogLevel::info, "export nightly: next run 2026-01-31 03:00 UTC");
        {
            const LogRunScope scope("vip");
            log_line(LogLevel::info, "[activecampaign] connected");
            LogRunScope::set_run_id(9);
            log_line(LogLevel::warn, "export vip: retrying");
        }
        log_line(LogLevel::debug, "dropped below the threshold");
    });
    const auto lines = lines_of(output);
    REQUIRE(lines.size() == 4);
    const auto serve = parsed(lines[0]);
    CHECK_FALSE(serve.HasMember("export"));
    // Outside a scope, a line about an export names it the way every such line starts.
    CHECK(std::string(parsed(lines[1])["export"].GetString()) == "nightly");
    const auto connected = parsed(lines[2]);
    CHECK(std::string(connected["export"].GetString()) == "vip");
    CHECK_FALSE(connected.HasMember("run_id"));
    const auto retrying = parsed(lines[3]);
    CHECK(retrying["run_id"].GetInt64() == 9);
    CHECK(std::string(retrying["level"].GetString()) == "warn");
    CHECK(std::string(retrying["time"].GetString()).size() == std::string("2026-01-31T12:00:00.123Z").size());
    CHECK(std::string(retrying["time"].GetString()).back() == 'Z');
}

TEST_CASE("log: an unknown level or format is refused, naming the known ones") {
    DefaultLogging restore;
    {
        ScopedEnv level("SEGPUSH_LOG_LEVEL", "warning");
        ScopedEnv format("SEGPUSH_LOG_FORMAT", nullptr);
        CHECK(configure_logging(std::nullopt) ==
              "SEGPUSH_LOG_LEVEL is 'warning', which is not a log level (did you mean 'warn'?); use one of debug, "
              "info, warn, error");
    }
    {
        ScopedEnv level("SEGPUSH_LOG_LEVEL", nullptr);
        ScopedEnv format("SEGPUSH_LOG_FORMAT", "jsonl");
        CHECK(configure_logging(std::nullopt) ==
              "SEGPUSH_LOG_FORMAT is 'jsonl', which is not a log format (did you mean 'json'?); use one of text, json");
        // The option wins over the variable.
        CHECK(configure_logging(std::string("json")).empty());
        CHECK(configure_logging(std::string("yaml")) ==
              "--log-format is 'yaml', which is not a log format; use one of text, json");
    }
    {
        ScopedEnv level("SEGPUSH_LOG_LEVEL", "error");
        ScopedEnv format("SEGPUSH_LOG_FORMAT", "json");
        CHECK(configure_logging(std::nullopt).empty());
        CHECK_FALSE(log_enabled(LogLevel::warn));
        CHECK(log_enabled(LogLevel::error));
    }
    CHECK(log_level_names() == std::vector<std::string>{"debug", "info", "warn", "error"});
}
