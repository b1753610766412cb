-- core.redis: the hiredis binding (the fleet purge queue's base), against a
-- redis-server started on loopback by this spec.
local core = require "cdnkit.core"

local rs = require "redis_server"

describe("core.redis", function()
  local port, srv
  setup(function()
    if not rs.available() then return end
    port = rs.free_port()
    srv = rs.start(port)
  end)
  teardown(function() rs.stop(srv) end)

  local function conn()
    if not port then pending("needs redis-server (make deps installs it)") end
    return assert(core.redis("127.0.0.1", port, 2))
  end

  it("sends commands and converts every reply type", function()
    local c = conn()
    if not c then return end
    assert.equal("PONG", c:command("PING"))
    assert.equal("OK", c:command("SET", "k", "v\0x"))        -- binary safe
    assert.equal("v\0x", c:command("GET", "k"))
    assert.equal(core.null, c:command("GET", "missing"))
    assert.equal(3, c:command("RPUSH", "l", "a", 2, "c"))   -- numbers as strings
    local l = c:command("LRANGE", "l", 0, -1)
    assert.same({ "a", "2", "c" }, l)
    assert.equal(core.array_mt, getmetatable(l))
    assert.equal("[]", core.json_encode(c:command("LRANGE", "none", 0, -1)))
    local res, err = c:command("INCR", "l")
    assert.is_nil(res)
    assert.equal("redis", err.code)
    assert.truthy(err.message:find("WRONGTYPE", 1, true))
    -- nested arrays (a stream read) and errors inside a transaction
    c:command("XADD", "s", "*", "url", "http://a/1")
    local x = c:command("XRANGE", "s", "-", "+")
    assert.equal("url", x[1][2][1])
    assert.equal("http://a/1", x[1][2][2])
    c:command("MULTI")
    c:command("SET", "t", "1")
    c:command("INCR", "k")
    local ex = c:command("EXEC")
    assert.equal("OK", ex[1])
    assert.is_table(ex[2])
    assert.truthy(ex[2].err:find("not an integer", 1, true))
    -- a server-side script
    assert.equal(42, c:command("EVAL", "return tonumber(ARGV[1]) * 2", 0, 21))
    c:close()
    assert.is_true(c:is_closed())
    res, err = c:command("PING")
    assert.is_nil(res)
    assert.equal("redis_io", err.code)
  end)

  it("usage mistakes raise; an unreachable server is nil, err", function()
    local c = conn()
    if not c then return end
    assert.has_error(function() c:command() end)
    assert.has_error(function() c:command("SET", {}, "x") end)
    assert.has_error(function() core.redis("127.0.0.1", 0) end)
    c:close()
    local r, err = core.redis("127.0.0.1", 1, 0.5)
    assert.is_nil(r)
    assert.equal("connect", err.code)
  end)
end)
