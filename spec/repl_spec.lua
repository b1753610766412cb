-- cdnkit.pp, the __tostring of purge reports and wait summaries, and the
-- REPL (cdnkit.repl): driven through a pipe, and in a terminal (tmux, with
-- rlwrap's Tab completion) when tmux and rlwrap are installed.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local pp = require "cdnkit.pp"
local batch = require "cdnkit.batch"
local errors = require "cdnkit.errors"
local emu = require "emu"

local cpath = os.getenv("CDNKIT_CPATH") or "build/5.4/?.so"
local interp = cpath:find("5.1", 1, true) and "luajit" or "lua5.4"
local is54 = math.type ~= nil

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exec(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, math.floor(a / 256) end -- LuaJIT
  return a == true, c
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("cdnkit.pp", function()
  it("is callable and also cdnkit.pp's print", function()
    assert.equal("{ a = 1 }", pp({ a = 1 }))
    assert.equal(pp.format({ a = 1 }), pp({ a = 1 }))
    local path = os.tmpname()
    local f = io.open(path, "w")
    local old = io.output()
    io.output(f)
    pp.print({ x = { 1, 2 } })
    io.output(old)
    f:close()
    assert.equal("{ x = { 1, 2 } }\n", slurp(path))
    os.remove(path)
  end)

  it("sorts keys: the array part in order, then numbers, then strings", function()
    local t = { "first", "second", b = 1, a = 2, Z = 3, [10] = "ten", [2.5] = "x", [-1] = "neg" }
    assert.equal('{ "first", "second", [-1] = "neg", [2.5] = "x", [10] = "ten", Z = 3, a = 2, b = 1 }',
      pp(t, { width = 100 }))
    assert.equal("{ [false] = 1, [true] = 2 }", pp({ [true] = 2, [false] = 1 }))
  end)

  it("leaves identifiers unquoted and brackets other keys", function()
    assert.equal('{ ["1x"] = 4, ["domain-list"] = 1, ["end"] = 2, ok_1 = 3 }',
      pp({ ["domain-list"] = 1, ["end"] = 2, ok_1 = 3, ["1x"] = 4 }))
  end)

  it("nests with an indent of 2 and keeps what fits on one line", function()
    local t = { Domains = { PageData = { { DomainName = "a.example.com", Status = "online" },
                                         { DomainName = "b.example.com", Status = "offline" } } },
                PageNumber = 1, RequestId = "REQ" }
    assert.equal(table.concat({
      "{",
      "  Domains = {",
      "    PageData = {",
      '      { DomainName = "a.example.com", Status = "online" },',
      '      { DomainName = "b.example.com", Status = "offline" },',
      "    },",
      "  },",
      "  PageNumber = 1,",
      '  RequestId = "REQ",',
      "}" }, "\n"), pp(t))
    assert.equal("{\n  a = {\n    b = 1,\n  },\n}", pp({ a = { b = 1 } }, { width = 8 }))
    assert.equal("{ 1, { 2, {...} } }", pp({ 1, { 2, { 3 } } }, { depth = 2 }))
  end)

  it("folds arrays longer than max_items (20)", function()
    local big = {}
    for i = 1, 200 do big[i] = i end
    local s = pp({ list = big })
    assert.truthy(s:find("... 180 more", 1, true))
    assert.truthy(s:find("20,", 1, true))
    assert.falsy(s:find("21,", 1, true))
    assert.equal("{ 1, 2, 3, ... 197 more }", pp(big, { max_items = 3 }))
    assert.falsy(pp(big, { max_items = false }):find("more", 1, true))
    local recs = {}
    for i = 1, 25 do recs[i] = { id = i } end
    local r = pp(recs)
    assert.equal(20, count(r, "{ id = %d+ }"))
    assert.truthy(r:match("\n  %.%.%. 5 more\n}$"))
  end)

  it("shows cdnkit.null as null and an empty JSON array as []", function()
    local v = cdnkit.json_decode('{"a":null,"list":[],"obj":{},"n":[null,1]}')
    assert.equal("{ a = null, list = [], n = { null, 1 }, obj = {} }", pp(v))
    assert.equal("null", pp(cdnkit.null))
    assert.equal("[]", pp(setmetatable({}, cdnkit.array_mt)))
    assert.equal("{}", pp({}))
  end)

  it("is safe on cycles, and prints a shared table each time it appears", function()
    local t = { name = "t" }
    t.self = t
    t.child = { parent = t }
    assert.equal('{ child = { parent = <cycle> }, name = "t", self = <cycle> }', pp(t))
    local shared = { 1 }
    assert.equal("{ a = { 1 }, b = { 1 } }", pp({ a = shared, b = shared }))
  end)

  it("escapes strings and keeps UTF-8 text", function()
    assert.equal([["a\"b\\c\nd\te\x01\x7F"]], pp('a"b\\c\nd\te\1\127'))
    assert.equal('"中文 ok"', pp("中文 ok"))
    assert.equal([["bad \xFF byte, cut \xE4\xB8"]], pp("bad \255 byte, cut \228\184"))
    assert.equal('{ s = "aaaa"... (10 bytes) }', pp({ s = ("a"):rep(10) }, { max_string = 4 }))
    -- what pp prints of a string reads back as the same string (Lua 5.2+ escapes)
    local s = "x\0y\r\n\"\\\200\1z中"
    assert.equal(s, assert(load("return " .. pp(s)))())
  end)

  it("prints integers exactly and floats so they read back the same", function()
    assert.equal("0.1", pp(0.1))
    assert.equal(1 / 3, tonumber(pp(1 / 3)))
    assert.equal("1.5", pp(1.5))
    assert.equal("math.huge", pp(math.huge))
    assert.equal("-math.huge", pp(-math.huge))
    assert.equal("0/0", pp(0 / 0))
    assert.equal("{ id = 123456789 }", pp({ id = 123456789 }))
    if is54 then
      assert.equal("9223372036854775807", pp(math.maxinteger))
      assert.equal("3.0", pp(3.0))
      assert.equal("3", pp(3))
      -- 64-bit ids from JSON stay exact
      assert.equal("{ 9007199254740993 }", pp(cdnkit.json_decode("[9007199254740993]")))
    else
      -- LuaJIT: one number type, %.17g trimmed
      assert.equal("3", pp(3.0))
      assert.equal("9007199254740992", pp(2 ^ 53))
    end
  end)

  it("shows data, not metatables: no __index, __pairs or __tostring followed", function()
    local t = setmetatable({ a = 1 }, { __index = { hidden = 2 }, __tostring = function() return "T" end,
                                        __pairs = function() error("not called") end })
    assert.equal("{ a = 1 }", pp(t))
    assert.equal("<function>", pp(print))
    local c = cdnkit.aliyun { access_key_id = "id", access_key_secret = "secret" }
    local s = pp({ client = c })
    assert.truthy(s:find("client = <cdnkit.aliyun", 1, true), s)
    assert.falsy(s:find("secret", 1, true))
    c:close()
  end)

  it("refuses unknown options", function()
    assert.has_error(function() pp({}, { maxitems = 3 }) end)
    assert.has_error(function() pp({}, 3) end)
  end)
end)

describe("report __tostring", function()
  local function urls(n, kind)
    local t = {}
    for i = 1, n do t[i] = ("https://www.example.com/%s/%d"):format(kind or "a", i) end
    return t
  end

  it("prints a report's counts and a line per failed batch", function()
    local r = setmetatable({ vendor = "aliyun", ok = true, results = {}, failed = {}, task_ids = {} },
      batch.report_mt)
    for i, n in ipairs { 1000, 1000, 500, 1 } do
      r.results[i] = { kind = "refresh_url", urls = urls(n), task_ids = { tostring(i) } }
      r.task_ids[i] = tostring(i)
    end
    assert.equal("aliyun: 2501 URLs accepted in 4 calls, 4 tasks; 0 failed", tostring(r))
    r.results[5] = { kind = "refresh_dir", urls = urls(1, "d"), task_ids = {} }
    r.failed[1] = { kind = "refresh_url", urls = urls(1000),
                    err = errors.new("aliyun", "RefreshObjectCaches",
                                     { code = "Throttling", message = "Request was denied", http_status = 503 }) }
    r.failed[2] = { kind = "refresh_dir", urls = urls(2, "d"),
                    err = errors.new("aliyun", "RefreshObjectCaches", { code = "timeout", message = "slow" }) }
    assert.equal(table.concat({
      "aliyun: 2501 URLs and 1 directory accepted in 5 calls, 4 tasks; " ..
        "1000 URLs and 2 directories failed in 2 batches",
      "  failed: refresh_url, 1000 URLs: cdnkit.aliyun RefreshObjectCaches: Throttling: Request was denied (HTTP 503)",
      "  failed: refresh_dir, 2 directories: cdnkit.aliyun RefreshObjectCaches: timeout: slow" }, "\n"),
      tostring(r))
  end)

  describe("against the emulators", function()
    local ea, eq, ali, qc
    setup(function()
      ea = emu.start("aliyun", { task_seconds = 0.3 })
      eq = emu.start("qcloud", { task_seconds = 0.3 })
      ali = emu.client(ea, { version = false })
      qc = emu.client(eq, { version = false })
    end)
    teardown(function()
      ali:close(); qc:close()
      ea:stop(); eq:stop()
    end)

    it("prints reports, wait summaries and multi-vendor results", function()
      local r = ali:refresh { urls = { "http://example-0001.com/a.jpg", "http://example-0002.com/b.jpg" } }
      assert.equal("aliyun: 2 URLs accepted in 1 call, 1 task; 0 failed", tostring(r))
      local s = r:wait { timeout = 0 }
      assert.equal("not complete: 1 running; the wait timed out", tostring(s))
      s = r:wait { timeout = 10, interval = 0.1 }
      assert.is_true(s.complete)
      assert.equal("complete: 1 task done", tostring(s))
      -- the summary's fields are as they were (a metatable was added, nothing else)
      local ks = {}
      for k in pairs(s) do ks[#ks + 1] = k end
      table.sort(ks)
      assert.same({ "complete", "done", "errors", "failed", "failed_batches", "running", "timed_out", "untracked" },
        ks)
      -- a summary with untracked batches and failures
      local u = setmetatable({ complete = false, done = { "1" }, failed = { "2" }, running = { "3", "4", "5" },
                               untracked = 2, failed_batches = 1, errors = {}, timed_out = true,
                               untracked_reason = "the vendor gives no task id for prefetches " ..
                                 "(2 batches accepted, not confirmable)" }, getmetatable(s))
      assert.equal("not complete: 3 running, 1 failed, 2 untracked (the vendor gives no task id for " ..
        "prefetches), 1 batch not accepted (report.failed), 1 done; the wait timed out", tostring(u))

      local m = cdnkit.refresh({ ali, qc }, { urls = { "http://example-0001.com/c.jpg" } })
      assert.equal(batch.multi_mt, getmetatable(m))
      assert.equal("aliyun: 1 URL accepted in 1 call, 1 task; 0 failed\n" ..
                   "qcloud: 1 URL accepted in 1 call, 1 task; 0 failed", tostring(m))
      local all, sums = m:wait { timeout = 10, interval = 0.1 }
      assert.is_true(all)
      assert.equal("aliyun: complete: 1 task done\nqcloud: complete: 1 task done", tostring(sums))
    end)

    it("prints a failed batch with its error", function()
      ea:faults { { kind = "http503", count = 2, action = "RefreshObjectCaches" } }
      local r = ali:refresh { urls = { "http://example-0001.com/z.jpg" },
                              retry = { attempts = 2, base = 0.01, max = 0.02 } }
      ea:reset()
      local s = tostring(r)
      assert.truthy(s:match("^aliyun: 0 URLs accepted in 0 calls, 0 tasks; 1 URL failed in 1 batch\n" ..
        "  failed: refresh_url, 1 URL: cdnkit%.aliyun RefreshObjectCaches: "), s)
      assert.truthy(s:find("HTTP 503", 1, true), s)
    end)
  end)
end)

-- the REPL as a separate process, lines fed on stdin
local function run_repl(lines, args, env)
  local input, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = io.open(input, "w")
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local qargs = {}
  for i, a in ipairs(args or {}) do qargs[i] = ("%q"):format(a) end
  local code = ("os.exit(require('cdnkit.repl').main({ %s }))"):format(table.concat(qargs, ", "))
  local cmd = ("env %s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s %s -e %s <%s >%s 2>%s")
    :format(env or "", shq(cpath .. ";;"), interp, shq(code), input, out, err)
  local _, status = exec(cmd)
  local o, e = slurp(out), slurp(err)
  os.remove(input); os.remove(out); os.remove(err)
  return status, o, e
end

describe("cdnkit REPL through a pipe", function()
  it("prints results with pp, errors at stdin:N, takes multi-line input, and stops its emulators", function()
    local status, out, err = run_repl({
      "{ b = 2, a = { 1, 2, 3 }, c = cdnkit.null }",
      "ali:DescribeUserDomains{ PageSize = 2 }",
      "ali:DescribeUserDomains{ PageSize = \"x\" }",
      "return ali:DescribeUserDomains{ PageSize = \"x\" }",
      "function twice(x)",
      "  return x * 2",
      "end",
      "twice(21)",
      "local t = {",
      "  z = 1,",
      "  y = cdnkit.null }",
      "r = qc:refresh{ urls = { \"https://host-0001.example.com/a.jpg\" } }",
      "r",
      "pp({ 1, 2, 3, 4 }, { max_items = 2 })",
      "nil + 1",
      "emu",
      "if true then",
    }, { "--emu" })
    assert.equal(0, status, err)
    -- the banner: version, the four clients
    assert.truthy(out:find("cdnkit " .. cdnkit.VERSION .. " REPL", 1, true), out)
    for _, n in ipairs { "ali", "qc", "ws", "pl" } do
      assert.truthy(out:match("\n  " .. n .. " +cdnkit%.%a+ client, API "), n)
    end
    assert.truthy(out:find("help()", 1, true))
    -- results through pp (never table: 0x...)
    assert.truthy(out:find("\n{ a = { 1, 2, 3 }, b = 2, c = null }\n", 1, true), out)
    assert.falsy(out:find("table: 0x", 1, true))
    assert.truthy(out:find("\n  PageSize = 2,\n", 1, true), out)
    assert.truthy(out:find("\n  TotalCount = 123,\n}\n", 1, true), out)
    -- usage errors point at the line typed, tail call or not
    assert.equal(2, count(out, "\nstdin:1: cdnkit%.aliyun DescribeUserDomains: parameter 'PageSize' must be an integer"))
    assert.falsy(out:find("(command line)", 1, true))
    assert.truthy(out:find("\nstdin:1: attempt to perform arithmetic on a nil value", 1, true))
    -- multi-line input (a function, then a call of it)
    assert.truthy(out:find("\n42\n", 1, true), out)
    -- reports through their __tostring, pp() prints
    assert.truthy(out:find("\nqcloud: 1 URL accepted in 1 call, 1 task; 0 failed\n", 1, true), out)
    assert.truthy(out:find("\n{ 1, 2, ... 2 more }\n", 1, true), out)
    -- input that ends inside a chunk
    assert.truthy(out:find("'end' expected near '?<eof>"), out) -- (LuaJIT quotes <eof>)
    -- the emulators were stopped with the REPL
    local urls = {}
    for u in out:gmatch('= "(http://127%.0%.0%.1:%d+)"') do urls[#urls + 1] = u end
    assert.equal(4, #urls, out)
    local t = core.curl()
    for _, u in ipairs(urls) do
      local ok = false
      for _ = 1, 40 do
        local st = t:send { method = "GET", url = u .. "/__emu/stats", timeout = 1, connect_timeout = 1 }
        if st == nil then ok = true; break end
        core.sleep(0.05)
      end
      assert.is_true(ok, "emulator still up at " .. u)
    end
    t:close()
  end)

  it("makes the clients whose credentials are found and says which it skipped", function()
    local home = os.tmpname()
    local status, out, err = run_repl({ "qc:vendor()", "ali" }, {},
      "-u ALIBABA_CLOUD_ACCESS_KEY_ID -u ALIBABA_CLOUD_ACCESS_KEY_SECRET -u WANGSU_ACCESS_KEY " ..
      "-u WANGSU_SECRET_KEY -u WANGSU_USERNAME -u WANGSU_API_KEY -u PLCLOUD_USERNAME -u PLCLOUD_PASSWORD " ..
      "-u PLCLOUD_TOKEN -u CDNKIT_PROFILE " ..
      "CDNKIT_CREDENTIALS_FILE=" .. home .. ".none TENCENTCLOUD_SECRET_ID=AKIDx TENCENTCLOUD_SECRET_KEY=k")
    os.remove(home)
    assert.equal(0, status, err)
    assert.truthy(out:match("\n  qc +cdnkit%.qcloud client"), out)
    assert.truthy(out:find("\n  ali skipped: no credentials", 1, true), out)
    assert.truthy(out:find("\n  ws skipped: ", 1, true), out)
    assert.truthy(out:find("\n  pl skipped: ", 1, true), out)
    assert.truthy(out:find("no Tab completion", 1, true), out)
    assert.truthy(out:find("\nqcloud\nnil\n", 1, true), out)
  end)

  it("says what is wrong with its arguments", function()
    local status, _, err = run_repl({}, { "--bogus" })
    assert.equal(2, status)
    assert.truthy(err:find("unexpected argument '--bogus'", 1, true))
    local st2, out = run_repl({}, { "--help" })
    assert.equal(0, st2)
    assert.truthy(out:find("usage: cdnkit repl", 1, true))
  end)

  it("lists completion words: actions, methods, parameters, cdnkit's functions", function()
    local words = {}
    for _, w in ipairs(require("cdnkit.repl").words()) do words[w] = true end
    for _, w in ipairs { "DescribeUserDomains", "PurgeUrlsCache", "Querydomaintotaltraffic", "cache_flush",
                         "cdn", "refresh", "wait", "PageSize", "ObjectPath", "vendors", "ali", "pp" } do
      assert.is_true(words[w], w)
    end
  end)
end)

describe("cdnkit REPL in a terminal (tmux)", function()
  local missing = {}
  for _, p in ipairs { "tmux", "rlwrap" } do
    if not exec("command -v " .. p .. " >/dev/null 2>&1") then missing[#missing + 1] = p end
  end
  if #missing > 0 then
    pending("needs " .. table.concat(missing, " and ") .. " (apt-get install " ..
      table.concat(missing, " ") .. ")")
    return
  end

  it("completes action names with Tab and prints results with pp", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(exec("mkdir -p " .. shq(dir)))
    local sock = dir .. "/tmux.sock"
    local function tmux(args)
      return exec("tmux -S " .. shq(sock) .. " " .. args .. " >/dev/null 2>&1")
    end
    local function screen()
      local out = dir .. "/screen"
      exec("tmux -S " .. shq(sock) .. " capture-pane -p -J -S -300 -t repl > " .. shq(out) .. " 2>/dev/null")
      return slurp(out)
    end
    -- poll the screen (up to `secs`) until it shows `needle`
    local function wait_for(needle, secs)
      local deadline = core.monotime() + (secs or 5)
      local s
      repeat
        s = screen()
        if s:find(needle, 1, true) then return true, s end
        core.sleep(0.05)
      until core.monotime() > deadline
      return false, s
    end
    local function keys(literal, key)
      if literal then tmux("send-keys -t repl -l " .. shq(literal)) end
      if key then tmux("send-keys -t repl " .. key) end
    end
    local code = "os.exit(require('cdnkit.repl').main({ '--emu' }))"
    local cmd = ("env HOME=%s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s %s -e %s; " ..
                 "echo REPL-EXITED $?; sleep 30")
      :format(shq(dir), shq(cpath .. ";;"), interp, shq(code))
    local ok, err = pcall(function()
      assert(tmux("new-session -d -s repl -x 150 -y 50 " .. shq(cmd)), "tmux did not start")
      local up, s = wait_for("Tab completes", 10)
      assert(up, "no banner with completion:\n" .. s)
      local prompt
      prompt, s = wait_for("\n> ", 3)
      assert(prompt, "no prompt:\n" .. s)
      -- Tab completes the action name (rlwrap, the REPL's word list)
      keys("ali:DescribeUserDom", "Tab")
      local done
      done, s = wait_for("> ali:DescribeUserDomains", 3)
      assert(done, "Tab did not complete:\n" .. s)
      keys("{ PageSize = 2 }", "Enter")
      done, s = wait_for("  TotalCount = 123,\n}", 5)
      assert(done, "no pp'd result:\n" .. s)
      assert.truthy(s:find("\n  PageSize = 2,\n", 1, true), s)
      assert.truthy(s:find('DomainName = "example-0001.com"', 1, true), s)
      assert.falsy(s:find("table: 0x", 1, true))
      -- a usage error, at the line typed
      keys('ali:DescribeUserDomains{ PageSize = "x" }', "Enter")
      done, s = wait_for("stdin:1: cdnkit.aliyun DescribeUserDomains: parameter 'PageSize'", 3)
      assert(done, "no usage error at stdin:1:\n" .. s)
      -- multi-line input at the continuation prompt
      keys("for i = 1, 2 do", "Enter")
      keys("print(i * 111)", "Enter")
      keys("end", "Enter")
      done, s = wait_for("\n111\n222\n", 3)
      assert(done, "multi-line input:\n" .. s)
      assert.truthy(s:find("\n>> print(i * 111)", 1, true), s)
      -- Ctrl-D ends it (and its emulators)
      keys(nil, "C-d")
      done, s = wait_for("REPL-EXITED 0", 5)
      assert(done, "Ctrl-D did not end the REPL:\n" .. s)
    end)
    tmux("kill-server")
    exec("rm -rf " .. shq(dir))
    assert(ok, err)
  end)
end)
