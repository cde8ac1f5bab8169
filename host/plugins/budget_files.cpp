// Budgets shared through files, for an SQLite state: `<state directory>/budgets/<name>`
// (the folder 0700, files 0600), each locked with flock() while it is read and written. The
// kernel drops a lock when its holder dies, kill -9 included. A file holds one line,
//     <boot id> <next free slot, 20 decimal digits>\n
// and a value written under another boot id is ignored, since the monotonic clock restarts at
// boot.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <string_view>
#include <system_error>

#include "log/log.hpp"
#include "plugins/budget_sharing.hpp"
#include "plugins/shared_budgets.hpp"
#include "state/private_files.hpp"

namespace segpush {

namespace {

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

class BudgetFiles final : public BudgetSharing {
public:
    explicit BudgetFiles(std::string directory) : directory_(std::move(directory)) {}
    ~BudgetFiles() override {
        for (auto& [name, file] : files_) {
            if (file.fd >= 0) ::close(file.fd);
        }
    }

    uint64_t reserve_slot(const std::string& name, uint64_t& next, uint64_t interval_ns) override {
        return locked_update(name, next, [interval_ns](uint64_t& shared) { return take_slot(shared, interval_ns); });
    }

    void hold_budget(const std::string& name, uint64_t& next, uint64_t until_ns) override {
        locked_update(name, next, [until_ns](uint64_t& shared) {
            hold_until(shared, until_ns);
            return uint64_t{0};
        });
    }

private:
    // A budget's file. Used only under the budget's in-process mutex: flock() cannot serialise
    // this process's threads, since they all use the same open file (locks belong to the open
    // file, not to a thread).
    struct File {
        int fd = -1;            // -1: in-process only
        bool attached = false;  // attach() ran
    };

    File& file(const std::string& name) {
        std::lock_guard<std::mutex> guard(files_mutex_);
        return files_[name];  // never erased, so the reference stays valid
    }

    // Makes sure file.fd is open on the budget's file, or -1 when files cannot be used.
    void attach(File& file, const std::string& name) {
        if (file.attached) return;
        file.attached = true;
        {
            std::lock_guard<std::mutex> guard(directory_mutex_);
            if (!failed_ && !ready_) {
                try {
                    create_private_directories(directory_);
                    ready_ = true;
                } catch (const std::system_error& error) {
                    fail_locked(error.code().message());
                } catch (const std::exception& error) {
                    fail_locked(error.what());
                }
            }
            if (failed_) return;
        }
        if (SharedBudgets::boot_id().empty()) {
            fall_back("cannot read the boot id from /proc/sys/kernel/random/boot_id");
            return;
        }
        const std::string path = directory_ + "/" + name;
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            fall_back("cannot open budget file " + name + ": " + errno_text(errno));
            return;
        }
        struct stat info {};
        if (::fstat(fd, &info) == 0 && (info.st_mode & 07777) != 0600) ::fchmod(fd, 0600);  // the umask's doing
        file.fd = fd;
    }

    // Locks the budget's file, lets `update` change the next free slot (the larger of the file's
    // and this process's), stores it, and returns what `update` returned.
    template <typename Update>
    uint64_t locked_update(const std::string& name, uint64_t& next, Update update) {
        File& entry = file(name);
        attach(entry, name);
        auto detach = [&](const std::string& why) {
            fall_back(why);
            ::close(entry.fd);
            entry.fd = -1;
        };
        if (entry.fd >= 0 && !lock_file(entry.fd, LOCK_EX))
            detach("cannot lock budget file " + name + ": " + errno_text(errno));
        if (entry.fd >= 0) next = std::max(next, read_next(entry.fd));
        const uint64_t result = update(next);
        if (entry.fd >= 0) {
            if (!write_next(entry.fd, next)) {
                detach("cannot write budget file " + name + ": " + errno_text(errno));
            } else {
                lock_file(entry.fd, LOCK_UN);  // closing would release it too; nothing to do on failure
            }
        }
        return result;
    }

    // One warning, then no more files are opened in the folder; files open already stay in use.
    void fall_back(const std::string& why) {
        std::lock_guard<std::mutex> guard(directory_mutex_);
        if (!failed_) fail_locked(why);
    }
    void fail_locked(const std::string& why) {
        failed_ = true;
        log_line(LogLevel::warn, "request budgets: cannot use " + directory_ + " (" + why +
                                     "); exports of this process pace together, but not with other segpush "
                                     "processes using the same state directory");
    }

    const std::string directory_;
    std::mutex directory_mutex_;  // guards ready_ and failed_
    bool ready_ = false;          // the folder exists (made by us or already there)
    bool failed_ = false;         // warned once; no more files are opened in it
    std::mutex files_mutex_;      // guards files_ (the map, not the files in it)
    std::map<std::string, File> files_;
};

}  // namespace

std::unique_ptr<BudgetSharing> make_budget_files(std::string directory) {
    return std::make_unique<BudgetFiles>(std::move(directory));
}

}  // namespace segpush
