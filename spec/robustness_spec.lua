-- The C core against hostile servers and hostile Lua: finalizers and
-- metamethods that close or re-enter a transport in the middle of its own call,
-- garbage on the wire, absurd option values.  Run under ASan/UBSan by
-- `make check` as well.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "emu"

describe("robustness", function()
  local e
  setup(function() e = emu.start("aliyun", {}) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  local function req(extra)
    local r = { method = "GET", url = e.url .. "/__emu/stats" }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
  end

  it("a finalizer that closes the transport during its call is not a use-after-free", function()
    local t = core.curl()
    for _ = 1, 20 do
      setmetatable({}, { __gc = function() t:close() end })
      local status, _, body = t:send(req())
      assert.equal(200, status)
      assert.truthy(body:find("{", 1, true))
      collectgarbage()
      if t:is_closed() then break end
    end
    t:close()
    assert.truthy(tostring(t):find("closed", 1, true))
    assert.has_error(function() t:send(req()) end, "cdnkit: the curl transport is closed")
  end)

  it("a request table whose metamethod closes the transport gets an error, not a crash", function()
    local t = core.curl()
    local r = setmetatable({ method = "GET" }, { __index = function(_, k)
      if k == "url" then
        t:close()
        return e.url .. "/__emu/stats"
      end
    end })
    local ok, err = pcall(t.send, t, r)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("closed", 1, true))
    assert.is_true(t:is_closed())
  end)

  it("re-entering a transport from inside send_many is an error, not corruption", function()
    local t = core.curl()
    local inner
    local r = setmetatable({ method = "GET" }, { __index = function(_, k)
      if k == "url" then
        inner = { pcall(t.send_many, t, { req() }, 4) }
        return e.url .. "/__emu/stats"
      end
    end })
    local res = t:send_many({ req(), r, req() }, 1)
    assert.is_false(inner[1])
    assert.truthy(tostring(inner[2]):find("busy", 1, true))
    for i = 1, 3 do assert.equal(200, res[i].status) end
    t:close()
  end)

  it("a close from a finalizer during send_many is deferred to its end", function()
    local t = core.curl()
    local r = setmetatable({ method = "GET" }, { __index = function(_, k)
      if k == "url" then
        t:close()
        collectgarbage(); collectgarbage()
        return e.url .. "/__emu/stats"
      end
    end })
    local res = t:send_many({ req(), r, req() }, 1)
    for i = 1, 3 do assert.equal(200, res[i].status) end
    assert.is_true(t:is_closed())
    assert.has_error(function() t:send_many({ req() }, 1) end, "cdnkit: the curl transport is closed")
  end)

  it("a bad request in the middle of a batch raises naming the fault and leaves the transport usable", function()
    local t = core.curl()
    local function fails(pat, ...)
      local ok, err = pcall(t.send_many, t, ...)
      assert.is_false(ok)
      assert.matches(pat, tostring(err))
    end
    fails("request 2 has no url", { req(), { method = "GET" }, req() })
    fails("upper%-case HTTP method", { req(), req { method = "get" } })
    fails("not_before must be within the next hour", { req() }, 1, { not_before = { math.huge } })
    fails("concurrency must be between 1 and 256", { req() }, 2 ^ 40)
    fails("group must be 1..64", { req() }, 1, { group = { 2 ^ 32 + 1 } })
    fails("sched must be a table", { req() }, 1, "x")
    fails("request timeout must be > 0", { req { timeout = 0 } })
    fails("request max_body must be 1 .. 2%^30", { req { max_body = 1e30 } })
    local ok, err = pcall(t.send, t, req { headers = { ["X-A"] = "a\r\nX-B: b" } })
    assert.is_false(ok)
    assert.matches("header 'X%-A' has a bad name or a line break", tostring(err))
    local res = t:send_many({ req(), req() }, 2)
    assert.equal(200, res[1].status)
    assert.equal(200, res[2].status)
    t:close()
  end)

  it("the curl transport parses response headers only when asked or on errors", function()
    local t = core.curl()
    local status, raw = t:_perform(req())
    assert.equal(200, status)
    assert.equal("string", type(raw))
    assert.is_table(core.parse_headers(raw))
    assert.truthy(core.parse_headers(raw)["content-type"])
    local _, h = t:_perform(req(), true)
    assert.is_table(h)
    local _, h404 = t:_perform(req { url = e.url .. "/nowhere" })
    assert.is_table(h404)
    t:close()
  end)

  it("a tiny timeout is still a timeout (not libcurl's 'no timeout')", function()
    local c = emu.client(e, { timeout = 0.0004, retry = false })
    e:faults { { kind = "slow", seconds = 1, count = 1 } }
    local res, err = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.equal("timeout", err.code)
    c:close()
  end)

  for _, kind in ipairs { "garbage", "hugeheader", "truncated", "close", "html", "badjson" } do
    it("a server answering with " .. kind .. " gives nil, err", function()
      local c = emu.client(e, { retry = false })
      e:faults { { kind = kind, count = 2 } }
      local res, err = c:DescribeCdnService {}
      assert.is_nil(res)
      assert.is_string(err.code)
      assert.is_string(err.message)
      -- and through the multi interface
      e:faults { { kind = kind, count = 4 } }
      local t = core.curl()
      local many = t:send_many({ req(), req() }, 2)
      assert.equal(2, #many)
      for i = 1, 2 do
        assert.truthy(many[i].status or many[i].err.code)
      end
      t:close()
      c:close()
    end)
  end

  it("a response body over max_body is an error naming the limit in force", function()
    local t = core.curl()
    local status, err = t:send(req { max_body = 10 })
    assert.is_nil(status)
    assert.truthy(err.message:find("larger than 10 bytes", 1, true))
    t:close()
    local c = emu.client(e, { max_body = 10, retry = false })
    local res, err2 = c:DescribeCdnService {}
    assert.is_nil(res)
    assert.truthy(err2.message:find("larger than 10 bytes", 1, true))
    c:close()
  end)

  it("rejects an endpoint with credentials in it (they would show in tostring)", function()
    assert.has_error(function()
      cdnkit.aliyun { access_key_id = "a", access_key_secret = "b", endpoint = "https://u:p@cdn.aliyuncs.com" }
    end, "cdnkit.aliyun: option 'endpoint' must not contain credentials (user:password@)")
  end)
end)
