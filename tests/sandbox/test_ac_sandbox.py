"""Self-tests of the ActiveCampaign sandbox (tests/sandbox/ac_sandbox.py).

Run: cd /work/main && python3 -m unittest discover -s tests/sandbox -p "test_*.py"
"""

import calendar
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "ac_sandbox.py")
KEY = "good-key-123"
LAPSED = "lapsed-key-456"

_tmp = None
_cert = None
_key = None


def setUpModule():
    global _tmp, _cert, _key
    _tmp = tempfile.mkdtemp(prefix="ac_sandbox_test_")
    _cert = os.path.join(_tmp, "cert.pem")
    _key = os.path.join(_tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", _key, "-out", _cert, "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


class Sandbox:
    def __init__(self, extra_args=()):
        self.port_file = os.path.join(_tmp, "port-%d-%f" % (os.getpid(), time.time()))
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--cert", _cert, "--key", _key,
             "--port-file", self.port_file, "--api-key", KEY, "--lapsed-key", LAPSED,
             *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("sandbox did not start: %r" % (self.proc.communicate(),))
            time.sleep(0.02)
        with open(self.port_file) as fh:
            self.port = int(fh.read().strip())
        self.ctx = ssl.create_default_context(cafile=_cert)
        self.conn = None

    def stop(self):
        if self.conn:
            self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err

    def connect(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)

    def request(self, method, path, body=None, key=KEY, raw=None, headers=None):
        """Returns (status, headers dict, body bytes) on a persistent connection."""
        if self.conn is None:
            self.conn = self.connect()
        h = {"Accept": "application/json"}
        if key is not None:
            h["Api-Token"] = key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            payload = r.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload

    def json(self, method, path, body=None, key=KEY, expect=200):
        status, _, payload = self.request(method, path, body, key)
        if expect is not None and status != expect:
            raise AssertionError("%s %s -> %d %r" % (method, path, status, payload[:300]))
        return json.loads(payload) if payload else None

    def control(self, method, path, body=None):
        return self.json(method, "/__sandbox/" + path, body, key=None, expect=None)

    def wait_import(self, batch_id, want=("completed", "failed"), timeout=5.0):
        deadline = time.time() + timeout
        seen = []
        while time.time() < deadline:
            info = self.json("GET", "/api/3/import/info?batchId=" + batch_id)
            if not seen or seen[-1] != info["status"]:
                seen.append(info["status"])
            if info["status"] in want:
                return info, seen
            time.sleep(0.02)
        raise AssertionError("import %s stuck; statuses seen %r" % (batch_id, seen))


def contact(email, **kw):
    c = {"email": email}
    c.update(kw)
    return c


def bulk(contacts):
    return {"contacts": contacts}


BASE_CONFIG = {"limits_enabled": False, "rate_scale": 1.0, "rps_limit": 5,
               "bulk_per_minute": 100, "bulk_single_per_minute": 20,
               "import_delay_ms": 0, "record_bodies": True, "record_requests": True,
               "clock_offset_seconds": 0, "timezone_offset": "-05:00",
               "unsubscribed_in_failure": False, "failure_index_base": 0}

TS_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}-05:00$"


def parse_ts(text):
    """Seconds since the epoch of an AC timestamp such as 2026-12-05T10:03:23-05:00."""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})([+-])(\d{2}):(\d{2})$", text)
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    off = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (-1 if m.group(7) == "-" else 1)
    return calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) - off


class SandboxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(["--list", "1:Main list", "--list", "7"])

    @classmethod
    def tearDownClass(cls):
        rc, out, err = cls.sb.stop()
        assert rc == 0, (rc, err)
        assert err == b"", err  # quiet: no per-request logging

    def setUp(self):
        self.sb.control("POST", "reset")
        cfg = self.sb.control("POST", "config", BASE_CONFIG)
        self.assertFalse(cfg["limits_enabled"])

    # --- auth

    def test_bad_and_missing_key_403_empty_body(self):
        for key in ("wrong", None, ""):
            status, headers, payload = self.sb.request("GET", "/api/3/users/me", key=key)
            self.assertEqual(status, 403)
            self.assertEqual(payload, b"")
            self.assertNotIn("content-type", headers)
            self.assertEqual(headers["content-length"], "0")

    def test_lapsed_key_402_empty_body(self):
        for path in ("/api/3/users/me", "/api/3/lists/1", "/api/3/contacts?listid=1"):
            status, _, payload = self.sb.request("GET", path, key=LAPSED)
            self.assertEqual(status, 402)
            self.assertEqual(payload, b"")

    def test_users_me_and_lists(self):
        me = self.sb.json("GET", "/api/3/users/me")
        self.assertEqual(me["user"]["id"], "1")
        lst = self.sb.json("GET", "/api/3/lists/1")
        self.assertEqual(lst["list"]["id"], "1")
        self.assertEqual(lst["list"]["name"], "Main list")
        self.assertEqual(self.sb.json("GET", "/api/3/lists/7")["list"]["name"], "List 7")
        self.assertEqual(self.sb.json("GET", "/api/3/lists/99", expect=404),
                         {"message": "No Result found for _List with id 99"})
        self.assertEqual(self.sb.request("GET", "/api/3/nope")[0], 404)

    def test_fields_paged(self):
        for i in range(1, 26):
            self.sb.control("POST", "fields", {"id": i, "title": "F%d" % i, "perstag": "F%d" % i})
        page = self.sb.json("GET", "/api/3/fields")
        self.assertEqual(len(page["fields"]), 20)  # default page size
        self.assertEqual(page["meta"]["total"], "25")
        page = self.sb.json("GET", "/api/3/fields?limit=10&offset=20")
        self.assertEqual([f["id"] for f in page["fields"]], ["21", "22", "23", "24", "25"])
        self.assertEqual(page["fields"][0]["perstag"], "F21")
        self.assertIn("fieldOptions", page)

    # --- bulk import

    def test_bulk_import_completes_and_lists_members(self):
        self.sb.control("POST", "fields", {"id": 3, "title": "Plan", "perstag": "PLAN"})
        contacts = [contact("user%03d@example.com" % i, first_name="F%d" % i, last_name="L",
                            phone="555-%04d" % i, tags=["vip"], fields=[{"id": 3, "value": "gold"}],
                            subscribe=[{"listid": 1}])
                    for i in range(150)]
        st, _, payload = self.sb.request("POST", "/api/3/import/bulk_import", bulk(contacts))
        self.assertEqual(st, 200)
        resp = json.loads(payload)
        self.assertEqual(resp["Success"], 1)
        self.assertEqual(resp["queued_contacts"], 150)
        self.assertEqual(resp["message"], "Contact import queued")
        self.assertRegex(resp["batchId"], r"^[0-9a-f-]{36}$")
        info, _ = self.sb.wait_import(resp["batchId"])
        self.assertEqual(info["status"], "completed")
        self.assertEqual(len(info["success"]), 150)
        self.assertTrue(all(isinstance(x, str) for x in info["success"]))
        self.assertEqual(info["failure"], [])
        # paging through /contacts?listid=
        got = []
        offset = 0
        while True:
            page = self.sb.json("GET", "/api/3/contacts?listid=1&limit=100&offset=%d" % offset)
            self.assertEqual(page["meta"]["total"], "150")
            if not page["contacts"]:
                break
            self.assertLessEqual(len(page["contacts"]), 100)
            got += [c["email"] for c in page["contacts"]]
            offset += len(page["contacts"])
        self.assertEqual(got, ["user%03d@example.com" % i for i in range(150)])
        # limit above 100 is clamped
        page = self.sb.json("GET", "/api/3/contacts?listid=1&limit=500")
        self.assertEqual(len(page["contacts"]), 100)
        members = self.sb.control("GET", "lists/1/members")
        self.assertEqual(len(members), 150)
        self.assertRegex(members[5].pop("udate"), TS_RE)
        self.assertEqual(members[5], {"email": "user005@example.com", "first_name": "F5",
                                      "last_name": "L", "phone": "555-0005",
                                      "fields": {"3": "gold"}, "tags": ["vip"],
                                      "status": "subscribed", "sourceid": "0"})
        self.assertEqual(self.sb.control("GET", "lists/7/members"), [])
        stats = self.sb.control("GET", "stats")
        self.assertEqual(stats["contacts_imported"], 150)

    def test_import_status_progression_with_delay(self):
        self.sb.control("POST", "config", {"import_delay_ms": 600})
        resp = self.sb.json("POST", "/api/3/import/bulk_import",
                            bulk([contact("a@example.com", subscribe=[{"listid": 1}]),
                                  contact("b@example.com")]))
        info, seen = self.sb.wait_import(resp["batchId"])
        self.assertEqual(seen[0], False)
        self.assertEqual(seen[-1], "completed")
        order = [False, "waiting", "claimed", "active", "completed"]
        self.assertEqual(seen, [s for s in order if s in seen])
        self.assertIn("active", seen)

    def test_case_insensitive_dedupe_and_unsubscribe(self):
        r1 = self.sb.json("POST", "/api/3/import/bulk_import", bulk([
            contact("Jane.Doe@Example.com", first_name="Jane", subscribe=[{"listid": 1}]),
            contact("bob@example.com", subscribe=[{"listid": 1}])]))
        info1, _ = self.sb.wait_import(r1["batchId"])
        r2 = self.sb.json("POST", "/api/3/import/bulk_import", bulk([
            contact("jane.doe@EXAMPLE.COM", last_name="Doe"),
            contact("BOB@example.com", unsubscribe=[{"listid": 1}])]))
        info2, _ = self.sb.wait_import(r2["batchId"])
        self.assertEqual(len(info1["success"]), 2)
        self.assertEqual(info2["success"], [])  # nothing newly created
        members = self.sb.control("GET", "lists/1/members")
        self.assertEqual([(m["email"], m["first_name"], m["last_name"], m["status"])
                          for m in members],
                         [("Jane.Doe@Example.com", "Jane", "Doe", "subscribed"),
                          ("bob@example.com", "", "", "unsubscribed")])
        page = self.sb.json("GET", "/api/3/contacts?listid=1")
        self.assertEqual([c["email"] for c in page["contacts"]], ["Jane.Doe@Example.com"])
        self.assertEqual(page["meta"]["total"], "1")
        unsub = self.sb.json("GET", "/api/3/contacts?listid=1&status=2")
        self.assertEqual([c["email"] for c in unsub["contacts"]], ["bob@example.com"])
        both = self.sb.json("GET", "/api/3/contacts?listid=1&status=-1&id_greater=%s"
                            % info1["success"][0])
        self.assertEqual([c["email"] for c in both["contacts"]], ["bob@example.com"])
        # bulk subscribe cannot re-subscribe; contactLists status 1 can
        r3 = self.sb.json("POST", "/api/3/import/bulk_import",
                          bulk([contact("bob@example.com", subscribe=[{"listid": 1}]),
                                contact("x@example.com")]))
        self.sb.wait_import(r3["batchId"])
        self.assertEqual(self.sb.control("GET", "lists/1/members")[1]["status"], "unsubscribed")
        bob_id = int(info1["success"][1])
        cl = self.sb.json("POST", "/api/3/contactLists",
                          {"contactList": {"list": 1, "contact": bob_id, "status": 1}})
        self.assertEqual(cl["contactList"]["status"], 1)
        self.assertEqual(self.sb.control("GET", "lists/1/members")[1]["status"], "subscribed")

    def test_contact_sync_blank_overwrites(self):
        r = self.sb.json("POST", "/api/3/contact/sync",
                         {"contact": {"email": "Sync@Example.com", "firstName": "Ann",
                                      "lastName": "Lee", "fieldValues": [{"field": "2", "value": "x"}]}},
                         expect=201)
        cid = r["contact"]["id"]
        self.assertEqual(r["contact"]["firstName"], "Ann")
        r = self.sb.json("POST", "/api/3/contact/sync",
                         {"contact": {"email": "sync@example.com", "firstName": "",
                                      "fieldValues": [{"field": "2", "value": ""}]}}, expect=201)
        self.assertEqual(r["contact"]["id"], cid)
        self.assertEqual(r["contact"]["firstName"], "")
        self.assertEqual(r["contact"]["lastName"], "Lee")  # omitted: unchanged
        self.assertEqual(self.sb.control("GET", "stats")["blank_overwrites"], 2)
        bad = self.sb.json("POST", "/api/3/contact/sync", {"contact": {"email": "nope"}},
                           expect=422)
        self.assertEqual(bad["errors"][0]["code"], "email_invalid")
        miss = self.sb.json("POST", "/api/3/contactLists",
                            {"contactList": {"list": 42, "contact": int(cid), "status": 1}},
                            expect=422)
        self.assertEqual(miss["errors"][0]["code"], "related_missing")
        self.sb.json("POST", "/api/3/contactLists",
                     {"contactList": {"list": 7, "contact": int(cid), "status": 1}})
        self.assertEqual([m["email"] for m in self.sb.control("GET", "lists/7/members")],
                         ["Sync@Example.com"])

    def test_251_contacts_refused(self):
        contacts = [contact("c%d@example.com" % i) for i in range(251)]
        st, _, payload = self.sb.request("POST", "/api/3/import/bulk_import", bulk(contacts))
        self.assertEqual(st, 400)
        body = json.loads(payload)
        self.assertEqual(body["success"], 0)
        self.assertIn("failureReasons", body)
        ok = self.sb.json("POST", "/api/3/import/bulk_import", bulk(contacts[:250]))
        self.assertEqual(ok["queued_contacts"], 250)

    def test_body_too_large_refused(self):
        big = "x" * 2000
        contacts = [contact("c%d@example.com" % i, first_name=big) for i in range(200)]
        st, _, payload = self.sb.request("POST", "/api/3/import/bulk_import", bulk(contacts))
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(payload)["success"], 0)
        self.assertEqual(self.sb.control("GET", "stats")["contacts_imported"], 0)

    def test_whole_batch_failure_reasons(self):
        contacts = [contact("ok%d@example.com" % i, subscribe=[{"listid": 1}]) for i in range(5)]
        contacts[2] = contact("invalid.email@invalidDomain")
        contacts[4] = {"first_name": "no email"}
        st, _, payload = self.sb.request("POST", "/api/3/import/bulk_import", bulk(contacts))
        self.assertEqual(st, 400)
        body = json.loads(payload)
        self.assertEqual(body["success"], 0)
        self.assertTrue(body["message"].startswith("JSON payload did not pass validation."))
        self.assertEqual([r["contact"] for r in body["failureReasons"]], [2, 4])
        self.assertEqual(body["failureReasons"][0]["failureReason"],
                         "Field\u2018 email\u2019 incorrect format")
        time.sleep(0.1)
        self.assertEqual(self.sb.control("GET", "lists/1/members"), [])
        self.assertEqual(self.sb.json("GET", "/api/3/import/info", expect=400),
                         {"success": 0, "message": "'batchId' is a required field."})

    # --- limits

    def test_rate_limit_429_retry_after(self):
        self.sb.control("POST", "config", {"limits_enabled": True})
        statuses = []
        retry = None
        for _ in range(10):
            st, headers, payload = self.sb.request("GET", "/api/3/users/me")
            statuses.append(st)
            if st == 429:
                retry = headers.get("retry-after")
                self.assertEqual(json.loads(payload), {"message": "Too Many Requests"})
        self.assertEqual(statuses[:5], [200] * 5)
        self.assertIn(429, statuses)
        self.assertIsNotNone(retry)
        self.assertGreaterEqual(int(retry), 1)
        time.sleep(1.05)
        self.assertEqual(self.sb.request("GET", "/api/3/users/me")[0], 200)

    def test_bulk_limit_with_small_rate_scale(self):
        # rate_scale 0.03 -> 3 multi-contact imports per minute; rps_limit raised so
        # the per-second limit does not interfere.
        self.sb.control("POST", "config", {"limits_enabled": True, "rate_scale": 0.03,
                                           "rps_limit": 1000})
        for i in range(3):
            self.sb.json("POST", "/api/3/import/bulk_import",
                         bulk([contact("b%d@example.com" % i, subscribe=[{"listid": 1}]),
                               contact("b%d-2@example.com" % i)]))
        st, headers, payload = self.sb.request(
            "POST", "/api/3/import/bulk_import",
            bulk([contact("late@example.com", subscribe=[{"listid": 1}]),
                  contact("late2@example.com")]))
        self.assertEqual(st, 400)
        body = json.loads(payload)
        self.assertEqual(body["success"], 0)
        self.assertEqual(body["message"], "Rate limit exceeded.")
        self.assertTrue(body["failureReasons"][0].startswith("Up to 100 imports"))
        time.sleep(0.2)
        emails = [m["email"] for m in self.sb.control("GET", "lists/1/members")]
        self.assertEqual(sorted(emails), ["b0@example.com", "b1@example.com", "b2@example.com"])
        # 429 variant
        self.sb.control("POST", "config", {"bulk_limit_status": 429})
        st, headers, _ = self.sb.request("POST", "/api/3/import/bulk_import",
                                         bulk([contact("l@example.com"), contact("m@example.com")]))
        self.assertEqual(st, 429)
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.sb.control("POST", "config", {"bulk_limit_status": 400})

    # --- faults

    def test_storm_429(self):
        self.sb.control("POST", "config", {"storm_429": 3, "retry_after_seconds": 2})
        results = [self.sb.request("GET", "/api/3/users/me") for _ in range(4)]
        self.assertEqual([r[0] for r in results], [429, 429, 429, 200])
        self.assertEqual(results[0][1]["retry-after"], "2")
        # control routes are never faulted
        self.assertEqual(self.sb.control("GET", "stats")["by_status"], {"429": 3, "200": 1})

    def test_fail_next_imports(self):
        self.sb.control("POST", "config", {"fail_next_imports": 1})
        r1 = self.sb.json("POST", "/api/3/import/bulk_import",
                          bulk([contact("f1@example.com", subscribe=[{"listid": 1}]),
                                contact("f2@example.com")]))
        r2 = self.sb.json("POST", "/api/3/import/bulk_import",
                          bulk([contact("g1@example.com", subscribe=[{"listid": 1}]),
                                contact("g2@example.com")]))
        info1, _ = self.sb.wait_import(r1["batchId"])
        info2, _ = self.sb.wait_import(r2["batchId"])
        self.assertEqual(info1["status"], "failed")
        self.assertEqual(info1["success"], [])
        self.assertEqual(info1["failure"], ["f1@example.com", "f2@example.com"])
        self.assertEqual(info2["status"], "completed")
        self.assertEqual([m["email"] for m in self.sb.control("GET", "lists/1/members")],
                         ["g1@example.com"])

    def test_stuck_imports(self):
        self.sb.control("POST", "config", {"stuck_imports": True})
        r = self.sb.json("POST", "/api/3/import/bulk_import",
                         bulk([contact("s1@example.com", subscribe=[{"listid": 1}]),
                               contact("s2@example.com")]))
        time.sleep(0.3)
        info = self.sb.json("GET", "/api/3/import/info?batchId=" + r["batchId"])
        self.assertEqual(info["status"], "active")
        self.assertEqual(self.sb.control("GET", "lists/1/members"), [])
        self.sb.control("POST", "config", {"stuck_imports": False})
        info, _ = self.sb.wait_import(r["batchId"])
        self.assertEqual(info["status"], "completed")
        self.assertEqual(len(self.sb.control("GET", "lists/1/members")), 1)

    def test_drop_rate_closes_connection(self):
        self.sb.control("POST", "config", {"drop_rate": 1.0})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError,
                                http.client.BadStatusLine, ssl.SSLError)):
            self.sb.request("GET", "/api/3/users/me")
        self.sb.control("POST", "config", {"drop_rate": 0.0})
        self.assertEqual(self.sb.request("GET", "/api/3/users/me")[0], 200)

    def test_error_rates_deterministic(self):
        def run():
            self.sb.control("POST", "reset")
            self.sb.control("POST", "config", {"seed": 42, "error_rates": {"500": 0.3, "503": 0.2}})
            return [self.sb.request("GET", "/api/3/users/me")[0] for _ in range(30)]
        a, b = run(), run()
        self.assertEqual(a, b)
        self.assertIn(500, a)
        self.assertIn(503, a)
        self.assertIn(200, a)

    def test_slow_and_latency(self):
        self.sb.control("POST", "config", {"slow_ms": 400, "slow_count": 1, "latency_ms": 50})
        t0 = time.time()
        self.sb.request("GET", "/api/3/users/me")
        t1 = time.time()
        self.sb.request("GET", "/api/3/users/me")
        t2 = time.time()
        self.assertGreaterEqual(t1 - t0, 0.44)
        self.assertGreaterEqual(t2 - t1, 0.05)
        self.assertLess(t2 - t1, 0.4)

    # --- control API

    def test_stats_requests_and_reset(self):
        self.sb.request("GET", "/api/3/users/me")
        self.sb.request("GET", "/api/3/lists/1")
        self.sb.request("GET", "/api/3/lists/5")
        self.sb.request("GET", "/api/3/users/me", key="bad")
        self.sb.request("POST", "/api/3/import/bulk_import",
                        bulk([contact("q@example.com"), contact("r@example.com")]))
        time.sleep(0.1)
        stats = self.sb.control("GET", "stats")
        self.assertEqual(stats["requests_total"], 5)
        self.assertEqual(stats["by_route"], {"GET /api/3/users/me": 2, "GET /api/3/lists/{id}": 2,
                                             "POST /api/3/import/bulk_import": 1})
        self.assertEqual(stats["by_status"], {"200": 3, "404": 1, "403": 1})
        self.assertEqual(stats["contacts_imported"], 2)
        log = self.sb.control("GET", "requests")
        self.assertEqual([(e["method"], e["path"], e["status"]) for e in log],
                         [("GET", "/api/3/users/me", 200), ("GET", "/api/3/lists/1", 200),
                          ("GET", "/api/3/lists/5", 404), ("GET", "/api/3/users/me", 403),
                          ("POST", "/api/3/import/bulk_import", 200)])
        for e in log:
            self.assertNotIn("Api-Token", e["headers"])
            self.assertNotIn("api-token", {k.lower() for k in e["headers"]})
        self.assertEqual(log[4]["body"]["contacts"][0]["email"], "q@example.com")
        self.assertIsNone(log[0]["body"])
        # bodies off
        self.sb.control("DELETE", "requests")
        self.sb.control("POST", "config", {"record_bodies": False})
        self.sb.request("POST", "/api/3/import/bulk_import",
                        bulk([contact("s@example.com"), contact("t@example.com")]))
        log = self.sb.control("GET", "requests")
        self.assertEqual(len(log), 1)
        self.assertIsNone(log[0]["body"])
        self.assertEqual(self.sb.control("POST", "config", {"bogus": 1}),
                         {"error": "unknown config key(s): bogus"})
        # reset clears everything but lists and fields
        self.sb.control("POST", "config", {"storm_429": 5})
        self.sb.control("POST", "reset")
        stats = self.sb.control("GET", "stats")
        self.assertEqual((stats["requests_total"], stats["contacts_imported"]), (0, 0))
        self.assertEqual(self.sb.control("GET", "requests"), [])
        self.assertEqual(self.sb.control("GET", "lists/1/members"), [])
        self.assertEqual(self.sb.request("GET", "/api/3/lists/7")[0], 200)
        self.assertEqual(self.sb.control("GET", "config")["storm_429"], 0)

    def test_control_lists(self):
        self.sb.control("POST", "lists", {"id": 12, "name": "Twelve"})
        self.assertEqual(self.sb.json("GET", "/api/3/lists/12")["list"]["name"], "Twelve")
        self.assertEqual(self.sb.control("GET", "lists/12/members"), [])

    # --- memberships: AC's subscription rules

    def imported(self, contacts, **top):
        body = bulk(contacts)
        body.update(top)
        r = self.sb.json("POST", "/api/3/import/bulk_import", body)
        info, _ = self.sb.wait_import(r["batchId"])
        return info

    def contact_id(self, email):
        page = self.sb.json("GET", "/api/3/contacts?email=" + email)
        self.assertEqual(len(page["contacts"]), 1, email)
        return page["contacts"][0]["id"]

    def membership(self, email, lid="1"):
        """The contact's membership of the list, without the contact's own names."""
        got = self.sb.json("GET", "/api/3/contacts/%s/contactLists" % self.contact_id(email))
        m = next((m for m in got["contactLists"] if m["list"] == lid), None)
        if m is not None:
            del m["first_name"], m["last_name"]
        return m

    def statuses(self, lid="1"):
        return {m["email"]: m["status"] for m in self.sb.control("GET", "lists/%s/members" % lid)}

    def test_contact_lists_status_1_resubscribes_self_unsubscribed_and_bounced(self):
        self.imported([contact("ann@example.com", first_name="Ann", subscribe=[{"listid": 1}]),
                       contact("ben@example.com", subscribe=[{"listid": 1}])])
        out = self.sb.control("POST", "unsubscribe", {"email": "ann@example.com", "list": "1",
                                                      "reason": "too many emails"})
        self.assertEqual(out["contactLists"][0]["status"], "2")
        m = self.membership("ann@example.com")
        self.assertEqual((m["status"], m["campaign"], m["message"], m["unsubreason"],
                          m["unsubscribeAutomation"], m["automation"]),
                         ("2", "1", "1", "too many emails", None, None))
        self.sb.control("POST", "bounce", {"email": "ben@example.com"})
        self.assertEqual(self.statuses(), {"ann@example.com": "unsubscribed",
                                           "ben@example.com": "bounced"})
        self.sb.control("POST", "config", {"clock_offset_seconds": 600})
        ann = int(self.contact_id("ann@example.com"))
        cl = self.sb.json("POST", "/api/3/contactLists",
                          {"contactList": {"list": 1, "contact": ann, "status": 1, "sourceid": 4}})
        got = cl["contactList"]
        self.assertEqual((got["status"], got["sourceid"], got["unsubreason"], got["campaign"],
                          got["message"], got["unsubscribeAutomation"], got["contact"], got["list"]),
                         (1, "4", None, None, None, None, str(ann), "1"))
        self.assertRegex(got["sdate"], TS_RE)
        self.assertGreaterEqual(parse_ts(got["udate"]) - parse_ts(m["udate"]), 599)
        self.assertEqual(got["sdate"], got["udate"])  # a new subscription
        self.assertEqual(cl["contacts"][0]["email"], "ann@example.com")
        ben = int(self.contact_id("ben@example.com"))
        got = self.sb.json("POST", "/api/3/contactLists",
                           {"contactList": {"list": "1", "contact": str(ben), "status": "1"}})
        self.assertEqual((got["contactList"]["status"], got["contactList"]["sourceid"]), (1, "0"))
        self.assertEqual(self.statuses(), {"ann@example.com": "subscribed",
                                           "ben@example.com": "subscribed"})
        # Already active: status 1 again keeps sdate.
        again = self.sb.json("POST", "/api/3/contactLists",
                             {"contactList": {"list": 1, "contact": ann, "status": 1}})
        self.assertEqual(again["contactList"]["sdate"], cl["contactList"]["sdate"])

    def test_contact_lists_status_2_is_an_api_unsubscribe(self):
        self.imported([contact("cat@example.com", subscribe=[{"listid": 1}]),
                       contact("dan@example.com")])
        cid = int(self.contact_id("cat@example.com"))
        before = self.membership("cat@example.com")
        got = self.sb.json("POST", "/api/3/contactLists",
                           {"contactList": {"list": 1, "contact": cid, "status": 2}})["contactList"]
        self.assertEqual((got["status"], got["unsubreason"], got["campaign"], got["message"],
                          got["unsubscribeAutomation"], got["automation"], got["sdate"]),
                         (2, None, None, None, None, None, before["sdate"]))
        self.assertRegex(got["udate"], TS_RE)
        # No membership yet: created unsubscribed.
        dan = int(self.contact_id("dan@example.com"))
        self.sb.json("POST", "/api/3/contactLists",
                     {"contactList": {"list": 7, "contact": dan, "status": 2}})
        self.assertEqual(self.statuses("7"), {"dan@example.com": "unsubscribed"})
        bad = self.sb.json("POST", "/api/3/contactLists",
                           {"contactList": {"list": 1, "contact": dan, "status": 3}}, expect=422)
        self.assertEqual(bad["errors"][0]["code"], "field_invalid")

    def _unsubscribed_and_bounced(self):
        """ann unsubscribed herself, ben bounced, cat subscribed (list 1); returns ann's and
        ben's memberships."""
        self.imported([contact(e, subscribe=[{"listid": 1}])
                       for e in ("ann@example.com", "ben@example.com", "cat@example.com")])
        self.sb.control("POST", "unsubscribe", {"email": "ann@example.com", "list": "1"})
        self.sb.control("POST", "bounce", {"email": "ben@example.com"})
        return self.membership("ann@example.com"), self.membership("ben@example.com")

    def test_bulk_subscribe_leaves_unsubscribed_and_bounced_alone(self):
        ann, ben = self._unsubscribed_and_bounced()
        self.sb.control("POST", "config", {"clock_offset_seconds": 3600})
        info = self.imported([contact(e, first_name="New", subscribe=[{"listid": 1}])
                              for e in ("ann@example.com", "ben@example.com",
                                        "cat@example.com", "dan@example.com")])
        self.assertEqual(info["status"], "completed")
        self.assertEqual(info["failure"], [])
        self.assertEqual(info["success"], [self.contact_id("dan@example.com")])
        self.assertEqual(self.statuses(), {"ann@example.com": "unsubscribed",
                                           "ben@example.com": "bounced",
                                           "cat@example.com": "subscribed",
                                           "dan@example.com": "subscribed"})
        self.assertEqual(self.membership("ann@example.com"), ann)  # udate included
        self.assertEqual(self.membership("ben@example.com"), ben)
        # The rest of the contact is still imported.
        got = self.sb.json("GET", "/api/3/contacts/%s" % self.contact_id("ann@example.com"))
        self.assertEqual(got["contact"]["firstName"], "New")
        self.assertEqual(self.sb.control("GET", "stats")["contacts_imported"], 7)
        page = self.sb.json("GET", "/api/3/contacts?listid=1&status=1")
        self.assertEqual([c["email"] for c in page["contacts"]],
                         ["cat@example.com", "dan@example.com"])

    def test_bulk_subscribe_unsubscribed_in_failure(self):
        ann, ben = self._unsubscribed_and_bounced()
        self.sb.control("POST", "config", {"unsubscribed_in_failure": True})
        info = self.imported([contact(e, first_name="New", subscribe=[{"listid": 1}])
                              for e in ("ann@example.com", "cat@example.com", "Ben@example.com",
                                        "dan@example.com")])
        self.assertEqual(info["status"], "completed")
        self.assertEqual(info["failure"], ["ann@example.com", "Ben@example.com"])
        self.assertEqual(len(info["success"]), 1)
        self.assertEqual(self.membership("ann@example.com"), ann)
        self.assertEqual(self.membership("ben@example.com"), ben)
        got = self.sb.json("GET", "/api/3/contacts/%s" % self.contact_id("ann@example.com"))
        self.assertEqual(got["contact"]["firstName"], "")  # a failed contact is not applied
        # Without a subscribe to such a list the contact is not a failure.
        info = self.imported([contact("ann@example.com", subscribe=[{"listid": 7}]),
                              contact("ben@example.com", last_name="B")])
        self.assertEqual(info["failure"], [])
        self.assertEqual(self.statuses("7"), {"ann@example.com": "subscribed"})

    def test_bulk_unsubscribe(self):
        self.imported([contact(e, subscribe=[{"listid": 1}])
                       for e in ("ann@example.com", "ben@example.com", "cat@example.com")])
        self.sb.control("POST", "unsubscribe", {"email": "ben@example.com", "list": "1",
                                                "reason": "moved"})
        self.sb.control("POST", "bounce", {"email": "cat@example.com"})
        ann0 = self.membership("ann@example.com")
        ben0 = self.membership("ben@example.com")
        cat0 = self.membership("cat@example.com")
        self.sb.control("POST", "config", {"clock_offset_seconds": 86400})
        info = self.imported([contact(e, unsubscribe=[{"listid": 1}])
                              for e in ("ann@example.com", "ben@example.com", "cat@example.com",
                                        "dan@example.com")])
        self.assertEqual(info["failure"], [])
        self.assertEqual(self.statuses(), {"ann@example.com": "unsubscribed",
                                           "ben@example.com": "unsubscribed",
                                           "cat@example.com": "bounced",
                                           "dan@example.com": "unsubscribed"})
        ann = self.membership("ann@example.com")
        self.assertEqual((ann["status"], ann["sdate"], ann["campaign"], ann["unsubreason"]),
                         ("2", ann0["sdate"], None, None))
        self.assertGreaterEqual(parse_ts(ann["udate"]) - parse_ts(ann0["udate"]), 86399)
        self.assertEqual(self.membership("ben@example.com"), ben0)  # unchanged, reason kept
        self.assertEqual(self.membership("cat@example.com"), cat0)
        dan = self.membership("dan@example.com")
        self.assertEqual((dan["status"], dan["sourceid"]), ("2", "0"))
        # Unsubscribed members stay off the list on a later bulk subscribe.
        self.imported([contact("ann@example.com", subscribe=[{"listid": 1}]),
                       contact("dan@example.com", subscribe=[{"listid": 1}])])
        self.assertEqual(self.sb.json("GET", "/api/3/contacts?listid=1")["contacts"], [])

    def test_failure_index_base(self):
        contacts = [contact("ok@example.com"), contact("bad@nodot"), contact("ok2@example.com"),
                    {"first_name": "x"}]
        for base, want in ((0, [1, 3]), (1, [2, 4])):
            self.sb.control("POST", "config", {"failure_index_base": base})
            st, _, payload = self.sb.request("POST", "/api/3/import/bulk_import", bulk(contacts))
            self.assertEqual(st, 400)
            self.assertEqual([r["contact"] for r in json.loads(payload)["failureReasons"]], want)
        self.assertEqual(self.sb.control("POST", "config", {"failure_index_base": 2}),
                         {"error": "failure_index_base must be 0 or 1"})

    def test_exclude_automations_top_level_or_per_contact(self):
        two = [contact("a@example.com"), contact("b@example.com")]
        cases = [({"exclude_automations": True}, two, True),
                 ({}, [dict(c, exclude_automations=True) for c in two], True),
                 ({}, [dict(two[0], exclude_automations=True), two[1]], False),
                 ({}, two, False),
                 ({"exclude_automations": False}, two, False),
                 ({"exclude_automations": "true"}, two, True),
                 ({}, [dict(c, exclude_automations=1) for c in two], True)]
        ids = []
        for top, contacts, _ in cases:
            body = bulk(contacts)
            body.update(top)
            ids.append(self.sb.json("POST", "/api/3/import/bulk_import", body)["batchId"])
        got = {i["batchId"]: i["automations_excluded"] for i in self.sb.control("GET", "imports")}
        self.assertEqual([got[i] for i in ids], [want for _, _, want in cases])

    def test_clock_offset_and_timezone(self):
        self.sb.control("POST", "subscribe", {"email": "eve@example.com", "list": "1",
                                              "first_name": "Eve"})
        m0 = self.membership("eve@example.com")
        self.assertRegex(m0["udate"], TS_RE)
        self.assertLess(abs(parse_ts(m0["udate"]) - time.time()), 60)
        self.sb.control("POST", "config", {"clock_offset_seconds": 7200})
        self.sb.control("POST", "unsubscribe", {"email": "eve@example.com", "list": "1"})
        m1 = self.membership("eve@example.com")
        self.assertGreaterEqual(parse_ts(m1["udate"]) - parse_ts(m0["udate"]), 7199)
        self.assertLess(parse_ts(m1["udate"]) - parse_ts(m0["udate"]), 7260)
        self.assertEqual(m1["sdate"], m0["sdate"])
        # Contacts' cdate/udate use the same clock and zone.
        self.sb.control("POST", "config", {"timezone_offset": "+02:00"})
        self.imported([contact("fay@example.com"), contact("gus@example.com")])
        fay = self.sb.json("GET", "/api/3/contacts/%s" % self.contact_id("fay@example.com"))
        self.assertTrue(fay["contact"]["cdate"].endswith("+02:00"))
        self.assertGreaterEqual(parse_ts(fay["contact"]["udate"]) - time.time(), 7140)
        self.sb.control("POST", "bounce", {"email": "fay@example.com"})
        fay = self.sb.json("GET", "/api/3/contacts/%s" % self.contact_id("fay@example.com"))
        self.assertEqual(fay["contact"]["bounced_date"], fay["contact"]["udate"][:10])
        self.assertEqual(self.sb.control("POST", "config", {"timezone_offset": "EST"}),
                         {"error": "timezone_offset must look like -05:00"})

    def test_get_contact_and_contact_lists(self):
        self.sb.control("POST", "fields", {"id": 3, "title": "Plan"})
        self.imported([contact("hal@example.com", first_name="Hal", fields=[{"id": 3, "value": "gold"}],
                               subscribe=[{"listid": 7}, {"listid": 1}]),
                       contact("ivy@example.com")])
        hal = self.contact_id("hal@example.com")
        got = self.sb.json("GET", "/api/3/contacts/" + hal)
        c = got["contact"]
        self.assertEqual((c["id"], c["email"], c["firstName"], c["bounced_hard"], c["bounced_soft"],
                          c["bounced_date"]), (hal, "hal@example.com", "Hal", "0", "0", None))
        self.assertRegex(c["udate"], TS_RE)
        self.assertEqual([m["list"] for m in got["contactLists"]], ["1", "7"])
        self.assertEqual(c["contactLists"], [m["id"] for m in got["contactLists"]])
        self.assertEqual([(f["field"], f["value"], f["contact"]) for f in got["fieldValues"]],
                         [("3", "gold", hal)])
        cl = self.sb.json("GET", "/api/3/contacts/%s/contactLists" % hal)["contactLists"]
        self.assertEqual(cl, got["contactLists"])
        m = cl[0]
        for key in ("contact", "list", "status", "sdate", "udate", "unsubreason", "campaign",
                    "message", "sourceid", "unsubscribeAutomation", "automation", "id", "links"):
            self.assertIn(key, m)
        self.assertEqual((m["contact"], m["list"], m["status"], m["sourceid"], m["unsubreason"]),
                         (hal, "1", "1", "0", None))
        self.assertEqual(m["links"]["list"], "/api/3/contactLists/%s/list" % m["id"])
        self.sb.control("POST", "bounce", {"email": "hal@example.com"})
        got = self.sb.json("GET", "/api/3/contacts/" + hal)
        self.assertEqual(got["contact"]["bounced_hard"], "1")
        self.assertRegex(got["contact"]["bounced_date"], r"^\d{4}-\d{2}-\d{2}$")
        self.assertEqual([m["status"] for m in got["contactLists"]], ["3", "3"])
        ivy = self.sb.json("GET", "/api/3/contacts/%s/contactLists" % self.contact_id("ivy@example.com"))
        self.assertEqual(ivy, {"contactLists": []})
        for path in ("/api/3/contacts/999", "/api/3/contacts/999/contactLists"):
            self.assertEqual(self.sb.json("GET", path, expect=404),
                             {"message": "No Result found for Subscriber with id 999"})
        self.assertEqual(self.sb.json("GET", "/api/3/contacts/0", expect=404)["message"],
                         "No Result found for Subscriber with id 0")
        self.assertEqual(self.sb.request("GET", "/api/3/contacts/1", key="bad")[0], 403)
        self.assertEqual(self.sb.request("GET", "/api/3/contacts/1/contactLists", key=LAPSED)[0], 402)
        by_route = self.sb.control("GET", "stats")["by_route"]
        self.assertEqual(by_route["GET /api/3/contacts/{id}"], 5)
        self.assertEqual(by_route["GET /api/3/contacts/{id}/contactLists"], 4)
        self.assertEqual(self.sb.request("GET", "/api/3/contacts/1/deals")[0], 404)

    def test_list_members_by_status_paged_with_id_greater(self):
        contacts = [contact("p%03d@example.com" % i, subscribe=[{"listid": 1}]) for i in range(250)]
        self.imported(contacts)
        self.imported([contact("p%03d@example.com" % i, unsubscribe=[{"listid": 1}])
                       for i in range(250) if i % 3 == 0])
        for i in range(0, 250, 7):
            self.sb.control("POST", "bounce", {"email": "p%03d@example.com" % i})
        self.imported([contact("q%d@example.com" % i, subscribe=[{"listid": 7}]) for i in range(3)])
        ids = {"p%03d@example.com" % i: i + 1 for i in range(250)}
        want = {"2": [e for e, i in sorted(ids.items(), key=lambda x: x[1])
                      if (i - 1) % 3 == 0 and (i - 1) % 7 != 0],
                "3": [e for e, i in sorted(ids.items(), key=lambda x: x[1]) if (i - 1) % 7 == 0],
                "1": [e for e, i in sorted(ids.items(), key=lambda x: x[1])
                      if (i - 1) % 3 != 0 and (i - 1) % 7 != 0]}
        for status, expected in want.items():
            got, last, first_total = [], 0, None
            while True:
                page = self.sb.json("GET", "/api/3/contacts?listid=1&status=%s&orders[id]=ASC"
                                    "&id_greater=%d&limit=40" % (status, last))
                total = page["meta"]["total"]
                self.assertIsInstance(total, str)
                if first_total is None:
                    first_total = total
                self.assertEqual(int(total), len(expected) - len(got))
                self.assertLessEqual(len(page["contacts"]), 40)
                got += [c["email"] for c in page["contacts"]]
                ids_page = [int(c["id"]) for c in page["contacts"]]
                self.assertEqual(ids_page, sorted(ids_page))
                if len(page["contacts"]) < 40:
                    break
                last = ids_page[-1]
            self.assertEqual(got, expected, status)
            self.assertEqual(first_total, str(len(expected)))
        page = self.sb.json("GET", "/api/3/contacts?listid=1&status=-1&limit=500")
        self.assertEqual(len(page["contacts"]), 100)
        self.assertEqual(page["meta"]["total"], "250")
        self.assertEqual(page["meta"]["page_input"]["status"], -1)

    def test_stats_refusal_counters(self):
        self.sb.control("POST", "config", {"limits_enabled": True, "storm_429": 2})
        statuses = [self.sb.request("GET", "/api/3/users/me")[0] for _ in range(10)]
        self.assertEqual(statuses[:2], [429, 429])
        stats = self.sb.control("GET", "stats")
        self.assertEqual(stats["rps_refusals"], statuses[2:].count(429))
        self.assertGreater(stats["rps_refusals"], 0)
        self.assertEqual(stats["bulk_rate_refusals"], 0)
        time.sleep(1.05)
        self.sb.control("POST", "config", {"rate_scale": 0.02, "rps_limit": 1000})
        two = [contact("a@example.com"), contact("b@example.com")]
        results = [self.sb.request("POST", "/api/3/import/bulk_import", bulk(two))[0]
                   for _ in range(4)]
        self.assertEqual(results, [200, 200, 400, 400])
        stats = self.sb.control("GET", "stats")
        self.assertEqual(stats["bulk_rate_refusals"], 2)
        self.sb.control("POST", "reset")
        stats = self.sb.control("GET", "stats")
        self.assertEqual((stats["rps_refusals"], stats["bulk_rate_refusals"]), (0, 0))

    def test_override_routes(self):
        cfg = self.sb.control("POST", "config", {"override_routes": {
            "GET /api/3/users/me": {"status": 301, "headers": {"Location": "https://elsewhere.example/"},
                                    "body": None},
            "GET /api/3/lists/{id}": {"status": 400, "body": {"message": "odd"}}}})
        self.assertIn("GET /api/3/users/me", cfg["override_routes"])
        st, headers, payload = self.sb.request("GET", "/api/3/users/me")
        self.assertEqual((st, headers["location"], payload), (301, "https://elsewhere.example/", b""))
        self.assertNotIn("content-type", headers)
        st, headers, payload = self.sb.request("GET", "/api/3/lists/1")
        self.assertEqual((st, json.loads(payload)), (400, {"message": "odd"}))
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(self.sb.request("GET", "/api/3/users/me", key="bad")[0], 403)  # auth first
        self.assertEqual(self.sb.request("GET", "/api/3/fields")[0], 200)
        log = self.sb.control("GET", "requests")
        self.assertEqual([e["status"] for e in log], [301, 400, 403, 200])
        self.assertEqual(self.sb.control("GET", "stats")["by_route"]["GET /api/3/users/me"], 2)
        self.assertIn("error", self.sb.control("POST", "config",
                                               {"override_routes": {"GET /x": {"status": "301"}}}))
        self.sb.control("POST", "reset")
        self.assertEqual(self.sb.control("GET", "config")["override_routes"], {})
        self.assertEqual(self.sb.request("GET", "/api/3/users/me")[0], 200)

    def test_control_subscribe_unsubscribe_bounce(self):
        out = self.sb.control("POST", "subscribe", {"email": "Kim@Example.com", "list": 1,
                                                    "first_name": "Kim"})
        self.assertEqual(out["contact"]["email"], "Kim@Example.com")
        self.assertEqual((out["contactLists"][0]["status"], out["contactLists"][0]["sourceid"]),
                         ("1", "0"))
        self.sb.control("POST", "subscribe", {"email": "kim@example.com", "list": "7"})
        self.sb.control("POST", "unsubscribe", {"email": "kim@example.com", "list": "1",
                                                "via": "admin", "reason": "ignored"})
        m = self.membership("kim@example.com", "1")
        self.assertEqual((m["status"], m["campaign"], m["message"], m["unsubreason"],
                          m["unsubscribeAutomation"]), ("2", None, None, None, None))
        self.sb.control("POST", "unsubscribe", {"email": "kim@example.com", "list": "all",
                                                "via": "automation"})
        for lid in ("1", "7"):
            m = self.membership("kim@example.com", lid)
            self.assertEqual((m["status"], m["unsubscribeAutomation"], m["campaign"]),
                             ("2", "1", None))
        # Unknown person: contact and membership are created.
        self.sb.control("POST", "unsubscribe", {"email": "new@example.com", "list": "7"})
        self.assertEqual(self.statuses("7"), {"Kim@Example.com": "unsubscribed",
                                              "new@example.com": "unsubscribed"})
        members = self.sb.control("GET", "lists/7/members")
        self.assertEqual(members[0]["first_name"], "Kim")
        self.assertRegex(members[0]["udate"], TS_RE)
        self.assertEqual(members[0]["sourceid"], "0")
        # Errors.
        self.assertEqual(self.sb.control("POST", "subscribe", {"email": "x@example.com",
                                                               "list": "99"}),
                         {"error": "no list 99"})
        self.assertIn("error", self.sb.control("POST", "unsubscribe",
                                               {"email": "x@example.com", "list": "1", "via": "x"}))
        self.assertIn("error", self.sb.control("POST", "subscribe", {"list": "1"}))
        self.assertIn("error", self.sb.control("POST", "subscribe",
                                               {"email": "x@example.com", "list": "all"}))
        self.assertEqual(self.sb.control("POST", "bounce", {"email": "nobody@example.com"}),
                         {"error": "no contact nobody@example.com"})
        st, _, _ = self.sb.request("POST", "/__sandbox/bounce", {"email": "nobody@example.com"},
                                   key=None)
        self.assertEqual(st, 404)
        # Control traffic is not API traffic.
        self.assertNotIn("POST /__sandbox/subscribe", self.sb.control("GET", "stats")["by_route"])


class StateFileTest(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(_tmp, "state-%d-%f.json" % (os.getpid(), time.time()))

    def start(self):
        sb = Sandbox(["--list", "1", "--list", "7", "--state-file", self.path,
                      "--config", json.dumps(BASE_CONFIG)])
        self.addCleanup(lambda: sb.proc.poll() is None and sb.stop())
        return sb

    @staticmethod
    def view(sb):
        out = {}
        for e in ("ann@example.com", "ben@example.com", "cat@example.com", "dan@example.com"):
            cid = sb.json("GET", "/api/3/contacts?email=" + e)["contacts"][0]["id"]
            out[e] = sb.json("GET", "/api/3/contacts/" + cid)
        return out

    def test_round_trip_keeps_memberships_and_bounces(self):
        sb = self.start()
        body = bulk([contact(e, subscribe=[{"listid": 1}])
                     for e in ("ann@example.com", "ben@example.com", "cat@example.com")])
        body["exclude_automations"] = True
        info, _ = sb.wait_import(sb.json("POST", "/api/3/import/bulk_import", body)["batchId"])
        sb.control("POST", "unsubscribe", {"email": "ann@example.com", "list": "1",
                                           "reason": "bye"})
        sb.control("POST", "unsubscribe", {"email": "dan@example.com", "list": "7",
                                           "via": "automation"})
        sb.control("POST", "bounce", {"email": "ben@example.com"})
        sb.control("POST", "config", {"clock_offset_seconds": 50})
        sb.json("POST", "/api/3/contactLists", {"contactList": {
            "list": 7, "contact": int(info["success"][2]), "status": 1, "sourceid": 4}})
        before = self.view(sb)
        members = sb.control("GET", "lists/1/members")
        self.assertEqual(sb.stop()[0], 0)
        with open(self.path) as fh:
            snap = json.load(fh)
        self.assertIn("membership_records", snap)
        sb = self.start()
        self.assertEqual(self.view(sb), before)
        self.assertEqual(sb.control("GET", "lists/1/members"), members)
        self.assertEqual(before["ben@example.com"]["contact"]["bounced_hard"], "1")
        self.assertEqual(before["ann@example.com"]["contactLists"][0]["unsubreason"], "bye")
        self.assertEqual(before["cat@example.com"]["contactLists"][1]["sourceid"], "4")
        self.assertEqual([i["automations_excluded"] for i in sb.control("GET", "imports")], [True])
        self.assertEqual(sb.stop()[0], 0)

    def test_loads_a_snapshot_without_membership_details(self):
        ts = "2026-01-02T03:04:05-05:00"
        old = {"lists": {"1": {"name": "Old", "cdate": ts}}, "fields": {},
               "contacts": [["a@example.com", "A", "", "", [], [], ts, ts],
                            ["b@example.com", "B", "", "", ["3", "x"], ["t"], ts, ts]],
               "members": {"1": [[1, 1], [2, 2]]},
               "imports": [["batch-1", "completed", False, [1, 2], [], None, False]]}
        with open(self.path, "w") as fh:
            json.dump(old, fh)
        sb = self.start()
        self.assertEqual([(m["email"], m["status"], m["udate"], m["sourceid"])
                          for m in sb.control("GET", "lists/1/members")],
                         [("a@example.com", "subscribed", ts, "0"),
                          ("b@example.com", "unsubscribed", ts, "0")])
        got = sb.json("GET", "/api/3/contacts/2")
        self.assertEqual((got["contact"]["bounced_hard"], got["contact"]["bounced_date"]), ("0", None))
        self.assertEqual((got["contactLists"][0]["sdate"], got["contactLists"][0]["unsubreason"]),
                         (ts, None))
        self.assertEqual(sb.control("GET", "imports")[0]["automations_excluded"], False)
        unsub = sb.json("GET", "/api/3/contacts?listid=1&status=2")
        self.assertEqual([c["email"] for c in unsub["contacts"]], ["b@example.com"])
        self.assertEqual(sb.stop()[0], 0)


class StartupTest(unittest.TestCase):
    def test_default_list_and_config_flag(self):
        sb = Sandbox(["--config", json.dumps({"storm_429": 1})])
        try:
            self.assertEqual(sb.request("GET", "/api/3/lists/1")[0], 429)
            lst = sb.json("GET", "/api/3/lists/1")
            self.assertEqual(lst["list"]["name"], "Sandbox list")
        finally:
            rc, _, _ = sb.stop()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
