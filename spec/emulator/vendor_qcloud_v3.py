"""vendor_qcloud_v3 -- Tencent Cloud API 3.0 for CDN (service cdn, version
2018-06-06), for cdnemu.  Not a registry entry of its own: the qcloud vendor
(vendor_qcloud.py, API v2 on /v2/index.php) hands every request that carries
an X-TC-Action header or an `Authorization: TC3-HMAC-SHA256 ...` header to
the QcloudV3 instance it owns, on the same port; the two share the hosts,
the task store and the recorded URLs.

Path "/".  POST with a JSON body (Content-Type application/json, optionally
with "; charset=utf-8"), or GET with the parameters in the query string
(nested ones flattened: Urls.0=..., Filters.0.Name=...) and Content-Type
application/x-www-form-urlencoded (optionally with "; charset=utf-8").  Common parameters
are headers: X-TC-Action, X-TC-Version, X-TC-Timestamp, Authorization,
optional X-TC-Region, X-TC-Token, X-TC-Language.

Signature TC3-HMAC-SHA256, verified here with this module's own code:
  CanonicalRequest = METHOD \\n "/" \\n query-as-sent (GET) or "" (POST) \\n
      "name:value\\n" for each SignedHeaders name (lower-cased, trimmed, sorted;
      must include content-type and host) \\n SignedHeaders \\n hex(sha256(body))
  StringToSign = "TC3-HMAC-SHA256\\n" ts "\\n" date "/cdn/tc3_request\\n"
      hex(sha256(CanonicalRequest))      (date = UTC date of X-TC-Timestamp)
  kDate = HMAC("TC3" + key, date); kService = HMAC(kDate, "cdn");
  kSigning = HMAC(kService, "tc3_request"); Signature = hex(HMAC(kSigning, STS))

Answers are always HTTP 200 with {"Response": {..., "RequestId"}}; errors
{"Response": {"Error": {"Code", "Message"}, "RequestId"}}.  Every action's
parameter names, JSON types and required flags come from
tables/qcloud_2018_06_06.txt, read at start-up.  See README.md.
"""

import calendar
import copy
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from urllib.parse import urlsplit

from emucore import (GENERIC_TRANSPORT_KINDS, ParamError, Response, Vendor, beijing,
                     nginx_page, parse_form)

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "tables", "qcloud_2018_06_06.txt")

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "cdn"
VERSION = "2018-06-06"
MAX_SKEW = 300                     # seconds between X-TC-Timestamp and server clock
# the one STS token the emulator knows (X-TC-Token); /__emu/config "tc3_token"
KNOWN_TOKEN = "cdnemu-sts-token"

# per-call (batch) limits; the daily ones are /__emu/config settings
PURGE_URL_BATCH = 1000
PURGE_PATH_BATCH = 500
PUSH_URL_BATCH = 500
PUSH_HEADERS_MAX = 20
STAT_DOMAINS_MAX = 30

# /__emu/config settings of API 3.0 (defaults); the qcloud vendor publishes them
CONFIG = {
    "purge_url_day_limit": 10000,   # PurgeUrlsCache URLs per day per area
    "purge_path_day_limit": 100,    # PurgePathCache paths per day per area
    "push_url_day_limit": 1000,     # PushUrlsCache URLs per day per area
    "rate_limit": 0,                # requests per second per action; 0 = off
    "deprecated_warning": None,     # a string: every 3.0 success carries it ("" = off)
    "tc3_token": KNOWN_TOKEN,       # the X-TC-Token value accepted
}

# the fault kind this API adds: {"kind": "error", "code": C, "message": M}
ERROR_KIND = "error"
ERROR_FIELDS = frozenset({"code", "message"})
CODE_RX = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)*$")

MESSAGES = {
    "RequestLimitExceeded": "Your current request times exceeds the frequency limit. "
                            "Please reduce the frequency of calls.",
    "InternalError": "An internal error has occurred. Retry your request, but if the "
                     "problem persists, contact us.",
    "AuthFailure.SignatureExpire": "Signature expired.",
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated. "
                                    "Please check your signature is correct.",
    "ServiceUnavailable": "Service is unavailable now.",
}

DATETIME_RX = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DATE_RX = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_ISO_RX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
HOST_RX = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")

# members of the structures the core actions take (nested names and types are
# checked for these: an unknown member is UnknownParameter, a wrong type
# InvalidParameter, a required one absent MissingParameter, each naming the
# dotted path, e.g. `Origin.Origins`; any other structure only has to be a JSON
# object).  Names, types and required flags from tccli's api.json
# (tccli/services/cdn/v20180606/api.json, "objects" -> <name> -> "members",
# TencentCloud/tencentcloud-cli 6e53beb): api.json "list" of X -> list<X>,
# "object" of X -> X.
STRUCTS = {
    "DomainFilter": [("Name", "string", True), ("Value", "list<string>", True),
                     ("Fuzzy", "bool", False)],
    "HTTPHeader": [("Name", "string", True), ("Value", "string", True)],
    "Sort": [("Key", "string", False), ("Sequence", "string", False)],
    # AddCdnDomain Origin!, UpdateDomainConfig Origin
    "Origin": [("Origins", "list<string>", False), ("OriginType", "string", False),
               ("ServerName", "string", False), ("CosPrivateAccess", "string", False),
               ("OriginPullProtocol", "string", False),
               ("BackupOrigins", "list<string>", False),
               ("BackupOriginType", "string", False), ("BackupServerName", "string", False),
               ("BasePath", "string", False), ("PathRules", "list<PathRule>", False),
               ("PathBasedOrigin", "list<PathBasedOriginRule>", False),
               ("Sni", "OriginSni", False), ("AdvanceHttps", "AdvanceHttps", False),
               ("OriginCompany", "string", False)],
    "PathRule": [("Regex", "bool", True), ("Path", "string", True),
                 ("Origin", "string", False), ("ServerName", "string", False),
                 ("OriginArea", "string", False), ("ForwardUri", "string", False),
                 ("RequestHeaders", "list<HttpHeaderRule>", False),
                 ("FullMatch", "bool", False)],
    "PathBasedOriginRule": [("RuleType", "string", True), ("RulePaths", "list<string>", True),
                            ("Origin", "list<string>", True)],
    "OriginSni": [("Switch", "string", True), ("ServerName", "string", True)],
    "AdvanceHttps": [("CustomTlsStatus", "string", False), ("TlsVersion", "list<string>", False),
                     ("Cipher", "string", False), ("VerifyOriginType", "string", False),
                     ("CertInfo", "ServerCert", False),
                     ("OriginCertInfo", "ClientCert", False)],
}

SCALARS = ("string", "int", "int64", "uint64", "bool", "float", "datetime", "date",
           "datetime_iso")

FILTER_NAMES = ("origin", "domain", "resourceId", "status", "serviceType", "projectId",
                "domainType", "fullUrlCache", "https", "originPullProtocol", "tagKey")
SERVICE_TYPES = ("web", "download", "media", "hybrid", "dynamic")
STAT_METRICS = ("flux", "fluxIn", "fluxOut", "bandwidth", "bandwidthIn", "bandwidthOut",
                "request", "hitRequest", "requestHitRate", "hitFlux", "fluxHitRate",
                "statusCode", "2xx", "3xx", "4xx", "5xx")
INTERVALS = {"min": 60, "5min": 300, "hour": 3600, "day": 86400}


# --------------------------------------------------------------------------
# the action table
# --------------------------------------------------------------------------
def load_table(path=TABLE):
    """tables/qcloud_2018_06_06.txt -> {Action: [(name, type, required)]}.
    Lines starting with '#' and the action-name line are skipped; every
    parameter line is `Action: Name:type[!], ...` or `Action: -`.  The name
    line (one line of names without ':') must list exactly the actions."""
    actions, names = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if ":" not in line:
                names = line.split()
                continue
            act, rest = line.split(":", 1)
            act, rest = act.strip(), rest.strip()
            params = []
            if rest != "-":
                for item in rest.split(","):
                    n, t = item.strip().split(":", 1)
                    req = t.endswith("!")
                    params.append((n.strip(), t.rstrip("!").strip(), req))
            actions[act] = params
    if names is not None and sorted(names) != sorted(actions):
        raise ValueError("%s: the action-name line and the parameter lines differ: %s"
                         % (path, sorted(set(names) ^ set(actions))))
    return actions


# --------------------------------------------------------------------------
# TC3-HMAC-SHA256
# --------------------------------------------------------------------------
def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_canonical_request(method, query, headers, signed, payload_hash):
    """headers: {lower-case name: value} of the signed headers as received;
    signed: the SignedHeaders names in order."""
    canon = "".join("%s:%s\n" % (n, (headers.get(n) or "").strip().lower()) for n in signed)
    return "\n".join([method.upper(), "/", query, canon, ";".join(signed), payload_hash])


def tc3_string_to_sign(timestamp, date, service, canonical_request):
    return "\n".join([ALGORITHM, str(timestamp), "%s/%s/tc3_request" % (date, service),
                      sha256_hex(canonical_request)])


def tc3_signature(secret, date, service, string_to_sign):
    k_date = _hmac(("TC3" + secret).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def utc_date(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(int(ts)))


AUTH_RX = re.compile(r"^TC3-HMAC-SHA256\s+(.*)$", re.S)


def parse_authorization(value):
    """-> {"id", "date", "service", "terminator", "signed" (list), "signature"};
    ValueError(message) if malformed."""
    m = AUTH_RX.match((value or "").strip())
    if not m:
        raise ValueError("Authorization must start with TC3-HMAC-SHA256")
    fields = {}
    for part in m.group(1).split(","):
        part = part.strip()
        if "=" not in part:
            raise ValueError("Authorization field %r is not name=value" % part[:40])
        k, v = part.split("=", 1)
        if k in fields:
            raise ValueError("Authorization field %s given twice" % k)
        fields[k] = v
    for k in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(k):
            raise ValueError("Authorization lacks %s" % k)
    extra = sorted(set(fields) - {"Credential", "SignedHeaders", "Signature"})
    if extra:
        raise ValueError("unknown Authorization field %s" % extra[0][:40])
    cred = fields["Credential"].split("/")
    if len(cred) != 4 or not all(cred):
        raise ValueError("Credential must be SecretId/date/service/tc3_request")
    if cred[3] != "tc3_request":
        raise ValueError("Credential scope must end in tc3_request")
    if not DATE_RX.match(cred[1]):
        raise ValueError("Credential date must be YYYY-MM-DD")
    signed = fields["SignedHeaders"].split(";")
    if any(not s or s != s.strip().lower() for s in signed) or signed != sorted(set(signed)):
        raise ValueError("SignedHeaders must be distinct lower-case header names, "
                         "sorted, joined by ';'")
    return {"id": cred[0], "date": cred[1], "service": cred[2], "terminator": cred[3],
            "signed": signed, "signature": fields["Signature"]}


def is_v3(headers):
    """A request is API 3.0 when it carries X-TC-Action or a TC3 Authorization."""
    if headers is None:
        return False
    if headers.get("X-TC-Action") is not None:
        return True
    return (headers.get("Authorization") or "").strip().startswith(ALGORITHM)


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------
class Bad(Exception):
    """An API error answer: code, message (and the parameter it names)."""

    def __init__(self, code, message, name=None):
        super().__init__(code)
        self.code = code
        self.message = message
        self.name = name


def invalid_type(name):
    return Bad("InvalidParameter", "The value type of parameter `%s` is not valid." % name,
               name)


def invalid_value(name, why=""):
    return Bad("InvalidParameterValue", "The value of parameter `%s` is not valid%s."
               % (name, (": " + why) if why else ""), name)


def missing(name):
    return Bad("MissingParameter", "The request is missing a required parameter `%s`."
               % name, name)


def unknown(name):
    return Bad("UnknownParameter", "The parameter `%s` is not recognized." % name, name)


def unflatten(pairs):
    """GET query pairs (Urls.0=..., Filters.0.Value.1=...) -> nested values;
    numeric segments make lists (ordered by index).  Bad(...) on a clash."""
    root = {}
    for key, value in pairs:
        segs = key.split(".")
        if any(s == "" for s in segs):
            raise invalid_type(key)
        node = root
        for i, seg in enumerate(segs):
            last = i == len(segs) - 1
            if last:
                if seg in node:
                    raise invalid_type(key)
                node[seg] = value
            else:
                nxt = node.get(seg)
                if nxt is None:
                    nxt = node[seg] = {}
                elif not isinstance(nxt, dict):
                    raise invalid_type(".".join(segs[:i + 1]))
                node = nxt

    def fold(v, path):
        if not isinstance(v, dict):
            return v
        keys = list(v)
        if keys and all(k.isdigit() for k in keys):
            return [fold(v[k], path + "." + k) for k in sorted(keys, key=int)]
        if any(k.isdigit() for k in keys):
            raise invalid_type(path)
        return {k: fold(x, path + "." + k) for k, x in v.items()}
    return {k: fold(v, k) for k, v in root.items()}


def conform(value, t, path, from_query):
    """Check (and for GET, convert from strings) `value` against table type
    `t`; returns the value; Bad on a wrong type / unknown nested member."""
    if t.startswith("list<") and t.endswith(">"):
        inner = t[5:-1]
        if not isinstance(value, list):
            raise invalid_type(path)
        return [conform(v, inner, "%s.%d" % (path, i), from_query)
                for i, v in enumerate(value)]
    if t in ("int", "int64", "uint64"):
        if from_query and isinstance(value, str) and re.match(r"^-?\d+$", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_type(path)
        if t == "uint64" and value < 0:
            raise invalid_type(path)
        return value
    if t == "float":
        if from_query and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise invalid_type(path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_type(path)
        return value
    if t == "bool":
        if from_query and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise invalid_type(path)
        return value
    if t in ("string", "datetime", "date", "datetime_iso"):
        if not isinstance(value, str):
            raise invalid_type(path)
        rx = {"datetime": DATETIME_RX, "date": DATE_RX, "datetime_iso": DATETIME_ISO_RX}.get(t)
        if rx is not None and not rx.match(value):
            raise invalid_value(path, {"datetime": "use YYYY-MM-DD hh:mm:ss",
                                       "date": "use YYYY-MM-DD",
                                       "datetime_iso": "use ISO 8601, e.g. "
                                       "2020-09-22T00:00:00+08:00"}[t])
        return value
    # a structure
    if not isinstance(value, dict):
        raise invalid_type(path)
    members = STRUCTS.get(t)
    if members is None:
        return value
    names = {m[0] for m in members}
    for k in value:
        if k not in names:
            raise unknown("%s.%s" % (path, k))
    out = {}
    for n, mt, req in members:
        v = value.get(n)
        if v is None or v == "" or v == []:
            if req:
                raise missing("%s.%s" % (path, n))
            if v is None:
                continue
        out[n] = conform(v, mt, "%s.%s" % (path, n), from_query)
    return out


def check_params(table_params, params, from_query):
    """Table-driven check of one action's parameters: unknown names, then for
    each declared one (in table order) missing, then type."""
    declared = {n: (t, r) for n, t, r in table_params}
    for name in params:
        if name not in declared:
            raise unknown(name)
    out = {}
    for name, t, req in table_params:
        v = params.get(name)
        if v is None or (req and (v == "" or v == [])):
            if req:
                raise missing(name)
            continue
        out[name] = conform(v, t, name, from_query)
    return out


def parse_bj(s):
    """YYYY-MM-DD hh:mm:ss in UTC+8 -> epoch seconds (None if malformed)."""
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M:%S")) - 8 * 3600
    except (ValueError, TypeError):
        return None


# --------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------
class QcloudV3(Vendor):
    """Tencent Cloud API 3.0, CDN 2018-06-06.  Built by the qcloud vendor
    (`owner`), whose hosts, credentials and state it shares."""

    name = "qcloud"
    PATH = "/"
    # the gateway's own 5xx pages are raw nginx HTML, as for v2
    TRANSPORT_KINDS = GENERIC_TRANSPORT_KINDS | {"http500", "http503"}
    TASK_ACTIONS = frozenset({"PurgeUrlsCache", "PurgePathCache", "PushUrlsCache"})
    EXTRA_FAULT_KINDS = frozenset({ERROR_KIND})
    TRUNCATED_BODY = (b'{"Response":{"RequestId":"7c152eaf-a4a4-4fc2-8204-c586ad91e8ec",'
                      b'"Domains":[{"ResourceId":"cdn-180001","AppId":1251000000,"Dom')

    def __init__(self, state, owner, table_path=TABLE):
        super().__init__(state, {}, 0)
        self.owner = owner
        self.CREDENTIALS = owner.CREDENTIALS
        self.table = load_table(table_path)

    # ---- state -----------------------------------------------------------
    def _st(self):
        """This API's per-reset state (call with state.lock held)."""
        x = self.state.extra.get("qcloud_v3")
        if x is None:
            x = self.state.extra["qcloud_v3"] = {
                "sigs": set(), "used": {}, "rate": {}, "status": {}, "deleted": set(),
                "added": {}, "config": {}}
        return x

    def cfg(self, name):
        return self.state.vendor_config.get(name, CONFIG[name])

    # ---- envelope ----------------------------------------------------------
    @staticmethod
    def answer(body):
        out = dict(body)
        out["RequestId"] = str(uuid.uuid4())
        data = json.dumps({"Response": out}, ensure_ascii=False).encode("utf-8")
        return Response(200, data, "application/json")

    def ok(self, body=None):
        body = dict(body or {})
        warn = self.cfg("deprecated_warning")
        if warn:      # null or "" = off
            body["DeprecatedWarning"] = warn
        return self.answer(body)

    def error(self, code, message):
        return self.answer({"Error": {"Code": code, "Message": message}})

    def bad(self, b):
        return self.error(b.code, b.message)

    @staticmethod
    def error_code(resp):
        """The Error.Code of an answer (None for success or a non-JSON answer)."""
        if resp.mode is not None or resp.status != 200:
            return None
        try:
            err = json.loads(resp.body.decode("utf-8"))["Response"].get("Error")
        except (ValueError, KeyError, AttributeError, TypeError):
            return None
        return err.get("Code") if isinstance(err, dict) else None

    def succeeded(self, resp):
        if resp.status != 200 or resp.mode is not None:
            return False
        try:
            r = json.loads(resp.body.decode("utf-8"))["Response"]
        except (ValueError, KeyError, AttributeError, TypeError):
            return False
        return isinstance(r, dict) and "Error" not in r

    # ---- pipeline hooks ----------------------------------------------------
    def err_method(self, req):
        return self.error("UnsupportedProtocol", "HTTP method %s is not supported; "
                          "use GET or POST." % req.method[:20])

    def err_path(self, req):
        return self.error("InvalidRequest", "The request path must be `/`.")

    def err_input(self, msg):
        return self.error("InvalidParameter", msg)

    def err_nonce(self):    # TC3 has no nonce; never called
        return self.error("AuthFailure.SignatureFailure", MESSAGES["AuthFailure.SignatureFailure"])

    def internal_error(self):
        return self.error("InternalError", "cdnemu internal error")

    def vendor_fault(self, kind):
        if kind == "throttle":
            return self.error("RequestLimitExceeded", MESSAGES["RequestLimitExceeded"])
        if kind == "stale":
            return self.error("AuthFailure.SignatureExpire",
                              MESSAGES["AuthFailure.SignatureExpire"])
        if kind == "http500":
            return Response(500, nginx_page(500, "Internal Server Error"), "text/html")
        if kind == "http503":
            return Response(503, nginx_page(503, "Service Temporarily Unavailable"), "text/html")
        raise AssertionError(kind)

    def fault_response(self, f):
        if f["kind"] == ERROR_KIND:
            code = f["code"]
            return self.error(code, f.get("message") or MESSAGES.get(
                code, "cdnemu injected error %s." % code))
        return super().fault_response(f)

    @staticmethod
    def check_error_fault(f, clean):
        """/__emu/faults fields of the "error" kind (code required)."""
        if f.get("kind") != ERROR_KIND:
            if set(f) & ERROR_FIELDS:
                return "code/message apply to the %r kind only" % ERROR_KIND
            return None
        code = f.get("code")
        if not isinstance(code, str) or not CODE_RX.match(code):
            return "an error fault needs \"code\": an API 3.0 error code such as " \
                   "RequestLimitExceeded"
        clean["code"] = code
        if f.get("message") is not None:
            if not isinstance(f["message"], str):
                return "message must be a string"
            clean["message"] = f["message"]
        return None

    # ---- entry (from the qcloud vendor) ------------------------------------
    def handle(self, req):
        """Annotate the request log, run the pipeline, never raise."""
        h = req.headers
        info = {"api": "3.0", "version": h.get("X-TC-Version"),
                "timestamp": h.get("X-TC-Timestamp"), "signed_headers": None,
                "token": h.get("X-TC-Token") is not None,
                "region": h.get("X-TC-Region"), "language": h.get("X-TC-Language"),
                "request_client": h.get("X-TC-RequestClient"),
                "unsigned_payload": (h.get("X-TC-Content-SHA256") or "").strip()
                == "UNSIGNED-PAYLOAD",
                "params": None, "url_encode": None, "signature_reused": False,
                "error": None}
        try:
            info["signed_headers"] = parse_authorization(h.get("Authorization"))["signed"]
        except ValueError:
            pass
        req.v3_params, req.v3_error = None, None
        if req.method in ("GET", "POST") and not req.error:
            try:
                req.v3_params = self.read(req)
                info["params"] = sorted(req.v3_params)
                ue = req.v3_params.get("UrlEncode")
                if isinstance(ue, bool):
                    info["url_encode"] = ue
                elif isinstance(ue, str) and ue.lower() in ("true", "false"):
                    info["url_encode"] = ue.lower() == "true"
            except Bad as b:
                req.v3_error = b
        self.state.annotate(req, info)
        try:
            resp = self.process(req)
        except Exception:
            import traceback
            traceback.print_exc()
            resp = self.internal_error()
        code = self.error_code(resp)
        if code is not None:
            self.state.annotate(req, {"error": code})
        return resp

    def read(self, req):
        """The request's parameters: the JSON body (POST) or the flattened
        query (GET), before the table check."""
        if req.method == "POST":
            ctype = (req.content_type or "").strip()
            media = ctype.split(";")[0].strip().lower()
            rest = [p.strip().lower() for p in ctype.split(";")[1:] if p.strip()]
            if media != "application/json" or any(p not in ("charset=utf-8",) for p in rest):
                raise Bad("InvalidParameter", "Content-Type `%s` is not supported: a "
                          "TC3-HMAC-SHA256 POST carries application/json (optionally "
                          "with `; charset=utf-8`)." % ctype[:60])
            if not req.body.strip():
                return {}
            try:
                data = json.loads(req.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise Bad("InvalidParameter", "The request body is not valid JSON.")
            if not isinstance(data, dict):
                raise Bad("InvalidParameter", "The request body must be a JSON object.")
            return data
        ctype = (req.content_type or "").strip()
        media = ctype.split(";")[0].strip().lower()
        rest = [p.strip().lower() for p in ctype.split(";")[1:] if p.strip()]
        if media != "application/x-www-form-urlencoded" or \
                any(p not in ("charset=utf-8",) for p in rest):
            raise Bad("InvalidParameter", "Content-Type `%s` is not supported: a "
                      "TC3-HMAC-SHA256 GET carries application/x-www-form-urlencoded "
                      "(optionally with `; charset=utf-8`)." % ctype[:60])
        try:
            pairs = parse_form(req.query.encode("latin-1", "replace"))
        except ParamError as e:
            raise Bad("InvalidParameter", str(e))
        return unflatten(pairs)

    # ---- authentication ------------------------------------------------------
    def authenticate(self, req):
        h = req.headers
        action = h.get("X-TC-Action")
        if not action:
            return self.bad(missing("Action")), None
        version = h.get("X-TC-Version")
        if not version:
            return self.bad(missing("Version")), None
        if version != VERSION:
            return self.error("NoSuchVersion", "The API version `%s` of service `cdn` does "
                              "not exist (use %s)." % (version[:40], VERSION)), None
        if action not in self.table:
            return self.error("InvalidAction", "The action `%s` does not exist in service "
                              "`cdn` version %s." % (action[:60], VERSION)), None
        ts = (h.get("X-TC-Timestamp") or "").strip()
        if not ts:
            return self.bad(missing("Timestamp")), None
        if not ts.isdigit():
            return self.bad(invalid_value("Timestamp", "unix seconds expected")), None
        auth = h.get("Authorization")
        if not auth:
            return self.error("AuthFailure.InvalidAuthorization",
                              "The Authorization header is missing."), None
        try:
            a = parse_authorization(auth)
        except ValueError as e:
            return self.error("AuthFailure.InvalidAuthorization",
                              "Authorization is not valid: %s." % e), None
        if "content-type" not in a["signed"] or "host" not in a["signed"]:
            return self.error("AuthFailure.InvalidAuthorization",
                              "SignedHeaders must include content-type and host."), None
        secret = self.CREDENTIALS.get(a["id"])
        if secret is None:
            return self.error("AuthFailure.SecretIdNotFound", "The SecretId is not found, "
                              "please ensure that your SecretId is correct."), None
        now = self.state.now()
        if abs(int(ts) - now) > MAX_SKEW:
            return self.error("AuthFailure.SignatureExpire", "Signature expired. Timestamp "
                              "date: %s, current server time: %d." % (ts, int(now))), None
        payload = req.body if req.method == "POST" else b""
        if (h.get("X-TC-Content-SHA256") or "").strip() == "UNSIGNED-PAYLOAD":
            payload_hash = sha256_hex("UNSIGNED-PAYLOAD")
        else:
            payload_hash = sha256_hex(payload)
        received = {n: ", ".join(h.get_all(n) or []) for n in a["signed"]}
        query = req.query if req.method == "GET" else ""
        creq = tc3_canonical_request(req.method, query, received, a["signed"], payload_hash)
        # the server's own scope: the UTC date of the timestamp, service cdn
        sts = tc3_string_to_sign(ts, utc_date(ts), SERVICE, creq)
        expect = tc3_signature(secret, utc_date(ts), SERVICE, sts)
        why = None
        if a["service"] != SERVICE:
            why = "credential scope service is %r, not %r" % (a["service"][:20], SERVICE)
        elif a["date"] != utc_date(ts):
            why = "credential date %s is not the UTC date of X-TC-Timestamp (%s)" % (
                a["date"], utc_date(ts))
        elif not hmac.compare_digest(expect.encode(), a["signature"].encode("utf-8")):
            why = "signature mismatch"
        if why:
            self.state.sig_failure()
            self.state.annotate(req, {"sign_detail": {
                "reason": why, "canonical_request": creq, "string_to_sign": sts}})
            return self.error("AuthFailure.SignatureFailure",
                              MESSAGES["AuthFailure.SignatureFailure"]), None
        token = h.get("X-TC-Token")
        if token is not None and token != self.cfg("tc3_token"):
            return self.error("AuthFailure.TokenFailure", "The token is invalid or "
                              "expired."), None
        # TC3 has no nonce: a resend of the same signed request is accepted,
        # only counted
        with self.state.lock:
            sigs = self._st()["sigs"]
            reused = a["signature"] in sigs
            sigs.add(a["signature"])
        if reused:
            self.state.count("signature_reused")
            self.state.annotate(req, {"signature_reused": True})
        return None, None

    # ---- dispatch ----------------------------------------------------------
    def rate_limited(self, action):
        limit = self.cfg("rate_limit")
        if not limit:
            return None
        now = time.monotonic()
        with self.state.lock:
            q = self._st()["rate"].setdefault(action, [])
            q[:] = [t for t in q if now - t < 1.0]
            q.append(now)
            n = len(q)
        if n > limit:
            self.state.count("rate_limited")
            return self.error("RequestLimitExceeded", "Your current request times equals "
                              "to `%d` in a second, which exceeds the frequency limit `%g` "
                              "for a second. Please reduce the frequency of calls."
                              % (n, limit))
        return None

    def dispatch(self, req):
        action = req.headers.get("X-TC-Action")
        if req.v3_error is not None:
            return self.bad(req.v3_error)
        limited = self.rate_limited(action)
        if limited is not None:
            return limited
        try:
            p = check_params(self.table[action], req.v3_params or {}, req.method == "GET")
            fn = getattr(self, "act_" + action, None)
            if fn is None:
                return self.ok()
            if action in self.TASK_ACTIONS:
                return fn(p, record=not req.no_task_id)
            return fn(p)
        except Bad as b:
            return self.bad(b)

    # ---- helpers -----------------------------------------------------------
    @staticmethod
    def enum(p, name, allowed, default=None):
        v = p.get(name, default)
        if v is not None and v not in allowed:
            raise invalid_value(name, "one of %s" % ", ".join(allowed))
        return v

    @staticmethod
    def paging(p, default_limit, max_limit):
        offset = p.get("Offset", 0)
        limit = p.get("Limit", default_limit)
        if offset < 0:
            raise invalid_value("Offset", ">= 0")
        if limit < 0 or limit > max_limit:
            raise invalid_value("Limit", "0..%d" % max_limit)
        return offset, limit

    def day(self):
        return beijing(self.state.now())[:10]

    def used(self, kind, area):
        with self.state.lock:
            return self._st()["used"].get((self.day(), kind, area), 0)

    def consume(self, kind, areas, n, limit, code, what):
        """Day quota: all of `areas` must have `n` left; then used."""
        day = self.day()
        with self.state.lock:
            used = self._st()["used"]
            for a in areas:
                if used.get((day, kind, a), 0) + n > limit:
                    raise Bad(code, "The number of %s exceeds the daily limit (%d per day, "
                              "area %s)." % (what, limit, a))
            for a in areas:
                used[(day, kind, a)] = used.get((day, kind, a), 0) + n

    def check_urls(self, urls, name, url_encode, wildcard_code):
        for i, u in enumerate(urls):
            path = "%s.%d" % (name, i)
            low = u.lower()
            if not (low.startswith("http://") or low.startswith("https://")):
                raise Bad("InvalidParameter.CdnParamError", "`%s` must start with http:// "
                          "or https://: %s" % (path, u[:200]), path)
            if not url_encode and any(ord(c) > 127 for c in u):
                raise Bad("InvalidParameter.CdnParamError", "`%s` contains non-ASCII "
                          "characters; percent-encode them or set UrlEncode: %s"
                          % (path, u[:200]), path)
            host = urlsplit(u).hostname or ""
            if host.startswith("*"):
                raise Bad(wildcard_code, "`%s`: wildcard domains cannot be purged or "
                          "pushed: %s" % (path, u[:200]), path)

    # ---- domains -------------------------------------------------------------
    def _brief(self, h):
        name = h["host"]
        return {"ResourceId": "cdn-%d" % h["id"], "AppId": h.get("app_id", 1251000000),
                "Domain": name, "Cname": h.get("cname") or name + ".cdn.dnsv1.com",
                "Status": "online", "ProjectId": h.get("project_id", 0),
                "ServiceType": h.get("service_type", "web"),
                "CreateTime": h.get("create_time", "2016-05-12 11:03:28"),
                "UpdateTime": h.get("update_time", "2016-05-12 11:03:28"),
                "Origin": {"Origins": [h.get("origin") or "origin.example.com"],
                           "OriginType": "domain", "ServerName": name,
                           "CosPrivateAccess": "off", "OriginPullProtocol": "http",
                           "BackupOrigins": [], "BackupOriginType": None,
                           "BackupServerName": None},
                "Disable": "normal", "Area": "mainland", "Readonly": "normal",
                "Product": "cdn", "ParentHost": ""}

    def domains(self):
        """The domains as API 3.0 sees them now: the qcloud hosts (v2's
        DescribeCdnHosts) plus AddCdnDomain's, minus DeleteCdnDomain's, with
        Start/Stop and UpdateDomainConfig applied (all undone by reset)."""
        now = time.monotonic()
        with self.state.lock:
            x = self._st()
            out = []
            for h in self.owner.hosts:
                # (a deleted host added again is one of x["added"])
                if h["host"] in x["deleted"] or h["host"] in x["added"]:
                    continue
                d = self._brief(h)
                d["Status"] = x["status"].get(d["Domain"], "online")
                out.append(d)
            for name, a in x["added"].items():
                if name in x["deleted"]:
                    continue
                d = copy.deepcopy(a["brief"])
                st = x["status"].get(name)
                if st is None:
                    st = "online" if now - a["mono"] >= self.state.task_seconds else "processing"
                d["Status"] = st
                out.append(d)
            for d in out:
                for k, v in x["config"].get(d["Domain"], {}).items():
                    if k in d and k not in ("Domain", "ResourceId"):
                        d[k] = copy.deepcopy(v)
                d["_config"] = copy.deepcopy(x["config"].get(d["Domain"], {}))
            return out

    def domain(self, name):
        for d in self.domains():
            if d["Domain"] == name:
                return d
        raise Bad("ResourceNotFound.CdnHostNotExists", "The domain `%s` does not exist "
                  "in this account." % name[:200], "Domain")

    def filtered(self, p):
        doms = self.domains()
        for i, f in enumerate(p.get("Filters") or []):
            name, values, fuzzy = f["Name"], f["Value"], f.get("Fuzzy", False)
            if name not in FILTER_NAMES:
                raise invalid_value("Filters.%d.Name" % i, "one of %s" % ", ".join(FILTER_NAMES))
            if fuzzy and name not in ("origin", "domain"):
                raise invalid_value("Filters.%d.Fuzzy" % i, "only origin and domain are fuzzy")
            if len(values) > (1 if fuzzy else 5):
                raise invalid_value("Filters.%d.Value" % i, "at most %d values"
                                    % (1 if fuzzy else 5))

            def field(d):
                return {"origin": d["Origin"]["Origins"], "domain": [d["Domain"]],
                        "resourceId": [d["ResourceId"]], "status": [d["Status"]],
                        "serviceType": [d["ServiceType"]], "projectId": [str(d["ProjectId"])],
                        "domainType": ["cname"], "fullUrlCache": ["off"], "https": ["off"],
                        "originPullProtocol": [d["Origin"].get("OriginPullProtocol", "http")],
                        "tagKey": []}[name]
            if fuzzy:
                doms = [d for d in doms if any(values[0] in x for x in field(d))]
            else:
                doms = [d for d in doms if any(x in values for x in field(d))]
        return doms

    @staticmethod
    def public(d):
        return {k: v for k, v in d.items() if not k.startswith("_")}

    def act_DescribeDomains(self, p):
        offset, limit = self.paging(p, 100, 1000)
        doms = self.filtered(p)
        return self.ok({"Domains": [self.public(d) for d in doms[offset:offset + limit]],
                        "TotalNumber": len(doms)})

    DETAIL_DEFAULTS = {
        "IpFilter": {"Switch": "off", "FilterType": None, "Filters": [], "FilterRules": [],
                     "ReturnCode": None},
        "IpFreqLimit": {"Switch": "off", "Qps": None},
        "StatusCodeCache": {"Switch": "off", "CacheRules": []},
        "Compression": {"Switch": "off", "CompressionRules": []},
        "BandwidthAlert": {"Switch": "off", "BpsThreshold": None, "CounterMeasure": None},
        "RangeOriginPull": {"Switch": "on", "RangeRules": []},
        "FollowRedirect": {"Switch": "off", "RedirectConfig": None},
        "ErrorPage": {"Switch": "off", "PageRules": []},
        "RequestHeader": {"Switch": "off", "HeaderRules": []},
        "ResponseHeader": {"Switch": "off", "HeaderRules": []},
        "DownstreamCapping": {"Switch": "off", "CappingRules": []},
        "CacheKey": {"FullUrlCache": "off", "IgnoreCase": "off", "QueryString": None},
        "ResponseHeaderCache": {"Switch": "off"},
        "VideoSeek": {"Switch": "off"},
        "Cache": {"SimpleCache": None, "AdvancedCache": None, "RuleCache": [
            {"RulePaths": ["*"], "RuleType": "all", "CacheConfig": {
                "Cache": {"Switch": "on", "CacheTime": 2592000}}}]},
        "OriginPullOptimization": {"Switch": "off", "OptimizationType": None},
        "Https": {"Switch": "off", "Http2": "off", "OcspStapling": "off",
                  "VerifyClient": "off", "CertInfo": None, "ClientCertInfo": None,
                  "Spdy": "off", "SslStatus": None, "Hsts": None, "TlsVersion": None},
        "Authentication": {"Switch": "off"},
        "Seo": {"Switch": "off"},
        "ForceRedirect": {"Switch": "off", "RedirectType": None, "RedirectStatusCode": None},
        "Referer": {"Switch": "off", "RefererRules": []},
        "MaxAge": {"Switch": "off", "MaxAgeRules": []},
        "Ipv6": {"Switch": "off"},
        "SpecificConfig": {"Mainland": None, "Overseas": None},
        "OriginPullTimeout": {"ConnectTimeout": 5, "ReceiveTimeout": 10},
        "AwsPrivateAccess": {"Switch": "off"},
        "UserAgentFilter": {"Switch": "off", "FilterRules": []},
        "AccessControl": {"Switch": "off", "AccessControlRules": [], "ReturnCode": 403},
        "UrlRedirect": {"Switch": "off", "PathRules": []},
        "AccessPort": [80, 443],
        "AdvancedAuthentication": {"Switch": "off"},
        "OriginAuthentication": {"Switch": "off"},
        "Ipv6Access": {"Switch": "off"},
        "OfflineCache": {"Switch": "off"},
        "OriginCombine": {"Switch": "off"},
        "PostMaxSize": {"Switch": "on", "MaxSize": 33554432},
        "Quic": {"Switch": "off"},
        "OssPrivateAccess": {"Switch": "off"},
        "WebSocket": {"Switch": "off", "Timeout": None},
        "RemoteAuthentication": {"Switch": "off", "RemoteAuthenticationRules": [],
                                 "Server": None},
        "ShareCname": {"Switch": "off", "Cname": None},
        "HwPrivateAccess": {"Switch": "off"},
        "QnPrivateAccess": {"Switch": "off"},
        "OthersPrivateAccess": {"Switch": "off"},
        "HttpsBilling": {"Switch": "off"},
        "ParamFilter": {"Switch": "off", "FilterRules": []},
        "AutoGuard": {"Switch": "off"},
        "GeoBlocker": {"Switch": "off"},
        "Tag": [],
        "Advance": "off",
    }

    def detail(self, d):
        out = self.public(d)
        for k, v in self.DETAIL_DEFAULTS.items():
            out[k] = copy.deepcopy(v)
        for k, v in d["_config"].items():
            out[k] = copy.deepcopy(v)
        return out

    def act_DescribeDomainsConfig(self, p):
        offset, limit = self.paging(p, 100, 100)
        sort = p.get("Sort") or {}
        self.enum(sort, "Key", ("createTime", "certExpireTime"))
        seq = self.enum(sort, "Sequence", ("asc", "desc"), "desc")
        doms = self.filtered(p)
        if sort.get("Key") == "createTime":
            doms.sort(key=lambda d: d["CreateTime"], reverse=seq == "desc")
        return self.ok({"Domains": [self.detail(d) for d in doms[offset:offset + limit]],
                        "TotalNumber": len(doms)})

    def _set_status(self, name, status):
        with self.state.lock:
            self._st()["status"][name] = status

    def act_StartCdnDomain(self, p):
        d = self.domain(p["Domain"])
        if d["Status"] != "offline":
            raise Bad("InvalidParameter.CdnHostInvalidStatus", "The domain `%s` is %s; "
                      "only an offline domain can be started." % (d["Domain"], d["Status"]))
        self._set_status(d["Domain"], "online")
        return self.ok()

    def act_StopCdnDomain(self, p):
        d = self.domain(p["Domain"])
        if d["Status"] != "online":
            raise Bad("InvalidParameter.CdnHostInvalidStatus", "The domain `%s` is %s; "
                      "only an online domain can be stopped." % (d["Domain"], d["Status"]))
        self._set_status(d["Domain"], "offline")
        return self.ok()

    def act_DeleteCdnDomain(self, p):
        d = self.domain(p["Domain"])
        if d["Status"] != "offline":
            raise Bad("ResourceUnavailable.CdnHostIsNotOffline", "The domain `%s` is %s; "
                      "stop it before deleting it." % (d["Domain"], d["Status"]))
        with self.state.lock:
            self._st()["deleted"].add(d["Domain"])
        return self.ok()

    def act_AddCdnDomain(self, p):
        name = p["Domain"]
        if not HOST_RX.match(name) or len(name) > 255:
            raise Bad("InvalidParameter.CdnHostInvalidParam", "The domain `%s` is not a "
                      "valid host name." % name[:200], "Domain")
        if p["ServiceType"] not in SERVICE_TYPES:
            raise Bad("InvalidParameter.CdnInvalidParamServiceType", "ServiceType must be "
                      "one of %s." % ", ".join(SERVICE_TYPES), "ServiceType")
        area = self.enum(p, "Area", ("mainland", "overseas", "global"), "mainland")
        origin = p["Origin"]
        origins = origin.get("Origins")
        if not isinstance(origins, list) or not origins or \
                not all(isinstance(o, str) and o for o in origins):
            raise invalid_value("Origin.Origins", "a non-empty list of origins")
        if any(d["Domain"] == name for d in self.domains()):
            raise Bad("ResourceInUse.CdnHostExists", "The domain `%s` already exists."
                      % name, "Domain")
        with self.state.lock:
            x = self._st()
            rid = "cdn-%d" % (190000 + len(x["added"]) + 1)
            ts = beijing(self.state.now())
            brief = {"ResourceId": rid, "AppId": 1251000000, "Domain": name,
                     "Cname": name + ".cdn.dnsv1.com", "Status": "processing",
                     "ProjectId": p.get("ProjectId", 0), "ServiceType": p["ServiceType"],
                     "CreateTime": ts, "UpdateTime": ts,
                     "Origin": dict({"OriginType": "domain", "ServerName": name,
                                     "OriginPullProtocol": "http", "BackupOrigins": [],
                                     "BackupOriginType": None, "BackupServerName": None,
                                     "CosPrivateAccess": "off"}, **origin),
                     "Disable": "normal", "Area": area, "Readonly": "normal",
                     "Product": "cdn", "ParentHost": ""}
            x["deleted"].discard(name)
            x["status"].pop(name, None)
            x["added"][name] = {"brief": brief, "mono": time.monotonic()}
            cfg = {k: copy.deepcopy(v) for k, v in p.items()
                   if k not in ("Domain", "ServiceType", "Origin", "ProjectId", "Area")}
            x["config"][name] = cfg
        return self.ok()

    def act_UpdateDomainConfig(self, p):
        d = self.domain(p["Domain"])
        if "ServiceType" in p and p["ServiceType"] not in SERVICE_TYPES:
            raise Bad("InvalidParameter.CdnInvalidParamServiceType", "ServiceType must be "
                      "one of %s." % ", ".join(SERVICE_TYPES), "ServiceType")
        self.enum(p, "Area", ("mainland", "overseas", "global"))
        with self.state.lock:
            cfg = self._st()["config"].setdefault(d["Domain"], {})
            for k, v in p.items():
                if k != "Domain":
                    # a complex object is replaced whole (missing members reset)
                    cfg[k] = copy.deepcopy(v)
        return self.ok()

    def act_ModifyDomainConfig(self, p):
        d = self.domain(p["Domain"])
        route = p["Route"].split(".")
        if not all(route):
            raise invalid_value("Route", "a dotted path such as Referer or Cache.RuleCache")
        try:
            value = json.loads(p["Value"])
        except ValueError:
            raise invalid_value("Value", "a JSON string {\"update\": ...}")
        if not isinstance(value, dict) or "update" not in value:
            raise invalid_value("Value", "a JSON string {\"update\": ...}")
        with self.state.lock:
            cfg = self._st()["config"].setdefault(d["Domain"], {})
            node = cfg
            for seg in route[:-1]:
                if not isinstance(node.get(seg), dict):
                    node[seg] = copy.deepcopy(self.DETAIL_DEFAULTS.get(seg, {})) \
                        if node is cfg else {}
                node = node[seg]
            node[route[-1]] = value["update"]
        return self.ok()

    def act_DescribeIpStatus(self, p):
        self.domain(p["Domain"])
        layer = self.enum(p, "Layer", ("edge", "last"), "edge")
        area = self.enum(p, "Area", ("mainland", "overseas", "global"))
        ips = []
        for i, (district, city, isp) in enumerate((("Guangdong", "Shenzhen", "China Telecom"),
                                                   ("Beijing", "Beijing", "China Unicom"),
                                                   ("Shanghai", "Shanghai", "China Mobile"))):
            ip = "192.0.%d.%d" % (2 + i, 10 if layer == "edge" else 100)
            if p.get("Segment"):
                ip = "192.0.%d.0/24" % (2 + i)
            ips.append({"Ip": ip, "District": district, "Isp": isp, "City": city,
                        "Status": "online",
                        "Ipv6": ("2001:db8::%x" % (i + 1)) if p.get("ShowIpv6") else None})
        if area == "overseas":
            ips = [dict(x, District="Hong Kong", City="Hong Kong", Isp="Others") for x in ips]
        return self.ok({"Ips": ips, "TotalCount": len(ips)})

    def act_DescribeCertDomains(self, p):
        if not p.get("Cert") and not p.get("CertId"):
            raise missing("Cert")
        self.enum(p, "Product", ("cdn", "ecdn"))
        return self.ok({"Domains": [], "CertifiedDomains": []})

    # ---- logs and data ---------------------------------------------------------
    def time_range(self, p, max_days):
        start, end = parse_bj(p["StartTime"]), parse_bj(p["EndTime"])
        if start is None or end is None or end < start:
            raise Bad("InvalidParameter.CdnStatInvalidDate", "StartTime and EndTime must "
                      "be YYYY-MM-DD hh:mm:ss with StartTime <= EndTime.", "StartTime")
        if end - start > max_days * 86400:
            raise Bad("InvalidParameter.CdnStatInvalidDate", "The time span must be at most "
                      "%d days." % max_days, "EndTime")
        return start, end

    def act_DescribeCdnDomainLogs(self, p):
        d = self.domain(p["Domain"])
        start, end = self.time_range(p, 31)
        offset, limit = self.paging(p, 100, 1000)
        area = self.enum(p, "Area", ("mainland", "overseas", "global"), "mainland")
        self.enum(p, "LogType", ("access",))
        areas = ("mainland", "overseas") if area == "global" else (area,)
        logs = []
        hour = (start + 8 * 3600) // 3600 * 3600 - 8 * 3600
        while hour <= end:
            stamp = time.strftime("%Y%m%d%H", time.gmtime(hour + 8 * 3600))
            for a in areas:
                sfx = "" if a == "mainland" else "-overseas"
                logs.append({
                    "StartTime": beijing(hour), "EndTime": beijing(hour + 3599),
                    "LogPath": "http://log-download.cdn.example.com/%s/%s/%s-%s%s.gz"
                               "?st=cdnemu&e=%d" % (stamp[:8], stamp[8:], stamp,
                                                    d["Domain"], sfx, int(hour) + 86400),
                    "Area": a, "LogName": stamp + sfx,
                    "FileSize": 1000 + (int(hour) // 3600) % 9000})
            hour += 3600
        return self.ok({"DomainLogs": logs[offset:offset + limit], "TotalCount": len(logs)})

    def act_DescribeCdnData(self, p):
        start, end = self.time_range(p, 90)
        metric = p["Metric"]
        if metric not in STAT_METRICS and not re.match(r"^[1-5]\d\d$", metric):
            raise Bad("InvalidParameter.CdnStatInvalidMetric", "Metric `%s` is not supported."
                      % metric[:40], "Metric")
        domains = p.get("Domains") or []
        if len(domains) > STAT_DOMAINS_MAX:
            raise Bad("InvalidParameter.CdnStatTooManyDomains", "At most %d domains can be "
                      "queried at once." % STAT_DOMAINS_MAX, "Domains")
        area = self.enum(p, "Area", ("mainland", "overseas"), "mainland")
        for name, allowed in (("Protocol", ("all", "http", "https", "quic")),
                              ("IpProtocol", ("all", "ipv4", "ipv6")),
                              ("AreaType", ("server", "client")),
                              ("Product", ("cdn", "ecdn"))):
            self.enum(p, name, allowed)
        span = end - start
        interval = p.get("Interval") or ("5min" if span <= 31 * 86400 else "day")
        if interval not in INTERVALS or \
                (interval == "min" and (span > 86400 or area == "overseas")) or \
                (interval in ("5min", "hour") and span > 31 * 86400):
            raise Bad("InvalidParameter.CdnInvalidParamInterval", "Interval `%s` does not "
                      "fit the time span / area." % str(interval)[:20], "Interval")
        step = INTERVALS[interval]

        def floor(t):
            return (t + 8 * 3600) // step * step - 8 * 3600
        times = list(range(int(floor(start)), int(floor(end)) + 1, step))
        if metric == "statusCode":
            metrics = ["2xx", "3xx", "4xx", "5xx"]
        elif re.match(r"^[2-5]xx$", metric):
            metrics = [metric, metric[0] + "00"]
        else:
            metrics = [metric]
        if not domains:
            resources = ["all"]
        elif p.get("Detail"):
            resources = list(domains)
        else:
            resources = [domains[0]] if len(domains) == 1 else ["multiDomains"]
        data = []
        for res in resources:
            cdn = []
            for m in metrics:
                rate = m in ("requestHitRate", "fluxHitRate")
                vals = [round(90 + (i % 10) * 0.5, 2) if rate else
                        (i * 7 + len(res) + len(m)) % 100 + 1 for i in range(len(times))]
                if rate:
                    summ = {"Name": "avg", "Value": round(sum(vals) / len(vals), 2)}
                elif m.startswith("bandwidth"):
                    summ = {"Name": "max", "Value": max(vals)}
                else:
                    summ = {"Name": "sum", "Value": sum(vals)}
                cdn.append({"Metric": m, "DetailData": [
                    {"Time": beijing(t), "Value": v} for t, v in zip(times, vals)],
                    "SummarizedData": summ})
            data.append({"Resource": res, "CdnData": cdn})
        return self.ok({"Interval": interval, "Data": data})

    # ---- purge / push ----------------------------------------------------------
    def _record(self, kind, urls, action, area, record, flush_type=None):
        """A task for `urls` in the shared task store, recorded unless
        `record` is false (no_task_id)."""
        if not record:
            return None
        t = {"task_id": str(1000000000 + self.state.next_task_id()), "kind": kind,
             "urls": list(urls), "action": action, "mono": time.monotonic(),
             "created": self.state.now(), "area": area, "flush_type": flush_type}
        if kind == "url":
            self.state.record(urls=urls, tasks=[t])
        elif kind == "dir":
            self.state.record(dirs=urls, tasks=[t])
        else:
            self.state.record(prefetch=urls, tasks=[t])
        return t["task_id"]

    def act_PurgeUrlsCache(self, p, record=True):
        urls = p["Urls"]
        if len(urls) > PURGE_URL_BATCH:
            raise Bad("LimitExceeded.CdnPurgeUrlExceedBatchLimit", "At most %d URLs can be "
                      "purged in one request." % PURGE_URL_BATCH, "Urls")
        area = self.enum(p, "Area", ("mainland", "overseas"), "mainland")
        self.check_urls(urls, "Urls", p.get("UrlEncode", False),
                        "InvalidParameter.CdnPurgeWildcardNotAllowed")
        if record:
            self.consume("purge_url", (area,), len(urls), self.cfg("purge_url_day_limit"),
                         "LimitExceeded.CdnPurgeUrlExceedDayLimit", "purged URLs")
        tid = self._record("url", urls, "PurgeUrlsCache", area, record, "flush")
        return self.ok({} if tid is None else {"TaskId": tid})

    def act_PurgePathCache(self, p, record=True):
        paths = p["Paths"]
        if len(paths) > PURGE_PATH_BATCH:
            raise Bad("LimitExceeded.CdnPurgePathExceedBatchLimit", "At most %d paths can "
                      "be purged in one request." % PURGE_PATH_BATCH, "Paths")
        flush = self.enum(p, "FlushType", ("flush", "delete"))
        area = self.enum(p, "Area", ("mainland", "overseas"), "mainland")
        self.check_urls(paths, "Paths", p.get("UrlEncode", False),
                        "InvalidParameter.CdnPurgeWildcardNotAllowed")
        if record:
            self.consume("purge_path", (area,), len(paths), self.cfg("purge_path_day_limit"),
                         "LimitExceeded.CdnPurgePathExceedDayLimit", "purged paths")
        tid = self._record("dir", paths, "PurgePathCache", area, record, flush)
        return self.ok({} if tid is None else {"TaskId": tid})

    def act_PushUrlsCache(self, p, record=True):
        urls = p["Urls"]
        if len(urls) > PUSH_URL_BATCH:
            raise Bad("LimitExceeded.CdnPushExceedBatchLimit", "At most %d URLs can be "
                      "pushed in one request." % PUSH_URL_BATCH, "Urls")
        area = self.enum(p, "Area", ("mainland", "overseas", "global"), "mainland")
        headers = p.get("Headers") or []
        if len(headers) > PUSH_HEADERS_MAX:
            raise invalid_value("Headers", "at most %d headers" % PUSH_HEADERS_MAX)
        for i, h in enumerate(headers):
            if len(h["Name"].encode("utf-8")) > 128:
                raise invalid_value("Headers.%d.Name" % i, "at most 128 bytes")
            if len(h["Value"].encode("utf-8")) > 1024:
                raise invalid_value("Headers.%d.Value" % i, "at most 1024 bytes")
        self.check_urls(urls, "Urls", p.get("UrlEncode", False),
                        "InvalidParameter.CdnPushWildcardNotAllowed")
        status = {d["Domain"]: d["Status"] for d in self.domains()}
        for u in urls:
            host = urlsplit(u).hostname or ""
            if status.get(host, "online") != "online":
                raise Bad("ResourceUnavailable.CdnHostIsNotOnline", "The domain `%s` is not "
                          "online; it cannot be pushed." % host, "Urls")
        areas = ("mainland", "overseas") if area == "global" else (area,)
        if record:
            self.consume("push_url", areas, len(urls), self.cfg("push_url_day_limit"),
                         "LimitExceeded.CdnPushExceedDayLimit", "pushed URLs")
        tid = self._record("push", urls, "PushUrlsCache", area, record)
        return self.ok({} if tid is None else {"TaskId": tid})

    def _task_logs(self, p, kinds):
        """Per-URL log entries of the shared task store (v2 and 3.0 tasks),
        newest task first, filtered by the common task-query parameters."""
        tid = p.get("TaskId")
        if not tid:
            if not p.get("StartTime"):
                raise Bad("MissingParameter", "The request is missing a required "
                          "parameter `TaskId` or `StartTime`.", "TaskId")
            if not p.get("EndTime"):
                raise missing("EndTime")
        start = parse_bj(p["StartTime"]) if p.get("StartTime") else None
        end = parse_bj(p["EndTime"]) if p.get("EndTime") else None
        offset, limit = self.paging(p, 20, 1000)
        done_after = self.state.task_seconds
        now = time.monotonic()
        out = []
        for t in reversed(self.state.snapshot_tasks()):
            if t["kind"] not in kinds:
                continue
            if tid and t["task_id"] != tid:
                continue
            if start is not None and int(t["created"]) < start:
                continue
            if end is not None and int(t["created"]) > end:
                continue
            area = t.get("area") or ("overseas" if "OverSea" in t["action"] else "mainland")
            done = now - t["mono"] >= done_after
            for u in t["urls"]:
                out.append((t, u, area, done))
        kw = p.get("Keyword")
        if kw:
            if kw.lower().startswith(("http://", "https://")):
                out = [x for x in out if x[1] == kw]
            else:
                out = [x for x in out if (urlsplit(x[1]).hostname or "") == kw]
        return out, offset, limit

    def act_DescribePurgeTasks(self, p):
        ptype = self.enum(p, "PurgeType", ("url", "path"))
        status = self.enum(p, "Status", ("fail", "done", "process"))
        area = self.enum(p, "Area", ("mainland", "overseas", "global"))
        kinds = {"url": ("url",), "path": ("dir",), None: ("url", "dir")}[ptype]
        rows, offset, limit = self._task_logs(p, kinds)
        logs = []
        for t, u, a, done in rows:
            st = "done" if done else "process"
            if (status and st != status) or (area and a != area):
                continue
            logs.append({"TaskId": t["task_id"], "Url": u, "Status": st,
                         "PurgeType": "url" if t["kind"] == "url" else "path",
                         "FlushType": t.get("flush_type") or "flush",
                         "CreateTime": beijing(t["created"])})
        return self.ok({"PurgeLogs": logs[offset:offset + limit], "TotalCount": len(logs)})

    def act_DescribePushTasks(self, p):
        status = self.enum(p, "Status", ("fail", "done", "process", "invalid"))
        area = self.enum(p, "Area", ("mainland", "overseas", "global"))
        rows, offset, limit = self._task_logs(p, ("push",))
        logs = []
        for t, u, a, done in rows:
            st = "done" if done else "process"
            if (status and st != status) or (area and a != area):
                continue
            created = beijing(t["created"])
            logs.append({"TaskId": t["task_id"], "Url": u, "Status": st,
                         "Percent": 100 if done else 0, "CreateTime": created, "Area": a,
                         "UpdateTime": beijing(t["created"] + self.state.task_seconds)
                         if done else created})
        return self.ok({"PushLogs": logs[offset:offset + limit], "TotalCount": len(logs)})

    def _quota(self, kind, batch, total):
        return [{"Batch": batch, "Total": total,
                 "Available": max(0, total - self.used(kind, a)), "Area": a}
                for a in ("mainland", "overseas")]

    def act_DescribePurgeQuota(self, p):
        return self.ok({
            "UrlPurge": self._quota("purge_url", PURGE_URL_BATCH,
                                    self.cfg("purge_url_day_limit")),
            "PathPurge": self._quota("purge_path", PURGE_PATH_BATCH,
                                     self.cfg("purge_path_day_limit"))})

    def act_DescribePushQuota(self, p):
        return self.ok({"UrlPush": self._quota("push_url", PUSH_URL_BATCH,
                                               self.cfg("push_url_day_limit"))})
