#include "plugins/plugin_trust.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

namespace segpush {

namespace {

// As the kernel's own limit on symbolic links followed in one lookup (ELOOP).
constexpr int kMaxSymlinks = 40;

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

std::string user_text(uid_t uid) {
    const passwd* entry = getpwuid(uid);
    const std::string number = std::to_string(uid);
    return entry && entry->pw_name ? std::string("user ") + entry->pw_name + " (uid " + number + ")" : "uid " + number;
}

// "" when `st` (of `path`) may be trusted; else why not, with the fix. A world-writable
// directory with the sticky bit (/tmp) may be passed through: others can create names in it
// but not take over or replace ours, and what we pass into is checked for its owner in turn.
std::string judge(const std::string& path, const struct stat& st, bool passed_through = false) {
    const uid_t me = geteuid();
    if (st.st_uid != 0 && st.st_uid != me) {
        return path + " is owned by " + user_text(st.st_uid) + ", not by root or " + user_text(me) +
               " that segpush runs as; fix: chown root " + path;
    }
    const bool by_group = (st.st_mode & S_IWGRP) != 0, by_others = (st.st_mode & S_IWOTH) != 0;
    if (!by_group && !by_others) return {};
    const bool sticky = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
    if (sticky && passed_through) return {};
    std::string problem = path + " is writable by " +
                          (by_group && by_others ? "group and others"
                           : by_group            ? "group"
                                                 : "others") +
                          " (mode " + mode_text(st.st_mode) + ")";
    if (sticky)
        return problem + "; plugins must be in a folder of their own that only root or their owner can write to";
    return problem + "; fix: chmod go-w " + path;
}

std::string joined(const std::string& directory, const std::string& name) {
    return directory == "/" ? "/" + name : directory + "/" + name;
}

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// Puts the components of `path` in front of `pending`, in order.
void push_components(std::deque<std::string>& pending, const std::string& path) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= path.size()) {
        const auto slash = path.find('/', start);
        const auto end = slash == std::string::npos ? path.size() : slash;
        if (end > start) parts.push_back(path.substr(start, end - start));
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    pending.insert(pending.begin(), parts.begin(), parts.end());
}

const char* signal_name(int signal_number) {
    switch (signal_number) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGABRT: return "SIGABRT";
        case SIGILL: return "SIGILL";
        case SIGFPE: return "SIGFPE";
        case SIGKILL: return "SIGKILL";
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        case SIGTRAP: return "SIGTRAP";
        case SIGSYS: return "SIGSYS";
        case SIGPIPE: return "SIGPIPE";
        case SIGXCPU: return "SIGXCPU";
        case SIGXFSZ: return "SIGXFSZ";
        default: return nullptr;
    }
}

void write_all(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        done += static_cast<size_t>(n);
    }
}

// The child's side: run `work`, send back a frame of kind ('A' answer, 'E' exception text),
// eight bytes of length and the text, and leave without running anything of the parent's.
[[noreturn]] void run_child(int fd, const std::function<std::string()>& work) {
    // A crash must end the child with its signal, not in a handler inherited from the parent.
    for (int fatal : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) std::signal(fatal, SIG_DFL);
#ifdef __GLIBC__
    // Runs first when the plugin calls exit(): leave with its status, before the parent's
    // static destructors or a flush of stdio buffers copied from the parent.
    on_exit([](int status, void*) { _exit(status); }, nullptr);
#endif
    char kind = 'A';
    std::string text;
    try {
        text = work();
    } catch (const std::exception& e) {
        kind = 'E';
        text = e.what();
    } catch (...) {
        kind = 'E';
        text = "unknown exception";
    }
    std::string frame(1, kind);
    const uint64_t size = text.size();
    frame.append(reinterpret_cast<const char*>(&size), sizeof size);
    frame += text;
    write_all(fd, frame);
    _exit(0);
}

}  // namespace

TrustedPath check_trusted_path(const std::string& path, TrustedKind kind) {
    TrustedPath result;
    if (path.empty()) {
        result.problem = "the path is empty";
        return result;
    }
    std::deque<std::string> pending;
    push_components(pending, path);
    if (path[0] != '/') {
        std::vector<char> cwd(4096);
        if (!getcwd(cwd.data(), cwd.size())) {
            result.problem = std::string("cannot tell the current directory: ") + std::strerror(errno);
            return result;
        }
        push_components(pending, cwd.data());
    }
    struct stat st {};
    if (lstat("/", &st) != 0 || !(result.problem = judge("/", st)).empty()) {
        if (result.problem.empty()) result.problem = std::string("cannot read /: ") + std::strerror(errno);
        return result;
    }
    std::string current = "/";  // resolved so far: real, and every component passed the checks
    std::string link_note;      // the first symbolic link followed, for the message
    int links = 0;
    auto fail = [&](const std::string& problem) {
        result.problem = link_note.empty() ? problem : link_note + ", and " + problem;
        result.real_path.clear();
        return result;
    };
    while (!pending.empty()) {
        const std::string name = pending.front();
        pending.pop_front();
        if (name == ".") continue;
        if (name == "..") {
            current = parent_of(current);
            continue;
        }
        const std::string next = joined(current, name);
        if (lstat(next.c_str(), &st) != 0) return fail("cannot read " + next + ": " + std::strerror(errno));
        if (S_ISLNK(st.st_mode)) {
            if (++links > kMaxSymlinks) return fail(next + ": too many levels of symbolic links");
            std::vector<char> target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4095) + 1);
            const ssize_t length = readlink(next.c_str(), target.data(), target.size());
            if (length < 0 || static_cast<size_t>(length) >= target.size()) {
                return fail("cannot read the symbolic link " + next);
            }
            const std::string destination(target.data(), static_cast<size_t>(length));
            if (link_note.empty()) link_note = next + " is a symbolic link to " + destination;
            if (!destination.empty() && destination[0] == '/') current = "/";
            push_components(pending, destination);
            continue;
        }
        const bool last = pending.empty();
        if (auto problem = judge(next, st, !last); !problem.empty()) return fail(problem);
        if (!last || kind == TrustedKind::directory) {
            if (!S_ISDIR(st.st_mode)) return fail(next + " is not a directory");
        } else if (!S_ISREG(st.st_mode)) {
            return fail(next + " is not a regular file");
        }
        current = next;
    }
    if (kind == TrustedKind::regular_file && current == "/") return fail(path + " is not a regular file");
    if (kind == TrustedKind::regular_file) {
        // The file's own folder was passed through, but others must not add files beside it.
        const std::string folder = parent_of(current);
        if (lstat(folder.c_str(), &st) != 0) return fail("cannot read " + folder + ": " + std::strerror(errno));
        if (auto problem = judge(folder, st); !problem.empty()) return fail(problem);
    }
    result.real_path = current;
    return result;
}

bool can_isolate() {
    DIR* tasks = opendir("/proc/self/task");  // one entry per thread
    if (!tasks) return false;
    int threads = 0;
    while (const dirent* entry = readdir(tasks)) threads += entry->d_name[0] != '.';
    closedir(tasks);
    return threads == 1;
}

ChildOutcome run_isolated(const std::function<std::string()>& work, std::chrono::seconds timeout) {
    ChildOutcome outcome;
    if (!can_isolate()) {
        outcome.problem = "could not be run in a child process, this process having several threads";
        return outcome;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        outcome.problem = std::string("could not be run in a child process: ") + std::strerror(errno);
        return outcome;
    }
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        const int error = errno;
        close(fds[0]);
        close(fds[1]);
        outcome.problem = std::string("could not be run in a child process: ") + std::strerror(error);
        return outcome;
    }
    if (pid == 0) {
        close(fds[0]);
        run_child(fds[1], work);
    }
    close(fds[1]);

    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    auto left_ms = [&] {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        return static_cast<int>(left < 0 ? 0 : left);
    };
    std::string received;
    bool timed_out = false;
    for (;;) {
        pollfd ready{fds[0], POLLIN, 0};
        const int polled = poll(&ready, 1, left_ms());
        if (polled < 0 && errno == EINTR) continue;
        if (polled == 0) {
            timed_out = true;
            break;
        }
        char buffer[4096];
        const ssize_t n = read(fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        received.append(buffer, static_cast<size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    pid_t waited = 0;
    while (!timed_out && (waited = waitpid(pid, &status, WNOHANG)) == 0) {
        if (left_ms() == 0) {
            timed_out = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        outcome.problem = "did not answer within " + std::to_string(timeout.count()) + " s";
        return outcome;
    }
    if (waited < 0) {
        outcome.problem = std::string("could not be waited for: ") + std::strerror(errno);
        return outcome;
    }
    if (WIFSIGNALED(status)) {
        const char* name = signal_name(WTERMSIG(status));
        outcome.problem = std::string("crashed with ") + (name ? name : "signal " + std::to_string(WTERMSIG(status)));
        return outcome;
    }
    uint64_t size = 0;
    const bool framed = received.size() >= 1 + sizeof size && (std::memcpy(&size, received.data() + 1, sizeof size),
                                                               received.size() == 1 + sizeof size + size);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !framed) {
        outcome.problem = "exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return outcome;
    }
    std::string text = received.substr(1 + sizeof size);
    if (received[0] == 'E') {
        outcome.problem = "failed: " + text;
        return outcome;
    }
    outcome.answered = true;
    outcome.answer = std::move(text);
    return outcome;
}

}  // namespace segpush
