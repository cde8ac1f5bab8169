#!/usr/bin/env python3
"""ActiveCampaign-compatible sandbox server for segpush tests and benchmarks.

Python 3 standard library only.  See README.md next to this file for the
command line, the control API under /__sandbox/ and the fault settings.
Response shapes follow /work/shared/reference/activecampaign-api.md.
"""

import argparse
import bisect
import collections
import email.utils
import heapq
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# --------------------------------------------------------------------------
# Configuration

FAULT_DEFAULTS = {
    "latency_ms": 0,           # added to every /api/3 request
    "error_rates": {},         # {"500": 0.05, "503": 0.02}: probability per request
    "drop_rate": 0.0,          # probability of closing the connection, no response
    "storm_429": 0,            # next N /api/3 requests answer 429
    "retry_after_seconds": 1,  # Retry-After for storm 429 and fault 503
    "fail_next_imports": 0,    # next N accepted imports end in "failed"
    "stuck_imports": False,    # imports stay "active" (not applied) while true
    "slow_ms": 30000,          # delay used for the next slow_count requests
    "slow_count": 0,
    "fail_emails": [],         # emails (case-insensitive) that land in import "failure"
    "seed": 0,                 # seed of the fault RNG (re-seeded when set)
    "override_routes": {},     # {"GET /api/3/users/me": {"status", "headers", "body"}}
}

OTHER_DEFAULTS = {
    "limits_enabled": True,
    "rate_scale": 1.0,             # multiplies the three allowances below
    "rps_limit": 5,                # requests per sliding second, all /api/3 routes
    "bulk_per_minute": 100,        # multi-contact bulk_import requests per sliding minute
    "bulk_single_per_minute": 20,  # single-contact bulk_import requests per sliding minute
    "bulk_limit_status": 400,      # status of the bulk limit answer (reference: 400)
    "import_delay_ms": 0,          # waiting->claimed->active->completed over this time
    "record_requests": True,       # keep the request log at all
    "record_bodies": True,         # keep parsed bodies in the request log
    "request_log_max": 100000,     # oldest log entries are dropped beyond this
    "clock_offset_seconds": 0,     # added to real time for every timestamp the sandbox writes
    "timezone_offset": "-05:00",   # the account's zone, as AC writes it in timestamps
    "unsubscribed_in_failure": False,  # bulk subscribe of a status 2/3 member: failure, not ignored
    "failure_index_base": 0,       # first "contact" number in 400 failureReasons (0 or 1)
}

DEFAULT_CONFIG = dict(OTHER_DEFAULTS)
DEFAULT_CONFIG.update(FAULT_DEFAULTS)

MAX_BULK_CONTACTS = 250
MAX_BULK_BYTES = 400000  # body must be < 400,000 bytes (<= 399,999)

BULK_VALIDATION_MESSAGE = ("JSON payload did not pass validation. Please fix failure "
                           "Reasons and retry. The import was not queued for processing.")
BULK_LIMIT_MULTI = ("Up to 100 imports may be requested per minute.Please batch contacts "
                    "into larger requests, or retry this request in a minute.")
BULK_LIMIT_SINGLE = ("Up to 20 single-contact imports may be requested per minute.Please batch "
                     "contacts into larger requests, or retry this request in a minute.")

# Local part: no apostrophe (the reference lists invalid'character@example.com as
# failing); domain: dot-separated labels with an alphabetic TLD of 2+ characters
# (invalid.email@invalidDomain fails).
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def valid_email(value):
    return isinstance(value, str) and len(value) <= 254 and EMAIL_RE.match(value) is not None


TZ_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")

# Membership record: a tuple (status, sdate, udate, sourceid, unsubreason, campaign,
# message, unsubscribeAutomation), never mutated, so one record can be shared by every
# member a bulk import touches the same way (a million members cost a dict slot each).
# Status: 0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced.
STATUS_NAMES = {0: "unconfirmed", 1: "subscribed", 2: "unsubscribed", 3: "bounced"}
MEMBERSHIP_LINKS = ("automation", "list", "contact", "form", "autosyncLog", "campaign",
                    "unsubscribeAutomation", "message")

UNSUB_VIAS = ("campaign", "admin", "automation")


def flag(value):
    """AC clients send booleans as true, 1 or "true"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return value is True or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and value != 0)


def check_override_routes(value):
    if not isinstance(value, dict):
        return "override_routes must be an object"
    for route, o in value.items():
        if not isinstance(o, dict) or any(k not in ("status", "headers", "body") for k in o):
            return "override_routes[%s] must be {\"status\", \"headers\", \"body\"}" % route
        status = o.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            return "override_routes[%s].status must be an HTTP status" % route
        headers = o.get("headers")
        if headers is not None and (not isinstance(headers, dict) or any(
                not isinstance(k, str) or not isinstance(v, (str, int))
                for k, v in headers.items())):
            return "override_routes[%s].headers must map names to strings" % route
    return None


def check_config(new):
    if "error_rates" in new and not isinstance(new["error_rates"], dict):
        return "error_rates must be an object"
    if "fail_emails" in new and not isinstance(new["fail_emails"], list):
        return "fail_emails must be a list"
    if "clock_offset_seconds" in new:
        v = new["clock_offset_seconds"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "clock_offset_seconds must be a number"
    if "timezone_offset" in new:
        m = TZ_RE.match(new["timezone_offset"]) if isinstance(new["timezone_offset"], str) else None
        if m is None or int(m.group(2)) > 14 or int(m.group(3)) > 59:
            return "timezone_offset must look like -05:00"
    if "failure_index_base" in new and new["failure_index_base"] not in (0, 1):
        return "failure_index_base must be 0 or 1"
    if "unsubscribed_in_failure" in new and not isinstance(new["unsubscribed_in_failure"], bool):
        return "unsubscribed_in_failure must be true or false"
    if "override_routes" in new:
        return check_override_routes(new["override_routes"])
    return None


# --------------------------------------------------------------------------
# State


def field_dict(c):
    cur = c.fields or ()
    return {cur[i]: cur[i + 1] for i in range(0, len(cur), 2)}


class Contact:
    __slots__ = ("id", "email", "first_name", "last_name", "phone", "fields", "tags",
                 "cdate", "udate", "bounced")

    def __init__(self, cid, email_addr, ts):
        self.id = cid
        self.email = email_addr
        self.first_name = ""
        self.last_name = ""
        self.phone = ""
        self.fields = None   # flat tuple (field id, value, ...), see State.set_field
        self.tags = None     # list of tag names, created lazily
        self.cdate = ts
        self.udate = ts
        self.bounced = None  # date of the hard bounce ("YYYY-MM-DD"); None = bounced_hard "0"


class ImportBatch:
    __slots__ = ("batch_id", "contacts", "submitted", "delay", "will_fail", "final",
                 "parked", "success", "failure", "generation", "no_automations")

    def __init__(self, batch_id, contacts, submitted, delay, will_fail, generation,
                 no_automations=False):
        self.batch_id = batch_id
        self.contacts = contacts      # parsed contact dicts until applied
        self.submitted = submitted
        self.delay = delay            # seconds
        self.will_fail = will_fail
        self.final = None             # "completed" | "failed"
        self.parked = False           # stuck_imports held it at "active"
        self.success = []             # ids (int) of newly created contacts
        self.failure = []             # emails
        self.generation = generation
        self.no_automations = no_automations  # exclude_automations held for every contact


class SlidingWindow:
    def __init__(self, width):
        self.width = width
        self.times = collections.deque()

    def _trim(self, now):
        edge = now - self.width
        t = self.times
        while t and t[0] <= edge:
            t.popleft()

    def try_take(self, now, allowance):
        """Returns 0 when taken, otherwise the whole seconds until a slot frees."""
        self._trim(now)
        if len(self.times) >= allowance:
            wait = self.times[len(self.times) - allowance] + self.width - now
            return max(1, int(wait + 0.999))
        self.times.append(now)
        return 0

    def clear(self):
        self.times.clear()


class State:
    def __init__(self, api_key, lapsed_key, lists, config):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.api_key = api_key
        self.lapsed_key = lapsed_key
        self.lists = {}     # id (str) -> {"name": ..., "cdate": ...}
        self.fields = {}    # id (str) -> {"title", "perstag", "type", ...}
        self.config = dict(DEFAULT_CONFIG)
        self._set_clock()
        self.rng = random.Random(0)
        self.running = True
        self.generation = 0
        self.heap = []
        self.heap_seq = 0
        self._reset_data()
        if config:
            with self.lock:
                err = self.merge_config(config)
            if err:
                raise ValueError(err)
        for lid, name in lists:
            self.lists[str(lid)] = {"name": name, "cdate": self.now_iso()}

    # ---- clock: real time + clock_offset_seconds, written in the account's zone

    def _set_clock(self):
        sign, hh, mm = TZ_RE.match(self.config["timezone_offset"]).groups()
        self._tz_text = self.config["timezone_offset"]
        self._tz_seconds = (-1 if sign == "-" else 1) * (int(hh) * 3600 + int(mm) * 60)
        self._clock_offset = float(self.config["clock_offset_seconds"])

    def now_iso(self):
        t = time.gmtime(time.time() + self._clock_offset + self._tz_seconds)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + self._tz_text

    def today(self):
        return time.strftime("%Y-%m-%d", time.gmtime(time.time() + self._clock_offset
                                                      + self._tz_seconds))

    # Caller holds the lock (or is the constructor).
    def _reset_data(self):
        self.contacts = {}          # lower-cased email -> Contact
        self.by_id = [None]         # index = contact id
        self.members = {}           # list id (str) -> {contact id: membership record}
        self.id_cache = {}          # list id -> {status or -1: sorted contact ids}
        self.imports = {}           # batch id -> ImportBatch
        self.parked = []
        self.generation += 1
        self.heap = []
        self.log = collections.deque(maxlen=max(1, int(self.config["request_log_max"])))
        self.requests_total = 0
        self.by_route = collections.Counter()
        self.by_status = collections.Counter()
        self.contacts_imported = 0
        self.blank_overwrites = 0
        self.imports_accepted = 0
        self.rps_refusals = 0
        self.bulk_rate_refusals = 0
        self.rps_window = SlidingWindow(1.0)
        self.bulk_window = SlidingWindow(60.0)
        self.bulk_single_window = SlidingWindow(60.0)

    def reset(self):
        for k, v in FAULT_DEFAULTS.items():
            self.config[k] = json.loads(json.dumps(v))
        self.rng = random.Random(self.config["seed"])
        self._reset_data()
        self.cond.notify_all()

    def merge_config(self, new):
        if not isinstance(new, dict):
            return "config must be a JSON object"
        unknown = sorted(k for k in new if k not in DEFAULT_CONFIG)
        if unknown:
            return "unknown config key(s): " + ", ".join(unknown)
        err = check_config(new)
        if err:
            return err
        was_stuck = self.config["stuck_imports"]
        self.config.update(new)
        self._set_clock()
        if "seed" in new:
            self.rng = random.Random(new["seed"])
        if "request_log_max" in new:
            self.log = collections.deque(self.log, maxlen=max(1, int(new["request_log_max"])))
        if was_stuck and not self.config["stuck_imports"] and self.parked:
            now = time.monotonic()
            for b in self.parked:
                b.parked = False
                self._schedule(now, b)
            self.parked = []
        self.cond.notify_all()
        return None

    def fail_email_set(self):
        fe = self.config.get("fail_emails") or []
        return {str(e).lower() for e in fe} if fe else None

    # ---- persistence (--state-file); caller holds the lock

    def snapshot(self):
        """Everything a restart should keep. Imports still queued are applied first (the
        vendor finishes its queue while we are away); parked (stuck) ones stay parked."""
        while self.heap:
            _, _, batch = heapq.heappop(self.heap)
            if batch.generation == self.generation and not batch.final and not batch.parked:
                self.apply_import(batch)
        # Members are [contact id, status, index into membership_records]: the records
        # are shared by whole batches, so writing each once keeps the file small.
        records = {}
        members = {}
        for lid, m in self.members.items():
            rows = members[lid] = []
            for cid, rec in m.items():
                tail = rec[1:]
                i = records.get(tail)
                if i is None:
                    i = records[tail] = len(records)
                rows.append([cid, rec[0], i])
        return {
            "lists": self.lists,
            "fields": self.fields,
            "contacts": [[c.email, c.first_name, c.last_name, c.phone, list(c.fields or ()),
                          c.tags or [], c.cdate, c.udate, c.bounced] for c in self.by_id[1:]],
            "members": members,
            "membership_records": [list(t) for t in records],
            "imports": [[b.batch_id, b.final, b.parked, b.success, b.failure,
                         b.contacts if b.parked else None, b.will_fail, b.no_automations]
                        for b in self.imports.values()],
        }

    def load_snapshot(self, snap):
        """Also reads snapshots written before memberships had dates: members are then
        [contact id, status] and take the contact's cdate/udate as sdate/udate."""
        with self.lock:
            self.lists.update(snap.get("lists", {}))
            self.fields.update(snap.get("fields", {}))
            # json gives every row its own copy of a timestamp; one shared copy each
            # keeps a reloaded million-contact state as small as the one saved.
            same = {}
            for row in snap.get("contacts", []):
                email_addr, first, last, phone, fields, tags, cdate, udate = row[:8]
                c = Contact(len(self.by_id), email_addr, same.setdefault(cdate, cdate))
                c.first_name, c.last_name, c.phone = first, last, phone
                c.udate = same.setdefault(udate, udate)
                c.fields = tuple(fields) or None
                c.tags = list(tags) or None
                c.bounced = row[8] if len(row) > 8 else None
                self.contacts[email_addr.lower()] = c
                self.by_id.append(c)
            records = [tuple(r) for r in snap.get("membership_records", [])]
            shared = {}
            for lid, rows in snap.get("members", {}).items():
                m = self.members[lid] = {}
                for row in rows:
                    cid, status = int(row[0]), int(row[1])
                    if len(row) > 2:
                        rec = (status,) + records[row[2]]
                    else:
                        c = self.by_id[cid] if 0 < cid < len(self.by_id) else None
                        ts = self.now_iso() if c is None else None
                        rec = (status, c.cdate if c else ts, c.udate if c else ts, "0",
                               None, None, None, None)
                    m[cid] = shared.setdefault(rec, rec)
            now = time.monotonic()
            for row in snap.get("imports", []):
                batch_id, final, parked, success, failure, contacts, will_fail = row[:7]
                b = ImportBatch(batch_id, contacts, now, 0.0, will_fail, self.generation,
                                bool(row[7]) if len(row) > 7 else False)
                b.final, b.parked, b.success, b.failure = final, parked, success, failure
                self.imports[batch_id] = b
                if parked:
                    self.parked.append(b)

    # ---- contacts

    def get_or_create(self, email_addr, ts):
        key = email_addr.lower()
        c = self.contacts.get(key)
        if c is not None:
            return c, False
        cid = len(self.by_id)
        # First-seen casing is kept; later spellings only match.
        c = Contact(cid, email_addr if key != email_addr else key, ts)
        self.contacts[key] = c
        self.by_id.append(c)
        return c, True

    def set_attr(self, c, attr, value):
        if value is None:
            return
        value = str(value)
        old = getattr(c, attr)
        if value == "" and old != "":
            self.blank_overwrites += 1
        setattr(c, attr, value)

    def set_field(self, c, fid, value):
        # Field values are kept as a flat tuple (id, value, id, value, ...): far
        # smaller than a dict per contact when a million contacts are stored.
        value = "" if value is None else str(value)
        cur = c.fields or ()
        for i in range(0, len(cur), 2):
            if cur[i] == fid:
                if value == "" and cur[i + 1]:
                    self.blank_overwrites += 1
                c.fields = cur[:i + 1] + (value,) + cur[i + 2:]
                return
        c.fields = cur + (sys.intern(fid), value)

    # ---- memberships (caller holds the lock)

    def membership(self, list_id, cid):
        m = self.members.get(list_id)
        return None if m is None else m.get(cid)

    def put_membership(self, list_id, cid, rec):
        m = self.members.get(list_id)
        if m is None:
            m = self.members[list_id] = {}
        old = m.get(cid)
        m[cid] = rec
        if old is None or old[0] != rec[0]:
            self.id_cache.pop(list_id, None)
        return rec

    def subscribe(self, list_id, cid, sourceid, ts):
        """Status 1 whatever the membership was (contactLists status 1, a form): a new
        sdate unless already active; what an unsubscribe or bounce left is cleared."""
        old = self.membership(list_id, cid)
        sdate = old[1] if old is not None and old[0] == 1 else ts
        return self.put_membership(list_id, cid, (1, sdate, ts, sourceid, None, None, None, None))

    def unsubscribe(self, list_id, cid, ts, reason=None, campaign=None, message=None,
                    automation=None):
        """Status 2 whatever the membership was; the fields tell who unsubscribed (a
        campaign link, an automation, or neither: the API or an account user)."""
        old = self.membership(list_id, cid)
        sdate, sourceid = (ts, "0") if old is None else (old[1], old[3])
        return self.put_membership(list_id, cid,
                                   (2, sdate, ts, sourceid, reason, campaign, message, automation))

    def bounce(self, c, ts):
        c.bounced = self.today()
        c.udate = ts
        for lid, m in self.members.items():
            old = m.get(c.id)
            if old is not None:
                self.put_membership(lid, c.id, (3, old[1], ts) + old[3:])

    def memberships_of(self, cid):
        """[(list id, record)] in list id order."""
        out = [(lid, m[cid]) for lid, m in self.members.items() if cid in m]
        out.sort(key=lambda x: (len(x[0]), x[0]))
        return out

    def member_ids(self, list_id, want):
        """Sorted ids of the list's members with status `want` (-1: any status)."""
        per = self.id_cache.get(list_id)
        if per is None:
            per = self.id_cache[list_id] = {}
        ids = per.get(want)
        if ids is None:
            m = self.members.get(list_id, {})
            if want == -1:
                ids = sorted(m)
            else:
                ids = sorted(cid for cid, rec in m.items() if rec[0] == want)
            per[want] = ids
        return ids

    def _subscribe_blocked(self, email_addr, subs):
        c = self.contacts.get(email_addr.lower())
        if c is None:
            return False
        for s in subs:
            rec = self.membership(str(s["listid"]), c.id)
            if rec is not None and rec[0] >= 2:
                return True
        return False

    # ---- imports (caller holds lock)

    def _schedule(self, now, batch):
        self.heap_seq += 1
        heapq.heappush(self.heap, (now + batch.delay, self.heap_seq, batch))
        self.cond.notify_all()

    def submit_import(self, contacts, no_automations=False):
        now = time.monotonic()
        will_fail = False
        if int(self.config["fail_next_imports"]) > 0:
            self.config["fail_next_imports"] = int(self.config["fail_next_imports"]) - 1
            will_fail = True
        delay = max(0.0, float(self.config["import_delay_ms"]) / 1000.0)
        batch = ImportBatch(str(uuid.uuid4()), contacts, now, delay, will_fail, self.generation,
                            no_automations)
        self.imports[batch.batch_id] = batch
        self.imports_accepted += 1
        self._schedule(now, batch)
        return batch

    def apply_import(self, batch):
        contacts = batch.contacts
        batch.contacts = None
        if batch.will_fail:
            batch.failure = [c["email"] for c in contacts]
            batch.final = "failed"
            return
        ts = self.now_iso()
        fail = self.fail_email_set()
        strict = self.config["unsubscribed_in_failure"]
        members = self.members
        touched = set()
        # Membership records are shared: one per batch for new members, one per
        # (sdate, sourceid) for members the batch unsubscribes.
        joined = (1, ts, ts, "0", None, None, None, None)
        left_new = (2, ts, ts, "0", None, None, None, None)
        left = {}
        for item in contacts:
            em = item["email"]
            if fail and em.lower() in fail:
                batch.failure.append(em)
                continue
            subs = item.get("subscribe")
            if strict and subs and self._subscribe_blocked(em, subs):
                batch.failure.append(em)
                continue
            c, created = self.get_or_create(em, ts)
            if created:
                batch.success.append(c.id)
            c.udate = ts
            if "first_name" in item:
                self.set_attr(c, "first_name", item["first_name"])
            if "last_name" in item:
                self.set_attr(c, "last_name", item["last_name"])
            if "phone" in item:
                self.set_attr(c, "phone", item["phone"])
            for f in item.get("fields") or ():
                self.set_field(c, str(f["id"]), f.get("value"))
            tags = item.get("tags")
            if tags:
                if c.tags is None:
                    c.tags = []
                have = {t.lower() for t in c.tags}
                for t in tags:
                    t = str(t)
                    if t.lower() not in have:
                        have.add(t.lower())
                        c.tags.append(t)
            cid = c.id
            for s in item.get("unsubscribe") or ():
                lid = str(s["listid"])
                m = members.get(lid)
                if m is None:
                    m = members[lid] = {}
                old = m.get(cid)
                if old is None:
                    m[cid] = left_new
                elif old[0] < 2:
                    key = (old[1], old[3])
                    rec = left.get(key)
                    if rec is None:
                        rec = left[key] = (2, old[1], ts, old[3], None, None, None, None)
                    m[cid] = rec
                else:
                    continue
                touched.add(lid)
            # Bulk subscribe never changes an unsubscribed (2) or bounced (3) member.
            for s in subs or ():
                lid = str(s["listid"])
                m = members.get(lid)
                if m is None:
                    m = members[lid] = {}
                old = m.get(cid)
                if old is None or old[0] == 0:
                    m[cid] = joined
                    touched.add(lid)
            self.contacts_imported += 1
        for lid in touched:
            self.id_cache.pop(lid, None)
        batch.final = "completed"

    def import_status(self, batch, now):
        if batch.final:
            return batch.final
        if batch.parked:
            return "active"
        if batch.delay <= 0:
            return False
        f = (now - batch.submitted) / batch.delay
        if f < 0.1:
            return False
        if f < 0.3:
            return "waiting"
        if f < 0.6:
            return "claimed"
        return "active"

    def worker(self):
        with self.cond:
            while self.running:
                if not self.heap:
                    self.cond.wait()
                    continue
                due = self.heap[0][0]
                now = time.monotonic()
                if due > now:
                    self.cond.wait(due - now)
                    continue
                _, _, batch = heapq.heappop(self.heap)
                if batch.generation != self.generation:
                    continue
                if self.config["stuck_imports"]:
                    batch.parked = True
                    self.parked.append(batch)
                    continue
                self.apply_import(batch)


# --------------------------------------------------------------------------
# HTTP


REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
           302: "Found", 303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect",
           400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
           403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
           422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}

MEMBERS_RE = re.compile(r"^/__sandbox/lists/([^/]+)/members$")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def page_params(q, default=20, maximum=100):
    try:
        limit = int(q.get("limit", default))
    except (TypeError, ValueError):
        limit = default
    if limit <= 0:
        limit = default
    limit = min(limit, maximum)
    try:
        offset = max(0, int(q.get("offset", 0)))
    except (TypeError, ValueError):
        offset = 0
    return limit, offset


def route_template(method, path):
    if path.startswith("/api/3/lists/") and "/" not in path[len("/api/3/lists/"):]:
        return method + " /api/3/lists/{id}"
    if path.startswith("/api/3/contacts/"):
        cid, slash, tail = path[len("/api/3/contacts/"):].partition("/")
        if cid and not slash:
            return method + " /api/3/contacts/{id}"
        if cid and tail == "contactLists":
            return method + " /api/3/contacts/{id}/contactLists"
    if path in ("/api/3/users/me", "/api/3/fields", "/api/3/contact/sync",
                "/api/3/contactLists", "/api/3/import/bulk_import", "/api/3/import/info",
                "/api/3/contacts", "/api/3/lists"):
        return method + " " + path
    return method + " <unmatched>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ac-sandbox"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    # --- plumbing

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
                "Server: ac-sandbox\r\n",
                "Date: %s\r\n" % email.utils.formatdate(usegmt=True),
                "Content-Length: %d\r\n" % len(body)]
        if body and ctype:
            head.append("Content-Type: %s\r\n" % ctype)
        if extra:
            for k, v in extra.items():
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
        if not self.server.state.running:  # stopping: answer nothing, as a server going down
            self.close_connection = True
            return
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/__sandbox/"):
            self._control(method, path, query, raw)
        else:
            self._api(method, path, query, raw)

    # --- ActiveCampaign routes

    def _api(self, method, path, query, raw):
        st = self.server.state
        route = route_template(method, path)
        body = None
        bad_json = False
        if raw:
            if route == "POST /api/3/import/bulk_import" and len(raw) >= MAX_BULK_BYTES:
                body = None  # not parsed: refused below
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    bad_json = True
        token = self.headers.get("Api-Token")
        with st.lock:
            cfg = st.config
            rng = st.rng
            drop = False
            status_fault = None
            slow = 0.0
            latency = float(cfg["latency_ms"]) / 1000.0
            if int(cfg["slow_count"]) > 0:
                cfg["slow_count"] = int(cfg["slow_count"]) - 1
                slow = float(cfg["slow_ms"]) / 1000.0
            if cfg["drop_rate"] and rng.random() < float(cfg["drop_rate"]):
                drop = True
            elif int(cfg["storm_429"]) > 0:
                cfg["storm_429"] = int(cfg["storm_429"]) - 1
                status_fault = 429
            elif cfg["error_rates"]:
                u = rng.random()
                acc = 0.0
                for code in sorted(cfg["error_rates"]):
                    acc += float(cfg["error_rates"][code])
                    if u < acc:
                        status_fault = int(code)
                        break
            retry_after = str(max(0, int(cfg["retry_after_seconds"])))
            override = cfg["override_routes"].get(route) if cfg["override_routes"] else None
        if latency + slow > 0:
            time.sleep(latency + slow)
        if drop:
            self.close_connection = True
            self._finish_record(method, path, query, route, token, body, 0)
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if status_fault is not None:
            extra = None
            if status_fault in (429, 503):
                extra = {"Retry-After": retry_after}
            msg = {429: "Too Many Requests", 503: "Service Unavailable"}.get(
                status_fault, REASONS.get(status_fault, "Error"))
            self._reply(method, path, query, route, token, body, status_fault,
                        {"message": msg}, extra)
            return
        if token is None or (token != st.api_key and token != st.lapsed_key) or not token:
            self._reply(method, path, query, route, token, body, 403, None)
            return
        if token == st.lapsed_key:
            self._reply(method, path, query, route, token, body, 402, None)
            return
        if override is not None:
            headers = {str(k): str(v) for k, v in (override.get("headers") or {}).items()}
            own_type = any(k.lower() == "content-type" for k in headers)
            obj = override.get("body")
            status = override.get("status", 200)
            self._finish_record(method, path, query, route, token, body, status)
            self._send(status, b"" if obj is None else dumps(obj),
                       ctype=None if own_type else "application/json; charset=utf-8",
                       extra=headers)
            return
        # Account-wide limits.
        is_bulk = route == "POST /api/3/import/bulk_import"
        with st.lock:
            cfg = st.config
            if cfg["limits_enabled"]:
                scale = float(cfg["rate_scale"])
                now = time.monotonic()
                rps = max(1, int(float(cfg["rps_limit"]) * scale))
                wait = st.rps_window.try_take(now, rps)
                if wait:
                    limited = ("rps", wait)
                    st.rps_refusals += 1
                else:
                    limited = None
                    if is_bulk and isinstance(body, dict) and isinstance(body.get("contacts"), list):
                        single = len(body["contacts"]) == 1
                        if single:
                            allow = max(1, int(float(cfg["bulk_single_per_minute"]) * scale))
                            w = st.bulk_single_window.try_take(now, allow)
                        else:
                            allow = max(1, int(float(cfg["bulk_per_minute"]) * scale))
                            w = st.bulk_window.try_take(now, allow)
                        if w:
                            limited = ("bulk_single" if single else "bulk", w)
                            st.bulk_rate_refusals += 1
                bulk_status = int(cfg["bulk_limit_status"])
            else:
                limited = None
        if limited:
            kind, wait = limited
            if kind == "rps":
                self._reply(method, path, query, route, token, body, 429,
                            {"message": "Too Many Requests"},
                            {"Retry-After": str(wait), "RateLimit-Limit": str(rps),
                             "RateLimit-Remaining": "0"})
            else:
                reason = BULK_LIMIT_SINGLE if kind == "bulk_single" else BULK_LIMIT_MULTI
                extra = {"Retry-After": str(wait)} if bulk_status == 429 else None
                self._reply(method, path, query, route, token, body, bulk_status,
                            {"success": 0, "message": "Rate limit exceeded.",
                             "failureReasons": [reason]}, extra)
            return
        if bad_json and not is_bulk:
            self._reply(method, path, query, route, token, body, 400, {})
            return
        handler = {
            "GET /api/3/users/me": self._users_me,
            "GET /api/3/lists/{id}": self._list_get,
            "GET /api/3/lists": self._lists_get,
            "GET /api/3/fields": self._fields_get,
            "POST /api/3/contact/sync": self._contact_sync,
            "POST /api/3/contactLists": self._contact_lists,
            "POST /api/3/import/bulk_import": self._bulk_import,
            "GET /api/3/import/info": self._import_info,
            "GET /api/3/contacts": self._contacts_get,
            "GET /api/3/contacts/{id}": self._contact_get,
            "GET /api/3/contacts/{id}/contactLists": self._contact_memberships,
        }.get(route)
        if handler is None:
            status, obj = 404, {"message": "No Result found for route %s %s" % (method, path)}
        else:
            status, obj = handler(path, query, body, raw, bad_json)
        self._reply(method, path, query, route, token, body, status, obj)

    def _reply(self, method, path, query, route, token, body, status, obj, extra=None):
        data = b"" if obj is None else dumps(obj)
        self._finish_record(method, path, query, route, token, body, status)
        self._send(status, data, extra=extra)

    def _finish_record(self, method, path, query, route, token, body, status):
        st = self.server.state
        with st.lock:
            st.requests_total += 1
            st.by_route[route] += 1
            st.by_status[str(status)] += 1
            if st.config["record_requests"]:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "api-token"}
                if token is None:
                    auth = "missing"
                elif token == st.api_key:
                    auth = "valid"
                elif st.lapsed_key is not None and token == st.lapsed_key:
                    auth = "lapsed"
                else:
                    auth = "invalid"
                st.log.append({"method": method, "path": path, "query": query,
                               "status": status, "headers": headers, "auth": auth,
                               "body": body if st.config["record_bodies"] else None})

    # --- individual AC handlers: return (status, obj); obj None = empty body

    def _users_me(self, path, query, body, raw, bad_json):
        return 200, {"user": {"username": "sandbox", "firstName": "Sandbox", "lastName": "User",
                              "email": "sandbox@example.com", "phone": "", "signature": None,
                              "links": {"lists": "/api/3/users/1/lists",
                                        "userGroup": "/api/3/users/1/userGroup"},
                              "id": "1"}}

    @staticmethod
    def _list_obj(lid, info):
        return {"stringid": re.sub(r"[^a-z0-9]+", "-", info["name"].lower()).strip("-"),
                "userid": "1", "name": info["name"], "cdate": info["cdate"],
                "private": "0", "sender_url": "http://sandbox.example.com",
                "sender_reminder": "You signed up for the sandbox list.",
                "links": {}, "id": lid, "user": "1"}

    def _list_get(self, path, query, body, raw, bad_json):
        lid = path.rsplit("/", 1)[-1]
        st = self.server.state
        with st.lock:
            info = st.lists.get(lid)
            if info is None:
                return 404, {"message": "No Result found for _List with id %s" % lid}
            return 200, {"list": self._list_obj(lid, info)}

    def _lists_get(self, path, query, body, raw, bad_json):
        st = self.server.state
        limit, offset = page_params(query)
        with st.lock:
            ids = sorted(st.lists, key=lambda x: (len(x), x))
            page = [self._list_obj(i, st.lists[i]) for i in ids[offset:offset + limit]]
            return 200, {"lists": page, "meta": {"total": str(len(ids))}}

    def _fields_get(self, path, query, body, raw, bad_json):
        st = self.server.state
        limit, offset = page_params(query)
        with st.lock:
            ids = sorted(st.fields, key=lambda x: (len(x), x))
            page = []
            for i in ids[offset:offset + limit]:
                f = st.fields[i]
                page.append({"title": f["title"], "descript": None, "type": f["type"],
                             "isrequired": "0", "perstag": f["perstag"], "defval": None,
                             "show_in_list": "0", "rows": "0", "cols": "0", "visible": "1",
                             "service": "", "ordernum": i, "cdate": f["cdate"],
                             "udate": f["cdate"], "options": [], "relations": [],
                             "links": {}, "id": i})
            return 200, {"fieldOptions": [], "fieldRels": [], "fields": page,
                         "meta": {"total": str(len(ids))}}

    @staticmethod
    def _contact_obj(c):
        return {"cdate": c.cdate, "email": c.email, "phone": c.phone,
                "firstName": c.first_name, "lastName": c.last_name, "orgid": "0",
                "orgname": "", "email_empty": False, "bounced_hard": "1" if c.bounced else "0",
                "bounced_soft": "0", "bounced_date": c.bounced, "deleted": "0",
                "udate": c.udate, "links": {}, "hash": "", "id": str(c.id),
                "organization": None}

    @staticmethod
    def _membership_obj(lid, c, rec, status_as_int=False):
        """A contactList as AC writes it: reads give status as a string, the
        contactLists POST answer as a number."""
        mid = "%s-%d" % (lid, c.id)
        base = "/api/3/contactLists/%s/" % mid
        sdate, udate = rec[1], rec[2]
        return {"contact": str(c.id), "list": lid, "form": None, "seriesid": "0",
                "sdate": sdate, "udate": udate,
                "status": rec[0] if status_as_int else str(rec[0]), "responder": "1",
                "sync": "0", "unsubreason": rec[4], "campaign": rec[5], "message": rec[6],
                "first_name": c.first_name, "last_name": c.last_name, "ip4Sub": "0",
                "sourceid": rec[3], "autosyncLog": None, "ip4_last": "0", "ip4Unsub": "0",
                "created_timestamp": sdate[:19].replace("T", " ") if sdate else None,
                "updated_timestamp": udate[:19].replace("T", " ") if udate else None,
                "created_by": None, "updated_by": None, "unsubscribeAutomation": rec[7],
                "links": {k: base + k for k in MEMBERSHIP_LINKS}, "id": mid,
                "automation": None}

    def _contact_by_path(self, st, path):
        """(contact, None) or (None, 404 answer); caller holds the lock."""
        seg = path[len("/api/3/contacts/"):].partition("/")[0]
        cid = int(seg) if seg.isdigit() else 0
        if 0 < cid < len(st.by_id) and st.by_id[cid] is not None:
            return st.by_id[cid], None
        return None, (404, {"message": "No Result found for Subscriber with id %s" % seg})

    def _contact_get(self, path, query, body, raw, bad_json):
        st = self.server.state
        with st.lock:
            c, missing = self._contact_by_path(st, path)
            if missing:
                return missing
            cid = str(c.id)
            lists = [self._membership_obj(lid, c, rec) for lid, rec in st.memberships_of(c.id)]
            cur = c.fields or ()
            fvs = [{"contact": cid, "field": cur[i], "value": cur[i + 1], "cdate": c.cdate,
                    "udate": c.udate, "links": {}, "id": "%s-%s" % (cur[i], cid), "owner": cid}
                   for i in range(0, len(cur), 2)]
            obj = self._contact_obj(c)
            obj.update({"segmentio_id": "", "ip": "0", "ua": None, "socialdata_lastcheck": None,
                        "email_local": "", "email_domain": "", "sentcnt": "0",
                        "rating_tstamp": None, "gravatar": "0", "adate": None, "edate": None,
                        "contactLists": [m["id"] for m in lists],
                        "fieldValues": [f["id"] for f in fvs],
                        "links": {k: "/api/3/contacts/%s/%s" % (cid, k)
                                  for k in ("contactLists", "fieldValues", "contactTags",
                                            "bounceLogs", "contactLogs")}})
            return 200, {"contact": obj, "contactLists": lists, "fieldValues": fvs}

    def _contact_memberships(self, path, query, body, raw, bad_json):
        st = self.server.state
        with st.lock:
            c, missing = self._contact_by_path(st, path)
            if missing:
                return missing
            return 200, {"contactLists": [self._membership_obj(lid, c, rec)
                                          for lid, rec in st.memberships_of(c.id)]}

    def _contact_sync(self, path, query, body, raw, bad_json):
        if bad_json or not isinstance(body, dict) or not isinstance(body.get("contact"), dict):
            return 400, {}
        item = body["contact"]
        em = item.get("email")
        if not valid_email(em):
            return 422, {"errors": [{"title": "Contact Email Address is not valid.",
                                     "detail": "", "code": "email_invalid",
                                     "source": {"pointer": "/data/attributes/email"}}]}
        fvs = item.get("fieldValues") or []
        if not isinstance(fvs, list) or any(not isinstance(f, dict) or "field" not in f
                                            for f in fvs):
            return 400, {}
        st = self.server.state
        with st.lock:
            ts = st.now_iso()
            c, created = st.get_or_create(em, ts)
            c.udate = ts
            for src, attr in (("firstName", "first_name"), ("lastName", "last_name"),
                              ("phone", "phone")):
                if src in item:
                    st.set_attr(c, attr, item[src])
            out_fv = []
            for f in fvs:
                fid = str(f["field"])
                st.set_field(c, fid, f.get("value"))
                out_fv.append({"contact": str(c.id), "field": fid, "value": field_dict(c)[fid],
                               "cdate": ts, "udate": ts, "links": {}, "owner": str(c.id)})
            obj = self._contact_obj(c)
            obj["fieldValues"] = [str(i) for i in range(len(out_fv))]
            return 201, {"fieldValues": out_fv, "contact": obj}

    def _contact_lists(self, path, query, body, raw, bad_json):
        if bad_json or not isinstance(body, dict) or not isinstance(body.get("contactList"), dict):
            return 400, {}
        cl = body["contactList"]
        missing = [k for k in ("list", "contact", "status") if k not in cl]
        if missing:
            return 422, {"errors": [{"title": "The %s was not provided." % missing[0],
                                     "detail": "", "code": "field_missing",
                                     "source": {"pointer": "/data/attributes/%s" % missing[0]}}]}
        lid = str(cl["list"])
        try:
            cid = int(cl["contact"])
            status = int(cl["status"])
        except (TypeError, ValueError):
            cid, status = -1, -1
        sourceid = cl.get("sourceid", body.get("sourceid"))
        sourceid = "0" if sourceid is None else str(sourceid)
        st = self.server.state
        with st.lock:
            if lid not in st.lists:
                return 422, {"errors": [{"title": "The related list does not exist.",
                                         "detail": "", "code": "related_missing",
                                         "error": "list_not_exist",
                                         "source": {"pointer": "/data/attributes/list"}}]}
            if cid <= 0 or cid >= len(st.by_id) or st.by_id[cid] is None:
                return 422, {"errors": [{"title": "The related contact does not exist.",
                                         "detail": "", "code": "related_missing",
                                         "error": "contact_not_exist",
                                         "source": {"pointer": "/data/attributes/contact"}}]}
            if status not in (1, 2):
                return 422, {"errors": [{"title": "The status is not valid.", "detail": "",
                                         "code": "field_invalid",
                                         "source": {"pointer": "/data/attributes/status"}}]}
            c = st.by_id[cid]
            ts = st.now_iso()
            # Status 1 re-subscribes anyone, self-unsubscribed and bounced included (the
            # reference warns about exactly this); status 2 is an API unsubscribe.
            if status == 1:
                rec = st.subscribe(lid, cid, sourceid, ts)
            else:
                rec = st.unsubscribe(lid, cid, ts)
            return 200, {"contacts": [self._contact_obj(c)],
                         "contactList": self._membership_obj(lid, c, rec, status_as_int=True)}

    @staticmethod
    def _validation_error(reasons):
        return 400, {"success": 0, "message": BULK_VALIDATION_MESSAGE, "failureReasons": reasons}

    def _bulk_import(self, path, query, body, raw, bad_json):
        if len(raw) >= MAX_BULK_BYTES:
            return self._validation_error(
                ["Payload too large: the request body must be less than 400,000 bytes "
                 "(399,999 bytes or less)."])
        if bad_json or not isinstance(body, dict):
            return self._validation_error(["Request body is not valid JSON."])
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            return self._validation_error(["'contacts' is a required field."])
        if len(contacts) > MAX_BULK_CONTACTS:
            return self._validation_error(
                ["Up to %d contacts may be included in a single request." % MAX_BULK_CONTACTS])
        reasons = []
        st = self.server.state
        base = st.config["failure_index_base"]
        for i, c in enumerate(contacts):
            why = self._bulk_contact_problem(c)
            if why:
                reasons.append({"contact": i + base, "failureReason": why})
        cb = body.get("callback")
        if cb is not None and (not isinstance(cb, dict) or "url" not in cb
                               or "requestType" not in cb):
            reasons.append({"contact": -1, "failureReason":
                            "Field‘ callback’ requires url and requestType"})
        if reasons:
            return self._validation_error(reasons)
        # AC documents exclude_automations per contact; some clients send it once, top level.
        no_automations = flag(body.get("exclude_automations")) or all(
            flag(c.get("exclude_automations")) for c in contacts)
        with st.lock:
            if not st.running:  # stopping (state already saved): no answer, nothing queued
                self.close_connection = True
                raise ConnectionAbortedError("sandbox stopping")
            batch = st.submit_import(contacts, no_automations)
        return 200, {"Success": 1, "queued_contacts": len(contacts), "batchId": batch.batch_id,
                     "message": "Contact import queued"}

    @staticmethod
    def _bulk_contact_problem(c):
        if not isinstance(c, dict):
            return "Contact is not an object"
        if "email" not in c or c["email"] in (None, ""):
            return "Field‘ email’ is required"
        if not valid_email(c["email"]):
            return "Field‘ email’ incorrect format"
        for k in ("first_name", "last_name", "phone", "customer_acct_name"):
            if k in c and c[k] is not None and not isinstance(c[k], (str, int, float)):
                return "Field‘ %s’ incorrect format" % k
        tags = c.get("tags")
        if tags is not None and (not isinstance(tags, list)
                                 or any(not isinstance(t, str) for t in tags)):
            return "Field‘ tags’ incorrect format"
        fields = c.get("fields")
        if fields is not None:
            if not isinstance(fields, list):
                return "Field‘ fields’ incorrect format"
            for f in fields:
                if not isinstance(f, dict) or "id" not in f or "value" not in f:
                    return "Field‘ fields’ incorrect format"
                try:
                    int(f["id"])
                except (TypeError, ValueError):
                    return "Field‘ fields’ incorrect format"
        for k in ("subscribe", "unsubscribe"):
            v = c.get(k)
            if v is not None:
                if not isinstance(v, list) or any(not isinstance(s, dict) or "listid" not in s
                                                  for s in v):
                    return "Field‘ %s’ incorrect format" % k
        return None

    def _import_info(self, path, query, body, raw, bad_json):
        bid = query.get("batchId")
        if not bid:
            return 400, {"success": 0, "message": "'batchId' is a required field."}
        st = self.server.state
        with st.lock:
            b = st.imports.get(bid)
            if b is None:
                return 404, {"message": "No Result found for import batch with id %s" % bid}
            status = st.import_status(b, time.monotonic())
            return 200, {"status": status, "success": [str(i) for i in b.success],
                         "failure": list(b.failure)}

    def _contacts_get(self, path, query, body, raw, bad_json):
        st = self.server.state
        limit, offset = page_params(query)
        lid = query.get("listid")
        status = query.get("status")
        with st.lock:
            if lid is not None:
                # With listid, no status means the list's active members.
                if status in (None, ""):
                    want = 1
                elif status == "-1":
                    want = -1
                else:
                    want = int(status) if status.isdigit() else 0
                ids = st.member_ids(lid, want)
            else:
                ids = None
            email = query.get("email")
            if email is not None:
                # AC's exact-match filter (case-insensitive), combinable with listid.
                found = st.contacts.get(email.lower())
                matched = [found.id] if found is not None else []
                ids = matched if ids is None else [i for i in ids if i in matched]
            idg = query.get("id_greater")
            if ids is None:
                total_ids = range(1, len(st.by_id))
                ids = total_ids
            start = 0
            if idg is not None:
                try:
                    start = bisect.bisect_right(ids, int(idg))
                except ValueError:
                    start = 0
            total = len(ids) - start
            sel = ids[start + offset:start + offset + limit]
            page = [self._contact_obj(st.by_id[i]) for i in sel]
            return 200, {"scoreValues": [], "contacts": page,
                         "meta": {"total": str(total),
                                  "page_input": {"segmentid": 0, "formid": 0,
                                                 "listid": int(lid) if lid and lid.isdigit() else 0,
                                                 "tagid": 0, "limit": limit, "offset": offset,
                                                 "search": None, "sort": None, "seriesid": 0,
                                                 "waitid": 0,
                                                 "status": int(status) if status and status.lstrip("-").isdigit() else -1,
                                                 "forceQuery": 0, "cacheid": ""}}}

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
        if path == "/__sandbox/stats" and method == "GET":
            with st.lock:
                obj = {"requests_total": st.requests_total, "by_route": dict(st.by_route),
                       "by_status": dict(st.by_status),
                       "contacts_imported": st.contacts_imported,
                       "contacts_total": len(st.contacts),
                       "imports_accepted": st.imports_accepted,
                       "imports_pending": sum(1 for b in st.imports.values() if not b.final),
                       "blank_overwrites": st.blank_overwrites,
                       "rps_refusals": st.rps_refusals,
                       "bulk_rate_refusals": st.bulk_rate_refusals}
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
                st.reset()
            obj = {"reset": True}
        elif path == "/__sandbox/lists" and method == "POST":
            if not isinstance(body, dict) or "id" not in body:
                status, obj = 400, {"error": "need {\"id\": N, \"name\": \"...\"}"}
            else:
                lid = str(body["id"])
                with st.lock:
                    st.lists[lid] = {"name": str(body.get("name") or "List %s" % lid),
                                     "cdate": st.now_iso()}
                obj = {"id": lid, "name": st.lists[lid]["name"]}
        elif path == "/__sandbox/fields" and method == "POST":
            if not isinstance(body, dict) or "id" not in body:
                status, obj = 400, {"error": "need {\"id\": N, \"title\": \"...\"}"}
            else:
                fid = str(body["id"])
                title = str(body.get("title") or "Field %s" % fid)
                perstag = str(body.get("perstag") or re.sub(r"[^A-Z0-9]+", "_", title.upper()))
                f = {"title": title, "perstag": perstag, "type": str(body.get("type") or "text"),
                     "cdate": st.now_iso()}
                with st.lock:
                    st.fields[fid] = f
                obj = {"id": fid, "title": title, "perstag": perstag, "type": f["type"]}
        elif path == "/__sandbox/imports" and method == "GET":
            with st.lock:
                now = time.monotonic()
                obj = [{"batchId": b.batch_id, "status": st.import_status(b, now),
                        "success": len(b.success), "failure": len(b.failure),
                        "automations_excluded": b.no_automations}
                       for b in st.imports.values()]
        elif MEMBERS_RE.match(path) and method == "GET":
            lid = MEMBERS_RE.match(path).group(1)
            with st.lock:
                if lid not in st.lists and lid not in st.members:
                    status, obj = 404, {"error": "no list %s" % lid}
                else:
                    out = []
                    m = st.members.get(lid, {})
                    for cid in sorted(m):
                        c = st.by_id[cid]
                        rec = m[cid]
                        out.append({"email": c.email, "first_name": c.first_name,
                                    "last_name": c.last_name, "phone": c.phone,
                                    "fields": field_dict(c),
                                    "tags": list(c.tags) if c.tags else [],
                                    "status": STATUS_NAMES.get(rec[0], str(rec[0])),
                                    "udate": rec[2], "sourceid": rec[3]})
                    obj = out
        elif path in ("/__sandbox/subscribe", "/__sandbox/unsubscribe", "/__sandbox/bounce") \
                and method == "POST":
            status, obj = self._person(path[len("/__sandbox/"):], body)
        else:
            status, obj = 404, {"error": "unknown control route %s %s" % (method, path)}
        self._send(status, dumps(obj))


    def _person(self, action, body):
        """What the person (or an account user) does outside the API: join through a
        form, unsubscribe, bounce. Returns (status, obj)."""
        st = self.server.state
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) \
                or not body["email"]:
            return 400, {"error": "need {\"email\": \"...\"}"}
        em = body["email"]
        lid = None if action == "bounce" else "" if body.get("list") is None else str(body["list"])
        via = body.get("via", "campaign")
        reason = body.get("reason")
        if action != "bounce" and not lid or action == "subscribe" and lid == "all":
            return 400, {"error": "need \"list\": a list id%s" % (
                " or \"all\"" if action == "unsubscribe" else "")}
        if action == "unsubscribe" and via not in UNSUB_VIAS:
            return 400, {"error": "via must be one of " + ", ".join(UNSUB_VIAS)}
        if reason is not None and not isinstance(reason, str):
            return 400, {"error": "reason must be text"}
        with st.lock:
            if lid not in (None, "all") and lid not in st.lists and lid not in st.members:
                return 404, {"error": "no list %s" % lid}
            ts = st.now_iso()
            if action == "bounce":
                c = st.contacts.get(em.lower())
                if c is None:
                    return 404, {"error": "no contact %s" % em}
                st.bounce(c, ts)
                changed = [other for other, _ in st.memberships_of(c.id)]
            else:
                if not valid_email(em):
                    return 400, {"error": "invalid email %s" % em}
                c, _ = st.get_or_create(em, ts)
                if action == "subscribe":
                    if body.get("first_name") is not None:
                        c.first_name = str(body["first_name"])
                        c.udate = ts
                    st.subscribe(lid, c.id, "0", ts)
                    changed = [lid]
                else:
                    changed = ([other for other, _ in st.memberships_of(c.id)]
                               if lid == "all" else [lid])
                    # Who unsubscribed shows in the record: a campaign's link (with the
                    # reason typed on its page), an automation, or neither (a user).
                    kw = {"campaign": {"campaign": "1", "message": "1", "reason": reason},
                          "admin": {},
                          "automation": {"automation": "1"}}[via]
                    for other in changed:
                        st.unsubscribe(other, c.id, ts, **kw)
            return 200, {"contact": self._contact_obj(c),
                         "contactLists": [self._membership_obj(other, c,
                                                               st.membership(other, c.id))
                                          for other in changed]}


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, state, ssl_ctx):
        self.state = state
        self.ssl_ctx = ssl_ctx
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


def parse_list_arg(s):
    lid, _, name = s.partition(":")
    lid = lid.strip()
    if not lid:
        raise argparse.ArgumentTypeError("--list needs ID[:NAME]")
    return lid, name or "List %s" % lid


def main(argv=None):
    ap = argparse.ArgumentParser(description="ActiveCampaign sandbox server (HTTPS, 127.0.0.1)")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--lapsed-key")
    ap.add_argument("--list", action="append", type=parse_list_arg, default=[])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", help="initial config: a JSON object, or a path to a JSON file")
    ap.add_argument("--state-file", help="contacts, lists, fields and imports are loaded from this file "
                    "at start (if it exists) and saved to it on SIGTERM/SIGINT, so a restart keeps them")
    args = ap.parse_args(argv)

    config = None
    if args.config:
        text = args.config
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        config = json.loads(text)
    lists = args.list or [("1", "Sandbox list")]
    state = State(args.api_key, args.lapsed_key, lists, config)
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file, encoding="utf-8") as fh:
            state.load_snapshot(json.load(fh))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = SandboxServer(("127.0.0.1", args.port), state, ctx)

    worker = threading.Thread(target=state.worker, name="imports", daemon=True)
    worker.start()
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
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
    with state.cond:
        state.running = False
        state.cond.notify_all()
        snapshot = state.snapshot() if args.state_file else None
    if snapshot is not None:
        tmp = "%s.tmp.%d" % (args.state_file, os.getpid())
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(snapshot, fh)
        os.replace(tmp, args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
