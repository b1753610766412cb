"""emucore -- the vendor-independent part of cdnemu: HTTP server and handler,
shared State (counters, recorded URLs/tasks, nonces, request log), the fault
queue, Response helpers, the control API (/__emu/...) and the Vendor base
class every vendor module (vendor_<name>.py) subclasses.

Python 3 standard library only.  See README.md next to this file.
"""

import collections
import copy
import email.utils
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes, urlsplit

MAX_BODY = 16 * 1024 * 1024
# GET /__emu/stats keeps this many of the latest API requests in "request_log"
REQUEST_LOG_MAX = 1000
# ... and this many arrival times (for "max_in_1s")
ARRIVALS_MAX = 200000

# --------------------------------------------------------------------------
# fault kinds
# --------------------------------------------------------------------------
FAULT_KINDS = ("throttle", "http500", "http503", "html", "badjson",
               "truncated", "close", "slow", "stale", "garbage", "hugeheader",
               "drop_after", "no_task_id")
# Kinds that never depend on the vendor (what the wire carries); a vendor's
# TRANSPORT_KINDS adds the ones it also answers at the transport level (a raw
# nginx 500, say).  Transport kinds are applied before signature verification
# (the request never "reaches the service"); the rest after a valid signature
# and nonce, through the vendor's vendor_fault().
GENERIC_TRANSPORT_KINDS = frozenset(
    {"html", "badjson", "truncated", "close", "slow", "garbage", "hugeheader"})
# the fields a fault object may have (POST /__emu/faults)
FAULT_FIELDS = frozenset({"kind", "count", "action", "seconds", "reused_only"})
# Kinds the base class handles itself after a valid signature and fresh nonce
# (never transport kinds, never passed to vendor_fault()):
#   drop_after  -- the request is executed as usual, then the connection is
#                  closed without any answer (the client cannot know it ran)
#   no_task_id  -- a task action (Vendor.TASK_ACTIONS) answers success without
#                  its task id(s) and records nothing
PIPELINE_KINDS = frozenset({"drop_after", "no_task_id"})

NGINX_PAGE = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")

BADJSON_BODY = b'{"RequestId": "x", "Dom'


def nginx_page(code, reason):
    return NGINX_PAGE.format(code=code, reason=reason).encode("ascii")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
class BodyError(Exception):
    """The request body could not be read (bad framing); connection is closed."""


class ParamError(Exception):
    """The parameters could not be decoded (non-UTF-8, bad content type)."""


def parse_form(raw):
    """Parse application/x-www-form-urlencoded bytes into a list of (name, value)
    str pairs.  '+' is a space, %XX decoded, result must be valid UTF-8."""
    pairs = []
    if not raw:
        return pairs
    for seg in raw.split(b"&"):
        if not seg:
            continue
        if b"=" in seg:
            k, v = seg.split(b"=", 1)
        else:
            k, v = seg, b""
        try:
            k = unquote_to_bytes(k.replace(b"+", b" ")).decode("utf-8")
            v = unquote_to_bytes(v.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError("request parameters are not valid UTF-8")
        pairs.append((k, v))
    return pairs


def strip_port(host):
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end >= 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def iso_utc(ts):
    """YYYY-MM-DDThh:mm:ssZ"""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def beijing(ts):
    """YYYY-MM-DD hh:mm:ss in UTC+8 (China Standard Time)"""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600))


def new_request_id():
    return str(uuid.uuid4()).upper()


class Response:
    """What the handler writes.  mode: None (normal), "close" (no response,
    close connection), "truncated" (declared Content-Length larger than sent)."""

    def __init__(self, status, body=b"", ctype="application/json;charset=utf-8",
                 headers=None, mode=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []
        self.mode = mode


def json_response(status, obj, headers=None):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Response(status, body, headers=headers)


# --------------------------------------------------------------------------
# shared state
# --------------------------------------------------------------------------
def busiest_second(arrivals):
    """The most API requests that arrived within any 1-second window, per
    action and over all ("*")."""
    by = {}
    for t, action in arrivals:
        by.setdefault(action, []).append(t)
        by.setdefault("*", []).append(t)
    out = {}
    for action, ts in by.items():
        ts.sort()
        best, lo = 0, 0
        for hi, t in enumerate(ts):
            while t - ts[lo] >= 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        out[action] = best
    return out


class State:
    def __init__(self, latency, skew, task_seconds):
        self.hold_gate = threading.Event()
        self.hold_gate.set()
        self.held = 0
        self.max_held = 0
        self.lock = threading.Lock()
        self.latency = latency
        self.skew = skew
        self.task_seconds = task_seconds
        self.inflight = 0
        self.generation = 0
        self.task_counter = 0
        self.accepted = 0
        # vendor settings (Vendor.CONFIG): shown in and set by /__emu/config,
        # kept by reset
        self.vendor_config = {}
        # vendor counters shown at the top level of /__emu/stats (0 until
        # counted; see count())
        self.counter_defaults = {}
        self._reset_locked()

    def _reset_locked(self):
        # requests still running from before the reset (a slow fault whose
        # client gave up, say) no longer count as in flight
        self.generation += 1
        self.requests = 0
        self.by_action = {}
        self.executed = {}     # Action -> requests the vendor actually performed
        self.methods = {}      # HTTP method -> API requests
        self.reused_requests = 0   # API requests on a connection that had carried one before
        self.nonce_reused = 0      # valid signature, nonce already used
        self.dropped = 0           # answers withheld by drop_after
        self.request_log = collections.deque(maxlen=REQUEST_LOG_MAX)
        # (monotonic arrival time, action) of every API request: the
        # fleet-queue tests measure the busiest second from these
        self.arrivals = collections.deque(maxlen=ARRIVALS_MAX)
        self.inflight = 0
        self.max_inflight = 0
        self.max_held = 0
        self.connections = 0
        self.refreshed_urls = []
        self.refreshed_dirs = []
        self.prefetched_urls = []
        self.nonces = set()
        self.signature_failures = 0
        self.faults = []
        self.tasks = []        # refresh/push records (vendor-specific dicts)
        self.accepted = 0
        self.counters = {}     # vendor counters (count()), cleared by reset
        self.extra = {}        # vendor-private state (quotas...), cleared by reset

    def reset(self):
        with self.lock:
            self._reset_locked()
        self.release()

    # holding API requests (tests that prove a client does not block: the
    # call stays open until the test releases it)
    def hold(self):
        with self.lock:
            self.hold_gate.clear()

    def release(self):
        with self.lock:
            self.hold_gate.set()

    def wait_hold(self):
        if self.hold_gate.is_set():
            return
        with self.lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)
        try:
            self.hold_gate.wait(60)
        finally:
            with self.lock:
                self.held -= 1

    def now(self):
        return time.time() + self.skew

    def config(self):
        return dict({"latency": self.latency, "skew": self.skew,
                     "task_seconds": self.task_seconds}, **self.vendor_config)

    def count(self, name, n=1):
        """Add to a vendor counter (shown at the top level of the stats)."""
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def annotate(self, req, fields):
        """Add vendor fields to the request's request_log entry."""
        with self.lock:
            entry = getattr(req, "log_entry", None)
            if entry is not None:
                entry.update(fields)

    def next_task_id(self):
        with self.lock:
            self.task_counter += 1
            return self.task_counter

    def begin(self, req, handler):
        """Count an API request (a Req); returns the token to pass to end()."""
        action = req.action
        with self.lock:
            self.requests += 1
            key = action if action else "(none)"
            self.by_action[key] = self.by_action.get(key, 0) + 1
            self.methods[req.method] = self.methods.get(req.method, 0) + 1
            entry = {
                "action": action or None, "method": req.method, "path": req.path,
                "content_type": req.content_type, "body_bytes": req.body_bytes,
                "query_bytes": req.query_bytes, "reused": req.reused}
            self.request_log.append(entry)
            self.arrivals.append((time.monotonic(), key))
            req.log_entry = entry   # vendors may add fields: annotate()
            if req.reused:
                self.reused_requests += 1
            self.inflight += 1
            if self.inflight > self.max_inflight:
                self.max_inflight = self.inflight
            if handler.conn_generation != self.generation:
                handler.conn_generation = self.generation
                self.connections += 1
            return self.generation

    def end(self, token):
        with self.lock:
            if token == self.generation:
                self.inflight -= 1

    def use_nonce(self, key):
        """Record a nonce; False (and counted in nonce_reused) if it was
        already used."""
        with self.lock:
            if key in self.nonces:
                self.nonce_reused += 1
                return False
            self.nonces.add(key)
            return True

    def count_executed(self, action):
        with self.lock:
            self.executed[action] = self.executed.get(action, 0) + 1

    def count_dropped(self):
        with self.lock:
            self.dropped += 1

    def sig_failure(self):
        with self.lock:
            self.signature_failures += 1

    def add_faults(self, faults):
        with self.lock:
            self.faults.extend(faults)
            return copy.deepcopy(self.faults)

    def take_fault(self, action, kinds, reused=False, task_actions=(), skip=()):
        """FIFO: the first queued fault matching the request; consumed and
        returned only if its kind is in `kinds` (otherwise it stays for a later
        stage).  A fault matches unless its "action" names another action, it
        is "reused_only" and the request came on a fresh connection (`reused`
        false), or it is a no_task_id fault and `action` is not in
        `task_actions`, or its kind is in `skip` (kinds this request passes by,
        Vendor.PASSES_BY)."""
        with self.lock:
            for i, f in enumerate(self.faults):
                if f["kind"] in skip:
                    continue
                if f.get("action") and f["action"] != action:
                    continue
                if f.get("reused_only") and not reused:
                    continue
                if f["kind"] == "no_task_id" and action not in task_actions:
                    continue
                if f["kind"] not in kinds:
                    return None
                f["count"] -= 1
                if f["count"] <= 0:
                    del self.faults[i]
                return dict(f)
            return None

    def record(self, urls=(), dirs=(), prefetch=(), tasks=()):
        with self.lock:
            self.refreshed_urls.extend(urls)
            self.refreshed_dirs.extend(dirs)
            self.prefetched_urls.extend(prefetch)
            self.tasks.extend(tasks)

    def snapshot_tasks(self):
        with self.lock:
            return list(self.tasks)

    def stats(self, vendor):
        with self.lock:
            out = {
                "vendor": vendor,
                "requests": self.requests,
                "by_action": dict(self.by_action),
                "executed": dict(self.executed),
                "methods": dict(self.methods),
                "request_log": [dict(r) for r in self.request_log],
                "max_inflight": self.max_inflight,
                "inflight": self.inflight,
                "held": self.held,
                "max_held": self.max_held,
                "connections": self.connections,
                "connections_accepted": self.accepted,
                "requests_on_reused_connection": self.reused_requests,
                "dropped": self.dropped,
                "max_in_1s": busiest_second(self.arrivals),
                "nonce_reused": self.nonce_reused,
                "refreshed_urls": list(self.refreshed_urls),
                "refreshed_dirs": list(self.refreshed_dirs),
                "prefetched_urls": list(self.prefetched_urls),
                "nonces": len(self.nonces),
                "signature_failures": self.signature_failures,
                "faults_pending": copy.deepcopy(self.faults),
                "config": self.config(),
            }
            out.update(self.counter_defaults)
            out.update(self.counters)
            return out


# --------------------------------------------------------------------------
# request view passed to vendors
# --------------------------------------------------------------------------
class Req:
    def __init__(self, method, path, host, params, error, content_type=None,
                 body_bytes=0, query_bytes=0, reused=False, headers=None, body=b"",
                 query=""):
        self.method = method
        self.path = path
        self.host = host
        self.params = params      # dict name -> value (last one wins)
        self.error = error        # str if the parameters could not be read
        self.action = None        # set by the handler: Vendor.action_of(req)
        self.content_type = content_type  # the Content-Type header as sent, or None
        self.body_bytes = body_bytes      # request body length (after de-chunking)
        self.query_bytes = query_bytes    # length of the raw query string
        # the connection had carried at least one earlier request (API or
        # control): a reused keep-alive connection
        self.reused = reused
        # set by the pipeline for a no_task_id fault: task actions answer
        # success without their task id(s) and record nothing
        self.no_task_id = False
        # as received: the header object (http.client.HTTPMessage), the raw
        # body (after de-chunking), the raw query string (for vendors that
        # read them themselves: JSON bodies, header-signed requests)
        self.headers = headers
        self.body = body
        self.query = query
        self.log_entry = None     # this request's request_log dict (State.begin)


# --------------------------------------------------------------------------
# vendor base
# --------------------------------------------------------------------------
class Invalid(Exception):
    """A parameter has a bad value; vendors turn it into their error answer."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


class Vendor:
    """Base of every emulated vendor API.  A subclass (one per module
    vendor_<name>.py, listed in cdnemu.py's VENDORS) sets the class attributes
    below and implements the methods under "vendor hooks"."""

    name = None             # --vendor value, also "vendor" in /__emu/stats
    PATH = None             # the one request path the API answers on (check_route)
    BUILTIN = {}            # Action -> {"required", "response", ...}; fixtures override
    CREDENTIALS = {}        # key id -> secret
    TRANSPORT_KINDS = GENERIC_TRANSPORT_KINDS
    TRUNCATED_BODY = b""    # start of a plausible answer, for the "truncated" fault
    POST_MERGES_QUERY = False  # POST: also read parameters from the query string
    # actions that answer a task id (purge/prefetch): the ones a no_task_id
    # fault applies to; their act_ methods honour req.no_task_id
    TASK_ACTIONS = frozenset()
    # the command-line option giving the number of generated items (domains,
    # hosts...) passed to __init__ as n_items: (flag, default, help)
    COUNT_OPTION = None
    # fault kinds beyond FAULT_KINDS this vendor accepts in /__emu/faults
    # (answered after a valid signature by fault_response()), the extra fault
    # fields they may carry (checked by check_fault()), and the kinds its
    # requests pass by (they stay queued for a later request)
    EXTRA_FAULT_KINDS = frozenset()
    EXTRA_FAULT_FIELDS = frozenset()
    PASSES_BY = frozenset()
    # vendor settings: name -> default, shown in and set by /__emu/config
    # (values checked by check_config())
    CONFIG = {}
    # vendor control endpoints answered by control() (listed in the 404 of an
    # unknown /__emu/ endpoint), e.g. ("POST /__emu/revoke",)
    CONTROL_ENDPOINTS = ()
    # "<host>:<port>" the server listens on (set by serve(); a fallback for a
    # request without a Host header)
    listen_address = None

    def __init__(self, state, fixtures, n_items):
        self.state = state
        self.actions = {}
        for act, spec in self.BUILTIN.items():
            self.actions[act] = copy.deepcopy(spec)
        for act, spec in fixtures.items():
            if act.startswith("_") or not isinstance(spec, dict):
                continue
            merged = self.actions.get(act, {})
            for k, v in spec.items():
                merged[k] = v
            merged.setdefault("required", [])
            merged.setdefault("response", {})
            self.actions[act] = merged
        for k, v in self.CONFIG.items():
            state.vendor_config.setdefault(k, v)

    # ---- pipeline -------------------------------------------------------
    def process(self, req):
        err = self.check_route(req)
        if err is not None:
            return err
        if req.error:
            return self.err_input(req.error)
        st = self.state
        fault = st.take_fault(req.action, self.TRANSPORT_KINDS, req.reused,
                              self.TASK_ACTIONS, self.PASSES_BY)
        if fault:
            if fault["kind"] == "slow":
                time.sleep(fault.get("seconds", 3.0))
            else:
                # the request never "reached the service": its nonce stays unused
                # (libcurl re-sends a request unchanged when a reused connection
                # dies, which must not turn into SignatureNonceUsed)
                return self.fault_response(fault)
        err, nonce_key = self.authenticate(req)
        if err is not None:
            return err
        # (an API without nonces, e.g. Tencent's TC3, authenticates to None)
        if nonce_key is not None and not st.use_nonce(nonce_key):
            return self.err_nonce()
        if not fault:
            fault = st.take_fault(req.action, (set(FAULT_KINDS) | set(self.EXTRA_FAULT_KINDS))
                                  - set(self.TRANSPORT_KINDS),
                                  req.reused, self.TASK_ACTIONS, self.PASSES_BY)
            if fault:
                if fault["kind"] == "drop_after":
                    # executed (and counted) like any request, then the answer
                    # is withheld: the connection closes with nothing written
                    self.execute(req)
                    st.count_dropped()
                    return Response(0, mode="close")
                if fault["kind"] == "no_task_id":
                    req.no_task_id = True
                    return self.dispatch(req)   # not "executed": nothing recorded
                return self.fault_response(fault)
        return self.execute(req)

    def execute(self, req):
        """dispatch(), counting the request in "executed" if the action
        succeeded (the vendor performed it)."""
        resp = self.dispatch(req)
        if resp.mode is None and self.succeeded(resp):
            self.state.count_executed(req.action or "(none)")
        return resp

    def fault_response(self, f):
        kind = f["kind"]
        if kind == "html":
            return Response(502, nginx_page(502, "Bad Gateway"), "text/html")
        if kind == "badjson":
            return Response(200, BADJSON_BODY)
        if kind == "truncated":
            return Response(200, self.TRUNCATED_BODY, mode="truncated")
        if kind == "close":
            return Response(0, mode="close")
        if kind == "garbage":
            return Response(0, mode="garbage")
        if kind == "hugeheader":
            return Response(0, mode="hugeheader")
        return self.vendor_fault(kind)

    # ---- vendor hooks ----------------------------------------------------
    def check_route(self, req):
        """None if the API answers the request's method and path, otherwise
        the error Response.  Default: GET or POST on PATH (err_method /
        err_path); an API with a path per action (Wangsu) routes itself."""
        if req.method not in ("GET", "POST"):
            return self.err_method(req)
        if req.path != self.PATH:
            return self.err_path(req)
        return None

    def read_params(self, method, headers, query, body):
        """The request's parameters if the vendor reads them itself (a dict),
        or None for the default (query string, or form body for POST).  Called
        by the handler before the Req exists; raise ParamError for bad input."""
        return None

    def control(self, name, method, data):
        """A vendor control endpoint: /__emu/<name> (no slashes around), the
        HTTP method and the JSON object posted ({} if none) -> a Response, or
        None if the vendor has no such endpoint (then the generic 404).  Called
        for names the generic control API does not answer."""
        return None

    def check_fault(self, f, clean):
        """POST /__emu/faults: check fault `f` (as posted) of an
        EXTRA_FAULT_KINDS kind or with EXTRA_FAULT_FIELDS, copying the extra
        fields into `clean`; -> an error string, or None if fine."""
        return None

    def fault_task_actions(self):
        """The action names a no_task_id fault may name (every task action
        of every API version the vendor answers)."""
        return self.TASK_ACTIONS

    def check_config(self, name, value):
        """POST /__emu/config of a CONFIG setting -> (value, None) or
        (None, error string).  Default: a number >= 0 (bool: true/false) where
        the default is one, otherwise a string or null."""
        d = self.CONFIG.get(name)
        if isinstance(d, bool):
            if isinstance(value, bool):
                return value, None
            return None, "%s must be true or false" % name
        if isinstance(d, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                return None, "%s must be a number >= 0" % name
            return value, None
        if value is None or isinstance(value, str):
            return value, None
        return None, "%s must be a string or null" % name

    def succeeded(self, resp):
        """Whether a dispatch() answer says the action was performed (counted
        in the "executed" stats); vendors whose errors are HTTP 200 override."""
        return 200 <= resp.status < 300

    def action_of(self, req):
        """The action a request names (stats, fault filters); RPC-style APIs
        carry it in the Action parameter, others may override (path...)."""
        return req.params.get("Action") if req.params else None

    # errors of the pipeline above, in the vendor's envelope
    def err_method(self, req):
        raise NotImplementedError

    def err_path(self, req):
        raise NotImplementedError

    def err_input(self, msg):
        raise NotImplementedError

    def err_nonce(self):
        raise NotImplementedError

    def internal_error(self):
        """The answer when the emulator itself raised (a bug in cdnemu)."""
        raise NotImplementedError

    def vendor_fault(self, kind):
        """The answer for a fault kind not in TRANSPORT_KINDS (throttle,
        stale, and http500/http503 unless those are transport kinds)."""
        raise NotImplementedError

    def authenticate(self, req):
        """-> (error Response, None) or (None, nonce key); the key must be
        hashable and unique across vendors' key spaces (start with name)."""
        raise NotImplementedError

    def dispatch(self, req):
        """A request with a valid signature and fresh nonce -> Response."""
        raise NotImplementedError


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out as separate writes: without TCP_NODELAY the
    # second waits for the client's delayed ACK (~40 ms per request)
    disable_nagle_algorithm = True
    server_version = "cdnemu/1.0"
    sys_version = ""
    timeout = 120          # idle keep-alive connections are dropped after this

    def setup(self):
        super().setup()
        self.conn_generation = None
        self.served = 0        # requests (API or control) read on this connection
        st = self.server.state
        with st.lock:
            st.accepted += 1

    def __getattr__(self, name):
        # every HTTP method (GET, POST, PUT, DELETE, HEAD, FOO...) lands here
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("cdnemu: %s %s\n" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by _handle when --verbose

    def version_string(self):
        return self.server_version

    def date_time_string(self, timestamp=None):
        if timestamp is None:
            timestamp = self.server.state.now()
        return email.utils.formatdate(timestamp, usegmt=True)

    # ---- body ------------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BodyError("truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size")
                if size == 0:
                    while True:  # trailers
                        line = self.rfile.readline(65537)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise BodyError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl.strip())
        except ValueError:
            raise BodyError("bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise BodyError("bad Content-Length")
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise BodyError("short body")
        return data

    # ---- writing ---------------------------------------------------------
    def _write(self, resp):
        if resp.mode in ("garbage", "hugeheader"):
            # not HTTP at all / a header line far over any sane size
            if resp.mode == "garbage":
                raw = bytes((i * 37 + 11) % 256 for i in range(4096))
            else:
                raw = (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * (300 * 1024) +
                       b"\r\nContent-Length: 2\r\n\r\n{}")
            self.close_connection = True
            try:
                self.wfile.write(raw)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        if resp.mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        body = resp.body
        self.send_response(resp.status)
        if resp.status in (204, 304):
            # no content: neither Content-Type nor Content-Length (RFC 9110)
            body = b""
        elif resp.mode == "truncated":
            self.send_header("Content-Type", resp.ctype)
            self.send_header("Content-Length", str(len(body) + 256))
        else:
            self.send_header("Content-Type", resp.ctype)
            self.send_header("Content-Length", str(len(body)))
        for k, v in resp.headers:
            self.send_header(k, v)
        if self.close_connection and resp.mode != "truncated":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        if resp.mode == "truncated":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    # ---- main ------------------------------------------------------------
    def _handle(self):
        t0 = time.monotonic()
        reused = self.served > 0
        self.served += 1
        split = urlsplit(self.path)
        if split.path == "/__emu" or split.path.startswith("/__emu/"):
            resp = self._control(split.path)
            self._write(resp)
            self._log(split.path, None, resp, t0)
            return
        srv = self.server
        vendor = srv.vendor
        body_error = None
        try:
            body = self._read_body()
        except BodyError as e:
            body, body_error = b"", str(e)
            self.close_connection = True
        params, perror = {}, body_error
        if perror is None:
            try:
                params = self._params(split, body)
            except ParamError as e:
                perror = str(e)
        host = self.headers.get("Host") or ""
        req = Req(self.command, split.path, host, params, perror,
                  content_type=self.headers.get("Content-Type"),
                  body_bytes=len(body), query_bytes=len(split.query), reused=reused,
                  headers=self.headers, body=body, query=split.query)
        req.action = vendor.action_of(req)
        token = srv.state.begin(req, self)
        try:
            # POST /__emu/hold: API requests wait here (counted in "held",
            # and in flight) until POST /__emu/release, or 60 s at most
            srv.state.wait_hold()
            lat = srv.state.latency
            if lat > 0:
                time.sleep(lat)
            try:
                resp = vendor.process(req)
            except Exception:
                traceback.print_exc()
                resp = vendor.internal_error()
        finally:
            # the request stops counting as in flight before its answer is
            # written: once the client has the answer it may start the next
            # one, which must not be seen overlapping this one
            srv.state.end(token)
        self._write(resp)
        self._log(split.path, req.action, resp, t0)

    def _params(self, split, body):
        query = split.query.encode("latin-1", "replace")
        vendor = self.server.vendor
        own = vendor.read_params(self.command, self.headers, split.query, body)
        if own is not None:
            return own
        if self.command == "POST":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if body and ctype not in ("", "application/x-www-form-urlencoded"):
                raise ParamError("unsupported Content-Type %r: send "
                                 "application/x-www-form-urlencoded" % ctype[:60])
            pairs = parse_form(body)
            if vendor.POST_MERGES_QUERY:
                pairs = parse_form(query) + pairs
        else:
            pairs = parse_form(query)
        return dict(pairs)

    def _log(self, path, action, resp, t0):
        if not self.server.verbose:
            return
        sys.stderr.write("cdnemu: %s %s %s action=%s -> %s %s %.0fms\n" % (
            time.strftime("%H:%M:%S"), self.command, path[:60], action or "-",
            resp.status if resp.mode != "close" else "closed", resp.mode or "",
            (time.monotonic() - t0) * 1000))
        sys.stderr.flush()

    # ---- control API -----------------------------------------------------
    def _control(self, path):
        st = self.server.state
        try:
            body = self._read_body()
        except BodyError as e:
            self.close_connection = True
            return json_response(400, {"error": str(e)})
        data = {}
        if body.strip():
            try:
                data = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return json_response(400, {"error": "bad JSON: %s" % e})
            if not isinstance(data, dict):
                return json_response(400, {"error": "JSON object expected"})
        name = path[len("/__emu/"):].strip("/")
        m = self.command
        if name == "stats" and m == "GET":
            return json_response(200, st.stats(self.server.vendor.name))
        if name == "reset" and m == "POST":
            st.reset()
            return json_response(200, {"ok": True})
        if name == "hold" and m == "POST":
            st.hold()
            return json_response(200, {"ok": True, "held": st.held})
        if name == "release" and m == "POST":
            st.release()
            return json_response(200, {"ok": True})
        if name == "config" and m == "GET":
            return json_response(200, st.config())
        if name == "config" and m == "POST":
            new = {}
            vendor = self.server.vendor
            for k, v in data.items():
                if k in vendor.CONFIG:
                    v, err = vendor.check_config(k, v)
                    if err:
                        return json_response(400, {"error": err})
                    new[k] = v
                    continue
                if k not in ("latency", "skew", "task_seconds"):
                    return json_response(400, {"error": "unknown config key %r" % k})
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return json_response(400, {"error": "%s must be a number" % k})
                if k != "skew" and v < 0:
                    return json_response(400, {"error": "%s must be >= 0" % k})
                new[k] = float(v)
            with st.lock:
                for k, v in new.items():
                    if k in vendor.CONFIG:
                        st.vendor_config[k] = v
                    else:
                        setattr(st, k, v)
            return json_response(200, {"ok": True, "config": st.config()})
        if name == "faults" and m == "GET":
            with st.lock:
                return json_response(200, {"faults": copy.deepcopy(st.faults)})
        if name == "faults" and m == "POST":
            faults = data.get("faults")
            if not isinstance(faults, list):
                return json_response(400, {"error": "body must be {\"faults\": [...]}"})
            clean = []
            vendor = self.server.vendor
            kinds = list(FAULT_KINDS) + sorted(vendor.EXTRA_FAULT_KINDS)
            fields = FAULT_FIELDS | vendor.EXTRA_FAULT_FIELDS
            for f in faults:
                if not isinstance(f, dict) or f.get("kind") not in kinds:
                    return json_response(400, {"error": "bad fault %r; kinds: %s"
                                               % (f, ", ".join(kinds))})
                unknown = sorted(set(f) - fields)
                if unknown:
                    return json_response(400, {"error": "unknown fault field(s) %s; fields: %s"
                                               % (", ".join(unknown),
                                                  ", ".join(sorted(fields)))})
                c = {"kind": f["kind"]}
                count = f.get("count", 1)
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    return json_response(400, {"error": "count must be an integer >= 1"})
                c["count"] = count
                if f.get("action") is not None:
                    if not isinstance(f["action"], str):
                        return json_response(400, {"error": "action must be a string"})
                    c["action"] = f["action"]
                if f.get("reused_only") is not None:
                    if not isinstance(f["reused_only"], bool):
                        return json_response(400, {"error": "reused_only must be true or false"})
                    if f["reused_only"]:
                        c["reused_only"] = True
                if f["kind"] == "no_task_id":
                    tasks = sorted(vendor.fault_task_actions())
                    if c.get("action") is not None and c["action"] not in tasks:
                        return json_response(400, {"error": "no_task_id applies to %s only"
                                                   % ", ".join(tasks)})
                if f["kind"] == "slow":
                    s = f.get("seconds", 3)
                    if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
                        return json_response(400, {"error": "seconds must be a number >= 0"})
                    c["seconds"] = float(s)
                err = vendor.check_fault(f, c)
                if err:
                    return json_response(400, {"error": err})
                clean.append(c)
            return json_response(200, {"ok": True, "faults": st.add_faults(clean)})
        vendor = self.server.vendor
        if name not in ("stats", "reset", "config", "faults", "hold", "release"):
            resp = vendor.control(name, m, data)
            if resp is not None:
                return resp
        return json_response(404, {"error": "unknown control endpoint %s %s" % (m, path),
                                   "endpoints": ["GET /__emu/stats", "POST /__emu/reset",
                                                 "POST /__emu/hold", "POST /__emu/release",
                                                 "GET|POST /__emu/config",
                                                 "GET|POST /__emu/faults"] +
                                   list(vendor.CONTROL_ENDPOINTS)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # client went away mid-response etc.: not worth a traceback
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        if self.verbose:
            super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


# --------------------------------------------------------------------------
# startup (called by cdnemu.py's main)
# --------------------------------------------------------------------------
def check_host(host):
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return host if ip.is_loopback else None


def load_fixtures(path):
    if not os.path.exists(path):
        sys.stderr.write("cdnemu: warning: fixture %s not found; only built-in "
                         "actions are known\n" % path)
        return {}
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        sys.stderr.write("cdnemu: cannot load fixture %s: %s\n" % (path, e))
        sys.exit(2)
    if not isinstance(data, dict):
        sys.stderr.write("cdnemu: fixture %s: top level must be an object\n" % path)
        sys.exit(2)
    return data


def serve(vendor, host, port, port_file=None, verbose=False):
    """Listen on host:port (a checked loopback address) and answer as `vendor`
    (a Vendor instance) until SIGTERM/SIGINT.  Prints the one startup line
    `cdnemu <vendor> listening on <host>:<port>`.  Returns the exit status."""
    cls = Server6 if ":" in host else Server
    try:
        server = cls((host, port), Handler)
    except OSError as e:
        sys.stderr.write("cdnemu: cannot listen on %s:%d: %s\n" % (host, port, e))
        return 1
    server.state = vendor.state
    server.vendor = vendor
    server.verbose = verbose
    port = server.server_address[1]
    shown = "[%s]" % host if ":" in host else host
    vendor.listen_address = "%s:%d" % (shown, port)

    if port_file:
        tmp = port_file + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, port_file)
    sys.stdout.write("cdnemu %s listening on %s:%d\n" % (vendor.name, shown, port))
    sys.stdout.flush()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0
