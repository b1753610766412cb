#!/bin/sh
# bench/run.sh - speed and memory measurements (`make bench`).  Results are
# ratios against a baseline measured in the same run; nothing here asserts a
# time.  See bench/README.md.
#
# Environment: LUA (lua5.4), CDNKIT_CPATH (build/5.4/?.so), CC (cc),
# BENCH_N (5000 calls per request run), BENCH_ROUNDS (5), BENCH_WARMUP (200),
# BENCH_SIGN_N (200000 bare HMAC iterations), BENCH_QUEUE (1; 0 leaves the
# fleet-queue bench out), BENCH_QUEUE_N (20000), BENCH_QUEUE_RATE_N (2500),
# BENCH_QUEUE_SINGLE_N (2000), BENCH_QUEUE_LATENCIES ("0.05 0.2").
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LUA=${LUA:-lua5.4}
CC=${CC:-cc}
export LUA
export LUA_PATH="lua/?.lua;lua/?/init.lua;spec/support/?.lua;bench/?.lua;/usr/share/lua/5.4/?.lua;;"
export LUA_CPATH="${CDNKIT_CPATH:-build/5.4/?.so};/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;;"
# everything goes to 127.0.0.1: no proxy from the environment
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY || true
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

B=$ROOT/build/bench
NGX=$B/nginx
mkdir -p "$B"

NGX_PID=
STEP_PID=
# bench/queue.lua writes the pids of what it starts (redis-server, the
# emulator, the flushers) here, so that an interrupted run stops them too
QUEUE_PIDS=$B/queue.pids
cleanup() {
  if [ -n "$STEP_PID" ]; then
    kill -TERM "$STEP_PID" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
    STEP_PID=
  fi
  if [ -s "$QUEUE_PIDS" ]; then
    for p in $(cat "$QUEUE_PIDS"); do kill -TERM "$p" 2>/dev/null || true; done
  fi
  rm -f "$QUEUE_PIDS"
  if [ -n "$NGX_PID" ]; then
    kill -TERM "$NGX_PID" 2>/dev/null || true
    wait "$NGX_PID" 2>/dev/null || true
    NGX_PID=
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$LUA" bench/concurrency.lua
echo
"$LUA" bench/json.lua
echo

# --- the C baselines -------------------------------------------------------
"$CC" -std=c99 -O2 -Wall -o "$B/bare_hmac" bench/bare_hmac.c -lcrypto
"$CC" -std=c99 -O2 -Wall -o "$B/bare_curl" bench/bare_curl.c -lcurl

# --- (b) signing -------------------------------------------------------------
"$LUA" bench/sign.lua "$B/bare_hmac"
echo

# --- (a) request overhead against a local nginx ------------------------------
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
if [ -z "$NGINX" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench: installing the Debian package nginx" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
  NGINX=/usr/sbin/nginx
fi
[ -x "$NGINX" ] || { echo "bench: nginx not found (Debian package: nginx)" >&2; exit 1; }

# pop-core: installed into build/bench/node at bench time, never into the repo
POPCORE=$B/node/node_modules/@alicloud/pop-core
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -f "$POPCORE/package.json" ]; then
    mkdir -p "$B/node"
    npm install --prefix "$B/node" --no-audit --no-fund --loglevel=error @alicloud/pop-core >&2 ||
      echo "bench: npm install @alicloud/pop-core failed; pop-core is left out" >&2
  fi
else
  echo "bench: node/npm not found; pop-core is left out" >&2
fi
[ -f "$POPCORE/package.json" ] || POPCORE=

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $(( $(od -An -N2 -tu2 /dev/urandom) % 20000 + 30000 ))
}

# nginx as the current user, its own prefix, in the foreground (daemon off),
# stopped by the trap; a port that turns out to be taken means another try
start_nginx() {
  rm -rf "$NGX"
  mkdir -p "$NGX/conf" "$NGX/logs" "$NGX/tmp"
  user_line=
  [ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"
  cat >"$NGX/conf/nginx.conf" <<EOF
$user_line
daemon off;
worker_processes 1;
pid $NGX/logs/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  log_format bench '\$connection \$request_method \$status';
  server {
    listen 127.0.0.1:$1;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    access_log $NGX/logs/access.log bench;
    default_type application/json;
    location / {
      return 200 '{"RequestId":"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE","InternetChargeType":"PayByTraffic","OpeningTime":"2015-10-09T04:28:33Z","ChangingChargeType":"","ChangingAffectTime":"","InstanceId":"CDN-XXX"}';
    }
  }
}
EOF
  "$NGINX" -p "$NGX/" -c "$NGX/conf/nginx.conf" -e "$NGX/logs/error.log" &
  NGX_PID=$!
  i=0
  while [ $i -lt 50 ]; do
    kill -0 "$NGX_PID" 2>/dev/null || { wait "$NGX_PID" 2>/dev/null || true; NGX_PID=; return 1; }
    "$B/bare_curl" "http://127.0.0.1:$1/" 1 >/dev/null 2>&1 && return 0
    sleep 0.1
    i=$((i + 1))
  done
  cleanup
  return 1
}

PORT=
for _ in 1 2 3 4 5; do
  p=$(free_port)
  if start_nginx "$p"; then PORT=$p; break; fi
done
if [ -z "$PORT" ]; then
  echo "bench: nginx did not start; its error log:" >&2
  cat "$NGX/logs/error.log" >&2 2>/dev/null || true
  exit 1
fi

# in the background and waited for, so that a signal runs the trap at once
"$LUA" bench/overhead.lua "$PORT" "$NGX/logs/access.log" "$B/bare_curl" "$POPCORE" &
STEP_PID=$!
wait "$STEP_PID"
STEP_PID=
cleanup
echo

# --- (c) the fleet queue: producers -> Redis -> flushers -> emulator ---------
REDIS_VERSION=-
if [ "${BENCH_QUEUE:-1}" = 0 ]; then
  echo "bench: BENCH_QUEUE=0: the fleet-queue bench is left out" >&2
elif command -v redis-server >/dev/null; then
  REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
  "$LUA" bench/queue.lua "$QUEUE_PIDS" &
  STEP_PID=$!
  wait "$STEP_PID"
  STEP_PID=
  cleanup
  echo
else
  echo "bench: redis-server not found (Debian package: redis-server); the fleet-queue bench is left out" >&2
fi

printf 'versions: %s; %s; %s; node %s; pop-core %s; redis-server %s\n' \
  "$(curl-config --version 2>/dev/null || echo 'libcurl ?')" \
  "$(openssl version 2>/dev/null | cut -d' ' -f1-2 || echo 'OpenSSL ?')" \
  "$("$NGINX" -v 2>&1 | sed 's/.*version: //')" \
  "$(node --version 2>/dev/null || echo '-')" \
  "$([ -n "$POPCORE" ] && sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$POPCORE/package.json" || echo '-')" \
  "$REDIS_VERSION"
