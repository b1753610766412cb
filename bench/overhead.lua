-- bench/overhead.lua: request overhead against a local nginx (started and
-- stopped by bench/run.sh), three contenders side by side in one run:
--   bare    bench/bare_curl.c: one reused libcurl easy handle, fixed URL
--   cdnkit  bench/request.lua: c:DescribeCdnService{} (plan, sign, send, decode)
--   popcore bench/popcore.js: @alicloud/pop-core RPCClient.request on node
-- Each round runs every contender once, in its own process (ABCABC...):
-- BENCH_WARMUP untimed calls (default 200), then BENCH_N timed sequential calls
-- (default 5000).  Prints median calls/s and client CPU time per call per
-- contender, the ratios against the same-run baselines, and the TCP
-- connections each contender's process opened (distinct $connection numbers
-- in the nginx access-log lines it caused).
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
                          version = "2014-11-11",
                          endpoint = "http://127.0.0.1:" .. PORT, rate = false, retry = false }
local URL = c:prepare("DescribeCdnService", {}, {
  timestamp = "2015-08-06T02:19:46Z", nonce = "9b7a44b0-3be1-11e5-8c73-08002700c460" }).url
c:close()

local CONTENDERS = {
  { name = "bare libcurl (C)",
    cmd = ("%s %s %d %d"):format(shq(BARE), shq(URL), N, WARM) },
  { name = "cdnkit",
    cmd = ("%s bench/request.lua %s %d %d"):format(shq(LUA), PORT, N, WARM) },
  -- today's default: API 2018-05-10, signature V3 (a POST with seven signed
  -- headers and two SHA-256 hashes per call); informative, the baseline is a GET
  { name = "cdnkit 2018-05-10 V3", info = true,
    cmd = ("%s bench/request.lua %s %d %d v3"):format(shq(LUA), PORT, N, WARM) },
}
local PC
if POPCORE then
  PC = { name = "pop-core (node)",
    cmd = ("env POPCORE=%s node bench/popcore.js %s %d %d"):format(shq(POPCORE), PORT, N, WARM) }
  CONTENDERS[#CONTENDERS + 1] = PC
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
  local rate, cpu = out:match("^%s*([%d.]+)%s+([%d.]+)%s*$")
  if not ok or not rate then
    io.stderr:write(("bench/overhead.lua: %s failed:\n%s\n"):format(ct.name, out))
    os.exit(1)
  end
  local conns, reqs, bad = log_since(from)
  return tonumber(rate), tonumber(cpu), conns, reqs, bad
end

local median = require("stats").median

local res = {}
for _, ct in ipairs(CONTENDERS) do res[ct] = { rates = {}, cpu = {}, conns = {}, reqs = {}, bad = 0 } end
for r = 1, ROUNDS do
  for _, ct in ipairs(CONTENDERS) do
    local rate, cpu, conns, reqs, bad = run(ct)
    local x = res[ct]
    x.rates[r], x.cpu[r], x.conns[r], x.reqs[r], x.bad = rate, cpu, conns, reqs, x.bad + bad
  end
end

local function range(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

print(("request overhead: %d sequential GETs per run (+%d warm-up), %d interleaved rounds, nginx 127.0.0.1:%s")
  :format(N, WARM, ROUNDS, PORT))
print(("  %-21s %8s %8s %17s %12s %6s %9s"):format("", "calls/s", "us/call", "calls/s min..max",
  "CPU us/call", "conns", "requests"))
local function count(t)
  local lo, hi = range(t)
  return lo == hi and tostring(lo) or lo .. ".." .. hi
end
for i, ct in ipairs(CONTENDERS) do
  local x = res[ct]
  local m = median(x.rates)
  local lo, hi = range(x.rates)
  print(("  %-21s %8.0f %8.1f %8.0f..%-8.0f %12.1f %6s %9s%s"):format(ct.name, m, 1e6 / m, lo, hi,
    median(x.cpu), count(x.conns), count(x.reqs), i == 1 and "   (baseline)" or ""))
end

-- ratio of the medians, and the same ratio taken within each round (paired:
-- cancels slow drifts of the machine): its median and range
local function paired(a, b, f)
  local t = {}
  for r = 1, ROUNDS do t[r] = f(a, b, r) end
  local lo, hi = range(t)
  return median(t), lo, hi
end
local function line(label, ratio, p, target)
  print(("  %-42s %5.2f  (per round: median %.2f, %.2f..%.2f)%s"):format(label, ratio,
    p[1], p[2], p[3], target or ""))
end

local bare, ck = res[CONTENDERS[1]], res[CONTENDERS[2]]
local r1 = median(bare.rates) / median(ck.rates)
line("cdnkit time/call / bare libcurl time/call", r1,
  { paired(ck, bare, function(a, b, r) return b.rates[r] / a.rates[r] end) },
  ("  target <= 1.25: %s"):format(r1 <= 1.25 and "met" or "MISSED"))
line("(info) cdnkit CPU/call / bare CPU/call", median(ck.cpu) / median(bare.cpu),
  { paired(ck, bare, function(a, b, r) return a.cpu[r] / b.cpu[r] end) })
local v3 = res[CONTENDERS[3]]
line("(info) cdnkit V3 POST time/call / bare GET", median(bare.rates) / median(v3.rates),
  { paired(v3, bare, function(a, b, r) return b.rates[r] / a.rates[r] end) })
if POPCORE then
  local pc = res[PC]
  local r2 = median(ck.rates) / median(pc.rates)
  line("cdnkit calls/s / pop-core calls/s", r2,
    { paired(ck, pc, function(a, b, r) return a.rates[r] / b.rates[r] end) },
    ("  target >= 3: %s"):format(r2 >= 3 and "met" or "MISSED"))
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
  if ct ~= PC and cmax ~= 1 then
    print(("  WARNING: %s opened %d TCP connections in a run, expected 1 (keep-alive)")
      :format(ct.name, cmax))
  end
end
