#!/bin/sh
# spec/run.sh - run the test stages and print one closing line
#   tests: N passed, N failed
# Stages: emulator selftest (python), busted specs, and when asked
# (SANITIZE=1) the specs again against the ASan/UBSan build, (VALGRIND=1)
# a core workload under valgrind, and (OPENRESTY=1) cdnkit inside nginx.  ASAN=1 runs only the sanitizer stage.
LUA=${LUA:-lua5.4}
# the specs set their own credentials: a developer's profile file
# (~/.config/cdnkit/credentials) and CDNKIT_* settings must not leak in
export CDNKIT_CREDENTIALS_FILE="$(pwd)/build/no-such-credentials-file"
unset CDNKIT_PROFILE CDNKIT_TRACE CDNKIT_METADATA_ENDPOINT
# and never ask a cloud metadata service (specs that test the instance-role
# link give a loopback emulator's address in code)
export CDNKIT_METADATA=off
passed=0
failed=0
rc=0

count_busted() { # $1 = output file
  line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$1" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (busted printed no summary: counted as 1 failure)"
    failed=$((failed + 1)); rc=1; return
  fi
  s=$(echo "$line" | sed -E 's#^([0-9]+) .*#\1#')
  f=$(echo "$line" | sed -E 's#^[0-9]+ success(es)? / ([0-9]+) .*#\2#')
  e=$(echo "$line" | sed -E 's#.* / ([0-9]+) errors? / .*#\1#')
  passed=$((passed + s)); failed=$((failed + f + e))
  [ "$((f + e))" -eq 0 ] || rc=1
}

run_busted() { # $1 = label, rest = env assignments
  label=$1; shift
  out=$(mktemp)
  echo "== $label"
  case " $* " in
    *" BUSTED_LUA=luajit "*) env "$@" luajit /usr/bin/busted -o plainTerminal >"$out" 2>&1 ;;
    *) env "$@" "$LUA" /usr/bin/busted -o plainTerminal >"$out" 2>&1 ;;
  esac
  tail -n 40 "$out"
  count_busted "$out"
  rm -f "$out"
}

# a comma-decimal locale for the JSON locale-independence spec
if [ ! -f build/locale/de_DE.UTF-8/LC_NUMERIC ] && command -v localedef >/dev/null; then
  mkdir -p build/locale
  localedef -i de_DE -f UTF-8 build/locale/de_DE.UTF-8 >/dev/null 2>&1 || true
fi
LOCPATH="$(pwd)/build/locale"
export LOCPATH

if [ "${ASAN:-0}" != 1 ]; then
  # the emulator's own tests: one script per vendor/version, each ending in
  # "<name>: N passed, N failed"
  for t in selftest selftest_aliyun_2018 selftest_qcloud_v3 selftest_wangsu selftest_plcloud; do
    echo "== emulator $t"
    out=$(mktemp)
    python3 "spec/emulator/$t.py" >"$out" 2>&1
    tail -n 5 "$out"
    line=$(grep -E '^selftest[a-z0-9_-]*: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -n "$line" ]; then
      p=$(echo "$line" | sed -E 's/^[^:]*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
      f=$(echo "$line" | sed -E 's/^[^:]*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
      passed=$((passed + p)); failed=$((failed + f)); [ "$f" -eq 0 ] || rc=1
    else
      echo "  ($t printed no summary: counted as 1 failure)"
      failed=$((failed + 1)); rc=1
    fi
    rm -f "$out"
  done

  run_busted "busted specs ($LUA)" CDNKIT_CPATH="${CDNKIT_CPATH:-build/5.4/?.so}"
fi

if [ "${LUAJIT:-0}" = 1 ]; then
  # the same specs on LuaJIT 2.1 (the Lua 5.1 API OpenResty uses); busted's
  # Lua files are shared with 5.1 under /usr/share/lua/5.1
  run_busted "busted specs (LuaJIT)" CDNKIT_CPATH="build/5.1/?.so" \
    LUA_PATH="/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;" BUSTED_LUA=luajit
fi

if [ "${SANITIZE:-0}" = 1 ] || [ "${ASAN:-0}" = 1 ]; then
  make -s build/asan/cdnkit/core.so || { failed=$((failed + 1)); rc=1; }
  asan=$(gcc -print-file-name=libasan.so)
  ubsan=$(gcc -print-file-name=libubsan.so)
  # the interpreter is not instrumented: preload the runtimes; leaks are
  # valgrind's job (LeakSanitizer cannot tell the interpreter's own apart)
  run_busted "busted specs under ASan/UBSan" CDNKIT_CPATH="build/asan/?.so" \
    LD_PRELOAD="$asan $ubsan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CDNKIT_SLOW_OK=1
fi

if [ "${OPENRESTY:-0}" = 1 ]; then
  # cdnkit inside nginx (lua-nginx-module, LuaJIT build) against the emulators
  echo "== OpenResty (nginx + lua-nginx-module)"
  out=$(mktemp)
  python3 spec/openresty/test_openresty.py >"$out" 2>&1
  grep -E '^(not ok|openresty)' "$out" | tail -n 20
  line=$(grep -E '^openresty: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/^openresty: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/^openresty: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    passed=$((passed + p)); failed=$((failed + f)); [ "$f" -eq 0 ] || { rc=1; tail -n 60 "$out"; }
  else
    echo "  (the OpenResty test printed no summary: counted as 1 failure)"; tail -n 40 "$out"
    failed=$((failed + 1)); rc=1
  fi
  rm -f "$out"
fi

# FLEET=1 (make check sets it)
if [ "${FLEET:-0}" = 1 ]; then
  # the fleet purge queue: cdnkit queue add/run processes against a loopback
  # redis-server (AOF) and the Tencent emulator (~20-35 s)
  echo "== fleet queue (several cdnkit queue processes, redis-server, emulator)"
  out=$(mktemp)
  python3 spec/fleet/test_fleet.py >"$out" 2>&1
  grep -E '^(not ok|fleet|# )' "$out" | tail -n 20
  line=$(grep -E '^fleet: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/^fleet: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/^fleet: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    passed=$((passed + p)); failed=$((failed + f)); [ "$f" -eq 0 ] || { rc=1; tail -n 80 "$out"; }
  else
    echo "  (the fleet test printed no summary: counted as 1 failure)"; tail -n 40 "$out"
    failed=$((failed + 1)); rc=1
  fi
  rm -f "$out"
fi

if [ "${FUZZ:-0}" = 1 ]; then
  echo "== fuzz (libFuzzer, JSON codec)"
  if make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"; then
    passed=$((passed + 1))
  else
    echo "fuzz: FAILED (see build/fuzz/log; the crashing input is saved as crash-*)"
    failed=$((failed + 1)); rc=1
  fi
fi

if [ "${DEMO:-0}" = 1 ]; then
  echo "== make demo (examples against the emulators)"
  out=$(mktemp)
  if CDNKIT_CPATH="${CDNKIT_CPATH:-build/5.4/?.so}" LUA="$LUA" sh examples/demo.sh >"$out" 2>&1 &&
     grep -q "purge complete" "$out" && grep -q "done everywhere" "$out" &&
     grep -q "^prefetch pf-.*: done" "$out"; then
    echo "demo: ok"; passed=$((passed + 1))
  else
    echo "demo: FAILED"; cat "$out"; failed=$((failed + 1)); rc=1
  fi
  rm -f "$out"
fi

if [ "${PACKAGING:-0}" = 1 ]; then
  echo "== packaging"
  # what the commands below run with: no LUA_PATH/LUA_CPATH, nothing else
  clean="env -i PATH=/usr/bin:/bin"
  nexports() { # $1 = core.so: the symbols it exports, in one line
    nm -D --defined-only "$1" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^_' | tr '\n' ' '
  }
  nmodules() { # $1 = a share/lua/<version> folder: how many cdnkit modules it holds
    (cd "$1" && find cdnkit -name '*.lua' | wc -l)
  }
  # luarocks make from this checkout, offline, into a scratch tree
  tree=$(mktemp -d)
  if luarocks --lua-version 5.4 make --tree "$tree" cdnkit-scm-1.rockspec >"$tree.log" 2>&1 &&
     LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
     LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
     lua5.4 -e 'local c = require "cdnkit"; assert(#c.api("aliyun").actions == 176 and #c.api("aliyun", "2014-11-11").actions == 73)' &&
     # the packager's build exports luaopen_cdnkit_core and nothing else
     [ "$(nexports "$tree/lib/lua/5.4/cdnkit/core.so")" = "luaopen_cdnkit_core " ] &&
     # every module under lua/cdnkit/ is installed
     [ "$(nmodules lua)" -eq "$(nmodules "$tree/share/lua/5.4")" ] &&
     # the rock's command (luarocks' wrapper) runs as it is
     $clean "$tree/bin/cdnkit" qcloud help PurgeUrlsCache >"$tree.out" 2>&1 &&
     grep -q PurgeUrlsCache "$tree.out"; then
    echo "luarocks make: ok"; passed=$((passed + 1))
  else
    echo "luarocks make: FAILED"; cat "$tree.log" "$tree.out" 2>/dev/null; failed=$((failed + 1)); rc=1
  fi
  rm -rf "$tree" "$tree.log" "$tree.out"
  # the same rock for LuaJIT (the Lua 5.1 API, OpenResty): LuaJIT's headers,
  # and luajit for the command, from a luarocks config file; built after the
  # 5.4 one, so a core reused across Lua versions would fail here
  tree=$(mktemp -d)
  printf 'lua_interpreter = "luajit"\nvariables = { LUA_INCDIR = "/usr/include/luajit-2.1" }\n' >"$tree.cfg"
  if LUAROCKS_CONFIG_5_1="$tree.cfg" luarocks --lua-version 5.1 make --tree "$tree" cdnkit-scm-1.rockspec >"$tree.log" 2>&1 &&
     LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;" \
     LUA_CPATH="$tree/lib/lua/5.1/?.so;;" \
     luajit -e 'local c = require "cdnkit"; assert(#c.api("aliyun").actions == 176 and #c.api("aliyun", "2014-11-11").actions == 73)' &&
     [ "$(nexports "$tree/lib/lua/5.1/cdnkit/core.so")" = "luaopen_cdnkit_core " ] &&
     [ "$(nmodules lua)" -eq "$(nmodules "$tree/share/lua/5.1")" ] &&
     grep -q "exec '/usr/bin/luajit'" "$tree/bin/cdnkit" &&
     $clean "$tree/bin/cdnkit" qcloud help PurgeUrlsCache >"$tree.out" 2>&1 &&
     grep -q PurgeUrlsCache "$tree.out"; then
    echo "luarocks make (LuaJIT): ok"; passed=$((passed + 1))
  else
    echo "luarocks make (LuaJIT): FAILED"; cat "$tree.log" "$tree.out" 2>/dev/null; failed=$((failed + 1)); rc=1
  fi
  rm -rf "$tree" "$tree.cfg" "$tree.log" "$tree.out"
  # make install into a DESTDIR
  dest=$(mktemp -d)
  if make -s install DESTDIR="$dest" PREFIX=/usr/local >/dev/null &&
     LUA_PATH="$dest/usr/local/share/lua/5.4/?.lua;$dest/usr/local/share/lua/5.4/?/init.lua;;" \
     LUA_CPATH="$dest/usr/local/lib/lua/5.4/?.so;;" \
     lua5.4 "$dest/usr/local/bin/cdnkit" qcloud help PurgeUrlsCache >/dev/null &&
     # the command has the install's folders written in, without DESTDIR
     grep -q '^local LUA_SHAREDIR, LUA_LIBDIR = \[==\[/usr/local/share/lua/5.4\]==\], \[==\[/usr/local/lib/lua/5.4\]==\]' \
       "$dest/usr/local/bin/cdnkit"; then
    echo "make install: ok"; passed=$((passed + 1))
  else
    echo "make install: FAILED"; failed=$((failed + 1)); rc=1
  fi
  rm -rf "$dest"
  # make install under another PREFIX: the installed command finds its
  # modules with a clean environment, from any folder
  dest=$(mktemp -d)
  if make -s install PREFIX="$dest/opt" >/dev/null &&
     [ "$(head -n 1 "$dest/opt/bin/cdnkit")" = "#!/usr/bin/env lua5.4" ] &&
     (cd / && $clean "$dest/opt/bin/cdnkit" qcloud help PurgeUrlsCache) >"$dest/out" 2>&1 &&
     grep -q PurgeUrlsCache "$dest/out"; then
    echo "make install PREFIX: ok"; passed=$((passed + 1))
  else
    echo "make install PREFIX: FAILED"; cat "$dest/out" 2>/dev/null; failed=$((failed + 1)); rc=1
  fi
  rm -rf "$dest"
  # bin/cdnkit in this checkout after `make`, with a clean environment: as
  # ./bin/cdnkit, from another folder, through a symlink, and on LuaJIT
  # (build/5.1, from `make luajit`) when that is built; make repl runs it
  dest=$(mktemp -d)
  root=$(pwd)
  ln -s "$root/bin/cdnkit" "$dest/cdnkit"
  if $clean ./bin/cdnkit qcloud help PurgeUrlsCache >"$dest/out" 2>&1 &&
     grep -q PurgeUrlsCache "$dest/out" &&
     (cd / && $clean "$root/bin/cdnkit" help) >"$dest/out" 2>&1 &&
     (cd / && $clean "$dest/cdnkit" help) >"$dest/out" 2>&1 &&
     { [ ! -f build/5.1/cdnkit/core.so ] ||
       { (cd / && $clean luajit "$root/bin/cdnkit" qcloud help PurgeUrlsCache) >"$dest/out" 2>&1 &&
         grep -q PurgeUrlsCache "$dest/out"; }; } &&
     make -s -n repl EMU=1 | grep -qx './bin/cdnkit repl --emu' &&
     make -s -n repl | grep -qx './bin/cdnkit repl'; then
    echo "bin/cdnkit from the checkout: ok"; passed=$((passed + 1))
  else
    echo "bin/cdnkit from the checkout: FAILED"; cat "$dest/out"; failed=$((failed + 1)); rc=1
  fi
  rm -rf "$dest"
fi

if [ "${VALGRIND:-0}" = 1 ]; then
  echo "== valgrind"
  if CDNKIT_CPATH="${CDNKIT_CPATH:-build/5.4/?.so}" LUA="$LUA" sh spec/valgrind.sh; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); rc=1
  fi
fi

echo "tests: $passed passed, $failed failed"
exit $rc
