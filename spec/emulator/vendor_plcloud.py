"""vendor_plcloud -- Powerleader Plcloud for cdnemu: an OpenStack Keystone v2.0
token service (POST /v2.0/tokens) and the Plcloud REST API (CDN domains, flow,
recharge, URL lists, cache flush, request logs, prefetch, tickets), both on
the one port.

Keystone: a password credential scoped to a tenant gets a token (32 hex
digits) and a service catalog whose URLs are built from the request's Host
header.  The REST API is served under two service prefixes, /v1.0
(RegionOne) and /r2/v1.0 (RegionTwo); every call needs a live token in
X-Auth-Token.  Request and answer bodies are JSON; errors are the OpenStack
envelope {"error": {"message", "code", "title"}}.  State is per tenant.

Action names (stats, faults, request log): "tokens" for keystone, the call
names of the contract (cdn.list, cdn.cache_flush, ticket.reply, ...) for the
REST API.  Control endpoints of this vendor: POST /__emu/revoke, GET
/__emu/tokens.  See README.md.
"""

import datetime
import json
import re
import secrets
import threading
import time
import zlib

from emucore import ParamError, Response, Vendor, parse_form

# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------
# tenant name -> tenant id
TENANTS = {
    "demo": "4c7e0a3d9b2f4e1a8d6c5b4a39281706",
    "ops": "9f0e1d2c3b4a59687766554433221100",
}
# username -> password, user id, the tenants the user may scope to
USERS = {
    "demo": {"password": "secreetword", "user_id": "u-5e3f2a1b", "tenants": ("demo",)},
    "ops": {"password": "opspass", "user_id": "u-0c1d2e3f", "tenants": ("ops",)},
}
MEMBER_ROLE_ID = "9fe2ff9ee4384b1894a90878d3e92bab"   # keystone's _member_ role

# /__emu/config settings (defaults)
CONFIG = {
    "token_seconds": 3600,          # server-side token lifetime
    "token_stated_seconds": None,   # the lifetime stated in "expires" (null: token_seconds)
}

# the service prefixes that serve the REST API -> region
SERVICE_PREFIXES = (("/r2/v1.0", "RegionTwo"), ("/v1.0", "RegionOne"))
# catalog prefixes that exist only to catch a client picking the wrong entry
NOT_SERVED = ("/legacy/", "/internal/", "/admin/")
KEYSTONE_PATH = "/v2.0/tokens"

# REST routes after the service prefix, in precedence order: the first whose
# path matches decides (405 if it lacks the method)
ROUTES = [
    ("/cdn/domain", {"GET": "cdn.list", "POST": "cdn.create"}),
    ("/cdn/domain/(?P<domain_id>[^/]+)",
     {"GET": "cdn.get", "PUT": "cdn.update", "DELETE": "cdn.delete"}),
    ("/cdn/flow/(?P<domain_id>[^/]+)", {"GET": "cdn.flow"}),
    ("/recharge/(?P<project_id>[^/]+)/cdn_flow", {"POST": "cdn.recharge"}),
    ("/cdn/urls", {"GET": "cdn.list_urls", "POST": "cdn.create_urls"}),
    ("/cdn/urls/(?P<url_id>[^/]+)", {"DELETE": "cdn.delete_urls"}),
    ("/cdn/cache_flush", {"PUT": "cdn.cache_flush"}),
    ("/cdn/request_log", {"GET": "cdn.request_log"}),
    ("/cdn/prefetch", {"PUT": "cdn.prefetch"}),
    ("/cdn/prefetch/(?P<request_id>[^/]+)", {"GET": "cdn.prefetch_query"}),
    ("/ticket", {"GET": "ticket.list", "POST": "ticket.create"}),
    ("/ticket/reply/(?P<ticket_id>[^/]+)", {"GET": "ticket.list_reply", "POST": "ticket.reply"}),
    ("/ticket/(?P<user_id>[^/]+)/list", {"GET": "ticket.list"}),
    ("/ticket/(?P<ticket_id>[^/]+)", {"GET": "ticket.get", "PUT": "ticket.update"}),
]
ROUTES = [(re.compile(p + "$"), m) for p, m in ROUTES]
ACTIONS = sorted({a for _, m in ROUTES for a in m.values()})

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
MSG_UNAUTHORIZED = "The request you have made requires authentication."
MSG_NOT_FOUND = "The resource could not be found."

FIRST_DOMAIN_ID = 206801
DOMAIN_CREATED = "2014-08-01T00:00:00"
AREAS = ("cn", "hk", "ov")
FLOW_DAYS = 7
LOG_DAYS_MAX = 31

HOST_RX = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                     r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
IPV4_RX = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
URL_RX = re.compile(r"^https?://([^/?#\s@]+)([/?#][^\s]*)?$", re.I)
TIME_RX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
DIGITS_RX = re.compile(r"^\d{1,15}$")

TRUNCATED = b'{"cdn": [{"id": 206801, "domain": "pl-0001.example.com", "origin_ips": ["114.'


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def iso_z(ts):
    """YYYY-MM-DDTHH:MM:SSZ (keystone's expires)"""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro_z(ts):
    """YYYY-MM-DDTHH:MM:SS.ffffffZ (keystone's issued_at)"""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_plain(ts):
    """YYYY-MM-DDTHH:MM:SS (the REST API's times, UTC)"""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(s):
    """YYYY-MM-DDTHH:MM:SS[.ffffff] (UTC) -> epoch seconds, or None."""
    if not isinstance(s, str) or not TIME_RX.match(s):
        return None
    try:
        fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in s else "%Y-%m-%dT%H:%M:%S"
        d = datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return d.timestamp()


def url_host(u):
    """The lower-case host (no port) of an http(s) URL, or None."""
    m = URL_RX.match(u) if isinstance(u, str) else None
    if not m:
        return None
    host = m.group(1).lower()
    if host.startswith("["):
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def made_up_flow(domain_id, date):
    return 100000000 + zlib.crc32(("%d/%s" % (domain_id, date)).encode()) % 50000000000


class Err(Exception):
    """An error answer in the OpenStack envelope."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def bad(message):
    return Err(400, message)


def not_found(what=None):
    return Err(404, MSG_NOT_FOUND if what is None else "%s could not be found." % what)


def only_keys(obj, allowed, where):
    for k in obj:
        if k not in allowed:
            raise bad("Unknown key %r in %s (allowed: %s)." % (k[:60], where,
                                                              ", ".join(sorted(allowed))))


def string_list(v, name, nonempty=True):
    if not isinstance(v, list) or (nonempty and not v):
        raise bad("%s must be a %sarray of strings." % (name, "non-empty " if nonempty else ""))
    for i, x in enumerate(v):
        if not isinstance(x, str) or not x:
            raise bad("%s[%d] must be a non-empty string." % (name, i))
    return v


# --------------------------------------------------------------------------
# the vendor
# --------------------------------------------------------------------------
class Plcloud(Vendor):
    name = "plcloud"
    PATH = "/v1.0"          # nominal: check_route routes by prefix, method and path
    CREDENTIALS = {u: v["password"] for u, v in USERS.items()}
    COUNT_OPTION = ("--pl-domains", 5, "number of domains pl-0001.example.com ... "
                    "(ids 206801...) of tenant demo")
    TASK_ACTIONS = frozenset({"cdn.prefetch"})
    CONFIG = CONFIG
    CONTROL_ENDPOINTS = ("POST /__emu/revoke", "GET /__emu/tokens")
    TRUNCATED_BODY = TRUNCATED

    def __init__(self, state, fixtures, n_items):
        super().__init__(state, fixtures, n_items)
        self.n_domains = n_items
        self.lock = threading.RLock()
        for c in ("tokens_issued", "auth_failed", "token_rejected", "region_two"):
            state.counter_defaults.setdefault(c, 0)

    # ---- state ---------------------------------------------------------------
    def _fresh(self):
        tenants = {}
        for name, tid in TENANTS.items():
            tenants[tid] = {"name": name, "domains": {}, "urls": {}, "balance": 0,
                            "prefetch": {}, "tickets": {}, "replies": {}}
        demo = tenants[TENANTS["demo"]]
        for i in range(self.n_domains):
            did = FIRST_DOMAIN_ID + i
            name = "pl-%04d.example.com" % (i + 1)
            demo["domains"][did] = self._domain(did, name, ["114.114.114.114"], ["cn"], "web",
                                                None, DOMAIN_CREATED)
        demo["tickets"]["tk-8b47870c"] = {
            "id": "tk-8b47870c", "summary": "Slow first byte on pl-0001.example.com",
            "description": "Since this morning the first byte takes over 2 s in Guangdong.",
            "status": "new", "user_id": USERS["demo"]["user_id"],
            "created_at": "2014-08-02T09:30:00"}
        demo["replies"]["tk-8b47870c"] = [{
            "id": "rp-5d2e9c41", "ticket_id": "tk-8b47870c",
            "content": "We are looking into it.", "created_at": "2014-08-02T10:00:00"}]
        return {"tokens": {}, "tenants": tenants, "url_seq": 0}

    def _st(self):
        with self.state.lock:
            x = self.state.extra.get("plcloud")
            if x is None:
                x = self.state.extra["plcloud"] = self._fresh()
            return x

    def cfg(self, name):
        return self.state.vendor_config.get(name, CONFIG[name])

    @staticmethod
    def _domain(did, name, ips, areas, dtype, icp, created):
        return {"id": did, "domain": name, "origin_ips": list(ips), "areas": list(areas),
                "type": dtype, "icp_record": icp, "enable": True, "status": "enabled",
                "cname": name + ".cdn.plcloud.com", "created_at": created}

    def check_config(self, name, value):
        if name == "token_stated_seconds" and value is None:
            return None, None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            return None, "%s must be a number >= 0%s" % (
                name, " or null" if name == "token_stated_seconds" else "")
        return value, None

    # ---- answers --------------------------------------------------------------
    @staticmethod
    def answer(status, obj, headers=None):
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return Response(status, body, "application/json", headers=headers)

    def error(self, status, message, headers=None):
        resp = self.answer(status, {"error": {"message": message, "code": status,
                                              "title": TITLES[status]}}, headers)
        resp.error_title = TITLES[status]
        return resp

    def unauthorized(self, req):
        return self.error(401, MSG_UNAUTHORIZED, headers=[
            ("WWW-Authenticate", 'Keystone uri="%s/v2.0"' % self.base(req))])

    def base(self, req):
        host = (req.host or "").strip() or self.listen_address or "127.0.0.1"
        return "http://" + host

    # ---- routing --------------------------------------------------------------
    def route(self, req):
        """-> dict(region, action, args, allowed) cached on the request;
        action None: no such method (allowed lists the path's methods) or no
        such path (allowed None)."""
        r = getattr(req, "pl_route", None)
        if r is not None:
            return r
        r = {"region": None, "action": None, "args": {}, "allowed": None, "note": None}
        path = req.path
        if path == KEYSTONE_PATH:
            r["allowed"] = {"POST": "tokens"}
        else:
            for prefix, region in SERVICE_PREFIXES:
                if path.startswith(prefix + "/") or path == prefix:
                    r["region"] = region
                    rest = path[len(prefix):]
                    for rx, methods in ROUTES:
                        m = rx.match(rest)
                        if m:
                            r["allowed"] = methods
                            r["args"] = m.groupdict()
                            break
                    break
            else:
                if any(path.startswith(p) for p in NOT_SERVED):
                    r["note"] = ("%s is not served by this emulator: the Plcloud API is at "
                                 "the \"plcloud\" catalog entry's publicURL (/v1.0, "
                                 "RegionTwo /r2/v1.0)" % path.split("/v1.0")[0][:40])
        if r["allowed"] is not None:
            r["action"] = r["allowed"].get(req.method)
        req.pl_route = r
        return r

    def action_of(self, req):
        return self.route(req)["action"]

    def check_route(self, req):
        r = self.route(req)
        if r["allowed"] is None:
            msg = MSG_NOT_FOUND
            if r["note"]:
                msg += " (cdnemu: %s.)" % r["note"]
            return self.error(404, msg)
        if r["action"] is None:
            allowed = ", ".join(sorted(r["allowed"]))
            return self.error(405, "The method %s is not allowed for %s (allowed: %s)."
                              % (req.method[:20], req.path[:200], allowed),
                              headers=[("Allow", allowed)])
        return None

    def err_method(self, req):
        return self.check_route(req)

    def err_path(self, req):
        return self.check_route(req)

    def read_params(self, method, headers, query, body):
        return {}     # the JSON body and query string are read in dispatch()

    def err_input(self, msg):
        return self.error(400, "The request could not be read: %s." % msg)

    def err_nonce(self):      # no nonces; never called
        return self.error(401, MSG_UNAUTHORIZED)

    def internal_error(self):
        return self.error(500, "An unexpected error prevented the server from fulfilling "
                          "your request.")

    def vendor_fault(self, kind):
        if kind == "throttle":
            return self.error(429, "Rate limit exceeded, please retry later.",
                              headers=[("Retry-After", "1")])
        if kind == "http500":
            return self.internal_error()
        if kind == "http503":
            return self.error(503, "The service is temporarily unavailable, please retry "
                              "later.")
        if kind == "stale":
            return self.error(401, MSG_UNAUTHORIZED)
        raise AssertionError(kind)

    # ---- entry ----------------------------------------------------------------
    def process(self, req):
        r = self.route(req)
        token = (req.headers.get("X-Auth-Token") or "").strip() or None
        self.state.annotate(req, {"region": r["region"], "token": token,
                                  "token_status": None, "tenant": None, "error": None})
        if r["region"] == "RegionTwo":
            self.state.count("region_two")
        resp = super().process(req)
        if resp.mode is None and resp.status == 401 and r["region"] is not None:
            self.state.count("token_rejected")
        self.state.annotate(req, {"error": getattr(resp, "error_title", None)})
        return resp

    def authenticate(self, req):
        if req.action == "tokens":
            return None, None
        tid = (req.headers.get("X-Auth-Token") or "").strip()
        st = self._st()
        now = self.state.now()
        with self.lock:
            t = st["tokens"].get(tid) if tid else None
            if not tid:
                status = "missing"
            elif t is None:
                status = "unknown"
            elif t["revoked"]:
                status = "revoked"
            elif now >= t["server_expires"]:
                status = "expired"
            else:
                status = "ok"
        self.state.annotate(req, {"token_status": status,
                                  "tenant": t["tenant_name"] if t else None})
        if status != "ok":
            return self.unauthorized(req), None
        req.pl_token = t
        return None, None

    def dispatch(self, req):
        try:
            if req.action == "tokens":
                return self.act_tokens(req)
            fn = getattr(self, "act_" + req.action)
            return fn(req, self._st()["tenants"][req.pl_token["tenant_id"]])
        except Err as e:
            return self.error(e.status, e.message, e.headers)

    # ---- bodies -----------------------------------------------------------------
    def json_body(self, req):
        """The JSON object of a POST/PUT body (Content-Type application/json)."""
        ctype = (req.content_type or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise bad("Content-Type must be application/json (got %s)."
                      % (repr(req.content_type[:60]) if req.content_type else "none"))
        if not req.body.strip():
            raise bad("The request body is empty: a JSON object is expected.")
        try:
            data = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise bad("Malformed JSON in request body.")
        if not isinstance(data, dict):
            raise bad("The request body must be a JSON object.")
        return data

    def no_body(self, req):
        if req.body.strip():
            raise bad("%s %s takes no request body." % (req.method, req.action))

    # ---- keystone ---------------------------------------------------------------
    def act_tokens(self, req):
        data = self.json_body(req)
        auth = data.get("auth")
        if not isinstance(auth, dict):
            raise bad("Expecting to find auth in request body. The server could not comply "
                      "with the request since it is either malformed or otherwise incorrect. "
                      "The client is assumed to be in error.")
        pc = auth.get("passwordCredentials")
        if not isinstance(pc, dict):
            raise bad("Expecting to find passwordCredentials in auth (cdnemu emulates "
                      "password authentication only).")
        user, password = pc.get("username"), pc.get("password")
        if not isinstance(user, str) or not user:
            raise bad("Expecting to find username in passwordCredentials.")
        if not isinstance(password, str):
            raise bad("Expecting to find password in passwordCredentials.")
        tname, tid = auth.get("tenantName"), auth.get("tenantId")
        if tname is None and tid is None:
            raise bad("Expecting to find tenantName or tenantId in auth (cdnemu issues "
                      "tenant-scoped tokens only).")
        if (tname is not None and not isinstance(tname, str)) or \
                (tid is not None and not isinstance(tid, str)):
            raise bad("tenantName and tenantId must be strings.")
        self.state.annotate(req, {"tenant": tname if tname is not None else tid,
                                  "username": user})
        acct = USERS.get(user)
        tenant = None
        if tname is not None:
            tenant = tname if tname in TENANTS else None
        if tid is not None:
            by_id = {v: k for k, v in TENANTS.items()}.get(tid)
            tenant = by_id if tenant is None or tenant == by_id else None
        if (acct is None or acct["password"] != password or tenant is None
                or tenant not in acct["tenants"]):
            self.state.count("auth_failed")
            return self.error(401, MSG_UNAUTHORIZED)
        now = self.state.now()
        lifetime = self.cfg("token_seconds")
        stated = self.cfg("token_stated_seconds")
        if stated is None:
            stated = lifetime
        tok = {"id": secrets.token_hex(16), "tenant_id": TENANTS[tenant], "tenant_name": tenant,
               "user_id": acct["user_id"], "username": user, "issued": now,
               "server_expires": now + lifetime, "expires": iso_z(now + stated),
               "issued_at": iso_micro_z(now), "revoked": False}
        st = self._st()
        with self.lock:
            st["tokens"][tok["id"]] = tok
        self.state.count("tokens_issued")
        base = self.base(req)

        def ep(region, public, internal, admin, eid):
            return {"region": region, "publicURL": base + public, "internalURL": base + internal,
                    "adminURL": base + admin, "id": eid}
        catalog = [
            {"type": "identity", "name": "keystone", "endpoints_links": [], "endpoints": [
                ep("RegionOne", "/v2.0", "/v2.0", "/v2.0", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5")]},
            {"type": "plcloud", "name": "plcloud-legacy", "endpoints_links": [], "endpoints": [
                ep("RegionOne", "/legacy/v1.0", "/legacy/v1.0", "/legacy/v1.0",
                   "1b2c3d4e5f6a47b8c9d0e1f2a3b4c5d6")]},
            {"type": "plcloud", "name": "plcloud", "endpoints_links": [], "endpoints": [
                ep("RegionOne", "/v1.0", "/internal/v1.0", "/admin/v1.0",
                   "2c3d4e5f6a7b48c9d0e1f2a3b4c5d6e7"),
                ep("RegionTwo", "/r2/v1.0", "/internal/r2/v1.0", "/admin/r2/v1.0",
                   "3d4e5f6a7b8c49d0e1f2a3b4c5d6e7f8")]},
        ]
        return self.answer(200, {"access": {
            "token": {"id": tok["id"], "expires": tok["expires"], "issued_at": tok["issued_at"],
                      "tenant": {"id": tok["tenant_id"], "name": tenant, "enabled": True,
                                 "description": None}},
            "serviceCatalog": catalog,
            "user": {"id": acct["user_id"], "name": user, "username": user,
                     "roles": [{"name": "_member_"}], "roles_links": []},
            "metadata": {"is_admin": 0, "roles": [MEMBER_ROLE_ID]}}})

    # ---- control endpoints ---------------------------------------------------------
    def control(self, name, method, data):
        st = self._st()
        if name == "revoke" and method == "POST":
            extra = sorted(set(data) - {"token"})
            if extra:
                return self.answer(400, {"error": "unknown field(s) %s; body: {} or "
                                         "{\"token\": \"<id>\"}" % ", ".join(extra)})
            which = data.get("token")
            if which is not None and not isinstance(which, str):
                return self.answer(400, {"error": "token must be a string"})
            now = self.state.now()
            n = 0
            with self.lock:
                for t in st["tokens"].values():
                    if which is not None and t["id"] != which:
                        continue
                    if not t["revoked"] and now < t["server_expires"]:
                        t["revoked"] = True
                        n += 1
            return self.answer(200, {"revoked": n})
        if name == "tokens" and method == "GET":
            now = self.state.now()
            with self.lock:
                out = [{"id": t["id"], "tenant": t["tenant_name"], "username": t["username"],
                        "issued_at": t["issued_at"], "expires": t["expires"],
                        "server_expires": iso_micro_z(t["server_expires"]),
                        "revoked": t["revoked"],
                        "live": not t["revoked"] and now < t["server_expires"]}
                       for t in st["tokens"].values()]
            return self.answer(200, {"tokens": out})
        return None

    # ---- REST: domains ---------------------------------------------------------------
    @staticmethod
    def _domain_of(tenant, raw):
        if not DIGITS_RX.match(raw or ""):
            raise not_found("Domain %s" % (raw or "")[:40])
        d = tenant["domains"].get(int(raw))
        if d is None:
            raise not_found("Domain %s" % raw[:40])
        return d

    @staticmethod
    def _check_fields(dom, creating):
        out = {}
        if "origin_ips" in dom or creating:
            ips = dom.get("origin_ips")
            if not isinstance(ips, list) or not ips:
                raise bad("origin_ips must be a non-empty array of IPv4 addresses.")
            for i, ip in enumerate(ips):
                if not isinstance(ip, str) or not IPV4_RX.match(ip):
                    raise bad("origin_ips[%d] is not an IPv4 address: %s"
                              % (i, json.dumps(ip)[:60]))
            out["origin_ips"] = list(ips)
        if "areas" in dom or creating:
            areas = dom.get("areas")
            if not isinstance(areas, list) or not areas:
                raise bad("areas must be a non-empty array of cn, hk, ov.")
            for i, a in enumerate(areas):
                if a not in AREAS:
                    raise bad("areas[%d] must be one of cn, hk, ov: %s" % (i, json.dumps(a)[:60]))
            if len(set(areas)) != len(areas):
                raise bad("areas lists an area twice.")
            out["areas"] = list(areas)
        if "type" in dom:
            if not isinstance(dom["type"], str) or not dom["type"]:
                raise bad("type must be a non-empty string.")
            out["type"] = dom["type"]
        elif creating:
            out["type"] = "web"
        if "icp_record" in dom:
            if dom["icp_record"] is not None and not isinstance(dom["icp_record"], str):
                raise bad("icp_record must be a string or null.")
            out["icp_record"] = dom["icp_record"]
        elif creating:
            out["icp_record"] = None
        return out

    def act_cdn_list(self, req, tenant):
        self.no_body(req)
        with self.lock:
            return self.answer(200, {"cdn": [dict(d) for _, d in
                                             sorted(tenant["domains"].items())]})

    def act_cdn_create(self, req, tenant):
        data = self.json_body(req)
        only_keys(data, {"domain"}, "the request body")
        dom = data.get("domain")
        if not isinstance(dom, dict):
            raise bad("domain must be an object.")
        only_keys(dom, {"domain", "origin_ips", "areas", "type", "icp_record"}, "domain")
        name = dom.get("domain")
        if not isinstance(name, str) or not HOST_RX.match(name.lower()):
            raise bad("domain.domain must be a host name: %s" % json.dumps(name)[:80])
        name = name.lower()
        fields = self._check_fields(dom, True)
        st = self._st()
        with self.lock:
            ids = [FIRST_DOMAIN_ID - 1]
            for t in st["tenants"].values():
                for d in t["domains"].values():
                    if d["domain"] == name:
                        raise Err(409, "Domain %s already exists." % name)
                ids.extend(t["domains"])
            did = max(ids) + 1
            d = self._domain(did, name, fields["origin_ips"], fields["areas"], fields["type"],
                             fields["icp_record"], iso_plain(self.state.now()))
            tenant["domains"][did] = d
            return self.answer(200, {"cdn": dict(d)})

    def act_cdn_get(self, req, tenant):
        self.no_body(req)
        with self.lock:
            return self.answer(200, {"cdn": dict(self._domain_of(tenant, req.pl_route["args"]
                                                                 ["domain_id"]))})

    def act_cdn_update(self, req, tenant):
        with self.lock:
            d = self._domain_of(tenant, req.pl_route["args"]["domain_id"])
        data = self.json_body(req)
        only_keys(data, {"domain"}, "the request body")
        dom = data.get("domain")
        if not isinstance(dom, dict):
            raise bad("domain must be an object.")
        only_keys(dom, {"origin_ips", "areas", "type", "icp_record", "enable"}, "domain")
        if not dom:
            raise bad("domain names nothing to update (origin_ips, areas, type, icp_record, "
                      "enable).")
        fields = self._check_fields(dom, False)
        if "enable" in dom:
            if not isinstance(dom["enable"], bool):
                raise bad("enable must be true or false.")
            fields["enable"] = dom["enable"]
            fields["status"] = "enabled" if dom["enable"] else "disabled"
        with self.lock:
            d.update(fields)
            return self.answer(200, {"cdn": dict(d)})

    def act_cdn_delete(self, req, tenant):
        self.no_body(req)
        with self.lock:
            d = self._domain_of(tenant, req.pl_route["args"]["domain_id"])
            del tenant["domains"][d["id"]]
        return Response(204, b"")

    def act_cdn_flow(self, req, tenant):
        self.no_body(req)
        with self.lock:
            d = self._domain_of(tenant, req.pl_route["args"]["domain_id"])
        today = utc(self.state.now()).date()
        days = [(today - datetime.timedelta(days=n)).isoformat()
                for n in range(FLOW_DAYS - 1, -1, -1)]
        return self.answer(200, {"cdn": [{"date": day, "flow": made_up_flow(d["id"], day)}
                                         for day in days]})

    def act_cdn_recharge(self, req, tenant):
        project = req.pl_route["args"]["project_id"]
        if project != req.pl_token["tenant_id"]:
            raise Err(403, "You are not authorized to recharge project %s." % project[:64])
        data = self.json_body(req)
        only_keys(data, {"flow"}, "the request body")
        n = data.get("flow")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise bad("flow must be a positive integer (GB).")
        with self.lock:
            tenant["balance"] += n
            bal = tenant["balance"]
        return self.answer(200, {"cdn": {"project_id": project, "flow": n, "balance": bal}})

    # ---- REST: URL list ----------------------------------------------------------------
    def act_cdn_create_urls(self, req, tenant):
        data = self.json_body(req)
        only_keys(data, {"urls"}, "the request body")
        urls = string_list(data.get("urls"), "urls")
        for i, u in enumerate(urls):
            if url_host(u) is None:
                raise bad("urls[%d] is not an http(s) URL: %s" % (i, u[:200]))
        st = self._st()
        out = []
        with self.lock:
            for u in urls:
                st["url_seq"] += 1
                item = {"id": st["url_seq"], "url": u}
                tenant["urls"][item["id"]] = item
                out.append(dict(item))
        return self.answer(200, {"cdn": out})

    def act_cdn_list_urls(self, req, tenant):
        self.no_body(req)
        with self.lock:
            return self.answer(200, {"cdn": [dict(u) for _, u in sorted(tenant["urls"].items())]})

    def act_cdn_delete_urls(self, req, tenant):
        self.no_body(req)
        raw = req.pl_route["args"]["url_id"]
        with self.lock:
            if not DIGITS_RX.match(raw) or int(raw) not in tenant["urls"]:
                raise not_found("URL %s" % raw[:40])
            del tenant["urls"][int(raw)]
        return Response(204, b"")

    # ---- REST: cache flush, logs, prefetch ----------------------------------------------
    def act_cdn_cache_flush(self, req, tenant):
        data = self.json_body(req)
        only_keys(data, {"domain"}, "the request body")
        dom = data.get("domain")
        if not isinstance(dom, dict):
            raise bad("domain must be an object.")
        only_keys(dom, {"domain_id", "urls", "dirs"}, "domain")
        did = dom.get("domain_id")
        if isinstance(did, bool) or not isinstance(did, int):
            raise bad("domain.domain_id must be an integer.")
        urls = string_list(dom["urls"], "urls", False) if dom.get("urls") is not None else []
        dirs = string_list(dom["dirs"], "dirs", False) if dom.get("dirs") is not None else []
        if not urls and not dirs:
            raise bad("domain.urls or domain.dirs must name at least one URL.")
        with self.lock:
            d = tenant["domains"].get(did)
            if d is None:
                raise not_found("Domain %d" % did)
            name = d["domain"]
        for what, items in (("urls", urls), ("dirs", dirs)):
            for i, u in enumerate(items):
                host = url_host(u)
                if host is None:
                    raise bad("%s[%d] is not an http(s) URL: %s" % (what, i, u[:200]))
                if host != name:
                    raise bad("%s[%d] %s is not on domain %s." % (what, i, u[:200], name))
                if what == "dirs" and not u.endswith("/"):
                    raise bad("dirs[%d] %s must end with /." % (i, u[:200]))
        self.state.record(urls=urls, dirs=dirs)
        return self.answer(200, {"cdn": {"domain_id": did, "urls": len(urls), "dirs": len(dirs),
                                         "status": "submitted"}})

    def act_cdn_request_log(self, req, tenant):
        self.no_body(req)
        try:
            pairs = parse_form(req.query.encode("latin-1", "replace"))
        except ParamError as e:
            raise bad(str(e))
        q = {}
        for k, v in pairs:
            if k not in ("domain_id", "type", "start_at", "end_at"):
                raise bad("Unknown query parameter %r (domain_id, type, start_at, end_at)."
                          % k[:60])
            if k in q:
                raise bad("Query parameter %s given twice." % k)
            q[k] = v
        if not q.get("domain_id"):
            raise bad("The query parameter domain_id is required.")
        if not DIGITS_RX.match(q["domain_id"]):
            raise bad("domain_id must be an integer: %s" % q["domain_id"][:40])
        if not q.get("type"):
            raise bad("The query parameter type is required.")
        times = {}
        for k in ("start_at", "end_at"):
            if k in q:
                t = parse_time(q[k])
                if t is None:
                    raise bad("%s must be YYYY-MM-DDTHH:MM:SS[.ffffff]: %s" % (k, q[k][:60]))
                times[k] = t
        with self.lock:
            d = tenant["domains"].get(int(q["domain_id"]))
            if d is None:
                raise not_found("Domain %s" % q["domain_id"])
            name = d["domain"]
        end = times.get("end_at", self.state.now())
        start = times.get("start_at")
        if start is None:
            start = datetime.datetime.combine(utc(end).date(), datetime.time(),
                                              datetime.timezone.utc).timestamp()
        if end < start:
            raise bad("end_at is before start_at.")
        first, last = utc(start).date(), utc(end).date()
        if (last - first).days >= LOG_DAYS_MAX:
            raise bad("At most %d days of logs per request." % LOG_DAYS_MAX)
        out, day = [], first
        while day <= last:
            d0 = datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc).timestamp()
            out.append({"domain_id": int(q["domain_id"]), "type": q["type"],
                        "url": "http://%s/log/%s.gz" % (name, day.isoformat()),
                        "start_at": iso_plain(max(start, d0)),
                        "end_at": iso_plain(min(end, d0 + 86399))})
            day += datetime.timedelta(days=1)
        return self.answer(200, {"cdn": out})

    def act_cdn_prefetch(self, req, tenant):
        data = self.json_body(req)
        only_keys(data, {"urls"}, "the request body")
        urls = string_list(data.get("urls"), "urls")
        with self.lock:
            names = {d["domain"] for d in tenant["domains"].values()}
        for i, u in enumerate(urls):
            host = url_host(u)
            if host is None:
                raise bad("urls[%d] is not an http(s) URL: %s" % (i, u[:200]))
            if host not in names:
                raise bad("urls[%d] %s is not on one of your domains." % (i, u[:200]))
        if req.no_task_id:
            return self.answer(200, {"cdn": {"count": len(urls)}})
        rid = "pf-" + secrets.token_hex(6)
        with self.lock:
            tenant["prefetch"][rid] = {"urls": list(urls), "mono": time.monotonic()}
        self.state.record(prefetch=urls)
        return self.answer(200, {"cdn": {"request_id": rid, "count": len(urls)}})

    def act_cdn_prefetch_query(self, req, tenant):
        self.no_body(req)
        rid = req.pl_route["args"]["request_id"]
        with self.lock:
            task = tenant["prefetch"].get(rid)
        if task is None:
            raise not_found("Prefetch request %s" % rid[:40])
        done = time.monotonic() - task["mono"] >= self.state.task_seconds
        status = "done" if done else "running"
        return self.answer(200, {"cdn": {"request_id": rid, "status": status, "urls": [
            {"url": u, "status": status} for u in task["urls"]]}})

    # ---- REST: tickets -------------------------------------------------------------------
    def _ticket_of(self, tenant, tid):
        t = tenant["tickets"].get(tid)
        if t is None:
            raise not_found("Ticket %s" % tid[:40])
        return t

    def act_ticket_list(self, req, tenant):
        self.no_body(req)
        user = req.pl_route["args"].get("user_id")
        with self.lock:
            out = [dict(t) for t in tenant["tickets"].values()
                   if user is None or t["user_id"] == user]
        return self.answer(200, {"ticket": out})

    def act_ticket_get(self, req, tenant):
        self.no_body(req)
        with self.lock:
            return self.answer(200, {"ticket": dict(self._ticket_of(
                tenant, req.pl_route["args"]["ticket_id"]))})

    def act_ticket_create(self, req, tenant):
        data = self.json_body(req)
        only_keys(data, {"summary", "description"}, "the request body")
        for k in ("summary", "description"):
            if not isinstance(data.get(k), str) or not data[k].strip():
                raise bad("%s must be a non-empty string." % k)
        with self.lock:
            tid = "tk-" + secrets.token_hex(4)
            while tid in tenant["tickets"]:
                tid = "tk-" + secrets.token_hex(4)
            t = {"id": tid, "summary": data["summary"], "description": data["description"],
                 "status": "new", "user_id": req.pl_token["user_id"],
                 "created_at": iso_plain(self.state.now())}
            tenant["tickets"][tid] = t
            tenant["replies"][tid] = []
            return self.answer(200, {"ticket": dict(t)})

    def act_ticket_update(self, req, tenant):
        with self.lock:
            t = self._ticket_of(tenant, req.pl_route["args"]["ticket_id"])
        data = self.json_body(req)
        only_keys(data, {"status"}, "the request body")
        if data.get("status") not in ("accepted", "closed"):
            raise bad("status must be accepted or closed.")
        with self.lock:
            t["status"] = data["status"]
            return self.answer(200, {"ticket": dict(t)})

    def act_ticket_list_reply(self, req, tenant):
        self.no_body(req)
        tid = req.pl_route["args"]["ticket_id"]
        with self.lock:
            self._ticket_of(tenant, tid)
            return self.answer(200, {"ticket": [dict(r) for r in tenant["replies"].get(tid, [])]})

    def act_ticket_reply(self, req, tenant):
        tid = req.pl_route["args"]["ticket_id"]
        with self.lock:
            self._ticket_of(tenant, tid)
        data = self.json_body(req)
        only_keys(data, {"content"}, "the request body")
        if not isinstance(data.get("content"), str) or not data["content"].strip():
            raise bad("content must be a non-empty string.")
        with self.lock:
            r = {"id": "rp-" + secrets.token_hex(4), "ticket_id": tid, "content": data["content"],
                 "created_at": iso_plain(self.state.now())}
            tenant["replies"].setdefault(tid, []).append(r)
            return self.answer(200, {"ticket": dict(r)})


# every call is also reachable as act_<call name> (e.g. act_cdn.cache_flush), the
# name the base class's convention and the registry check look for
for _action in ACTIONS:
    setattr(Plcloud, "act_" + _action, getattr(Plcloud, "act_" + _action.replace(".", "_")))
del _action

VENDOR = Plcloud
