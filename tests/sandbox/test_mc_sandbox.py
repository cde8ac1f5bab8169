"""Self-tests of the Mailchimp sandbox (tests/sandbox/mc_sandbox.py).

Run: python3 -m unittest discover -s tests/sandbox -p "test_mc_*.py"
"""

import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "mc_sandbox.py")
KEY = "0123456789abcdef0123456789abcdef-us7"
LIST = "a1b2c3d4e5"

_tmp = None
_cert = None
_key = None


def setUpModule():
    global _tmp, _cert, _key
    _tmp = tempfile.mkdtemp(prefix="mc_sandbox_test_")
    _cert = os.path.join(_tmp, "cert.pem")
    _key = os.path.join(_tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", _key, "-out", _cert, "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


def md5(email_addr):
    return hashlib.md5(email_addr.lower().encode()).hexdigest()


def basic(key):
    return "Basic " + base64.b64encode(("anystring:" + key).encode()).decode()


class Sandbox:
    def __init__(self, extra_args=(), port=0):
        self.port_file = os.path.join(_tmp, "port-%d-%f" % (os.getpid(), time.time()))
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--cert", _cert, "--key", _key,
             "--port-file", self.port_file, "--api-key", KEY, "--port", str(port), *extra_args],
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
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.proc.returncode

    def connect(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=20)

    def request(self, method, path, body=None, auth=None, raw=None, headers=None, conn=None):
        """(status, headers, parsed JSON or raw bytes)."""
        own = conn is None
        if own:
            if self.conn is None:
                self.conn = self.connect()
            conn = self.conn
        h = {"Authorization": basic(KEY) if auth is None else auth}
        if auth == "":
            del h["Authorization"]
        h.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
        except (http.client.HTTPException, OSError):
            if own:
                self.conn.close()
                self.conn = None
            raise
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if hdrs.get("content-type", "").split(";")[0] in ("application/json", "application/problem+json"):
            payload = json.loads(payload) if payload else None
        return resp.status, hdrs, payload

    def api(self, method, path, body=None, **kw):
        return self.request(method, "/3.0" + path, body, **kw)

    def control(self, method, path, body=None):
        status, _, obj = self.request(method, "/__sandbox/" + path, body)
        return status, obj

    def members(self, list_id=LIST):
        return {m["email"].lower(): m for m in self.control("GET", "lists/%s/members" % list_id)[1]}

    def seed(self, *members, list_id=LIST):
        status, obj = self.control("POST", "lists/%s/members" % list_id, {"members": list(members)})
        assert status == 200, obj

    def batch(self, members, update_existing=False, query=""):
        return self.api("POST", "/lists/%s%s" % (LIST, query),
                        {"members": members, "update_existing": update_existing})


class SandboxTest(unittest.TestCase):
    """One sandbox per class (started with `args`), brought back to its start state before
    each test by a full reset."""
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(cls.args)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def setUp(self):
        status, _ = self.sb.control("POST", "reset", {"everything": True})
        self.assertEqual(status, 200)

    def assertProblem(self, answer, status, title, detail_part=""):
        code, headers, doc = answer
        self.assertEqual(code, status, doc)
        self.assertEqual(headers["content-type"], "application/problem+json; charset=utf-8")
        self.assertEqual(set(doc) - {"errors"}, {"type", "title", "status", "detail", "instance"})
        self.assertEqual(doc["status"], status)
        self.assertEqual(doc["title"], title)
        self.assertIn(detail_part, doc["detail"])
        self.assertEqual(headers["x-request-id"], doc["instance"])
        return doc


class AuthTest(SandboxTest):
    def test_ping_with_each_documented_header_form(self):
        for auth in (basic(KEY), "apikey " + KEY, "Bearer " + KEY):
            status, headers, body = self.sb.api("GET", "/ping", auth=auth)
            self.assertEqual(status, 200, auth)
            self.assertEqual(body, {"health_status": "Everything's Chimpy!"})
            self.assertTrue(headers["content-type"].startswith("application/json"))

    def test_missing_key_is_401_api_key_missing(self):
        self.assertProblem(self.sb.api("GET", "/ping", auth=""), 401, "API Key Missing",
                           "did not include an API key")

    def test_wrong_key_is_401_api_key_invalid(self):
        doc = self.assertProblem(self.sb.api("GET", "/lists/" + LIST, auth=basic("f" * 32 + "-us7")),
                                 401, "API Key Invalid", "wrong datacenter")
        self.assertEqual(doc["type"], "https://mailchimp.com/developer/marketing/docs/errors/")

    def test_key_of_another_data_centre_is_403(self):
        self.assertEqual(self.sb.control("POST", "config", {"dc": "us3"})[0], 200)
        self.assertProblem(self.sb.api("GET", "/ping"), 403, "Forbidden", "datacenter 'us7'")

    def test_host_of_another_data_centre_is_403_and_any_host_is_fine_otherwise(self):
        self.assertEqual(self.sb.api("GET", "/ping", headers={"Host": "us7.api.mailchimp.com"})[0], 200)
        self.assertEqual(self.sb.api("GET", "/ping", headers={"Host": "proxy.internal:8443"})[0], 200)
        self.assertProblem(self.sb.api("GET", "/ping", headers={"Host": "us2.api.mailchimp.com"}),
                           403, "Forbidden")


class AudienceTest(SandboxTest):
    args = ("--list", "a1b2c3d4e5:Shop", "--list", "ffff000011")

    def test_list_and_unknown_list(self):
        status, _, body = self.sb.api("GET", "/lists/" + LIST)
        self.assertEqual(status, 200)
        self.assertEqual((body["id"], body["name"], body["double_optin"]), (LIST, "Shop", False))
        self.assertEqual(self.sb.api("GET", "/lists/ffff000011")[2]["name"], "Audience ffff000011")
        self.assertProblem(self.sb.api("GET", "/lists/12345"), 404, "Resource Not Found",
                           "could not be found")

    def test_double_optin_is_configurable_per_list(self):
        self.sb.control("POST", "lists", {"id": "ffff000011", "double_optin": True})
        self.assertTrue(self.sb.api("GET", "/lists/ffff000011")[2]["double_optin"])
        self.assertFalse(self.sb.api("GET", "/lists/" + LIST)[2]["double_optin"])

    def test_default_merge_fields_and_paging(self):
        status, _, body = self.sb.api("GET", "/lists/%s/merge-fields" % LIST)
        self.assertEqual(status, 200)
        self.assertEqual([f["tag"] for f in body["merge_fields"]],
                         ["FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"])
        self.assertEqual(body["total_items"], 5)
        page = self.sb.api("GET", "/lists/%s/merge-fields?count=2&offset=3" % LIST)[2]
        self.assertEqual([f["tag"] for f in page["merge_fields"]], ["PHONE", "BIRTHDAY"])
        self.assertEqual(page["total_items"], 5)

    def test_merge_fields_added_by_control_api_count_is_capped_at_1000(self):
        for i in range(12):
            st, obj = self.sb.control("POST", "lists/%s/merge-fields" % LIST,
                                      {"tag": "MMERGE%d" % i, "type": "number", "required": i == 0})
            self.assertEqual(st, 200, obj)
        self.assertEqual(self.sb.control("POST", "lists/%s/merge-fields" % LIST,
                                         {"tag": "X", "type": "colour"})[0], 400)
        body = self.sb.api("GET", "/lists/%s/merge-fields?count=5000" % LIST)[2]
        self.assertEqual(len(body["merge_fields"]), 17)
        default = self.sb.api("GET", "/lists/%s/merge-fields" % LIST)[2]
        self.assertEqual(len(default["merge_fields"]), 10)  # default page
        m0 = [f for f in body["merge_fields"] if f["tag"] == "MMERGE0"][0]
        self.assertEqual((m0["type"], m0["required"]), ("number", True))

    def test_unknown_route_and_wrong_method(self):
        self.assertProblem(self.sb.api("GET", "/nothing/here"), 404, "Resource Not Found")
        answer = self.sb.api("PUT", "/lists/%s/members/%s/tags" % (LIST, md5("a@shop.test")), {})
        self.assertProblem(answer, 405, "Method Not Allowed")
        self.assertEqual(answer[1]["allow"], "GET, POST")


class BatchSubscribeTest(SandboxTest):
    def test_new_members_are_created_with_their_status_and_merge_fields(self):
        status, headers, body = self.sb.batch([
            {"email_address": "Ann@Shop.test", "status": "subscribed",
             "merge_fields": {"FNAME": "Ann", "LNAME": "Lee"}},
            {"email_address": "bob@shop.test", "status": "pending"}])
        self.assertEqual(status, 200)
        self.assertEqual((body["total_created"], body["total_updated"], body["error_count"]), (2, 0, 0))
        self.assertEqual(body["new_members"][0]["id"], md5("ann@shop.test"))
        self.assertEqual(body["new_members"][0]["merge_fields"]["FNAME"], "Ann")
        members = self.sb.members()
        self.assertEqual(members["ann@shop.test"]["status"], "subscribed")
        self.assertEqual(members["ann@shop.test"]["merge_fields"], {"FNAME": "Ann", "LNAME": "Lee"})
        self.assertEqual(members["bob@shop.test"]["status"], "pending")

    def test_more_than_500_members_is_400(self):
        members = [{"email_address": "p%d@shop.test" % i, "status": "subscribed"} for i in range(501)]
        doc = self.assertProblem(self.sb.batch(members), 400, "Invalid Resource")
        self.assertEqual(doc["errors"][0]["field"], "members")
        self.assertEqual(self.sb.members(), {})
        self.assertEqual(self.sb.batch(members[:500])[2]["total_created"], 500)

    def test_without_update_existing_existing_members_are_untouched_and_reported(self):
        self.sb.seed({"email": "ann@shop.test", "status": "subscribed", "merge_fields": {"FNAME": "Ann"}})
        body = self.sb.batch([{"email_address": "ANN@shop.test", "status": "unsubscribed",
                               "merge_fields": {"FNAME": "Changed"}}])[2]
        self.assertEqual((body["total_created"], body["total_updated"], body["error_count"]), (0, 0, 1))
        self.assertEqual(body["errors"][0]["error_code"], "ERROR_CONTACT_EXISTS")
        self.assertEqual(body["errors"][0]["email_address"], "ANN@shop.test")
        ann = self.sb.members()["ann@shop.test"]
        self.assertEqual((ann["status"], ann["merge_fields"]["FNAME"]), ("subscribed", "Ann"))

    def test_update_existing_applies_status_and_fields_but_never_resubscribes(self):
        self.sb.seed({"email": "sub@shop.test", "status": "subscribed"},
                     {"email": "uns@shop.test", "status": "unsubscribed"},
                     {"email": "cle@shop.test", "status": "cleaned"},
                     {"email": "gone@shop.test", "status": "forgotten"})
        body = self.sb.batch([
            {"email_address": "sub@shop.test", "status": "unsubscribed", "merge_fields": {"FNAME": "S"}},
            {"email_address": "uns@shop.test", "status": "subscribed", "merge_fields": {"FNAME": "U"}},
            {"email_address": "cle@shop.test", "status": "pending"},
            {"email_address": "gone@shop.test", "status": "subscribed"},
            {"email_address": "uns@shop.test", "status": "unsubscribed", "merge_fields": {"LNAME": "L"}},
        ], update_existing=True)[2]
        self.assertEqual((body["total_created"], body["total_updated"], body["error_count"]), (0, 2, 3))
        texts = {e["email_address"]: e for e in body["errors"]}
        self.assertIn("compliance state", texts["uns@shop.test"]["error"])
        self.assertIn("compliance state", texts["cle@shop.test"]["error"])
        self.assertIn("permanently deleted", texts["gone@shop.test"]["error"])
        self.assertEqual(texts["uns@shop.test"]["error_code"], "ERROR_GENERIC")
        m = self.sb.members()
        self.assertEqual((m["sub@shop.test"]["status"], m["sub@shop.test"]["merge_fields"]),
                         ("unsubscribed", {"FNAME": "S"}))
        self.assertEqual((m["uns@shop.test"]["status"], m["uns@shop.test"]["merge_fields"]),
                         ("unsubscribed", {"LNAME": "L"}))
        self.assertEqual(m["cle@shop.test"]["status"], "cleaned")
        self.assertEqual(m["gone@shop.test"]["status"], "forgotten")

    def test_status_if_new_per_member_keeps_existing_status(self):
        self.sb.seed({"email": "uns@shop.test", "status": "unsubscribed"})
        body = self.sb.batch([
            {"email_address": "uns@shop.test", "status_if_new": "subscribed", "merge_fields": {"FNAME": "U"}},
            {"email_address": "new@shop.test", "status_if_new": "subscribed"}], update_existing=True)[2]
        self.assertEqual((body["total_created"], body["total_updated"], body["error_count"]), (1, 1, 0))
        m = self.sb.members()
        self.assertEqual(m["uns@shop.test"]["status"], "unsubscribed")
        self.assertEqual(m["uns@shop.test"]["merge_fields"], {"FNAME": "U"})
        self.assertEqual(m["new@shop.test"]["status"], "subscribed")

    def test_invalid_fake_and_role_addresses_are_per_member_errors(self):
        self.sb.control("POST", "config", {"fake_email_pattern": r"@fake\.test$"})
        body = self.sb.batch([
            {"email_address": "not-an-email", "status": "subscribed"},
            {"email_address": "someone@fake.test", "status": "subscribed"},
            {"email_address": "admin@shop.test", "status": "subscribed"},
            {"email_address": "ok@example.com", "status": "subscribed"},
            {"email_address": None, "status": "subscribed"},
            {"email_address": "s@shop.test", "status": "member"},
        ])[2]
        self.assertEqual((body["total_created"], body["error_count"]), (1, 5))
        by = {e["email_address"]: e for e in body["errors"]}
        self.assertEqual(by["not-an-email"]["field"], "email_address")
        self.assertIn("looks fake or invalid", by["someone@fake.test"]["error"])
        self.assertIn("role-based", by["admin@shop.test"]["error"])
        self.assertEqual(by["s@shop.test"]["field"], "status")
        self.assertEqual(list(self.sb.members()), ["ok@example.com"])

    def test_example_com_is_fake_by_default(self):
        body = self.sb.batch([{"email_address": "someone@example.com", "status": "subscribed"}])[2]
        self.assertIn("looks fake or invalid", body["errors"][0]["error"])

    def test_merge_field_validation(self):
        self.sb.control("POST", "lists/%s/merge-fields" % LIST,
                        {"tag": "PLAN", "type": "dropdown", "required": True,
                         "options": {"choices": ["gold", "silver"]}})
        self.sb.control("POST", "lists/%s/merge-fields" % LIST, {"tag": "AGE", "type": "number"})
        body = self.sb.batch([
            {"email_address": "a@shop.test", "status": "subscribed", "merge_fields": {"PLAN": "gold"}},
            {"email_address": "b@shop.test", "status": "subscribed", "merge_fields": {"FNAME": "B"}},
            {"email_address": "c@shop.test", "status": "subscribed",
             "merge_fields": {"PLAN": "gold", "NOPE": "x"}},
            {"email_address": "d@shop.test", "status": "subscribed",
             "merge_fields": {"PLAN": "gold", "AGE": "old"}},
            {"email_address": "e@shop.test", "status": "subscribed",
             "merge_fields": {"PLAN": "gold", "BIRTHDAY": "13/40"}},
            {"email_address": "f@shop.test", "status": "subscribed",
             "merge_fields": {"PLAN": "gold", "ADDRESS": {"addr1": "1 Road"}}},
            {"email_address": "g@shop.test", "status": "subscribed", "merge_fields": []},
            {"email_address": "h@shop.test", "status": "subscribed",
             "merge_fields": {"PLAN": "gold", "FNAME": None}},
        ])[2]
        self.assertEqual(body["total_created"], 1)
        by = {e["email_address"]: e for e in body["errors"]}
        self.assertEqual((by["b@shop.test"]["field"], by["b@shop.test"]["field_message"]),
                         ("PLAN", "Please enter a value"))
        self.assertEqual(by["b@shop.test"]["error"], "Your merge fields were invalid.")
        self.assertEqual(by["c@shop.test"]["field"], "NOPE")
        self.assertEqual(by["d@shop.test"]["field_message"], "Please enter a number")
        self.assertIn("month (01-12)", by["e@shop.test"]["field_message"])
        self.assertEqual(by["f@shop.test"]["field"], "ADDRESS")
        self.assertIn("array found instead", by["g@shop.test"]["field_message"])
        self.assertEqual(by["h@shop.test"]["field"], "FNAME")
        # skip_merge_validation: required fields may be missing (types are still checked).
        body = self.sb.batch([{"email_address": "b@shop.test", "status": "subscribed"}],
                             query="?skip_merge_validation=true")[2]
        self.assertEqual(body["total_created"], 1)

    def test_unknown_merge_tags_can_be_ignored(self):
        self.sb.control("POST", "config", {"unknown_merge_tags": "ignore"})
        body = self.sb.batch([{"email_address": "c@shop.test", "status": "subscribed",
                               "merge_fields": {"FNAME": "C", "NOPE": "x"}}])[2]
        self.assertEqual(body["total_created"], 1)
        self.assertEqual(self.sb.members()["c@shop.test"]["merge_fields"], {"FNAME": "C"})

    def test_duplicates_in_one_request(self):
        dup = [{"email_address": "d@shop.test", "status": "subscribed"},
               {"email_address": "D@Shop.test", "status": "unsubscribed"}]
        body = self.sb.batch(dup)[2]
        self.assertEqual((body["total_created"], body["error_count"]), (1, 1))
        self.assertEqual(body["errors"][0]["error_code"], "ERROR_CONTACT_EXISTS")
        self.sb.control("POST", "reset")
        body = self.sb.batch(dup, update_existing=True)[2]
        self.assertEqual((body["total_created"], body["total_updated"]), (1, 1))
        self.assertEqual(self.sb.members()["d@shop.test"]["status"], "unsubscribed")
        self.sb.control("POST", "reset")
        body = self.sb.batch(dup, update_existing=True, query="?skip_duplicate_check=true")[2]
        self.assertEqual((body["total_created"], body["total_updated"], body["error_count"]), (1, 0, 0))
        self.assertEqual(self.sb.members()["d@shop.test"]["status"], "subscribed")  # first wins

    def test_counts_add_up_to_the_members_sent(self):
        self.sb.seed({"email": "e0@shop.test", "status": "unsubscribed"},
                     {"email": "e1@shop.test", "status": "subscribed"})
        members = [{"email_address": "e%d@%s" % (i, "example.com" if i % 7 == 0 else "shop.test"),
                    "status": "subscribed"} for i in range(60)]
        members[0]["email_address"] = "e0@shop.test"
        members += [{"email_address": "bad", "status": "subscribed"}]
        for update in (False, True):
            body = self.sb.batch(members, update_existing=update)[2]
            self.assertEqual(body["total_created"] + body["total_updated"] + body["error_count"],
                             len(members))
            self.assertEqual(len(body["new_members"]), body["total_created"])
            self.assertEqual(len(body["updated_members"]), body["total_updated"])
            self.assertEqual(len(body["errors"]), body["error_count"])

    def test_bad_json_and_unknown_list(self):
        self.assertProblem(self.sb.api("POST", "/lists/" + LIST, raw=b"{nope"), 400, "JSON Parse Error")
        self.assertProblem(self.sb.api("POST", "/lists/nosuch", {"members": []}), 404,
                           "Resource Not Found")


class MemberTest(SandboxTest):
    def put(self, email_addr, body, key=None):
        return self.sb.api("PUT", "/lists/%s/members/%s" % (LIST, key or md5(email_addr)), body)

    def test_put_creates_with_status_if_new_and_never_changes_status_without_status(self):
        status, _, body = self.put("Ann@Shop.test", {"email_address": "Ann@Shop.test",
                                                     "status_if_new": "subscribed",
                                                     "merge_fields": {"FNAME": "Ann"}, "tags": ["vip"]})
        self.assertEqual(status, 200)
        self.assertEqual((body["id"], body["status"], body["email_address"]),
                         (md5("ann@shop.test"), "subscribed", "Ann@Shop.test"))
        self.assertEqual(body["tags"][0]["name"], "vip")
        self.sb.seed({"email": "uns@shop.test", "status": "unsubscribed"})
        body = self.put("uns@shop.test", {"email_address": "uns@shop.test", "status_if_new": "subscribed",
                                          "merge_fields": {"FNAME": "U"}, "tags": ["ignored"]})[2]
        self.assertEqual((body["status"], body["merge_fields"]["FNAME"]), ("unsubscribed", "U"))
        self.assertEqual(self.sb.members()["uns@shop.test"]["tags"], [])  # tags only on create

    def test_put_status_applies_but_not_out_of_compliance_state(self):
        self.sb.seed({"email": "sub@shop.test"}, {"email": "uns@shop.test", "status": "unsubscribed"},
                     {"email": "cle@shop.test", "status": "cleaned"})
        self.assertEqual(self.put("sub@shop.test", {"email_address": "sub@shop.test",
                                                    "status": "unsubscribed"})[2]["status"], "unsubscribed")
        for em in ("uns@shop.test", "cle@shop.test"):
            self.assertProblem(self.put(em, {"email_address": em, "status": "subscribed",
                                             "status_if_new": "subscribed"}),
                               400, "Member In Compliance State", "cannot be subscribed")
        self.assertEqual(self.sb.members()["uns@shop.test"]["status"], "unsubscribed")
        self.assertEqual(self.put("cle@shop.test", {"email_address": "cle@shop.test",
                                                    "status": "unsubscribed"})[2]["status"], "cleaned")

    def test_put_with_a_hash_that_is_not_md5_of_the_lower_cased_email(self):
        self.sb.seed({"email": "ann@shop.test"})
        wrong = hashlib.md5(b"Ann@Shop.test").hexdigest()
        self.assertProblem(self.put(None, {"email_address": "Ann@Shop.test", "status_if_new": "subscribed"},
                                    key=wrong), 400, "Member Exists", "already a list member")
        self.assertProblem(self.put(None, {"email_address": "New@Shop.test", "status_if_new": "subscribed"},
                                    key=hashlib.md5(b"New@Shop.test").hexdigest()), 400, "Invalid Resource")
        self.assertEqual(list(self.sb.members()), ["ann@shop.test"])
        # The address itself in place of the hash is fine.
        self.assertEqual(self.put(None, {"email_address": "ann@shop.test", "status_if_new": "subscribed"},
                                  key="ann@shop.test")[0], 200)

    def test_put_forgotten_fake_and_merge_errors(self):
        self.sb.seed({"email": "gone@shop.test", "status": "forgotten"})
        self.assertProblem(self.put("gone@shop.test", {"email_address": "gone@shop.test",
                                                       "status_if_new": "pending"}),
                           400, "Forgotten Email Not Subscribed", "permanently deleted")
        self.assertProblem(self.put("x@example.com", {"email_address": "x@example.com",
                                                      "status_if_new": "subscribed"}),
                           400, "Invalid Resource", "looks fake or invalid")
        doc = self.assertProblem(self.put("m@shop.test", {"email_address": "m@shop.test",
                                                          "status_if_new": "subscribed",
                                                          "merge_fields": {"NOPE": 1}}),
                                 400, "Invalid Resource", "merge fields were invalid")
        self.assertEqual(doc["errors"], [{"field": "NOPE", "message": "This merge field does not exist."}])
        self.assertProblem(self.put("n@shop.test", {"email_address": "n@shop.test"}), 400, "Invalid Resource")
        # A role address may be added singly.
        self.assertEqual(self.put("info@shop.test", {"email_address": "info@shop.test",
                                                     "status_if_new": "subscribed"})[0], 200)

    def test_archived_member_stays_archived_without_status(self):
        self.sb.seed({"email": "arc@shop.test", "status": "archived"})
        body = self.put("arc@shop.test", {"email_address": "arc@shop.test", "status_if_new": "subscribed",
                                          "merge_fields": {"FNAME": "A"}})[2]
        self.assertEqual(body["status"], "archived")
        body = self.put("arc@shop.test", {"email_address": "arc@shop.test", "status": "subscribed",
                                          "status_if_new": "subscribed"})[2]
        self.assertEqual(body["status"], "subscribed")
        self.assertEqual(self.sb.api("DELETE", "/lists/%s/members/%s" % (LIST, md5("arc@shop.test")))[0], 204)
        self.assertEqual(self.sb.members()["arc@shop.test"]["status"], "archived")

    def test_patch_get_and_list_members(self):
        self.sb.seed(*[{"email": "p%02d@shop.test" % i, "status": "subscribed" if i % 2 else "pending"}
                       for i in range(25)])
        h = md5("p01@shop.test")
        status, _, body = self.sb.api("PATCH", "/lists/%s/members/%s" % (LIST, h), {"status": "unsubscribed"})
        self.assertEqual((status, body["status"]), (200, "unsubscribed"))
        self.assertEqual(self.sb.api("GET", "/lists/%s/members/%s" % (LIST, h))[2]["status"], "unsubscribed")
        self.assertProblem(self.sb.api("PATCH", "/lists/%s/members/%s" % (LIST, h), {"status": "subscribed"}),
                           400, "Member In Compliance State")
        self.assertProblem(self.sb.api("GET", "/lists/%s/members/%s" % (LIST, md5("no@shop.test"))),
                           404, "Resource Not Found")
        self.assertProblem(self.sb.api("PATCH", "/lists/%s/members/%s" % (LIST, md5("no@shop.test")),
                                       {"status": "unsubscribed"}), 404, "Resource Not Found")
        page = self.sb.api("GET", "/lists/%s/members?count=10&offset=20" % LIST)[2]
        self.assertEqual((page["total_items"], len(page["members"])), (25, 5))
        subs = self.sb.api("GET", "/lists/%s/members?status=subscribed&count=1000" % LIST)[2]
        self.assertEqual(subs["total_items"], 11)
        self.assertTrue(all(m["status"] == "subscribed" for m in subs["members"]))

    def test_forgotten_members_are_not_found(self):
        self.sb.seed({"email": "f@shop.test"})
        path = "/lists/%s/members/%s" % (LIST, md5("f@shop.test"))
        self.assertEqual(self.sb.api("POST", path + "/actions/delete-permanent")[0], 204)
        self.assertProblem(self.sb.api("GET", path), 404, "Resource Not Found")
        self.assertEqual(self.sb.members()["f@shop.test"]["status"], "forgotten")


class TagsAndSegmentsTest(SandboxTest):
    def test_tags_endpoint(self):
        self.sb.seed({"email": "t@shop.test", "tags": ["old"]})
        path = "/lists/%s/members/%s/tags" % (LIST, md5("t@shop.test"))
        status, _, body = self.sb.api("POST", path, {"tags": [{"name": "vip", "status": "active"},
                                                              {"name": "old", "status": "inactive"}]})
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(self.sb.members()["t@shop.test"]["tags"], ["vip"])
        # Malformed bodies: still 204, nothing done.
        for bad in ({"name": "x", "status": "active"}, {"tags": "x"}, [1], {"tags": [{"name": "y"}]}):
            self.assertEqual(self.sb.api("POST", path, bad)[0], 204)
        self.assertEqual(self.sb.members()["t@shop.test"]["tags"], ["vip"])
        self.assertEqual([t["name"] for t in self.sb.api("GET", path)[2]["tags"]], ["vip"])
        self.assertProblem(self.sb.api("POST", "/lists/%s/members/%s/tags" % (LIST, md5("no@shop.test")),
                                       {"tags": []}), 404, "Resource Not Found")

    def test_static_segments_are_tags(self):
        self.sb.seed(*[{"email": "s%d@shop.test" % i} for i in range(4)])
        status, _, seg = self.sb.api("POST", "/lists/%s/segments" % LIST,
                                     {"name": "Buyers", "static_segment": ["s0@shop.test"]})
        self.assertEqual((status, seg["member_count"], seg["type"]), (200, 1, "static"))
        path = "/lists/%s/segments/%d" % (LIST, seg["id"])
        body = self.sb.api("POST", path, {"members_to_add": ["s1@shop.test", "S2@shop.test", "no@shop.test"],
                                          "members_to_remove": ["s0@shop.test"]})[2]
        self.assertEqual((body["total_added"], body["total_removed"], body["error_count"]), (2, 1, 1))
        self.assertEqual(body["errors"][0]["email_addresses"], ["no@shop.test"])
        m = self.sb.members()
        self.assertEqual([e for e in sorted(m) if m[e]["tags"] == ["Buyers"]], ["s1@shop.test", "s2@shop.test"])
        listed = self.sb.api("GET", "/lists/%s/segments" % LIST)[2]
        self.assertEqual([(s["name"], s["member_count"]) for s in listed["segments"]], [("Buyers", 2)])
        self.assertEqual(self.sb.api("GET", path + "/members")[2]["total_items"], 2)
        too_many = ["x%d@shop.test" % i for i in range(501)]
        self.assertProblem(self.sb.api("POST", path, {"members_to_add": too_many}), 400, "Invalid Resource")
        self.assertProblem(self.sb.api("POST", "/lists/%s/segments/999" % LIST, {}), 404, "Resource Not Found")


class BatchesTest(SandboxTest):
    def test_batch_operations_and_results_archive(self):
        ops = [{"method": "PUT", "path": "/lists/%s/members/%s" % (LIST, md5("b@shop.test")),
                "operation_id": "row-1",
                "body": json.dumps({"email_address": "b@shop.test", "status_if_new": "subscribed"})},
               {"method": "GET", "path": "/lists/%s/members/%s" % (LIST, md5("none@shop.test")),
                "operation_id": "row-2"}]
        status, _, batch = self.sb.api("POST", "/batches", {"operations": ops})
        self.assertEqual((status, batch["status"], batch["response_body_url"]), (200, "pending", ""))
        body = self.sb.api("GET", "/batches/" + batch["id"])[2]
        self.assertEqual((body["status"], body["finished_operations"], body["errored_operations"]),
                         ("finished", 2, 1))
        url = body["response_body_url"]
        self.assertTrue(url.startswith("https://127.0.0.1:%d/" % self.sb.port))
        status, headers, archive = self.sb.request("GET", url.split(str(self.sb.port), 1)[1])
        self.assertEqual(status, 200)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            results = json.loads(tar.extractfile(tar.getmembers()[0]).read())
        by = {r["operation_id"]: r for r in results}
        self.assertEqual(by["row-1"]["status_code"], 200)
        self.assertEqual(json.loads(by["row-1"]["response"])["status"], "subscribed")
        self.assertEqual(by["row-2"]["status_code"], 404)
        self.assertEqual(self.sb.members()["b@shop.test"]["status"], "subscribed")


class LimitsTest(SandboxTest):
    args = ("--config", json.dumps({"latency_ms": 400, "max_connections": 3}))

    def test_more_simultaneous_requests_than_the_limit_get_429(self):
        results = []

        def one():
            conn = self.sb.connect()
            try:
                results.append(self.sb.request("GET", "/3.0/ping", conn=conn))
            finally:
                conn.close()

        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.2)  # the three are being served (400 ms each)
        conn = self.sb.connect()
        extra = self.sb.request("GET", "/3.0/ping", conn=conn)
        conn.close()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r[0] for r in results), [200, 200, 200])
        doc = self.assertProblem(extra, 429, "Too Many Requests")
        self.assertEqual(doc["detail"], "You have exceeded the limit of 3 simultaneous connections.")
        stats = self.sb.control("GET", "stats")[1]
        self.assertEqual((stats["max_in_flight"], stats["connection_refusals"]), (3, 1))
        # Once they are done, there is room again.
        self.assertEqual(self.sb.api("GET", "/ping")[0], 200)


class FaultsAndControlTest(SandboxTest):
    def test_route_faults_hit_the_next_requests_on_that_route_only(self):
        self.sb.control("POST", "config", {"route_faults": {"POST /3.0/lists/{list_id}": {"status": 503,
                                                                                           "count": 2}}})
        members = [{"email_address": "f@shop.test", "status": "subscribed"}]
        self.assertEqual(self.sb.api("GET", "/ping")[0], 200)
        self.assertProblem(self.sb.batch(members), 503, "Service Unavailable")
        self.assertProblem(self.sb.batch(members), 503, "Service Unavailable")
        self.assertEqual(self.sb.batch(members)[2]["total_created"], 1)

    def test_dropped_connection_and_storm(self):
        self.sb.control("POST", "config", {"route_faults": {"GET /3.0/ping": {"status": 0, "count": 1}},
                                           "storm_429": 1})
        with self.assertRaises((http.client.HTTPException, OSError)):
            self.sb.api("GET", "/ping")
        self.assertProblem(self.sb.api("GET", "/lists/" + LIST), 429, "Too Many Requests")
        self.assertEqual(self.sb.api("GET", "/ping")[0], 200)

    def test_bad_config_is_refused(self):
        for bad in ({"nope": 1}, {"max_connections": 0}, {"fake_email_pattern": "("},
                    {"route_faults": {"GET /3.0/ping": {"status": 9}}}):
            status, obj = self.sb.control("POST", "config", bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("error", obj)

    def test_request_log_normalises_routes_and_drops_keys(self):
        self.sb.api("PUT", "/lists/%s/members/%s" % (LIST, md5("l@shop.test")),
                    {"email_address": "l@shop.test", "status_if_new": "subscribed"})
        self.sb.api("GET", "/ping", auth="")
        log = self.sb.control("GET", "requests")[1]
        self.assertEqual([r["route"] for r in log],
                         ["PUT /3.0/lists/{list_id}/members/{hash}", "GET /3.0/ping"])
        self.assertEqual(log[0]["body"]["email_address"], "l@shop.test")
        self.assertEqual([r["status"] for r in log], [200, 401])
        self.assertEqual([r["auth"] for r in log], ["valid", "missing"])
        self.assertNotIn(KEY, json.dumps(log))
        stats = self.sb.control("GET", "stats")[1]
        self.assertEqual(stats["by_route"]["PUT /3.0/lists/{list_id}/members/{hash}"], 1)
        self.sb.control("DELETE", "requests")
        self.assertEqual(self.sb.control("GET", "requests")[1], [])

    def test_reset_clears_members_and_faults_and_everything_also_audiences(self):
        self.sb.seed({"email": "r@shop.test"})
        self.sb.control("POST", "lists/%s/merge-fields" % LIST, {"tag": "PLAN", "required": True})
        self.sb.control("POST", "config", {"storm_429": 5, "max_connections": 4})
        self.assertEqual(self.sb.control("POST", "reset")[0], 200)
        self.assertEqual(self.sb.members(), {})
        config = self.sb.control("GET", "config")[1]
        self.assertEqual((config["storm_429"], config["max_connections"]), (0, 4))
        fields = self.sb.api("GET", "/lists/%s/merge-fields" % LIST)[2]
        self.assertEqual(fields["total_items"], 6)
        self.sb.control("POST", "reset", {"everything": True})
        self.assertEqual(self.sb.control("GET", "config")[1]["max_connections"], 10)
        self.assertEqual(self.sb.api("GET", "/lists/%s/merge-fields" % LIST)[2]["total_items"], 5)

    def test_seed_rejects_unknown_status(self):
        status, _ = self.sb.control("POST", "lists/%s/members" % LIST, {"email": "x@shop.test",
                                                                        "status": "gone"})
        self.assertEqual(status, 400)


class StateFileTest(unittest.TestCase):
    def test_members_survive_a_restart_on_the_same_port(self):
        state = os.path.join(_tmp, "state-%f.json" % time.time())
        sb = Sandbox(("--state-file", state))
        try:
            sb.seed({"email": "u@shop.test", "status": "unsubscribed", "merge_fields": {"FNAME": "U"},
                     "tags": ["t1"]})
            sb.control("POST", "lists/%s/merge-fields" % LIST, {"tag": "PLAN", "required": True})
            sb.batch([{"email_address": "n@shop.test", "status": "subscribed", "merge_fields": {"PLAN": "x"}}])
        finally:
            self.assertEqual(sb.stop(), 0)
        sb2 = Sandbox(("--state-file", state), port=sb.port)
        try:
            self.assertEqual(sb2.port, sb.port)
            m = sb2.members()
            self.assertEqual(m["u@shop.test"], {"email": "u@shop.test", "status": "unsubscribed",
                                                "merge_fields": {"FNAME": "U"}, "tags": ["t1"]})
            self.assertEqual(m["n@shop.test"]["status"], "subscribed")
            tags = [f["tag"] for f in sb2.api("GET", "/lists/%s/merge-fields" % LIST)[2]["merge_fields"]]
            self.assertIn("PLAN", tags)
        finally:
            sb2.stop()

    def test_save_then_kill_9_keeps_what_was_saved(self):
        state = os.path.join(_tmp, "state-%f.json" % time.time())
        sb = Sandbox(("--state-file", state))
        try:
            sb.seed({"email": "kept@shop.test", "status": "cleaned"})
            self.assertEqual(sb.control("POST", "save")[0], 200)
            sb.seed({"email": "lost@shop.test"})
        finally:
            sb.conn.close()
            sb.proc.kill()
            sb.proc.communicate()
        sb2 = Sandbox(("--state-file", state), port=sb.port)
        try:
            self.assertEqual({e: m["status"] for e, m in sb2.members().items()}, {"kept@shop.test": "cleaned"})
        finally:
            sb2.stop()
        sb3 = Sandbox()
        try:
            self.assertEqual(sb3.control("POST", "save")[0], 400)
        finally:
            sb3.stop()


if __name__ == "__main__":
    unittest.main()
