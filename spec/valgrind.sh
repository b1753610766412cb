#!/bin/sh
# spec/valgrind.sh - under valgrind, failing on any memory error or
# definite/indirect leak:
#   1. spec/support/workload.lua: JSON, signing, transport against the
#      emulator, error paths, client close/gc;
#   2. the reliability specs (duplicates, reports, limits): batches stopped
#      mid-way, faults, memory budgets; and the Plcloud spec (keystone
#      tokens set, replaced and wiped in the C client).
LUA=${LUA:-lua5.4}
log=$(mktemp)
rc=0
vg() {
  LUA_PATH="lua/?.lua;lua/?/init.lua;spec/support/?.lua;;" \
  LUA_CPATH="${CDNKIT_CPATH:-build/5.4/?.so};;" \
  env -u LOCPATH CDNKIT_SLOW_OK=1 valgrind --quiet --error-exitcode=99 --leak-check=full \
    --suppressions=spec/valgrind.supp \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --log-file="$log" "$LUA" "$@"
}
if ! vg spec/support/workload.lua; then
  echo "valgrind (workload): FAILED"; cat "$log"; rc=1
fi
out=$(mktemp)
if vg /usr/bin/busted -o plainTerminal spec/reliability_duplicates_spec.lua \
      spec/reliability_reports_spec.lua spec/reliability_limits_spec.lua spec/plcloud_spec.lua spec/redis_spec.lua >"$out" 2>&1 &&
   grep -qE '^[0-9]+ successes / 0 failures / 0 errors' "$out"; then
  :
else
  echo "valgrind (reliability specs): FAILED"; tail -n 30 "$out"; cat "$log"; rc=1
fi
rm -f "$out"
[ $rc -eq 0 ] && echo "valgrind: no memory errors, no leaks (workload, reliability and plcloud specs)"
rm -f "$log"
exit $rc
