-- Limits that hold: options checked when the client is made, a deadline
-- that is not overrun by a whole timeout, answers that are too big or not
-- HTTP are not retried, parameters too big for a URL go as a POST form.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "emu"

-- slack for timing checks under ASan or valgrind (spec/run.sh sets it)
local SLOW = os.getenv("CDNKIT_SLOW_OK") and 8 or 1

local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, tostring(err))
end

local function aliyun(extra)
  local o = { access_key_id = "k", access_key_secret = "s" }
  for k, v in pairs(extra) do o[k] = v end
  return function() return cdnkit.aliyun(o) end
end

describe("options are checked when the client is made", function()
  it("retry.attempts is a positive integer (0/0 would retry for ever)", function()
    for _, bad in ipairs { 0, -1, 1.5, 0 / 0, math.huge, 1e9 } do
      raises_with("retry%.attempts must be a positive integer", aliyun { retry = { attempts = bad } })
    end
    assert.is_userdata(aliyun { retry = { attempts = 5 } }())
  end)
  it("retry.base, retry.max and retry.deadline are finite and not negative", function()
    for _, k in ipairs { "base", "max" } do
      for _, bad in ipairs { -1, 0 / 0, math.huge } do
        raises_with("retry%." .. k .. " must be seconds", aliyun { retry = { [k] = bad } })
      end
    end
    for _, bad in ipairs { 0, -1, 0 / 0, math.huge } do
      raises_with("retry%.deadline must be a finite number of seconds > 0", aliyun { retry = { deadline = bad } })
    end
  end)
  it("user_agent cannot smuggle a header in", function()
    raises_with("option 'user_agent' must not contain line breaks", aliyun { user_agent = "x\r\nX-Evil: 1" })
  end)
  it("an endpoint is scheme://host[:port] and nothing else", function()
    local cases = {
      { "http://a b.com", "must not contain spaces" },
      { "http://a.com\r\nX-Evil: 1", "must not contain spaces, control characters" },
      { "http://a.com\0", "NUL" },
      { "http://a.com#frag", "must not contain a query or fragment" },
      { "http://a.com?x=1", "must not contain a query or fragment" },
      { "http://a.com:0", "port outside 1%-65535" },
      { "http://a.com:65536", "port outside 1%-65535" },
      { "http://[::1", "broken IPv6 literal" },
      { "http://[1:2", "broken IPv6 literal" },
      { "http://a.com/path", "without a path" },
      { "a.com", "must be http:// or https://" },
    }
    for _, c in ipairs(cases) do
      raises_with("option 'endpoint' .*" .. c[2], aliyun { endpoint = c[1] })
    end
    for _, good in ipairs { "http://127.0.0.1:8080", "https://cdn.aliyuncs.com", "http://[::1]:9000" } do
      assert.is_userdata(aliyun { endpoint = good }())
    end
  end)
end)

describe("limits on the wire", function()
  local e
  setup(function() e = emu.start("aliyun", {}) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  it("retry.deadline holds: the last attempt gets only what is left", function()
    local c = emu.client(e, { timeout = 5, retry = { attempts = 5, base = 0.01, max = 0.01, deadline = 1 } })
    e:faults { { kind = "slow", seconds = 3, count = 5 } }
    local t0 = core.monotime()
    local res, err = c:DescribeCdnService {}
    local took = core.monotime() - t0
    assert.is_nil(res)
    assert.equal("timeout", err.code)
    assert.is_true(took < 1 + 0.5 * SLOW, "took " .. took .. " s for a 1 s deadline")
    c:close()
  end)

  it("a pacing slot after the deadline is not waited for", function()
    local c = emu.client(e, { rate = 0.2, retry = { deadline = 1 } })
    assert.is_table((c:DescribeCdnService {})) -- takes the one token; the next is 5 s away
    local t0 = core.monotime()
    local res, err = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.equal("timeout", err.code)
    assert.is_false(err.sent)
    assert.is_true(core.monotime() - t0 < 0.5)
    assert.equal(1, e:stats().requests)
    c:close()
  end)

  it("headers over 256 KiB are an overflow, not retried", function()
    local c = emu.client(e, { retry = { attempts = 3, base = 0.001, max = 0.001 } })
    e:faults { { kind = "hugeheader", count = 3 } }
    local res, err = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.is_true(err.overflow)
    assert.matches("headers larger than", err.message)
    assert.equal(1, err.attempts)
    c:close()
  end)

  it("send_many reads every request before the first starts", function()
    local t = core.curl()
    local reqs = {
      { url = e.url .. "/__emu/stats" },
      { url = e.url .. "/__emu/stats", headers = { ["X-A"] = "a\r\nX-B: b" } },
    }
    e:reset()
    local ok, err = pcall(t.send_many, t, reqs, 2)
    assert.is_false(ok)
    assert.matches("header 'X%-A' has a bad name or a line break", err)
    assert.equal(0, e:stats().connections_accepted)
    t:close()
  end)

  it("an answer over max_body is not retried (it is not transient)", function()
    local c = emu.client(e, { max_body = 10, retry = { attempts = 3, base = 0.001, max = 0.001 } })
    local res, err = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.matches("larger than 10 bytes", err.message)
    assert.is_true(err.overflow)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
    assert.equal(1, e:stats().requests)
    c:close()
  end)

  it("an answer that is not HTTP is not retried", function()
    local c = emu.client(e, { retry = { attempts = 3, base = 0.001, max = 0.001 } })
    e:faults { { kind = "garbage", count = 3 } }
    local res, err = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.is_true(err.malformed)
    assert.equal(1, err.attempts)
    c:close()
  end)

  it("parameters too big for a GET URL go as a POST form, signed as such", function()
    local c = emu.client(e) -- Alibaba's default method is GET
    local big = string.rep("x", 20000)
    local res, err = c:call("DescribeCdnService", { Padding = big })
    assert.is_table(res, err and tostring(err))
    local log = e:stats().request_log
    assert.equal("POST", log[#log].method)
    -- small ones stay GET
    e:reset()
    assert.is_table((c:DescribeCdnService {}))
    assert.equal("GET", e:stats().request_log[1].method)
    c:close()
  end)
end)
