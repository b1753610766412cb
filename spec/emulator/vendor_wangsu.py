"""vendor_wangsu -- Wangsu / ChinaNetCenter CDN open API (open.chinanetcenter.com)
for cdnemu: the 32 report APIs (/api/report/..., /myview/...) and the 6 ccm
purge / prefetch endpoints (/ccm/...).

One path per API: tables/wangsu.txt (read at start-up) gives each API's
ActionName, HTTP method, URI and fields ((q) query string, (b) JSON body, !
required); an unknown URI answers 404, another method 405.

Two authentication schemes, verified here with this module's own code:
- AK/SK "CNC-HMAC-SHA256" (the SDKs'): headers x-cnc-auth-method: AKSK,
  x-cnc-accessKey, x-cnc-timestamp (unix seconds, within 300 s of the server
  clock), Authorization: CNC-HMAC-SHA256 Credential=<AK>, SignedHeaders=<a;b>,
  Signature=<hex>;
    CanonicalRequest = METHOD \\n PATH \\n QUERY \\n
        "name:lower(trim(value))\\n" per signed header \\n SIGNED \\n hex(sha256(payload))
    QUERY = "" for POST, the raw query URL-decoded (not re-sorted) otherwise;
    payload = the body for POST/PUT, "" otherwise; host = the Host header as sent.
    StringToSign = "CNC-HMAC-SHA256\\n" timestamp "\\n" hex(sha256(CanonicalRequest))
    Signature = hex(HMAC-SHA256(SecretKey, StringToSign))
- legacy Basic: Date (RFC 1123 GMT, within 15 min), Authorization: Basic
  base64(user ":" base64(HMAC-SHA1(apikey, Date))).

Gateway errors (routing, authentication, faults, report parameters) answer
{"code", "message"}; ccm errors {"Code": 0, "Message"}.  Every answer carries
x-cnc-request-id.  See README.md.
"""

import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
import zlib
from urllib.parse import unquote

from emucore import ParamError, Response, Vendor, beijing, parse_form

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "tables", "wangsu.txt")

ALGORITHM = "CNC-HMAC-SHA256"
AKSK_MAX_SKEW = 300        # x-cnc-timestamp vs the server clock, seconds
BASIC_MAX_SKEW = 900       # the legacy Date header vs the server clock
REQUIRED_SIGNED = ("content-type", "host")

# credentials the emulator knows
CREDENTIALS = {"wangsu-test-ak": "wangsu-test-sk", "demo-ak": "demo-sk"}
BASIC_USERS = {"wangsu-user": "wangsu-apikey"}

# /__emu/config settings (defaults)
CONFIG = {
    "purge_url_day_limit": 5000,       # Purge URLs per day (urlQuota)
    "purge_dir_day_limit": 500,        # Purge directories per day (dirQuota)
    "prefetch_url_day_limit": 20000,   # Prefetch URLs per day (prefetchQuota)
    "prefetch_volume_day_limit": 204800,  # Prefetch volume per day, MB (200 GB)
    "fail_url_substring": None,        # purge/prefetch rows whose URL contains it end "failure"
}
# quotas with nothing in the emulator that uses them up
PURGE_REGEX_QUOTA = 100
PURGE_TAG_QUOTA = 100
PREFETCH_MB_PER_URL = 1    # the volume each prefetched URL uses (made up)

# per-call limits
PURGE_ITEMS_MAX = 500      # urls + dirs
PREFETCH_URLS_MAX = 400
URL_MAX_CHARS = 2000
DIR_MAX_CHARS = 1000
DOMAINS_MAX = 20
DOMAINS_MAX_BY_ACTION = {"Querytrafficrequestintotalandpeakvalue": 200}
SPAN_MAX_DAYS = 31
QUERY_BACK_DAYS = 3        # ItemIdQuery: startTime at most this far back
PAGE_SIZE_MAX = 500        # ItemIdQuery pageSize (no documented maximum)
MAX_POINTS = 2000          # points per made-up series

REPORT_OK_CODE = "0"       # {code, message, data} answers: the success code
REPORT_OK_MESSAGE = "success"
# the quota answers' lower-case code on success (both SDKs: "0 indicates
# success and 1 indicates failure"; the task APIs' capitalised Code is 1)
QUOTA_OK_CODE = 0

DATE_FIELDS = ("dateFrom", "dateTo", "datefrom", "dateto")
REPORT_DATE_RX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
CCM_TIME_RX = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
URL_RX = re.compile(r"^https?://[^/?#\s]+", re.I)

STEPS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400,
         "fiveminutes": 300, "hourly": 3600, "daily": 86400}
ALL_INTERVALS = ("1m", "5m", "1h", "1d")
# dataInterval per API, as the SDK request models' field docs list it: (the
# values accepted, the default)
INTERVALS = {
    "Reportflowispprovinceservice": (("5m", "1h"), "5m"),
    "Reportflowispprovincebyteservice": (("5m", "1h"), "5m"),
    "Reportflowispprovinceshorttimeservice": (("1m", "5m", "1h"), "5m"),
    "Reportfloworiginispprovinceservice": (("5m", "1h"), "5m"),
    "Reportfloworiginispprovincebyteservice": (("5m", "1h"), "5m"),
    "Reportflowhitrateispprovinceservice": (("5m", "1h"), "5m"),
    "Reportflowhitrateispprovincebyteservice": (("5m", "1h"), "5m"),
    "Reportflowispprovincetotalservice": (("1m", "5m"), "1m"),
    "Queryispprovincehitrate": (("1m", "5m"), "1m"),
    "Reportflowispprovincehitratedetailservice": (("1m", "5m"), "5m"),
    "Querybacktoorigintrafficandrequest": (("1m", "5m"), "5m"),
    "Queryoutputtrafficundershieldpop": (("5m",), "5m"),
    "Reportflowexactdomainservice": (("5m", "1d"), "5m"),
    "Reportflowdomaincountryservice": (("5m", "1d"), "5m"),
    "Reportupflowdomaincountryservice": (("5m", "1d"), "5m"),
    "Querydirectorybandwidthtrafficunderlivestreamdomain": (("1m", "5m"), "5m"),
    "Querystreamtrafficundermalbdomain": (("1m", "5m"), "5m"),
    "Querymultiplestreamtrafficandbandwidthunderthedomain": (("1m", "5m"), "5m"),
    "Reportflowrequestmultiipversionservice": (("1m", "5m", "1h"), "5m"),
    "Reportflowp2pshareratioservice": (("1m", "5m"), "5m"),
    "Querydomaintrafficunderspecificsettlementarea": (("5m", "1h", "1d"), "1d"),
    "Queryrequesbandwidthtsavingratio": (("5m", "1h", "1d"), "1d"),
    "Querydatatransferforalldomainbyte": (("5m", "1h", "1d"), "5m"),
    "Querytrafficbyspecificprotocol": (ALL_INTERVALS, "5m"),
}
TYPES = ("fiveminutes", "hourly", "daily")       # `type` of /api/report/flow, /domainflow
AREA_CODES = ("cn", "nc", "ov", "apac", "am", "euna", "emea", "sa", "af", "au", "hk", "tw")
ENUMS = {
    "dataType": ("flow", "bandwidth"),
    "protocolType": ("http", "https"),
    "queryBy": ("flow", "request", "bandwidth"),
    "backsrcOnly": (0, 1),
    "filterEmptyStream": (0, 1),
    "isRange": (0, 1),
    "dirHierarchy": ("1", "2", "3", "4"),
    "dataformat": ("xml", "json"),
    "resultType": ("1", "2", "3"),
    "urlAction": ("default", "delete", "expire"),
    "dirAction": ("default", "delete", "expire"),
    "status": ("success", "failure", "wait", "run"),
}
ACCOUNT_DOMAINS = ("www.example.com", "img.example.com")
PROVINCES = (("北京", "beijing"), ("广东", "guangdong"))
ISPS = (("电信", "dx"), ("联通", "lt"))
COUNTRIES = (("CN", "中国", "China"), ("US", "美国", "United States"))

MESSAGES = {
    "TooManyRequests": "Request was denied due to request throttling, please retry later.",
    "InternalError": "The server encountered an internal error, please retry later.",
    "ServiceUnavailable": "The service is temporarily unavailable, please retry later.",
    "RequestExpired": "The request has expired: the timestamp differs from the server "
                      "time by more than %d seconds." % AKSK_MAX_SKEW,
}


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------
class Field:
    """One field of an API (or a member of a structure)."""

    def __init__(self, name, ftype, place, required, members=None):
        self.name, self.type, self.place, self.required = name, ftype, place, required
        self.members = members   # [Field] for "struct" / "struct[]"

    def __repr__(self):
        return "Field(%r, %r, %r, %r)" % (self.name, self.type, self.place, self.required)


class Api:
    def __init__(self, name, method, uri, fields):
        self.name, self.method, self.uri, self.fields = name, method, uri, fields
        self.ccm = uri.startswith("/ccm/")
        self.by_name = {f.name: f for f in fields}

    def place(self, where):
        return {f.name: f for f in self.fields if f.place == where}


def split_top(s):
    """Split on commas outside braces."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced } in %r" % s[:80])
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise ValueError("unbalanced { in %r" % s[:80])
    if cur.strip():
        out.append(cur.strip())
    return out


FIELD_RX = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)(?::(str\[\]|str|int|\{.*\}(?:\[\])?))?"
                      r"(?:\((q|b)\))?(!?)$", re.S)


def parse_field(tok, member=False):
    m = FIELD_RX.match(tok)
    if not m:
        raise ValueError("bad field %r" % tok[:80])
    name, t, place, req = m.group(1), m.group(2) or "str", m.group(3), m.group(4) == "!"
    if member and place:
        raise ValueError("a structure member has no place: %r" % tok[:80])
    if not member and not place:
        raise ValueError("field %r lacks (q) or (b)" % tok[:80])
    members = None
    if t.startswith("{"):
        inner = t[1:t.rindex("}")]
        members = [parse_field(x, True) for x in split_top(inner)]
        t = "struct[]" if t.endswith("[]") else "struct"
    return Field(name, t, place, req, members)


def load_table(path=TABLE):
    """tables/wangsu.txt -> {ActionName: Api}; ValueError if inconsistent
    (duplicate names or URIs, a bad field, a (q) field on a body-less GET is
    fine, a (b) field on a GET is not)."""
    apis, uris = {}, set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                head, rest = line.split(": ", 1) if ": " in line else (line.rstrip(":"), None)
                name, method, uri = head.split()
                if rest is None or rest.strip() == "-":
                    fields = []
                else:
                    fields = [parse_field(t) for t in split_top(rest)]
                if method not in ("GET", "POST") or not uri.startswith("/"):
                    raise ValueError("bad method or URI")
                if method == "GET" and any(f.place == "b" for f in fields):
                    raise ValueError("a GET API with body fields")
                if len({f.name for f in fields}) != len(fields):
                    raise ValueError("a field given twice")
            except ValueError as e:
                raise ValueError("%s line %d: %s" % (path, n, e))
            if name in apis or uri in uris:
                raise ValueError("%s line %d: %s / %s given twice" % (path, n, name, uri))
            apis[name] = Api(name, method, uri, fields)
            uris.add(uri)
    return apis


# --------------------------------------------------------------------------
# CNC-HMAC-SHA256 and the legacy Basic scheme
# --------------------------------------------------------------------------
def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def canonical_query(method, raw_query):
    """"" for POST; otherwise the raw query string URL-decoded, not re-sorted."""
    if method.upper() == "POST":
        return ""
    return unquote(raw_query or "")


def payload_hash(method, body):
    """hex sha256 of the body for POST/PUT, of "" for every other method."""
    return sha256_hex(body if method.upper() in ("POST", "PUT") and body else b"")


def aksk_canonical_request(method, path, raw_query, headers, signed, body):
    """headers: {lower-case name: value as received}; signed: the SignedHeaders
    string (names joined by ';')."""
    names = signed.split(";")
    canon = "".join("%s:%s\n" % (n, (headers.get(n) or "").strip().lower()) for n in names)
    return "\n".join([method.upper(), path, canonical_query(method, raw_query), canon, signed,
                      payload_hash(method, body)])


def aksk_string_to_sign(timestamp, canonical_request):
    return "\n".join([ALGORITHM, str(timestamp), sha256_hex(canonical_request)])


def aksk_signature(secret, string_to_sign):
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def aksk_authorization(ak, signed, signature):
    return "%s Credential=%s, SignedHeaders=%s, Signature=%s" % (ALGORITHM, ak, signed, signature)


AUTH_RX = re.compile(r"^CNC-HMAC-SHA256\s+(.*)$", re.S)


def parse_aksk_authorization(value):
    """-> {"ak", "signed" (the string), "names" (list), "signature"};
    ValueError(message) if malformed."""
    m = AUTH_RX.match((value or "").strip())
    if not m:
        raise ValueError("Authorization must start with %s" % ALGORITHM)
    fields = {}
    for part in m.group(1).split(","):
        part = part.strip()
        if "=" not in part:
            raise ValueError("Authorization field %r is not name=value" % part[:40])
        k, v = part.split("=", 1)
        k, v = k.strip(), v.strip()
        if k in fields:
            raise ValueError("Authorization field %s given twice" % k[:40])
        fields[k] = v
    for k in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(k):
            raise ValueError("Authorization lacks %s" % k)
    extra = sorted(set(fields) - {"Credential", "SignedHeaders", "Signature"})
    if extra:
        raise ValueError("unknown Authorization field %s" % extra[0][:40])
    names = fields["SignedHeaders"].split(";")
    if any(not n or n != n.strip().lower() for n in names):
        raise ValueError("SignedHeaders must be lower-case header names joined by ';'")
    return {"ak": fields["Credential"], "signed": fields["SignedHeaders"], "names": names,
            "signature": fields["Signature"]}


def basic_password(apikey, date):
    """base64(HMAC-SHA1(apikey, Date header))."""
    mac = hmac.new(apikey.encode("utf-8"), date.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def basic_authorization(user, apikey, date):
    raw = ("%s:%s" % (user, basic_password(apikey, date))).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_basic_authorization(value):
    """-> (user, password); ValueError if not Basic base64(user:password)."""
    m = re.match(r"^Basic\s+(\S+)$", (value or "").strip(), re.I)
    if not m:
        raise ValueError("Authorization must be Basic <base64(user:password)>")
    try:
        raw = base64.b64decode(m.group(1), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the Basic credentials are not base64 of user:password")
    if ":" not in raw:
        raise ValueError("the Basic credentials are not base64 of user:password")
    return tuple(raw.split(":", 1))


def parse_http_date(value):
    """RFC 1123 `Thu, 01 Jan 2015 00:00:00 GMT` -> epoch seconds, or None."""
    try:
        return calendar.timegm(time.strptime(value.strip(), "%a, %d %b %Y %H:%M:%S GMT"))
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
class Bad(Exception):
    """An error answer: HTTP status, code (gateway envelope, request log) and
    message; ccm APIs answer {"Code": 0, "Message"} with the same status."""

    def __init__(self, code, message, status=400, name=None):
        super().__init__(code)
        self.code, self.message, self.status, self.name = code, message, status, name


def unknown(name, where, other=None):
    why = "%s is not a parameter of this API" % name
    if other:
        why = "%s travels in the %s, not the %s" % (
            name, "query string" if other == "q" else "JSON body",
            "query string" if where == "q" else "JSON body")
    return Bad("UnknownParameter", "Unknown parameter %s: %s." % (name, why), name=name)


def missing(name):
    return Bad("MissingParameter", "The required parameter %s is missing." % name, name=name)


def invalid(name, why):
    return Bad("InvalidParameter", "Invalid parameter %s: %s." % (name, why), name=name)


def conform(value, field, path):
    """Check `value` (JSON) against `field`; returns it (an int field's digit
    string as an int).  Bad on a wrong type, an unknown or missing member."""
    t = field.type
    if t == "str":
        if not isinstance(value, str):
            raise invalid(path, "a string expected")
        return value
    if t == "int":
        if isinstance(value, str) and re.match(r"^-?\d+$", value):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(path, "an integer expected")
        return value
    if t == "str[]":
        if not isinstance(value, list):
            raise invalid(path, "a list of strings expected")
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise invalid("%s[%d]" % (path, i), "a string expected")
        return value
    if t == "struct[]":
        if not isinstance(value, list):
            raise invalid(path, "a list of objects expected")
        return [conform_struct(v, field.members, "%s[%d]" % (path, i))
                for i, v in enumerate(value)]
    return conform_struct(value, field.members, path)


def conform_struct(value, members, path):
    if not isinstance(value, dict):
        raise invalid(path, "an object expected")
    names = {m.name: m for m in members}
    for k in value:
        if k not in names:
            raise unknown("%s.%s" % (path, k), "b")
    out = {}
    for m in members:
        v = value.get(m.name)
        if v is None or v == "" or v == []:
            if m.required:
                raise missing("%s.%s" % (path, m.name))
            if v is None:
                continue
        out[m.name] = conform(v, m, "%s.%s" % (path, m.name))
    return out


def parse_report_date(s):
    """yyyy-MM-ddTHH:mm:ss+08:00 -> epoch seconds, or None."""
    if not isinstance(s, str) or not REPORT_DATE_RX.match(s):
        return None
    try:
        return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - 8 * 3600
    except ValueError:
        return None


def parse_cst(s):
    """yyyy-MM-dd HH:mm:ss (UTC+8) -> epoch seconds, or None."""
    if not isinstance(s, str) or not CCM_TIME_RX.match(s):
        return None
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M:%S")) - 8 * 3600
    except ValueError:
        return None


def made_up(seed, i, lo=0.0, hi=1000.0):
    """A deterministic made-up number for point i of a series."""
    h = zlib.crc32(("%s/%d" % (seed, i)).encode("utf-8"))
    return lo + (h % 100000) / 100000.0 * (hi - lo)


def money(x):
    return "%.2f" % x


# --------------------------------------------------------------------------
# the vendor
# --------------------------------------------------------------------------
class Wangsu(Vendor):
    name = "wangsu"
    # nominal: every API has a path of its own (the table), checked by
    # check_route, not the base class's one-path check
    PATH = "/"
    CREDENTIALS = CREDENTIALS
    BASIC_USERS = BASIC_USERS
    TASK_ACTIONS = frozenset({"PurgeItemIdReceiver", "FetchItemIdReceiver"})
    CONFIG = CONFIG
    TRUNCATED_BODY = (b'{"flow-summary":"1234.56","flow-data":[{"timestamp":"2024-01-01 00:05",'
                      b'"flow":"12')

    def __init__(self, state, fixtures, n_items, table_path=TABLE):
        super().__init__(state, fixtures, n_items)
        try:
            self.apis = load_table(table_path)
        except (OSError, ValueError) as e:
            sys.stderr.write("cdnemu: cannot load %s: %s\n" % (table_path, e))
            sys.exit(2)
        self.routes = {a.uri: a for a in self.apis.values()}
        state.counter_defaults.setdefault("signature_reused", 0)

    # ---- state -------------------------------------------------------------
    def _st(self):
        """Per-reset state (call with state.lock held)."""
        x = self.state.extra.get("wangsu")
        if x is None:
            x = self.state.extra["wangsu"] = {"used": {}, "sigs": set()}
        return x

    def cfg(self, name):
        return self.state.vendor_config.get(name, CONFIG[name])

    # ---- envelopes -----------------------------------------------------------
    @staticmethod
    def answer(status, obj, code=None, headers=None):
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        resp = Response(status, body, "application/json;charset=utf-8", headers=headers)
        resp.error_code = code
        return resp

    def gateway_error(self, status, code, message, headers=None):
        return self.answer(status, {"code": code, "message": message}, code, headers)

    def bad(self, api, b):
        if api is not None and api.ccm:
            return self.answer(b.status, {"Code": 0, "Message": b.message}, b.code)
        return self.gateway_error(b.status, b.code, b.message)

    def succeeded(self, resp):
        if resp.mode is not None or not 200 <= resp.status < 300:
            return False
        try:
            body = json.loads(resp.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
        return not (isinstance(body, dict) and "Code" in body and body["Code"] != 1)

    # ---- pipeline hooks --------------------------------------------------------
    def read_params(self, method, headers, query, body):
        return {}    # query string and JSON body are read in dispatch()

    def action_of(self, req):
        api = self.routes.get(req.path)
        return api.name if api else None

    def check_route(self, req):
        api = self.routes.get(req.path)
        if api is None:
            return self.gateway_error(404, "NotFound", "The requested API %s does not exist."
                                      % req.path[:200])
        if req.method != api.method:
            return self.gateway_error(405, "MethodNotAllowed", "%s %s is not supported; %s "
                                      "takes %s." % (req.method[:20], req.path[:200], api.name,
                                                     api.method),
                                      headers=[("Allow", api.method)])
        return None

    def err_method(self, req):
        return self.check_route(req)

    def err_path(self, req):
        return self.check_route(req)

    def err_input(self, msg):
        return self.gateway_error(400, "InvalidRequest", "The request could not be read: %s."
                                  % msg)

    def err_nonce(self):     # no nonce in either scheme; never called
        return self.gateway_error(401, "RequestExpired", MESSAGES["RequestExpired"])

    def internal_error(self):
        return self.gateway_error(500, "InternalError", MESSAGES["InternalError"])

    def vendor_fault(self, kind):
        if kind == "throttle":
            return self.gateway_error(429, "TooManyRequests", MESSAGES["TooManyRequests"])
        if kind == "http500":
            return self.gateway_error(500, "InternalError", MESSAGES["InternalError"])
        if kind == "http503":
            return self.gateway_error(503, "ServiceUnavailable", MESSAGES["ServiceUnavailable"])
        if kind == "stale":
            return self.gateway_error(401, "RequestExpired", MESSAGES["RequestExpired"])
        raise AssertionError(kind)

    # ---- entry ---------------------------------------------------------------
    def process(self, req):
        """The base pipeline, plus the request-log fields, x-cnc-request-id on
        every answer and the answer's error code in the log."""
        self.state.annotate(req, self.log_fields(req))
        resp = super().process(req)
        if resp.mode in (None, "truncated"):
            resp.headers = list(resp.headers) + [("x-cnc-request-id", str(uuid.uuid4()))]
        self.state.annotate(req, {"error": getattr(resp, "error_code", None)})
        return resp

    def log_fields(self, req):
        h = req.headers
        auth = (h.get("Authorization") or "").strip()
        info = {"auth": None, "key_id": None, "signed_headers": None,
                "accept_language": h.get("Accept-Language"), "query_params": None,
                "body_keys": None, "signature_reused": False, "error": None}
        if auth.startswith(ALGORITHM):
            info["auth"] = "aksk"
            try:
                a = parse_aksk_authorization(auth)
                info["key_id"], info["signed_headers"] = a["ak"], a["names"]
            except ValueError:
                pass
        elif auth[:6].lower() == "basic ":
            info["auth"] = "basic"
            try:
                info["key_id"] = parse_basic_authorization(auth)[0]
            except ValueError:
                pass
        try:
            names = []
            for k, _ in parse_form(req.query.encode("latin-1", "replace")):
                if k not in names:
                    names.append(k)
            info["query_params"] = sorted(names)
        except ParamError:
            pass
        body = (req.body or b"").strip()
        if not body:
            info["body_keys"] = []
        else:
            try:
                data = json.loads(body.decode("utf-8"))
                if isinstance(data, dict):
                    info["body_keys"] = sorted(data)
            except (ValueError, UnicodeDecodeError):
                pass
        return info

    # ---- authentication --------------------------------------------------------
    def authenticate(self, req):
        auth = (req.headers.get("Authorization") or "").strip()
        if not auth:
            return self.gateway_error(401, "MissingAuthorization", "The Authorization header "
                                      "is missing."), None
        if auth.startswith(ALGORITHM):
            return self.auth_aksk(req, auth), None
        if auth[:6].lower() == "basic ":
            return self.auth_basic(req, auth), None
        return self.gateway_error(401, "InvalidAuthorization", "The Authorization scheme is "
                                  "not supported: use %s or Basic." % ALGORITHM), None

    def _seen(self, req, key):
        """Count a validly signed request whose signature was seen before."""
        with self.state.lock:
            sigs = self._st()["sigs"]
            reused = key in sigs
            sigs.add(key)
        if reused:
            self.state.count("signature_reused")
            self.state.annotate(req, {"signature_reused": True})

    def auth_aksk(self, req, auth):
        h = req.headers

        def refuse(why):
            return self.gateway_error(401, "InvalidAuthorization", "The Authorization is not "
                                      "valid: %s." % why)
        try:
            a = parse_aksk_authorization(auth)
        except ValueError as e:
            return refuse(str(e))
        method = (h.get("x-cnc-auth-method") or "").strip()
        if method.upper() != "AKSK":
            return refuse("the x-cnc-auth-method header must be AKSK")
        ak = (h.get("x-cnc-accessKey") or "").strip()
        if not ak:
            return refuse("the x-cnc-accessKey header is missing")
        if ak != a["ak"]:
            return refuse("the x-cnc-accessKey header differs from the Credential")
        for n in REQUIRED_SIGNED:
            if n not in a["names"]:
                return refuse("SignedHeaders must include %s" % " and ".join(REQUIRED_SIGNED))
        ts = (h.get("x-cnc-timestamp") or "").strip()
        if not ts.isdigit():
            return self.gateway_error(401, "InvalidTimestamp", "The x-cnc-timestamp header "
                                      "must be unix seconds%s." % ("" if ts else
                                                                   " (it is missing)"))
        secret = self.CREDENTIALS.get(a["ak"])
        if secret is None:
            return self.gateway_error(401, "InvalidAccessKey", "The access key %s does not "
                                      "exist." % a["ak"][:80])
        now = self.state.now()
        if abs(int(ts) - now) > AKSK_MAX_SKEW:
            return self.gateway_error(401, "RequestExpired", "The request has expired: "
                                      "x-cnc-timestamp %s, server time %d (at most %d seconds "
                                      "apart)." % (ts, int(now), AKSK_MAX_SKEW))
        received = {n: ", ".join(h.get_all(n) or []) for n in a["names"]}
        creq = aksk_canonical_request(req.method, req.path, req.query, received, a["signed"],
                                      req.body)
        sts = aksk_string_to_sign(ts, creq)
        expect = aksk_signature(secret, sts)
        if not hmac.compare_digest(expect.encode(), a["signature"].lower().encode("utf-8")):
            self.state.sig_failure()
            self.state.annotate(req, {"sign_detail": {
                "reason": "signature mismatch", "canonical_request": creq,
                "string_to_sign": sts}})
            return self.gateway_error(403, "SignatureDoesNotMatch", "The request signature "
                                      "we calculated does not match the signature you "
                                      "provided.")
        self._seen(req, ("aksk", a["signature"].lower()))
        return None

    def auth_basic(self, req, auth):
        try:
            user, password = parse_basic_authorization(auth)
        except ValueError as e:
            return self.gateway_error(401, "InvalidAuthorization", "The Authorization is not "
                                      "valid: %s." % e)
        date = req.headers.get("Date")
        when = parse_http_date(date) if date else None
        if when is None:
            return self.gateway_error(401, "InvalidDate", "The Date header must be an RFC 1123 "
                                      "GMT date such as Thu, 01 Jan 2015 00:00:00 GMT%s."
                                      % ("" if date else " (it is missing)"))
        apikey = self.BASIC_USERS.get(user)
        if apikey is None:
            return self.gateway_error(401, "InvalidAccessKey", "The user %s does not exist."
                                      % user[:80])
        now = self.state.now()
        if abs(when - now) > BASIC_MAX_SKEW:
            return self.gateway_error(401, "RequestExpired", "The request has expired: Date "
                                      "%s, server time %s (at most %d seconds apart)."
                                      % (date.strip()[:40], time.strftime(
                                          "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)),
                                         BASIC_MAX_SKEW))
        expect = basic_password(apikey, date.strip())
        if not hmac.compare_digest(expect.encode(), password.encode("utf-8")):
            self.state.sig_failure()
            self.state.annotate(req, {"sign_detail": {
                "reason": "password mismatch", "string_to_sign": date.strip()}})
            return self.gateway_error(403, "SignatureDoesNotMatch", "The password is not "
                                      "base64(HMAC-SHA1(apikey, Date)).")
        self._seen(req, ("basic", auth, date.strip()))
        return None

    # ---- parameters --------------------------------------------------------------
    def read_checked(self, req, api):
        """The query string and JSON body checked against the table ->
        {name: value}; Bad on the first problem."""
        try:
            pairs = parse_form(req.query.encode("latin-1", "replace"))
        except ParamError as e:
            raise invalid("query string", str(e))
        body = {}
        raw = (req.body or b"").strip()
        if raw:
            if req.method == "GET":
                raise invalid("body", "a GET request carries no body")
            ctype = (req.content_type or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise Bad("InvalidContentType", "Content-Type %s is not supported: send "
                          "application/json." % (req.content_type or "(none)")[:60],
                          name="Content-Type")
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise Bad("MalformedJson", "The request body is not valid JSON.")
            if not isinstance(body, dict):
                raise Bad("MalformedJson", "The request body must be a JSON object.")
        qf, bf = api.place("q"), api.place("b")
        query = {}
        for k, v in pairs:
            if k not in qf:
                raise unknown(k, "q", "b" if k in bf else None)
            query[k] = v
        for k in body:
            if k not in bf:
                raise unknown(k, "b", "q" if k in qf else None)
        out = {}
        for f in api.fields:
            v = query.get(f.name) if f.place == "q" else body.get(f.name)
            if v is None or v == "" or v == []:
                if f.required:
                    raise missing(f.name)
                if v is None or f.place == "q":
                    continue
            out[f.name] = v if f.place == "q" else conform(v, f, f.name)
        for name, allowed in ENUMS.items():
            if name in out and out[name] not in allowed:
                raise invalid(name, "one of %s" % ", ".join(str(a) for a in allowed))
        return out

    # ---- dispatch ----------------------------------------------------------------
    def dispatch(self, req):
        api = self.routes[req.path]
        try:
            p = self.read_checked(req, api)
            if api.ccm:
                fn = getattr(self, "act_" + api.name)
                if api.name in self.TASK_ACTIONS:
                    return fn(p, record=not req.no_task_id)
                return fn(p)
            return self.report(api, p, req)
        except Bad as b:
            return self.bad(api, b)

    # ---- report APIs -------------------------------------------------------------
    def report(self, api, p, req):
        name = api.name
        now = int(self.state.now())
        # the time range
        lo = "datefrom" if "datefrom" in api.by_name else "dateFrom"
        hi = "dateto" if "dateto" in api.by_name else "dateTo"
        if lo in api.by_name:
            start = end = None
            for f in (lo, hi):
                if f in p:
                    t = parse_report_date(p[f])
                    if t is None:
                        raise invalid(f, "use yyyy-MM-ddTHH:mm:ss+08:00, e.g. "
                                      "2024-01-01T00:00:00+08:00")
                    if f == lo:
                        start = t
                    else:
                        end = t
            end = now if end is None else end
            start = end - 86400 if start is None else start
            if end < start:
                raise invalid(hi, "%s is before %s" % (hi, lo))
            if end - start > SPAN_MAX_DAYS * 86400:
                raise invalid(hi, "the time span is at most %d days" % SPAN_MAX_DAYS)
        else:
            start, end = now - 86400, now
        # domains
        domains = self.domains_of(p)
        limit = DOMAINS_MAX_BY_ACTION.get(name, DOMAINS_MAX)
        if len(domains) > limit:
            raise Bad("DomainLimitExceeded", "At most %d domains can be queried at once (%d "
                      "given)." % (limit, len(domains)), name="domain")
        # granularity
        if "type" in api.by_name:
            gran = p.get("type", "daily")
            if gran not in TYPES:
                raise invalid("type", "one of %s" % ", ".join(TYPES))
        elif "dataInterval" in api.by_name:
            allowed, default = INTERVALS[name]
            gran = p.get("dataInterval", default)
            if gran not in allowed:
                raise invalid("dataInterval", "one of %s" % ", ".join(allowed))
        else:
            gran = "5m"
        if "areaCode" in p:
            for code in p["areaCode"].split(";"):
                if code not in AREA_CODES:
                    raise invalid("areaCode", "%s is not one of %s" % (
                        code[:20], ";".join(AREA_CODES)))
        ctx = Ctx(self, api, p, req, start, end, gran, domains)
        return self.answer(200, getattr(self, "rep_" + name)(ctx))

    @staticmethod
    def domains_of(p):
        if "domain" in p:
            return list(p["domain"])
        if "domain-list" in p:
            return list(p["domain-list"].get("domain-name") or [])
        for k in ("domainDir", "domainStream"):
            if k in p:
                return [x["domain"] for x in p[k]]
        return []

    # {flow-summary, flow-data}
    def rep_Querysumuptrafficunderaccount(self, c):
        return c.flow_summary(as_int=False)

    def rep_Querydomaintotaltraffic(self, c):
        return c.flow_summary(as_int=True)

    def rep_Querydomaintrafficunderspecificsettlementarea(self, c):
        return c.flow_summary(as_int=False)

    # {result: [...]}: domain / isp / province
    def rep_Reportflowispprovinceservice(self, c):
        return {"result": c.isp_province("flowData", ("value", "bandwidth"))}

    def rep_Reportflowispprovincebyteservice(self, c):
        return {"result": c.isp_province("flowData", ("value",))}

    def rep_Reportflowispprovinceshorttimeservice(self, c):
        return {"result": c.isp_province("flowData", ("value", "bandwidth"))}

    def rep_Reportfloworiginispprovinceservice(self, c):
        return {"result": c.isp_province("originFlowData", ("value", "originBandwidth"))}

    def rep_Reportfloworiginispprovincebyteservice(self, c):
        return {"result": c.isp_province("originFlowData", ("value",))}

    def rep_Reportflowhitrateispprovinceservice(self, c):
        return {"result": c.isp_province("hitRateData", ("value", "hitFlow"), rate="value")}

    def rep_Reportflowhitrateispprovincebyteservice(self, c):
        return {"result": c.isp_province("hitRateData", ("value", "hitFlow"), rate="value")}

    # {result: [...]}: others
    def rep_Reportflowdomaincountryservice(self, c):
        return {"result": c.countries()}

    def rep_Reportflowdirinfoservice(self, c):
        return {"result": [{"domain": d["domain"], "details": [
            {"dir": x, "totalFlow": money(made_up(d["domain"] + x, 1, 100, 9000)),
             "bandwidthPeakValue": money(made_up(d["domain"] + x, 2, 1, 900))}
            for x in (d.get("dir") or ["/"])]} for d in c.p["domainDir"]]}

    def rep_Querytrafficrequestintotalandpeakvalue(self, c):
        out = []
        for d in c.domains_or_account():
            rows = [{"timestamp": c.fmt(t), "flow": money(made_up(d, i, 10, 500)),
                     "bandwidth": money(made_up(d + "b", i, 1, 90)),
                     "request": str(int(made_up(d + "r", i, 100, 9000)))}
                    for i, t in enumerate(c.times)]
            peak = max(rows, key=lambda r: float(r["bandwidth"])) if rows else None
            peak_r = max(rows, key=lambda r: int(r["request"])) if rows else None
            out.append({"domain": d, "totalFlow": money(sum(float(r["flow"]) for r in rows)),
                        "totalRequest": str(sum(int(r["request"]) for r in rows)),
                        "peakBandwidth": peak["bandwidth"] if peak else "0.00",
                        "peakTime": peak["timestamp"] if peak else "",
                        "peakRequest": peak_r["request"] if peak_r else "0",
                        "peakRequestTime": peak_r["timestamp"] if peak_r else "",
                        "flowRequestData": rows})
        return {"result": out}

    def rep_Querybacktoorigintrafficandrequest(self, c):
        out = []
        for d in c.domains_or_account():
            rows = [{"timestamp": c.fmt(t), "flow": money(made_up(d, i, 1, 50)),
                     "bandwidth": money(made_up(d + "b", i, 1, 9)),
                     "request": str(int(made_up(d + "r", i, 10, 900)))}
                    for i, t in enumerate(c.times)]
            peak = max(rows, key=lambda r: float(r["bandwidth"])) if rows else None
            peak_r = max(rows, key=lambda r: int(r["request"])) if rows else None
            out.append({"domain": d, "totalFlow": money(sum(float(r["flow"]) for r in rows)),
                        "totalRequest": str(sum(int(r["request"]) for r in rows)),
                        "peakRequest": peak_r["request"] if peak_r else "0",
                        "peakRequestTime": peak_r["timestamp"] if peak_r else "",
                        "peakBandwidth": peak["bandwidth"] if peak else "0.00",
                        "peakBandwidthTime": peak["timestamp"] if peak else "",
                        "flowRequestOriginData": rows})
        return {"result": out}

    def rep_Queryoutputtrafficundershieldpop(self, c):
        out = []
        for d in c.domains_or_account():
            rows = c.series(d, ("value",))
            out.append({"domain": d, "totalFlow": money(sum(float(r["value"]) for r in rows)),
                        "flowData": rows})
        return {"result": out}

    def rep_Reportflowexactdomainservice(self, c):
        names = c.p.get("exactDomain") or c.domains_or_account()
        return {"result": [{"exactDomain": d, "flowData": c.series(d, ("value",))}
                           for d in names]}

    def rep_Queryedgebytehitratioservice(self, c):
        rows = [{"timestamp": c.fmt(t), "edgeHitRatio": money(made_up("edge", i, 80, 99.9))}
                for i, t in enumerate(c.times)]
        avg = sum(float(r["edgeHitRatio"]) for r in rows) / len(rows) if rows else 0
        return {"result": [{"realDate": beijing(c.start)[:10], "totalAvg": money(avg),
                            "hitRatioDatas": rows}]}

    def rep_Querydirectorybandwidthtrafficunderlivestreamdomain(self, c):
        return {"result": [{"domain": d["domain"], "details": [
            c.total_peak(d["domain"] + x, {"dir": x}, "details")
            for x in (d.get("dir") or ["/"])]} for d in c.p["domainDir"]]}

    def rep_Querystreamtrafficundermalbdomain(self, c):
        return {"result": [{"domain": d["domain"], "details": [
            c.total_peak(d["domain"] + s, {"stream": s}, "details")
            for s in (d.get("stream") or ["live/stream-1"])]} for d in c.p["domainStream"]]}

    def rep_Querytrafficbyspecificprotocol(self, c):
        return {"result": [{"domain": d, "httpsFlowData": c.series(d, ("value",))}
                           for d in c.domains_or_account()]}

    # {code, message, data}
    def rep_Reportflowispprovincehitratedetailservice(self, c):
        return c.ok_data(c.isp_province("details", ("hitValue", "hitRate"), rate="hitRate",
                                        with_domain="domain"))

    def rep_Reportflowispprovincetotalservice(self, c):
        return c.ok_data([{"domain": d, "detailList": c.series(d, ("value",))}
                          for d in c.domains_or_account()])

    def rep_Queryispprovincehitrate(self, c):
        return c.ok_data([{"domain": d, "detailList": c.series(d, ("hitValue", "hitRate"),
                                                               rate="hitRate")}
                          for d in c.domains_or_account()])

    def rep_Reportflowrequestmultiipversionservice(self, c):
        return c.ok_data([{"domain": d, "detailList": c.series(d, ("v4Value", "v6Value"))}
                          for d in c.domains_or_account()])

    def rep_Reportflowp2pshareratioservice(self, c):
        return c.ok_data([{"domain": d, "detailList": c.series(d, ("value",), rate="value")}
                          for d in c.domains_or_account()])

    def rep_Queryrequesbandwidthtsavingratio(self, c):
        out = []
        for d in c.domains_or_account():
            rows = [{"timestamp": c.fmt(t), "savingBandwidth": money(made_up(d, i, 1, 90))}
                    for i, t in enumerate(c.times)]
            avg = sum(float(r["savingBandwidth"]) for r in rows) / len(rows) if rows else 0
            out.append({"realDate": beijing(c.start)[:10], "totalAvg": int(avg),
                        "savingBandwidthDatas": rows})
        return c.ok_data(out)

    def rep_Querydatatransferforalldomainbyte(self, c):
        rows = [{"timestamp": c.fmt(t), "flow": str(int(made_up("bytes", i, 1e6, 9e8)))}
                for i, t in enumerate(c.times)]
        return c.ok_data([{"flowSummary": str(sum(int(r["flow"]) for r in rows)),
                           "flowData": rows}])

    def rep_Querymultiplestreamtrafficandbandwidthunderthedomain(self, c):
        online = c.p.get("isReturnOnline") in ("true", "1", "yes")
        out = []
        for d in c.p["domainStream"]:
            lst = []
            for s in (d.get("stream") or ["live/stream-1"]):
                x = c.total_peak(d["domain"] + s, {"stream": s}, "detailList")
                if online:
                    for i, r in enumerate(x["detailList"]):
                        r["onlineUser"] = int(made_up(s, i, 1, 5000))
                lst.append(x)
            out.append({"domain": d["domain"], "domainOfStreamList": lst})
        return c.ok_data(out)

    def rep_Reportupflowdomaincountryservice(self, c):
        return c.ok_data(c.countries())

    # {provider: ...}  (MyView)
    def rep_Flowchannel(self, c):
        p = c.p
        chan = (p.get("channel") or "www.example.com").split(";")[0]
        day = p.get("date") or beijing(c.end)[:10]
        return {"provider": {"name": "ChinaNetCenter", "type": "flow",
                             "resultType": p.get("resultType", "1"),
                             "date": {"name": day, "channel": {"name": chan, "flow": [
                                 {"time": c.fmt(t), "text": money(made_up(chan, i, 1, 500))}
                                 for i, t in enumerate(c.times)]}}}}

    def rep_Wctquery(self, c):
        p = c.p
        day = p.get("date") or beijing(c.end)[:10]
        data = [{"time": c.fmt(t), "text": money(made_up("wct", i, 1, 60))}
                for i, t in enumerate(c.times)]
        total = money(sum(float(x["text"]) for x in data))
        return {"provider": {"name": "ChinaNetCenter", "type": "wct", "date": {
            "startdate": p.get("startdate") or day, "enddate": p.get("enddate") or day,
            "customerId": p.get("cust") or "cdnemu", "transcoding": p.get("transcoding") or "all",
            "transcodingType": p.get("transcodingType") or "all", "unit": "minute",
            "total": total, "wct": {"type": p.get("transcodingType") or "all", "total": total,
                                    "data": data}}}}

    def rep_Flowday(self, c):
        p = c.p
        chan = (p.get("channel") or "www.example.com").split(";")[0]
        days = sorted({beijing(t)[:10] for t in range(int(c.start), int(c.end) + 1, 86400)}
                      | {beijing(c.end)[:10]})
        return {"provider": {"name": "ChinaNetCenter", "type": "flow-day", "date": {
            "startdate": p.get("startdate") or days[0], "enddate": p.get("enddate") or days[-1],
            "channel": {"name": chan, "channel-peak": [
                {"date": d, "peakTime": d + " 20:35", "peakValue": money(made_up(chan + d, 1,
                                                                                 10, 900)),
                 "totalFlow": money(made_up(chan + d, 2, 1000, 90000))} for d in days]}}}}

    # ---- ccm -----------------------------------------------------------------------
    def day(self):
        return beijing(self.state.now())[:10]

    def used(self, kind):
        with self.state.lock:
            return self._st()["used"].get((self.day(), kind), 0)

    def consume(self, wants):
        """wants: [(kind, n, limit, what)]: all must fit the day's quota, then
        all are used (HTTP 200 Code 0 QuotaExceeded otherwise)."""
        day = self.day()
        with self.state.lock:
            used = self._st()["used"]
            for kind, n, limit, what in wants:
                if n and used.get((day, kind), 0) + n > limit:
                    raise Bad("QuotaExceeded", "The daily limit of %s is exceeded (%d per "
                              "day, %d left)." % (what, limit, max(0, limit - used.get(
                                  (day, kind), 0))), status=200)
            for kind, n, limit, what in wants:
                used[(day, kind)] = used.get((day, kind), 0) + n

    @staticmethod
    def check_url(u, path, max_chars, is_dir=False):
        """An http(s):// URL of at most max_chars characters, ASCII (non-ASCII
        percent-encoded) without white space; a directory ends with "/"."""
        code = "InvalidDir" if is_dir else "InvalidUrl"
        if not URL_RX.match(u):
            raise Bad(code, "%s must start with http:// or https:// and a host: %s"
                      % (path, u[:200]), name=path)
        if any(ord(ch) > 127 or ch.isspace() for ch in u):
            raise Bad(code, "%s must be percent-encoded UTF-8 without white space: %s"
                      % (path, u[:200]), name=path)
        if len(u) > max_chars:
            raise Bad(code, "%s is longer than %d characters." % (path, max_chars), name=path)
        if is_dir and not u.endswith("/"):
            raise Bad(code, "%s must end with /: %s" % (path, u[:200]), name=path)

    def _task(self, kind, rows, record):
        if not record:
            return None
        item = str(uuid.uuid4())
        t = {"item_id": item, "kind": kind, "rows": rows, "mono": time.monotonic(),
             "created": self.state.now(), "wangsu": True}
        urls = [r["url"] for r in rows if not r.get("is_dir")]
        dirs = [r["url"] for r in rows if r.get("is_dir")]
        if kind == "purge":
            self.state.record(urls=urls, dirs=dirs, tasks=[t])
        else:
            self.state.record(prefetch=urls, tasks=[t])
        return item

    def act_PurgeItemIdReceiver(self, p, record=True):
        urls, dirs = p.get("urls") or [], p.get("dirs") or []
        if not urls and not dirs:
            raise Bad("MissingParameter", "urls or dirs is required.", name="urls")
        if len(urls) + len(dirs) > PURGE_ITEMS_MAX:
            raise Bad("TooManyItems", "At most %d urls and dirs can be purged in one call "
                      "(%d given)." % (PURGE_ITEMS_MAX, len(urls) + len(dirs)), name="urls")
        for i, u in enumerate(urls):
            self.check_url(u, "urls[%d]" % i, URL_MAX_CHARS)
        for i, d in enumerate(dirs):
            self.check_url(d, "dirs[%d]" % i, DIR_MAX_CHARS, is_dir=True)
        if record:
            self.consume([("purge_url", len(urls), self.cfg("purge_url_day_limit"), "purged URLs"),
                          ("purge_dir", len(dirs), self.cfg("purge_dir_day_limit"),
                           "purged directories")])
        rows = [{"url": u, "is_dir": False} for u in urls] + \
               [{"url": d, "is_dir": True} for d in dirs]
        item = self._task("purge", rows, record)
        out = {"Code": 1, "Message": "handle success"}
        if item is not None:
            out["itemId"] = item
        return self.answer(200, out)

    def act_FetchItemIdReceiver(self, p, record=True):
        urls = p["urls"]
        if len(urls) > PREFETCH_URLS_MAX:
            raise Bad("TooManyItems", "At most %d urls can be prefetched in one call (%d "
                      "given)." % (PREFETCH_URLS_MAX, len(urls)), name="urls")
        for i, u in enumerate(urls):
            self.check_url(u, "urls[%d]" % i, URL_MAX_CHARS)
        if record:
            self.consume([("prefetch_url", len(urls), self.cfg("prefetch_url_day_limit"),
                           "prefetched URLs"),
                          ("prefetch_volume", len(urls) * PREFETCH_MB_PER_URL,
                           self.cfg("prefetch_volume_day_limit"), "prefetch volume (MB)")])
        item = self._task("prefetch", [{"url": u} for u in urls], record)
        out = {"Code": 1, "Message": "handle success"}
        if item is not None:
            out["itemId"] = item
        return self.answer(200, out)

    def _status(self, t, row):
        """wait for the first half of --task-seconds, run for the second, then
        success (failure if the URL contains config fail_url_substring)."""
        ts = self.state.task_seconds
        age = time.monotonic() - t["mono"]
        if age >= ts:
            bad = self.cfg("fail_url_substring")
            return "failure" if bad and bad in row["url"] else "success"
        return "wait" if age < ts / 2.0 else "run"

    def _query(self, p, kind):
        item = p.get("itemId")
        start = end = None
        if not item:
            if not p.get("startTime") and not p.get("endTime"):
                raise Bad("MissingParameter", "itemId or startTime and endTime is required.",
                          name="itemId")
            for f in ("startTime", "endTime"):
                if not p.get(f):
                    raise missing(f)
        for f in ("startTime", "endTime"):
            if p.get(f):
                t = parse_cst(p[f])
                if t is None:
                    raise invalid(f, "use yyyy-MM-dd HH:mm:ss (UTC+8)")
                if f == "startTime":
                    start = t
                else:
                    end = t
        if start is not None and end is not None and end < start:
            raise invalid("endTime", "endTime is before startTime")
        if start is not None and beijing(start)[:10] < beijing(
                self.state.now() - QUERY_BACK_DAYS * 86400)[:10]:
            raise invalid("startTime", "at most %d days back" % QUERY_BACK_DAYS)
        page_no = p.get("pageNo", 1)
        page_size = p.get("pageSize", 20)
        if page_no < 1:
            raise invalid("pageNo", ">= 1")
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            raise invalid("pageSize", "1..%d" % PAGE_SIZE_MAX)
        rows = []
        for t in reversed(self.state.snapshot_tasks()):
            if not t.get("wangsu") or t["kind"] != kind:
                continue
            if item and t["item_id"] != item:
                continue
            if start is not None and t["created"] < start:
                continue
            if end is not None and t["created"] > end + 1:
                continue
            ts = self.state.task_seconds
            for r in t["rows"]:
                if p.get("url") and r["url"] != p["url"]:
                    continue
                st = self._status(t, r)
                if p.get("status") and st != p["status"]:
                    continue
                row = {"beginTime": "" if st == "wait" else beijing(t["created"] + ts / 2.0),
                       "createTime": beijing(t["created"]),
                       "finishTime": beijing(t["created"] + ts)
                       if st in ("success", "failure") else "",
                       "rate": {"success": "100", "run": "50"}.get(st, "0"),
                       "status": st, "url": r["url"]}
                if kind == "purge":
                    row["isDir"] = 1 if r["is_dir"] else 0
                rows.append(row)
        first = (page_no - 1) * page_size
        # the answer's pageNo is the number of pages (as both SDKs document it)
        return self.answer(200, {"Code": 1, "Message": "success", "count": len(rows),
                                 "pageNo": (len(rows) + page_size - 1) // page_size,
                                 "pageSize": page_size,
                                 "resultDetail": rows[first:first + page_size]})

    def act_PurgeItemIdQuery(self, p):
        return self._query(p, "purge")

    def act_FetchItemIdQuery(self, p):
        return self._query(p, "prefetch")

    def act_PurgeQuota(self, p):
        url_q, dir_q = self.cfg("purge_url_day_limit"), self.cfg("purge_dir_day_limit")
        return self.answer(200, {
            "code": QUOTA_OK_CODE, "message": "success",
            "urlQuota": url_q, "remainingUrlQuota": max(0, url_q - self.used("purge_url")),
            "dirQuota": dir_q, "remainingDirQuota": max(0, dir_q - self.used("purge_dir")),
            "regexQuota": PURGE_REGEX_QUOTA, "remainingRegexQuota": PURGE_REGEX_QUOTA,
            "tagQuota": PURGE_TAG_QUOTA, "remainingTagQuota": PURGE_TAG_QUOTA})

    def act_PrefetchQuota(self, p):
        url_q = self.cfg("prefetch_url_day_limit")
        vol_q = self.cfg("prefetch_volume_day_limit")
        return self.answer(200, {
            "code": QUOTA_OK_CODE, "message": "success",
            "prefetchQuota": url_q,
            "remainingPrefetchQuota": max(0, url_q - self.used("prefetch_url")),
            "prefetchVolumeQuota": vol_q,
            "remainingPrefetchVolumeQuota": max(0, vol_q - self.used("prefetch_volume"))})


class Ctx:
    """One report request: its parameters, time points and made-up series."""

    def __init__(self, vendor, api, p, req, start, end, gran, domains):
        self.api, self.p, self.start, self.end, self.gran = api, p, start, end, gran
        self.domains = domains
        self.step = STEPS.get(gran, 300)
        lang = (req.headers.get("Accept-Language") or "").strip()
        self.codes = lang.lower().startswith("en-us")
        first = (int(start) + 8 * 3600) // self.step * self.step - 8 * 3600
        self.times = list(range(first, int(end) + 1, self.step))[:MAX_POINTS]
        # /api/report/flow, /domainflow, /flow/area: the timestamp says the
        # granularity; the rest: minutes (a date for daily points)
        self.short = api.name in ("Querysumuptrafficunderaccount", "Querydomaintotaltraffic",
                                  "Querydomaintrafficunderspecificsettlementarea")

    def fmt(self, t):
        s = beijing(t)
        if self.step >= 86400:
            return s[:10]
        if self.step >= 3600 and self.short:
            return s[:13]
        return s[:16]

    def domains_or_account(self):
        return self.domains or list(ACCOUNT_DOMAINS)

    def series(self, seed, keys, rate=None):
        rows = []
        for i, t in enumerate(self.times):
            r = {"timestamp": self.fmt(t)}
            for k in keys:
                r[k] = money(made_up(seed + k, i, 50, 100) if k == rate else
                             made_up(seed + k, i, 1, 1000))
            rows.append(r)
        return rows

    def flow_summary(self, as_int):
        seed = ",".join(self.domains) or "account"
        vals = [made_up(seed, i, 10, 5000) for i in range(len(self.times))]
        if as_int:
            vals = [int(v) for v in vals]
            return {"flow-summary": sum(vals), "flow-data": [
                {"timestamp": self.fmt(t), "flow": v} for t, v in zip(self.times, vals)]}
        return {"flow-summary": money(sum(vals)), "flow-data": [
            {"timestamp": self.fmt(t), "flow": money(v)} for t, v in zip(self.times, vals)]}

    def names(self, table, wanted):
        if wanted:
            return list(wanted)
        return [code if self.codes else zh for zh, code in table]

    def isp_province(self, series_key, keys, rate=None, with_domain="domain"):
        out = []
        for d in self.domains_or_account():
            isp_data = []
            for isp in self.names(ISPS, self.p.get("isp")):
                isp_data.append({"isp": isp, "provinceData": [
                    {"province": prov, series_key: self.series(d + isp + prov, keys, rate)}
                    for prov in self.names(PROVINCES, self.p.get("province"))]})
            out.append({with_domain: d, "ispData": isp_data})
        return out

    def countries(self):
        out = []
        wanted = self.p.get("countryCode")
        for d in self.domains_or_account():
            data = []
            for code, zh, en in COUNTRIES:
                if wanted and code not in wanted:
                    continue
                rows = self.series(d + code, ("value", "bandwidth"))
                data.append({"countryCode": code, "countryName": en if self.codes else zh,
                             "flowSum": money(sum(float(r["value"]) for r in rows)),
                             "flowPercentage": "50.00", "flowData": rows})
            out.append({"domain": d, "countryData": data})
        return out

    def total_peak(self, seed, head, key):
        rows = self.series(seed, ("value",))
        out = dict(head)
        out["totalFlow"] = money(sum(float(r["value"]) for r in rows))
        out["bandwidthPeakValue"] = money(max([float(r["value"]) for r in rows] or [0]))
        out[key] = rows
        return out

    @staticmethod
    def ok_data(data):
        return {"code": REPORT_OK_CODE, "message": REPORT_OK_MESSAGE, "data": data}


VENDOR = Wangsu
