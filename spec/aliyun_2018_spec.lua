-- Alibaba Cloud CDN API 2018-05-10 (the default) with signature V3
-- (ACS3-HMAC-SHA256) and V2: signing vectors, the API data, usage mistakes,
-- the moved-action hints and the purge planning.  Against the emulator:
-- spec/aliyun_2018_emu_spec.lua.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"

local V3_DATE, V3_NONCE = "2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d"
local KEYS = { access_key_id = "YourAccessKeyId", access_key_secret = "YourAccessKeySecret" }

local function client(extra)
  local o = {}
  for k, v in pairs(KEYS) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return cdnkit.aliyun(o)
end

local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.truthy(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
end

describe("aliyun 2018-05-10: the API data", function()
  local api = cdnkit.api("aliyun")

  it("is the default version, with all 176 actions as methods", function()
    assert.equal("2018-05-10", api.api_version)
    assert.equal(176, #api.actions)
    local c = client()
    assert.equal("2018-05-10", c:version())
    assert.equal(176, #c:actions())
    for _, a in ipairs(api.actions) do assert.is_function(c[a.name], a.name) end
  end)

  it("declares the HTTP method of each action as the SDK does (148 POST, 28 GET)", function()
    local n = { GET = 0, POST = 0 }
    for _, a in ipairs(api.actions) do n[a.http] = n[a.http] + 1 end
    assert.same({ GET = 28, POST = 148 }, n)
  end)

  it("marks the parameters that travel in the form body", function()
    local with_body = {}
    for _, a in ipairs(api.actions) do
      for _, p in ipairs(a.params or {}) do
        if p.body then with_body[a.name] = true end
      end
    end
    assert.truthy(with_body.RefreshObjectCaches)
    assert.is_nil(with_body.PushObjectCache)
    local n = 0
    for _ in pairs(with_body) do n = n + 1 end
    -- the 14 of the SDK's request table, and SetCdnFullDomainsBlockIP, whose
    -- IPList/OperationType the SDK also sends in the body
    assert.equal(15, n)
  end)

  it("help() shows the method, the rate and where each parameter travels", function()
    local h = client():help("RefreshObjectCaches")
    assert.equal("POST", h.method)
    assert.equal(50, h.limits.per_second)
    local body = {}
    for _, p in ipairs(h.params) do body[p.name] = p.body end
    assert.same({ ObjectPath = true, ObjectType = true, Force = true }, body)
    assert.truthy(tostring(h):find("in the form body", 1, true))
    assert.truthy(tostring(h):find("HTTP POST", 1, true))
  end)
end)

describe("aliyun 2018-05-10: signature V3", function()
  it("reproduces the vendor's published vector (ECS RunInstances)", function()
    local ecs = client { endpoint = "https://ecs.cn-shanghai.aliyuncs.com" }
    local req = ecs:prepare("RunInstances",
      { ImageId = "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", RegionId = "cn-shanghai" },
      { call = true, method = "POST", version = "2014-05-26", timestamp = V3_DATE, nonce = V3_NONCE,
        explain = true })
    assert.equal("06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0", req.explain.signature)
    assert.equal("ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259",
      req.explain.string_to_sign)
    assert.equal("host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
      req.explain.signed_headers)
    assert.equal("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=" .. req.explain.signed_headers ..
      ",Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0", req.headers.Authorization)
    assert.equal("https://ecs.cn-shanghai.aliyuncs.com/?ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai",
      req.url)
    assert.is_nil(req.body)
  end)

  it("reproduces the CDN vector (RefreshObjectCaches, form body)", function()
    local req = client():prepare("RefreshObjectCaches",
      { ObjectPath = { "https://www.example.com/a.jpg" }, ObjectType = "File" },
      { timestamp = V3_DATE, nonce = V3_NONCE, explain = true })
    assert.equal("153a791e214792011d651931184e47487eccfab8c0cf3c167ddabfe9fe158471", req.explain.signature)
    assert.equal("POST", req.method)
    assert.equal("https://cdn.aliyuncs.com/", req.url)
    assert.equal("ObjectPath=https%3A%2F%2Fwww.example.com%2Fa.jpg&ObjectType=File", req.body)
    assert.equal("application/x-www-form-urlencoded", req.headers["Content-Type"])
    assert.equal("fa0d10b3d5c16222cc6cf31cf5b45c483f1b73089f39a84f2c39d9e799ea6bab",
      req.headers["x-acs-content-sha256"])
    assert.equal("cdn.aliyuncs.com", req.headers.Host)
    assert.equal("RefreshObjectCaches", req.headers["x-acs-action"])
    assert.equal("2018-05-10", req.headers["x-acs-version"])
    -- explain shows the canonical request it signed, line by line
    local lines = {}
    for l in (req.explain.canonical .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    assert.equal("POST", lines[1])
    assert.equal("/", lines[2])
    assert.equal("", lines[3])
    assert.equal("content-type:application/x-www-form-urlencoded", lines[4])
    assert.equal("fa0d10b3d5c16222cc6cf31cf5b45c483f1b73089f39a84f2c39d9e799ea6bab", lines[#lines])
  end)

  it("puts query parameters in the URL, sorted and RFC 3986 encoded", function()
    local req = client():prepare("PushObjectCache",
      { ObjectPath = { "http://a.example.com/x y*~.jpg", "http://a.example.com/2" }, Area = "domestic" },
      { timestamp = V3_DATE, nonce = V3_NONCE })
    assert.equal("https://cdn.aliyuncs.com/?Area=domestic&ObjectPath=http%3A%2F%2Fa.example.com%2Fx%20y%2A~.jpg%0Ahttp%3A%2F%2Fa.example.com%2F2",
      req.url)
    assert.is_nil(req.body)
    assert.equal(core.sha256_hex(""), req.headers["x-acs-content-sha256"])
    assert.is_nil(req.headers["Content-Type"])
  end)

  it("signs each request with a fresh nonce and date, and never shows the secret", function()
    local c = client()
    local a = c:prepare("DescribeRefreshQuota", {}, { explain = true })
    local b = c:prepare("DescribeRefreshQuota", {}, { explain = true })
    assert.are_not.equal(a.headers["x-acs-signature-nonce"], b.headers["x-acs-signature-nonce"])
    assert.truthy(a.headers["x-acs-date"]:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
    for _, r in ipairs { a, b } do
      for _, v in pairs(r.explain) do assert.falsy(tostring(v):find("YourAccessKeySecret", 1, true)) end
      for _, v in pairs(r.headers) do assert.falsy(tostring(v):find("YourAccessKeySecret", 1, true)) end
    end
    assert.falsy(tostring(c):find("YourAccessKeySecret", 1, true))
  end)

  it("sends repeated lists as Name.1, Name.2 and tags as Tag.1.Key", function()
    local req = client():prepare("DescribeUserDomains",
      { Tag = { { Key = "env", Value = "prod" }, { Key = "team", Value = "edge" } }, PageSize = 500 },
      { timestamp = V3_DATE, nonce = V3_NONCE })
    assert.truthy(req.url:find("Tag.1.Key=env&Tag.1.Value=prod&Tag.2.Key=team&Tag.2.Value=edge", 1, true))
  end)
end)

describe("aliyun 2018-05-10: the method", function()
  it("is the action's (the SDK's); prepare may pin another, the method option is 2014-11-11's", function()
    local c = client()
    assert.equal("GET", c:prepare("DescribeDomainRealTimeBpsData", { DomainName = { "a.com" } }).method)
    assert.equal("POST", c:prepare("DescribeRefreshQuota", {}).method)
    raises_with("option 'method' is for version = \"2014%-11%-11\"", function() client { method = "GET" } end)
    assert.equal("GET", client({ version = "2014-11-11", method = "GET" }):prepare("DescribeCdnService", {}).method)
    local req = c:prepare("RefreshObjectCaches", { ObjectPath = { "https://a.example.com/1" } },
      { method = "GET", timestamp = V3_DATE, nonce = V3_NONCE, explain = true })
    -- a GET has no body: the form-body parameters go in the query
    assert.equal("GET", req.method)
    assert.is_nil(req.body)
    assert.truthy(req.url:find("?ObjectPath=https%3A%2F%2Fa.example.com%2F1", 1, true))
    assert.truthy(req.explain.canonical:find("^GET\n/\nObjectPath="))
  end)
end)

describe("aliyun 2018-05-10: signature V2", function()
  it("signs the same request with HMAC-SHA1: query in the URL, form-body parameters in the body", function()
    local c = client { signature = "v2" }
    local req = c:prepare("RefreshObjectCaches", { ObjectPath = { "https://www.example.com/a.jpg" } },
      { timestamp = V3_DATE, nonce = V3_NONCE, explain = true })
    assert.equal("POST", req.method)
    assert.equal("ObjectPath=https%3A%2F%2Fwww.example.com%2Fa.jpg", req.body)
    assert.truthy(req.url:find("Version=2018-05-10", 1, true))
    assert.truthy(req.url:find("Action=RefreshObjectCaches", 1, true))
    assert.falsy(req.url:find("ObjectPath", 1, true))
    assert.is_nil(req.headers.Authorization)
    -- the signature covers the body's parameters too
    assert.truthy(req.explain.string_to_sign:find("ObjectPath%3Dhttps", 1, true))
    local sig = core.hmac("sha1", "YourAccessKeySecret&", req.explain.string_to_sign, "base64")
    assert.equal(sig, req.explain.signature)
    assert.truthy(req.url:find("Signature=" .. core.pct_encode(sig), 1, true))
  end)
  it("a POST without body parameters keeps them in the URL", function()
    local req = client({ signature = "v2" }):prepare("DescribeRefreshQuota", {})
    assert.equal("POST", req.method)
    assert.is_nil(req.body)
    assert.truthy(req.url:find("Signature=", 1, true))
  end)
  it("refuses an unknown signature, and V3 on 2014-11-11", function()
    raises_with("option 'signature' must be \"v3\"", function() client { signature = "v4" } end)
    raises_with("2014%-11%-11 is signed with \"v2\" only", function()
      client { signature = "v3", version = "2014-11-11" }
    end)
    assert.equal("2014-11-11", client({ version = "2014-11-11", signature = "v2" }):version())
  end)
end)

describe("aliyun 2018-05-10: usage mistakes raise before sending", function()
  local c = client()
  local function urls(n, domains)
    local t = {}
    for i = 1, n do t[i] = ("https://d%d.example.com/%d.jpg"):format(i % (domains or 1), i) end
    return t
  end
  it("URLs of more than 10 domains in one ObjectPath", function()
    raises_with("RefreshObjectCaches: parameter 'ObjectPath' holds URLs of 11 domains; the documented limit is 10",
      function() c:RefreshObjectCaches { ObjectPath = urls(11, 11) } end)
    assert.is_table(c:prepare("RefreshObjectCaches", { ObjectPath = urls(40, 10) }))
  end)
  it("more than one Regex rule, more than 100 directories", function()
    raises_with("parameter 'ObjectPath' has 2 items; with ObjectType = Regex the documented limit is 1", function()
      c:RefreshObjectCaches { ObjectPath = { "https://a.example.com/.*%.jpg", "https://a.example.com/x.*" },
                              ObjectType = "Regex" }
    end)
    raises_with("with ObjectType = Directory the documented limit is 100", function()
      local d = {}
      for i = 1, 101 do d[i] = "https://a.example.com/d" .. i .. "/" end
      c:RefreshObjectCaches { ObjectPath = d, ObjectType = "Directory" }
    end)
  end)
  it("more than 100 URLs in a direct PushObjectCache call", function()
    raises_with("PushObjectCache: parameter 'ObjectPath' has 101 items; the documented limit is 100",
      function() c:PushObjectCache { ObjectPath = urls(101) } end)
  end)
  it("an ObjectType outside the enum, a non-boolean Force", function()
    raises_with("parameter 'ObjectType' must be one of File, Directory, Regex, ExQuery, got 'file'",
      function() c:RefreshObjectCaches { ObjectPath = urls(1), ObjectType = "file" } end)
    raises_with("parameter 'Force' must be a boolean", function()
      c:RefreshObjectCaches { ObjectPath = urls(1), Force = "yes" }
    end)
  end)
  it("PageSize beyond the documented maximum (DescribeUserDomains 500, DescribeRefreshTasks 100)", function()
    raises_with("PageSize' must be <= 500", function() c:DescribeUserDomains { PageSize = 501 } end)
    raises_with("PageSize' must be <= 100", function() c:DescribeRefreshTasks { PageSize = 101 } end)
  end)
  it("a 2014-11-11 action names its successor, or the version that has it", function()
    raises_with("DescribeDomainFlowData is not in API 2018%-05%-10.*use DescribeDomainTrafficData instead, " ..
      "or create the client with version = \"2014%-11%-11\"", function() return c.DescribeDomainFlowData end)
    raises_with("SetRefererConfig.*use BatchSetCdnDomainConfig", function() return c:SetRefererConfig {} end)
    raises_with("DescribeDomainSlowRatio.*removed it without a successor", function()
      return c.DescribeDomainSlowRatio
    end)
    local old = client { version = "2014-11-11" }
    raises_with("DescribeDomainTrafficData is not in API 2014%-11%-11.*version = \"2018%-05%-10\"", function()
      return old.DescribeDomainTrafficData
    end)
    raises_with("unknown action or method 'NoSuchThing'", function() return c.NoSuchThing end)
  end)
end)

describe("aliyun 2018-05-10: purge planning (dry_run)", function()
  local c = client()
  local function urls(n, domains)
    local t = {}
    for i = 1, n do t[i] = ("https://d%02d.example.com/%d.jpg"):format(i % domains, i) end
    return t
  end
  local function hosts(list)
    local h, n = {}, 0
    for _, u in ipairs(list) do
      local x = u:match("://([^/]+)")
      if not h[x] then h[x] = true; n = n + 1 end
    end
    return n
  end

  it("splits URLs to 1000 per call and 10 domains per call", function()
    local plan = c:refresh { urls = urls(2500, 25), dry_run = true }
    assert.is_true(plan.dry_run)
    local total = 0
    for _, b in ipairs(plan.batches) do
      assert.equal("RefreshObjectCaches", b.action)
      assert.truthy(#b.urls <= 1000)
      assert.truthy(hosts(b.urls) <= 10, "batch of " .. hosts(b.urls) .. " domains")
      assert.equal("File", b.params.ObjectType)
      total = total + #b.urls
    end
    assert.equal(2500, total)
    assert.equal(2500, plan.needed.refresh_url)
    assert.equal(3, #plan.batches) -- 25 domains of 100 URLs: 10 + 10 + 5 domains
  end)

  it("splits directories to 100 per call and prefetches to 100 per call", function()
    local dirs = {}
    for i = 1, 250 do dirs[i] = "https://a.example.com/d" .. i .. "/" end
    local plan = c:refresh { dirs = dirs, dry_run = true }
    assert.equal(3, #plan.batches)
    assert.equal("Directory", plan.batches[1].params.ObjectType)
    local pre = c:prefetch { urls = urls(250, 1), dry_run = true }
    assert.equal(3, #pre.batches)
    assert.equal("PushObjectCache", pre.batches[1].action)
  end)

  it("takes the vendor's purge options through params: Regex one rule a call, Force, ExQuery", function()
    local rules = { "https://a.example.com/.*%.jpg", "https://a.example.com/img/.*" }
    local plan = c:refresh { urls = rules, params = { ObjectType = "Regex", Force = true }, dry_run = true }
    assert.equal(2, #plan.batches)
    assert.equal("Regex", plan.batches[1].params.ObjectType)
    assert.is_true(plan.batches[1].params.Force)
    plan = c:refresh { urls = urls(1500, 1), params = { ObjectType = "ExQuery" }, dry_run = true }
    assert.equal(2, #plan.batches)
    assert.equal("ExQuery", plan.batches[2].params.ObjectType)
  end)

  it("checks params against the API data, naming the parameter", function()
    raises_with("unknown parameter 'Forse'", function()
      c:refresh { urls = urls(1, 1), params = { Forse = true }, dry_run = true }
    end)
    raises_with("parameter 'ObjectType' must be one of", function()
      c:refresh { urls = urls(1, 1), params = { ObjectType = "Everything" }, dry_run = true }
    end)
    raises_with("params.ObjectPath is what refresh/prefetch fill", function()
      c:refresh { urls = urls(1, 1), params = { ObjectPath = "x" } }
    end)
    raises_with("params.ObjectType applies to urls", function()
      c:refresh { dirs = { "https://a.example.com/d/" }, params = { ObjectType = "Regex" } }
    end)
  end)

  it("cdnkit.refresh takes params per vendor", function()
    local ali = client()
    local qc = cdnkit.qcloud { secret_id = "k", secret_key = "s", version = "v2" }
    local plan = cdnkit.refresh({ ali, qc }, { urls = { "http://a.example.com/1" },
      params = { aliyun = { Force = true } }, dry_run = true })
    assert.is_true(plan[1].batches[1].params.Force)
    assert.is_nil(plan[2].batches[1].params.Force)
    raises_with("params are given per vendor", function()
      cdnkit.refresh({ ali, qc }, { urls = { "http://a.example.com/1" }, params = { Force = true } })
    end)
  end)

  it("paces URL purges by Alibaba's 1,000 URLs a minute per domain (a sliding window)", function()
    local pace = require "cdnkit.pace"
    local st = client():_state()
    local t0 = 1000
    local function at(key, n, now) return (pace.reserve_window(st, key, 1000, 61, n, now or t0)) end
    assert.equal(t0, at("a", 1000))
    -- the vendor counts the last minute: the next 500 wait the whole window,
    -- not half of it (a token bucket would let them go at t0 + 30)
    assert.equal(t0 + 61, at("a", 500))
    -- and 1,000 more go only when both earlier batches are out of their window
    assert.equal(t0 + 122, at("a", 1000))
    -- another domain has its own window
    assert.equal(t0, at("b", 1000))
    -- a reservation given back frees its room, before or after it
    local _, e = pace.reserve_window(st, "c", 1000, 61, 600, t0 + 10)
    assert.equal(t0, at("c", 400))
    assert.equal(t0 + 61, at("c", 1)) -- 61 s after the first, within reach of the second (600 + 1)
    pace.release_window(st, "c", e)
    assert.equal(t0, at("c", 600))
    -- what left the window is forgotten
    assert.equal(t0 + 200, at("a", 1000, t0 + 200))
  end)
end)
