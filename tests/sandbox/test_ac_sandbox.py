"""Self-tests of the ActiveCampaign sandbox (tests/sandbox/ac_sandbox.py).

Run: cd /work/main && python3 -m unittest discover -s tests/sandbox -p "test_*.py"
"""

import http.client
import json
import os
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
               "import_delay_ms": 0, "record_bodies": True, "record_requests": True}


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
        self.assertEqual(members[5], {"email": "user005@example.com", "first_name": "F5",
                                      "last_name": "L", "phone": "555-0005",
                                      "fields": {"3": "gold"}, "tags": ["vip"],
                                      "status": "subscribed"})
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
