// Request budgets shared by threads and processes (host/plugins/shared_budgets.*), through
// files and through a real PostgreSQL server (support/postgres_server.hpp).
// Every assertion is on the slots handed out, which follow from the interval alone: reserving
// a slot never waits, so nothing here depends on how fast a loaded machine runs. Slots shared
// through PostgreSQL are the server's, converted to this process's clock as each answer comes
// back; their checks allow for that conversion (check_spaced_within), never for speed.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "log/log.hpp"
#include "plugins/host_services.hpp"
#include "plugins/shared_budgets.hpp"
#include "state/postgres.hpp"
#include "support/captured_stderr.hpp"
#include "support/postgres_server.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
using test::captured_stderr;
using test::PostgresServer;

namespace {

constexpr uint64_t kMillisecond = 1000000;
constexpr uint64_t kMinute = 60ull * 1000 * kMillisecond;
constexpr uint64_t kHour = 60 * kMinute;

// Sorted, distinct, and consecutive ones at least `interval` apart.
void check_spaced(std::vector<uint64_t> slots, uint64_t interval) {
    std::sort(slots.begin(), slots.end());
    for (size_t i = 1; i < slots.size(); ++i) {
        INFO("slot " << i << " of " << slots.size());
        REQUIRE(slots[i] - slots[i - 1] >= interval);
    }
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int mode_of(const std::string& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return static_cast<int>(info.st_mode & 07777);
}

// A slot shared through PostgreSQL, and how long reserve_slot took to return it.
struct Reservation {
    uint64_t slot = 0;
    uint64_t took = 0;
};

Reservation reserve(SharedBudgets& budgets, const char* name, uint64_t interval) {
    const uint64_t before = SharedBudgets::now_ns();
    const uint64_t slot = budgets.reserve_slot(name, interval);
    return {slot, SharedBudgets::now_ns() - before};
}

// The server spaces its slots `interval` apart or more. Each comes back as now + (slot - the
// server's now), where "now" is when the answer arrived: later than the server's reading by at
// most the call's duration. So two slots' local times are `interval` apart less the duration
// of the call that returned the earlier one; `kClockSlack` covers the server's wall clock being
// slewed against the monotonic one while the test runs (NTP slews by 0.05 % at most). This is
// all that can be asserted honestly: on a machine so loaded that calls take longer than
// `interval`, the check still holds, it only proves less.
constexpr uint64_t kClockSlack = 1000000;  // 1 ms
void check_spaced_within(std::vector<Reservation> taken, uint64_t interval) {
    std::sort(taken.begin(), taken.end(), [](const auto& a, const auto& b) { return a.slot < b.slot; });
    for (size_t i = 1; i < taken.size(); ++i) {
        INFO("slot " << i << " of " << taken.size() << ", calls of " << taken[i - 1].took << " and " << taken[i].took
                     << " ns");
        CHECK(taken[i].slot != 0);
        const uint64_t allowance = std::max(taken[i - 1].took, taken[i].took) + kClockSlack;
        REQUIRE(taken[i].slot - taken[i - 1].slot + allowance >= interval);
    }
}

size_t count_of(const std::string& text, const std::string& piece) {
    size_t n = 0;
    for (size_t at = text.find(piece); at != std::string::npos; at = text.find(piece, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("shared budgets: slots from several threads are spaced and never repeat") {
    test::TempDir dir;
    SharedBudgets budgets;
    SECTION("in this process only") {}
    SECTION("through the state directory") { budgets.use_state_file(dir.file("state.db")); }
    constexpr int kThreads = 4;
    constexpr int kEach = 100;
    std::vector<std::vector<uint64_t>> taken(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&budgets, &taken, t] {
            for (int i = 0; i < kEach; ++i) taken[t].push_back(budgets.reserve_slot("test-general", kMillisecond));
        });
    }
    for (auto& thread : threads) thread.join();
    std::vector<uint64_t> slots;
    for (const auto& some : taken) slots.insert(slots.end(), some.begin(), some.end());
    REQUIRE(slots.size() == kThreads * kEach);
    CHECK(std::count(slots.begin(), slots.end(), 0u) == 0);
    check_spaced(slots, kMillisecond);
}

TEST_CASE("shared budgets: two processes on one state directory take turns") {
    REQUIRE_FALSE(SharedBudgets::boot_id().empty());
    test::TempDir dir;
    constexpr int kEach = 200;
    constexpr uint64_t kInterval = 5 * kMillisecond;
    int go[2];
    REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> children;
    for (int child = 0; child < 2; ++child) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // The child: no Catch2 here, only its slots in a file and its exit status.
            ::close(go[1]);
            char byte = 0;
            if (::read(go[0], &byte, 1) != 0) ::_exit(3);  // both start when the pipe closes
            SharedBudgets budgets;
            budgets.use_state_file(dir.file("state.db"));
            std::vector<uint64_t> slots;
            for (int i = 0; i < kEach; ++i) slots.push_back(budgets.reserve_slot("test-general", kInterval));
            std::ofstream out(dir.file("slots-" + std::to_string(child)), std::ios::binary);
            out.write(reinterpret_cast<const char*>(slots.data()), static_cast<std::streamsize>(slots.size() * 8));
            ::_exit(out ? 0 : 4);
        }
        children.push_back(pid);
    }
    ::close(go[0]);
    ::close(go[1]);
    for (const pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFEXITED(status));
        REQUIRE(WEXITSTATUS(status) == 0);
    }
    std::vector<uint64_t> all;
    for (int child = 0; child < 2; ++child) {
        const std::string bytes = read_text(dir.file("slots-" + std::to_string(child)));
        REQUIRE(bytes.size() == kEach * 8);
        std::vector<uint64_t> slots(kEach);
        std::memcpy(slots.data(), bytes.data(), bytes.size());
        CHECK(std::count(slots.begin(), slots.end(), 0u) == 0);
        all.insert(all.end(), slots.begin(), slots.end());
    }
    // Pacing alone, both would start at about the same moment and collide at once.
    check_spaced(all, kInterval);
    // The file holds the next free slot, after every slot handed out.
    std::istringstream line(read_text(dir.file("budgets/test-general")));
    std::string boot;
    uint64_t next = 0;
    line >> boot >> next;
    CHECK(boot == SharedBudgets::boot_id());
    CHECK(next == *std::max_element(all.begin(), all.end()) + kInterval);
}

TEST_CASE("shared budgets: a hold delays every caller, in this process and others") {
    test::TempDir dir;
    SharedBudgets one;
    SharedBudgets other;  // stands for another process: it shares only the files
    one.use_state_file(dir.file("state.db"));
    other.use_state_file(dir.file("state.db"));
    const uint64_t until = SharedBudgets::now_ns() + kHour;
    CHECK(one.reserve_slot("test-general", kMillisecond) < until);
    one.hold_budget("test-general", until);
    one.hold_budget("test-general", until - kMillisecond);  // an earlier hold never shortens it
    CHECK(one.reserve_slot("test-general", kMillisecond) == until);
    CHECK(other.reserve_slot("test-general", kMillisecond) == until + kMillisecond);
    CHECK(one.reserve_slot("test-general", kMillisecond) == until + 2 * kMillisecond);
    // Other budgets are not held.
    CHECK(other.reserve_slot("test-bulk", kMillisecond) < until);

    SharedBudgets alone;  // no state directory: the hold holds within the object
    alone.hold_budget("test-general", until);
    CHECK(alone.reserve_slot("test-general", 7) == until);
    CHECK(alone.reserve_slot("test-general", 7) == until + 7);
}

TEST_CASE("shared budgets: a file written under another boot is ignored") {
    REQUIRE_FALSE(SharedBudgets::boot_id().empty());
    test::TempDir dir;
    const uint64_t later = SharedBudgets::now_ns() + kHour;
    dir.write("budgets/test-this-boot", SharedBudgets::boot_id() + " " + std::to_string(later) + "\n");
    dir.write("budgets/test-other-boot", "00000000-0000-0000-0000-000000000000 " + std::to_string(later) + "\n");
    dir.write("budgets/test-garbage", "not a budget\n");
    SharedBudgets budgets;
    budgets.use_state_file(dir.file("state.db"));
    // This boot's value counts (so the file's format is the one read)...
    CHECK(budgets.reserve_slot("test-this-boot", kMillisecond) == later);
    // ...another boot's clock is not ours: its value is void, as is a damaged file's.
    const uint64_t other = budgets.reserve_slot("test-other-boot", kMillisecond);
    const uint64_t garbage = budgets.reserve_slot("test-garbage", kMillisecond);
    const uint64_t after = SharedBudgets::now_ns();
    CHECK((other != 0 && other <= after));
    CHECK((garbage != 0 && garbage <= after));
    CHECK(read_text(dir.file("budgets/test-other-boot")).rfind(SharedBudgets::boot_id() + " ", 0) == 0);
}

TEST_CASE("shared budgets: an invalid name cannot be shared") {
    test::TempDir dir;
    SharedBudgets budgets;
    budgets.use_state_file(dir.file("state.db"));
    const std::string longest(128, 'a');
    CHECK(budgets.reserve_slot(longest.c_str(), kMillisecond) != 0);
    CHECK(budgets.reserve_slot("Az09._-", kMillisecond) != 0);
    for (const std::string& name :
         {std::string(), std::string(129, 'a'), std::string("a b"), std::string("a/b"), std::string("../x"),
          std::string("."), std::string(".."), std::string("a\nb"), std::string("caf\xc3\xa9")}) {
        INFO("name \"" << name << "\"");
        CHECK(budgets.reserve_slot(name.c_str(), kMillisecond) == 0);
        budgets.hold_budget(name.c_str(), SharedBudgets::now_ns() + kHour);  // ignored
    }
    CHECK(budgets.reserve_slot(nullptr, kMillisecond) == 0);
    budgets.hold_budget(nullptr, 1);
    // Only the two valid names made files.
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "budgets")) {
        (void)entry;
        ++files;
    }
    CHECK(files == 2);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "x"));
}

TEST_CASE("shared budgets: the folder is 0700 and its files 0600 whatever the umask") {
    for (const mode_t mask : {mode_t{0}, mode_t{0777}}) {
        INFO("umask " << std::oct << mask);
        test::TempDir dir;
        const mode_t previous = ::umask(mask);
        {
            SharedBudgets budgets;
            budgets.use_state_file(dir.file("state.db"));
            budgets.reserve_slot("test-general", kMillisecond);
            budgets.hold_budget("test-bulk", 1);
        }
        ::umask(previous);
        CHECK(mode_of(dir.file("budgets")) == 0700);
        CHECK(mode_of(dir.file("budgets/test-general")) == 0600);
        CHECK(mode_of(dir.file("budgets/test-bulk")) == 0600);
    }
}

TEST_CASE("shared budgets: a folder that cannot be used falls back to this process, with one warning") {
    if (!log_enabled(LogLevel::warn)) set_log_threshold(LogLevel::warn);
    test::TempDir dir;
    SharedBudgets budgets;
    std::string state_dir;
    SECTION("the budgets folder cannot be made") {
        dir.write("not-a-folder", "a file where the state folder should be\n");
        state_dir = dir.file("not-a-folder");
    }
    SECTION("a budget's file cannot be opened") {
        std::filesystem::create_directories(dir.path() / "state" / "budgets" / "test-general");  // a folder, not a file
        state_dir = dir.file("state");
    }
    budgets.use_state_file(state_dir + "/state.db");
    std::vector<uint64_t> slots;
    const std::string warnings = captured_stderr(dir, [&] {
        std::vector<std::thread> threads;
        std::vector<std::vector<uint64_t>> taken(3);
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&budgets, &taken, t] {
                for (int i = 0; i < 50; ++i) taken[t].push_back(budgets.reserve_slot("test-general", kMillisecond));
                budgets.reserve_slot("test-bulk", kMillisecond);
            });
        }
        for (auto& thread : threads) thread.join();
        for (const auto& some : taken) slots.insert(slots.end(), some.begin(), some.end());
    });
    CHECK(count_of(warnings, "request budgets: cannot use") == 1);
    CHECK(count_of(warnings, state_dir + "/budgets") == 1);
    CHECK(std::count(slots.begin(), slots.end(), 0u) == 0);  // real slots still
    check_spaced(slots, kMillisecond);
    // Once said, not again.
    const std::string later = captured_stderr(dir, [&] { budgets.reserve_slot("test-other", kMillisecond); });
    CHECK(later.empty());
}

TEST_CASE("shared budgets: the host services offer them to plugins") {
    PluginHostContext context{"test"};
    const segpush_host host = make_host_services(&context);
    REQUIRE(host.abi_minor >= 4);
    REQUIRE(SEGPUSH_HAS_FIELD(&host, segpush_host, hold_budget));
    REQUIRE(host.reserve_slot);
    REQUIRE(host.hold_budget);
    const uint64_t until = SharedBudgets::now_ns() + kHour;
    host.hold_budget(host.host_data, "test-host-services", until);
    CHECK(host.reserve_slot(host.host_data, "test-host-services", kMillisecond) == until);
    CHECK(host.reserve_slot(host.host_data, "not valid", kMillisecond) == 0);
}

TEST_CASE("shared budgets: two replicas on one PostgreSQL state take turns", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    const std::string location = server.uri(server.create_database());
    SharedBudgets one;
    SharedBudgets other;  // stands for a replica on another host: it shares only the database
    one.use_state_file(location);
    other.use_state_file(location);
    constexpr int kEach = 50;
    constexpr uint64_t kInterval = 20 * kMillisecond;
    std::vector<Reservation> taken[2];
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            SharedBudgets& budgets = t == 0 ? one : other;
            while (!go) std::this_thread::yield();
            for (int i = 0; i < kEach; ++i) taken[t].push_back(reserve(budgets, "test-account", kInterval));
        });
    }
    go = true;
    for (auto& thread : threads) thread.join();
    std::vector<Reservation> all = taken[0];
    all.insert(all.end(), taken[1].begin(), taken[1].end());
    REQUIRE(all.size() == 2 * kEach);
    // Pacing alone, both would start at about the same moment and collide at once.
    check_spaced_within(all, kInterval);
    // The table holds the budget; no budgets folder was made as if the location were a file.
    postgres::Connection db(location);
    const postgres::Result rows = db.exec("SELECT name FROM budgets");
    REQUIRE(rows.rows() == 1);
    CHECK(rows.text(0, 0) == "test-account");
    CHECK_FALSE(std::filesystem::exists(std::filesystem::path(location).parent_path()));
}

TEST_CASE("shared budgets: a hold through PostgreSQL delays the other replicas", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    const std::string location = server.uri(server.create_database());
    SharedBudgets one;
    SharedBudgets other;
    one.use_state_file(location);
    other.use_state_file(location);
    const uint64_t until = SharedBudgets::now_ns() + kHour;
    CHECK(one.reserve_slot("test-account", kMillisecond) < until);
    one.hold_budget("test-account", until);
    one.hold_budget("test-account", until - kMinute);  // an earlier hold never shortens it
    // Both conversions err late, so the slot is never before the hold, and after it by no more
    // than the two calls took.
    const uint64_t before = SharedBudgets::now_ns();
    const uint64_t held = other.reserve_slot("test-account", kMillisecond);
    const uint64_t took = SharedBudgets::now_ns() - before;
    CHECK(held + kClockSlack >= until);
    CHECK(held <= until + took + kMinute);
    const Reservation after = reserve(one, "test-account", kMillisecond);
    CHECK(after.slot + took + kClockSlack >= held + kMillisecond);
    CHECK(after.slot < until + kMinute);
    // Other budgets are not held.
    CHECK(other.reserve_slot("test-bulk", kMillisecond) < until);
}

TEST_CASE("shared budgets: a child process and its parent share a budget through PostgreSQL", "[postgres]") {
    PostgresServer& server = PostgresServer::shared();
    const std::string location = server.uri(server.create_database());
    test::TempDir dir;
    constexpr int kEach = 40;
    constexpr uint64_t kInterval = 20 * kMillisecond;
    int go[2];
    REQUIRE(::pipe(go) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child: no Catch2 here, only its reservations in a file and its exit status.
        ::close(go[1]);
        char byte = 0;
        if (::read(go[0], &byte, 1) != 0) ::_exit(3);  // starts when the pipe closes
        SharedBudgets budgets;
        budgets.use_state_file(location);
        std::vector<Reservation> taken;
        for (int i = 0; i < kEach; ++i) taken.push_back(reserve(budgets, "test-account", kInterval));
        std::ofstream out(dir.file("child"), std::ios::binary);
        out.write(reinterpret_cast<const char*>(taken.data()),
                  static_cast<std::streamsize>(taken.size() * sizeof(Reservation)));
        out.close();  // _exit runs no destructor to flush it
        ::_exit(out ? 0 : 4);
    }
    ::close(go[0]);
    SharedBudgets budgets;
    budgets.use_state_file(location);
    ::close(go[1]);
    std::vector<Reservation> all;
    for (int i = 0; i < kEach; ++i) all.push_back(reserve(budgets, "test-account", kInterval));
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    const std::string bytes = read_text(dir.file("child"));
    REQUIRE(bytes.size() == kEach * sizeof(Reservation));
    std::vector<Reservation> child(kEach);
    std::memcpy(child.data(), bytes.data(), bytes.size());
    all.insert(all.end(), child.begin(), child.end());
    // One host: both processes count slots in the same monotonic clock.
    check_spaced_within(all, kInterval);
}

TEST_CASE("shared budgets: an unreachable PostgreSQL state falls back to this process, with one warning",
          "[postgres]") {
    if (!log_enabled(LogLevel::warn)) set_log_threshold(LogLevel::warn);
    PostgresServer server;  // its own: stopped for good
    const std::string database = server.create_database();
    const std::string location = server.uri(database);
    server.stop();
    test::TempDir dir;
    SharedBudgets budgets;
    budgets.use_state_file(location);
    std::vector<uint64_t> slots;
    const std::string warnings = captured_stderr(dir, [&] {
        std::vector<std::thread> threads;
        std::vector<std::vector<uint64_t>> taken(3);
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&budgets, &taken, t] {
                for (int i = 0; i < 50; ++i) taken[t].push_back(budgets.reserve_slot("test-account", kMillisecond));
                budgets.hold_budget("test-bulk", SharedBudgets::now_ns() + kMillisecond);
            });
        }
        for (auto& thread : threads) thread.join();
        for (const auto& some : taken) slots.insert(slots.end(), some.begin(), some.end());
    });
    INFO(warnings);
    CHECK(count_of(warnings, "request budgets: ") == 1);
    CHECK(count_of(warnings, "PostgreSQL state at 127.0.0.1:" + std::to_string(server.port()) + "/" + database) == 1);
    CHECK(warnings.find(PostgresServer::password()) == std::string::npos);
    CHECK(count_of(warnings, "\n") == 1);  // one log line
    // Real slots still, from this process's clock alone: exactly the interval apart.
    CHECK(std::count(slots.begin(), slots.end(), 0u) == 0);
    check_spaced(slots, kMillisecond);
    // Once said, not again.
    const std::string later = captured_stderr(dir, [&] { budgets.reserve_slot("test-other", kMillisecond); });
    CHECK(later.empty());
}

TEST_CASE("shared budgets: a PostgreSQL state restarted mid-run goes on sharing, with no warning", "[postgres]") {
    if (!log_enabled(LogLevel::warn)) set_log_threshold(LogLevel::warn);
    PostgresServer server;  // its own: this test stops it
    const std::string location = server.uri(server.create_database());
    test::TempDir dir;
    SharedBudgets one;
    SharedBudgets other;
    one.use_state_file(location);
    other.use_state_file(location);
    const Reservation first = reserve(one, "test-account", kHour);  // the next slot is an hour away
    other.reserve_slot("test-bulk", kMillisecond);                  // connected before the restart
    server.stop();
    std::thread restart([&] {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        server.start();
    });
    Reservation second;
    const std::string warnings = captured_stderr(dir, [&] { second = reserve(other, "test-account", kHour); });
    restart.join();
    CHECK(warnings.find("request budgets") == std::string::npos);
    // `other` waited for the server and got the slot after `one`'s, as the server counts it.
    CHECK(second.slot + first.took + kClockSlack >= first.slot + kHour);
}
