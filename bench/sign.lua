-- bench/sign.lua: cdnkit's signing per scheme against bare OpenSSL HMAC()
-- over the same string-to-sign, measured in the same run, interleaved.
--
--   lua5.4 bench/sign.lua BARE_HMAC_BINARY
--
-- The string-to-sign is the one cdnkit builds for DescribeCdnService with a
-- fixed timestamp and nonce (Alibaba RPC signature v2, ~300 bytes).  Each
-- round runs the C baseline (bench/bare_hmac.c, BENCH_SIGN_N iterations,
-- default 200,000) and then every scheme below; after BENCH_ROUNDS rounds
-- (default 5) it prints the median ns/op of each and the ratio
-- scheme / bare HMAC of the same hash (target <= 2).
local core = require "cdnkit.core"
local cdnkit = require "cdnkit"

local BARE = assert(arg[1], "usage: sign.lua BARE_HMAC_BINARY")
local N = tonumber(os.getenv("BENCH_SIGN_N")) or 200000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 5
local SECONDS = 0.3 -- a Lua scheme runs about this long per round (at most N ops)

local SECRET = "testsecret"
local FIXED = { timestamp = "2015-08-06T02:19:46Z", nonce = "9b7a44b0-3be1-11e5-8c73-08002700c460" }
local client = cdnkit.aliyun { access_key_id = "testid", access_key_secret = SECRET,
                               version = "2014-11-11", rate = false, retry = false }
-- today's default clients: Alibaba API 2018-05-10 (signature V3), Tencent API 3.0 (TC3)
local client3 = cdnkit.aliyun { access_key_id = "testid", access_key_secret = SECRET,
                                rate = false, retry = false }
local qc3 = cdnkit.qcloud { secret_id = "testid", secret_key = SECRET, rate = false, retry = false }
local PURGE = { Urls = { "https://www.example.com/a.jpg" } }
local ws = cdnkit.wangsu { access_key = "testid", secret_key = SECRET, rate = false, retry = false }
local WSPURGE = { urls = { "https://www.example.com/a.jpg" } }
-- Plcloud signs nothing per request (a keystone token header); its row is
-- the cost of building a REST request from the data (path, JSON body)
local pl_ok, pl = pcall(cdnkit.plcloud, { username = "demo", password = SECRET, rate = false, retry = false })
local PLFLUSH = { domain_id = 206813, urls = { "https://www.example.com/a.jpg" } }
local PLFIXED = { token = "0123456789abcdef0123456789abcdef", endpoint = "http://api.plcloud.com:8000/v1.0" }
local QFIXED = { timestamp = 1700000000 }
local KEY = SECRET .. "&"
-- the string-to-sign of the call, from prepare() (with explain = true where
-- prepare takes it; older cores also put it on the request itself)
local STS
do
  local ok, req = pcall(client.prepare, client, "DescribeCdnService", {},
    { timestamp = FIXED.timestamp, nonce = FIXED.nonce, explain = true })
  if not ok then req = client:prepare("DescribeCdnService", {}, FIXED) end
  STS = req.string_to_sign or (type(req.explain) == "table" and req.explain.string_to_sign)
end
assert(type(STS) == "string", "bench/sign.lua: prepare() gave no string-to-sign")

-- the parameters the Alibaba adapter signs for this call
local PARAMS = {
  Action = "DescribeCdnService", Format = "JSON", Version = "2014-11-11", AccessKeyId = "testid",
  SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0",
  SignatureNonce = FIXED.nonce, Timestamp = FIXED.timestamp,
}
-- a Tencent v2 request of the same size class (its own string-to-sign)
local QPARAMS = {
  Action = "DescribeCdnHosts", Nonce = "1480069888", Timestamp = "1438828786", SecretId = "testid",
  SignatureMethod = "HmacSHA1", offset = "0", limit = "100", Region = "ap-guangzhou",
}

-- the core's signer of a scheme (core.signers[name]), nil where this core has none
local function signer(name)
  return type(core.signers) == "table" and core.signers[name] or nil
end
local aliyun_v2, qcloud_v2 = signer("aliyun_rpc_v2"), signer("qcloud_v2")
local acs3, tc3 = signer("acs3_hmac_sha256"), signer("tc3_hmac_sha256")
local cnc, wangsu_basic = signer("cnc_hmac_sha256"), signer("wangsu_basic")

-- The schemes: { name, baseline hash ("sha1" | "sha256"), function that signs once }.
-- The ratio printed is that function's ns/op over bare HMAC() of the baseline
-- hash on the Alibaba string-to-sign.  Adding a signer is one line here; a
-- scheme whose function is nil (not in this core) is skipped.
local SCHEMES = {
  { "aliyun_rpc_v2 client:prepare()", "sha1",
    function() return client:prepare("DescribeCdnService", {}, FIXED) end,
    info = "the whole request: checks, parameters, signing, request table" },
  { "acs3 client:prepare() (2018-05-10)", "sha256",
    function() return client3:prepare("DescribeCdnService", {}, FIXED) end,
    info = "the whole V3 request: canonical request, two SHA-256, HMAC, headers" },
  { "tc3 client:prepare() (3.0 PurgeUrlsCache)", "sha256",
    function() return qc3:prepare("PurgeUrlsCache", PURGE, QFIXED) end,
    info = "the whole TC3 request: JSON body, canonical request, two SHA-256, derived key, headers" },
  { "cnc client:prepare() (Wangsu purge)", "sha256",
    function() return ws:prepare("PurgeItemIdReceiver", WSPURGE, QFIXED) end,
    info = "the whole CNC-HMAC-SHA256 request: JSON body, canonical request, two SHA-256, headers" },
  { "plcloud client:prepare() (cache_flush)", "sha256",
    pl_ok and function() return pl:prepare("cdn.cache_flush", PLFLUSH, PLFIXED) end,
    info = "no signature: path, JSON body, X-Auth-Token header, request table" },
  { "aliyun_rpc_v2 core signer", "sha1",
    aliyun_v2 and function() return aliyun_v2(client, PARAMS, "GET") end },
  { "acs3_hmac_sha256 core signer", "sha256",
    acs3 and function() return acs3(client, STS) end },
  { "tc3_hmac_sha256 core signer", "sha256",
    tc3 and function() return tc3(client, "2015-08-06", "cdn", STS) end },
  { "cnc_hmac_sha256 core signer", "sha256",
    cnc and function() return cnc(client, STS) end },
  { "wangsu_basic core signer (Date)", "sha1",
    wangsu_basic and function() return wangsu_basic(client, "Thu, 01 Jan 2015 00:00:00 GMT") end },
  { "qcloud_v2 core signer (own sts)", "sha1", qcloud_v2 and function()
    return qcloud_v2(client, QPARAMS, "GET", nil, true, "cdn.api.qcloud.com", "/v2/index.php", "sha1")
  end },
  { "core.hmac sha1 (Lua->C)", "sha1",
    function() return core.hmac("sha1", KEY, STS) end },
  { "core.hmac sha256 (Lua->C)", "sha256",
    function() return core.hmac("sha256", KEY, STS) end },
}

-- sanity: the core signer signs what prepare() signs, else it is left out
if aliyun_v2 then
  local ok, _, sts = pcall(aliyun_v2, client, PARAMS, "GET", nil, true)
  if not ok or sts ~= STS then
    io.stderr:write("bench/sign.lua: core.signers.aliyun_rpc_v2 does not sign what prepare() signs; left out\n")
    for _, sc in ipairs(SCHEMES) do
      if sc[1] == "aliyun_rpc_v2 core signer" then sc[3] = nil end
    end
  end
end

local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function bare()
  local cmd = ("%s %s %s %d"):format(shq(BARE), shq(STS), shq(KEY), N)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  local r = {}
  for name, ns in out:gmatch("(%S+) ([%d.]+)") do r[name] = tonumber(ns) end
  assert(ok and r.sha1 and r.sha256, "bench/sign.lua: " .. BARE .. " failed: " .. out)
  return r
end

local function time(f, n)
  local t = core.monotime()
  for _ = 1, n do f() end
  return (core.monotime() - t) / n * 1e9
end

local median = require("stats").median

-- iterations per round for each scheme: about SECONDS, at most N
local active, iters = {}, {}
for _, s in ipairs(SCHEMES) do
  if s[3] then
    active[#active + 1] = s
    local ns = time(s[3], 2000) -- also a warm-up
    iters[s] = math.max(1000, math.min(N, math.floor(SECONDS * 1e9 / ns)))
  end
end

local base = { sha1 = {}, sha256 = {}, sha1_ctx = {} }
local got = {}
for _, s in ipairs(active) do got[s] = {} end
for r = 1, ROUNDS do
  local b = bare()
  for k, v in pairs(b) do if base[k] then base[k][r] = v end end
  for _, s in ipairs(active) do got[s][r] = time(s[3], iters[s]) end
  collectgarbage()
end

print(("signing: %d-byte Alibaba RPC v2 string-to-sign, median of %d interleaved rounds")
  :format(#STS, ROUNDS))
print(("  %-42s %8s  %-7s %6s"):format("", "ns/op", "vs bare", "ratio"))
local bare_ns = { sha1 = median(base.sha1), sha256 = median(base.sha256) }
print(("  %-42s %8.0f  %-7s %6s"):format("bare HMAC() sha1 (C, baseline)", bare_ns.sha1, "", "1.00"))
print(("  %-42s %8.0f  %-7s %6s"):format("bare HMAC() sha256 (C, baseline)", bare_ns.sha256, "", "1.00"))
if #base.sha1_ctx > 0 then
  local ns = median(base.sha1_ctx)
  print(("  %-42s %8.0f  %-7s %6.2f   (info: keyed EVP_MAC_CTX kept, dup'ed per op)")
    :format("bare EVP_MAC sha1, reused ctx", ns, "sha1", ns / bare_ns.sha1))
end
for _, s in ipairs(active) do
  local ns = median(got[s])
  local ratio = ns / bare_ns[s[2]]
  if s.info then
    print(("  %-42s %8.0f  %-7s %6.2f   (info: %s)"):format(s[1], ns, s[2], ratio, s.info))
  else
    print(("  %-42s %8.0f  %-7s %6.2f   target <= 2: %s"):format(s[1], ns, s[2], ratio,
      ratio <= 2 and "met" or "MISSED"))
  end
end
client:close()
