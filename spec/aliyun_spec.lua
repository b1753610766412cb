-- Alibaba Cloud CDN client against the local emulator (spec/emulator), which
-- verifies every signature with its own Python implementation.
local cdnkit = require "cdnkit"
local emu = require "emu"
local samples = require "samples"

-- fn must raise, with a message matching the Lua pattern (which names the
-- parameter or option at fault): a bare "it raised" passes for any bug
local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching: " .. pattern)
  assert.matches(pattern, tostring(err))
end

describe("aliyun", function()
  local e, ali

  setup(function()
    e = emu.start("aliyun", { domains = 123, task_seconds = 0.2 })
    ali = emu.client(e)
  end)
  teardown(function()
    ali:close()
    e:stop()
  end)
  before_each(function() e:reset() end)

  describe("signature", function()
    local t = cdnkit.aliyun { access_key_id = "testid", access_key_secret = "testsecret",
                             version = "2014-11-11" }

    it("reproduces the document's worked example", function()
      local req = t:prepare("DescribeCdnService", {}, {
        timestamp = "2015-08-06T02:19:46Z", nonce = "9b7a44b0-3be1-11e5-8c73-08002700c460",
        explain = true })
      assert.equal("GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeCdnService%26Format%3DJSON%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D9b7a44b0-3be1-11e5-8c73-08002700c460%26SignatureVersion%3D1.0%26Timestamp%3D2015-08-06T02%253A19%253A46Z%26Version%3D2014-11-11",
        req.explain.string_to_sign)
      assert.equal("KkkQOf0ymKf4yVZLggy6kYiwgFs=", req.explain.signature)
      assert.truthy(req.url:find("&Signature=KkkQOf0ymKf4yVZLggy6kYiwgFs%3D", 1, true))
      assert.equal("GET", req.method)
      assert.is_nil(req.body)
    end)

    it("reproduces the encoding vector (space, newline, *, ~)", function()
      local req = t:prepare("RefreshObjectCaches",
        { ObjectPath = { "www.example.com/a b.jpg", "www.example.com/*x~y" }, ObjectType = "File" },
        { timestamp = "2015-08-06T02:19:46Z", nonce = "9b7a44b0-3be1-11e5-8c73-08002700c460",
          method = "GET", explain = true })
      assert.truthy(req.explain.canonical:find(
        "ObjectPath=www.example.com%2Fa%20b.jpg%0Awww.example.com%2F%2Ax~y&ObjectType=File", 1, true))
      assert.equal("y/x1Jvsi98+Xa3zzJjfWY0PIAy4=", req.explain.signature)
    end)

    it("never shows the secret in prepare's explanation", function()
      local req = t:prepare("DescribeCdnService", {}, { explain = true })
      for _, v in pairs(req.explain) do assert.falsy(tostring(v):find("testsecret", 1, true)) end
      assert.falsy(req.url:find("testsecret", 1, true))
    end)

    it("uses a fresh nonce and timestamp for every request", function()
      local a = t:prepare("DescribeCdnService", {})
      local b = t:prepare("DescribeCdnService", {})
      assert.not_equal(a.url:match("SignatureNonce=([^&]+)"), b.url:match("SignatureNonce=([^&]+)"))
      assert.truthy(a.url:match("Timestamp=%d%d%d%d%-%d%d%-%d%dT%d%d%%3A%d%d%%3A%d%dZ"))
    end)

    -- every character class through the whole pipeline: the emulator
    -- recomputes the signature and records what it decoded
    local matrix = {
      "sp ace", "plus+sign", "star*", "tilde~", "quote'", "paren(x)", "bang!", "per%cent",
      "amp&and", "eq=ual", "hash#frag", "new\nline", "中文路径", "emoji😀", "slash/and?q=1",
    }
    for _, s in ipairs(matrix) do
      it("signs and delivers ObjectPath with " .. s:gsub("\n", "\\n"), function()
        local path = "www.example.com/" .. s
        local res, err = ali:RefreshObjectCaches { ObjectPath = path }
        assert.is_nil(err)
        assert.is_string(res.RefreshTaskId)
        local st = e:stats()
        assert.equal(0, st.signature_failures)
        -- a newline inside a path splits it into two, as the document says
        local want = {}
        for line in (path .. "\n"):gmatch("(.-)\n") do want[#want + 1] = line end
        assert.same(want, st.refreshed_urls)
      end)
    end
  end)

  describe("every documented action", function()
    local api = cdnkit.api("aliyun", "2014-11-11")
    it("declares all 73 actions of the document", function()
      assert.equal(73, #api.actions)
      assert.equal(73, #ali:actions())
    end)
    for _, a in ipairs(api.actions) do
      it("calls " .. a.name, function()
        local res, err = ali[a.name](ali, samples.params(a))
        assert.is_nil(err, err and tostring(err))
        assert.is_table(res)
        assert.is_string(res.RequestId)
      end)
    end
  end)

  describe("usage mistakes raise before sending", function()
    local function raises(pattern, f)
      local ok, msg = pcall(f)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find(pattern), "message was: " .. tostring(msg))
      assert.equal(0, e:stats().requests)
    end
    it("unknown action", function()
      raises("unknown action or method 'DescribeNothing'", function() return ali:DescribeNothing {} end)
    end)
    it("missing required parameter", function()
      raises("RefreshObjectCaches: missing required parameter 'ObjectPath'",
        function() return ali:RefreshObjectCaches {} end)
    end)
    it("unknown parameter", function()
      raises("unknown parameter 'Domain'", function() return ali:DescribeCdnDomainDetail { Domain = "a" } end)
    end)
    it("wrong type", function()
      raises("'PageSize' must be an integer", function() return ali:DescribeUserDomains { PageSize = "x" } end)
      raises("'DomainName' must be a string, got table",
        function() return ali:DescribeCdnDomainDetail { DomainName = {} } end)
    end)
    it("value outside the documented set or range", function()
      raises("'ObjectType' must be one of File, Directory",
        function() return ali:RefreshObjectCaches { ObjectPath = "a.com/x", ObjectType = "file" } end)
      raises("'PageSize' must be <= 50", function() return ali:DescribeUserDomains { PageSize = 51 } end)
    end)
    it("more items than the per-call limit", function()
      local many = {}
      for i = 1, 1001 do many[i] = "www.example.com/" .. i end
      raises("has 1001 items; the documented limit is 1000",
        function() return ali:RefreshObjectCaches { ObjectPath = many } end)
    end)
    it("bad date format", function()
      raises("'StartTime' must be YYYY%-MM%-DDThh:mm",
        function() return ali:DescribeDomainBpsData { StartTime = "2024-01-02 00:00" } end)
    end)
    it("errors point at the caller's line, not into cdnkit", function()
      local cases = {
        function() local r = ali:RefreshObjectCaches {} return r end,
        function() local r = ali:NoSuchAction {} return r end,
        function() local r = ali:refresh { urls = { 1 } } return r end,
        function() local r = ali:each("DescribeCdnService", {}) return r end,
        function() local r = cdnkit.aliyun { bogus = 1 } return r end,
        function() local r = cdnkit.refresh({ ali }, { concurrency = 0, urls = {} }) return r end,
        function() local r = ali:prepare("DescribeCdnService", {}, 5) return r end,
      }
      for i, f in ipairs(cases) do
        local ok, msg = pcall(f)
        assert.is_false(ok)
        assert.truthy(tostring(msg):match("^spec/aliyun_spec%.lua:%d+: "), "case " .. i .. ": " .. tostring(msg))
      end
    end)
    it("parameters not a table", function()
      raises("parameters must be a table", function() return ali:DescribeCdnService "x" end)
    end)
    it("constructor without credentials", function()
      local ok, msg = pcall(cdnkit.aliyun, { access_key_id = "x" })
      assert.is_false(ok)
      assert.truthy(msg:find("no credentials"))
      ok, msg = pcall(cdnkit.aliyun, { access_key_id = "x", access_key_secret = "y", colour = 1 })
      assert.truthy(msg:find("unknown option 'colour'"))
      ok, msg = pcall(cdnkit.aliyun, { access_key_id = "x", access_key_secret = "y", endpoint = "ftp://x" })
      assert.truthy(msg:find("option 'endpoint'"))
    end)
  end)

  describe("runtime failures return nil, err", function()
    it("vendor error with code, message, status and request id", function()
      local c = emu.client(e, { retry = false })
      e:faults { { kind = "throttle", count = 1 } }
      local res, err = c:DescribeCdnService {}
      assert.is_nil(res)
      assert.equal("Throttling", err.code)
      assert.equal(400, err.http_status)
      assert.is_true(err.retryable)
      assert.is_string(err.request_id)
      assert.equal("aliyun", err.vendor)
      assert.equal("DescribeCdnService", err.action)
      assert.truthy(tostring(err):find("Throttling", 1, true))
      c:close()
    end)
    it("retries throttling with a fresh nonce and succeeds", function()
      e:faults { { kind = "throttle", count = 2 } }
      local res, err = ali:DescribeCdnService {}
      assert.is_nil(err)
      assert.is_table(res)
      local st = e:stats()
      assert.equal(3, st.requests)
      assert.equal(3, st.nonces)
    end)
    it("shows where the string-to-sign differs on SignatureDoesNotMatch", function()
      local c = emu.client(e, { access_key_secret = "wrongsecret", retry = false })
      local res, err = c:DescribeCdnService {}
      assert.is_nil(res)
      assert.equal("SignatureDoesNotMatch", err.code)
      assert.is_string(err.diff)
      -- our string-to-sign (derived again from the signed parameters) is the server's
      assert.matches("string%-to%-sign is the same as the server's: check access_key_secret", err.diff)
      assert.falsy(tostring(err):find("wrongsecret", 1, true))
      c:close()
    end)
    it("connection refused", function()
      local c = cdnkit.aliyun { access_key_id = "testid", access_key_secret = "testsecret",
                                endpoint = "http://127.0.0.1:1", retry = false }
      local res, err = c:DescribeCdnService {}
      assert.is_nil(res)
      assert.equal("connect", err.code)
      assert.is_true(err.retryable)
      c:close()
    end)
    it("timeout", function()
      local c = emu.client(e, { timeout = 0.3, retry = false })
      e:faults { { kind = "slow", count = 1, seconds = 2 } }
      local res, err = c:DescribeCdnService {}
      assert.is_nil(res)
      assert.equal("timeout", err.code)
      assert.is_true(err.ambiguous)
      c:close()
    end)
    for _, kind in ipairs { "badjson", "html", "truncated", "close", "http500" } do
      it("server answer that is not what the document says: " .. kind, function()
        local c = emu.client(e, { retry = false })
        e:faults { { kind = kind, count = 1 } }
        local res, err = c:DescribeCdnService {}
        assert.is_nil(res)
        assert.is_table(err)
        local want = ({ badjson = "json", http500 = "InternalError" })[kind] or "http"
        assert.equal(want, err.code)
        c:close()
      end)
    end
    it("does not resend a non-idempotent action after an ambiguous failure", function()
      e:faults { { kind = "http500", count = 1 } }
      local res, err = ali:AddCdnDomain { CdnType = "web", DomainName = "new.example.com",
                                          Sources = "1.1.1.1", SourceType = "ipaddr" }
      assert.is_nil(res)
      assert.equal("InternalError", err.code)
      assert.equal(1, e:stats().requests)
    end)
    it("learns the clock offset from the Date header after a timestamp rejection", function()
      local c = emu.client(e)
      e:config { skew = 3600 }
      local res, err = c:DescribeCdnService {}
      e:config { skew = 0 }
      c:close()
      assert.is_nil(err, err and tostring(err))
      assert.is_table(res)
      assert.equal(2, e:stats().requests)
    end)
  end)

  describe("transport", function()
    it("reuses one connection for sequential calls (keep-alive)", function()
      local c = emu.client(e)
      for _ = 1, 5 do assert.is_table((c:DescribeCdnService {})) end
      assert.equal(1, e:stats().connections)
      c:close()
    end)
    -- what the emulator saw (GET /__emu/stats: "methods" and "request_log")
    local FORM = "application/x-www-form-urlencoded"
    local function sent(c, action, params)
      e:reset()
      local res, err = c[action](c, params or {})
      assert.is_nil(err, err and tostring(err))
      assert.is_table(res)
      local st = e:stats()
      assert.equal(1, #st.request_log, "one request expected")
      return st.request_log[1], st.methods
    end
    local function is_get(r, action)
      assert.equal(action, r.action)
      assert.equal("GET", r.method)
      assert.equal(0, r.body_bytes)
      assert.is_true(r.query_bytes > 0, "parameters in the query")
    end
    local function is_post_form(r, action)
      assert.equal(action, r.action) -- read from the body: no query string
      assert.equal("POST", r.method)
      assert.equal(FORM, r.content_type)
      assert.is_true(r.body_bytes > 0, "parameters in the body")
      assert.equal(0, r.query_bytes)
    end
    it("sends GET with the parameters in the query by default", function()
      local c = emu.client(e)
      local r, methods = sent(c, "DescribeCdnService")
      c:close()
      is_get(r, "DescribeCdnService")
      assert.same({ GET = 1 }, methods)
    end)
    it("sends POST with a form body when method = \"POST\"", function()
      local c = emu.client(e, { method = "POST" })
      local r, methods = sent(c, "DescribeCdnService")
      is_post_form(r, "DescribeCdnService")
      assert.same({ POST = 1 }, methods)
      r = sent(c, "DescribeUserDomains", { PageSize = 50 })
      is_post_form(r, "DescribeUserDomains")
      c:close()
    end)
    it("sends the actions the API data declares POST as POST form, other actions GET", function()
      local declared = {}
      for _, a in ipairs(cdnkit.api("aliyun", "2014-11-11").actions) do
        if a.http == "POST" then declared[#declared + 1] = a end
      end
      assert.is_true(#declared > 0, "no aliyun action is declared POST in the API data")
      local c = emu.client(e) -- client default: GET
      for _, a in ipairs(declared) do
        is_post_form(sent(c, a.name, samples.params(a)), a.name)
      end
      is_get(sent(c, "DescribeCdnService"), "DescribeCdnService")
      c:close()
    end)
    it("works through a Lua transport function", function()
      local seen = 0
      local http = require("cdnkit.core").curl()
      local c = emu.client(e, { transport = function(req)
        seen = seen + 1
        return http:send(req)
      end })
      assert.is_table((c:DescribeCdnService {}))
      assert.equal(1, seen)
      c:close(); http:close()
    end)
  end)

  describe("client object", function()
    it("is userdata whose tostring names vendor and endpoint, never the secret", function()
      local c = emu.client(e)
      assert.equal("userdata", type(c))
      local s = tostring(c)
      assert.truthy(s:find("aliyun", 1, true))
      assert.truthy(s:find(e.url, 1, true))
      assert.falsy(s:find("testsecret", 1, true))
      c:close()
      assert.truthy(tostring(c):find("closed"))
      raises_with("this client is closed", function() c:DescribeCdnService {} end)
    end)
    it("traces requests with the signature redacted", function()
      local events = {}
      local c = emu.client(e, { trace = function(ev) events[#events + 1] = ev end })
      c:DescribeCdnService {}
      assert.equal("request", events[1].event)
      assert.truthy(events[1].request.url:find("Signature=***", 1, true))
      assert.equal("response", events[2].event)
      c:close()
    end)
    it("help() comes from the API data", function()
      local h = ali:help("RefreshObjectCaches")
      assert.equal("RefreshObjectCaches", h.action)
      assert.equal("ObjectPath", h.params[1].name)
      assert.is_true(h.params[1].required)
    end)
    it("call() sends undeclared actions, signed the same way", function()
      local res, err = ali:call("DescribeCdnService", {}, { version = "2014-11-11" })
      assert.is_nil(err)
      assert.is_table(res)
    end)
  end)

  describe("pagination", function()
    it("each() walks every domain across pages", function()
      local n, names = 0, {}
      for d in ali:each("DescribeUserDomains", { PageSize = 50 }) do
        n = n + 1
        names[d.DomainName] = true
      end
      assert.equal(123, n)
      assert.equal(3, e:stats().requests)
    end)
    it("pages() yields raw pages", function()
      local pages = 0
      for page in ali:pages("DescribeUserDomains", {}) do
        pages = pages + 1
        assert.is_number(page.TotalCount)
      end
      assert.equal(3, pages)
    end)
    it("raises for an action that is not paginated", function()
      raises_with("DescribeCdnService is not paginated", function() ali:each("DescribeCdnService", {}) end)
    end)
    it("raises a mid-way error with the page number", function()
      local c = emu.client(e, { retry = false })
      local n = 0
      local ok, err = pcall(function()
        for _ in c:pages("DescribeUserDomains", { PageSize = 50 }) do
          n = n + 1
          if n == 1 then e:faults { { kind = "http503", count = 1 } } end
        end
      end)
      assert.is_false(ok)
      assert.equal(2, err.page)
      assert.equal("ServiceUnAvailable", err.code)
      c:close()
    end)
  end)

  describe("refresh", function()
    it("splits, de-duplicates and accounts for every URL", function()
      local urls = {}
      for i = 1, 2500 do urls[i] = "http://www.example.com/f" .. i end
      urls[#urls + 1] = urls[1]
      local report = ali:refresh { urls = urls, dirs = { "www.example.com/d/" }, concurrency = 3 }
      assert.is_true(report.ok)
      assert.equal(2501, report.done)
      assert.equal(4, report.batches)
      assert.equal(4, #report.task_ids)
      local st = e:stats()
      assert.equal(2500, #st.refreshed_urls)
      assert.equal(1, #st.refreshed_dirs)
      assert.is_true(st.max_inflight <= 3)
    end)
  end)
end)
