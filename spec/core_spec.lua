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
    it("the Wangsu vector's string-to-sign signs as published (VENDORS.md 4.1)", function()
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

  describe("randomness and time", function()
    it("uuid4 is random and well-formed", function()
      local a, b = core.uuid4(), core.uuid4()
      assert.not_equal(a, b)
      assert.truthy(a:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"))
    end)
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
    it("client userdata has __name, __gc, __close", function()
      local c = core.new_client("x", { key_id = "k", secret = "s" }, {})
      assert.equal("userdata", type(c))
      assert.equal("cdnkit client", getmetatable(c))
      c:close()
      c:close() -- idempotent
      assert.has_error(function() c:_sign_aliyun({}, "GET") end)
    end)
    if _VERSION == "Lua 5.4" then
      it("closes on scope exit (<close>)", function()
        local f = assert(load([[
          local core = ...
          local keep
          do
            local c <close> = core.new_client("x", { key_id = "k", secret = "s" }, {})
            keep = c
          end
          return tostring(keep)
        ]]))
        assert.truthy(f(core):find("closed", 1, true))
      end)
    end
  end)
end)
