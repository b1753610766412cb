"""vendor_aliyun -- Alibaba Cloud CDN, RPC API version 2014-11-11, for cdnemu.

Path "/", GET (query) or POST (form body, the query string merged in as the
RPC gateway does).  Signature (Alibaba Cloud's RPC signature, version 1.0):
percent-encode names and values (RFC 3986 unreserved kept, space as %20),
sort by name, join as name=value with "&", StringToSign =
METHOD + "&" + pct("/") + "&" + pct(joined), HMAC-SHA1 keyed with
secret + "&", base64.  Errors: HTTP 4xx/5xx with
{"RequestId", "HostId", "Code", "Message"}.  See README.md for the checks.
"""

import base64
import calendar
import copy
import hashlib
import hmac
import re
import time
from urllib.parse import quote

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
    TASK_ACTIONS = frozenset({"RefreshObjectCaches", "PushObjectCache"})
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

    def internal_error(self):
        return self.error(500, "InternalError", "cdnemu internal error (see its stderr)")

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
