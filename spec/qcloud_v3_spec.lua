-- Tencent Cloud CDN API 3.0 (service cdn, version 2018-06-06; the default)
-- with TC3-HMAC-SHA256: vectors, the API data, usage mistakes, successor
-- hints, and every action against the emulator (its own TC3 verification).
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "emu"
local samples = require "samples"

local EX_ID, EX_KEY = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"

local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.truthy(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
end

local function ex(extra)
  local o = { secret_id = EX_ID, secret_key = EX_KEY }
  for k, v in pairs(extra or {}) do o[k] = v end
  return cdnkit.qcloud(o)
end

describe("qcloud 2018-06-06: the API data", function()
  local api = cdnkit.api("qcloud")
  it("is the default version, 52 actions, each a method; cdnkit.tencent is the same", function()
    assert.equal("2018-06-06", api.api_version)
    assert.equal(52, #api.actions)
    local c = ex()
    assert.equal("2018-06-06", c:version())
    for _, a in ipairs(api.actions) do assert.is_function(c[a.name], a.name) end
    assert.equal(cdnkit.qcloud, cdnkit.tencent)
    assert.equal("v2", ex({ version = "v2" }):version())
    assert.equal(67, #ex({ version = "v2" }):actions())
  end)
end)

describe("qcloud 2018-06-06: TC3-HMAC-SHA256", function()
  it("reproduces the official vector (service cvm, as published)", function()
    local cvm = ex { endpoint = "https://cvm.tencentcloudapi.com", region = "ap-guangzhou" }
    local req = cvm:prepare("DescribeInstances", {}, {
      call = true, timestamp = 1551113065, service = "cvm", version = "2017-03-12",
      content_type = "application/json; charset=utf-8",
      payload = '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}',
      explain = true })
    assert.equal("72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168", req.explain.signature)
    assert.equal("TC3-HMAC-SHA256 Credential=" .. EX_ID .. "/2019-02-25/cvm/tc3_request, " ..
      "SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
      req.headers.Authorization)
    assert.equal("5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
      req.explain.string_to_sign:match("([%x]+)$"))
    assert.equal("ap-guangzhou", req.headers["X-TC-Region"])
    assert.equal("2017-03-12", req.headers["X-TC-Version"])
    assert.equal("DescribeInstances", req.headers["X-TC-Action"])
  end)

  it("reproduces the CDN vectors: POST JSON (both content types) and GET", function()
    local c = ex()
    local req = c:prepare("PurgeUrlsCache", { Urls = { "https://www.example.com/a.jpg" } },
      { timestamp = 1700000000, explain = true })
    assert.equal('{"Urls":["https://www.example.com/a.jpg"]}', req.body)
    assert.equal("application/json", req.headers["Content-Type"]) -- signed byte for byte as sent
    assert.equal("0f7e8044ebcf1f7a9a24f09009e5ed066add4801f5118def302bc45828beaba3", req.explain.signature)
    assert.equal("https://cdn.tencentcloudapi.com/", req.url)
    assert.equal("POST", req.method)
    req = c:prepare("PurgeUrlsCache", { Urls = { "https://www.example.com/a.jpg" } },
      { timestamp = 1700000000, content_type = "application/json; charset=utf-8", explain = true })
    assert.equal("e5bf7241a45427620f9af750242e004f0aa3b967b414a3c3efd326b4391b9dac", req.explain.signature)
    assert.equal("application/json; charset=utf-8", req.headers["Content-Type"])
    req = c:prepare("DescribePurgeTasks", { Limit = 10, Offset = 0, PurgeType = "url" },
      { call = true, timestamp = 1700000000, method = "GET", explain = true })
    assert.equal("https://cdn.tencentcloudapi.com/?Limit=10&Offset=0&PurgeType=url", req.url)
    assert.is_nil(req.body)
    assert.equal("aec400c428222811b4d5eb73c40a3b3909252a5afa3578ccbc381d1200df7a25", req.explain.signature)
    -- explain shows the canonical request
    assert.truthy(req.explain.canonical:find("GET\n/\nLimit=10&Offset=0&PurgeType=url\ncontent-type:" ..
      "application/x-www-form-urlencoded\nhost:cdn.tencentcloudapi.com\n\ncontent-type;host\n", 1, true))
  end)

  it("scopes by the UTC date, sends integers and booleans as JSON values", function()
    local req = ex():prepare("DescribeDomains", { Limit = 5, Offset = 0,
      Filters = { { Name = "domain", Value = { "a.example.com" }, Fuzzy = true } } },
      { timestamp = 1700006399 + 3600, explain = true }) -- 2023-11-15 00:59:59 UTC, 08:59 CST
    assert.truthy(req.explain.string_to_sign:find("\n2023-11-15/cdn/tc3_request\n", 1, true))
    local body = core.json_decode(req.body)
    assert.equal(5, body.Limit)
    assert.equal(math.type and "integer" or "number", math.type and math.type(body.Limit) or type(body.Limit))
    assert.is_true(body.Filters[1].Fuzzy)
    assert.equal("a.example.com", body.Filters[1].Value[1])
  end)

  it("sends region, token and language headers when set; the token never shows", function()
    local events = {}
    local c = ex { region = "ap-shanghai", token = "TOPSECRETSESSIONTOKEN", language = "en-US",
                   trace = function(e) events[#events + 1] = e end,
                   transport = function() return 200, {}, '{"Response":{"RequestId":"r"}}' end }
    local req = c:prepare("DescribePurgeQuota", {})
    assert.equal("ap-shanghai", req.headers["X-TC-Region"])
    assert.equal("TOPSECRETSESSIONTOKEN", req.headers["X-TC-Token"])
    assert.equal("en-US", req.headers["X-TC-Language"])
    assert.is_table(c:DescribePurgeQuota {})
    for _, e in ipairs(events) do
      assert.falsy(core.json_encode(e):find("TOPSECRETSESSIONTOKEN", 1, true))
    end
    assert.falsy(tostring(c):find("TOPSECRETSESSIONTOKEN", 1, true))
    assert.falsy(tostring(c):find(EX_KEY, 1, true))
  end)
end)

describe("qcloud 2018-06-06: usage mistakes raise before sending", function()
  local c = ex()
  it("URLs without http:// or https://", function()
    raises_with("PurgeUrlsCache: parameter 'Urls' item 1 must be a URL starting with http:// or https://",
      function() c:PurgeUrlsCache { Urls = { "www.example.com/a.jpg" } } end)
  end)
  it("more than 1000 URLs in a direct PurgeUrlsCache call", function()
    local u = {}
    for i = 1, 1001 do u[i] = "https://a.example.com/" .. i end
    raises_with("parameter 'Urls' has 1001 items; the documented limit is 1000", function()
      c:PurgeUrlsCache { Urls = u }
    end)
  end)
  it("FlushType outside flush/delete, more than 30 Domains on a statistics call", function()
    raises_with("parameter 'FlushType' must be one of flush, delete", function()
      c:PurgePathCache { Paths = { "https://a.example.com/d/" }, FlushType = "all" }
    end)
    local d = {}
    for i = 1, 31 do d[i] = "d" .. i .. ".example.com" end
    raises_with("DescribeCdnData: parameter 'Domains' has 31 items; the documented limit is 30", function()
      c:DescribeCdnData { StartTime = "2026-12-01 00:00:00", EndTime = "2026-12-01 01:00:00",
                          Metric = "flux", Domains = d }
    end)
  end)
  it("nested structures are checked against their documented fields", function()
    raises_with("parameter 'Filters' item 1 has an unknown field 'Nme'", function()
      c:DescribeDomains { Filters = { { Nme = "domain", Value = { "a" } } } }
    end)
    raises_with("parameter 'Filters' item 1 misses the required field 'Value'", function()
      c:DescribeDomains { Filters = { { Name = "domain" } } }
    end)
    raises_with("parameter 'Headers' has 21 items", function()
      local h = {}
      for i = 1, 21 do h[i] = { Name = "X-" .. i, Value = "v" } end
      c:PushUrlsCache { Urls = { "https://a.example.com/1" }, Headers = h }
    end)
  end)
  it("options: sign_method is v2's, language is zh-CN or en-US", function()
    raises_with("option 'sign_method' is for version = \"v2\"", function() ex { sign_method = "HmacSHA256" } end)
    raises_with("option 'language' must be", function() ex { language = "fr" } end)
    assert.equal("v2", ex({ version = "v2", sign_method = "HmacSHA256" }):version())
  end)
  it("a v2 action name names its 3.0 successor", function()
    raises_with("RefreshCdnUrl is not in API 2018%-06%-06.*use PurgeUrlsCache instead, or create the " ..
      "client with version = \"v2\"", function() return c.RefreshCdnUrl end)
    raises_with("GetCdnRefreshLog.*use DescribePurgeTasks", function() return c:GetCdnRefreshLog {} end)
    raises_with("DescribeCdnHosts.*use DescribeDomains", function() return c.DescribeCdnHosts end)
    raises_with("PurgeUrlsCache is not in API v2.*version = \"2018%-06%-06\"", function()
      return ex({ version = "v2" }).PurgeUrlsCache
    end)
  end)
  it("plans purges: PurgeUrlsCache 1000, PurgePathCache 500 (flush unless told), PushUrlsCache 500", function()
    local u = {}
    for i = 1, 2500 do u[i] = "https://a.example.com/" .. i end
    local d = {}
    for i = 1, 600 do d[i] = "https://a.example.com/d" .. i .. "/" end
    local plan = c:refresh { urls = u, dirs = d, dry_run = true }
    local n = {}
    for _, b in ipairs(plan.batches) do
      n[b.action] = (n[b.action] or 0) + 1
      if b.action == "PurgePathCache" then assert.equal("flush", b.params.FlushType) end
    end
    assert.same({ PurgeUrlsCache = 3, PurgePathCache = 2 }, n)
    plan = c:refresh { dirs = d, params = { FlushType = "delete", Area = "overseas" }, dry_run = true }
    assert.equal("delete", plan.batches[1].params.FlushType)
    assert.equal("overseas", plan.batches[1].params.Area)
    plan = c:prefetch { urls = u, dry_run = true }
    assert.equal(5, #plan.batches)
    assert.equal("PushUrlsCache", plan.batches[1].action)
  end)
  it("sends false as JSON false, and refuses a purge option no batch takes", function()
    local req = c:prepare("PurgeUrlsCache", { Urls = { "https://a.example.com/1" }, UrlEncode = false })
    assert.equal(false, core.json_decode(req.body).UrlEncode)
    raises_with("params.FlushType does not apply to this purge", function()
      c:refresh { urls = { "https://a.example.com/1" }, params = { FlushType = "delete" }, dry_run = true }
    end)
  end)
  it("a call of another version is refused: v2 and 3.0 differ in host and signing", function()
    raises_with("version 'v2' needs a client of that version", function()
      c:call("RefreshCdnUrl", { urls = { "http://a.example.com/1" } }, { version = "v2" })
    end)
    raises_with("DescribeCdnHosts is not in API 2018%-06%-06.*DescribeDomains", function()
      for _ in c:each("DescribeCdnHosts", {}) do end
    end)
  end)
  it("an empty purge is an empty, successful report", function()
    local r = c:refresh { urls = {}, dirs = {} }
    assert.is_true(r.ok)
    assert.equal(0, r.batches)
    assert.is_true(r:wait({ timeout = 1 }).complete)
    raises_with("refresh needs urls or dirs", function() c:refresh {} end)
  end)
  it("sets UrlEncode for a batch with non-ASCII bytes, unless params say otherwise", function()
    local plan = c:refresh { urls = { "https://a.example.com/\228\184\173.jpg" }, dry_run = true }
    assert.is_true(plan.batches[1].params.UrlEncode)
    plan = c:refresh { urls = { "https://a.example.com/a.jpg" }, dry_run = true }
    assert.is_nil(plan.batches[1].params.UrlEncode)
    plan = c:refresh { urls = { "https://a.example.com/\228\184\173.jpg" }, params = { UrlEncode = false },
                       dry_run = true }
    assert.is_false(plan.batches[1].params.UrlEncode)
  end)
end)

describe("qcloud 2018-06-06: waits, quotas and JSON shapes (scripted answers)", function()
  local function scripted(answer)
    local sent = {}
    local c = ex { retry = false, rate = false, transport = function(req)
      local body = core.json_decode(req.body)
      sent[#sent + 1] = { action = req.headers["X-TC-Action"], body = body }
      return 200, { ["Content-Type"] = "application/json" }, core.json_encode({ Response = answer(req, body) })
    end }
    return c, sent
  end

  it("wait asks for every row of a task and does not call it done on a partial answer", function()
    local rows = {}
    for i = 1, 25 do rows[i] = { TaskId = "t1", Url = "https://a.example.com/" .. i, Status = "done" } end
    rows[25].Status = "fail"
    local c, sent = scripted(function(req, body)
      if body.Urls then return { TaskId = "t1", RequestId = "r" } end
      local page = {}
      for i = 1, math.min(body.Limit or 20, 20) do page[i] = rows[i] end -- a server that caps pages at 20
      return { PurgeLogs = page, TotalCount = 25, RequestId = "r" }
    end)
    local urls = {}
    for i = 1, 25 do urls[i] = "https://a.example.com/" .. i end
    local report = c:refresh { urls = urls }
    local st = report:wait { timeout = 0.3, interval = 0.1 }
    assert.equal(1000, sent[2].body.Limit)
    assert.equal("t1", sent[2].body.TaskId)
    assert.is_false(st.complete) -- 5 rows unseen, one of them failed
    assert.same({ "t1" }, st.running)
  end)

  it("check_quota: the purge's area row, or every area's smallest (global)", function()
    local c = scripted(function(req, body)
      if req.headers["X-TC-Action"] == "DescribePushQuota" then
        return { UrlPush = { { Area = "mainland", Available = 900, Total = 1000, Batch = 500 },
                             { Area = "overseas", Available = 0, Total = 1000, Batch = 500 } } }
      end
      return { TaskId = "t", RequestId = "r" }
    end)
    local u = { "https://a.example.com/1" }
    assert.is_table(c:prefetch { urls = u, params = { Area = "mainland" }, check_quota = true })
    local r, err = c:prefetch { urls = u, params = { Area = "global" }, check_quota = true }
    assert.is_nil(r)
    assert.equal(0, err.remaining)
    r, err = c:prefetch { urls = u, params = { Area = "overseas" }, check_quota = true }
    assert.equal("quota", err.code)
  end)

  it("an empty array of structures is sent as [], a structure must be a table of fields", function()
    local req = ex():prepare("PushUrlsCache", { Urls = { "https://a.example.com/1" }, Headers = {} })
    assert.truthy(req.body:find('"Headers":[]', 1, true))
    raises_with("parameter 'Origin' must be a table of named fields, not an array", function()
      ex():prepare("AddCdnDomain", { Domain = "a.example.com", ServiceType = "web", Origin = { "1.1.1.1" } })
    end)
  end)
end)

describe("qcloud 2018-06-06 against the emulator", function()
  local e
  setup(function() e = emu.start("qcloud", { hosts = 57, ["task-seconds"] = 0.3 }) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)
  local function client(extra)
    local o = { version = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return emu.client(e, o)
  end

  it("calls every one of the 52 actions once (the emulator checks names, types, required)", function()
    local c = client()
    local api = cdnkit.api("qcloud")
    -- values the emulator checks beyond their type
    local OVERRIDE = {
      DescribeCdnData = { Metric = "flux" }, DescribeOriginData = { Metric = "flux" },
      ModifyDomainConfig = { Route = "Referer.Switch", Value = '{"update":"on"}' },
    }
    -- a domain's state decides Start/Stop/Delete: such answers passed every
    -- check of the request (signature, names, types, required) first
    local STATE = { ["InvalidParameter.CdnHostInvalidStatus"] = true,
                    ["ResourceUnavailable.CdnHostIsNotOffline"] = true }
    local failed = {}
    for _, a in ipairs(api.actions) do
      local params = samples.params(a)
      for k, v in pairs(OVERRIDE[a.name] or {}) do params[k] = v end
      local res, err = c[a.name](c, params)
      local code = err and tostring(err.code) or ""
      if not res and not (code:match("^ResourceNotFound") or STATE[code]) then
        failed[#failed + 1] = a.name .. ": " .. tostring(err)
      end
    end
    assert.same({}, failed)
    local st = e:stats()
    for _, entry in ipairs(st.request_log) do
      assert.equal("3.0", entry.api)
      assert.equal("application/json", entry.content_type)
      assert.same({ "content-type", "host" }, entry.signed_headers)
    end
  end)

  it("GET works too (flattened query)", function()
    local c = client { method = "GET" }
    local res = assert(c:DescribeDomains { Limit = 5, Filters = { { Name = "status", Value = { "online" } } } })
    assert.equal(5, #res.Domains)
    assert.equal("GET", e:stats().request_log[1].method)
  end)

  it("strips the envelope and pages with Offset/Limit (TotalNumber)", function()
    local c = client()
    local n = 0
    for d in c:each("DescribeDomains", { Limit = 10 }) do
      n = n + 1
      assert.is_string(d.Domain)
    end
    assert.equal(57, n)
    local res = assert(c:DescribeDomains { Limit = 1 })
    assert.is_string(res.RequestId)
    assert.is_nil(res.Response)
  end)

  it("purges, waits until the tasks are done, and reports what it sent", function()
    local c = client()
    local urls = {}
    for i = 1, 1500 do urls[i] = ("https://host-0001.example.com/%d.js"):format(i) end
    urls[#urls + 1] = "https://host-0001.example.com/\228\184\173\230\150\135.jpg"
    local report = c:refresh { urls = urls, dirs = { "https://host-0001.example.com/static/" } }
    assert.is_true(report.ok)
    assert.equal(3, report.batches)
    assert.equal(1502, report.done)
    local encoded = 0
    for _, r in ipairs(report.results) do if r.params.UrlEncode then encoded = encoded + 1 end end
    assert.equal(1, encoded) -- the batch holding the non-ASCII URL
    local status = report:wait { timeout = 10, interval = 0.2 }
    assert.is_true(status.complete)
    assert.equal(3, #status.done)
    local st = e:stats()
    assert.truthy(st.executed.DescribePurgeTasks >= 3)
    local pre = c:prefetch { urls = { "https://host-0001.example.com/1.js" } }
    assert.is_true(pre.ok)
    assert.is_true(pre:wait({ timeout = 10, interval = 0.2 }).complete)
  end)

  it("check_quota reads DescribePurgeQuota and refuses work over what is left", function()
    e:config { purge_url_day_limit = 5 }
    local c = client()
    local urls = {}
    for i = 1, 6 do urls[i] = "https://host-0001.example.com/" .. i end
    local r, err = c:refresh { urls = urls, check_quota = true }
    assert.is_nil(r)
    assert.equal("quota", err.code)
    assert.equal(5, err.remaining)
    assert.is_nil(e:stats().executed.PurgeUrlsCache)
    r = assert(c:refresh { urls = { urls[1] }, check_quota = true })
    assert.is_true(r.quota_checked)
    e:config { purge_url_day_limit = 10000 }
  end)

  it("maps Response.Error to err: code, message, request_id; retries RequestLimitExceeded", function()
    local c = client { retry = { attempts = 3, base = 0.01, max = 0.02 } }
    e:faults { { kind = "error", code = "RequestLimitExceeded.UinLimitExceeded", count = 2 } }
    assert.is_table(c:DescribePurgeQuota {})
    assert.equal(3, #e:stats().request_log)
    local res, err = c:StartCdnDomain { Domain = "no-such.example.com" }
    assert.is_nil(res)
    assert.equal("ResourceNotFound.CdnHostNotExists", err.code)
    assert.is_string(err.request_id)
    assert.is_string(err.message)
    assert.equal(200, err.http_status)
    assert.is_false(err.retryable)
  end)

  it("InternalError is retried only for idempotent actions", function()
    local c = client { retry = { attempts = 3, base = 0.01, max = 0.02 } }
    e:faults { { kind = "error", code = "InternalError", count = 1 } }
    assert.is_table(c:DescribePurgeQuota {})
    e:reset()
    e:faults { { kind = "error", code = "InternalError", count = 1 } }
    local res, err = c:AddCdnDomain { Domain = "new.example.com", ServiceType = "web",
      Origin = { Origins = { "1.1.1.1" }, OriginType = "ip" } }
    assert.is_nil(res)
    assert.equal("InternalError", err.code)
    assert.is_true(err.ambiguous)
    assert.equal(1, #e:stats().request_log)
  end)

  it("re-signs once with the server's clock after AuthFailure.SignatureExpire", function()
    local far = emu.start("qcloud", { skew = 3600 })
    local c = emu.client(far, { version = false, retry = false })
    local res, err = c:DescribePurgeQuota {}
    assert.is_table(res, tostring(err))
    local log = far:stats().request_log
    assert.equal(2, #log)
    assert.equal("AuthFailure.SignatureExpire", log[1].error)
    far:stop()
  end)

  it("passes Response.DeprecatedWarning on to the trace (and to err)", function()
    e:config { deprecated_warning = "DescribePurgeQuota is deprecated" }
    local seen
    local c = client { trace = function(ev) if ev.event == "deprecated" then seen = ev end end }
    local res = assert(c:DescribePurgeQuota {})
    assert.equal("DescribePurgeQuota is deprecated", res.DeprecatedWarning)
    assert.equal("DescribePurgeQuota is deprecated", seen.warning)
    e:config { deprecated_warning = core.null }
  end)

  it("sends the token and region; a wrong secret is a SignatureFailure", function()
    local c = client { token = "cdnemu-sts-token", region = "ap-guangzhou" }
    assert.is_table(c:DescribePurgeQuota {})
    local log = e:stats().request_log
    assert.is_true(log[1].token)
    assert.equal("ap-guangzhou", log[1].region)
    local bad = client { secret_key = "wrong", retry = false }
    local res, err = bad:DescribePurgeQuota {}
    assert.is_nil(res)
    assert.equal("AuthFailure.SignatureFailure", err.code)
    assert.truthy(err.hint:find("secret_key", 1, true))
    local tok = client { token = "expired-token", retry = false }
    res, err = tok:DescribePurgeQuota {}
    assert.equal("AuthFailure.TokenFailure", err.code)
    assert.falsy(tostring(err):find("expired-token", 1, true))
  end)
end)
