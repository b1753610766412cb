-- Plcloud: keystone v2.0 token auth and the 20 resource calls, against the
-- emulator (spec/emulator/vendor_plcloud.py), which checks the token itself.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "spec.support.emu"

local PASSWORD = emu.creds.plcloud.password

local function raises(pat, f)
  local ok, msg = pcall(f)
  assert.is_false(ok)
  assert.truthy(tostring(msg):find(pat), tostring(msg))
end

-- every string reachable from a value (tables walked), for secret checks
local function strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do strings(k, out, seen); strings(x, out, seen) end
  end
  return out
end

local function contains(v, needle)
  for _, s in ipairs(strings(v)) do
    if s:find(needle, 1, true) then return true end
  end
  return false
end

describe("plcloud", function()
  local e, pl
  setup(function()
    e = emu.start("plcloud", { task_seconds = 0.3 })
  end)
  teardown(function() e:stop() end)
  before_each(function()
    e:reset()
    -- (settings outlive a reset)
    e:config { token_seconds = 3600, token_stated_seconds = core.null }
    pl = emu.client(e)
  end)
  after_each(function() pl:close() end)

  local function stats() return e:stats() end

  describe("construction", function()
    it("is listed and speaks v1_0", function()
      local found = false
      for _, v in ipairs(cdnkit.vendors()) do if v == "plcloud" then found = true end end
      assert.is_true(found)
      assert.equal("v1_0", pl:version())
      assert.equal("plcloud", pl:vendor())
    end)
    it("tostring shows neither the password nor the token", function()
      assert.is_table(pl.cdn:list())
      local s = tostring(pl)
      assert.truthy(s:find("cdnkit.plcloud client", 1, true))
      assert.falsy(s:find(PASSWORD, 1, true))
      assert.falsy(s:find(core.client_token(pl), 1, true))
    end)
    it("a token without an endpoint or password is a usage error", function()
      raises("needs 'endpoint' too", function() cdnkit.plcloud { token = "abc" } end)
    end)
    it("checks its options", function()
      raises("endpoint_type", function()
        cdnkit.plcloud { username = "u", password = "p", endpoint_type = "bogus" }
      end)
      raises("auth_url", function()
        cdnkit.plcloud { username = "u", password = "p", auth_url = "ftp://x/v2.0" }
      end)
      raises("unknown option 'tenant'", function()
        cdnkit.plcloud { username = "u", password = "p", tenant = "x" }
      end)
    end)
    it("reads PLCLOUD_* from the environment (the password by the C core)", function()
      local lua = arg and arg[-1] or "lua5.4"
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
        local pl = require("cdnkit").plcloud {}
        local list, err = pl.cdn:list()
        io.write(list and ("ok " .. #list) or tostring(err))
      ]])
      f:close()
      local cmd = ("env PLCLOUD_USERNAME=demo PLCLOUD_PASSWORD=%s PLCLOUD_TENANT_NAME=demo " ..
        "PLCLOUD_AUTH_URL=%s/v2.0 LUA_PATH=%q LUA_CPATH=%q %s %s 2>&1"):format(PASSWORD, e.url,
        package.path, package.cpath, lua, script)
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      os.remove(script)
      assert.equal("ok 5", out)
    end)
  end)

  describe("keystone", function()
    it("authenticates once and reuses the token", function()
      for _ = 1, 5 do assert.is_table(pl.cdn:list()) end
      local s = stats()
      assert.equal(1, s.tokens_issued)
      assert.equal(0, s.token_rejected)
    end)
    it("a wrong password is nil, err with code auth, and never shows the password", function()
      local bad = emu.client(e, { password = "wrong-pass-123" })
      local res, err = bad.cdn:list()
      assert.is_nil(res)
      assert.equal("auth", err.code)
      assert.equal(401, err.http_status)
      assert.truthy(err.message:find("demo", 1, true))
      assert.falsy(contains(err, "wrong-pass-123"))
      assert.falsy(tostring(err):find("wrong-pass-123", 1, true))
      assert.equal(1, stats().auth_failed)
      bad:close()
    end)
    it("renews the token shortly before it expires (no 401 seen)", function()
      e:config { token_seconds = 2 }
      assert.is_table(pl.cdn:list())
      core.sleep(2.1)
      assert.is_table(pl.cdn:list())
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(0, s.token_rejected)
    end)
    it("a token that expires on the server mid-run is renewed once and the call resent", function()
      -- the server drops tokens after 1 s while saying they last an hour
      e:config { token_seconds = 1, token_stated_seconds = 3600 }
      assert.is_table(pl.cdn:list())
      core.sleep(1.2)
      local t = pl.ticket:create("disk", "full") -- not idempotent: a 401 never ran, so it is resent
      assert.equal("disk", t.summary)
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(1, s.token_rejected)
    end)
    it("a token revoked by the server is replaced", function()
      assert.is_table(pl.cdn:list())
      local old = core.client_token(pl)
      e:revoke()
      local d = pl.cdn:get(206801)
      assert.equal("pl-0001.example.com", d.domain)
      assert.not_equal(old, core.client_token(pl))
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(1, s.token_rejected)
    end)
    it("never loops: a fresh token refused too is the caller's error", function()
      -- every token is dead on arrival
      e:config { token_seconds = 0, token_stated_seconds = 3600 }
      local res, err = pl.cdn:list()
      assert.is_nil(res)
      assert.equal("auth", err.code)
      assert.truthy(err.message:find("refused too", 1, true))
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(2, s.token_rejected)
    end)
    it("endpoint + token skip keystone; refused without a password is an auth error", function()
      assert.is_table(pl.cdn:list())
      local tok = core.client_token(pl)
      local direct = cdnkit.plcloud { endpoint = e.url .. "/v1.0", token = tok, retry = false }
      assert.equal(5, #direct.cdn:list())
      assert.equal(1, stats().tokens_issued)
      e:revoke()
      local res, err = direct.cdn:list()
      assert.is_nil(res)
      assert.equal("auth", err.code)
      assert.truthy(err.hint:find("password", 1, true))
      assert.equal(1, stats().tokens_issued)
      direct:close()
    end)
    it("endpoint + token + password: the password renews a refused token", function()
      assert.is_table(pl.cdn:list())
      local tok = core.client_token(pl)
      e:revoke()
      local c = emu.client(e, { endpoint = e.url .. "/v1.0", token = tok })
      assert.equal(5, #c.cdn:list())
      assert.equal(2, stats().tokens_issued)
      c:close()
    end)
    it("a renewal that fails for a moment is retried, and the refused token is never sent again", function()
      assert.is_table(pl.cdn:list())
      e:revoke()
      e:faults { { kind = "http503", action = "tokens", count = 1 } }
      local d = pl.cdn:get(206801)
      assert.equal(206801, d.id)
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(1, s.token_rejected) -- the revoked token went out once, not again after the 503
    end)
    it("a token-only client does not resend a token the server refused", function()
      assert.is_table(pl.cdn:list())
      local direct = cdnkit.plcloud { endpoint = e.url .. "/v1.0", token = core.client_token(pl), retry = false }
      e:revoke()
      for _ = 1, 3 do
        local res, err = direct.cdn:list()
        assert.is_nil(res)
        assert.equal("auth", err.code)
        assert.truthy(err.message:find("no password", 1, true))
      end
      assert.equal(1, stats().token_rejected)
      assert.truthy(tostring(direct):find("key none", 1, true))
      direct:close()
    end)
    it("prepare() shows a live token only when given one", function()
      assert.is_table(pl.cdn:list())
      local tok = core.client_token(pl)
      local req = pl:prepare("cdn.list", {})
      assert.falsy(contains(req, tok))
      assert.equal(e.url .. "/v1.0/cdn/domain", req.url)
      assert.equal("given", pl:prepare("cdn.list", {}, { token = "given" }).headers["X-Auth-Token"])
    end)
    it("a wrong auth_url says what it posted to and what auth_url should be", function()
      local c = emu.client(e, { auth_url = e.url .. "/v2.0/tokens" })
      local res, err = c.cdn:list()
      assert.is_nil(res)
      assert.equal("auth_http", err.code)
      assert.truthy(err.message:find("/v2.0/tokens/tokens", 1, true))
      assert.truthy(err.hint:find("Keystone v2.0 URL", 1, true))
      c:close()
    end)
    it("picks the region's publicURL from the catalog", function()
      local r2 = emu.client(e, { region = "RegionTwo" })
      assert.equal(5, #r2.cdn:list())
      assert.equal(1, stats().region_two)
      r2:close()
      local bad = emu.client(e, { region = "Mars" })
      local res, err = bad.cdn:list()
      assert.is_nil(res)
      assert.equal("catalog", err.code)
      assert.truthy(err.message:find("RegionOne", 1, true))
      bad:close()
    end)
    it("traces never show the password or the token", function()
      local events = {}
      local c = emu.client(e, { trace = function(ev) events[#events + 1] = ev end })
      assert.is_table(c.cdn:list())
      local tok = core.client_token(c)
      e:revoke()
      assert.is_table(c.cdn:list())
      local tok2 = core.client_token(c)
      assert.truthy(#events >= 8)
      assert.falsy(contains(events, PASSWORD))
      assert.falsy(contains(events, tok))
      assert.falsy(contains(events, tok2))
      -- the token request is traced, its password masked
      local seen = false
      for _, ev in ipairs(events) do
        if ev.action == "tokens" and ev.event == "request" then
          seen = true
          assert.truthy(ev.request.body:find('"password":"***"', 1, true))
        end
      end
      assert.is_true(seen)
      c:close()
    end)
  end)

  describe("answers the emulator does not give (a Lua transport)", function()
    -- keystone and the service on one fake transport
    local TOKEN = "TOKEN-0123456789abcdef"
    local function fake(list_body)
      local log = {}
      local function send(req)
        log[#log + 1] = req.method .. " " .. req.url
        if req.url:match("/tokens$") then
          -- keys in another order: the tenant before the id, the id again elsewhere
          return 200, { ["Content-Type"] = "application/json" },
            '{"access":{"token":{"tenant":{"id":"t1","name":"demo"},"expires":"2099-01-01T00:00:00Z",' ..
            '"id":"' .. TOKEN .. '"},"metadata":{"echo":"' .. TOKEN .. '"},"serviceCatalog":[{"type":"plcloud",' ..
            '"name":"plcloud","endpoints":[{"region":"RegionOne","publicURL":"http://svc.example/v1.0/"}]}],' ..
            '"user":{"id":"u1"}}}'
        end
        if req.url:match("/cdn/domain$") then return 200, {}, list_body end
        if req.url:match("/cdn/cache_flush$") then return 200, {}, '{"cdn":{"status":"submitted"}}' end
        return 404, {}, '{"error":{"message":"nope","code":404,"title":"Not Found"}}'
      end
      return send, log
    end
    it("traces mask the token wherever keystone puts it", function()
      local events = {}
      local send = fake('{"cdn":[]}')
      local c = cdnkit.plcloud { username = "demo", password = PASSWORD, transport = send,
                                 trace = function(ev) events[#events + 1] = ev end }
      assert.same({}, c.cdn:list())
      assert.falsy(contains(events, TOKEN))
      assert.falsy(contains(events, PASSWORD))
      c:close()
    end)
    it("domain ids cache_flush cannot take are left out; a non-list answer is an error", function()
      local send, log = fake('{"cdn":[{"id":null,"domain":"a.example"},{"id":1.5,"domain":"b.example"},' ..
        '{"id":"7","domain":"c.example"},{"id":0,"domain":"d.example"}]}')
      local c = cdnkit.plcloud { username = "demo", password = PASSWORD, transport = send, retry = false }
      local r = c:refresh { urls = { "http://a.example/1", "http://b.example/1", "http://c.example/1",
                                     "http://d.example/1" } }
      assert.equal(1, r.done) -- c.example, id "7"
      assert.equal(3, #r.failed)
      for _, f in ipairs(r.failed) do assert.equal("unknown_domain", f.err.code) end
      assert.equal("PUT http://svc.example/v1.0/cdn/cache_flush", log[#log])
      c:close()
      local c2 = cdnkit.plcloud { username = "demo", password = PASSWORD, transport = fake('{"cdn":"x"}'),
                                  retry = false }
      local r2 = c2:refresh { urls = { "http://a.example/1" } }
      assert.equal("json", r2.failed[1].err.code)
      c2:close()
    end)
  end)

  describe("the cdn calls", function()
    it("list, get, flow", function()
      local list = pl.cdn:list()
      assert.equal(5, #list)
      assert.equal("pl-0001.example.com", list[1].domain)
      assert.equal(206801, list[1].id)
      assert.equal("pl-0002.example.com", pl.cdn:get(206802).domain)
      local flow = pl.cdn:flow(206801)
      assert.is_table(flow)
      assert.truthy(#flow > 0 and flow[1].date and flow[1].flow == math.floor(flow[1].flow))
    end)
    it("create, update, delete", function()
      local d = pl.cdn:create { domain = "new.example.com", origin_ips = { "114.114.114.114" },
                                areas = { "cn", "hk" }, type = "web" }
      assert.equal("new.example.com", d.domain)
      assert.same({ "cn", "hk" }, d.areas)
      local u = pl.cdn:update(d.id, { origin_ips = { "115.115.115.115" }, enable = false })
      assert.same({ "115.115.115.115" }, u.origin_ips)
      assert.equal(false, u.enable)
      assert.is_true(pl.cdn:delete(d.id))
      local res, err = pl.cdn:get(d.id)
      assert.is_nil(res)
      assert.equal(404, err.http_status)
      assert.equal("NotFound", err.code)
    end)
    it("a duplicate domain is the vendor's error with its message", function()
      local res, err = pl.cdn:create { domain = "pl-0001.example.com", origin_ips = { "1.1.1.1" }, areas = { "cn" } }
      assert.is_nil(res)
      assert.equal(409, err.http_status)
      assert.truthy(#err.message > 0)
      assert.is_false(err.retryable)
    end)
    it("recharge goes to the token's tenant", function()
      local r = pl.cdn:recharge { flow = 10 }
      assert.equal(10, r.flow)
      assert.equal("4c7e0a3d9b2f4e1a8d6c5b4a39281706", r.project_id)
      local res, err = pl.cdn:recharge { flow = 1, project_id = "someone-else" }
      assert.is_nil(res)
      assert.equal(403, err.http_status)
    end)
    it("common URLs: create_urls, list_urls, delete_urls", function()
      local made = pl.cdn:create_urls { "http://pl-0001.example.com/a.css", "http://pl-0001.example.com/b.js" }
      assert.equal(2, #made)
      local list = pl.cdn:list_urls()
      assert.equal(2, #list)
      assert.is_true(pl.cdn:delete_urls(made[1].id))
      assert.equal(1, #pl.cdn:list_urls())
    end)
    it("cache_flush(domain_id, urls, dirs)", function()
      local r = pl.cdn:cache_flush(206801, { "http://pl-0001.example.com/a.css" }, { "http://pl-0001.example.com/img/" })
      assert.equal(206801, r.domain_id)
      local s = stats()
      assert.same({ "http://pl-0001.example.com/a.css" }, s.refreshed_urls)
      assert.same({ "http://pl-0001.example.com/img/" }, s.refreshed_dirs)
      -- urls only: dirs are left out of the body
      local req = pl:prepare("cdn.cache_flush", { domain_id = 206801, urls = { "http://pl-0001.example.com/x" } },
        { token = "t", endpoint = "http://h/v1.0" })
      assert.same({ domain = { domain_id = 206801, urls = { "http://pl-0001.example.com/x" } } },
        cdnkit.json_decode(req.body))
    end)
    it("request_log with its default type and isoformat times", function()
      local logs = pl.cdn:request_log(206801, nil, "2014-08-01T00:00:00", "2014-08-02T00:00:00")
      assert.is_table(logs)
      assert.equal("cache", logs[1].type)
      raises("isoformat", function() pl.cdn:request_log(206801, "cache", "yesterday") end)
    end)
    it("prefetch and prefetch_query", function()
      local r = pl.cdn:prefetch { "http://pl-0002.example.com/big.bin" }
      assert.truthy(r.request_id:match("^pf%-"))
      local q = pl.cdn:prefetch_query(r.request_id)
      assert.equal(r.request_id, q.request_id)
      assert.is_table(q.urls)
    end)
  end)

  describe("the ticket calls", function()
    it("list, get, create, update, list_reply, reply", function()
      local all = pl.ticket:list()
      assert.equal(1, #all)
      assert.equal("tk-8b47870c", all[1].id)
      assert.equal(1, #pl.ticket:list("u-5e3f2a1b"))
      assert.equal("tk-8b47870c", pl.ticket:get("tk-8b47870c").id)
      local t = pl.ticket:create("cache miss", "every request misses")
      assert.equal("new", t.status)
      assert.equal("accepted", pl.ticket:update(t.id, "accepted").status)
      local reply = pl.ticket:reply(t.id, "looking into it")
      assert.equal("looking into it", reply.content)
      local replies = pl.ticket:list_reply(t.id)
      assert.equal(1, #replies)
      assert.equal("closed", pl.ticket:update(t.id, "closed").status)
    end)
  end)

  describe("usage mistakes raise before sending", function()
    it("names the parameter", function()
      raises("'status' must be one of accepted, closed", function() pl.ticket:update("tk-1", "open") end)
      raises("'urls' must be an array", function() pl.cdn:cache_flush(206801, "http://pl-0001.example.com/a") end)
      raises("'domain_id' must be an integer", function() pl.cdn:cache_flush("x", { "http://a/b" }) end)
      raises("'domain_id' must be an integer", function() pl.cdn:get(1.5) end)
      raises("one of the parameters 'urls', 'dirs'", function() pl.cdn:cache_flush(206801) end)
      raises("takes 1 argument", function() pl.cdn:get(1, 2) end)
      raises("with a colon", function() pl.cdn.list() end)
      raises("has no method 'lst'", function() pl.cdn:lst() end)
      raises("table of named parameters", function() pl.cdn:recharge(10) end)
      raises("'flow'", function() pl.cdn:recharge {} end)
      raises("one of the parameters 'urls', 'dirs' is required", function() pl.cdn:cache_flush(206801, {}, {}) end)
      raises("'type' does not match", function() pl.cdn:request_log(206801, "2026-12-01T00:00:00") end)
      raises("isoformat", function() pl.cdn:request_log(206801, "cache", "2026-12-01T00:00:00Z") end)
      raises("did you mean 'cdn.cache_flush'", function() pl:help("cache_flush") end)
      raises("client.cdn:list%(%.%.%.%)", function() pl["cdn.list"]() end)
      raises("call refresh with a colon", function() pl.refresh { urls = {} } end)
      raises("'origin_ips' must not be empty", function()
        pl.cdn:create { domain = "a.com", origin_ips = {}, areas = { "cn" } }
      end)
      assert.equal(0, stats().tokens_issued) -- nothing was sent
    end)
    it("every call is a method and has help", function()
      local n = 0
      for _, name in ipairs(pl:actions()) do
        n = n + 1
        local r, m = name:match("^(%w+)%.([%w_]+)$")
        assert.is_function(pl[r][m])
        assert.truthy(tostring(pl:help(name)):find("Lua: client." .. r .. ":" .. m, 1, true))
      end
      assert.equal(20, n)
    end)
  end)

  describe("refresh and prefetch", function()
    it("maps hosts to domain ids, one cache_flush per domain, unknown hosts failed", function()
      local r = pl:refresh {
        urls = { "http://pl-0001.example.com/a", "http://pl-0002.example.com/b", "http://pl-0001.example.com/c",
                 "http://elsewhere.example.org/x" },
        dirs = { "http://pl-0003.example.com/img/" },
      }
      assert.is_false(r.ok)
      assert.equal(4, r.done)
      assert.equal(1, #r.failed)
      assert.equal("unknown_domain", r.failed[1].err.code)
      assert.same({ "http://elsewhere.example.org/x" }, r.failed[1].urls)
      local s = stats()
      assert.equal(3, s.executed["cdn.cache_flush"])
      assert.equal(1, s.executed["cdn.list"]) -- the domain list, once
      local sum = r:wait { timeout = 1, interval = 0.1 }
      assert.is_false(sum.complete)
      assert.equal(3, sum.untracked)
      assert.truthy(sum.untracked_reason:find("no purge%-status API"))
    end)
    it("a host with a port or in capitals is still the domain", function()
      local r = pl:refresh { urls = { "http://pl-0001.example.com:80/a", "https://PL-0001.example.com/b" } }
      assert.is_true(r.ok)
      assert.equal(2, r.done)
    end)
    it("bad URLs and params raise before anything is sent", function()
      raises("urls%[2%] must be a URL", function()
        pl:refresh { urls = { "http://pl-0001.example.com/a", "pl-0001.example.com/b" } }
      end)
      raises("params.bogus is not a parameter of cdn.cache_flush", function()
        pl:refresh { urls = { "http://pl-0001.example.com/a" }, params = { bogus = 1 } }
      end)
      local s = stats()
      assert.equal(0, s.tokens_issued)
      assert.equal(0, s.requests)
    end)
    it("a big purge of one domain goes out in calls of 100", function()
      local urls = {}
      for i = 1, 250 do urls[i] = "http://pl-0004.example.com/f" .. i end
      local r = pl:refresh { urls = urls, concurrency = 3 }
      assert.is_true(r.ok)
      assert.equal(250, r.done)
      assert.equal(3, stats().executed["cdn.cache_flush"])
    end)
    it("prefetch is tracked with prefetch_query", function()
      local r = pl:prefetch { urls = { "http://pl-0001.example.com/a", "http://pl-0002.example.com/b" } }
      assert.is_true(r.ok)
      assert.equal(1, #r.task_ids)
      local sum = r:wait { timeout = 10, interval = 0.2 }
      assert.is_true(sum.complete)
    end)
    it("a token refused in the middle of a batch is renewed and the batch resent", function()
      -- the server forgets tokens after 1 s (it says an hour); the flush is
      -- held 1.2 s before the server looks at its token
      e:config { token_seconds = 1, token_stated_seconds = 3600 }
      e:faults { { kind = "slow", seconds = 1.2, action = "cdn.cache_flush" } }
      local r = pl:refresh { urls = { "http://pl-0001.example.com/a" } }
      assert.is_true(r.ok)
      local s = stats()
      assert.equal(2, s.tokens_issued)
      assert.equal(1, s.token_rejected)
      assert.equal(1, s.executed["cdn.cache_flush"])
    end)
    it("the domain list failing fails every URL with its error", function()
      local bad = emu.client(e, { password = "nope" })
      local r = bad:refresh { urls = { "http://pl-0001.example.com/a" } }
      assert.is_false(r.ok)
      assert.equal("auth", r.failed[1].err.code)
      bad:close()
    end)
    it("dry_run shows the batches and the rejected URLs", function()
      local d = pl:refresh { urls = { "http://pl-0001.example.com/a", "http://nowhere.example/b" }, dry_run = true }
      assert.equal(1, #d.batches)
      assert.equal("cdn.cache_flush", d.batches[1].action)
      assert.equal(1, #d.rejected)
      assert.equal(0, stats().executed["cdn.cache_flush"] or 0)
    end)
    it("cdnkit.refresh includes plcloud next to another vendor", function()
      local w = emu.start("wangsu")
      local ws = emu.client(w)
      local r = cdnkit.refresh({ ws, pl }, { urls = { "http://pl-0001.example.com/a" } })
      assert.is_true(r.ok)
      assert.equal(1, r[2].done)
      assert.equal("plcloud", r[2].vendor)
      ws:close()
      w:stop()
    end)
  end)
end)
