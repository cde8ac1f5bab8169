#!/usr/bin/env python3
"""Mailchimp Marketing API v3 sandbox server for segpush tests and benchmarks.

Python 3 standard library only.  See README-mailchimp.md next to this file for the
command line, the control API under /__sandbox/ and the fault settings.  Behaviour follows
/work/shared/reference/mailchimp-api.md; where that reference marks something unconfirmed,
the reading chosen here is written down in the README.
"""

import argparse
import base64
import collections
import email.utils
import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import tarfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

# --------------------------------------------------------------------------
# Configuration

FAULT_DEFAULTS = {
    "latency_ms": 0,           # added to every /3.0 request, while it holds a connection slot
    "error_rates": {},         # {"500": 0.05, "503": 0.02}: probability per request
    "drop_rate": 0.0,          # probability of closing the connection, no response
    "storm_429": 0,            # next N /3.0 requests answer 429 (a throttling answer)
    "route_faults": {},        # {"POST /3.0/lists/{list_id}": {"status": 503, "count": 2,
                               #   "delay_ms": 0}}: the next `count` requests on the route
                               # answer `status` (0 = close the connection, no answer) after delay
    "slow_ms": 30000,          # delay used for the next slow_count requests
    "slow_count": 0,
    "seed": 0,                 # seed of the fault RNG (re-seeded when set)
    "override_routes": {},     # {"GET /3.0/ping": {"status", "headers", "body"}}
}

OTHER_DEFAULTS = {
    "dc": "us7",                      # the data centre this sandbox plays
    "limits_enabled": True,
    "max_connections": 10,            # simultaneous requests per API key
    # Addresses Mailchimp calls fake ("looks fake or invalid"): matched case-insensitively
    # against the whole address.  Configurable so fixtures can still use reserved domains.
    "fake_email_pattern": r"@(example\.(com|net|org)|mailinator\.com)$",
    # Role addresses are refused in bulk imports (batch subscribe) only; single-member
    # writes may add them (Mailchimp's help page on role-based addresses).
    "role_email_pattern": r"^(admin|abuse|info|noreply|no-reply|postmaster|support|webmaster)@",
    "unknown_merge_tags": "error",    # "error": per-member error; "ignore": dropped silently
    # Per-member `tags` in a batch subscribe body: the 3.0.55 description has no such field, so
    # whether Mailchimp applies them is unconfirmed. "apply" or "ignore" (the other reading).
    "batch_member_tags": "apply",
    # What `update_existing: false` does to a member who exists: "refuse" (ERROR_CONTACT_EXISTS,
    # nothing changed: what integrators observe) or "update_fields" (the other reading of the
    # description: merge fields applied, status kept, listed in updated_members).
    "batch_existing_without_update": "refuse",
    "batch_delay_ms": 0,              # /3.0/batches: time from submit to finished
    "record_requests": True,
    "record_bodies": True,
    "request_log_max": 100000,
}

DEFAULT_CONFIG = dict(OTHER_DEFAULTS)
DEFAULT_CONFIG.update(FAULT_DEFAULTS)

MAX_BATCH_MEMBERS = 500
MAX_SEGMENT_CHANGES = 500
MAX_PAGE = 1000
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
WRITE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
SEED_STATUSES = WRITE_STATUSES + ("archived", "forgotten")
COMPLIANCE = ("unsubscribed", "cleaned")  # never moved back to an opted-in status by the API
OPTED_IN = ("subscribed", "pending", "transactional")
SEGMENT_MEMBER_OMITS = ("contact_id", "web_id", "source", "tags", "tags_count")
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio",
               "dropdown", "birthday", "zip")

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
HASH_RE = re.compile(r"^[0-9a-f]{32}$")


def valid_email(value):
    return isinstance(value, str) and len(value) <= 254 and EMAIL_RE.match(value) is not None


def subscriber_hash(email_addr):
    return hashlib.md5(email_addr.strip().lower().encode("utf-8")).hexdigest()


def flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return value is True


_clock = [0, ""]


def now_iso():
    """The time as Mailchimp writes it.  One string per second, shared by every member written
    in that second (a million members then cost no million timestamps)."""
    t = int(time.time())
    if _clock[0] != t:
        _clock[1] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))
        _clock[0] = t
    return _clock[1]


NO_MERGE = {}  # shared by members with no merge value; never written (apply_merge copies first)


def check_config(new):
    for key in ("fake_email_pattern", "role_email_pattern"):
        if key in new:
            if not isinstance(new[key], str):
                return "%s must be a regular expression (text)" % key
            try:
                re.compile(new[key])
            except re.error as e:
                return "%s: %s" % (key, e)
    if "dc" in new and (not isinstance(new["dc"], str) or not new["dc"]):
        return "dc must be text like \"us7\""
    if "max_connections" in new:
        v = new["max_connections"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return "max_connections must be a positive integer"
    if "unknown_merge_tags" in new and new["unknown_merge_tags"] not in ("error", "ignore"):
        return "unknown_merge_tags must be \"error\" or \"ignore\""
    if "batch_member_tags" in new and new["batch_member_tags"] not in ("apply", "ignore"):
        return "batch_member_tags must be \"apply\" or \"ignore\""
    if "batch_existing_without_update" in new and \
            new["batch_existing_without_update"] not in ("refuse", "update_fields"):
        return "batch_existing_without_update must be \"refuse\" or \"update_fields\""
    if "error_rates" in new and not isinstance(new["error_rates"], dict):
        return "error_rates must be an object"
    if "route_faults" in new:
        rf = new["route_faults"]
        if not isinstance(rf, dict):
            return "route_faults must be an object"
        for route, f in rf.items():
            if not isinstance(f, dict) or any(k not in ("status", "count", "delay_ms") for k in f):
                return "route_faults[%s] must be {\"status\", \"count\", \"delay_ms\"}" % route
            s = f.get("status", 500)
            if isinstance(s, bool) or not isinstance(s, int) or not (s == 0 or 100 <= s <= 599):
                return "route_faults[%s].status must be an HTTP status or 0" % route
    if "override_routes" in new:
        o = new["override_routes"]
        if not isinstance(o, dict) or any(not isinstance(v, dict) for v in o.values()):
            return "override_routes must map routes to {\"status\", \"headers\", \"body\"}"
    return None


# --------------------------------------------------------------------------
# State

DEFAULT_MERGE_FIELDS = [
    {"tag": "FNAME", "name": "First Name", "type": "text", "options": {"size": 25}},
    {"tag": "LNAME", "name": "Last Name", "type": "text", "options": {"size": 25}},
    {"tag": "ADDRESS", "name": "Address", "type": "address", "options": {"default_country": 164}},
    {"tag": "PHONE", "name": "Phone Number", "type": "phone", "options": {"phone_format": "none"}},
    {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday", "options": {"date_format": "MM/DD"}},
]


class Member:
    __slots__ = ("email", "status", "merge", "tags", "created", "changed")

    def __init__(self, email_addr, status):
        self.email = email_addr
        self.status = status       # one of SEED_STATUSES
        self.merge = NO_MERGE      # tag -> value (only the ones set)
        self.tags = ()             # tag names, in the order added (a tuple: shared when empty)
        self.created = now_iso()
        self.changed = self.created


class Audience:
    def __init__(self, lid, name, double_optin=False):
        self.id = lid
        self.name = name
        self.web_id = int(hashlib.md5(lid.encode()).hexdigest()[:6], 16)
        self.double_optin = double_optin
        self.created = now_iso()
        self.merge_fields = []     # dicts as GET merge-fields answers them, minus list_id
        self.members = {}          # subscriber hash -> Member, in the order members were added
        self.segments = {}         # static segment id (int) -> name; tags are static segments
        for f in DEFAULT_MERGE_FIELDS:
            self.add_merge_field(f)

    def add_merge_field(self, spec):
        tag = str(spec["tag"]).upper()
        existing = self.merge_field(tag)
        field = existing or {"merge_id": len(self.merge_fields) + 1, "tag": tag}
        field.update({"name": str(spec.get("name") or tag), "type": spec.get("type", "text"),
                      "required": bool(spec.get("required", False)),
                      "default_value": str(spec.get("default_value", "")), "public": True,
                      "display_order": field["merge_id"] + 1,
                      "options": dict(spec.get("options") or {}), "help_text": ""})
        if not existing:
            self.merge_fields.append(field)
        return field

    def merge_field(self, tag):
        for f in self.merge_fields:
            if f["tag"] == tag:
                return f
        return None

    def segment_id(self, name, create):
        for sid, n in self.segments.items():
            if n.lower() == name.lower():
                return sid
        if not create:
            return None
        sid = max(self.segments, default=1000) + 1
        self.segments[sid] = name
        return sid


class State:
    def __init__(self, api_key, lists, config):
        self.lock = threading.Lock()
        self.api_key = api_key
        self.config = dict(DEFAULT_CONFIG)
        self.lists = {}
        self.rng = random.Random(0)
        self.running = True
        self.in_flight = collections.Counter()  # credential -> requests being served
        self.patterns = {}                       # config key -> (text, compiled expression)
        self.initial_lists = list(lists)
        self.initial_config = config or {}
        self._reset_data()
        if config:
            with self.lock:
                err = self.merge_config(config)
            if err:
                raise ValueError(err)
        for lid, name in lists:
            self.lists[lid] = Audience(lid, name)

    def _reset_data(self):
        for a in self.lists.values():
            a.members = {}
            a.segments = {}
        self.batches = {}
        self.log = collections.deque(maxlen=max(1, int(self.config["request_log_max"])))
        self.requests_total = 0
        self.by_route = collections.Counter()
        self.by_status = collections.Counter()
        self.max_in_flight = 0
        self.connection_refusals = 0
        self.slot_seconds = 0.0  # time requests held a connection slot, all keys together

    def reset(self, everything=False):
        """Clears members, batches, the log and faults.  `everything` also brings audiences
        and the whole config back to how the command line set them up."""
        if everything:
            self.config = dict(DEFAULT_CONFIG)
            self.merge_config(self.initial_config)
            self.lists = {lid: Audience(lid, name) for lid, name in self.initial_lists}
        for k, v in FAULT_DEFAULTS.items():
            self.config[k] = json.loads(json.dumps(self.initial_config.get(k, v)))
        self.rng = random.Random(self.config["seed"])
        self._reset_data()

    def merge_config(self, new):
        if not isinstance(new, dict):
            return "config must be a JSON object"
        unknown = sorted(k for k in new if k not in DEFAULT_CONFIG)
        if unknown:
            return "unknown config key(s): " + ", ".join(unknown)
        err = check_config(new)
        if err:
            return err
        self.config.update(json.loads(json.dumps(new)))
        if "seed" in new:
            self.rng = random.Random(new["seed"])
        if "request_log_max" in new:
            self.log = collections.deque(self.log, maxlen=max(1, int(new["request_log_max"])))
        return None

    def _pattern(self, key):
        # Compiled once per pattern text: a 500-member batch asks twice per member.
        text = self.config[key]
        cached = self.patterns.get(key)
        if cached is None or cached[0] != text:
            cached = self.patterns[key] = (text, re.compile(text, re.I))
        return cached[1]

    def is_fake(self, email_addr):
        return self._pattern("fake_email_pattern").search(email_addr) is not None

    def is_role(self, email_addr):
        return self._pattern("role_email_pattern").search(email_addr) is not None

    # ---- persistence (--state-file); caller holds the lock

    def snapshot(self):
        return {"lists": [{"id": a.id, "name": a.name, "double_optin": a.double_optin,
                           "merge_fields": a.merge_fields,
                           "segments": [[sid, n] for sid, n in a.segments.items()],
                           "members": [[m.email, m.status, m.merge, list(m.tags), m.created, m.changed]
                                       for m in a.members.values()]}
                          for a in self.lists.values()]}

    def load_snapshot(self, snap):
        with self.lock:
            for row in snap.get("lists", []):
                a = Audience(row["id"], row["name"], row.get("double_optin", False))
                a.merge_fields = row.get("merge_fields", a.merge_fields)
                a.segments = {int(sid): n for sid, n in row.get("segments", [])}
                for em, status, merge, tags, created, changed in row.get("members", []):
                    m = Member(em, status)
                    m.merge, m.tags, m.created, m.changed = merge or NO_MERGE, tuple(tags), created, changed
                    a.members[subscriber_hash(em)] = m
                self.lists[a.id] = a


# --------------------------------------------------------------------------
# Responses


class Problem(Exception):
    """An error answer: Mailchimp's problem document."""

    def __init__(self, status, title, detail, errors=None, headers=None):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def document(self):
        doc = {"type": ERROR_TYPE, "title": self.title, "status": self.status,
               "detail": self.detail, "instance": str(uuid.uuid4())}
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


def not_found():
    return Problem(404, "Resource Not Found", "The requested resource could not be found.")


def invalid_resource(detail, errors=None):
    return Problem(400, "Invalid Resource", detail, errors)


SCHEMA_DETAIL = ("The resource submitted could not be validated. For field-specific details, "
                 "see the 'errors' array.")
MERGE_DETAIL = "Your merge fields were invalid."


def compliance_text(em):
    return ("%s is in a compliance state due to unsubscribe, bounce, or compliance review and "
            "cannot be subscribed." % em)


def forgotten_text(em):
    return ("%s was permanently deleted and cannot be re-imported. The contact must re-subscribe "
            "to get back on the list." % em)


def fake_text(em):
    return "%s looks fake or invalid, please enter a real email address." % em


def json_type(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def page_params(q):
    try:
        count = int(q.get("count", 10))
    except (TypeError, ValueError):
        count = 10
    count = 10 if count <= 0 else min(count, MAX_PAGE)  # more than 1000: silently capped
    try:
        offset = max(0, int(q.get("offset", 0)))
    except (TypeError, ValueError):
        offset = 0
    return count, offset


# Routes: (method set, path regex, template).  Ids are normalised in the template so the
# request log and stats count "PUT /3.0/lists/{list_id}/members/{hash}" as one route.
ROUTES = [
    ("GET", r"/3\.0/?", "/3.0/"),
    ("GET", r"/3\.0/ping", "/3.0/ping"),
    ("GET,POST", r"/3\.0/lists/([^/]+)", "/3.0/lists/{list_id}"),
    ("GET", r"/3\.0/lists/([^/]+)/merge-fields", "/3.0/lists/{list_id}/merge-fields"),
    ("GET,POST", r"/3\.0/lists/([^/]+)/members", "/3.0/lists/{list_id}/members"),
    ("GET,PUT,PATCH,DELETE", r"/3\.0/lists/([^/]+)/members/([^/]+)",
     "/3.0/lists/{list_id}/members/{hash}"),
    ("GET,POST", r"/3\.0/lists/([^/]+)/members/([^/]+)/tags",
     "/3.0/lists/{list_id}/members/{hash}/tags"),
    ("POST", r"/3\.0/lists/([^/]+)/members/([^/]+)/actions/delete-permanent",
     "/3.0/lists/{list_id}/members/{hash}/actions/delete-permanent"),
    ("GET,POST", r"/3\.0/lists/([^/]+)/segments", "/3.0/lists/{list_id}/segments"),
    ("GET,POST", r"/3\.0/lists/([^/]+)/segments/([^/]+)", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("GET", r"/3\.0/lists/([^/]+)/segments/([^/]+)/members",
     "/3.0/lists/{list_id}/segments/{segment_id}/members"),
    ("GET,POST", r"/3\.0/batches", "/3.0/batches"),
    ("GET,DELETE", r"/3\.0/batches/([^/]+)", "/3.0/batches/{batch_id}"),
]
ROUTES = [(m.split(","), re.compile("^" + p + "$"), t) for m, p, t in ROUTES]


def match_route(method, path):
    """(route text, template, ids, allowed methods); template None when no path matches."""
    for methods, rx, template in ROUTES:
        m = rx.match(path)
        if m:
            ids = [unquote(g) for g in m.groups()]
            return method + " " + template, template, ids, methods
    return method + " <unmatched>", None, [], []


class Api:
    """The Marketing API operations on a State.  Each returns (status, obj) or raises
    Problem; the caller holds the state lock.  /3.0/batches runs the same operations."""

    def __init__(self, st):
        self.st = st

    def call(self, method, template, ids, query, body, bad_json):
        if bad_json:
            raise Problem(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")
        handler = {
            "GET /3.0/": self.root,
            "GET /3.0/ping": self.ping,
            "GET /3.0/lists/{list_id}": self.list_get,
            "POST /3.0/lists/{list_id}": self.batch_subscribe,
            "GET /3.0/lists/{list_id}/merge-fields": self.merge_fields,
            "GET /3.0/lists/{list_id}/members": self.members_get,
            "POST /3.0/lists/{list_id}/members": self.member_post,
            "GET /3.0/lists/{list_id}/members/{hash}": self.member_get,
            "PUT /3.0/lists/{list_id}/members/{hash}": self.member_put,
            "PATCH /3.0/lists/{list_id}/members/{hash}": self.member_patch,
            "DELETE /3.0/lists/{list_id}/members/{hash}": self.member_archive,
            "GET /3.0/lists/{list_id}/members/{hash}/tags": self.tags_get,
            "POST /3.0/lists/{list_id}/members/{hash}/tags": self.tags_post,
            "POST /3.0/lists/{list_id}/members/{hash}/actions/delete-permanent": self.member_forget,
            "GET /3.0/lists/{list_id}/segments": self.segments_get,
            "POST /3.0/lists/{list_id}/segments": self.segment_create,
            "GET /3.0/lists/{list_id}/segments/{segment_id}": self.segment_get,
            "POST /3.0/lists/{list_id}/segments/{segment_id}": self.segment_change,
            "GET /3.0/lists/{list_id}/segments/{segment_id}/members": self.segment_members,
        }.get(method + " " + template)
        if handler is None:
            raise not_found()
        return handler(ids, query, body)

    # ---- helpers

    def audience(self, lid):
        a = self.st.lists.get(lid)
        if a is None:
            raise not_found()
        return a

    def lookup(self, a, key):
        """The member a path names: by hash, or by the address itself.  Forgotten members are
        gone as far as reads go."""
        h = key.lower() if HASH_RE.match(key.lower()) else subscriber_hash(key)
        m = a.members.get(h)
        return h, (None if m is None or m.status == "forgotten" else m), m

    def member_obj(self, a, m):
        h = subscriber_hash(m.email)
        merge = {}
        for f in a.merge_fields:
            merge[f["tag"]] = m.merge.get(f["tag"], "")
        for k, v in m.merge.items():
            merge.setdefault(k, v)
        tags = [{"id": a.segment_id(t, True), "name": t} for t in m.tags]
        return {"id": h, "email_address": m.email, "unique_email_id": h[:10], "contact_id": h,
                "full_name": (str(merge.get("FNAME", "")) + " " + str(merge.get("LNAME", ""))).strip(),
                "web_id": int(h[:7], 16), "email_type": "html", "status": m.status,
                "merge_fields": merge,
                "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
                "ip_signup": "", "timestamp_signup": "", "ip_opt": "", "timestamp_opt": m.created,
                "member_rating": 2, "last_changed": m.changed, "language": "", "vip": False,
                "email_client": "", "location": {"latitude": 0, "longitude": 0, "gmtoff": 0,
                                                 "dstoff": 0, "country_code": "", "timezone": ""},
                "source": "API - Generic", "tags_count": len(tags), "tags": tags,
                "list_id": a.id, "_links": []}

    def check_merge(self, a, merge, existing, skip_validation):
        """Validates merge_fields for a write.  Returns (cleaned dict, errors) where errors is
        [{"field","message"}].  `existing` is the Member being updated (or None)."""
        errors = []
        out = {}
        if merge is None:
            merge = {}
        if not isinstance(merge, dict):
            return {}, [{"field": "merge_fields",
                         "message": "Schema describes object, %s found instead" % json_type(merge)}]
        for tag, value in merge.items():
            f = a.merge_field(tag)
            if f is None:
                if self.st.config["unknown_merge_tags"] == "error":
                    errors.append({"field": tag, "message": "This merge field does not exist."})
                continue
            msg = self.type_problem(f, value)
            if msg:
                errors.append({"field": tag, "message": msg})
            else:
                out[f["tag"]] = value  # the audience's own string: one copy for all members
        if not skip_validation:
            for f in a.merge_fields:
                if not f["required"] or any(e["field"] == f["tag"] for e in errors):
                    continue
                if f["tag"] in out:
                    value = out[f["tag"]]
                elif existing is not None:
                    value = existing.merge.get(f["tag"], "")
                else:
                    value = ""
                if value == "" or value is None:
                    errors.append({"field": f["tag"], "message": "Please enter a value"})
        return out, errors

    @staticmethod
    def type_problem(f, value):
        t = f["type"]
        if value is None:
            return "Data did not match any of the schemas described in anyOf."
        if value == "":
            return None  # a blank clears the value
        if t == "address":
            if not isinstance(value, dict) or any(
                    not isinstance(value.get(k), str) or not value.get(k)
                    for k in ("addr1", "city", "state", "zip")):
                return "Data did not match any of the schemas described in anyOf."
            return None
        if isinstance(value, (dict, list, bool)):
            return "Data did not match any of the schemas described in anyOf."
        text = str(value)
        if t == "number":
            try:
                float(text)
            except ValueError:
                return "Please enter a number"
        elif t == "birthday":
            m = re.match(r"^(\d{2})/(\d{2})$", text)
            if not m or not 1 <= int(m.group(1)) <= 12 or not 1 <= int(m.group(2)) <= 31:
                return "Please enter a month (01-12) and a day (01-31)"
        elif t == "date":
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", text) and not re.match(r"^\d{2}/\d{2}/\d{4}$", text):
                return "Please enter the date"
        elif t in ("url", "imageurl"):
            if not re.match(r"^https?://", text):
                return "Please enter a valid URL"
        elif t in ("radio", "dropdown"):
            if text not in (f["options"].get("choices") or []):
                return "Please choose one of the listed options"
        elif t == "zip":
            if not re.match(r"^\d{5}(-\d{4})?$", text):
                return "Please enter a valid zip code"
        elif t == "phone" and f["options"].get("phone_format") == "US":
            if not re.match(r"^\(?\d{3}\)?[ -.]?\d{3}[ -.]?\d{4}$", text):
                return "Please enter a valid phone number"
        return None

    def apply_merge(self, m, merge):
        if not merge:
            return
        values = dict(m.merge)
        for tag, value in merge.items():
            if value == "":
                values.pop(tag, None)
            else:
                values[tag] = value
        m.merge = values or NO_MERGE

    def add_tags(self, a, m, names):
        for n in names:
            if isinstance(n, str) and n.strip():
                n = n.strip()
                if not any(t.lower() == n.lower() for t in m.tags):
                    m.tags += (n,)
                    a.segment_id(n, True)

    def set_status(self, m, status):
        """A status written to an existing member.  A cleaned address stays cleaned when asked
        to unsubscribe: it bounced, so there is nobody to unsubscribe."""
        if status is not None and not (m.status == "cleaned" and status == "unsubscribed"):
            m.status = status
        m.changed = now_iso()

    # ---- account

    def root(self, ids, query, body):
        total = sum(1 for a in self.st.lists.values() for m in a.members.values()
                    if m.status == "subscribed")
        return 200, {"account_id": "sandbox0account", "login_id": "1", "account_name": "Sandbox",
                     "email": "owner@shop.test", "first_name": "Sandbox", "last_name": "Owner",
                     "username": "sandbox", "avatar_url": "", "role": "owner",
                     "member_since": "2020-01-01T00:00:00+00:00", "pricing_plan_type": "monthly",
                     "first_payment": "", "account_timezone": "UTC", "account_industry": "",
                     "contact": {}, "pro_enabled": False, "last_login": now_iso(),
                     "total_subscribers": total, "industry_stats": {}, "_links": []}

    def ping(self, ids, query, body):
        return 200, {"health_status": "Everything's Chimpy!"}

    # ---- audience

    def list_get(self, ids, query, body):
        a = self.audience(ids[0])
        counts = collections.Counter(m.status for m in a.members.values())
        return 200, {
            "id": a.id, "web_id": a.web_id, "name": a.name,
            "contact": {"company": "Sandbox", "address1": "1 Test Street", "address2": "",
                        "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US",
                        "phone": ""},
            "permission_reminder": "You signed up on our site.", "use_archive_bar": True,
            "campaign_defaults": {"from_name": "Sandbox", "from_email": "owner@shop.test",
                                  "subject": "", "language": "en"},
            "notify_on_subscribe": "", "notify_on_unsubscribe": "", "date_created": a.created,
            "list_rating": 0, "email_type_option": False, "subscribe_url_short": "",
            "subscribe_url_long": "", "beamer_address": "", "visibility": "pub",
            "double_optin": a.double_optin, "has_welcome": False,
            "marketing_permissions": False, "modules": [],
            "stats": {"member_count": counts["subscribed"],
                      "total_contacts": sum(counts[s] for s in WRITE_STATUSES + ("archived",)),
                      "unsubscribe_count": counts["unsubscribed"], "cleaned_count": counts["cleaned"],
                      "member_count_since_send": counts["subscribed"],
                      "unsubscribe_count_since_send": counts["unsubscribed"],
                      "cleaned_count_since_send": counts["cleaned"], "campaign_count": 0,
                      "campaign_last_sent": "", "merge_field_count": len(a.merge_fields),
                      "avg_sub_rate": 0, "avg_unsub_rate": 0, "target_sub_rate": 0,
                      "open_rate": 0, "click_rate": 0, "last_sub_date": "", "last_unsub_date": ""},
            "_links": []}

    def merge_fields(self, ids, query, body):
        a = self.audience(ids[0])
        count, offset = page_params(query)
        fields = a.merge_fields
        if "type" in query:
            fields = [f for f in fields if f["type"] == query["type"]]
        if "required" in query:
            fields = [f for f in fields if f["required"] == flag(query["required"])]
        page = [dict(f, list_id=a.id, _links=[]) for f in fields[offset:offset + count]]
        return 200, {"merge_fields": page, "list_id": a.id, "total_items": len(fields), "_links": []}

    # ---- batch subscribe

    def batch_subscribe(self, ids, query, body):
        a = self.audience(ids[0])
        if not isinstance(body, dict) or not isinstance(body.get("members"), list):
            raise invalid_resource(SCHEMA_DETAIL, [{
                "field": "members", "message": "Required property members was not present."
                if not isinstance(body, dict) or "members" not in body else
                "Schema describes array, %s found instead" % json_type(body.get("members"))}])
        members = body["members"]
        if len(members) > MAX_BATCH_MEMBERS:
            raise invalid_resource(SCHEMA_DETAIL, [{
                "field": "members", "message": "Schema describes array with at most %d items, %d found "
                "instead" % (MAX_BATCH_MEMBERS, len(members))}])
        update_existing = flag(body.get("update_existing", False))
        sync_tags = flag(body.get("sync_tags", False))
        skip_validation = flag(query.get("skip_merge_validation", "false"))
        skip_duplicates = flag(query.get("skip_duplicate_check", "false"))
        new_members, updated, errors = [], [], []
        seen = set()

        def fail(em, text, code="ERROR_GENERIC", field="", field_message=""):
            errors.append({"email_address": em if isinstance(em, str) else "", "error": text,
                           "error_code": code, "field": field, "field_message": field_message})

        for item in members:
            em = item.get("email_address") if isinstance(item, dict) else None
            if not isinstance(item, dict):
                fail("", "Schema describes object, %s found instead" % json_type(item))
                continue
            if not isinstance(em, str):
                fail("", SCHEMA_DETAIL, field="email_address",
                     field_message="Schema describes string, %s found instead" % json_type(em))
                continue
            em = em.strip()
            h = subscriber_hash(em)
            if h in seen and skip_duplicates:
                continue  # the first occurrence wins; later ones are not reported at all
            seen.add(h)
            status = item.get("status")
            status_if_new = item.get("status_if_new")
            for key, value in (("status", status), ("status_if_new", status_if_new)):
                if value is not None and value not in WRITE_STATUSES:
                    fail(em, SCHEMA_DETAIL, field=key,
                         field_message="Data did not match any of the schemas described in anyOf.")
                    break
            else:
                if status is None and status_if_new is None:
                    fail(em, SCHEMA_DETAIL, field="status",
                         field_message="Required property status was not present.")
                    continue
                self.batch_one(a, item, em, h, status, status_if_new, update_existing, sync_tags,
                               skip_validation, new_members, updated, fail)
        return 200, {"new_members": new_members, "updated_members": updated, "errors": errors,
                     "total_created": len(new_members), "total_updated": len(updated),
                     "error_count": len(errors), "_links": []}

    def batch_one(self, a, item, em, h, status, status_if_new, update_existing, sync_tags,
                  skip_validation, new_members, updated, fail):
        if not valid_email(em):
            fail(em, "Please provide a valid email address.", field="email_address",
                 field_message="Please provide a valid email address.")
            return
        if self.st.is_fake(em):
            fail(em, fake_text(em), field="email_address", field_message=fake_text(em))
            return
        m = a.members.get(h)
        if m is not None and m.status == "forgotten":
            fail(em, forgotten_text(em))
            return
        if m is None and self.st.is_role(em):
            fail(em, "%s is a role-based address and cannot be imported." % em,
                 field="email_address", field_message="role-based address")
            return
        keep_status = m is not None and not update_existing
        if keep_status and self.st.config["batch_existing_without_update"] == "refuse":
            fail(em, "%s is already a list member, do you want to update? please provide "
                 "update_existing:true in the request body" % em, code="ERROR_CONTACT_EXISTS")
            return
        merge, merge_errors = self.check_merge(a, item.get("merge_fields"), m, skip_validation)
        if merge_errors:
            e = merge_errors[0]
            fail(em, MERGE_DETAIL, field=e["field"], field_message=e["message"])
            return
        if keep_status:
            self.apply_merge(m, merge)
            self.set_status(m, None)
            updated.append(self.member_obj(a, m))
            return
        if m is None:
            m = Member(em, status_if_new or status)
            self.apply_merge(m, merge)
            tags = item.get("tags")
            if isinstance(tags, list) and self.st.config["batch_member_tags"] == "apply":
                self.add_tags(a, m, tags)
            a.members[h] = m
            new_members.append(self.member_obj(a, m))
            return
        if status is not None and m.status in COMPLIANCE and status in OPTED_IN:
            fail(em, compliance_text(em))
            return
        self.apply_merge(m, merge)
        self.set_status(m, status)
        tags = item.get("tags")
        if sync_tags and isinstance(tags, list):
            m.tags = ()
            self.add_tags(a, m, tags)
        updated.append(self.member_obj(a, m))

    # ---- members

    def members_get(self, ids, query, body):
        a = self.audience(ids[0])
        count, offset = page_params(query)
        want = query.get("status")
        # a.members is in insertion order (members are added, never moved), so no sorting:
        # paging a million members costs one pass per page.
        page, total = [], 0
        for m in a.members.values():
            if m.status != "forgotten" and (want is None or m.status == want):
                if offset <= total < offset + count:
                    page.append(m)
                total += 1
        return 200, {"members": [self.member_obj(a, m) for m in page],
                     "list_id": a.id, "total_items": total, "_links": []}

    def member_get(self, ids, query, body):
        a = self.audience(ids[0])
        _, m, _ = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        return 200, self.member_obj(a, m)

    def require_object(self, body):
        if not isinstance(body, dict):
            raise invalid_resource(SCHEMA_DETAIL, [{"field": "", "message": "Schema describes object, "
                                                    "%s found instead" % json_type(body)}])

    def check_new_email(self, em, skip_role=True):
        if not isinstance(em, str):
            raise invalid_resource(SCHEMA_DETAIL, [{"field": "email_address", "message":
                                                    "Schema describes string, %s found instead"
                                                    % json_type(em)}])
        if not valid_email(em.strip()):
            raise invalid_resource("Please provide a valid email address.")
        if self.st.is_fake(em.strip()):
            raise invalid_resource(fake_text(em.strip()))

    def check_status(self, body, key, allowed=WRITE_STATUSES):
        v = body.get(key)
        if v is not None and v not in allowed:
            raise invalid_resource(SCHEMA_DETAIL, [{"field": key, "message":
                                                    "Data did not match any of the schemas "
                                                    "described in anyOf."}])
        return v

    def member_put(self, ids, query, body):
        a = self.audience(ids[0])
        self.require_object(body)
        key = ids[1]
        em = body.get("email_address")
        status = self.check_status(body, "status")
        status_if_new = self.check_status(body, "status_if_new")
        skip_validation = flag(query.get("skip_merge_validation", "false"))
        h, m, raw = self.lookup(a, key)
        if em is not None:
            self.check_new_email(em)
            em = em.strip()
            if subscriber_hash(em) != h:
                # The hash of a mixed-case address without lower-casing, or of another address.
                if a.members.get(subscriber_hash(em)) is not None:
                    raise Problem(400, "Member Exists", "%s is already a list member. Use PUT to "
                                  "insert or update list members." % em)
                raise invalid_resource("The subscriber hash in the URL does not match the "
                                       "email_address in the request body.")
        if raw is not None and raw.status == "forgotten":
            raise Problem(400, "Forgotten Email Not Subscribed", forgotten_text(raw.email))
        if m is None:
            if em is None:
                raise invalid_resource(SCHEMA_DETAIL, [{"field": "email_address", "message":
                                                        "This value should not be blank."}])
            first = status_if_new or status
            if first is None:
                raise invalid_resource(SCHEMA_DETAIL, [{"field": "status_if_new", "message":
                                                        "Required property status_if_new was not "
                                                        "present."}])
            merge, errors = self.check_merge(a, body.get("merge_fields"), None, skip_validation)
            if errors:
                raise invalid_resource(MERGE_DETAIL, errors)
            m = Member(em, first)
            self.apply_merge(m, merge)
            if isinstance(body.get("tags"), list):
                self.add_tags(a, m, body["tags"])
            a.members[h] = m
            return 200, self.member_obj(a, m)
        return self.update_member(a, m, body, status, skip_validation)

    def update_member(self, a, m, body, status, skip_validation):
        if status is not None and m.status in COMPLIANCE and status in OPTED_IN:
            raise Problem(400, "Member In Compliance State", compliance_text(m.email))
        merge, errors = self.check_merge(a, body.get("merge_fields"), m, skip_validation)
        if errors:
            raise invalid_resource(MERGE_DETAIL, errors)
        self.apply_merge(m, merge)
        # An archived member stays archived unless `status` says otherwise.
        self.set_status(m, status)
        return 200, self.member_obj(a, m)

    def member_patch(self, ids, query, body):
        a = self.audience(ids[0])
        self.require_object(body)
        h, m, raw = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        status = self.check_status(body, "status", WRITE_STATUSES[:-1])
        em = body.get("email_address")
        if em is not None:
            self.check_new_email(em)
        return self.update_member(a, m, body, status, flag(query.get("skip_merge_validation", "false")))

    def member_post(self, ids, query, body):
        a = self.audience(ids[0])
        self.require_object(body)
        em = body.get("email_address")
        self.check_new_email(em)
        em = em.strip()
        status = self.check_status(body, "status")
        if status is None:
            raise invalid_resource(SCHEMA_DETAIL, [{"field": "status", "message":
                                                    "Required property status was not present."}])
        h = subscriber_hash(em)
        m = a.members.get(h)
        if m is not None and m.status == "forgotten":
            raise Problem(400, "Forgotten Email Not Subscribed", forgotten_text(em))
        if m is not None:
            raise Problem(400, "Member Exists", "%s is already a list member. Use PUT to insert or "
                          "update list members." % em)
        merge, errors = self.check_merge(a, body.get("merge_fields"), None,
                                         flag(query.get("skip_merge_validation", "false")))
        if errors:
            raise invalid_resource(MERGE_DETAIL, errors)
        m = Member(em, status)
        self.apply_merge(m, merge)
        if isinstance(body.get("tags"), list):
            self.add_tags(a, m, body["tags"])
        a.members[h] = m
        return 200, self.member_obj(a, m)

    def member_archive(self, ids, query, body):
        a = self.audience(ids[0])
        _, m, _ = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        self.set_status(m, "archived")
        return 204, None

    def member_forget(self, ids, query, body):
        a = self.audience(ids[0])
        _, m, _ = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        m.status = "forgotten"
        m.merge = NO_MERGE
        m.tags = ()
        m.changed = now_iso()
        return 204, None

    # ---- tags (tags are static segments)

    def tags_get(self, ids, query, body):
        a = self.audience(ids[0])
        _, m, _ = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        count, offset = page_params(query)
        tags = [{"id": a.segment_id(t, True), "name": t, "date_added": m.changed}
                for t in m.tags]
        return 200, {"tags": tags[offset:offset + count], "total_items": len(tags), "_links": []}

    def tags_post(self, ids, query, body):
        a = self.audience(ids[0])
        _, m, _ = self.lookup(a, ids[1])
        if m is None:
            raise not_found()
        # Mailchimp answers 204 to a body of the wrong shape and does nothing with it.
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list):
            return 204, None
        for t in tags:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"].strip():
                continue
            name = t["name"].strip()
            if t.get("status") == "active":
                self.add_tags(a, m, [name])
            elif t.get("status") == "inactive":
                m.tags = tuple(x for x in m.tags if x.lower() != name.lower())
        return 204, None

    # ---- static segments

    def segment_obj(self, a, sid):
        name = a.segments[sid]
        count = sum(1 for m in a.members.values()
                    if m.status != "forgotten" and any(t.lower() == name.lower() for t in m.tags))
        return {"id": sid, "name": name, "member_count": count, "type": "static",
                "created_at": a.created, "updated_at": now_iso(), "options": {},
                "list_id": a.id, "_links": []}

    def segment_lookup(self, a, key):
        try:
            sid = int(key)
        except ValueError:
            raise not_found()
        if sid not in a.segments:
            raise not_found()
        return sid

    def segments_get(self, ids, query, body):
        a = self.audience(ids[0])
        count, offset = page_params(query)
        sids = sorted(a.segments)
        if query.get("type") not in (None, "", "static"):
            sids = []
        return 200, {"segments": [self.segment_obj(a, s) for s in sids[offset:offset + count]],
                     "list_id": a.id, "total_items": len(sids), "_links": []}

    def segment_get(self, ids, query, body):
        a = self.audience(ids[0])
        return 200, self.segment_obj(a, self.segment_lookup(a, ids[1]))

    def segment_create(self, ids, query, body):
        a = self.audience(ids[0])
        self.require_object(body)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid_resource(SCHEMA_DETAIL, [{"field": "name", "message":
                                                    "Required property name was not present."}])
        emails = body.get("static_segment", [])
        if not isinstance(emails, list):
            raise invalid_resource(SCHEMA_DETAIL, [{"field": "static_segment", "message":
                                                    "Schema describes array, %s found instead"
                                                    % json_type(emails)}])
        if a.segment_id(name.strip(), False) is not None:
            raise invalid_resource("Sorry, that tag already exists.")
        sid = a.segment_id(name.strip(), True)
        for em in emails:
            if isinstance(em, str):
                _, m, _ = self.lookup(a, em.strip())
                if m is not None:
                    self.add_tags(a, m, [a.segments[sid]])
        return 200, self.segment_obj(a, sid)

    def segment_change(self, ids, query, body):
        a = self.audience(ids[0])
        sid = self.segment_lookup(a, ids[1])
        self.require_object(body)
        add = body.get("members_to_add", [])
        remove = body.get("members_to_remove", [])
        for key, value in (("members_to_add", add), ("members_to_remove", remove)):
            if not isinstance(value, list):
                raise invalid_resource(SCHEMA_DETAIL, [{"field": key, "message":
                                                        "Schema describes array, %s found instead"
                                                        % json_type(value)}])
            if len(value) > MAX_SEGMENT_CHANGES:
                raise invalid_resource(SCHEMA_DETAIL, [{"field": key, "message":
                                                        "Schema describes array with at most %d "
                                                        "items, %d found instead"
                                                        % (MAX_SEGMENT_CHANGES, len(value))}])
        name = a.segments[sid]
        added, removed, missing = [], [], []
        for em in add:
            _, m, _ = self.lookup(a, em.strip()) if isinstance(em, str) else (None, None, None)
            if m is None:
                missing.append(em)
                continue
            self.add_tags(a, m, [name])
            added.append(self.member_obj(a, m))
        for em in remove:
            _, m, _ = self.lookup(a, em.strip()) if isinstance(em, str) else (None, None, None)
            if m is None or not any(t.lower() == name.lower() for t in m.tags):
                missing.append(em)
                continue
            m.tags = tuple(t for t in m.tags if t.lower() != name.lower())
            removed.append(self.member_obj(a, m))
        errors = ([{"email_addresses": missing, "error": "Email addresses not found on the list"}]
                  if missing else [])
        return 200, {"members_added": added, "members_removed": removed, "errors": errors,
                     "total_added": len(added), "total_removed": len(removed),
                     "error_count": len(missing), "_links": []}

    def segment_members(self, ids, query, body):
        a = self.audience(ids[0])
        sid = self.segment_lookup(a, ids[1])
        name = a.segments[sid]
        count, offset = page_params(query)
        rows = [m for m in a.members.values()
                if m.status != "forgotten" and any(t.lower() == name.lower() for t in m.tags)]
        # The segment's view of a member is the shorter one the description gives it.
        short = [{k: v for k, v in self.member_obj(a, m).items() if k not in SEGMENT_MEMBER_OMITS}
                 for m in rows[offset:offset + count]]
        return 200, {"members": short, "total_items": len(rows), "_links": []}


# --------------------------------------------------------------------------
# /3.0/batches: operations run later, one batch at a time, through the same Api.


class Batch:
    def __init__(self, bid, operations, ready_at):
        self.id = bid
        self.operations = operations
        self.ready_at = ready_at
        self.submitted = now_iso()
        self.completed = ""
        self.status = "pending"
        self.errored = 0
        self.archive = None  # tar.gz bytes once finished


def run_batch(st, api, batch):
    """Runs every operation of the batch (caller holds the lock) and builds the results
    archive: a .tar.gz holding one JSON file, an array of {status_code, operation_id,
    response} where response is the answer's JSON as a string."""
    results = []
    for op in batch.operations:
        method = str(op.get("method", "")).upper()
        path = "/3.0" + str(op.get("path", ""))
        route, template, ids, methods = match_route(method, path.split("?", 1)[0])
        query = dict(parse_qsl(urlsplit(path).query))
        if isinstance(op.get("params"), dict):
            query.update({k: str(v) for k, v in op["params"].items()})
        body, bad = None, False
        if isinstance(op.get("body"), str) and op["body"]:
            try:
                body = json.loads(op["body"])
            except ValueError:
                bad = True
        try:
            if template is None or method not in methods:
                raise not_found()
            status, obj = api.call(method, template, ids, query, body, bad)
        except Problem as p:
            status, obj = p.status, p.document()
        if status >= 400:
            batch.errored += 1
        results.append({"status_code": status, "operation_id": op.get("operation_id"),
                        "response": "" if obj is None else json.dumps(obj)})
    data = json.dumps(results).encode("utf-8")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("%s.json" % uuid.uuid4().hex)
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    batch.archive = buf.getvalue()
    batch.status = "finished"
    batch.completed = now_iso()


def batch_obj(batch, base_url):
    done = batch.status == "finished"
    return {"id": batch.id, "status": batch.status, "total_operations": len(batch.operations),
            "finished_operations": len(batch.operations) if done else 0,
            "errored_operations": batch.errored if done else 0,
            "submitted_at": batch.submitted, "completed_at": batch.completed,
            "response_body_url": ("%s/__sandbox/batch-results/%s.tar.gz" % (base_url, batch.id)
                                  if done else ""),
            "_links": []}


# --------------------------------------------------------------------------
# HTTP


REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}

CONTROL_LIST_RE = re.compile(r"^/__sandbox/lists/([^/]+)(/members|/merge-fields)?$")
PROBLEM_TYPE = "application/problem+json; charset=utf-8"


def credential(headers):
    """The API key a request carries: HTTP Basic (any user, key as password), "apikey KEY",
    "Bearer KEY" or "OAuth KEY".  None when there is none."""
    auth = headers.get("Authorization")
    if not auth:
        return None
    scheme, _, rest = auth.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    if scheme in ("apikey", "bearer", "oauth"):
        return rest
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mc-sandbox"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te and te.lower() == "chunked":
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body=b"", ctype="application/json; charset=utf-8", extra=None):
        head = ["HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status")),
                "Server: mc-sandbox\r\n",
                "Date: %s\r\n" % email.utils.formatdate(usegmt=True),
                "Content-Length: %d\r\n" % len(body)]
        if body and ctype:
            head.append("Content-Type: %s\r\n" % ctype)
        for k, v in (extra or {}).items():
            head.append("%s: %s\r\n" % (k, v))
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        try:
            self.wfile.write("".join(head).encode("latin-1") + body)
        except OSError:
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method):
        if not self.server.state.running:
            self.close_connection = True
            return
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path.startswith("/__sandbox/"):
            self._control(method, parts.path, query, raw)
        else:
            self._api(method, parts.path, query, raw)

    def base_url(self):
        return "https://127.0.0.1:%d" % self.server.server_address[1]

    # --- Marketing API

    def _api(self, method, path, query, raw):
        st = self.server.state
        route, template, ids, methods = match_route(method, path)
        body, bad_json = None, False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        key = credential(self.headers)
        rec = {"method": method, "path": path, "route": route, "query": query,
               "auth": "missing" if key is None else "valid" if key == st.api_key else "invalid",
               "body": body}
        # Authentication first: a bad key costs no connection slot.
        if key is None or key == "":
            return self._problem(rec, Problem(401, "API Key Missing",
                                              "Your request did not include an API key."))
        if key != st.api_key:
            return self._problem(rec, Problem(401, "API Key Invalid", "Your API key may be invalid, "
                                              "or you've attempted to access the wrong datacenter."))
        with st.lock:
            cfg = st.config
            dc = cfg["dc"]
        key_dc = key.rpartition("-")[2] if "-" in key else ""
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        host_dc = host.split(".")[0] if host.endswith(".api.mailchimp.com") else dc
        if key_dc != dc or host_dc != dc:
            return self._problem(rec, Problem(403, "Forbidden", "The API key provided is linked to "
                                              "datacenter '%s'" % key_dc))
        with st.lock:
            cfg = st.config
            limit = int(cfg["max_connections"]) if cfg["limits_enabled"] else None
            if limit is not None and st.in_flight[key] >= limit:
                st.connection_refusals += 1
                refused = True
            else:
                refused = False
                st.in_flight[key] += 1
                st.max_in_flight = max(st.max_in_flight, st.in_flight[key])
        if refused:
            return self._problem(rec, Problem(429, "Too Many Requests", "You have exceeded the limit "
                                              "of %d simultaneous connections." % limit))
        held_from = time.monotonic()
        try:
            self._api_in_slot(method, path, query, body, bad_json, route, template, ids, methods, rec)
        finally:
            with st.lock:
                st.in_flight[key] -= 1
                st.slot_seconds += time.monotonic() - held_from

    def _api_in_slot(self, method, path, query, body, bad_json, route, template, ids, methods, rec):
        st = self.server.state
        with st.lock:
            cfg = st.config
            rng = st.rng
            delay = float(cfg["latency_ms"]) / 1000.0
            fault = None
            if int(cfg["slow_count"]) > 0:
                cfg["slow_count"] = int(cfg["slow_count"]) - 1
                delay += float(cfg["slow_ms"]) / 1000.0
            rf = cfg["route_faults"].get(route) if cfg["route_faults"] else None
            if rf is not None and int(rf.get("count", 1)) > 0:
                rf["count"] = int(rf.get("count", 1)) - 1
                fault = int(rf.get("status", 500))
                delay += float(rf.get("delay_ms", 0)) / 1000.0
            elif cfg["drop_rate"] and rng.random() < float(cfg["drop_rate"]):
                fault = 0
            elif int(cfg["storm_429"]) > 0:
                cfg["storm_429"] = int(cfg["storm_429"]) - 1
                fault = 429
            elif cfg["error_rates"]:
                u = rng.random()
                acc = 0.0
                for code in sorted(cfg["error_rates"]):
                    acc += float(cfg["error_rates"][code])
                    if u < acc:
                        fault = int(code)
                        break
            override = cfg["override_routes"].get(route) if cfg["override_routes"] else None
        if delay > 0:
            time.sleep(delay)
        if fault == 0:
            self.close_connection = True
            self._record(rec, 0)
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault is not None:
            title, detail = {
                429: ("Too Many Requests", "You have exceeded the limit of %d simultaneous "
                      "connections." % int(st.config["max_connections"])),
                503: ("Service Unavailable", "The service is temporarily unavailable."),
            }.get(fault, (REASONS.get(fault, "Error"), "An unexpected internal error has occurred. "
                          "Please contact Support for more information."))
            return self._problem(rec, Problem(fault, title, detail))
        if override is not None:
            headers = {str(k): str(v) for k, v in (override.get("headers") or {}).items()}
            own_type = any(k.lower() == "content-type" for k in headers)
            obj = override.get("body")
            status = int(override.get("status", 200))
            self._record(rec, status)
            self._send(status, b"" if obj is None else dumps(obj),
                       ctype=None if own_type else "application/json; charset=utf-8", extra=headers)
            return
        if template is None:
            return self._problem(rec, not_found())
        if method not in methods:
            return self._problem(rec, Problem(405, "Method Not Allowed", "The requested method and "
                                              "resource are not compatible. See the Allow header "
                                              "for this resource's available methods."),
                                 {"Allow": ", ".join(methods)})
        try:
            if template == "/3.0/batches" or template == "/3.0/batches/{batch_id}":
                status, obj = self._batches(method, ids, query, body, bad_json)
            else:
                with st.lock:
                    status, obj = Api(st).call(method, template, ids, query, body, bad_json)
        except Problem as p:
            return self._problem(rec, p)
        self._record(rec, status)
        self._send(status, b"" if obj is None else dumps(obj))

    def _batches(self, method, ids, query, body, bad_json):
        st = self.server.state
        if bad_json:
            raise Problem(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")
        with st.lock:
            if method == "POST" and not ids:
                ops = body.get("operations") if isinstance(body, dict) else None
                if not isinstance(ops, list) or any(
                        not isinstance(o, dict) or not isinstance(o.get("method"), str)
                        or not isinstance(o.get("path"), str)
                        or ("body" in o and not isinstance(o["body"], str)) for o in ops):
                    raise invalid_resource(SCHEMA_DETAIL, [{
                        "field": "operations", "message": "Each operation needs method and path; "
                        "body is a JSON string."}])
                pending = sum(1 for b in st.batches.values() if b.status != "finished")
                if pending >= 500:
                    raise Problem(429, "Too Many Requests", "You have more than 500 pending batches.")
                bid = uuid.uuid4().hex[:10]
                ready = time.monotonic() + float(st.config["batch_delay_ms"]) / 1000.0
                st.batches[bid] = Batch(bid, ops, ready)
                return 200, batch_obj(st.batches[bid], self.base_url())
            self._advance_batches()
            if method == "GET" and not ids:
                count, offset = page_params(query)
                rows = list(st.batches.values())
                return 200, {"batches": [batch_obj(b, self.base_url())
                                         for b in rows[offset:offset + count]],
                             "total_items": len(rows), "_links": []}
            b = st.batches.get(ids[0]) if ids else None
            if b is None:
                raise not_found()
            if method == "DELETE":
                del st.batches[b.id]
                return 204, None
            return 200, batch_obj(b, self.base_url())

    def _advance_batches(self):
        """Runs due batches, oldest first (Mailchimp runs one batch at a time).  Lock held."""
        st = self.server.state
        now = time.monotonic()
        api = Api(st)
        for b in list(st.batches.values()):
            if b.status == "finished":
                continue
            if b.ready_at > now:
                b.status = "started"
                break
            run_batch(st, api, b)

    def _problem(self, rec, problem, extra=None):
        self._record(rec, problem.status)
        headers = {"X-Request-Id": "sandbox"}
        headers.update(problem.headers or {})
        headers.update(extra or {})
        doc = problem.document()
        headers["X-Request-Id"] = doc["instance"]
        self._send(problem.status, dumps(doc), ctype=PROBLEM_TYPE, extra=headers)

    def _record(self, rec, status):
        st = self.server.state
        with st.lock:
            st.requests_total += 1
            st.by_route[rec["route"]] += 1
            st.by_status[str(status)] += 1
            if st.config["record_requests"]:
                entry = dict(rec, status=status)
                if not st.config["record_bodies"]:
                    entry["body"] = None
                st.log.append(entry)

    # --- control API

    def _control(self, method, path, query, raw):
        st = self.server.state
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, dumps({"error": "invalid JSON"}))
                return
        status, obj = 200, None
        m = CONTROL_LIST_RE.match(path)
        if path == "/__sandbox/stats" and method == "GET":
            with st.lock:
                obj = {"requests_total": st.requests_total, "by_route": dict(st.by_route),
                       "by_status": dict(st.by_status), "max_in_flight": st.max_in_flight,
                       "slot_seconds": round(st.slot_seconds, 3),
                       "connection_refusals": st.connection_refusals,
                       "members_total": sum(len(a.members) for a in st.lists.values())}
        elif path == "/__sandbox/requests" and method == "GET":
            with st.lock:
                data = dumps(list(st.log))
            self._send(200, data)
            return
        elif path == "/__sandbox/requests" and method == "DELETE":
            with st.lock:
                st.log.clear()
            obj = {"cleared": True}
        elif path == "/__sandbox/config" and method == "GET":
            with st.lock:
                obj = dict(st.config)
        elif path == "/__sandbox/config" and method == "POST":
            with st.lock:
                err = st.merge_config(body if body is not None else {})
                obj = {"error": err} if err else dict(st.config)
            status = 400 if err else 200
        elif path == "/__sandbox/reset" and method == "POST":
            with st.lock:
                st.reset(isinstance(body, dict) and body.get("everything") is True)
            obj = {"reset": True}
        elif path == "/__sandbox/lists" and method == "POST":
            status, obj = self._control_list(body)
        elif path == "/__sandbox/save" and method == "POST":
            if not self.server.state_file:
                status, obj = 400, {"error": "started without --state-file"}
            else:
                save_state(st, self.server.state_file)
                obj = {"saved": self.server.state_file}
        elif path.startswith("/__sandbox/batch-results/") and method == "GET":
            bid = path[len("/__sandbox/batch-results/"):].split(".", 1)[0]
            with st.lock:
                b = st.batches.get(bid)
                data = b.archive if b is not None else None
            if data is None:
                self._send(404, dumps({"error": "no results for batch %s" % bid}))
            else:
                self._send(200, data, ctype="application/x-gzip")
            return
        elif m and method in ("GET", "POST"):
            with st.lock:
                a = st.lists.get(unquote(m.group(1)))
                if a is None:
                    status, obj = 404, {"error": "no list %s" % m.group(1)}
                elif m.group(2) == "/members" and method == "GET":
                    obj = [{"email": x.email, "status": x.status,
                            "merge_fields": dict(x.merge), "tags": list(x.tags)}
                           for x in a.members.values()]
                elif m.group(2) == "/members":
                    status, obj = self._seed(a, body)
                elif m.group(2) == "/merge-fields" and method == "POST":
                    status, obj = self._add_merge_field(a, body)
                elif m.group(2) is None and method == "GET":
                    obj = {"id": a.id, "name": a.name, "double_optin": a.double_optin,
                           "merge_fields": a.merge_fields,
                           "segments": {str(k): v for k, v in a.segments.items()}}
                else:
                    status, obj = 404, {"error": "unknown control route %s %s" % (method, path)}
        else:
            status, obj = 404, {"error": "unknown control route %s %s" % (method, path)}
        self._send(status, dumps(obj))

    def _control_list(self, body):
        st = self.server.state
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            return 400, {"error": "need {\"id\": \"...\", \"name\": \"...\", \"double_optin\": bool}"}
        with st.lock:
            a = st.lists.get(body["id"])
            if a is None:
                a = st.lists[body["id"]] = Audience(body["id"], body.get("name") or body["id"])
            if "name" in body:
                a.name = str(body["name"])
            if "double_optin" in body:
                a.double_optin = bool(body["double_optin"])
            return 200, {"id": a.id, "name": a.name, "double_optin": a.double_optin}

    def _add_merge_field(self, a, body):
        if not isinstance(body, dict) or not isinstance(body.get("tag"), str) \
                or not re.match(r"^[A-Za-z0-9_]{1,10}$", body["tag"]):
            return 400, {"error": "need {\"tag\": \"UP_TO_10\", \"name\", \"type\", \"required\", "
                                  "\"options\"}"}
        if body.get("type", "text") not in MERGE_TYPES:
            return 400, {"error": "type must be one of " + ", ".join(MERGE_TYPES)}
        if "options" in body and not isinstance(body["options"], dict):
            return 400, {"error": "options must be an object"}
        f = a.add_merge_field(body)
        return 200, dict(f, list_id=a.id)

    def _seed(self, a, body):
        """Members put on the audience by other means than the API (signup forms, imports,
        the person unsubscribing, a bounce, an erasure).  Lock held."""
        st = self.server.state
        rows = body.get("members") if isinstance(body, dict) and "members" in body else [body]
        if not isinstance(rows, list):
            return 400, {"error": "need {\"members\": [...]} or one member"}
        for r in rows:
            if not isinstance(r, dict) or not isinstance(r.get("email"), str) or not r["email"]:
                return 400, {"error": "each member needs \"email\""}
            if r.get("status", "subscribed") not in SEED_STATUSES:
                return 400, {"error": "status must be one of " + ", ".join(SEED_STATUSES)}
            if not isinstance(r.get("merge_fields", {}), dict) or \
                    not isinstance(r.get("tags", []), list):
                return 400, {"error": "merge_fields must be an object and tags a list"}
        for r in rows:
            em = r["email"].strip()
            h = subscriber_hash(em)
            m = a.members.get(h)
            if m is None:
                m = a.members[h] = Member(em, r.get("status", "subscribed"))
            m.status = r.get("status", "subscribed")
            m.changed = now_iso()
            m.merge = dict(m.merge, **{k: v for k, v in r.get("merge_fields", {}).items() if v != ""})
            Api(st).add_tags(a, m, r.get("tags", []))
        return 200, {"seeded": len(rows)}


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, state, ssl_ctx, state_file=None):
        self.state = state
        self.ssl_ctx = ssl_ctx
        self.state_file = state_file
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # TLS handshake happens in the per-connection thread so that one slow
        # client cannot stall the accept loop.
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(60)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


def save_state(state, path):
    """Writes the snapshot whole or not at all (temp file + rename)."""
    with state.lock:
        snapshot = state.snapshot()
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(snapshot, fh)
    os.replace(tmp, path)


def parse_list_arg(s):
    lid, _, name = s.partition(":")
    lid = lid.strip()
    if not lid:
        raise argparse.ArgumentTypeError("--list needs ID[:NAME]")
    return lid, name or "Audience %s" % lid


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mailchimp Marketing API sandbox (HTTPS, 127.0.0.1)")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--api-key", required=True, help="the one valid key, like 0123...cdef-us7")
    ap.add_argument("--list", action="append", type=parse_list_arg, default=[])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", help="initial config: a JSON object, or a path to a JSON file")
    ap.add_argument("--state-file", help="audiences and members are loaded from this file at start "
                    "(if it exists) and saved to it on SIGTERM/SIGINT and POST /__sandbox/save, "
                    "so a restart keeps them")
    args = ap.parse_args(argv)

    config = None
    if args.config:
        text = args.config
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        config = json.loads(text)
    lists = args.list or [("a1b2c3d4e5", "Sandbox audience")]
    state = State(args.api_key, lists, config)
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file, encoding="utf-8") as fh:
            state.load_snapshot(json.load(fh))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = SandboxServer(("127.0.0.1", args.port), state, ctx, args.state_file)
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="serve", daemon=True)
    serve.start()

    port = server.server_address[1]
    tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, args.port_file)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    with state.lock:
        state.running = False
    if args.state_file:
        save_state(state, args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
