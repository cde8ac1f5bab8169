#!/usr/bin/env python3
"""segpush benchmarks against the ActiveCampaign and Mailchimp sandboxes (Python 3 standard library only).

    python3 bench/run.py ceiling   --profiles 1000000 --scale 20   [--build-dir build]
    python3 bench/run.py host-cost --profiles 1000000              [--build-dir build]
    python3 bench/run.py refresh   --profiles 1000000 --change 0.01 [--scale 20]
    python3 bench/run.py shared-account --profiles 20000 [--scale 10] [--serve]
    python3 bench/run.py replicas  --profiles 2000 --exports 30 [--replicas 1,3]
    python3 bench/run.py mailchimp --profiles 1000000 [--latency-ms 1000] [--change 0.01]

host-cost and refresh take `--state postgres` (default sqlite): the state is then kept in a
PostgreSQL server the benchmark starts itself (bench/postgres_server.py, fsync on), and that
server's CPU is shown beside segpush's. `replicas` always uses one.

Each subcommand starts its own sandbox (tests/sandbox/ac_sandbox.py, or mc_sandbox.py for
`mailchimp`; HTTPS on 127.0.0.1 with a
certificate made here by openssl) in a temporary directory, writes a segment with
bench/generate_profiles.py and a segpush configuration pointing at the sandbox, runs
`segpush export run` as a child process, and prints its figures as a table and as one JSON line.
CPU time and peak RSS are the segpush process's own (os.wait4); the sandbox is another process.
"""
import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from postgres_server import SETTINGS as POSTGRES_SETTINGS, PostgresServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(ROOT, "tests", "sandbox", "ac_sandbox.py")
GENERATOR = os.path.join(ROOT, "bench", "generate_profiles.py")
BULK = "POST /api/3/import/bulk_import"
INFO = "GET /api/3/import/info"
API_KEY = "bench-key-not-a-real-one"
LIST_ID = 1
EXPORT = "bench_export"

# ActiveCampaign's published limits (per account): 5 requests/second over the whole API and
# 100 bulk import requests per minute.
AC_RPS = 5
AC_BULK_PER_MINUTE = 100

MC_SANDBOX = os.path.join(ROOT, "tests", "sandbox", "mc_sandbox.py")
MC_API_KEY = "0123456789abcdef0123456789abcdef-us7"
MC_LIST = "a1b2c3d4e5"
MC_BATCH = "POST /3.0/lists/{list_id}"
MC_UPSERT = "PUT /3.0/lists/{list_id}/members/{hash}"
# Mailchimp's only published limit: 10 simultaneous connections per API key (no rate).
MC_CONNECTIONS = 10


def log(message):
    print("[bench] " + message, file=sys.stderr, flush=True)


class Sandbox:
    """The ActiveCampaign sandbox."""
    script = SANDBOX
    """The sandbox in its own process; start()/stop(), get()/post() on its control API."""

    def __init__(self, workdir, config, name="sandbox"):
        self.workdir = workdir
        self.config = config
        self.cert = os.path.join(workdir, "cert.pem")  # one certificate for all sandboxes of a workdir
        self.key = os.path.join(workdir, "key.pem")
        self.port_file = os.path.join(workdir, name + ".port")
        self.proc = None
        self.port = None
        self.ctx = None

    def start(self):
        self.launch()
        self.wait_ready()

    def launch(self):
        if not os.path.exists(self.cert):
            self.make_certificate()
        self.proc = subprocess.Popen([sys.executable, self.script, "--cert", self.cert, "--key", self.key,
                                      "--port-file", self.port_file, "--config", json.dumps(self.config)] +
                                     self.account_args())

    def account_args(self):
        return ["--api-key", API_KEY, "--list", "%d:Benchmark list" % LIST_ID,
                "--list", "%d:Second benchmark list" % (LIST_ID + 1)]

    def make_certificate(self):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self):
        for _ in range(600):
            if os.path.exists(self.port_file):
                self.port = int(open(self.port_file).read().strip())
                break
            if self.proc.poll() is not None:
                raise SystemExit("the sandbox exited with status %d" % self.proc.returncode)
            time.sleep(0.05)
        else:
            raise SystemExit("the sandbox did not start")
        self.ctx = ssl.create_default_context(cafile=self.cert)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def host(self):
        return "127.0.0.1:%d" % self.port

    def request(self, method, path, body=None, timeout=600):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("https://%s%s" % (self.host(), path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as answer:
            return json.load(answer)

    def stats(self):
        return self.request("GET", "/__sandbox/stats")

    def set_config(self, config):
        return self.request("POST", "/__sandbox/config", config)

    def subscribed_members(self, with_changed=False, list_id=LIST_ID):
        """Subscribed members of the list; with_changed: also how many carry a changed first name."""
        members = self.request("GET", "/__sandbox/lists/%d/members" % list_id)
        subscribed = sum(1 for m in members if m["status"] == "subscribed")
        if not with_changed:
            return subscribed
        return subscribed, sum(1 for m in members if (m.get("first_name") or "").endswith("-changed"))


class MailchimpSandbox(Sandbox):
    script = MC_SANDBOX

    def account_args(self):
        return ["--api-key", MC_API_KEY, "--list", MC_LIST + ":Benchmark audience"]

    def statuses(self):
        """How many members of the audience hold each status, through the control API."""
        counts = {}
        for member in self.request("GET", "/__sandbox/lists/%s/members" % MC_LIST):
            counts[member["status"]] = counts.get(member["status"], 0) + 1
        return counts


SQLITE_STATE = "state: state/segpush.db\n"


def ac_connection(name, sandbox, rps, bulk_per_minute):
    """The YAML of connection `name`: the ActiveCampaign plugin at `sandbox`, paced as given."""
    return """  {name}:
    plugin: activecampaign
    privacy_consent: true
    settings:
      host: "{host}"
      api_key: ${{env:AC_API_KEY}}
      ca_bundle: "{cert}"
      requests_per_second: {rps}
      bulk_requests_per_minute: {bulk}
""".format(name=name, host=sandbox.host(), cert=sandbox.cert, rps=rps, bulk=bulk_per_minute)


def write_config(workdir, build_dir, sandbox, rps, bulk_per_minute, exports=None, state=SQLITE_STATE):
    """segpush.yaml in workdir; the plugin is told the (scaled) account limits it paces to.
    exports: {name: (segment file, list id, extra YAML lines)}; by default EXPORT of
    segment.csv to LIST_ID. state: the configuration's `state:` (YAML)."""
    exports = exports or {EXPORT: ("segment.csv", LIST_ID, "")}
    text = "plugin_dir: %s\n%ssegments:\n" % (os.path.join(os.path.abspath(build_dir), "plugins"), state)
    text += "".join("  %s: { path: %s }\n" % (name, segment) for name, (segment, _, _) in exports.items())
    text += "connections:\n" + ac_connection("ac", sandbox, rps, bulk_per_minute) + "exports:\n"
    text += "".join("""  {name}:
    connection: ac
    segments: [{name}]
    settings: {{ list_id: {list_id} }}
    mapping: {{ email: Email, first_name: FirstName, last_name: LastName, phone: Phone }}
{extra}""".format(name=name, list_id=list_id, extra=extra) for name, (_, list_id, extra) in exports.items())
    with open(os.path.join(workdir, "segpush.yaml"), "w", encoding="utf-8") as fh:
        fh.write(text)


def generate(workdir, profiles, seed, change=0.0, name="segment.csv"):
    subprocess.run([sys.executable, GENERATOR, "--profiles", str(profiles), "--seed", str(seed),
                    "--change", str(change), "--out", os.path.join(workdir, name)],
                   check=True, stderr=subprocess.DEVNULL)


class Timeline:
    """Samples the sandbox's request counters while segpush runs: when bulk imports started and
    stopped, and how long the run went on after the last one (settling the imports)."""

    def __init__(self, sandbox, interval=0.5):
        self.sandbox = sandbox
        self.interval = interval
        self.samples = []  # (seconds since start, bulk requests, import/info requests)
        self.stop_event = threading.Event()
        self.thread = None
        self.started = None

    def __enter__(self):
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()

    def _loop(self):
        while not self.stop_event.wait(self.interval):
            try:
                routes = self.sandbox.stats()["by_route"]
            except OSError:
                continue
            self.samples.append((time.monotonic() - self.started, routes.get(BULK, 0), routes.get(INFO, 0)))

    def summary(self):
        """First and last sample times at which the bulk count moved (to the sampling interval)."""
        first = last = None
        for (t0, b0, _), (t1, b1, _) in zip(self.samples, self.samples[1:]):
            if b1 > b0:
                first = t0 if first is None else first
                last = t1
        if first is None:
            return {}
        during = [(b, i) for t, b, i in self.samples if first <= t <= last]
        return {"bulk_first_s": round(first, 1), "bulk_last_s": round(last, 1),
                "bulk_rate_per_min": round((during[-1][0] - during[0][0]) / max(last - first, 1e-9) * 60, 1),
                # Imports not yet checked (import/info) when the last one was sent: the backlog
                # the run still has to settle, and the plugin still holds in memory.
                "unpolled_at_last_bulk": during[-1][0] - during[-1][1]}


def run_segpush(workdir, build_dir, *args):
    """Runs segpush; returns wall seconds, CPU seconds (user+sys), peak RSS in MiB, exit status."""
    binary = os.path.join(os.path.abspath(build_dir), "segpush")
    env = dict(os.environ, AC_API_KEY=API_KEY, MC_API_KEY=MC_API_KEY, SEGPUSH_LOG_LEVEL="warn")
    out_path = os.path.join(workdir, "segpush-%d.log" % int(time.time() * 1000))
    with open(out_path, "wb") as out:
        started = time.monotonic()
        wrap = os.environ.get("BENCH_WRAP", "").split()  # e.g. "perf record -g -o FILE --" (diagnosis only)
        proc = subprocess.Popen(wrap + [binary, "--config", os.path.join(workdir, "segpush.yaml")] + list(args),
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = open(out_path, encoding="utf-8", errors="replace").read()
    if proc.returncode != 0:
        log("segpush %s exited %d:\n%s" % (" ".join(args), proc.returncode, text[-4000:]))
    # The run's own account: members it recorded as accepted (its summary's "accepted" line).
    found = re.search(r"^\s*accepted\s+([\d,]+)", text, re.M)
    accepted = int(found.group(1).replace(",", "")) if found else None
    return {"accepted": accepted, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024.0, "exit": proc.returncode,
            "output": text}


def state_server(args):
    """With --state postgres, a PostgreSQL server of the benchmark's own (None with SQLite)."""
    return PostgresServer() if args.state == "postgres" else contextlib.nullcontext()


def state_for(postgres):
    """The configuration's `state:`: the SQLite file, or a new database of the server."""
    return SQLITE_STATE if postgres is None else postgres.state_yaml(postgres.create_database())


def describe_state(postgres):
    if postgres is None:
        return "SQLite file"
    return "PostgreSQL on 127.0.0.1 (%s)" % POSTGRES_SETTINGS


def route_delta(before, after):
    routes = {}
    for route, n in after["by_route"].items():
        d = n - before["by_route"].get(route, 0)
        if d:
            routes[route] = d
    return routes




def print_table(title, rows, result):
    print(title)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print("  %-*s  %s" % (width, name, value))
    print(json.dumps(result, sort_keys=False))
    sys.stdout.flush()


class Workdir:
    def __init__(self, keep):
        self.keep = keep
        self.path = tempfile.mkdtemp(prefix="segpush-bench-")

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if self.keep:
            log("kept " + self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ---- ceiling ---------------------------------------------------------------------------------

def limited_sandbox(work, scale, latency_ms):
    """A sandbox enforcing ActiveCampaign's limits x scale, and the limits the plugin is told
    (requests per second, bulk imports per minute)."""
    sandbox = Sandbox(work, {"limits_enabled": True, "rate_scale": scale, "latency_ms": latency_ms,
                             "record_bodies": False, "record_requests": False})
    return sandbox, int(round(AC_RPS * scale)), int(round(AC_BULK_PER_MINUTE * scale))


def cmd_ceiling(args):
    s = args.scale
    with Workdir(args.keep) as work:
        sandbox, rps, bulk_per_minute = limited_sandbox(work, s, args.latency_ms)
        try:
            log("generating %d profiles" % args.profiles)
            generate(work, args.profiles, args.seed)
            sandbox.start()
            write_config(work, args.build_dir, sandbox, rps, bulk_per_minute)
            before = sandbox.stats()
            log("export run (rate_scale %g: %d requests/s, %d bulk imports/min, %d ms latency)" %
                (s, rps, bulk_per_minute, args.latency_ms))
            with Timeline(sandbox) as timeline:
                run = run_segpush(work, args.build_dir, "export", "run", EXPORT)
            after = sandbox.stats()
            members = sandbox.subscribed_members() if args.profiles <= args.member_check_max else None
        finally:
            sandbox.stop()
    routes = route_delta(before, after)
    phases = timeline.summary()
    bulk = routes.get(BULK, 0)
    total = after["requests_total"] - before["requests_total"]
    other = total - bulk
    ceiling = max(bulk / (bulk_per_minute / 60.0), total / float(rps))
    ratio = run["wall_s"] / ceiling if ceiling else float("nan")
    result = {"benchmark": "ceiling", "profiles": args.profiles, "scale": s, "latency_ms": args.latency_ms,
              "rps": rps, "bulk_per_minute": bulk_per_minute, "bulk_requests": bulk, "other_requests": other,
              "other_by_route": {k: v for k, v in routes.items() if k != BULK},
              "status_429": after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
              "wall_s": round(run["wall_s"], 2), "ceiling_s": round(ceiling, 2), "ratio": round(ratio, 3),
              "contacts_total": after["contacts_total"], "list_members": members,
              "segpush_accepted": run["accepted"], "exit": run["exit"], "timeline": phases}
    print_table("ceiling: %d profiles, limits x%g (%d req/s, %d bulk/min), %d ms latency" %
                (args.profiles, s, rps, bulk_per_minute, args.latency_ms), [
        ("profiles", args.profiles),
        ("bulk requests", bulk),
        ("other requests", "%d  %s" % (other, json.dumps(result["other_by_route"]))),
        ("refused (429)", result["status_429"]),
        ("wall time", "%.1f s" % run["wall_s"]),
        ("ceiling time", "%.1f s  (max(bulk / %d per min, all / %d per s))" % (ceiling, bulk_per_minute, rps)),
        ("wall / ceiling", "%.3f  (target <= 1.05)" % ratio),
        ("bulk imports sent", "from %s s to %s s, %s per minute; %s not yet checked at the last one" % (
            phases.get("bulk_first_s"), phases.get("bulk_last_s"), phases.get("bulk_rate_per_min"),
            phases.get("unpolled_at_last_bulk"))),
        ("contacts in sandbox", after["contacts_total"]),
        ("list members (subscribed)", "not checked" if members is None else members),
        ("segpush: accepted", "%s  (members it recorded as delivered)" % run["accepted"]),
        ("segpush exit", run["exit"]),
    ], result)
    ok = (run["exit"] == 0 and after["contacts_total"] == args.profiles and members in (None, args.profiles)
          and run["accepted"] == args.profiles)
    return 0 if ok else 1


# ---- shared account --------------------------------------------------------------------------

def finished_runs(workdir, build_dir):
    """Statuses of the finished runs in the state file, by export."""
    binary = os.path.join(os.path.abspath(build_dir), "segpush")
    out = subprocess.run([binary, "--config", os.path.join(workdir, "segpush.yaml"), "runs", "list", "--json"],
                         cwd=workdir, env=dict(os.environ, AC_API_KEY=API_KEY), capture_output=True, text=True).stdout
    try:
        runs = json.loads(out)
    except ValueError:
        return {}
    return {run["export"]: run["status"] for run in runs if run["status"] != "running"}


def cmd_shared_account(args):
    s = args.scale
    with Workdir(args.keep) as work:
        sandbox, rps, bulk_per_minute = limited_sandbox(work, s, args.latency_ms)
        try:
            log("generating 2 x %d profiles" % args.profiles)
            generate(work, args.profiles, args.seed, name="one.csv")
            generate(work, args.profiles, args.seed + 1, name="two.csv")
            sandbox.start()
            # Both exports pace to the whole account's limits: the host's shared budget splits them.
            scheduled = '    schedule: "* * * * *"\n' if args.serve else ""
            write_config(work, args.build_dir, sandbox, rps, bulk_per_minute,
                         {"one": ("one.csv", LIST_ID, scheduled), "two": ("two.csv", LIST_ID + 1, scheduled)})
            before = sandbox.stats()
            if args.serve:
                # Both exports start at the next whole minute; the time counts from the first request.
                log("serve: waiting for the next whole minute")
                binary = os.path.join(os.path.abspath(args.build_dir), "segpush")
                env = dict(os.environ, AC_API_KEY=API_KEY, MC_API_KEY=MC_API_KEY, SEGPUSH_LOG_LEVEL="warn")
                with open(os.path.join(work, "serve.log"), "wb") as out:
                    serve = subprocess.Popen([binary, "--config", os.path.join(work, "segpush.yaml"), "serve"],
                                             cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
                started = None
                deadline = time.monotonic() + 200
                while time.monotonic() < deadline:
                    if started is None and sandbox.stats()["requests_total"] > before["requests_total"]:
                        started = time.monotonic()
                    if started is not None and len(finished_runs(work, args.build_dir)) == 2:
                        break
                    time.sleep(0.1)
                wall = time.monotonic() - started if started is not None else float("nan")
                phases = {}
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)
                statuses = finished_runs(work, args.build_dir)
                exits = [0 if statuses.get(name) == "succeeded" else 1 for name in ("one", "two")]
            else:
                log("two export runs started together (rate_scale %g: %d requests/s, %d bulk imports/min)" %
                    (s, rps, bulk_per_minute))
                results = {}
                threads = [threading.Thread(target=lambda name=name: results.__setitem__(
                    name, run_segpush(work, args.build_dir, "export", "run", name))) for name in ("one", "two")]
                with Timeline(sandbox) as timeline:
                    started = time.monotonic()
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    wall = time.monotonic() - started
                phases = timeline.summary()
                exits = [results[name]["exit"] for name in ("one", "two")]
            after = sandbox.stats()
            members = [sandbox.subscribed_members(list_id=list_id) for list_id in (LIST_ID, LIST_ID + 1)]
        finally:
            sandbox.stop()
    routes = route_delta(before, after)
    bulk = routes.get(BULK, 0)
    total = after["requests_total"] - before["requests_total"]
    ceiling = max(bulk / (bulk_per_minute / 60.0), total / float(rps))
    ratio = wall / ceiling if ceiling else float("nan")
    refusals = {"429": after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
                "rps_refusals": after["rps_refusals"] - before["rps_refusals"],
                "bulk_rate_refusals": after["bulk_rate_refusals"] - before["bulk_rate_refusals"]}
    result = {"benchmark": "shared-account", "mode": "serve" if args.serve else "processes",
              "profiles_each": args.profiles, "scale": s, "latency_ms": args.latency_ms, "rps": rps,
              "bulk_per_minute": bulk_per_minute, "bulk_requests": bulk, "other_requests": total - bulk,
              "refusals": refusals, "wall_s": round(wall, 2), "ceiling_s": round(ceiling, 2),
              "ratio": round(ratio, 3), "list_members": members, "exits": exits, "timeline": phases}
    print_table("shared account: two exports of %d profiles to one account (%s), limits x%g (%d req/s, %d bulk/min), "
                "%d ms latency" % (args.profiles, result["mode"], s, rps, bulk_per_minute, args.latency_ms), [
        ("bulk requests", bulk),
        ("other requests", total - bulk),
        ("refused", "%d (429), %d of them by the per-second limit; %d bulk imports over the per-minute limit" % (
            refusals["429"], refusals["rps_refusals"], refusals["bulk_rate_refusals"])),
        ("wall time", "%.1f s%s" % (wall, "  (from the first request)" if args.serve else "")),
        ("ceiling time", "%.1f s  (the pair: max(bulk / %d per min, all / %d per s))" % (ceiling, bulk_per_minute, rps)),
        ("wall / ceiling", "%.3f  (target <= 1.15)" % ratio),
        ("bulk imports sent", "from %s s to %s s, %s per minute" % (
            phases.get("bulk_first_s"), phases.get("bulk_last_s"), phases.get("bulk_rate_per_min"))),
        ("list members (subscribed)", "%d and %d" % tuple(members)),
        ("exits", exits),
    ], result)
    ok = exits == [0, 0] and members == [args.profiles, args.profiles] and not any(refusals.values())
    return 0 if ok else 1


# ---- host cost -------------------------------------------------------------------------------

def host_cost_once(args, build_dir, postgres=None):
    """One export with the sandbox's limits off; returns its figures as a dict."""
    with Workdir(args.keep) as work:
        sandbox = Sandbox(work, {"limits_enabled": False, "latency_ms": 0, "record_bodies": False,
                                 "record_requests": False})
        try:
            log("generating %d profiles" % args.profiles)
            generate(work, args.profiles, args.seed)
            sandbox.start()
            # The plugin paces to the account limits it is told; here: its schema's maxima.
            write_config(work, build_dir, sandbox, 1000, 10000, state=state_for(postgres))
            before = sandbox.stats()
            server_before = postgres.cpu_seconds() if postgres else 0.0
            log("export run (sandbox limits off, %s)" % build_dir)
            with Timeline(sandbox) as timeline:
                run = run_segpush(work, build_dir, "export", "run", EXPORT)
            server_cpu = postgres.cpu_seconds() - server_before if postgres else None
            after = sandbox.stats()
        finally:
            sandbox.stop()
    routes = route_delta(before, after)
    return {"benchmark": "host-cost", "build_dir": build_dir, "profiles": args.profiles, "state": args.state,
            "wall_s": round(run["wall_s"], 2), "profiles_per_s": round(args.profiles / run["wall_s"]),
            "cpu_s": round(run["cpu_s"], 2), "user_s": round(run["user_s"], 2), "sys_s": round(run["sys_s"], 2),
            "cpu_s_per_million": round(run["cpu_s"] / args.profiles * 1e6, 2),
            "peak_rss_mib": round(run["peak_rss_mib"], 1),
            "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
            "server_cpu_s_per_million": None if server_cpu is None else round(server_cpu / args.profiles * 1e6, 2),
            "requests": after["requests_total"] - before["requests_total"], "bulk_requests": routes.get(BULK, 0),
            "contacts_total": after["contacts_total"], "segpush_accepted": run["accepted"], "exit": run["exit"],
            "timeline": timeline.summary()}


def host_cost_ok(result):
    return (result["exit"] == 0 and result["contacts_total"] == result["profiles"]
            and result["segpush_accepted"] == result["profiles"])


def cmd_host_cost(args):
    with state_server(args) as postgres:
        return host_cost(args, postgres)


def host_cost(args, postgres):
    if args.repeat == 1 and not args.compare_build:
        result = host_cost_once(args, args.build_dir, postgres)
        timeline = result["timeline"]
        server_rows = [] if postgres is None else [
            ("PostgreSQL server CPU", "%.2f s  (%.2f per million; its backends serving segpush, and its own "
                                      "processes)" % (result["server_cpu_s"], result["server_cpu_s_per_million"]))]
        print_table("host-cost: %d profiles, sandbox limits off, %s state" % (args.profiles, args.state), [
            ("profiles", args.profiles),
            ("state", describe_state(postgres)),
            ("wall time", "%.1f s" % result["wall_s"]),
            ("profiles/s end to end", result["profiles_per_s"]),
            ("segpush CPU user+sys", "%.2f s  (user %.2f, sys %.2f)" % (result["cpu_s"], result["user_s"],
                                                                     result["sys_s"])),
            ("CPU s per million", "%.2f  (target <= 5)" % result["cpu_s_per_million"]),
        ] + server_rows + [
            ("segpush peak RSS", "%.1f MiB  (target at 1M <= 150 MB and <= 1.3 x at 100k)" % result["peak_rss_mib"]),
            ("requests (bulk)", "%d (%d)" % (result["requests"], result["bulk_requests"])),
            ("bulk imports sent", "from %s s to %s s; %s not yet checked at the last one" % (
                timeline.get("bulk_first_s"), timeline.get("bulk_last_s"), timeline.get("unpolled_at_last_bulk"))),
            ("contacts in sandbox", result["contacts_total"]),
            ("segpush: accepted", result["segpush_accepted"]),
            ("segpush exit", result["exit"]),
        ], result)
        return 0 if host_cost_ok(result) else 1
    # Repeated, and alternated with another build when comparing: on a shared machine one run's
    # CPU figure can be 15 % off, and a noisy minute should hit both builds alike.
    builds = [args.build_dir] + ([args.compare_build] if args.compare_build else [])
    runs = {build: [] for build in builds}
    for round_number in range(args.repeat):
        for build in builds:
            result = host_cost_once(args, build, postgres)
            runs[build].append(result)
            server = "" if postgres is None else "  server CPU %.2f s/M" % result["server_cpu_s_per_million"]
            print("round %d  %-30s CPU %.2f s/M%s  RSS %.1f MiB  wall %.1f s  exit %d" % (
                round_number + 1, build, result["cpu_s_per_million"], server, result["peak_rss_mib"],
                result["wall_s"], result["exit"]), flush=True)
    summary = {"benchmark": "host-cost", "profiles": args.profiles, "state": args.state, "repeat": args.repeat,
               "builds": {}}
    rows = []
    for build in builds:
        # A failed run (usually a short one) says nothing about the cost: left out, and counted.
        good = [r for r in runs[build] if host_cost_ok(r)]
        failed = len(runs[build]) - len(good)
        if not good:
            summary["builds"][build] = {"failed_runs": failed}
            rows.append((build, "every run failed (%d)" % failed))
            continue
        cpu = sorted(r["cpu_s_per_million"] for r in good)
        rss = sorted(r["peak_rss_mib"] for r in good)
        wall = sorted(r["wall_s"] for r in good)
        summary["builds"][build] = {"cpu_s_per_million": cpu, "peak_rss_mib": rss, "wall_s": wall, "failed_runs": failed,
                                    "cpu_median": statistics.median(cpu), "rss_median": statistics.median(rss)}
        server = ""
        if postgres is not None:
            server_cpu = sorted(r["server_cpu_s_per_million"] for r in good)
            summary["builds"][build]["server_cpu_s_per_million"] = server_cpu
            server = ";  server CPU s/M min %.2f  median %.2f  max %.2f" % (
                server_cpu[0], statistics.median(server_cpu), server_cpu[-1])
        rows.append((build, "CPU s/M min %.2f  median %.2f  max %.2f%s;  RSS MiB min %.1f  median %.1f  max %.1f;  "
                            "wall s median %.1f%s" % (
            cpu[0], statistics.median(cpu), cpu[-1], server, rss[0], statistics.median(rss), rss[-1],
            statistics.median(wall), "  (%d failed runs left out)" % failed if failed else "")))
    print_table("host-cost: %d profiles, %d runs a build, alternated, %s state" % (args.profiles, args.repeat,
                                                                                   args.state), rows, summary)
    return 0 if all(host_cost_ok(r) for results in runs.values() for r in results) else 1


# ---- refresh ---------------------------------------------------------------------------------

def cmd_refresh(args):
    with state_server(args) as postgres:
        return refresh(args, postgres)


def refresh(args, postgres):
    s = args.scale
    rps = int(round(AC_RPS * s))
    bulk_per_minute = int(round(AC_BULK_PER_MINUTE * s))
    with Workdir(args.keep) as work:
        # The first, full export is only the starting point: it runs with limits off.
        sandbox = Sandbox(work, {"limits_enabled": False, "latency_ms": 0, "record_bodies": False,
                                 "record_requests": False})
        try:
            log("generating %d profiles" % args.profiles)
            generate(work, args.profiles, args.seed)
            sandbox.start()
            state = state_for(postgres)
            write_config(work, args.build_dir, sandbox, 1000, 10000, state=state)
            log("first export (full, sandbox limits off)")
            first = run_segpush(work, args.build_dir, "export", "run", EXPORT)
            if first["exit"] != 0:
                raise SystemExit("the first export failed")
            log("changing %g of the members" % args.change)
            generate(work, args.profiles, args.seed, args.change)
            # The second run meets the same conditions as the ceiling benchmark.
            sandbox.set_config({"limits_enabled": True, "rate_scale": s, "latency_ms": args.latency_ms})
            write_config(work, args.build_dir, sandbox, rps, bulk_per_minute, state=state)
            before = sandbox.stats()
            server_before = postgres.cpu_seconds() if postgres else 0.0
            log("second export (limits x%g, %d ms latency)" % (s, args.latency_ms))
            run = run_segpush(work, args.build_dir, "export", "run", EXPORT)
            server_cpu = postgres.cpu_seconds() - server_before if postgres else None
            after = sandbox.stats()
            members, landed = (sandbox.subscribed_members(with_changed=True)
                               if args.profiles <= args.member_check_max else (None, None))
        finally:
            sandbox.stop()
    routes = route_delta(before, after)
    total = after["requests_total"] - before["requests_total"]
    changed = round(args.change * args.profiles)
    bulk_needed = math.ceil(changed / 250)
    result = {"benchmark": "refresh", "profiles": args.profiles, "changed": changed, "state": args.state,
              "scale": s, "latency_ms": args.latency_ms, "first_wall_s": round(first["wall_s"], 2),
              "first_cpu_s": round(first["cpu_s"], 2),
              "requests": total, "by_route": routes, "bulk_requests": routes.get(BULK, 0),
              "bulk_needed": bulk_needed, "wall_s": round(run["wall_s"], 2),
              "cpu_s": round(run["cpu_s"], 2), "peak_rss_mib": round(run["peak_rss_mib"], 1),
              "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
              "contacts_total": after["contacts_total"], "list_members": members,
              "members_with_change": landed, "segpush_accepted": run["accepted"], "exit": run["exit"]}
    rows = [("profiles / changed", "%d / %d" % (args.profiles, changed)),
            ("state", describe_state(postgres)),
            ("first run (full, limits off)", "%.1f s, CPU %.2f s" % (first["wall_s"], first["cpu_s"])),
            ("second run requests", "%d  (ceil(%d/250) = %d bulk needed; target <= %d + a few)" %
             (total, changed, bulk_needed, bulk_needed))]
    rows += [("  " + route, n) for route, n in sorted(routes.items())]
    rows += [("second run wall time", "%.1f s  (limits x%g, %d ms latency)" % (run["wall_s"], s, args.latency_ms)),
             ("second run CPU / peak RSS", "%.2f s / %.1f MiB" % (run["cpu_s"], run["peak_rss_mib"])),
             ] + ([] if postgres is None else [("second run PostgreSQL server CPU", "%.2f s" % server_cpu)]) + [
             ("contacts in sandbox", after["contacts_total"]),
             ("list members (subscribed)", "not checked" if members is None else members),
             ("members showing the change", "not checked" if landed is None else landed),
             ("segpush: accepted (first, second)", "%s, %s" % (first["accepted"], run["accepted"])),
             ("segpush exit", run["exit"])]
    print_table("refresh: %d profiles, %g changed, %s state" % (args.profiles, args.change, args.state), rows, result)
    return 0 if run["exit"] == 0 and landed in (None, changed) else 1


# ---- replicas --------------------------------------------------------------------------------

def replicas_config(work, build_dir, sandboxes, state, settle_seconds, rps, bulk_per_minute):
    """segpush.yaml for `replicas`: export eNN sends segment eNN.csv to list 1 of account NN (its
    own sandbox, so its own limits and budgets), on_change. The replicas share this file, so each
    health endpoint takes any free port."""
    names = ["e%02d" % (i + 1) for i in range(len(sandboxes))]
    text = 'plugin_dir: %s\n%sserve: { listen: "127.0.0.1:0" }\nsegments:\n' % (
        os.path.join(os.path.abspath(build_dir), "plugins"), state)
    text += "".join("  %s: { path: %s.csv }\n" % (name, name) for name in names)
    text += "connections:\n"
    text += "".join(ac_connection(name, sandbox, rps, bulk_per_minute) for name, sandbox in zip(names, sandboxes))
    text += "exports:\n"
    text += "".join("""  {name}:
    connection: {name}
    segments: [{name}]
    settings: {{ list_id: {list_id} }}
    mapping: {{ email: Email, first_name: FirstName, last_name: LastName, phone: Phone }}
    schedule: on_change
    settle_seconds: {settle}
""".format(name=name, list_id=LIST_ID, settle=settle_seconds) for name in names)
    with open(os.path.join(work, "segpush.yaml"), "w", encoding="utf-8") as fh:
        fh.write(text)
    return names


def process_cpu_seconds(pid):
    """User+sys CPU of a live process, all its threads (NaN once it has exited)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def all_runs(work, build_dir):
    binary = os.path.join(os.path.abspath(build_dir), "segpush")
    out = subprocess.run([binary, "--config", os.path.join(work, "segpush.yaml"), "runs", "list", "--limit", "10000",
                          "--json"], cwd=work, env=dict(os.environ, AC_API_KEY=API_KEY), capture_output=True,
                         text=True).stdout
    try:
        return json.loads(out)
    except ValueError:
        return []


def start_replica(work, build_dir, index):
    """`segpush serve --json`; it prints its one line on stdout once ready."""
    binary = os.path.join(os.path.abspath(build_dir), "segpush")
    env = dict(os.environ, AC_API_KEY=API_KEY, MC_API_KEY=MC_API_KEY, SEGPUSH_LOG_LEVEL="warn")
    ready = os.path.join(work, "replica%d.json" % index)
    with open(ready, "wb") as out, open(os.path.join(work, "replica%d.log" % index), "ab") as err:
        return subprocess.Popen([binary, "--config", os.path.join(work, "segpush.yaml"), "serve", "--json"],
                                cwd=work, env=env, stdout=out, stderr=err), ready


def stop_replicas(replicas):
    """SIGTERM, then each replica's exit status and resource usage."""
    for proc, _ in replicas:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    usages = []
    for proc, _ in replicas:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            usage = None
        usages.append(usage)
    return usages


def replicas_round(args, work, sandboxes, postgres, count, sources):
    """One measurement: `count` replicas, a new database, every sandbox emptied; all segments
    published at once. Returns its figures."""
    for sandbox in sandboxes:
        sandbox.request("POST", "/__sandbox/reset", {})
    names = replicas_config(work, args.build_dir, sandboxes, state_for(postgres), args.settle_seconds,
                            int(round(AC_RPS * args.scale)), int(round(AC_BULK_PER_MINUTE * args.scale)))
    replicas = []
    try:
        for index in range(count):
            replicas.append(start_replica(work, args.build_dir, index + 1))
        deadline = time.monotonic() + 60
        for proc, ready in replicas:
            while not open(ready, "rb").read().strip():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("a replica did not start:\n" + open(ready.replace(".json", ".log")).read()[-3000:])
                time.sleep(0.05)
        # The benchmark's own reads of the run history cost the server too (a connection each):
        # what one costs while the replicas wait is measured here, and taken off.
        calibration = 5
        idle_before = postgres.cpu_seconds()
        for _ in range(calibration):
            all_runs(work, args.build_dir)
        per_poll = (postgres.cpu_seconds() - idle_before) / calibration
        server_before = postgres.cpu_seconds()
        replica_before = [process_cpu_seconds(proc.pid) for proc, _ in replicas]
        log("%d replica(s) ready; publishing %d segments" % (count, len(names)))
        for name, source in zip(names, sources):
            shutil.copyfile(source, os.path.join(work, name + ".csv.tmp"))
        started = time.monotonic()
        for name in names:
            os.replace(os.path.join(work, name + ".csv.tmp"), os.path.join(work, name + ".csv"))
        deadline = started + args.timeout
        runs = []
        polls = 0
        while time.monotonic() < deadline:
            runs = all_runs(work, args.build_dir)
            polls += 1
            if len({r["export"] for r in runs if r["status"] != "running"}) == len(names):
                break
            time.sleep(args.poll_seconds)
        else:
            log("not every export finished within %d s" % args.timeout)
        wall = time.monotonic() - started
        replica_cpu = [process_cpu_seconds(proc.pid) - before for (proc, _), before in zip(replicas, replica_before)]
        server_cpu = postgres.cpu_seconds() - server_before
        # Long enough for a second run of any export to have started, had one been claimed twice.
        time.sleep(args.settle_seconds + 2)
        runs = all_runs(work, args.build_dir)
    finally:
        usages = stop_replicas(replicas)
    members = [sandbox.subscribed_members() for sandbox in sandboxes]
    by_export = {name: [r for r in runs if r["export"] == name] for name in names}
    once = sum(1 for name in names if len(by_export[name]) == 1 and by_export[name][0]["status"] == "succeeded")
    pids = [proc.pid for proc, _ in replicas]
    per_replica = [sum(1 for r in runs if r["pid"] == pid) for pid in pids]
    return {"replicas": count, "wall_s": round(wall, 2), "replica_cpu_s": [round(c, 2) for c in replica_cpu],
            "replica_cpu_total_s": round(sum(replica_cpu), 2),
            "server_cpu_s": round(max(server_cpu - polls * per_poll, 0.0), 2), "polls": polls,
            "server_cpu_per_poll_s": round(per_poll, 3),
            "replica_peak_rss_mib": [None if u is None else round(u.ru_maxrss / 1024.0, 1) for u in usages],
            "runs_per_replica": per_replica, "runs": len(runs), "exports_run_once": once,
            "lists_complete": sum(1 for m in members if m == args.profiles),
            "statuses": sorted({r["status"] for r in runs}), "replica_exits": [proc.returncode for proc, _ in replicas]}


def cmd_replicas(args):
    counts = [int(c) for c in args.replicas.split(",")]
    with Workdir(args.keep) as work, PostgresServer() as postgres:
        log("generating %d segments of %d profiles" % (args.exports, args.profiles))
        sources = []
        for i in range(args.exports):
            sources.append(os.path.join(work, "source-%02d.csv" % (i + 1)))
            generate(work, args.profiles, args.seed + i, name=os.path.basename(sources[-1]))
            # The segments as they are when the replicas start count as seen: publishing replaces them.
            shutil.copyfile(sources[-1], os.path.join(work, "e%02d.csv" % (i + 1)))
        sandboxes = [Sandbox(work, {"limits_enabled": True, "rate_scale": args.scale, "latency_ms": args.latency_ms,
                                    "record_bodies": False, "record_requests": False}, name="account%02d" % (i + 1))
                     for i in range(args.exports)]
        try:
            sandboxes[0].make_certificate()
            for sandbox in sandboxes:
                sandbox.launch()
            for sandbox in sandboxes:
                sandbox.wait_ready()
            results = [replicas_round(args, work, sandboxes, postgres, count, sources) for count in counts]
        finally:
            for sandbox in sandboxes:
                sandbox.stop()
    rows = [("exports", "%d, each of %d profiles to its own account (a sandbox each: limits x%g, %d ms latency), "
                        "schedule on_change, settle %d s" % (args.exports, args.profiles, args.scale, args.latency_ms,
                                                             args.settle_seconds)),
            ("state", "PostgreSQL on 127.0.0.1 (%s), shared by the replicas" % POSTGRES_SETTINGS)]
    for r in results:
        rows += [("%d replica%s" % (r["replicas"], "" if r["replicas"] == 1 else "s"), ""),
                 ("  wall, publish to all finished", "%.1f s" % r["wall_s"]),
                 ("  replicas' CPU (user+sys)", "%.2f s  (%s)" % (r["replica_cpu_total_s"],
                                                                 ", ".join("%.2f" % c for c in r["replica_cpu_s"]))),
                 ("  PostgreSQL server CPU", "%.2f s  (less the benchmark's %d reads of `runs list`, %.3f s each)" % (
                     r["server_cpu_s"], r["polls"], r["server_cpu_per_poll_s"])),
                 ("  runs per replica", " / ".join(str(n) for n in r["runs_per_replica"])),
                 ("  exports run exactly once", "%d of %d (%d runs: %s)" % (r["exports_run_once"], args.exports,
                                                                          r["runs"], ", ".join(r["statuses"]))),
                 ("  lists complete", "%d of %d" % (r["lists_complete"], args.exports)),
                 ("  replicas' peak RSS", ", ".join("%s MiB" % m for m in r["replica_peak_rss_mib"]))]
    result = {"benchmark": "replicas", "exports": args.exports, "profiles_each": args.profiles, "scale": args.scale,
              "latency_ms": args.latency_ms, "settle_seconds": args.settle_seconds, "rounds": results}
    print_table("replicas: %d on_change exports published at once, %s replica(s) sharing a PostgreSQL state" % (
        args.exports, " vs ".join(str(c) for c in counts)), rows, result)
    ok = all(r["exports_run_once"] == args.exports and r["runs"] == args.exports
             and r["lists_complete"] == args.exports for r in results)
    return 0 if ok else 1


# ---- mailchimp -------------------------------------------------------------------------------

def write_mailchimp_config(workdir, build_dir, sandbox):
    text = """plugin_dir: {plugins}
{state}segments:
  {name}: {{ path: segment.csv }}
connections:
  mc:
    plugin: mailchimp
    privacy_consent: true
    settings:
      api_key: ${{env:MC_API_KEY}}
      server: "https://{host}/3.0"
      ca_bundle: "{cert}"
exports:
  {name}:
    connection: mc
    segments: [{name}]
    settings: {{ list_id: {list} }}
    mapping: {{ email: Email, first_name: FirstName, last_name: LastName }}
""".format(plugins=os.path.join(os.path.abspath(build_dir), "plugins"), state=SQLITE_STATE, name=EXPORT,
           host=sandbox.host(), cert=sandbox.cert, list=MC_LIST)
    with open(os.path.join(workdir, "segpush.yaml"), "w", encoding="utf-8") as fh:
        fh.write(text)


def mailchimp_run(work, args, sandbox, label, latency_ms):
    """One `export run`, its requests by route, and the time Mailchimp's limit allows for them:
    every request holds one of the key's 10 connections for latency_ms, so no client can do
    them in less than requests x latency / 10."""
    before = sandbox.stats()
    sandbox_cpu = process_cpu_seconds(sandbox.proc.pid)
    log("export run (%s)" % label)
    run = run_segpush(work, args.build_dir, "export", "run", EXPORT)
    # The sandbox shares the machine's cores with segpush: when it is busy, the run waits on it.
    sandbox_cpu = process_cpu_seconds(sandbox.proc.pid) - sandbox_cpu
    after = sandbox.stats()
    routes = route_delta(before, after)
    requests = after["requests_total"] - before["requests_total"]
    floor = requests * latency_ms / 1000.0 / MC_CONNECTIONS
    # The sandbox's own work on a request (reading 500 members, under Python's one lock) also
    # holds the slot: the time slots were held, over 10, is what the limit allows for the
    # answers this service actually gave.
    held = (after["slot_seconds"] - before["slot_seconds"]) / MC_CONNECTIONS
    return {"label": label, "latency_ms": latency_ms, "wall_s": round(run["wall_s"], 2), "floor_s": round(floor, 2),
            "ratio": round(run["wall_s"] / floor, 3) if floor else None, "held_floor_s": round(held, 2),
            "held_ratio": round(run["wall_s"] / held, 3) if held else None, "requests": requests, "routes": routes,
            "status_429": after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
            "max_in_flight": after.get("max_in_flight"), "cpu_s": round(run["cpu_s"], 2),
            "sandbox_cpu_s": round(sandbox_cpu, 1),
            "peak_rss_mib": round(run["peak_rss_mib"], 1), "accepted": run["accepted"], "exit": run["exit"]}


def cmd_mailchimp(args):
    # The generator's addresses are at example.com, which Mailchimp (and its sandbox) call fake.
    config = {"latency_ms": args.latency_ms, "max_connections": MC_CONNECTIONS, "record_requests": False,
              "record_bodies": False, "fake_email_pattern": r"@fake\.invalid$"}
    runs = []
    with Workdir(args.keep) as work:
        sandbox = MailchimpSandbox(work, config)
        try:
            log("generating %d profiles" % args.profiles)
            generate(work, args.profiles, args.seed)
            sandbox.start()
            write_mailchimp_config(work, args.build_dir, sandbox)
            runs.append(mailchimp_run(work, args, sandbox, "first load", args.latency_ms))
            log("first load: " + json.dumps(runs[-1]))
            if args.change > 0:
                generate(work, args.profiles, args.seed, change=args.change)
                sandbox.set_config({"latency_ms": args.refresh_latency_ms})
                runs.append(mailchimp_run(work, args, sandbox, "refresh, %g changed" % args.change,
                                          args.refresh_latency_ms))
            statuses = sandbox.statuses() if args.profiles <= args.member_check_max else None
        finally:
            sandbox.stop()
    rows = []
    for r in runs:
        rows += [
            ("%s: wall time" % r["label"], "%.1f s" % r["wall_s"]),
            ("%s: requests" % r["label"], "%d  %s" % (r["requests"], json.dumps(r["routes"]))),
            ("%s: floor" % r["label"], "%.1f s  (requests x %d ms / %d connections)" % (
                r["floor_s"], r["latency_ms"], MC_CONNECTIONS)),
            ("%s: wall / floor" % r["label"], "%s" % r["ratio"]),
            ("%s: slots held / 10" % r["label"], "%.1f s  (the sandbox's answer times; wall / that: %s)" % (
                r["held_floor_s"], r["held_ratio"])),
            ("%s: refused (429)" % r["label"], r["status_429"]),
            ("%s: most in flight" % r["label"], r["max_in_flight"]),
            ("%s: segpush CPU, peak RSS" % r["label"], "%.1f s, %.0f MiB" % (r["cpu_s"], r["peak_rss_mib"])),
            ("%s: sandbox CPU" % r["label"], "%.1f s" % r["sandbox_cpu_s"]),
            ("%s: segpush accepted, exit" % r["label"], "%s, %s" % (r["accepted"], r["exit"])),
        ]
    rows.append(("audience by status", "not checked" if statuses is None else json.dumps(statuses)))
    result = {"benchmark": "mailchimp", "profiles": args.profiles, "connections": MC_CONNECTIONS, "runs": runs, "statuses": statuses}
    print_table("mailchimp: %d profiles, %d connections" % (args.profiles, MC_CONNECTIONS), rows, result)
    changed = round(args.change * args.profiles)
    ok = (all(r["exit"] == 0 for r in runs) and runs[0]["accepted"] == args.profiles
          and statuses in (None, {"subscribed": args.profiles})
          and (len(runs) < 2 or runs[1]["accepted"] == changed))
    return 0 if ok else 1


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more, not %s" % text)
    return value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, profiles=None):
        if profiles:
            p.add_argument("--profiles", type=int, default=profiles, help="profiles (default %d)" % profiles)
        else:
            p.add_argument("--profiles", type=int, required=True)
        p.add_argument("--seed", type=int, default=1, help="profile generator seed (default 1)")
        p.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                       help="build whose segpush and plugins/ are measured (default build)")
        p.add_argument("--keep", action="store_true", help="keep the temporary directory")
        p.add_argument("--member-check-max", type=int, default=2000000,
                       help="count the list's members through the control API up to this many profiles")

    def state_option(p):
        p.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite",
                       help="where segpush keeps its state: an SQLite file (default) or a PostgreSQL server the "
                            "benchmark starts (fsync on)")

    p = sub.add_parser("ceiling", help="wall time against the time ActiveCampaign's limits force")
    common(p)
    p.add_argument("--scale", type=float, default=1.0, help="rate_scale: multiplies the limits (default 1)")
    p.add_argument("--latency-ms", type=int, default=200, help="added latency per request (default 200)")
    p.set_defaults(func=cmd_ceiling)

    p = sub.add_parser("host-cost", help="CPU and memory of the segpush process, limits off")
    common(p)
    p.add_argument("--repeat", type=positive_int, default=1,
                   help="runs a build; the figures' spread is printed (default 1)")
    p.add_argument("--compare-build", metavar="DIR",
                   help="another build measured alternately with --build-dir, --repeat times each")
    state_option(p)
    p.set_defaults(func=cmd_host_cost)

    p = sub.add_parser("refresh", help="second run after changing a fraction of the members")
    common(p)
    p.add_argument("--change", type=float, default=0.01, help="fraction of members changed (default 0.01)")
    p.add_argument("--scale", type=float, default=20.0, help="rate_scale for the second run (default 20)")
    p.add_argument("--latency-ms", type=int, default=200, help="added latency per request, second run (default 200)")
    state_option(p)
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("shared-account", help="two exports to one account at once: refusals and wall time "
                                              "against what the account's limits allow")
    common(p)
    p.add_argument("--scale", type=float, default=10.0, help="rate_scale: multiplies the limits (default 10)")
    p.add_argument("--latency-ms", type=int, default=0, help="added latency per request (default 0)")
    p.add_argument("--serve", action="store_true",
                   help="both exports scheduled in one `segpush serve` instead of two `export run` processes")
    p.set_defaults(func=cmd_shared_account)

    p = sub.add_parser("replicas", help="on_change exports to their own accounts, published at once, run by 1 "
                                        "or more `segpush serve` replicas sharing a PostgreSQL state")
    common(p, profiles=2000)
    p.add_argument("--exports", type=positive_int, default=30, help="exports, each to its own account (default 30)")
    p.add_argument("--replicas", default="1,3", help="replica counts measured in turn (default 1,3)")
    p.add_argument("--scale", type=float, default=1.0, help="rate_scale of each account's limits (default 1)")
    p.add_argument("--latency-ms", type=int, default=200, help="added latency per request (default 200)")
    p.add_argument("--settle-seconds", type=positive_int, default=1, help="the exports' settle_seconds (default 1)")
    p.add_argument("--poll-seconds", type=float, default=0.5, help="how often `runs list` is read (default 0.5)")
    p.add_argument("--timeout", type=int, default=900, help="give up on a round after this many seconds")
    p.set_defaults(func=cmd_replicas)

    p = sub.add_parser("mailchimp", help="a first load (and a refresh) into the Mailchimp sandbox: wall time "
                                         "against what its 10 connections allow")
    common(p)
    p.add_argument("--latency-ms", type=int, default=1000,
                   help="time each request of the first load holds a connection (default 1000: a 500-member "
                        "batch)")
    p.add_argument("--refresh-latency-ms", type=int, default=200,
                   help="the same for the refresh, mostly one-member PUTs (default 200)")
    p.add_argument("--change", type=float, default=0.01,
                   help="then a refresh with this fraction of members changed (default 0.01; 0: none)")
    p.set_defaults(func=cmd_mailchimp)

    args = ap.parse_args(argv)
    # Stopped by SIGTERM, clean up as for Ctrl-C: servers stopped, temporary directories removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
