-- The C core's pure helpers: encoders, digests, randomness, time, and the
-- shape of the shared object itself.
local core = require "cdnkit.core"

describe("cdnkit.core", function()
  describe("pct_encode (RFC 3986)", function()
    local cases = {
      { " ", "%20" }, { "+", "%2B" }, { "*", "%2A" }, { "~", "~" }, { "'", "%27" },
      { "(", "%28" }, { ")", "%29" }, { "!", "%21" }, { "%", "%25" }, { "&", "%26" },
      { "=", "%3D" }, { "#", "%23" }, { "\n", "%0A" }, { "/", "%2F" }, { ":", "%3A" },
      { "-_.", "-_." }, { "AZaz09", "AZaz09" }, { "中", "%E4%B8%AD" },
      { "😀", "%F0%9F%98%80" }, { "\0", "%00" }, { "\255", "%FF" }, { "", "" },
    }
    for _, c in ipairs(cases) do
      it(("%q -> %s"):format(c[1], c[2]), function()
        assert.equal(c[2], core.pct_encode(c[1]))
      end)
    end
    it("is the inverse of a plain percent-decoder for every byte", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local s = table.concat(all)
      local enc = core.pct_encode(s)
      assert.falsy(enc:find("[^%w%-%._~%%]"))
      assert.equal(s, (enc:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
    end)
  end)

  describe("digests", function()
    it("HMAC-SHA1 (RFC 2202 case 2)", function()
      assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        core.hmac("sha1", "Jefe", "what do ya want for nothing?", "hex"))
    end)
    it("HMAC-SHA256 (RFC 4231 case 2)", function()
      assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        core.hmac("sha256", "Jefe", "what do ya want for nothing?", "hex"))
    end)
    it("the Wangsu vector's string-to-sign signs as published (the vendor's documented example)", function()
      local sts = "CNC-HMAC-SHA256\n1700000000\n4e2c7c9474a3929ebab56550abde8f4361badaaf6afa9e8b765f9793076c2d3b"
      assert.equal("59531ceb688975c1b68609c22bb67ef460cc1fe80b4a68686f7cc0f253372f1d",
        core.hmac("sha256", "testSK", sts, "hex"))
    end)
    it("SHA-256 hex", function()
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
    end)
    it("base64", function()
      assert.equal("", core.b64encode(""))
      assert.equal("Zg==", core.b64encode("f"))
      assert.equal("Zm8=", core.b64encode("fo"))
      assert.equal("Zm9v", core.b64encode("foo"))
      assert.equal("Zm9vYg==", core.b64encode("foob"))
    end)
    it("rejects an unknown algorithm", function()
      assert.has_error(function() core.hmac("md5", "k", "m") end)
    end)
  end)

  describe("signing schemes (core.signers), against published vectors", function()
    local function client(id, secret)
      return core.new_client(core.client_class("x", {}), { key_id = id, secret = secret })
    end
    it("are registered by name", function()
      for _, name in ipairs { "aliyun_rpc_v2", "qcloud_v2", "acs3_hmac_sha256", "tc3_hmac_sha256",
                              "cnc_hmac_sha256", "wangsu_basic", "keystone_password" } do
        assert.is_function(core.signers[name], name)
      end
    end)
    it("acs3_hmac_sha256: Alibaba's V3 document example", function()
      local c = client("YourAccessKeyId", "YourAccessKeySecret")
      assert.equal("06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
        core.signers.acs3_hmac_sha256(c,
          "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"))
    end)
    it("tc3_hmac_sha256: Tencent's API 3.0 document example, key derived in C and reused", function()
      local c = client("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
      local sts = "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n" ..
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
      local want = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
      assert.equal(want, core.signers.tc3_hmac_sha256(c, "2019-02-25", "cvm", sts))
      -- another scope derives another key; the first comes back unchanged
      assert.not_equal(want, core.signers.tc3_hmac_sha256(c, "2019-02-26", "cvm", sts))
      assert.equal(want, core.signers.tc3_hmac_sha256(c, "2019-02-25", "cvm", sts))
      local ok, err = pcall(core.signers.tc3_hmac_sha256, c, "25.02.2019", "cvm", sts)
      assert.is_false(ok)
      assert.matches("date YYYY-MM-DD expected", err, 1, true)
    end)
    it("cnc_hmac_sha256: Wangsu's AK/SK scheme (the SDK's own result for these inputs)", function()
      local c = client("testAK", "testSK")
      local canonical = "POST\n/api/report/domainflow\n\ncontent-type:application/json\n" ..
        "host:open.chinanetcenter.com\n\ncontent-type;host\n" ..
        core.sha256_hex('{"domain-list": {"domain-name": ["www.example.com"]}}')
      assert.equal("4e2c7c9474a3929ebab56550abde8f4361badaaf6afa9e8b765f9793076c2d3b",
        core.sha256_hex(canonical))
      assert.equal("59531ceb688975c1b68609c22bb67ef460cc1fe80b4a68686f7cc0f253372f1d",
        core.signers.cnc_hmac_sha256(c, "CNC-HMAC-SHA256\n1700000000\n" .. core.sha256_hex(canonical)))
    end)
    it("wangsu_basic: Wangsu's legacy Date + HMAC-SHA1 password", function()
      local c = client("testuser", "testapikey")
      local password = core.signers.wangsu_basic(c, "Thu, 01 Jan 2015 00:00:00 GMT")
      assert.equal("/98DiKVEmZsk2CuJDtHeS+aARGE=", password)
      assert.equal("dGVzdHVzZXI6Lzk4RGlLVkVtWnNrMkN1SkR0SGVTK2FBUkdFPQ==",
        core.b64encode("testuser:" .. password))
    end)
    it("keystone_password: the Keystone v2.0 password request of the OpenStack reference", function()
      local c = client("demo", "secreetword")
      local body = core.signers.keystone_password(c, "demo", "demo")
      assert.equal('{"auth":{"passwordCredentials":{"username":"demo","password":"secreetword"},' ..
        '"tenantName":"demo"}}', body)
      -- JSON escapes: quotes, backslashes, control characters; UTF-8 as is
      local odd = client("u", 'p"a\\s\n\1\u{e9}')
      local decoded = core.json_decode(core.signers.keystone_password(odd, 'us"er', "t\tn"))
      assert.equal('p"a\\s\n\1\u{e9}', decoded.auth.passwordCredentials.password)
      assert.equal('us"er', decoded.auth.passwordCredentials.username)
      assert.equal("t\tn", decoded.auth.tenantName)
      c:close()
      assert.has_error(function() core.signers.keystone_password(c, "demo", "demo") end)
    end)
    it("a client's session token: kept in C, replaced, wiped on close, never in tostring", function()
      local c = core.new_client(core.client_class("x", {}), { key_id = "kid1", token = "tok-secret-1" })
      assert.equal("tok-secret-1", core.client_token(c))
      assert.is_false(c:_has_secret())
      assert.falsy(tostring(c):find("tok-secret", 1, true))
      core.client_set_token(c, "tok-secret-2")
      assert.equal("tok-secret-2", core.client_token(c))
      core.client_set_token(c, nil)
      assert.is_nil(core.client_token(c))
      core.client_set_token(c, "tok-secret-3")
      c:close()
      assert.is_nil(core.client_token(c))
      assert.has_error(function() core.client_set_token(c, "x") end)
      -- read from the environment by the C core (a variable that is set: PATH)
      local e = core.new_client(core.client_class("x", {}), { token_env = "PATH" })
      assert.equal(os.getenv("PATH"), core.client_token(e))
      assert.is_true(core.env_set("PATH"))
      assert.is_false(core.env_set("CDNKIT_SURELY_NOT_SET_42"))
      e:close()
    end)
    it("qcloud_v2: Tencent's signature v1 document example (HmacSHA1)", function()
      local c = client("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
      local params = { Action = "DescribeInstances", Nonce = "11886", Region = "ap-guangzhou",
        SecretId = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", Timestamp = "1465185768",
        ["InstanceIds.0"] = "ins-09dx96dg", Limit = "20", Offset = "0", Version = "2017-03-12" }
      local enc, sts, sig = core.signers.qcloud_v2(c, params, "GET", nil, true,
        "cvm.tencentcloudapi.com", "/", "sha1")
      assert.equal("EliP9YW3pW28FpsEdkXt/+WcGeI=", sig)
      assert.equal("GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg" ..
        "&Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE" ..
        "&Timestamp=1465185768&Version=2017-03-12", sts)
      assert.equal("&Signature=EliP9YW3pW28FpsEdkXt%2F%2BWcGeI%3D", enc:sub(-45))
      local ok, err = pcall(core.signers.qcloud_v2, c, params, "GET", nil, false, "h", "/", "md5")
      assert.is_false(ok)
      assert.matches("invalid option 'md5'", err, 1, true)
    end)
    it("aliyun_rpc_v2: the key is secret..'&', the signature base64 and percent-encoded", function()
      local c = client("testid", "testsecret")
      local params = { Action = "DescribeCdnService", Format = "JSON", Version = "2014-11-11",
        AccessKeyId = "testid", SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0",
        SignatureNonce = "9b7a44b0-3be1-11e5-8c73-08002700c460", Timestamp = "2015-08-06T02:19:46Z" }
      local query, sts, sig, canonical = core.signers.aliyun_rpc_v2(c, params, "GET", nil, true)
      assert.equal("GET&%2F&" .. core.pct_encode(canonical), sts)
      assert.equal(core.hmac("sha1", "testsecret&", sts), sig)
      assert.equal(canonical .. "&Signature=" .. core.pct_encode(sig), query)
      -- without explain: only the query, after the prefix
      assert.same({ "https://h/?" .. query },
        { core.signers.aliyun_rpc_v2(c, params, "GET", "https://h/?") })
      local ok, err = pcall(core.signers.aliyun_rpc_v2, c, { Bad = 1 }, "GET")
      assert.is_false(ok)
      assert.matches("parameter 'Bad' must be a string when signing", err, 1, true)
    end)
  end)

  describe("randomness and time", function()
    it("uuid4 is random and well-formed", function()
      local a, b = core.uuid4(), core.uuid4()
      assert.not_equal(a, b)
      assert.truthy(a:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"))
    end)
    -- nonces come from a block of CSPRNG bytes; a forked child (an nginx
    -- worker) must not hand out its parent's next nonces
    local has_ffi, ffi = pcall(require, "ffi")
    if has_ffi then
      it("a forked child does not repeat the parent's nonces (LuaJIT ffi fork)", function()
        ffi.cdef [[ int fork(void); int waitpid(int pid, int *status, int options); void _exit(int); ]]
        core.uuid4() -- the block is filled before the fork
        local path = os.tmpname()
        local pid = ffi.C.fork()
        assert.is_true(pid >= 0)
        if pid == 0 then
          local f = io.open(path, "w")
          f:write(core.uuid4(), "\n", core.uuid4(), "\n")
          f:close()
          ffi.C._exit(0)
        end
        ffi.C.waitpid(pid, nil, 0)
        local mine = { core.uuid4(), core.uuid4() }
        local f = assert(io.open(path))
        local theirs = { f:read("*l"), f:read("*l") }
        f:close()
        os.remove(path)
        assert.equal(36, #theirs[1])
        assert.not_equal(theirs[1], theirs[2]) -- random, not a wiped block
        for _, a in ipairs(mine) do
          for _, b in ipairs(theirs) do assert.not_equal(a, b) end
        end
      end)
    else
      pending("a forked child does not repeat the parent's nonces (needs LuaJIT's ffi; runs in the LuaJIT stage)")
    end
    it("nonce_int is a positive 31-bit integer", function()
      for _ = 1, 100 do
        local n = core.nonce_int()
        assert.is_true(n >= 1 and n <= 2147483647)
      end
    end)
    it("iso8601 and parse_http_date", function()
      assert.equal("2015-08-06T02:19:46Z", core.iso8601(1438827586))
      assert.equal(1438827586, core.parse_http_date("Thu, 06 Aug 2015 02:19:46 GMT"))
      assert.is_nil(core.parse_http_date("not a date"))
    end)
    it("now and monotime advance; sleep sleeps", function()
      local t = core.monotime()
      core.sleep(0.02)
      assert.is_true(core.monotime() - t >= 0.015)
      assert.is_true(core.now() > 1.6e9)
    end)
  end)

  describe("the shared object", function()
    local so = (os.getenv("CDNKIT_CPATH") or "build/5.4/?.so"):gsub("%?", "cdnkit/core")
    it("exports only luaopen_* symbols", function()
      local p = io.popen("nm -D --defined-only " .. so .. " 2>/dev/null | awk '$2 ~ /^[TDB]$/ {print $3}'")
      local syms = p:read("*a")
      p:close()
      local n = 0
      for s in syms:gmatch("%S+") do
        n = n + 1
        assert.truthy(s:match("^luaopen_"), "unexpected exported symbol " .. s)
      end
      assert.is_true(n >= 1)
    end)
    it("does not link liblua", function()
      local p = io.popen("ldd " .. so .. " 2>/dev/null")
      local deps = p:read("*a")
      p:close()
      assert.truthy(deps:find("libcurl", 1, true))
      assert.falsy(deps:find("liblua", 1, true))
    end)
    local function new_client(secret)
      local mt = core.client_class("x", {})
      return core.new_client(mt, { key_id = "keyid", secret = secret or "s" })
    end
    it("client userdata has __name, __gc, __close", function()
      local c = new_client()
      assert.equal("userdata", type(c))
      assert.equal("cdnkit client", getmetatable(c))
      assert.is_false(c:is_closed())
      c:close()
      c:close() -- idempotent
      assert.is_true(c:is_closed())
      local ok, err = pcall(core.signers.aliyun_rpc_v2, c, {}, "GET")
      assert.is_false(ok)
      assert.matches("cdnkit.x: client is closed", err, 1, true)
    end)
    it("signers refuse what is not a client", function()
      local ok, err = pcall(core.signers.acs3_hmac_sha256, {}, "x")
      assert.is_false(ok)
      assert.matches("cdnkit client expected", err, 1, true)
      ok, err = pcall(core.signers.acs3_hmac_sha256, core.curl(), "x")
      assert.is_false(ok)
      assert.matches("cdnkit client expected", err, 1, true)
    end)
    it("reads a secret named by environment variable in C, and says when there is none", function()
      local mt = core.client_class("x", {})
      local c = core.new_client(mt, { key_id = "k", secret_env = "CDNKIT_SPEC_NO_SUCH_VARIABLE" })
      assert.is_false(c:_has_secret())
      local ok, err = pcall(core.signers.acs3_hmac_sha256, c, "x")
      assert.is_false(ok)
      assert.matches("client has no secret", err, 1, true)
      local home = core.new_client(mt, { key_id = "k", secret_env = "HOME" })
      assert.is_true(home:_has_secret())
      assert.equal(core.hmac("sha256", os.getenv("HOME"), "m", "hex"),
        core.signers.acs3_hmac_sha256(home, "m"))
    end)
    it("tostring shows the vendor and the start of the key id, never the secret", function()
      local c = new_client("very-secret-value")
      assert.equal("cdnkit.x client (default endpoint, key keyi...)", tostring(c))
      assert.falsy(tostring(c):find("secret", 1, true))
    end)
    if _VERSION == "Lua 5.4" then
      it("closes on scope exit (<close>)", function()
        local f = assert(load([[
          local core = ...
          local keep
          do
            local c <close> = core.new_client(core.client_class("x", {}), { key_id = "k", secret = "s" })
            keep = c
          end
          return tostring(keep)
        ]]))
        assert.truthy(f(core):find("closed", 1, true))
      end)
    end
  end)
end)
