#include "support/process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace segpush::test {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string shell_quote(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

Run run_shell(const std::string& directory, const std::string& command) {
    const std::string out = directory + "/.run-out.txt";
    const std::string err = directory + "/.run-err.txt";
    const std::string full = "cd " + shell_quote(directory) + " && " + command + " >" + shell_quote(out) + " 2>" +
                             shell_quote(err);
    const int status = std::system(full.c_str());
    return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, const std::string& out_file,
                                     const std::string& err_file, const std::vector<std::string>& extra_env) {
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** entry = environ; *entry; ++entry) env_strings.emplace_back(*entry);
    for (const auto& entry : extra_env) env_strings.push_back(entry);
    std::vector<char*> env;
    for (auto& entry : env_strings) env.push_back(entry.data());
    env.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        if (!freopen(out_file.c_str(), "w", stdout) || !freopen(err_file.c_str(), "w", stderr)) _exit(126);
        execve(args[0], args.data(), env.data());
        _exit(127);
    }
}

BackgroundProcess::~BackgroundProcess() {
    if (!reaped_ && pid_ > 0) {
        kill(pid_, SIGKILL);
        wait();
    }
}

bool BackgroundProcess::running() {
    if (reaped_) return false;
    const pid_t done = waitpid(pid_, &status_, WNOHANG);
    if (done == pid_) reaped_ = true;
    return !reaped_;
}

void BackgroundProcess::signal(int signal_number) {
    if (!reaped_) kill(pid_, signal_number);
}

int BackgroundProcess::wait() {
    if (!reaped_) {
        while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return -WTERMSIG(status_);
    return -1;
}

}  // namespace segpush::test
