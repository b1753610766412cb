-- The C core against hostile servers and hostile Lua: finalizers and
-- metamethods that close or re-enter a client in the middle of its own call,
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

  it("a finalizer that closes the client during its call is deferred, not a use-after-free", function()
    local c = core.new_client("t", { key_id = "k", secret = "s" }, {})
    for _ = 1, 20 do
      setmetatable({}, { __gc = function() c:close() end })
      local status = c:_perform(req())
      assert.equal(200, status)
      collectgarbage()
      if tostring(c):find("closed", 1, true) then break end
    end
    c:close()
    assert.truthy(tostring(c):find("closed", 1, true))
  end)

  it("a request table whose metamethod closes the client", function()
    local c = core.new_client("t", { key_id = "k", secret = "s" }, {})
    local r = setmetatable({ method = "GET" }, { __index = function(_, k)
      if k == "url" then
        c:close()
        return e.url .. "/__emu/stats"
      end
    end })
    local status = c:_perform(r)
    assert.equal(200, status)
    assert.truthy(tostring(c):find("closed", 1, true))
    assert.has_error(function() c:_perform(req()) end)
  end)

  it("re-entering a client from inside its own call is an error, not corruption", function()
    local c = core.new_client("t", { key_id = "k", secret = "s" }, {})
    local inner
    local r = setmetatable({ method = "GET" }, { __index = function(_, k)
      if k == "url" then
        inner = { pcall(c._perform_many, c, { req() }, { concurrency = 4 }) }
        return e.url .. "/__emu/stats"
      end
    end })
    local res = c:_perform_many({ req(), r, req() }, { concurrency = 1 })
    assert.is_false(inner[1])
    assert.truthy(tostring(inner[2]):find("busy", 1, true))
    for i = 1, 3 do assert.equal(200, res[i].status) end
    c:close()
  end)

  it("a borrowed client referenced by nothing else survives a collection during setup", function()
    local c = core.new_client("t", { key_id = "k", secret = "s" }, {})
    for _ = 1, 3 do
      local calls = 0
      local r = setmetatable({ method = "GET" }, { __index = function(_, k)
        if k == "client" then
          return core.new_client("x", { key_id = "k", secret = "s", timeout = 5 }, {})
        end
        if k == "url" then
          calls = calls + 1
          if calls == 2 then
            collectgarbage(); collectgarbage(); collectgarbage()
            local junk = {}
            for i = 1, 1e4 do junk[i] = { i } end
          end
          return e.url .. "/__emu/stats"
        end
      end })
      local res = c:_perform_many({ r }, { concurrency = 1 })
      assert.equal(200, res[1].status)
    end
    c:close()
  end)

  it("a bad request in the middle of a batch raises and leaves the client usable", function()
    local c = core.new_client("t", { key_id = "k", secret = "s" }, {})
    assert.has_error(function() c:_perform_many({ req(), { method = "GET" }, req() }) end)
    assert.has_error(function() c:_perform_many({ req(), req { method = "get" } }) end)
    assert.has_error(function() c:_perform_many({ req { not_before = math.huge } }) end)
    assert.has_error(function() c:_perform_many({ req() }, { rate = 1e-300 }) end)
    assert.has_error(function() c:_perform_many({ req() }, { concurrency = 2 ^ 40 }) end)
    assert.has_error(function() c:_perform_many({ req { group = 2 ^ 32 + 1 } }) end)
    assert.has_error(function() c:_perform(req { headers = { ["X-A"] = "a\r\nX-B: b" } }) end)
    local res = c:_perform_many({ req(), req() }, { concurrency = 2 })
    assert.equal(200, res[1].status)
    assert.equal(200, res[2].status)
    c:close()
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
      local many = c:_perform_many({ req(), req() }, { concurrency = 2 })
      assert.equal(2, #many)
      c:close()
    end)
  end

  it("a response body over max_body is an error naming the limit in force", function()
    local c = core.new_client("t", { key_id = "k", secret = "s", max_body = 10 }, {})
    local status, err = c:_perform(req())
    assert.is_nil(status)
    assert.truthy(err.message:find("larger than 10 bytes", 1, true))
    c:close()
    assert.has_error(function() core.new_client("t", { max_body = 1e30 }, {}) end)
  end)

  it("rejects an endpoint with credentials in it (they would show in tostring)", function()
    assert.has_error(function()
      cdnkit.aliyun { access_key_id = "a", access_key_secret = "b", endpoint = "https://u:p@cdn.aliyuncs.com" }
    end)
  end)
end)
