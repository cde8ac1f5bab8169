#pragma once

#include <cstdint>
#include <string>

namespace segpush {

// Whether the process that recorded a run is still the one running it, judged on this host
// by both run history backends: its pid, and on Linux its boot and start time, so a pid given
// to another process since (after a reboot, low pids come back at once) does not pass for the
// run's.

// This host's name, as runs record it.
std::string this_hostname();

// Which process `pid` is, beyond its number: the boot, the process's start time, and the pid
// namespace of the calling process (callers ask about themselves). Empty where /proc does
// not say.
std::string process_identity(int64_t pid);

// Whether this process can ask whether the run's process is alive: it ran on this host
// (`hostname`) in this pid namespace (by `identity`; runs recorded without one count as this
// namespace's). Containers sharing a host name cannot see each other's pids.
bool can_see_process(const std::string& hostname, const std::string& identity);

// Whether process `pid` of this host is alive and is the one `identity` (process_identity,
// when the run started) names. An empty identity (runs recorded before segpush kept it, or
// where /proc is missing) lets the pid alone decide. A zombie is dead: its parent has not
// collected it yet, but it runs nothing.
bool process_alive(int64_t pid, const std::string& identity);

}  // namespace segpush
