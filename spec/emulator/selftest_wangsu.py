#!/usr/bin/env python3
"""Self-test of cdnemu's Wangsu / ChinaNetCenter vendor (stdlib only).
Run: python3 spec/emulator/selftest_wangsu.py

Checks the emulator's CNC-HMAC-SHA256 and legacy Basic functions against the
known vectors (two AK/SK, one Basic) and its table, then starts
`cdnemu.py --vendor wangsu` on a random loopback port and drives it with a
signer written here (checked first against the same vectors): both
authentication schemes and their refusals, routing, the table-driven
parameter checks, the report answers, ccm purge / prefetch tasks, queries and
quotas, faults, config, the request log, and every one of the 38 table entries
called with its required fields.
Prints `selftest-wangsu: N passed, N failed`; exit status 1 on failure.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
from urllib.parse import quote, unquote

import selftestlib
from selftestlib import HERE, check, dropped, guarded, send, sha256_hex

TABLE = os.path.join(HERE, "tables", "wangsu.txt")
AK, SK = "wangsu-test-ak", "wangsu-test-sk"
USER, APIKEY = "wangsu-user", "wangsu-apikey"
UUID_RX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# the vectors (AK testAK / SK testSK, timestamp 1700000000; Basic testuser / testapikey)
V_POST_PATH = "/api/report/domainflow"
V_POST_QUERY = "dateFrom=2024-01-01T00:00:00+08:00&dateTo=2024-01-02T00:00:00+08:00&type=daily"
V_POST_BODY = b'{"domain-list": {"domain-name": ["www.example.com"]}}'
V_POST_CREQ = ("POST\n/api/report/domainflow\n\ncontent-type:application/json\n"
               "host:open.chinanetcenter.com\n\ncontent-type;host\n"
               "ed62bd686f063e791a4bc084f1afeb8a9b984bbf76f8c0071e7a3326c946e361")
V_POST_STS = ("CNC-HMAC-SHA256\n1700000000\n"
              "4e2c7c9474a3929ebab56550abde8f4361badaaf6afa9e8b765f9793076c2d3b")
V_POST_SIG = "59531ceb688975c1b68609c22bb67ef460cc1fe80b4a68686f7cc0f253372f1d"
V_GET_PATH = "/api/report/flow"
V_GET_QUERY = ("datefrom=2024-01-01T00:00:00%2B08:00&dateto=2024-01-02T00:00:00%2B08:00"
               "&type=daily")
V_GET_SIG = "594884adc52eb98980957650bb93b310fba4a30e07ef0746806470b716af29bf"
V_HOST = "open.chinanetcenter.com"
V_DATE = "Thu, 01 Jan 2015 00:00:00 GMT"
V_BASIC_PASSWORD = "/98DiKVEmZsk2CuJDtHeS+aARGE="
V_BASIC_AUTH = "Basic dGVzdHVzZXI6Lzk4RGlLVkVtWnNrMkN1SkR0SGVTK2FBUkdFPQ=="


# --------------------------------------------------------------------------
# the test's own signers (not imported from cdnemu)
# --------------------------------------------------------------------------
def cnc_sign(secret, method, path, query, headers, signed, body, ts):
    """-> (signature, canonical request, string to sign).  headers: any case."""
    low = {k.lower(): v for k, v in headers.items()}
    q = "" if method == "POST" else unquote(query)
    canon = "".join("%s:%s\n" % (n, low.get(n, "").strip().lower()) for n in signed.split(";"))
    payload = body if method in ("POST", "PUT") else b""
    creq = "\n".join([method, path, q, canon, signed, sha256_hex(payload)])
    sts = "CNC-HMAC-SHA256\n%s\n%s" % (ts, sha256_hex(creq))
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest(), creq, sts


def basic_auth(user, apikey, date):
    pw = base64.b64encode(hmac.new(apikey.encode(), date.encode(), hashlib.sha1).digest()).decode()
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def http_date(ts=None):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() if ts is None
                                                                   else ts))


def vector_tests():
    ws = selftestlib.emulator_module("vendor_wangsu")
    V = "vector "
    hd = {"content-type": "application/json", "host": V_HOST}
    creq = ws.aksk_canonical_request("POST", V_POST_PATH, V_POST_QUERY, hd, "content-type;host",
                                     V_POST_BODY)
    check(V + "POST canonical request (emulator)", creq == V_POST_CREQ, creq)
    sts = ws.aksk_string_to_sign(1700000000, creq)
    check(V + "POST string to sign (emulator)", sts == V_POST_STS, sts)
    check(V + "POST 59531ceb (emulator)", ws.aksk_signature("testSK", sts) == V_POST_SIG)
    creq = ws.aksk_canonical_request("GET", V_GET_PATH, V_GET_QUERY, hd, "content-type;host", b"")
    check(V + "GET query decoded, not re-sorted (emulator)",
          creq.split("\n")[2] == "datefrom=2024-01-01T00:00:00+08:00&dateto=2024-01-02T00:00:00"
          "+08:00&type=daily" and creq.endswith(sha256_hex(b"")), creq)
    check(V + "GET 594884ad (emulator)", ws.aksk_signature(
        "testSK", ws.aksk_string_to_sign(1700000000, creq)) == V_GET_SIG)
    a = ws.parse_aksk_authorization(ws.aksk_authorization("testAK", "content-type;host",
                                                           V_POST_SIG))
    check(V + "Authorization round trip", a == {"ak": "testAK", "signed": "content-type;host",
                                                "names": ["content-type", "host"],
                                                "signature": V_POST_SIG}, a)
    check(V + "Basic password (emulator)", ws.basic_password("testapikey", V_DATE) ==
          V_BASIC_PASSWORD)
    check(V + "Basic Authorization (emulator)", ws.basic_authorization(
        "testuser", "testapikey", V_DATE) == V_BASIC_AUTH)
    check(V + "Basic parse", ws.parse_basic_authorization(V_BASIC_AUTH) ==
          ("testuser", V_BASIC_PASSWORD))
    check(V + "RFC 1123 Date", ws.parse_http_date(V_DATE) == 1420070400)
    # the test's signer, against the same vectors
    sig, creq, sts = cnc_sign("testSK", "POST", V_POST_PATH, V_POST_QUERY, hd,
                              "content-type;host", V_POST_BODY, 1700000000)
    check(V + "POST (test signer)", sig == V_POST_SIG and creq == V_POST_CREQ and
          sts == V_POST_STS, (sig, creq))
    check(V + "GET (test signer)", cnc_sign("testSK", "GET", V_GET_PATH, V_GET_QUERY, hd,
                                            "content-type;host", b"", 1700000000)[0] == V_GET_SIG)
    check(V + "Basic (test signer)", basic_auth("testuser", "testapikey", V_DATE) == V_BASIC_AUTH)

    # the table the emulator reads
    t = ws.load_table(TABLE)
    report = [a for a in t.values() if not a.ccm]
    check("table: 38 entries, 32 report + 6 ccm", len(t) == 38 and len(report) == 32, len(t))
    with open(TABLE, encoding="utf-8") as f:
        first = f.readline()
    check("table: first line names the source", first.startswith("#") and
          "the seed document's report API table and the official SDK request models" in first,
          first)
    check("table: one GET (Querysumuptrafficunderaccount)",
          [a.name for a in t.values() if a.method == "GET"] == ["Querysumuptrafficunderaccount"])
    dt = t["Querydomaintotaltraffic"]
    check("table: Querydomaintotaltraffic", dt.uri == "/api/report/domainflow" and
          [(f.name, f.type, f.place, f.required) for f in dt.fields] == [
              ("dateFrom", "str", "q", True), ("dateTo", "str", "q", True),
              ("type", "str", "q", False), ("domain-list", "struct", "b", True)] and
          [(m.name, m.type, m.required) for m in dt.fields[3].members] ==
          [("domain-name", "str[]", True)], dt.fields)
    dd = t["Querydirectorybandwidthtrafficunderlivestreamdomain"]
    check("table: a list of structures", dd.by_name["domainDir"].type == "struct[]" and
          [m.name for m in dd.by_name["domainDir"].members] == ["domain", "dir"])
    check("table: ccm entries", {a.name: (a.method, a.uri) for a in t.values() if a.ccm} == {
        "PurgeItemIdReceiver": ("POST", "/ccm/purge/ItemIdReceiver"),
        "PurgeItemIdQuery": ("POST", "/ccm/purge/ItemIdQuery"),
        "FetchItemIdReceiver": ("POST", "/ccm/fetch/ItemIdReceiver"),
        "FetchItemIdQuery": ("POST", "/ccm/fetch/ItemIdQuery"),
        "PurgeQuota": ("POST", "/ccm/purge/quota"),
        "PrefetchQuota": ("POST", "/ccm/prefetch/quota")})
    check("table: every API taking dataInterval has its values",
          set(ws.INTERVALS) == {n for n, a in t.items() if "dataInterval" in a.by_name},
          sorted(set(ws.INTERVALS) ^ {n for n, a in t.items() if "dataInterval" in a.by_name}))
    try:
        ws.parse_field("foo")
        check("table: a field without (q)/(b) is refused", False)
    except ValueError:
        check("table: a field without (q)/(b) is refused", True)


# --------------------------------------------------------------------------
# emulator process and requests
# --------------------------------------------------------------------------
class Result(selftestlib.Result):
    @property
    def rid(self):
        return self.headers.get("x-cnc-request-id") if self.headers else None

    def err(self, status, code, name=None):
        """A gateway error {"code", "message"} (message naming `name`)."""
        return (self.status == status and isinstance(self.json, dict) and
                self.json.get("code") == code and isinstance(self.json.get("message"), str) and
                (name is None or name in self.json["message"]))

    def ccm_err(self, status, name=None):
        """A ccm error {"Code": 0, "Message"} (naming `name`)."""
        return (self.status == status and isinstance(self.json, dict) and
                self.json.get("Code") == 0 and isinstance(self.json.get("Message"), str) and
                (name is None or name in self.json["Message"]))


class Emu(selftestlib.Emu):
    result_class = Result

    def __init__(self, extra=()):
        super().__init__("wangsu", extra, tmp_prefix="cdnemu-wangsu-selftest-")

    def control(self, method, name, body=None):
        status, out = self.control_status(method, name, body)
        out["_status"] = status
        return out


def call(emu, method, path, body=None, query=None, ak=AK, sk=SK, ts=None,
         signed="content-type;host", headers=None, raw=None, sign_host=None, basic=None,
         date=None, conn=None, tamper=None, omit=()):
    """A signed request.  body: a JSON value (or raw bytes); query: a dict
    (percent-encoded with quote(safe="")) or a raw string; basic: (user,
    apikey) for the legacy scheme instead of AK/SK."""
    if isinstance(query, dict):
        query = "&".join("%s=%s" % (quote(k, safe=""), quote(str(v), safe=""))
                         for k, v in query.items())
    query = query or ""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    hd = {"Host": emu.host, "Content-Type": "application/json", "Accept": "application/json"}
    if basic:
        d = date or http_date()
        hd["Date"] = d
        hd["Authorization"] = basic_auth(basic[0], basic[1], d)
    else:
        ts = str(int(time.time())) if ts is None else str(ts)
        hd.update({"x-cnc-auth-method": "AKSK", "x-cnc-accessKey": ak, "x-cnc-timestamp": ts})
        signhd = dict(hd)
        if sign_host is not None:
            signhd["Host"] = sign_host
        sig = cnc_sign(sk, method, path, query, signhd, signed, data, ts)[0]
        hd["Authorization"] = "CNC-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
            ak, signed, sig)
    hd.update(headers or {})
    for k in omit:
        hd.pop(k, None)
    if tamper is not None:
        data = tamper
    return send(emu, method, path + ("?" + query if query else ""),
                data if method != "GET" or data else None, hd, conn=conn)


def bj(offset=0):
    """yyyy-MM-ddTHH:mm:ss+08:00, offset seconds from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600 + offset))


def cst(offset=0):
    """yyyy-MM-dd HH:mm:ss (UTC+8), offset seconds from now."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600 + offset))


def flow_range():
    return {"dateFrom": bj(-3600), "dateTo": bj()}


def domainflow(emu, domains=("www.example.com",), **kw):
    q = {"dateFrom": bj(-3600), "dateTo": bj(), "type": "fiveminutes"}
    q.update(kw.pop("q", {}))
    return call(emu, "POST", "/api/report/domainflow", {"domain-list": {"domain-name":
                                                                         list(domains)}},
                query=q, **kw)


def isp(emu, body=None, **kw):
    b = dict(flow_range(), domain=["www.example.com"])
    b.update(body or {})
    return call(emu, "POST", "/api/report/flow/isp-province", b, **kw)


# --------------------------------------------------------------------------
# tests against the running emulator
# --------------------------------------------------------------------------
def auth_tests(emu):
    A = "auth "
    emu.reset()
    r = domainflow(emu)
    check(A + "AK/SK POST accepted", r.status == 200 and isinstance(r.get("flow-summary"), int)
          and len(r.get("flow-data", [])) == 13, r)
    check(A + "x-cnc-request-id on a success", bool(UUID_RX.match(r.rid or "")), r.rid)
    check(A + "answer Content-Type", r.headers.get("Content-Type", "").startswith(
        "application/json"), r.headers)
    r = call(emu, "GET", "/api/report/flow", query={"datefrom": bj(-7200), "dateto": bj(),
                                                    "type": "hourly"})
    check(A + "AK/SK GET accepted", r.status == 200 and isinstance(r.get("flow-summary"), str)
          and len(r["flow-data"]) in (2, 3) and
          re.match(r"^\d{4}-\d\d-\d\d \d\d$", r["flow-data"][0]["timestamp"]), r)
    r = call(emu, "GET", "/api/report/flow", query="datefrom=%s&dateto=%s" % (
        bj(-7200), bj()))
    check(A + "GET with a literal + (a space to the server) refused naming datefrom",
          r.err(400, "InvalidParameter", "datefrom"), r)
    r = domainflow(emu, ak="demo-ak", sk="demo-sk")
    check(A + "demo-ak / demo-sk accepted", r.status == 200, r)
    r = domainflow(emu, signed="content-type;host;x-cnc-accesskey;x-cnc-timestamp")
    check(A + "more signed headers accepted", r.status == 200, r)

    # refusals
    before = emu.stats()["executed"].get("Querydomaintotaltraffic")
    m = {"domain-list": {"domain-name": ["www.example.com"]}}
    r = call(emu, "POST", "/api/report/domainflow", m, query=flow_range(),
             tamper=json.dumps({"domain-list": {"domain-name": ["x.example.com"]}}).encode())
    check(A + "bad signature (tampered body): 403 SignatureDoesNotMatch",
          r.err(403, "SignatureDoesNotMatch") and bool(UUID_RX.match(r.rid or "")), r)
    s = emu.stats()
    e = s["request_log"][-1]
    check(A + "signature failure counted, sign_detail logged", s["signature_failures"] == 1 and
          e.get("sign_detail", {}).get("canonical_request", "").startswith(
              "POST\n/api/report/domainflow\n\n") and e.get("error") == "SignatureDoesNotMatch"
          and s["executed"].get("Querydomaintotaltraffic") == before, e)
    r = domainflow(emu, sk="wrong-secret")
    check(A + "wrong secret: 403 SignatureDoesNotMatch", r.err(403, "SignatureDoesNotMatch"), r)
    r = domainflow(emu, sign_host="127.0.0.1")
    check(A + "host signed without its port: refused", r.err(403, "SignatureDoesNotMatch"), r)
    r = domainflow(emu, ts=int(time.time()) - 400)
    check(A + "stale timestamp: 401 RequestExpired", r.err(401, "RequestExpired"), r)
    r = domainflow(emu, ts=int(time.time()) + 400)
    check(A + "future timestamp: 401 RequestExpired", r.err(401, "RequestExpired"), r)
    r = domainflow(emu, ts=int(time.time()) - 250)
    check(A + "timestamp 250 s old: accepted", r.status == 200, r)
    emu.config(skew=1000)
    r = domainflow(emu)
    emu.config(skew=0)
    check(A + "--skew applies: 401 RequestExpired", r.err(401, "RequestExpired"), r)
    r = domainflow(emu, ak="nobody", sk="x")
    check(A + "unknown key: 401 InvalidAccessKey", r.err(401, "InvalidAccessKey"), r)
    r = domainflow(emu, signed="host")
    check(A + "SignedHeaders without content-type: 401 InvalidAuthorization",
          r.err(401, "InvalidAuthorization", "content-type"), r)
    r = domainflow(emu, signed="content-type")
    check(A + "SignedHeaders without host: 401 InvalidAuthorization",
          r.err(401, "InvalidAuthorization"), r)
    r = domainflow(emu, omit=("Authorization",))
    check(A + "no Authorization: 401 MissingAuthorization", r.err(401, "MissingAuthorization"), r)
    r = domainflow(emu, omit=("x-cnc-auth-method",))
    check(A + "no x-cnc-auth-method: 401 InvalidAuthorization",
          r.err(401, "InvalidAuthorization", "x-cnc-auth-method"), r)
    r = domainflow(emu, headers={"x-cnc-accessKey": "demo-ak"})
    check(A + "x-cnc-accessKey not the Credential: 401 InvalidAuthorization",
          r.err(401, "InvalidAuthorization", "x-cnc-accessKey"), r)
    r = domainflow(emu, omit=("x-cnc-timestamp",))
    check(A + "no x-cnc-timestamp: 401 InvalidTimestamp", r.err(401, "InvalidTimestamp"), r)
    r = domainflow(emu, headers={"Authorization": "CNC-HMAC-SHA256 Credential=x"})
    check(A + "malformed Authorization: 401 InvalidAuthorization",
          r.err(401, "InvalidAuthorization"), r)
    r = domainflow(emu, headers={"Authorization": "Bearer abc"})
    check(A + "another scheme: 401 InvalidAuthorization", r.err(401, "InvalidAuthorization"), r)

    # legacy Basic
    r = domainflow(emu, basic=(USER, APIKEY))
    check(A + "Basic accepted on a report API", r.status == 200 and "flow-data" in r.json, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://www.example.com/b"]},
             basic=(USER, APIKEY))
    check(A + "Basic accepted on ccm purge", r.status == 200 and r.get("Code") == 1 and
          r.get("itemId"), r)
    r = call(emu, "POST", "/ccm/purge/quota", basic=(USER, APIKEY))
    check(A + "Basic accepted on a quota endpoint", r.status == 200 and r.get("code") == 0, r)
    r = domainflow(emu, basic=(USER, "wrong-apikey"))
    check(A + "Basic wrong apikey: 403 SignatureDoesNotMatch",
          r.err(403, "SignatureDoesNotMatch"), r)
    r = domainflow(emu, basic=("nobody", APIKEY))
    check(A + "Basic unknown user: 401 InvalidAccessKey", r.err(401, "InvalidAccessKey"), r)
    r = domainflow(emu, basic=(USER, APIKEY), date=http_date(time.time() - 1000))
    check(A + "Basic stale Date: 401 RequestExpired", r.err(401, "RequestExpired"), r)
    r = domainflow(emu, basic=(USER, APIKEY), date=http_date(time.time() - 800))
    check(A + "Basic Date 800 s old: accepted", r.status == 200, r)
    r = domainflow(emu, basic=(USER, APIKEY), date="2024-01-01 00:00:00")
    check(A + "Basic non-RFC 1123 Date: 401 InvalidDate", r.err(401, "InvalidDate"), r)
    r = domainflow(emu, basic=(USER, APIKEY), omit=("Date",))
    check(A + "Basic without Date: 401 InvalidDate", r.err(401, "InvalidDate"), r)
    r = domainflow(emu, headers={"Authorization": "Basic !!!"})
    check(A + "Basic not base64: 401 InvalidAuthorization", r.err(401, "InvalidAuthorization"), r)
    # resends are performed again, and counted
    emu.reset()
    c = emu.conn()
    m, q = {"domain-list": {"domain-name": ["www.example.com"]}}, flow_range()
    ts = int(time.time())
    r1 = call(emu, "POST", "/api/report/domainflow", m, query=q, ts=ts, conn=c)
    r2 = call(emu, "POST", "/api/report/domainflow", m, query=q, ts=ts, conn=c)
    c.close()
    s = emu.stats()
    check(A + "a resend is accepted, counted in signature_reused", r1.status == 200 and
          r2.status == 200 and s["signature_reused"] == 1 and
          s["request_log"][-1]["signature_reused"] is True and s["nonce_reused"] == 0, s)


def route_param_tests(emu):
    P = "params "
    emu.reset()
    r = call(emu, "POST", "/api/report/nothing", {})
    check(P + "unknown URI: 404 NotFound", r.err(404, "NotFound") and bool(
        UUID_RX.match(r.rid or "")), r)
    r = call(emu, "GET", "/api/report/domainflow")
    check(P + "wrong method: 405 MethodNotAllowed, Allow: POST",
          r.err(405, "MethodNotAllowed") and r.headers.get("Allow") == "POST", r)
    r = call(emu, "POST", "/api/report/flow", {})
    check(P + "POST on the GET API: 405, Allow: GET", r.err(405, "MethodNotAllowed") and
          r.headers.get("Allow") == "GET", r)
    r = call(emu, "DELETE", "/ccm/purge/quota")
    check(P + "DELETE: 405", r.err(405, "MethodNotAllowed"), r)
    r = isp(emu, {"foo": 1})
    check(P + "unknown body field: 400 UnknownParameter naming it",
          r.err(400, "UnknownParameter", "foo"), r)
    r = isp(emu, query={"bar": "1"})
    check(P + "unknown query parameter: 400 UnknownParameter naming it",
          r.err(400, "UnknownParameter", "bar"), r)
    r = call(emu, "POST", "/api/report/domainflow", {"domain-list": {"domain-name": ["a.com"]},
                                                     "dateFrom": bj(-60)}, query=flow_range())
    check(P + "a (q) field in the body: 400 UnknownParameter",
          r.err(400, "UnknownParameter", "query string"), r)
    r = call(emu, "POST", "/api/report/flow/isp-province", dict(flow_range()),
             query={"domain": "a.com"})
    check(P + "a (b) field in the query: 400 UnknownParameter",
          r.err(400, "UnknownParameter", "domain"), r)
    r = call(emu, "POST", "/api/report/flow/isp-province", dict(flow_range()))
    check(P + "missing required field: 400 MissingParameter naming it",
          r.err(400, "MissingParameter", "domain"), r)
    r = isp(emu, {"domain": []})
    check(P + "an empty list counts as missing", r.err(400, "MissingParameter", "domain"), r)
    r = call(emu, "POST", "/api/report/domainflow", {"domain-list": {}}, query=flow_range())
    check(P + "missing member: 400 MissingParameter domain-list.domain-name",
          r.err(400, "MissingParameter", "domain-list.domain-name"), r)
    r = call(emu, "POST", "/api/report/domainflow", {"domain-list": {"domain-name": ["a.com"],
                                                                     "x": 1}}, query=flow_range())
    check(P + "unknown member: 400 UnknownParameter domain-list.x",
          r.err(400, "UnknownParameter", "domain-list.x"), r)
    r = call(emu, "POST", "/api/report/domainflow", {"domain-list": {"domain-name": ["a.com"]}},
             query={"dateTo": bj()})
    check(P + "missing query field: 400 MissingParameter dateFrom",
          r.err(400, "MissingParameter", "dateFrom"), r)
    r = call(emu, "POST", "/api/report/flow/isp-province", raw=b'{"domain": [')
    check(P + "body not JSON: 400 MalformedJson", r.err(400, "MalformedJson"), r)
    r = call(emu, "POST", "/api/report/flow/isp-province", raw=b'["a.com"]')
    check(P + "body not an object: 400 MalformedJson", r.err(400, "MalformedJson"), r)
    r = isp(emu, headers={"Content-Type": "application/x-www-form-urlencoded"},
            signed="host;x-cnc-timestamp")
    check(P + "(unsigned content type refused first)", r.err(401, "InvalidAuthorization"), r)
    r = isp(emu, {"domain": "a.com"})
    check(P + "wrong type: 400 InvalidParameter", r.err(400, "InvalidParameter", "domain"), r)
    r = isp(emu, {"domain": ["a.com", 5]})
    check(P + "wrong item type: 400 InvalidParameter domain[1]",
          r.err(400, "InvalidParameter", "domain[1]"), r)
    for bad in ("2024-01-01 00:00:00", "2024-01-01T00:00:00Z", "2024-13-01T00:00:00+08:00",
                "2024-01-01T00:00:00+0800"):
        r = isp(emu, {"dateFrom": bad})
        check(P + "bad date %s: 400 InvalidParameter dateFrom" % bad,
              r.err(400, "InvalidParameter", "dateFrom"), r)
    r = domainflow(emu, q={"dateTo": "2024-01-01"})
    check(P + "bad query date: 400 InvalidParameter dateTo",
          r.err(400, "InvalidParameter", "dateTo"), r)
    r = isp(emu, {"dateFrom": bj(), "dateTo": bj(-3600)})
    check(P + "dateTo before dateFrom: 400", r.err(400, "InvalidParameter", "dateTo"), r)
    r = isp(emu, {"dateFrom": bj(-32 * 86400), "dateTo": bj()})
    check(P + "span over 31 days: 400", r.err(400, "InvalidParameter", "dateTo"), r)
    doms = ["d%02d.example.com" % i for i in range(21)]
    r = isp(emu, {"domain": doms[:20]})
    check(P + "20 domains accepted", r.status == 200 and len(r["result"]) == 20, r)
    r = isp(emu, {"domain": doms})
    check(P + "21 domains: 400 DomainLimitExceeded", r.err(400, "DomainLimitExceeded"), r)
    r = domainflow(emu, doms)
    check(P + "21 domains in domain-list: 400 DomainLimitExceeded",
          r.err(400, "DomainLimitExceeded"), r)
    many = ["d%03d.example.com" % i for i in range(201)]
    r = call(emu, "POST", "/api/report/flow-request", dict(flow_range(), domain=many[:200]))
    check(P + "flow-request: 200 domains accepted", r.status == 200 and
          len(r["result"]) == 200, r)
    r = call(emu, "POST", "/api/report/flow-request", dict(flow_range(), domain=many))
    check(P + "flow-request: 201 domains: 400 DomainLimitExceeded",
          r.err(400, "DomainLimitExceeded"), r)
    r = isp(emu, {"dataInterval": "1m"})
    check(P + "dataInterval 1m on isp-province: 400 naming dataInterval",
          r.err(400, "InvalidParameter", "dataInterval"), r)
    r = isp(emu, {"dataInterval": "10m"})
    check(P + "unknown dataInterval: 400", r.err(400, "InvalidParameter", "dataInterval"), r)
    r = isp(emu, {"dataInterval": "1h", "dateFrom": bj(-3 * 3600)})
    check(P + "dataInterval 1h accepted", r.status == 200 and len(
        r["result"][0]["ispData"][0]["provinceData"][0]["flowData"]) in (3, 4), r)
    r = call(emu, "POST", "/api/report/flow/isp-province/shorttime",
             dict(flow_range(), dataInterval="1m"))
    check(P + "shorttime takes 1m", r.status == 200, r)
    r = domainflow(emu, q={"type": "weekly"})
    check(P + "bad type: 400 naming type", r.err(400, "InvalidParameter", "type"), r)
    r = call(emu, "POST", "/api/report/flow/area", dict(flow_range(), areaCode="cn;xx"))
    check(P + "bad areaCode: 400", r.err(400, "InvalidParameter", "areaCode"), r)
    r = call(emu, "POST", "/api/report/flow/area", dict(flow_range(), areaCode="cn;ov",
                                                        dataInterval="1h"))
    check(P + "flow/area answers flow-summary", r.status == 200 and
          set(r.json) == {"flow-summary", "flow-data"}, r)
    r = call(emu, "POST", "/api/report/flow/stream/detail", dict(
        flow_range(), domainStream=[{"domain": "live.example.com"}], dataType="speed"))
    check(P + "bad dataType: 400", r.err(400, "InvalidParameter", "dataType"), r)
    r = call(emu, "POST", "/api/report/flow/stream/detail", dict(
        flow_range(), domainStream=[{"stream": ["a"]}], dataType="flow"))
    check(P + "missing member of a list item: domainStream[0].domain",
          r.err(400, "MissingParameter", "domainStream[0].domain"), r)
    # Accept-Language
    r = isp(emu, headers={"Accept-Language": "en-US"})
    row = r["result"][0]["ispData"][0] if r.status == 200 else {}
    check(P + "Accept-Language en-US: codes", row.get("isp") == "dx" and
          row["provinceData"][0]["province"] == "beijing", r)
    r = isp(emu)
    row = r["result"][0]["ispData"][0] if r.status == 200 else {}
    check(P + "default (zh-CN): names", row.get("isp") == "电信", r)
    s = emu.stats()
    check(P + "accept_language logged", s["request_log"][-2]["accept_language"] == "en-US" and
          s["request_log"][-1]["accept_language"] is None, s["request_log"][-2:])
    # made-up answers follow the request
    r = call(emu, "POST", "/api/report/flow/isp-province/total", dict(
        flow_range(), domain=["a.com"], dataInterval="5m"))
    check(P + "{code, message, data} answer", r.status == 200 and r.get("code") == "0" and
          r.get("message") == "success" and r["data"][0]["domain"] == "a.com" and
          len(r["data"][0]["detailList"]) in (12, 13), r)


def ccm_tests(emu):
    C = "ccm "
    emu.reset()
    emu.config(task_seconds=1.2)    # wait < 0.6 s, run < 1.2 s, then success
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {
        "urls": ["http://www.example.com/a.jpg", "https://www.example.com/b.jpg"],
        "dirs": ["https://www.example.com/img/"], "urlAction": "delete", "dirAction": "expire"})
    item = r.get("itemId")
    check(C + "purge: Code 1, handle success, itemId", r.status == 200 and r.get("Code") == 1 and
          r.get("Message") == "handle success" and isinstance(item, str) and
          bool(UUID_RX.match(item or "")), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item})
    sts = sorted(x["status"] for x in r.get("resultDetail", []))
    check(C + "query right away: 3 rows waiting", r.status == 200 and r.get("Code") == 1 and
          r.get("count") == 3 and sts == ["wait"] * 3 and r["pageNo"] == 1 and
          r["pageSize"] == 20, r)   # (pageNo: the number of pages)
    rows = r.get("resultDetail", [])
    check(C + "row fields", rows and sorted(rows[0]) == ["beginTime", "createTime", "finishTime",
                                                         "isDir", "rate", "status", "url"] and
          sorted(x["isDir"] for x in rows) == [0, 0, 1] and rows[0]["finishTime"] == "", rows)
    time.sleep(0.8)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item})
    check(C + "then run", [x["status"] for x in r.get("resultDetail", [])] == ["run"] * 3 and
          all(x["beginTime"] and x["rate"] == "50" for x in r["resultDetail"]), r)
    time.sleep(0.6)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item})
    rows = r.get("resultDetail", [])
    check(C + "then success, rate 100, finishTime", [x["status"] for x in rows] ==
          ["success"] * 3 and all(x["rate"] == "100" and
                                  re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", x["finishTime"])
                                  for x in rows), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"startTime": cst(-600), "endTime": cst(60),
                                                     "pageNo": 2, "pageSize": 2})
    check(C + "time range + paging (pageNo answers the number of pages)",
          r.get("count") == 3 and len(r["resultDetail"]) == 1 and r["pageNo"] == 2, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item, "pageSize": 500})
    check(C + "pageSize 500 accepted", r.status == 200 and r.get("count") == 3, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item, "pageSize": 501})
    check(C + "pageSize 501: 400", r.ccm_err(400, "pageSize"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"startTime": cst(-600), "endTime": cst(60),
                                                     "url": "https://www.example.com/img/",
                                                     "status": "success"})
    check(C + "url + status filters", r.get("count") == 1 and
          r["resultDetail"][0]["isDir"] == 1, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": "no-such-item"})
    check(C + "unknown itemId: count 0", r.status == 200 and r.get("Code") == 1 and
          r.get("count") == 0, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"pageNo": 1})
    check(C + "query without itemId or time range: 400 Code 0", r.ccm_err(400, "itemId"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"startTime": cst(-60)})
    check(C + "startTime without endTime: 400 Code 0", r.ccm_err(400, "endTime"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"startTime": bj(-60), "endTime": cst()})
    check(C + "bad startTime format: 400 Code 0", r.ccm_err(400, "startTime"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"startTime": cst(-5 * 86400),
                                                     "endTime": cst()})
    check(C + "startTime more than 3 days back: 400", r.ccm_err(400, "startTime"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item, "status": "done"})
    check(C + "bad status: 400", r.ccm_err(400, "status"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": item, "pageNo": "2",
                                                     "pageSize": "1"})
    check(C + "pageNo / pageSize as digit strings accepted", r.status == 200 and
          r.get("pageNo") == 3 and r["resultDetail"] == rows[1:2], r)
    # failing rows
    emu.config(fail_url_substring="/broken/", task_seconds=0)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": [
        "http://www.example.com/broken/x", "http://www.example.com/ok"]})
    r = call(emu, "POST", "/ccm/purge/ItemIdQuery", {"itemId": r.get("itemId")})
    got = sorted((x["url"][-8:], x["status"], x["rate"]) for x in r.get("resultDetail", []))
    check(C + "config fail_url_substring: failure rows", got == [
        ("broken/x", "failure", "0"), ("ample.com/ok"[-8:], "success", "100")], got)
    emu.config(fail_url_substring=None)

    # purge refusals
    def purge(body):
        return call(emu, "POST", "/ccm/purge/ItemIdReceiver", body)
    r = purge({"dirs": ["http://www.example.com/img"]})
    check(C + "dir without /: 400 Code 0 naming dirs[0]", r.ccm_err(400, "dirs[0]"), r)
    r = purge({"urls": ["www.example.com/a"]})
    check(C + "url without http(s)://: 400 Code 0", r.ccm_err(400, "urls[0]"), r)
    r = purge({"urls": ["http://www.example.com/" + "a" * 2000]})
    check(C + "url over 2000 characters: 400", r.ccm_err(400, "2000"), r)
    r = purge({"dirs": ["http://www.example.com/" + "a" * 1000 + "/"]})
    check(C + "dir over 1000 characters: 400", r.ccm_err(400, "1000"), r)
    r = purge({"urls": ["http://www.example.com/\u00e9"]})
    check(C + "non-ASCII url: 400", r.ccm_err(400, "urls[0]"), r)
    r = purge({"urls": ["http://www.example.com/%d" % i for i in range(300)],
               "dirs": ["http://www.example.com/%d/" % i for i in range(201)]})
    check(C + "501 urls+dirs: 400 Code 0", r.ccm_err(400, "500"), r)
    r = purge({})
    check(C + "neither urls nor dirs: 400 Code 0", r.ccm_err(400, "urls"), r)
    r = purge({"urls": ["http://www.example.com/a"], "urlAction": "flush"})
    check(C + "bad urlAction: 400", r.ccm_err(400, "urlAction"), r)
    r = purge({"urls": ["http://www.example.com/a"], "tag": "x"})
    check(C + "unknown field: 400 Code 0 naming it", r.ccm_err(400, "tag"), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", raw=b"{")
    check(C + "bad JSON: 400 Code 0", r.ccm_err(400), r)
    s = emu.stats()
    check(C + "refusals logged with their codes", [e["error"] for e in s["request_log"][-10:]] ==
          ["InvalidDir", "InvalidUrl", "InvalidUrl", "InvalidDir", "InvalidUrl", "TooManyItems",
           "MissingParameter", "InvalidParameter", "UnknownParameter", "MalformedJson"],
          [e["error"] for e in s["request_log"][-10:]])
    r = purge({"urls": ["http://www.example.com/%d" % i for i in range(300)],
               "dirs": ["http://www.example.com/%d/" % i for i in range(200)]})
    check(C + "500 urls+dirs accepted", r.status == 200 and r.get("Code") == 1, r)

    # prefetch
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": ["http://www.example.com/p1",
                                                                 "http://www.example.com/p2"],
                                                        "isRange": 1})
    pitem = r.get("itemId")
    check(C + "prefetch: Code 1 + itemId", r.status == 200 and r.get("Code") == 1 and pitem, r)
    r = call(emu, "POST", "/ccm/fetch/ItemIdQuery", {"itemId": pitem})
    rows = r.get("resultDetail", [])
    check(C + "prefetch query (no isDir)", r.get("count") == 2 and rows and
          "isDir" not in rows[0] and rows[0]["status"] == "success", r)
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": [
        "http://www.example.com/%d" % i for i in range(401)]})
    check(C + "prefetch 401 urls: 400 Code 0", r.ccm_err(400, "400"), r)
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": ["http://a.example.com/x"],
                                                        "isRange": 2})
    check(C + "prefetch isRange 2: 400", r.ccm_err(400, "isRange"), r)
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {})
    check(C + "prefetch without urls: 400", r.ccm_err(400, "urls"), r)
    s = emu.stats()
    check(C + "recorded URLs", "http://www.example.com/a.jpg" in s["refreshed_urls"] and
          "https://www.example.com/img/" in s["refreshed_dirs"] and
          s["prefetched_urls"] == ["http://www.example.com/p1", "http://www.example.com/p2"], s)
    check(C + "executed", s["executed"].get("PurgeItemIdReceiver") == 3 and s["executed"].get("FetchItemIdReceiver") == 1,
          s["executed"])
    emu.config(task_seconds=1.0)


def quota_tests(emu):
    Q = "quota "
    emu.reset()
    r = call(emu, "POST", "/ccm/purge/quota", {})
    check(Q + "purge quota fields", r.status == 200 and r.get("code") == 0 and
          isinstance(r.get("message"), str) and sorted(k for k in r.json if k not in
                                                       ("code", "message")) == sorted([
              "urlQuota", "remainingUrlQuota", "dirQuota", "remainingDirQuota", "regexQuota",
              "remainingRegexQuota", "tagQuota", "remainingTagQuota"]) and
          r["urlQuota"] == 5000 and r["remainingUrlQuota"] == 5000 and r["dirQuota"] == 500, r)
    call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://q.example.com/1",
                                                             "http://q.example.com/2"],
                                                    "dirs": ["http://q.example.com/d/"]})
    r = call(emu, "POST", "/ccm/purge/quota")
    check(Q + "purge quota decreases", r.get("remainingUrlQuota") == 4998 and
          r.get("remainingDirQuota") == 499, r)
    r = call(emu, "POST", "/ccm/prefetch/quota")
    check(Q + "prefetch quota fields", r.status == 200 and r.get("code") == 0 and
          r.get("prefetchQuota") == 20000 and r.get("remainingPrefetchQuota") == 20000 and
          isinstance(r.get("prefetchVolumeQuota"), int) and
          r.get("remainingPrefetchVolumeQuota") == r.get("prefetchVolumeQuota"), r)
    vol = r.get("prefetchVolumeQuota")
    call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": ["http://q.example.com/1",
                                                             "http://q.example.com/2",
                                                             "http://q.example.com/3"]})
    r = call(emu, "POST", "/ccm/prefetch/quota")
    check(Q + "prefetch quota decreases", r.get("remainingPrefetchQuota") == 19997 and
          r.get("remainingPrefetchVolumeQuota") == vol - 3, r)
    emu.config(purge_url_day_limit=3)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://q.example.com/3",
                                                                 "http://q.example.com/4"]})
    check(Q + "over the day's URL quota: HTTP 200 Code 0", r.status == 200 and
          r.get("Code") == 0 and "itemId" not in r.json and "daily" in r.get("Message", ""), r)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://q.example.com/3"]})
    check(Q + "the last one fits", r.get("Code") == 1, r)
    r = call(emu, "POST", "/ccm/purge/quota")
    check(Q + "remaining 0", r.get("urlQuota") == 3 and r.get("remainingUrlQuota") == 0, r)
    s = emu.stats()
    check(Q + "a quota refusal is not executed", s["executed"].get("PurgeItemIdReceiver") == 2 and
          s["request_log"][-3]["error"] == "QuotaExceeded", s["executed"])
    emu.config(prefetch_url_day_limit=0)
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": ["http://q.example.com/1"]})
    check(Q + "prefetch over quota: Code 0", r.status == 200 and r.get("Code") == 0, r)
    emu.config(purge_url_day_limit=5000, prefetch_url_day_limit=20000)
    emu.reset()
    r = call(emu, "POST", "/ccm/purge/quota")
    check(Q + "reset restores the day's quota", r.get("remainingUrlQuota") == 5000, r)


def fault_tests(emu):
    F = "fault "
    emu.reset()
    emu.faults({"kind": "throttle"})
    r = domainflow(emu)
    check(F + "throttle: 429 TooManyRequests JSON", r.err(429, "TooManyRequests") and
          bool(UUID_RX.match(r.rid or "")), r)
    emu.faults({"kind": "throttle", "action": "PurgeItemIdReceiver"})
    r = domainflow(emu)
    check(F + "a fault filtered by action waits", r.status == 200, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://f.example.com/1"]})
    check(F + "... for its action (PurgeItemIdReceiver)", r.err(429, "TooManyRequests"), r)
    emu.faults({"kind": "http500"}, {"kind": "http503"}, {"kind": "stale"})
    r1, r2, r3 = domainflow(emu), domainflow(emu), domainflow(emu)
    check(F + "http500 / http503 / stale", r1.err(500, "InternalError") and
          r2.err(503, "ServiceUnavailable") and r3.err(401, "RequestExpired"), (r1, r2, r3))
    emu.faults({"kind": "throttle"})
    r = domainflow(emu, sk="bad")
    check(F + "a bad signature leaves the fault queued", r.err(403, "SignatureDoesNotMatch") and
          len(emu.control("GET", "faults")["faults"]) == 1, r)
    emu.reset()
    emu.faults({"kind": "html"})
    r = domainflow(emu)
    check(F + "html (transport)", r.status == 502 and "nginx" in (r.body or b"").decode(), r)
    emu.faults({"kind": "close", "count": 2})
    r = domainflow(emu)
    check(F + "close", dropped(r), r)
    domainflow(emu)
    emu.reset()
    emu.faults({"kind": "no_task_id"})
    r = domainflow(emu)
    check(F + "no_task_id waits for a task action", r.status == 200 and
          len(emu.control("GET", "faults")["faults"]) == 1, r)
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://f.example.com/n"]})
    check(F + "no_task_id: Code 1 without itemId", r.status == 200 and r.get("Code") == 1 and
          "itemId" not in r.json, r)
    s = emu.stats()
    check(F + "no_task_id: nothing recorded, not executed", s["refreshed_urls"] == [] and
          "PurgeItemIdReceiver" not in s["executed"], s)
    r = call(emu, "POST", "/ccm/purge/quota")
    check(F + "no_task_id: no quota used", r.get("remainingUrlQuota") == 5000, r)
    emu.faults({"kind": "no_task_id", "action": "FetchItemIdReceiver"})
    r = call(emu, "POST", "/ccm/fetch/ItemIdReceiver", {"urls": ["http://f.example.com/p"]})
    check(F + "no_task_id on FetchItemIdReceiver", r.get("Code") == 1 and "itemId" not in r.json and
          emu.stats()["prefetched_urls"] == [], r)
    out = emu.control("POST", "faults", {"faults": [{"kind": "no_task_id",
                                                     "action": "PurgeQuota"}]})
    check(F + "no_task_id on a non-task action refused", out["_status"] == 400 and
          "FetchItemIdReceiver" in out["error"] and "PurgeItemIdReceiver" in out["error"], out)
    emu.reset()
    emu.faults({"kind": "drop_after", "action": "PurgeItemIdReceiver"})
    r = call(emu, "POST", "/ccm/purge/ItemIdReceiver", {"urls": ["http://f.example.com/d"]})
    s = emu.stats()
    check(F + "drop_after: executed, no answer", dropped(r) and s["executed"].get("PurgeItemIdReceiver") == 1
          and s["dropped"] == 1 and s["refreshed_urls"] == ["http://f.example.com/d"], (r, s))


def config_log_tests(emu):
    L = "log "
    emu.reset()
    cfg = emu.control("GET", "config")
    check("config: defaults", all(cfg.get(k) == v for k, v in {
        "purge_url_day_limit": 5000, "purge_dir_day_limit": 500,
        "prefetch_url_day_limit": 20000, "prefetch_volume_day_limit": 204800,
        "fail_url_substring": None}.items()), cfg)
    out = emu.control("POST", "config", {"purge_url_day_limit": "many"})
    check("config: a wrong type is refused", out["_status"] == 400, out)
    out = emu.control("POST", "config", {"fail_url_substring": 5})
    check("config: fail_url_substring must be a string or null", out["_status"] == 400, out)
    isp(emu, query={}, headers={"Accept-Language": "zh-CN"})
    call(emu, "POST", "/api/report/domainflow", {"domain-list": {"domain-name": ["a.com"]}},
         query={"dateFrom": bj(-60), "dateTo": bj()}, basic=(USER, APIKEY))
    isp(emu, {"nope": 1})
    s = emu.stats()
    e1, e2, e3 = s["request_log"][-3:]
    check(L + "AK/SK entry", e1["action"] == "Reportflowispprovinceservice" and
          e1["method"] == "POST" and e1["path"] == "/api/report/flow/isp-province" and
          e1["auth"] == "aksk" and e1["key_id"] == AK and
          e1["signed_headers"] == ["content-type", "host"] and e1["accept_language"] == "zh-CN"
          and e1["query_params"] == [] and e1["body_keys"] == ["dateFrom", "dateTo", "domain"]
          and e1["error"] is None, e1)
    check(L + "Basic entry", e2["action"] == "Querydomaintotaltraffic" and e2["auth"] == "basic"
          and e2["key_id"] == USER and e2["signed_headers"] is None and
          e2["query_params"] == ["dateFrom", "dateTo"] and e2["body_keys"] == ["domain-list"],
          e2)
    check(L + "error entry", e3["error"] == "UnknownParameter" and "nope" in e3["body_keys"], e3)
    check(L + "by_action / executed", s["by_action"].get("Reportflowispprovinceservice") == 2 and
          s["executed"].get("Reportflowispprovinceservice") == 1, s["by_action"])


# --------------------------------------------------------------------------
# every table entry
# --------------------------------------------------------------------------
SHAPES = {
    "flow": {"flow-summary", "flow-data"},
    "code": {"code", "message", "data"},
    "provider": {"provider"},
    "result": {"result"},
}
FLOW = ("Querysumuptrafficunderaccount", "Querydomaintotaltraffic",
        "Querydomaintrafficunderspecificsettlementarea")
CODE = ("Reportflowispprovincehitratedetailservice", "Reportflowispprovincetotalservice",
        "Queryispprovincehitrate", "Reportflowrequestmultiipversionservice",
        "Reportflowp2pshareratioservice", "Queryrequesbandwidthtsavingratio",
        "Querydatatransferforalldomainbyte",
        "Querymultiplestreamtrafficandbandwidthunderthedomain",
        "Reportupflowdomaincountryservice")
PROVIDER = ("Flowchannel", "Wctquery", "Flowday")


def sample(f, api):
    """A value for field / member `f`."""
    if f.name in ("dateFrom", "datefrom"):
        return bj(-3600)
    if f.name in ("dateTo", "dateto"):
        return bj()
    special = {"areaCode": "cn", "dataType": "flow", "dirHierarchy": "2",
               "domain": "www.example.com"}
    if f.type == "str":
        return special.get(f.name, "x")
    if f.type == "int":
        return 1
    if f.type == "str[]":
        return ["www.example.com"] if "domain" in f.name else ["x"]
    members = {m.name: sample(m, api) for m in f.members if m.required}
    return [members] if f.type == "struct[]" else members


def all_entries_tests(emu):
    ws = selftestlib.emulator_module("vendor_wangsu")
    table = ws.load_table(TABLE)
    emu.reset()
    failures, shapes = [], []
    for name, api in sorted(table.items()):
        q = {f.name: sample(f, api) for f in api.fields if f.required and f.place == "q"}
        b = {f.name: sample(f, api) for f in api.fields if f.required and f.place == "b"}
        if name in ("PurgeItemIdReceiver", "FetchItemIdReceiver"):
            b = {"urls": ["http://www.example.com/all"]}
        if name in ("PurgeItemIdQuery", "FetchItemIdQuery"):
            b = {"startTime": cst(-60), "endTime": cst(60)}
        r = call(emu, api.method, api.uri, b if api.method == "POST" else None, query=q)
        if r.status != 200 or not isinstance(r.json, dict):
            failures.append((name, r))
            continue
        if api.ccm:
            ok = r.json.get("Code") == 1 if "Code" in r.json else r.json.get("code") == 0
        else:
            kind = ("flow" if name in FLOW else "code" if name in CODE else
                    "provider" if name in PROVIDER else "result")
            ok = set(r.json) == SHAPES[kind] and (kind != "code" or r.json["code"] == "0")
        if not ok or not UUID_RX.match(r.rid or ""):
            shapes.append((name, r))
    check("all 38 entries answered with their required fields", not failures and
          len(table) == 38, failures[:3])
    check("answers in the documented shapes (32 report: %d flow, %d code, %d provider, %d "
          "result)" % (len(FLOW), len(CODE), len(PROVIDER), 32 - len(FLOW + CODE + PROVIDER)),
          not shapes, shapes[:3])
    s = emu.stats()
    check("all 38 executed", len(s["executed"]) == 38, sorted(set(table) - set(s["executed"])))
    bad, miss = [], []
    for name, api in sorted(table.items()):
        body = {"noSuchField": 1} if api.method == "POST" else None
        query = {"noSuchField": "1"} if api.method == "GET" else None
        r = call(emu, api.method, api.uri, body, query=query)
        if r.status != 400 or "noSuchField" not in (r.get("message") or r.get("Message") or ""):
            bad.append((name, r))
        req = [f.name for f in api.fields if f.required]
        if req:
            r = call(emu, api.method, api.uri, {} if api.method == "POST" else None)
            if r.status != 400 or req[0] not in (r.get("message") or r.get("Message") or ""):
                miss.append((name, r))
        r = call(emu, "GET" if api.method == "POST" else "POST", api.uri, {})
        if not r.err(405, "MethodNotAllowed"):
            bad.append((name, "method", r))
    check("every entry refuses an unknown field (and the other method)", not bad, bad[:3])
    check("every entry names its first missing required field", not miss, miss[:3])


def main():
    t0 = time.monotonic()
    guarded(vector_tests)
    emu = Emu(["--task-seconds", "0.6"])
    try:
        for fn in (auth_tests, route_param_tests, ccm_tests, quota_tests, fault_tests,
                   config_log_tests, all_entries_tests):
            guarded(fn, emu)
    finally:
        emu.stop()
    return selftestlib.finish("selftest-wangsu", t0)


if __name__ == "__main__":
    sys.exit(main())
