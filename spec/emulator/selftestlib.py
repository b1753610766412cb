"""The harness the emulator's self-tests share (stdlib only; not a test itself).

Imported by selftest.py, selftest_aliyun_2018.py, selftest_qcloud_v3.py and
selftest_wangsu.py (which run from any working directory: Python puts this
folder on sys.path).

- counting: check(), guarded(), finish() (prints "<tag>: N passed, N failed"
  and gives the exit status); thread-safe;
- encoding and signing helpers written for the tests (deliberately not
  imported from the emulator): pct(), form(), utc(), sha256_hex(), ali_sign()
  (Alibaba Cloud signature V2, HMAC-SHA1);
- emulator_module(): import one of the emulator's modules for white-box checks;
- Emu: cdnemu.py run as a process on a free loopback port, with its control
  API (/__emu/*) and a clean stop; Result and send(): one HTTP request;
  dropped(): no answer at all.
"""

import base64
import hashlib
import hmac
import http.client
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.join(HERE, "cdnemu.py")

PASSED = 0
FAILED = 0
_LOCK = threading.Lock()


# --------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------
def check(name, cond, detail=""):
    global PASSED, FAILED
    with _LOCK:
        if cond:
            PASSED += 1
        else:
            FAILED += 1
            print("FAIL: %s %s" % (name, ("-- " + str(detail)[:700]) if detail else ""))
    return cond


def guarded(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # a crash in a test group is a failure, not a hang
        import traceback
        traceback.print_exc()
        check("%s raised" % fn.__name__, False, e)


def finish(tag, t0):
    """Print "<tag>: took Ns" and "<tag>: N passed, N failed"; -> exit status."""
    print("%s: took %.1fs" % (tag, time.monotonic() - t0))
    print("%s: %d passed, %d failed" % (tag, PASSED, FAILED))
    return 1 if FAILED else 0


# --------------------------------------------------------------------------
# encoding and signing written for the tests (not imported from cdnemu)
# --------------------------------------------------------------------------
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def pct(s):
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in str(s).encode("utf-8"))


def form(params):
    return "&".join(pct(k) + "=" + pct(v) for k, v in params.items())


def utc(ts=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts if ts is not None else time.time()))


def sha256_hex(b):
    return hashlib.sha256(b if isinstance(b, bytes) else b.encode("utf-8")).hexdigest()


def ali_sign(method, params, secret):
    """Alibaba Cloud signature V2 (HMAC-SHA1) -> (signature, string to sign)."""
    pairs = sorted((pct(k), pct(v)) for k, v in params.items() if k != "Signature")
    canon = "&".join(k + "=" + v for k, v in pairs)
    sts = method + "&" + pct("/") + "&" + pct(canon)
    d = hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()
    return base64.b64encode(d).decode(), sts


def emulator_module(name):
    """Import one of the emulator's modules (next to this file) without
    leaving this folder on sys.path."""
    sys.path.insert(0, HERE)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(HERE)


# --------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------
class Result:
    def __init__(self, status, headers, body, exc=None, elapsed=0.0):
        self.status, self.headers, self.body, self.exc, self.elapsed = \
            status, headers, body, exc, elapsed
        try:
            self.json = json.loads(body) if body is not None else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%s %r %r>" % (self.status, self.body[:400] if self.body else None, self.exc)

    def __getitem__(self, k):
        return self.json[k]

    def get(self, k, default=None):
        return self.json.get(k, default) if isinstance(self.json, dict) else default


def send(emu, method, path, body=None, headers=None, conn=None):
    """One request (on conn, or on a connection of its own) -> emu.result_class."""
    own = conn is None
    c = conn or emu.conn()
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        res = emu.result_class(r.status, r.headers, data, elapsed=time.monotonic() - t0)
    except (http.client.HTTPException, OSError) as e:
        res = emu.result_class(None, None, None, exc=e, elapsed=time.monotonic() - t0)
    if own:
        c.close()
    return res


def dropped(r):
    """No answer at all: the server closed the connection before a status line."""
    return r.status is None and isinstance(r.exc, http.client.RemoteDisconnected)


# --------------------------------------------------------------------------
# emulator process
# --------------------------------------------------------------------------
class Emu:
    """`cdnemu.py --vendor <vendor> --port 0 [extra]` as a process.
    port_file: also pass --port-file (self.port_file); label: prefix of the
    names of the checks stop() makes.  control() answers the JSON,
    control_status() (status, JSON)."""
    result_class = Result

    def __init__(self, vendor, extra=(), fixture=None, port_file=True,
                 tmp_prefix="cdnemu-selftest-", label=""):
        self.vendor, self.label = vendor, label
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        cmd = [sys.executable, EMU, "--vendor", vendor, "--port", "0"]
        self.port_file = None
        if port_file:
            self.port_file = os.path.join(self.tmp, "port")
            cmd += ["--port-file", self.port_file]
        cmd += list(extra)
        if fixture:
            cmd += ["--fixture", fixture]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if r else ""
        prefix = "cdnemu %s listening on 127.0.0.1:" % vendor
        if not line.startswith(prefix):
            self.proc.kill()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise RuntimeError("emulator did not start: %r %r" % (line, self.proc.stderr.read()))
        self.port = int(line[len(prefix):].strip())
        self.host = "127.0.0.1:%d" % self.port

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def control_status(self, method, name, body=None):
        c = self.conn()
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, "/__emu/" + name, body=data,
                  headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        out = (r.status, json.loads(r.read()))
        c.close()
        return out

    def control(self, method, name, body=None):
        return self.control_status(method, name, body)[1]

    def stats(self):
        return self.control("GET", "stats")

    def reset(self):
        self.control("POST", "reset")

    def config(self, **kw):
        return self.control("POST", "config", kw)

    def faults(self, *faults):
        return self.control("POST", "faults", {"faults": list(faults)})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed"
        check("%sexits cleanly on SIGTERM" % self.label, rc == 0, rc)
        shutil.rmtree(self.tmp, ignore_errors=True)
        err = self.proc.stderr.read().decode(errors="replace")
        check("%sno traceback on stderr" % self.label, "Traceback" not in err, err)
