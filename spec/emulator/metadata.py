#!/usr/bin/env python3
"""metadata.py -- a loopback emulator of the cloud instance metadata services
that hand out instance-role credentials, for cdnkit's credential-chain specs.

Alibaba ECS (http://100.100.100.200):
  PUT  /latest/api/token   (X-aliyun-ecs-metadata-token-ttl-seconds) -> a token
  GET  /latest/meta-data/ram/security-credentials/         -> the role name
  GET  /latest/meta-data/ram/security-credentials/<role>   -> {AccessKeyId,
       AccessKeySecret, SecurityToken, Expiration, LastUpdated, Code}
  hardened mode (config "hardened": true): GETs need X-aliyun-ecs-metadata-token.
Tencent CVM (http://metadata.tencentyun.com):
  GET  /latest/meta-data/cam/security-credentials/         -> the role name
  GET  /latest/meta-data/cam/security-credentials/<role>   -> {TmpSecretId,
       TmpSecretKey, Token, ExpiredTime, Expiration, Code}
Control (no auth): POST /__meta/config {"lifetime": seconds, "token": "...",
"role": "name" | null (no role attached: 404), "hardened": bool}; GET
/__meta/stats {"fetches": n (credential documents served), "token_requests": n,
"refused": n, "lists": n (role-list requests)}.

    python3 spec/emulator/metadata.py [--port 0]   prints "metadata listening on 127.0.0.1:<port>"
Python 3 standard library only; loopback only.
"""
import argparse
import datetime
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
CONFIG = {"lifetime": 3600, "token": "cdnemu-sts-token", "role": "cdnkit-role", "hardened": False}
STATS = {"fetches": 0, "token_requests": 0, "refused": 0, "lists": 0}
TOKENS = {}  # metadata session token -> expiry (hardened mode)

ALI = "/latest/meta-data/ram/security-credentials/"
TC = "/latest/meta-data/cam/security-credentials/"


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="text/plain"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        self.body()
        if self.path == "/latest/api/token":
            ttl = self.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.send(400, "bad ttl")
            tok = secrets.token_hex(16)
            with LOCK:
                TOKENS[tok] = time.time() + int(ttl)
                STATS["token_requests"] += 1
            return self.send(200, tok)
        return self.send(404, "not found")

    def do_POST(self):
        raw = self.body()
        if self.path == "/__meta/config":
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return self.send(400, "bad json")
            with LOCK:
                for k, v in data.items():
                    if k not in CONFIG:
                        return self.send(400, "unknown key %s" % k)
                    CONFIG[k] = v
            return self.send(200, json.dumps(CONFIG), "application/json")
        return self.send(404, "not found")

    def do_GET(self):
        if self.path == "/__meta/stats":
            with LOCK:
                return self.send(200, json.dumps(dict(STATS, **CONFIG)), "application/json")
        with LOCK:
            cfg = dict(CONFIG)
        if self.path.startswith(ALI) and cfg["hardened"]:
            tok = self.headers.get("X-aliyun-ecs-metadata-token")
            with LOCK:
                ok = tok in TOKENS and TOKENS[tok] > time.time()
                if not ok:
                    STATS["refused"] += 1
            if not ok:
                return self.send(403, "metadata token required (hardened mode)")
        for base in (ALI, TC):
            if self.path.startswith(base):
                rest = self.path[len(base):]
                if cfg["role"] is None:
                    with LOCK:
                        STATS["lists"] += 1
                    return self.send(404, "no role attached")
                if rest == "":
                    with LOCK:
                        STATS["lists"] += 1
                    return self.send(200, cfg["role"])
                if rest != cfg["role"]:
                    return self.send(404, "no such role")
                now = time.time()
                exp = now + float(cfg["lifetime"])
                with LOCK:
                    STATS["fetches"] += 1
                if base == ALI:
                    doc = {"AccessKeyId": "testid", "AccessKeySecret": "testsecret",
                           "SecurityToken": cfg["token"], "Expiration": iso(exp),
                           "LastUpdated": iso(now), "Code": "Success"}
                else:
                    doc = {"TmpSecretId": "AKIDtest", "TmpSecretKey": "testkey", "Token": cfg["token"],
                           "ExpiredTime": int(exp), "Expiration": iso(exp), "Code": "Success"}
                return self.send(200, json.dumps(doc), "application/json")
        return self.send(404, "not found")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print("metadata listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
