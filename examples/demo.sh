#!/bin/sh
# examples/demo.sh - start the local vendor emulators on loopback and run
# the examples against them (no credentials needed); the fleet queue example
# also gets a loopback redis-server.  `make demo`.
set -e
LUA=${LUA:-lua5.4}
dir=$(mktemp -d)
cleanup() { kill $a_pid $q_pid $w_pid $p_pid $r_pid 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
python3 spec/emulator/cdnemu.py --vendor aliyun --port 0 --port-file "$dir/a" >/dev/null &
a_pid=$!
python3 spec/emulator/cdnemu.py --vendor qcloud --port 0 --port-file "$dir/q" >/dev/null &
q_pid=$!
python3 spec/emulator/cdnemu.py --vendor wangsu --port 0 --port-file "$dir/w" >/dev/null &
w_pid=$!
python3 spec/emulator/cdnemu.py --vendor plcloud --port 0 --port-file "$dir/p" >/dev/null &
p_pid=$!
i=0
while [ ! -s "$dir/a" ] || [ ! -s "$dir/q" ] || [ ! -s "$dir/w" ] || [ ! -s "$dir/p" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "emulators did not start" >&2; exit 1; }
  sleep 0.1
done
echo "local emulators: aliyun on 127.0.0.1:$(cat "$dir/a"), qcloud on 127.0.0.1:$(cat "$dir/q"), wangsu on 127.0.0.1:$(cat "$dir/w"), plcloud on 127.0.0.1:$(cat "$dir/p")"
echo
export CDNKIT_ALIYUN_ENDPOINT="http://127.0.0.1:$(cat "$dir/a")"
export CDNKIT_QCLOUD_ENDPOINT="http://127.0.0.1:$(cat "$dir/q")"
export CDNKIT_WANGSU_ENDPOINT="http://127.0.0.1:$(cat "$dir/w")"
export ALIBABA_CLOUD_ACCESS_KEY_ID=demo-id ALIBABA_CLOUD_ACCESS_KEY_SECRET=demo-secret
export TENCENTCLOUD_SECRET_ID=AKIDdemo TENCENTCLOUD_SECRET_KEY=demokey
export WANGSU_ACCESS_KEY=demo-ak WANGSU_SECRET_KEY=demo-sk
export PLCLOUD_USERNAME=demo PLCLOUD_PASSWORD=secreetword PLCLOUD_TENANT_NAME=demo
export PLCLOUD_AUTH_URL="http://127.0.0.1:$(cat "$dir/p")/v2.0"
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="${CDNKIT_CPATH:-build/5.4/?.so};;"
"$LUA" examples/quickstart.lua
echo
echo "== multi-CDN purge (examples/multi_cdn_purge.lua)"
"$LUA" examples/multi_cdn_purge.lua
echo
echo "== Plcloud: keystone, resource calls, purge by URL (examples/plcloud.lua)"
"$LUA" examples/plcloud.lua
echo
echo "== fleet purge queue on Redis (examples/fleet_queue.lua)"
if command -v redis-server >/dev/null 2>&1; then
  r_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$r_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize no --loglevel warning >/dev/null &
  r_pid=$!
  i=0
  until redis-cli -p "$r_port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.1
  done
  CDNKIT_REDIS="127.0.0.1:$r_port" "$LUA" examples/fleet_queue.lua
else
  echo "(skipped: redis-server is not installed; make deps installs it)"
fi
