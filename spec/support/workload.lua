-- spec/support/workload.lua: a compact run through every C code path (JSON
-- both ways, all signers, single and concurrent transfers, every transport
-- error class, close and garbage collection), for valgrind (spec/valgrind.sh).
local core = require "cdnkit.core"
local cdnkit = require "cdnkit"
local emu = require "emu"

-- JSON
for _ = 1, 50 do
  local v = assert(core.json_decode('{"a":[1,2.5,"x\\u00e9\\ud83d\\ude00",null,true,[]],"b":{"c":9007199254740993}}'))
  assert(core.json_encode(v))
end
for _, bad in ipairs { "", "[", '{"a":', "[1,]", '"\\ud800"', string.rep("[", 5000), "01", "nul" } do
  assert(core.json_decode(bad) == nil)
end
assert(not pcall(core.json_encode, { print }))

-- encoders / digests
assert(core.pct_encode(string.rep("中 *~", 100)))
assert(core.hmac("sha256", "k", string.rep("m", 10000), "hex"))
assert(core.sha256_hex("abc"))
assert(core.b64encode("hello"))

-- signing and requests against both emulators
for _, vendor in ipairs { "aliyun", "qcloud" } do
  local e = emu.start(vendor, {})
  local c = emu.client(e, { retry = { attempts = 2, base = 0.001, max = 0.001 } })
  local api = cdnkit.api(vendor, emu.seed_version[vendor])
  local samples = require "samples"
  for i = 1, math.min(10, #api.actions) do
    local a = api.actions[i]
    assert(c[a.name](c, samples.params(a)))
  end
  local n = 0
  local action = vendor == "aliyun" and "DescribeUserDomains" or "DescribeCdnHosts"
  for _ in c:each(action, {}) do n = n + 1 end
  assert(n > 0)
  local urls = {}
  for i = 1, 300 do urls[i] = "http://host-0001.example.com/" .. i end
  local report = c:refresh { urls = urls, concurrency = 4 }
  assert(report.ok, "refresh failed")
  -- every error class
  local kinds = { "badjson", "html", "truncated", "close", "http500", "throttle" }
  for _, k in ipairs(kinds) do
    e:reset()
    e:faults { { kind = k, count = 4 } } -- 2 attempts, each of which libcurl may resend once
    local res, err = c:call(vendor == "aliyun" and "DescribeCdnService" or "GetCdnMiddleSourceList", {})
    assert(res == nil and err ~= nil, k)
  end
  e:reset()
  local slow = emu.client(e, { timeout = 0.2, retry = false })
  e:faults { { kind = "slow", count = 1, seconds = 1 } }
  assert(select(2, slow:call(vendor == "aliyun" and "DescribeCdnService" or "GetCdnMiddleSourceList", {})).code == "timeout")
  slow:close()
  c:close()
  e:stop()
end

-- today's versions: Alibaba 2018-05-10 (V3 and V2 signing, form bodies),
-- Tencent 3.0 (TC3, JSON bodies) and Wangsu (CNC-HMAC-SHA256, URIs per
-- action): a purge and its wait on each
for _, vendor in ipairs { "aliyun", "qcloud", "wangsu" } do
  local e = emu.start(vendor, { ["task-seconds"] = 0.1 })
  local sigs = vendor == "aliyun" and { "v3", "v2" } or { false }
  for _, sig in ipairs(sigs) do
    local c = emu.client(e, { version = false, signature = sig or nil,
                              retry = { attempts = 2, base = 0.001, max = 0.001 } })
    local urls = {}
    for i = 1, 30 do urls[i] = ("http://host-%04d.example.com/%d"):format(i % 12 + 1, i) end
    local report = c:refresh { urls = urls, dirs = { "http://host-0001.example.com/d/" } }
    assert(report.ok, "refresh failed")
    assert(report:wait({ timeout = 10, interval = 0.05 }).complete, "wait")
    local q = ({ aliyun = "DescribeRefreshQuota", qcloud = "DescribePurgeQuota", wangsu = "PurgeQuota" })[vendor]
    assert(c[q](c, {}))
    c:close()
  end
  e:stop()
end

local refused = cdnkit.aliyun { access_key_id = "a", access_key_secret = "b",
                                endpoint = "http://127.0.0.1:1", retry = false }
assert(select(2, refused:DescribeCdnService {}).code == "connect")
local t = core.curl()
local many = t:send_many({ { url = "http://127.0.0.1:1/" }, { url = "http://127.0.0.1:1/", timeout = 2 } },
                         2, { not_before = { 0, core.monotime() }, group = { 1, 1 }, limits = { 1 } })
assert(many[1].err and many[2].err)
-- every signing scheme, including the derived-key one, then close and collect
for _, name in ipairs { "acs3_hmac_sha256", "tc3_hmac_sha256", "cnc_hmac_sha256", "wangsu_basic" } do
  local c = core.new_client(core.client_class("w", {}), { key_id = "k", secret = "s" })
  if name == "tc3_hmac_sha256" then
    assert(core.signers[name](c, "2024-01-01", "cdn", "x"))
    assert(core.signers[name](c, "2024-01-02", "cdn", "x"))
  else
    assert(core.signers[name](c, "x"))
  end
  if name == "acs3_hmac_sha256" then c:close() end
end
assert(not pcall(core.signers.aliyun_rpc_v2, refused, { Bad = {} }, "GET"))
refused, t = nil, nil -- left to the garbage collector
collectgarbage()
collectgarbage()
print("workload ok")
