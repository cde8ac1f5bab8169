// Whether a plugin file may be loaded at all, before any of its code runs, and a way to run
// its code first in a throwaway child process.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace segpush {

// A path checked the way sshd's StrictModes checks authorized_keys: "/" and every directory
// passed through on the way down, following each symbolic link where it points, and the
// final object itself must be owned by root or by the user segpush runs as (its effective
// uid), and not writable by group or others. A world-writable directory with the sticky bit
// (/tmp) may be passed through, as it may in the path to a home directory: strangers can add
// names to it but not replace ours, and the next component's owner is checked in turn. It is
// refused as the folder that holds the plugin or as the plugin directory.
//
// Since nobody but root and us can change a path that passes, loading `real_path` right
// after the check is as safe as loading through a descriptor held since the check.
struct TrustedPath {
    std::string real_path;  // with every symbolic link resolved; set when `problem` is empty
    std::string problem;    // one line: the component at fault, why, and how to fix it
};

enum class TrustedKind { directory, regular_file };

TrustedPath check_trusted_path(const std::string& path, TrustedKind kind);

// How a child that ran `work` ended: `answer` is what work returned, set only when the child
// finished it; otherwise `problem` says what happened ("crashed with SIGSEGV", "did not answer
// within 10 s", "exited with status 0").
struct ChildOutcome {
    bool answered = false;
    std::string answer;
    std::string problem;
};

// Runs `work` in a forked child and brings back its result over a pipe, killing the child
// after `timeout`. Meant for code that may crash, hang or call exit() (a plugin's
// constructors and entry point): none of that reaches this process.
//
// Invariant: fork() copies only the calling thread, so a child of a process with other
// threads could find a lock held forever. run_isolated forks only while the process has a
// single thread (can_isolate()), and otherwise runs nothing and says so; callers that may
// run threaded check can_isolate() first and run the code in process, unprotected. The CLI
// loads plugins before it starts any thread, so its probes always run.
ChildOutcome run_isolated(const std::function<std::string()>& work, std::chrono::seconds timeout);
bool can_isolate();

}  // namespace segpush
