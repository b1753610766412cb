-- The `cdnkit` command, run as a separate process against the emulators.
local emu = require "emu"
local core = require "cdnkit.core"

local cpath = os.getenv("CDNKIT_CPATH") or "build/5.4/?.so"
local interp = cpath:find("5.1", 1, true) and "luajit" or "lua5.4"

local function run(env, args)
  local out = os.tmpname()
  local err = os.tmpname()
  local cmd = ("env %s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s;;' %s bin/cdnkit %s >%s 2>%s")
    :format(env, cpath, interp, args, out, err)
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then code = ok / 256 end -- Lua 5.1
  local f = io.open(out); local o = f:read("*a"); f:close()
  f = io.open(err); local e = f:read("*a"); f:close()
  os.remove(out); os.remove(err)
  return code, o, e
end

describe("cdnkit command", function()
  local ea, eq
  local aenv = "ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret"
  local qenv = "TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey"
  setup(function()
    ea = emu.start("aliyun", {})
    eq = emu.start("qcloud", {})
  end)
  teardown(function() ea:stop(); eq:stop() end)

  it("calls an action and prints JSON", function()
    local code, out = run(aenv, "aliyun DescribeCdnService --json --endpoint " .. ea.url)
    assert.equal(0, code)
    local v = core.json_decode(out)
    assert.is_string(v.RequestId)
  end)
  it("repeats list flags and fetches every page with --all", function()
    local code, out = run(qenv, "qcloud DescribeDomains --all --json --Limit 50 --endpoint " .. eq.url)
    assert.equal(0, code)
    assert.equal(57, #core.json_decode(out))
    code = run(qenv, ("qcloud PurgeUrlsCache --Urls http://a.com/1 --Urls http://a.com/2 --endpoint %s"):format(eq.url))
    assert.equal(0, code)
    -- nested structures as JSON text, booleans as true/false
    code, out = run(qenv, "qcloud DescribeDomains --json --Filters '[{\"Name\":\"status\",\"Value\":[\"online\"]}]' " ..
      "--Limit 3 --endpoint " .. eq.url)
    assert.equal(0, code, out)
    assert.equal(3, #core.json_decode(out).Domains)
  end)
  it("speaks the version --version-api names (the seed tool's v2 calls)", function()
    local code, out = run(qenv, "qcloud DescribeCdnHosts --version-api v2 --all --json --limit 50 --endpoint " .. eq.url)
    assert.equal(0, code)
    assert.equal(57, #core.json_decode(out))
    code = run(qenv, ("qcloud RefreshCdnUrl --version-api v2 --urls http://a.com/1 --endpoint %s"):format(eq.url))
    assert.equal(0, code)
    local _, _, err = run(qenv, "qcloud RefreshCdnUrl --urls http://a.com/1 --endpoint " .. eq.url)
    assert.truthy(err:find("use PurgeUrlsCache instead", 1, true))
    code, out = run("", "qcloud help --version-api v2")
    assert.equal(0, code)
    assert.truthy(out:find("API v2", 1, true))
  end)
  it("prints help from the API data", function()
    local code, out = run("", "qcloud help PurgeUrlsCache")
    assert.equal(0, code)
    assert.truthy(out:find("--Urls", 1, true))
    assert.truthy(out:find("max 1000 items", 1, true))
  end)
  it("exits 2 on usage mistakes, naming the parameter", function()
    local code, _, err = run(qenv, "qcloud PurgeUrlsCache --Urls www.a.com --endpoint " .. eq.url)
    assert.equal(2, code)
    assert.truthy(err:find("'Urls'", 1, true))
    code, _, err = run(qenv, "qcloud PurgeUrlsCache --nope 1 --endpoint " .. eq.url)
    assert.equal(2, code)
    assert.truthy(err:find("--nope", 1, true))
    code = run("", "nosuchvendor X")
    assert.equal(2, code)
    code = run("", "")
    assert.equal(2, code)
    code, _, err = run("", "qcloud GetPayType")
    assert.equal(2, code)
    assert.falsy(err:find("bin/cdnkit:", 1, true)) -- no Lua positions for people
  end)
  it("exits 1 on runtime failures with the structured error", function()
    local code, _, err = run("ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=S3cretValue42",
      "aliyun DescribeCdnService --endpoint " .. ea.url)
    assert.equal(1, code)
    assert.truthy(err:find("SignatureDoesNotMatch", 1, true))
    assert.falsy(err:find("S3cretValue42", 1, true))
    code, _, err = run("ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=S3cretValue42",
      "aliyun DescribeCdnService --json --endpoint " .. ea.url)
    assert.equal(1, code)
    local j = core.json_decode(err)
    assert.equal("SignatureDoesNotMatch", j.error.code)
  end)
  it("drives Plcloud: credentials from PLCLOUD_*, resource calls by name, checked flags", function()
    local ep = emu.start("plcloud", {})
    local penv = "PLCLOUD_USERNAME=demo PLCLOUD_PASSWORD=secreetword PLCLOUD_AUTH_URL=" .. ep.url .. "/v2.0"
    local code, out = run(penv, "plcloud cdn.get --domain_id 206801 --json")
    assert.equal(0, code, out)
    assert.equal("pl-0001.example.com", core.json_decode(out).domain)
    code, out = run(penv, "plcloud cdn.cache_flush --domain_id 206801 --urls http://pl-0001.example.com/a --json")
    assert.equal(0, code, out)
    assert.equal(1, core.json_decode(out).urls)
    local err
    code, _, err = run(penv, "plcloud ticket.update --ticket_id tk-8b47870c --status open")
    assert.equal(2, code)
    assert.truthy(err:find("'status' must be one of accepted, closed", 1, true))
    code, _, err = run("PLCLOUD_USERNAME=demo PLCLOUD_PASSWORD=Wr0ngPassw0rd PLCLOUD_AUTH_URL=" .. ep.url .. "/v2.0",
      "plcloud cdn.list")
    assert.equal(1, code)
    assert.truthy(err:find("auth", 1, true))
    assert.falsy(err:find("Wr0ngPassw0rd", 1, true))
    code, out = run("", "plcloud help cdn.cache_flush")
    assert.equal(0, code)
    assert.truthy(out:find("client.cdn:cache_flush(domain_id, urls, dirs)", 1, true))
    ep:stop()
  end)
end)
