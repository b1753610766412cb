-- Tencent Cloud CDN (API v2) client against the local emulator, which
-- verifies every signature with its own Python implementation.
local cdnkit = require "cdnkit"
local emu = require "emu"
local samples = require "samples"

describe("qcloud", function()
  local e, qc

  setup(function()
    e = emu.start("qcloud", { hosts = 57, task_seconds = 0.2 })
    qc = emu.client(e)
  end)
  teardown(function()
    qc:close()
    e:stop()
  end)
  before_each(function() e:reset() end)

  describe("signature vectors (Tencent Cloud API v2 signature documentation)", function()
    local doc = cdnkit.qcloud { version = "v2", secret_id = "AKIDT8G5AsY1D3MChWooNq1rFSw1fyBVCX9D",
                                secret_key = "pxPgRWDbCy86ZYyqBTDk7WmeRZSmPco0" }
    it("document SHA1 vector, GET and POST", function()
      local fixed = { timestamp = 1463122059, nonce = 13029, method = "GET", explain = true }
      local r = doc:prepare("DescribeCdnHosts", { limit = 10, offset = 0 }, fixed)
      assert.equal("GETcdn.api.qcloud.com/v2/index.php?Action=DescribeCdnHosts&Nonce=13029&SecretId=AKIDT8G5AsY1D3MChWooNq1rFSw1fyBVCX9D&Timestamp=1463122059&limit=10&offset=0",
        r.explain.string_to_sign)
      assert.equal("bWMMAR1eFGjZ5KWbfxTlBiLiNLc=", r.explain.signature)
      assert.truthy(r.url:find("Signature=bWMMAR1eFGjZ5KWbfxTlBiLiNLc%3D", 1, true))
      fixed.method = "POST"
      r = doc:prepare("DescribeCdnHosts", { limit = 10, offset = 0 }, fixed)
      assert.equal("i/KcLp6VaOtUmVtT0dqtLpKJOkg=", r.explain.signature)
      assert.truthy(r.body:find("Signature=i%2FKcLp6VaOtUmVtT0dqtLpKJOkg%3D", 1, true))
    end)
    it("document SHA256 vector", function()
      local r = doc:prepare("DescribeCdnHosts", { limit = 10, offset = 0 },
        { timestamp = 1502197934, nonce = 48059, method = "GET", sign_method = "HmacSHA256", explain = true })
      assert.equal("b/HlnO7vWEtR/kf21BvF0fX4vGmIThwWxlaD5GQtlSM=", r.explain.signature)
    end)
    it("SDK unit-test vectors (other host, Region, Version)", function()
      local sdk = cdnkit.qcloud { version = "v2", secret_id = "secretIdFoo", secret_key = "secretKeyBar",
                                  endpoint = "https://cvm.api.qcloud.com" }
      local fixed = { timestamp = 1512393162, nonce = "1290303896666895346", region = "ap-guangzhou",
                      sign_method = "HmacSHA1", method = "POST", call = true, explain = true }
      local r = sdk:prepare("DescribeInstances", { Version = "2017-03-12" }, fixed)
      assert.equal("p3n+pxBqF5JGZtDSxoVn5tGngf0=", r.explain.signature)
      fixed.method = "GET"
      r = sdk:prepare("DescribeInstances", { Version = "2017-03-12" }, fixed)
      assert.equal("5HAq1BOKNLEE2/uauWnp6Zv9Z3c=", r.explain.signature)
      fixed.method, fixed.sign_method = "POST", "HmacSHA256"
      r = sdk:prepare("DescribeInstances", { Version = "2017-03-12" }, fixed)
      assert.equal("B2T37FRSP6Fk0/q/cdfrTE0p3zX5ooB/2BPWZUFpsj4=", r.explain.signature)
    end)
    it("self-computed vectors: raw URL values in the source string", function()
      local c = cdnkit.qcloud { version = "v2", secret_id = "secretIdFoo", secret_key = "secretKeyBar" }
      local r = c:prepare("RefreshCdnUrl",
        { urls = { "http://www.test.com/1.html", "http://www.test.com/a b.html" } },
        { timestamp = 1462782282, nonce = 123456789, method = "POST", explain = true })
      assert.equal("POSTcdn.api.qcloud.com/v2/index.php?Action=RefreshCdnUrl&Nonce=123456789&SecretId=secretIdFoo&Timestamp=1462782282&urls.0=http://www.test.com/1.html&urls.1=http://www.test.com/a b.html",
        r.explain.string_to_sign)
      assert.equal("ngRXpuQNfNxRij0xilqCKSDDBMM=", r.explain.signature)
      r = c:prepare("DescribeCdnHosts", { offset = 0, limit = 10 },
        { timestamp = 1462782282, nonce = 123456789, method = "GET", region = "gz", explain = true })
      assert.equal("gZ3mfrkOffxKCYrTZ5C31aW5XoE=", r.explain.signature)
    end)
  end)

  describe("encoding matrix through the emulator", function()
    local matrix = {
      "sp ace", "plus+sign", "star*", "tilde~", "quote'", "paren(x)", "bang!", "per%cent",
      "amp&and", "eq=ual", "hash#frag", "中文路径", "emoji😀", "q?a=1&b=2",
    }
    for _, method in ipairs { "POST", "GET" } do
      for _, s in ipairs(matrix) do
        it(method .. " urls with " .. s, function()
          local c = emu.client(e, { method = method })
          local url = "http://host-0001.example.com/" .. s
          local res, err = c:RefreshCdnUrl { urls = { url } }
          assert.is_nil(err, err and tostring(err))
          assert.equal(0, res.code)
          local st = e:stats()
          assert.same({ url }, st.refreshed_urls)
          assert.equal(method, st.request_log[1].method)
          c:close()
        end)
      end
    end
    it("HmacSHA256 is accepted", function()
      local c = emu.client(e, { sign_method = "HmacSHA256" })
      local res, err = c:GetCdnMiddleSourceList {}
      assert.is_nil(err)
      assert.equal(0, res.code)
      c:close()
    end)
  end)

  describe("HTTP method (observed at the emulator)", function()
    -- what the emulator saw (GET /__emu/stats: "methods" and "request_log")
    local FORM = "application/x-www-form-urlencoded"
    local function sent(c, action, params)
      e:reset()
      local res, err = c[action](c, params or {})
      assert.is_nil(err, err and tostring(err))
      assert.equal(0, res.code)
      local st = e:stats()
      assert.equal(1, #st.request_log, "one request expected")
      return st.request_log[1], st.methods
    end
    it("sends POST with a form body by default", function()
      local c = emu.client(e)
      local r, methods = sent(c, "DescribeCdnHosts", { limit = 1 })
      c:close()
      assert.same({ POST = 1 }, methods)
      assert.equal("DescribeCdnHosts", r.action) -- read from the body: no query string
      assert.equal("POST", r.method)
      assert.equal("/v2/index.php", r.path)
      assert.equal(FORM, r.content_type)
      assert.is_true(r.body_bytes > 0, "parameters in the body")
      assert.equal(0, r.query_bytes)
    end)
    it("sends GET with the parameters in the query when method = \"GET\"", function()
      local c = emu.client(e, { method = "GET" })
      local r, methods = sent(c, "DescribeCdnHosts", { limit = 1 })
      assert.same({ GET = 1 }, methods)
      assert.equal("DescribeCdnHosts", r.action)
      assert.equal("GET", r.method)
      assert.equal("/v2/index.php", r.path)
      assert.equal(0, r.body_bytes)
      assert.is_true(r.query_bytes > 0, "parameters in the query")
      r = sent(c, "RefreshCdnUrl", { urls = { "http://host-0001.example.com/m" } })
      assert.equal("GET", r.method)
      assert.equal("RefreshCdnUrl", r.action)
      c:close()
    end)
    it("sends POST when method = \"POST\" is given explicitly", function()
      local c = emu.client(e, { method = "POST" })
      local r = sent(c, "DescribeCdnHosts", { limit = 1 })
      assert.equal("POST", r.method)
      assert.equal(FORM, r.content_type)
      c:close()
    end)
  end)

  describe("every documented action", function()
    local api = cdnkit.api("qcloud", "v2")
    it("declares the 67 actions with parameters", function()
      assert.equal(67, #api.actions)
    end)
    for _, a in ipairs(api.actions) do
      it("calls " .. a.name, function()
        local res, err = qc[a.name](qc, samples.params(a))
        assert.is_nil(err, err and tostring(err))
        assert.is_table(res)
        assert.equal(0, res.code)
      end)
    end
  end)

  describe("JSON-valued and list parameters", function()
    it("encodes Lua tables to JSON and arrays to name.N", function()
      local c = cdnkit.qcloud { version = "v2", secret_id = "a", secret_key = "b" }
      local r = c:prepare("UpdateCdnConfig", { hostId = 1234, cache = { { 0, "all", 1023448 } },
        refer = { 1, { "www.baidu.com", "www.qq.com" } } }, { method = "GET", explain = true })
      assert.truthy(r.explain.string_to_sign:find('cache=[[0,"all",1023448]]', 1, true))
      assert.truthy(r.explain.string_to_sign:find('refer=[1,["www.baidu.com","www.qq.com"]]', 1, true))
      r = c:prepare("GetHostInfoByHost", { hosts = { "a.com", "b.com" } }, { explain = true })
      assert.truthy(r.explain.string_to_sign:find("hosts.0=a.com&hosts.1=b.com", 1, true))
    end)
  end)

  describe("usage mistakes raise before sending", function()
    local function raises(pattern, f)
      local ok, msg = pcall(f)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find(pattern), "message was: " .. tostring(msg))
      assert.equal(0, e:stats().requests)
    end
    it("URL without scheme", function()
      raises("'urls' item 1 must be a URL starting with http:// or https://",
        function() return qc:RefreshCdnUrl { urls = { "www.a.com/x" } } end)
    end)
    it("over the per-call limits", function()
      local urls, dirs = {}, {}
      for i = 1, 1001 do urls[i] = "http://a.com/" .. i end
      for i = 1, 21 do dirs[i] = "http://a.com/d" .. i .. "/" end
      raises("'urls' has 1001 items; the documented limit is 1000",
        function() return qc:RefreshCdnUrl { urls = urls } end)
      raises("'dirs' has 21 items; the documented limit is 20",
        function() return qc:RefreshCdnDir { dirs = dirs } end)
      raises("'hosts' has 6 items; the documented limit is 5",
        function() return qc:GetCdnProvIspDetailStat { date = "2024-01-02",
          hosts = { "a", "b", "c", "d", "e", "f" } } end)
    end)
    it("date not in the documented format", function()
      raises("'startDate' must be YYYY%-MM%-DD", function()
        return qc:DescribeCdnHostInfo { startDate = "2024/01/02", endDate = "2024-01-03",
          statType = "flux", projects = { 0 } } end)
    end)
    it("statType outside the documented set", function()
      raises("'statType' must be one of", function()
        return qc:DescribeCdnHostInfo { startDate = "2024-01-02", endDate = "2024-01-03",
          statType = "bytes", projects = { 0 } } end)
    end)
    it("one of hostId / host", function()
      raises("one of the parameters 'hostId', 'host' is required", function() return qc:OnlineHost {} end)
    end)
  end)

  describe("envelope", function()
    it("code != 0 is a failure; err.code is the module code", function()
      local c = emu.client(e, { retry = false })
      e:faults { { kind = "throttle", count = 1 } }
      local res, err = c:GetCdnMiddleSourceList {}
      assert.is_nil(res)
      assert.equal(9163, err.code)
      assert.equal(4400, err.vendor_code)
      assert.is_true(err.retryable)
      assert.equal(200, err.http_status)
      c:close()
    end)
    it("retries throttling and succeeds", function()
      e:faults { { kind = "throttle", count = 2 } }
      local res, err = qc:GetCdnMiddleSourceList {}
      assert.is_nil(err)
      assert.equal(0, res.code)
      assert.equal(3, e:stats().requests)
    end)
    it("a bad signature is code 4100, not retried", function()
      local c = emu.client(e, { secret_key = "wrong" })
      local res, err = c:GetCdnMiddleSourceList {}
      assert.is_nil(res)
      assert.equal(4100, err.vendor_code)
      assert.is_false(err.retryable)
      assert.equal(1, e:stats().requests)
      c:close()
    end)
    it("HTTP 5xx with an HTML page is a structured error", function()
      local c = emu.client(e, { retry = false })
      e:faults { { kind = "http500", count = 1 } }
      local res, err = c:GetCdnMiddleSourceList {}
      assert.is_nil(res)
      assert.equal("http", err.code)
      assert.equal(500, err.http_status)
      c:close()
    end)
    it("malformed JSON", function()
      local c = emu.client(e, { retry = false })
      e:faults { { kind = "badjson", count = 1 } }
      local res, err = c:GetCdnMiddleSourceList {}
      assert.is_nil(res)
      assert.equal("json", err.code)
      c:close()
    end)
    it("stale timestamp: learns the server clock and succeeds", function()
      local c = emu.client(e)
      e:config { skew = 3 * 3600 }
      local res, err = c:GetCdnMiddleSourceList {}
      e:config { skew = 0 }
      c:close()
      assert.is_nil(err, err and tostring(err))
      assert.equal(0, res.code)
    end)
  end)

  describe("error classification", function()
    local A = require "cdnkit.vendors.qcloud"
    local function parse(body)
      local _, e = A.parse({}, "RefreshCdnUrl", 200, {}, body)
      return e
    end
    it("module code from the message, codeDesc string or number", function()
      local e = parse('{"code":4000,"message":"(22043)too many urls","codeDesc":22043}')
      assert.equal(22043, e.code)
      assert.equal(4000, e.vendor_code)
      assert.equal(22043, e.code_desc)
      e = parse('{"code":4100,"message":"signature error","codeDesc":"AuthFailure"}')
      assert.equal(4100, e.code)
    end)
    it("throttling and transient codes are retryable; daily quotas are not", function()
      assert.is_true(parse('{"code":4400,"message":"(9163)too frequent","codeDesc":"9163"}').retryable)
      assert.is_true(parse('{"code":4400,"message":"(22063)too frequent","codeDesc":"22063"}').retryable)
      assert.is_true(parse('{"code":6000,"message":"internal error","codeDesc":"InternalError"}').retryable)
      assert.is_false(parse('{"code":4400,"message":"(22044)daily quota","codeDesc":"22044"}').retryable)
      assert.is_false(parse('{"code":4400,"message":"(23101)prefetch quota","codeDesc":"23101"}').retryable)
      assert.is_false(parse('{"code":4000,"message":"(9107)bad host","codeDesc":"9107"}').retryable)
    end)
    it("never crashes on a body that is not the envelope", function()
      for _, b in ipairs { "", "[]", "null", '{"code":"x"}', "<html>", '{"code":0' } do
        local _, e = A.parse({}, "X", 200, {}, b)
        assert.equal("json", e.code)
      end
    end)
  end)

  describe("call()", function()
    it("signs names-only actions the same way (the emulator checks the signature first)", function()
      local api = cdnkit.api("qcloud", "v2")
      assert.is_true(#api.names_only > 0)
      local res, err = qc:call(api.names_only[1], { host = "a.com" })
      assert.is_nil(res)
      assert.equal(4000, err.vendor_code) -- unknown to the emulator, but authenticated
      assert.equal(0, e:stats().signature_failures)
    end)
  end)

  describe("pagination and refresh", function()
    it("each() walks every host with offset/limit", function()
      local n = 0
      for h in qc:each("DescribeCdnHosts", { limit = 20 }) do
        n = n + 1
        assert.is_string(h.host)
      end
      assert.equal(57, n)
      assert.equal(3, e:stats().requests)
    end)
    it("refresh splits to 1000 URLs and 20 dirs per call", function()
      local urls, dirs = {}, {}
      for i = 1, 2100 do urls[i] = "http://host-0001.example.com/f" .. i end
      for i = 1, 45 do dirs[i] = "http://host-0001.example.com/d" .. i .. "/" end
      local report = qc:refresh { urls = urls, dirs = dirs, concurrency = 4 }
      assert.is_true(report.ok)
      assert.equal(2145, report.done)
      assert.equal(3 + 3, report.batches)
      local st = e:stats()
      assert.equal(2100, #st.refreshed_urls)
      assert.equal(45, #st.refreshed_dirs)
    end)
  end)
end)
