#!/usr/bin/env python3
"""Self-test of cdnemu's Alibaba Cloud CDN API 2018-05-10 (stdlib only).
Run: python3 spec/emulator/selftest_aliyun_2018.py

Checks the emulator's ACS3-HMAC-SHA256 functions against the published vector
and the CDN vector, reads the action table itself (not with the emulator's
parser), then starts `cdnemu.py --vendor aliyun` on a random loopback port and
signs requests with signers written for the test (V3 headers here, V2
parameters with selftestlib.ali_sign; checked first against the same vectors):
V3 and V2 accepted, each rejection (signature, date, nonce, method, parameter
location, required and unknown parameters, repeated parameters only flattened
and scalars only under their exact names), refresh tasks, the refresh limits
and quotas, the throttle fault, the domain actions, the request log, and every
one of the 176 actions called with its required parameters (V3, then V2).
Prints `selftest-aliyun-2018: N passed, N failed`; exit status 1 on failure.
"""

import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import time
import uuid

import selftestlib
from selftestlib import (HERE, ali_sign as v2_sign, check, form, guarded, pct, send,
                         sha256_hex, utc)

TABLE = os.path.join(HERE, "tables", "aliyun_2018_05_10.txt")
V2018, V2014 = "2018-05-10", "2014-11-11"


# --------------------------------------------------------------------------
# signers written for the test (deliberately not imported from cdnemu; the
# V2 signer v2_sign is selftestlib.ali_sign)
# --------------------------------------------------------------------------
def v3_sign(method, query, headers, body, secret):
    """-> (canonical request, string to sign, signature, signed header names);
    headers: lower-case name -> value, all of them signed."""
    names = sorted(headers)
    cq = "&".join(k + "=" + v for k, v in sorted((pct(k), pct(v)) for k, v in query.items()))
    ch = "".join(n + ":" + headers[n].strip() + "\n" for n in names)
    canon = "\n".join([method, "/", cq, ch, ";".join(names), sha256_hex(body)])
    sts = "ACS3-HMAC-SHA256\n" + sha256_hex(canon.encode())
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return canon, sts, sig, names


VEC_DATE, VEC_NONCE = "2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d"
VEC_PUB = dict(method="POST", host="ecs.cn-shanghai.aliyuncs.com", action="RunInstances",
               version="2014-05-26",
               query={"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                      "RegionId": "cn-shanghai"}, body=b"", ctype=None,
               hashed="7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259",
               sig="06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0")
VEC_CDN = dict(method="POST", host="cdn.aliyuncs.com", action="RefreshObjectCaches",
               version=V2018, query={},
               body=b"ObjectPath=https%3A%2F%2Fwww.example.com%2Fa.jpg&ObjectType=File",
               ctype="application/x-www-form-urlencoded", hashed=None,
               sig="153a791e214792011d651931184e47487eccfab8c0cf3c167ddabfe9fe158471")


def vec_headers(v):
    h = {"host": v["host"], "x-acs-action": v["action"], "x-acs-version": v["version"],
         "x-acs-date": VEC_DATE, "x-acs-signature-nonce": VEC_NONCE,
         "x-acs-content-sha256": sha256_hex(v["body"])}
    if v["ctype"]:
        h["content-type"] = v["ctype"]
    return h


def check_vectors():
    emu2018 = selftestlib.emulator_module("vendor_aliyun_2018")
    for name, v in (("published", VEC_PUB), ("cdn", VEC_CDN)):
        h = vec_headers(v)
        canon, sts, sig, names = v3_sign(v["method"], v["query"], h, v["body"],
                                         "YourAccessKeySecret")
        check("vector %s: own signer" % name, sig == v["sig"], sig)
        if v["hashed"]:
            check("vector %s: own hashed canonical request" % name,
                  sts == "ACS3-HMAC-SHA256\n" + v["hashed"], sts)
        # the emulator's functions
        ecanon = emu2018.canonical_request(v["method"], list(v["query"].items()), h, names,
                                           sha256_hex(v["body"]))
        ests = emu2018.string_to_sign(ecanon)
        esig = emu2018.signature("YourAccessKeySecret", ests)
        check("vector %s: emulator canonical request" % name, ecanon == canon, (ecanon, canon))
        check("vector %s: emulator signature %s..." % (name, v["sig"][:8]), esig == v["sig"], esig)
        auth = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=%s,Signature=%s" % (
            ";".join(names), v["sig"])
        check("vector %s: emulator parses the Authorization" % name,
              emu2018.parse_authorization(auth) ==
              ("ACS3-HMAC-SHA256", "YourAccessKeyId", names, v["sig"]))
    check("vector cdn: body hash", sha256_hex(VEC_CDN["body"]) ==
          "fa0d10b3d5c16222cc6cf31cf5b45c483f1b73089f39a84f2c39d9e799ea6bab")
    check("vector published: signed headers",
          ";".join(sorted(vec_headers(VEC_PUB))) ==
          "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version")
    # V2 (2014 document's worked example), the signer used below
    p = {"SignatureVersion": "1.0", "Format": "JSON", "Timestamp": "2015-08-06T02:19:46Z",
         "AccessKeyId": "testid", "SignatureMethod": "HMAC-SHA1", "Version": V2014,
         "SignatureNonce": "9b7a44b0-3be1-11e5-8c73-08002700c460",
         "Action": "DescribeCdnService"}
    check("vector V2", v2_sign("GET", p, "testsecret")[0] == "KkkQOf0ymKf4yVZLggy6kYiwgFs=")


# --------------------------------------------------------------------------
# the action table, read here (independently of the emulator's parser)
# --------------------------------------------------------------------------
def read_table():
    """-> {Action: {"method", "params": [(name, required, where)]}}; a line
    after "## Corrections" replaces the action's earlier line."""
    acts = {}
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(\w+) \[(GET|POST)\]: (.*)$", line.rstrip("\n"))
            if not m:
                continue
            params = []
            if m.group(3) != "-":
                for item in m.group(3).split(", "):
                    pm = re.match(r"^(\w+)(!?)\(([qb])\)$", item)
                    params.append((pm.group(1), pm.group(2) == "!",
                                   "query" if pm.group(3) == "q" else "body"))
            acts[m.group(1)] = {"method": m.group(2), "params": params}
    return acts


def read_repeated():
    """-> {Action: {Name: () for Name[] | (members) for Name[].{A,B}}} from
    the table's "## Repeated" section."""
    out, on = {}, False
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("## "):
                on = line.startswith("## Repeated")
                continue
            m = re.match(r"^(\w+): (.*)$", line)
            if on and m:
                out[m.group(1)] = {
                    im.group(1): tuple(im.group(2).split(",")) if im.group(2) else ()
                    for im in re.finditer(r"(\w+)\[\](?:\.\{([\w,]+)\})?", m.group(2))}
    return out


TABLE_ACTS = read_table()
REPEATED = read_repeated()
# what the SDK (alibabacloud-go/cdn-20180510 v9.0.0, client/*_request_model.go)
# types as []*string / []*<Action>RequestTag
SDK_REPEATED = {
    "AddCdnDomain": {"Tag": ("Key", "Value")},
    "DescribeTagResources": {"ResourceId": (), "Tag": ("Key", "Value")},
    "DescribeUserDomains": {"Tag": ("Key", "Value")},
    "ListTagResources": {"ResourceId": (), "Tag": ("Key", "Value")},
    "TagResources": {"ResourceId": (), "Tag": ("Key", "Value")},
    "UntagResources": {"ResourceId": (), "TagKey": ()},
}


def table_tests():
    check("table: 176 actions", len(TABLE_ACTS) == 176, len(TABLE_ACTS))
    n_get = sum(1 for a in TABLE_ACTS.values() if a["method"] == "GET")
    check("table: 148 POST, 28 GET", n_get == 28 and len(TABLE_ACTS) - n_get == 148, n_get)
    body_actions = sorted(a for a, s in TABLE_ACTS.items()
                          if any(w == "body" for _, _, w in s["params"]))
    # 14 in the source list, plus SetCdnFullDomainsBlockIP (corrected)
    check("table: 15 actions with form-body parameters", len(body_actions) == 15, body_actions)
    check("table: the 3 corrected actions", TABLE_ACTS["CheckCdnDomainICP"]["params"] ==
          [("DomainName", True, "query")] and
          TABLE_ACTS["DescribeCertificateInfoByID"] == {"method": "GET", "params": [
              ("CertId", True, "query")]} and
          TABLE_ACTS["SetCdnFullDomainsBlockIP"]["params"] == [
              ("BlockInterval", False, "body"), ("IPList", True, "body"),
              ("OperationType", True, "body"), ("UpdateType", False, "body")],
          [TABLE_ACTS[a] for a in ("CheckCdnDomainICP", "DescribeCertificateInfoByID",
                                   "SetCdnFullDomainsBlockIP")])
    with open(TABLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    verbatim = lines[1:lines.index("") + 1 + 1 + 176]
    check("table: the copied source lines come first, then the corrections",
          len(verbatim) == 180 and verbatim[0].startswith("## Alibaba Cloud CDN 2018-05-10") and
          verbatim[-1].startswith("VerifyDomainOwner [POST]") and
          lines[len(verbatim) + 2].startswith("## Corrections"), verbatim[-1:])
    with open(TABLE, encoding="utf-8") as f:
        first = f.readline()
    check("table: first line says what it is", first.startswith("# ") and "2018-05-10" in first
          and "alibabacloud-go/cdn-20180510" in first and "v9.0.0" in first, first)
    emu2018 = selftestlib.emulator_module("vendor_aliyun_2018")
    t = emu2018.load_table()
    same = all(t[a]["method"] == s["method"] and
               [(n, d["required"], d["where"]) for n, d in t[a]["params"].items()] == s["params"]
               for a, s in TABLE_ACTS.items()) and sorted(t) == sorted(TABLE_ACTS)
    check("table: the emulator reads the same table", same)
    check("table: RefreshObjectCaches has Force, ObjectPath!, ObjectType in the body",
          TABLE_ACTS["RefreshObjectCaches"] == {"method": "POST", "params": [
              ("Force", False, "body"), ("ObjectPath", True, "body"),
              ("ObjectType", False, "body")]})
    check("table: the repeated parameters are the SDK's 10 list fields in 6 actions",
          REPEATED == SDK_REPEATED, REPEATED)
    check("table: every repeated parameter is a query parameter of its action",
          all(any(n == p and w == "query" for p, _, w in TABLE_ACTS[a]["params"])
              for a, names in REPEATED.items() for n in names), REPEATED)
    forms = {(a, n): (d["form"], d["fields"]) for a, s in t.items()
             for n, d in s["params"].items() if d["form"] != "scalar"}
    check("table: the emulator reads the same repeated parameters", forms == {
        (a, n): ("structs" if f else "list", f) for a, names in REPEATED.items()
        for n, f in names.items()}, forms)
    # a broken table is refused
    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "t.txt")
        base = "## x -- 2\nA B\nA [POST]: X(q), Y(q)\nB [GET]: -\n## Repeated\n"
        for text in ("## x -- 2\nA B\nA [POST]: -\n",
                     "## x -- 2\nA B\nA [POST]: -\nB [GET]: -\nA [GET]: -\n",
                     "## x -- 2\nA B\nA [POST]: -\nB [GET]: -\n## Corrections\nC [GET]: -\n",
                     base + "A: Z[]\n", base + "C: X[]\n", base + "A: X\n",
                     base + "A: X[]\nA: Y[]\n", base + "A: X[].{K,K}\n",
                     base + "A: X[].{}\n", base + "A: X[], X[].{K}\n"):
            with open(bad, "w") as f:
                f.write(text)
            try:
                emu2018.load_table(bad)
                refused = False
            except emu2018.TableError:
                refused = True
            check("table: inconsistent table refused: %r" % text[-20:], refused)
        with open(bad, "w") as f:
            f.write(base + "# the notation\nA: X[], Y[].{K,V}\n")
        good = emu2018.load_table(bad)["A"]["params"]
        check("table: a good Repeated section read", good["X"]["form"] == "list" and
              good["Y"]["form"] == "structs" and good["Y"]["fields"] == ("K", "V"), good)


# --------------------------------------------------------------------------
# emulator process and requests
# --------------------------------------------------------------------------
class Emu(selftestlib.Emu):
    """control(), config() and faults() answer (status, JSON)."""

    def __init__(self, extra=()):
        super().__init__("aliyun", extra, port_file=False, tmp_prefix="cdnemu-selftest-2018-")

    def control(self, method, name, body=None):
        return self.control_status(method, name, body)

    def stats(self):
        return self.control("GET", "stats")[1]


def split_params(action, params):
    """The action's parameters -> (query dict, body dict) as the table says
    (names not in the table go to the query)."""
    where = {n: w for n, _, w in TABLE_ACTS.get(action, {"params": []})["params"]}
    q, b = {}, {}
    for k, v in params.items():
        (b if where.get(k.split(".")[0]) == "body" else q)[k] = v
    return q, b


def v3(emu, action, params=None, method=None, key="testid", secret="testsecret", nonce=None,
       date=None, query=None, body=None, version=V2018, tweak=None, conn=None, extra_headers=None):
    """A V3-signed request.  params are split as the table says unless
    query/body (dicts) are given.  tweak(headers, signed_names) may change the
    signed headers before signing; returns (Result, sent headers)."""
    method = method or TABLE_ACTS.get(action, {"method": "POST"})["method"]
    if query is None and body is None:
        query, body = split_params(action, params or {})
    query, body = query or {}, body or {}
    raw = form(body).encode() if body else b""
    h = {"host": emu.host, "x-acs-action": action, "x-acs-version": version,
         "x-acs-date": date or utc(), "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
         "x-acs-content-sha256": sha256_hex(raw)}
    if raw:
        h["content-type"] = "application/x-www-form-urlencoded"
    h.update(extra_headers or {})
    if tweak:
        tweak(h)
    signed = {k: x for k, x in h.items() if x is not None}
    _, sts, sig, names = v3_sign(method, query, signed, raw, secret)
    sent = {k: x for k, x in h.items() if x is not None}
    sent["Authorization"] = "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,Signature=%s" % (
        key, ";".join(names), sig)
    path = "/" + ("?" + form(query) if query else "")
    return send(emu, method, path, raw or None, sent, conn=conn), sent, sts


def v2(emu, action, params=None, method=None, key="testid", secret="testsecret", nonce=None,
       ts=None, query=None, body=None, version=V2018, conn=None):
    """A V2-signed request: common parameters and query parameters in the URL,
    body parameters in a form body (POST), the signature over all of them."""
    method = method or TABLE_ACTS.get(action, {"method": "POST"})["method"]
    if query is None and body is None:
        query, body = split_params(action, params or {})
    query, body = dict(query or {}), body or {}
    common = {"Format": "JSON", "Version": version, "AccessKeyId": key,
              "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
              "SignatureNonce": nonce or str(uuid.uuid4()), "Timestamp": ts or utc(),
              "Action": action}
    query = dict(common, **query)
    sig, sts = v2_sign(method, dict(query, **body), secret)
    query["Signature"] = sig
    raw = form(body).encode() if body else None
    hdr = {"Content-Type": "application/x-www-form-urlencoded"} if raw else {}
    return send(emu, method, "/?" + form(query), raw, hdr, conn=conn), sts


def ok(r):
    return r.status == 200 and isinstance(r.get("RequestId"), str) and len(r["RequestId"]) == 36


def err(r, status, code, in_message=None):
    return (r.status == status and r.get("Code") == code and
            r.get("HostId") == "cdn.aliyuncs.com" and isinstance(r.get("RequestId"), str) and
            isinstance(r.get("Recommend"), str) and
            (in_message is None or in_message in (r.get("Message") or "")))


def last_log(emu):
    log = emu.stats()["request_log"]
    return log[-1] if log else None


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def auth_tests(emu):
    A = "auth "
    emu.reset()
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "V3 POST accepted", ok(r) and r.get("InternetChargeType") == "PayByTraffic", r)
    check(A + "content type", r.headers.get("Content-Type") == "application/json;charset=utf-8")
    r, _, _ = v3(emu, "DescribeIpStatus", {"Ips": "1.1.1.1"})
    check(A + "V3 GET action accepted", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://example-0001.com/a b.jpg\n"
                                              "http://example-0001.com/*x~y",
                                              "ObjectType": "File"})
    check(A + "V3 with a form body accepted", ok(r) and r.get("RefreshTaskId", "").isdigit(), r)
    r, _, _ = v3(emu, "DescribeCdnService", key="demo-id", secret="demo-secret")
    check(A + "V3 demo credentials", ok(r), r)
    r, _, _ = v3(emu, "DescribeUserDomains", {"PageSize": "2", "Tag.1.Key": "k",
                                              "Tag.1.Value": "v", "OwnerId": "123"})
    check(A + "V3 list parameter Tag.1.Key and OwnerId accepted", ok(r), r)
    r, _ = v2(emu, "DescribeCdnService")
    check(A + "V2 POST accepted", ok(r), r)
    r, _ = v2(emu, "DescribeIpStatus", {"Ips": "1.1.1.1"})
    check(A + "V2 GET accepted", ok(r), r)
    r, _ = v2(emu, "RefreshObjectCaches", {"ObjectPath": "example-0002.com/x.jpg"})
    check(A + "V2 POST with a form body accepted", ok(r) and r.get("RefreshTaskId"), r)
    s = emu.stats()
    check(A + "nothing failed", s["signature_failures"] == 0 and
          s["executed"].get("RefreshObjectCaches") == 2, s["executed"])
    check(A + "refreshed_urls as sent", s["refreshed_urls"] == [
        "http://example-0001.com/a b.jpg", "http://example-0001.com/*x~y",
        "example-0002.com/x.jpg"], s["refreshed_urls"])

    # V3 rejections
    emu.reset()
    r, sent, sts = v3(emu, "DescribeCdnService", secret="wrongsecret")
    check(A + "V3 bad signature", err(r, 400, "SignatureDoesNotMatch"), r)
    check(A + "V3 message tail is the server's string to sign",
          r.get("Message") == "Specified signature is not matched with our calculation. "
          "server string to sign is:" + sts, (r.get("Message"), sts))
    log = last_log(emu)
    check(A + "V3 bad signature: sign_detail in the log",
          log.get("sign_detail", {}).get("string_to_sign") == sts and
          log["sign_detail"]["canonical_request"].startswith("POST\n/\n\n") and
          log.get("error") == "SignatureDoesNotMatch", log)
    check(A + "signature_failures counted", emu.stats()["signature_failures"] == 1)
    # body changed after signing
    q, b = {}, {"ObjectPath": "http://example-0001.com/a.jpg"}
    raw = form(b).encode()
    h = {"host": emu.host, "x-acs-action": "RefreshObjectCaches", "x-acs-version": V2018,
         "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
         "x-acs-content-sha256": sha256_hex(raw),
         "content-type": "application/x-www-form-urlencoded"}
    _, _, sig, names = v3_sign("POST", q, h, raw, "testsecret")
    h["Authorization"] = "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=%s,Signature=%s" % (
        ";".join(names), sig)
    r = send(emu, "POST", "/", raw + b"2", h)
    check(A + "V3 body changed after signing", err(r, 400, "SignatureDoesNotMatch",
                                                   "x-acs-content-sha256"), r)
    r, _, _ = v3(emu, "DescribeCdnService", key="nobody")
    check(A + "V3 unknown key", err(r, 404, "InvalidAccessKeyId.NotFound"), r)
    r, _, _ = v3(emu, "DescribeCdnService", date=utc(time.time() - 16 * 60))
    check(A + "V3 stale date", err(r, 400, "InvalidTimeStamp.Expired") and
          r.get("Message") == "Specified time stamp or date value is expired.", r)
    r, _, _ = v3(emu, "DescribeCdnService", date=utc(time.time() + 16 * 60))
    check(A + "V3 future date", err(r, 400, "InvalidTimeStamp.Expired"), r)
    r, _, _ = v3(emu, "DescribeCdnService", date=utc(time.time() - 14 * 60))
    check(A + "V3 14 min old ok", ok(r), r)
    r, _, _ = v3(emu, "DescribeCdnService", date="2023-10-26 10:22:32")
    check(A + "V3 bad date format", err(r, 400, "InvalidTimeStamp.Format"), r)
    r, _, _ = v3(emu, "DescribeCdnService", version=V2014)
    check(A + "V3 with x-acs-version 2014-11-11", err(r, 400, "NoSuchVersion"), r)

    def drop(name):
        return lambda h: h.pop(name)
    r, _, _ = v3(emu, "DescribeCdnService", tweak=drop("x-acs-date"))
    check(A + "V3 without x-acs-date", err(r, 400, "MissingParameter", '"x-acs-date"'), r)
    r, _, _ = v3(emu, "DescribeCdnService", tweak=drop("x-acs-signature-nonce"))
    check(A + "V3 without a nonce", err(r, 400, "MissingParameter",
                                        '"x-acs-signature-nonce"'), r)
    # signed but left out of SignedHeaders
    for name in ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                 "x-acs-signature-nonce", "x-acs-content-sha256"):
        raw_h = {"host": emu.host, "x-acs-action": "DescribeCdnService", "x-acs-version": V2018,
                 "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
                 "x-acs-content-sha256": sha256_hex(b"")}
        signed = {k: x for k, x in raw_h.items() if k != name}
        _, _, sig, names = v3_sign("POST", {}, signed, b"", "testsecret")
        raw_h["Authorization"] = ("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=%s,"
                                  "Signature=%s" % (";".join(names), sig))
        r = send(emu, "POST", "/", None, raw_h)
        check(A + "V3 SignedHeaders without %s" % name,
              err(r, 400, "IncompleteSignature", name), r)
    # a body whose content-type is not signed
    raw = b"ObjectPath=http%3A%2F%2Fexample-0001.com%2Fa.jpg"
    h = {"host": emu.host, "x-acs-action": "RefreshObjectCaches", "x-acs-version": V2018,
         "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
         "x-acs-content-sha256": sha256_hex(raw)}
    _, _, sig, names = v3_sign("POST", {}, h, raw, "testsecret")
    h["Authorization"] = "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=%s,Signature=%s" % (
        ";".join(names), sig)
    h["content-type"] = "application/x-www-form-urlencoded"
    r = send(emu, "POST", "/", raw, h)
    check(A + "V3 body without content-type signed", err(r, 400, "IncompleteSignature",
                                                         "content-type"), r)
    for bad_auth, what in (
            ("ACS3-HMAC-SHA256 Credential=testid, SignedHeaders=host,Signature=00", "space"),
            ("ACS3-HMAC-SHA256 Credential=testid,Signature=00", "no SignedHeaders"),
            ("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=x-acs-date;host,Signature=00",
             "unsorted"),
            ("ACS3-HMAC-SHA256", "no fields")):
        hh = {"host": emu.host, "x-acs-action": "DescribeCdnService", "x-acs-version": V2018,
              "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
              "x-acs-content-sha256": sha256_hex(b""), "Authorization": bad_auth}
        r = send(emu, "POST", "/", None, hh)
        check(A + "V3 malformed Authorization (%s)" % what, err(r, 400, "IncompleteSignature"), r)
    hh = {"host": emu.host, "x-acs-action": "DescribeCdnService", "x-acs-version": V2018,
          "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
          "x-acs-content-sha256": sha256_hex(b"")}
    _, _, sig, names = v3_sign("POST", {}, hh, b"", "testsecret")
    hh["Authorization"] = "ACS3-HMAC-SM3 Credential=testid,SignedHeaders=%s,Signature=%s" % (
        ";".join(names), sig)
    r = send(emu, "POST", "/", None, hh)
    check(A + "V3 other algorithm", err(r, 400, "IncompleteSignature", "ACS3-HMAC-SM3"), r)
    r, _, _ = v3(emu, "DescribeCdnService", extra_headers={"x-acs-extra": "1"})
    check(A + "V3 extra x-acs header signed: ok", ok(r), r)
    c = emu.conn()
    hh = {"host": emu.host, "x-acs-action": "DescribeCdnService", "x-acs-version": V2018,
          "x-acs-date": utc(), "x-acs-signature-nonce": uuid.uuid4().hex,
          "x-acs-content-sha256": sha256_hex(b"")}
    _, _, sig, names = v3_sign("POST", {}, hh, b"", "testsecret")
    hh["Authorization"] = "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=%s,Signature=%s" % (
        ";".join(names), sig)
    hh["x-acs-unsigned"] = "1"
    r = send(emu, "POST", "/", None, hh, conn=c)
    c.close()
    check(A + "V3 unsigned x-acs header", err(r, 400, "IncompleteSignature", "x-acs-unsigned"), r)

    # nonce: a badly signed request does not spend it; reuse refused (V3, V2)
    emu.reset()
    r, _, _ = v3(emu, "DescribeCdnService", nonce="n-2018-1", secret="bad")
    check(A + "V3 bad signature first", err(r, 400, "SignatureDoesNotMatch"), r)
    r, _, _ = v3(emu, "DescribeCdnService", nonce="n-2018-1")
    check(A + "V3 nonce first use", ok(r), r)
    r, _, _ = v3(emu, "DescribeCdnService", nonce="n-2018-1")
    check(A + "V3 nonce reuse", err(r, 400, "SignatureNonceUsed") and
          r.get("Message") == "Specified signature nonce was used already.", r)
    r, _ = v2(emu, "DescribeCdnService", nonce="n-2018-1")
    check(A + "V2 with a nonce V3 used: reuse", err(r, 400, "SignatureNonceUsed"), r)
    s = emu.stats()
    check(A + "nonce_reused counts both", s["nonce_reused"] == 2 and
          s["executed"] == {"DescribeCdnService": 1}, s)

    # V2 rejections (the 2014 code, 2018 envelope)
    r, sts = v2(emu, "DescribeCdnService", secret="wrong")
    check(A + "V2 bad signature", err(r, 400, "SignatureDoesNotMatch") and
          r.get("Message").endswith("server string to sign is:" + sts), r)
    r, _ = v2(emu, "DescribeCdnService", ts=utc(time.time() - 16 * 60))
    check(A + "V2 stale timestamp", err(r, 400, "InvalidTimeStamp.Expired"), r)
    r, _ = v2(emu, "DescribeCdnService", key="nobody")
    check(A + "V2 unknown key", err(r, 404, "InvalidAccessKeyId.NotFound"), r)
    r, _ = v2(emu, "DescribeCdnService", version="2013-01-01")
    check(A + "V2 other version", r.status == 400 and r.get("Code") == "NoSuchVersion", r)

    # skew applies to V3
    emu.config(skew=3600)
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "V3 skew makes now stale", err(r, 400, "InvalidTimeStamp.Expired"), r)
    emu.config(skew=0)


def param_tests(emu):
    A = "params "
    emu.reset()
    # method
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/a"}, method="GET",
                 query={"ObjectPath": "example-0001.com/a"})
    check(A + "V3 GET of a POST action", err(r, 400, "UnsupportedHTTPMethod", "use POST"), r)
    r, _, _ = v3(emu, "DescribeIpStatus", method="POST", query={"Ips": "1.1.1.1"})
    check(A + "V3 POST of a GET action", err(r, 400, "UnsupportedHTTPMethod", "use GET"), r)
    r, _ = v2(emu, "DescribeCdnService", method="GET")
    check(A + "V2 GET of a POST action", err(r, 400, "UnsupportedHTTPMethod"), r)
    r = send(emu, "PUT", "/", None, {"x-acs-version": V2018, "x-acs-action": "DescribeCdnService"})
    check(A + "PUT", r.status == 400 and r.get("Code") == "UnsupportedHTTPMethod", r)
    # location
    r, _, _ = v3(emu, "RefreshObjectCaches", query={"ObjectPath": "example-0001.com/a"})
    check(A + "V3 body parameter in the query", err(r, 400, "InvalidParameter", '"ObjectPath"')
          and "form body" in r.get("Message"), r)
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", body={"DomainName": "example-0001.com"})
    check(A + "V3 query parameter in the body", err(r, 400, "InvalidParameter", '"DomainName"')
          and "query string" in r.get("Message"), r)
    r, _ = v2(emu, "RefreshObjectCaches", query={"ObjectPath": "example-0001.com/a"})
    check(A + "V2 body parameter in the query", err(r, 400, "InvalidParameter", '"ObjectPath"'), r)
    r, _ = v2(emu, "DescribeCdnDomainDetail", body={"DomainName": "example-0001.com"})
    check(A + "V2 query parameter in the body", err(r, 400, "InvalidParameter", '"DomainName"'), r)
    r, _ = v2(emu, "RefreshObjectCaches", query={"Force": "true"},
              body={"ObjectPath": "example-0001.com/a"})
    check(A + "V2 one parameter misplaced among good ones",
          err(r, 400, "InvalidParameter", '"Force"'), r)
    # V2 common parameters may travel in the body too (signed with the rest)
    common = {"Format": "JSON", "Version": V2018, "AccessKeyId": "testid",
              "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
              "SignatureNonce": str(uuid.uuid4()), "Timestamp": utc(),
              "Action": "RefreshObjectCaches", "ObjectPath": "example-0003.com/a"}
    common["Signature"] = v2_sign("POST", common, "testsecret")[0]
    r = send(emu, "POST", "/", form(common).encode(),
             {"Content-Type": "application/x-www-form-urlencoded"})
    check(A + "V2 common parameters in the form body", ok(r), r)
    # required
    r, _, _ = v3(emu, "DescribeCdnDomainDetail")
    check(A + "V3 missing required", err(r, 400, "MissingParameter") and r.get("Message") ==
          'The input parameter "DomainName" that is mandatory for processing this request '
          'is not supplied.', r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": ""})
    check(A + "V3 empty required", err(r, 400, "MissingParameter", '"ObjectPath"'), r)
    r, _ = v2(emu, "AddFCTrigger", {"TriggerARN": "x", "EventMetaName": "a"})
    check(A + "V2 missing required body parameter",
          err(r, 400, "MissingParameter", '"EventMetaVersion"'), r)
    # unknown
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", query={"DomainName": "example-0001.com",
                                                        "Domain": "x"})
    check(A + "V3 unknown parameter", err(r, 400, "InvalidParameter", '"Domain"'), r)
    r, _, _ = v3(emu, "DescribeCdnService", query={"Action": "DescribeCdnService"})
    check(A + "V3 with V2 common parameter Action", err(r, 400, "InvalidParameter", '"Action"'), r)
    r, _ = v2(emu, "DescribeCdnService", {"Colour": "blue"})
    check(A + "V2 unknown parameter", err(r, 400, "InvalidParameter", '"Colour"'), r)
    # action
    r, _, _ = v3(emu, "DescribeNothing")
    check(A + "V3 unknown action", err(r, 404, "InvalidAction.NotFound"), r)
    r, _ = v2(emu, "DescribeDomainFlowData")
    check(A + "V2 2014-only action in 2018", err(r, 404, "InvalidAction.NotFound"), r)
    r, _ = v2(emu, "DescribeDomainFlowData", {"DomainName": "example-0001.com"},
              version=V2014)
    check(A + "the same action in 2014 still answers", r.status == 200, r)
    s = emu.stats()
    check(A + "none of the refused requests executed", s["executed"] == {
        "RefreshObjectCaches": 1, "DescribeDomainFlowData": 1}, s["executed"])


def repeated_tests(emu):
    """Scalars only under their exact names; repeated lists / lists of
    structures only flattened (Name.N / Name.N.Member, N from 1, no gap)."""
    A = "repeated "
    emu.reset()
    tag = {"ResourceId.1": "example-0001.com", "ResourceId.2": "example-0002.com",
           "ResourceType": "DOMAIN", "Tag.1.Key": "env", "Tag.1.Value": "prod",
           "Tag.2.Key": "team"}
    r, _, _ = v3(emu, "TagResources", tag)
    check(A + "TagResources flattened (ResourceId.N, Tag.N.Key/Value) accepted", ok(r), r)
    check(A + "logged under the flattened names", last_log(emu)["params"] == {
        k: "query" for k in tag}, last_log(emu))
    r, _ = v2(emu, "TagResources", tag)
    check(A + "V2 TagResources flattened accepted", ok(r), r)
    r, _, _ = v3(emu, "UntagResources", {"ResourceId.1": "example-0001.com",
                                         "ResourceType": "DOMAIN", "TagKey.1": "env",
                                         "TagKey.2": "team"})
    check(A + "UntagResources ResourceId.1, TagKey.1, TagKey.2 accepted", ok(r), r)
    r, _, _ = v3(emu, "ListTagResources", {"ResourceType": "DOMAIN"})
    check(A + "ListTagResources without the optional lists accepted", ok(r), r)
    r, _, _ = v3(emu, "DescribeTagResources", {"ResourceId.1": "example-0001.com",
                                               "ResourceType": "DOMAIN", "Tag.1.Key": "env"})
    check(A + "DescribeTagResources Tag.1.Key without Value accepted", ok(r), r)
    r, _, _ = v3(emu, "AddCdnDomain", {"CdnType": "web", "DomainName": "tagged.example.net",
                                       "Sources": SOURCES, "Tag.1.Key": "env",
                                       "Tag.1.Value": "prod"})
    check(A + "AddCdnDomain with Tag.1.Key/Value accepted", ok(r), r)
    executed = emu.stats()["executed"]
    check(A + "the accepted calls executed", executed == {
        "TagResources": 2, "UntagResources": 1, "ListTagResources": 1,
        "DescribeTagResources": 1, "AddCdnDomain": 1}, executed)

    def refused(label, action, params, code, name, in_msg=None, sig="v3"):
        if sig == "v3":
            r = v3(emu, action, params)[0]
        else:
            r = v2(emu, action, params)[0]
        check(A + label, err(r, 400, code, '"%s"' % name) and
              (in_msg is None or in_msg in r.get("Message", "")), r)
    base = {"ResourceType": "DOMAIN", "Tag.1.Key": "env", "Tag.1.Value": "prod"}
    # a repeated list sent as one value
    refused("ResourceId=a,b (one value) refused", "TagResources",
            dict(base, ResourceId="example-0001.com,example-0002.com"), "InvalidParameter",
            "ResourceId", "ResourceId.1, ResourceId.2, ...")
    refused("V2 ResourceId=a (one value) refused", "TagResources",
            dict(base, ResourceId="example-0001.com"), "InvalidParameter", "ResourceId",
            sig="v2")
    refused("TagKey=k (one value) refused", "UntagResources",
            {"ResourceId.1": "a.com", "ResourceType": "DOMAIN", "TagKey": "env"},
            "InvalidParameter", "TagKey")
    # a list of structures sent as JSON or half-flattened
    refused("Tag=[json] refused", "TagResources",
            {"ResourceId.1": "a.com", "ResourceType": "DOMAIN",
             "Tag": json.dumps([{"Key": "env", "Value": "prod"}])},
            "InvalidParameter", "Tag", "Tag.1.Key, Tag.1.Value, Tag.2.Key, ...")
    refused("Tag.1=k (no member) refused", "DescribeUserDomains", {"Tag.1": "env"},
            "InvalidParameter", "Tag.1")
    refused("Tag.1.Colour refused", "ListTagResources",
            {"ResourceType": "DOMAIN", "Tag.1.Colour": "red"}, "InvalidParameter",
            "Tag.1.Colour")
    refused("Tag.1.key (member case) refused", "ListTagResources",
            {"ResourceType": "DOMAIN", "Tag.1.key": "env"}, "InvalidParameter", "Tag.1.key")
    refused("ResourceId.1.Key (members on a plain list) refused", "ListTagResources",
            {"ResourceType": "DOMAIN", "ResourceId.1.Key": "a"}, "InvalidParameter",
            "ResourceId.1.Key")
    # numbering
    refused("ResourceId.0 refused", "TagResources", dict(base, **{"ResourceId.0": "a.com"}),
            "InvalidParameter", "ResourceId.0")
    refused("ResourceId.01 refused", "TagResources", dict(base, **{"ResourceId.01": "a.com"}),
            "InvalidParameter", "ResourceId.01")
    refused("Tag.0.Key refused", "ListTagResources", {"ResourceType": "DOMAIN",
                                                      "Tag.0.Key": "env"},
            "InvalidParameter", "Tag.0.Key")
    refused("ResourceId.1 + ResourceId.3 (a gap) refused", "TagResources",
            dict(base, **{"ResourceId.1": "a.com", "ResourceId.3": "b.com"}),
            "InvalidParameter", "ResourceId", "ResourceId.2 is missing")
    refused("ResourceId.2 alone (not from 1) refused", "TagResources",
            dict(base, **{"ResourceId.2": "a.com"}), "InvalidParameter", "ResourceId",
            "ResourceId.1 is missing")
    refused("Tag.1 + Tag.3 (a gap) refused", "ListTagResources",
            {"ResourceType": "DOMAIN", "Tag.1.Key": "a", "Tag.3.Key": "b"},
            "InvalidParameter", "Tag", "Tag.2 is missing")
    # scalars only under their exact names
    refused("DomainNames.1 for the scalar DomainNames refused", "BatchSetCdnDomainConfig",
            {"DomainNames.1": "example-0001.com", "Functions": FUNCTIONS},
            "InvalidParameter", "DomainNames.1", "not as a list")
    refused("V2 DomainNames.1 refused", "BatchStartCdnDomain",
            {"DomainNames.1": "example-0001.com"}, "InvalidParameter", "DomainNames.1",
            sig="v2")
    refused("DomainName.1 next to DomainName refused", "DescribeCdnDomainDetail",
            {"DomainName": "example-0001.com", "DomainName.1": "example-0002.com"},
            "InvalidParameter", "DomainName.1")
    refused("ObjectPath.1 (body scalar) refused", "RefreshObjectCaches",
            {"ObjectPath.1": "example-0001.com/a"}, "InvalidParameter", "ObjectPath.1")
    refused("OwnerId.1 refused", "DescribeCdnService", {"OwnerId.1": "1"},
            "InvalidParameter", "OwnerId.1")
    refused("unknown dotted Colour.1 refused", "DescribeCdnService", {"Colour.1": "red"},
            "InvalidParameter", "Colour.1")
    r, _ = v2(emu, "DescribeCdnService", query={"Format.1": "JSON"})
    check(A + "V2 Format.1 (a common parameter as a list) refused",
          err(r, 400, "InvalidParameter", '"Format.1"'), r)
    # required: only the flattened form counts
    refused("TagResources without ResourceId.N: missing", "TagResources", base,
            "MissingParameter", "ResourceId")
    refused("TagResources with ResourceId.1 empty: missing", "TagResources",
            dict(base, **{"ResourceId.1": ""}), "MissingParameter", "ResourceId")
    refused("TagResources without Tag.N.*: missing", "TagResources",
            {"ResourceId.1": "a.com", "ResourceType": "DOMAIN"}, "MissingParameter", "Tag")
    r, _ = v2(emu, "TagResources", {"ResourceType": "DOMAIN", "ResourceId.1": "a.com"})
    check(A + "V2 TagResources without Tag.N.*: missing",
          err(r, 400, "MissingParameter", '"Tag"'), r)
    s = emu.stats()
    check(A + "none of the refused requests executed", s["executed"] == executed,
          s["executed"])


def log_tests(emu):
    A = "log "
    emu.reset()
    v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/a", "ObjectType": "File"})
    v2(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/b"})
    v3(emu, "DescribeCdnDomainDetail", {"DomainName": "example-0001.com"}, method="POST")
    v3(emu, "DescribeCdnDomainDetail", body={"DomainName": "example-0001.com"})
    v2(emu, "DescribeCdnService", version=V2014)
    log = emu.stats()["request_log"]
    check(A + "5 entries", len(log) == 5, log)
    if len(log) != 5:
        return
    a, b, c, d, e = log
    check(A + "V3 entry", a["action"] == "RefreshObjectCaches" and a["method"] == "POST" and
          a["version"] == V2018 and a["signature"] == "v3" and
          a["params"] == {"ObjectPath": "body", "ObjectType": "body"} and
          a["signed_headers"] == ["content-type", "host", "x-acs-action", "x-acs-content-sha256",
                                  "x-acs-date", "x-acs-signature-nonce", "x-acs-version"] and
          a["error"] is None and
          a["content_type"] == "application/x-www-form-urlencoded", a)
    check(A + "V2 entry", b["signature"] == "v2" and b["version"] == V2018 and
          b["params"]["ObjectPath"] == "body" and b["params"]["Signature"] == "query" and
          b["params"]["Action"] == "query" and b["signed_headers"] is None and
          b["error"] is None, b)
    check(A + "query parameter entry", c["params"] == {"DomainName": "query"} and
          c["error"] is None, c)
    check(A + "refused entry names the error", d["params"] == {"DomainName": "body"} and
          d["error"] == "InvalidParameter", d)
    check(A + "2014 entry unchanged", sorted(e) == ["action", "body_bytes", "content_type",
                                                    "method", "path", "query_bytes",
                                                    "reused"], e)


def task_tests(emu):
    A = "tasks "
    emu.reset()
    r, _, _ = v3(emu, "RefreshObjectCaches",
                 {"ObjectPath": "http://example-0001.com/a.jpg\r\nhttp://example-0001.com/b.jpg"})
    tid = r.get("RefreshTaskId")
    check(A + "one task id per call, numeric string",
          ok(r) and isinstance(tid, str) and tid.isdigit(), r)
    r2, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://example-0001.com/d/",
                                               "ObjectType": "Directory"})
    r3, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": "http://example-0002.com/p.mp4",
                                           "Area": "domestic", "L2Preload": "true",
                                           "WithHeader": '{"Accept-Encoding": "gzip"}'})
    check(A + "push answers PushTaskId", ok(r3) and r3.get("PushTaskId", "").isdigit(), r3)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"TaskId": tid})
    t = r.get("Tasks", {}).get("CDNTask", [])
    check(A + "DescribeRefreshTasks shape", ok(r) and r.get("PageNumber") == 1 and
          r.get("PageSize") == 20 and r.get("TotalCount") == 2 and len(t) == 2 and
          sorted(t[0]) == ["CreationTime", "Description", "ObjectPath", "ObjectType", "Process",
                           "Status", "TaskId"], r)
    check(A + "Refreshing 0%", all(x["Status"] == "Refreshing" and x["Process"] == "0%" and
                                   x["ObjectType"] == "file" for x in t), t)
    r, _, _ = v3(emu, "DescribeRefreshTaskById", {"TaskId": "%s,%s" % (tid, r2["RefreshTaskId"])})
    check(A + "DescribeRefreshTaskById: a list", ok(r) and r.get("TotalCount") == 3 and
          isinstance(r.get("Tasks"), list) and
          sorted(x["ObjectType"] for x in r["Tasks"]) == ["directory", "file", "file"], r)
    r, _, _ = v3(emu, "DescribeRefreshTaskById", {"TaskId": ",".join(str(i) for i in range(11))})
    check(A + "DescribeRefreshTaskById: 11 ids refused", err(r, 400, "InvalidParameter",
                                                             '"TaskId"'), r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"ObjectType": "preload"})
    check(A + "preload task", ok(r) and r["TotalCount"] == 1 and
          r["Tasks"]["CDNTask"][0]["ObjectPath"] == "http://example-0002.com/p.mp4", r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"DomainName": "example-0001.com"})
    check(A + "DomainName needs ObjectType", err(r, 400, "MissingParameter", '"ObjectType"'), r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"DomainName": "example-0001.com",
                                               "ObjectType": "file"})
    check(A + "DomainName + ObjectType", ok(r) and r["TotalCount"] == 2, r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"PageSize": "101"})
    check(A + "PageSize 101 refused", err(r, 400, "InvalidParameter", '"PageSize"'), r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"StartTime": "yesterday"})
    check(A + "bad StartTime", err(r, 400, "InvalidStartTime.Malformed"), r)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"StartTime": utc(),
                                               "EndTime": utc(time.time() - 60)})
    check(A + "EndTime before StartTime", err(r, 400, "InvalidEndTime.Mismatch"), r)
    time.sleep(0.35)
    r, _, _ = v3(emu, "DescribeRefreshTasks", {"PageSize": "100"})
    t = r.get("Tasks", {}).get("CDNTask", [])
    check(A + "Complete 100% after task_seconds", ok(r) and len(t) == 4 and
          all(x["Status"] == "Complete" and x["Process"] == "100%" for x in t), t)
    check(A + "newest call first", [x["ObjectType"] for x in t] ==
          ["preload", "directory", "file", "file"], t)
    # the 2014 API sees the same task store
    r, _ = v2(emu, "DescribeRefreshTasks", version=V2014, method="GET")
    check(A + "2014 DescribeRefreshTasks lists 2018 tasks", r.status == 200 and
          r.get("TotalCount") == 4, r)
    s = emu.stats()
    check(A + "recorded", s["refreshed_urls"] == ["http://example-0001.com/a.jpg",
                                                  "http://example-0001.com/b.jpg"] and
          s["refreshed_dirs"] == ["http://example-0001.com/d/"] and
          s["prefetched_urls"] == ["http://example-0002.com/p.mp4"], s)
    # no_task_id
    emu.reset()
    emu.faults({"kind": "no_task_id", "action": "RefreshObjectCaches"})
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/a"})
    s = emu.stats()
    check(A + "no_task_id: success without RefreshTaskId, nothing recorded",
          ok(r) and "RefreshTaskId" not in r.json and s["refreshed_urls"] == [] and
          s["executed"] == {}, (r, s["executed"]))


def limit_tests(emu):
    A = "limits "
    emu.reset()

    def paths(n, dom=lambda i: "example-0001.com", suffix=""):
        return "\n".join("http://%s/f%d%s" % (dom(i), i, suffix) for i in range(n))
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(1001)})
    check(A + "1001 URLs refused", err(r, 400, "SingleRequest.OverLimit", "1000 URLs"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(101, suffix="/"),
                                              "ObjectType": "Directory"})
    check(A + "101 directories refused", err(r, 400, "SingleRequest.OverLimit", "100 dir"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(100, suffix="/"),
                                              "ObjectType": "Directory"})
    check(A + "100 directories ok", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://example-0001.com/a.*\n"
                                              "http://example-0001.com/b.*",
                                              "ObjectType": "Regex"})
    check(A + "2 regex rules refused", err(r, 400, "SingleRequest.OverLimit", "1 regex"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://example-0001.com/a.*\\.jpg",
                                              "ObjectType": "Regex", "Force": "true"})
    check(A + "1 regex rule ok", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {
        "ObjectPath": paths(11, lambda i: "example-%04d.com" % (i + 1))})
    check(A + "URLs of 11 domains refused", err(r, 400, "SingleRequest.OverLimit", "10 domain"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {
        "ObjectPath": paths(10, lambda i: "example-%04d.com" % (i + 1))})
    check(A + "URLs of 10 domains ok", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/a",
                                              "ObjectType": "Everything"})
    check(A + "bad ObjectType", err(r, 400, "InvalidObjectType.ValueNotSupported"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/d",
                                              "ObjectType": "Directory"})
    check(A + "directory without /", err(r, 400, "InvalidObjectPath.Malformed"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "/no/domain.jpg"})
    check(A + "path without a domain", err(r, 400, "InvalidObjectPath.Malformed"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://*.example.com/a"})
    check(A + "wildcard domain", err(r, 400, "InvalidExtensiveDomain.ValueNotSupported"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/a", "Force": "yes"})
    check(A + "bad Force", err(r, 400, "InvalidParameter", '"Force"'), r)
    r, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": paths(101)})
    check(A + "101 prefetch URLs refused", err(r, 400, "InvalidObjectPath.Size.Malformed"), r)
    r, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": paths(100)})
    check(A + "100 prefetch URLs ok", ok(r), r)
    r, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": "example-0001.com/a", "Area": "mars"})
    check(A + "bad Area", err(r, 400, "InvalidParameter", '"Area"'), r)
    r, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": "example-0001.com/a",
                                          "WithHeader": "[1]"})
    check(A + "bad WithHeader", err(r, 400, "InvalidParameter", '"WithHeader"'), r)

    # quotas
    r, _, _ = v3(emu, "DescribeRefreshQuota")
    fields = ["BlockQuota", "BlockRemain", "DirQuota", "DirRemain", "IgnoreParamsQuota",
              "IgnoreParamsRemain", "PreloadEdgeQuota", "PreloadEdgeRemain", "PreloadQuota",
              "PreloadRemain", "RegexQuota", "RegexRemain", "RequestId", "UrlQuota", "UrlRemain"]
    check(A + "DescribeRefreshQuota: every field a string", ok(r) and sorted(r.json) == fields
          and all(isinstance(r[f], str) for f in fields), r)
    check(A + "remain decreases with use", r.get("UrlQuota") == "10000" and
          r.get("UrlRemain") == str(10000 - 10) and r.get("DirRemain") == "0" and
          r.get("RegexRemain") == "19" and r.get("PreloadRemain") == "900" and
          r.get("IgnoreParamsRemain") == r.get("IgnoreParamsQuota"), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "http://example-0001.com/x/",
                                              "ObjectType": "Directory"})
    check(A + "directory day quota used up", err(r, 400, "QuotaExceeded.Refresh"), r)
    emu.config(push_url_day_limit=100)
    r, _, _ = v3(emu, "PushObjectCache", {"ObjectPath": "example-0001.com/one-more"})
    check(A + "prefetch day quota (config)", err(r, 400, "QuotaExceeded.Refresh"), r)
    emu.config(push_url_day_limit=1000)
    emu.reset()
    r, _, _ = v3(emu, "DescribeRefreshQuota")
    check(A + "reset restores the quotas", r.get("DirRemain") == "100" and
          r.get("UrlRemain") == "10000", r)

    # per-domain URLs per minute (a sliding window; config makes it short)
    st, cfg = emu.config(refresh_urls_per_minute=5, refresh_window_seconds=0.5)
    check(A + "config keys", st == 200 and cfg["config"]["refresh_urls_per_minute"] == 5, cfg)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(4)})
    r2, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(2)})
    check(A + "per-minute: 4 then 2 more refused", ok(r) and
          err(r2, 400, "QuotaPerMinuteExceeded.Refresh", "example-0001.com"), (r, r2))
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(1)})
    check(A + "per-minute: 1 more fits", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(5, lambda i: "example-0009.com")})
    check(A + "per-minute: another domain has its own window", ok(r), r)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(1, suffix="/"),
                                              "ObjectType": "Directory"})
    check(A + "per-minute: directories do not count", ok(r), r)
    time.sleep(0.55)
    r, _, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": paths(5)})
    check(A + "per-minute: the window slides", ok(r), r)
    st, _ = emu.config(refresh_urls_per_minute=-1)
    check(A + "bad config refused", st == 400)
    emu.config(refresh_urls_per_minute=1000, refresh_window_seconds=60)
    emu.reset()


def fault_tests(emu):
    A = "faults "
    emu.reset()
    emu.faults({"kind": "throttle"})
    r, _, _ = v3(emu, "DescribeCdnService")
    hv = r.headers.get("x-ratelimit-user-api") if r.headers else None
    m = re.match(r"^Limit:50,Remain:0,TimeLeft:(\d+),Reset:(\d+)$", hv or "")
    check(A + "throttle: 400 Throttling.User", err(r, 400, "Throttling.User") and
          r.get("Message") == "Request was denied due to user flow control.", r)
    check(A + "throttle: x-ratelimit-user-api header", m and m.group(1) == "1000" and
          abs(int(m.group(2)) - time.time() - 1) < 5, hv)
    st, out = emu.faults({"kind": "throttle", "code": "Throttling.Api", "time_left": 250,
                          "status": 503, "header": "x-ratelimit-user"})
    check(A + "throttle options queued as given", st == 200 and out["faults"] == [
        {"kind": "throttle", "count": 1, "code": "Throttling.Api", "time_left": 250,
         "status": 503, "header": "x-ratelimit-user"}], out)
    r, _ = v2(emu, "DescribeCdnService")
    check(A + "throttle options (V2 request)", err(r, 503, "Throttling.Api") and
          "TimeLeft:250," in (r.headers.get("x-ratelimit-user") or "") and
          r.headers.get("x-ratelimit-user-api") is None, (r, r.headers and r.headers.items()))
    emu.faults({"kind": "throttle", "code": "Throttling", "header": "both"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "throttle: Throttling, both headers", err(r, 400, "Throttling") and
          r.headers.get("x-ratelimit-user") and r.headers.get("x-ratelimit-user-api"), r)
    emu.faults({"kind": "throttle"})
    r, _ = v2(emu, "DescribeCdnService", version=V2014)
    check(A + "throttle on 2014: as before", r.status == 400 and r.get("Code") == "Throttling"
          and "Recommend" not in r.json and r.headers.get("x-ratelimit-user-api") is None, r)
    for bad in ({"kind": "throttle", "code": "Throttling.Nope"},
                {"kind": "throttle", "time_left": -1},
                {"kind": "throttle", "time_left": 1.5},
                {"kind": "throttle", "status": 500},
                {"kind": "throttle", "header": "x-other"},
                {"kind": "http500", "code": "Throttling"}):
        st, out = emu.faults(bad)
        check(A + "refused: %s" % json.dumps(bad), st == 400 and out.get("error"), out)
    check(A + "nothing queued", emu.stats()["faults_pending"] == [])
    s = emu.stats()
    check(A + "throttled requests not executed", s["executed"] == {}, s["executed"])

    emu.reset()
    emu.faults({"kind": "http500"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "http500", err(r, 500, "InternalError"), r)
    emu.faults({"kind": "http503"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "http503", err(r, 503, "ServiceUnAvailable"), r)
    emu.faults({"kind": "stale"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "stale", err(r, 400, "InvalidTimeStamp.Expired"), r)
    emu.faults({"kind": "garbage"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "garbage", r.status is None, r)
    emu.faults({"kind": "badjson"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "badjson", r.status == 200 and r.json is None, r)
    emu.faults({"kind": "close", "action": "RefreshObjectCaches"})
    r, _, _ = v3(emu, "DescribeCdnService")
    check(A + "close filtered by action passes others", ok(r), r)
    r, sent, _ = v3(emu, "RefreshObjectCaches", {"ObjectPath": "example-0001.com/c"})
    check(A + "close on the V3 action (x-acs-action)", r.status is None, r)
    # drop_after: executed, then the resend is a nonce replay
    emu.reset()
    emu.faults({"kind": "drop_after", "action": "AddCdnDomain"})
    params = {"CdnType": "web", "DomainName": "drop.example.net",
              "Sources": '[{"content":"1.1.1.1","type":"ipaddr","port":80}]'}
    r, sent, _ = v3(emu, "AddCdnDomain", params, nonce="drop-nonce-1")
    check(A + "drop_after: no answer", r.status is None, r)
    raw = form(split_params("AddCdnDomain", params)[0])
    r2 = send(emu, "POST", "/?" + raw, None, sent)
    check(A + "drop_after: the resend is a nonce replay", err(r2, 400, "SignatureNonceUsed"), r2)
    s = emu.stats()
    check(A + "drop_after: executed once, dropped, nonce_reused",
          s["executed"] == {"AddCdnDomain": 1} and s["dropped"] == 1 and
          s["nonce_reused"] == 1 and s["by_action"] == {"AddCdnDomain": 2}, s)
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "drop.example.net"})
    check(A + "drop_after: the domain was added", ok(r), r)
    r, _, _ = v3(emu, "AddCdnDomain", params)
    check(A + "adding it again: DomainAlreadyExist", err(r, 400, "DomainAlreadyExist"), r)


def domain_tests(emu):
    A = "domains "
    emu.reset()
    r, _, _ = v3(emu, "DescribeUserDomains", {"PageSize": "500"})
    pd = r.get("Domains", {}).get("PageData", [])
    check(A + "DescribeUserDomains PageSize 500", ok(r) and r.get("TotalCount") == 200 and
          len(pd) == 200 and r.get("PageSize") == 500, r)
    if pd:
        d = pd[0]
        check(A + "PageData shape", d["DomainName"] == "example-0001.com" and
              d["DomainStatus"] == "online" and d["Coverage"] == "domestic" and
              isinstance(d["DomainId"], int) and
              sorted(d["Sources"]["Source"][0]) == ["Content", "Port", "Priority", "Type",
                                                    "Weight"] and
              isinstance(d["Sources"]["Source"][0]["Port"], int), d)
    r, _, _ = v3(emu, "DescribeUserDomains", {"PageSize": "501"})
    check(A + "PageSize 501 refused", err(r, 400, "InvalidParameter", '"PageSize"'), r)
    r, _, _ = v3(emu, "DescribeUserDomains", {"DomainName": "example-0001.com,example-0002.com"})
    check(A + "DomainName list, exact match by default", ok(r) and r["TotalCount"] == 2, r)
    r, _, _ = v3(emu, "DescribeUserDomains", {"DomainName": "example-00",
                                              "DomainSearchType": "fuzzy_match",
                                              "PageNumber": "2", "PageSize": "50"})
    check(A + "fuzzy_match and paging", ok(r) and r["TotalCount"] == 99 and
          len(r["Domains"]["PageData"]) == 49 and r["PageNumber"] == 2, r)
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "example-0003.com"})
    m = r.get("GetDomainDetailModel", {})
    check(A + "DescribeCdnDomainDetail", ok(r) and m.get("DomainName") == "example-0003.com" and
          m.get("SourceModels", {}).get("SourceModel", [{}])[0].get("Enabled") == "online", r)
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "nope.example.net"})
    check(A + "unknown domain", err(r, 404, "InvalidDomain.NotFound"), r)
    # add -> configuring -> online; stop; start; delete
    src = '[{"content":"1.1.1.1","type":"ipaddr","priority":"20","port":80,"weight":"10"}]'
    r, _, _ = v3(emu, "AddCdnDomain", {"CdnType": "web", "DomainName": "new.example.net",
                                       "Sources": src, "Scope": "global"})
    check(A + "AddCdnDomain", ok(r) and sorted(r.json) == ["RequestId"], r)
    r, _, _ = v3(emu, "DescribeUserDomains", {"DomainName": "new.example.net"})
    check(A + "new domain configuring", ok(r) and r["TotalCount"] == 1 and
          r["Domains"]["PageData"][0]["DomainStatus"] == "configuring" and
          r["Domains"]["PageData"][0]["Coverage"] == "global", r)
    r, _ = v2(emu, "DescribeUserDomains", {"PageSize": "50", "PageNumber": "5"}, version=V2014,
              method="GET")
    check(A + "2014 DescribeUserDomains lists it too", r.status == 200 and
          r.get("TotalCount") == 201, r)
    for bad, code in (({"CdnType": "web", "DomainName": "b.example.net", "Sources": "[]"},
                       "InvalidSources.Malformed"),
                      ({"CdnType": "web", "DomainName": "b.example.net",
                        "Sources": '[{"content":"x","type":"ftp"}]'}, "InvalidSources.Malformed"),
                      ({"CdnType": "tv", "DomainName": "b.example.net", "Sources": src},
                       "InvalidParameter"),
                      ({"CdnType": "web", "DomainName": "not a domain", "Sources": src},
                       "InvalidDomainName.Malformed")):
        r, _, _ = v3(emu, "AddCdnDomain", bad)
        check(A + "AddCdnDomain refused: %s" % code, err(r, 400, code), r)
    time.sleep(0.35)
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "new.example.net"})
    check(A + "online after task_seconds",
          r.get("GetDomainDetailModel", {}).get("DomainStatus") == "online", r)
    r, _, _ = v3(emu, "StopCdnDomain", {"DomainName": "example-0005.com"})
    r2, _, _ = v3(emu, "DescribeUserDomains", {"DomainStatus": "offline"})
    check(A + "StopCdnDomain", ok(r) and r2["TotalCount"] == 1, r2)
    r, _, _ = v3(emu, "StartCdnDomain", {"DomainName": "example-0005.com"})
    r2, _, _ = v3(emu, "DescribeUserDomains", {"DomainStatus": "offline"})
    check(A + "StartCdnDomain", ok(r) and r2["TotalCount"] == 0, r2)
    r, _, _ = v3(emu, "DeleteCdnDomain", {"DomainName": "example-0006.com"})
    r2, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "example-0006.com"})
    check(A + "DeleteCdnDomain", ok(r) and err(r2, 404, "InvalidDomain.NotFound"), r2)
    # configs
    funcs = json.dumps([{"functionName": "referer_white_list_set", "functionArgs": [
        {"argName": "refer_domain_allow_list", "argValue": "a.com,b.com"}]},
        {"functionName": "https_force", "functionArgs": [{"argName": "enable",
                                                          "argValue": "on"}]}])
    r, _, _ = v3(emu, "BatchSetCdnDomainConfig", {"DomainNames": "example-0001.com,"
                                                  "example-0002.com", "Functions": funcs})
    lst = r.get("DomainConfigList", {}).get("DomainConfigModel", [])
    check(A + "BatchSetCdnDomainConfig", ok(r) and len(lst) == 4 and
          all(isinstance(x["ConfigId"], int) for x in lst) and
          len({x["ConfigId"] for x in lst}) == 4, r)
    r, _, _ = v3(emu, "DescribeCdnDomainConfigs", {"DomainName": "example-0001.com",
                                                   "FunctionNames": "https_force"})
    dc = r.get("DomainConfigs", {}).get("DomainConfig", [])
    check(A + "DescribeCdnDomainConfigs", ok(r) and len(dc) == 1 and
          dc[0]["FunctionArgs"]["FunctionArg"] == [{"ArgName": "enable", "ArgValue": "on"}] and
          dc[0]["Status"] == "success" and isinstance(dc[0]["ConfigId"], str), r)
    if dc:
        r, _, _ = v3(emu, "DeleteSpecificConfig", {"DomainName": "example-0001.com",
                                                   "ConfigId": dc[0]["ConfigId"]})
        r2, _, _ = v3(emu, "DescribeCdnDomainConfigs", {"DomainName": "example-0001.com"})
        check(A + "DeleteSpecificConfig", ok(r) and
              len(r2["DomainConfigs"]["DomainConfig"]) == 1, r2)
    def doms(n):     # example-0006.com was deleted above
        return ",".join("example-%04d.com" % i for i in range(7, 7 + n))
    r, _, _ = v3(emu, "BatchSetCdnDomainConfig", {"DomainNames": doms(21), "Functions": funcs})
    check(A + "BatchSetCdnDomainConfig: 21 domains refused",
          err(r, 400, "InvalidParameter", '"DomainNames"') and "At most 20" in r["Message"], r)
    r, _, _ = v3(emu, "BatchSetCdnDomainConfig", {"DomainNames": doms(20), "Functions": funcs})
    check(A + "BatchSetCdnDomainConfig: 20 domains accepted", ok(r) and len(
        r["DomainConfigList"]["DomainConfigModel"]) == 40, r)
    r, _, _ = v3(emu, "BatchDeleteCdnDomainConfig", {"DomainNames": doms(21),
                                                     "FunctionNames": "https_force"})
    check(A + "BatchDeleteCdnDomainConfig: 21 domains refused",
          err(r, 400, "InvalidParameter", '"DomainNames"') and "At most 20" in r["Message"], r)
    # (the 20 domains set above are example-0007 .. example-0026; delete from 19
    # of them, so the last one keeps its config)
    r, _, _ = v3(emu, "BatchDeleteCdnDomainConfig", {"DomainNames": doms(19),
                                                     "FunctionNames": "https_force"})
    r2, _, _ = v3(emu, "DescribeCdnDomainConfigs", {"DomainName": "example-0025.com",
                                                    "FunctionNames": "https_force"})
    r3, _, _ = v3(emu, "DescribeCdnDomainConfigs", {"DomainName": "example-0026.com",
                                                    "FunctionNames": "https_force"})
    check(A + "BatchDeleteCdnDomainConfig: 19 domains accepted", ok(r) and
          r2["DomainConfigs"]["DomainConfig"] == [] and
          len(r3["DomainConfigs"]["DomainConfig"]) == 1, (r, r2, r3))
    for bad in ("not json", "[]", '[{"functionName": "x"}]',
                '[{"functionName": "x", "functionArgs": [{"argName": "a"}]}]',
                '[{"functionName": "x", "functionArgs": [{"argName": "a", "argValue": "b"}], '
                '"colour": 1}]'):
        r, _, _ = v3(emu, "BatchSetCdnDomainConfig", {"DomainNames": "example-0001.com",
                                                      "Functions": bad})
        check(A + "bad Functions refused: %s" % bad[:30],
              err(r, 400, "InvalidParameter", '"Functions"'), r)
    r, _, _ = v3(emu, "BatchSetCdnDomainConfig", {"DomainNames": "nope.example.net",
                                                  "Functions": funcs})
    check(A + "BatchSetCdnDomainConfig unknown domain", err(r, 404, "InvalidDomain.NotFound"), r)
    # data and logs
    r, _, _ = v3(emu, "DescribeDomainBpsData", {"DomainName": "example-0001.com",
                                                "StartTime": "2026-01-01T00:00:00Z",
                                                "EndTime": "2026-01-01T01:00:00Z"})
    dm = r.get("BpsDataPerInterval", {}).get("DataModule", [])
    check(A + "DescribeDomainBpsData", ok(r) and r.get("DataInterval") == "300" and
          len(dm) == 12 and dm[0]["TimeStamp"] == "2026-01-01T00:00:00Z" and
          isinstance(dm[0]["Value"], str), r)
    r, _, _ = v3(emu, "DescribeDomainBpsData", {"Interval": "60"})
    check(A + "DescribeDomainBpsData bad Interval", err(r, 400, "InvalidParameter",
                                                        '"Interval"'), r)
    r, _, _ = v3(emu, "DescribeDomainBpsData", {"StartTime": "2026-01-01T00:00:00Z",
                                                "EndTime": "2026-01-05T00:00:00Z"})
    check(A + "DescribeDomainBpsData span > 3 days at 300 s",
          err(r, 400, "InvalidParameter", '"EndTime"'), r)
    r, _, _ = v3(emu, "DescribeCdnDomainLogs", {"DomainName": "example-0001.com",
                                                "StartTime": "2026-01-01T00:00:00Z",
                                                "EndTime": "2026-01-02T00:00:00Z",
                                                "PageSize": "10"})
    det = r.get("DomainLogDetails", {}).get("DomainLogDetail", [{}])[0]
    check(A + "DescribeCdnDomainLogs", ok(r) and det.get("LogCount") == 10 and
          det.get("PageInfos") == {"PageIndex": 1, "PageSize": 10, "Total": 24} and
          det["LogInfos"]["LogInfoDetail"][0]["LogName"].startswith("example-0001.com_"), r)
    emu.reset()
    r, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "example-0006.com"})
    r2, _, _ = v3(emu, "DescribeCdnDomainDetail", {"DomainName": "new.example.net"})
    check(A + "reset undoes the domain changes", ok(r) and err(r2, 404, "InvalidDomain.NotFound"),
          (r, r2))


SOURCES = '[{"content":"1.1.1.1","type":"ipaddr","priority":"20","port":80,"weight":"10"}]'
FUNCTIONS = ('[{"functionName":"referer_white_list_set","functionArgs":'
             '[{"argName":"refer_domain_allow_list","argValue":"a.com"}]}]')


def sample(action, name, i):
    """A value for a required parameter: what a careful caller would send."""
    if name in ("DomainName", "DomainNames"):
        if action in ("AddCdnDomain", "BatchAddCdnDomain"):
            return "new-%d.example.net" % i
        return "example-%04d.com" % (i + 1)
    return {"Sources": SOURCES, "Functions": FUNCTIONS, "CdnType": "web",
            "ObjectPath": "http://example-%04d.com/all.jpg" % (i + 1), "TaskId": "704222901",
            "StartTime": utc(time.time() - 3600), "EndTime": utc(time.time() - 60),
            "ConfigId": "5000001", "FunctionNames": "referer_white_list_set"}.get(name, "x")


def required_params(action, spec, i):
    """The action's required parameters, a repeated one flattened (Name.1,
    Name.1.Key, Name.1.Value) as the SDK sends it."""
    params = {}
    for n, req, _ in spec["params"]:
        if not req:
            continue
        rep = REPEATED.get(action, {})
        if n not in rep:
            params[n] = sample(action, n, i)
        elif rep[n]:
            params.update({"%s.1.%s" % (n, f): "x" for f in rep[n]})
        else:
            params[n + ".1"] = "x"
    return params


def all_actions_tests(emu):
    for sig in ("v3", "v2"):
        emu.reset()
        bad = []
        log_bad = []
        for i, (action, spec) in enumerate(sorted(TABLE_ACTS.items())):
            params = required_params(action, spec, i)
            if sig == "v3":
                r = v3(emu, action, params)[0]
            else:
                r = v2(emu, action, params)[0]
            if not ok(r):
                bad.append((action, r))
            entry = last_log(emu)
            want = {n: w for n, req, w in spec["params"] if req}
            got = {k.split(".")[0]: w for k, w in (entry.get("params") or {}).items()
                   if k.split(".")[0] in want}
            if (entry.get("signature") != sig or entry.get("version") != V2018 or
                    got != want or entry.get("method") != spec["method"]):
                log_bad.append((action, entry))
        check("all 176 actions answer 200 (%s)" % sig, not bad, bad[:3])
        check("all 176 actions logged with their parameters' places (%s)" % sig, not log_bad,
              log_bad[:2])
        s = emu.stats()
        check("all 176 actions executed once (%s)" % sig,
              s["executed"] == {a: 1 for a in TABLE_ACTS}, len(s["executed"]))


def main():
    t0 = time.monotonic()
    guarded(check_vectors)
    guarded(table_tests)
    emu = Emu(["--domains", "200", "--task-seconds", "0.3"])
    try:
        for fn in (auth_tests, param_tests, repeated_tests, log_tests, task_tests,
                   limit_tests, fault_tests, domain_tests, all_actions_tests):
            guarded(fn, emu)
    finally:
        emu.stop()
    return selftestlib.finish("selftest-aliyun-2018", t0)


if __name__ == "__main__":
    sys.exit(main())
