#!/usr/bin/env python3
"""spec/fleet/test_fleet.py -- the fleet purge queue (cdnkit.queue) with
several `cdnkit queue` processes against one loopback redis-server (AOF,
appendfsync always) and the Tencent emulator (API 3.0); part of `make check`
(spec/run.sh stage FLEET).

Each scenario uses a fresh queue name:

  1. four producers (`cdnkit queue add --urls-from`, in chunks, some URLs
     queued by two producers) run while three flushers work; flusher f1 is
     SIGKILLed while the emulator holds its purge request (POST /__emu/hold:
     "mid-batch" by construction, not by timing).  Its in-flight entries
     (its pending entries in the consumer group, read with XPENDING/XRANGE
     before release) are the only URLs that may be purged twice; every URL is
     purged; a URL two producers queued before either copy was taken is
     purged once;
     the queue ends empty and done + deduped = added.
  2. the fleet rate: three flushers share --rate R; the emulator's busiest
     second (max_in_1s) never exceeds R, and with its own rate_limit = R it
     rejects nothing (rate_limited 0).
  3. redis-server is SIGKILLed mid-run, while the emulator holds every
     flusher's purge request, and started again on the same port and dir
     after ~1 s; the held batches are accepted while Redis is away (their
     acknowledgements wait for it).  The flushers ride it out: every URL
     purged exactly once (no flusher died, so nothing acknowledged is redone
     and nothing unacknowledged is lost), and the queue ends empty.

Prints `ok - ...` / `not ok - ...` and `fleet: N passed, N failed` (~20 s).
`test_fleet.py 2 3` runs those scenarios only; FLEET_KEEP=1 keeps the
scratch folder (flusher logs, the AOF).  Python 3 standard library only.
"""

import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CDNKIT = os.path.join(ROOT, "bin", "cdnkit")
ACCOUNT = "qcloud"
GROUP = "flushers"

passed = 0
failed = 0
PROCS = []  # every process started, killed in the end if still running


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - %s" % name)
    else:
        failed += 1
        print("not ok - %s %s" % (name, detail))
    sys.stdout.flush()


def note(msg):
    print("# " + msg)
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(fn, seconds, step=0.02):
    end = time.time() + seconds
    while True:
        v = fn()
        if v or time.time() >= end:
            return v
        time.sleep(step)


def short(seq, n=8):
    seq = sorted(seq)
    return "%s%s" % (seq[:n], " ... (%d in all)" % len(seq) if len(seq) > n else "")


# --------------------------------------------------------------------------
# Redis: the server, and a minimal RESP2 client for the test's own reads
# --------------------------------------------------------------------------
class RedisError(Exception):
    pass


def _resp_read(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
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
        return f.read(n + 2)[:-2].decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_resp_read(f) for _ in range(n)]
    raise OSError("bad RESP reply %r" % line)


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir)
        self.log = os.path.join(tmp, "redis.log")
        self.p = None

    def start(self):
        logf = open(self.log, "ab")
        self.p = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
                                   "--save", "", "--daemonize", "no"],
                                  stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        PROCS.append(self.p)
        ok = wait_for(self.pings, 10, 0.05)
        if not ok:
            raise RuntimeError("redis-server did not answer PING: " + open(self.log).read()[-2000:])

    def pings(self):
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return False
        return out.strip() == b"PONG"

    def kill(self, sig=signal.SIGKILL):
        self.p.send_signal(sig)
        self.p.wait(10)

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            enc = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            s.sendall(b"*%d\r\n" % len(enc) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))
            return _resp_read(s.makefile("rb"))
        finally:
            s.close()


# --------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------
def http(url, method="GET", body=None, timeout=15):
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Emu:
    def __init__(self, vendor):
        self.p = subprocess.Popen([sys.executable, os.path.join(ROOT, "spec/emulator/cdnemu.py"),
                                   "--vendor", vendor, "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        PROCS.append(self.p)
        line = self.p.stdout.readline().decode()
        self.url = "http://127.0.0.1:%d" % int(line.strip().rsplit(":", 1)[1])

    def ctl(self, path, body=None):
        if body is None and path != "/__emu/stats":
            body = {}
        if body is None:
            return json.loads(http(self.url + path)[1])
        return json.loads(http(self.url + path, "POST", json.dumps(body).encode())[1])

    def stats(self):
        return self.ctl("/__emu/stats")

    def stop(self):
        if self.p.poll() is None:
            try:
                self.ctl("/__emu/release")
            except Exception:  # noqa: BLE001 (stopping anyway)
                pass
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


# --------------------------------------------------------------------------
# cdnkit processes
# --------------------------------------------------------------------------
class Ctx:
    def __init__(self, tmp, redis, emu):
        self.tmp, self.redis, self.emu = tmp, redis, emu
        self.n = 0

    def env(self, queue):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("CDNKIT_"):
                del env[k]
        env.update(CDNKIT_REDIS="127.0.0.1:%d" % self.redis.port, CDNKIT_QUEUE=queue,
                   TENCENTCLOUD_SECRET_ID="AKIDtest", TENCENTCLOUD_SECRET_KEY="testkey",
                   CDNKIT_QCLOUD_ENDPOINT=self.emu.url, CDNKIT_METADATA="off",
                   CDNKIT_CREDENTIALS_FILE="/nonexistent")
        return env

    def path(self, name):
        self.n += 1
        return os.path.join(self.tmp, "%03d-%s" % (self.n, name))

    def add(self, queue, urls, tag):
        """`cdnkit queue add qcloud --urls-from FILE`: (rc, stdout+stderr)."""
        f = self.path(tag + ".urls")
        with open(f, "w") as fh:
            fh.write("\n".join(urls) + "\n")
        r = subprocess.run([CDNKIT, "queue", "add", ACCOUNT, "--urls-from", f], env=self.env(queue), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace")

    def flusher(self, queue, name, *flags):
        return Flusher(self, queue, name, flags)

    def status(self, queue):
        r = subprocess.run([CDNKIT, "queue", "status", ACCOUNT, "--output", "json"], env=self.env(queue), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            return {"error": r.stderr.decode(errors="replace")}
        return json.loads(r.stdout)[ACCOUNT]


class Flusher:
    def __init__(self, ctx, queue, name, flags):
        self.name = name
        self.out = ctx.path(name + ".out")
        self.err = ctx.path(name + ".err")
        o, e = open(self.out, "wb"), open(self.err, "wb")
        self.p = subprocess.Popen([CDNKIT, "queue", "run", ACCOUNT, "--consumer", name] + list(flags),
                                  env=ctx.env(queue), cwd=ROOT, stdout=o, stderr=e)
        o.close()
        e.close()
        PROCS.append(self.p)

    def wait(self, seconds):
        try:
            return self.p.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.wait(10)

    def counts(self):
        try:
            lines = open(self.out).read().strip().splitlines()
            return json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            return None

    def log(self):
        try:
            return open(self.err).read()
        except OSError:
            return ""

    def events(self, name):
        """The event lines `name` (e.g. "reclaimed") of its log, as dicts."""
        out = []
        for line in self.log().splitlines():
            parts = line.split(" ")
            if len(parts) >= 2 and parts[1] == name:
                out.append(dict(p.split("=", 1) for p in parts[2:] if "=" in p))
        return out

    def tail(self, n=15):
        return "\n".join("    %s: %s" % (self.name, l) for l in self.log().splitlines()[-n:])


def stream_key(queue):
    return "cdnkit:{%s}:s:%s" % (queue, ACCOUNT)


def pending_of(redis, queue, consumer):
    """The entries the group holds for `consumer` (read, not acknowledged):
    {id: url}."""
    key = stream_key(queue)
    rows = redis.cmd("XPENDING", key, GROUP, "-", "+", 10000, consumer) or []
    out = {}
    for row in rows:
        eid = row[0]
        got = redis.cmd("XRANGE", key, eid, eid)
        fields = got[0][1] if got else []
        f = dict(zip(fields[0::2], fields[1::2]))
        out[eid] = f.get("u")
    return out


def clean_status(st, added, done=None, deduped=None):
    """The problems with a final status (empty when fine)."""
    bad = []
    if "error" in st:
        return [st["error"]]
    for k in ("pending", "in_flight", "waiting", "dead_letters", "failed", "dead"):
        if st.get(k) != 0:
            bad.append("%s=%s" % (k, st.get(k)))
    if st.get("added") != added:
        bad.append("added=%s (expected %d)" % (st.get("added"), added))
    if (st.get("done") or 0) + (st.get("deduped") or 0) != added:
        bad.append("done %s + deduped %s != added %d" % (st.get("done"), st.get("deduped"), added))
    if done is not None and st.get("done") != done:
        bad.append("done=%s (expected %d)" % (st.get("done"), done))
    if deduped is not None and st.get("deduped") != deduped:
        bad.append("deduped=%s (expected %d)" % (st.get("deduped"), deduped))
    return bad


def queue_settled(ctx, queue, added):
    st = ctx.status(queue)
    return st if ("error" not in st and st.get("added") == added and st.get("pending") == 0
                  and st.get("in_flight") == 0 and st.get("waiting") == 0) else None


# --------------------------------------------------------------------------
# 1. producers and three flushers, one killed mid-batch
# --------------------------------------------------------------------------
def scenario_kill(ctx):
    emu, redis = ctx.emu, ctx.redis
    queue = "fleet-kill-%d" % os.getpid()
    emu.ctl("/__emu/reset")
    emu.ctl("/__emu/config", {"rate_limit": 0, "latency": 0})
    read = 10
    flags = ["--claim-idle", "3", "--read", str(read), "--concurrency", "1", "--block", "0.2",
             "--rate", "10", "--duration", "90"]

    # four producers, 120..150 distinct URLs each; the 40 "shared" URLs are
    # each queued by two producers
    shared = ["http://host-0009.example.com/shared/%d" % j for j in range(40)]
    lists = []
    for k in range(4):
        own = ["http://host-%04d.example.com/p%d/%d" % (k + 1, k, i) for i in range(100 + 10 * k)]
        random.Random(k).shuffle(own)
        # the shared URLs go in each producer's first chunk, before any
        # flusher runs: both copies are queued before either is taken, so
        # the fleet merges them (a copy queued after the first was taken
        # would be purged again: it may be a later change)
        mine = [shared[(10 * k + j) % 40] for j in range(20)] + own
        lists.append(mine)
    added = sum(len(l) for l in lists)
    distinct = set(u for l in lists for u in l)
    in_two = set(u for u, n in collections.Counter(u for l in lists for u in l).items() if n == 2)
    # chunks 1-2 go at once; 3-5 once f2 and f3 run (so producers and the
    # whole fleet overlap, whatever the machine's speed)
    go_on = threading.Event()
    first_in = threading.Semaphore(0)
    results = [[] for _ in lists]

    def produce(k):
        l = lists[k]
        n = 5
        chunks = [l[i * len(l) // n:(i + 1) * len(l) // n] for i in range(n)]
        for ci, chunk in enumerate(chunks):
            if ci == 2:
                go_on.wait(60)
            if ci >= 2:
                time.sleep(0.15)
            results[k].append(ctx.add(queue, chunk, "p%d-c%d" % (k, ci)) + (len(chunk),))
            if ci == 0:
                first_in.release()

    t0 = time.time()
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for _ in threads:
        first_in.acquire(timeout=30)
    f1 = ctx.flusher(queue, "f1", *flags)
    f2 = f3 = None
    dead_batch = {}
    try:
        # f1 has purged something (today's quota is known: its next request is
        # a purge); then every API request waits at the emulator
        purged = wait_for(lambda: emu.stats()["executed"].get("PurgeUrlsCache", 0) >= 1, 20)
        emu.ctl("/__emu/hold")
        held = wait_for(lambda: emu.stats()["held"] >= 1, 15)
        s = emu.stats()
        waiting = s["by_action"].get("PurgeUrlsCache", 0) - s["executed"].get("PurgeUrlsCache", 0)
        check("1: f1's purge request is held by the emulator (f1 is mid-batch)",
              purged and held and s["held"] == 1 and waiting == 1,
              "purged %s held %s waiting purges %s by_action %s" % (purged, s["held"], waiting, s["by_action"]))
        f1.stop(signal.SIGKILL)
        # the held request carries exactly f1's entries still pending in the
        # group (de-duplicated ones were acknowledged before sending)
        dead_batch = pending_of(redis, queue, "f1")
        check("1: f1 is killed with a batch in flight (its pending entries: %d)" % len(dead_batch),
              f1.p.returncode == -signal.SIGKILL and 0 < len(dead_batch) <= read,
              "rc %s pending %s" % (f1.p.returncode, dead_batch))
        f2 = ctx.flusher(queue, "f2", *flags)
        f3 = ctx.flusher(queue, "f3", *flags)
        time.sleep(0.1)
        emu.ctl("/__emu/release")
        go_on.set()
        for t in threads:
            t.join(60)
        prod = [r for rs in results for r in rs]
        bad = [r for r in prod if r[0] != 0 or ("queued %d for qcloud" % r[2]) not in r[1]]
        check("1: 4 producers queued %d entries (%d distinct URLs) in %d chunks" % (added, len(distinct), len(prod)),
              not any(t.is_alive() for t in threads) and len(prod) == 20 and not bad, bad)
        st = wait_for(lambda: queue_settled(ctx, queue, added), 30, 0.2)
        check("1: f2 and f3 finish the queue (nothing pending or in flight)", st is not None, ctx.status(queue))
    finally:
        go_on.set()
        try:
            emu.ctl("/__emu/release")
        except Exception:  # noqa: BLE001 (reported by the checks)
            pass
        for f in (f1, f2, f3):
            if f is not None:
                f.stop()
    elapsed = time.time() - t0

    s = emu.stats()
    got = collections.Counter(s["refreshed_urls"])
    check("1: every queued URL reached the emulator", distinct <= set(got),
          "missing %s" % short(distinct - set(got)))
    check("1: nothing else reached it", set(got) <= distinct, short(set(got) - distinct))
    twice = set(u for u, n in got.items() if n > 1)
    dead_urls = set(dead_batch.values())
    check("1: a URL purged twice was in the dead flusher's batch (%d of %d)" % (len(twice), len(dead_urls)),
          twice <= dead_urls, "purged twice, not in f1's batch: %s (counts %s)"
          % (short(twice - dead_urls), {u: got[u] for u in sorted(twice - dead_urls)[:8]}))
    check("1: f1's held batch went through after release, and was reclaimed and purged again",
          bool(dead_urls) and all(got[u] == 2 for u in dead_urls),
          {u: got[u] for u in sorted(dead_urls)})
    reclaimed = sum(int(e.get("entries", 0)) for f in (f2, f3) if f for e in f.events("reclaimed"))
    check("1: f2/f3 reclaimed exactly f1's %d entries" % len(dead_batch), reclaimed == len(dead_batch),
          "reclaimed %d" % reclaimed)
    dup_bad = {u: got[u] for u in in_two if got[u] != 1 and u not in dead_urls}
    check("1: a URL queued by two producers before either copy was taken was purged once (%d such URLs)" % len(in_two),
          not dup_bad, dup_bad)
    st = ctx.status(queue)
    bad = clean_status(st, added, done=len(distinct), deduped=added - len(distinct))
    check("1: status: pending 0, in flight 0, dead letters 0, done %d + deduped %d = added %d"
          % (len(distinct), added - len(distinct), added), not bad, "%s %s" % (bad, st))
    note("scenario 1: %.1f s, %d purge requests, %d URLs purged (%d twice)"
         % (elapsed, s["by_action"].get("PurgeUrlsCache", 0), len(s["refreshed_urls"]), len(twice)))
    return [f for f in (f1, f2, f3) if f]


# --------------------------------------------------------------------------
# 2. the fleet-wide rate
# --------------------------------------------------------------------------
def scenario_rate(ctx, rate=5):
    emu = ctx.emu
    queue = "fleet-rate-%d" % os.getpid()
    emu.ctl("/__emu/reset")
    emu.ctl("/__emu/config", {"rate_limit": rate, "latency": 0})
    urls = ["http://host-%04d.example.com/rate/%d" % (i % 7 + 1, i) for i in range(100)]
    res = [ctx.add(queue, urls[:50], "r0"), ctx.add(queue, urls[50:], "r1")]
    check("2: 100 URLs queued", all(r[0] == 0 for r in res), res)
    t0 = time.time()
    fl = [ctx.flusher(queue, "r%d" % i, "--rate", str(rate), "--read", "4", "--concurrency", "1",
                      "--block", "0.2", "--claim-idle", "10", "--drain", "--duration", "30")
          for i in range(3)]
    rcs = [f.wait(40) for f in fl]
    elapsed = time.time() - t0
    for f in fl:
        f.stop(signal.SIGKILL)
    counts = [f.counts() or {} for f in fl]
    check("2: three flushers drain the queue and exit 0", rcs == [0, 0, 0], "rc %s" % rcs)
    check("2: all three took part (each sent purges)", all(c.get("sent", 0) > 0 for c in counts), counts)
    s = emu.stats()
    m = s["max_in_1s"]
    n_purge = s["by_action"].get("PurgeUrlsCache", 0)
    check("2: the emulator's busiest second holds at most %d PurgeUrlsCache (--rate %d, 3 flushers)"
          % (rate, rate), m.get("PurgeUrlsCache", 0) <= rate, "max_in_1s %s" % m)
    check("2: ... and at most %d API requests of any action (the pacer covers every request)" % rate,
          m.get("*", 0) <= rate, "max_in_1s %s by_action %s" % (m, s["by_action"]))
    check("2: the emulator's rate_limit = %d rejected nothing" % rate, s.get("rate_limited", 0) == 0,
          "rate_limited %s" % s.get("rate_limited"))
    got = collections.Counter(s["refreshed_urls"])
    check("2: every URL purged exactly once", set(got) == set(urls) and all(n == 1 for n in got.values()),
          "missing %s, more than once %s" % (short(set(urls) - set(got)), short(u for u, n in got.items() if n > 1)))
    st = ctx.status(queue)
    bad = clean_status(st, 100, done=100, deduped=0)
    check("2: status: the queue is empty, done 100", not bad, "%s %s" % (bad, st))
    # the run must have been paced at all: more requests than one second's worth
    check("2: the run was long enough to test the rate (%d requests in %.1f s)" % (s["requests"], elapsed),
          s["requests"] > 3 * rate and m.get("*", 0) >= rate - 1, "max_in_1s %s" % m)
    note("scenario 2: %.1f s, %d requests (%d purges), max_in_1s %s"
         % (elapsed, s["requests"], n_purge, m))
    emu.ctl("/__emu/config", {"rate_limit": 0})
    return fl


# --------------------------------------------------------------------------
# 3. redis-server restarted mid-run
# --------------------------------------------------------------------------
def scenario_restart(ctx):
    emu, redis = ctx.emu, ctx.redis
    queue = "fleet-restart-%d" % os.getpid()
    emu.ctl("/__emu/reset")
    emu.ctl("/__emu/config", {"rate_limit": 0, "latency": 0.05})
    urls = ["http://host-%04d.example.com/r/%d" % (i % 11 + 1, i) for i in range(400)]
    a, b = urls[:220], urls[180:]  # 40 URLs queued by both
    added = len(a) + len(b)
    res = [ctx.add(queue, a, "a"), ctx.add(queue, b, "b")]
    check("3: %d entries queued (%d distinct URLs)" % (added, len(urls)), all(r[0] == 0 for r in res), res)
    # --claim-idle 10: no flusher dies here, and an outage of ~1-2 s must not
    # let one flusher take another's batch
    fl = [ctx.flusher(queue, "g%d" % i, "--rate", "10", "--read", "10", "--concurrency", "1",
                      "--block", "0.2", "--claim-idle", "10", "--drain", "--duration", "40")
          for i in range(3)]
    t0 = time.time()
    held = 0
    try:
        wait_for(lambda: len(emu.stats()["refreshed_urls"]) >= 150, 15)
        # every flusher mid-batch: its purge request held by the emulator
        # (so no Redis command is in flight when the server dies)
        emu.ctl("/__emu/hold")
        wait_for(lambda: emu.stats()["held"] >= 3, 5)
        held = emu.stats()["held"]
        before = len(emu.stats()["refreshed_urls"])
        redis.kill(signal.SIGKILL)
        t_kill = time.time()
        # the vendor accepts the held batches while Redis is away: their
        # acknowledgements must wait for it, and happen once
        emu.ctl("/__emu/release")
        time.sleep(1.0)
        redis.start()
        note("scenario 3: redis-server killed after %.1f s (%d URLs purged, %d batches in flight), "
             "answering again after %.1f s" % (t_kill - t0, before, held, time.time() - t_kill))
        rcs = [f.wait(45) for f in fl]
    finally:
        emu.ctl("/__emu/release")
        for f in fl:
            f.stop(signal.SIGKILL)
    elapsed = time.time() - t0
    s = emu.stats()
    got = collections.Counter(s["refreshed_urls"])
    check("3: redis-server went away mid-run (%d of %d URLs purged before, %d batches in flight)"
          % (before, len(urls), held), 0 < before < len(urls) and len(got) > before and held >= 1)
    check("3: the flushers rode the outage out and drained the queue (exit 0)", rcs == [0, 0, 0],
          "rc %s\n%s" % (rcs, "\n".join(f.tail() for f in fl)))
    check("3: the flushers saw the outage (redis_retry logged)", any(f.events("redis_retry") for f in fl),
          "\n".join(f.tail() for f in fl))
    check("3: nothing unacknowledged was lost: every URL purged", set(urls) <= set(got),
          "missing %s" % short(set(urls) - set(got)))
    twice = {u: n for u, n in got.items() if n > 1}
    check("3: nothing acknowledged was redone: no URL purged twice", not twice,
          "%d URLs: %s" % (len(twice), dict(list(sorted(twice.items()))[:8])))
    st = ctx.status(queue)
    bad = clean_status(st, added, done=len(urls), deduped=added - len(urls))
    check("3: status after the restart: queue empty, done %d + deduped %d = added %d"
          % (len(urls), added - len(urls), added), not bad, "%s %s" % (bad, st))
    note("scenario 3: %.1f s, %d purge requests; per flusher: redis_retry events %s, reclaimed entries %s"
         % (elapsed, s["by_action"].get("PurgeUrlsCache", 0), [len(f.events("redis_retry")) for f in fl],
            [sum(int(e.get("entries", 0)) for e in f.events("reclaimed")) for f in fl]))
    return fl


def main():
    for tool in ("redis-server", "redis-cli"):
        if not shutil.which(tool):
            print("not ok - %s is not installed (make deps)" % tool)
            print("fleet: 0 passed, 1 failed")
            return 1
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="cdnkit-fleet-")
    flushers = []
    redis = emu = None
    try:
        redis = Redis(tmp)
        redis.start()
        emu = Emu("qcloud")
        ctx = Ctx(tmp, redis, emu)
        only = sys.argv[1:]  # e.g. `test_fleet.py 3`: that scenario alone
        for name, fn in (("1 (kill mid-batch)", scenario_kill), ("2 (fleet rate)", scenario_rate),
                         ("3 (redis restart)", scenario_restart)):
            if only and name[0] not in only:
                continue
            before = failed
            try:
                flushers += fn(ctx) or []
            except Exception as e:  # noqa: BLE001 (a failed step is a failed check)
                check("scenario %s went through without an error" % name, False, repr(e))
            if failed > before:
                note("flusher logs so far (tail):")
                for f in flushers:
                    print(f.tail(8))
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        left = [p.pid for p in PROCS if p.poll() is None]
        if emu is not None:
            emu.stop()
        if os.environ.get("FLEET_KEEP"):
            note("logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    check("no process left behind", not left, left)
    note("fleet test: %.1f s" % (time.time() - t0))
    print("fleet: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
