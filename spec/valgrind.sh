#!/bin/sh
# spec/valgrind.sh - run spec/support/workload.lua (JSON, signing, transport
# against the emulator, error paths, client close/gc) under valgrind; fail on
# any memory error or definite/indirect leak.
LUA=${LUA:-lua5.4}
log=$(mktemp)
LUA_PATH="lua/?.lua;lua/?/init.lua;spec/support/?.lua;;" \
LUA_CPATH="${CDNKIT_CPATH:-build/5.4/?.so};;" \
env -u LOCPATH valgrind --quiet --error-exitcode=99 --leak-check=full \
  --suppressions=spec/valgrind.supp \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --log-file="$log" "$LUA" spec/support/workload.lua
rc=$?
if [ $rc -ne 0 ]; then
  echo "valgrind: FAILED (exit $rc)"; cat "$log"
else
  echo "valgrind: no memory errors, no leaks"
fi
rm -f "$log"
exit $rc
