#include "support/postgres_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/process.hpp"

namespace segpush::test {

namespace {

// The newest server Debian's packages installed: /usr/lib/postgresql/<version>/bin.
std::string server_bin_dir() {
    std::filesystem::path best;
    int best_version = 0;
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ignored)) {
        const int version = std::atoi(entry.path().filename().c_str());
        if (version > best_version && std::filesystem::exists(entry.path() / "bin" / "postgres")) {
            best_version = version;
            best = entry.path() / "bin";
        }
    }
    if (best.empty()) {
        throw std::runtime_error("no PostgreSQL server under /usr/lib/postgresql: install Debian's postgresql "
                                 "package (build.sh does)");
    }
    return best.string();
}

// The user the server runs as: `postgres` when we are root (the server refuses root), else us.
struct ServerUser {
    uid_t uid = getuid();
    gid_t gid = getgid();
    bool switch_to = false;
};

ServerUser server_user() {
    ServerUser user;
    if (geteuid() != 0) return user;
    const passwd* entry = getpwnam("postgres");
    if (!entry) throw std::runtime_error("running as root, and there is no `postgres` user to run the server as");
    user.uid = entry->pw_uid;
    user.gid = entry->pw_gid;
    user.switch_to = true;
    return user;
}

// Forks and runs argv as the server's user, its output appended to `log`. With `die_with_us`,
// the child is sent SIGQUIT (PostgreSQL's immediate shutdown) when this thread's process dies,
// so a test killed by a timeout leaves no server behind.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log, bool die_with_us) {
    const ServerUser user = server_user();
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        if (die_with_us) {
            prctl(PR_SET_PDEATHSIG, SIGQUIT);
            if (getppid() != parent) _exit(1);
        }
        const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        if (user.switch_to && (setgid(user.gid) != 0 || setuid(user.uid) != 0)) _exit(126);
        std::vector<char*> args;
        for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    return pid;
}

int free_loopback_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
        close(fd);
        throw std::runtime_error("no free loopback port");
    }
    close(fd);
    return ntohs(address.sin_port);
}

void give_to_server_user(const std::string& path) {
    const ServerUser user = server_user();
    if (user.switch_to && chown(path.c_str(), user.uid, user.gid) != 0) {
        throw std::runtime_error("cannot give " + path + " to the postgres user");
    }
}

}  // namespace

PostgresServer::PostgresServer() {
    std::string pattern = (std::filesystem::temp_directory_path() / "segpush-pg-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    directory_ = pattern;
    data_ = directory_ + "/data";
    give_to_server_user(directory_);
    const std::string password_file = directory_ + "/password";
    std::ofstream(password_file) << password() << "\n";
    give_to_server_user(password_file);

    const std::string bin = server_bin_dir();
    const std::string log = directory_ + "/initdb.log";
    const pid_t initdb = spawn({bin + "/initdb", "-D", data_, "-U", "segpush", "--pwfile=" + password_file,
                                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C",
                                "--no-sync"},
                               log, false);
    int status = 0;
    waitpid(initdb, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        throw std::runtime_error("initdb failed:\n" + read_file(log));
    }
    port_ = free_loopback_port();
    start();
}

PostgresServer::~PostgresServer() {
    if (pid_ > 0) {
        kill(pid_, SIGQUIT);
        waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

PostgresServer& PostgresServer::shared() {
    static PostgresServer server;
    return server;
}

void PostgresServer::start() {
    if (pid_ > 0) return;
    const std::string log = directory_ + "/server.log";
    // fsync off: a test's data need not survive a power cut, and syncing would be most of its time.
    pid_ = spawn({server_bin_dir() + "/postgres", "-D", data_, "-p", std::to_string(port_), "-c",
                  "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + directory_, "-c", "fsync=off", "-c",
                  "max_connections=200"},
                 log, true);
    const std::string ping = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres connect_timeout=2";
    const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (PQping(ping.c_str()) != PQPING_OK) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("the PostgreSQL server exited while starting:\n" + read_file(log));
        }
        if (std::chrono::steady_clock::now() > give_up_at) {
            throw std::runtime_error("the PostgreSQL server did not start in 30 s:\n" + read_file(log));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void PostgresServer::stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);  // fast shutdown: disconnects clients, rolls back their transactions
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

std::string PostgresServer::create_database() {
    const std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(++databases_);
    PGconn* conn = PQconnectdb(uri("postgres").c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
        error = PQerrorMessage(conn);
    } else {
        PGresult* result = PQexec(conn, ("CREATE DATABASE " + name).c_str());
        if (PQresultStatus(result) != PGRES_COMMAND_OK) error = PQresultErrorMessage(result);
        PQclear(result);
    }
    PQfinish(conn);
    if (!error.empty()) throw std::runtime_error("cannot create database " + name + ": " + error);
    return name;
}

std::string PostgresServer::uri(const std::string& database) const {
    return "postgresql://segpush:" + std::string(password()) + "@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string PostgresServer::state_yaml(const std::string& database, int lease_seconds) const {
    setenv("SEGPUSH_TEST_STATE_PASSWORD", password(), 1);
    return "state:\n  url: " + uri_without_password(database) +
           "\n  password: ${env:SEGPUSH_TEST_STATE_PASSWORD}\n  lease_seconds: " + std::to_string(lease_seconds) + "\n";
}

std::string PostgresServer::uri_without_password(const std::string& database) const {
    return "postgresql://segpush@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

}  // namespace segpush::test
