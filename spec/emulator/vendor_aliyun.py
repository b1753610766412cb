"""vendor_aliyun -- Alibaba Cloud CDN, RPC API versions 2014-11-11 and
2018-05-10 (one port), for cdnemu.

Path "/", GET (query) or POST (form body, the query string merged in as the
RPC gateway does).  A request is 2018-05-10 when its x-acs-version header
(signature V3, ACS3-HMAC-SHA256) or its Version parameter (signature V2) says
so; vendor_aliyun_2018.py answers those (its own action table, the V3
signature), sharing this module's V2 signature check, credentials, domains,
task store and error envelope.  Everything else is 2014-11-11, as before.

Signature V2 (Alibaba Cloud's RPC signature, version 1.0): percent-encode
names and values (RFC 3986 unreserved kept, space as %20), sort by name, join
as name=value with "&", StringToSign = METHOD + "&" + pct("/") + "&" +
pct(joined), HMAC-SHA1 keyed with secret + "&", base64.  Errors: HTTP 4xx/5xx
with {"RequestId", "HostId", "Code", "Message"} (2018-05-10: also
"Recommend").  See README.md for the checks.
"""

import base64
import calendar
import copy
import hashlib
import hmac
import re
import sys
import threading
import time
from urllib.parse import quote

import vendor_aliyun_2018 as api2018
from emucore import (GENERIC_TRANSPORT_KINDS, Invalid, Vendor, iso_utc, json_response,
                     new_request_id)


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
    CREDENTIALS = {"testid": "testsecret", "demo-id": "demo-secret"}
    # every server error of the RPC gateway is a JSON answer: http500/http503
    # are vendor faults (InternalError / ServiceUnAvailable)
    TRANSPORT_KINDS = GENERIC_TRANSPORT_KINDS
    POST_MERGES_QUERY = True
    # (the same two names in 2014-11-11 and 2018-05-10)
    TASK_ACTIONS = frozenset({"RefreshObjectCaches", "PushObjectCache"})
    # throttle fault options (check_fault, fault_response)
    EXTRA_FAULT_FIELDS = frozenset({"code", "time_left", "status", "header"})
    # /__emu/config settings (2018-05-10 refresh limits and day quotas)
    CONFIG = api2018.CONFIG
    VERSIONS = ("2014-11-11", api2018.VERSION)
    COUNT_OPTION = ("--domains", 123, "number of domains")
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
        # the same domains as the 2018-05-10 API sees them (records, see
        # domain_records); changes (2018 AddCdnDomain, Stop, ...) live in
        # state.extra["aliyun_domains"], so a reset undoes them
        self.base_records = [self._record_of(i + 1, d) for i, d in enumerate(self.domains)]
        self._tl = threading.local()    # the request being processed (envelope)
        try:
            self.api2018 = api2018.Aliyun2018(self)
        except (OSError, api2018.TableError) as e:
            sys.stderr.write("cdnemu: cannot load the 2018-05-10 action table %s: %s\n"
                             % (api2018.TABLE_PATH, e))
            sys.exit(2)

    # ---- request routing -------------------------------------------------
    def action_of(self, req):
        # 2018-05-10 or 2014-11-11 (req.aliyun None); V3 names the action
        # in its x-acs-action header
        req.aliyun = api2018.classify(req)
        if req.aliyun and req.aliyun["signature"] == "v3":
            return (req.headers.get("x-acs-action") or "").strip() or None
        return req.params.get("Action") if req.params else None

    def process(self, req):
        self._tl.req = req
        info = getattr(req, "aliyun", None)
        if info:
            self.state.annotate(req, self.api2018.log_fields(req, info))
        try:
            resp = super().process(req)
        finally:
            self._tl.req = None
        if info:
            self.state.annotate(req, {"error": getattr(resp, "code", None)})
        return resp

    def _is2018(self):
        req = getattr(self._tl, "req", None)
        return bool(req is not None and getattr(req, "aliyun", None))

    # ---- errors ----------------------------------------------------------
    def error(self, status, code, message, headers=None):
        rid = new_request_id()
        body = {"RequestId": rid, "HostId": "cdn.aliyuncs.com", "Code": code,
                "Message": message}
        if self._is2018():
            body["Recommend"] = ("https://api.aliyun.com/troubleshoot?q=%s&product=Cdn"
                                 "&requestId=%s" % (code, rid))
        resp = json_response(status, body, headers)
        resp.code = code    # for the 2018 request log's "error"
        return resp

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

    def internal_error(self):
        return self.error(500, "InternalError", "cdnemu internal error (see its stderr)")

    def check_fault(self, f, clean):
        extra = [k for k in ("code", "time_left", "status", "header") if k in f]
        if not extra:
            return None
        if f["kind"] != "throttle":
            return "%s: only a throttle fault takes %s" % (f["kind"], ", ".join(extra))
        if "code" in f:
            if f["code"] not in api2018.THROTTLE_CODES:
                return "code must be one of %s" % ", ".join(sorted(api2018.THROTTLE_CODES))
            clean["code"] = f["code"]
        if "time_left" in f:
            t = f["time_left"]
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                return "time_left must be an integer >= 0 (milliseconds)"
            clean["time_left"] = t
        if "status" in f:
            if f["status"] not in api2018.THROTTLE_STATUSES or isinstance(f["status"], bool):
                return "status must be one of %s" % ", ".join(
                    str(s) for s in api2018.THROTTLE_STATUSES)
            clean["status"] = f["status"]
        if "header" in f:
            if f["header"] not in api2018.THROTTLE_HEADERS:
                return "header must be one of %s" % ", ".join(api2018.THROTTLE_HEADERS)
            clean["header"] = f["header"]
        return None

    def fault_response(self, f):
        if f["kind"] != "throttle":
            return super().fault_response(f)
        is2018 = self._is2018()
        if not is2018 and not any(k in f for k in ("code", "time_left", "status", "header")):
            return self.vendor_fault("throttle")     # 2014-11-11 as it always was
        code = f.get("code") or ("Throttling.User" if is2018 else "Throttling")
        left = f.get("time_left", 1000)
        which = f.get("header") or ("x-ratelimit-user-api" if is2018 or "time_left" in f
                                    else "none")
        value = "Limit:50,Remain:0,TimeLeft:%d,Reset:%d" % (
            left, int(self.state.now()) + (left + 999) // 1000)
        names = {"both": ["x-ratelimit-user-api", "x-ratelimit-user"],
                 "none": []}.get(which, [which])
        return self.error(f.get("status", 400), code, api2018.THROTTLE_CODES[code],
                          headers=[(n, value) for n in names])

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
        info = getattr(req, "aliyun", None)
        if info and info["signature"] == "v3":
            return self.api2018.authenticate_v3(req)
        # signature V2: 2014-11-11, and 2018-05-10 with Version=2018-05-10
        p = req.params
        ver = p.get("Version")
        if not ver:
            return self.missing("Version"), None
        if ver not in self.VERSIONS:
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
        secret = self.CREDENTIALS.get(p["AccessKeyId"])
        if secret is None:
            return self.error(404, "InvalidAccessKeyId.NotFound",
                              "Specified access key is not found."), None
        expect, sts = aliyun_signature(req.method, p, secret)
        if not hmac.compare_digest(expect.encode(), p["Signature"].encode("utf-8")):
            self.state.sig_failure()
            return self.error(400, "SignatureDoesNotMatch",
                              "Specified signature is not matched with our calculation. "
                              "server string to sign is:" + sts), None
        bad = api2018.check_security_token(self, p.get("SecurityToken"))
        if bad is not None:
            return bad, None
        return None, ("aliyun", p["SignatureNonce"])

    # ---- dispatch --------------------------------------------------------
    def dispatch(self, req):
        if getattr(req, "aliyun", None):
            return self.api2018.dispatch(req)
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
            if action in self.TASK_ACTIONS:
                return fn(p, spec, record=not req.no_task_id)
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
                raise Invalid(name)
            if v < lo or v > hi:
                raise Invalid(name)
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
        except Invalid as e:
            return self.invalid(e.name)
        items = self.domains_2014()
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

    # ---- domains (shared by 2014-11-11 and 2018-05-10) -------------------
    @staticmethod
    def _record_of(i, d):
        """A generated 2014 domain dict -> the neutral record both APIs render."""
        name = d["DomainName"]
        return {"name": name, "cname": d.get("Cname") or name + ".w.kunlunca.com",
                "cdn_type": d.get("CdnType") or "web", "status": "online",
                "created": d.get("GmtCreated") or "2015-10-28T09:32:51Z",
                "modified": d.get("GmtModified") or "2015-10-28T11:05:52Z",
                "description": "", "ssl": d.get("SslProtocol") or "off",
                "scope": "domestic", "id": 10000000 + i,
                "resource_group": "rg-acfmyuji4b6r4ry", "mono_added": None,
                "sources": [{"content": "origin." + name, "type": "domain", "port": 80,
                             "priority": "20", "weight": "10"}]}

    def _overlay(self):
        """(under state.lock) the domain changes since the last reset."""
        return self.state.extra.setdefault("aliyun_domains", {
            "added": {}, "deleted": set(), "status": {}, "configs": {},
            "next_config": 5000001})

    def _resolve(self, rec, ov, now):
        r = dict(rec)
        st = ov["status"].get(r["name"])
        if st:
            r["status"] = st
        elif r["mono_added"] is not None:
            done = now - r["mono_added"] >= self.state.task_seconds
            r["status"] = "online" if done else "configuring"
        return r

    def domain_records(self):
        """Every domain (generated ones, then added ones, minus deleted ones),
        status resolved: a list of neutral records (see _record_of)."""
        now = time.monotonic()
        with self.state.lock:
            ov = self._overlay()
            if not (ov["added"] or ov["deleted"] or ov["status"]):
                return list(self.base_records)
            recs = [r for r in self.base_records
                    if r["name"] not in ov["deleted"] and r["name"] not in ov["added"]]
            recs += [r for n, r in ov["added"].items() if n not in ov["deleted"]]
            return [self._resolve(r, ov, now) for r in recs]

    def find_domain(self, name):
        name = (name or "").strip().lower()
        for r in self.domain_records():
            if r["name"] == name:
                return r
        return None

    def domains_2014(self):
        """The 2014-11-11 DescribeUserDomains view of domain_records()."""
        with self.state.lock:
            ov = self._overlay()
            if not (ov["added"] or ov["deleted"] or ov["status"]):
                return self.domains
        by_name = {d["DomainName"]: d for d in self.domains}
        out = []
        for r in self.domain_records():
            d = copy.deepcopy(by_name.get(r["name"]) or ALIYUN_DOMAIN_TEMPLATE)
            d.update({"DomainName": r["name"], "Cname": r["cname"], "CdnType": r["cdn_type"],
                      "DomainStatus": r["status"], "GmtCreated": r["created"],
                      "GmtModified": r["modified"]})
            if r["name"] not in by_name:
                d["Sources"] = {"Source": [s["content"] for s in r["sources"]]}
            out.append(d)
        return out

    def add_domain(self, name, cdn_type, scope, sources, resource_group=None):
        """False if the domain exists."""
        if self.find_domain(name) is not None:
            return False
        now = iso_utc(self.state.now())
        with self.state.lock:
            ov = self._overlay()
            ov["deleted"].discard(name)
            ov["status"].pop(name, None)
            ov["configs"].pop(name, None)
            ov["added"][name] = {
                "name": name, "cname": name.lstrip("*.") + ".w.kunlunca.com",
                "cdn_type": cdn_type, "status": "configuring", "created": now,
                "modified": now, "description": "", "ssl": "off", "scope": scope,
                "id": 20000000 + len(ov["added"]) + 1,
                "resource_group": resource_group or "rg-acfmyuji4b6r4ry",
                "mono_added": time.monotonic(), "sources": sources}
        return True

    def set_domain_status(self, name, status):
        """status None: delete the domain."""
        with self.state.lock:
            ov = self._overlay()
            if status is None:
                ov["deleted"].add(name)
                ov["added"].pop(name, None)
                ov["status"].pop(name, None)
                ov["configs"].pop(name, None)
            else:
                ov["status"][name] = status

    def configs_of(self, name):
        with self.state.lock:
            return copy.deepcopy(self._overlay()["configs"].get(name, []))

    def set_configs(self, names, funcs):
        """Add (or, with configId, replace) each function on each domain ->
        [(domain, config)], or the configId (a str) that does not exist."""
        out = []
        with self.state.lock:
            ov = self._overlay()
            for f in funcs:
                if f["configId"] is not None and not any(
                        c["ConfigId"] == f["configId"] for n in names
                        for c in ov["configs"].get(n, [])):
                    return str(f["configId"])
            for n in names:
                lst = ov["configs"].setdefault(n, [])
                for f in funcs:
                    cfg = {"FunctionName": f["functionName"], "args": copy.deepcopy(f["args"]),
                           "ParentId": f["parentId"]}
                    old = [i for i, c in enumerate(lst) if f["configId"] is not None and
                           c["ConfigId"] == f["configId"]]
                    if old:
                        cfg["ConfigId"] = f["configId"]
                        lst[old[0]] = cfg
                    else:
                        cfg["ConfigId"] = ov["next_config"]
                        ov["next_config"] += 1
                        lst.append(cfg)
                    out.append((n, copy.deepcopy(cfg)))
        return out

    def delete_configs(self, name, test):
        with self.state.lock:
            ov = self._overlay()
            ov["configs"][name] = [c for c in ov["configs"].get(name, []) if not test(c)]

    # ---- 2014-11-11 tasks ------------------------------------------------
    def _record(self, p, kind, record=True):
        """Validate ObjectPath/ObjectType and record the tasks (unless
        `record` is false: no_task_id) -> (task id or None, error)."""
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
        if not record:
            return None, None
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

    def _task_answer(self, p, spec, kind, field, record):
        tid, err = self._record(p, kind, record)
        if err:
            return err
        resp = self.base(spec)
        if record:
            resp[field] = tid
        else:
            resp.pop(field, None)   # no_task_id: success without the task id
        return json_response(200, resp)

    def act_RefreshObjectCaches(self, p, spec, record=True):
        return self._task_answer(p, spec, "refresh", "RefreshTaskId", record)

    def act_PushObjectCache(self, p, spec, record=True):
        return self._task_answer(p, spec, "push", "PushTaskId", record)

    def act_DescribeRefreshTasks(self, p, spec):
        try:
            page, size = self.paging(p)
        except Invalid as e:
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


VENDOR = Aliyun
