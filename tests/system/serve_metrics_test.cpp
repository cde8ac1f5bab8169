// What `serve` offers its supervisor and monitoring: /healthz, /readyz and /metrics on its listen
// address (the metrics read by Prometheus's own text parser and held against the run's summary),
// JSON log lines, and refusing an unknown log level or format at start-up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "support/export_fixture.hpp"
#include "support/process.hpp"  // lines_of

using namespace segpush::test;

namespace {

using Clock = std::chrono::steady_clock;

struct HttpAnswer {
    int status = 0;
    std::string body;
};

// One GET on 127.0.0.1, the connection closed after it; status 0 when nothing answered.
HttpAnswer http_get(int port, const std::string& path) {
    HttpAnswer answer;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
        const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        std::string text;
        char buffer[4096];
        for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) text.append(buffer, static_cast<size_t>(n));
        if (text.rfind("HTTP/1.1 ", 0) == 0) answer.status = std::stoi(text.substr(9, 3));
        const size_t body = text.find("\r\n\r\n");
        if (body != std::string::npos) answer.body = text.substr(body + 4);
    }
    ::close(fd);
    return answer;
}

// python3-prometheus-client is a Debian package: Debian's interpreter imports it, whatever
// python3 comes first on PATH.
std::string python_with_prometheus_client(const TempDir& dir) {
    for (const char* python : {"/usr/bin/python3", "python3"}) {
        if (run_shell(dir.path().string(), std::string(python) + " -c 'import prometheus_client'").exit_code == 0) {
            return python;
        }
    }
    FAIL("python3-prometheus-client is not installed (./build.sh installs it)");
    return "";
}

// The samples of an exposition as Prometheus's own text parser reads them, keyed by
// name{label="value",...} with the labels sorted.
std::map<std::string, double> parsed_metrics(const ExportFixture& f, const std::string& exposition) {
    f.dir.write("metrics.txt", exposition);
    f.dir.write("parse_metrics.py", R"(import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert family.documentation, family.name + " has no HELP"
    assert family.type in ("counter", "gauge"), family.name + " has type " + family.type
    for sample in family.samples:
        labels = ",".join('%s="%s"' % item for item in sorted(sample.labels.items()))
        print("%s{%s} %r" % (sample.name, labels, sample.value))
)");
    const Run parse = run_shell(f.dir.path().string(),
                                python_with_prometheus_client(f.dir) + " parse_metrics.py metrics.txt");
    INFO(exposition << parse.err);
    REQUIRE(parse.exit_code == 0);
    std::map<std::string, double> samples;
    std::istringstream lines(parse.out);
    for (std::string line; std::getline(lines, line);) {
        const size_t space = line.rfind(' ');
        samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return samples;
}

// Waits for the log line that gives the endpoint's address; returns its port.
int endpoint_port(BackgroundProcess& serve, const std::string& log_file) {
    const std::regex address(R"(health and metrics on http://127\.0\.0\.1:([0-9]+))");
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline && serve.running()) {
        std::smatch match;
        const std::string log = read_file(log_file);
        if (std::regex_search(log, match, address)) return std::stoi(match[1]);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("serve did not say where it listens:\n" << read_file(log_file));
    return 0;
}

rapidjson::Document json_of(const std::string& text) {
    rapidjson::Document document;
    document.Parse(text.c_str(), text.size());
    INFO(text);
    REQUIRE_FALSE(document.HasParseError());
    return document;
}

// "2026-01-31T12:00:00Z" as Unix time.
double unix_time(const std::string& utc) {
    std::tm parts{};
    REQUIRE(strptime(utc.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts) != nullptr);
    return static_cast<double>(timegm(&parts));
}

}  // namespace

TEST_CASE("serve: /metrics read by the Prometheus parser matches the run's summary, health and readiness answer") {
    Sandbox::Options options;
    // Refused by the destination: member7. Throttled: the first two requests of the run.
    options.config_json = R"({"rate_scale": 20, "fail_emails": ["member7@example.com"], "storm_429": 2})";
    ExportFixture f(options);
    auto profiles = make_profiles(40);
    profiles.push_back({"not-an-email", "Bad", "Row", ""});  // invalid: refused before sending
    f.write_segment(profiles);
    // member3 unsubscribed at the destination earlier: suppressed.
    f.sandbox.post("/__sandbox/unsubscribe", R"({"email": "member3@example.com", "list": "1", "via": "campaign"})");
    f.dir.write("segpush.yaml", f.config_yaml("  vip: { path: vip.csv }\n", R"(  to_ac:
    connection: ac
    segments: [vip]
    settings: { list_id: 1 }
    mapping: { email: Email, first_name: FirstName, last_name: LastName, phone: Phone }
    schedule: "* * * * *"
)",
                                              kPacingAtScale20) +
                                    "serve:\n  listen: 127.0.0.1:0\n");
    auto env = f.env();
    env.push_back("SEGPUSH_LOG_FORMAT=json");
    const std::string log_file = f.dir.file("serve.err");
    BackgroundProcess serve(f.segpush_argv("serve"), f.dir.file("serve.out"), log_file, env);
    const int port = endpoint_port(serve, log_file);

    CHECK(http_get(port, "/healthz").status == 200);
    HttpAnswer ready;
    for (int i = 0; i < 50 && ready.status != 200; ++i) {  // ready once the scheduler's loop runs
        ready = http_get(port, "/readyz");
        if (ready.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(ready.status == 200);
    CHECK(http_get(port, "/nothing-here").status == 404);

    const double started = static_cast<double>(std::time(nullptr));
    auto before = parsed_metrics(f, http_get(port, "/metrics").body);
    CHECK(before["segpush_runs_in_progress{export=\"to_ac\"}"] == 0);
    CHECK(before["segpush_runs_total{export=\"to_ac\",status=\"succeeded\"}"] == 0);
    CHECK(before["segpush_records_sent_total{export=\"to_ac\"}"] == 0);
    // Every minute: the next run is within the coming minute.
    const double next = before["segpush_next_run_timestamp_seconds{export=\"to_ac\"}"];
    CHECK(next > started - 1);
    CHECK(next <= started + 61);

    // The first run comes at the next whole minute.
    rapidjson::Document runs;
    const auto deadline = Clock::now() + std::chrono::seconds(100);
    while (Clock::now() < deadline && serve.running()) {
        runs = json_of(f.segpush("runs list --json").out);
        if (runs.IsArray() && !runs.Empty() && std::string(runs[0]["status"].GetString()) != "running") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    REQUIRE(runs.IsArray());
    REQUIRE_FALSE(runs.Empty());
    const auto& run = runs[runs.Size() - 1];  // the first run (newest first)
    INFO(read_file(log_file));
    REQUIRE(std::string(run["status"].GetString()) == "succeeded_with_rejections");
    const auto& counts = run["counts"];
    CHECK(counts["sent"].GetInt64() == 40);  // the valid members, member3 included
    CHECK(counts["rejected"].GetInt64() == 1);
    CHECK(counts["invalid"].GetInt64() == 1);
    CHECK(counts["suppressed"].GetInt64() == 1);

    // The run's summary is saved before serve counts the run: wait for the count.
    std::map<std::string, double> after;
    for (int i = 0; i < 50; ++i) {
        after = parsed_metrics(f, http_get(port, "/metrics").body);
        if (after["segpush_runs_total{export=\"to_ac\",status=\"succeeded_with_rejections\"}"] >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(after["segpush_runs_total{export=\"to_ac\",status=\"succeeded_with_rejections\"}"] == runs.Size());
    CHECK(after["segpush_runs_total{export=\"to_ac\",status=\"succeeded\"}"] == 0);
    CHECK(after["segpush_runs_total{export=\"to_ac\",status=\"failed_permanently\"}"] == 0);
    for (const char* counter : {"sent", "resumed", "accepted", "rejected", "invalid", "suppressed", "removed",
                                "pending", "rejected_retried", "rejected_held"}) {
        INFO(counter);
        CHECK(after["segpush_records_" + std::string(counter) + "_total{export=\"to_ac\"}"] ==
              static_cast<double>(counts[counter].GetInt64()));
    }
    const double run_started = unix_time(run["started_at"].GetString());
    const double run_finished = unix_time(run["finished_at"].GetString());
    const double last_success = after["segpush_last_success_timestamp_seconds{export=\"to_ac\"}"];
    CHECK(last_success >= run_finished);
    CHECK(last_success < run_finished + 5);
    const double duration = after["segpush_last_run_duration_seconds{export=\"to_ac\"}"];
    CHECK(duration > 0);
    CHECK(duration <= run_finished - run_started + 1);
    // The two 429s, each retried, as the plugin reported them.
    CHECK(after["segpush_destination_retries_total{code=\"429\",destination=\"activecampaign\"}"] == 2);
    CHECK(after["segpush_next_run_timestamp_seconds{export=\"to_ac\"}"] > run_started);

    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);

    // Every log line is one JSON object; the run's lines name the export and the run.
    const std::string log = read_file(log_file);
    CHECK(log.find(f.sandbox.api_key()) == std::string::npos);
    const int64_t run_id = run["id"].GetInt64();
    bool saw_outcome = false;
    for (const auto& line : lines_of(log)) {
        const auto entry = json_of(line);
        REQUIRE(entry.IsObject());
        CHECK(entry.HasMember("time"));
        CHECK(entry.HasMember("level"));
        CHECK(entry.HasMember("message"));
        const std::string message = entry["message"].GetString();
        if (message.find("run #" + std::to_string(run_id) + " succeeded") != std::string::npos) {
            saw_outcome = true;
            REQUIRE((entry.HasMember("export") && entry.HasMember("run_id")));
            CHECK(std::string(entry["export"].GetString()) == "to_ac");
            CHECK(entry["run_id"].GetInt64() == run_id);
            // A run with refused rows is worth a look: a warning, not news.
            CHECK(std::string(entry["level"].GetString()) == "warn");
            CHECK(std::regex_match(std::string(entry["time"].GetString()),
                                   std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
        }
        if (message.find("throttling") != std::string::npos) CHECK(entry.HasMember("export"));
    }
    CHECK(saw_outcome);
}

TEST_CASE("log: an unknown log level or format stops segpush at start-up with exit 2 and the known names") {
    Sandbox::Options options;
    ExportFixture f(options);
    f.write_segment(make_profiles(1));
    f.write_config();
    const std::string segpush = std::string(SEGPUSH_BINARY) + " --config segpush.yaml ";
    const Run level = run_shell(f.dir.path().string(), "env SEGPUSH_LOG_LEVEL=warning " + segpush + "config check");
    CHECK(level.exit_code == 2);
    CHECK_THAT(level.err, Catch::Contains("SEGPUSH_LOG_LEVEL is 'warning', which is not a log level (did you mean "
                                          "'warn'?); use one of debug, info, warn, error"));
    const Run format = run_shell(f.dir.path().string(), segpush + "--log-format yaml config check");
    CHECK(format.exit_code == 2);
    CHECK_THAT(format.err, Catch::Contains("--log-format is 'yaml', which is not a log format; use one of text, json"));
    const Run env_format = run_shell(f.dir.path().string(), "env SEGPUSH_LOG_FORMAT=JSON " + segpush + "config check");
    CHECK(env_format.exit_code == 2);
    CHECK_THAT(env_format.err, Catch::Contains("SEGPUSH_LOG_FORMAT is 'JSON'") && Catch::Contains("'json'"));
    // Nothing ran: serve would have logged its schedules, export run its run.
    CHECK(level.out.empty());
}

TEST_CASE("log: export run with --log-format json writes one object a line with its export and run id") {
    Sandbox::Options options;
    options.config_json = R"({"storm_429": 1})";  // one throttled request: a warning logged mid-run
    ExportFixture f(options);
    f.write_segment(make_profiles(5));
    f.write_config();
    const Run run = f.segpush("--log-format json export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Contains("Export vip_export, run #1: succeeded"));  // the summary stays text
    const auto lines = lines_of(run.err);
    REQUIRE_FALSE(lines.empty());
    bool saw_retry = false;
    for (const auto& line : lines) {
        const auto entry = json_of(line);
        REQUIRE(entry.IsObject());
        REQUIRE(entry.HasMember("export"));
        CHECK(std::string(entry["export"].GetString()) == "vip_export");
        if (std::string(entry["message"].GetString()).find("retrying") != std::string::npos) {
            saw_retry = true;
            CHECK(std::string(entry["level"].GetString()) == "warn");
            REQUIRE(entry.HasMember("run_id"));
            CHECK(entry["run_id"].GetInt64() == 1);
        }
    }
    CHECK(saw_retry);
    CHECK(run.err.find(f.sandbox.api_key()) == std::string::npos);
}
