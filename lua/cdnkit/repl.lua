-- cdnkit.repl: an interactive Lua prompt with cdnkit loaded.
--
--   cdnkit repl [--emu] [--profile NAME] [--no-rlwrap] [-q]
--   lua5.4 -e 'os.exit(require("cdnkit.repl").main(arg))'   (the same, from Lua)
--
-- Predefined globals: `cdnkit`, `pp` (pp(v [, opts]) prints v with
-- cdnkit.pp), `help()` (this REPL's help), and one client per vendor whose
-- credentials are found (environment or profile, as the constructors read
-- them): `ali` (aliyun), `qc` (qcloud), `ws` (wangsu), `pl` (plcloud).  A
-- vendor without credentials is skipped with a one-line note.
--
-- --emu starts the four local vendor emulators (spec/emulator/cdnemu.py of
-- the checkout this module is in; loopback, free ports) and points the
-- clients at them with the emulators' test credentials; they stop when the
-- REPL ends (however it ends: each runs under a shell that waits on a pipe
-- from this process).
--
-- Like `lua -i`: a line is first tried as an expression (`return <line>`),
-- then as statements; an incomplete chunk reads more lines (">> ").  Results
-- print with cdnkit.pp (tables never as `table: 0x...`); a value with a
-- __tostring (reports, wait summaries, errors, help(), actions()) prints
-- through it, and strings print as they are.  Errors print as
-- `stdin:N: message`: chunks are named "=stdin", so a usage mistake
-- (cdnkit.errors.raise) points at the line typed, even for a tail call
-- (`return c:Action{...}`): chunks run under a small "=stdin" trampoline.
--
-- Tab completion: with `rlwrap` installed and a terminal on stdin and
-- stdout, the REPL runs itself again under `rlwrap` with a word file of
-- every action, method, cdnkit function and parameter name
-- (CDNKIT_REPL_RLWRAP guards against doing it twice; history in
-- ~/.cdnkit_history); without it, the banner says there is no completion.
--
-- Ctrl-C stops a running evaluation ("stdin:N: interrupted!"), once: the
-- handler is lua5.4's own, which it does not re-arm, so a second Ctrl-C
-- ends the REPL.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local ppm = require "cdnkit.pp"

local M = {}

-- the folder this module was loaded from (".../lua" in a checkout)
local SRC = (debug.getinfo(1, "S").source or ""):match("^@(.*)[/\\]cdnkit[/\\]repl%.lua$")

-- the global name of each vendor's client
M.NAMES = { aliyun = "ali", qcloud = "qc", wangsu = "ws", plcloud = "pl" }

-- the emulators' test credentials (as spec/support/emu.lua has them)
M.EMU_CREDS = {
  aliyun = { access_key_id = "testid", access_key_secret = "testsecret" },
  qcloud = { secret_id = "AKIDtest", secret_key = "testkey" },
  wangsu = { access_key = "wangsu-test-ak", secret_key = "wangsu-test-sk" },
  plcloud = { username = "demo", password = "secreetword", tenant_name = "demo" },
}

-- what rlwrap treats as word breaks (its default list, and ':' so that
-- `c:Descr` completes an action name after any variable)
local BREAK_CHARS = "(){}[],'+-=&^%$#@\";|\\:./<>*~!?"

local function shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function ok_status(a, b, c)
  -- os.execute: Lua 5.4 true|nil, "exit", code; LuaJIT a number
  if type(a) == "number" then return a == 0, a >= 256 and math.floor(a / 256) or a end
  return a == true, c or (a and 0 or 1)
end

local function sh_ok(cmd)
  return (ok_status(os.execute(cmd)))
end

local function interactive()
  return sh_ok("test -t 0 && test -t 1")
end

local function have(prog)
  return sh_ok("command -v " .. shq(prog) .. " >/dev/null 2>&1")
end

-- the first line of a Lua error message, without its position
local function plain(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", ""):match("^[^\n]*"))
end

---------------------------------------------------------------------------
-- emulators

local function emulator_script()
  local p = (SRC or ".") .. "/../spec/emulator/cdnemu.py"
  local f = io.open(p, "r")
  if not f then return nil, p end
  f:close()
  return p
end

--- Start the four emulators; returns { [vendor] = { url =, port =, handle = } }
-- | nil, message.  Each runs under `sh`, which kills it when the pipe from
-- this process closes (at stop(), or when this process ends).
function M.start_emulators(vendors)
  local script, where = emulator_script()
  if not script then
    return nil, "the emulators are not here (" .. where .. "): --emu works from a checkout"
  end
  local py = os.getenv("PYTHON") or "python3"
  local emus, started = {}, {}
  for _, v in ipairs(vendors) do
    local portfile = os.tmpname()
    os.remove(portfile)
    local cmd = ("%s %s --vendor %s --host 127.0.0.1 --port 0 --port-file %s >/dev/null 2>&1 & " ..
                 "pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null")
      :format(shq(py), shq(script), shq(v), shq(portfile))
    local h = io.popen(cmd, "w")
    if h then
      emus[v] = { handle = h, portfile = portfile }
      started[#started + 1] = v
    end
  end
  local deadline = core.monotime() + 15
  local missing = #started
  while missing > 0 and core.monotime() < deadline do
    missing = 0
    for _, v in ipairs(started) do
      local e = emus[v]
      if not e.port then
        local f = io.open(e.portfile, "r")
        local port = f and tonumber(f:read("*l") or "")
        if f then f:close() end
        if port then
          e.port = port
          e.url = "http://127.0.0.1:" .. port
          os.remove(e.portfile)
        else
          missing = missing + 1
        end
      end
    end
    if missing > 0 then core.sleep(0.05) end
  end
  local failed = {}
  for _, v in ipairs(vendors) do
    if not (emus[v] and emus[v].port) then failed[#failed + 1] = v end
  end
  if #failed > 0 then
    M.stop_emulators(emus)
    return nil, "the emulator did not start for " .. table.concat(failed, ", ") .. " (" .. py .. " " ..
      script .. ")"
  end
  return emus
end

function M.stop_emulators(emus)
  for _, e in pairs(emus or {}) do
    if e.handle then
      pcall(e.handle.close, e.handle)
      e.handle = nil
    end
    if e.portfile then os.remove(e.portfile) end
  end
end

---------------------------------------------------------------------------
-- clients

--- One client per vendor: { {vendor =, name =, client =} ...}, notes.
-- emus: the emulators to point them at (nil: credentials from the
-- environment or the profile).
function M.make_clients(emus, profile)
  local made, notes = {}, {}
  for _, v in ipairs(cdnkit.vendors()) do
    local name = M.NAMES[v] or v
    local o = {}
    if emus then
      for k, x in pairs(M.EMU_CREDS[v] or {}) do o[k] = x end
      local e = emus[v]
      if v == "plcloud" then o.auth_url = e and e.url .. "/v2.0" else o.endpoint = e and e.url end
    else
      o.profile = profile
    end
    local ok, c = pcall(cdnkit[v], o)
    if ok then
      made[#made + 1] = { vendor = v, name = name, client = c }
    else
      notes[#notes + 1] = ("%s skipped: %s"):format(name, (plain(c):gsub("^cdnkit%." .. v .. ": ", "")))
    end
  end
  return made, notes
end

---------------------------------------------------------------------------
-- completion words (for rlwrap -f)

local HELPERS = { "actions", "help", "prepare", "call", "each", "pages", "refresh", "prefetch",
                  "close", "is_closed", "vendor", "version", "wait" }
local OPTIONS = { "urls", "dirs", "concurrency", "batch_size", "retry", "check_quota", "dry_run",
                  "params", "max_batch_bytes", "timeout", "interval", "endpoint", "method",
                  "connect_timeout", "proxy", "ca_file", "verify_tls", "user_agent", "rate",
                  "transport", "trace", "sleep", "max_body", "profile", "max_items", "width",
                  "depth", "max_string", "on_batch", "progress" }
local LUA_WORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                    "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true",
                    "until", "while", "print", "pairs", "ipairs", "tostring", "tonumber", "type",
                    "require", "select", "pcall", "error", "next", "setmetatable", "getmetatable",
                    "string", "table", "math", "os", "io" }

--- The completion words, sorted: global names, cdnkit's functions, every
-- action of every API version of every vendor, client methods and the
-- parameter names.
function M.words()
  local set = {}
  local function add(w)
    if type(w) == "string" and w ~= "" then set[w] = true end
  end
  for _, w in ipairs(LUA_WORDS) do add(w) end
  for _, w in ipairs(HELPERS) do add(w) end
  for _, w in ipairs(OPTIONS) do add(w) end
  for _, w in ipairs { "cdnkit", "pp", "help", "emu" } do add(w) end
  for k in pairs(cdnkit) do add(k) end
  add("pp")
  local adapter = require "cdnkit.adapter"
  for _, v in ipairs(cdnkit.vendors()) do
    add(v)
    add(M.NAMES[v])
    local A = adapter.get(v)
    for _, ver in ipairs(adapter.version_names(A)) do
      local api = adapter.version(A, ver).api
      for _, a in ipairs(api.actions) do
        add(a.name)
        -- resource calls (Plcloud "cdn.list"): the resource and the call
        local r, m = a.name:match("^([%w_]+)%.([%w_]+)$")
        add(r); add(m)
        for _, p in ipairs(a.params or {}) do add(p[1]) end
      end
    end
  end
  local list = {}
  for w in pairs(set) do list[#list + 1] = w end
  table.sort(list)
  return list
end

---------------------------------------------------------------------------
-- the loop

local function pack(...) return { n = select("#", ...), ... } end

-- compile one chunk: the expression form first, then statements; an
-- incomplete chunk (the syntax error is at <eof>) gives "incomplete"
local function compile(buf)
  local f = load("return " .. buf, "=stdin")
  if f then return f end
  local err
  f, err = load(buf, "=stdin")
  if f then return f end
  if err:match("<eof>'?$") then return nil, "incomplete" end
  return nil, err
end

-- Chunks run under a trampoline named "=stdin", on the chunk's last line:
-- when a chunk tail-calls (`return c:Action{...}`, which is what an
-- expression line compiles to) its own frame is gone, and a usage error
-- raised at "the first frame outside cdnkit" lands on this one, not on
-- this module's caller.
local function trampoline(lines)
  return assert(load(("\n"):rep(lines - 1) .. "local f, pack = ... return pack(f())", "=stdin"))
end

local function on_error(e)
  if type(e) == "table" or type(e) == "userdata" then
    local mt = getmetatable(e)
    if type(mt) == "table" and mt.__tostring then return tostring(e) end
    return "(error object is a " .. type(e) .. " value)\n" .. ppm(e)
  end
  local msg = tostring(e)
  if msg:match("^stdin:%d+:") then return msg end
  -- not the user's line: show where it happened, down to the user's frames
  local tb = debug.traceback("", 2)
  local keep = {}
  for line in tb:gmatch("[^\n]+") do
    if line:find("cdnkit[/\\]repl%.lua") or line:find("in function 'xpcall'") then break end
    if not line:match("^stack traceback:") and line ~= "" then keep[#keep + 1] = line end
  end
  if #keep > 0 then msg = msg .. "\nstack traceback:\n" .. table.concat(keep, "\n") end
  return msg
end

-- the text a result prints as
local function show(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "table" or (tv == "userdata" and v ~= core.null) then
    local mt = getmetatable(v)
    if type(mt) == "table" and rawget(mt, "__tostring") or tv == "userdata" then return tostring(v) end
  end
  return ppm(v)
end
M.show = show

local HELP = [[
cdnkit %s REPL on %s.  Globals:
  cdnkit                    the module: cdnkit.help(), cdnkit.vendors(), cdnkit.aliyun{...}
%s
  pp(v [, opts])            print v: sorted keys, arrays over 20 items folded,
                            cdnkit.null as null (opts: max_items, width, depth)
Try:
  ali:actions()                              the client's actions
  ali:help("DescribeUserDomains")            an action's parameters and limits
  ali:DescribeUserDomains{ PageSize = 5 }    a call; the result prints with pp
  for d in ali:each("DescribeUserDomains", {}) do print(d.DomainName) end
  r = qc:refresh{ urls = { "https://www.example.com/a.jpg" } }
  r                                          the report, in a line
  r:wait{ timeout = 60 }                     the tasks' state
A line is an expression or statements; an unfinished one continues on the
next line (>>).  Each line is a chunk of its own: `local x` ends with it,
use globals to keep values.  Ctrl-D (or os.exit()) quits.]]

local function client_lines(made)
  local out = {}
  for _, m in ipairs(made) do
    out[#out + 1] = ("  %-25s cdnkit.%s client, API %s"):format(m.name, m.vendor, m.client:version())
  end
  if #out == 0 then
    out[1] = "  (no client: no vendor's credentials were found; --emu: clients of the local emulators)"
  end
  return table.concat(out, "\n")
end

local USAGE = [[
usage: cdnkit repl [--emu] [--profile NAME] [--no-rlwrap] [-q]
  --emu          start the local vendor emulators (spec/emulator) and point
                 the clients at them (test credentials); they stop on exit
  --profile NAME the credentials file's profile for the clients
  --no-rlwrap    no Tab completion (do not run under rlwrap)
  -q             no banner
]]

local function parse_args(argv)
  local o = {}
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    if a == "--emu" then o.emu = true
    elseif a == "--no-rlwrap" then o.no_rlwrap = true
    elseif a == "-q" or a == "--quiet" then o.quiet = true
    elseif a == "-h" or a == "--help" or a == "help" then o.help = true
    elseif a == "--profile" then
      i = i + 1
      o.profile = argv[i]
      if not o.profile then return nil, "--profile needs a name" end
    elseif a:match("^%-%-profile=") then o.profile = a:match("^%-%-profile=(.*)$")
    else return nil, "unexpected argument '" .. tostring(a) .. "'" end
    i = i + 1
  end
  return o
end

-- the interpreter running us (the lowest index of `arg`)
local function interpreter()
  local a = rawget(_G, "arg")
  if type(a) ~= "table" then return nil end
  local i = 0
  while a[i - 1] ~= nil do i = i - 1 end
  return a[i]
end

-- run this REPL again under rlwrap; returns its exit status, or nil when
-- it could not be started
local function under_rlwrap(argv)
  local interp = interpreter()
  if not interp then return nil end
  local words = os.tmpname()
  local f = io.open(words, "w")
  if not f then return nil end
  f:write(table.concat(M.words(), "\n"), "\n")
  f:close()
  local args = {}
  for i, a in ipairs(argv) do args[i] = ("%q"):format(a) end
  local code = ("package.path = %q; package.cpath = %q; " ..
                "os.exit(require(\"cdnkit.repl\").main({ %s }))")
    :format(package.path, package.cpath, table.concat(args, ", "))
  local cmd = ("CDNKIT_REPL_RLWRAP=1 exec rlwrap -C cdnkit -b %s -f %s %s -e %s")
    :format(shq(BREAK_CHARS), shq(words), shq(interp), shq(code))
  local ok, status = ok_status(os.execute(cmd))
  os.remove(words)
  return ok and 0 or status
end

--- Run the REPL.  `argv`: the command's arguments (see USAGE); `io_` (for
-- tests): { input = file, output = file } instead of stdin / stdout.
-- Returns the exit status.
function M.main(argv, io_)
  argv = argv or {}
  local o, perr = parse_args(argv)
  local input = io_ and io_.input or io.stdin
  local output = io_ and io_.output or io.stdout
  if not o then
    io.stderr:write("cdnkit repl: " .. perr .. "\n" .. USAGE)
    return 2
  end
  if o.help then
    output:write(USAGE)
    return 0
  end
  local tty = not io_ and interactive()
  local completion
  if tty and not o.no_rlwrap and os.getenv("CDNKIT_REPL_RLWRAP") == nil then
    if have("rlwrap") then
      local st = under_rlwrap(argv)
      if st then return st end
      completion = "no Tab completion (rlwrap did not start)"
    else
      completion = "no Tab completion: install rlwrap (apt-get install rlwrap) for it"
    end
  elseif os.getenv("CDNKIT_REPL_RLWRAP") then
    completion = "Tab completes actions, methods and parameters (rlwrap)"
  elseif o.no_rlwrap then
    completion = "no Tab completion (--no-rlwrap)"
  else
    completion = "no Tab completion (stdin is not a terminal)"
  end

  local emus
  if o.emu then
    local err
    emus, err = M.start_emulators(cdnkit.vendors())
    if not emus then
      io.stderr:write("cdnkit repl: --emu: " .. err .. "\n")
      return 1
    end
  end
  local made, notes = M.make_clients(emus, o.profile)

  -- the globals
  _G.cdnkit = cdnkit
  _G.pp = function(v, opts) output:write(ppm(v, opts), "\n") end
  local names = {}
  for _, m in ipairs(made) do
    _G[m.name] = m.client
    names[#names + 1] = m.name
  end
  if emus then
    local t = {}
    for v, e in pairs(emus) do t[v] = e.url end
    _G.emu = t
  end
  local lua_version = (rawget(_G, "jit") and jit.version) or _VERSION
  _G.help = function()
    local lines = client_lines(made)
    if emus then
      lines = lines .. "\n  emu                       the emulators' URLs (emu.aliyun, ...)"
    end
    output:write(HELP:format(cdnkit.VERSION, lua_version, lines), "\n")
  end

  if not o.quiet then
    output:write(("cdnkit %s REPL (%s)%s\n"):format(cdnkit.VERSION, lua_version,
      emus and ", against the local emulators (--emu)" or ""))
    output:write(client_lines(made), "\n")
    for _, n in ipairs(notes) do output:write("  ", n, "\n") end
    output:write(completion, "; help() for help, Ctrl-D quits\n")
    output:flush()
  end

  local function prompt(p)
    if tty then output:write(p); output:flush() end
  end

  while true do
    -- an interrupt (Ctrl-C: lua.c raises "interrupted!") abandons the input
    local ok, done = pcall(function()
      prompt("> ")
      local line = input:read("*l")
      if line == nil then return true end
      if line:match("^%s*$") then return false end
      line = line:gsub("^%s*=", "return ") -- Lua 5.1's `=expr`
      local buf, n = line, 1
      local f, err = compile(buf)
      while not f and err == "incomplete" do
        prompt(">> ")
        local more = input:read("*l")
        if more == nil then
          -- the input ended inside the chunk: its syntax error, at <eof>
          local _, e = load(buf, "=stdin")
          f, err = nil, e or err
          break
        end
        buf, n = buf .. "\n" .. more, n + 1
        f, err = compile(buf)
      end
      if not f then
        output:write(tostring(err), "\n")
        return false
      end
      local rok, res = xpcall(trampoline(n), on_error, f, pack)
      if not rok then
        output:write(res, "\n")
      elseif res.n > 0 then
        local parts, nl = {}, false
        for i = 1, res.n do
          parts[i] = show(res[i])
          if parts[i]:find("\n", 1, true) then nl = true end
        end
        output:write(table.concat(parts, nl and "\n" or "\t"), "\n")
      end
      output:flush()
      return false
    end)
    if not ok then
      output:write("\n", tostring(done), "\n")
      output:flush()
    elseif done then
      break
    end
  end
  if tty then output:write("\n") end
  output:flush()
  for _, m in ipairs(made) do pcall(m.client.close, m.client) end
  M.stop_emulators(emus)
  return 0
end

return M
