-- The adapter contract (lua/cdnkit/vendors/README.md), checked when an
-- adapter loads, and the transport contract (README "Transports"): what a
-- transport is handed and what the engine accepts back.
local cdnkit = require "cdnkit"
local adapter = require "cdnkit.adapter"
local core = require "cdnkit.core"
local emu = require "emu"

local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, tostring(err))
end

-- a minimal valid adapter, for mutating
local function minimal()
  return {
    name = "mini", order = 9, default_version = "1",
    versions = { ["1"] = { api = "cdnkit.apis.qcloud_v2", endpoint = "https://x.example",
                           path = "/", scheme = "acs3_hmac_sha256", default_method = "GET",
                           methods = { GET = true } } },
    options = {}, credentials = { { "key", "MINI_KEY" }, { "secret", "MINI_SECRET" } },
    init = function() end, build = function() end, parse = function() end,
    list_form = function() end,
  }
end

describe("adapter contract", function()
  it("accepts every adapter in lua/cdnkit/vendors/", function()
    for _, name in ipairs(cdnkit.vendors()) do
      assert.equal(name, adapter.get(name).name)
    end
  end)

  it("the vendor index lists exactly the adapter files (make regenerates it)", function()
    local p = assert(io.popen("ls lua/cdnkit/vendors/*.lua"))
    local files = {}
    for line in p:lines() do
      local n = line:match("([%w_]+)%.lua$")
      if n ~= "index" then files[#files + 1] = n end
    end
    p:close()
    table.sort(files)
    local index = {}
    for i, v in ipairs(require "cdnkit.vendors.index") do index[i] = v end
    table.sort(index)
    assert.same(files, index)
    -- and cdnkit.vendors() is the same set, in the adapters' order
    local vendors = cdnkit.vendors()
    table.sort(vendors)
    assert.same(files, vendors)
    assert.same({ "aliyun", "qcloud", "wangsu", "plcloud" }, cdnkit.vendors())
  end)

  it("passes a minimal adapter", function()
    assert.is_table(adapter.check(minimal(), "mini.lua"))
  end)

  it("names the missing field", function()
    for _, f in ipairs { "name", "order", "versions", "credentials", "init", "build", "parse", "list_form" } do
      local A = minimal()
      A[f] = nil
      raises_with("adapter mini%.lua: required field '" .. f .. "'", function() adapter.check(A, "mini.lua") end)
    end
  end)

  it("names a field of the wrong type", function()
    local A = minimal()
    A.parse = "parse"
    raises_with("field 'parse' must be a function, got string", function() adapter.check(A, "mini.lua") end)
    A = minimal()
    A.quota = true
    raises_with("field 'quota' must be a table, got boolean", function() adapter.check(A, "mini.lua") end)
  end)

  it("refuses unknown fields, so a typo does not go unnoticed", function()
    local A = minimal()
    A.pasre = function() end
    raises_with("unknown field 'pasre'", function() adapter.check(A, "mini.lua") end)
  end)

  it("checks each version: its fields, its scheme, its default method", function()
    local A = minimal()
    A.versions["1"].path = nil
    raises_with("version 1: required field 'path'", function() adapter.check(A, "mini.lua") end)
    A = minimal()
    A.versions["1"].scheme = "rot13"
    raises_with("unknown signing scheme 'rot13'", function() adapter.check(A, "mini.lua") end)
    A = minimal()
    A.versions["1"].default_method = "POST"
    raises_with("'default_method' is not in methods", function() adapter.check(A, "mini.lua") end)
    A = minimal()
    A.default_version = "2"
    raises_with("default_version '2' is not in versions", function() adapter.check(A, "mini.lua") end)
  end)

  it("checks credentials and batching fields", function()
    local A = minimal()
    A.credentials = { { "key" } }
    raises_with("credentials%[1%] must be { option, ENV_VAR }", function() adapter.check(A, "mini.lua") end)
    A = minimal()
    A.batch_params = function() end
    raises_with("'task_ids' is required with batch_params", function() adapter.check(A, "mini.lua") end)
  end)

  it("an unknown vendor names the known ones", function()
    raises_with("unknown vendor 'nope' %(aliyun, plcloud, qcloud, wangsu%)", function() adapter.get("nope") end)
  end)
end)

describe("versions and options", function()
  it("client:version() says which API the client speaks", function()
    local a = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s" }
    assert.equal("2018-05-10", a:version()) -- the vendor's current API by default
    a = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", version = "2014-11-11" }
    assert.equal("2014-11-11", a:version())
    local q = cdnkit.qcloud { secret_id = "k", secret_key = "s", version = "v2" }
    assert.equal("v2", q:version())
  end)
  it("an unknown version is refused, listing the known ones", function()
    raises_with("option 'version': unknown API version '1999%-01%-01' %(2014%-11%-11, 2018%-05%-10%)", function()
      cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", version = "1999-01-01" }
    end)
  end)
  it("every client rejects unknown options by name", function()
    raises_with("cdnkit.aliyun: unknown option 'timout'", function()
      cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", timout = 3 }
    end)
    raises_with("cdnkit.qcloud: unknown option 'access_key_id'", function()
      cdnkit.qcloud { version = "v2", secret_id = "k", secret_key = "s", access_key_id = "x" }
    end)
  end)
  it("prepare() takes the fixed keys the adapter declares, and only those", function()
    local q = cdnkit.qcloud { version = "v2", secret_id = "k", secret_key = "s" }
    assert.is_table(q:prepare("GetPayType", {}, { region = "gz", host = "h", sign_method = "HmacSHA256" }))
    local a = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s" }
    raises_with("prepare: unknown option 'region'", function()
      a:prepare("DescribeCdnService", {}, { region = "gz" })
    end)
  end)
  it("the API data is never written to by calls (it is documented read-only)", function()
    local api = cdnkit.api("aliyun", "2014-11-11")
    local function keys()
      local t = {}
      for _, a in ipairs(api.actions) do
        for k in pairs(a) do t[#t + 1] = a.name .. "." .. tostring(k) end
      end
      table.sort(t)
      return table.concat(t, " ")
    end
    local before = keys()
    local a = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", version = "2014-11-11" }
    for _, x in ipairs(api.actions) do pcall(a.prepare, a, x.name, {}) end
    assert.equal(before, keys())
  end)
  it("the secret is read from the environment by the C core, not kept in Lua state", function()
    local a = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s3cr3t-value" }
    local st = a:_state()
    local seen = {}
    local function walk(t)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        assert.are_not.equal("s3cr3t-value", v, "secret found in state at " .. tostring(k))
        if type(v) == "table" then walk(v) end
      end
    end
    walk(st)
  end)
end)

describe("transport contract", function()
  local e
  setup(function() e = emu.start("qcloud", {}) end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  local ALLOWED = { method = true, url = true, headers = true, body = true, timeout = true,
                    connect_timeout = true, max_body = true, verify_tls = true, ca_file = true,
                    proxy = true, idempotent = true }
  local function plain(req)
    for k in pairs(req) do
      assert.is_true(ALLOWED[k] == true, "engine state in the request: " .. tostring(k))
    end
    assert.is_string(req.method)
    assert.is_string(req.url)
    assert.equal(30, req.timeout)
    assert.equal(5, req.connect_timeout)
    assert.is_true(req.verify_tls)
    assert.is_boolean(req.idempotent)
  end

  it("a bare function is send; the request is plain data with the transfer settings", function()
    local curl = core.curl()
    local n = 0
    local c = emu.client(e, { transport = function(req)
      n = n + 1
      plain(req)
      return curl:send(req)
    end })
    assert.is_table((c:GetPayType {}))
    assert.equal(1, n)
    c:close()
    curl:close()
  end)

  it("a table's send_many gets the batches, plain, with the concurrency", function()
    local curl = core.curl()
    local calls, got = 0, 0
    local c = emu.client(e, { transport = {
      send = function(req) return curl:send(req) end,
      send_many = function(reqs, conc)
        calls = calls + 1
        assert.equal(3, conc)
        for _, r in ipairs(reqs) do plain(r) end
        got = got + #reqs
        return curl:send_many(reqs, conc)
      end,
    } })
    local urls = {}
    for i = 1, 2500 do urls[i] = "http://host-0001.example.com/" .. i end
    local report = c:refresh { urls = urls, concurrency = 3 }
    assert.is_true(report.ok)
    assert.equal(2500, report.done)
    assert.equal(3, got) -- 1000 URLs per call
    assert.is_true(calls >= 1)
    c:close()
    curl:close()
  end)

  it("settings given to the client travel in the request", function()
    local seen
    local c = emu.client(e, { timeout = 7, connect_timeout = 2, max_body = 4096, verify_tls = false,
      transport = function(req) seen = req; return 200, {}, '{"code":0}' end })
    assert.is_table((c:GetPayType {}))
    assert.equal(7, seen.timeout)
    assert.equal(2, seen.connect_timeout)
    assert.equal(4096, seen.max_body)
    assert.is_false(seen.verify_tls)
    c:close()
  end)

  it("refuses what is not a transport, naming the problem", function()
    local base = { secret_id = "k", secret_key = "s" }
    local function with(t)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      o.transport = t
      return function() return cdnkit.qcloud(o) end
    end
    raises_with("option 'transport' must be \"curl\", \"ngx\", a function or a { send =, send_many = } table, got number",
      with(5))
    raises_with("the table needs a send function", with({}))
    raises_with("send_many must be a function", with({ send = print, send_many = 1 }))
    raises_with("unknown field 'sned'", with({ send = print, sned = print }))
    raises_with("transport \"ngx\" works inside nginx %(OpenResty, lua%-nginx%-module%) only", with("ngx"))
    assert.is_userdata(with("curl")())
  end)

  it("trace events come only with a trace function, with secrets masked", function()
    local events = {}
    local c = emu.client(e, { trace = function(ev) events[#events + 1] = ev end })
    assert.is_table((c:GetPayType {}))
    assert.equal("request", events[1].event)
    assert.equal("response", events[2].event)
    assert.is_table(events[2].headers)
    assert.truthy(events[1].request.body:find("Signature=***", 1, true))
    c:close()
  end)
end)

describe("closing a client", function()
  it("closes its connections too, and wipes the secret", function()
    local c = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s" }
    local curl = c:_state().curl
    assert.is_false(curl:is_closed())
    c:close()
    assert.is_true(c:is_closed())
    assert.is_true(curl:is_closed())
    assert.is_false(c:_has_secret())
    c:close() -- idempotent
  end)
end)
