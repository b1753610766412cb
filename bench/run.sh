#!/bin/sh
# bench/run.sh - speed and memory measurements (`make bench`).  Results are
# ratios against a baseline measured in the same run; nothing here asserts a
# time.  See bench/README.md.
LUA=${LUA:-lua5.4}
export LUA_PATH="lua/?.lua;lua/?/init.lua;spec/support/?.lua;/usr/share/lua/5.4/?.lua;;"
export LUA_CPATH="${CDNKIT_CPATH:-build/5.4/?.so};/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;;"
"$LUA" bench/concurrency.lua
echo
"$LUA" bench/json.lua
