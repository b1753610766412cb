-- cdnkit.cli: the `cdnkit` command.
--   cdnkit <vendor> <Action> [--Param value ...] [--all] [--output json|table|raw]
--   cdnkit <vendor> refresh|prefetch [--urls U ...] [--dirs D ...] [--urls-from FILE|-]
--          [--concurrency N] [--wait] [--timeout S] [--save FILE] [--dry-run]
--   cdnkit wait FILE [--timeout S] [--interval S]
--   cdnkit <vendor> help [Action]
--   cdnkit repl [--emu]
--   cdnkit queue add|run|status|dead|redrive ...   (cdnkit.queue.cli)
--   cdnkit --version | --help
-- Credentials: flags (--secret-id, --access-key-id, ...; the seed tool's
-- -u ID -p KEY for qcloud), then the environment, then the profile file
-- (cdnkit.profile; --profile NAME / CDNKIT_PROFILE).  Flags are generated
-- from the API data: a list parameter repeats its flag (--urls a --urls b),
-- a JSON parameter takes JSON text, `-Param` with one dash is `--Param`.
-- Exit status: 0 ok, 1 runtime failure (also when some URLs failed), 2 usage
-- mistake, 3 --wait timed out with work still running.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"
local suggest = require "cdnkit.suggest"

local M = {}

-- the names people use for a version: Tencent's "3.0" is 2018-06-06
local VERSION_ALIAS = { qcloud = { ["3.0"] = "2018-06-06", ["v3"] = "2018-06-06" } }

local function usage_error(msg)
  error({ usage = msg }, 0)
end

---------------------------------------------------------------------------
-- output

--- `v` as text: "json" (exact integers, [] for empty arrays) or "table"
-- (readable, Lua-like: cdnkit.pp).
function M.format(v, as)
  if as == true or as == "json" then return core.json_encode(v) end
  return cdnkit.pp(v)
end

local function isatty(fd)
  local ok = os.execute("[ -t " .. fd .. " ]")
  return ok == true or ok == 0
end

---------------------------------------------------------------------------
-- arguments

-- flags that take no value
local BOOL = { all = true, json = true, trace = true, ["dry-run"] = true, wait = true, help = true }
-- the command's own flags that take one
local OWN = { output = true, endpoint = true, region = true, method = true, ["version-api"] = true,
              signature = true, profile = true, timeout = true, interval = true, save = true,
              concurrency = true, ["urls-from"] = true, ["dirs-from"] = true, urls = true, dirs = true }
local OWN_LIST = { "all", "json", "trace", "dry-run", "wait", "output", "endpoint", "region", "method",
                   "version-api", "signature", "profile", "timeout", "interval", "save", "concurrency",
                   "urls-from", "dirs-from", "urls", "dirs" }

-- split argv (after the vendor) into tokens: { flag =, value =, dash = 1|2 }
-- or { pos = "..." }; a flag's value is the next argument unless BOOL or
-- written --flag=value
local function tokens(args, from)
  local out, i = {}, from
  while i <= #args do
    local a = args[i]
    local dashes, body = a:match("^(%-%-?)([%a][%w_.%-]*=?.*)$")
    if dashes and a ~= "-" then
      local name, inline = body:match("^([^=]+)=(.*)$")
      name = name or body
      local t = { flag = name, dash = #dashes }
      if inline then
        t.value = inline
      elseif not BOOL[name] or #dashes == 1 then
        t.value = args[i + 1]
        t.missing = args[i + 1] == nil
        i = i + 1
      end
      out[#out + 1] = t
    else
      out[#out + 1] = { pos = a }
    end
    i = i + 1
  end
  return out
end

-- the parameters of action `name` in API data `api`: name -> decl, names
local function params_of(api, name)
  local byname, list = {}, {}
  for _, a in ipairs(api.actions) do
    if a.name == name then
      for _, q in ipairs(a.params or {}) do byname[q[1]] = q; list[#list + 1] = q[1] end
    end
  end
  return byname, list
end

-- a value given on the command line, as the parameter's type wants it
local function convert(p, s)
  local t = p[2]
  if t == "integer" or t == "number" or (t == "list" and p.item == "integer") then
    local n = tonumber(s)
    if not n then usage_error(("--%s: a number expected, got '%s'"):format(p[1], s)) end
    if math.type and t ~= "number" and n == math.floor(n) then n = math.tointeger(n) or n end
    return n
  elseif t == "boolean" then
    if s ~= "true" and s ~= "false" then
      usage_error(("--%s: true or false expected, got '%s'"):format(p[1], s))
    end
    return s == "true"
  elseif t == "json" or t == "objects" or t == "object" then
    local v, err = core.json_decode(s)
    if v == nil then usage_error(("--%s: JSON expected (%s)"):format(p[1], tostring(err))) end
    return v
  end
  return s
end

-- one value of a list of URLs: never two URLs glued by a comma
local function one_url(flag, s)
  local at = s:find(",%s*[hH][tT][tT][pP][sS]?://")
  if at then
    usage_error(("--%s: '%s' holds another URL after a comma; give each with its own --%s " ..
      "(or one per line with --urls-from FILE); commas inside a URL are kept"):format(flag, s, flag))
  end
  return s
end

local function read_lines(flag, path)
  local f, err
  if path == "-" then f = io.stdin else f, err = io.open(path, "r") end
  if not f then usage_error(("--%s: cannot read %s (%s)"):format(flag, path, tostring(err))) end
  local out = {}
  for line in f:lines() do
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" and not line:match("^#") then out[#out + 1] = one_url(flag, line) end
  end
  if f ~= io.stdin then f:close() end
  return out
end
M.read_lines = read_lines -- (cdnkit queue add --urls-from)

-- the client's options a flag may set: the vendor's own and its credentials
local function client_option_names(vendor)
  local A = require("cdnkit.adapter").get(vendor)
  local names = {}
  for k in pairs(A.options) do names[k] = true end
  for _, list in ipairs { A.credentials, A.credentials_alt or {} } do
    for _, c in ipairs(list) do names[c[1]] = true end
  end
  return names
end

-- a Lua error message without the "file:line: " position, for people, and
-- the library's advice in the command's words
local function plain(msg, vendor)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", ""):gsub("^cdnkit%.api: ", ""):gsub("^cdnkit: ", "")
    :gsub('create the client with version = "([^"]+)"', "add --version-api %1")
    :gsub('%(cdnkit%.(%w+){ version = "([^"]+)" }%)', "(--version-api %2)")
    :gsub('see client:help%("([^"]+)"%)', "see cdnkit " .. tostring(vendor) .. " help %1")
    :gsub("%(client:refresh/prefetch split big lists for you%)",
      "(cdnkit " .. tostring(vendor) .. " refresh --urls-from FILE splits big lists for you)")
    :gsub("%(client:refresh splits for you%)", "(cdnkit " .. tostring(vendor) .. " refresh splits for you)"))
end

-- the structured error as one JSON object (for --output json)
local function error_json(err)
  local t = {}
  for _, k in ipairs { "vendor", "action", "code", "message", "http_status", "request_id",
                       "retryable", "hint", "page" } do
    t[k] = err[k]
  end
  return core.json_encode({ error = t })
end

local function tracer(ewrite)
  return function(ev)
    if ev.event == "request" and ev.request then
      local r = ev.request
      local h = {}
      for k, v in pairs(r.headers or {}) do h[#h + 1] = "  " .. k .. ": " .. tostring(v) end
      table.sort(h)
      ewrite(("> %s %s %s\n%s\n%s"):format(ev.action or "", r.method or "", r.url or "", table.concat(h, "\n"),
        r.body and ("  " .. r.body:sub(1, 2000) .. "\n") or ""))
    elseif ev.event == "response" then
      ewrite(("< %s HTTP %s, %d bytes\n  %s\n"):format(ev.action or "", tostring(ev.status),
        #(ev.body or ""), (ev.body or ""):sub(1, 2000)))
    elseif ev.event == "error" and ev.error then
      ewrite(("! %s %s\n"):format(ev.action or "", tostring(ev.error)))
    end
  end
end

---------------------------------------------------------------------------
-- the parts of one command line

local VERSION_LINE = function()
  return ("cdnkit %s (%s; %s)"):format(cdnkit.VERSION, _VERSION, core.curl_version and core.curl_version() or "libcurl")
end

local function usage_text()
  return "usage: cdnkit <vendor> <Action> [--Param value ...] [--all] [--output json|table|raw]\n" ..
    "       cdnkit <vendor> refresh|prefetch [--urls U ...] [--dirs D ...] [--urls-from FILE|-]\n" ..
    "              [--dirs-from FILE|-] [--concurrency N] [--wait] [--timeout S] [--save FILE] [--dry-run]\n" ..
    "       cdnkit wait FILE [--timeout S] [--interval S]      (a report saved with --save)\n" ..
    "       cdnkit <vendor> help [Action]\n" ..
    "       cdnkit repl [--emu] [--profile NAME]                (a Lua REPL with a client per vendor)\n" ..
    "       cdnkit queue add|run|status|dead|redrive ...         (the fleet purge queue on Redis)\n" ..
    "       cdnkit --version | --help\n\n" ..
    "Common flags: --version-api V (the vendor's API version; default its current one),\n" ..
    "  --endpoint URL (or CDNKIT_<VENDOR>_ENDPOINT), --region R, --profile NAME, --trace (or\n" ..
    "  CDNKIT_TRACE=1), credentials as --<option> (--secret-id, --access-key-id, ...; qcloud also\n" ..
    "  -u ID -p KEY), then the environment, then ~/.config/cdnkit/credentials.\n" ..
    "Exit status: 0 ok, 1 runtime failure (some URLs failed too), 2 usage, 3 --wait timed out.\n\n" ..
    "vendors: " .. table.concat(cdnkit.vendors(), ", ") .. "\n"
end

local function print_help(vendor, action, write, version)
  local helptext = require "cdnkit.helptext"
  local alias = VERSION_ALIAS[vendor] and VERSION_ALIAS[vendor][version or ""]
  if alias then version = alias end
  local okv, api = pcall(cdnkit.api, vendor, version)
  if not okv then usage_error((tostring(api):gsub("^[^\n]-:%d+: ", ""))) end
  if not action then
    write(helptext.list(vendor, api) .. "\n")
    write("\n  refresh / prefetch: cdnkit " .. vendor .. " refresh --urls U [--dirs D] [--wait]\n")
    return
  end
  local names = {}
  for _, a in ipairs(api.actions) do
    if a.name == action then
      write(helptext.action(vendor, api, a, "--") .. "\n")
      return
    end
    names[#names + 1] = a.name
  end
  local A = require("cdnkit.adapter").get(vendor)
  local V = require("cdnkit.adapter").version(A, api.api_version)
  local moved = V and require("cdnkit.client").moved_hint(A, V, action)
  if moved then usage_error(plain(moved, vendor)) end
  usage_error(vendor .. " has no action " .. action .. suggest.hint(action, names) ..
    " (cdnkit " .. vendor .. " help lists them)")
end

-- the API data the flags ask for (--version-api, else the vendor's default)
local function api_of(vendor, flags)
  local alias = VERSION_ALIAS[vendor] and VERSION_ALIAS[vendor][flags["version-api"] or ""]
  if alias then flags["version-api"] = alias end
  local ok, api = pcall(cdnkit.api, vendor, flags["version-api"])
  if not ok then usage_error(plain(api, vendor)) end
  return api
end

-- build the client from the flags; returns client, options used
local function make_client(vendor, flags, copts, ewrite)
  local o = {}
  for k, v in pairs(copts) do o[k] = v end
  o.endpoint = flags.endpoint or o.endpoint
  if not o.endpoint then
    local e = os.getenv("CDNKIT_" .. vendor:upper() .. "_ENDPOINT")
    if e and e ~= "" then o.endpoint = e end
  end
  o.method, o.version, o.signature, o.profile = flags.method, flags["version-api"], flags.signature, flags.profile
  if flags.region then
    local A = require("cdnkit.adapter").get(vendor)
    if not A.options.region then
      usage_error(("--region: %s takes no region (its API has one endpoint; --endpoint changes it)"):format(vendor))
    end
    o.region = flags.region
  end
  if flags.trace or os.getenv("CDNKIT_TRACE") == "1" then o.trace = tracer(ewrite) end
  if flags.raw_capture then
    local inner = o.trace
    o.trace = function(ev)
      if ev.event == "response" then flags.raw_body = ev.body end
      if inner then inner(ev) end
    end
  end
  local ok, c = pcall(cdnkit[vendor], o)
  if not ok then usage_error(plain(c, vendor)) end
  return c
end

-- flags after the vendor -> action (or subcommand), flags, client options,
-- parameter tokens still to resolve against the action
local function split(vendor, args)
  local toks = tokens(args, 2)
  local action, extra_pos = nil, {}
  for _, t in ipairs(toks) do
    if t.pos then
      if not action then action = t.pos else extra_pos[#extra_pos + 1] = t.pos end
    end
  end
  local flags, copts, rest = { urls = {}, dirs = {} }, {}, {}
  local copt_names = client_option_names(vendor)
  for _, t in ipairs(toks) do
    if t.flag then
      local f = t.flag
      -- (a one-dash flag may be a glued secret, -pKEY: never echoed whole)
      local shown = t.dash == 1 and ("-" .. f:sub(1, 1) .. (#f > 1 and "..." or "")) or ("--" .. f)
      if t.missing then usage_error(shown .. " needs a value") end
      if t.dash == 1 and (f == "u" or f == "p") then
        if vendor ~= "qcloud" then
          usage_error(("-%s is the Tencent tool's flag; %s takes --%s"):format(f, vendor,
            f == "u" and "its key id option" or "its secret option"))
        end
        copts[f == "u" and "secret_id" or "secret_key"] = t.value
      elseif t.dash == 2 and BOOL[f] then
        flags[f] = true
      elseif t.dash == 2 and (f == "urls" or f == "dirs") and (action == "refresh" or action == "prefetch") then
        table.insert(flags[f], one_url(f, t.value))
      elseif t.dash == 2 and OWN[f] and f ~= "urls" and f ~= "dirs" then
        flags[f] = t.value
      else
        -- an action parameter, or a client option (credentials, the
        -- vendor's own) where the action has no parameter of that name:
        -- resolved against the action's data
        rest[#rest + 1] = t
      end
    end
  end
  flags.output = flags.json and "json" or flags.output
  if flags.output and flags.output ~= "json" and flags.output ~= "table" and flags.output ~= "raw" then
    usage_error("--output: json, table or raw, got '" .. flags.output .. "'")
  end
  return action, extra_pos, flags, copts, rest, copt_names
end

-- resolve the remaining flags against the action's parameters (or client options)
local function resolve(vendor, c_params, c_list, rest, copts, copt_names, what, version_flag)
  local params = {}
  for _, t in ipairs(rest) do
    local f = t.flag
    local p = c_params[f]
    if p then
      local v = convert(p, t.value)
      if p[2] == "list" then
        if p.format == "url" and type(v) == "string" then one_url(f, v) end
        params[f] = params[f] or {}
        table.insert(params[f], v)
      else
        params[f] = v
      end
    elseif t.dash == 2 and copt_names[(f:gsub("%-", "_"))] then
      copts[(f:gsub("%-", "_"))] = t.value
    else
      local cands = {}
      for _, n in ipairs(c_list) do cands[#cands + 1] = n end
      for n in pairs(copt_names) do cands[#cands + 1] = n end
      for _, n in ipairs(OWN_LIST) do cands[#cands + 1] = n end
      local shown = t.dash == 1 and (f:sub(1, 1) .. (#f > 1 and "..." or "")) or f
      usage_error(("%s has no parameter %s%s%s (cdnkit %s%s help %s)"):format(what,
        t.dash == 1 and "-" or "--", shown, t.dash == 1 and "" or suggest.hint(f, cands), vendor,
        version_flag or "", what))
    end
  end
  return params
end

local function report_data(r)
  local ok, rep = pcall(require, "cdnkit.report")
  if ok then return rep.to_data(r) end
  return { vendor = r.vendor, ok = r.ok, done = r.done, batches = r.batches, task_ids = r.task_ids }
end

local function plural(n, one, many) return n .. " " .. (n == 1 and one or many) end

-- (the total is what was sent or refused: duplicates were removed first)
local function summary_line(r)
  local failed = 0
  for _, f in ipairs(r.failed) do failed = failed + #f.urls end
  return ("%s: %d of %d accepted in %s, %s%s"):format(r.vendor, r.done, r.done + failed,
    plural(r.batches, "call", "calls"), plural(#r.task_ids, "task", "tasks"),
    #r.failed > 0 and (", " .. plural(#r.failed, "batch", "batches") .. " FAILED") or "")
end

local function progress_bar(ewrite)
  local last = -1
  return function(done, total)
    local pct = total > 0 and math.floor(done * 100 / total) or 100
    if pct ~= last then
      last = pct
      local w = 30
      local fill = math.floor(w * pct / 100)
      ewrite(("\r[%s%s] %3d%%  %d/%d URLs"):format(string.rep("#", fill), string.rep(".", w - fill), pct, done, total))
      if done >= total then ewrite("\n") end
    end
  end
end

-- wait on a report; prints the status, returns the exit status
local function wait_and_print(report, flags, write, ewrite)
  local timeout = tonumber(flags.timeout or 600)
  local interval = tonumber(flags.interval or 5)
  if not timeout or timeout < 0 then usage_error("--timeout: seconds >= 0 expected") end
  if not interval or interval <= 0 then usage_error("--interval: seconds > 0 expected") end
  local sum = report:wait { timeout = timeout, interval = interval }
  local line = sum.complete and "complete" or
    ("not complete: %d done, %d running, %d failed tasks, %d failed batches%s"):format(#sum.done, #sum.running,
      #sum.failed, sum.failed_batches or 0, sum.untracked > 0 and (", " .. sum.untracked .. " untracked") or "")
  ewrite(report.vendor .. ": " .. line .. "\n")
  if sum.untracked_reason then ewrite("  " .. sum.untracked_reason .. "\n") end
  for _, e in ipairs(sum.errors or {}) do ewrite("  " .. tostring(e) .. "\n") end
  local function arr(t) return setmetatable(t or {}, core.array_mt) end
  write(M.format({ complete = sum.complete, done = arr(sum.done), running = arr(sum.running),
                   failed = arr(sum.failed), untracked = sum.untracked, timed_out = sum.timed_out,
                   untracked_reason = sum.untracked_reason }, flags.output or "json") .. "\n")
  if #sum.failed > 0 or (sum.failed_batches or 0) > 0 then return 1 end
  if sum.timed_out and #sum.running > 0 then return 3 end
  return 0
end

local function cmd_batch(vendor, kind, flags, copts, rest, copt_names, write, ewrite)
  local urls, dirs = flags.urls, flags.dirs
  -- the wait's flags are checked before anything is sent
  if flags.timeout and not (tonumber(flags.timeout) and tonumber(flags.timeout) >= 0) then
    usage_error("--timeout: seconds >= 0 expected, got '" .. flags.timeout .. "'")
  end
  if flags.interval and not (tonumber(flags.interval) and tonumber(flags.interval) > 0) then
    usage_error("--interval: seconds > 0 expected, got '" .. flags.interval .. "'")
  end
  if flags["urls-from"] then for _, u in ipairs(read_lines("urls-from", flags["urls-from"])) do urls[#urls + 1] = u end end
  if flags["dirs-from"] then for _, u in ipairs(read_lines("dirs-from", flags["dirs-from"])) do dirs[#dirs + 1] = u end end
  if kind == "prefetch" and #dirs > 0 then usage_error("prefetch takes URLs only (no --dirs)") end
  if #urls == 0 and #dirs == 0 then
    usage_error(kind .. " needs --urls, --dirs, --urls-from FILE or --dirs-from FILE")
  end
  -- the vendor's purge parameters (ObjectType, Force, FlushType, urlAction, ...)
  local api = api_of(vendor, flags)
  local byname, names = {}, {}
  for _, a in ipairs(api.actions) do
    if a.batch and (a.batch.kind == (kind == "prefetch" and "prefetch" or "refresh_url") or
       (kind == "refresh" and a.batch.kind == "refresh_dir")) then
      for _, q in ipairs(a.params or {}) do
        if q[1] ~= a.batch.param and q[1] ~= a.batch.dir_param and not byname[q[1]] then
          byname[q[1]] = q; names[#names + 1] = q[1]
        end
      end
    end
  end
  local params = resolve(vendor, byname, names, rest, copts, copt_names, kind)
  local c = make_client(vendor, flags, copts, ewrite)
  local conc = flags.concurrency and tonumber(flags.concurrency)
  if flags.concurrency and not conc then usage_error("--concurrency: a number expected") end
  local opts = { urls = #urls > 0 and urls or nil, dirs = kind == "refresh" and #dirs > 0 and dirs or nil,
                 concurrency = conc, params = next(params) and params or nil, dry_run = flags["dry-run"] or nil }
  if kind == "refresh" and not opts.urls and not opts.dirs then opts.urls = {} end
  if not flags["dry-run"] and isatty(2) then
    opts.progress = progress_bar(ewrite)
  end
  local okr, report = pcall(c[kind], c, opts)
  if not okr then usage_error(plain(report, vendor)) end
  if flags["dry-run"] then
    local needed = {}
    for k, n in pairs(report.needed or {}) do needed[#needed + 1] = ("%d %s"):format(n, k:gsub("_", " ")) end
    table.sort(needed)
    ewrite(("%s: dry run, nothing sent: %d calls; needs %s of today's quota\n"):format(vendor, #report.batches,
      #needed > 0 and table.concat(needed, ", ") or "nothing"))
    write(M.format(report, flags.output or "json") .. "\n")
    return 0
  end
  ewrite(summary_line(report) .. "\n")
  for _, f in ipairs(report.failed) do
    ewrite(("  %d URLs not %s: %s\n"):format(#f.urls, kind == "prefetch" and "prefetched" or "purged", tostring(f.err)))
  end
  if flags.save then
    local okw, err = pcall(require("cdnkit.report").save, report, flags.save)
    if not okw then ewrite("cdnkit: cannot save the report: " .. plain(err) .. "\n"); return 1 end
  end
  if flags.wait then
    local st = wait_and_print(report, flags, write, ewrite)
    if not report.ok then return 1 end
    return st
  end
  write(M.format(report_data(report), flags.output or "json") .. "\n")
  return report.ok and 0 or 1
end

local function cmd_wait(args, write, ewrite)
  local path = args[2]
  if not path or path:match("^%-") then usage_error("usage: cdnkit wait FILE [--timeout S] [--interval S]") end
  local f, ferr = io.open(path, "r")
  if not f then usage_error("wait: cannot read " .. tostring(ferr)) end
  local data = core.json_decode(f:read("*a") or "")
  f:close()
  if type(data) ~= "table" or type(data.vendor) ~= "string" then
    usage_error("wait: " .. path .. " is not a report saved with --save")
  end
  local vendor = data.vendor
  local sub = { vendor }
  for i = 3, #args do sub[#sub + 1] = args[i] end
  local _, _, flags, copts, rest, copt_names = split(vendor, sub)
  resolve(vendor, {}, {}, rest, copts, copt_names, "wait")
  flags["version-api"] = flags["version-api"] or data.version
  if not flags.endpoint and data.endpoint then flags.endpoint = data.endpoint end
  local c = make_client(vendor, flags, copts, ewrite)
  local okl, report = pcall(cdnkit.load_report, path, c)
  if not okl then usage_error(plain(report)) end
  return wait_and_print(report, flags, write, ewrite)
end

--- Run the CLI with `args`; returns the exit status.
function M.main(args, write, ewrite)
  write = write or io.write
  ewrite = ewrite or function(s) io.stderr:write(s) end
  local ok, status = pcall(function()
    local vendor = args[1]
    if vendor == "help" or vendor == "--help" or vendor == "-h" then
      write(usage_text())
      return 0
    end
    if vendor == "--version" or vendor == "version" then
      write(VERSION_LINE() .. "\n")
      return 0
    end
    if vendor == nil then
      ewrite(usage_text())
      return 2
    end
    if vendor == "repl" then
      local okr, repl = pcall(require, "cdnkit.repl")
      if not okr then usage_error("the REPL is not in this installation (" .. tostring(repl) .. ")") end
      local rest = {}
      for i = 2, #args do rest[#rest + 1] = args[i] end
      return repl.main(rest) or 0
    end
    if vendor == "wait" then return cmd_wait(args, write, ewrite) end
    if vendor == "queue" then
      local rest = {}
      for i = 2, #args do rest[#rest + 1] = args[i] end
      return require("cdnkit.queue.cli").main(rest, write, ewrite, make_client)
    end
    local known = false
    for _, v in ipairs(cdnkit.vendors()) do if v == vendor then known = true end end
    if vendor == "tencent" then vendor, known = "qcloud", true end
    if not known then
      usage_error("unknown vendor '" .. vendor .. "'" .. suggest.hint(vendor, cdnkit.vendors()) ..
        " (" .. table.concat(cdnkit.vendors(), ", ") .. ")")
    end
    local action, extra_pos, flags, copts, rest, copt_names = split(vendor, args)
    if flags.help or action == nil or action == "help" then
      print_help(vendor, extra_pos[1], write, flags["version-api"])
      return 0
    end
    if #extra_pos > 0 then
      usage_error("unexpected argument '" .. extra_pos[1] .. "'" ..
        (extra_pos[1]:find(",", 1, true) and "" or " (flags are --name value)"))
    end
    if action == "refresh" or action == "prefetch" then
      return cmd_batch(vendor, action, flags, copts, rest, copt_names, write, ewrite)
    end
    -- an action: its parameters from the API data, then the client
    local api = api_of(vendor, flags)
    local found, names = false, {}
    for _, a in ipairs(api.actions) do
      if a.name == action then found = true end
      names[#names + 1] = a.name
    end
    for _, verb in ipairs { "refresh", "prefetch", "help" } do names[#names + 1] = verb end
    if not found then
      local A = require("cdnkit.adapter").get(vendor)
      local V = require("cdnkit.adapter").version(A, api.api_version) or
        require("cdnkit.adapter").version(A, A.default_version)
      local moved = V and require("cdnkit.client").moved_hint(A, V, action)
      usage_error(moved and plain(moved, vendor) or
        (vendor .. " has no action " .. action .. suggest.hint(action, names) ..
          " (cdnkit " .. vendor .. " help lists them)"))
    end
    local byname, list = params_of(api, action)
    local params = resolve(vendor, byname, list, rest, copts, copt_names, action,
      flags["version-api"] and (" --version-api " .. flags["version-api"]) or nil)
    if flags.output == "raw" then flags.raw_capture = true end
    local c = make_client(vendor, flags, copts, ewrite)
    local out_as = flags.output or (isatty(1) and "table" or "json")
    if flags.all and out_as == "raw" then
      usage_error("--output raw is one answer's body as received; with --all use --output json")
    end
    if flags.all then
      local items = setmetatable({}, core.array_mt)
      local okr, err = pcall(function()
        for it in c:each(action, params) do items[#items + 1] = it end
      end)
      if not okr then
        if type(err) == "table" and err.code then
          ewrite((out_as == "json" and error_json(err) or ("cdnkit: " .. tostring(err))) .. "\n")
          return 1
        end
        usage_error(plain(err, vendor))
      end
      write(M.format(items, out_as == "raw" and "json" or out_as) .. "\n")
      return 0
    end
    local okr, res, err = pcall(function() return c[action](c, params) end)
    if not okr then usage_error(plain(res, vendor)) end
    if res == nil then
      ewrite((out_as == "json" and error_json(err) or ("cdnkit: " .. tostring(err))) .. "\n")
      return 1
    end
    if out_as == "raw" then
      write((flags.raw_body or core.json_encode(res)) .. "\n")
    else
      write(M.format(res, out_as) .. "\n")
    end
    c:close()
    return 0
  end)
  if ok then return status end
  if type(status) == "table" and status.usage then
    ewrite("cdnkit: " .. tostring(status.usage):gsub("^cdnkit: ", "") .. "\n")
    return 2
  end
  ewrite("cdnkit: " .. tostring(status) .. "\n")
  return 1
end

return M
