// Request budgets shared by threads and processes (host/plugins/shared_budgets.*).
// Every assertion is on the slots handed out, which follow from the interval alone: reserving
// a slot never waits, so nothing here depends on how fast a loaded machine runs.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
#include "support/captured_stderr.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
using test::captured_stderr;

namespace {

constexpr uint64_t kMillisecond = 1000000;
constexpr uint64_t kHour = 3600ull * 1000 * kMillisecond;

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
