-- JSON codec of the C core (src/json.c): core.json_decode / core.json_encode /
-- core.array_mt.  Runs on Lua 5.4 and on LuaJIT (Lua 5.1 API); the few places
-- where the two differ (64-bit integers) are branched on INT64.
local core = require "cdnkit.core"

local decode, encode = core.json_decode, core.json_encode
local null = assert(decode("null"))

-- fn must raise, with a message matching the Lua pattern (which names the
-- parameter or option at fault): a bare "it raised" passes for any bug
local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching: " .. pattern)
  assert.matches(pattern, tostring(err))
end
local INT64 = math.type ~= nil and math.type(9007199254740993) == "integer"
local mtype = math.type or function(x)
  return type(x) == "number" and "float" or nil
end

-- decode must fail with a message matching `pattern` (plain=false)
local function fails(s, pattern, max_depth)
  local n = select("#", decode(s, max_depth))
  local v, err = decode(s, max_depth)
  assert.is_nil(v, "expected an error for " .. string.format("%q", s:sub(1, 60)))
  assert.are.equal(2, n)
  assert.is_string(err)
  if pattern then
    assert.is_truthy(err:find(pattern), "message '" .. err .. "' does not match '" .. pattern .. "'")
  end
  return err
end

local function encode_fails(v, pattern)
  local ok, err = pcall(encode, v)
  assert.is_false(ok, "expected encode to fail")
  err = tostring(err)
  assert.is_truthy(err:find("cannot encode", 1, true), err)
  if pattern then
    assert.is_truthy(err:find(pattern), "message '" .. err .. "' does not match '" .. pattern .. "'")
  end
  return err
end

-- Lua 5.1: integer text beyond 2^53 decodes to a digit string
local function num(v)
  if not INT64 and type(v) == "string" then return tonumber(v) end
  return v
end

local function is_negzero(x)
  return x == 0 and 1 / x < 0
end

describe("json_decode", function()
  describe("scalars", function()
    it("decodes literals", function()
      assert.is_true(decode("true"))
      assert.is_false(decode("false"))
      assert.are.equal("userdata", type(null)) -- light userdata NULL
      assert.are.equal(null, decode(" null "))
      assert.are.equal("abc", decode('"abc"'))
      assert.are.equal("", decode('""'))
    end)

    it("returns exactly one value on success and nil, message on error", function()
      assert.are.equal(1, select("#", decode("[1]")))
      assert.are.equal(1, select("#", decode("null")))
      assert.are.equal(2, select("#", decode("[1")))
    end)

    it("null is the same value everywhere (cjson.null compatible)", function()
      local t = decode('{"a":null,"b":[null]}')
      assert.are.equal(null, t.a)
      assert.are.equal(null, t.b[1])
      local ok, cjson = pcall(require, "cjson")
      if ok and type(cjson) == "table" and cjson.null ~= nil then
        assert.are.equal(cjson.null, null)
      end
    end)
  end)

  describe("integers", function()
    it("stay exact integers", function()
      local v = decode("1251991073")
      assert.are.equal(1251991073, v)
      assert.are.equal(INT64 and "integer" or "float", mtype(v))
      assert.are.equal(0, decode("0"))
      assert.are.equal(-1, decode("-1"))
      assert.are.equal(9007199254740992, decode("9007199254740992")) -- 2^53
      assert.are.equal(-9007199254740992, decode("-9007199254740992"))
    end)

    if INT64 then
      it("are exact up to the int64 limits", function()
        local v = decode("9007199254740993")
        assert.are.equal("integer", math.type(v))
        assert.are.equal("9007199254740993", string.format("%d", v))
        assert.are.equal(math.maxinteger, decode("9223372036854775807"))
        assert.are.equal("integer", math.type(decode("9223372036854775807")))
        assert.are.equal(math.mininteger, decode("-9223372036854775808"))
        assert.are.equal("integer", math.type(decode("-9223372036854775808")))
        assert.are.equal(1234567890123456789, decode("1234567890123456789"))
      end)
    else
      it("beyond 2^53 but within int64 are returned as digit strings (Lua 5.1)", function()
        assert.are.equal("9007199254740993", decode("9007199254740993"))
        assert.are.equal("9223372036854775807", decode("9223372036854775807"))
        assert.are.equal("-9223372036854775808", decode("-9223372036854775808"))
        assert.are.same({ "12345678901234567" }, decode("[12345678901234567]"))
      end)
    end

    it("overflowing int64 become floats", function()
      local v = decode("9223372036854775808")
      assert.are.equal("float", mtype(v))
      assert.are.equal(2 ^ 63, v)
      v = decode("-9223372036854775809")
      assert.are.equal("float", mtype(v))
      assert.are.equal(-(2 ^ 63), v)
      v = decode("123456789012345678901234567890")
      assert.are.equal("float", mtype(v))
      assert.are.equal(1.2345678901234568e+29, v)
      assert.are.equal(1e300, decode("1" .. string.rep("0", 300)))
    end)
  end)

  describe("floats", function()
    it("decode fraction and exponent forms", function()
      assert.are.equal(0.1, decode("0.1"))
      assert.are.equal(-1.25, decode("-1.25"))
      assert.are.equal(0.0015, decode("1.5e-3"))
      assert.are.equal(2500, decode("2.5E+3"))
      assert.are.equal("float", mtype(decode("2.5E+3")))
      assert.are.equal(100, decode("1E2"))
      assert.are.equal("float", mtype(decode("1e2")))
      assert.are.equal(1, decode("1.0"))
      assert.are.equal("float", mtype(decode("1.0")))
      assert.are.equal(0.1 + 0.2, decode("0.30000000000000004"))
      assert.are.equal(1e-300, decode("1e-300"))
      assert.are.equal(5e-324, decode("5e-324"))
      assert.are.equal(1.7976931348623157e308, decode("1.7976931348623157e308"))
      assert.are.equal(0.001, decode("0.001"))
      assert.are.equal(123.456, decode("123.456"))
    end)

    it("are correctly rounded (same as tonumber)", function()
      local cases = {
        "3.14159265358979323846264338327950288",
        "2.2250738585072011e-308",
        "0.1000000000000000055511151231257827",
        "9007199254740993.0",
        "1.00000000000000011102230246251565404236316680908203125",
        "123456789012345678901234567890e-20",
        "0." .. string.rep("0", 400) .. "1e400",
        "7.0e-10", "4.35e22", "1e23", "8.98846567431158e307",
      }
      for _, s in ipairs(cases) do
        assert.are.equal(tonumber(s), decode(s), s)
      end
    end)

    it("round-trip random doubles written with 17 digits", function()
      math.randomseed(42)
      for _ = 1, 3000 do
        local x = (math.random() - 0.5) * 10 ^ math.random(-300, 300)
        local s = string.format("%.17g", x)
        assert.are.equal(x, num(decode(s)), s)
      end
    end)

    it("handle negative zero", function()
      assert.is_true(is_negzero(decode("-0")))
      assert.is_true(is_negzero(decode("-0.0")))
      assert.is_true(is_negzero(decode("-0e5")))
      assert.is_false(is_negzero(decode("0")))
    end)

    it("out of range literals become inf or zero", function()
      assert.are.equal(math.huge, decode("1e400"))
      assert.are.equal(-math.huge, decode("-1e400"))
      assert.are.equal(0, decode("1e-400"))
      assert.are.equal(0, decode("0e99999999999999999999"))
    end)
  end)

  describe("strings", function()
    it("decode every simple escape", function()
      assert.are.equal('"\\/\b\f\n\r\t', decode([["\"\\\/\b\f\n\r\t"]]))
      assert.are.equal("a\nb", decode([["a\nb"]]))
    end)

    it("decode \\u escapes to UTF-8", function()
      assert.are.equal("A", decode([["\u0041"]]))
      assert.are.equal("\0", decode([["\u0000"]]))
      assert.are.equal("a\0b", decode([["a\u0000b"]]))
      assert.are.equal("\195\169", decode([["\u00e9"]]))       -- é
      assert.are.equal("\226\130\172", decode([["\u20AC"]]))   -- €
      assert.are.equal("\239\191\191", decode([["\uffff"]]))
      assert.are.equal("\240\159\152\128", decode([["\ud83d\ude00"]])) -- 😀
      assert.are.equal("\240\159\152\128", decode([["\uD83D\uDE00"]]))
      assert.are.equal("\244\143\191\191", decode([["\udbff\udfff"]])) -- U+10FFFF
      assert.are.equal("x\240\144\128\128y", decode([["x\ud800\udc00y"]])) -- U+10000
    end)

    it("pass raw UTF-8 (CJK, emoji) through unchanged", function()
      local s = "中文テスト한국어 😀👍🏽"
      assert.are.equal(s, decode('"' .. s .. '"'))
      assert.are.equal(s .. "\n", decode('"' .. s .. '\\n"'))
      local t = decode('{"名前":"値"}')
      assert.are.equal("値", t["名前"])
    end)

    it("pass invalid UTF-8 bytes through as-is", function()
      assert.are.equal("\255\254", decode('"\255\254"'))
      assert.are.equal("\127", decode('"\127"')) -- DEL is not a control char for JSON
    end)

    it("handle long strings with and without escapes", function()
      local long = string.rep("abcdefghij", 10000)
      assert.are.equal(long, decode('"' .. long .. '"'))
      local esc = string.rep("ab\\n", 20000)
      assert.are.equal(string.rep("ab\n", 20000), decode('"' .. esc .. '"'))
      local mixed = string.rep("x", 5000) .. "\\u00e9" .. string.rep("y", 5000)
      assert.are.equal(string.rep("x", 5000) .. "é" .. string.rep("y", 5000), decode('"' .. mixed .. '"'))
    end)
  end)

  describe("arrays", function()
    it("get the shared array metatable, also when empty", function()
      local mt = core.array_mt
      assert.are.equal("table", type(mt))
      assert.are.equal("cdnkit.array", rawget(mt, "__name"))
      assert.are.equal("array", rawget(mt, "__jsontype"))
      assert.are.equal(mt, getmetatable(decode("[]")))
      assert.are.equal(mt, getmetatable(decode("[1,2]")))
      assert.are.equal(mt, getmetatable(decode('{"a":[]}').a))
      assert.is_nil(getmetatable(decode("{}")))
    end)

    it("keep null positions and lengths", function()
      local t = decode("[1,null,3]")
      assert.are.equal(3, #t)
      assert.are.equal(1, t[1])
      assert.are.equal(null, t[2])
      assert.are.equal(3, t[3])
      t = decode("[null,null]")
      assert.are.equal(2, #t)
      assert.are.equal(null, t[1])
      assert.are.equal(null, t[2])
    end)

    it("decode nested and mixed arrays", function()
      local t = decode(' [ [] , [ [ ] ] , {"a" : [1, "x", true, false, null, 1.5]} ] ')
      assert.are.equal(3, #t)
      assert.are.equal(0, #t[1])
      assert.are.equal(0, #t[2][1])
      assert.are.same({ 1, "x", true, false, null, 1.5 }, t[3].a)
    end)

    it("re-encode to [] when empty", function()
      assert.are.equal("[]", encode(decode("[]")))
      assert.are.equal("[[],[[]]]", encode(decode("[ [], [[]] ]")))
      assert.are.equal('{"a":[],"b":{}}', encode(decode('{"b":{},"a":[]}')))
    end)

    it("decode large arrays", function()
      local parts = {}
      for i = 1, 10000 do parts[i] = tostring(i) end
      local t = decode("[" .. table.concat(parts, ",") .. "]")
      assert.are.equal(10000, #t)
      assert.are.equal(10000, t[10000])
    end)
  end)

  describe("objects", function()
    it("decode keys and values, including null values", function()
      local t = decode('{"a":1,"b":"x","c":null,"d":{"e":[]},"":0}')
      assert.are.equal(1, t.a)
      assert.are.equal("x", t.b)
      assert.are.equal(null, t.c)
      assert.are.equal(0, #t.d.e)
      assert.are.equal(0, t[""])
    end)

    it("keep the last of duplicate keys", function()
      assert.are.equal(3, decode('{"a":1,"a":2,"a":3}').a)
    end)

    it("decode escaped keys", function()
      local t = decode('{"a\\"b":1,"\\u00e9":2}')
      assert.are.equal(1, t['a"b'])
      assert.are.equal(2, t["é"])
    end)
  end)

  describe("whitespace", function()
    it("accepts JSON whitespace around tokens", function()
      assert.are.same({ 1, 2 }, decode(' \t\r\n[ 1 ,\n 2 ]\n\t '))
      assert.are.same({ a = 1 }, decode('{ "a" : 1 }'))
    end)

    it("skips a leading BOM", function()
      assert.are.same({ 1 }, decode("\239\187\191[1]"))
      assert.are.equal(5, decode("\239\187\191 5"))
      fails("\239\187\191", "^empty input$")
      fails("[\239\187\191]", "unexpected byte 0xEF at byte 2")
    end)
  end)

  describe("malformed input", function()
    it("reports empty input", function()
      fails("", "^empty input$")
      fails(" \n\t ", "^empty input$")
    end)

    it("reports truncated input with the position", function()
      fails("[1,", "^truncated input at byte 4$")
      fails('{"a":', "^truncated input at byte 6$")
      fails('"abc', "truncated input")
      fails('"abc\\', "truncated input")
      fails('"\\u12', "truncated input")
      fails('"\\ud83d', "truncated input")
      fails('"\\ud83d\\', "truncated input")
      fails("[", "truncated input")
      fails("{", "truncated input")
      fails('{"a"', "truncated input")
      fails("tr", "truncated input")
      fails("nul", "truncated input")
      fails("-", "truncated input")
      fails("1.", "truncated input")
      fails("1e", "truncated input")
      fails("1e+", "truncated input")
    end)

    it("rejects bad escapes", function()
      fails([["\q"]], "invalid escape '\\q' at byte 2")
      fails([["\x41"]], "invalid escape")
      fails([["\U0041"]], "invalid escape")
      fails([["\u12G4"]], "invalid \\u escape at byte 2")
      fails([["\'"]], "invalid escape")
    end)

    it("rejects lone surrogates", function()
      fails([["\ud800"]], "lone surrogate \\uD800 at byte 2")
      fails([["\udc00"]], "lone surrogate \\uDC00")
      fails([["\ud800x"]], "lone surrogate")
      fails([["\ud800\n"]], "lone surrogate")
      fails([["\ud800\u0041"]], "lone surrogate")
      fails([["\ud800\ud800"]], "lone surrogate")
      fails([["a\udfffb"]], "lone surrogate")
    end)

    it("rejects raw control characters in strings", function()
      fails('"a\nb"', "control character 0x0A in string at byte 3")
      fails('"a\tb"', "control character 0x09")
      fails('"\0"', "control character 0x00")
      fails('"\31"', "control character 0x1F")
    end)

    it("rejects trailing garbage", function()
      fails("[1] x", "^trailing garbage at byte 5$")
      fails("1 2", "trailing garbage at byte 3")
      fails('{"a":1}}', "trailing garbage")
      fails("truex", "trailing garbage")
      fails("[1]\0", "trailing garbage")
    end)

    it("rejects malformed numbers", function()
      fails("01", "unexpected character '1' at byte 2")
      fails("-01", "unexpected character '1'")
      fails("00", "unexpected character '0'")
      fails("+1", "unexpected character '%+' at byte 1")
      fails(".5", "unexpected character '%.' at byte 1")
      fails("[1.]", "unexpected character '%]'")
      fails("1.e5", "unexpected character 'e'")
      fails("1e.5", "unexpected character '%.'")
      fails("-a", "unexpected character 'a' at byte 2")
      fails("0x10", "trailing garbage")
      fails("[0x10]", "unexpected character 'x'")
      fails("[1,2,]", "unexpected character '%]' at byte 6")
      fails("1_000", "trailing garbage")
    end)

    it("rejects non-JSON literals", function()
      fails("NaN", "unexpected character 'N' at byte 1")
      fails("nan", "unexpected character 'a' at byte 2")
      fails("Infinity", "unexpected character 'I'")
      fails("-Infinity", "unexpected character 'I'")
      fails("[undefined]", "unexpected character 'u'")
      fails("True", "unexpected character 'T'")
      fails("nulL", "unexpected character 'L' at byte 4")
    end)

    it("rejects unquoted keys, single quotes and other syntax errors", function()
      fails("{a:1}", "unexpected character 'a' at byte 2")
      fails("{'a':1}", "unexpected character ''' at byte 2")
      fails("['a']", "unexpected character '''")
      fails('{"a" 1}', "unexpected character '1'")
      fails('{"a":1,}', "unexpected character '}'")
      fails('{"a":1 "b":2}', "unexpected character '\"'")
      fails('{1:2}', "unexpected character '1'")
      fails("[1 2]", "unexpected character '2'")
      fails("]", "unexpected character '%]' at byte 1")
      fails("/* c */ 1", "unexpected character '/'")
      fails("\1", "unexpected byte 0x01 at byte 1")
      fails("[\255]", "unexpected byte 0xFF at byte 2")
    end)

    it("limits nesting depth instead of overflowing the C stack", function()
      fails(string.rep("[", 10000), "^nesting deeper than 64 at byte 65$")
      fails(string.rep('{"a":', 10000), "^nesting deeper than 64 at byte")
      fails(string.rep("[", 100000) .. string.rep("]", 100000), "nesting deeper than 64")
      local ok64 = string.rep("[", 64) .. string.rep("]", 64)
      assert.is_table(decode(ok64))
      fails("[" .. ok64 .. "]", "nesting deeper than 64 at byte 65")
    end)

    it("honours the max_depth argument (clamped to 1000)", function()
      fails("[[1]]", "nesting deeper than 1 at byte 2", 1)
      assert.are.same({ { 1 } }, decode("[[1]]", 2))
      assert.are.equal(5, decode("5", 1))
      local deep = string.rep("[", 500) .. string.rep("]", 500)
      assert.is_table(decode(deep, 500))
      fails(deep, "nesting deeper than 499", 499)
      fails(string.rep("[", 5000), "nesting deeper than 1000", 1000000)
      raises_with("bad argument #2 .*max_depth must be >= 1", function() decode("[]", 0) end)
    end)

    it("raises only for a bad argument type", function()
      raises_with("bad argument #1 .*string expected, got no value", function() decode() end)
      raises_with("bad argument #1 .*string expected, got table", function() decode({}) end)
    end)

    it("never raises on random or mutated input", function()
      math.randomseed(7)
      local samples = {
        '{"a":[1,2.5e3,-0.1,"x\\u00e9\\ud83d\\ude00",null,true,false],"b":{"c":{}}}',
        '[{"k":"v"},[[]],"\\"\\\\\\/\\b\\f\\n\\r\\t",123456789012345678901]',
      }
      local alphabet = '{}[],:"\\ -+.eE0123456789abcdefnlrstuxyz\0\31\127\195\169\237\160\128'
      local count = 0
      for i = 1, 4000 do
        local s = samples[i % 2 + 1]
        for _ = 1, math.random(1, 4) do
          local pos = math.random(1, #s + 1)
          local op = math.random(1, 3)
          local k = math.random(1, #alphabet)
          local ch = alphabet:sub(k, k)
          if op == 1 then
            s = s:sub(1, pos - 1) .. ch .. s:sub(pos + 1)
          elseif op == 2 then
            s = s:sub(1, pos - 1) .. ch .. s:sub(pos)
          else
            s = s:sub(1, pos - 1) .. s:sub(pos + 1)
          end
        end
        if math.random(1, 5) == 1 then s = s:sub(1, math.random(0, #s)) end
        local ok, v, err = pcall(decode, s)
        assert.is_true(ok, v)
        if v == nil then
          assert.is_string(err)
          assert.is_truthy(err == "empty input" or err:find(" at byte %d+$"), err)
          count = count + 1
        end
      end
      assert.is_true(count > 1000) -- most mutations are invalid
    end)
  end)
end)

describe("json_encode", function()
  describe("scalars", function()
    it("encodes null, nil and booleans", function()
      assert.are.equal("null", encode(null))
      assert.are.equal("null", encode(nil))
      assert.are.equal("true", encode(true))
      assert.are.equal("false", encode(false))
    end)

    it("encodes integers exactly", function()
      assert.are.equal("0", encode(0))
      assert.are.equal("-7", encode(-7))
      assert.are.equal("1251991073", encode(1251991073))
      assert.are.equal("9007199254740992", encode(2 ^ 53))
      assert.are.equal("-9007199254740992", encode(-(2 ^ 53)))
      if INT64 then
        assert.are.equal("1152921504606846976", encode(decode("1152921504606846976")))
        assert.are.equal("1.152921504606847e+18", encode(2 ^ 60)) -- a float stays a float
        assert.are.equal("9223372036854775807", encode(math.maxinteger))
        assert.are.equal("-9223372036854775808", encode(math.mininteger))
        assert.are.equal("9007199254740993", encode(decode("9007199254740993")))
      else
        -- Lua 5.1: integral doubles below 2^63 are written as exact digits
        assert.are.equal("1152921504606846976", encode(2 ^ 60))
        assert.are.equal("-9223372036854775808", encode(-(2 ^ 63)))
        assert.are.equal("9.223372036854776e+18", encode(2 ^ 63))
      end
    end)

    it("encodes floats with the shortest round-tripping form", function()
      assert.are.equal("0.1", encode(0.1))
      assert.are.equal("1.5", encode(1.5))
      assert.are.equal("-2.25", encode(-2.25))
      assert.are.equal("0.30000000000000004", encode(0.1 + 0.2))
      assert.are.equal("3.141592653589793", encode(math.pi))
      assert.are.equal("1e+300", encode(1e300))
      assert.are.equal("1e-300", encode(1e-300))
      assert.are.equal(5e-324, decode(encode(5e-324)))
      assert.are.equal("1.7976931348623157e+308", encode(1.7976931348623157e308))
      assert.are.equal("3", encode(3.0))
      assert.are.equal(1 / 3, decode(encode(1 / 3)))
    end)

    it("encodes negative zero as -0", function()
      assert.are.equal("-0", encode(-0.0))
      assert.is_true(is_negzero(decode(encode(-0.0))))
    end)

    it("round-trips random doubles", function()
      math.randomseed(4242)
      for _ = 1, 3000 do
        local x = (math.random() - 0.5) * 10 ^ math.random(-300, 300)
        local s = encode(x)
        assert.are.equal(x, num(decode(s)), s)
        assert.is_true(#s <= 24, s)
      end
    end)

    it("encodes strings with minimal escaping", function()
      assert.are.equal('"abc"', encode("abc"))
      assert.are.equal('""', encode(""))
      assert.are.equal([["\"\\/\b\f\n\r\t"]], encode('"\\/\b\f\n\r\t'))
      assert.are.equal([["\u0000\u0001\u001f\u000b"]], encode("\0\1\31\11"))
      assert.are.equal('"\127"', encode("\127"))
      assert.are.equal('"http://x/y"', encode("http://x/y"))
      assert.are.equal('"中文😀é"', encode("中文😀é"))
      assert.are.equal('"\255"', encode("\255")) -- invalid UTF-8 passes through
      local long = string.rep("a\"b\n", 10000)
      assert.are.equal(long, decode(encode(long)))
    end)
  end)

  describe("tables", function()
    it("encodes sequences as arrays", function()
      assert.are.equal("[1,2,3]", encode({ 1, 2, 3 }))
      assert.are.equal('[1,"a",true,null,[2]]', encode({ 1, "a", true, null, { 2 } }))
    end)

    it("encodes empty tables as {} unless they carry the array metatable", function()
      assert.are.equal("{}", encode({}))
      assert.are.equal("[]", encode(setmetatable({}, core.array_mt)))
      assert.are.equal('{"a":[],"b":{}}', encode({ a = setmetatable({}, core.array_mt), b = {} }))
    end)

    it("encodes tables whose metatable has __jsontype = 'array' by raw length", function()
      local t = setmetatable({ 1, 2, x = "ignored" }, core.array_mt)
      assert.are.equal("[1,2]", encode(t))
      local mine = setmetatable({}, { __jsontype = "array", __len = function() return 99 end })
      assert.are.equal("[]", encode(mine))
      assert.are.equal("[1,null,3]", encode(decode("[1,null,3]")))
    end)

    it("encodes string-keyed tables as objects with sorted keys", function()
      assert.are.equal('{"A":5,"a":2,"aa":4,"b":1,"c":3}', encode({ b = 1, a = 2, c = 3, aa = 4, A = 5 }))
      assert.are.equal('{"":1,"a\\nb":2}', encode({ ["a\nb"] = 2, [""] = 1 }))
      -- bytewise order, deterministic for many keys
      local t, keys = {}, {}
      for i = 1, 500 do
        local k = "k" .. ((i * 7919) % 1000)
        t[k] = i
      end
      for k in pairs(t) do keys[#keys + 1] = k end
      table.sort(keys)
      local parts = {}
      for i, k in ipairs(keys) do parts[i] = string.format("%q:%d", k, t[k]) end
      assert.are.equal("{" .. table.concat(parts, ",") .. "}", encode(t))
      assert.are.equal(encode(t), encode(decode(encode(t))))
    end)

    it("does not call metamethods", function()
      local trap = function() error("metamethod called") end
      local t = setmetatable({ a = 1 }, { __index = trap, __pairs = trap, __len = trap, __tostring = trap })
      assert.are.equal('{"a":1}', encode(t))
    end)

    it("round-trips a nested document", function()
      local doc = {
        name = "cdn", id = 1251991073, ratio = 0.25, on = true, off = false, none = null,
        list = { 1, 2, { x = "y" }, setmetatable({}, core.array_mt) },
        obj = { nested = { deeper = { "中文", "\0" } } },
      }
      local s = encode(doc)
      assert.are.equal(
        '{"id":1251991073,"list":[1,2,{"x":"y"},[]],"name":"cdn","none":null,' ..
        '"obj":{"nested":{"deeper":["中文","\\u0000"]}},"off":false,"on":true,"ratio":0.25}', s)
      assert.are.same(doc, decode(s))
      assert.are.equal(s, encode(decode(s)))
    end)

    it("keeps canonical JSON text unchanged through decode/encode", function()
      for _, s in ipairs {
        '[]', '{}', '[null]', '[[],{}]', '{"a":{"b":[1,2,{"c":null}]}}', '"\\u0000"', '-0', '0.5',
        '[1e+100,-1.5e-100]', '{"":""}',
      } do
        assert.are.equal(s, encode(decode(s)))
      end
    end)
  end)

  describe("errors", function()
    it("rejects unsupported value types", function()
      encode_fails(print, "^cannot encode value of type function$")
      encode_fails(coroutine.create(print), "type thread")
      encode_fails(io.stdout, "type userdata")
      encode_fails({ a = { b = { 1, 2, print } } }, "^cannot encode value of type function at %$%.a%.b%[3%]$")
    end)

    it("rejects sparse arrays", function()
      encode_fails({ 1, nil, 3 }, "sparse array")
      encode_fails({ [2] = 1 }, "sparse array")
      encode_fails({ [1] = 1, [1000] = 2 }, "sparse array %(2 elements, highest index 1000%)")
    end)

    it("rejects mixed and invalid keys", function()
      encode_fails({ 1, 2, a = 3 }, "mixed string and number keys")
      encode_fails({ a = 1, [1.5] = 2 }, "mixed")
      encode_fails({ [1.5] = 1 }, "non%-integer number key 1.5")
      encode_fails({ [0] = 1 }, "integer key 0")
      encode_fails({ [-1] = 1, [1] = 2 }, "integer key %-1")
      encode_fails({ [true] = 1 }, "key of type boolean")
      encode_fails({ [{}] = 1 }, "key of type table")
    end)

    it("rejects NaN and infinities", function()
      encode_fails(0 / 0, "NaN")
      encode_fails(math.huge, "inf")
      encode_fails(-math.huge, "%-inf")
      encode_fails({ x = { 0 / 0 } }, "NaN at %$%.x%[1%]")
    end)

    it("detects cycles and excessive depth", function()
      local t = {}
      t.self = t
      encode_fails(t, "nested deeper than 64")
      local a = {}
      a[1] = a
      encode_fails(a, "nested deeper than 64")
      local deep = {}
      local cur = deep
      for _ = 1, 64 do cur[1] = {}; cur = cur[1] end
      encode_fails(deep, "nested deeper than 64")
      assert.is_string(encode(deep, 65))
      assert.is_string(encode(deep[1]))
    end)

    it("raises a plain message (no position prefix)", function()
      local ok, err = pcall(encode, print)
      assert.is_false(ok)
      assert.are.equal("cannot encode value of type function", err)
    end)
  end)
end)

describe("json under a comma-decimal locale", function()
  local saved = os.setlocale(nil, "numeric")
  local locale
  for _, name in ipairs { "de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8", "ps_AF.UTF-8" } do
    if os.setlocale(name, "numeric") then
      locale = name
      break
    end
  end
  os.setlocale(saved, "numeric")

  if not locale then
    pending("no comma-decimal locale installed")
    return
  end

  it("encodes and decodes with '.' regardless of LC_NUMERIC (" .. locale .. ")", function()
    os.setlocale(locale, "numeric")
    local ok, err = pcall(function()
      assert.are.equal("1.5", encode(1.5))
      assert.are.equal("0.30000000000000004", encode(0.1 + 0.2))
      assert.are.equal("[-2.5e-300]", encode({ -2.5e-300 }))
      assert.are.equal(1.5, decode("1.5"))
      assert.are.equal(0.1 + 0.2, decode("0.30000000000000004"))
      assert.are.equal(math.pi, decode("3.14159265358979323846264338327950288")) -- slow path
      assert.are.equal(2.2250738585072011e-308, decode("2.2250738585072011e-308"))
      fails("1,5", "trailing garbage")
    end)
    os.setlocale(saved, "numeric")
    assert(ok, err)
  end)

  it("adopts lua-cjson's cjson.array_mt where that cjson has one (OpenResty's, 2.1.0.9+)", function()
    local lua = arg and arg[-1] or "lua5.4"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    -- a stand-in for a cjson with array_mt (Debian's 2.1.0 has none)
    f:write([[
      local mt = { __name = "cjson.array" }
      package.preload.cjson = function() return { array_mt = mt } end
      local cdnkit = require "cdnkit"
      local t = cdnkit.json_decode('{"a":[],"b":[1,2]}')
      io.write(tostring(getmetatable(t.a) == mt and getmetatable(t.b) == mt and cdnkit.array_mt == mt),
        " ", cdnkit.json_encode(t.a), " ", cdnkit.json_encode(setmetatable({}, mt)))
    ]])
    f:close()
    local p = assert(io.popen(("LUA_PATH=%q LUA_CPATH=%q %s %s 2>&1"):format(package.path, package.cpath, lua, script)))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    assert.equal("true [] []", out)
  end)
end)
