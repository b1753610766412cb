#!/usr/bin/env python3
"""spec/openresty/test_openresty.py -- cdnkit inside Debian's nginx with
lua-nginx-module (`make test-openresty`, part of `make check`).

Starts the Tencent emulator and one nginx (one worker, loopback) from
nginx.conf.in next to this file, and proves by ordering, not by timing:

  (a) non-blocking: the emulator holds a vendor call; a trivial request to
      the same single worker is answered while the call is still held;
  (b) concurrency: with calls held, the emulator sees exactly 3 requests of a
      concurrency-3 refresh in flight at once; all 3,000 URLs arrive after
      release;
  (c) one client made at module level serves two requests and a timer at
      once (all three held together, no busy error) with one state: the clock
      learnt by one call is used by the others;
  plus: a start-up call (init_worker) goes through libcurl; a call in the log
  phase raises naming the phase; transport = "ngx" given explicitly works and
  decoded arrays keep their marker.
Then runs examples/openresty/check.py (the edge purge service, part (d))
and test_fleet_nginx.py next to this file (the fleet purge queue of
examples/openresty-fleet/ against a loopback redis-server, part (e)).

Prints `ok - ...` / `not ok - ...` and `openresty: N passed, N failed`.
Python 3 standard library only.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NGINX = os.environ.get("NGINX", "nginx")

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - %s" % name)
    else:
        failed += 1
        print("not ok - %s %s" % (name, detail))
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, method="GET", body=None, timeout=15):
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def getj(url, timeout=15):
    return json.loads(http(url, timeout=timeout)[1])


class Emu:
    def __init__(self, vendor):
        self.p = subprocess.Popen([sys.executable, os.path.join(ROOT, "spec/emulator/cdnemu.py"),
                                   "--vendor", vendor, "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.p.stdout.readline().decode()
        self.url = "http://127.0.0.1:%d" % int(line.strip().rsplit(":", 1)[1])

    def ctl(self, path, body=None):
        if body is None and path != "/__emu/stats":
            body = {}
        if body is None:
            return getj(self.url + path)
        return json.loads(http(self.url + path, "POST", json.dumps(body).encode())[1])

    def stats(self):
        return self.ctl("/__emu/stats")

    def wait_held(self, n, seconds=15):
        end = time.time() + seconds
        while time.time() < end:
            if self.stats()["held"] >= n:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Background:
    """A GET in a thread; .join() gives (status, body) or the exception."""

    def __init__(self, url):
        self.result = None
        self.t = threading.Thread(target=self._run, args=(url,))
        self.t.start()

    def _run(self, url):
        try:
            self.result = http(url, timeout=60)
        except Exception as e:  # noqa: BLE001 (reported by the check)
            self.result = e

    def join(self):
        self.t.join(70)
        return self.result


def make_cert(prefix, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", os.path.join(prefix, name + ".key"),
                    "-out", os.path.join(prefix, name + ".pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # nginx's workers run as another user when the master is root
    for ext in (".key", ".pem"):
        os.chmod(os.path.join(prefix, name + ext), 0o644)


PORTS = {}


def start_nginx(emu, prefix, port):
    make_cert(prefix, "trusted")
    make_cert(prefix, "other")
    PORTS.update(raw=free_port(), tls_ok=free_port(), tls_bad=free_port())
    conf = open(os.path.join(HERE, "nginx.conf.in")).read()
    for k, v in (("@ROOT@", ROOT), ("@PREFIX@", prefix), ("@PORT@", str(port)), ("@QCLOUD@", emu.url),
                 ("@RAW@", str(PORTS["raw"])), ("@TLS_OK@", str(PORTS["tls_ok"])),
                 ("@TLS_BAD@", str(PORTS["tls_bad"]))):
        conf = conf.replace(k, v)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    env = dict(os.environ, CDNKIT_QCLOUD_ENDPOINT=emu.url, TENCENTCLOUD_SECRET_ID="AKIDtest",
               TENCENTCLOUD_SECRET_KEY="testkey")
    p = subprocess.Popen([NGINX, "-p", prefix, "-c", path, "-e", os.path.join(prefix, "error.log")],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = "http://127.0.0.1:%d" % port
    end = time.time() + 10
    while time.time() < end:
        try:
            if http(base + "/ping", timeout=2)[0] == 200:
                return p, base
        except Exception:  # noqa: BLE001 (not up yet)
            time.sleep(0.05)
        if p.poll() is not None:
            break
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    raise SystemExit("nginx did not start: " + (p.stderr.read().decode() if p.stderr else "")
                     + open(os.path.join(prefix, "error.log")).read()[-2000:])


def main():
    if not shutil.which(NGINX) or not os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so"):
        print("not ok - nginx with libnginx-mod-http-lua is not installed (make deps)")
        print("openresty: 0 passed, 1 failed")
        return 1
    if not os.path.exists(os.path.join(ROOT, "build/5.1/cdnkit/core.so")):
        print("not ok - build/5.1/cdnkit/core.so is missing (make luajit)")
        print("openresty: 0 passed, 1 failed")
        return 1
    emu = Emu("qcloud")
    prefix = tempfile.mkdtemp(prefix="cdnkit-openresty-")
    os.chmod(prefix, 0o755)
    os.makedirs(os.path.join(prefix, "body"))
    ngx = None
    try:
        ngx, base = start_nginx(emu, prefix, free_port())

        # at start-up (init_worker) the default transport is libcurl
        check("a call in init_worker goes through (libcurl at start-up)",
              getj(base + "/result?key=init_worker").get("value") == "ok",
              getj(base + "/result?key=init_worker"))

        # (a) non-blocking
        emu.ctl("/__emu/reset")
        emu.ctl("/__emu/hold")
        call = Background(base + "/call?tag=a")
        held = emu.wait_held(1)
        check("(a) the vendor call is held by the emulator", held)
        t0 = time.time()
        st, body = http(base + "/ping", timeout=10)
        still = emu.stats()["held"]
        check("(a) /ping is answered by the same worker while the call is held",
              st == 200 and body.strip() == b"pong" and still == 1,
              "status %s held %s after %.2fs" % (st, still, time.time() - t0))
        emu.ctl("/__emu/release")
        r = call.join()
        ok = isinstance(r, tuple) and json.loads(r[1]).get("ok") is True
        check("(a) the held call succeeds after release", ok, r)

        # (b) concurrency 3 and all 3,000 URLs
        emu.ctl("/__emu/reset")
        emu.ctl("/__emu/hold")
        ref = Background(base + "/refresh?n=3000&c=3")
        emu.wait_held(3)
        # the three are held; a fourth would have to come on top of them
        s = emu.stats()
        check("(b) 3 requests of a concurrency-3 refresh are in flight at once",
              s["held"] == 3 and s["max_held"] == 3, "held %s max %s" % (s["held"], s["max_held"]))
        emu.ctl("/__emu/release")
        r = ref.join()
        rep = json.loads(r[1]) if isinstance(r, tuple) else {}
        s = emu.stats()
        check("(b) all 3,000 URLs arrive after release",
              rep.get("done") == 3000 and rep.get("failed") == 0 and len(s["refreshed_urls"]) == 3000
              and len(set(s["refreshed_urls"])) == 3000, (rep, len(s["refreshed_urls"])))

        # retries (backoff with ngx.sleep) and report:wait inside nginx
        emu.ctl("/__emu/reset")
        emu.ctl("/__emu/faults", {"faults": [{"kind": "http503", "count": 1}]})
        rep = getj(base + "/refresh?n=2500&c=2&wait=1", timeout=60)
        s = emu.stats()
        check("a batch failing once is retried, and report:wait sees every task done",
              rep.get("ok") is True and rep.get("done") == 2500 and rep.get("complete") is True
              and len(set(s["refreshed_urls"])) == 2500, (rep, s.get("requests")))

        # (c) one module-level client, two requests and a timer at once
        emu.ctl("/__emu/reset")
        emu.ctl("/__emu/hold")
        r1 = Background(base + "/call?tag=r1")
        r2 = Background(base + "/call?tag=r2")
        started = getj(base + "/timer?tag=t1")
        all3 = emu.wait_held(3)
        check("(c) two requests and a timer share the client and are in flight together",
              started.get("started") is True and all3, (started, emu.stats()["held"]))
        emu.ctl("/__emu/release")
        a, b = r1.join(), r2.join()
        ra = json.loads(a[1]) if isinstance(a, tuple) else {}
        rb = json.loads(b[1]) if isinstance(b, tuple) else {}
        tv = None
        end = time.time() + 10
        while time.time() < end and tv is None:
            tv = getj(base + "/result?key=t1").get("value")
            time.sleep(0.05)
        rt = json.loads(tv) if tv else {}
        check("(c) all three succeed (no busy error)",
              ra.get("ok") is True and rb.get("ok") is True and rt.get("ok") is True, (ra, rb, rt))
        state = getj(base + "/state")
        check("(c) the timer and the requests use one client state", rt.get("state") == state["state"],
              (rt.get("state"), state))
        # the clock one call learns is everyone's: the server's clock moves
        # 900 s; the first call is refused once and learns it, the timer's
        # call after it is not refused
        emu.ctl("/__emu/reset")
        emu.ctl("/__emu/config", {"skew": 900})
        first = getj(base + "/call?tag=c1")
        n1 = emu.stats()["requests"]
        getj(base + "/timer?tag=c2")
        tv = None
        end = time.time() + 10
        while time.time() < end and tv is None:
            tv = getj(base + "/result?key=c2").get("value")
            time.sleep(0.05)
        rt = json.loads(tv) if tv else {}
        n2 = emu.stats()["requests"]
        check("(c) a clock learnt by a request is used by the timer (one rejection in all)",
              first.get("ok") is True and n1 == 2 and rt.get("ok") is True and n2 == 3
              and abs(rt.get("clock_offset", 0) - 900) < 5,
              (first, n1, rt, n2))
        emu.ctl("/__emu/config", {"skew": 0})

        # a call in the log phase raises, naming the phase and the way out
        http(base + "/logcall")
        msg = None
        end = time.time() + 5
        while time.time() < end and msg is None:
            msg = getj(base + "/result?key=log").get("value")
            time.sleep(0.05)
        check("a call in the log phase raises naming the phase and ngx.timer.at",
              msg is not None and "log phase" in msg and "ngx.timer.at" in msg, msg)

        # the transport itself against answers of every shape
        tx = getj(base + "/tx?raw=%d&tls_ok=%d&tls_bad=%d" % (PORTS["raw"], PORTS["tls_ok"], PORTS["tls_bad"]))
        check("ngx transport: a chunked answer", tx["chunked"].get("len") == 5000 and
              tx["chunked"].get("tail") == "555", tx["chunked"])
        check("ngx transport: an answer ended by the connection's close",
              tx["close"].get("len") == 3003 and tx["close"].get("tail") == "end", tx["close"])
        check("ngx transport: an answer over max_body is an overflow error",
              tx["big"].get("overflow") is True, tx["big"])
        check("ngx transport: 204 without a body", tx["nocontent"].get("status") == 204 and
              tx["nocontent"].get("len") == 0, tx["nocontent"])
        check("ngx transport: a POST body arrives", tx["post"].get("head") == "hello" and
              tx["post"].get("method") == "POST", tx["post"])
        check("ngx transport: keep-alive reuses the connection, a non-idempotent request gets a new one",
              tx["ka1"].get("conn") is not None and tx["ka1"].get("conn") == tx["ka2"].get("conn")
              and tx["fresh"].get("conn") not in (None, tx["ka2"].get("conn"))
              and tx["fresh2"].get("conn") not in (None, tx["fresh"].get("conn"), tx["ka2"].get("conn")),
              (tx["ka1"], tx["ka2"], tx["fresh"], tx["fresh2"]))
        check("ngx transport: a read timeout is code timeout", tx["timeout"].get("err") == "timeout",
              tx["timeout"])
        check("ngx transport: a refused connection is code connect, not sent",
              tx["refused"].get("err") == "connect" and tx["refused"].get("sent") is False, tx["refused"])
        check("ngx transport: TLS verified against lua_ssl_trusted_certificate",
              tx["tls_ok"].get("status") == 200, tx["tls_ok"])
        check("ngx transport: an untrusted certificate is code tls",
              tx["tls_bad"].get("err") == "tls", tx["tls_bad"])
        check("ngx transport: verify_tls = false accepts it", tx["tls_noverify"].get("status") == 200,
              tx["tls_noverify"])
        check("ngx transport: a proxy is refused with a message", tx["proxy"].get("err") == "http" and
              "proxies" in (tx["proxy"].get("message") or ""), tx["proxy"])

        # transport = "ngx" given explicitly; arrays keep their marker
        x = getj(base + "/explicit")
        check("transport = \"ngx\" explicitly: the call works, arrays keep their marker",
              x.get("ok") is True and x.get("tasks_is_array") is True, x)
    except Exception as e:  # noqa: BLE001 (a failed step is a failed check)
        check("the run went through without an error", False, repr(e))
    finally:
        if ngx is not None:
            ngx.terminate()
            try:
                ngx.wait(10)
            except subprocess.TimeoutExpired:
                ngx.kill()
        emu.ctl("/__emu/release") if emu.p.poll() is None else None
        emu.stop()
        if failed:
            try:
                print("--- nginx error.log (tail)")
                print("\n".join(l for l in open(os.path.join(prefix, "error.log")).read().splitlines() if "[notice]" not in l and "[info]" not in l)[-3000:])
            except OSError:
                pass
        shutil.rmtree(prefix, ignore_errors=True)

    # (d) the edge purge service of examples/openresty/
    chk = os.path.join(ROOT, "examples/openresty/check.py")
    if os.path.exists(chk):
        out = subprocess.run([sys.executable, chk, "--cdnkit", ROOT, "--nginx", NGINX],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        text = out.stdout.decode(errors="replace")
        sys.stdout.write(text)
        for line in text.splitlines():
            if line.startswith("ok - "):
                globals()["passed"] += 1
            elif line.startswith("not ok - "):
                globals()["failed"] += 1
        if out.returncode != 0 and "not ok - " not in text:
            check("(d) examples/openresty/check.py", False, "exit %d" % out.returncode)
    else:
        check("(d) examples/openresty/check.py exists", False)

    # (e) the fleet purge queue of examples/openresty-fleet/ (cdnkit.queue on
    # a loopback redis-server)
    fleet = os.path.join(HERE, "test_fleet_nginx.py")
    out = subprocess.run([sys.executable, fleet, "--cdnkit", ROOT, "--nginx", NGINX],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    text = out.stdout.decode(errors="replace")
    sys.stdout.write(text)
    for line in text.splitlines():
        if line.startswith("ok - "):
            globals()["passed"] += 1
        elif line.startswith("not ok - "):
            globals()["failed"] += 1
    if out.returncode != 0 and "not ok - " not in text:
        check("(e) spec/openresty/test_fleet_nginx.py", False, "exit %d" % out.returncode)

    print("openresty: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
