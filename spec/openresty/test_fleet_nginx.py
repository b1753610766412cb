#!/usr/bin/env python3
"""spec/openresty/test_fleet_nginx.py -- the fleet purge queue (cdnkit.queue on
Redis) inside Debian's nginx: examples/openresty-fleet/ end to end.

Starts a loopback redis-server (no persistence), the Tencent API 3.0 emulator
and nginx from examples/openresty-fleet/nginx.conf (one worker, so the
producer, the flusher and /ping share one event loop), in a temporary prefix
on free loopback ports, and checks:

  - worker 0's flusher runs (a timer, blocked in XREADGROUP on Redis);
  - POST /purge (content phase, q:add) queues URLs and directories, JSON or
    one per line; they reach the emulator once; bad URLs (400, nothing
    queued) and a missing token (401) are refused;
  - the same URL queued by two requests while the flusher is busy (the
    emulator holds its call) goes out once and is counted as deduped;
  - the upstream hook: an answer carrying X-Purge-Urls (header filter, no
    cosockets) queues those URLs from ngx.timer.at(0) in the log phase; the
    header does not reach the client;
  - responsiveness: Redis pauses every client (CLIENT PAUSE), so the flusher
    and a POST /purge wait on it; /ping is answered by the same worker while
    that POST is still waiting (ordering, not timing);
  - a batch the vendor refuses (HTTP 503 on every attempt of the client's
    retry) is parked in the `later` set, then sent once after the backoff;
  - nginx -s reload: new workers against the existing consumer group go on
    (POST and flusher);
  - GET /purge/status shows the fleet's counts (added, done, deduped,
    failed, pending, in_flight, waiting) and this node's flusher; the keys
    are those of docs/fleet.md, under cdnkit:{<queue>}:;
  - no [error] line in nginx's error log;
  - Redis stopped: POST /purge answers 503 and /ping is still answered;
    started again (empty: no persistence here), the flusher makes its
    consumer group again and goes on.

Prints `ok - ...` / `not ok - ...` and `openresty-fleet: N passed, N failed`;
exit status 1 on a failure.  test_openresty.py runs it (make test-openresty).
Python 3 standard library only.

usage: test_fleet_nginx.py [--cdnkit ROOT] [--nginx PATH] [--redis-server PATH] [--keep]
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "fleet-check-token-41c2"
QUEUE = "fleetcheck"
ACCOUNT = "qcloud"

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


def wait_for(pred, timeout=15, step=0.05):
    end = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= end:
            return v
        time.sleep(step)


class RedisError(Exception):
    pass


class Redis:
    """A minimal RESP client (the test's own view of Redis)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RedisError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self.f.read(n + 2)[:-2].decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError("bad reply %r" % line)

    def close(self):
        self.s.close()


class RedisServer:
    def __init__(self, binary, prefix, port=None):
        self.port = port or free_port()
        self.dir = os.path.join(prefix, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(prefix, "redis.log"), "ab")
        self.p = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", self.dir,
                                   "--daemonize", "no"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.r = None
        end = time.time() + 10
        while time.time() < end and self.p.poll() is None:
            try:
                self.r = Redis(self.port)
                if self.r("PING") == "PONG":
                    return
            except (OSError, RedisError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.r:
            self.r.close()
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


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
            except Exception:  # noqa: BLE001 (stopping anyway)
                pass
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()


class Nginx:
    def __init__(self, binary, root, prefix, port, origin_port, env):
        self.binary, self.prefix = binary, prefix
        self.base = "http://127.0.0.1:%d" % port
        with open(os.path.join(root, "examples/openresty-fleet/nginx.conf")) as f:
            conf = f.read()
        self.template = conf
        conf = (conf.replace("@CDNKIT@", root).replace("@ORIGIN_PORT@", str(origin_port))
                .replace("@PORT@", str(port)))
        # one worker: the producer, the flusher (worker 0) and /ping share one
        # event loop, so an answer while the flusher waits proves it yields
        conf = conf.replace("worker_processes auto;", "worker_processes 1;")
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        self.env = env
        self.out = open(os.path.join(prefix, "nginx.out"), "wb")
        self.p = subprocess.Popen([binary, "-p", prefix, "-c", self.conf,
                                   "-e", os.path.join(prefix, "logs/error.log"),
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
                if request(self.base + "/ping", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def reload(self):
        return subprocess.run([self.binary, "-p", self.prefix, "-c", self.conf, "-s", "reload"],
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=15)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.out.close()


class Background:
    """A request in a thread: .done tells whether it has answered."""

    def __init__(self, *args, **kw):
        self.result = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, args=args, kwargs=kw)
        self.t.start()

    def _run(self, *args, **kw):
        try:
            self.result = request(*args, **kw)
        except Exception as e:  # noqa: BLE001 (reported by the check)
            self.result = e
        self.done.set()

    def join(self):
        self.t.join(30)
        return self.result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cdnkit", default=os.path.dirname(os.path.dirname(HERE)),
                    help="the cdnkit checkout (default: two levels up)")
    ap.add_argument("--nginx", default=os.environ.get("NGINX", "nginx"))
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--keep", action="store_true", help="keep the prefix and its logs")
    args = ap.parse_args()
    root = os.path.abspath(args.cdnkit)

    missing = []
    if not shutil.which(args.nginx) or not os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so"):
        missing.append("nginx with libnginx-mod-http-lua")
    if not shutil.which(args.redis_server):
        missing.append("redis-server")
    if not (os.path.exists("/usr/share/lua/5.1/nginx/redis.lua") or
            os.path.exists("/usr/share/lua/5.1/resty/redis.lua")):
        missing.append("lua-resty-redis (Debian: lua-nginx-redis)")
    if not os.path.exists(os.path.join(root, "build/5.1/cdnkit/core.so")):
        missing.append("build/5.1/cdnkit/core.so (make luajit)")
    if missing:
        print("not ok - the fleet check needs %s (make deps)" % ", ".join(missing))
        print("openresty-fleet: 0 passed, 1 failed")
        return 1

    prefix = tempfile.mkdtemp(prefix="cdnkit-fleet-")
    os.chmod(prefix, 0o755)
    redis = emu = ngx = None
    try:
        redis = RedisServer(args.redis_server, prefix)
        R = redis.r
        emu = Emu(root, prefix)
        env = dict(os.environ, TENCENTCLOUD_SECRET_ID="AKIDtest", TENCENTCLOUD_SECRET_KEY="testkey",
                   CDNKIT_QCLOUD_ENDPOINT=emu.url, CDNKIT_REDIS="127.0.0.1:%d" % redis.port,
                   CDNKIT_QUEUE=QUEUE, FLEET_PURGE_TOKEN=TOKEN)
        for k in ("CDNKIT_CREDENTIALS_FILE", "CDNKIT_PROFILE", "CDNKIT_TRACE"):
            env.pop(k, None)
        ngx = Nginx(args.nginx, root, prefix, free_port(), free_port(), env)
        base = ngx.base
        if not check("nginx starts with examples/openresty-fleet/nginx.conf", ngx.wait_ready(),
                     ngx.error_log()[-2000:]):
            return 1
        check("its lua_package_path has /usr/share/lua/5.1/?.lua (Debian's nginx.redis)",
              "/usr/share/lua/5.1/?.lua" in ngx.template)
        auth = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}

        def status():
            st, _, b = request(base + "/purge/status")
            j = as_json(b) or {}
            j["_http"] = st
            return j

        def counts():
            return (status().get("accounts") or {}).get(ACCOUNT) or {}

        def purge(body, headers=auth):
            st, _, b = request(base + "/purge", "POST", body if isinstance(body, str) else json.dumps(body),
                               headers)
            return st, as_json(b)

        def delivered(urls, field="refreshed_urls", timeout=15):
            def ok():
                c = collections.Counter(emu.stats()[field])
                return all(c[u] >= 1 for u in urls) and c
            return wait_for(ok, timeout)

        # the flusher: worker 0's timer, blocked on Redis between entries
        fl = wait_for(lambda: (status().get("flusher") or {}).get("state") == "running" and status(), 10)
        flusher = (fl or {}).get("flusher") or {}
        check("worker 0 runs the node's flusher (status shows it running)",
              bool(fl) and str(flusher.get("consumer", "")).endswith("-nginx"), fl)

        def blocked_reader():
            for line in R("CLIENT", "LIST").splitlines():
                f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
                if f.get("cmd") == "xreadgroup" and "b" in f.get("flags", ""):
                    return f
            return None
        check("the flusher waits for entries in a blocking XREADGROUP", wait_for(blocked_reader, 10))

        # producers: POST /purge
        urls = ["https://www.example.com/fleet/a.css", "https://www.example.com/fleet/b.js",
                "https://www.example.com/fleet/c.png"]
        dirs = ["https://www.example.com/fleet/img/"]
        st, j = purge({"urls": urls, "dirs": dirs})
        check("POST /purge queues URLs and directories (202, queued 4)",
              st == 202 and j == {"queued": 4, "account": ACCOUNT}, (st, j))
        got = delivered(urls)
        gotd = delivered(dirs, "refreshed_dirs")
        check("the flusher sends them: every URL reaches the vendor once",
              bool(got) and all(got[u] == 1 for u in urls), got)
        check("the directory goes out as a directory purge (PurgePathCache)",
              bool(gotd) and gotd[dirs[0]] == 1, gotd)
        line_urls = ["https://www.example.com/fleet/l1.html", "https://www.example.com/fleet/l2.html"]
        st, j = purge("# one per line\n%s\n\n%s\n" % tuple(line_urls),
                      {"Authorization": "Bearer " + TOKEN, "Content-Type": "text/plain"})
        check("POST /purge with one URL per line", st == 202 and (j or {}).get("queued") == 2, (st, j))
        check("... and they are sent", bool(delivered(line_urls)))

        before = counts().get("added")
        st, j = purge({"urls": ["https://www.example.com/ok.css", "ftp://www.example.com/x"]})
        st2, _ = purge({"urls": ["https://www.example.com/x"]}, {"Content-Type": "application/json"})
        check("a body with a URL that is not http(s) is refused whole (400), no token is 401",
              st == 400 and "urls[2]" in str((j or {}).get("error")) and st2 == 401
              and counts().get("added") == before, (st, j, st2))

        # fleet de-duplication: the same URL queued twice while the flusher is busy
        emu.ctl("hold", {})
        busy = "https://www.example.com/fleet/busy.css"
        dup = "https://www.example.com/fleet/dup.css"
        purge({"urls": [busy]})
        held = wait_for(lambda: emu.stats()["held"] >= 1, 10)
        d0 = counts().get("deduped", 0)
        st1, _ = purge({"urls": [dup]})
        st2, _ = purge({"urls": [dup]})
        check("while the flusher's vendor call is held, two producers queue the same URL",
              bool(held) and st1 == 202 and st2 == 202, (held, st1, st2))
        emu.ctl("release", {})
        got = delivered([busy, dup])
        wait_for(lambda: counts().get("deduped", 0) >= d0 + 1, 5)
        time.sleep(0.5)
        got = emu.refreshed()
        check("after release it goes out once; status counts one deduped",
              got[dup] == 1 and got[busy] == 1 and counts().get("deduped", 0) == d0 + 1,
              (got[dup], got[busy], counts()))

        # the hook: header filter + log phase -> ngx.timer.at(0) -> q:add
        st, hdrs, b = request(base + "/edit?path=/fleet/news.html", "POST", b"title=news")
        hook = ["https://www.example.com/fleet/news.html", "https://www.example.com/"]
        check("the application's answer passes, without its X-Purge-Urls header",
              st == 200 and b.startswith(b"saved") and hdrs.get("X-Purge-Urls") is None,
              (st, b[:60], dict(hdrs)))
        got = delivered(hook)
        check("the hook queues the URLs it names (from a zero-delay timer) and they are sent",
              bool(got) and all(got[u] == 1 for u in hook), got)

        # responsiveness: Redis pauses every client; the flusher and a
        # POST /purge wait on it; /ping is answered by the same (only) worker
        # while that POST is still waiting
        paused = "https://www.example.com/fleet/paused.css"
        wait_for(blocked_reader, 5)
        R("CLIENT", "PAUSE", 800, "ALL")
        t0 = time.time()
        post = Background(base + "/purge", "POST", json.dumps({"urls": [paused]}), auth)
        time.sleep(0.1)
        st, _, b = request(base + "/ping", timeout=5)
        dt = time.time() - t0
        waiting = not post.done.is_set()
        r = post.join()
        check("while Redis holds the flusher and a POST /purge, /ping is answered by the worker",
              st == 200 and b.strip() == b"pong 0" and waiting and dt < 0.8,
              (st, b, "POST still waiting" if waiting else "POST already answered", "%.2fs" % dt))
        check("... and the POST gets its answer once Redis goes on (202)",
              isinstance(r, tuple) and r[0] == 202, r)
        check("... and the flusher sends it", bool(delivered([paused])))

        # a vendor that refuses: parked with backoff, then sent once
        c0 = counts()
        emu.ctl("faults", {"faults": [{"kind": "http503", "count": 3}]})
        bad = "https://www.example.com/fleet/retry.css"
        purge({"urls": [bad]})
        parked = wait_for(lambda: (lambda c: c.get("failed", 0) >= c0.get("failed", 0) + 1
                                   and c.get("waiting", 0) >= 1 and c)(counts()), 15)
        check("a batch the vendor refuses (503 on each of the client's 3 attempts) is parked, not lost",
              bool(parked) and parked.get("failed") == c0.get("failed", 0) + 1 and parked.get("waiting") == 1,
              (c0, parked))
        got = delivered([bad], timeout=20)
        check("after the backoff it is sent again, once", bool(got) and got[bad] == 1, got)

        # nginx -s reload: new workers, the consumer group already in Redis
        old = ((status().get("flusher") or {}).get("pid"))
        rl = ngx.reload()
        new = wait_for(lambda: (lambda f: f.get("pid") not in (None, old) and f.get("state") == "running"
                                and f)((status().get("flusher") or {})), 15)
        check("nginx -s reload: the new worker 0 starts its flusher against the existing group",
              rl.returncode == 0 and bool(new), (rl.returncode, rl.stdout[-300:], new))
        after = ["https://www.example.com/fleet/after-reload.css"]
        st, j = purge({"urls": after})
        check("... POST /purge in the new worker queues (202)", st == 202, (st, j))
        check("... and the new flusher sends it", bool(delivered(after)))

        # status: the whole fleet's counts, from Redis
        wait_for(lambda: counts().get("done") is not None and counts().get("pending") == 0
                 and counts().get("in_flight") == 0, 5)
        s = status()
        c = (s.get("accounts") or {}).get(ACCOUNT) or {}
        print("# status: " + json.dumps(s, sort_keys=True))
        sent = emu.refreshed()
        n_sent = sum(sent.values()) + len(emu.stats()["refreshed_dirs"])
        check("GET /purge/status: added = done + deduped, nothing pending, in flight, waiting or dead",
              s.get("_http") == 200 and s.get("queue") == QUEUE and c.get("added") == c.get("done", 0) + c.get("deduped", 0)
              and c.get("done") == n_sent and c.get("pending") == 0 and c.get("in_flight") == 0
              and c.get("waiting") == 0 and c.get("dead_letters") == 0, (c, n_sent))
        me = (s.get("flusher") or {}).get("consumer")
        check("... and the consumer group lists this node's flusher",
              any(x.get("name") == me for x in c.get("consumers") or []), (me, c.get("consumers")))
        keys = set(R("KEYS", "*"))
        pre = "cdnkit:{%s}:" % QUEUE
        known = re.compile(r"^%s(accounts|(s|stats|later|dead|rate):%s|(seen|quota):%s:.+)$"
                           % (re.escape(pre), ACCOUNT, ACCOUNT))
        check("every key is one of docs/fleet.md's, under cdnkit:{<queue>}: (one Cluster slot)",
              all(known.match(k) for k in keys) and R("TYPE", pre + "s:" + ACCOUNT) == "stream"
              and R("TYPE", pre + "stats:" + ACCOUNT) == "hash"
              and R("XINFO", "GROUPS", pre + "s:" + ACCOUNT)[0][1] == "flushers",
              sorted(keys)[:12])

        errors = [l for l in ngx.error_log().splitlines() if "[error]" in l or "[alert]" in l
                  or "[crit]" in l or "[emerg]" in l]
        check("no error in nginx's error log (up to here)", not errors, "\n".join(errors[:8]))

        # Redis goes away (and comes back empty: this one keeps nothing on
        # disk): producers are told, the worker still answers, the flusher
        # waits, then makes its group again and goes on
        port = redis.port
        redis.stop()
        R = None
        st, j = purge({"urls": ["https://www.example.com/fleet/while-down.css"]})
        pst, _, pb = request(base + "/ping", timeout=5)
        sst = status().get("_http")
        check("Redis down: POST /purge answers 503, /ping is answered, status answers 503",
              st == 503 and "unavailable" in str((j or {}).get("error")) and pst == 200 and sst == 503,
              (st, j, pst, sst))
        down = wait_for(lambda: str((status().get("flusher") or {}).get("state", "")).startswith("redis unavailable"), 10)
        check("... the flusher says it waits for Redis", bool(down), status().get("flusher"))
        redis = RedisServer(args.redis_server, prefix, port)
        R = redis.r
        back = ["https://www.example.com/fleet/after-restart.css"]
        st = wait_for(lambda: purge({"urls": back})[0] == 202, 10)
        check("Redis back: POST /purge queues again (202)", bool(st))
        got = delivered(back)
        check("... and the flusher, its group made again, sends it once",
              bool(got) and got[back[0]] == 1
              and wait_for(lambda: (status().get("flusher") or {}).get("state") == "running", 5), got)
    except Exception as e:  # noqa: BLE001 (a failed step is a failed check)
        check("the run went through without an error", False, repr(e))
    finally:
        if ngx is not None:
            ngx.stop()
            if failed:
                print("--- nginx error.log (tail)")
                print("\n".join(l for l in ngx.error_log().splitlines()
                                if "[notice]" not in l and "[info]" not in l)[-3000:])
        if emu is not None:
            emu.stop()
        if redis is not None:
            redis.stop()
        if args.keep:
            print("# kept: %s" % prefix)
        else:
            shutil.rmtree(prefix, ignore_errors=True)
    print("openresty-fleet: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
