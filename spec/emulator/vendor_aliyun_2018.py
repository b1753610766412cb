"""vendor_aliyun_2018 -- Alibaba Cloud CDN RPC API version 2018-05-10 (the
vendor's current API), answered by cdnemu's aliyun vendor (vendor_aliyun.py)
on the same port as 2014-11-11.

A request is 2018-05-10 when its `x-acs-version` header (signature V3,
ACS3-HMAC-SHA256) or its `Version` parameter (signature V2, HMAC-SHA1
`Signature=` parameter, verified by vendor_aliyun's 2014 code) is 2018-05-10.

The actions, their HTTP methods, where each parameter travels (query string
or form body) and which parameters are repeated lists (sent flattened, Name.1,
Tag.1.Key; every other one only under its exact name) come from the emulator's
own table, tables/aliyun_2018_05_10.txt (read at start-up; independent of
cdnkit's Lua API data).

Signature V3 (this module's own implementation of the vendor's document):
    CanonicalRequest = METHOD \\n "/" \\n CanonicalQuery \\n CanonicalHeaders \\n
                       SignedHeaders \\n hex(sha256(body))
    CanonicalQuery   = the query parameters as received, names and values
                       percent-encoded (RFC 3986: only A-Z a-z 0-9 - _ . ~ kept),
                       sorted, "k=v" joined by "&"
    CanonicalHeaders = "name:value\\n" per SignedHeaders name (lower-case name,
                       the received value trimmed)
    StringToSign     = "ACS3-HMAC-SHA256\\n" + hex(sha256(CanonicalRequest))
    Signature        = hex(HMAC-SHA256(secret, StringToSign))
    Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>
See README.md (Alibaba 2018-05-10) for the checks, codes, faults and log fields.
"""

import calendar
import copy
import hashlib
import hmac
import json
import os
import re
import time
from urllib.parse import quote

from emucore import Invalid, ParamError, iso_utc, json_response, new_request_id, parse_form

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE_PATH = os.path.join(HERE, "tables", "aliyun_2018_05_10.txt")

VERSION = "2018-05-10"
ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# headers SignedHeaders must name (content-type too when the body is not empty)
REQUIRED_SIGNED = ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
                   "x-acs-signature-nonce", "x-acs-version")
# V2 signature protocol parameters (anywhere: they are signed with the rest)
V2_COMMON = frozenset({"Action", "Version", "Format", "AccessKeyId", "Signature",
                       "SignatureMethod", "SignatureVersion", "SignatureNonce",
                       "Timestamp"})
# parameters the SDK's request models carry but the table omits: accepted,
# optional, for every action (query string or body)
ALWAYS_OPTIONAL = frozenset({"OwnerId", "OwnerAccount", "SecurityToken"})

# /__emu/config settings of the 2018 API (kept by reset)
CONFIG = {
    "refresh_urls_per_minute": 1000,   # RefreshObjectCaches URLs per domain per window; 0 = off
    "refresh_window_seconds": 60,      # that window (sliding)
    "refresh_url_day_limit": 10000,    # UrlQuota (File)
    "refresh_dir_day_limit": 100,      # DirQuota (Directory)
    "refresh_regex_day_limit": 20,     # RegexQuota (Regex rules)
    "refresh_exquery_day_limit": 10000,  # IgnoreParamsQuota (ExQuery)
    "push_url_day_limit": 1000,        # PreloadQuota (PushObjectCache URLs)
    # the STS security token accepted (x-acs-security-token, V3; SecurityToken, V2)
    "security_token": "cdnemu-sts-token",
}


def check_security_token(vendor, token):
    """None, or the error answer for an STS token the emulator does not know
    (a signed request may carry one: x-acs-security-token / SecurityToken)."""
    if token is None:
        return None
    vendor.state.count("security_tokens")
    if token != vendor.state.vendor_config.get("security_token"):
        return vendor.error(400, "InvalidSecurityToken.Expired",
                            "Specified SecurityToken is expired or invalid.")
    return None
# quotas DescribeRefreshQuota shows that nothing in the emulator uses up
FIXED_QUOTAS = {"PreloadEdge": 500, "Block": 100}

THROTTLE_CODES = {
    "Throttling": "Request was denied due to request throttling.",
    "Throttling.User": "Request was denied due to user flow control.",
    "Throttling.Api": "Request was denied due to api flow control.",
}
THROTTLE_HEADERS = ("x-ratelimit-user-api", "x-ratelimit-user", "both", "none")
THROTTLE_STATUSES = (400, 429, 503)


# --------------------------------------------------------------------------
# the action table
# --------------------------------------------------------------------------
class TableError(Exception):
    pass


LINE_RX = re.compile(r"^([A-Za-z][A-Za-z0-9]*) \[(GET|POST)\]: (.*)$")
PARAM_RX = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(!?)\((q|b)\)$")
# the "## Repeated" section: `Action: Name[], Name[].{A,B}`
REPEATED_LINE_RX = re.compile(r"^([A-Za-z][A-Za-z0-9]*): (.+)$")
REPEATED_ITEM_RX = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\[\]"
                              r"(?:\.\{([A-Za-z][A-Za-z0-9]*(?:,[A-Za-z][A-Za-z0-9]*)*)\})?$")


def load_table(path=TABLE_PATH):
    """-> {Action: {"method": "GET"|"POST", "params": {Name: {"required": bool,
    "where": "query"|"body", "form": "scalar"|"list"|"structs", "fields":
    (member names of a "structs" parameter, else ())}}}} (params in table
    order).  The table's action list line and its "-- N" count must agree
    with the action lines.  After a "## Corrections" header, an action line
    replaces the earlier line of the same action (which must exist).  After a
    "## Repeated" header, `Action: Name[], Tag[].{Key,Value}` lines mark
    parameters of listed actions as repeated lists / lists of structures (each
    action once, each name a parameter of its line); every other parameter is
    a scalar."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    actions, listed, count, section = {}, None, None, "actions"
    repeated = {}
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("# "):
            continue
        if line.startswith("## Corrections"):
            section = "corrections"
            continue
        if line.startswith("## Repeated"):
            section = "repeated"
            continue
        if line.startswith("## "):
            if section != "actions":
                raise TableError("line %d: a section after ## Corrections / ## Repeated"
                                 % no)
            m = re.search(r"-- (\d+)\s*$", line)
            if m and count is None:
                count = int(m.group(1))
            continue
        if section == "repeated":
            m = REPEATED_LINE_RX.match(line)
            if not m or m.group(1) in repeated:
                raise TableError("line %d: not understood or repeated: %r" % (no, line[:80]))
            items = {}
            for item in re.split(r",\s*(?![^{]*\})", m.group(2)):
                im = REPEATED_ITEM_RX.match(item.strip())
                if not im or im.group(1) in items:
                    raise TableError("line %d: bad repeated parameter %r" % (no, item))
                fields = tuple(im.group(2).split(",")) if im.group(2) else ()
                if len(set(fields)) != len(fields):
                    raise TableError("line %d: a member twice in %r" % (no, item))
                items[im.group(1)] = fields
            repeated[m.group(1)] = (no, items)
            continue
        m = LINE_RX.match(line)
        if m:
            name, method, rest = m.groups()
            correcting = section == "corrections"
            if correcting != (name in actions):
                raise TableError("line %d: %s %s" % (no, name, "twice" if not correcting
                                                      else "corrected but not listed"))
            params = {}
            if rest.strip() != "-":
                for item in rest.split(","):
                    pm = PARAM_RX.match(item.strip())
                    if not pm:
                        raise TableError("line %d: bad parameter %r" % (no, item))
                    params[pm.group(1)] = {"required": pm.group(2) == "!",
                                           "where": "query" if pm.group(3) == "q" else "body",
                                           "form": "scalar", "fields": ()}
            actions[name] = {"method": method, "params": params}
            continue
        if listed is None and re.match(r"^[A-Z][A-Za-z0-9]*( [A-Z][A-Za-z0-9]*)+$", line):
            listed = line.split()
            continue
        raise TableError("line %d: not understood: %r" % (no, line[:80]))
    if listed is None or sorted(listed) != sorted(actions):
        raise TableError("the action list and the action lines differ")
    if count is not None and count != len(actions):
        raise TableError("the header says %d actions, %d found" % (count, len(actions)))
    for action, (no, items) in repeated.items():
        spec = actions.get(action)
        if spec is None:
            raise TableError("line %d: %s is not an action" % (no, action))
        for name, fields in items.items():
            d = spec["params"].get(name)
            if d is None:
                raise TableError("line %d: %s has no parameter %s" % (no, action, name))
            d["form"] = "structs" if fields else "list"
            d["fields"] = fields
    return actions


# --------------------------------------------------------------------------
# signature V3 (ACS3-HMAC-SHA256)
# --------------------------------------------------------------------------
def pct(s):
    """RFC 3986 percent-encoding of a str (UTF-8): A-Z a-z 0-9 - _ . ~ kept."""
    return quote(s.encode("utf-8"), safe="-_.~")


def canonical_query(pairs):
    """(name, value) str pairs (decoded) -> the canonical query string."""
    return "&".join("%s=%s" % kv for kv in sorted((pct(k), pct(v)) for k, v in pairs))


def canonical_request(method, query_pairs, headers, signed, payload_hash, path="/"):
    """headers: lower-case name -> value; signed: the SignedHeaders names in
    order."""
    canon_headers = "".join("%s:%s\n" % (n, (headers.get(n) or "").strip()) for n in signed)
    return "\n".join([method.upper(), path, canonical_query(query_pairs), canon_headers,
                      ";".join(signed), payload_hash])


def string_to_sign(canonical):
    return ALGORITHM + "\n" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def signature(secret, sts):
    return hmac.new(secret.encode("utf-8"), sts.encode("utf-8"), hashlib.sha256).hexdigest()


AUTH_RX = re.compile(r"^(\S+) (.*)$")


def parse_authorization(value):
    """'ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>'
    -> (algorithm, key id, [signed names], signature); ValueError(reason)."""
    m = AUTH_RX.match(value or "")
    if not m:
        raise ValueError("Authorization is not \"ACS3-HMAC-SHA256 Credential=...,"
                         "SignedHeaders=...,Signature=...\"")
    algo, rest = m.groups()
    fields = {}
    for part in rest.split(","):
        if "=" not in part:
            raise ValueError("Authorization field %r is not name=value" % part[:40])
        k, v = part.split("=", 1)
        if k != k.strip() or k in fields:
            raise ValueError("Authorization field %r repeated or padded (fields are "
                             "separated by a bare comma)" % k[:40])
        fields[k] = v
    want = {"Credential", "SignedHeaders", "Signature"}
    if set(fields) != want:
        raise ValueError("Authorization must have exactly the fields Credential, "
                         "SignedHeaders, Signature (got %s)" % ", ".join(sorted(fields)))
    signed = fields["SignedHeaders"].split(";")
    if (not all(signed) or signed != sorted(set(signed)) or
            any(n != n.lower() or n != n.strip() for n in signed)):
        raise ValueError("SignedHeaders must be distinct lower-case header names, "
                         "sorted, separated by ';'")
    if not fields["Credential"]:
        raise ValueError("Credential is empty")
    return algo, fields["Credential"], signed, fields["Signature"]


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
def classify(req):
    """The API version and signature of an aliyun request: None for a
    2014-11-11 request (and anything that is neither), else {"version",
    "signature": "v2"|"v3"}.  V3: an x-acs-version header or an ACS3
    Authorization; V2: Version=2018-05-10."""
    h = req.headers
    xv = h.get("x-acs-version") if h is not None else None
    auth = (h.get("Authorization") or "") if h is not None else ""
    if xv is not None or auth.startswith("ACS3-"):
        return {"version": xv, "signature": "v3"}
    if req.params and req.params.get("Version") == VERSION:
        return {"version": VERSION, "signature": "v2"}
    return None


def received(req):
    """[(name, value, "query"|"body")] as received (the body only for POST,
    as the handler reads it); raises ParamError for non-UTF-8."""
    out = [(k, v, "query") for k, v in
           parse_form((req.query or "").encode("latin-1", "replace"))]
    if req.method == "POST":
        out += [(k, v, "body") for k, v in parse_form(req.body or b"")]
    return out


class ParamRefused(Exception):
    """A parameter check's refusal; .response is the error answer."""

    def __init__(self, response):
        super().__init__("refused")
        self.response = response


# the part after "Name." of a flattened repeated list / list of structures
FLAT_LIST_RX = re.compile(r"^([1-9][0-9]*)$")
FLAT_STRUCT_RX = re.compile(r"^([1-9][0-9]*)\.([A-Za-z][A-Za-z0-9]*)$")


def flat_form(base, d):
    """How a repeated parameter travels, for error messages."""
    if d["form"] == "list":
        return "a repeated list (%s.1, %s.2, ...)" % (base, base)
    f = d["fields"]
    return "a list of structures (%s)" % ", ".join(
        ["%s.1.%s" % (base, x) for x in f] + ["%s.2.%s" % (base, f[0]), "..."])


def where_map(pairs):
    m = {}
    for k, _, w in pairs:
        if k in m and m[k] != w:
            m[k] = "query+body"
        else:
            m.setdefault(k, w)
    return m


TS_RX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def parse_utc(s):
    """'YYYY-MM-DDThh:mm:ssZ' -> epoch seconds, or None."""
    if not s or not TS_RX.match(s):
        return None
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def split_list(v, sep=","):
    return [x.strip() for x in (v or "").split(sep) if x.strip()]


def split_paths(v):
    return [x for x in re.split(r"\r?\n", v or "") if x.strip()]


SCHEME_RX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
HOSTNAME_RX = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
DOMAIN_RX = re.compile(r"^(?:\*\.|\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                       r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def host_of(path):
    """The domain of an ObjectPath entry ("http(s)://host[:port]/..." or
    "host/...") -> (lower-case host, None) or (None, "malformed"|"wildcard")."""
    s = path.strip()
    m = SCHEME_RX.match(s)
    if m:
        if m.group(1).lower() not in ("http", "https"):
            return None, "malformed"
        s = m.group(2)
    host = re.split(r"[/?#]", s, 1)[0]
    if host.count(":") == 1:
        host, port = host.split(":")
        if not port.isdigit():
            return None, "malformed"
    if "*" in host:
        return None, "wildcard"
    if not HOSTNAME_RX.match(host):
        return None, "malformed"
    return host.lower(), None


def bool_param(p, name):
    v = p.get(name)
    if v is None or v == "":
        return None
    if v.lower() not in ("true", "false"):
        raise Invalid(name)
    return v.lower() == "true"


def num_param(p, name, default, lo, hi):
    raw = p.get(name)
    if raw is None or raw == "":
        return default
    if not re.match(r"^-?\d+$", raw):
        raise Invalid(name)
    v = int(raw)
    if v < lo or v > hi:
        raise Invalid(name)
    return v


def beijing_day(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts + 8 * 3600))


# --------------------------------------------------------------------------
# the 2018-05-10 API
# --------------------------------------------------------------------------
class Aliyun2018:
    """Owned by the aliyun vendor (vendor_aliyun.Aliyun, `v` below), which
    hands it every 2018-05-10 request: authenticate_v3() for V3 signatures
    (V2 is the vendor's own code), dispatch() after a valid signature and a
    fresh nonce.  Errors use the vendor's envelope (v.error)."""

    def __init__(self, vendor, table_path=TABLE_PATH):
        self.v = vendor
        self.state = vendor.state
        self.table = load_table(table_path)

    # ---- request log -----------------------------------------------------
    def log_fields(self, req, info):
        try:
            params = where_map(received(req))
        except ParamError:
            params = None
        signed = None
        if info["signature"] == "v3":
            try:
                signed = parse_authorization(req.headers.get("Authorization") or "")[2]
            except ValueError:
                signed = None
        return {"version": info["version"], "signature": info["signature"],
                "params": params, "signed_headers": signed, "error": None}

    # ---- signature V3 ------------------------------------------------------
    def authenticate_v3(self, req):
        v, h = self.v, req.headers
        ver = h.get("x-acs-version")
        if not ver:
            return v.missing("x-acs-version"), None
        if ver != VERSION:
            return v.error(400, "NoSuchVersion", "Specified api version is not valid."), None
        for name in REQUIRED_SIGNED:
            if not (h.get(name) or "").strip():
                return v.missing(name), None
        auth = h.get("Authorization")
        if not auth:
            return self.incomplete("the Authorization header is missing"), None
        try:
            algo, key_id, signed, sig = parse_authorization(auth)
        except ValueError as e:
            return self.incomplete(str(e)), None
        if algo != ALGORITHM:
            return self.incomplete("signature algorithm %s is not supported; use %s"
                                   % (algo[:40], ALGORITHM)), None
        body = req.body or b""
        need = list(REQUIRED_SIGNED) + (["content-type"] if body else [])
        for name in need:
            if name not in signed:
                return self.incomplete("SignedHeaders must include %s" % name), None
        for name in signed:
            if h.get(name) is None:
                return self.incomplete("signed header %s is not in the request" % name), None
        for name in h.keys():
            n = name.lower()
            if n.startswith("x-acs-") and n not in signed:
                return self.incomplete("header %s is not in SignedHeaders" % n), None
        date = h.get("x-acs-date").strip()
        ts = parse_utc(date)
        if ts is None:
            return v.error(400, "InvalidTimeStamp.Format",
                           "Specified time stamp or date value is not well formatted."), None
        if abs(ts - self.state.now()) > 15 * 60:
            return v.error(400, "InvalidTimeStamp.Expired",
                           "Specified time stamp or date value is expired."), None
        secret = v.CREDENTIALS.get(key_id)
        if secret is None:
            return v.error(404, "InvalidAccessKeyId.NotFound",
                           "Specified access key is not found."), None
        actual = hashlib.sha256(body).hexdigest()
        claimed = h.get("x-acs-content-sha256").strip()
        try:
            qpairs = parse_form((req.query or "").encode("latin-1", "replace"))
        except ParamError as e:
            return v.err_input(str(e)), None
        headers = {n: h.get(n) for n in signed}
        canon = canonical_request(req.method, qpairs, headers, signed, actual)
        sts = string_to_sign(canon)
        if claimed != actual:
            self.state.sig_failure()
            self.state.annotate(req, {"sign_detail": {
                "reason": "x-acs-content-sha256 is not the SHA-256 of the body received",
                "canonical_request": canon, "string_to_sign": sts}})
            return v.error(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           "x-acs-content-sha256 (%s) is not the SHA-256 of the request "
                           "body received (%s)." % (claimed[:64], actual)), None
        expect = signature(secret, sts)
        if not hmac.compare_digest(expect.encode(), sig.encode("utf-8", "replace")):
            self.state.sig_failure()
            self.state.annotate(req, {"sign_detail": {
                "reason": "signature mismatch", "canonical_request": canon,
                "string_to_sign": sts}})
            return v.error(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           "server string to sign is:" + sts), None
        bad = check_security_token(v, h.get("x-acs-security-token"))
        if bad is not None:
            return bad, None
        return None, ("aliyun", h.get("x-acs-signature-nonce").strip())

    def incomplete(self, why):
        return self.v.error(400, "IncompleteSignature",
                            "The request signature does not conform to Aliyun standards. "
                            + why + ".")

    # ---- dispatch ----------------------------------------------------------
    def dispatch(self, req):
        v = self.v
        info = req.aliyun
        action = req.action
        if not action:
            return v.missing("Action")
        spec = self.table.get(action)
        if spec is None:
            return v.error(404, "InvalidAction.NotFound",
                           "Specified api is not found, please check your url and method.")
        if req.method != spec["method"]:
            return v.error(400, "UnsupportedHTTPMethod",
                           "This http method (%s) is not supported for %s; use %s."
                           % (req.method, action, spec["method"]))
        if req.method == "GET" and req.body:
            return v.invalid("Body", "A GET request carries no body; %s takes its "
                             "parameters in the query string." % action)
        try:
            pairs = received(req)
        except ParamError as e:
            return v.err_input(str(e))
        declared = spec["params"]
        try:
            params = self.check_params(action, declared, pairs, info["signature"])
        except ParamRefused as e:
            return e.response
        fn = getattr(self, "act_" + action, None)
        if fn is None:
            return json_response(200, {"RequestId": new_request_id()})
        try:
            if action in v.TASK_ACTIONS:
                return fn(params, record=not req.no_task_id)
            return fn(params)
        except Invalid as e:
            return v.invalid(e.name)

    def check_params(self, action, declared, pairs, sig):
        """The received (name, value, where) pairs against the action's table
        line -> {name: value} (names as received); ParamRefused(answer) on the
        first refusal.  A scalar parameter is accepted only under its exact
        name; a repeated list (`Name[]`) only as Name.1, Name.2, ...; a list of
        structures (`Name[].{A,B}`) only as Name.1.A, Name.1.B, ... (N from 1,
        no gap, no leading zero); V2 common parameters (V2 only) and
        ALWAYS_OPTIONAL ones only under their exact names."""
        v = self.v
        params, indexes = {}, {}
        for name, value, where in pairs:
            base, dot, rest = name.partition(".")
            if not dot:
                if sig == "v2" and name in V2_COMMON and name not in declared:
                    continue
                if name in ALWAYS_OPTIONAL and name not in declared:
                    continue
            d = declared.get(base)
            if d is None:
                if base in ALWAYS_OPTIONAL or (sig == "v2" and base in V2_COMMON):
                    raise ParamRefused(v.invalid(name, "%s is one value under its own name, "
                                                 "not a list (%s)." % (base, name)))
                raise ParamRefused(v.invalid(name, "%s (%s) has no parameter %s." % (
                    action, VERSION, base)))
            form = d["form"]
            if form == "scalar":
                if dot:
                    raise ParamRefused(v.invalid(name, "%s (%s) takes %s as one value under "
                                                 "its own name, not as a list (%s)." % (
                                                     action, VERSION, base, name)))
            else:
                m = FLAT_LIST_RX.match(rest) if form == "list" else FLAT_STRUCT_RX.match(rest)
                if not dot or not m or (form == "structs" and m.group(2) not in d["fields"]):
                    raise ParamRefused(v.invalid(name, "%s (%s) takes %s as %s." % (
                        action, VERSION, base, flat_form(base, d))))
                indexes.setdefault(base, set()).add(int(m.group(1)))
            if d["where"] != where:
                raise ParamRefused(v.invalid(name, "%s (%s) takes it in the %s, not in the %s."
                                             % (action, VERSION,
                                                "form body" if d["where"] == "body"
                                                else "query string",
                                                "form body" if where == "body"
                                                else "query string")))
            params[name] = value
        for base, seen in indexes.items():
            want = set(range(1, len(seen) + 1))
            if seen != want:
                gap = min(want - seen)
                raise ParamRefused(v.invalid(base, "%s (%s) takes %s as %s; %s.%d is missing "
                                             "(received: %s)." % (
                                                 action, VERSION, base,
                                                 flat_form(base, declared[base]), base, gap,
                                                 ", ".join(str(i) for i in sorted(seen)))))
        for name, d in declared.items():
            if not d["required"]:
                continue
            if d["form"] == "scalar":
                present = bool(params.get(name))
            else:
                present = any(val for k, val in params.items()
                              if k.startswith(name + "."))
            if not present:
                raise ParamRefused(v.missing(name))
        return params

    # ---- domains -----------------------------------------------------------
    def domain_or_404(self, name):
        d = self.v.find_domain(name)
        if d is None:
            return None, self.v.error(404, "InvalidDomain.NotFound",
                                      "The domain provided does not belong to you.")
        return d, None

    # DomainNames per call (comma-separated): BatchSetCdnDomainConfig 50 (SDK
    # v9.0.0 doc of BatchSetCdnDomainConfig: "up to 50 domain names in each
    # call"; the vendor's API page), BatchDeleteCdnDomainConfig 20
    # the vendor's notice "Adjust the number of domain names that can be
    # configured in a single batch": 50 -> 40 (2026-04-09) -> 30 (04-23) -> 20
    # (2026-05-07), for both actions; the SDK v9.0.0 docs still say 50
    DOMAIN_LIMITS = {"BatchSetCdnDomainConfig": 20, "BatchDeleteCdnDomainConfig": 20}

    def domains_or_error(self, p, action, name="DomainNames"):
        limit = self.DOMAIN_LIMITS[action]
        names = split_list(p.get(name))
        if len(names) > limit:
            return None, self.v.invalid(name, "At most %d domain names per call." % limit)
        out = []
        for n in names:
            d, err = self.domain_or_404(n)
            if err:
                return None, err
            out.append(d)
        return out, None

    @staticmethod
    def domain_view(d):
        return {
            "DomainName": d["name"], "Cname": d["cname"], "CdnType": d["cdn_type"],
            "DomainStatus": d["status"], "GmtCreated": d["created"],
            "GmtModified": d["modified"], "Description": d["description"],
            "SslProtocol": d["ssl"], "Coverage": d["scope"], "DomainId": d["id"],
            "ResourceGroupId": d["resource_group"], "Sandbox": "normal",
            "Sources": {"Source": [{"Content": s["content"], "Type": s["type"],
                                    "Port": s["port"], "Priority": s["priority"],
                                    "Weight": s["weight"]} for s in d["sources"]]},
        }

    def act_DescribeUserDomains(self, p):
        v = self.v
        page = num_param(p, "PageNumber", 1, 1, 100000)
        size = num_param(p, "PageSize", 20, 1, 500)
        items = v.domain_records()
        names = split_list(p.get("DomainName"))
        if len(names) > 50:
            return v.invalid("DomainName", "At most 50 domain names.")
        mode = p.get("DomainSearchType") or "full_match"
        test = {"full_match": lambda n, x: n == x, "pre_match": lambda n, x: n.startswith(x),
                "suf_match": lambda n, x: n.endswith(x),
                "fuzzy_match": lambda n, x: x in n}.get(mode)
        if test is None:
            return v.invalid("DomainSearchType")
        if names:
            items = [d for d in items if any(test(d["name"], x) for x in names)]
        status = p.get("DomainStatus")
        if status:
            if status not in ("online", "offline", "configuring", "configure_failed",
                              "checking", "check_failed", "stopping", "deleting"):
                return v.invalid("DomainStatus")
            items = [d for d in items if d["status"] == status]
        types = split_list(p.get("CdnType"))
        if any(t not in ("web", "download", "video") for t in types):
            return v.invalid("CdnType")
        if types:
            items = [d for d in items if d["cdn_type"] in types]
        cov = p.get("Coverage")
        if cov:
            if cov not in ("domestic", "overseas", "global"):
                return v.invalid("Coverage")
            items = [d for d in items if d["scope"] == cov]
        src = p.get("Source")
        if src:
            items = [d for d in items if any(src in s["content"] for s in d["sources"])]
        rg = p.get("ResourceGroupId")
        if rg:
            items = [d for d in items if d["resource_group"] == rg]
        bool_param(p, "CheckDomainShow")
        for n in ("ChangeStartTime", "ChangeEndTime"):
            if p.get(n) and parse_utc(p[n]) is None:
                return v.error(400, "Invalid%s.Malformed" % n,
                               "Specified %s is malformed." % n)
        return json_response(200, {
            "RequestId": new_request_id(), "PageNumber": page, "PageSize": size,
            "TotalCount": len(items),
            "Domains": {"PageData": [self.domain_view(d) for d in
                                     items[(page - 1) * size: page * size]]}})

    def act_DescribeCdnDomainDetail(self, p):
        d, err = self.domain_or_404(p["DomainName"])
        if err:
            return err
        model = {
            "DomainName": d["name"], "Cname": d["cname"], "CdnType": d["cdn_type"],
            "DomainStatus": d["status"], "GmtCreated": d["created"],
            "GmtModified": d["modified"], "Description": d["description"],
            "HttpsCname": "", "ResourceGroupId": d["resource_group"], "Scope": d["scope"],
            "ServerCertificateStatus": "on" if d["ssl"] == "on" else "off",
            "SourceModels": {"SourceModel": [
                {"Content": s["content"], "Type": s["type"], "Port": s["port"],
                 "Priority": s["priority"], "Weight": s["weight"], "Enabled": "online"}
                for s in d["sources"]]},
        }
        return json_response(200, {"RequestId": new_request_id(),
                                   "GetDomainDetailModel": model})

    def act_AddCdnDomain(self, p):
        v = self.v
        cdn_type = p["CdnType"]
        if cdn_type not in ("web", "download", "video"):
            return v.invalid("CdnType")
        name = p["DomainName"].strip().lower()
        if not DOMAIN_RX.match(name) or len(name) > 253:
            return v.error(400, "InvalidDomainName.Malformed",
                           "The specified domain name is malformed.")
        scope = p.get("Scope") or "domestic"
        if scope not in ("domestic", "overseas", "global"):
            return v.invalid("Scope")
        sources, why = parse_sources(p["Sources"])
        if why:
            return v.error(400, "InvalidSources.Malformed",
                           "The specified Sources is malformed. " + why)
        if not v.add_domain(name, cdn_type, scope, sources,
                            p.get("ResourceGroupId") or None):
            return v.error(400, "DomainAlreadyExist", "The domain already exists.")
        return json_response(200, {"RequestId": new_request_id()})

    def _set_status(self, p, status):
        d, err = self.domain_or_404(p["DomainName"])
        if err:
            return err
        self.v.set_domain_status(d["name"], status)
        return json_response(200, {"RequestId": new_request_id()})

    def act_StartCdnDomain(self, p):
        return self._set_status(p, "online")

    def act_StopCdnDomain(self, p):
        return self._set_status(p, "offline")

    def act_DeleteCdnDomain(self, p):
        return self._set_status(p, None)

    # ---- configs -----------------------------------------------------------
    def act_BatchSetCdnDomainConfig(self, p):
        v = self.v
        doms, err = self.domains_or_error(p, "BatchSetCdnDomainConfig")
        if err:
            return err
        funcs, why = parse_functions(p["Functions"])
        if why:
            return v.invalid("Functions", why)
        out = v.set_configs([d["name"] for d in doms], funcs)
        if isinstance(out, str):
            return v.error(404, "InvalidConfigId.NotFound",
                           "The specified ConfigId %s does not exist." % out)
        return json_response(200, {"RequestId": new_request_id(), "DomainConfigList": {
            "DomainConfigModel": [{"ConfigId": c["ConfigId"], "DomainName": dn,
                                   "FunctionName": c["FunctionName"]} for dn, c in out]}})

    def act_DescribeCdnDomainConfigs(self, p):
        d, err = self.domain_or_404(p["DomainName"])
        if err:
            return err
        cfgs = self.v.configs_of(d["name"])
        names = split_list(p.get("FunctionNames"))
        if names:
            cfgs = [c for c in cfgs if c["FunctionName"] in names]
        cid = p.get("ConfigId")
        if cid:
            cfgs = [c for c in cfgs if str(c["ConfigId"]) == cid]
        return json_response(200, {"RequestId": new_request_id(), "DomainConfigs": {
            "DomainConfig": [{"ConfigId": str(c["ConfigId"]),
                              "FunctionName": c["FunctionName"],
                              "FunctionArgs": {"FunctionArg": copy.deepcopy(c["args"])},
                              "ParentId": str(c["ParentId"]) if c["ParentId"] is not None
                              else "", "Status": "success"} for c in cfgs]}})

    def act_DeleteSpecificConfig(self, p):
        d, err = self.domain_or_404(p["DomainName"])
        if err:
            return err
        ids = split_list(p["ConfigId"])
        self.v.delete_configs(d["name"], lambda c: str(c["ConfigId"]) in ids)
        return json_response(200, {"RequestId": new_request_id()})

    def act_BatchDeleteCdnDomainConfig(self, p):
        doms, err = self.domains_or_error(p, "BatchDeleteCdnDomainConfig")
        if err:
            return err
        names = split_list(p["FunctionNames"])
        for d in doms:
            self.v.delete_configs(d["name"], lambda c: c["FunctionName"] in names)
        return json_response(200, {"RequestId": new_request_id()})

    # ---- refresh / prefetch ------------------------------------------------
    def _quota_state(self):
        """(under state.lock) today's usage dict, reset at 00:00 UTC+8."""
        ex = self.state.extra
        day = beijing_day(self.state.now())
        q = ex.get("aliyun_quota")
        if q is None or q["day"] != day:
            q = ex["aliyun_quota"] = {"day": day, "url": 0, "dir": 0, "regex": 0,
                                      "exquery": 0, "push": 0}
        return q

    QUOTA_KEYS = {"url": "refresh_url_day_limit", "dir": "refresh_dir_day_limit",
                  "regex": "refresh_regex_day_limit", "exquery": "refresh_exquery_day_limit",
                  "push": "push_url_day_limit"}

    def _paths(self, p, limit_code, per_call, what, dirs=False):
        """-> (paths, [domains], None) or (None, None, error)."""
        v = self.v
        paths = split_paths(p.get("ObjectPath"))
        if not paths:
            return None, None, self.malformed()
        domains = []
        for path in paths:
            if len(path) > 1024:
                return None, None, self.malformed("An ObjectPath entry is longer than 1024 "
                                                  "characters.")
            host, why = host_of(path)
            if why == "wildcard":
                return None, None, v.error(400, "InvalidExtensiveDomain.ValueNotSupported",
                                           "Extensive domain not supported.")
            if host is None:
                return None, None, self.malformed("%r has no domain." % path[:80])
            if dirs and not path.endswith("/"):
                return None, None, self.malformed("A directory must end with /: %r."
                                                  % path[:80])
            if host not in domains:
                domains.append(host)
        if len(paths) > per_call:
            if limit_code == "SingleRequest.OverLimit":
                return None, None, v.error(400, limit_code, "A maximum of %d %s are supported "
                                           "for each request." % (per_call, what))
            return None, None, v.error(400, limit_code, "The size of ObjectPath is bigger "
                                       "than %d." % per_call)
        return paths, domains, None

    def malformed(self, why=""):
        return self.v.error(400, "InvalidObjectPath.Malformed",
                            "The specific value of parameter ObjectPath is malformed."
                            + (" " + why if why else ""))

    def act_RefreshObjectCaches(self, p, record=True):
        v, st = self.v, self.state
        otype = {"file": "File", "directory": "Directory", "regex": "Regex",
                 "exquery": "ExQuery"}.get((p.get("ObjectType") or "File").lower())
        if otype is None:
            return v.error(400, "InvalidObjectType.ValueNotSupported",
                           "The specified value of ObjectType is not supported.")
        bool_param(p, "Force")
        per_call, what, qkey, ttype = {
            "File": (1000, "URLs", "url", "file"),
            "ExQuery": (1000, "URLs", "exquery", "file"),
            "Directory": (100, "directories", "dir", "path"),
            "Regex": (1, "regex rules", "regex", "regex")}[otype]
        paths, domains, err = self._paths(p, "SingleRequest.OverLimit", per_call, what,
                                          dirs=otype == "Directory")
        if err:
            return err
        if len(domains) > 10:
            return v.error(400, "SingleRequest.OverLimit",
                           "URLs of at most 10 domain names are supported for each request "
                           "(%d given)." % len(domains))
        if not record:     # no_task_id: success, nothing recorded or used up
            return json_response(200, {"RequestId": new_request_id()})
        mono = time.monotonic()
        with st.lock:
            cfg = st.vendor_config
            q = self._quota_state()
            limit = cfg[self.QUOTA_KEYS[qkey]]
            if q[qkey] + len(paths) > limit:
                return v.error(400, "QuotaExceeded.Refresh",
                               "You've exceeded the prescribed refresh limits. (%s: %d of %d "
                               "used today, %d more asked)" % (otype, q[qkey], limit,
                                                                len(paths)))
            per_min = cfg["refresh_urls_per_minute"]
            window = cfg["refresh_window_seconds"]
            wins = st.extra.setdefault("aliyun_refresh_window", {})
            if otype in ("File", "ExQuery") and per_min:
                counts = {}
                for path in paths:
                    h = host_of(path)[0]
                    counts[h] = counts.get(h, 0) + 1
                for h, n in counts.items():
                    recent = [e for e in wins.get(h, []) if mono - e[0] < window]
                    wins[h] = recent
                    used = sum(e[1] for e in recent)
                    if used + n > per_min:
                        return v.error(400, "QuotaPerMinuteExceeded.Refresh",
                                       "You've exceeded the prescribed refresh limits per "
                                       "minute. (%s: %d URLs in the last %g s, limit %d)"
                                       % (h, used, window, per_min))
                for h, n in counts.items():
                    wins[h].append((mono, n))
            q[qkey] += len(paths)
        tid = str(704222900 + st.next_task_id())
        srv = st.now()
        tasks = [{"TaskId": tid, "ObjectPath": path, "ObjectType": ttype, "mono": mono,
                  "created": srv, "Api": VERSION, "Kind": otype} for path in paths]
        if otype in ("File", "ExQuery"):
            st.record(urls=paths, tasks=tasks)
        elif otype == "Directory":
            st.record(dirs=paths, tasks=tasks)
        else:
            st.record(tasks=tasks)
        return json_response(200, {"RequestId": new_request_id(), "RefreshTaskId": tid})

    def act_PushObjectCache(self, p, record=True):
        v, st = self.v, self.state
        area = p.get("Area")
        if area and area not in ("domestic", "overseas"):
            return v.invalid("Area")
        for n in ("L2Preload", "QueryHashkey", "ConsistencyHash"):
            bool_param(p, n)
        wh = p.get("WithHeader")
        if wh:
            try:
                obj = json.loads(wh)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or not all(isinstance(x, str) for x in obj.values()):
                return v.invalid("WithHeader", "A JSON object of header names to string "
                                 "values is expected.")
        paths, domains, err = self._paths(p, "InvalidObjectPath.Size.Malformed", 100, "URLs")
        if err:
            return err
        if not record:
            return json_response(200, {"RequestId": new_request_id()})
        with st.lock:
            q = self._quota_state()
            limit = st.vendor_config["push_url_day_limit"]
            if q["push"] + len(paths) > limit:
                return v.error(400, "QuotaExceeded.Refresh",
                               "You've exceeded the prescribed refresh limits. (prefetch: %d "
                               "of %d used today, %d more asked)" % (q["push"], limit,
                                                                      len(paths)))
            q["push"] += len(paths)
        tid = str(704222900 + st.next_task_id())
        mono, srv = time.monotonic(), st.now()
        tasks = [{"TaskId": tid, "ObjectPath": path, "ObjectType": "preload", "mono": mono,
                  "created": srv, "Api": VERSION, "Kind": "Preload"} for path in paths]
        st.record(prefetch=paths, tasks=tasks)
        return json_response(200, {"RequestId": new_request_id(), "PushTaskId": tid})

    def task_rows(self):
        """Every recorded task (2014 and 2018), newest call first, as 2018
        CDNTask objects (ObjectType path -> directory)."""
        done_after = self.state.task_seconds
        now = time.monotonic()
        tasks = self.state.snapshot_tasks()
        order = sorted(range(len(tasks)), key=lambda i: (-int(tasks[i]["TaskId"]), i))
        rows = []
        for t in (tasks[i] for i in order):
            complete = now - t["mono"] >= done_after
            rows.append({"TaskId": t["TaskId"], "ObjectPath": t["ObjectPath"],
                         "ObjectType": {"path": "directory"}.get(t["ObjectType"],
                                                                  t["ObjectType"]),
                         "Status": "Complete" if complete else "Refreshing",
                         "Process": "100%" if complete else "0%",
                         "CreationTime": iso_utc(t["created"]), "Description": "",
                         "_created": t["created"]})
        return rows

    @staticmethod
    def public(rows):
        return [{k: x for k, x in r.items() if not k.startswith("_")} for r in rows]

    def act_DescribeRefreshTasks(self, p):
        v = self.v
        page = num_param(p, "PageNumber", 1, 1, 100000)
        size = num_param(p, "PageSize", 20, 1, 100)
        otype = (p.get("ObjectType") or "").lower()
        if otype and otype not in ("file", "directory", "regex", "preload"):
            return v.invalid("ObjectType")
        status = p.get("Status") or ""
        if status and status not in ("Complete", "Refreshing", "Failed"):
            return v.invalid("Status")
        if (p.get("DomainName") or status) and not otype:
            return v.missing("ObjectType")
        start = end = None
        if p.get("StartTime"):
            start = parse_utc(p["StartTime"])
            if start is None:
                return v.error(400, "InvalidStartTime.Malformed",
                               "Specified StartTime is malformed.")
        if p.get("EndTime"):
            end = parse_utc(p["EndTime"])
            if end is None:
                return v.error(400, "InvalidEndTime.Malformed", "Specified EndTime is malformed.")
        if start is not None and end is not None and end <= start:
            return v.error(400, "InvalidEndTime.Mismatch",
                           "Specified end time is earlier than or equal to the start time.")
        rows = self.task_rows()
        if p.get("TaskId"):
            wanted = set(split_list(p["TaskId"]))
            rows = [r for r in rows if r["TaskId"] in wanted]
        if p.get("ObjectPath"):
            rows = [r for r in rows if r["ObjectPath"] == p["ObjectPath"]]
        if otype:
            rows = [r for r in rows if r["ObjectType"] == otype]
        if status:
            rows = [r for r in rows if r["Status"] == status]
        if p.get("DomainName"):
            dn = p["DomainName"].lower()
            rows = [r for r in rows if host_of(r["ObjectPath"])[0] == dn]
        if start is not None:
            rows = [r for r in rows if r["_created"] >= start]
        if end is not None:
            rows = [r for r in rows if r["_created"] < end]
        return json_response(200, {
            "RequestId": new_request_id(), "PageNumber": page, "PageSize": size,
            "TotalCount": len(rows),
            "Tasks": {"CDNTask": self.public(rows[(page - 1) * size: page * size])}})

    def act_DescribeRefreshTaskById(self, p):
        ids = split_list(p["TaskId"])
        if not ids or len(ids) > 10 or not all(i.isdigit() for i in ids):
            return self.v.invalid("TaskId", "Up to 10 numeric task IDs separated by commas.")
        rows = [r for r in self.task_rows() if r["TaskId"] in ids]
        return json_response(200, {"RequestId": new_request_id(), "TotalCount": len(rows),
                                   "Tasks": self.public(rows)})

    def act_DescribeRefreshQuota(self, p):
        st = self.state
        with st.lock:
            q = dict(self._quota_state())
            cfg = dict(st.vendor_config)
        out = {"RequestId": new_request_id()}
        for field, key in (("Url", "url"), ("Dir", "dir"), ("Regex", "regex"),
                           ("IgnoreParams", "exquery"), ("Preload", "push")):
            limit = int(cfg[self.QUOTA_KEYS[key]])
            out[field + "Quota"] = str(limit)
            out[field + "Remain"] = str(max(0, limit - q[key]))
        for field, limit in FIXED_QUOTAS.items():
            out[field + "Quota"] = str(limit)
            out[field + "Remain"] = str(limit)
        return json_response(200, out)

    # ---- data, logs, service ------------------------------------------------
    def _time_range(self, p, default_span):
        """StartTime/EndTime (UTC, optional; default: the last default_span
        seconds) -> (start, end, None) or (None, None, error)."""
        v = self.v
        now = int(self.state.now())
        start = end = None
        if p.get("StartTime"):
            start = parse_utc(p["StartTime"])
            if start is None:
                return None, None, v.error(400, "InvalidStartTime.Malformed",
                                           "Specified StartTime is malformed.")
        if p.get("EndTime"):
            end = parse_utc(p["EndTime"])
            if end is None:
                return None, None, v.error(400, "InvalidEndTime.Malformed",
                                           "Specified EndTime is malformed.")
        if end is None:
            end = now if start is None else min(now, start + default_span)
        if start is None:
            start = end - default_span
        if end <= start:
            return None, None, v.error(400, "InvalidEndTime.Mismatch",
                                       "Specified end time is earlier than or equal to the "
                                       "start time.")
        return start, end, None

    def act_DescribeDomainBpsData(self, p):
        v = self.v
        names = split_list(p.get("DomainName"))
        if len(names) > 500:
            return v.invalid("DomainName", "At most 500 domain names.")
        interval = p.get("Interval") or "300"
        spans = {"300": 3 * 86400, "3600": 31 * 86400, "86400": 366 * 86400}
        if interval not in spans:
            return v.invalid("Interval")
        start, end, err = self._time_range(p, 86400)
        if err:
            return err
        step = int(interval)
        if end - start > spans[interval]:
            return v.invalid("EndTime", "At most %d days for Interval %s."
                             % (spans[interval] // 86400, interval))
        t = start - start % step
        rows = []
        seed = ",".join(names)
        while t < end:
            base = 1000000 + int(hashlib.md5(("%s%d" % (seed, t)).encode()).hexdigest()[:6], 16)
            rows.append({"TimeStamp": iso_utc(t), "Value": "%.2f" % base,
                         "DomesticValue": "%.2f" % (base * 0.8),
                         "OverseasValue": "%.2f" % (base * 0.2),
                         "HttpsValue": "%.2f" % (base * 0.5),
                         "HttpsDomesticValue": "%.2f" % (base * 0.4),
                         "HttpsOverseasValue": "%.2f" % (base * 0.1)})
            t += step
        return json_response(200, {
            "RequestId": new_request_id(), "DomainName": ",".join(names),
            "StartTime": iso_utc(start), "EndTime": iso_utc(end), "DataInterval": interval,
            "LocationNameEn": p.get("LocationNameEn") or "", "IspNameEn": p.get("IspNameEn") or "",
            "BpsDataPerInterval": {"DataModule": rows}})

    def act_DescribeCdnDomainLogs(self, p):
        v = self.v
        d, err = self.domain_or_404(p["DomainName"])
        if err:
            return err
        page = num_param(p, "PageNumber", 1, 1, 100000)
        size = num_param(p, "PageSize", 300, 1, 1000)
        start, end, err = self._time_range(p, 86400)
        if err:
            return err
        if end - start > 31 * 86400:
            return v.invalid("EndTime", "At most 31 days.")
        logs = []
        t = start - start % 3600
        name = d["name"]
        while t < end:
            stamp = time.strftime("%Y_%m_%d_%H00", time.gmtime(t + 8 * 3600))
            nxt = time.strftime("%H00", time.gmtime(t + 3600 + 8 * 3600))
            log_name = "%s_%s_%s.gz" % (name, stamp, nxt)
            logs.append({"LogName": log_name,
                         "LogPath": "cdnlog.cn-hangzhou.oss.aliyun-inc.com/%s/%s/%s"
                                    "?OSSAccessKeyId=cdnemu&Expires=%d&Signature=cdnemu"
                                    % (name, stamp[:10], log_name, int(self.state.now()) + 1800),
                         "LogSize": 1000 + t % 7919, "StartTime": iso_utc(t),
                         "EndTime": iso_utc(t + 3600)})
            t += 3600
        page_logs = logs[(page - 1) * size: page * size]
        return json_response(200, {"RequestId": new_request_id(), "DomainLogDetails": {
            "DomainLogDetail": [{"DomainName": name, "LogCount": len(page_logs),
                                 "LogInfos": {"LogInfoDetail": page_logs},
                                 "PageInfos": {"PageIndex": page, "PageSize": size,
                                               "Total": len(logs)}}]}})

    def act_DescribeCdnService(self, p):
        return json_response(200, {
            "RequestId": new_request_id(), "InstanceId": "CdnService-cdnemu",
            "InternetChargeType": "PayByTraffic", "OpeningTime": "2015-10-09T02:27:45Z",
            "ChangingChargeType": "PayByTraffic", "ChangingAffectTime": "2015-10-10T16:00:00Z",
            "DynamicBillingType": "", "ChangingDynamicBillingType": "",
            "OperationLocks": {"LockReason": []}})


# --------------------------------------------------------------------------
# JSON parameters
# --------------------------------------------------------------------------
SOURCE_TYPES = ("ipaddr", "domain", "oss", "fc_domain", "common")


def parse_sources(raw):
    """AddCdnDomain Sources -> ([{content,type,port,priority,weight}], None)
    or (None, why)."""
    try:
        items = json.loads(raw)
    except ValueError:
        return None, "Sources is not JSON."
    if not isinstance(items, list) or not items:
        return None, "Sources must be a non-empty JSON list."
    out = []
    for s in items:
        if not isinstance(s, dict):
            return None, "Each source must be a JSON object."
        content, stype = s.get("content"), s.get("type")
        if not isinstance(content, str) or not content.strip():
            return None, "A source has no content."
        if stype not in SOURCE_TYPES:
            return None, "Source type must be one of %s." % ", ".join(SOURCE_TYPES)
        port = s.get("port", 80)
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None, "Source port must be a number."
        if not 1 <= port <= 65535:
            return None, "Source port must be 1..65535."
        out.append({"content": content.strip(), "type": stype, "port": port,
                    "priority": str(s.get("priority", "20")),
                    "weight": str(s.get("weight", "10"))})
    return out, None


def parse_functions(raw):
    """BatchSetCdnDomainConfig Functions -> ([{"functionName", "args":
    [{"ArgName","ArgValue"}], "parentId", "configId"}], None) or (None, why)."""
    try:
        items = json.loads(raw)
    except ValueError:
        return None, "Functions is not JSON."
    if not isinstance(items, list) or not items:
        return None, "Functions must be a non-empty JSON list."
    out = []
    for f in items:
        if not isinstance(f, dict):
            return None, "Each function must be a JSON object."
        unknown = set(f) - {"functionName", "functionArgs", "parentId", "configId"}
        if unknown:
            return None, "Unknown function field(s): %s." % ", ".join(sorted(unknown))
        name = f.get("functionName")
        if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
            return None, "functionName must be a function name such as referer_white_list_set."
        args = f.get("functionArgs")
        if not isinstance(args, list) or not args:
            return None, "functionArgs of %s must be a non-empty list." % name
        clean = []
        for a in args:
            if (not isinstance(a, dict) or set(a) != {"argName", "argValue"} or
                    not isinstance(a["argName"], str) or not a["argName"] or
                    isinstance(a["argValue"], (dict, list)) or a["argValue"] is None):
                return None, ("Each functionArgs item of %s must be {\"argName\": ..., "
                              "\"argValue\": ...}." % name)
            val = a["argValue"]
            if isinstance(val, bool):
                val = "on" if val else "off"
            clean.append({"ArgName": a["argName"], "ArgValue": str(val)})
        parent = f.get("parentId")
        if parent is not None and (isinstance(parent, bool) or
                                   not re.match(r"^-?\d+$", str(parent))):
            return None, "parentId must be a config id or -1."
        cid = f.get("configId")
        if cid is not None and (isinstance(cid, bool) or not re.match(r"^\d+$", str(cid))):
            return None, "configId must be a config id."
        out.append({"functionName": name, "args": clean,
                    "parentId": None if parent is None else int(parent),
                    "configId": None if cid is None else int(cid)})
    return out, None
