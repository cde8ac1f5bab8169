// The metrics registry's exposition text, listen addresses, and the health and metrics endpoint
// answering on loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "service/http_endpoint.hpp"
#include "service/metrics.hpp"

using namespace segpush;

namespace {

// The exposition's lines for one metric family: its HELP and TYPE lines and every sample.
std::string family_lines(const std::string& exposition, const std::string& name) {
    std::string lines;
    size_t at = 0;
    while (at < exposition.size()) {
        const size_t end = exposition.find('\n', at);
        const std::string line = exposition.substr(at, end - at);
        at = end == std::string::npos ? exposition.size() : end + 1;
        const bool about = line.rfind("# HELP " + name + " ", 0) == 0 || line.rfind("# TYPE " + name + " ", 0) == 0 ||
                           line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0;
        if (about) lines += line + "\n";
    }
    return lines;
}

int connect_to(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{10, 0};  // a watchdog: every answer here comes in milliseconds
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

// Sends `request` as is and returns everything the endpoint answers until it closes.
std::string send_raw(uint16_t port, const std::string& request) {
    const int fd = connect_to(port);
    size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the endpoint may close on an oversized request before reading it all
        sent += static_cast<size_t>(n);
    }
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<size_t>(n));
    ::close(fd);
    return answer;
}

std::string get(uint16_t port, const std::string& path) {
    return send_raw(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

std::string status_line(const std::string& answer) { return answer.substr(0, answer.find("\r\n")); }

}  // namespace

TEST_CASE("service: a declared export exposes every family at zero with HELP and TYPE lines") {
    ServiceMetrics metrics;
    metrics.declare_export("vip");
    const std::string text = metrics.exposition();
    CHECK(family_lines(text, "segpush_runs_in_progress") ==
          "# HELP segpush_runs_in_progress Runs of the export going on now.\n"
          "# TYPE segpush_runs_in_progress gauge\n"
          "segpush_runs_in_progress{export=\"vip\"} 0\n");
    for (const char* status : {"succeeded", "succeeded_with_rejections", "failed_will_retry", "failed_permanently",
                               "cancelled", "skipped", "error"}) {
        CHECK_THAT(text,
                   Catch::Contains(std::string("segpush_runs_total{export=\"vip\",status=\"") + status + "\"} 0\n"));
    }
    for (const char* counter : {"sent", "resumed", "accepted", "rejected", "invalid", "suppressed", "removed",
                                "pending", "rejected_retried", "rejected_held"}) {
        const std::string name = std::string("segpush_records_") + counter + "_total";
        INFO(name);
        CHECK_THAT(family_lines(text, name), Catch::StartsWith("# HELP " + name + " ") &&
                                                 Catch::Contains("# TYPE " + name + " counter\n") &&
                                                 Catch::EndsWith(name + "{export=\"vip\"} 0\n"));
    }
    // No run has ended and nothing is scheduled: the gauges that would mean a time have no sample.
    CHECK(family_lines(text, "segpush_last_success_timestamp_seconds") ==
          "# HELP segpush_last_success_timestamp_seconds When the export's last run that got to its end "
          "(succeeded, with or without rejections) ended (Unix time).\n"
          "# TYPE segpush_last_success_timestamp_seconds gauge\n");
    CHECK(family_lines(text, "segpush_destination_retries_total").find("segpush_destination_retries_total{") ==
          std::string::npos);
    CHECK(text.back() == '\n');
}

TEST_CASE("service: finished runs add their counts, and set the duration and the last success") {
    ServiceMetrics metrics;
    const auto when = ServiceMetrics::Clock::time_point(std::chrono::milliseconds(1767225600250));
    RunCounts counts;
    counts.sent = 300;
    counts.accepted = 290;
    counts.rejected = 4;
    counts.invalid = 2;
    counts.suppressed = 6;
    metrics.run_started("vip");
    CHECK_THAT(metrics.exposition(), Catch::Contains("segpush_runs_in_progress{export=\"vip\"} 1\n"));
    metrics.run_finished("vip", RunStatus::succeeded, counts, 12.5, when);
    metrics.run_started("vip");
    metrics.run_finished("vip", RunStatus::failed_retryable, counts, 3.25, when + std::chrono::minutes(1));
    metrics.run_started("vip");
    metrics.run_not_started("vip", "skipped");
    const std::string text = metrics.exposition();
    CHECK_THAT(text, Catch::Contains("segpush_runs_in_progress{export=\"vip\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("segpush_runs_total{export=\"vip\",status=\"succeeded\"} 1\n") &&
                         Catch::Contains("segpush_runs_total{export=\"vip\",status=\"failed_will_retry\"} 1\n") &&
                         Catch::Contains("segpush_runs_total{export=\"vip\",status=\"skipped\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("segpush_records_sent_total{export=\"vip\"} 600\n") &&
                         Catch::Contains("segpush_records_accepted_total{export=\"vip\"} 580\n") &&
                         Catch::Contains("segpush_records_rejected_total{export=\"vip\"} 8\n") &&
                         Catch::Contains("segpush_records_invalid_total{export=\"vip\"} 4\n") &&
                         Catch::Contains("segpush_records_suppressed_total{export=\"vip\"} 12\n"));
    // The last run's duration, and the end of the last run that succeeded (not of the last run).
    CHECK_THAT(text, Catch::Contains("segpush_last_run_duration_seconds{export=\"vip\"} 3.250\n"));
    CHECK_THAT(text, Catch::Contains("segpush_last_success_timestamp_seconds{export=\"vip\"} 1767225600.250\n"));
}

TEST_CASE("service: retries are counted by destination and code, next runs by export") {
    ServiceMetrics metrics;
    metrics.retry("activecampaign", 429);
    metrics.retry("activecampaign", 429);
    metrics.retry("activecampaign", 0);
    metrics.retry("file", 503);
    metrics.next_run("vip", ServiceMetrics::Clock::time_point(std::chrono::seconds(1767225660)));
    const std::string text = metrics.exposition();
    CHECK(family_lines(text, "segpush_destination_retries_total")
              .substr(family_lines(text, "segpush_destination_retries_total").find("# TYPE")) ==
          "# TYPE segpush_destination_retries_total counter\n"
          "segpush_destination_retries_total{destination=\"activecampaign\",code=\"0\"} 1\n"
          "segpush_destination_retries_total{destination=\"activecampaign\",code=\"429\"} 2\n"
          "segpush_destination_retries_total{destination=\"file\",code=\"503\"} 1\n");
    CHECK_THAT(text, Catch::Contains("segpush_next_run_timestamp_seconds{export=\"vip\"} 1767225660\n"));
}

TEST_CASE("service: a plugin reporting ever new codes grows the exposition only up to a bound") {
    ServiceMetrics metrics;
    for (int32_t code = 1; code <= 1000; ++code) metrics.retry("chatty", code);
    metrics.retry("chatty", 1);  // a code already counted keeps its own series
    const std::string text = metrics.exposition();
    size_t series = 0;
    for (size_t at = text.find("segpush_destination_retries_total{"); at != std::string::npos;
         at = text.find("segpush_destination_retries_total{", at + 1)) {
        ++series;
    }
    CHECK(series == ServiceMetrics::kMaxCodesPerDestination + 1);
    CHECK_THAT(text, Catch::Contains("segpush_destination_retries_total{destination=\"chatty\",code=\"1\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("segpush_destination_retries_total{destination=\"chatty\",code=\"other\"} 968\n"));
}

TEST_CASE("service: label values escape backslash, double quote and newline, numbers print plainly") {
    CHECK(exposition_label_value(R"(a\b"c)" + std::string("\nd")) == R"(a\\b\"c\nd)");
    CHECK(exposition_label_value("plain_name-1") == "plain_name-1");
    ServiceMetrics metrics;
    metrics.declare_export("we\"ird\\");
    CHECK_THAT(metrics.exposition(), Catch::Contains("segpush_runs_in_progress{export=\"we\\\"ird\\\\\"} 0\n"));
    CHECK(exposition_number(0) == "0");
    CHECK(exposition_number(42) == "42");
    CHECK(exposition_number(0.5) == "0.500");
    CHECK(exposition_number(1767225600.25) == "1767225600.250");
}

TEST_CASE("service: listen addresses are numeric IPv4 or bracketed IPv6 with a port") {
    std::string problem;
    auto address = parse_listen_address("127.0.0.1:9464", problem);
    REQUIRE(address);
    CHECK(address->host == "127.0.0.1");
    CHECK(address->port == 9464);
    address = parse_listen_address("[::1]:0", problem);
    REQUIRE(address);
    CHECK(address->host == "::1");
    CHECK(address->port == 0);
    CHECK(listen_address_text(*address) == "[::1]:0");
    CHECK(listen_address_text(ListenAddress{}) == "127.0.0.1:9464");

    CHECK_FALSE(parse_listen_address("localhost:9464", problem));
    CHECK_THAT(problem, Catch::Contains("'localhost' is not an IP address"));
    CHECK_FALSE(parse_listen_address("::1:9464", problem));
    CHECK_THAT(problem, Catch::Contains("[::1]"));
    CHECK_FALSE(parse_listen_address("127.0.0.1:65536", problem));
    CHECK_THAT(problem, Catch::Contains("port '65536' is not a number from 0 to 65535"));
    CHECK_FALSE(parse_listen_address("127.0.0.1:http", problem));
    CHECK_FALSE(parse_listen_address("9464", problem));
    CHECK_THAT(problem, Catch::Contains("expected HOST:PORT"));
}

TEST_CASE("service: the endpoint answers healthz, readyz with its reasons, and metrics, GET only") {
    Readiness readiness;
    readiness.block("scheduler", "the scheduler is not running yet");
    int scrapes = 0;
    HttpEndpoint endpoint(ListenAddress{"127.0.0.1", 0}, readiness, [&scrapes] {
        ++scrapes;
        return std::string("segpush_example 1\n");
    });
    const uint16_t port = endpoint.port();
    REQUIRE(port != 0);

    const std::string health = get(port, "/healthz");
    CHECK(status_line(health) == "HTTP/1.1 200 OK");
    CHECK_THAT(health, Catch::EndsWith("\r\n\r\nok\n"));

    std::string ready = get(port, "/readyz");
    CHECK(status_line(ready) == "HTTP/1.1 503 Service Unavailable");
    CHECK_THAT(ready, Catch::EndsWith("not ready: the scheduler is not running yet\n"));
    readiness.clear("scheduler");
    ready = get(port, "/readyz");
    CHECK(status_line(ready) == "HTTP/1.1 200 OK");
    CHECK_THAT(ready, Catch::EndsWith("ready\n"));

    const std::string metrics = get(port, "/metrics");
    CHECK(status_line(metrics) == "HTTP/1.1 200 OK");
    CHECK_THAT(metrics, Catch::Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") &&
                            Catch::EndsWith("\r\n\r\nsegpush_example 1\n"));
    CHECK(scrapes == 1);

    CHECK(status_line(get(port, "/")) == "HTTP/1.1 404 Not Found");
    CHECK(status_line(get(port, "/metrics/../etc/passwd")) == "HTTP/1.1 404 Not Found");
    const std::string post = send_raw(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(status_line(post) == "HTTP/1.1 405 Method Not Allowed");
    CHECK_THAT(post, Catch::Contains("Allow: GET\r\n"));
    CHECK(status_line(send_raw(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) ==
          "HTTP/1.1 405 Method Not Allowed");
    CHECK(scrapes == 1);
}

TEST_CASE("service: the endpoint refuses large requests and bodies, and a silent client does not hold it up") {
    Readiness readiness;
    HttpEndpoint endpoint(ListenAddress{"127.0.0.1", 0}, readiness, [] { return std::string(); });
    const uint16_t port = endpoint.port();

    const std::string huge_header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(20000, 'a') +
                                    "\r\nConnection: close\r\n\r\n";
    CHECK(status_line(send_raw(port, huge_header)) == "HTTP/1.1 431 Request Header Fields Too Large");
    const std::string
        with_body = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    CHECK(status_line(send_raw(port, with_body)) == "HTTP/1.1 413 Payload Too Large");

    // A client that connects and says nothing holds its connection only: others are answered meanwhile.
    const int silent = connect_to(port);
    CHECK(status_line(get(port, "/healthz")) == "HTTP/1.1 200 OK");
    // Keep-alive: two requests on one connection, the second closing it.
    const std::string both = send_raw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                            "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK_THAT(both, Catch::Contains("ok\n") && Catch::EndsWith("ready\n"));
    ::close(silent);
}

TEST_CASE("service: an address in use is refused with the reason") {
    Readiness readiness;
    HttpEndpoint first(ListenAddress{"127.0.0.1", 0}, readiness, [] { return std::string(); });
    try {
        HttpEndpoint second(ListenAddress{"127.0.0.1", first.port()}, readiness, [] { return std::string(); });
        FAIL("a second endpoint bound the same port");
    } catch (const std::runtime_error& error) {
        CHECK_THAT(error.what(), Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(first.port())) &&
                                     Catch::Contains("in use"));
    }
}
