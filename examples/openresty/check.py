#!/usr/bin/env python3
"""examples/openresty/check.py -- end-to-end check of the edge purge service
(nginx.conf + edge_purge.lua next to this file) against the Tencent emulator.

Starts spec/emulator/cdnemu.py (qcloud) and nginx from the nginx.conf template
in a temporary prefix, on free loopback ports, and checks:

  - the API: 401 without or with a wrong token, 400 on bad URLs or bodies,
    413 over 1,000 URLs or 2 MB, 405 on GET, the status fields;
  - de-duplication: while the emulator holds the flusher's first purge (so the
    only flusher is busy), three requests with overlapping URLs answer the
    exact queued/duplicates counts; after release every URL is purged once;
  - 5 injected http503 faults: the batch fails once (3 attempts), stays
    queued, and is delivered once after the faults are used up;
  - nginx -s reload while the vendor fails: the queue survives in the shared
    dict, the new workers deliver it once the vendor is back;
  - a URL the vendor refuses (wildcard host) is dropped and counted, the
    others of its batch are delivered;
  - the upstream hook: a changed ETag and X-Content-Changed: 1 queue the
    public URL (once), an unchanged one does not;
  - a worker killed (SIGKILL) mid-flush: after the lease its batch is
    recovered and delivered.

Judged by ordering and counts (emulator hold/release, fault counts, counters),
not by timing; the waits only bound how long it may take.  Prints `ok - ...` /
`not ok - ...` and `openresty-edge: N passed, N failed`; exit status 1 on a
failure.  Python 3 standard library only.

usage: check.py [--cdnkit ROOT] [--nginx PATH] [--workers N] [--keep]
"""

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "edge-check-token-7f3a"
LEASE = 5           # EDGE_PURGE_LEASE: seconds until a dead flusher's batch is recovered

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - %s" % name)
    else:
        failed += 1
        print("not ok - %s%s" % (name, (": " + str(detail)) if detail != "" else ""))
    sys.stdout.flush()
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(url, method="GET", body=None, headers=None, timeout=15):
    """-> (status, headers, body bytes); HTTP errors are answers too."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def as_json(b):
    try:
        return json.loads(b)
    except ValueError:
        return None


class Emu:
    def __init__(self, root, logdir):
        self.err = open(os.path.join(logdir, "cdnemu.log"), "wb")
        self.p = subprocess.Popen([sys.executable, os.path.join(root, "spec/emulator/cdnemu.py"),
                                   "--vendor", "qcloud", "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=self.err)
        line = self.p.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError("the emulator did not start: %r" % line)
        self.url = "http://127.0.0.1:%d" % int(line.strip().rsplit(":", 1)[1])

    def ctl(self, name, body=None):
        st, _, b = request(self.url + "/__emu/" + name, "POST" if body is not None else "GET",
                           json.dumps(body) if body is not None else None,
                           {"Content-Type": "application/json"})
        if st != 200:
            raise RuntimeError("emulator %s: HTTP %d %s" % (name, st, b[:200]))
        return json.loads(b)

    def stats(self):
        return self.ctl("stats")

    def refreshed(self):
        return collections.Counter(self.stats()["refreshed_urls"])

    def stop(self):
        if self.p.poll() is None:
            try:
                self.ctl("release", {})
            except Exception:
                pass
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()


class Nginx:
    def __init__(self, binary, root, prefix, port, origin_port, workers, env):
        self.binary, self.prefix = binary, prefix
        self.base = "http://127.0.0.1:%d" % port
        self.origin = "http://127.0.0.1:%d" % origin_port
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = f.read()
        conf = (conf.replace("@CDNKIT@", root).replace("@ORIGIN_PORT@", str(origin_port))
                .replace("@PORT@", str(port)))
        if workers:
            conf = conf.replace("worker_processes auto;", "worker_processes %d;" % workers)
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        self.env = env
        self.out = open(os.path.join(prefix, "nginx.out"), "wb")
        self.p = subprocess.Popen([binary, "-p", prefix, "-c", self.conf,
                                   "-g", "daemon off; master_process on;"],
                                  stdout=self.out, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, "logs/error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.p.poll() is not None:
                return False
            try:
                st, _, _ = request(self.base + "/purge/status", timeout=2)
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def workers(self):
        """pids of the master's children (the workers), from /proc"""
        out = set()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.p.pid and fields[0] != "Z":
                out.add(int(d))
        return out

    def reload(self):
        return subprocess.run([self.binary, "-p", self.prefix, "-c", self.conf, "-s", "reload"],
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=15)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)       # fast shutdown of master and workers
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        # workers left behind (they share the session we created)
        for pid in self.workers():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.out.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cdnkit", default=os.path.dirname(os.path.dirname(HERE)),
                    help="the cdnkit checkout (default: two levels up from this script)")
    ap.add_argument("--nginx", default="nginx", help="the nginx binary (default: nginx)")
    ap.add_argument("--workers", type=int, default=0,
                    help="worker_processes (default: the template's, auto)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary prefix")
    args = ap.parse_args()
    root = os.path.abspath(args.cdnkit)
    started = time.time()

    core = os.path.join(root, "build/5.1/cdnkit/core.so")
    if not os.path.exists(core):
        check("the LuaJIT core is built (%s; run make luajit)" % core, False)
        print("openresty-edge: %d passed, %d failed" % (passed, failed))
        return 1

    prefix = tempfile.mkdtemp(prefix="edge-purge-")
    os.chmod(prefix, 0o755)     # workers may run as another user
    emu = ngx = None
    try:
        emu = Emu(root, prefix)
        env = dict(os.environ)
        env.update({"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": "testkey",
                    "CDNKIT_QCLOUD_ENDPOINT": emu.url, "EDGE_PURGE_TOKEN": TOKEN,
                    "EDGE_PURGE_LEASE": str(LEASE)})
        ngx = Nginx(args.nginx, root, prefix, free_port(), free_port(), args.workers, env)
        if not check("nginx starts from the template", ngx.wait_ready(),
                     ngx.error_log()[-2000:]):
            return 1
        run(emu, ngx)
        log = ngx.error_log()
        bad = [l for l in log.splitlines()
               if ("runtime error" in l or "[emerg]" in l or "[crit]" in l
                   or "lua entry thread aborted" in l)]
        check("no Lua runtime errors in error.log", not bad, "\n".join(bad[:5]))
    except Exception as e:      # a broken step: report it, still clean up
        check("the scenario ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if ngx:
            ngx.stop()
            if failed:
                print("--- nginx error.log (tail, without info/notice)")
                lines = [l for l in ngx.error_log().splitlines()
                         if "[info]" not in l and "[notice]" not in l]
                print("\n".join(lines[-30:]))
        if emu:
            emu.stop()
        if ngx:
            check("nginx and its workers stopped", ngx.p.poll() is not None and not ngx.workers())
        if args.keep:
            print("# kept %s" % prefix)
        else:
            shutil.rmtree(prefix, ignore_errors=True)
    print("# %.1f s" % (time.time() - started))
    print("openresty-edge: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def run(emu, ngx):
    base = ngx.base
    auth = {"Authorization": "Bearer " + TOKEN}
    js = dict(auth, **{"Content-Type": "application/json"})

    def status():
        st, _, b = request(base + "/purge/status")
        return as_json(b) if st == 200 else {}

    def purge(urls, as_text=False, headers=None):
        if as_text:
            body = "\n".join(urls) + "\n"
            h = dict(auth, **{"Content-Type": "text/plain"})
        else:
            body = json.dumps({"urls": urls})
            h = js
        st, _, b = request(base + "/purge", "POST", body, headers if headers is not None else h)
        return st, as_json(b)

    def wait(pred, timeout=20):
        """poll the status until pred(status) holds; -> (ok, last status)"""
        end = time.time() + timeout
        s = {}
        while time.time() < end:
            try:
                s = status()
            except OSError:
                s = {}
            if s and pred(s):
                return True, s
            time.sleep(0.1)
        return False, s

    def wait_emu(pred, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            s = emu.stats()
            if pred(s):
                return True, s
            time.sleep(0.05)
        return False, s

    def settled(s):
        return s["queued"] == 0 and s["in_flight"] == 0

    def once(counter, urls):
        bad = {u: counter[u] for u in urls if counter[u] != 1}
        return not bad, bad

    # -- the API ------------------------------------------------------------
    s0 = status()
    check("GET /purge/status has queued, in_flight, sent, failed, dropped, last_error, last_flush_at",
          all(k in s0 for k in ("queued", "in_flight", "sent", "failed", "dropped", "last_error",
                                "last_flush_at")), s0)
    st, b = purge(["http://www.example.com/a"], headers={"Content-Type": "application/json"})
    check("POST /purge without a token: 401 JSON", st == 401 and b and "error" in b, (st, b))
    st, b = purge(["http://www.example.com/a"],
                  headers={"Authorization": "Bearer " + TOKEN + "x"})
    check("POST /purge with a wrong token: 401", st == 401, (st, b))
    st, b = purge(["ftp://www.example.com/a", "http://www.example.com/ok", "http://bad host/x"])
    check("bad URLs: 400 JSON listing them, nothing queued",
          st == 400 and b and [i["index"] for i in b.get("invalid", [])] == [1, 3], (st, b))
    st, b = purge(["http://www.example.com/" + "x" * 2100])
    check("a URL over 2,048 bytes: 400", st == 400, (st, b))
    st, _, body = request(base + "/purge", "POST", '{"urls": [', js)
    check("a body that is not JSON: 400 JSON", st == 400 and as_json(body), (st, body[:200]))
    st, b = purge(["http://www.example.com/many/%d" % i for i in range(1001)], as_text=True)
    check("1,001 URLs in one request: 413 JSON", st == 413 and b and "error" in b, (st, b))
    st, _, body = request(base + "/purge", "POST", "x" * (3 << 20), auth)
    check("a 3 MB body: 413 JSON", st == 413 and as_json(body), (st, body[:200]))
    st, _, _ = request(base + "/purge")
    check("GET /purge: 405", st == 405, st)
    s = status()
    check("nothing was queued by refused requests", s["enqueued"] == 0 and s["queued"] == 0, s)

    # -- de-duplication: the only flusher is busy (held) ----------------------
    before = emu.refreshed()
    emu.ctl("hold", {})
    blocker = "http://www.example.com/dedupe/blocker.js"
    st, b = purge([blocker])
    ok, es = wait_emu(lambda e: e.get("held", 0) >= 1)
    check("the flusher's first purge is held by the emulator (the flush lock is busy)",
          st == 202 and ok, (st, b, es.get("held")))
    urls = ["http://www.example.com/dedupe/%02d.css" % i for i in range(60)]
    ra = purge(urls[:40])
    rb = purge(urls[20:60] + urls[50:55], as_text=True)
    rc = purge(urls)
    check("request 1 (JSON, 40 URLs): 202 queued 40, duplicates 0",
          ra == (202, {"queued": 40, "duplicates": 0}), ra)
    check("request 2 (text, 40 URLs, 20 overlapping + 5 repeated lines): queued 20, duplicates 25",
          rb == (202, {"queued": 20, "duplicates": 25}), rb)
    check("request 3 (all 60 again): queued 0, duplicates 60",
          rc == (202, {"queued": 0, "duplicates": 60}), rc)
    s = status()
    check("status while held: queued 60, in_flight 1", s["queued"] == 60 and s["in_flight"] == 1, s)
    s_before = s
    emu.ctl("release", {})
    ok, s = wait(lambda s: settled(s) and s["sent"] - s_before["sent"] == 61)
    check("after release: all 61 URLs sent, queue empty", ok, s)
    got = emu.refreshed() - before
    good, bad = once(got, urls + [blocker])
    check("emulator: each of the 61 URLs refreshed exactly once", good and sum(got.values()) == 61,
          bad or got)

    # -- 5 http503 faults: the batch stays queued, then is delivered ----------
    e0, s0 = emu.stats(), status()
    before = collections.Counter(e0["refreshed_urls"])
    emu.ctl("faults", {"faults": [{"kind": "http503", "count": 5}]})
    urls = ["http://www.example.com/faults/%02d.png" % i for i in range(25)]
    st, b = purge(urls)
    check("25 URLs queued while the vendor answers 503", (st, b) == (202, {"queued": 25, "duplicates": 0}),
          (st, b))
    ok, s = wait(lambda s: settled(s) and s["sent"] - s0["sent"] == 25)
    check("the 25 URLs are delivered once the faults are used up", ok, s)
    e1 = emu.stats()
    check("the emulator's 5 faults were all used", e1["faults_pending"] == [], e1["faults_pending"])
    check("one failed attempt of the batch (3 tries < 5 faults): failed +25, kept queued, retried",
          s["failed"] - s0["failed"] == 25, (s0["failed"], s["failed"]))
    ba = e1["by_action"].get("PurgeUrlsCache", 0) - e0["by_action"].get("PurgeUrlsCache", 0)
    ex = e1["executed"].get("PurgeUrlsCache", 0) - e0["executed"].get("PurgeUrlsCache", 0)
    check("PurgeUrlsCache: 6 calls, 1 executed (5 refused by faults)", (ba, ex) == (6, 1), (ba, ex))
    got = collections.Counter(e1["refreshed_urls"]) - before
    good, bad = once(got, urls)
    check("emulator: each of the 25 URLs refreshed exactly once", good and sum(got.values()) == 25,
          bad or got)

    # -- nginx -s reload while the vendor fails --------------------------------
    s0 = status()
    emu.ctl("faults", {"faults": [{"kind": "http503", "count": 1000}]})
    urls = ["http://www.example.com/reload/%02d.html" % i for i in range(15)]
    st, b = purge(urls)
    ok, s = wait(lambda s: s["failed"] - s0["failed"] >= 15)
    check("15 URLs queued, a flush failed (vendor down)", st == 202 and ok, (st, b, s))
    old = ngx.workers()
    r = ngx.reload()
    check("nginx -s reload", r.returncode == 0, r.stdout.decode(errors="replace")[-500:])
    end = time.time() + 30
    while time.time() < end:
        w = ngx.workers()
        if w and not (w & old):
            break
        time.sleep(0.1)
    w = ngx.workers()
    check("the old workers exited, new ones run", w and not (w & old), (old, w))
    s = status()
    e = emu.stats()
    check("after reload the queue is still there: queued + in_flight = 15, counters kept",
          s.get("queued", 0) + s.get("in_flight", 0) == 15 and s["sent"] == s0["sent"]
          and s["enqueued"] == s0["enqueued"] + 15 and s["pid"] in w, (s0, s))
    check("none of the 15 was delivered while the faults were active (%d pending)"
          % (e["faults_pending"][0]["count"] if e["faults_pending"] else 0),
          e["faults_pending"] and not (set(e["refreshed_urls"]) & set(urls)))
    emu.ctl("reset", {})          # the vendor is back (clears faults and stats)
    ok, s = wait(lambda s: settled(s) and s["sent"] - s0["sent"] == 15, timeout=40)
    check("the new workers deliver the 15 URLs once the vendor is back", ok, s)
    got = emu.refreshed()
    good, bad = once(got, urls)
    check("emulator: each of the 15 refreshed exactly once", good and sum(got.values()) == 15,
          bad or got)

    # -- a URL the vendor refuses for good -------------------------------------
    s0 = status()
    before = emu.refreshed()
    wild = "http://*.example.com/wild.png"
    goods = ["http://www.example.com/drop/1.png", "http://www.example.com/drop/2.png"]
    st, b = purge([wild] + goods)
    ok, s = wait(lambda s: settled(s) and s["dropped"] - s0["dropped"] == 1
                 and s["sent"] - s0["sent"] == 2)
    check("a wildcard URL (InvalidParameter.CdnPurgeWildcardNotAllowed) is dropped, its batch-mates sent",
          st == 202 and ok, (st, b, s))
    got = emu.refreshed() - before
    check("emulator: the two good URLs once each, the wildcard never",
          got == collections.Counter(goods), got)
    check("last_error names the vendor's refusal", "Wildcard" in (s.get("last_error") or ""),
          s.get("last_error"))

    # -- the upstream hook -------------------------------------------------------
    s0 = status()
    before = emu.refreshed()
    page, news = "/hook/page.html", "/hook/news"
    st1, h1, _ = request(base + page)
    request(ngx.origin + "/__origin/set?path=%s&version=2" % page, "POST", "")
    st2, h2, _ = request(base + page)
    st3, h3, _ = request(base + page)
    request(ngx.origin + "/__origin/set?path=%s&changed=1" % news, "POST", "")
    st4, h4, _ = request(base + news)
    check("proxied answers: ETag v1, v2, v2; X-Content-Changed not passed to the client",
          (st1, st2, st3, st4) == (200, 200, 200, 200) and h1["ETag"] == '"v1"'
          and h2["ETag"] == '"v2"' and h3["ETag"] == '"v2"' and h4.get("X-Content-Changed") is None,
          (st1, st2, st3, st4, h1.get("ETag"), h2.get("ETag"), h4.get("X-Content-Changed")))
    ok, s = wait(lambda s: settled(s) and s["sent"] - s0["sent"] >= 2)
    check("the hook queued 2 URLs (changed ETag, X-Content-Changed), both sent",
          ok and s["enqueued"] - s0["enqueued"] == 2 and s["duplicates"] == s0["duplicates"], s)
    got = emu.refreshed() - before
    want = collections.Counter(["http://www.example.com" + page, "http://www.example.com" + news])
    check("emulator: the public URLs of both, once each (not on first sight, not when unchanged)",
          got == want, got)

    # -- a worker killed mid-flush -------------------------------------------------
    s0 = status()
    before = emu.refreshed()
    emu.ctl("hold", {})
    victim = "http://www.example.com/crash/victim.js"
    purge([victim])
    ok, _ = wait_emu(lambda e: e.get("held", 0) >= 1)
    s = status()
    pid = s.get("flush_lock")
    workers = ngx.workers()
    check("a flush is out (held) with the URL in flight, lock held by worker %s" % pid,
          ok and s["in_flight"] == 1 and pid in workers, (s, workers))
    if pid in workers:
        os.kill(pid, signal.SIGKILL)
    emu.ctl("release", {})
    ok, s = wait(lambda s: settled(s) and s["recovered"] > s0["recovered"]
                 and s["sent"] > s0["sent"], timeout=LEASE + 20)
    check("after the lease (%d s) the killed worker's batch is recovered and sent" % LEASE, ok, s)
    got = emu.refreshed() - before
    check("emulator: the URL was purged (at least once: %d)" % got[victim], got[victim] >= 1, got)
    w = ngx.workers()
    check("the master replaced the killed worker", len(w) == len(workers) and pid not in w,
          (workers, w))


if __name__ == "__main__":
    sys.exit(main())
