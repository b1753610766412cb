-- bench/overhead.lua: request overhead against a local nginx (started and
-- stopped by bench/run.sh), three contenders side by side in one run:
--   bare    bench/bare_curl.c: one reused libcurl easy handle, fixed URL
--   cdnkit  bench/request.lua: c:DescribeCdnService{} (plan, sign, send, decode)
--   popcore bench/popcore.js: @alicloud/pop-core RPCClient.request on node
-- Each round runs every contender once, in its own process (ABCABC...):
-- BENCH_WARMUP untimed calls (default 200), then BENCH_N timed sequential calls
-- (default 5000).  Prints median calls/s per contender, the ratios against the
-- same-run baselines, and the TCP connections each contender's process opened
-- (distinct $connection numbers in the nginx access-log lines it caused).
--
--   lua5.4 bench/overhead.lua PORT ACCESS_LOG BARE_CURL [POPCORE_DIR]
local cdnkit = require "cdnkit"

local PORT, LOG, BARE, POPCORE = arg[1], arg[2], arg[3], arg[4]
assert(PORT and LOG and BARE, "usage: overhead.lua PORT ACCESS_LOG BARE_CURL [POPCORE_DIR]")
local LUA = os.getenv("LUA") or "lua5.4"
local N = tonumber(os.getenv("BENCH_N")) or 5000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 5
local WARM = tonumber(os.getenv("BENCH_WARMUP")) or 200
if POPCORE == "" then POPCORE = nil end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- the bare loop GETs a URL signed the way cdnkit signs it (fixed time/nonce:
-- the server does not check it)
local c = cdnkit.aliyun { access_key_id = "testid", access_key_secret = "testsecret",
                          endpoint = "http://127.0.0.1:" .. PORT, rate = false, retry = false }
local URL = c:prepare("DescribeCdnService", {}, {
  timestamp = "2015-08-06T02:19:46Z", nonce = "9b7a44b0-3be1-11e5-8c73-08002700c460" }).url
c:close()

local CONTENDERS = {
  { name = "bare libcurl (C)",
    cmd = ("%s %s %d %d"):format(shq(BARE), shq(URL), N, WARM) },
  { name = "cdnkit",
    cmd = ("%s bench/request.lua %s %d %d"):format(shq(LUA), PORT, N, WARM) },
}
if POPCORE then
  CONTENDERS[3] = { name = "pop-core (node)",
    cmd = ("env POPCORE=%s node bench/popcore.js %s %d %d"):format(shq(POPCORE), PORT, N, WARM) }
end

local function log_size()
  local f = assert(io.open(LOG, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

-- the access-log lines written since `from`: distinct connections, requests, non-200s
local function log_since(from)
  local f = assert(io.open(LOG, "rb"))
  f:seek("set", from)
  local conns, nconn, reqs, bad = {}, 0, 0, 0
  for line in f:lines() do
    local conn, status = line:match("^(%d+) %S+ (%d+)")
    if conn then
      reqs = reqs + 1
      if not conns[conn] then conns[conn], nconn = true, nconn + 1 end
      if status ~= "200" then bad = bad + 1 end
    end
  end
  f:close()
  return nconn, reqs, bad
end

local function run(ct)
  local from = log_size()
  local p = assert(io.popen("timeout 120 " .. ct.cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local rate = tonumber(out:match("^%s*([%d.]+)%s*$"))
  if not ok or not rate then
    io.stderr:write(("bench/overhead.lua: %s failed:\n%s\n"):format(ct.name, out))
    os.exit(1)
  end
  local conns, reqs, bad = log_since(from)
  return rate, conns, reqs, bad
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local m = #s // 2
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

local res = {}
for _, ct in ipairs(CONTENDERS) do res[ct] = { rates = {}, conns = {}, reqs = {}, bad = 0 } end
for r = 1, ROUNDS do
  for _, ct in ipairs(CONTENDERS) do
    local rate, conns, reqs, bad = run(ct)
    local x = res[ct]
    x.rates[r], x.conns[r], x.reqs[r], x.bad = rate, conns, reqs, x.bad + bad
  end
end

local function range(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

print(("request overhead: %d sequential GETs per run (+%d warm-up), %d interleaved rounds, nginx 127.0.0.1:%s")
  :format(N, WARM, ROUNDS, PORT))
print(("  %-18s %12s %9s %19s %10s %10s"):format("", "calls/s", "us/call", "calls/s min..max",
  "TCP conns", "requests"))
local bare = res[CONTENDERS[1]]
local bare_rate = median(bare.rates)
for i, ct in ipairs(CONTENDERS) do
  local x = res[ct]
  local m = median(x.rates)
  local lo, hi = range(x.rates)
  local clo, chi = range(x.conns)
  local rlo, rhi = range(x.reqs)
  print(("  %-18s %12.0f %9.1f %9.0f..%-9.0f %10s %10s%s"):format(ct.name, m, 1e6 / m, lo, hi,
    clo == chi and tostring(clo) or clo .. ".." .. chi,
    rlo == rhi and tostring(rlo) or rlo .. ".." .. rhi,
    i == 1 and "   (baseline)" or ""))
end

-- per-round paired ratios show how much of the spread is the machine
local function paired(a, b, f)
  local t = {}
  for r = 1, ROUNDS do t[r] = f(a.rates[r], b.rates[r]) end
  return range(t)
end

local ck = res[CONTENDERS[2]]
local ck_rate = median(ck.rates)
local r1 = bare_rate / ck_rate
local lo1, hi1 = paired(ck, bare, function(a, b) return b / a end)
print(("  cdnkit time/call / bare libcurl time/call  %6.2f  (rounds %.2f..%.2f)  target <= 1.25: %s")
  :format(r1, lo1, hi1, r1 <= 1.25 and "met" or "MISSED"))
if POPCORE then
  local pc = res[CONTENDERS[3]]
  local r2 = ck_rate / median(pc.rates)
  local lo2, hi2 = paired(ck, pc, function(a, b) return a / b end)
  print(("  cdnkit calls/s / pop-core calls/s         %6.2f  (rounds %.2f..%.2f)  target >= 3:    %s")
    :format(r2, lo2, hi2, r2 >= 3 and "met" or "MISSED"))
else
  print("  pop-core: not run (node or @alicloud/pop-core unavailable)")
end
local expect = N + WARM
for _, ct in ipairs(CONTENDERS) do
  local x = res[ct]
  local _, cmax = range(x.conns)
  local rlo, rhi = range(x.reqs)
  if x.bad > 0 then print(("  WARNING: %s: %d non-200 answers"):format(ct.name, x.bad)) end
  if rlo ~= expect or rhi ~= expect then
    print(("  WARNING: %s: %d..%d requests logged per run, expected %d"):format(ct.name, rlo, rhi, expect))
  end
  if ct ~= CONTENDERS[3] and cmax ~= 1 then
    print(("  WARNING: %s opened %d TCP connections in a run, expected 1 (keep-alive)")
      :format(ct.name, cmax))
  end
end
