#include "plugins/shared_budgets.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>

#include "log/log.hpp"
#include "state/private_files.hpp"

namespace segpush {

namespace {

constexpr size_t kMaxNameLength = 128;
constexpr const char* kBootIdFile = "/proc/sys/kernel/random/boot_id";

uint64_t saturating_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

std::string errno_text(int error) { return std::generic_category().message(error); }

// The file's next free slot, or 0 when it is empty, unreadable, or written under another boot
// (whose monotonic clock is not ours).
uint64_t read_next(int fd) {
    char text[128];
    const ssize_t n = ::pread(fd, text, sizeof text, 0);
    if (n <= 0) return 0;
    const std::string_view line(text, static_cast<size_t>(n));
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != SharedBudgets::boot_id()) return 0;
    uint64_t next = 0;
    const char* first = text + space + 1;
    const char* last = text + n;
    const auto parsed = std::from_chars(first, last, next);
    if (parsed.ec != std::errc() || parsed.ptr == last || *parsed.ptr != '\n') return 0;
    return next;
}

bool write_next(int fd, uint64_t next) {
    char line[128];
    const int length = std::snprintf(line, sizeof line, "%s %020" PRIu64 "\n", SharedBudgets::boot_id().c_str(), next);
    if (length <= 0 || static_cast<size_t>(length) >= sizeof line) return false;
    const ssize_t written = ::pwrite(fd, line, static_cast<size_t>(length), 0);
    if (written >= 0 && written != length) errno = EIO;  // short write: no errno of its own
    return written == length && ::ftruncate(fd, length) == 0;
}

bool lock_file(int fd, int operation) {
    while (::flock(fd, operation) != 0) {
        if (errno != EINTR) return false;
    }
    return true;
}

}  // namespace

// One budget of this process. `mutex` serialises its threads: flock() cannot, since every
// thread uses the same open file (locks belong to the open file, not to a thread).
struct SharedBudgets::Budget {
    std::mutex mutex;
    // The next free slot as this process last saw it. With a file, the file's value is
    // authoritative but never below this one (only slots handed out raise either).
    uint64_t next = 0;
    int fd = -1;            // the budget's file, or -1: in-process only
    bool attached = false;  // attach() ran for `generation`
    uint64_t generation = 0;
};

SharedBudgets& SharedBudgets::process() {
    // Never destroyed: a plugin thread may still reserve a slot while the process exits.
    static SharedBudgets* const instance = new SharedBudgets;
    return *instance;
}

SharedBudgets::SharedBudgets() = default;

SharedBudgets::~SharedBudgets() {
    for (auto& [name, budget] : budgets_) {
        if (budget->fd >= 0) ::close(budget->fd);
    }
}

void SharedBudgets::use_state_file(const std::string& state_file) {
    std::filesystem::path directory = std::filesystem::path(state_file).parent_path();
    if (directory.empty()) directory = ".";
    const std::string budgets = (directory / "budgets").string();
    std::lock_guard<std::mutex> guard(directory_mutex_);
    if (budgets == directory_) return;  // same folder: keep the open files and the warning given
    directory_ = budgets;
    ++generation_;
    directory_ready_ = false;
    directory_failed_ = false;
}

bool SharedBudgets::valid_name(const char* budget) {
    if (!budget) return false;
    size_t length = 0;
    for (const char* c = budget; *c; ++c, ++length) {
        const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                        *c == '_' || *c == '-';
        if (!ok || length >= kMaxNameLength) return false;
    }
    const std::string_view name(budget, length);
    return length > 0 && name != "." && name != "..";
}

uint64_t SharedBudgets::now_ns() {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
}

const std::string& SharedBudgets::boot_id() {
    static const std::string id = [] {
        std::ifstream in(kBootIdFile);
        std::string text;
        std::getline(in, text);
        // A uuid; anything else (a space would break the file format) counts as unreadable.
        const bool ok = !text.empty() && text.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos;
        return ok ? text : std::string();
    }();
    return id;
}

SharedBudgets::Budget& SharedBudgets::budget(const std::string& name) {
    std::lock_guard<std::mutex> guard(budgets_mutex_);
    auto& slot = budgets_[name];
    if (!slot) slot = std::make_unique<Budget>();
    return *slot;  // never erased, so the reference stays valid
}

void SharedBudgets::fail_locked(const std::string& why) {
    directory_failed_ = true;
    log_line(LogLevel::warn, "request budgets: cannot use " + directory_ + " (" + why +
                                 "); exports of this process pace together, but not with other segpush "
                                 "processes using the same state directory");
}

void SharedBudgets::fall_back(uint64_t generation, const std::string& why) {
    std::lock_guard<std::mutex> guard(directory_mutex_);
    if (generation != generation_ || directory_failed_) return;  // another folder by now, or said already
    fail_locked(why);
}

void SharedBudgets::attach(Budget& budget, const std::string& name) {
    std::string directory;
    uint64_t generation = 0;
    {
        std::lock_guard<std::mutex> guard(directory_mutex_);
        if (budget.attached && budget.generation == generation_) return;
        directory = directory_;
        generation = generation_;
        if (!directory.empty() && !directory_failed_ && !directory_ready_) {
            try {
                create_private_directories(directory);
                directory_ready_ = true;
            } catch (const std::system_error& error) {
                fail_locked(error.code().message());
            } catch (const std::exception& error) {
                fail_locked(error.what());
            }
        }
        if (directory_failed_) directory.clear();
    }
    if (budget.fd >= 0) ::close(budget.fd);
    budget.fd = -1;
    budget.attached = true;
    budget.generation = generation;
    if (directory.empty()) return;
    if (boot_id().empty()) {
        fall_back(generation, std::string("cannot read the boot id from ") + kBootIdFile);
        return;
    }
    const std::string path = directory + "/" + name;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fall_back(generation, "cannot open budget file " + name + ": " + errno_text(errno));
        return;
    }
    struct stat info {};
    if (::fstat(fd, &info) == 0 && (info.st_mode & 07777) != 0600) ::fchmod(fd, 0600);  // the umask's doing
    budget.fd = fd;
}

template <typename Update>
uint64_t SharedBudgets::locked_update(const char* name, Update update) {
    Budget& entry = budget(name);
    std::lock_guard<std::mutex> guard(entry.mutex);
    attach(entry, name);
    auto detach = [&](const std::string& why) {
        fall_back(entry.generation, why);
        ::close(entry.fd);
        entry.fd = -1;
    };
    if (entry.fd >= 0 && !lock_file(entry.fd, LOCK_EX))
        detach("cannot lock budget file " + std::string(name) + ": " + errno_text(errno));
    uint64_t next = entry.next;
    if (entry.fd >= 0) next = std::max(next, read_next(entry.fd));
    const uint64_t result = update(next);
    entry.next = next;
    if (entry.fd >= 0) {
        if (!write_next(entry.fd, next)) {
            detach("cannot write budget file " + std::string(name) + ": " + errno_text(errno));
        } else {
            lock_file(entry.fd, LOCK_UN);  // closing would release it too; nothing to do on failure
        }
    }
    return result;
}

uint64_t SharedBudgets::reserve_slot(const char* budget, uint64_t interval_ns) {
    if (!valid_name(budget)) return 0;
    return locked_update(budget, [interval_ns](uint64_t& next) {
        const uint64_t slot = std::max({now_ns(), next, uint64_t{1}});  // 0 would mean "cannot share"
        next = saturating_add(slot, interval_ns);
        return slot;
    });
}

void SharedBudgets::hold_budget(const char* budget, uint64_t until_ns) {
    if (!valid_name(budget)) return;
    locked_update(budget, [until_ns](uint64_t& next) {
        next = std::max(next, until_ns);
        return uint64_t{0};
    });
}

}  // namespace segpush
