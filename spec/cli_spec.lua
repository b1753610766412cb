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

  describe("issue-14 command line", function()
    local E = "ENDPOINT_UNUSED=1"
    -- Tencent's own command-line tool's 18 documented command lines, as its
    -- document writes them (credentials replaced by the emulator's)
    local SEED = {
      [=[DescribeCdnHosts -u ID -p KEY]=],
      [=[GetHostInfoByHost -u ID -p KEY --hosts www.test.com --hosts www.test2.com]=],
      [=[GetHostInfoById -u ID -p KEY --ids 1234]=],
      [=[RefreshCdnUrl -u ID -p KEY --urls http://xxxxxxxtang.sp.oa.com/test.php --urls http://www.test.com/1.html]=],
      [=[RefreshCdnDir -u ID -p KEY --dirs http://www.test.com/abc/]=],
      [=[GetCdnRefreshLog -u ID -p KEY --startDate 2016-08-15 --endDate 2016-08-16]=],
      [=[UpdateCache -u ID -p KEY --hostId 1234 --cache [[0,\"all\",1000],[1,\".jpg;.js\",2000],[2,\"/www/html\",3000],[3,\"/index.html;/test/*.jpg\",3000]]]=],
      [=[UpdateCdnProject -u ID -p KEY --hostId 1234 --projectId 0]=],
      [=[UpdateCdnConfig -u ID -p KEY --hostId 1234 --projectId 0 --cacheMode custom --cache [[0,\"all\",1023448]] --refer [1,[\"www.baidu.com\",\"www.qq.com\"]] --fwdHost www.test.org --fullUrl off]=],
      [=[AddCdnHost -u ID -p KEY --host www.test.com --projectId 0 --hostType cname --origin 1.1.1.1]=],
      [=[OfflineHost -u ID -p KEY --hostId 1234]=],
      [=[OnlineHost -u ID -p KEY --hostId 1234]=],
      [=[DeleteCdnHost -u ID -p KEY -hostId 1234]=],
      [=[GenerateLogList -u ID -p KEY --hostId 1234]=],
      [=[GetCdnStatTop -u ID -p KEY --startDate 2016-08-15 --endDate 2016-08-15 --statType bandwidth --projects 0 --hosts test.com]=],
      [=[GetCdnStatusCode -u ID -p KEY --startDate 2016-08-15 --endDate 2016-08-15 --projects 0 --hosts test.com]=],
      [=[DescribeCdnHostDetailedInfo -u ID -p KEY --startDate 2016-05-08 --endDate 2016-08-15 --projects 0 --hosts www.test.com --statType bandwidth]=],
      [=[DescribeCdnHostInfo -u ID -p KEY --startDate 2016-08-15 --endDate 2016-08-15 --projects 0 --hosts www.test.com --statType bandwidth]=],
    }
    it("runs each of Tencent's tool's 18 command lines with --version-api v2", function()
      assert.equal(18, #SEED)
      for _, line in ipairs(SEED) do
        line = line:gsub(" ID ", " AKIDtest "):gsub(" KEY", " testkey")
        -- the document writes the JSON values bare, with \" for the quotes; a
        -- POSIX shell also needs them quoted for their ';'
        line = line:gsub("%-%-(%a+) (%[%S+)", function(k, v) return "--" .. k .. " '" .. v:gsub('\\"', '"') .. "'" end)
        local code, out, err = run(E, "qcloud --version-api v2 " .. line .. " --endpoint " .. eq.url .. " --output json")
        -- 0, or 1 where the emulator refuses the made-up host id 1234; never a usage mistake
        assert.is_true(code == 0 or code == 1, line .. "\n" .. err)
        if code == 0 then assert.is_table(core.json_decode(out), line) end
        if code == 1 then assert.truthy(err:find("code", 1, true) or err:find("host", 1, true), err) end
      end
    end)
    it("--version", function()
      local code, out = run("", "--version")
      assert.equal(0, code)
      assert.truthy(out:match("^cdnkit %d+%.%d+%.%d+"))
    end)
    it("refuses two URLs glued by a comma, keeps commas inside a URL", function()
      local code, _, err = run(qenv, "qcloud PurgeUrlsCache --Urls http://a.com/1,http://a.com/2 --endpoint " .. eq.url)
      assert.equal(2, code)
      assert.truthy(err:find("another URL after a comma", 1, true))
      local st = eq:stats()
      local n = #st.refreshed_urls
      code = run(qenv, "qcloud PurgeUrlsCache --Urls 'http://a.com/i.jpg?x-oss-process=image/resize,w_100' --endpoint " .. eq.url)
      assert.equal(0, code)
      st = eq:stats()
      assert.equal("http://a.com/i.jpg?x-oss-process=image/resize,w_100", st.refreshed_urls[n + 1])
    end)
    it("takes the endpoint from CDNKIT_<VENDOR>_ENDPOINT and a region where the vendor has one", function()
      local code = run(qenv .. " CDNKIT_QCLOUD_ENDPOINT=" .. eq.url, "qcloud DescribePurgeQuota --region ap-guangzhou")
      assert.equal(0, code)
      local _, _, err
      code, _, err = run(aenv .. " CDNKIT_ALIYUN_ENDPOINT=" .. ea.url, "aliyun DescribeCdnService --region cn-hangzhou")
      assert.equal(0, code, err)
      code, _, err = run("WANGSU_ACCESS_KEY=a WANGSU_SECRET_KEY=b", "wangsu PurgeQuota --region eu")
      assert.equal(2, code)
      assert.truthy(err:find("takes no region", 1, true))
    end)
    it("suggests the near name of a mistyped action or flag", function()
      local code, _, err = run(qenv, "qcloud DescribeDomains --limit 2 --endpoint " .. eq.url)
      assert.equal(2, code)
      assert.truthy(err:find("did you mean 'Limit'", 1, true))
      code, _, err = run(qenv, "qcloud --version-api v2 RefreshCdnUrls --urls http://a/1 --endpoint " .. eq.url)
      assert.equal(2, code)
      assert.truthy(err:find("did you mean 'RefreshCdnUrl'", 1, true))
    end)
    it("refresh: --urls-from a file and stdin, --save, then cdnkit wait FILE", function()
      local list = os.tmpname()
      local f = io.open(list, "w")
      for i = 1, 1500 do f:write("http://www.example.com/f", i, "\n") end
      f:write("# a comment\n\n")
      f:close()
      local saved = os.tmpname()
      local env = qenv .. " CDNKIT_QCLOUD_ENDPOINT=" .. eq.url
      local code, out, err = run(env, "qcloud refresh --urls-from " .. list .. " --save " .. saved .. " --output json")
      assert.equal(0, code, err)
      local rep = core.json_decode(out)
      assert.equal(1500, rep.done)
      assert.equal(2, rep.batches)
      assert.truthy(err:find("1500 of 1500 accepted in 2 calls", 1, true))
      code, out = run(env, "wait " .. saved .. " --timeout 20 --interval 0.2")
      assert.equal(0, code)
      assert.is_true(core.json_decode(out).complete)
      -- the library reads the same file
      local r = require("cdnkit").load_report(saved, emu.client(eq, { version = false }))
      assert.equal(2, #r.task_ids)
      assert.is_true(r:wait { timeout = 5, interval = 0.2 }.complete)
      f = io.open(list, "w")
      for i = 1, 20 do f:write("http://www.example.com/p", i, "\n") end
      f:close()
      code, out = run(env, "qcloud prefetch --urls-from - --output json < " .. list)
      assert.equal(0, code)
      assert.equal(20, core.json_decode(out).done)
      os.remove(list); os.remove(saved)
    end)
    it("--dry-run sends nothing; exit 1 when URLs failed; exit 3 when --wait times out", function()
      local env = qenv .. " CDNKIT_QCLOUD_ENDPOINT=" .. eq.url
      eq:reset()
      local code, out, err = run(env, "qcloud refresh --urls http://a.com/1 --dirs http://a.com/d/ --dry-run")
      assert.equal(0, code)
      assert.truthy(err:find("nothing sent", 1, true))
      assert.equal(2, #core.json_decode(out).batches)
      assert.equal(0, eq:stats().requests)
      eq:faults { { kind = "http503", count = 20 } }
      code, _, err = run(env, "qcloud refresh --urls http://a.com/1")
      assert.equal(1, code)
      assert.truthy(err:find("FAILED", 1, true))
      eq:reset()
      eq:config { task_seconds = 30 }
      code = run(env, "qcloud refresh --urls http://a.com/1 --wait --timeout 0.5 --interval 0.1")
      assert.equal(3, code)
      eq:config { task_seconds = 1 }
    end)
    it("checks --timeout before sending, and never echoes a glued -pSECRET", function()
      local env = qenv .. " CDNKIT_QCLOUD_ENDPOINT=" .. eq.url
      eq:reset()
      local code, _, err = run(env, "qcloud refresh --urls http://a.com/1 --wait --timeout abc")
      assert.equal(2, code)
      assert.truthy(err:find("--timeout", 1, true))
      assert.equal(0, eq:stats().requests)
      code, _, err = run(env, "qcloud --version-api v2 DescribeCdnHosts -pSuperSecret123")
      assert.equal(2, code)
      assert.falsy(err:find("SuperSecret123", 1, true))
    end)
    it("--output json|table|raw, --trace with secrets masked", function()
      local env = "TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey CDNKIT_QCLOUD_ENDPOINT=" .. eq.url
      local code, out = run(env, "qcloud DescribeDomains --Limit 2 --output raw")
      assert.equal(0, code)
      assert.truthy(out:find('"Response"', 1, true)) -- the vendor's own body
      code, out = run(env, "qcloud DescribeDomains --Limit 2 --output table")
      assert.equal(0, code)
      assert.falsy(out:find('"Domains":', 1, true))
      assert.truthy(out:find("Domains", 1, true))
      local err
      code, _, err = run(env .. " CDNKIT_TRACE=1", "qcloud DescribeDomains --Limit 1 --output json")
      assert.equal(0, code)
      assert.truthy(err:find("> DescribeDomains POST", 1, true))
      assert.falsy(err:find("testkey", 1, true))
      code, _, err = run(env, "qcloud DescribeDomains --Limit 1 --trace")
      assert.truthy(err:find("< DescribeDomains HTTP 200", 1, true))
    end)
    it("credentials by flag, then environment, then the profile file", function()
      local file = os.tmpname()
      local f = io.open(file, "w")
      f:write("[default]\nqcloud.secret_id = AKIDtest\nqcloud.secret_key = testkey\n[bad]\nqcloud.secret_id = AKIDwrong\nqcloud.secret_key = nope\n")
      f:close()
      os.execute("chmod 600 " .. file)
      local penv = "CDNKIT_CREDENTIALS_FILE=" .. file .. " CDNKIT_QCLOUD_ENDPOINT=" .. eq.url
      local code, _, err = run(penv, "qcloud DescribePurgeQuota")
      assert.equal(0, code, err)
      assert.falsy(err:find("warning", 1, true))
      code = run(penv, "qcloud DescribePurgeQuota --profile bad")
      assert.equal(1, code) -- the vendor refuses the wrong key
      code = run(penv, "qcloud DescribePurgeQuota --profile bad --secret-id AKIDtest --secret-key testkey")
      assert.equal(0, code) -- flags win
      code = run(penv .. " TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey", "qcloud DescribePurgeQuota --profile bad")
      assert.equal(0, code) -- the environment wins over the file
      code, _, err = run(penv, "qcloud DescribePurgeQuota --profile nope")
      assert.equal(2, code)
      assert.truthy(err:find("profiles there: default, bad", 1, true))
      os.execute("chmod 644 " .. file)
      code, _, err = run(penv, "qcloud DescribePurgeQuota")
      assert.equal(0, code)
      assert.truthy(err:find("can be read by other users", 1, true))
      os.remove(file)
    end)
  end)

  it("refresh shows a progress bar on a terminal (tmux)", function()
    if not os.execute("command -v tmux >/dev/null 2>&1") then
      pending("needs tmux (make deps installs it)")
      return
    end
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local list = dir .. "/urls.txt"
    local f = io.open(list, "w")
    for i = 1, 3000 do f:write("http://www.example.com/t", i, "\n") end
    f:close()
    local sock = dir .. "/tmux.sock"
    local cmd = ("env %s CDNKIT_QCLOUD_ENDPOINT=%s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s;;' " ..
      "%s bin/cdnkit qcloud refresh --urls-from %s --concurrency 1 >%s/out.json; echo EXIT=$?; sleep 30")
      :format(qenv, eq.url, cpath, interp, list, dir)
    os.execute(("tmux -S %s new-session -d -s prog -x 120 -y 20 %q"):format(sock, cmd))
    local screen = ""
    for _ = 1, 100 do
      os.execute(("tmux -S %s capture-pane -p -t prog > %s/screen 2>/dev/null"):format(sock, dir))
      local sf = io.open(dir .. "/screen")
      screen = sf and sf:read("*a") or ""
      if sf then sf:close() end
      if screen:find("EXIT=", 1, true) then break end
      os.execute("sleep 0.1")
    end
    os.execute(("tmux -S %s kill-server 2>/dev/null"):format(sock))
    assert.truthy(screen:find("EXIT=0", 1, true), screen)
    assert.truthy(screen:find("100%%%s+3000/3000 URLs"), screen)
    assert.truthy(screen:find("qcloud: 3000 of 3000 accepted in 3 calls", 1, true), screen)
    os.execute("rm -rf " .. dir)
  end)
end)
