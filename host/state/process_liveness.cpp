#include "state/process_liveness.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <sstream>

namespace segpush {

namespace {

// What /proc says of process `pid`: its state letter (field 3) and start time (field 22).
// False where /proc does not say (not Linux, or the process is gone).
bool read_process_stat(int64_t pid, char& state, std::string& start_time) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    // Read whole: the command name, in parentheses, may hold spaces, ')' and even newlines;
    // the fields after it are counted from the last ')'.
    const std::string stat{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    const size_t name_end = stat.rfind(')');
    if (name_end == std::string::npos) return false;
    std::istringstream fields(stat.substr(name_end + 1));
    std::string field;
    for (int number = 3; number <= 22; ++number) {
        if (!(fields >> field)) return false;
        if (number == 3) state = field.empty() ? '?' : field[0];
    }
    start_time = field;
    return true;
}

std::string boot_id() {
    std::ifstream boot("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(boot, id);
    return id;
}

std::string identity_of(const std::string& boot, const std::string& start_time) { return boot + "/" + start_time; }

// This process's pid namespace ("pid:[4026531836]"), empty where /proc does not say. Two
// containers on one node may share the host's name (host networking) but never see each
// other's pids: a pid is only meaningful in the namespace that recorded it.
std::string pid_namespace() {
    char target[128] = {};
    const ssize_t length = readlink("/proc/self/ns/pid", target, sizeof target - 1);
    return length > 0 ? std::string(target, static_cast<size_t>(length)) : std::string();
}

// An identity is "BOOT/START" (runs recorded before segpush kept the namespace) or
// "BOOT/START/NAMESPACE".
struct IdentityParts {
    std::string process;     // BOOT/START
    std::string namespace_;  // empty when not recorded
};

IdentityParts parts_of(const std::string& identity) {
    const size_t first = identity.find('/');
    const size_t second = first == std::string::npos ? std::string::npos : identity.find('/', first + 1);
    if (second == std::string::npos) return {identity, {}};
    return {identity.substr(0, second), identity.substr(second + 1)};
}

}  // namespace

std::string this_hostname() {
    char name[256] = {};
    gethostname(name, sizeof name - 1);
    return name;
}

std::string process_identity(int64_t pid) {
    char state = '?';
    std::string start_time;
    const std::string boot = boot_id();
    if (boot.empty() || !read_process_stat(pid, state, start_time)) return {};
    return identity_of(boot, start_time) + "/" + pid_namespace();
}

bool can_see_process(const std::string& hostname, const std::string& identity) {
    if (hostname != this_hostname()) return false;
    const std::string recorded = parts_of(identity).namespace_;
    return recorded.empty() || recorded == pid_namespace();
}

bool process_alive(int64_t pid, const std::string& identity) {
    if (pid <= 0) return false;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
    char state = '?';
    std::string start_time;
    if (!read_process_stat(pid, state, start_time)) return true;
    if (state == 'Z') return false;
    if (identity.empty()) return true;
    const std::string boot = boot_id();
    return boot.empty() || identity_of(boot, start_time) == parts_of(identity).process;
}

}  // namespace segpush
