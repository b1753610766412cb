-- A non-idempotent action is never executed twice: not by libcurl's silent
-- resend on a dead reused connection, not by a retry after a nonce-reuse
-- answer, not by the clock re-sign.  The emulator counts what it executed.
local core = require "cdnkit.core"
local emu = require "emu"

local ADD_DOMAIN = { DomainName = "new.example.com", CdnType = "web", SourceType = "ipaddr",
                     Sources = "1.1.1.1" }
local ADD_HOST = { host = "new.example.com", projectId = 0, hostType = "cname", origin = "1.1.1.1" }

-- a transport that sends every request twice, as a proxy or a buggy
-- transport replaying it would, and answers with the second copy's answer
local function replaying()
  local curl = core.curl()
  return function(req)
    curl:send(req)
    return curl:send(req)
  end, curl
end

describe("aliyun: a create never runs twice", function()
  local e
  setup(function() e = emu.start("aliyun", {}) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset(); e:config { skew = 0 } end)

  local function executed(action) return e:stats().executed[action] or 0 end

  it("a create goes out on a fresh connection, never one libcurl would replay it on", function()
    local c = emu.client(e)
    assert.is_table((c:DescribeCdnService {})) -- the connection is now open and reused next
    -- the server runs the next request that arrives on a reused connection, then
    -- drops the connection without answering: libcurl would resend it
    e:faults { { kind = "drop_after", action = "AddCdnDomain", reused_only = true } }
    local res, err = c:AddCdnDomain(ADD_DOMAIN)
    assert.is_nil(err, err and tostring(err))
    assert.is_table(res)
    assert.equal(1, executed("AddCdnDomain"))
    assert.equal(0, e:stats().nonce_reused)
    -- reads keep the keep-alive connection
    e:reset()
    for _ = 1, 3 do assert.is_table((c:DescribeCdnService {})) end
    assert.equal(1, e:stats().connections)
    c:close()
  end)

  it("a create whose answer is lost is ambiguous and not sent again", function()
    local c = emu.client(e) -- retries on
    e:faults { { kind = "drop_after", action = "AddCdnDomain" } }
    local res, err = c:AddCdnDomain(ADD_DOMAIN)
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
    assert.equal(1, executed("AddCdnDomain"))
    c:close()
  end)

  it("a nonce-reuse answer to a create is ambiguous: no retry, no second run", function()
    local send, curl = replaying()
    local c = emu.client(e, { transport = send })
    local res, err = c:AddCdnDomain(ADD_DOMAIN)
    assert.is_nil(res)
    assert.equal("SignatureNonceUsed", err.code)
    assert.is_true(err.ambiguous)
    assert.is_false(err.retryable)
    assert.matches("may have taken effect; it was not sent again", tostring(err))
    assert.equal(1, err.attempts)
    assert.equal(1, executed("AddCdnDomain"))
    c:close(); curl:close()
  end)

  it("a nonce-reuse answer to a read is retried with a fresh nonce", function()
    local n, curl = 0, core.curl()
    local c = emu.client(e, { transport = function(req)
      n = n + 1
      if n == 1 then curl:send(req) end -- the first attempt is replayed
      return curl:send(req)
    end })
    local res, err = c:DescribeCdnService {}
    assert.is_nil(err, err and tostring(err))
    assert.is_table(res)
    c:close(); curl:close()
  end)

  it("the clock re-sign of a create happens only when the rejection is certain", function()
    -- the server's clock is an hour ahead: the timestamp is refused before
    -- anything runs, so re-signing with the server's clock is safe
    e:config { skew = 3600 }
    local c = emu.client(e, { retry = false })
    local res, err = c:AddCdnDomain(ADD_DOMAIN)
    assert.is_nil(err, err and tostring(err))
    assert.is_table(res)
    assert.equal(1, executed("AddCdnDomain"))
    c:close()
  end)
end)

describe("qcloud v2: a create never runs twice", function()
  local e
  setup(function() e = emu.start("qcloud", {}) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset(); e:config { skew = 0 } end)

  local function executed(action) return e:stats().executed[action] or 0 end

  it("4500 within the clock window is a replay: ambiguous, not re-signed, not retried", function()
    local send, curl = replaying()
    local c = emu.client(e, { transport = send })
    local res, err = c:AddCdnHost(ADD_HOST)
    assert.is_nil(res)
    assert.equal(4500, err.code)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
    assert.equal(1, executed("AddCdnHost"))
    c:close(); curl:close()
  end)

  it("4500 with a timestamp outside the window is expiry: re-signed once, run once", function()
    e:config { skew = 3 * 3600 }
    local c = emu.client(e, { retry = false })
    local res, err = c:AddCdnHost(ADD_HOST)
    assert.is_nil(err, err and tostring(err))
    assert.is_table(res)
    assert.equal(1, executed("AddCdnHost"))
    c:close()
  end)

  it("a create goes out on a fresh connection", function()
    local c = emu.client(e)
    assert.is_table((c:GetPayType {}))
    e:faults { { kind = "drop_after", action = "AddCdnHost", reused_only = true } }
    local res, err = c:AddCdnHost(ADD_HOST)
    assert.is_nil(err, err and tostring(err))
    assert.is_table(res)
    assert.equal(1, executed("AddCdnHost"))
    c:close()
  end)
end)
