// A real PostgreSQL server for tests: Debian's server binaries, a cluster made with initdb in a
// temporary folder, listening on a free loopback port. PostgreSQL refuses to run as root, so
// when the tests run as root the cluster belongs to the `postgres` user the package made.
#pragma once

#include <sys/types.h>

#include <string>

namespace segpush::test {

class PostgresServer {
public:
    // Makes the cluster (a role `segpush` with a password, scram-sha-256 on TCP) and starts it.
    PostgresServer();
    // Stops the server (immediate shutdown) and removes its folder.
    ~PostgresServer();
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;

    // One server for the whole test process, started on first use; each test takes a database
    // of its own from it (create_database), so tests never see each other's rows.
    static PostgresServer& shared();

    // A new empty database; returns its name.
    std::string create_database();
    // A postgresql:// URI for `database`, with the role's password in it.
    std::string uri(const std::string& database) const;
    // The same URI without the password, for tests that pass it another way (${env:}, PGPASSWORD).
    std::string uri_without_password(const std::string& database) const;
    static const char* password() { return "pg-test-Secret-4417"; }
    // The `state:` block of a segpush configuration for `database`, the password given as
    // ${env:SEGPUSH_TEST_STATE_PASSWORD} (set in this process's environment, which the segpush
    // processes tests start inherit), with `lease_seconds`.
    std::string state_yaml(const std::string& database, int lease_seconds) const;
    int port() const { return port_; }

    // Fast shutdown (clients disconnected, then the server exits), and start again on the same
    // port with the same data: for tests of a server restarted mid-run.
    void stop();
    void start();
    bool running() const { return pid_ > 0; }

private:
    std::string directory_;
    std::string data_;
    int port_ = 0;
    pid_t pid_ = -1;
    int databases_ = 0;
};

}  // namespace segpush::test
