"""A PostgreSQL server of the benchmarks' own, the way tests/support/postgres_server.cpp starts one:
initdb into a temporary directory (owned by the `postgres` user when we are root, since the server
refuses to run as root), the server on a free loopback port, role `segpush` with a scram password.

Unlike the tests' server it keeps fsync on and synchronous_commit at its default (on): the
benchmarks compare the state's real cost, commits that reach the disk included.
"""
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PASSWORD_VARIABLE = "SEGPUSH_BENCH_STATE_PASSWORD"
SETTINGS = "fsync on, synchronous_commit on (the defaults), shared_buffers 128 MB"


def server_bin_dir():
    """The newest server Debian's packages installed: /usr/lib/postgresql/<version>/bin."""
    versions = [d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()] if os.path.isdir(
        "/usr/lib/postgresql") else []
    for version in sorted(versions, key=int, reverse=True):
        path = os.path.join("/usr/lib/postgresql", version, "bin")
        if os.path.exists(os.path.join(path, "postgres")):
            return path
    raise SystemExit("no PostgreSQL server under /usr/lib/postgresql: install Debian's postgresql package")


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """with PostgresServer() as server: server.create_database() -> name; server.state_yaml(name).
    The server and its directory are removed on leaving, also on an error."""

    def __init__(self):
        self.bin = server_bin_dir()
        self.password = secrets.token_hex(16)
        self.directory = tempfile.mkdtemp(prefix="segpush-bench-pg-")
        self.data = os.path.join(self.directory, "data")
        self.port = free_loopback_port()
        self.proc = None
        self.databases = 0
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _as_server_user(self):
        if self.user:
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)
        # SIGQUIT (immediate shutdown) when the benchmark dies, even by SIGKILL: no server is left
        # behind. Set after setuid, which clears it.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG

    def __enter__(self):
        try:
            if self.user:
                os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)
            password_file = os.path.join(self.directory, "password")
            with open(password_file, "w") as fh:
                fh.write(self.password + "\n")
            if self.user:
                os.chown(password_file, self.user.pw_uid, self.user.pw_gid)
            initdb = subprocess.run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "segpush",
                                     "--pwfile=" + password_file, "--auth-host=scram-sha-256", "--auth-local=trust",
                                     "-E", "UTF8", "--locale=C", "--no-sync"],
                                    preexec_fn=self._as_server_user, capture_output=True, text=True)
            if initdb.returncode != 0:
                raise SystemExit("initdb failed:\n" + initdb.stdout + initdb.stderr)
            self.log = os.path.join(self.directory, "server.log")
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen([os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                                              "-c", "listen_addresses=127.0.0.1",
                                              "-c", "unix_socket_directories=" + self.directory,
                                              "-c", "max_connections=200"],
                                             preexec_fn=self._as_server_user, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while self._client("pg_isready", "-q").returncode != 0:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the PostgreSQL server did not start:\n" + open(self.log).read()[-3000:])
                time.sleep(0.1)
            os.environ[PASSWORD_VARIABLE] = self.password
            return self
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _ in range(10):  # a file written while the tree was being removed fails one pass
            shutil.rmtree(self.directory, ignore_errors=True)
            if not os.path.exists(self.directory):
                break
            time.sleep(0.2)

    def _client(self, program, *args):
        env = dict(os.environ, PGPASSWORD=self.password)
        return subprocess.run([os.path.join(self.bin, program), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                               "segpush"] + list(args), env=env, capture_output=True, text=True)

    def create_database(self):
        self.databases += 1
        name = "bench%d" % self.databases
        made = self._client("createdb", name)
        if made.returncode != 0:
            raise SystemExit("cannot create database %s: %s" % (name, made.stderr.strip()))
        return name

    def state_yaml(self, database, lease_seconds=30):
        """The configuration's `state:` map; the password by reference, from PASSWORD_VARIABLE."""
        return ("state:\n  url: postgresql://segpush@127.0.0.1:%d/%s\n  password: ${env:%s}\n"
                "  lease_seconds: %d\n" % (self.port, database, PASSWORD_VARIABLE, lease_seconds))

    def cpu_seconds(self):
        """CPU (user+sys) the server has used so far: the postmaster, its live processes, and the
        backends that have exited (which the postmaster reaped: its children's times)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # Fields after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
            if int(entry) == self.proc.pid:
                total += sum(int(f) for f in fields[11:15])
            elif int(fields[1]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick
