"""vendor_qcloud -- Tencent Cloud CDN for cdnemu: API v2 (cdn.api.qcloud.com)
here, and on the same port Tencent Cloud API 3.0 (cdn.tencentcloudapi.com,
service cdn, version 2018-06-06, TC3-HMAC-SHA256), which is
vendor_qcloud_v3.py: a request carrying an X-TC-Action header or an
`Authorization: TC3-HMAC-SHA256 ...` header is API 3.0, anything else v2.

API v2: path "/v2/index.php", GET (query) or POST (form body; the query string is
ignored).  Signature: all parameters but Signature, "_" -> "." in names,
sorted by name (byte order), name=value with raw values joined by "&";
source = METHOD + host + path + "?" + joined, where host is the request's
Host header without a port; HMAC-SHA1, or HMAC-SHA256 when
SignatureMethod=HmacSHA256; base64.  Answers are HTTP 200 with
{"code", "message", "codeDesc"[, "data"]}.  See README.md for the checks.
"""

import base64
import copy
import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlsplit

from emucore import (GENERIC_TRANSPORT_KINDS, Invalid, Response, Vendor, beijing,
                     json_response, nginx_page, strip_port)
import vendor_qcloud_v3


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
    CREDENTIALS = {"AKIDtest": "testkey", "AKIDdemo": "demokey"}
    # the v2 gateway answers server errors with a raw nginx page, before
    # anything looks at the request
    TRANSPORT_KINDS = GENERIC_TRANSPORT_KINDS | {"http500", "http503"}
    COUNT_OPTION = ("--hosts", 57, "number of hosts")
    # the actions answering data.task_id / data.task_ids (no_task_id applies);
    # CdnOverseaPushser is a fixture answer only
    TASK_ACTIONS = frozenset({"RefreshCdnUrl", "RefreshCdnDir", "RefreshCdnOverSeaUrl",
                              "RefreshCdnOverSeaDir", "CdnUrlPusher", "CdnPusherV2",
                              "FlushOrPushOverall", "CdnOverseaPushser"})
    TRUNCATED_BODY = b'{"code":0,"message":"","codeDesc":"Success","data":{"total":57,"hosts":[{"id'
    # API 3.0 (vendor_qcloud_v3): its "error" fault kind, which v2 requests
    # pass by, and its /__emu/config settings
    EXTRA_FAULT_KINDS = vendor_qcloud_v3.QcloudV3.EXTRA_FAULT_KINDS
    EXTRA_FAULT_FIELDS = vendor_qcloud_v3.ERROR_FIELDS
    PASSES_BY = vendor_qcloud_v3.QcloudV3.EXTRA_FAULT_KINDS
    CONFIG = vendor_qcloud_v3.CONFIG
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
        # API 3.0 on the same port, sharing hosts, credentials, tasks, state
        self.v3 = vendor_qcloud_v3.QcloudV3(state, self)
        state.counter_defaults.setdefault("signature_reused", 0)

    # ---- API 3.0 requests go to self.v3 ------------------------------------
    def read_params(self, method, headers, query, body):
        # API 3.0 reads its JSON body / flattened query itself (QcloudV3.read)
        return {} if vendor_qcloud_v3.is_v3(headers) else None

    def action_of(self, req):
        if vendor_qcloud_v3.is_v3(req.headers):
            return req.headers.get("X-TC-Action") or None
        return super().action_of(req)

    def process(self, req):
        if vendor_qcloud_v3.is_v3(req.headers):
            return self.v3.handle(req)
        return super().process(req)

    def check_fault(self, f, clean):
        return self.v3.check_error_fault(f, clean)

    def fault_task_actions(self):
        return self.TASK_ACTIONS | self.v3.TASK_ACTIONS

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

    def internal_error(self):
        return self.error(6000, "(6000)cdnemu internal error", "InternalError")

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
        secret = self.CREDENTIALS.get(p["SecretId"])
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
            if action in self.TASK_ACTIONS:
                return fn(p, spec, record=not req.no_task_id)
            return fn(p, spec)
        resp = self.base(spec)
        if req.no_task_id:
            self._strip_task_ids(resp)
        return json_response(200, resp)

    @staticmethod
    def _strip_task_ids(resp):
        """no_task_id: the answer keeps its envelope and data but loses
        data.task_id / data.task_ids."""
        if isinstance(resp.get("data"), dict):
            resp["data"].pop("task_id", None)
            resp["data"].pop("task_ids", None)

    def succeeded(self, resp):
        # v2 errors are HTTP 200 too: success is code 0
        if resp.status != 200:
            return False
        try:
            return json.loads(resp.body.decode("utf-8")).get("code") == 0
        except (ValueError, AttributeError):
            return False

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
            raise Invalid(name)
        if v < 0:
            raise Invalid(name)
        return v

    def _data(self, resp):
        if not isinstance(resp.get("data"), dict):
            resp["data"] = {}
        return resp["data"]

    def _list_hosts(self, p, spec, hosts, default_limit):
        try:
            offset = self.int_param(p, "offset", 0)
            limit = self.int_param(p, "limit", default_limit)
        except Invalid as e:
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

    def _task(self, kind, urls, action, record=True):
        """A task for `urls`, recorded unless `record` is false (no_task_id)."""
        t = {"task_id": None, "kind": kind, "urls": list(urls), "action": action,
             "mono": time.monotonic(), "created": self.state.now()}
        if not record:
            return t
        t["task_id"] = str(1000000000 + self.state.next_task_id())
        if kind == "url":
            self.state.record(urls=urls, tasks=[t])
        elif kind == "dir":
            self.state.record(dirs=urls, tasks=[t])
        else:
            self.state.record(prefetch=urls, tasks=[t])
        return t

    def _refresh(self, p, spec, param, kind, action, record):
        items = list_param(p, param)
        t = self._task(kind, items, action, record)
        resp = self.base(spec)
        data = self._data(resp)
        data["count"] = len(items)
        data["task_id"] = t["task_id"]
        if not record:
            self._strip_task_ids(resp)
        return json_response(200, resp)

    def act_RefreshCdnUrl(self, p, spec, record=True):
        return self._refresh(p, spec, "urls", "url", "RefreshCdnUrl", record)

    def act_RefreshCdnDir(self, p, spec, record=True):
        return self._refresh(p, spec, "dirs", "dir", "RefreshCdnDir", record)

    def act_RefreshCdnOverSeaUrl(self, p, spec, record=True):
        return self._refresh(p, spec, "urls", "url", "RefreshCdnOverSeaUrl", record)

    def act_RefreshCdnOverSeaDir(self, p, spec, record=True):
        return self._refresh(p, spec, "dirs", "dir", "RefreshCdnOverSeaDir", record)

    def act_CdnUrlPusher(self, p, spec, record=True):
        return self._refresh(p, spec, "urls", "push", "CdnUrlPusher", record)

    def act_CdnPusherV2(self, p, spec, record=True):
        urls = list_param(p, "urls")
        by_host = {}
        for u in urls:
            by_host.setdefault(urlsplit(u).hostname or "", []).append(u)
        resp = self.base(spec)
        data = self._data(resp)
        tmpl = self._template("CdnPusherV2", "task_ids") or {"task_id": 0}
        ids = []
        for host, us in by_host.items():
            t = self._task("push", us, "CdnPusherV2", record)
            ids.append({"task_id": self._like(tmpl, "task_id", t["task_id"]),
                        "date": time.strftime("%Y%m%d", time.gmtime(t["created"] + 8 * 3600))})
        data["task_ids"] = ids
        if not record:
            self._strip_task_ids(resp)
        return json_response(200, resp)

    def act_FlushOrPushOverall(self, p, spec, record=True):
        urls = list_param(p, "urls") or ([p["urls"]] if p.get("urls") else [])
        cmd = p.get("command", "")
        typ = p.get("type", "url")
        if cmd == "push":
            kind = "push"
        elif cmd == "flush":
            kind = "dir" if typ == "dir" else "url"
        else:
            return self.invalid("command")
        t = self._task(kind, urls, "FlushOrPushOverall", record)
        resp = self.base(spec)
        if isinstance(resp.get("data"), dict):
            resp["data"]["task_id"] = t["task_id"]
        if not record:
            self._strip_task_ids(resp)
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
        except Invalid as e:
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


VENDOR = Qcloud
