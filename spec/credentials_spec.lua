-- Credentials: session tokens of temporary (STS) credentials kept in the C
-- client and sent signed; where the credentials came from; endpoints by
-- region and site.  Against the emulators (which check the tokens).
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local emu = require "spec.support.emu"

local STS = "cdnemu-sts-token" -- the token the emulators accept

-- run a Lua snippet in a fresh process with extra environment; its output
local function sub(env, code)
  local lua = arg and arg[-1] or "lua5.4"
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("env CDNKIT_CREDENTIALS_FILE=/nonexistent %s LUA_PATH=%q LUA_CPATH=%q %s %s 2>&1")
    :format(env, package.path, package.cpath, lua, script)))
  local out = p:read("*a")
  p:close()
  os.remove(script)
  return out
end

local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do strings_of(k, out, seen); strings_of(x, out, seen) end
  end
  return out
end
local function mentions(v, needle)
  for _, s in ipairs(strings_of(v)) do if s:find(needle, 1, true) then return true end end
  return false
end

describe("credentials", function()
  local ea, eq
  setup(function()
    ea = emu.start("aliyun")
    eq = emu.start("qcloud")
  end)
  teardown(function() ea:stop(); eq:stop() end)

  describe("Alibaba security token (STS)", function()
    for _, case in ipairs { { "V3", { version = false } }, { "V2", { version = false, signature = "v2" } },
                            { "2014-11-11", {} } } do
      it("is sent and signed with " .. case[1] .. "; a wrong one is the vendor's error", function()
        local o = { security_token = STS }
        for k, v in pairs(case[2]) do o[k] = v end
        local c = emu.client(ea, o)
        assert.is_table((c:DescribeCdnService {}))
        o.security_token = "expired-token"
        local bad = emu.client(ea, o)
        local res, err = bad:DescribeCdnService {}
        assert.is_nil(res)
        assert.equal("InvalidSecurityToken.Expired", err.code)
        assert.falsy(mentions(err, "expired-token"))
        c:close(); bad:close()
      end)
    end
    it("is kept in the C client: not in tostring, _state() or traces", function()
      local events = {}
      local c = emu.client(ea, { version = false, security_token = STS,
                                 trace = function(ev) events[#events + 1] = ev end })
      assert.is_table((c:DescribeCdnService {}))
      assert.falsy(tostring(c):find(STS, 1, true))
      assert.truthy(tostring(c):find("session token set", 1, true))
      assert.falsy(mentions(c:_state(), STS))
      assert.falsy(mentions(events, STS))
      local req = c:prepare("DescribeCdnService", {}, { explain = true })
      assert.truthy(req.explain.signed_headers:find("x-acs-security-token", 1, true))
      c:close()
    end)
    it("is masked in V2 traces and in the server's string-to-sign of a mismatch", function()
      local events = {}
      local c = emu.client(ea, { version = false, signature = "v2", security_token = STS,
                                 trace = function(ev) events[#events + 1] = ev end })
      assert.is_table((c:DescribeCdnService {}))
      assert.falsy(mentions(events, STS))
      local bad = emu.client(ea, { version = false, signature = "v2", security_token = STS,
                                   access_key_secret = "wrong-secret" })
      local res, err = bad:DescribeCdnService {}
      assert.is_nil(res)
      assert.equal("SignatureDoesNotMatch", err.code)
      assert.falsy(mentions(err, STS))
      assert.falsy(tostring(err):find(STS, 1, true))
      c:close(); bad:close()
    end)
    it("a token from the environment never goes with keys given as options", function()
      local out = sub("ALIBABA_CLOUD_SECURITY_TOKEN=some-other-token", ([[
        local c = require("cdnkit").aliyun { access_key_id = "testid", access_key_secret = "testsecret",
                                             endpoint = %q }
        local r, e = c:DescribeCdnService {}
        io.write(r and "ok" or tostring(e))
      ]]):format(ea.url))
      assert.equal("ok", out)
    end)
    it("comes from ALIBABA_CLOUD_SECURITY_TOKEN, read by the C core", function()
      local out = sub("ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret " ..
        "ALIBABA_CLOUD_SECURITY_TOKEN=" .. STS, ([[
        local c = require("cdnkit").aliyun { endpoint = %q }
        local r, e = c:DescribeCdnService {}
        io.write(r and "ok" or tostring(e), " ", c:credentials_source())
      ]]):format(ea.url))
      assert.equal("ok environment", out)
    end)
  end)

  describe("Tencent session token (STS)", function()
    it("goes as X-TC-Token from the option and from TENCENTCLOUD_SESSION_TOKEN", function()
      local c = emu.client(eq, { version = false, token = STS })
      assert.is_table((c:DescribePurgeQuota {}))
      local bad = emu.client(eq, { version = false, token = "nope" })
      local res, err = bad:DescribePurgeQuota {}
      assert.is_nil(res)
      assert.equal("AuthFailure.TokenFailure", err.code)
      assert.falsy(mentions(c:_state(), STS))
      c:close(); bad:close()
      local out = sub("TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey " ..
        "TENCENTCLOUD_SESSION_TOKEN=" .. STS, ([[
        local c = require("cdnkit").qcloud { endpoint = %q }
        local r, e = c:DescribePurgeQuota {}
        io.write(r and "ok" or tostring(e))
      ]]):format(eq.url))
      assert.equal("ok", out)
    end)
  end)

  describe("credentials_source()", function()
    it("says options, environment or profile:<name>, never the secret", function()
      local c = emu.client(eq, { version = false })
      assert.equal("options", c:credentials_source())
      c:close()
      local out = sub("TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey",
        "io.write(require('cdnkit').qcloud{}:credentials_source())")
      assert.equal("environment", out)
      local file = os.tmpname()
      local f = io.open(file, "w")
      f:write("[ci]\nqcloud.secret_id = AKIDtest\nqcloud.secret_key = testkey\n")
      f:close()
      os.execute("chmod 600 " .. file)
      out = sub("CDNKIT_CREDENTIALS_FILE=" .. file .. " CDNKIT_PROFILE=ci", ([[
        local c = require("cdnkit").qcloud { endpoint = %q }
        local r, e = c:DescribePurgeQuota {}
        io.write(r and "ok" or tostring(e), " ", c:credentials_source())
      ]]):format(eq.url))
      os.remove(file)
      assert.equal("ok profile:ci", out)
    end)
  end)

  describe("the vendors' own CLI profiles", function()
    it("reads ~/.aliyun/config.json (AK, StsToken) and ~/.tccli/<profile>.credential", function()
      local home = os.tmpname()
      os.remove(home)
      os.execute("mkdir -p " .. home .. "/.aliyun " .. home .. "/.tccli")
      local f = io.open(home .. "/.aliyun/config.json", "w")
      f:write(core.json_encode { current = "work", profiles = {
        { name = "default", mode = "AK", access_key_id = "nobody", access_key_secret = "x" },
        { name = "work", mode = "StsToken", access_key_id = "testid", access_key_secret = "testsecret",
          sts_token = STS, region_id = "cn-hangzhou" } } })
      f:close()
      f = io.open(home .. "/.tccli/default.credential", "w")
      f:write('{"secretId": "AKIDtest", "secretKey": "testkey"}')
      f:close()
      local out = sub("HOME=" .. home, ([[
        local cdnkit = require "cdnkit"
        local a = cdnkit.aliyun { endpoint = %q }
        local q = cdnkit.qcloud { endpoint = %q }
        local r1, e1 = a:DescribeCdnService {}
        local r2, e2 = q:DescribePurgeQuota {}
        io.write(a:credentials_source(), " ", r1 and "ok" or tostring(e1), " ",
                 q:credentials_source(), " ", r2 and "ok" or tostring(e2))
      ]]):format(ea.url, eq.url))
      os.execute("rm -rf " .. home)
      assert.equal("profile:aliyun-cli:work ok profile:tccli:default ok", out)
    end)
  end)

  describe("endpoints by region and site", function()
    local function endpoint(c) return c:_state().endpoint end
    it("Alibaba: ap-/eu-/us-/me- regions use cdn.ap-southeast-1.aliyuncs.com; endpoint wins", function()
      local base = { access_key_id = "a", access_key_secret = "b" }
      local function with(extra)
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        for k, v in pairs(extra) do o[k] = v end
        return cdnkit.aliyun(o)
      end
      assert.equal("https://cdn.aliyuncs.com", endpoint(with {}))
      assert.equal("https://cdn.aliyuncs.com", endpoint(with { region = "cn-hangzhou" }))
      for _, r in ipairs { "ap-southeast-1", "eu-central-1", "us-west-1", "me-east-1" } do
        assert.equal("https://cdn.ap-southeast-1.aliyuncs.com", endpoint(with { region = r }))
      end
      assert.equal("http://127.0.0.1:9", endpoint(with { region = "ap-southeast-1", endpoint = "http://127.0.0.1:9" }))
      assert.has_error(function() with { region = "Not A Region" } end)
    end)
    it("Tencent: site = \"intl\" uses cdn.intl.tencentcloudapi.com; region is X-TC-Region", function()
      local c = cdnkit.qcloud { secret_id = "a", secret_key = "b", site = "intl", region = "ap-singapore" }
      assert.equal("https://cdn.intl.tencentcloudapi.com", endpoint(c))
      local req = c:prepare("DescribePurgeQuota", {}, { timestamp = 1700000000 })
      assert.equal("ap-singapore", req.headers["X-TC-Region"])
      assert.equal("cdn.intl.tencentcloudapi.com", req.headers.Host)
      assert.has_error(function() cdnkit.qcloud { secret_id = "a", secret_key = "b", site = "mars" } end)
      assert.has_error(function() cdnkit.qcloud { secret_id = "a", secret_key = "b", site = "intl", version = "v2" } end)
    end)
  end)

  describe("instance role (a loopback metadata emulator)", function()
    local mh, meta, ctl, pid
    setup(function()
      mh = assert(io.popen("echo $$; exec python3 spec/emulator/metadata.py --port 0"))
      pid = mh:read("*l")
      meta = "http://127.0.0.1:" .. mh:read("*l"):match(":(%d+)$")
      ctl = core.curl()
    end)
    teardown(function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      mh:close()
      ctl:close()
    end)
    local function mconf(t)
      ctl:send { method = "POST", url = meta .. "/__meta/config", body = core.json_encode(t), headers = {} }
    end
    local function mstats()
      local _, _, b = ctl:send { method = "GET", url = meta .. "/__meta/stats", headers = {} }
      return core.json_decode(b)
    end
    before_each(function()
      mconf { lifetime = 3600, token = STS, role = "cdnkit-role", hardened = false }
      ea:config { security_token = STS }
      eq:config { tc3_token = STS }
    end)

    it("Alibaba: credentials of the ECS RAM role, in hardened mode, used and renewed", function()
      mconf { hardened = true }
      local s0 = mstats()
      local events = {}
      local a = cdnkit.aliyun { endpoint = ea.url, metadata_endpoint = meta,
                                trace = function(ev) events[#events + 1] = ev end }
      assert.equal("instance-role:cdnkit-role", a:credentials_source())
      assert.is_table((a:DescribeCdnService {}))
      local s1 = mstats()
      assert.equal(s0.fetches + 1, s1.fetches)
      assert.is_true(s1.token_requests > s0.token_requests)
      assert.equal(s0.refused, s1.refused)
      -- the server rotates the token: the refused call renews once and is resent
      mconf { token = "rotated-token" }
      ea:config { security_token = "rotated-token" }
      assert.is_table((a:DescribeCdnService {}))
      assert.equal(s1.fetches + 1, mstats().fetches)
      assert.falsy(mentions(events, "testsecret"))
      assert.falsy(mentions(events, "rotated-token"))
      assert.falsy(tostring(a):find("rotated", 1, true))
      a:close()
    end)
    it("Tencent: credentials of the CVM role, renewed before they expire (no refusal)", function()
      mconf { lifetime = 3 }
      local q = cdnkit.qcloud { endpoint = eq.url, metadata_endpoint = meta }
      assert.equal("instance-role:cdnkit-role", q:credentials_source())
      local f0 = mstats().fetches
      assert.is_table((q:DescribePurgeQuota {}))
      core.sleep(2.2)
      local r0 = eq:stats().requests
      assert.is_table((q:DescribePurgeQuota {}))
      assert.equal(f0 + 1, mstats().fetches)
      assert.equal(r0 + 1, eq:stats().requests) -- renewed first, not after a refusal
      q:close()
    end)
    it("no role: a clear error listing what was tried, and the answer is remembered", function()
      mconf { role = cdnkit.null }
      local l0 = mstats().lists
      local ok, msg = pcall(cdnkit.aliyun, { endpoint = ea.url, metadata_endpoint = meta })
      assert.is_false(ok)
      assert.truthy(msg:find("no credentials found", 1, true))
      assert.truthy(msg:find("ALIBABA_CLOUD_ACCESS_KEY_ID", 1, true))
      assert.truthy(msg:find("instance role: Alibaba ECS RAM role: no instance role", 1, true))
      ok = pcall(cdnkit.aliyun, { endpoint = ea.url, metadata_endpoint = meta })
      assert.is_false(ok)
      assert.equal(l0 + 1, mstats().lists) -- asked once
    end)
    it("is not asked when anything earlier gave credentials, nor with CDNKIT_METADATA=off", function()
      local f0 = mstats().fetches
      local c = cdnkit.aliyun { access_key_id = "testid", access_key_secret = "testsecret",
                                endpoint = ea.url, metadata_endpoint = meta }
      assert.equal("options", c:credentials_source())
      assert.equal(f0, mstats().fetches)
      c:close()
      local out = sub("CDNKIT_METADATA=off", [[
        local ok, e = pcall(require("cdnkit").qcloud, {})
        io.write(tostring(e))
      ]])
      assert.truthy(out:find("skipped (CDNKIT_METADATA=off)", 1, true), out)
    end)
  end)
end)
