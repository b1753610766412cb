-- Wangsu / ChinaNetCenter (CDNetworks): CNC-HMAC-SHA256 and the legacy
-- Basic scheme (vectors), the 32 report APIs and the purge/prefetch/quota
-- APIs as data, usage mistakes, and every API against the emulator (its
-- own signature verification and API table).
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "emu"
local samples = require "samples"

local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.truthy(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
end

local function ws(extra)
  local o = { access_key = "testAK", secret_key = "testSK" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return cdnkit.wangsu(o)
end

describe("wangsu: the API data", function()
  it("has the 32 report APIs and the 6 purge/prefetch/quota APIs, each a method", function()
    local api = cdnkit.api("wangsu")
    assert.equal(38, #api.actions)
    local c = ws()
    for _, a in ipairs(api.actions) do
      assert.is_function(c[a.name], a.name)
      assert.truthy(a.path:match("^/"), a.name)
    end
    for _, n in ipairs { "PurgeItemIdReceiver", "PurgeItemIdQuery", "FetchItemIdReceiver", "FetchItemIdQuery",
                         "PurgeQuota", "PrefetchQuota", "Querydomaintotaltraffic", "Querysumuptrafficunderaccount" } do
      assert.is_function(c[n], n)
    end
    assert.equal("GET", c:help("Querysumuptrafficunderaccount").method)
    assert.equal("/api/report/flow", c:help("Querysumuptrafficunderaccount").path)
    local vendors = table.concat(cdnkit.vendors(), ",")
    assert.truthy(vendors:find("wangsu", 1, true))
  end)
end)

describe("wangsu: CNC-HMAC-SHA256", function()
  it("reproduces the POST vector (query not signed, the body hashed byte for byte)", function()
    local req = ws():prepare("Querydomaintotaltraffic", {
      dateFrom = "2024-01-01T00:00:00+08:00", dateTo = "2024-01-02T00:00:00+08:00", type = "daily",
      ["domain-list"] = { ["domain-name"] = { "www.example.com" } },
    }, { timestamp = 1700000000, payload = '{"domain-list": {"domain-name": ["www.example.com"]}}',
         explain = true })
    assert.equal("59531ceb688975c1b68609c22bb67ef460cc1fe80b4a68686f7cc0f253372f1d", req.explain.signature)
    assert.equal("POST\n/api/report/domainflow\n\ncontent-type:application/json\nhost:open.chinanetcenter.com\n\n" ..
      "content-type;host\ned62bd686f063e791a4bc084f1afeb8a9b984bbf76f8c0071e7a3326c946e361", req.explain.canonical)
    assert.equal('{"domain-list": {"domain-name": ["www.example.com"]}}', req.body)
    assert.equal("https://open.chinanetcenter.com/api/report/domainflow?dateFrom=2024-01-01T00%3A00%3A00%2B08%3A00" ..
      "&dateTo=2024-01-02T00%3A00%3A00%2B08%3A00&type=daily", req.url)
    assert.equal("CNC-HMAC-SHA256 Credential=testAK, SignedHeaders=content-type;host, Signature=" ..
      req.explain.signature, req.headers.Authorization)
    assert.equal("AKSK", req.headers["x-cnc-auth-method"])
    assert.equal("testAK", req.headers["x-cnc-accessKey"])
    assert.equal("1700000000", req.headers["x-cnc-timestamp"])
    -- without a pinned payload, the body cdnkit sends is the body it hashed
    local r2 = ws():prepare("Querydomaintotaltraffic", {
      dateFrom = "2024-01-01T00:00:00+08:00", dateTo = "2024-01-02T00:00:00+08:00",
      ["domain-list"] = { ["domain-name"] = { "www.example.com" } } }, { explain = true })
    assert.equal(core.sha256_hex(r2.body), r2.explain.canonical:match("(%x+)$"))
  end)

  it("reproduces the GET vector (the query signed decoded)", function()
    local req = ws():prepare("Querysumuptrafficunderaccount", {
      datefrom = "2024-01-01T00:00:00+08:00", dateto = "2024-01-02T00:00:00+08:00", type = "daily",
    }, { timestamp = 1700000000, explain = true })
    assert.equal("594884adc52eb98980957650bb93b310fba4a30e07ef0746806470b716af29bf", req.explain.signature)
    assert.truthy(req.explain.canonical:find("\ndatefrom=2024-01-01T00:00:00+08:00&dateto=2024-01-02T00:00:00+08:00&type=daily\n",
      1, true))
    assert.is_nil(req.body)
    assert.equal("GET", req.method)
  end)

  it("reproduces the legacy Basic vector (username, api_key, Date)", function()
    local c = cdnkit.wangsu { username = "testuser", api_key = "testapikey" }
    local req = c:prepare("PurgeQuota", {}, { date = "Thu, 01 Jan 2015 00:00:00 GMT", explain = true })
    assert.equal("/98DiKVEmZsk2CuJDtHeS+aARGE=", req.explain.signature)
    assert.equal("Basic dGVzdHVzZXI6Lzk4RGlLVkVtWnNrMkN1SkR0SGVTK2FBUkdFPQ==", req.headers.Authorization)
    assert.equal("Thu, 01 Jan 2015 00:00:00 GMT", req.headers.Date)
    assert.truthy(c:prepare("PurgeQuota", {}).headers.Date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    raises_with("not both", function()
      cdnkit.wangsu { username = "u", api_key = "k", access_key = "a", secret_key = "s" }
    end)
  end)

  it("never shows the secret; Accept-Language when set", function()
    local c = ws { language = "en-US" }
    local req = c:prepare("PurgeQuota", {}, { explain = true })
    assert.equal("en-US", req.headers["Accept-Language"])
    for _, v in pairs(req.explain) do assert.falsy(tostring(v):find("testSK", 1, true)) end
    assert.falsy(tostring(c):find("testSK", 1, true))
    raises_with("option 'language'", function() ws { language = "fr" } end)
  end)
end)

describe("wangsu: usage mistakes raise before sending", function()
  local c = ws()
  it("dates not in yyyy-MM-ddTHH:mm:ss+08:00", function()
    raises_with("parameter 'dateFrom' must be YYYY%-MM%-DDThh:mm:ss%+08:00", function()
      c:Querydomaintotaltraffic { dateFrom = "2024-01-01 00:00:00", dateTo = "2024-01-02T00:00:00+08:00",
        ["domain-list"] = { ["domain-name"] = { "a.com" } } }
    end)
  end)
  it("fields inside the report structures: domain lists are arrays, at most 20", function()
    local function q(dl)
      return c:prepare("Querydomaintotaltraffic", { dateFrom = "2024-01-01T00:00:00+08:00",
        dateTo = "2024-01-02T00:00:00+08:00", ["domain-list"] = dl })
    end
    raises_with("field 'domain%-name' must be an array, got string", function() q { ["domain-name"] = "a.com" } end)
    local d = {}
    for i = 1, 21 do d[i] = "d" .. i .. ".example.com" end
    raises_with("field 'domain%-name' has 21 items; the documented limit is 20", function()
      q { ["domain-name"] = d }
    end)
    raises_with("field 'stream' must be an array", function()
      c:Querystreamtrafficundermalbdomain { dateFrom = "2024-01-01T00:00:00+08:00",
        dateTo = "2024-01-01T01:00:00+08:00", dataType = "flow",
        domainStream = { { domain = "a.com", stream = "s1" } } }
    end)
    -- (the dates travel in the query string: the body is the domain list alone)
    assert.equal('{"domain-list":{"domain-name":["a.com"]}}', q({ ["domain-name"] = { "a.com" } }).body)
  end)
  it("too many domains, an unknown dataInterval", function()
    local d = {}
    for i = 1, 21 do d[i] = "d" .. i .. ".example.com" end
    raises_with("parameter 'domain' has 21 items", function()
      c:Reportflowispprovinceservice { dateFrom = "2024-01-01T00:00:00+08:00", dateTo = "2024-01-01T01:00:00+08:00",
                                       domain = d }
    end)
    raises_with("parameter 'dataInterval' must be one of", function()
      c:Reportflowispprovinceservice { dateFrom = "2024-01-01T00:00:00+08:00", dateTo = "2024-01-01T01:00:00+08:00",
                                       domain = { "a.com" }, dataInterval = "7m" }
    end)
  end)
  it("a directory without a trailing '/', a URL without http://", function()
    raises_with("parameter 'dirs' item 1", function()
      c:PurgeItemIdReceiver { dirs = { "https://a.example.com/static" } }
    end)
    raises_with("parameter 'urls' item 1 must be a URL", function()
      c:PurgeItemIdReceiver { urls = { "a.example.com/x" } }
    end)
  end)
  it("urls and dirs together at most 500 in a direct call", function()
    local u, d = {}, {}
    for i = 1, 400 do u[i] = "https://a.example.com/" .. i end
    for i = 1, 101 do d[i] = "https://a.example.com/d" .. i .. "/" end
    raises_with("parameters 'urls' and 'dirs' hold 501 items together", function()
      c:PurgeItemIdReceiver { urls = u, dirs = d }
    end)
  end)
  it("quota answers: code 0 is success, 1 failure; a missing figure is no pass", function()
    local answer
    local s = ws { retry = false, rate = false, transport = function(req)
      if req.url:find("/ccm/purge/quota", 1, true) then return 200, {}, answer end
      return 200, {}, '{"Code":1,"Message":"ok","itemId":"i1"}'
    end }
    answer = '{"code":1,"message":"system error"}'
    local res, err = s:PurgeQuota {}
    assert.is_nil(res)
    assert.equal("1", err.code)
    local r
    r, err = s:refresh { urls = { "https://a.example.com/1" }, check_quota = true }
    assert.is_nil(r)
    answer = '{"code":0,"message":"success"}'
    r, err = s:refresh { urls = { "https://a.example.com/1" }, check_quota = true }
    assert.is_nil(r)
    assert.equal("bad_response", err.code)
    answer = '{"code":0,"message":"success","remainingUrlQuota":10,"remainingDirQuota":1}'
    assert.is_true(s:refresh({ urls = { "https://a.example.com/1" }, check_quota = true }).ok)
  end)
  it("plans purges of at most 500 per call and prefetches of at most 400", function()
    local u, d = {}, {}
    for i = 1, 1200 do u[i] = "https://a.example.com/" .. i end
    for i = 1, 600 do d[i] = "https://a.example.com/d" .. i .. "/" end
    local plan = c:refresh { urls = u, dirs = d, params = { urlAction = "delete" }, dry_run = true }
    assert.equal(5, #plan.batches) -- 500 + 500 + 200 URLs, 500 + 100 dirs
    for _, b in ipairs(plan.batches) do
      assert.equal("PurgeItemIdReceiver", b.action)
      assert.truthy(#b.urls <= 500)
    end
    assert.equal("delete", plan.batches[1].params.urlAction)
    plan = c:prefetch { urls = u, dry_run = true }
    assert.equal(3, #plan.batches)
    assert.equal("FetchItemIdReceiver", plan.batches[1].action)
    raises_with("params.dirAction does not apply", function()
      c:refresh { urls = { "https://a.example.com/1" }, params = { dirAction = "expire" }, dry_run = true }
    end)
  end)
end)

describe("wangsu against the emulator", function()
  local e
  setup(function() e = emu.start("wangsu", { ["task-seconds"] = 0.3 }) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  it("calls every one of the 38 APIs once (the emulator checks method, URI, fields, signature)", function()
    local c = emu.client(e)
    local failed = {}
    -- values the emulator checks beyond their type
    local OVERRIDE = { Querydomaintrafficunderspecificsettlementarea = { areaCode = "cn;ov" } }
    for _, a in ipairs(cdnkit.api("wangsu").actions) do
      local params = samples.params(a)
      for k, v in pairs(OVERRIDE[a.name] or {}) do params[k] = v end
      local res, err = c[a.name](c, params)
      if not res then failed[#failed + 1] = a.name .. ": " .. tostring(err) end
    end
    assert.same({}, failed)
    for _, entry in ipairs(e:stats().request_log) do assert.equal("aksk", entry.auth) end
  end)

  it("purges, waits until every item is success, checks the quota", function()
    local c = emu.client(e)
    local urls = {}
    for i = 1, 700 do urls[i] = "https://www.example.com/" .. i end
    local report = c:refresh { urls = urls, dirs = { "https://www.example.com/static/" }, check_quota = true }
    assert.is_true(report.ok, report.failed[1] and tostring(report.failed[1].err))
    assert.is_true(report.quota_checked)
    assert.equal(3, report.batches)
    local st = report:wait { timeout = 10, interval = 0.2 }
    assert.is_true(st.complete)
    assert.equal(3, #st.done)
    local q = assert(c:PurgeQuota {})
    assert.is_number(q.remainingUrlQuota)
    local pre = c:prefetch { urls = { "https://www.example.com/1" } }
    assert.is_true(pre:wait({ timeout = 10, interval = 0.2 }).complete)
  end)

  it("legacy Basic credentials work too", function()
    local c = cdnkit.wangsu { username = "wangsu-user", api_key = "wangsu-apikey", endpoint = e.url }
    assert.is_table(c:PurgeQuota {})
    assert.equal("basic", e:stats().request_log[1].auth)
    local bad = cdnkit.wangsu { username = "wangsu-user", api_key = "nope", endpoint = e.url, retry = false }
    local res, err = bad:PurgeQuota {}
    assert.is_nil(res)
    assert.truthy(err.http_status == 401 or err.http_status == 403)
  end)

  it("legacy credentials from the environment alone; errors name the kind in use", function()
    local function run(env, code)
      local cpath = os.getenv("CDNKIT_CPATH") or "build/5.4/?.so"
      local interp = cpath:find("5.1", 1, true) and "luajit" or "lua5.4"
      local p = io.popen("env -u WANGSU_ACCESS_KEY -u WANGSU_SECRET_KEY " .. env ..
        " LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. cpath .. ";;' " .. interp ..
        " -e '" .. code .. "' 2>&1")
      local out = p:read("a")
      p:close()
      return out
    end
    local out = run("WANGSU_USERNAME=wangsu-user WANGSU_API_KEY=wangsu-apikey",
      "local c = require(\"cdnkit\").wangsu { endpoint = \"" .. e.url .. "\" }; " ..
      "print(c:PurgeQuota({}) and \"ok\")")
    assert.truthy(out:find("ok", 1, true), out)
    out = run("WANGSU_USERNAME=wangsu-user", "require(\"cdnkit\").wangsu {}")
    assert.truthy(out:find("give username and api_key", 1, true), out)
  end)

  it("signs again with the server's clock after a stale-timestamp answer", function()
    local far = emu.start("wangsu", { skew = 3600 })
    local c = emu.client(far, { retry = false })
    local res, err = c:PurgeQuota {}
    assert.is_table(res, tostring(err))
    assert.equal(2, #far:stats().request_log)
    far:stop()
  end)

  it("a wrong secret is an error with the request id; 429 is retried", function()
    local bad = emu.client(e, { secret_key = "wrong", retry = false })
    local res, err = bad:PurgeQuota {}
    assert.is_nil(res)
    assert.is_string(err.request_id)
    assert.truthy(err.hint:find("secret_key", 1, true))
    local c = emu.client(e, { retry = { attempts = 3, base = 0.01, max = 0.02 } })
    e:faults { { kind = "throttle", count = 1 } }
    assert.is_table(c:PurgeQuota {})
  end)

  it("cdnkit.refresh purges on Alibaba, Tencent and Wangsu at once", function()
    local ea, eq = emu.start("aliyun", {}), emu.start("qcloud", {})
    local ali = emu.client(ea, { version = false })
    local qc = emu.client(eq, { version = false })
    local w = emu.client(e)
    local r = cdnkit.refresh({ ali, qc, w }, { urls = { "https://host-0001.example.com/a.js" },
      params = { wangsu = { urlAction = "expire" } } })
    assert.is_true(r.ok)
    assert.equal(3, #r)
    local all = r:wait { timeout = 10, interval = 0.2 }
    assert.is_true(all)
    ea:stop(); eq:stop()
  end)
end)
