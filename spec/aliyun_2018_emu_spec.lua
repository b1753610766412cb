-- Alibaba Cloud CDN API 2018-05-10 against the emulator, which verifies
-- signature V3 and V2 with its own code and checks every action's HTTP
-- method, where each parameter travels and the required ones against its
-- own action table.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "emu"
local samples = require "samples"

describe("aliyun 2018-05-10 against the emulator", function()
  local e
  setup(function() e = emu.start("aliyun", { domains = 123, ["task-seconds"] = 0.3 }) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)
  local function client(extra)
    local o = { version = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return emu.client(e, o)
  end

  -- values the emulator checks beyond their declared type
  local OVERRIDE = {
    DescribeCdnDomainDetail = { DomainName = "example-0001.com" },
    DescribeRefreshTaskById = { TaskId = { "1001" } },
  }
  -- answers about the state of things, which come only after every check of
  -- the request itself (signature, method, places, required parameters)
  local function state_error(code)
    return code:match("^InvalidDomain") or code:match("NotFound$") or code:match("^Invalid%w*%.Malformed$")
      or code:match("ValueNotSupported$") or code == "DomainAlreadyExist"
  end

  local function every_action(c, signature)
    local failed, calls = {}, 0
    for _, a in ipairs(cdnkit.api("aliyun").actions) do
      local params = samples.params(a)
      for k, v in pairs(OVERRIDE[a.name] or {}) do params[k] = v end
      local res, err = c[a.name](c, params)
      calls = calls + 1
      if not res and not state_error(tostring(err.code)) then
        failed[#failed + 1] = a.name .. ": " .. tostring(err)
      end
    end
    assert.same({}, failed)
    -- the emulator's log: the method it expected, each parameter in its place
    local log = e:stats().request_log
    assert.equal(calls, #log)
    for _, entry in ipairs(log) do
      assert.equal(signature, entry.signature)
      assert.is_not.equal("InvalidParameter", entry.error, entry.action)
      assert.is_not.equal("UnsupportedHTTPMethod", entry.error, entry.action)
      assert.is_not.equal("MissingParameter", entry.error, entry.action)
      assert.is_not.equal("SignatureDoesNotMatch", entry.error, entry.action)
    end
  end

  it("calls every one of the 176 actions once, signed with V3", function()
    every_action(client(), "v3")
  end)

  it("calls every action once signed with V2 as well", function()
    every_action(client { signature = "v2" }, "v2")
  end)

  it("puts RefreshObjectCaches' parameters in the form body and PushObjectCache's in the query", function()
    local c = client()
    assert(c:RefreshObjectCaches { ObjectPath = { "https://example-0001.com/a.jpg" }, Force = true })
    assert(c:PushObjectCache { ObjectPath = { "https://example-0001.com/a.jpg" }, Area = "domestic" })
    local log = e:stats().request_log
    assert.same({ ObjectPath = "body", Force = "body" }, log[1].params)
    assert.equal("POST", log[1].method)
    assert.same({ ObjectPath = "query", Area = "query" }, log[2].params)
    assert.same({ "content-type", "host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
                  "x-acs-signature-nonce", "x-acs-version" }, log[1].signed_headers)
  end)

  it("pages DescribeUserDomains up to 500 a page", function()
    local c = client()
    local n = 0
    for d in c:each("DescribeUserDomains", {}) do
      n = n + 1
      assert.is_string(d.DomainName)
    end
    assert.equal(123, n)
    assert.equal(1, e:stats().executed.DescribeUserDomains) -- one page of 500
  end)

  it("purges, waits with DescribeRefreshTaskById, prefetches; quotas arrive as strings", function()
    local polls = {}
    local c = client { trace = function(ev)
      if ev.event == "request" and ev.action == "DescribeRefreshTaskById" then
        polls[#polls + 1] = ev.request.url
      end
    end }
    local urls = {}
    for i = 1, 2500 do urls[i] = ("https://example-%04d.com/%d.js"):format(i % 25 + 1, i) end
    local dirs = {}
    for i = 1, 90 do dirs[i] = ("https://example-0001.com/d%d/"):format(i) end
    local report = c:refresh { urls = urls, dirs = dirs }
    assert.is_true(report.ok, report.failed[1] and tostring(report.failed[1].err))
    assert.equal(4, report.batches) -- 25 domains: 3 URL calls of <= 10 domains; 1 of dirs
    assert.equal(2590, report.done)
    local status = report:wait { timeout = 10, interval = 0.2 }
    assert.is_true(status.complete)
    assert.equal(4, #status.done)
    local st = e:stats()
    -- the first poll asks for the four tasks in one query (up to ten a
    -- query); later ones only for those still running
    assert.truthy(#polls >= 1)
    local function ids(url) return select(2, url:match("TaskId=([^&]*)"):gsub("%%2C", "")) + 1 end
    assert.equal(4, ids(polls[1]), polls[1])
    for _, url in ipairs(polls) do assert.truthy(ids(url) <= 4, url) end
    assert.equal(#polls, st.executed.DescribeRefreshTaskById)
    assert.is_nil(st.executed.DescribeRefreshTasks)
    local quota = assert(c:DescribeRefreshQuota {})
    assert.equal("string", type(quota.UrlRemain))
    assert.equal(10000 - 2500, tonumber(quota.UrlRemain))
    assert.equal("100", quota.DirQuota)
    local pre = c:prefetch { urls = { "https://example-0001.com/1.js", "https://example-0001.com/2.js" } }
    assert.is_true(pre.ok)
    assert.is_true(pre:wait({ timeout = 10, interval = 0.2 }).complete)
  end)

  it("check_quota reads DescribeRefreshQuota and sends nothing when today's quota is short", function()
    e:config { refresh_url_day_limit = 3, refresh_regex_day_limit = 1 }
    local c = client()
    local r, err = c:refresh { urls = { "https://example-0001.com/1", "https://example-0001.com/2",
      "https://example-0001.com/3", "https://example-0001.com/4" }, check_quota = true }
    assert.is_nil(r)
    assert.equal("quota", err.code)
    assert.equal(3, err.remaining)
    -- Regex rules count against their own quota
    r, err = c:refresh { urls = { "https://example-0001.com/a.*", "https://example-0001.com/b.*" },
                         params = { ObjectType = "Regex" }, check_quota = true }
    assert.is_nil(r)
    assert.equal(1, err.remaining)
    assert.equal("RegexRemain", err.quota_field)
    assert.truthy(err.message:find("(Regex)", 1, true))
    assert.is_nil(e:stats().executed.RefreshObjectCaches)
    -- directories given through params count against the directory quota
    e:config { refresh_dir_day_limit = 1 }
    r, err = c:refresh { urls = { "https://example-0001.com/a/", "https://example-0001.com/b/" },
                         params = { ObjectType = "Directory" }, check_quota = true }
    assert.is_nil(r)
    assert.equal(1, err.remaining)
    e:config { refresh_dir_day_limit = 100 }
    r = assert(c:refresh { urls = { "https://example-0001.com/a.*" }, params = { ObjectType = "Regex" },
                           check_quota = true })
    assert.is_true(r.ok)
    e:config { refresh_url_day_limit = 10000, refresh_regex_day_limit = 20 }
  end)

  it("spreads a big purge of one domain instead of tripping 1,000 URLs a minute", function()
    -- the emulator's window shrunk to keep the spec fast; cdnkit paces by
    -- the documented 1,000 a minute, so this checks that nothing is refused
    e:config { refresh_urls_per_minute = 1000, refresh_window_seconds = 60 }
    local c = client()
    local urls = {}
    for i = 1, 1000 do urls[i] = "https://example-0001.com/" .. i end
    local r = c:refresh { urls = urls }
    assert.is_true(r.ok)
    -- the batch is on the domain's record: 500 more URLs of it wait a minute
    local pace = require "cdnkit.pace"
    local st = c:_state()
    local now = core.monotime()
    local at = pace.reserve_window(st, "domain:example-0001.com", 1000, 61, 500, now)
    assert.truthy(at - now > 55, "500 more URLs of the domain wait about 60 s, got " .. (at - now))
    assert.equal(now, (pace.reserve_window(st, "domain:example-0002.com", 1000, 61, 1000, now)))
  end)

  it("retries Throttling.User and waits at least the TimeLeft of x-ratelimit-user-api", function()
    local waits = {}
    local c = client { retry = { attempts = 3, base = 0.001, max = 2 },
                       sleep = function(s) waits[#waits + 1] = s end }
    e:faults { { kind = "throttle", code = "Throttling.User", time_left = 400 } }
    assert.is_table(c:DescribeRefreshQuota {})
    assert.equal(1, #waits)
    assert.truthy(waits[1] >= 0.4, "waited " .. tostring(waits[1]))
    -- capped by the policy's max
    waits = {}
    local capped = client { retry = { attempts = 2, base = 0.001, max = 0.05 },
                            sleep = function(s) waits[#waits + 1] = s end }
    e:faults { { kind = "throttle", code = "Throttling.Api", time_left = 5000, header = "x-ratelimit-user" } }
    assert.is_table(capped:DescribeRefreshQuota {})
    assert.truthy(waits[1] <= 0.05)
    -- Throttling itself is retryable too
    e:faults { { kind = "throttle", code = "Throttling", header = "none" } }
    assert.is_table(c:DescribeRefreshQuota {})
  end)

  it("a wrong secret is SignatureDoesNotMatch with the server's string-to-sign to diff", function()
    local c = client { access_key_secret = "wrongsecret", retry = false }
    local res, err = c:DescribeRefreshQuota {}
    assert.is_nil(res)
    assert.equal("SignatureDoesNotMatch", err.code)
    assert.equal(400, err.http_status)
    assert.truthy(err.diff:find("check access_key_secret", 1, true) or err.diff:find("differs", 1, true))
    assert.falsy(tostring(err):find("wrongsecret", 1, true))
  end)

  it("re-signs with the server's clock after InvalidTimeStamp.Expired (fresh date and nonce)", function()
    local far = emu.start("aliyun", { skew = 3600 })
    local c = emu.client(far, { version = false, retry = false })
    local res, err = c:DescribeRefreshQuota {}
    assert.is_table(res, tostring(err))
    local log = far:stats().request_log
    assert.equal(2, #log)
    assert.equal("InvalidTimeStamp.Expired", log[1].error)
    assert.equal(0, far:stats().nonce_reused)
    far:stop()
  end)

  it("a resent request (same nonce) is refused as SignatureNonceUsed and reported ambiguous", function()
    local c = client { retry = false }
    local req = c:prepare("DescribeRefreshQuota", {})
    local curl = core.curl()
    local s1 = curl:send(req)
    local s2, _, body2 = curl:send(req)
    assert.equal(200, s1)
    assert.equal(400, s2)
    assert.truthy(body2:find("SignatureNonceUsed", 1, true))
    assert.equal(1, e:stats().nonce_reused)
    curl:close()
    -- through the client: a transport that replays the same signed request
    local first
    local replaying = client { retry = false, transport = function(r)
      first = first or r
      return core.curl():send(first)
    end }
    replaying:DescribeRefreshQuota {}
    local res, err = replaying:DescribeRefreshQuota {}
    assert.is_nil(res)
    assert.equal("SignatureNonceUsed", err.code)
    assert.is_true(err.ambiguous)
  end)

  it("call() with version 2014-11-11 signs that call with V2", function()
    local c = client()
    local res, err = c:call("DescribeRefreshQuota", {}, { version = "2014-11-11" })
    assert.is_table(res, tostring(err))
    local log = e:stats().request_log
    assert.is_nil(log[1].signature) -- a 2014-11-11 entry
  end)

  it("the CLI speaks 2018-05-10 by default and 2014-11-11 when asked", function()
    local args = { "aliyun", "DescribeRefreshQuota", "--json", "--endpoint", e.url }
    -- the secret comes from the environment: run in a child process
    local cpath = os.getenv("CDNKIT_CPATH") or "build/5.4/?.so"
    local interp = cpath:find("5.1", 1, true) and "luajit" or "lua5.4"
    local function run(extra)
      local cmd = "ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret " ..
        "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. cpath .. ";;' " .. interp ..
        " bin/cdnkit " .. table.concat(args, " ") .. (extra or "") .. " 2>&1"
      local p = io.popen(cmd)
      local o = p:read("a")
      p:close()
      return o
    end
    local o = run()
    assert.is_string(core.json_decode(o).UrlRemain)
    o = run(" --version-api 2014-11-11")
    assert.is_string(core.json_decode(o).UrlRemain)
    local log = e:stats().request_log
    assert.equal("v3", log[1].signature)
    assert.is_nil(log[2].signature) -- a 2014-11-11 entry
  end)
end)
