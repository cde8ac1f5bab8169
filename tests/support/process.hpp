// Running the real segpush binary (or any program) from tests, as a user would.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace segpush::test {

struct Run {
    int exit_code = -1;  // -1 when killed by a signal
    std::string out;
    std::string err;
};

std::string read_file(const std::string& path);
// `text` (a program's output, a log) split into lines, without their newlines.
std::vector<std::string> lines_of(const std::string& text);
// Single-quotes `text` for /bin/sh.
std::string shell_quote(const std::string& text);

// Runs `command` with /bin/sh in `directory`, capturing stdout and stderr in files there.
Run run_shell(const std::string& directory, const std::string& command);

// A program started in the background; killed (SIGKILL) and reaped on destruction if still running.
class BackgroundProcess {
public:
    // argv[0] is the program path. stdout and stderr go to the given files.
    BackgroundProcess(const std::vector<std::string>& argv, const std::string& out_file, const std::string& err_file,
                      const std::vector<std::string>& extra_env = {});
    ~BackgroundProcess();
    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int signal_number);
    // Waits for the exit; returns the exit code, or -signal when killed by a signal.
    int wait();

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

}  // namespace segpush::test
