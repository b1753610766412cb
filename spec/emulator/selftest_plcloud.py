#!/usr/bin/env python3
"""Self-test of cdnemu's Powerleader Plcloud vendor (stdlib only).
Run: python3 spec/emulator/selftest_plcloud.py

Starts `cdnemu.py --vendor plcloud` on a random loopback port and drives it
with plain HTTP requests built here: the Keystone v2.0 token service (success,
the catalog's shape and URLs, refusals and their counters), the catalog's
entries (only /v1.0 and /r2/v1.0 serve), the REST API's token check, every
one of the 20 calls (happy path and their documented refusals), route
precedence, token expiry (server-side and stated lifetimes), revocation and
the control endpoints, faults by action name, the request log, --skew and
--latency.  Imports no emulator module but cdnemu (for the registry).
Prints `selftest-plcloud: N passed, N failed`; exit status 1 on failure.
"""

import calendar
import json
import re
import sys
import time
from urllib.parse import urlsplit

import selftestlib
from selftestlib import check, dropped, guarded, send

DEMO_TID = "4c7e0a3d9b2f4e1a8d6c5b4a39281706"
OPS_TID = "9f0e1d2c3b4a59687766554433221100"
DEMO_UID = "u-5e3f2a1b"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
UNAUTH = {"error": {"message": "The request you have made requires authentication.",
                    "code": 401, "title": "Unauthorized"}}
DOMAIN_KEYS = {"id", "domain", "origin_ips", "areas", "type", "icp_record", "enable", "status",
               "cname", "created_at"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
EXPIRES_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISSUED_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PLAIN_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


def ts_of(s):
    """expires / issued_at (UTC, Z) -> epoch seconds."""
    frac = 0.0
    if "." in s:
        s, f = s[:-1].split(".")
        frac, s = float("0." + f), s + "Z"
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) + frac


# --------------------------------------------------------------------------
# emulator process and requests
# --------------------------------------------------------------------------
class Result(selftestlib.Result):
    def err(self, status, text=None):
        """The OpenStack error envelope with this status (message containing text)."""
        e = self.json.get("error") if isinstance(self.json, dict) else None
        return (self.status == status and isinstance(e, dict) and set(e) == {
            "message", "code", "title"} and e["code"] == status and
            e["title"] == TITLES[status] and isinstance(e["message"], str) and
            (text is None or text in e["message"]) and
            (self.headers.get("Content-Type") or "").startswith("application/json"))

    def ok(self, key, status=200):
        return (self.status == status and isinstance(self.json, dict) and list(self.json) == [key]
                and self.headers.get("Content-Type") == "application/json")


class Emu(selftestlib.Emu):
    result_class = Result

    def __init__(self, extra=()):
        super().__init__("plcloud", extra, tmp_prefix="cdnemu-plcloud-selftest-")

    def control(self, method, name, body=None):
        status, out = self.control_status(method, name, body)
        out["_status"] = status
        return out


def login(emu, user="demo", password="secreetword", tenant="demo", body=None, raw=None,
          ctype="application/json", conn=None):
    if body is None:
        body = {"auth": {"passwordCredentials": {"username": user, "password": password},
                         "tenantName": tenant}}
    data = raw if raw is not None else json.dumps(body).encode()
    hd = {"Content-Type": ctype} if ctype else {}
    return send(emu, "POST", "/v2.0/tokens", data, hd, conn=conn)


def token(emu, **kw):
    r = login(emu, **kw)
    return r["access"]["token"]["id"]


def api(emu, method, path, body=None, tok=None, raw=None, ctype="application/json",
        prefix="/v1.0", headers=None, conn=None):
    hd = {}
    if tok:
        hd["X-Auth-Token"] = tok
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None and ctype:
        hd["Content-Type"] = ctype
    hd.update(headers or {})
    return send(emu, method, prefix + path, data, hd, conn=conn)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def registry_tests():
    cdnemu = selftestlib.emulator_module("cdnemu")
    check("registry: plcloud -> vendor_plcloud", cdnemu.VENDORS.get("plcloud") ==
          "vendor_plcloud", cdnemu.VENDORS)
    cls = cdnemu.vendor_class("plcloud")
    check("registry: --pl-domains, default 5", cls.COUNT_OPTION[:2] == ("--pl-domains", 5),
          cls.COUNT_OPTION)
    check("registry: task action cdn.prefetch is built in", cls.TASK_ACTIONS ==
          {"cdn.prefetch"} and hasattr(cls, "act_cdn.prefetch"))


def keystone_tests(emu):
    K = "keystone "
    emu.reset()
    t0 = time.time()
    r = login(emu)
    a = r.get("access") or {}
    tk = a.get("token") or {}
    check(K + "demo/secreetword/demo: 200 access", r.ok("access") and set(a) == {
        "token", "serviceCatalog", "user", "metadata"}, r)
    check(K + "token id: 32 hex", bool(HEX32.match(tk.get("id", ""))), tk)
    check(K + "token tenant", tk.get("tenant") == {"id": DEMO_TID, "name": "demo",
                                                    "enabled": True, "description": None}, tk)
    check(K + "expires / issued_at formats", bool(EXPIRES_RX.match(tk.get("expires", ""))) and
          bool(ISSUED_RX.match(tk.get("issued_at", ""))), tk)
    iss = ts_of(tk["issued_at"])
    check(K + "issued_at is now", abs(iss - t0) < 5, (iss, t0))
    check(K + "expires = issued + 3600 (default)", abs(ts_of(tk["expires"]) - iss - 3600) <= 1, tk)
    check(K + "user", a.get("user") == {"id": DEMO_UID, "name": "demo", "username": "demo",
                                        "roles": [{"name": "_member_"}], "roles_links": []},
          a.get("user"))
    md = a.get("metadata") or {}
    check(K + "metadata", md.get("is_admin") == 0 and isinstance(md.get("roles"), list) and
          len(md["roles"]) == 1, md)
    # catalog
    base = "http://" + emu.host
    cat = a.get("serviceCatalog") or []
    check(K + "catalog: identity, plcloud-legacy, plcloud", [(s.get("type"), s.get("name"))
                                                             for s in cat] == [
        ("identity", "keystone"), ("plcloud", "plcloud-legacy"), ("plcloud", "plcloud")], cat)
    check(K + "catalog: every entry has endpoints_links []",
          all(s.get("endpoints_links") == [] for s in cat), cat)
    eps = {s["name"]: s["endpoints"] for s in cat}
    ks = eps["keystone"][0]
    check(K + "catalog: keystone URLs from the Host header", ks["region"] == "RegionOne" and
          ks["publicURL"] == ks["internalURL"] == ks["adminURL"] == base + "/v2.0" and
          ks.get("id"), ks)
    check(K + "catalog: plcloud-legacy", eps["plcloud-legacy"][0]["publicURL"] ==
          base + "/legacy/v1.0", eps["plcloud-legacy"])
    pl = eps["plcloud"]
    check(K + "catalog: plcloud RegionOne", len(pl) == 2 and pl[0]["region"] == "RegionOne" and
          pl[0]["publicURL"] == base + "/v1.0" and pl[0]["internalURL"] == base +
          "/internal/v1.0" and pl[0]["adminURL"] == base + "/admin/v1.0" and pl[0].get("id"), pl)
    check(K + "catalog: plcloud RegionTwo", pl[1]["region"] == "RegionTwo" and
          pl[1]["publicURL"] == base + "/r2/v1.0" and pl[1]["internalURL"] == base +
          "/internal/r2/v1.0" and pl[1]["adminURL"] == base + "/admin/r2/v1.0", pl)
    r = send(emu, "POST", "/v2.0/tokens", json.dumps({"auth": {"passwordCredentials": {
        "username": "demo", "password": "secreetword"}, "tenantName": "demo"}}).encode(),
        {"Content-Type": "application/json", "Host": "cdn.example.test:8443"})
    check(K + "catalog follows the Host header", r.status == 200 and r["access"][
        "serviceCatalog"][2]["endpoints"][1]["publicURL"] == "http://cdn.example.test:8443/r2/v1.0",
        r)
    t2 = token(emu)
    check(K + "each login a new token", t2 != tk["id"])
    r = login(emu, body={"auth": {"passwordCredentials": {"username": "demo", "password":
                                                          "secreetword"}, "tenantId": DEMO_TID}})
    check(K + "tenantId accepted", r.status == 200 and r["access"]["token"]["tenant"]["name"] ==
          "demo", r)
    r = login(emu, "ops", "opspass", "ops")
    check(K + "ops/opspass/ops", r.status == 200 and r["access"]["token"]["tenant"]["id"] ==
          OPS_TID and r["access"]["user"]["name"] == "ops", r)
    s = emu.stats()
    check(K + "tokens_issued counted", s["tokens_issued"] == 5 and s["auth_failed"] == 0 and
          s["by_action"].get("tokens") == 5 and s["executed"].get("tokens") == 5, s)

    # refusals
    for label, kw in (("wrong password", {"password": "nope"}),
                      ("wrong username", {"user": "nobody"}),
                      ("wrong tenant", {"tenant": "nope"}),
                      ("demo user, ops tenant", {"tenant": "ops"})):
        r = login(emu, **kw)
        check(K + label + ": 401 envelope", r.status == 401 and r.json == UNAUTH, r)
    s = emu.stats()
    check(K + "auth_failed counted (4)", s["auth_failed"] == 4 and s["tokens_issued"] == 5 and
          s["token_rejected"] == 0, s)
    r = login(emu, raw=b'{"auth": ')
    check(K + "malformed JSON: 400", r.err(400), r)
    r = login(emu, body={"auth": {"tenantName": "demo"}})
    check(K + "no passwordCredentials: 400", r.err(400, "passwordCredentials"), r)
    r = login(emu, body={"nope": {}})
    check(K + "no auth: 400", r.err(400, "auth"), r)
    r = login(emu, body={"auth": {"passwordCredentials": {"username": "demo", "password":
                                                          "secreetword"}}})
    check(K + "no tenant: 400", r.err(400, "tenant"), r)
    r = login(emu, ctype="application/x-www-form-urlencoded")
    check(K + "form Content-Type: 400", r.err(400, "application/json"), r)
    r = login(emu, ctype=None)
    check(K + "no Content-Type: 400", r.err(400, "application/json"), r)
    r = login(emu, ctype="application/json; charset=utf-8")
    check(K + "application/json; charset=utf-8 accepted", r.status == 200, r)
    r = send(emu, "GET", "/v2.0/tokens")
    check(K + "GET /v2.0/tokens: 405 with Allow", r.err(405) and r.headers.get("Allow") ==
          "POST", r)
    r = send(emu, "GET", "/v2.0")
    check(K + "GET /v2.0: 404", r.err(404), r)


def catalog_tests(emu):
    C = "catalog "
    emu.reset()
    r = login(emu)
    tok = r["access"]["token"]["id"]
    eps = {s["name"]: s["endpoints"] for s in r["access"]["serviceCatalog"]}
    one, two = eps["plcloud"]
    good = {}
    for label, url in (("RegionOne publicURL", one["publicURL"]),
                       ("RegionTwo publicURL", two["publicURL"])):
        res = api(emu, "GET", "/cdn/domain", tok=tok, prefix=urlsplit(url).path)
        good[label] = res
        check(C + label + " serves", res.ok("cdn") and len(res["cdn"]) == 5, res)
    check(C + "both regions share the tenant's state",
          good["RegionOne publicURL"].json == good["RegionTwo publicURL"].json)
    for label, url in (("RegionOne internalURL", one["internalURL"]),
                       ("RegionOne adminURL", one["adminURL"]),
                       ("RegionTwo internalURL", two["internalURL"]),
                       ("RegionTwo adminURL", two["adminURL"]),
                       ("plcloud-legacy publicURL", eps["plcloud-legacy"][0]["publicURL"]),
                       ("keystone publicURL", eps["keystone"][0]["publicURL"])):
        res = api(emu, "GET", "/cdn/domain", tok=tok, prefix=urlsplit(url).path)
        check(C + label + ": 404 envelope", res.err(404), res)
    s = emu.stats()
    check(C + "region_two counts the /r2/v1.0 request", s["region_two"] == 1, s["region_two"])
    regions = [e.get("region") for e in s["request_log"] if e["action"] == "cdn.list"]
    check(C + "request_log region", regions == ["RegionOne", "RegionTwo"], s["request_log"])
    check(C + "unrouted requests: action null", all(e["action"] is None for e in
                                                    s["request_log"][-6:]), s["request_log"])
    r = api(emu, "GET", "/nothing", tok=tok)
    check(C + "unknown path: 404", r.err(404), r)
    r = api(emu, "GET", "/cdn/domain", tok=tok, prefix="/v1.1")
    check(C + "unknown version: 404", r.err(404), r)


def rest_auth_tests(emu):
    A = "rest-auth "
    emu.reset()
    r = api(emu, "GET", "/cdn/domain")
    check(A + "no X-Auth-Token: 401 envelope", r.status == 401 and r.json == UNAUTH, r)
    check(A + "401 carries WWW-Authenticate: Keystone",
          (r.headers.get("WWW-Authenticate") or "").startswith("Keystone uri="), r.headers)
    r = api(emu, "GET", "/cdn/domain", tok="0" * 32)
    check(A + "unknown token: 401", r.status == 401 and r.json == UNAUTH, r)
    r = api(emu, "POST", "/ticket", {"summary": "s", "description": "d"}, tok="bogus",
            prefix="/r2/v1.0")
    check(A + "unknown token (POST, RegionTwo): 401", r.status == 401 and r.json == UNAUTH, r)
    s = emu.stats()
    check(A + "token_rejected counted (3)", s["token_rejected"] == 3 and s["region_two"] == 1 and
          not s["executed"], s)
    log = s["request_log"]
    check(A + "request_log token_status", [e["token_status"] for e in log] ==
          ["missing", "unknown", "unknown"] and log[1]["token"] == "0" * 32 and
          all(e["error"] == "Unauthorized" for e in log), log)
    tok = token(emu)
    r = api(emu, "GET", "/cdn/domain", tok=tok)
    e = emu.stats()["request_log"][-1]
    check(A + "a live token: 200, logged ok", r.status == 200 and e["token_status"] == "ok" and
          e["tenant"] == "demo" and e["error"] is None, e)


def domain_tests(emu):
    D = "cdn "
    emu.reset()
    tok = token(emu)
    r = api(emu, "GET", "/cdn/domain", tok=tok)
    doms = r.get("cdn") or []
    check(D + "cdn.list: 5 generated domains", r.ok("cdn") and [d.get("id") for d in doms] ==
          [206801, 206802, 206803, 206804, 206805] and
          [d["domain"] for d in doms][:2] == ["pl-0001.example.com", "pl-0002.example.com"], r)
    check(D + "cdn.list: the domain object", doms and doms[0] == {
        "id": 206801, "domain": "pl-0001.example.com", "origin_ips": ["114.114.114.114"],
        "areas": ["cn"], "type": "web", "icp_record": None, "enable": True,
        "status": "enabled", "cname": "pl-0001.example.com.cdn.plcloud.com",
        "created_at": "2014-08-01T00:00:00"}, doms[:1])
    new = {"domain": "www.new-site.com", "origin_ips": ["1.2.3.4", "5.6.7.8"],
           "areas": ["cn", "ov"], "type": "download", "icp_record": "ICP-12345"}
    r = api(emu, "POST", "/cdn/domain", {"domain": new}, tok=tok)
    d = r.get("cdn") or {}
    check(D + "cdn.create: 200 {cdn: domain}, id max+1", r.ok("cdn") and set(d) == DOMAIN_KEYS and
          d["id"] == 206806 and d["domain"] == "www.new-site.com" and
          d["origin_ips"] == new["origin_ips"] and d["areas"] == ["cn", "ov"] and
          d["type"] == "download" and d["icp_record"] == "ICP-12345" and d["enable"] is True and
          d["status"] == "enabled" and d["cname"] == "www.new-site.com.cdn.plcloud.com" and
          bool(PLAIN_RX.match(d["created_at"])), r)
    r = api(emu, "POST", "/cdn/domain", {"domain": {"domain": "two.example.org", "origin_ips":
                                                    ["9.9.9.9"], "areas": ["hk"]}}, tok=tok)
    check(D + "cdn.create: type defaults to web, icp_record null", r.status == 200 and
          r["cdn"]["type"] == "web" and r["cdn"]["icp_record"] is None and
          r["cdn"]["id"] == 206807, r)
    r = api(emu, "POST", "/cdn/domain", {"domain": new}, tok=tok)
    check(D + "cdn.create: existing name: 409", r.err(409, "www.new-site.com"), r)
    for label, body, text in (
            ("not a host name", dict(new, domain="not a host"), "domain"),
            ("no domain", {k: v for k, v in new.items() if k != "domain"}, "domain"),
            ("origin_ips empty", dict(new, domain="a.example.com", origin_ips=[]), "origin_ips"),
            ("origin_ips not IPv4", dict(new, domain="a.example.com", origin_ips=["1.2.3"]),
             "origin_ips[0]"),
            ("origin_ips a string", dict(new, domain="a.example.com", origin_ips="1.2.3.4"),
             "origin_ips"),
            ("areas empty", dict(new, domain="a.example.com", areas=[]), "areas"),
            ("areas unknown", dict(new, domain="a.example.com", areas=["cn", "eu"]), "areas[1]"),
            ("type not a string", dict(new, domain="a.example.com", type=3), "type"),
            ("icp_record a number", dict(new, domain="a.example.com", icp_record=5), "icp_record"),
            ("unknown key", dict(new, domain="a.example.com", colour="red"), "colour")):
        r = api(emu, "POST", "/cdn/domain", {"domain": body}, tok=tok)
        check(D + "cdn.create: %s: 400" % label, r.err(400, text), r)
    r = api(emu, "POST", "/cdn/domain", {"domain": dict(new, domain="b.example.com"), "x": 1},
            tok=tok)
    check(D + "cdn.create: unknown top-level key: 400", r.err(400, "'x'"), r)
    r = api(emu, "POST", "/cdn/domain", {"domain": dict(new, domain="b.example.com")}, tok=tok,
            ctype="text/plain")
    check(D + "cdn.create: text/plain body: 400", r.err(400, "application/json"), r)
    r = api(emu, "POST", "/cdn/domain", raw=b"{nope", tok=tok)
    check(D + "cdn.create: malformed JSON: 400", r.err(400), r)

    r = api(emu, "GET", "/cdn/domain/206806", tok=tok)
    check(D + "cdn.get", r.ok("cdn") and r["cdn"]["domain"] == "www.new-site.com", r)
    r = api(emu, "GET", "/cdn/domain/999", tok=tok)
    check(D + "cdn.get: unknown id: 404", r.err(404), r)
    r = api(emu, "GET", "/cdn/domain/abc", tok=tok)
    check(D + "cdn.get: non-integer id: 404", r.err(404), r)
    r = api(emu, "PUT", "/cdn/domain/206806", {"domain": {"origin_ips": ["8.8.8.8"], "areas":
                                                          ["hk"], "enable": False,
                                                          "icp_record": None}}, tok=tok)
    check(D + "cdn.update", r.ok("cdn") and r["cdn"]["origin_ips"] == ["8.8.8.8"] and
          r["cdn"]["areas"] == ["hk"] and r["cdn"]["enable"] is False and
          r["cdn"]["status"] == "disabled" and r["cdn"]["icp_record"] is None and
          r["cdn"]["type"] == "download", r)
    r = api(emu, "GET", "/cdn/domain/206806", tok=tok)
    check(D + "cdn.update is kept", r.status == 200 and r["cdn"]["status"] == "disabled", r)
    r = api(emu, "PUT", "/cdn/domain/206806", {"domain": {"enable": True}}, tok=tok)
    check(D + "cdn.update: enable true", r.status == 200 and r["cdn"]["status"] == "enabled", r)
    r = api(emu, "PUT", "/cdn/domain/206806", {"domain": {"enable": "no"}}, tok=tok)
    check(D + "cdn.update: enable not a bool: 400", r.err(400, "enable"), r)
    r = api(emu, "PUT", "/cdn/domain/206806", {"domain": {"domain": "x.example.com"}}, tok=tok)
    check(D + "cdn.update: domain name not updatable: 400", r.err(400, "domain"), r)
    r = api(emu, "PUT", "/cdn/domain/206806", {"domain": {"areas": ["mars"]}}, tok=tok)
    check(D + "cdn.update: bad areas: 400", r.err(400, "areas"), r)
    r = api(emu, "PUT", "/cdn/domain/1", {"domain": {"enable": True}}, tok=tok)
    check(D + "cdn.update: unknown id: 404", r.err(404), r)
    r = api(emu, "PUT", "/cdn/domain/x1", {"domain": {"enable": True}}, tok=tok)
    check(D + "cdn.update: non-integer id: 404", r.err(404), r)
    r = api(emu, "DELETE", "/cdn/domain/206807", tok=tok)
    check(D + "cdn.delete: 204, empty body, no Content-Type", r.status == 204 and r.body == b""
          and r.headers.get("Content-Type") is None, (r, r.headers))
    r = api(emu, "DELETE", "/cdn/domain/206807", tok=tok)
    check(D + "cdn.delete again: 404", r.err(404), r)
    r = api(emu, "GET", "/cdn/flow/206801", tok=tok)
    fl = r.get("cdn") or []
    check(D + "cdn.flow: 7 days of int bytes", r.ok("cdn") and len(fl) == 7 and
          all(set(x) == {"date", "flow"} and isinstance(x["flow"], int) and
              re.match(r"^\d{4}-\d\d-\d\d$", x["date"]) for x in fl) and
          fl[-1]["date"] == time.strftime("%Y-%m-%d", time.gmtime()) and
          [x["date"] for x in fl] == sorted(x["date"] for x in fl), r)
    r = api(emu, "GET", "/cdn/flow/1234", tok=tok)
    check(D + "cdn.flow: unknown id: 404", r.err(404), r)

    # recharge
    r = api(emu, "POST", "/recharge/%s/cdn_flow" % DEMO_TID, {"flow": 100}, tok=tok)
    check(D + "cdn.recharge", r.ok("cdn") and r["cdn"] == {"project_id": DEMO_TID, "flow": 100,
                                                          "balance": 100}, r)
    r = api(emu, "POST", "/recharge/%s/cdn_flow" % DEMO_TID, {"flow": 20}, tok=tok)
    check(D + "cdn.recharge: balance is a running total", r.status == 200 and
          r["cdn"]["balance"] == 120, r)
    r = api(emu, "POST", "/recharge/%s/cdn_flow" % OPS_TID, {"flow": 20}, tok=tok)
    check(D + "cdn.recharge: another project: 403", r.err(403), r)
    for bad in (0, -5, 1.5, "10", True):
        r = api(emu, "POST", "/recharge/%s/cdn_flow" % DEMO_TID, {"flow": bad}, tok=tok)
        if not r.err(400, "flow"):
            break
    check(D + "cdn.recharge: flow not a positive integer: 400", r.err(400, "flow"), r)

    # tenants
    ops = token(emu, user="ops", password="opspass", tenant="ops")
    r = api(emu, "GET", "/cdn/domain", tok=ops)
    check(D + "ops tenant starts with no domains", r.ok("cdn") and r["cdn"] == [], r)
    r = api(emu, "GET", "/cdn/domain/206801", tok=ops)
    check(D + "ops cannot see demo's domain: 404", r.err(404), r)
    r = api(emu, "POST", "/cdn/domain", {"domain": dict(new, domain="ops.example.net")}, tok=ops)
    check(D + "ops creates a domain: next id over all tenants", r.status == 200 and
          r["cdn"]["id"] == 206807, r)
    r = api(emu, "POST", "/recharge/%s/cdn_flow" % OPS_TID, {"flow": 7}, tok=ops)
    check(D + "ops recharge: its own balance", r.status == 200 and r["cdn"]["balance"] == 7, r)
    r = api(emu, "GET", "/cdn/domain", body={"x": 1}, tok=tok)
    check(D + "GET with a body: 400", r.err(400), r)
    emu.reset()
    r = api(emu, "GET", "/cdn/domain", tok=token(emu))
    check(D + "reset restores the generated domains", r.status == 200 and len(r["cdn"]) == 5 and
          r["cdn"][-1]["id"] == 206805, r)


def url_tests(emu):
    U = "urls "
    emu.reset()
    tok = token(emu)
    r = api(emu, "POST", "/cdn/urls", {"urls": ["http://a.example.com/x",
                                                "https://b.example.com/"]}, tok=tok)
    check(U + "cdn.create_urls", r.ok("cdn") and [set(x) for x in r["cdn"]] == [{"id", "url"}] * 2
          and [x["url"] for x in r["cdn"]] == ["http://a.example.com/x", "https://b.example.com/"]
          and all(isinstance(x["id"], int) for x in r["cdn"]), r)
    ids = [x["id"] for x in r["cdn"]]
    r = api(emu, "GET", "/cdn/urls", tok=tok)
    check(U + "cdn.list_urls", r.ok("cdn") and [x["id"] for x in r["cdn"]] == ids, r)
    r = api(emu, "DELETE", "/cdn/urls/%d" % ids[0], tok=tok)
    check(U + "cdn.delete_urls: 204", r.status == 204 and r.body == b"", r)
    r = api(emu, "DELETE", "/cdn/urls/%d" % ids[0], tok=tok)
    check(U + "cdn.delete_urls again: 404", r.err(404), r)
    r = api(emu, "GET", "/cdn/urls", tok=tok)
    check(U + "list after delete", r.status == 200 and [x["id"] for x in r["cdn"]] == ids[1:], r)
    for label, body in (("empty", {"urls": []}), ("not a URL", {"urls": ["ftp://x/y"]}),
                        ("a string", {"urls": "http://a.example.com/"}), ("absent", {})):
        r = api(emu, "POST", "/cdn/urls", body, tok=tok)
        check(U + "cdn.create_urls %s: 400" % label, r.err(400, "urls"), r)


def flush_tests(emu):
    F = "flush "
    emu.reset()
    tok = token(emu)
    body = {"domain": {"domain_id": 206801, "urls": ["http://pl-0001.example.com/a.js",
                                                     "https://pl-0001.example.com/b.css"],
                       "dirs": ["http://pl-0001.example.com/img/"]}}
    r = api(emu, "PUT", "/cdn/cache_flush", body, tok=tok)
    check(F + "cdn.cache_flush", r.ok("cdn") and r["cdn"] == {"domain_id": 206801, "urls": 2,
                                                             "dirs": 1, "status": "submitted"}, r)
    s = emu.stats()
    check(F + "recorded in refreshed_urls / refreshed_dirs",
          s["refreshed_urls"] == body["domain"]["urls"] and
          s["refreshed_dirs"] == body["domain"]["dirs"], s)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 206802, "dirs": [
        "http://pl-0002.example.com/"]}}, tok=tok)
    check(F + "dirs only", r.status == 200 and r["cdn"]["urls"] == 0 and r["cdn"]["dirs"] == 1, r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 206801, "urls": [
        "http://pl-0001.example.com/ok", "http://evil.example.com/x"]}}, tok=tok)
    check(F + "a foreign host: 400 naming it", r.err(400, "http://evil.example.com/x"), r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 206801, "dirs": [
        "http://pl-0002.example.com/d/"]}}, tok=tok)
    check(F + "a dir of another domain: 400", r.err(400, "pl-0002.example.com/d/"), r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 206801, "dirs": [
        "http://pl-0001.example.com/d"]}}, tok=tok)
    check(F + "a dir without /: 400", r.err(400, "must end with /"), r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 5, "urls": [
        "http://pl-0001.example.com/a"]}}, tok=tok)
    check(F + "unknown domain_id: 404", r.err(404), r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": 206801}}, tok=tok)
    check(F + "neither urls nor dirs: 400", r.err(400, "urls"), r)
    r = api(emu, "PUT", "/cdn/cache_flush", {"domain": {"domain_id": "206801", "urls": [
        "http://pl-0001.example.com/a"]}}, tok=tok)
    check(F + "domain_id a string: 400", r.err(400, "domain_id"), r)
    r = api(emu, "POST", "/cdn/cache_flush", body, tok=tok)
    check(F + "POST: 405", r.err(405) and r.headers.get("Allow") == "PUT", r)
    s = emu.stats()
    check(F + "refused calls record nothing", len(s["refreshed_urls"]) == 2 and
          len(s["refreshed_dirs"]) == 2 and s["executed"].get("cdn.cache_flush") == 2, s)

    # request_log
    r = api(emu, "GET", "/cdn/request_log?domain_id=206801&type=access", tok=tok)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    check(F + "cdn.request_log (today)", r.ok("cdn") and len(r["cdn"]) == 1 and
          r["cdn"][0]["url"] == "http://pl-0001.example.com/log/%s.gz" % today and
          r["cdn"][0]["domain_id"] == 206801 and r["cdn"][0]["type"] == "access" and
          set(r["cdn"][0]) == {"domain_id", "type", "url", "start_at", "end_at"}, r)
    r = api(emu, "GET", "/cdn/request_log?domain_id=206802&type=access"
            "&start_at=2024-03-01T10:00:00&end_at=2024-03-03T05:00:00.250000", tok=tok)
    check(F + "cdn.request_log over three days", r.status == 200 and
          [x["url"] for x in r["cdn"]] == ["http://pl-0002.example.com/log/2024-03-0%d.gz" % i
                                           for i in (1, 2, 3)] and
          r["cdn"][0]["start_at"] == "2024-03-01T10:00:00" and
          r["cdn"][2]["end_at"] == "2024-03-03T05:00:00", r)
    for label, q, text in (("no domain_id", "type=access", "domain_id"),
                           ("domain_id not an integer", "domain_id=abc&type=access", "domain_id"),
                           ("no type", "domain_id=206801", "type"),
                           ("empty type", "domain_id=206801&type=", "type"),
                           ("bad start_at", "domain_id=206801&type=a&start_at=2024-03-01",
                            "start_at"),
                           ("bad end_at", "domain_id=206801&type=a&end_at=2024-03-01%2010:00:00",
                            "end_at"),
                           ("end before start", "domain_id=206801&type=a&start_at="
                            "2024-03-02T00:00:00&end_at=2024-03-01T00:00:00", "end_at"),
                           ("unknown parameter", "domain_id=206801&type=a&page=2", "page")):
        r = api(emu, "GET", "/cdn/request_log?" + q, tok=tok)
        check(F + "cdn.request_log %s: 400" % label, r.err(400, text), r)
    r = api(emu, "GET", "/cdn/request_log?domain_id=1&type=a", tok=tok)
    check(F + "cdn.request_log unknown domain: 404", r.err(404), r)


def prefetch_tests(emu):
    P = "prefetch "
    emu.reset()
    tok = token(emu)
    urls = ["http://pl-0001.example.com/big.iso", "https://pl-0003.example.com/v.mp4"]
    r = api(emu, "PUT", "/cdn/prefetch", {"urls": urls}, tok=tok)
    rid = (r.get("cdn") or {}).get("request_id", "")
    check(P + "cdn.prefetch", r.ok("cdn") and re.match(r"^pf-[0-9a-f]{12}$", rid) and
          r["cdn"]["count"] == 2, r)
    check(P + "recorded in prefetched_urls", emu.stats()["prefetched_urls"] == urls)
    r = api(emu, "GET", "/cdn/prefetch/" + rid, tok=tok)
    check(P + "cdn.prefetch_query: running", r.ok("cdn") and r["cdn"] == {
        "request_id": rid, "status": "running", "urls": [{"url": u, "status": "running"}
                                                        for u in urls]}, r)
    r = api(emu, "PUT", "/cdn/prefetch", {"urls": ["http://pl-0001.example.com/a",
                                                   "http://other.example.com/b"]}, tok=tok)
    check(P + "a URL not on the tenant's domains: 400 naming it",
          r.err(400, "http://other.example.com/b"), r)
    r = api(emu, "PUT", "/cdn/prefetch", {"urls": []}, tok=tok)
    check(P + "no URLs: 400", r.err(400, "urls"), r)
    r = api(emu, "GET", "/cdn/prefetch/pf-000000000000", tok=tok)
    check(P + "cdn.prefetch_query unknown: 404", r.err(404), r)
    ops = token(emu, user="ops", password="opspass", tenant="ops")
    r = api(emu, "GET", "/cdn/prefetch/" + rid, tok=ops)
    check(P + "another tenant's request: 404", r.err(404), r)
    r = api(emu, "PUT", "/cdn/prefetch", {"urls": ["http://pl-0001.example.com/a"]}, tok=ops)
    check(P + "another tenant's domain: 400", r.err(400), r)
    time.sleep(0.45)
    r = api(emu, "GET", "/cdn/prefetch/" + rid, tok=tok)
    check(P + "cdn.prefetch_query: done after --task-seconds", r.status == 200 and
          r["cdn"]["status"] == "done" and all(u["status"] == "done" for u in r["cdn"]["urls"]), r)
    check(P + "refused calls record nothing", emu.stats()["prefetched_urls"] == urls)


def ticket_tests(emu):
    T = "ticket "
    emu.reset()
    tok = token(emu)
    r = api(emu, "GET", "/ticket", tok=tok)
    t0 = (r.get("ticket") or [{}])[0]
    check(T + "ticket.list: the starting ticket", r.ok("ticket") and len(r["ticket"]) == 1 and
          t0.get("id") == "tk-8b47870c" and t0.get("user_id") == DEMO_UID and
          set(t0) == {"id", "summary", "description", "status", "user_id", "created_at"}, r)
    r = api(emu, "GET", "/ticket/tk-8b47870c", tok=tok)
    check(T + "ticket.get", r.ok("ticket") and r["ticket"] == t0, r)
    r = api(emu, "GET", "/ticket/tk-00000000", tok=tok)
    check(T + "ticket.get unknown: 404", r.err(404), r)
    r = api(emu, "POST", "/ticket", {"summary": "Purge stuck", "description": "Since 10:00"},
            tok=tok)
    t1 = r.get("ticket") or {}
    check(T + "ticket.create", r.ok("ticket") and re.match(r"^tk-[0-9a-f]{8}$", t1.get("id", ""))
          and t1["summary"] == "Purge stuck" and t1["description"] == "Since 10:00" and
          t1["status"] == "new" and t1["user_id"] == DEMO_UID and
          bool(PLAIN_RX.match(t1["created_at"])), r)
    for label, body in (("empty summary", {"summary": "", "description": "d"}),
                        ("no description", {"summary": "s"}),
                        ("unknown key", {"summary": "s", "description": "d", "x": 1})):
        r = api(emu, "POST", "/ticket", body, tok=tok)
        check(T + "ticket.create %s: 400" % label, r.err(400), r)
    r = api(emu, "GET", "/ticket", tok=tok)
    check(T + "ticket.list: both", r.status == 200 and [t["id"] for t in r["ticket"]] ==
          ["tk-8b47870c", t1["id"]], r)
    r = api(emu, "GET", "/ticket/%s/list" % DEMO_UID, tok=tok)
    check(T + "ticket.list by user", r.ok("ticket") and len(r["ticket"]) == 2, r)
    r = api(emu, "GET", "/ticket/u-nobody/list", tok=tok)
    check(T + "ticket.list by another user: []", r.ok("ticket") and r["ticket"] == [], r)
    r = api(emu, "PUT", "/ticket/" + t1["id"], {"status": "accepted"}, tok=tok)
    check(T + "ticket.update accepted", r.ok("ticket") and r["ticket"]["status"] == "accepted", r)
    r = api(emu, "PUT", "/ticket/" + t1["id"], {"status": "closed"}, tok=tok)
    check(T + "ticket.update closed", r.status == 200 and r["ticket"]["status"] == "closed", r)
    r = api(emu, "PUT", "/ticket/" + t1["id"], {"status": "reopened"}, tok=tok)
    check(T + "ticket.update bad status: 400", r.err(400, "status"), r)
    r = api(emu, "PUT", "/ticket/tk-00000000", {"status": "closed"}, tok=tok)
    check(T + "ticket.update unknown: 404", r.err(404), r)
    r = api(emu, "GET", "/ticket/reply/tk-8b47870c", tok=tok)
    rp = r.get("ticket") or []
    check(T + "ticket.list_reply: the starting reply", r.ok("ticket") and len(rp) == 1 and
          set(rp[0]) == {"id", "ticket_id", "content", "created_at"} and
          rp[0]["ticket_id"] == "tk-8b47870c", r)
    r = api(emu, "POST", "/ticket/reply/tk-8b47870c", {"content": "Still slow."}, tok=tok)
    check(T + "ticket.reply", r.ok("ticket") and r["ticket"]["ticket_id"] == "tk-8b47870c" and
          r["ticket"]["content"] == "Still slow." and bool(r["ticket"].get("id")), r)
    r = api(emu, "GET", "/ticket/reply/tk-8b47870c", tok=tok)
    check(T + "ticket.list_reply: two", r.status == 200 and [x["content"] for x in r["ticket"]] ==
          ["We are looking into it.", "Still slow."], r)
    r = api(emu, "POST", "/ticket/reply/tk-8b47870c", {"content": ""}, tok=tok)
    check(T + "ticket.reply empty: 400", r.err(400, "content"), r)
    r = api(emu, "POST", "/ticket/reply/tk-00000000", {"content": "x"}, tok=tok)
    check(T + "ticket.reply unknown ticket: 404", r.err(404), r)
    r = api(emu, "GET", "/ticket/reply/tk-00000000", tok=tok)
    check(T + "ticket.list_reply unknown ticket: 404", r.err(404), r)

    # route precedence: /ticket/reply/{id} over /ticket/{user_id}/list and /ticket/{id}
    emu.reset()
    tok = token(emu)
    api(emu, "GET", "/ticket/reply/list", tok=tok)          # reply route, ticket "list"
    api(emu, "GET", "/ticket/reply", tok=tok)               # ticket.get of "reply"
    api(emu, "GET", "/ticket/reply/list/list", tok=tok)     # nothing
    r = api(emu, "DELETE", "/ticket/reply/tk-8b47870c", tok=tok)
    check(T + "route: DELETE /ticket/reply/{id}: 405, Allow GET, POST", r.err(405) and
          r.headers.get("Allow") == "GET, POST", r)
    r = api(emu, "POST", "/ticket/%s/list" % DEMO_UID, {"content": "x"}, tok=tok)
    check(T + "route: POST /ticket/{user}/list: 405", r.err(405) and r.headers.get("Allow") ==
          "GET", r)
    log = emu.stats()["request_log"]
    check(T + "route precedence (actions as logged)", [e["action"] for e in log[1:]] == [
        "ticket.list_reply", "ticket.get", None, None, None], [e["action"] for e in log])
    check(T + "route: unmatched path 404", log[3]["error"] == "Not Found" and
          log[1]["error"] == "Not Found", log)


def token_life_tests(emu):
    L = "token-life "
    emu.reset()
    emu.config(token_seconds=1, token_stated_seconds=120)
    try:
        cfg = emu.control("GET", "config")
        check(L + "config shows token_seconds / token_stated_seconds",
              cfg.get("token_seconds") == 1 and cfg.get("token_stated_seconds") == 120, cfg)
        r = login(emu)
        tk = r["access"]["token"]
        stated = ts_of(tk["expires"]) - ts_of(tk["issued_at"])
        check(L + "expires = issued + token_stated_seconds", 119 <= stated <= 120, tk)
        emu.config(token_stated_seconds=None)
        tk2 = login(emu)["access"]["token"]
        check(L + "token_stated_seconds null: expires = issued + token_seconds",
              0 <= ts_of(tk2["expires"]) - ts_of(tk2["issued_at"]) <= 1, tk2)
        r = api(emu, "GET", "/cdn/domain", tok=tk["id"])
        check(L + "a fresh token works", r.status == 200, r)
        time.sleep(1.2)
        r = api(emu, "GET", "/cdn/domain", tok=tk["id"])
        check(L + "after token_seconds: 401 (despite the stated expiry)", r.status == 401 and
              r.json == UNAUTH, r)
        e = emu.stats()["request_log"][-1]
        check(L + "logged token_status expired", e["token_status"] == "expired", e)
        r = emu.control("POST", "config", {"token_seconds": -1})
        check(L + "config token_seconds < 0: 400", r["_status"] == 400, r)
        r = emu.control("POST", "config", {"token_stated_seconds": "x"})
        check(L + "config token_stated_seconds a string: 400", r["_status"] == 400, r)
    finally:
        emu.config(token_seconds=3600, token_stated_seconds=None)

    # --skew: the server clock of issued_at / expires
    emu.config(skew=7200)
    try:
        tk = login(emu)["access"]["token"]
        check(L + "--skew moves issued_at", abs(ts_of(tk["issued_at"]) - time.time() - 7200) < 5,
              tk)
        r = api(emu, "GET", "/cdn/domain", tok=tk["id"])
        check(L + "a token issued under skew works", r.status == 200, r)
    finally:
        emu.config(skew=0)

    # revoke
    emu.reset()
    a, b, c = token(emu), token(emu), token(emu, user="ops", password="opspass", tenant="ops")
    r = emu.control("POST", "revoke", {"token": a})
    check(L + "revoke one: {revoked: 1}", r == {"revoked": 1, "_status": 200}, r)
    r = api(emu, "GET", "/cdn/domain", tok=a)
    check(L + "revoked token: 401", r.status == 401 and r.json == UNAUTH, r)
    check(L + "logged token_status revoked",
          emu.stats()["request_log"][-1]["token_status"] == "revoked")
    r = api(emu, "GET", "/cdn/domain", tok=b)
    check(L + "another token still works", r.status == 200, r)
    r = emu.control("POST", "revoke", {"token": a})
    check(L + "revoke it again: 0", r.get("revoked") == 0, r)
    tl = emu.control("GET", "tokens")
    check(L + "GET /__emu/tokens", tl["_status"] == 200 and len(tl["tokens"]) == 3 and
          [t["live"] for t in tl["tokens"]] == [False, True, True] and
          [t["tenant"] for t in tl["tokens"]] == ["demo", "demo", "ops"], tl)
    r = emu.control("POST", "revoke", {})
    check(L + "revoke all live: 2", r.get("revoked") == 2, r)
    r = api(emu, "GET", "/cdn/domain", tok=c)
    check(L + "after revoke all: 401", r.status == 401, r)
    r = emu.control("POST", "revoke", {"tok": "x"})
    check(L + "revoke with an unknown field: 400", r["_status"] == 400, r)
    d = token(emu)
    check(L + "a new login after revoke works", api(emu, "GET", "/ticket", tok=d).status == 200)
    emu.reset()
    r = api(emu, "GET", "/ticket", tok=d)
    check(L + "/__emu/reset clears tokens", r.status == 401, r)
    check(L + "after reset: /__emu/tokens empty", emu.control("GET", "tokens")["tokens"] == [])


def fault_tests(emu):
    X = "faults "
    emu.reset()
    tok = token(emu)
    emu.faults({"kind": "http500", "action": "cdn.list"})
    r = api(emu, "GET", "/cdn/domain/206801", tok=tok)
    check(X + "http500 for cdn.list passes cdn.get by", r.status == 200, r)
    r = api(emu, "GET", "/cdn/domain", tok=tok)
    check(X + "http500 on cdn.list by action name: 500 envelope", r.err(500), r)
    r = api(emu, "GET", "/cdn/domain", tok=tok)
    check(X + "used up: next cdn.list 200", r.status == 200, r)
    emu.faults({"kind": "http503", "action": "cdn.list"})
    r = api(emu, "GET", "/cdn/domain")
    check(X + "no token: 401 before a vendor fault", r.status == 401, r)
    r = api(emu, "GET", "/cdn/domain", tok=tok)
    check(X + "http503 after a valid token: 503 envelope", r.err(503), r)
    emu.faults({"kind": "throttle", "action": "ticket.create"})
    r = api(emu, "POST", "/ticket", {"summary": "s", "description": "d"}, tok=tok)
    check(X + "throttle: 429 envelope, Retry-After", r.err(429) and
          r.headers.get("Retry-After") == "1", r)
    emu.faults({"kind": "stale", "action": "cdn.get"})
    r = api(emu, "GET", "/cdn/domain/206801", tok=tok)
    check(X + "stale: 401 envelope", r.status == 401 and r.json == UNAUTH, r)
    emu.faults({"kind": "http500", "action": "tokens"})
    r = login(emu)
    check(X + "http500 on tokens", r.err(500), r)
    emu.faults({"kind": "close", "action": "tokens"})
    r = login(emu)
    check(X + "close on tokens: no answer", dropped(r), r)
    emu.faults({"kind": "badjson", "action": "cdn.flow"})
    r = api(emu, "GET", "/cdn/flow/206801", tok=tok)
    check(X + "badjson on cdn.flow", r.status == 200 and r.json is None, r)
    emu.faults({"kind": "html", "action": "cdn.flow"})
    r = api(emu, "GET", "/cdn/flow/206801", tok=tok)
    check(X + "html on cdn.flow: 502 text/html", r.status == 502 and
          r.headers.get("Content-Type") == "text/html", r)
    emu.faults({"kind": "drop_after", "action": "cdn.create"})
    r = api(emu, "POST", "/cdn/domain", {"domain": {"domain": "drop.example.com", "origin_ips":
                                                    ["1.1.1.1"], "areas": ["cn"]}}, tok=tok)
    check(X + "drop_after on cdn.create: no answer", dropped(r), r)
    r = api(emu, "POST", "/cdn/domain", {"domain": {"domain": "drop.example.com", "origin_ips":
                                                    ["1.1.1.1"], "areas": ["cn"]}}, tok=tok)
    check(X + "... but it was executed: the resend is 409", r.err(409), r)
    emu.faults({"kind": "no_task_id"})
    r = api(emu, "PUT", "/cdn/prefetch", {"urls": ["http://pl-0002.example.com/x"]}, tok=tok)
    check(X + "no_task_id on cdn.prefetch: count, no request_id", r.status == 200 and
          r["cdn"] == {"count": 1}, r)
    r = emu.control("POST", "faults", {"faults": [{"kind": "no_task_id", "action": "cdn.list"}]})
    check(X + "no_task_id naming another call: refused", r["_status"] == 400, r)
    s = emu.stats()
    check(X + "stats", s["faults_pending"] == [] and s["dropped"] == 1 and
          s["prefetched_urls"] == [] and s["executed"].get("cdn.create") == 1 and
          "cdn.prefetch" not in s["executed"] and s["by_action"].get("cdn.list") == 4 and
          s["token_rejected"] == 2, s)


def latency_tests():
    emu = Emu(["--latency", "0.2", "--pl-domains", "2"])
    try:
        r = login(emu)
        check("latency: applies to /v2.0/tokens", r.status == 200 and r.elapsed >= 0.2, r.elapsed)
        tok = r["access"]["token"]["id"]
        r = api(emu, "GET", "/cdn/domain", tok=tok)
        check("latency: applies to the REST API", r.status == 200 and r.elapsed >= 0.2, r.elapsed)
        check("--pl-domains 2", [d["domain"] for d in r["cdn"]] == ["pl-0001.example.com",
                                                                    "pl-0002.example.com"], r)
        r = emu.control("GET", "stats")
        check("control requests not delayed: stats fine", r["_status"] == 200)
    finally:
        emu.stop()


def main():
    t0 = time.monotonic()
    guarded(registry_tests)
    emu = Emu(["--task-seconds", "0.4"])
    try:
        for fn in (keystone_tests, catalog_tests, rest_auth_tests, domain_tests, url_tests,
                   flush_tests, prefetch_tests, ticket_tests, token_life_tests, fault_tests):
            guarded(fn, emu)
    finally:
        emu.stop()
    guarded(latency_tests)
    return selftestlib.finish("selftest-plcloud", t0)


if __name__ == "__main__":
    sys.exit(main())
