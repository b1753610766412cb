#!/usr/bin/env python3
"""Self-test of cdnemu.py (stdlib only).  Run: python3 spec/emulator/selftest.py

Checks the vendor registry of cdnemu.py, then starts each vendor's emulator on
a random loopback port with a small private fixture, signs requests with
signers written for the test (here and in selftestlib.py; checked first against
fixed known-answer vectors, among them the worked examples of the vendors'
signature documentation), and exercises auth, paging, tasks, faults, the
request log, keep-alive and concurrency. Then smoke-tests the real
fixtures/<vendor>.json if they exist.
Prints `selftest: N passed, N failed`; exit status 1 on failure.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid

import selftestlib
from selftestlib import HERE, ali_sign, check, dropped, form, guarded, send, utc


# --------------------------------------------------------------------------
# signers written for the test (deliberately not imported from cdnemu;
# ali_sign, the Alibaba Cloud V2 signer, is in selftestlib)
# --------------------------------------------------------------------------
def qc_sign(method, host, path, params, secret):
    items = sorted((k.replace("_", "."), v) for k, v in params.items() if k != "Signature")
    src = method + host + path + "?" + "&".join(k + "=" + v for k, v in items)
    algo = hashlib.sha256 if params.get("SignatureMethod") == "HmacSHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(secret.encode(), src.encode(), algo).digest()).decode()


def check_vectors():
    base = {"SignatureVersion": "1.0", "Format": "JSON", "Timestamp": "2015-08-06T02:19:46Z",
            "AccessKeyId": "testid", "SignatureMethod": "HMAC-SHA1", "Version": "2014-11-11",
            "SignatureNonce": "9b7a44b0-3be1-11e5-8c73-08002700c460"}
    p = dict(base, Action="DescribeCdnService")
    check("vector aliyun 1", ali_sign("GET", p, "testsecret")[0] == "KkkQOf0ymKf4yVZLggy6kYiwgFs=")
    p = dict(base, Action="RefreshObjectCaches", ObjectType="File",
             ObjectPath="www.example.com/a b.jpg\nwww.example.com/*x~y")
    check("vector aliyun 2", ali_sign("GET", p, "testsecret")[0] == "y/x1Jvsi98+Xa3zzJjfWY0PIAy4=")
    key = "pxPgRWDbCy86ZYyqBTDk7WmeRZSmPco0"
    host, path = "cdn.api.qcloud.com", "/v2/index.php"
    p = {"Action": "DescribeCdnHosts", "Nonce": "13029",
         "SecretId": "AKIDT8G5AsY1D3MChWooNq1rFSw1fyBVCX9D", "Timestamp": "1463122059",
         "limit": "10", "offset": "0"}
    check("vector qcloud GET", qc_sign("GET", host, path, p, key) == "bWMMAR1eFGjZ5KWbfxTlBiLiNLc=")
    check("vector qcloud POST", qc_sign("POST", host, path, p, key) == "i/KcLp6VaOtUmVtT0dqtLpKJOkg=")
    p = dict(p, Nonce="48059", Timestamp="1502197934", SignatureMethod="HmacSHA256")
    check("vector qcloud SHA256", qc_sign("GET", host, path, p, key)
          == "b/HlnO7vWEtR/kf21BvF0fX4vGmIThwWxlaD5GQtlSM=")
    p = {"Action": "RefreshCdnUrl", "SecretId": "secretIdFoo", "Timestamp": "1462782282",
         "Nonce": "123456789", "urls.0": "http://www.test.com/1.html",
         "urls.1": "http://www.test.com/a b.html"}
    check("vector qcloud urls", qc_sign("POST", host, path, p, "secretKeyBar")
          == "ngRXpuQNfNxRij0xilqCKSDDBMM=")
    p = {"Action": "DescribeCdnHosts", "SecretId": "secretIdFoo", "Timestamp": "1462782282",
         "Nonce": "123456789", "Region": "gz", "offset": "0", "limit": "10"}
    check("vector qcloud gz", qc_sign("GET", host, path, p, "secretKeyBar")
          == "gZ3mfrkOffxKCYrTZ5C31aW5XoE=")


# --------------------------------------------------------------------------
# emulator process
# --------------------------------------------------------------------------
class Emu(selftestlib.Emu):
    def __init__(self, vendor, fixture=None, extra=()):
        super().__init__(vendor, extra, fixture=fixture, label=vendor + " ")
        with open(self.port_file) as f:
            check("%s port file" % vendor, int(f.read()) == self.port)


# ---- aliyun client ----------------------------------------------------------
def ali_params(action, extra=None, method="GET", key="testid", secret="testsecret",
               nonce=None, ts=None):
    p = {"Format": "JSON", "Version": "2014-11-11", "AccessKeyId": key,
         "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
         "SignatureNonce": nonce or str(uuid.uuid4()), "Timestamp": ts or utc(),
         "Action": action}
    p.update(extra or {})
    p["Signature"] = ali_sign(method, p, secret)[0]
    return p


def ali_send(emu, p, method="GET", conn=None):
    enc = form(p)
    if method == "GET":
        return send(emu, "GET", "/?" + enc, conn=conn)
    return send(emu, "POST", "/", enc.encode(),
                {"Content-Type": "application/x-www-form-urlencoded"}, conn=conn)


def ali(emu, action, extra=None, method="GET", conn=None, **kw):
    return ali_send(emu, ali_params(action, extra, method, **kw), method, conn)


# ---- qcloud client ----------------------------------------------------------
def qc_params(action, extra=None, method="POST", sid="AKIDtest", key="testkey",
              nonce=None, ts=None, sign_host="127.0.0.1", sm=None):
    p = {"Action": action, "SecretId": sid,
         "Timestamp": str(ts if ts is not None else int(time.time())),
         "Nonce": str(nonce or int.from_bytes(os.urandom(6), "big") + 1)}
    if sm:
        p["SignatureMethod"] = sm
    p.update(extra or {})
    p["Signature"] = qc_sign(method, sign_host, "/v2/index.php", p, key)
    return p


def qc_send(emu, p, method="POST", conn=None):
    enc = form(p)
    if method == "GET":
        return send(emu, "GET", "/v2/index.php?" + enc, conn=conn)
    return send(emu, "POST", "/v2/index.php", enc.encode(),
                {"Content-Type": "application/x-www-form-urlencoded"}, conn=conn)


def qc(emu, action, extra=None, method="POST", conn=None, **kw):
    return qc_send(emu, qc_params(action, extra, method, **kw), method, conn)


def listp(name, values):
    return {"%s.%d" % (name, i): v for i, v in enumerate(values)}


# --------------------------------------------------------------------------
# fixtures for the test
# --------------------------------------------------------------------------
ALI_FIX = {
    "DescribeCdnService": {"required": [], "response": {
        "RequestId": "OLD", "InternetChargeType": "PayByTraffic"}},
    "DescribeCdnDomainDetail": {"required": ["DomainName"], "response": {
        "RequestId": "OLD", "GetDomainDetailModel": {"DomainName": "a.com"}}},
    "DescribeUserDomains": {"required": [], "response": {
        "RequestId": "OLD", "PageNumber": 1, "PageSize": 20, "TotalCount": 1,
        "Domains": {"PageData": [{"DomainName": "a.com", "Cname": "a.com.w.kunlunca.com",
                                  "CdnType": "web", "DomainStatus": "online"}]}}},
    "RefreshObjectCaches": {"required": ["ObjectPath"], "response": {
        "RequestId": "OLD", "RefreshTaskId": "1"}},
    "AddCdnDomain": {"required": ["CdnType", "DomainName"], "response": {"RequestId": "OLD"}},
}
QC_OK = {"code": 0, "message": "", "codeDesc": "Success"}
QC_FIX = {
    "DescribeCdnHosts": {"required": [], "response": dict(QC_OK, data={
        "total": 1, "hosts": [{"id": 1, "host_id": 1, "host": "x", "cname": "y", "status": 5}]})},
    "RefreshCdnUrl": {"required": ["urls"], "max_items": {"urls": 1000},
                      "response": dict(QC_OK, data={"count": 1, "task_id": "1"})},
    "RefreshCdnDir": {"required": ["dirs"], "max_items": {"dirs": 20}, "response": dict(QC_OK)},
    "CdnUrlPusher": {"required": ["urls"], "max_items": {"urls": 20},
                     "response": dict(QC_OK, data={"task_id": "1", "count": 1})},
    "UpdateCdnConfig": {"required": [], "one_of": ["hostId", "host"], "response": dict(QC_OK)},
    "AddCdnHost": {"required": ["host", "projectId", "hostType"], "response": dict(QC_OK)},
}


# --------------------------------------------------------------------------
# the vendor registry (cdnemu.py imported, not run)
# --------------------------------------------------------------------------
def registry_tests():
    cdnemu = selftestlib.emulator_module("cdnemu")
    emucore = selftestlib.emulator_module("emucore")
    check("registry lists aliyun, plcloud, qcloud and wangsu",
          sorted(cdnemu.VENDORS) == ["aliyun", "plcloud", "qcloud", "wangsu"], cdnemu.VENDORS)
    for name in cdnemu.VENDORS:
        cls = cdnemu.vendor_class(name)
        check("registry %s: a Vendor named %s" % (name, name),
              issubclass(cls, emucore.Vendor) and cls.name == name, cls)
        check("registry %s: PATH, CREDENTIALS, COUNT_OPTION" % name,
              isinstance(cls.PATH, str) and cls.PATH.startswith("/") and cls.CREDENTIALS
              and (cls.COUNT_OPTION is None or cls.COUNT_OPTION[0].startswith("--")), cls)
        check("registry %s: transport kinds are fault kinds" % name,
              set(cls.TRANSPORT_KINDS) <= set(emucore.FAULT_KINDS)
              and emucore.GENERIC_TRANSPORT_KINDS <= set(cls.TRANSPORT_KINDS), cls)
        check("registry %s: drop_after / no_task_id are not transport kinds" % name,
              emucore.PIPELINE_KINDS <= set(emucore.FAULT_KINDS) and
              not (emucore.PIPELINE_KINDS & set(cls.TRANSPORT_KINDS)), cls)
        # (CdnOverseaPushser: a fixture answer whose task id is stripped in dispatch)
        check("registry %s: task actions are built in" % name,
              cls.TASK_ACTIONS and all(hasattr(cls, "act_" + a) or a == "CdnOverseaPushser"
                                       for a in cls.TASK_ACTIONS), cls.TASK_ACTIONS)


# --------------------------------------------------------------------------
# common tests
# --------------------------------------------------------------------------
def request_log_tests(emu, path, get_query, post_body, name, bound=False):
    """stats "methods" and "request_log": GET, POST and PUT are recorded with
    their action, content type and sizes; reset clears them; the log keeps the
    last 1000.  get_query / post_body are signed good requests."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    emu.reset()
    s = emu.stats()
    check(name + " request log empty after reset", s["methods"] == {} and
          s["request_log"] == [], s)
    send(emu, "GET", path)
    s = emu.stats()
    check(name + " log entry without Action", s["request_log"] == [
        {"action": None, "method": "GET", "path": path, "content_type": None,
         "body_bytes": 0, "query_bytes": 0, "reused": False}] and s["methods"] == {"GET": 1},
          s["request_log"])
    emu.reset()
    c = emu.conn()
    rg = send(emu, "GET", path + "?" + get_query, conn=c)
    rp = send(emu, "POST", path, post_body, form, conn=c)
    send(emu, "PUT", path + "?Action=PutIt", b"x=1", {"Content-Type": "text/plain"}, conn=c)
    c.close()
    s = emu.stats()
    log = s["request_log"]
    check(name + " methods counted", s["methods"] == {"GET": 1, "POST": 1, "PUT": 1}, s["methods"])
    check(name + " methods sum to requests", sum(s["methods"].values()) == s["requests"], s)
    check(name + " request log has 3 entries", len(log) == 3, log)
    if len(log) == 3:
        g, p, u = log
        check(name + " log GET entry", rg.status == 200 and g["method"] == "GET" and
              g["path"] == path and g["content_type"] is None and g["body_bytes"] == 0 and
              g["query_bytes"] == len(get_query) and g["action"] and g["reused"] is False,
              (rg, g))
        check(name + " log POST entry", rp.status == 200 and p["method"] == "POST" and
              p["path"] == path and p["content_type"] == "application/x-www-form-urlencoded"
              and p["body_bytes"] == len(post_body) and p["query_bytes"] == 0 and
              p["action"] == g["action"] and p["reused"] is True, (rp, p))
        check(name + " log PUT entry", u == {"action": "PutIt", "method": "PUT", "path": path,
                                             "content_type": "text/plain", "body_bytes": 3,
                                             "query_bytes": len("Action=PutIt"),
                                             "reused": True}, u)
        check(name + " log keys", all(sorted(e) == ["action", "body_bytes", "content_type",
                                                    "method", "path", "query_bytes", "reused"]
                                      for e in log), log)
    emu.reset()
    s = emu.stats()
    check(name + " reset clears methods and log", s["methods"] == {} and
          s["request_log"] == [] and s["requests"] == 0, s)
    if not bound:
        return
    # bounded: 1005 requests (unsigned: rejected, but counted and logged; one
    # connection each, which is faster here than keep-alive: the server writes
    # headers and body separately, and Nagle + delayed ACK cost ~40 ms a request)
    for i in range(1005):
        send(emu, "GET", path + "?Action=A%d" % i)
    s = emu.stats()
    log = s["request_log"]
    check(name + " request log keeps the last 1000", len(log) == 1000 and
          log[0]["action"] == "A5" and log[-1]["action"] == "A1004",
          (len(log), log[:1], log[-1:]))
    check(name + " methods count beyond the log", s["methods"] == {"GET": 1005} and
          s["requests"] == 1005, s["methods"])
    emu.reset()


def replay_tests(emu, N, make, send_p, ok, replay, act, act_extra, cheap):
    """drop_after (+ reused_only) and the stats executed, dropped, nonce_reused,
    requests_on_reused_connection and request_log[].reused.  make(action, extra)
    -> signed params; send_p(p, conn=None) -> Result; ok(r): success;
    replay(r): the vendor's nonce-reuse answer; act: a non-idempotent fixture
    action with its required params act_extra; cheap: a read-only action."""
    # libcurl's silent replay: on a reused keep-alive connection the server
    # executes the request, then closes without answering; the client resends
    # the same signed request on a fresh connection
    emu.reset()
    f = emu.faults({"kind": "drop_after", "action": act, "reused_only": True})
    check(N + "drop_after queued as given", f.get("faults") == [
        {"kind": "drop_after", "count": 1, "action": act, "reused_only": True}], f)
    c = emu.conn()
    r0 = send_p(make(cheap, {}), conn=c)
    check(N + "drop_after: first request on the connection ok", ok(r0), r0)
    p = make(act, act_extra)
    r1 = send_p(p, conn=c)
    c.close()
    check(N + "drop_after: no answer at all", dropped(r1), r1)
    r2 = send_p(p)
    check(N + "drop_after: resend of the same signed request is a nonce replay",
          replay(r2), r2)
    s = emu.stats()
    check(N + "drop_after: executed once", s["executed"] == {cheap: 1, act: 1}, s["executed"])
    check(N + "drop_after: by_action counts the resend", s["by_action"].get(act) == 2, s)
    check(N + "drop_after: dropped / nonce_reused", s["dropped"] == 1 and
          s["nonce_reused"] == 1, s)
    check(N + "drop_after: requests_on_reused_connection",
          s["requests_on_reused_connection"] == 1 and s["connections"] == 2, s)
    check(N + "drop_after: request_log reused flags",
          [e["reused"] for e in s["request_log"]] == [False, True, False], s["request_log"])
    check(N + "drop_after: consumed", s["faults_pending"] == [], s)

    # reused_only passes requests on a fresh connection by (no action filter)
    emu.reset()
    emu.faults({"kind": "drop_after", "reused_only": True})
    r = send_p(make(act, act_extra))
    check(N + "reused_only: fresh connection answered", ok(r), r)
    check(N + "reused_only: still queued", emu.stats()["faults_pending"] == [
        {"kind": "drop_after", "count": 1, "reused_only": True}])
    c = emu.conn()
    ra, rb = send_p(make(cheap, {}), conn=c), send_p(make(cheap, {}), conn=c)
    c.close()
    check(N + "reused_only: second request on a connection dropped", ok(ra) and dropped(rb),
          (ra, rb))
    s = emu.stats()
    check(N + "reused_only: executed", s["executed"] == {act: 1, cheap: 2} and
          s["dropped"] == 1 and s["faults_pending"] == [], s)

    # without reused_only: any request, fresh connection too; count
    emu.reset()
    emu.faults({"kind": "drop_after", "count": 2, "action": act})
    r1, r2 = send_p(make(act, act_extra)), send_p(make(act, act_extra))
    r3 = send_p(make(act, act_extra))
    check(N + "drop_after count 2 on fresh connections", dropped(r1) and dropped(r2) and ok(r3),
          (r1, r2, r3))
    s = emu.stats()
    check(N + "drop_after count 2: executed 3, dropped 2",
          s["executed"] == {act: 3} and s["dropped"] == 2 and
          s["requests_on_reused_connection"] == 0, s)

    # a control request on the connection makes it reused too
    emu.reset()
    c = emu.conn()
    send(emu, "GET", "/__emu/config", conn=c)
    r = send_p(make(cheap, {}), conn=c)
    c.close()
    s = emu.stats()
    check(N + "control request makes the connection reused", ok(r) and
          s["requests_on_reused_connection"] == 1 and s["request_log"][0]["reused"] is True, s)

    # executed vs by_action: rejected, faulted and replayed requests are not executed
    emu.reset()
    p = make(cheap, {})
    bad = dict(p, Signature="AAAA" + p["Signature"][4:])
    send_p(bad)                                      # bad signature
    emu.faults({"kind": "throttle"})
    send_p(make(cheap, {}))                          # vendor fault
    emu.faults({"kind": "close"})
    r1 = send_p(p)                                   # transport fault: never processed
    r2 = send_p(p)                                   # so the same request runs now
    r3 = send_p(p)                                   # and this is a replay
    r4 = send_p(make(act, {}))                       # missing required parameters
    s = emu.stats()
    check(N + "close: not processed, same request ok after", dropped(r1) and ok(r2) and
          replay(r3), (r1, r2, r3))
    check(N + "missing params answered", not ok(r4), r4)
    check(N + "by_action counts everything", s["by_action"] == {cheap: 5, act: 1}, s["by_action"])
    check(N + "executed counts performed only", s["executed"] == {cheap: 1}, s["executed"])
    check(N + "nonce_reused 1, dropped 0", s["nonce_reused"] == 1 and s["dropped"] == 0, s)
    emu.faults({"kind": "drop_after"})
    send_p(make(cheap, {}))
    emu.reset()
    s = emu.stats()
    check(N + "reset clears executed etc.", s["executed"] == {} and s["dropped"] == 0 and
          s["nonce_reused"] == 0 and s["requests_on_reused_connection"] == 0 and
          s["faults_pending"] == [], s)

    # fault validation
    for bad_fault in ({"kind": "drop_after", "reused_only": "yes"},
                      {"kind": "drop_after", "reused_onyl": True},
                      {"kind": "no_task_id", "action": cheap}):
        r = send(emu, "POST", "/__emu/faults", json.dumps({"faults": [bad_fault]}).encode())
        check(N + "bad fault refused: %s" % json.dumps(bad_fault), r.status == 400 and
              r.get("error"), r)
    check(N + "nothing queued by refused faults", emu.stats()["faults_pending"] == [])


def common_tests(emu, call, ok, name):
    """keep-alive, concurrency, latency; `call(conn=None)` makes one good request."""
    emu.reset()
    c = emu.conn()
    r1, r2 = call(conn=c), call(conn=c)
    c.close()
    s = emu.stats()
    check(name + " keep-alive two ok", ok(r1) and ok(r2), (r1, r2))
    check(name + " keep-alive connections == 1", s["connections"] == 1, s)
    check(name + " requests == 2", s["requests"] == 2, s)

    emu.reset()
    emu.config(latency=0.2)
    barrier = threading.Barrier(5)
    results = []

    def worker():
        barrier.wait()
        results.append(call())
    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(5)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    dt = time.monotonic() - t0
    emu.config(latency=0)
    s = emu.stats()
    check(name + " concurrent all ok", all(ok(r) for r in results), results)
    check(name + " max_inflight == 5", s["max_inflight"] == 5, s["max_inflight"])
    check(name + " concurrent took ~latency", 0.2 <= dt < 0.9, dt)
    check(name + " inflight back to 0", s["inflight"] == 0, s)


# --------------------------------------------------------------------------
# aliyun
# --------------------------------------------------------------------------
def aliyun_tests(fixdir):
    path = os.path.join(fixdir, "aliyun.json")
    with open(path, "w") as f:
        json.dump(ALI_FIX, f)
    emu = Emu("aliyun", path, ["--task-seconds", "0.3"])
    try:
        _aliyun_tests(emu)
    finally:
        emu.stop()


def ali_err(r, status, code):
    return r.status == status and r.get("Code") == code and r.get("HostId") == "cdn.aliyuncs.com"


def _aliyun_tests(emu):
    A = "aliyun "
    r = ali(emu, "DescribeCdnService")
    check(A + "good GET", r.status == 200 and r.get("InternetChargeType") == "PayByTraffic", r)
    check(A + "fresh RequestId", len(r.get("RequestId", "")) == 36 and r.get("RequestId") != "OLD"
          and r.get("RequestId") == r.get("RequestId").upper(), r)
    check(A + "Date header", r.headers and r.headers.get("Date", "").endswith("GMT"))
    check(A + "content type", r.headers.get("Content-Type") == "application/json;charset=utf-8")
    r = ali(emu, "DescribeCdnService", method="POST")
    check(A + "good POST", r.status == 200, r)
    r = ali(emu, "DescribeCdnService", key="demo-id", secret="demo-secret")
    check(A + "demo credentials", r.status == 200, r)

    # tampered
    p = ali_params("DescribeCdnDomainDetail", {"DomainName": "a.com"})
    p["DomainName"] = "b.com"
    r = ali_send(emu, p)
    sts = ali_sign("GET", p, "testsecret")[1]
    check(A + "tampered rejected", ali_err(r, 400, "SignatureDoesNotMatch"), r)
    check(A + "tampered message", r.get("Message") == "Specified signature is not matched with "
          "our calculation. server string to sign is:" + sts, r.get("Message"))
    # nonce reuse: first a tampered request with nonce N must not burn N
    p = ali_params("DescribeCdnService", nonce="nonce-reuse-1")
    bad = dict(p, Signature="AAAA" + p["Signature"][4:])
    check(A + "bad sig first", ali_err(ali_send(emu, bad), 400, "SignatureDoesNotMatch"))
    check(A + "nonce first use", ali_send(emu, p).status == 200)
    p2 = ali_params("DescribeCdnService", nonce="nonce-reuse-1")
    check(A + "nonce reuse rejected", ali_err(ali_send(emu, p2), 400, "SignatureNonceUsed"))
    # stale / future timestamp
    r = ali(emu, "DescribeCdnService", ts=utc(time.time() - 16 * 60))
    check(A + "stale timestamp", ali_err(r, 400, "InvalidTimeStamp.Expired")
          and r.get("Message") == "Specified time stamp or date value is expired.", r)
    r = ali(emu, "DescribeCdnService", ts=utc(time.time() + 16 * 60))
    check(A + "future timestamp", ali_err(r, 400, "InvalidTimeStamp.Expired"), r)
    r = ali(emu, "DescribeCdnService", ts=utc(time.time() - 14 * 60))
    check(A + "14 min old ok", r.status == 200, r)
    r = ali(emu, "DescribeCdnService", ts="2015-08-06 02:19:46")
    check(A + "bad timestamp format", ali_err(r, 400, "InvalidTimeStamp.Format"), r)
    # key / version / format / action / params
    r = ali(emu, "DescribeCdnService", key="nobody")
    check(A + "unknown key", ali_err(r, 404, "InvalidAccessKeyId.NotFound"), r)
    r = ali(emu, "DescribeCdnService", {"Version": "2013-01-10"})
    check(A + "bad version", ali_err(r, 400, "NoSuchVersion"), r)
    r = ali(emu, "DescribeCdnService", {"Format": "XML"})
    check(A + "XML refused", ali_err(r, 400, "InvalidParameter") and "Format" in r.get("Message"), r)
    r = ali(emu, "NoSuchAction")
    check(A + "unknown action", ali_err(r, 404, "InvalidAction.NotFound") and r.get("Message") ==
          "Specified api is not found, please check your url and method.", r)
    r = ali(emu, "DescribeCdnDomainDetail")
    check(A + "missing param", ali_err(r, 400, "MissingParameter") and r.get("Message") ==
          'The input parameter "DomainName" that is mandatory for processing this request '
          'is not supplied.', r)
    r = ali(emu, "DescribeCdnDomainDetail", {"DomainName": ""})
    check(A + "empty param counts as missing", ali_err(r, 400, "MissingParameter"), r)
    r = ali(emu, "DescribeCdnDomainDetail", {"DomainName": "日本.example.com"})
    check(A + "UTF-8 value", r.status == 200, r)

    # skew
    emu.config(skew=3600)
    r = ali(emu, "DescribeCdnService")
    check(A + "skew makes now stale", ali_err(r, 400, "InvalidTimeStamp.Expired"), r)
    r = ali(emu, "DescribeCdnService", ts=utc(time.time() + 3600))
    check(A + "skewed timestamp ok", r.status == 200, r)
    import email.utils
    d = email.utils.parsedate_to_datetime(r.headers["Date"]).timestamp()
    check(A + "Date header has skew", abs(d - time.time() - 3600) < 5, r.headers["Date"])
    emu.config(skew=0)

    # paging
    names = []
    sizes = []
    for page in (1, 2, 3):
        r = ali(emu, "DescribeUserDomains", {"PageSize": "50", "PageNumber": str(page)})
        data = r.get("Domains", {}).get("PageData", [])
        sizes.append(len(data))
        names += [d["DomainName"] for d in data]
        check(A + "paging echo %d" % page, r.get("PageNumber") == page and r.get("PageSize") == 50
              and r.get("TotalCount") == 123, r)
    check(A + "paging sizes", sizes == [50, 50, 23], sizes)
    check(A + "paging names", names == ["example-%04d.com" % i for i in range(1, 124)], names[:3])
    check(A + "domain keeps fixture fields", data and data[0].get("CdnType") == "web"
          and data[0].get("Cname") == "example-0101.com.w.kunlunca.com", data[:1])
    r = ali(emu, "DescribeUserDomains")
    check(A + "default PageSize 20", len(r.get("Domains", {}).get("PageData", [])) == 20
          and r.get("PageSize") == 20, r)
    r = ali(emu, "DescribeUserDomains", {"PageNumber": "4", "PageSize": "50"})
    check(A + "page past end empty", r.get("Domains", {}).get("PageData") == [], r)
    r = ali(emu, "DescribeUserDomains", {"PageSize": "51"})
    check(A + "PageSize 51 refused", ali_err(r, 400, "InvalidParameter") and "PageSize" in
          r.get("Message", ""), r)

    # refresh / push / tasks
    emu.reset()
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/1.jpg\r\na.com/2 x.jpg\n"},
            method="POST")
    tid = r.get("RefreshTaskId")
    check(A + "refresh task id", r.status == 200 and tid and tid.isdigit(), r)
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/dir/", "ObjectType": "Directory"})
    check(A + "refresh dir", r.status == 200 and r.get("RefreshTaskId") != tid, r)
    r = ali(emu, "PushObjectCache", {"ObjectPath": "a.com/p.jpg"})
    check(A + "push", r.status == 200 and r.get("PushTaskId"), r)
    s = emu.stats()
    check(A + "stats refreshed_urls", s["refreshed_urls"] == ["a.com/1.jpg", "a.com/2 x.jpg"], s)
    check(A + "stats refreshed_dirs", s["refreshed_dirs"] == ["a.com/dir/"], s)
    check(A + "stats prefetched_urls", s["prefetched_urls"] == ["a.com/p.jpg"], s)
    check(A + "stats nonces", s["nonces"] == 3, s)
    r = ali(emu, "DescribeRefreshTasks", {"TaskId": tid})
    tasks = r.get("Tasks", {}).get("CDNTask", [])
    check(A + "tasks by id", r.get("TotalCount") == 2 and len(tasks) == 2 and
          all(t["Status"] == "Refreshing" and t["ObjectType"] == "file" for t in tasks), r)
    r = ali(emu, "DescribeRefreshTasks")
    check(A + "all tasks", r.get("TotalCount") == 4, r)
    r = ali(emu, "DescribeRefreshTasks", {"ObjectType": "path"})
    check(A + "tasks by type", r.get("TotalCount") == 1, r)
    time.sleep(0.35)
    r = ali(emu, "DescribeRefreshTasks", {"TaskId": tid, "Status": "Complete"})
    tasks = r.get("Tasks", {}).get("CDNTask", [])
    check(A + "tasks complete", len(tasks) == 2 and all(t["Process"] == "100%" for t in tasks), r)
    r = ali(emu, "DescribeRefreshTasks", {"PageSize": "60"})
    check(A + "tasks PageSize 60 refused", ali_err(r, 400, "InvalidParameter"), r)

    # faults
    emu.reset()

    def fault(kind, **kw):
        emu.faults(dict({"kind": kind}, **kw))
        return ali(emu, "DescribeCdnService")
    r = fault("throttle")
    check(A + "fault throttle", ali_err(r, 400, "Throttling") and r.get("Message") ==
          "Request was denied due to request throttling.", r)
    check(A + "fault consumed", ali(emu, "DescribeCdnService").status == 200)
    check(A + "fault http500", ali_err(fault("http500"), 500, "InternalError"))
    check(A + "fault http503", ali_err(fault("http503"), 503, "ServiceUnAvailable"))
    r = fault("html")
    check(A + "fault html", r.status == 502 and r.headers["Content-Type"] == "text/html"
          and b"nginx" in r.body, r)
    r = fault("badjson")
    check(A + "fault badjson", r.status == 200 and r.json is None and
          r.headers["Content-Type"].startswith("application/json"), r)
    r = fault("truncated")
    check(A + "fault truncated", isinstance(r.exc, http.client.IncompleteRead), r)
    r = fault("close")
    check(A + "fault close", r.status is None and r.exc is not None, r)
    r = fault("slow", seconds=0.4)
    check(A + "fault slow", r.status == 200 and r.elapsed >= 0.4, r)
    r = fault("stale")
    check(A + "fault stale", ali_err(r, 400, "InvalidTimeStamp.Expired"), r)
    emu.faults({"kind": "throttle", "count": 2, "action": "RefreshObjectCaches"})
    check(A + "fault action filter (other)", ali(emu, "DescribeCdnService").status == 200)
    for i in (1, 2):
        r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/x"})
        check(A + "fault count %d" % i, ali_err(r, 400, "Throttling"), r)
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/x"})
    check(A + "fault count exhausted", r.status == 200, r)
    emu.faults({"kind": "throttle"})
    bad = dict(ali_params("DescribeCdnService"), Signature="x")
    check(A + "bad sig before vendor fault", ali_err(ali_send(emu, bad), 400,
                                                      "SignatureDoesNotMatch"))
    check(A + "vendor fault kept for valid", ali_err(ali(emu, "DescribeCdnService"), 400,
                                                      "Throttling"))
    emu.faults({"kind": "close"})
    p = ali_params("DescribeCdnService")
    check(A + "close fault", ali_send(emu, p).status is None)
    check(A + "same request again after close ok", ali_send(emu, p).status == 200)
    emu.faults({"kind": "throttle"})
    p = ali_params("DescribeCdnService")
    check(A + "throttled", ali_err(ali_send(emu, p), 400, "Throttling"))
    check(A + "retry with same nonce after throttle is caught",
          ali_err(ali_send(emu, p), 400, "SignatureNonceUsed"))
    s = emu.stats()
    check(A + "stats signature_failures", s["signature_failures"] == 1, s)
    check(A + "stats by_action", s["by_action"].get("RefreshObjectCaches") == 3, s)
    check(A + "stats requests", s["requests"] == sum(s["by_action"].values()), s)
    check(A + "no faults left", s["faults_pending"] == [], s)

    # bad input never crashes
    r = send(emu, "POST", "/", b"Action=%FF%FE&x", {"Content-Type":
                                                     "application/x-www-form-urlencoded"})
    check(A + "non-UTF-8", ali_err(r, 400, "InvalidParameter"), r)
    r = send(emu, "POST", "/", b"\x00\xff{garbage", {"Content-Type": "application/json"})
    check(A + "garbage body", ali_err(r, 400, "InvalidParameter"), r)
    r = send(emu, "DELETE", "/")
    check(A + "wrong method", r.status == 400 and r.get("Code") == "UnsupportedHTTPMethod", r)
    r = send(emu, "GET", "/nope?Action=DescribeCdnService")
    check(A + "wrong path", ali_err(r, 404, "InvalidAction.NotFound"), r)
    r = send(emu, "POST", "/", b"abc", {"Content-Length": "zz"})
    check(A + "bad Content-Length", r.status == 400, r)
    r = send(emu, "GET", "/__emu/nothing")
    check(A + "unknown control endpoint", r.status == 404, r)
    r = send(emu, "POST", "/__emu/faults", b'{"faults": [{"kind": "meteor"}]}')
    check(A + "bad fault kind refused", r.status == 400, r)
    check(A + "alive after bad input", ali(emu, "DescribeCdnService").status == 200)

    ali_nonce_used = lambda r: (ali_err(r, 400, "SignatureNonceUsed") and  # noqa: E731
                                r.get("Message") == "Specified signature nonce was used already.")
    replay_tests(emu, A, lambda a, x: ali_params(a, x),
                 lambda p, conn=None: ali_send(emu, p, conn=conn),
                 lambda r: r.status == 200, ali_nonce_used,
                 "AddCdnDomain", {"CdnType": "web", "DomainName": "new.example.com"},
                 "DescribeCdnService")

    # no_task_id: success without RefreshTaskId / PushTaskId, nothing recorded
    emu.reset()
    emu.faults({"kind": "no_task_id"})
    r = ali(emu, "DescribeCdnService")
    check(A + "no_task_id passed by other actions", r.status == 200 and
          emu.stats()["faults_pending"] == [{"kind": "no_task_id", "count": 1}], r)
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/n1.jpg"})
    check(A + "no_task_id refresh: 200 without RefreshTaskId", r.status == 200 and
          isinstance(r.json, dict) and "RefreshTaskId" not in r.json and
          len(r.get("RequestId", "")) == 36 and r.get("RequestId") != "OLD", r)
    s = emu.stats()
    check(A + "no_task_id refresh: nothing recorded, not executed", s["refreshed_urls"] == []
          and "RefreshObjectCaches" not in s["executed"] and s["faults_pending"] == [], s)
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/n2.jpg"})
    check(A + "no_task_id consumed: next refresh normal", r.status == 200 and
          r.get("RefreshTaskId"), r)
    emu.faults({"kind": "no_task_id", "action": "PushObjectCache"})
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/n3.jpg"})
    check(A + "no_task_id action filter", r.status == 200 and r.get("RefreshTaskId"), r)
    r = ali(emu, "PushObjectCache", {"ObjectPath": "a.com/p.jpg"})
    check(A + "no_task_id push: 200 without PushTaskId", r.status == 200 and
          isinstance(r.json, dict) and "PushTaskId" not in r.json and r.get("RequestId"), r)
    emu.faults({"kind": "no_task_id"})
    r = ali(emu, "RefreshObjectCaches", {"ObjectPath": "a.com/x", "ObjectType": "Bogus"})
    check(A + "no_task_id: bad input still an error", ali_err(r, 400, "InvalidParameter"), r)
    s = emu.stats()
    check(A + "no_task_id: only real work recorded", s["refreshed_urls"] == [
        "a.com/n2.jpg", "a.com/n3.jpg"] and s["prefetched_urls"] == [] and
        s["executed"].get("RefreshObjectCaches") == 2 and "PushObjectCache" not in s["executed"]
        and s["faults_pending"] == [], s)
    r = ali(emu, "DescribeRefreshTasks")
    check(A + "no_task_id: no task listed", r.get("TotalCount") == 2, r)

    request_log_tests(emu, "/", form(ali_params("DescribeCdnService")),
                      form(ali_params("DescribeCdnService", method="POST")).encode(), A,
                      bound=True)

    common_tests(emu, lambda conn=None: ali(emu, "DescribeCdnService", conn=conn),
                 lambda r: r.status == 200, A)


# --------------------------------------------------------------------------
# qcloud
# --------------------------------------------------------------------------
def qcloud_tests(fixdir):
    path = os.path.join(fixdir, "qcloud.json")
    with open(path, "w") as f:
        json.dump(QC_FIX, f)
    emu = Emu("qcloud", path, ["--task-seconds", "0.3"])
    try:
        _qcloud_tests(emu)
    finally:
        emu.stop()


def qc_err(r, code, desc=None, msg=None):
    return (r.status == 200 and r.get("code") == code and
            (desc is None or r.get("codeDesc") == desc) and
            (msg is None or r.get("message") == msg))


def _qcloud_tests(emu):
    Q = "qcloud "
    r = qc(emu, "DescribeCdnHosts")
    hosts = r.get("data", {}).get("hosts", [])
    check(Q + "good POST", r.get("code") == 0 and r.get("codeDesc") == "Success", r)
    check(Q + "all hosts without limit", r.get("data", {}).get("total") == 57 and len(hosts) == 57, r)
    check(Q + "host shape", hosts and hosts[0]["host"] == "host-0001.example.com" and
          hosts[0]["host_id"] == hosts[0]["id"] and hosts[0]["status"] == 5, hosts[:1])
    r = qc(emu, "DescribeCdnHosts", {"offset": "50", "limit": "10"}, method="GET")
    hosts = r.get("data", {}).get("hosts", [])
    check(Q + "good GET paging", r.get("code") == 0 and len(hosts) == 7 and
          hosts[0]["host"] == "host-0051.example.com", r)
    r = qc(emu, "DescribeCdnHosts", {"offset": "-1"})
    check(Q + "bad offset", qc_err(r, 4000, "InvalidParameter"), r)
    r = qc(emu, "DescribeOverseaCdnHosts", {"offset": "0"})
    check(Q + "oversea hosts default limit", r.get("code") == 0 and
          len(r.get("data", {}).get("hosts", [])) == 57, r)
    r = qc(emu, "DescribeCdnHosts", sm="HmacSHA256")
    check(Q + "HmacSHA256", r.get("code") == 0, r)
    r = qc(emu, "DescribeCdnHosts", sm="HmacSHA1", sid="AKIDdemo", key="demokey")
    check(Q + "demo credentials", r.get("code") == 0, r)
    r = qc(emu, "UpdateCdnConfig", {"host": "host-0001.example.com", "some_flag": "1"})
    check(Q + "underscore name signed with dot", r.get("code") == 0, r)
    p = qc_params("UpdateCdnConfig", {"host": "h", "zz_a": "1"})
    p["Signature"] = base64.b64encode(hmac.new(b"testkey", ("POST127.0.0.1/v2/index.php?" + "&".join(
        k + "=" + v for k, v in sorted(p.items()) if k != "Signature")).encode(),
        hashlib.sha1).digest()).decode()
    check(Q + "underscore kept in signature rejected", qc_err(qc_send(emu, p), 4100), p)
    r = qc(emu, "DescribeCdnHosts", sign_host="127.0.0.1:%d" % emu.port)
    check(Q + "host with port in source rejected", qc_err(r, 4100), r)

    # auth failures
    p = qc_params("RefreshCdnUrl", listp("urls", ["http://a.com/1"]))
    p["urls.0"] = "http://a.com/2"
    check(Q + "tampered", qc_err(qc_send(emu, p), 4100, "AuthFailure.SignatureFailure"))
    r = qc(emu, "DescribeCdnHosts", sid="AKIDnobody")
    check(Q + "unknown SecretId", qc_err(r, 4100), r)
    nonce = 987654321
    check(Q + "nonce first", qc(emu, "DescribeCdnHosts", nonce=nonce).get("code") == 0)
    r = qc(emu, "DescribeCdnHosts", nonce=nonce)
    check(Q + "nonce reuse", qc_err(r, 4500, "RequestReplay",
                                    "(4500)request replayed or expired"), r)
    r = qc(emu, "DescribeCdnHosts", ts=int(time.time()) - 7300)
    check(Q + "stale timestamp", qc_err(r, 4500, "RequestReplay",
                                        "(4500)request replayed or expired"), r)
    r = qc(emu, "DescribeCdnHosts", ts=int(time.time()) - 7000)
    check(Q + "old but in window", r.get("code") == 0, r)
    r = qc(emu, "NoSuchAction")
    check(Q + "unknown action", qc_err(r, 4000, "InvalidParameter", "(4000)Action not found"), r)
    r = qc(emu, "RefreshCdnUrl")
    check(Q + "missing list param", qc_err(r, 4000, "InvalidParameter",
                                           "(4000)missing parameter urls"), r)
    r = qc(emu, "UpdateCdnConfig")
    check(Q + "one_of missing", qc_err(r, 4000, "InvalidParameter") and
          "hostId or host" in r.get("message", ""), r)
    r = qc(emu, "UpdateCdnConfig", {"hostId": "180001"})
    check(Q + "one_of present", r.get("code") == 0, r)
    urls = ["http://host-0001.example.com/%d.html" % i for i in range(1001)]
    r = qc(emu, "RefreshCdnUrl", listp("urls", urls))
    check(Q + "too many urls", qc_err(r, 4000, "22043", "(22043)too many urls in one request"), r)
    r = qc(emu, "RefreshCdnUrl", listp("urls", urls[:1000]))
    check(Q + "1000 urls ok", r.get("code") == 0 and r.get("data", {}).get("count") == 1000, r)
    r = qc(emu, "RefreshCdnDir", listp("dirs", ["http://a.com/%d/" % i for i in range(21)]))
    check(Q + "too many dirs", qc_err(r, 4000, "22045"), r)
    r = qc(emu, "CdnUrlPusher", listp("urls", urls[:21]))
    check(Q + "too many push urls", qc_err(r, 4000, "9162", "(9162)count over limit"), r)

    # tasks
    emu.reset()
    r = qc(emu, "RefreshCdnUrl", listp("urls", ["http://a.com/1 x.html", "http://b.com/2"]))
    tid = r.get("data", {}).get("task_id")
    check(Q + "refresh url", r.get("code") == 0 and r["data"].get("count") == 2 and tid, r)
    r = qc(emu, "RefreshCdnDir", listp("dirs", ["http://a.com/d/"]))
    check(Q + "refresh dir", r.get("code") == 0, r)
    r = qc(emu, "CdnUrlPusher", listp("urls", ["http://a.com/p1", "http://a.com/p2"]))
    ptid = r.get("data", {}).get("task_id")
    check(Q + "push", r.get("code") == 0 and ptid and r["data"].get("count") == 2, r)
    s = emu.stats()
    check(Q + "stats refreshed_urls", s["refreshed_urls"] == ["http://a.com/1 x.html",
                                                              "http://b.com/2"], s)
    check(Q + "stats refreshed_dirs", s["refreshed_dirs"] == ["http://a.com/d/"], s)
    check(Q + "stats prefetched", s["prefetched_urls"] == ["http://a.com/p1", "http://a.com/p2"], s)
    r = qc(emu, "GetCdnRefreshLog", {"taskId": tid})
    logs = r.get("data", {}).get("logs", [])
    check(Q + "refresh log running", r.get("data", {}).get("total") == 1 and len(logs) == 1 and
          logs[0]["status"] == 0 and logs[0]["url_list"] == s["refreshed_urls"], r)
    r = qc(emu, "GetPushLogs", {"taskId": ptid, "offset": "1", "limit": "5"})
    logs = r.get("data", {}).get("logs", [])
    check(Q + "push logs paging", r.get("data", {}).get("total") == 2 and len(logs) == 1 and
          logs[0]["status"] == "process", r)
    time.sleep(0.35)
    r = qc(emu, "GetCdnRefreshLog", {"taskId": tid})
    check(Q + "refresh log done", r.get("data", {}).get("logs", [{}])[0].get("status") == 1, r)
    r = qc(emu, "GetPushLogs", {"taskId": ptid})
    check(Q + "push logs done", all(l["status"] == "done" for l in r["data"]["logs"]), r)

    # faults
    emu.reset()

    def fault(kind, **kw):
        emu.faults(dict({"kind": kind}, **kw))
        return qc(emu, "DescribeCdnHosts", {"limit": "1"})
    check(Q + "fault throttle", qc_err(fault("throttle"), 4400, "9163", "(9163)request too frequent"))
    check(Q + "fault consumed", qc(emu, "DescribeCdnHosts").get("code") == 0)
    r = fault("http500")
    check(Q + "fault http500", r.status == 500 and r.json is None and b"500" in r.body, r)
    r = fault("http503")
    check(Q + "fault http503", r.status == 503 and r.headers["Content-Type"] == "text/html", r)
    r = fault("html")
    check(Q + "fault html", r.status == 502 and b"nginx" in r.body, r)
    r = fault("badjson")
    check(Q + "fault badjson", r.status == 200 and r.json is None, r)
    r = fault("truncated")
    check(Q + "fault truncated", isinstance(r.exc, http.client.IncompleteRead), r)
    r = fault("close")
    check(Q + "fault close", r.status is None and r.exc is not None, r)
    r = fault("slow", seconds=0.3)
    check(Q + "fault slow", r.get("code") == 0 and r.elapsed >= 0.3, r)
    check(Q + "fault stale", qc_err(fault("stale"), 4500, "RequestReplay"))
    emu.faults({"kind": "http500", "action": "RefreshCdnUrl"})
    check(Q + "fault action filter", qc(emu, "DescribeCdnHosts").get("code") == 0)
    r = qc(emu, "RefreshCdnUrl", listp("urls", ["http://a.com/1"]))
    check(Q + "fault action matched", r.status == 500, r)

    # bad input
    r = send(emu, "POST", "/v2/index.php", b"Action=%FF", {"Content-Type":
                                                          "application/x-www-form-urlencoded"})
    check(Q + "non-UTF-8", qc_err(r, 4000), r)
    r = send(emu, "PUT", "/v2/index.php", b"x")
    check(Q + "wrong method", qc_err(r, 4000), r)
    r = send(emu, "GET", "/v2/index.php")
    check(Q + "no params", qc_err(r, 4000), r)
    check(Q + "alive after bad input", qc(emu, "DescribeCdnHosts").get("code") == 0)

    replay_tests(emu, Q, lambda a, x: qc_params(a, x),
                 lambda p, conn=None: qc_send(emu, p, conn=conn),
                 lambda r: r.get("code") == 0,
                 lambda r: qc_err(r, 4500, "RequestReplay", "(4500)request replayed or expired"),
                 "AddCdnHost", {"host": "new.example.com", "projectId": "0", "hostType": "cname"},
                 "DescribeCdnHosts")

    # no_task_id: code 0 without data.task_id / data.task_ids, nothing recorded
    emu.reset()
    emu.faults({"kind": "no_task_id", "count": 3})
    r = qc(emu, "DescribeCdnHosts", {"limit": "1"})
    check(Q + "no_task_id passed by other actions", r.get("code") == 0 and
          emu.stats()["faults_pending"] == [{"kind": "no_task_id", "count": 3}], r)
    r = qc(emu, "RefreshCdnUrl", listp("urls", ["http://a.com/n1", "http://a.com/n2"]))
    check(Q + "no_task_id RefreshCdnUrl", r.json == dict(QC_OK, data={"count": 2}), r)
    r = qc(emu, "RefreshCdnDir", listp("dirs", ["http://a.com/d/"]))
    check(Q + "no_task_id RefreshCdnDir", r.get("code") == 0 and
          "task_id" not in r.get("data", {}), r)
    r = qc(emu, "CdnPusherV2", listp("urls", ["http://a.com/p1"]))
    check(Q + "no_task_id CdnPusherV2", r.get("code") == 0 and r.get("codeDesc") == "Success"
          and "task_ids" not in r.get("data", {}), r)
    s = emu.stats()
    check(Q + "no_task_id: nothing recorded, not executed", s["refreshed_urls"] == [] and
          s["refreshed_dirs"] == [] and s["prefetched_urls"] == [] and
          s["faults_pending"] == [] and s["executed"] == {"DescribeCdnHosts": 1}, s)
    emu.faults({"kind": "no_task_id", "action": "CdnUrlPusher"})
    r = qc(emu, "RefreshCdnUrl", listp("urls", ["http://a.com/n3"]))
    check(Q + "no_task_id action filter", r.get("code") == 0 and r["data"].get("task_id"), r)
    r = qc(emu, "CdnUrlPusher", listp("urls", ["http://a.com/p2"]))
    check(Q + "no_task_id CdnUrlPusher", r.json == dict(QC_OK, data={"count": 1}), r)
    s = emu.stats()
    check(Q + "no_task_id: only real work recorded", s["refreshed_urls"] == ["http://a.com/n3"]
          and s["prefetched_urls"] == [] and s["executed"].get("RefreshCdnUrl") == 1 and
          "CdnUrlPusher" not in s["executed"], s)
    r = qc(emu, "GetCdnRefreshLog")
    check(Q + "no_task_id: refresh log has the real task only",
          r.get("data", {}).get("total") == 1, r)

    request_log_tests(emu, "/v2/index.php",
                      form(qc_params("DescribeCdnHosts", {"limit": "1"}, method="GET")),
                      form(qc_params("DescribeCdnHosts", {"limit": "1"})).encode(), Q)

    common_tests(emu, lambda conn=None: qc(emu, "DescribeCdnHosts", {"limit": "1"}, conn=conn),
                 lambda r: r.get("code") == 0, Q)


# --------------------------------------------------------------------------
# real fixtures (if present)
# --------------------------------------------------------------------------
def fixture_smoke():
    for vendor, action, extra, ok in (
            ("aliyun", "DescribeUserDomains", {"PageSize": "50"},
             lambda r: r.status == 200 and r.get("TotalCount") == 123),
            ("qcloud", "DescribeCdnHosts", {"offset": "0", "limit": "10"},
             lambda r: r.get("code") == 0 and r["data"]["total"] == 57)):
        path = os.path.join(HERE, "fixtures", vendor + ".json")
        if not os.path.exists(path):
            print("selftest: note: %s not present, smoke test skipped" % path)
            continue
        try:
            with open(path) as f:
                fx = json.load(f)
        except ValueError as e:
            check("fixture %s parses" % vendor, False, e)
            continue
        bad = [k for k, v in fx.items() if not k.startswith("_") and
               not (isinstance(v, dict) and isinstance(v.get("response", {}), dict))]
        check("fixture %s entries well-formed" % vendor, not bad, bad[:5])
        emu = Emu(vendor)
        try:
            if vendor == "aliyun":
                r = ali(emu, action, extra)
            else:
                r = qc(emu, action, extra)
            check("fixture %s %s" % (vendor, action), ok(r), r)
            # every fixture action answers something with all required params supplied
            failures = []
            for act, spec in fx.items():
                if act.startswith("_") or not isinstance(spec, dict):
                    continue
                req = {}
                for n in spec.get("required") or []:
                    req[n] = "x"
                for n in (spec.get("one_of") or [])[:1]:
                    req[n] = "x"
                if vendor == "aliyun":
                    r = ali(emu, act, req)
                    good = r.status == 200 or r.get("Code") in ("InvalidParameter",)
                else:
                    r = qc(emu, act, req)
                    good = r.status == 200 and r.get("code") in (0, 4000)
                if not good:
                    failures.append((act, r))
            check("fixture %s all actions answer" % vendor, not failures, failures[:3])
        finally:
            emu.stop()


def main():
    t0 = time.monotonic()
    check_vectors()
    guarded(registry_tests)
    with tempfile.TemporaryDirectory(prefix="cdnemu-fix-") as d:
        ths = [threading.Thread(target=guarded, args=(fn, d))
               for fn in (aliyun_tests, qcloud_tests)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    guarded(fixture_smoke)
    return selftestlib.finish("selftest", t0)


if __name__ == "__main__":
    sys.exit(main())
