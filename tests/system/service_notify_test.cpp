// `serve` under systemd's Type=notify: it reports READY=1 on the socket NOTIFY_SOCKET names,
// pings WATCHDOG=1 while WATCHDOG_USEC is set, and STOPPING=1 when asked to stop. The test plays
// systemd's part with a unix datagram socket of its own.
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using segpush::test::BackgroundProcess;
using segpush::test::read_file;
using segpush::test::TempDir;

namespace {

// The service manager's end: a datagram socket bound to a path, as systemd's notify socket is.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(path.size() < sizeof(address.sun_path));
        std::strcpy(address.sun_path, path.c_str());
        REQUIRE(bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    }
    ~NotifySocket() {
        close(fd_);
        unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    // Every message received until one contains `wanted` (returned last) or `timeout` passes.
    std::vector<std::string> until(const std::string& wanted, std::chrono::seconds timeout) {
        std::vector<std::string> messages;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd ready{fd_, POLLIN, 0};
            if (poll(&ready, 1, 100) <= 0) continue;
            char buffer[4096];
            const ssize_t size = recv(fd_, buffer, sizeof(buffer), 0);
            if (size <= 0) continue;
            messages.emplace_back(buffer, static_cast<size_t>(size));
            if (messages.back().find(wanted) != std::string::npos) break;
        }
        return messages;
    }

private:
    std::string path_;
    int fd_ = -1;
};

std::string joined(const std::vector<std::string>& messages) {
    std::string all;
    for (const auto& message : messages) all += "[" + message + "] ";
    return all;
}

bool any_contains(const std::vector<std::string>& messages, const std::string& text) {
    for (const auto& message : messages) {
        if (message.find(text) != std::string::npos) return true;
    }
    return false;
}

struct ServeFixture {
    TempDir dir;
    ServeFixture() {
        dir.write("vip.csv", "Email\na@example.com\n");
        // A schedule that does not come due while the test runs: only the notifications matter.
        dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + R"(
state: state.db
segments:
  vip: { path: vip.csv }
connections:
  files:
    plugin: file
    privacy_consent: true
    settings: { directory: ")" + dir.file("out") +
                                      R"(" }
exports:
  vip_file:
    connection: files
    segments: [vip]
    settings: { path: vip.csv }
    mapping: { email: Email }
    schedule: "0 3 1 1 *"
)");
        std::filesystem::create_directories(dir.file("out"));
    }

    std::vector<std::string> argv() const { return {SEGPUSH_BINARY, "--config", dir.file("segpush.yaml"), "serve"}; }
};

}  // namespace

TEST_CASE_METHOD(ServeFixture, "systemd: serve tells systemd it is ready, pets the watchdog and says when it stops") {
    NotifySocket manager(dir.file("notify.sock"));
    // WatchdogSec=1s: serve pings at least every half second.
    BackgroundProcess serve(argv(), dir.file("serve.out"), dir.file("serve.err"),
                            {"NOTIFY_SOCKET=" + dir.file("notify.sock"), "WATCHDOG_USEC=1000000"});
    const auto ready = manager.until("READY=1", std::chrono::seconds(30));
    INFO("messages: " << joined(ready) << "\nserve's log:\n" << read_file(dir.file("serve.err")));
    REQUIRE(any_contains(ready, "READY=1"));
    CHECK(serve.running());
    // Several pings in a row: the main loop keeps them coming, not a single one at start.
    for (int ping = 0; ping < 3; ++ping) {
        const auto pings = manager.until("WATCHDOG=1", std::chrono::seconds(10));
        INFO("ping " << ping << ": " << joined(pings));
        REQUIRE(any_contains(pings, "WATCHDOG=1"));
    }
    serve.signal(SIGTERM);
    const auto stopping = manager.until("STOPPING=1", std::chrono::seconds(30));
    INFO("messages: " << joined(stopping));
    CHECK(any_contains(stopping, "STOPPING=1"));
    CHECK(serve.wait() == 0);
}

TEST_CASE_METHOD(ServeFixture, "systemd: without WATCHDOG_USEC serve reports readiness and sends no watchdog pings") {
    NotifySocket manager(dir.file("notify.sock"));
    BackgroundProcess serve(argv(), dir.file("serve.out"), dir.file("serve.err"),
                            {"NOTIFY_SOCKET=" + dir.file("notify.sock")});
    const auto ready = manager.until("READY=1", std::chrono::seconds(30));
    INFO("messages: " << joined(ready) << "\nserve's log:\n" << read_file(dir.file("serve.err")));
    REQUIRE(any_contains(ready, "READY=1"));
    // A few turns of the main loop, then everything up to STOPPING=1: no ping among them.
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    serve.signal(SIGTERM);
    const auto rest = manager.until("STOPPING=1", std::chrono::seconds(30));
    INFO("messages: " << joined(rest));
    CHECK(any_contains(rest, "STOPPING=1"));
    CHECK(!any_contains(ready, "WATCHDOG=1"));
    CHECK(!any_contains(rest, "WATCHDOG=1"));
    CHECK(serve.wait() == 0);
}

TEST_CASE_METHOD(ServeFixture, "systemd: serve started without NOTIFY_SOCKET runs and stops as before") {
    BackgroundProcess serve(argv(), dir.file("serve.out"), dir.file("serve.err"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    REQUIRE(serve.running());
    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
    CHECK_THAT(read_file(dir.file("serve.err")), !Catch::Contains("cannot notify"));
}

TEST_CASE_METHOD(ServeFixture,
                 "systemd: SIGHUP is a reload: RELOADING=1, then READY=1, with a good or a bad configuration") {
    NotifySocket manager(dir.file("notify.sock"));
    BackgroundProcess serve(argv(), dir.file("serve.out"), dir.file("serve.err"),
                            {"NOTIFY_SOCKET=" + dir.file("notify.sock")});
    REQUIRE(any_contains(manager.until("READY=1", std::chrono::seconds(30)), "READY=1"));

    // A good configuration: the export's new schedule is what serve now announces.
    std::string config = read_file(dir.file("segpush.yaml"));
    const std::string old_schedule = "schedule: \"0 3 1 1 *\"";
    config.replace(config.find(old_schedule), old_schedule.size(), "schedule: \"0 4 1 1 *\"");
    dir.write("segpush.yaml", config);
    serve.signal(SIGHUP);
    const auto good = manager.until("READY=1", std::chrono::seconds(30));
    INFO("messages: " << joined(good) << "\nserve's log:\n" << read_file(dir.file("serve.err")));
    REQUIRE(good.size() >= 2);
    CHECK(good.front().find("RELOADING=1") != std::string::npos);
    CHECK(good.front().find("MONOTONIC_USEC=") != std::string::npos);
    CHECK(good.back().find("READY=1") != std::string::npos);
    CHECK_THAT(read_file(dir.file("serve.err")),
               Catch::Contains("the new configuration is running") && Catch::Contains("runs on \"0 4 1 1 *\""));

    // A bad one: refused, and serve still tells systemd it is ready (with the old configuration).
    dir.write("segpush.yaml", config + "    unknown_key: 1\n");
    serve.signal(SIGHUP);
    const auto bad = manager.until("READY=1", std::chrono::seconds(30));
    INFO("messages: " << joined(bad));
    REQUIRE(bad.size() >= 2);
    CHECK(bad.front().find("RELOADING=1") != std::string::npos);
    CHECK(bad.back().find("READY=1") != std::string::npos);
    CHECK_THAT(read_file(dir.file("serve.err")), Catch::Contains("unknown_key") && Catch::Contains("was not taken"));
    CHECK(serve.running());

    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
}
