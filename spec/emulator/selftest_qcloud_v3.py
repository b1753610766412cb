#!/usr/bin/env python3
"""Self-test of cdnemu's Tencent Cloud API 3.0 (CDN 2018-06-06, TC3-HMAC-SHA256)
side (stdlib only).  Run: python3 spec/emulator/selftest_qcloud_v3.py

Checks the emulator's TC3 functions against the official worked example and
the CDN vectors, then starts `cdnemu.py --vendor qcloud` on a random loopback
port and drives it with a request builder and TC3 signer written here
(checked first against the same vectors): transport and signature checks
(a GET's Content-Type too), error codes, table-driven parameter checks (the
Origin structure's members and types), purge/push tasks and quotas,
domains, faults, config, the request log, and every action of the table
called with its required parameters (POST and GET).
Prints `selftest-qcloud-v3: N passed, N failed`; exit status 1 on failure.
"""

import hashlib
import hmac
import http.client
import json
import os
import sys
import time

import selftestlib
from selftestlib import HERE, check, dropped, guarded, pct, send, sha256_hex

TABLE = os.path.join(HERE, "tables", "qcloud_2018_06_06.txt")


# --------------------------------------------------------------------------
# the test's own TC3 signer and request builder (not imported from cdnemu)
# --------------------------------------------------------------------------
def hm(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3(secret, method, query, headers, signed, payload, ts, service="cdn", date=None):
    """-> (signature hex, string to sign).  headers: name -> value (any case)."""
    low = {k.lower(): v for k, v in headers.items()}
    date = date or time.strftime("%Y-%m-%d", time.gmtime(ts))
    canon = "".join("%s:%s\n" % (n, low.get(n, "").strip().lower()) for n in signed)
    creq = "\n".join([method, "/", query, canon, ";".join(signed), sha256_hex(payload)])
    sts = "\n".join(["TC3-HMAC-SHA256", str(ts), "%s/%s/tc3_request" % (date, service),
                     sha256_hex(creq)])
    k = hm(hm(hm(("TC3" + secret).encode(), date), service), "tc3_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), sts


def authz(sid, date, service, signed, sig):
    return "TC3-HMAC-SHA256 Credential=%s/%s/%s/tc3_request, SignedHeaders=%s, Signature=%s" % (
        sid, date, service, ";".join(signed), sig)


def flatten(params, prefix=""):
    """Nested params -> GET pairs (Urls.0=..., Filters.0.Value.0=...)."""
    out = []
    for k, v in params.items():
        name = prefix + k
        if isinstance(v, dict):
            out += flatten(v, name + ".")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, dict):
                    out += flatten(x, "%s.%d." % (name, i))
                else:
                    out.append(("%s.%d" % (name, i), x))
        else:
            out.append((name, v))
    return [(k, ("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in out]


EXAMPLE_ID, EXAMPLE_KEY = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
MASKED_ID, MASKED_KEY = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", "Gu5t9xGARNpq86cd98joQYCN3*******"
OFFICIAL_BODY = (b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], '
                 b'"Name": "instance-name"}]}')
CDN_BODY = b'{"Urls":["https://www.example.com/a.jpg"]}'


def vector_tests():
    """The official worked example (service cvm) and the CDN vectors, with the
    emulator's functions and with this test's signer."""
    v3 = selftestlib.emulator_module("vendor_qcloud_v3")
    V = "vector "
    check(V + "official payload hash", v3.sha256_hex(OFFICIAL_BODY) ==
          "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")

    def emu_sig(secret, method, query, headers, signed, body, ts, service):
        creq = v3.tc3_canonical_request(method, query, headers, signed, v3.sha256_hex(body))
        sts = v3.tc3_string_to_sign(ts, v3.utc_date(ts), service, creq)
        return v3.tc3_signature(secret, v3.utc_date(ts), service, sts), creq

    cvm = {"content-type": "application/json; charset=utf-8",
           "host": "cvm.tencentcloudapi.com", "x-tc-action": "DescribeInstances"}
    ch = ["content-type", "host"]
    sig, creq = emu_sig(EXAMPLE_KEY, "POST", "", cvm, ch, OFFICIAL_BODY, 1551113065, "cvm")
    check(V + "official hashed canonical request", v3.sha256_hex(creq) ==
          "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031", creq)
    check(V + "official 72e494ea (emulator)", sig ==
          "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168", sig)
    a = v3.parse_authorization(authz(EXAMPLE_ID, "2019-02-25", "cvm", ch, sig))
    check(V + "official Authorization parses", a == {
        "id": EXAMPLE_ID, "date": "2019-02-25", "service": "cvm", "terminator": "tc3_request",
        "signed": ch, "signature": sig}, a)
    sig, _ = emu_sig(MASKED_KEY, "POST", "", cvm, ch, OFFICIAL_BODY, 1551113065, "cvm")
    check(V + "masked keys 2230eefd (emulator)", sig ==
          "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c", sig)
    sig, _ = emu_sig(MASKED_KEY, "POST", "", cvm, ch + ["x-tc-action"], OFFICIAL_BODY,
                     1551113065, "cvm")
    check(V + "masked keys + x-tc-action be4f67d3 (emulator)", sig ==
          "be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3", sig)
    host = "cdn.tencentcloudapi.com"
    cdn = [("application/json", ch,
            "0f7e8044ebcf1f7a9a24f09009e5ed066add4801f5118def302bc45828beaba3"),
           ("application/json; charset=utf-8", ch,
            "e5bf7241a45427620f9af750242e004f0aa3b967b414a3c3efd326b4391b9dac"),
           ("application/json; charset=utf-8", ch + ["x-tc-action"],
            "70de7a075e15ac342a6d92c5a1d57b5c41903a7362a827e24dbf335896c01c20")]
    for ct, signed, want in cdn:
        hd = {"content-type": ct, "host": host, "x-tc-action": "PurgeUrlsCache"}
        sig, _ = emu_sig(EXAMPLE_KEY, "POST", "", hd, signed, CDN_BODY, 1700000000, "cdn")
        check(V + "CDN PurgeUrlsCache %s %s (emulator)" % (ct, ";".join(signed)), sig == want, sig)
        mine = tc3(EXAMPLE_KEY, "POST", "", hd, signed, CDN_BODY, 1700000000)[0]
        check(V + "CDN PurgeUrlsCache %s %s (test signer)" % (ct, ";".join(signed)),
              mine == want, mine)
    hd = {"content-type": "application/x-www-form-urlencoded", "host": host}
    want = "aec400c428222811b4d5eb73c40a3b3909252a5afa3578ccbc381d1200df7a25"
    sig, _ = emu_sig(EXAMPLE_KEY, "GET", "Limit=10&Offset=0&PurgeType=url", hd, ch, b"",
                     1700000000, "cdn")
    check(V + "CDN GET DescribePurgeTasks (emulator)", sig == want, sig)
    check(V + "CDN GET DescribePurgeTasks (test signer)", tc3(
        EXAMPLE_KEY, "GET", "Limit=10&Offset=0&PurgeType=url", hd, ch, b"", 1700000000)[0] == want)
    check(V + "official (test signer)", tc3(
        EXAMPLE_KEY, "POST", "", cvm, ch, OFFICIAL_BODY, 1551113065, "cvm")[0] ==
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168")

    # the table the emulator reads
    t = v3.load_table(TABLE)
    check("table: 52 actions", len(t) == 52, len(t))
    with open(TABLE, encoding="utf-8") as f:
        first = f.readline()
    check("table: first line says what it is", first.startswith("#") and "API 3.0" in first and
          "tccli api.json" in first and "TencentCloud/tencentcloud-cli" in first, first)
    check("table: PurgeUrlsCache", t.get("PurgeUrlsCache") == [
        ("Urls", "list<string>", True), ("Area", "string", False),
        ("UrlEncode", "bool", False)], t.get("PurgeUrlsCache"))
    check("table: no-parameter actions", t.get("DescribePurgeQuota") == [] and
          t.get("DescribeCdnOriginIp") == [])
    # parameter checks, offline
    try:
        v3.check_params(t["PurgeUrlsCache"], {"Urls": ["http://a/"], "X": 1}, False)
        check("check_params unknown", False)
    except v3.Bad as b:
        check("check_params unknown", b.code == "UnknownParameter" and b.name == "X", b.code)
    got = v3.unflatten([("Filters.1.Name", "b"), ("Filters.0.Name", "a"),
                        ("Filters.0.Value.0", "x"), ("Limit", "5")])
    check("unflatten", got == {"Filters": [{"Name": "a", "Value": ["x"]}, {"Name": "b"}],
                               "Limit": "5"}, got)


# --------------------------------------------------------------------------
# emulator process and requests
# --------------------------------------------------------------------------
class Result(selftestlib.Result):
    """With the API 3.0 answer's Response (resp), Error.Code and Error.Message."""

    def __init__(self, status, headers, body, exc=None, elapsed=0.0):
        super().__init__(status, headers, body, exc, elapsed)
        r = self.json.get("Response") if isinstance(self.json, dict) else None
        self.resp = r if isinstance(r, dict) else {}
        err = self.resp.get("Error")
        self.code = err.get("Code") if isinstance(err, dict) else None
        self.message = err.get("Message") if isinstance(err, dict) else None

    @property
    def ok(self):
        return (self.status == 200 and self.code is None and
                isinstance(self.resp.get("RequestId"), str) and self.resp["RequestId"] != "")

    def err(self, code, name=None):
        """An API 3.0 error answer with `code` (whose message names `name`)."""
        return (self.status == 200 and self.code == code and
                isinstance(self.resp.get("RequestId"), str) and
                (name is None or ("`%s`" % name) in (self.message or "")))


class Emu(selftestlib.Emu):
    """control(), config() and faults() answer the JSON with its HTTP status
    under "_status"; requests answer a Result with the API 3.0 fields."""
    result_class = Result

    def __init__(self, extra=()):
        super().__init__("qcloud", extra, tmp_prefix="cdnemu-v3-selftest-")

    def control(self, method, name, body=None):
        status, out = self.control_status(method, name, body)
        out["_status"] = status
        return out


def build(emu, action, params=None, method="POST", ctype=None, sid="AKIDtest", key="testkey",
          ts=None, version="2018-06-06", signed=("content-type", "host"), service="cdn",
          date=None, headers=None, body=None, sign_ctype=None, query=None):
    """A signed API 3.0 request -> (method, path, body, headers)."""
    ts = int(time.time()) if ts is None else ts
    if method == "GET":
        query = query if query is not None else "&".join(
            pct(k) + "=" + pct(v) for k, v in flatten(params or {}))
        payload = b""
        ctype = ctype or "application/x-www-form-urlencoded"
    else:
        query = ""
        payload = body if body is not None else json.dumps(params or {}).encode()
        ctype = ctype or "application/json"
    hd = {"Host": emu.host, "Content-Type": ctype}
    if action is not None:
        hd["X-TC-Action"] = action
    if version is not None:
        hd["X-TC-Version"] = version
    hd["X-TC-Timestamp"] = str(ts)
    hd.update(headers or {})
    signhd = dict(hd)
    if sign_ctype is not None:
        signhd["Content-Type"] = sign_ctype
    d = date or time.strftime("%Y-%m-%d", time.gmtime(ts))
    sig = tc3(key, method, query, signhd, list(signed), payload, ts, service, d)[0]
    hd["Authorization"] = authz(sid, d, service, signed, sig)
    return method, "/" + ("?" + query if query else ""), (payload if method == "POST" else None), hd


def call(emu, action, params=None, conn=None, **kw):
    m, path, body, hd = build(emu, action, params, **kw)
    return send(emu, m, path, body, hd, conn=conn)


def now_bj(offset=0):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600 + offset))


# --------------------------------------------------------------------------
# tests against the running emulator
# --------------------------------------------------------------------------
def transport_tests(emu):
    T = "transport "
    emu.reset()
    r = call(emu, "DescribeDomains", {"Limit": 2})
    check(T + "POST application/json", r.ok and r.resp.get("TotalNumber") == 57 and
          len(r.resp.get("Domains", [])) == 2, r)
    check(T + "answer Content-Type", r.headers.get("Content-Type", "").startswith(
        "application/json"), r.headers)
    r = call(emu, "DescribeDomains", {"Limit": 2}, ctype="application/json; charset=utf-8")
    check(T + "POST application/json; charset=utf-8", r.ok, r)
    r = call(emu, "DescribeDomains", {"Offset": 50, "Limit": 100}, method="GET")
    check(T + "GET", r.ok and len(r.resp.get("Domains", [])) == 7 and
          r.resp["Domains"][0]["Domain"] == "host-0051.example.com", r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain", "Value": [
        "host-0003.example.com", "host-0005.example.com"]}]}, method="GET")
    check(T + "GET flattened Filters.0.Value.N", r.ok and r.resp.get("TotalNumber") == 2, r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain", "Value": ["-000"],
                                                   "Fuzzy": True}], "Limit": 1}, method="GET")
    check(T + "GET flattened bool", r.ok and r.resp.get("TotalNumber") == 9, r)
    r = call(emu, "DescribePurgeQuota", body=b"")
    check(T + "POST empty body", r.ok and len(r.resp.get("UrlPurge", [])) == 2, r)
    r = call(emu, "DescribePurgeQuota", signed=("content-type", "host", "x-tc-action"))
    check(T + "x-tc-action signed too", r.ok, r)
    # the v2 API on the same port is untouched
    c = emu.conn()
    ts, nonce = str(int(time.time())), str(int.from_bytes(os.urandom(5), "big"))
    p = {"Action": "DescribeCdnHosts", "SecretId": "AKIDtest", "Timestamp": ts,
         "Nonce": nonce, "limit": "1"}
    import base64
    src = "POST127.0.0.1/v2/index.php?" + "&".join("%s=%s" % kv for kv in sorted(p.items()))
    p["Signature"] = base64.b64encode(hmac.new(b"testkey", src.encode(), hashlib.sha1)
                                      .digest()).decode()
    c.request("POST", "/v2/index.php", "&".join(pct(k) + "=" + pct(v) for k, v in p.items()),
              {"Content-Type": "application/x-www-form-urlencoded"})
    v2 = json.loads(c.getresponse().read())
    c.close()
    check(T + "v2 on the same port", v2.get("code") == 0 and v2["data"]["total"] == 57, v2)
    s = emu.stats()
    log = s["request_log"]
    check(T + "v2 log entry unchanged", sorted(log[-1]) == [
        "action", "body_bytes", "content_type", "method", "path", "query_bytes", "reused"],
        log[-1])


def auth_tests(emu):
    A = "auth "
    emu.reset()
    now = int(time.time())
    m, path, body, hd = build(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/a"]})
    r = send(emu, m, path, body.replace(b"/a", b"/b"), hd)
    check(A + "tampered body", r.err("AuthFailure.SignatureFailure"), r)
    check(A + "SignatureFailure message", r.message == "The provided credentials could not "
          "be validated. Please check your signature is correct.", r.message)
    s = emu.stats()
    e = s["request_log"][-1]
    check(A + "sign_detail in the log", e.get("sign_detail", {}).get("reason") ==
          "signature mismatch" and e["sign_detail"]["string_to_sign"].startswith(
              "TC3-HMAC-SHA256\n") and s["signature_failures"] == 1 and
          e.get("error") == "AuthFailure.SignatureFailure", e)
    check(A + "nothing purged", s["refreshed_urls"] == [] and s["executed"] == {}, s)
    r = call(emu, "DescribePurgeQuota", date="2001-01-01")
    check(A + "credential date not the timestamp's", r.err("AuthFailure.SignatureFailure"), r)
    # a date consistent with the signature but not the UTC date of the timestamp
    local = time.strftime("%Y-%m-%d", time.gmtime(now + 86400))
    r = call(emu, "DescribePurgeQuota", date=local)
    check(A + "next day's date", r.err("AuthFailure.SignatureFailure") and
          "not the UTC date" in emu.stats()["request_log"][-1]["sign_detail"]["reason"], r)
    r = call(emu, "DescribePurgeQuota", service="cvm")
    check(A + "service cvm", r.err("AuthFailure.SignatureFailure"), r)
    r = call(emu, "DescribePurgeQuota", ts=now - 301)
    check(A + "timestamp 301 s old", r.err("AuthFailure.SignatureExpire"), r)
    r = call(emu, "DescribePurgeQuota", ts=now + 310)
    check(A + "timestamp 310 s ahead", r.err("AuthFailure.SignatureExpire"), r)
    r = call(emu, "DescribePurgeQuota", ts=now - 280)
    check(A + "timestamp 280 s old ok", r.ok, r)
    emu.config(skew=3600)
    r = call(emu, "DescribePurgeQuota")
    r2 = call(emu, "DescribePurgeQuota", ts=now + 3600)
    emu.config(skew=0)
    check(A + "--skew applies", r.err("AuthFailure.SignatureExpire") and r2.ok, (r, r2))
    r = call(emu, "DescribePurgeQuota", sid="AKIDnobody")
    check(A + "unknown SecretId", r.err("AuthFailure.SecretIdNotFound"), r)
    r = call(emu, "DescribePurgeQuota", sid="AKIDdemo", key="demokey")
    check(A + "demo credentials", r.ok, r)
    r = call(emu, "DescribePurgeQuota", key="wrongkey")
    check(A + "wrong key", r.err("AuthFailure.SignatureFailure"), r)
    r = call(emu, "DescribePurgeQuota", version="2017-03-12")
    check(A + "wrong version", r.err("NoSuchVersion"), r)
    r = call(emu, "DescribePurgeQuota", version=None)
    check(A + "no version", r.err("MissingParameter", "Version"), r)
    r = call(emu, "DescribeNothing")
    check(A + "unknown action", r.err("InvalidAction"), r)
    r = call(emu, "RefreshCdnUrl", {"urls": ["http://a/"]})
    check(A + "v2 action name over 3.0", r.err("InvalidAction"), r)
    m, path, body, hd = build(emu, "DescribePurgeQuota")
    del hd["X-TC-Action"]
    r = send(emu, m, path, body, hd)
    check(A + "TC3 Authorization without X-TC-Action", r.err("MissingParameter", "Action"), r)
    good_cred, good_sh = "Credential=AKIDtest/2020-01-01/cdn/tc3_request", \
        "SignedHeaders=content-type;host"
    for bad in ("Credential=AKIDtest/2020-01-01/cdn, %s, Signature=00" % good_sh,
                "%s, Signature=00" % good_cred,
                "Credential=AKIDtest/20200101/cdn/tc3_request, %s, Signature=00" % good_sh,
                "%s, SignedHeaders=host;content-type, Signature=00" % good_cred,
                "%s, SignedHeaders=Content-Type;Host, Signature=00" % good_cred,
                "%s, %s, Signature=00, Extra=1" % (good_cred, good_sh),
                "HMAC-SHA256 %s, %s, Signature=00" % (good_cred, good_sh)):
        if not bad.startswith("HMAC"):
            bad = "TC3-HMAC-SHA256 " + bad
        m, path, body, hd = build(emu, "DescribePurgeQuota")
        hd["Authorization"] = bad
        r = send(emu, m, path, body, hd)
        check(A + "malformed Authorization: %s" % bad[:70],
              r.err("AuthFailure.InvalidAuthorization"), r)
    m, path, body, hd = build(emu, "DescribePurgeQuota")
    del hd["Authorization"]
    r = send(emu, m, path, body, hd)
    check(A + "no Authorization", r.err("AuthFailure.InvalidAuthorization"), r)
    r = call(emu, "DescribePurgeQuota", signed=("content-type",))
    check(A + "host not signed", r.err("AuthFailure.InvalidAuthorization"), r)
    r = call(emu, "DescribePurgeQuota", signed=("host",))
    check(A + "content-type not signed", r.err("AuthFailure.InvalidAuthorization"), r)
    r = call(emu, "DescribePurgeQuota", ctype="application/json; charset=utf-8",
             sign_ctype="application/json")
    check(A + "content-type sent differs from the signed one", r.err(
        "AuthFailure.SignatureFailure"), r)
    m, path, body, hd = build(emu, "DescribePurgeQuota")
    hd["Host"] = "cdn.tencentcloudapi.com"
    r = send(emu, m, path, body, hd)
    check(A + "Host differs from the signed one", r.err("AuthFailure.SignatureFailure"), r)
    r = call(emu, "DescribeDomains", {"Limit": 1}, method="GET",
             query="Limit=1", headers={})
    check(A + "GET query as sent", r.ok, r)
    m, path, body, hd = build(emu, "DescribeDomains", method="GET", query="Offset=0&Limit=1")
    r = send(emu, m, "/?Limit=1&Offset=0", body, hd)
    check(A + "GET query reordered after signing", r.err("AuthFailure.SignatureFailure"), r)
    m, path, body, hd = build(emu, "DescribePurgeQuota")
    hd["X-TC-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    body2 = b'{}'
    sig = tc3("testkey", "POST", "", hd, ["content-type", "host"], b"UNSIGNED-PAYLOAD",
              int(hd["X-TC-Timestamp"]))[0]
    hd["Authorization"] = authz("AKIDtest", time.strftime("%Y-%m-%d", time.gmtime(
        int(hd["X-TC-Timestamp"]))), "cdn", ["content-type", "host"], sig)
    r = send(emu, "POST", "/", body2, hd)
    check(A + "X-TC-Content-SHA256: UNSIGNED-PAYLOAD", r.ok and
          emu.stats()["request_log"][-1]["unsigned_payload"] is True, r)

    # token, region, language
    emu.reset()
    r = call(emu, "DescribePurgeQuota", headers={"X-TC-Token": "cdnemu-sts-token",
                                                 "X-TC-Region": "ap-guangzhou",
                                                 "X-TC-Language": "en-US"})
    check(A + "known token", r.ok, r)
    r = call(emu, "DescribePurgeQuota", headers={"X-TC-Token": "bogus"})
    check(A + "unknown token", r.err("AuthFailure.TokenFailure"), r)
    c = emu.config(tc3_token="other-token")
    check(A + "config tc3_token", c.get("ok") and c["config"]["tc3_token"] == "other-token", c)
    r1 = call(emu, "DescribePurgeQuota", headers={"X-TC-Token": "other-token"})
    r2 = call(emu, "DescribePurgeQuota", headers={"X-TC-Token": "cdnemu-sts-token"})
    emu.config(tc3_token="cdnemu-sts-token")
    check(A + "configured token", r1.ok and r2.err("AuthFailure.TokenFailure"), (r1, r2))
    log = emu.stats()["request_log"]
    check(A + "log: token presence, region, language", log[0]["token"] is True and
          log[0]["region"] == "ap-guangzhou" and log[0]["language"] == "en-US" and
          "cdnemu-sts-token" not in json.dumps(log) and log[1]["token"] is True and
          log[1]["error"] == "AuthFailure.TokenFailure", log[:2])

    # transport-level refusals
    r = send(emu, "PUT", "/", b"{}", {"X-TC-Action": "DescribePurgeQuota"})
    check(A + "PUT", r.err("UnsupportedProtocol"), r)
    m, path, body, hd = build(emu, "DescribePurgeQuota")
    r = send(emu, m, "/v2/index.php", body, hd)
    check(A + "wrong path", r.err("InvalidRequest"), r)
    r = call(emu, "DescribeDomains", ctype="application/x-www-form-urlencoded", body=b"Limit=1")
    check(A + "form POST", r.err("InvalidParameter"), r)
    # a GET's Content-Type: application/x-www-form-urlencoded only (signed as sent)
    emu.reset()
    for ct in ("application/json", "text/plain", "multipart/form-data",
               "application/x-www-form-urlencoded; charset=gbk",
               "application/x-www-form-urlencoded-x"):
        r = call(emu, "DescribeDomains", {"Limit": 1}, method="GET", ctype=ct)
        check(A + "GET with Content-Type %s refused" % ct, r.err("InvalidParameter") and
              "x-www-form-urlencoded" in (r.message or "") and ct[:20] in (r.message or ""), r)
    check(A + "refused GETs not executed", emu.stats()["executed"] == {},
          emu.stats()["executed"])
    for ct in ("application/x-www-form-urlencoded",
               "application/x-www-form-urlencoded; charset=utf-8",
               "Application/X-WWW-Form-Urlencoded"):
        r = call(emu, "DescribeDomains", {"Limit": 1}, method="GET", ctype=ct)
        check(A + "GET with Content-Type %s accepted" % ct, r.ok, r)
    r = call(emu, "DescribeDomains", body=b"{bad json")
    check(A + "bad JSON", r.err("InvalidParameter"), r)
    r = call(emu, "DescribeDomains", body=b"[1]")
    check(A + "JSON not an object", r.err("InvalidParameter"), r)

    # replay: accepted, counted
    emu.reset()
    req = build(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/r"]})
    r1, r2 = send(emu, *req), send(emu, *req)
    s = emu.stats()
    check(A + "same signature twice accepted", r1.ok and r2.ok and
          r1.resp["TaskId"] != r2.resp["TaskId"], (r1, r2))
    check(A + "signature_reused counted", s["signature_reused"] == 1 and
          s["executed"] == {"PurgeUrlsCache": 2} and s["nonce_reused"] == 0 and
          [e["signature_reused"] for e in s["request_log"]] == [False, True], s)
    emu.reset()
    check(A + "reset clears signature_reused", emu.stats()["signature_reused"] == 0)


def param_tests(emu):
    P = "params "
    emu.reset()
    u = ["http://host-0001.example.com/p"]
    r = call(emu, "PurgeUrlsCache", {"Urls": u, "Bogus": 1})
    check(P + "unknown", r.err("UnknownParameter", "Bogus"), r)
    r = call(emu, "PurgeUrlsCache", {})
    check(P + "missing", r.err("MissingParameter", "Urls"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": []})
    check(P + "empty required list", r.err("MissingParameter", "Urls"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": u[0]})
    check(P + "string for list<string>", r.err("InvalidParameter", "Urls"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": [1]})
    check(P + "int in list<string>", r.err("InvalidParameter", "Urls.0"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": u, "UrlEncode": "true"})
    check(P + "string for bool", r.err("InvalidParameter", "UrlEncode"), r)
    r = call(emu, "DescribeDomains", {"Limit": "10"})
    check(P + "string for int", r.err("InvalidParameter", "Limit"), r)
    r = call(emu, "DescribeDomains", {"Limit": True})
    check(P + "bool for int", r.err("InvalidParameter", "Limit"), r)
    r = call(emu, "DescribeDomains", {"Filters": {"Name": "domain"}})
    check(P + "object for list<DomainFilter>", r.err("InvalidParameter", "Filters"), r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain", "Value": ["x"], "Foo": 1}]})
    check(P + "unknown struct member", r.err("UnknownParameter", "Filters.0.Foo"), r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain"}]})
    check(P + "missing struct member", r.err("MissingParameter", "Filters.0.Value"), r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "color", "Value": ["x"]}]})
    check(P + "bad filter name", r.err("InvalidParameterValue", "Filters.0.Name"), r)
    r = call(emu, "AddCdnDomain", {"Domain": "new.example.com", "ServiceType": "web",
                                   "Origin": ["o.example.com"]})
    check(P + "list for struct", r.err("InvalidParameter", "Origin"), r)
    r = call(emu, "DescribeDomains", {"Limit": "x"}, method="GET")
    check(P + "GET non-numeric int", r.err("InvalidParameter", "Limit"), r)
    r = call(emu, "PurgeUrlsCache", method="GET", query="Urls.0=http%3A%2F%2Fa.com%2F&Urls=x")
    check(P + "GET list clash", r.err("InvalidParameter"), r)
    r = call(emu, "DescribeCdnData", {"StartTime": "2024-01-01T00:00:00Z",
                                      "EndTime": now_bj(), "Metric": "flux"})
    check(P + "datetime format", r.err("InvalidParameterValue", "StartTime"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": u, "Area": "moon"})
    check(P + "bad enum", r.err("InvalidParameterValue", "Area"), r)
    s = emu.stats()
    check(P + "refused: nothing executed", s["executed"] == {} and s["refreshed_urls"] == [], s)
    check(P + "log params names", s["request_log"][0]["params"] == ["Bogus", "Urls"],
          s["request_log"][0])


# every member of the Origin object in tccli's api.json
# (tccli/services/cdn/v20180606/api.json, objects.Origin.members), a valid value each
ORIGIN_ALL = {
    "Origins": ["o1.example.com:8080"], "OriginType": "domain",
    "ServerName": "www.example.com", "CosPrivateAccess": "off",
    "OriginPullProtocol": "follow", "BackupOrigins": ["b1.example.com"],
    "BackupOriginType": "domain", "BackupServerName": "backup.example.com",
    "BasePath": "/base",
    "PathRules": [{"Regex": False, "Path": "/a", "Origin": "p.example.com",
                   "ServerName": "p.example.com", "OriginArea": "CN", "ForwardUri": "/b",
                   "RequestHeaders": [{"HeaderMode": "set", "HeaderName": "X-A",
                                       "HeaderValue": "1"}], "FullMatch": True}],
    "PathBasedOrigin": [{"RuleType": "directory", "RulePaths": ["/d/"],
                         "Origin": ["d.example.com"]}],
    "Sni": {"Switch": "on", "ServerName": "sni.example.com"},
    "AdvanceHttps": {"CustomTlsStatus": "on", "TlsVersion": ["TLSv1.2"], "Cipher": "x",
                     "VerifyOriginType": "off", "CertInfo": {}, "OriginCertInfo": {}},
    "OriginCompany": "",
}


def origin_tests(emu):
    """The Origin structure (AddCdnDomain, UpdateDomainConfig): members and
    their types as api.json lists them."""
    O = "origin "
    emu.reset()
    add = {"Domain": "origin-a.example.com", "ServiceType": "web"}

    def refused(label, action, params, code, name, method="POST"):
        r = call(emu, action, params, method=method)
        check(O + label, r.err(code, name), r)
    refused("Origin.Origins as a string", "AddCdnDomain",
            dict(add, Origin={"Origins": "o.example.com"}), "InvalidParameter",
            "Origin.Origins")
    refused("Origin.Origins item not a string", "AddCdnDomain",
            dict(add, Origin={"Origins": [1]}), "InvalidParameter", "Origin.Origins.0")
    refused("Origin.BackupOrigins as a string", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "BackupOrigins": "b.example.com"}),
            "InvalidParameter", "Origin.BackupOrigins")
    refused("Origin.OriginType as a number", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "OriginType": 1}),
            "InvalidParameter", "Origin.OriginType")
    refused("Origin.OriginPullProtocol as a list", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "OriginPullProtocol": ["http"]}),
            "InvalidParameter", "Origin.OriginPullProtocol")
    refused("Origin.ServerName as a bool", "UpdateDomainConfig",
            {"Domain": "host-0001.example.com", "Origin": {"ServerName": True}},
            "InvalidParameter", "Origin.ServerName")
    refused("Origin.Sni as a string", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "Sni": "on"}),
            "InvalidParameter", "Origin.Sni")
    refused("Origin.Sni without ServerName", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "Sni": {"Switch": "on"}}),
            "MissingParameter", "Origin.Sni.ServerName")
    refused("Origin.PathRules.0.Regex as a string", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"],
                              "PathRules": [{"Regex": "false", "Path": "/a"}]}),
            "InvalidParameter", "Origin.PathRules.0.Regex")
    refused("Origin.PathBasedOrigin.0.Origin as a string", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "PathBasedOrigin": [
                {"RuleType": "file", "RulePaths": ["jpg"], "Origin": "d.example.com"}]}),
            "InvalidParameter", "Origin.PathBasedOrigin.0.Origin")
    refused("Origin.AdvanceHttps.TlsVersion as a string", "UpdateDomainConfig",
            {"Domain": "host-0001.example.com",
             "Origin": {"AdvanceHttps": {"TlsVersion": "TLSv1.2"}}},
            "InvalidParameter", "Origin.AdvanceHttps.TlsVersion")
    refused("unknown Origin member", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "Colour": "red"}),
            "UnknownParameter", "Origin.Colour")
    refused("unknown Origin member (UpdateDomainConfig)", "UpdateDomainConfig",
            {"Domain": "host-0001.example.com", "Origin": {"origins": ["o.example.com"]}},
            "UnknownParameter", "Origin.origins")
    refused("unknown Origin.Sni member", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "Sni": {
                "Switch": "on", "ServerName": "s.example.com", "Port": 443}}),
            "UnknownParameter", "Origin.Sni.Port")
    refused("GET Origin.Origins=x (not flattened as a list)", "AddCdnDomain",
            dict(add, Origin={"Origins": "o.example.com"}), "InvalidParameter",
            "Origin.Origins", method="GET")
    refused("GET unknown Origin member", "AddCdnDomain",
            dict(add, Origin={"Origins": ["o.example.com"], "Colour": "red"}),
            "UnknownParameter", "Origin.Colour", method="GET")
    s = emu.stats()
    check(O + "refused: nothing executed", s["executed"] == {}, s["executed"])
    r = call(emu, "AddCdnDomain", dict(add, Origin=ORIGIN_ALL))
    check(O + "every api.json member of Origin accepted (POST)", r.ok, r)
    r = call(emu, "UpdateDomainConfig", {"Domain": "host-0001.example.com",
                                         "Origin": ORIGIN_ALL})
    check(O + "every api.json member of Origin accepted (UpdateDomainConfig)", r.ok, r)
    r = call(emu, "AddCdnDomain", {"Domain": "origin-b.example.com", "ServiceType": "web",
                                   "Origin": {"Origins": ["o1.example.com", "o2.example.com"],
                                              "OriginType": "domain",
                                              "BackupOrigins": ["b.example.com"],
                                              "ServerName": "s.example.com"}}, method="GET")
    check(O + "GET Origin.Origins.0/.1, Origin.BackupOrigins.0 accepted", r.ok, r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain", "Value": [
        "origin-b.example.com"]}]})
    o = (r.resp.get("Domains") or [{}])[0].get("Origin", {})
    check(O + "GET Origin read back", o.get("Origins") == ["o1.example.com", "o2.example.com"]
          and o.get("BackupOrigins") == ["b.example.com"] and
          o.get("ServerName") == "s.example.com", o)


def purge_tests(emu):
    U = "purge "
    emu.reset()
    bad = "http://host-0001.example.com/中文.jpg"
    r = call(emu, "PurgeUrlsCache", {"Urls": [bad]})
    check(U + "non-ASCII without UrlEncode", r.err("InvalidParameter.CdnParamError", "Urls.0"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": [bad], "UrlEncode": False})
    check(U + "non-ASCII with UrlEncode false", r.err("InvalidParameter.CdnParamError"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": [bad], "UrlEncode": True})
    check(U + "non-ASCII with UrlEncode", r.ok and r.resp.get("TaskId"), r)
    r2 = call(emu, "PurgeUrlsCache", {"Urls": [bad], "UrlEncode": True}, method="GET")
    check(U + "non-ASCII with UrlEncode (GET)", r2.ok, r2)
    log = emu.stats()["request_log"]
    check(U + "log url_encode", [e["url_encode"] for e in log] == [None, False, True, True], log)
    r = call(emu, "PurgeUrlsCache", {"Urls": ["host-0001.example.com/x"]})
    check(U + "no scheme", r.err("InvalidParameter.CdnParamError", "Urls.0"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": ["https://*.example.com/x"]})
    check(U + "wildcard", r.err("InvalidParameter.CdnPurgeWildcardNotAllowed"), r)

    emu.reset()
    urls = ["http://host-0001.example.com/%d.html" % i for i in range(2)]
    t0 = now_bj(-5)
    r = call(emu, "PurgeUrlsCache", {"Urls": urls, "Area": "overseas"})
    tid = r.resp.get("TaskId")
    check(U + "PurgeUrlsCache", r.ok and isinstance(tid, str) and tid and
          sorted(r.resp) == ["RequestId", "TaskId"], r)
    r = call(emu, "PurgePathCache", {"Paths": ["http://host-0002.example.com/d/"],
                                     "FlushType": "delete"})
    ptid = r.resp.get("TaskId")
    check(U + "PurgePathCache", r.ok and ptid, r)
    r = call(emu, "PurgePathCache", {"Paths": ["http://host-0002.example.com/d/"],
                                     "FlushType": "all"})
    check(U + "bad FlushType", r.err("InvalidParameterValue", "FlushType"), r)
    r = call(emu, "PurgePathCache", {"Paths": ["http://host-0002.example.com/d/"]})
    check(U + "FlushType required", r.err("MissingParameter", "FlushType"), r)
    s = emu.stats()
    check(U + "recorded", s["refreshed_urls"] == urls and
          s["refreshed_dirs"] == ["http://host-0002.example.com/d/"], s)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid})
    logs = r.resp.get("PurgeLogs", [])
    check(U + "task processing", r.ok and r.resp.get("TotalCount") == 2 and
          [l["Url"] for l in logs] == urls and
          all(l["Status"] == "process" and l["TaskId"] == tid and l["PurgeType"] == "url" and
              l["FlushType"] == "flush" for l in logs) and
          sorted(logs[0]) == ["CreateTime", "FlushType", "PurgeType", "Status", "TaskId", "Url"],
          r)
    r = call(emu, "DescribePurgeTasks", {"StartTime": t0, "EndTime": now_bj(5),
                                         "PurgeType": "path"}, method="GET")
    logs = r.resp.get("PurgeLogs", [])
    check(U + "by time range, PurgeType path (GET)", r.ok and len(logs) == 1 and
          logs[0]["TaskId"] == ptid and logs[0]["FlushType"] == "delete" and
          logs[0]["PurgeType"] == "path", r)
    r = call(emu, "DescribePurgeTasks", {"StartTime": now_bj(600), "EndTime": now_bj(700)})
    check(U + "time range without tasks", r.ok and r.resp.get("TotalCount") == 0, r)
    r = call(emu, "DescribePurgeTasks", {"PurgeType": "url"})
    check(U + "TaskId or StartTime required", r.err("MissingParameter", "TaskId"), r)
    r = call(emu, "DescribePurgeTasks", {"StartTime": t0})
    check(U + "EndTime with StartTime", r.err("MissingParameter", "EndTime"), r)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid, "StartTime": t0})
    check(U + "TaskId with StartTime only", r.ok and r.resp.get("TotalCount") == 2, r)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid, "Area": "overseas", "Offset": 1,
                                         "Limit": 5, "Keyword": "host-0001.example.com"})
    check(U + "filters and paging", r.ok and r.resp.get("TotalCount") == 2 and
          len(r.resp.get("PurgeLogs", [])) == 1, r)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid, "Area": "mainland"})
    check(U + "area filter", r.ok and r.resp.get("TotalCount") == 0, r)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid, "Keyword": urls[1]})
    check(U + "keyword URL", r.ok and r.resp.get("TotalCount") == 1, r)
    time.sleep(0.35)
    r = call(emu, "DescribePurgeTasks", {"TaskId": tid, "Status": "done"})
    check(U + "task done after task_seconds", r.ok and r.resp.get("TotalCount") == 2 and
          all(l["Status"] == "done" for l in r.resp["PurgeLogs"]), r)

    # push
    r = call(emu, "PushUrlsCache", {"Urls": ["http://host-0003.example.com/big.bin"],
                                    "Area": "global", "UserAgent": "cdnemu-test",
                                    "Layer": "middle", "ParseM3U8": False,
                                    "DisableRange": False,
                                    "Headers": [{"Name": "X-A", "Value": "1"}]})
    pt = r.resp.get("TaskId")
    check(U + "PushUrlsCache", r.ok and pt, r)
    r = call(emu, "DescribePushTasks", {"TaskId": pt})
    logs = r.resp.get("PushLogs", [])
    check(U + "push task processing", r.ok and len(logs) == 1 and logs[0]["Status"] ==
          "process" and logs[0]["Percent"] == 0 and logs[0]["Area"] == "global" and
          sorted(logs[0]) == ["Area", "CreateTime", "Percent", "Status", "TaskId",
                              "UpdateTime", "Url"], r)
    time.sleep(0.35)
    r = call(emu, "DescribePushTasks", {"StartTime": now_bj(-60), "EndTime": now_bj(60)})
    logs = r.resp.get("PushLogs", [])
    check(U + "push task done", r.ok and logs and logs[0]["Status"] == "done" and
          logs[0]["Percent"] == 100, r)
    r = call(emu, "PushUrlsCache", {"Urls": ["http://host-0003.example.com/x"],
                                    "Headers": [{"Name": "X", "Value": "1"}] * 21})
    check(U + "21 push headers", r.err("InvalidParameterValue", "Headers"), r)
    r = call(emu, "PushUrlsCache", {"Urls": ["http://host-0003.example.com/x"],
                                    "Headers": [{"Name": "X"}]})
    check(U + "push header without Value", r.err("MissingParameter", "Headers.0.Value"), r)
    s = emu.stats()
    check(U + "prefetched recorded", s["prefetched_urls"] == [
        "http://host-0003.example.com/big.bin"], s["prefetched_urls"])


def limit_tests(emu):
    L = "limits "
    emu.reset()
    many = ["http://host-0001.example.com/%d" % i for i in range(1001)]
    r = call(emu, "PurgeUrlsCache", {"Urls": many})
    check(L + "1001 URLs", r.err("LimitExceeded.CdnPurgeUrlExceedBatchLimit"), r)
    r = call(emu, "PurgeUrlsCache", {"Urls": many[:1000]})
    check(L + "1000 URLs ok", r.ok, r)
    r = call(emu, "DescribePurgeQuota")
    q = {x["Area"]: x for x in r.resp.get("UrlPurge", [])}
    check(L + "purge quota used", r.ok and q["mainland"] == {
        "Batch": 1000, "Total": 10000, "Available": 9000, "Area": "mainland"} and
        q["overseas"]["Available"] == 10000 and
        [x["Batch"] for x in r.resp["PathPurge"]] == [500, 500] and
        [x["Total"] for x in r.resp["PathPurge"]] == [100, 100], r)
    r = call(emu, "PurgePathCache", {"Paths": ["http://h/%d/" % i for i in range(501)],
                                     "FlushType": "flush"})
    check(L + "501 paths", r.err("LimitExceeded.CdnPurgePathExceedBatchLimit"), r)
    r = call(emu, "PushUrlsCache", {"Urls": many[:501]})
    check(L + "501 push URLs", r.err("LimitExceeded.CdnPushExceedBatchLimit"), r)
    c = emu.config(purge_url_day_limit=5, purge_path_day_limit=2, push_url_day_limit=3)
    check(L + "config day limits", c.get("ok") and c["config"]["purge_url_day_limit"] == 5, c)
    emu.reset()
    r1 = call(emu, "PurgeUrlsCache", {"Urls": many[:3]})
    r2 = call(emu, "PurgeUrlsCache", {"Urls": many[:3]})
    r3 = call(emu, "PurgeUrlsCache", {"Urls": many[:3], "Area": "overseas"})
    check(L + "URL day limit per area", r1.ok and r3.ok and
          r2.err("LimitExceeded.CdnPurgeUrlExceedDayLimit"), (r1, r2, r3))
    r = call(emu, "PurgePathCache", {"Paths": ["http://h/a/", "http://h/b/", "http://h/c/"],
                                     "FlushType": "flush"})
    check(L + "path day limit", r.err("LimitExceeded.CdnPurgePathExceedDayLimit"), r)
    r1 = call(emu, "PushUrlsCache", {"Urls": many[:2], "Area": "global"})
    r2 = call(emu, "PushUrlsCache", {"Urls": many[:2], "Area": "overseas"})
    check(L + "global push uses both areas", r1.ok and
          r2.err("LimitExceeded.CdnPushExceedDayLimit"), (r1, r2))
    r = call(emu, "DescribePushQuota")
    check(L + "push quota", r.ok and [(x["Area"], x["Batch"], x["Total"], x["Available"])
                                      for x in r.resp.get("UrlPush", [])] ==
          [("mainland", 500, 3, 1), ("overseas", 500, 3, 1)], r)
    r = call(emu, "DescribePurgeQuota")
    check(L + "purge quota available", [x["Available"] for x in r.resp.get("UrlPurge", [])] ==
          [2, 2], r)
    emu.reset()
    r = call(emu, "DescribePurgeQuota")
    check(L + "reset restores quota", [x["Available"] for x in r.resp.get("UrlPurge", [])] ==
          [5, 5], r)
    emu.config(purge_url_day_limit=10000, purge_path_day_limit=100, push_url_day_limit=1000)
    r = call(emu, "DescribeCdnData", {"StartTime": now_bj(-3600), "EndTime": now_bj(),
                                      "Metric": "flux",
                                      "Domains": ["d%d.example.com" % i for i in range(31)]})
    check(L + "31 stat domains", r.err("InvalidParameter.CdnStatTooManyDomains"), r)
    r = call(emu, "DescribeDomains", {"Limit": 1001})
    check(L + "DescribeDomains Limit 1001", r.err("InvalidParameterValue", "Limit"), r)
    r = call(emu, "DescribeDomains", {"Limit": 1000})
    check(L + "DescribeDomains Limit 1000", r.ok and len(r.resp["Domains"]) == 57, r)
    r = call(emu, "DescribeDomainsConfig", {"Limit": 101})
    check(L + "DescribeDomainsConfig Limit 101", r.err("InvalidParameterValue", "Limit"), r)
    r = call(emu, "DescribeCdnDomainLogs", {"Domain": "host-0001.example.com",
                                            "StartTime": now_bj(-7200), "EndTime": now_bj(),
                                            "Limit": 1001})
    check(L + "DescribeCdnDomainLogs Limit 1001", r.err("InvalidParameterValue", "Limit"), r)
    # rate limit
    emu.config(rate_limit=2)
    rs = [call(emu, "DescribePurgeQuota") for _ in range(3)]
    emu.config(rate_limit=0)
    check(L + "rate_limit", rs[0].ok and rs[1].ok and rs[2].err("RequestLimitExceeded"), rs)


def domain_tests(emu):
    D = "domains "
    emu.reset()
    r = call(emu, "DescribeDomains", {})
    d0 = (r.resp.get("Domains") or [{}])[0]
    check(D + "BriefDomain", r.ok and r.resp.get("TotalNumber") == 57 and
          len(r.resp["Domains"]) == 57 and d0.get("Domain") == "host-0001.example.com" and
          d0.get("ResourceId") == "cdn-180001" and d0.get("Status") == "online" and
          d0.get("Cname") == "host-0001.example.com.cdn.dnsv1.com" and
          sorted(d0) == sorted(["ResourceId", "AppId", "Domain", "Cname", "Status",
                                "ProjectId", "ServiceType", "CreateTime", "UpdateTime",
                                "Origin", "Disable", "Area", "Readonly", "Product",
                                "ParentHost"]), d0)
    name = "host-0007.example.com"
    r = call(emu, "DeleteCdnDomain", {"Domain": name})
    check(D + "delete online refused", r.err("ResourceUnavailable.CdnHostIsNotOffline"), r)
    r = call(emu, "StartCdnDomain", {"Domain": name})
    check(D + "start online refused", r.err("InvalidParameter.CdnHostInvalidStatus"), r)
    r = call(emu, "StopCdnDomain", {"Domain": name})
    check(D + "stop", r.ok and sorted(r.resp) == ["RequestId"], r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "status", "Value": ["offline"]}]})
    check(D + "status filter", r.ok and [d["Domain"] for d in r.resp["Domains"]] == [name], r)
    r = call(emu, "PushUrlsCache", {"Urls": ["http://%s/a" % name]})
    check(D + "push to a stopped domain", r.err("ResourceUnavailable.CdnHostIsNotOnline"), r)
    r = call(emu, "DeleteCdnDomain", {"Domain": name})
    check(D + "delete stopped", r.ok, r)
    r = call(emu, "DescribeDomains", {})
    check(D + "deleted gone", r.resp.get("TotalNumber") == 56, r.resp.get("TotalNumber"))
    r = call(emu, "StopCdnDomain", {"Domain": name})
    check(D + "unknown domain", r.err("ResourceNotFound.CdnHostNotExists"), r)
    r = call(emu, "AddCdnDomain", {"Domain": name, "ServiceType": "download",
                                   "Origin": {"Origins": ["o7.example.com"]}})
    r2 = call(emu, "DescribeDomains", {"Limit": 1000})
    again = [d for d in r2.resp.get("Domains", []) if d["Domain"] == name]
    check(D + "deleted domain added again: once", r.ok and r2.resp.get("TotalNumber") == 57
          and len(again) == 1 and again[0]["ServiceType"] == "download", (r, again))
    r = call(emu, "AddCdnDomain", {"Domain": "new.example.com", "ServiceType": "web",
                                   "Origin": {"Origins": ["origin.new.example.com"]},
                                   "Cache": {"RuleCache": []}})
    check(D + "add", r.ok, r)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain",
                                                   "Value": ["new.example.com"]}]})
    check(D + "added is processing", r.ok and r.resp["Domains"][0]["Status"] == "processing"
          and r.resp["Domains"][0]["Origin"]["Origins"] == ["origin.new.example.com"], r)
    r = call(emu, "AddCdnDomain", {"Domain": "host-0001.example.com", "ServiceType": "web",
                                   "Origin": {"Origins": ["o.example.com"]}})
    check(D + "add existing", r.err("ResourceInUse.CdnHostExists"), r)
    r = call(emu, "AddCdnDomain", {"Domain": "x.example.com", "ServiceType": "video",
                                   "Origin": {"Origins": ["o.example.com"]}})
    check(D + "bad ServiceType", r.err("InvalidParameter.CdnInvalidParamServiceType"), r)
    r = call(emu, "AddCdnDomain", {"Domain": "not a host", "ServiceType": "web",
                                   "Origin": {"Origins": ["o.example.com"]}})
    check(D + "bad domain", r.err("InvalidParameter.CdnHostInvalidParam"), r)
    time.sleep(0.35)
    r = call(emu, "DescribeDomains", {"Filters": [{"Name": "domain", "Value": ["new."],
                                                   "Fuzzy": True}]})
    check(D + "added online after task_seconds", r.ok and
          r.resp["Domains"][0]["Status"] == "online", r)
    r = call(emu, "UpdateDomainConfig", {"Domain": "host-0002.example.com",
                                         "Referer": {"Switch": "on", "RefererRules": []},
                                         "ServiceType": "download"})
    check(D + "UpdateDomainConfig", r.ok, r)
    r = call(emu, "ModifyDomainConfig", {"Domain": "host-0002.example.com",
                                         "Route": "Quic.Switch",
                                         "Value": json.dumps({"update": "on"})})
    check(D + "ModifyDomainConfig", r.ok, r)
    r = call(emu, "ModifyDomainConfig", {"Domain": "host-0002.example.com",
                                         "Route": "Quic.Switch", "Value": "on"})
    check(D + "ModifyDomainConfig bad Value", r.err("InvalidParameterValue", "Value"), r)
    r = call(emu, "DescribeDomainsConfig", {"Filters": [{"Name": "domain", "Value": [
        "host-0002.example.com"]}]})
    dd = (r.resp.get("Domains") or [{}])[0]
    check(D + "DescribeDomainsConfig reflects the updates", r.ok and
          dd.get("Referer") == {"Switch": "on", "RefererRules": []} and
          dd.get("ServiceType") == "download" and dd.get("Quic", {}).get("Switch") == "on" and
          dd.get("Cache") and dd.get("Https", {}).get("Switch") == "off", dd)
    r = call(emu, "DescribeIpStatus", {"Domain": "host-0002.example.com", "Layer": "last"})
    check(D + "DescribeIpStatus", r.ok and r.resp.get("TotalCount") == len(r.resp["Ips"]) > 0
          and sorted(r.resp["Ips"][0]) == ["City", "District", "Ip", "Ipv6", "Isp", "Status"], r)
    r = call(emu, "DescribeCdnDomainLogs", {"Domain": "host-0002.example.com",
                                            "StartTime": "2024-03-01 00:00:00",
                                            "EndTime": "2024-03-01 23:59:59",
                                            "Area": "global", "Limit": 10, "Offset": 2})
    check(D + "DescribeCdnDomainLogs", r.ok and r.resp.get("TotalCount") == 48 and
          len(r.resp["DomainLogs"]) == 10 and sorted(r.resp["DomainLogs"][0]) ==
          ["Area", "EndTime", "FileSize", "LogName", "LogPath", "StartTime"] and
          r.resp["DomainLogs"][0]["StartTime"] == "2024-03-01 01:00:00", r)
    r = call(emu, "DescribeCdnData", {"StartTime": "2024-03-01 00:00:00",
                                      "EndTime": "2024-03-01 01:00:00", "Metric": "flux",
                                      "Domains": ["a.example.com", "b.example.com"],
                                      "Detail": True, "Interval": "5min"})
    data = r.resp.get("Data", [])
    check(D + "DescribeCdnData", r.ok and r.resp.get("Interval") == "5min" and
          [x["Resource"] for x in data] == ["a.example.com", "b.example.com"] and
          len(data[0]["CdnData"][0]["DetailData"]) == 13 and
          data[0]["CdnData"][0]["SummarizedData"]["Name"] == "sum", r)
    r = call(emu, "DescribeCdnData", {"StartTime": "2024-03-01 00:00:00",
                                      "EndTime": "2024-03-03 00:00:00", "Metric": "flux",
                                      "Interval": "min"})
    check(D + "DescribeCdnData bad Interval", r.err("InvalidParameter.CdnInvalidParamInterval"), r)
    r = call(emu, "DescribeCdnData", {"StartTime": "2024-03-01 00:00:00",
                                      "EndTime": "2024-03-01 01:00:00", "Metric": "speed"})
    check(D + "DescribeCdnData bad Metric", r.err("InvalidParameter.CdnStatInvalidMetric"), r)
    emu.reset()
    r = call(emu, "DescribeDomains", {"Limit": 1000})
    check(D + "reset restores the domains", r.resp.get("TotalNumber") == 57 and
          all(d["Status"] == "online" for d in r.resp["Domains"]), r.resp.get("TotalNumber"))


def fault_tests(emu):
    F = "faults "
    emu.reset()

    def q():
        return call(emu, "DescribePurgeQuota")
    emu.faults({"kind": "throttle"})
    check(F + "throttle", q().err("RequestLimitExceeded"))
    check(F + "consumed", q().ok)
    emu.faults({"kind": "stale"})
    check(F + "stale", q().err("AuthFailure.SignatureExpire"))
    r = emu.faults({"kind": "error", "code": "InternalError", "count": 2})
    check(F + "error fault queued", r.get("faults") == [
        {"kind": "error", "count": 2, "code": "InternalError"}], r)
    # a v2 request passes the error fault by
    import base64
    p = {"Action": "DescribeCdnHosts", "SecretId": "AKIDtest", "Timestamp": str(int(time.time())),
         "Nonce": str(int.from_bytes(os.urandom(5), "big")), "limit": "1"}
    src = "GET127.0.0.1/v2/index.php?" + "&".join("%s=%s" % kv for kv in sorted(p.items()))
    p["Signature"] = base64.b64encode(hmac.new(b"testkey", src.encode(), hashlib.sha1)
                                      .digest()).decode()
    c = emu.conn()
    c.request("GET", "/v2/index.php?" + "&".join(pct(k) + "=" + pct(v) for k, v in p.items()))
    v2 = json.loads(c.getresponse().read())
    c.close()
    check(F + "v2 passes the error fault by", v2.get("code") == 0 and
          emu.stats()["faults_pending"] == [{"kind": "error", "count": 2, "code": "InternalError"}],
          v2)
    r1, r2, r3 = q(), q(), q()
    check(F + "error InternalError x2", r1.err("InternalError") and r2.err("InternalError") and
          r3.ok, (r1, r2, r3))
    emu.faults({"kind": "error", "code": "AuthFailure.SignatureExpire", "message": "late",
                "action": "PurgeUrlsCache"})
    check(F + "error fault action filter", q().ok)
    r = call(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/f"]})
    check(F + "error with message", r.err("AuthFailure.SignatureExpire") and
          r.message == "late", r)
    emu.faults({"kind": "error", "code": "RequestLimitExceeded"})
    r = q()
    check(F + "error RequestLimitExceeded", r.err("RequestLimitExceeded"), r)
    for bad in ({"kind": "error"}, {"kind": "error", "code": "bad code"},
                {"kind": "error", "code": "X", "message": 3},
                {"kind": "throttle", "code": "X"}, {"kind": "error", "code": "X", "extra": 1}):
        r = emu.faults(bad)
        check(F + "refused %s" % json.dumps(bad), r["_status"] == 400 and r.get("error"), r)
    r = emu.faults({"kind": "no_task_id", "action": "PurgeUrlsCache"})
    check(F + "no_task_id may name a 3.0 task action", r["_status"] == 200, r)
    r = call(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/n"]})
    s = emu.stats()
    check(F + "no_task_id", r.ok and "TaskId" not in r.resp and s["refreshed_urls"] == [] and
          "PurgeUrlsCache" not in s["executed"], (r, s["executed"]))
    emu.faults({"kind": "http500"})
    r = q()
    check(F + "http500 raw", r.status == 500 and r.json is None, r)
    emu.faults({"kind": "badjson"})
    r = q()
    check(F + "badjson", r.status == 200 and r.json is None, r)
    emu.faults({"kind": "truncated"})
    r = q()
    check(F + "truncated", isinstance(r.exc, http.client.IncompleteRead), r)
    emu.faults({"kind": "slow", "seconds": 0.3})
    r = q()
    check(F + "slow", r.ok and r.elapsed >= 0.3, r)
    emu.faults({"kind": "close"})
    req = build(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/c"]})
    r1, r2 = send(emu, *req), send(emu, *req)
    check(F + "close then resend", dropped(r1) and r2.ok, (r1, r2))
    # drop_after on a reused connection: executed, resend executed again
    emu.reset()
    emu.faults({"kind": "drop_after", "action": "PurgeUrlsCache", "reused_only": True})
    c = emu.conn()
    r0 = call(emu, "DescribePurgeQuota", conn=c)
    req = build(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/d"]})
    r1 = send(emu, *req, conn=c)
    c.close()
    r2 = send(emu, *req)
    s = emu.stats()
    check(F + "drop_after: no answer, resend accepted", r0.ok and dropped(r1) and r2.ok,
          (r0, r1, r2))
    check(F + "drop_after: executed twice, signature_reused 1", s["executed"] == {
        "DescribePurgeQuota": 1, "PurgeUrlsCache": 2} and s["dropped"] == 1 and
        s["signature_reused"] == 1 and s["requests_on_reused_connection"] == 1 and
        s["refreshed_urls"] == ["http://host-0001.example.com/d"] * 2, s)
    # bad signature leaves a vendor fault queued
    emu.reset()
    emu.faults({"kind": "error", "code": "InternalError"})
    r = call(emu, "DescribePurgeQuota", key="nope")
    check(F + "bad signature before fault", r.err("AuthFailure.SignatureFailure") and
          emu.stats()["faults_pending"] != [], r)
    check(F + "then the fault", q().err("InternalError"))


def config_log_tests(emu):
    C = "config/log "
    emu.reset()
    c = emu.control("GET", "config")
    check(C + "GET config lists the 3.0 settings", c.get("deprecated_warning", 0) is None and
          c.get("tc3_token") == "cdnemu-sts-token" and c.get("rate_limit") == 0 and
          c.get("purge_url_day_limit") == 10000 and c.get("latency") == 0, c)
    c = emu.config(deprecated_warning="This API is deprecated; use X.")
    check(C + "set deprecated_warning", c.get("ok"), c)
    r = call(emu, "DescribeDomains", {"Limit": 1})
    r2 = call(emu, "DescribeDomains", {"Limit": "x"})
    emu.config(deprecated_warning=None)
    r3 = call(emu, "DescribeDomains", {"Limit": 1})
    check(C + "DeprecatedWarning", r.ok and r.resp.get("DeprecatedWarning") ==
          "This API is deprecated; use X." and "DeprecatedWarning" not in r2.resp and
          "DeprecatedWarning" not in r3.resp, (r, r2, r3))
    for bad in ({"deprecated_warning": 3}, {"rate_limit": -1}, {"purge_url_day_limit": "x"},
                {"tc3_token": True}):
        r = emu.control("POST", "config", bad)
        check(C + "bad config %s refused" % json.dumps(bad), r["_status"] == 400, r)
    emu.reset()
    c = emu.conn()
    call(emu, "PurgeUrlsCache", {"Urls": ["http://host-0001.example.com/l"], "UrlEncode": True},
         ctype="application/json; charset=utf-8", conn=c,
         headers={"X-TC-Region": "ap-shanghai", "X-TC-RequestClient": "cdnkit-test"})
    call(emu, "DescribeDomains", {"Limit": 1}, method="GET", conn=c,
         signed=("content-type", "host", "x-tc-action"))
    c.close()
    log = emu.stats()["request_log"]
    p, g = log
    keys = ["action", "api", "body_bytes", "content_type", "error", "language", "method",
            "params", "path", "query_bytes", "region", "request_client", "reused",
            "signature_reused", "signed_headers", "timestamp", "token", "unsigned_payload",
            "url_encode", "version"]
    check(C + "log keys", sorted(p) == keys and sorted(g) == keys, (sorted(p), sorted(g)))
    check(C + "log POST entry", p["api"] == "3.0" and p["action"] == "PurgeUrlsCache" and
          p["method"] == "POST" and p["content_type"] == "application/json; charset=utf-8" and
          p["signed_headers"] == ["content-type", "host"] and p["token"] is False and
          p["region"] == "ap-shanghai" and p["language"] is None and
          p["params"] == ["UrlEncode", "Urls"] and p["url_encode"] is True and
          p["version"] == "2018-06-06" and p["error"] is None and p["path"] == "/" and
          p["request_client"] == "cdnkit-test" and p["reused"] is False, p)
    check(C + "log GET entry", g["method"] == "GET" and g["content_type"] ==
          "application/x-www-form-urlencoded" and g["body_bytes"] == 0 and
          g["query_bytes"] == len("Limit=1") and g["params"] == ["Limit"] and
          g["signed_headers"] == ["content-type", "host", "x-tc-action"] and
          g["url_encode"] is None and g["reused"] is True, g)


def sample(name, t, action):
    """A plausible value of table type `t` for parameter `name` of `action`."""
    special = {
        ("AddCdnDomain", "Domain"): "added.example.com",
        ("StartCdnDomain", "Domain"): "host-0010.example.com",
        ("DeleteCdnDomain", "Domain"): "host-0011.example.com",
        ("DescribeDistrictIspData", "Domains"): ["host-0001.example.com"],
        ("ModifyDomainConfig", "Route"): "Referer",
        ("ModifyDomainConfig", "Value"): json.dumps({"update": {"Switch": "off"}}),
        ("PurgePathCache", "FlushType"): "flush",
        ("AddCdnDomain", "ServiceType"): "web",
        ("DescribeReportData", "ReportType"): "daily",
        ("DescribeReportData", "Area"): "mainland",
        ("UpdatePayType", "Area"): "mainland",
    }
    if (action, name) in special:
        return special[(action, name)]
    if name == "Domain":
        return "host-0001.example.com"
    if name in ("Urls", "Paths"):
        return ["http://host-0001.example.com/all-actions/"]
    if name == "Metric":
        return "flux"
    if name == "Origin":
        return {"Origins": ["origin.example.com"]}
    if name == "DomainAreaConfigs":
        return [{"Domain": "host-0001.example.com", "Area": ["mainland"]}]
    if t == "datetime":
        return now_bj(-3600) if name == "StartTime" else now_bj()
    if t == "date":
        return time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600 - 86400))
    if t == "datetime_iso":
        return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(
            time.time() + 8 * 3600 - (3600 if name == "StartTime" else 0)))
    if t in ("int", "int64", "uint64"):
        return 10
    if t == "bool":
        return True
    if t.startswith("list<"):
        inner = t[5:-1]
        return [sample(name, inner, action)] if inner in ("string", "int", "int64") else [{}]
    if t == "string":
        return "x"
    return {}


def all_actions_tests(emu, method):
    """Every action of the table, called with its required parameters."""
    v3 = selftestlib.emulator_module("vendor_qcloud_v3")
    table = v3.load_table(TABLE)
    emu.reset()
    # Start and Delete need a stopped domain (Stop itself runs on host-0001)
    for d in ("host-0010.example.com", "host-0011.example.com"):
        call(emu, "StopCdnDomain", {"Domain": d})
    failures = []
    generic = []
    for action in sorted(table):
        params = {n: sample(n, t, action) for n, t, req in table[action] if req}
        if action == "DescribePurgeTasks" or action == "DescribePushTasks":
            params = {"StartTime": now_bj(-3600), "EndTime": now_bj()}
        if action == "DescribeCertDomains":
            params = {"CertId": "cert-1"}
        r = call(emu, action, params, method=method)
        if not r.ok:
            failures.append((action, r))
        elif not hasattr(v3.QcloudV3, "act_" + action):
            if sorted(r.resp) != ["RequestId"]:
                generic.append((action, r))
    check("all 52 actions answered (%s)" % method, not failures and len(table) == 52,
          failures[:4])
    check("generic actions answer RequestId only (%s)" % method, not generic, generic[:3])
    s = emu.stats()
    check("all actions executed (%s)" % method, len(s["executed"]) == 52, sorted(
        set(table) - set(s["executed"])))
    # a wrong parameter is refused for every action
    bad = []
    for action in sorted(table):
        r = call(emu, action, {"NoSuchParam": 1}, method=method)
        if not r.err("UnknownParameter", "NoSuchParam"):
            bad.append((action, r))
    check("every action refuses an unknown parameter (%s)" % method, not bad, bad[:3])
    miss = []
    for action in sorted(table):
        req = [n for n, t, rq in table[action] if rq]
        if not req:
            continue
        r = call(emu, action, {}, method=method)
        if not r.err("MissingParameter", req[0]):
            miss.append((action, r))
    check("every action names its first missing parameter (%s)" % method, not miss, miss[:3])


def main():
    t0 = time.monotonic()
    guarded(vector_tests)
    emu = Emu(["--task-seconds", "0.3", "--hosts", "57"])
    try:
        for fn in (transport_tests, auth_tests, param_tests, origin_tests, purge_tests,
                   limit_tests, domain_tests, fault_tests, config_log_tests):
            guarded(fn, emu)
        guarded(all_actions_tests, emu, "POST")
        guarded(all_actions_tests, emu, "GET")
    finally:
        emu.stop()
    return selftestlib.finish("selftest-qcloud-v3", t0)


if __name__ == "__main__":
    sys.exit(main())
