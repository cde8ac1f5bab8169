"""The Mailchimp sandbox's answers against Mailchimp's published API description.

Every operation the sandbox serves is called (successes and the errors the plugin meets), and
each answer body is checked against the response schema the description gives for that
operation and status, stricter than the description in one way: a field the description does
not name is an error too (so the sandbox invents nothing), except the few listed in
NEWER_FIELDS.  The description is the checked-in subset in
tests/mailchimp/fixtures/mailchimp-openapi-subset.json (see the README there).

Run: python3 -m unittest discover -s tests/sandbox -p "test_mc_*.py"
"""

import hashlib
import json
import os
import re
import unittest

import test_mc_sandbox as mc

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_FILE = os.environ.get("MC_OPENAPI_JSON") or os.path.join(
    HERE, "..", "mailchimp", "fixtures", "mailchimp-openapi-subset.json")

# In the published description (3.0.55, as converted to OpenAPI 3) the single-member
# operations' 200 answer points at the member *collection* schema (List_Members_2), a name
# clash of that conversion: their answer is a member, the schema the batch answer's
# new_members use (List_Members).  Corrected here, not in the checked-in file.
MEMBER_SCHEMA = "List_Members"
MEMBER_OPERATIONS = {("GET", "/lists/{list_id}/members/{subscriber_hash}"),
                     ("PUT", "/lists/{list_id}/members/{subscriber_hash}"),
                     ("PATCH", "/lists/{list_id}/members/{subscriber_hash}"),
                     ("POST", "/lists/{list_id}/members")}
# The same clash inside the collection: its members[] items point back at the collection.
PROPERTY_SCHEMA = {("List_Members_2", "members"): {"type": "array", "items": {
    "$ref": "#/components/schemas/" + MEMBER_SCHEMA}}}

# Fields the live API returns that 3.0.55 does not describe: member contact_id, full_name,
# web_id and source (newer versions of the description have them), and a problem
# document's errors[] (validation details, Mailchimp's error documentation).
NEWER_FIELDS = {MEMBER_SCHEMA: {"contact_id", "full_name", "web_id", "source"},
                "Problem_Detail_Document": {"errors"}}
# A member's status: the response enum lacks "archived", which GET returns for archived
# members (the same description lists it among the status filter's values).
EXTRA_ENUM = {"archived"}
# The description types every merge field value as an object; they are text or numbers (an
# address is an object), as its own member examples show.  Values are not checked.
FREE_VALUES = {"merge_fields"}

# The certificate and scratch folder of the sandbox self-tests.
setUpModule = mc.setUpModule
tearDownModule = mc.tearDownModule


def md5(email_addr):
    return hashlib.md5(email_addr.lower().encode()).hexdigest()


class Checker:
    def __init__(self, spec):
        self.spec = spec
        self.schemas = spec["components"]["schemas"]

    def resolve(self, schema):
        name = None
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            schema = self.schemas[name]
        return name, schema

    def check(self, schema, value, where, errors, name=None):
        ref_name, schema = self.resolve(schema)
        name = ref_name or name
        if value is None:
            if not schema.get("nullable"):
                errors.append("%s: null" % where)
            return
        for sub in schema.get("allOf", []):
            self.check(sub, value, where, errors)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                tries = []
                for sub in schema[key]:
                    e = []
                    self.check(sub, value, where, e)
                    tries.append(e)
                if all(tries):
                    errors.append("%s: matches none of %s (%s)" % (where, key, tries[0][0]))
        t = schema.get("type")
        ok = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
        if t in ok and not ok[t](value):
            errors.append("%s: %s is not %s" % (where, json.dumps(value)[:60], t))
            return
        if "enum" in schema and value not in schema["enum"] and value not in EXTRA_ENUM:
            errors.append("%s: %r not in %s" % (where, value, schema["enum"]))
        if isinstance(value, dict):
            props = schema.get("properties")
            for req in schema.get("required", []):
                if req not in value:
                    errors.append("%s: %s missing" % (where, req))
            if props is not None:
                allowed = NEWER_FIELDS.get(name, set())
                for k, v in value.items():
                    if k in props:
                        self.check(PROPERTY_SCHEMA.get((name, k), props[k]), v,
                                   "%s.%s" % (where, k), errors)
                    elif k not in allowed:
                        errors.append("%s.%s: not in the description (%s)" % (where, k, name))
            elif isinstance(schema.get("additionalProperties"), dict) \
                    and where.rsplit(".", 1)[-1] not in FREE_VALUES:
                for k, v in value.items():
                    self.check(schema["additionalProperties"], v, "%s.%s" % (where, k), errors)
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                self.check(schema["items"], v, "%s[%d]" % (where, i), errors)

    def response_schema(self, method, spec_path, status, ctype):
        op = self.spec["paths"][spec_path][method.lower()]
        resp = op["responses"].get(str(status)) or op["responses"]["default"]
        content = resp.get("content")
        if not content:
            return None
        media = ctype.split(";")[0].strip()
        schema = content[media]["schema"]
        if status == 200 and (method, spec_path) in MEMBER_OPERATIONS:
            return {"$ref": "#/components/schemas/" + MEMBER_SCHEMA}
        return schema


def spec_path(route):
    method, template = route.split(" ", 1)
    path = template[len("/3.0"):] or "/"
    return method, path.replace("{hash}", "{subscriber_hash}")


class ResponsesConformTest(mc.SandboxTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(SPEC_FILE, encoding="utf-8") as fh:
            cls.checker = Checker(json.load(fh))

    def conforms(self, method, path, body=None, expect=None):
        status, headers, obj = self.sb.api(method, path, body)
        if expect is not None:
            self.assertEqual(status, expect, obj)
        route = self.sb.control("GET", "requests")[1][-1]["route"]
        m, p = spec_path(route)
        self.assertIn(p, self.checker.spec["paths"], route)
        schema = self.checker.response_schema(m, p, status, headers.get("content-type", ""))
        if schema is None:
            self.assertEqual(obj, b"", route)
            return status, obj
        errors = []
        self.checker.check(schema, obj, "%s %d" % (route, status), errors)
        self.assertEqual(errors, [])
        return status, obj

    def test_every_operation_answers_as_described(self):
        lid = mc.LIST
        self.sb.seed({"email": "uns@shop.test", "status": "unsubscribed", "tags": ["old"]},
                     {"email": "arc@shop.test", "status": "archived"})
        self.sb.control("POST", "lists/%s/merge-fields" % lid,
                        {"tag": "PLAN", "type": "dropdown", "options": {"choices": ["gold"]}})
        self.conforms("GET", "/", expect=200)
        self.conforms("GET", "/ping", expect=200)
        self.conforms("GET", "/lists/" + lid, expect=200)
        self.conforms("GET", "/lists/nosuch", expect=404)
        self.conforms("GET", "/lists/%s/merge-fields?count=1000" % lid, expect=200)
        _, batch = self.conforms("POST", "/lists/" + lid, {"members": [
            {"email_address": "ann@shop.test", "status": "subscribed",
             "merge_fields": {"FNAME": "Ann", "ADDRESS": {"addr1": "1 Road", "city": "Town",
                                                          "state": "GA", "zip": "30308"}}},
            {"email_address": "uns@shop.test", "status": "subscribed"},
            {"email_address": "x@example.com", "status": "subscribed"},
            {"email_address": "bad", "status": "subscribed"},
            {"email_address": "m@shop.test", "status": "subscribed", "merge_fields": {"NOPE": 1}},
        ], "update_existing": True}, expect=200)
        self.assertEqual(batch["error_count"], 4)
        self.conforms("POST", "/lists/" + lid, {"members": [{"email_address": "ann@shop.test",
                                                             "status": "subscribed"}]}, expect=200)
        self.conforms("POST", "/lists/" + lid, {"members": [{}] * 501}, expect=400)
        member = "/lists/%s/members/%s" % (lid, md5("ann@shop.test"))
        self.conforms("GET", member, expect=200)
        self.conforms("GET", "/lists/%s/members/%s" % (lid, md5("arc@shop.test")), expect=200)
        self.conforms("GET", "/lists/%s/members/%s" % (lid, md5("none@shop.test")), expect=404)
        self.conforms("PUT", member, {"email_address": "ann@shop.test", "status_if_new": "subscribed",
                                      "merge_fields": {"PLAN": "gold"}}, expect=200)
        self.conforms("PUT", "/lists/%s/members/%s" % (lid, md5("uns@shop.test")),
                      {"email_address": "uns@shop.test", "status": "subscribed",
                       "status_if_new": "subscribed"}, expect=400)
        self.conforms("PUT", member, {"email_address": "ann@shop.test", "status_if_new": "subscribed",
                                      "merge_fields": {"PLAN": "silver"}}, expect=400)
        self.conforms("PATCH", member, {"status": "unsubscribed"}, expect=200)
        self.conforms("POST", "/lists/%s/members" % lid, {"email_address": "new@shop.test",
                                                          "status": "pending"}, expect=200)
        self.conforms("POST", "/lists/%s/members" % lid, {"email_address": "new@shop.test",
                                                          "status": "pending"}, expect=400)
        self.conforms("GET", "/lists/%s/members?status=unsubscribed" % lid, expect=200)
        self.conforms("POST", member + "/tags", {"tags": [{"name": "vip", "status": "active"}]}, expect=204)
        self.conforms("GET", member + "/tags", expect=200)
        _, seg = self.conforms("POST", "/lists/%s/segments" % lid,
                               {"name": "Buyers", "static_segment": ["ann@shop.test"]}, expect=200)
        self.conforms("GET", "/lists/%s/segments" % lid, expect=200)
        self.conforms("GET", "/lists/%s/segments/%d" % (lid, seg["id"]), expect=200)
        self.conforms("POST", "/lists/%s/segments/%d" % (lid, seg["id"]),
                      {"members_to_add": ["uns@shop.test", "nobody@shop.test"],
                       "members_to_remove": ["ann@shop.test"]}, expect=200)
        self.conforms("GET", "/lists/%s/segments/%d/members" % (lid, seg["id"]), expect=200)
        _, b = self.conforms("POST", "/batches", {"operations": [
            {"method": "GET", "path": "/ping", "operation_id": "1"}]}, expect=200)
        self.conforms("GET", "/batches/" + b["id"], expect=200)
        self.conforms("GET", "/batches", expect=200)
        self.conforms("DELETE", "/batches/" + b["id"], expect=204)
        self.conforms("DELETE", "/lists/%s/members/%s" % (lid, md5("new@shop.test")), expect=204)
        self.conforms("POST", member + "/actions/delete-permanent", expect=204)
        self.conforms("GET", member, expect=404)

    def test_auth_and_limit_errors_are_problem_documents(self):
        for auth, expect in (("", 401), (mc.basic("0" * 32 + "-us7"), 401)):
            status, headers, obj = self.sb.api("GET", "/lists/" + mc.LIST, auth=auth)
            self.assertEqual(status, expect)
            errors = []
            self.checker.check(self.checker.response_schema("GET", "/lists/{list_id}", status,
                                                            headers["content-type"]),
                               obj, "401", errors)
            self.assertEqual(errors, [])
        self.sb.control("POST", "config", {"storm_429": 1})
        self.conforms("GET", "/ping", expect=429)

    def test_the_checker_sees_a_wrong_answer(self):
        errors = []
        schema = {"$ref": "#/components/schemas/Batch_update_List_members"}
        self.checker.check(schema, {"new_members": [{"id": 1, "status": "gone", "invented": True}],
                                    "total_created": "1"}, "x", errors)
        self.assertEqual(len(errors), 4, errors)
        self.assertTrue(any(re.search(r"invented: not in the description", e) for e in errors))


if __name__ == "__main__":
    unittest.main()
