-- Edge cases found in review: servers that page differently than asked,
-- bad transports, ambiguous vendor errors, validation corners, clock and
-- pacing behaviour.  Fake vendors go through the `transport` option.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local validate = require "cdnkit.validate"
local emu = require "emu"

-- fn must raise, with a message matching the Lua pattern (which names the
-- parameter or option at fault): a bare "it raised" passes for any bug
local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching: " .. pattern)
  assert.matches(pattern, tostring(err))
end

local function form(body)
  local t = {}
  for k, v in (body or ""):gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

-- a fake Tencent: handler(params) -> Lua table (the JSON envelope)
local function fake_qcloud(handler, extra)
  local o = { secret_id = "a", secret_key = "b", version = "v2",
              retry = { attempts = 3, base = 0.001, max = 0.002 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  o.transport = function(req)
    local body = handler(form(req.body))
    if type(body) ~= "string" then body = core.json_encode(body) end
    return 200, { ["Content-Type"] = "application/json" }, body
  end
  return cdnkit.qcloud(o)
end

local function hosts(from, to)
  local t = setmetatable({}, core.array_mt)
  for i = from, to do t[#t + 1] = { id = i, host = "h" .. i .. ".example.com" } end
  return t
end

describe("pagination against servers that page their own way", function()
  it("keeps going after a short page while the total says there is more", function()
    local calls = 0
    local c = fake_qcloud(function(p)
      calls = calls + 1
      local off = tonumber(p.offset)
      return { code = 0, data = { total = 120, hosts = hosts(off + 1, math.min(off + 20, 120)) } }
    end)
    local n = 0
    for _ in c:each("DescribeCdnHosts", { limit = 1000 }) do n = n + 1 end
    assert.equal(120, n)
    assert.equal(6, calls)
  end)
  it("raises instead of looping when the server ignores the offset", function()
    local calls = 0
    local c = fake_qcloud(function()
      calls = calls + 1
      return { code = 0, data = { hosts = hosts(1, 10) } }
    end)
    local ok, err = pcall(function() for _ in c:each("DescribeCdnHosts", { limit = 10 }) do end end)
    assert.is_false(ok)
    assert.equal("json", err.code)
    assert.equal(2, err.page)
    assert.equal(2, calls)
  end)
  it("raises when the items are not where the API data says", function()
    local c = fake_qcloud(function() return { code = 0, data = { total = 5, list = hosts(1, 5) } } end)
    local ok, err = pcall(function() for _ in c:each("DescribeCdnHosts", {}) do end end)
    assert.is_false(ok)
    assert.equal("json", err.code)
  end)
  it("accepts a numeric-string page size", function()
    local c = fake_qcloud(function(p)
      local off = tonumber(p.offset)
      return { code = 0, data = { total = 7, hosts = hosts(off + 1, math.min(off + 5, 7)) } }
    end)
    local n = 0
    for _ in c:each("DescribeCdnHosts", { limit = "5" }) do n = n + 1 end
    assert.equal(7, n)
  end)
end)

describe("ambiguous vendor failures", function()
  it("Tencent 6000 is retried for reads but never resent for a create", function()
    local sent = {}
    local c = fake_qcloud(function(p)
      sent[p.Action] = (sent[p.Action] or 0) + 1
      return { code = 6000, message = "internal error", codeDesc = "InternalError" }
    end)
    local res, err = c:AddCdnHost { host = "a.com", projectId = 0, hostType = "cname", origin = "1.1.1.1" }
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    assert.equal(1, sent.AddCdnHost)
    c:GetPayType {}
    assert.equal(3, sent.GetPayType)
  end)
end)

describe("bad transports never lose work", function()
  it("a transport returning garbage fails its batch, the report stays whole", function()
    local n = 0
    local c = fake_qcloud(function() return { code = 0, data = { count = 1, task_id = "1" } } end)
    local st = c:_state()
    local good = st.send
    st.send = function(req)
      n = n + 1
      if n == 2 then return "200", {}, "{}" end
      if n == 3 then return 200, {}, { not_a = "string" } end
      return good(req)
    end
    local urls = {}
    for i = 1, 4000 do urls[i] = "http://a.com/" .. i end
    local report = c:refresh { urls = urls, retry = false }
    local failed = 0
    for _, f in ipairs(report.failed) do failed = failed + #f.urls end
    assert.equal(4000, report.done + failed)
    assert.equal(2000, failed)
  end)
  it("lists with holes are refused, not half-sent", function()
    local c = fake_qcloud(function() return { code = 0 } end)
    raises_with("urls must be an array %(a Lua sequence without holes%)",
      function() c:refresh { urls = { "http://a/1", nil, "http://a/3" } } end)
  end)
  it("upper-case header names from a transport still reach clock learning", function()
    local skewed, calls = false, 0
    local c = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b", retry = false,
      transport = function(req)
        calls = calls + 1
        local p = form(req.body)
        local server = core.now() + 3 * 3600
        local ok = math.abs(tonumber(p.Timestamp) - server) < 7200
        skewed = skewed or not ok
        return 200, { Date = os.date("!%a, %d %b %Y %H:%M:%S GMT", math.floor(server)) },
          core.json_encode(ok and { code = 0 } or { code = 4500, message = "(4500)expired" })
      end }
    local res = c:GetPayType {}
    assert.is_table(res)
    assert.is_true(skewed)
    assert.equal(2, calls)
  end)
end)

describe("retry and pacing are really applied", function()
  it("backs off between attempts through the sleep function", function()
    local naps = {}
    local c = fake_qcloud(function(p)
      return #naps < 2 and { code = 4400, message = "(9163)too frequent" } or { code = 0 }
    end, { sleep = function(s) naps[#naps + 1] = s end, rate = false,
           retry = { attempts = 3, base = 0.5, max = 1 } })
    assert.is_table((c:GetPayType {}))
    assert.equal(2, #naps)
    assert.is_true(naps[1] >= 0 and naps[1] <= 0.5)
    assert.is_true(naps[2] >= 0 and naps[2] <= 1)
    assert.is_true(naps[1] + naps[2] > 0)
  end)
  it("paces single calls to the rate (lower bound on elapsed time)", function()
    local c = fake_qcloud(function() return { code = 0 } end, { rate = 20 })
    local t = core.monotime()
    for _ = 1, 30 do c:GetPayType {} end
    -- a burst of 20, then 20 per second: the last 10 need at least 0.5 s
    assert.is_true(core.monotime() - t >= 0.45)
  end)
  it("shares the vendor-wide rate between actions in one batch", function()
    local e = emu.start("qcloud", {})
    local qc = emu.client(e)
    local urls, dirs = {}, {}
    for i = 1, 25 do urls[i] = "http://host-0001.example.com/u" .. i end
    for i = 1, 25 do dirs[i] = "http://host-0001.example.com/d" .. i .. "/" end
    local t = core.monotime()
    local report = qc:refresh { urls = urls, dirs = dirs, batch_size = 1, concurrency = 8 }
    local dt = core.monotime() - t
    assert.is_true(report.ok)
    -- 50 requests at Tencent's 20/s with a burst of 20: at least 1.5 s
    assert.is_true(dt >= 1.4, "took " .. dt)
    qc:close(); e:stop()
  end)
  it("batches get the same free re-sign after a timestamp rejection", function()
    local e = emu.start("aliyun", {})
    local ali = emu.client(e, { retry = false })
    e:config { skew = 3600 }
    local report = ali:refresh { urls = { "http://a.com/1", "http://a.com/2" }, batch_size = 1 }
    assert.is_true(report.ok)
    ali:close(); e:stop()
  end)
  it("rejects bad retry policies at construction", function()
    raises_with("retry%.base must be seconds",
      function() fake_qcloud(function() end, { retry = { base = true } }) end)
    raises_with("retry%.max must be seconds",
      function() fake_qcloud(function() end, { retry = { max = -1 } }) end)
    raises_with("retry%.deadline must be a finite number of seconds > 0",
      function() fake_qcloud(function() end, { retry = { deadline = "x" } }) end)
  end)
end)

describe("validation corners", function()
  local qc = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b" }
  local ali = cdnkit.aliyun { access_key_id = "a", access_key_secret = "b" }
  local function raises(pat, f)
    local ok, msg = pcall(f)
    assert.is_false(ok)
    assert.truthy(tostring(msg):find(pat), tostring(msg))
  end
  it("enforces 'either the dates or taskId'", function()
    raises("give startDate and endDate, or taskId", function() qc:prepare("GetCdnRefreshLog", {}) end)
    assert.is_table(qc:prepare("GetCdnRefreshLog", { taskId = "1" }))
    assert.is_table(qc:prepare("GetCdnRefreshLog",
      { startDate = "2024-01-01 00:00:00", endDate = "2024-01-02 00:00:00" }))
  end)
  it("refuses empty required strings and list items, bad dates, NaN", function()
    raises("'DomainName' must not be empty", function() ali:prepare("DescribeCdnDomainDetail", { DomainName = "" }) end)
    raises("item 2 must not be empty", function() qc:prepare("RefreshCdnUrl", { urls = { "http://a/1", "" } }) end)
    raises("must be YYYY%-MM%-DDThh", function() ali:prepare("DescribeDomainBpsData", { StartTime = "2024-13-01T00:00Z" }) end)
    raises("must be YYYY%-MM%-DDThh", function() ali:prepare("DescribeDomainBpsData", { StartTime = "2024-01-01T00:001Z" }) end)
    raises("must be a string, got the number", function() ali:prepare("DescribeCdnDomainDetail", { DomainName = 0 / 0 }) end)
  end)
  it("one item may not smuggle in a second path", function()
    raises("contains the separator", function()
      ali:prepare("RefreshObjectCaches", { ObjectPath = { "a.com/1\na.com/2" } })
    end)
    -- the joined string form is split, and counted against the limit
    local many = {}
    for i = 1, 1001 do many[i] = "a.com/" .. i end
    raises("has 1001 items", function()
      ali:prepare("RefreshObjectCaches", { ObjectPath = table.concat(many, "\n") })
    end)
  end)
  it("null does not count as given", function()
    raises("one of the parameters", function() qc:prepare("OnlineHost", { host = cdnkit.null }) end)
  end)
  it("ids print as digits on every Lua", function()
    assert.equal("123456789012345", validate.id_string(123456789012345))
    assert.equal("1480069888795584532", validate.id_string("1480069888795584532"))
    assert.equal("0", validate.id_string(-0.0))
  end)
  it("signs the bracketed host of an IPv6 endpoint", function()
    local c = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b", endpoint = "http://[::1]:8080" }
    local r = c:prepare("GetPayType", {}, { explain = true })
    assert.truthy(r.explain.string_to_sign:find("^POST%[::1%]/v2/index%.php%?"))
  end)
  it("constructor mistakes point at the caller and echo no credentials", function()
    local ok, msg = pcall(function() local c = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b", timeout = -1 } return c end)
    assert.is_false(ok)
    assert.truthy(msg:match("^spec/edge_spec%.lua:%d+: "), msg)
    ok, msg = pcall(cdnkit.qcloud, { version = "v2", secret_id = "a", secret_key = "b", endpoint = "https://u:pw@x.com" })
    assert.falsy(msg:find("pw", 1, true))
    ok, msg = pcall(cdnkit.qcloud, { version = "v2", secret_id = "a", secret_key = "b", region = 5 })
    assert.truthy(msg:find("'region' must be a string", 1, true))
  end)
  it("hides a session token in traces", function()
    local seen
    local c = fake_qcloud(function() return { code = 0 } end,
      { token = "SESSIONTOKEN", trace = function(ev) if ev.request then seen = ev.request end end })
    c:GetPayType {}
    assert.falsy(seen.body:find("SESSIONTOKEN", 1, true))
    assert.truthy(seen.body:find("Token=***", 1, true))
  end)
  it("checks the quota of the vendors that have a quota API, purges the others unchecked", function()
    local e = emu.start("aliyun", {})
    local a = emu.client(e)
    local q = fake_qcloud(function() return { code = 0, data = { count = 1, task_id = "7" } } end)
    local r = cdnkit.refresh({ a, q }, { urls = { "http://a/1" }, check_quota = true })
    assert.is_true(r.ok)
    assert.is_true(r[1].quota_checked)
    assert.is_false(r[2].quota_checked)
    assert.equal(1, e:stats().by_action.DescribeRefreshQuota)
    -- asked of one vendor that has none, it is a usage mistake
    raises_with("qcloud: the vendor has no quota API",
      function() q:refresh { urls = { "http://a/1" }, check_quota = true } end)
    a:close(); e:stop()
  end)
  it("wait() is not complete when batches were rejected", function()
    local e = emu.start("aliyun", { task_seconds = 0.05 })
    local a = emu.client(e, { retry = false })
    e:faults { { kind = "http503", count = 1, action = "RefreshObjectCaches" } }
    local report = a:refresh { urls = { "http://a/1", "http://a/2" }, batch_size = 1, concurrency = 1 }
    assert.is_false(report.ok)
    local sum = report:wait { timeout = 5, interval = 0.05 }
    assert.is_false(sum.complete)
    assert.equal(1, sum.failed_batches)
    assert.equal(1, #sum.done)
    raises_with("wait: unknown option 'timout'", function() report:wait { timout = 1 } end)
    a:close(); e:stop()
  end)
end)

describe("first-use experience", function()
  local qc = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b" }
  local function raises(pat, f)
    local ok, msg = pcall(f)
    assert.is_false(ok)
    assert.truthy(tostring(msg):find(pat), tostring(msg))
  end
  it("help() and actions() print readably", function()
    local text = tostring(qc:help("RefreshCdnUrl"))
    assert.truthy(text:find("RefreshCdnUrl", 1, true))
    assert.truthy(text:find("urls", 1, true))
    assert.truthy(text:find("max 1000 items", 1, true))
    assert.truthy(text:find("guide of the command-line tool QcloudCdnTools_V2.py", 1, true))
    assert.truthy(tostring(qc:help()):find("67 actions", 1, true))
    assert.truthy(tostring(qc:actions()):find("RefreshCdnUrl\n", 1, true))
  end)
  it("a client without credentials says what to give", function()
    raises("no credentials found: give username and password, or set PLCLOUD_USERNAME and PLCLOUD_PASSWORD",
      function() return cdnkit.plcloud {} end)
  end)
  it("explains a dot instead of a colon, and suggests the right case", function()
    raises("with a colon", function() return qc.GetPayType {} end)
    raises("did you mean 'RefreshCdnUrl'", function() return qc:refreshCdnUrl {} end)
  end)
  it("a list parameter wants a list", function()
    raises("'urls' must be an array", function() return qc:prepare("RefreshCdnUrl", { urls = "http://a/1" }) end)
    raises("'urls' must be an array", function() return qc:prepare("RefreshCdnUrl", { urls = 5 }) end)
  end)
  it("prepare() checks its fixed values", function()
    raises("unknown option 'explian'", function() return qc:prepare("GetPayType", {}, { explian = true }) end)
    raises("nonce must be a positive integer", function() return qc:prepare("GetPayType", {}, { nonce = "x" }) end)
  end)
  it("a closed client says so at the caller", function()
    local c = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b" }
    c:close()
    assert.is_true(c:is_closed())
    local ok, msg = pcall(function() local r = c:GetPayType {} return r end)
    assert.is_false(ok)
    assert.truthy(msg:match("^spec/edge_spec%.lua:%d+: cdnkit: this client is closed"), msg)
  end)
end)
