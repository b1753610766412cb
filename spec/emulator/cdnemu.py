#!/usr/bin/env python3
"""cdnemu -- local emulator of the Alibaba Cloud CDN (RPC 2014-11-11) and Tencent
Cloud CDN (API v2) HTTP APIs, for cdnkit's tests and `make demo`.

Python 3 standard library only; listens on loopback only.  See README.md next to
this file for the CLI, the control API (/__emu/...) and the credentials.
"""

import argparse
import base64
import calendar
import copy
import email.utils
import hashlib
import hmac
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote_to_bytes, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BODY = 16 * 1024 * 1024

# --------------------------------------------------------------------------
# credentials
# --------------------------------------------------------------------------
CREDENTIALS = {
    "aliyun": {"testid": "testsecret", "demo-id": "demo-secret"},
    "qcloud": {"AKIDtest": "testkey", "AKIDdemo": "demokey"},
}

# --------------------------------------------------------------------------
# fault kinds
# --------------------------------------------------------------------------
FAULT_KINDS = ("throttle", "http500", "http503", "html", "badjson",
               "truncated", "close", "slow", "stale", "garbage", "hugeheader")
# kinds applied before signature verification (the request never "reaches the
# service"); the rest are applied after a valid signature and nonce.
TRANSPORT_KINDS = {
    "aliyun": {"html", "badjson", "truncated", "close", "slow", "garbage", "hugeheader"},
    "qcloud": {"html", "badjson", "truncated", "close", "slow",
               "http500", "http503", "garbage", "hugeheader"},
}

NGINX_PAGE = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")

BADJSON_BODY = b'{"RequestId": "x", "Dom'


def nginx_page(code, reason):
    return NGINX_PAGE.format(code=code, reason=reason).encode("ascii")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
class BodyError(Exception):
    """The request body could not be read (bad framing); connection is closed."""


class ParamError(Exception):
    """The parameters could not be decoded (non-UTF-8, bad content type)."""


def parse_form(raw):
    """Parse application/x-www-form-urlencoded bytes into a list of (name, value)
    str pairs.  '+' is a space, %XX decoded, result must be valid UTF-8."""
    pairs = []
    if not raw:
        return pairs
    for seg in raw.split(b"&"):
        if not seg:
            continue
        if b"=" in seg:
            k, v = seg.split(b"=", 1)
        else:
            k, v = seg, b""
        try:
            k = unquote_to_bytes(k.replace(b"+", b" ")).decode("utf-8")
            v = unquote_to_bytes(v.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError("request parameters are not valid UTF-8")
        pairs.append((k, v))
    return pairs


def aliyun_pct(s):
    return quote(s.encode("utf-8"), safe="-_.~")


def aliyun_string_to_sign(method, params):
    enc = sorted((aliyun_pct(k), aliyun_pct(v)) for k, v in params.items()
                 if k != "Signature")
    canonical = "&".join("%s=%s" % kv for kv in enc)
    return method.upper() + "&" + aliyun_pct("/") + "&" + aliyun_pct(canonical)


def aliyun_signature(method, params, secret):
    sts = aliyun_string_to_sign(method, params)
    mac = hmac.new((secret + "&").encode("utf-8"), sts.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii"), sts


def qcloud_source(method, host, path, params):
    items = sorted(((k.replace("_", "."), v) for k, v in params.items()
                    if k != "Signature"), key=lambda kv: kv[0].encode("utf-8"))
    joined = "&".join("%s=%s" % kv for kv in items)
    return method.upper() + host + path + "?" + joined


def qcloud_signature(method, host, path, params, secret):
    src = qcloud_source(method, host, path, params)
    algo = hashlib.sha256 if params.get("SignatureMethod") == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(secret.encode("utf-8"), src.encode("utf-8"), algo)
    return base64.b64encode(mac.digest()).decode("ascii"), src


def strip_port(host):
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end >= 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def iso_utc(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def beijing(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600))


def new_request_id():
    return str(uuid.uuid4()).upper()


def list_param(params, name):
    """Tencent list parameter `name.N` -> values ordered by N."""
    rx = re.compile(re.escape(name) + r"\.(\d+)$")
    found = []
    for k, v in params.items():
        m = rx.match(k)
        if m:
            found.append((int(m.group(1)), v))
    found.sort()
    return [v for _, v in found]


def present(params, name):
    """A parameter is present if `name` or a list item `name.N` has a
    non-empty value."""
    v = params.get(name)
    if v is not None and v != "":
        return True
    for k, v in params.items():
        if k.startswith(name + ".") and k[len(name) + 1:].isdigit() and v != "":
            return True
    return False


class Response:
    """What the handler writes.  mode: None (normal), "close" (no response,
    close connection), "truncated" (declared Content-Length larger than sent)."""

    def __init__(self, status, body=b"", ctype="application/json;charset=utf-8",
                 headers=None, mode=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []
        self.mode = mode


def json_response(status, obj, headers=None):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Response(status, body, headers=headers)


# --------------------------------------------------------------------------
# shared state
# --------------------------------------------------------------------------
class State:
    def __init__(self, latency, skew, task_seconds):
        self.lock = threading.Lock()
        self.latency = latency
        self.skew = skew
        self.task_seconds = task_seconds
        self.inflight = 0
        self.generation = 0
        self.task_counter = 0
        self.accepted = 0
        self._reset_locked()

    def _reset_locked(self):
        # requests still running from before the reset (a slow fault whose
        # client gave up, say) no longer count as in flight
        self.generation += 1
        self.requests = 0
        self.by_action = {}
        self.inflight = 0
        self.max_inflight = 0
        self.connections = 0
        self.refreshed_urls = []
        self.refreshed_dirs = []
        self.prefetched_urls = []
        self.nonces = set()
        self.signature_failures = 0
        self.faults = []
        self.tasks = []        # refresh/push records (vendor-specific dicts)
        self.accepted = 0

    def reset(self):
        with self.lock:
            self._reset_locked()

    def now(self):
        return time.time() + self.skew

    def config(self):
        return {"latency": self.latency, "skew": self.skew,
                "task_seconds": self.task_seconds}

    def next_task_id(self):
        with self.lock:
            self.task_counter += 1
            return self.task_counter

    def begin(self, action, handler):
        """Count an API request; returns the token to pass to end()."""
        with self.lock:
            self.requests += 1
            key = action if action else "(none)"
            self.by_action[key] = self.by_action.get(key, 0) + 1
            self.inflight += 1
            if self.inflight > self.max_inflight:
                self.max_inflight = self.inflight
            if handler.conn_generation != self.generation:
                handler.conn_generation = self.generation
                self.connections += 1
            return self.generation

    def end(self, token):
        with self.lock:
            if token == self.generation:
                self.inflight -= 1

    def use_nonce(self, key):
        """Record a nonce; False if it was already used."""
        with self.lock:
            if key in self.nonces:
                return False
            self.nonces.add(key)
            return True

    def sig_failure(self):
        with self.lock:
            self.signature_failures += 1

    def add_faults(self, faults):
        with self.lock:
            self.faults.extend(faults)
            return copy.deepcopy(self.faults)

    def take_fault(self, action, kinds):
        """FIFO: the first queued fault matching `action`; consumed and returned
        only if its kind is in `kinds` (otherwise it stays for a later stage)."""
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.get("action") and f["action"] != action:
                    continue
                if f["kind"] not in kinds:
                    return None
                f["count"] -= 1
                if f["count"] <= 0:
                    del self.faults[i]
                return dict(f)
            return None

    def record(self, urls=(), dirs=(), prefetch=(), tasks=()):
        with self.lock:
            self.refreshed_urls.extend(urls)
            self.refreshed_dirs.extend(dirs)
            self.prefetched_urls.extend(prefetch)
            self.tasks.extend(tasks)

    def snapshot_tasks(self):
        with self.lock:
            return list(self.tasks)

    def stats(self, vendor):
        with self.lock:
            return {
                "vendor": vendor,
                "requests": self.requests,
                "by_action": dict(self.by_action),
                "max_inflight": self.max_inflight,
                "inflight": self.inflight,
                "connections": self.connections,
                "connections_accepted": self.accepted,
                "refreshed_urls": list(self.refreshed_urls),
                "refreshed_dirs": list(self.refreshed_dirs),
                "prefetched_urls": list(self.prefetched_urls),
                "nonces": len(self.nonces),
                "signature_failures": self.signature_failures,
                "faults_pending": copy.deepcopy(self.faults),
                "config": self.config(),
            }


# --------------------------------------------------------------------------
# request view passed to vendors
# --------------------------------------------------------------------------
class Req:
    def __init__(self, method, path, host, params, error):
        self.method = method
        self.path = path
        self.host = host
        self.params = params      # dict name -> value (last one wins)
        self.error = error        # str if the parameters could not be read
        self.action = params.get("Action") if params else None


# --------------------------------------------------------------------------
# vendor base
# --------------------------------------------------------------------------
class Vendor:
    name = None
    PATH = None
    BUILTIN = {}

    def __init__(self, state, fixtures, n_items):
        self.state = state
        self.actions = {}
        for act, spec in self.BUILTIN.items():
            self.actions[act] = copy.deepcopy(spec)
        for act, spec in fixtures.items():
            if act.startswith("_") or not isinstance(spec, dict):
                continue
            merged = self.actions.get(act, {})
            for k, v in spec.items():
                merged[k] = v
            merged.setdefault("required", [])
            merged.setdefault("response", {})
            self.actions[act] = merged

    # ---- pipeline -------------------------------------------------------
    def process(self, req):
        if req.method not in ("GET", "POST"):
            return self.err_method(req)
        if req.path != self.PATH:
            return self.err_path(req)
        if req.error:
            return self.err_input(req.error)
        st = self.state
        fault = st.take_fault(req.action, TRANSPORT_KINDS[self.name])
        if fault:
            if fault["kind"] == "slow":
                time.sleep(fault.get("seconds", 3.0))
            else:
                # the request never "reached the service": its nonce stays unused
                # (libcurl re-sends a request unchanged when a reused connection
                # dies, which must not turn into SignatureNonceUsed)
                return self.fault_response(fault)
        err, nonce_key = self.authenticate(req)
        if err is not None:
            return err
        if not st.use_nonce(nonce_key):
            return self.err_nonce()
        if not fault:
            fault = st.take_fault(req.action, set(FAULT_KINDS) - TRANSPORT_KINDS[self.name])
            if fault:
                return self.fault_response(fault)
        return self.dispatch(req)

    def fault_response(self, f):
        kind = f["kind"]
        if kind == "html":
            return Response(502, nginx_page(502, "Bad Gateway"), "text/html")
        if kind == "badjson":
            return Response(200, BADJSON_BODY)
        if kind == "truncated":
            return Response(200, self.TRUNCATED_BODY, mode="truncated")
        if kind == "close":
            return Response(0, mode="close")
        if kind == "garbage":
            return Response(0, mode="garbage")
        if kind == "hugeheader":
            return Response(0, mode="hugeheader")
        return self.vendor_fault(kind)


# --------------------------------------------------------------------------
# Alibaba Cloud CDN 2014-11-11
# --------------------------------------------------------------------------
ALIYUN_DOMAIN_TEMPLATE = {
    "DomainName": "example-0001.com",
    "Cname": "example-0001.com.w.kunlunca.com",
    "CdnType": "web",
    "DomainStatus": "online",
    "GmtCreated": "2015-10-28T09:32:51Z",
    "GmtModified": "2015-10-28T11:05:52Z",
    "Description": "",
    "SourceType": "domain",
    "SslProtocol": "off",
    "Sources": {"Source": ["origin.example.com"]},
}


class Aliyun(Vendor):
    name = "aliyun"
    PATH = "/"
    TRUNCATED_BODY = b'{"RequestId":"5C9D4A8E-0000-4000-8000-000000000000","Domains":{"PageData":[{"Domain'
    BUILTIN = {
        "DescribeCdnService": {"required": [], "response": {
            "RequestId": "", "InternetChargeType": "PayByTraffic",
            "OpeningTime": "2015-10-09T02:27:45Z", "ChangingChargeType": "PayByTraffic",
            "ChangingAffectTime": "2015-10-10T16:00:00Z", "InstanceId": "CdnService-0001",
            "OperationLocks": {"LockReason": []}}},
        "DescribeUserDomains": {"required": [], "response": {
            "RequestId": "", "PageNumber": 1, "PageSize": 20, "TotalCount": 1,
            "Domains": {"PageData": [ALIYUN_DOMAIN_TEMPLATE]}}},
        "RefreshObjectCaches": {"required": ["ObjectPath"], "response": {
            "RequestId": "", "RefreshTaskId": ""}},
        "PushObjectCache": {"required": ["ObjectPath"], "response": {
            "RequestId": "", "PushTaskId": ""}},
        "DescribeRefreshTasks": {"required": [], "response": {
            "RequestId": "", "PageNumber": 1, "PageSize": 20, "TotalCount": 0,
            "Tasks": {"CDNTask": []}}},
    }

    def __init__(self, state, fixtures, n_items):
        super().__init__(state, fixtures, n_items)
        # template: the fixture's first "online" example domain (else its first)
        try:
            cands = [d for d in self.actions["DescribeUserDomains"]["response"]["Domains"]
                     ["PageData"] if isinstance(d, dict)]
        except (KeyError, TypeError):
            cands = []
        online = [d for d in cands if d.get("DomainStatus") == "online"]
        tmpl = (online or cands or [ALIYUN_DOMAIN_TEMPLATE])[0]
        self.domains = []
        for i in range(1, n_items + 1):
            d = copy.deepcopy(tmpl)
            name = "example-%04d.com" % i
            d["DomainName"] = name
            d["Cname"] = name + ".w.kunlunca.com"
            d["DomainStatus"] = "online"
            if "Description" in d:
                d["Description"] = ""
            self.domains.append(d)

    # ---- errors ----------------------------------------------------------
    def error(self, status, code, message):
        return json_response(status, {"RequestId": new_request_id(),
                                      "HostId": "cdn.aliyuncs.com",
                                      "Code": code, "Message": message})

    def invalid(self, name, why=""):
        msg = 'The specified parameter "%s" is not valid.' % name
        if why:
            msg += " " + why
        return self.error(400, "InvalidParameter", msg)

    def missing(self, name):
        return self.error(400, "MissingParameter",
                          'The input parameter "%s" that is mandatory for processing '
                          'this request is not supplied.' % name)

    def err_method(self, req):
        return self.error(400, "UnsupportedHTTPMethod",
                          "This http method (%s) is not supported; use GET or POST."
                          % req.method[:20])

    def err_path(self, req):
        return self.error(404, "InvalidAction.NotFound",
                          "Specified api is not found, please check your url and method.")

    def err_input(self, msg):
        return self.error(400, "InvalidParameter", msg)

    def err_nonce(self):
        return self.error(400, "SignatureNonceUsed",
                          "Specified signature nonce was used already.")

    def vendor_fault(self, kind):
        if kind == "throttle":
            return self.error(400, "Throttling", "Request was denied due to request throttling.")
        if kind == "http500":
            return self.error(500, "InternalError",
                              "The request processing has failed due to some unknown error, "
                              "exception or failure.")
        if kind == "http503":
            return self.error(503, "ServiceUnAvailable",
                              "The request has failed due to a temporary failure of the server.")
        if kind == "stale":
            return self.error(400, "InvalidTimeStamp.Expired",
                              "Specified time stamp or date value is expired.")
        raise AssertionError(kind)

    # ---- auth ------------------------------------------------------------
    TS_RX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")

    def authenticate(self, req):
        p = req.params
        ver = p.get("Version")
        if not ver:
            return self.missing("Version"), None
        if ver != "2014-11-11":
            return self.error(400, "NoSuchVersion", "Specified api version is not valid."), None
        for name in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
                     "SignatureNonce", "Timestamp"):
            if not p.get(name):
                return self.missing(name), None
        if p.get("Format", "").upper() != "JSON":
            return self.invalid("Format", "cdnemu answers JSON only: send Format=JSON "
                                "(the service's default is XML)."), None
        if p["SignatureMethod"] != "HMAC-SHA1":
            return self.invalid("SignatureMethod"), None
        if p["SignatureVersion"] != "1.0":
            return self.invalid("SignatureVersion"), None
        m = self.TS_RX.match(p["Timestamp"])
        ts = None
        if m:
            try:
                ts = calendar.timegm(time.strptime(p["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
            except ValueError:
                ts = None
        if ts is None:
            return self.error(400, "InvalidTimeStamp.Format",
                              "Specified time stamp or date value is not well formatted."), None
        if abs(ts - self.state.now()) > 15 * 60:
            return self.error(400, "InvalidTimeStamp.Expired",
                              "Specified time stamp or date value is expired."), None
        secret = CREDENTIALS["aliyun"].get(p["AccessKeyId"])
        if secret is None:
            return self.error(404, "InvalidAccessKeyId.NotFound",
                              "Specified access key is not found."), None
        expect, sts = aliyun_signature(req.method, p, secret)
        if not hmac.compare_digest(expect.encode(), p["Signature"].encode("utf-8")):
            self.state.sig_failure()
            return self.error(400, "SignatureDoesNotMatch",
                              "Specified signature is not matched with our calculation. "
                              "server string to sign is:" + sts), None
        return None, ("aliyun", p["SignatureNonce"])

    # ---- dispatch --------------------------------------------------------
    def dispatch(self, req):
        p = req.params
        action = p.get("Action")
        if not action:
            return self.missing("Action")
        spec = self.actions.get(action)
        if spec is None:
            return self.error(404, "InvalidAction.NotFound",
                              "Specified api is not found, please check your url and method.")
        for name in spec.get("required") or []:
            if not p.get(name):
                return self.missing(name)
        one_of = spec.get("one_of")
        if one_of and not any(p.get(n) for n in one_of):
            return self.missing(one_of[0])
        for name, limit in (spec.get("max_items") or {}).items():
            v = p.get(name)
            if v:
                items = [x for x in re.split(r"\r?\n" if "\n" in v else ",", v) if x]
                if len(items) > int(limit):
                    return self.invalid(name, "At most %d items per call." % int(limit))
        fn = getattr(self, "act_" + action, None)
        if fn is not None:
            return fn(p, spec)
        resp = copy.deepcopy(spec.get("response") or {})
        if not isinstance(resp, dict):
            resp = {}
        resp["RequestId"] = new_request_id()
        return json_response(200, resp)

    def paging(self, p, max_size=50, default_size=20):
        def num(name, default, lo, hi):
            raw = p.get(name)
            if raw is None or raw == "":
                return default
            try:
                v = int(raw)
            except ValueError:
                raise _Invalid(name)
            if v < lo or v > hi:
                raise _Invalid(name)
            return v
        return num("PageNumber", 1, 1, 100000), num("PageSize", default_size, 1, max_size)

    def base(self, spec):
        resp = copy.deepcopy(spec.get("response") or {})
        if not isinstance(resp, dict):
            resp = {}
        resp["RequestId"] = new_request_id()
        return resp

    def act_DescribeUserDomains(self, p, spec):
        try:
            page, size = self.paging(p)
        except _Invalid as e:
            return self.invalid(e.name)
        items = self.domains
        dn = p.get("DomainName")
        if dn:
            mode = p.get("DomainSearchType") or "fuzzy_match"
            test = {"full_match": lambda n: n == dn,
                    "pre_match": lambda n: n.startswith(dn),
                    "suf_match": lambda n: n.endswith(dn)}.get(mode, lambda n: dn in n)
            items = [d for d in items if test(d.get("DomainName", ""))]
        status = p.get("DomainStatus")
        if status:
            items = [d for d in items if d.get("DomainStatus") == status]
        resp = self.base(spec)
        resp["PageNumber"] = page
        resp["PageSize"] = size
        resp["TotalCount"] = len(items)
        doms = resp.get("Domains") if isinstance(resp.get("Domains"), dict) else {}
        doms["PageData"] = copy.deepcopy(items[(page - 1) * size: page * size])
        resp["Domains"] = doms
        return json_response(200, resp)

    def _record(self, p, kind):
        paths = [x for x in re.split(r"\r?\n", p.get("ObjectPath", "")) if x.strip()]
        if not paths:
            return None, self.invalid("ObjectPath")
        otype = p.get("ObjectType") or "File"
        if kind == "refresh":
            if otype.lower() not in ("file", "directory"):
                return None, self.invalid("ObjectType")
            task_type = "file" if otype.lower() == "file" else "path"
        else:
            if otype.lower() != "file":
                return None, self.invalid("ObjectType")
            task_type = "preload"
        tid = str(704222900 + self.state.next_task_id())
        mono, srv = time.monotonic(), self.state.now()
        tasks = [{"TaskId": tid, "ObjectPath": path, "ObjectType": task_type,
                  "mono": mono, "created": srv} for path in paths]
        if task_type == "file":
            self.state.record(urls=paths, tasks=tasks)
        elif task_type == "path":
            self.state.record(dirs=paths, tasks=tasks)
        else:
            self.state.record(prefetch=paths, tasks=tasks)
        return tid, None

    def act_RefreshObjectCaches(self, p, spec):
        tid, err = self._record(p, "refresh")
        if err:
            return err
        resp = self.base(spec)
        resp["RefreshTaskId"] = tid
        return json_response(200, resp)

    def act_PushObjectCache(self, p, spec):
        tid, err = self._record(p, "push")
        if err:
            return err
        resp = self.base(spec)
        resp["PushTaskId"] = tid
        return json_response(200, resp)

    def act_DescribeRefreshTasks(self, p, spec):
        try:
            page, size = self.paging(p)
        except _Invalid as e:
            return self.invalid(e.name)
        done_after = self.state.task_seconds
        now = time.monotonic()
        rows = []
        tasks = self.state.snapshot_tasks()
        # newest call first, paths of one call in the order they were given
        order = sorted(range(len(tasks)), key=lambda i: (-int(tasks[i]["TaskId"]), i))
        for t in (tasks[i] for i in order):
            complete = now - t["mono"] >= done_after
            rows.append({"TaskId": t["TaskId"], "ObjectPath": t["ObjectPath"],
                         "Status": "Complete" if complete else "Refreshing",
                         "Process": "100%" if complete else "0%",
                         "ObjectType": t["ObjectType"],
                         "CreationTime": iso_utc(t["created"]),
                         "Description": ""})
        f = p.get("TaskId")
        if f:
            wanted = set(x.strip() for x in f.split(","))
            rows = [r for r in rows if r["TaskId"] in wanted]
        f = p.get("ObjectPath")
        if f:
            rows = [r for r in rows if r["ObjectPath"] == f]
        f = p.get("Status")
        if f:
            rows = [r for r in rows if r["Status"].lower() == f.lower()]
        f = p.get("ObjectType")
        if f:
            f = {"directory": "path"}.get(f.lower(), f.lower())
            rows = [r for r in rows if r["ObjectType"] == f]
        f = p.get("DomainName")
        if f:
            rows = [r for r in rows if f in r["ObjectPath"]]
        resp = self.base(spec)
        resp["PageNumber"] = page
        resp["PageSize"] = size
        resp["TotalCount"] = len(rows)
        tasks = resp.get("Tasks") if isinstance(resp.get("Tasks"), dict) else {}
        tasks["CDNTask"] = rows[(page - 1) * size: page * size]
        resp["Tasks"] = tasks
        return json_response(200, resp)


class _Invalid(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


# --------------------------------------------------------------------------
# Tencent Cloud CDN API v2
# --------------------------------------------------------------------------
QCLOUD_HOST_TEMPLATE = {
    "id": 0, "app_id": 1251000000, "owner_uin": 2779643970, "project_id": 0,
    "host": "", "cname": "", "host_type": "cname", "service_type": "web",
    "origin": "origin.example.com", "fwd_host_type": "default", "fwd_host": "",
    "cache": [{"type": 0, "rule": "all", "time": 2592000, "unit": "d"}],
    "status": 5, "disabled": 0, "message": "", "create_time": "2016-05-12 11:03:28",
    "update_time": "2016-05-12 11:03:28", "deleted": "no", "middle_resource": -1,
    "refer": {"type": 0, "null_flag": 0, "list": []}, "cache_mode": "simple",
    "furl_cache": "off", "http2": 0, "ssl_type": 0,
}

OK_ENVELOPE = {"code": 0, "message": "", "codeDesc": "Success"}


class Qcloud(Vendor):
    name = "qcloud"
    PATH = "/v2/index.php"
    TRUNCATED_BODY = b'{"code":0,"message":"","codeDesc":"Success","data":{"total":57,"hosts":[{"id'
    BUILTIN = {
        "DescribeCdnHosts": {"required": [], "response": dict(OK_ENVELOPE, data={
            "total": 1, "hosts": [QCLOUD_HOST_TEMPLATE]})},
        "DescribeOverseaCdnHosts": {"required": [], "response": dict(OK_ENVELOPE, data={
            "total": 1, "hosts": [QCLOUD_HOST_TEMPLATE]})},
        "GetHostInfoByHost": {"required": ["hosts"], "response": dict(OK_ENVELOPE, data={
            "total": 1, "hosts": [QCLOUD_HOST_TEMPLATE]})},
        "GetHostInfoById": {"required": ["ids"], "response": dict(OK_ENVELOPE, data={
            "total": 1, "hosts": [QCLOUD_HOST_TEMPLATE]})},
        "RefreshCdnUrl": {"required": ["urls"], "max_items": {"urls": 1000},
                          "response": dict(OK_ENVELOPE, data={"count": 1, "task_id": ""})},
        "RefreshCdnDir": {"required": ["dirs"], "max_items": {"dirs": 20},
                          "response": dict(OK_ENVELOPE)},
        "RefreshCdnOverSeaUrl": {"required": ["urls"], "max_items": {"urls": 1000},
                                 "response": dict(OK_ENVELOPE)},
        "RefreshCdnOverSeaDir": {"required": ["dirs"], "max_items": {"dirs": 20},
                                 "response": dict(OK_ENVELOPE)},
        "CdnUrlPusher": {"required": ["urls"], "max_items": {"urls": 20},
                         "response": dict(OK_ENVELOPE, data={"task_id": "", "count": 1})},
        "CdnPusherV2": {"required": ["urls"], "max_items": {"urls": 20},
                        "response": dict(OK_ENVELOPE, data={"task_ids": []})},
        "GetCdnRefreshLog": {"required": [], "response": dict(OK_ENVELOPE, data={
            "total": 0, "logs": []})},
        "GetPushLogs": {"required": [], "response": dict(OK_ENVELOPE, data={
            "total": 0, "logs": []})},
    }

    def __init__(self, state, fixtures, n_items):
        super().__init__(state, fixtures, n_items)
        self.hosts = self._make_hosts("DescribeCdnHosts", n_items, 180000)
        self.ov_hosts = self._make_hosts("DescribeOverseaCdnHosts", n_items, 180000)

    @staticmethod
    def _like(tmpl, key, value):
        """Give a numeric id the JSON type the fixture's example uses."""
        if isinstance(tmpl.get(key), int) and not isinstance(tmpl.get(key), bool):
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
        return value

    def _template(self, action, key="hosts"):
        try:
            t = self.actions[action]["response"]["data"][key][0]
            if isinstance(t, dict):
                return t
        except (KeyError, IndexError, TypeError):
            pass
        return None

    def _host_template(self, *actions):
        cands = []
        for a in actions:
            try:
                cands += [h for h in self.actions[a]["response"]["data"]["hosts"]
                          if isinstance(h, dict)]
            except (KeyError, TypeError):
                pass
        online = [h for h in cands if h.get("status") == 5]
        return (online or cands or [QCLOUD_HOST_TEMPLATE])[0]

    def _make_hosts(self, action, n, base_id):
        tmpl = self._host_template(action, "DescribeCdnHosts", "GetHostInfoByHost",
                                   "GetHostInfoById")
        hosts = []
        for i in range(1, n + 1):
            h = copy.deepcopy(tmpl)
            name = "host-%04d.example.com" % i
            h["id"] = base_id + i
            if "host_id" in h:
                h["host_id"] = base_id + i
            h["host"] = name
            h["cname"] = name + ".cdn.dnsv1.com"
            if "fwd_host" in h:
                h["fwd_host"] = name
            h["status"] = 5
            hosts.append(h)
        return hosts

    # ---- errors ----------------------------------------------------------
    def error(self, code, message, desc):
        return json_response(200, {"code": code, "message": message, "codeDesc": desc})

    def invalid(self, name):
        return self.error(4000, "(4000)invalid parameter %s" % name, "InvalidParameter")

    def missing(self, name):
        return self.error(4000, "(4000)missing parameter %s" % name, "InvalidParameter")

    def err_method(self, req):
        return self.error(4000, "(4000)http method %s not supported, use GET or POST"
                          % req.method[:20], "InvalidParameter")

    def err_path(self, req):
        return self.error(4000, "(4000)unknown path, use /v2/index.php", "InvalidParameter")

    def err_input(self, msg):
        return self.error(4000, "(4000)" + msg, "InvalidParameter")

    def err_nonce(self):
        return self.error(4500, "(4500)request replayed or expired", "RequestReplay")

    def vendor_fault(self, kind):
        if kind == "throttle":
            return self.error(4400, "(9163)request too frequent", "9163")
        if kind == "stale":
            return self.err_nonce()
        if kind == "http500":
            return Response(500, nginx_page(500, "Internal Server Error"), "text/html")
        if kind == "http503":
            return Response(503, nginx_page(503, "Service Temporarily Unavailable"), "text/html")
        raise AssertionError(kind)

    # ---- auth ------------------------------------------------------------
    def authenticate(self, req):
        p = req.params
        for name in ("SecretId", "Signature", "Timestamp", "Nonce"):
            if not p.get(name):
                return self.missing(name), None
        sm = p.get("SignatureMethod")
        if sm is not None and sm not in ("HmacSHA1", "HmacSHA256"):
            return self.invalid("SignatureMethod"), None
        secret = CREDENTIALS["qcloud"].get(p["SecretId"])
        if secret is None:
            return self.error(4100, "(100005)SecretId not found", "AuthFailure.SecretIdNotFound"), None
        if not p["Timestamp"].isdigit():
            return self.invalid("Timestamp"), None
        if not p["Nonce"].isdigit():
            return self.invalid("Nonce"), None
        if abs(int(p["Timestamp"]) - self.state.now()) > 7200:
            return self.err_nonce(), None
        expect, src = qcloud_signature(req.method, strip_port(req.host), req.path, p, secret)
        if not hmac.compare_digest(expect.encode(), p["Signature"].encode("utf-8")):
            self.state.sig_failure()
            return self.error(4100, "(100004)signature error", "AuthFailure.SignatureFailure"), None
        return None, ("qcloud", p["SecretId"], p["Nonce"])

    # ---- dispatch --------------------------------------------------------
    def dispatch(self, req):
        p = req.params
        action = p.get("Action")
        spec = self.actions.get(action) if action else None
        if spec is None:
            return self.error(4000, "(4000)Action not found", "InvalidParameter")
        for name in spec.get("required") or []:
            if not present(p, name):
                return self.missing(name)
        one_of = spec.get("one_of")
        if one_of and not any(present(p, n) for n in one_of):
            return self.missing(" or ".join(one_of))
        for name, limit in (spec.get("max_items") or {}).items():
            n = len(list_param(p, name))
            if n > int(limit):
                if name == "urls" and action.startswith("Refresh"):
                    return self.error(4000, "(22043)too many urls in one request", "22043")
                if name == "dirs":
                    return self.error(4000, "(22045)too many dirs in one request", "22045")
                return self.error(4000, "(9162)count over limit", "9162")
        fn = getattr(self, "act_" + action, None)
        if fn is not None:
            return fn(p, spec)
        return json_response(200, self.base(spec))

    def base(self, spec):
        resp = copy.deepcopy(spec.get("response") or {})
        if not isinstance(resp, dict):
            resp = {}
        for k, v in OK_ENVELOPE.items():
            resp.setdefault(k, v)
        return resp

    def int_param(self, p, name, default):
        raw = p.get(name)
        if raw is None or raw == "":
            return default
        try:
            v = int(raw)
        except ValueError:
            raise _Invalid(name)
        if v < 0:
            raise _Invalid(name)
        return v

    def _data(self, resp):
        if not isinstance(resp.get("data"), dict):
            resp["data"] = {}
        return resp["data"]

    def _list_hosts(self, p, spec, hosts, default_limit):
        try:
            offset = self.int_param(p, "offset", 0)
            limit = self.int_param(p, "limit", default_limit)
        except _Invalid as e:
            return self.invalid(e.name)
        resp = self.base(spec)
        data = self._data(resp)
        data["total"] = len(hosts)
        end = len(hosts) if limit is None else offset + limit
        data["hosts"] = copy.deepcopy(hosts[offset:end])
        return json_response(200, resp)

    def act_DescribeCdnHosts(self, p, spec):
        return self._list_hosts(p, spec, self.hosts, None)

    def act_DescribeOverseaCdnHosts(self, p, spec):
        return self._list_hosts(p, spec, self.ov_hosts, 100)

    def act_GetHostInfoByHost(self, p, spec):
        want = list_param(p, "hosts") or ([p["hosts"]] if p.get("hosts") else [])
        found = [h for h in self.hosts if h["host"] in want]
        resp = self.base(spec)
        data = self._data(resp)
        data["total"] = len(found)
        data["hosts"] = copy.deepcopy(found)
        return json_response(200, resp)

    def act_GetHostInfoById(self, p, spec):
        want = list_param(p, "ids") or ([p["ids"]] if p.get("ids") else [])
        want = set(str(x) for x in want)
        found = [h for h in self.hosts if str(h["id"]) in want]
        resp = self.base(spec)
        data = self._data(resp)
        data["total"] = len(found)
        data["hosts"] = copy.deepcopy(found)
        return json_response(200, resp)

    def _task(self, kind, urls, action):
        tid = str(1000000000 + self.state.next_task_id())
        t = {"task_id": tid, "kind": kind, "urls": list(urls), "action": action,
             "mono": time.monotonic(), "created": self.state.now()}
        if kind == "url":
            self.state.record(urls=urls, tasks=[t])
        elif kind == "dir":
            self.state.record(dirs=urls, tasks=[t])
        else:
            self.state.record(prefetch=urls, tasks=[t])
        return t

    def _refresh(self, p, spec, param, kind, action):
        items = list_param(p, param)
        t = self._task(kind, items, action)
        resp = self.base(spec)
        data = self._data(resp)
        data["count"] = len(items)
        data["task_id"] = t["task_id"]
        return json_response(200, resp)

    def act_RefreshCdnUrl(self, p, spec):
        return self._refresh(p, spec, "urls", "url", "RefreshCdnUrl")

    def act_RefreshCdnDir(self, p, spec):
        return self._refresh(p, spec, "dirs", "dir", "RefreshCdnDir")

    def act_RefreshCdnOverSeaUrl(self, p, spec):
        return self._refresh(p, spec, "urls", "url", "RefreshCdnOverSeaUrl")

    def act_RefreshCdnOverSeaDir(self, p, spec):
        return self._refresh(p, spec, "dirs", "dir", "RefreshCdnOverSeaDir")

    def act_CdnUrlPusher(self, p, spec):
        return self._refresh(p, spec, "urls", "push", "CdnUrlPusher")

    def act_CdnPusherV2(self, p, spec):
        urls = list_param(p, "urls")
        by_host = {}
        for u in urls:
            by_host.setdefault(urlsplit(u).hostname or "", []).append(u)
        resp = self.base(spec)
        data = self._data(resp)
        tmpl = self._template("CdnPusherV2", "task_ids") or {"task_id": 0}
        ids = []
        for host, us in by_host.items():
            t = self._task("push", us, "CdnPusherV2")
            ids.append({"task_id": self._like(tmpl, "task_id", t["task_id"]),
                        "date": time.strftime("%Y%m%d", time.gmtime(t["created"] + 8 * 3600))})
        data["task_ids"] = ids
        return json_response(200, resp)

    def act_FlushOrPushOverall(self, p, spec):
        urls = list_param(p, "urls") or ([p["urls"]] if p.get("urls") else [])
        cmd = p.get("command", "")
        typ = p.get("type", "url")
        if cmd == "push":
            kind = "push"
        elif cmd == "flush":
            kind = "dir" if typ == "dir" else "url"
        else:
            return self.invalid("command")
        t = self._task(kind, urls, "FlushOrPushOverall")
        resp = self.base(spec)
        if isinstance(resp.get("data"), dict):
            resp["data"]["task_id"] = t["task_id"]
        return json_response(200, resp)

    def act_GetCdnRefreshLog(self, p, spec):
        done_after = self.state.task_seconds
        now = time.monotonic()
        tmpl = self._template("GetCdnRefreshLog", "logs") or {}
        logs = []
        for t in reversed(self.state.snapshot_tasks()):
            if t["kind"] not in ("url", "dir"):
                continue
            hosts = [urlsplit(u).hostname or "" for u in t["urls"]]
            log = copy.deepcopy(tmpl)
            log.update({"id": self._like(tmpl, "id", t["task_id"]), "app_id": log.get("app_id", 1251000000),
                        "project_id": log.get("project_id", 0),
                        "host": hosts[0] if hosts else "",
                        "type": 0 if t["kind"] == "url" else 1,
                        "status": 1 if now - t["mono"] >= done_after else 0,
                        "url_list": list(t["urls"]), "datetime": beijing(t["created"])})
            if "complete_time" in log:
                log["complete_time"] = (beijing(t["created"] + done_after)
                                        if log["status"] == 1 else None)
            logs.append(log)
        f = p.get("taskId")
        if f:
            logs = [l for l in logs if str(l["id"]) == f]
        f = p.get("host")
        if f:
            logs = [l for l in logs if any((urlsplit(u).hostname or "") == f for u in l["url_list"])]
        f = p.get("url")
        if f:
            logs = [l for l in logs if f in l["url_list"]]
        resp = self.base(spec)
        data = self._data(resp)
        data["total"] = len(logs)
        data["logs"] = logs
        return json_response(200, resp)

    def act_GetPushLogs(self, p, spec):
        try:
            offset = self.int_param(p, "offset", 0)
            limit = self.int_param(p, "limit", None)
        except _Invalid as e:
            return self.invalid(e.name)
        done_after = self.state.task_seconds
        now = time.monotonic()
        tmpl = self._template("GetPushLogs", "logs") or {}
        logs = []
        n = 0
        for t in self.state.snapshot_tasks():
            if t["kind"] != "push":
                continue
            done = now - t["mono"] >= done_after
            for u in t["urls"]:
                n += 1
                log = copy.deepcopy(tmpl)
                log.update({"log_id": n, "task_id": self._like(tmpl, "task_id", t["task_id"]),
                            "host": urlsplit(u).hostname or "",
                            "datetime": beijing(t["created"]),
                            "status": "done" if done else "process", "url": u,
                            "progress": 100 if done else 0})
                logs.append(log)
        logs.reverse()
        f = p.get("taskId")
        if f:
            logs = [l for l in logs if str(l["task_id"]) == f]
        f = list_param(p, "hosts")
        if f:
            logs = [l for l in logs if l["host"] in f]
        f = list_param(p, "status")
        if f:
            logs = [l for l in logs if l["status"] in f]
        f = p.get("keyword")
        if f:
            logs = [l for l in logs if f in l["url"]]
        resp = self.base(spec)
        data = self._data(resp)
        data["total"] = len(logs)
        end = len(logs) if limit is None else offset + limit
        data["logs"] = logs[offset:end]
        return json_response(200, resp)


VENDORS = {"aliyun": Aliyun, "qcloud": Qcloud}


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cdnemu/1.0"
    sys_version = ""
    timeout = 120          # idle keep-alive connections are dropped after this

    def setup(self):
        super().setup()
        self.conn_generation = None
        st = self.server.state
        with st.lock:
            st.accepted += 1

    def __getattr__(self, name):
        # every HTTP method (GET, POST, PUT, DELETE, HEAD, FOO...) lands here
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("cdnemu: %s %s\n" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by _handle when --verbose

    def version_string(self):
        return self.server_version

    def date_time_string(self, timestamp=None):
        if timestamp is None:
            timestamp = self.server.state.now()
        return email.utils.formatdate(timestamp, usegmt=True)

    # ---- body ------------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BodyError("truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size")
                if size == 0:
                    while True:  # trailers
                        line = self.rfile.readline(65537)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise BodyError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl.strip())
        except ValueError:
            raise BodyError("bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise BodyError("bad Content-Length")
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise BodyError("short body")
        return data

    # ---- writing ---------------------------------------------------------
    def _write(self, resp):
        if resp.mode in ("garbage", "hugeheader"):
            # not HTTP at all / a header line far over any sane size
            if resp.mode == "garbage":
                raw = bytes((i * 37 + 11) % 256 for i in range(4096))
            else:
                raw = (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * (300 * 1024) +
                       b"\r\nContent-Length: 2\r\n\r\n{}")
            self.close_connection = True
            try:
                self.wfile.write(raw)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        if resp.mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        body = resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        if resp.mode == "truncated":
            self.send_header("Content-Length", str(len(body) + 256))
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in resp.headers:
            self.send_header(k, v)
        if self.close_connection and resp.mode != "truncated":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        if resp.mode == "truncated":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    # ---- main ------------------------------------------------------------
    def _handle(self):
        t0 = time.monotonic()
        split = urlsplit(self.path)
        if split.path == "/__emu" or split.path.startswith("/__emu/"):
            resp = self._control(split.path)
            self._write(resp)
            self._log(split.path, None, resp, t0)
            return
        srv = self.server
        vendor = srv.vendor
        body_error = None
        try:
            body = self._read_body()
        except BodyError as e:
            body, body_error = b"", str(e)
            self.close_connection = True
        params, perror = {}, body_error
        if perror is None:
            try:
                params = self._params(split, body)
            except ParamError as e:
                perror = str(e)
        host = self.headers.get("Host") or ""
        req = Req(self.command, split.path, host, params, perror)
        token = srv.state.begin(req.action, self)
        try:
            lat = srv.state.latency
            if lat > 0:
                time.sleep(lat)
            try:
                resp = vendor.process(req)
            except Exception:
                traceback.print_exc()
                if vendor.name == "aliyun":
                    resp = vendor.error(500, "InternalError",
                                        "cdnemu internal error (see its stderr)")
                else:
                    resp = vendor.error(6000, "(6000)cdnemu internal error", "InternalError")
        finally:
            # the request stops counting as in flight before its answer is
            # written: once the client has the answer it may start the next
            # one, which must not be seen overlapping this one
            srv.state.end(token)
        self._write(resp)
        self._log(split.path, req.action, resp, t0)

    def _params(self, split, body):
        query = split.query.encode("latin-1", "replace")
        vendor = self.server.vendor.name
        if self.command == "POST":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if body and ctype not in ("", "application/x-www-form-urlencoded"):
                raise ParamError("unsupported Content-Type %r: send "
                                 "application/x-www-form-urlencoded" % ctype[:60])
            pairs = parse_form(body)
            if vendor == "aliyun":   # RPC gateway merges the query string
                pairs = parse_form(query) + pairs
        else:
            pairs = parse_form(query)
        return dict(pairs)

    def _log(self, path, action, resp, t0):
        if not self.server.verbose:
            return
        sys.stderr.write("cdnemu: %s %s %s action=%s -> %s %s %.0fms\n" % (
            time.strftime("%H:%M:%S"), self.command, path[:60], action or "-",
            resp.status if resp.mode != "close" else "closed", resp.mode or "",
            (time.monotonic() - t0) * 1000))
        sys.stderr.flush()

    # ---- control API -----------------------------------------------------
    def _control(self, path):
        st = self.server.state
        try:
            body = self._read_body()
        except BodyError as e:
            self.close_connection = True
            return json_response(400, {"error": str(e)})
        data = {}
        if body.strip():
            try:
                data = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return json_response(400, {"error": "bad JSON: %s" % e})
            if not isinstance(data, dict):
                return json_response(400, {"error": "JSON object expected"})
        name = path[len("/__emu/"):].strip("/")
        m = self.command
        if name == "stats" and m == "GET":
            return json_response(200, st.stats(self.server.vendor.name))
        if name == "reset" and m == "POST":
            st.reset()
            return json_response(200, {"ok": True})
        if name == "config" and m == "GET":
            return json_response(200, st.config())
        if name == "config" and m == "POST":
            new = {}
            for k, v in data.items():
                if k not in ("latency", "skew", "task_seconds"):
                    return json_response(400, {"error": "unknown config key %r" % k})
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return json_response(400, {"error": "%s must be a number" % k})
                if k != "skew" and v < 0:
                    return json_response(400, {"error": "%s must be >= 0" % k})
                new[k] = float(v)
            with st.lock:
                for k, v in new.items():
                    setattr(st, k, v)
            return json_response(200, {"ok": True, "config": st.config()})
        if name == "faults" and m == "GET":
            with st.lock:
                return json_response(200, {"faults": copy.deepcopy(st.faults)})
        if name == "faults" and m == "POST":
            faults = data.get("faults")
            if not isinstance(faults, list):
                return json_response(400, {"error": "body must be {\"faults\": [...]}"})
            clean = []
            for f in faults:
                if not isinstance(f, dict) or f.get("kind") not in FAULT_KINDS:
                    return json_response(400, {"error": "bad fault %r; kinds: %s"
                                               % (f, ", ".join(FAULT_KINDS))})
                c = {"kind": f["kind"]}
                count = f.get("count", 1)
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    return json_response(400, {"error": "count must be an integer >= 1"})
                c["count"] = count
                if f.get("action") is not None:
                    if not isinstance(f["action"], str):
                        return json_response(400, {"error": "action must be a string"})
                    c["action"] = f["action"]
                if f["kind"] == "slow":
                    s = f.get("seconds", 3)
                    if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
                        return json_response(400, {"error": "seconds must be a number >= 0"})
                    c["seconds"] = float(s)
                clean.append(c)
            return json_response(200, {"ok": True, "faults": st.add_faults(clean)})
        return json_response(404, {"error": "unknown control endpoint %s %s" % (m, path),
                                   "endpoints": ["GET /__emu/stats", "POST /__emu/reset",
                                                 "GET|POST /__emu/config",
                                                 "GET|POST /__emu/faults"]})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # client went away mid-response etc.: not worth a traceback
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        if self.verbose:
            super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def check_host(host):
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return host if ip.is_loopback else None


def load_fixtures(path):
    if not os.path.exists(path):
        sys.stderr.write("cdnemu: warning: fixture %s not found; only built-in "
                         "actions are known\n" % path)
        return {}
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        sys.stderr.write("cdnemu: cannot load fixture %s: %s\n" % (path, e))
        sys.exit(2)
    if not isinstance(data, dict):
        sys.stderr.write("cdnemu: fixture %s: top level must be an object\n" % path)
        sys.exit(2)
    return data


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local CDN vendor API emulator (loopback only).")
    ap.add_argument("--vendor", required=True, choices=sorted(VENDORS))
    ap.add_argument("--host", default="127.0.0.1", help="loopback address (127.x or ::1)")
    ap.add_argument("--port", type=int, default=0, help="0 = random free port")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds to sleep in every API request")
    ap.add_argument("--skew", type=float, default=0.0,
                    help="server clock = real clock + SKEW seconds")
    ap.add_argument("--task-seconds", type=float, default=1.0,
                    help="refresh/push tasks complete after this many seconds")
    ap.add_argument("--domains", type=int, default=123, help="aliyun: number of domains")
    ap.add_argument("--hosts", type=int, default=57, help="qcloud: number of hosts")
    ap.add_argument("--port-file", help="write the bound port number to this file")
    ap.add_argument("--fixture", help="fixture JSON (default: fixtures/<vendor>.json "
                    "next to this script)")
    ap.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    args = ap.parse_args(argv)

    host = check_host(args.host)
    if host is None:
        ap.error("--host must be a loopback address (127.x.x.x or ::1), got %r" % args.host)
    if args.latency < 0 or args.task_seconds < 0 or args.domains < 0 or args.hosts < 0:
        ap.error("negative values are not allowed")

    fixture = args.fixture or os.path.join(HERE, "fixtures", args.vendor + ".json")
    fixtures = load_fixtures(fixture)
    state = State(args.latency, args.skew, args.task_seconds)
    n = args.domains if args.vendor == "aliyun" else args.hosts
    vendor = VENDORS[args.vendor](state, fixtures, n)

    cls = Server6 if ":" in host else Server
    try:
        server = cls((host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("cdnemu: cannot listen on %s:%d: %s\n" % (host, args.port, e))
        return 1
    server.state = state
    server.vendor = vendor
    server.verbose = args.verbose
    port = server.server_address[1]

    if args.port_file:
        tmp = args.port_file + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    shown = "[%s]" % host if ":" in host else host
    sys.stdout.write("cdnemu %s listening on %s:%d\n" % (args.vendor, shown, port))
    sys.stdout.flush()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
