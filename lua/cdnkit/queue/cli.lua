-- cdnkit.queue.cli: `cdnkit queue ...`, the fleet purge queue from the shell.
--   cdnkit queue add ACCOUNT [--urls U ...] [--dirs D ...] [--prefetch P ...]
--                            [--urls-from FILE|-] [--dirs-from FILE|-]
--   cdnkit queue run [ACCOUNT[=VENDOR[@PROFILE]] ...] [--consumer NAME] [--concurrency N]
--                    [--rate N] [--read N] [--claim-idle S] [--max-attempts N]
--                    [--utc-offset H] [--block S] [--no-quota] [--drain] [--duration S] [--quiet]
--   cdnkit queue status [ACCOUNT] [--output json|table]
--   cdnkit queue dead ACCOUNT [--count N]
--   cdnkit queue redrive ACCOUNT [--count N]
-- Every command: --redis HOST:PORT (or CDNKIT_REDIS; default 127.0.0.1:6379),
-- --redis-db N, --queue NAME (or CDNKIT_QUEUE; default "purge"), --window S.
-- A flusher's clients read credentials as the library does (environment,
-- then the profile file), and CDNKIT_<VENDOR>_ENDPOINT.
local core = require "cdnkit.core"
local queue = require "cdnkit.queue"

local M = {}

local function usage(msg) error({ usage = msg }, 0) end

M.USAGE = "usage: cdnkit queue add ACCOUNT [--urls U ...] [--dirs D ...] [--prefetch P ...]\n" ..
  "                  [--urls-from FILE|-] [--dirs-from FILE|-]\n" ..
  "       cdnkit queue run [ACCOUNT[=VENDOR[@PROFILE]] ...] [--consumer NAME] [--concurrency N]\n" ..
  "                  [--rate N] [--read N] [--claim-idle S] [--max-attempts N] [--utc-offset H]\n" ..
  "                  [--block S] [--no-quota] [--drain] [--duration S] [--quiet]\n" ..
  "       cdnkit queue status [ACCOUNT] [--output json|table]\n" ..
  "       cdnkit queue dead ACCOUNT [--count N]\n" ..
  "       cdnkit queue redrive ACCOUNT [--count N]\n" ..
  "  every command: --redis HOST:PORT (or CDNKIT_REDIS; 127.0.0.1:6379), --redis-db N,\n" ..
  "  --queue NAME (or CDNKIT_QUEUE; \"purge\"), --window S (the fleet de-dup window, 60)\n" ..
  "  ACCOUNT names a vendor account; in `run` it is VENDOR unless written ACCOUNT=VENDOR.\n"

local BOOL = { drain = true, quiet = true, ["no-quota"] = true, help = true }
local LIST = { urls = true, dirs = true, prefetch = true }
local VALUE = { redis = true, ["redis-db"] = true, queue = true, window = true, consumer = true,
                concurrency = true, rate = true, read = true, ["claim-idle"] = true,
                ["max-attempts"] = true, ["utc-offset"] = true, duration = true, output = true,
                count = true, ["urls-from"] = true, ["dirs-from"] = true, block = true }

local function parse(args)
  local flags, pos = { urls = {}, dirs = {}, prefetch = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      if BOOL[name] then
        if inline then usage("--" .. name .. " takes no value") end
        flags[name] = true
      elseif LIST[name] or VALUE[name] then
        local v = inline
        if v == nil then
          i = i + 1
          v = args[i]
          if v == nil then usage("--" .. name .. " needs a value") end
        end
        if LIST[name] then table.insert(flags[name], v) else flags[name] = v end
      else
        usage("queue: unknown flag --" .. name .. "\n" .. M.USAGE)
      end
    elseif a:match("^%-") and a ~= "-" then
      usage("queue: unknown flag " .. a .. "\n" .. M.USAGE)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return flags, pos
end

local function number(flags, name, integer)
  local v = flags[name]
  if v == nil then return nil end
  local n = tonumber(v)
  if not n or n < 0 or (integer and n % 1 ~= 0) then
    usage(("--%s: %s expected, got '%s'"):format(name, integer and "a whole number" or "a number", v))
  end
  if integer and math.tointeger then n = math.tointeger(n) end
  return n
end

local function open_queue(flags)
  local spec = flags.redis or os.getenv("CDNKIT_REDIS") or "127.0.0.1:6379"
  local host, port = spec:match("^%[?([^%]]*)%]?:(%d+)$")
  if not host then host, port = spec, "6379" end
  if host == "" then usage("--redis: HOST:PORT expected, got '" .. spec .. "'") end
  local ok, q = pcall(queue.new, {
    redis = { host = host, port = tonumber(port), db = number(flags, "redis-db", true),
              password = os.getenv("CDNKIT_REDIS_PASSWORD") },
    name = flags.queue or os.getenv("CDNKIT_QUEUE") or nil,
    window = number(flags, "window", true),
  })
  if not ok then usage((tostring(q):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  return q
end

-- one URL per line, # comments (the CLI's own reader: usage errors alike)
local function read_lines(flag, path)
  return require("cdnkit.cli").read_lines(flag, path)
end

local function fail(ewrite, what, err)
  ewrite(("cdnkit queue %s: %s\n"):format(what, tostring(err and err.message or err)))
  return 1
end

local function cmd_add(flags, pos, write, ewrite)
  local account = pos[1]
  if not account or pos[2] then usage("usage: cdnkit queue add ACCOUNT [--urls U ...] [--dirs D ...] [--prefetch P ...]") end
  if flags["urls-from"] then
    for _, u in ipairs(read_lines("urls-from", flags["urls-from"])) do table.insert(flags.urls, u) end
  end
  if flags["dirs-from"] then
    for _, u in ipairs(read_lines("dirs-from", flags["dirs-from"])) do table.insert(flags.dirs, u) end
  end
  if #flags.urls + #flags.dirs + #flags.prefetch == 0 then usage("queue add: nothing to queue (--urls, --dirs, --prefetch)") end
  local q = open_queue(flags)
  local ok, n, err = pcall(q.add, q, account, { urls = flags.urls, dirs = flags.dirs, prefetch = flags.prefetch })
  if not ok then usage((tostring(n):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  if not n then return fail(ewrite, "add", err) end
  if not flags.quiet then write(("queued %d for %s\n"):format(n, account)) end
  return 0
end

-- ACCOUNT[=VENDOR[@PROFILE]] -> account, vendor, profile
local function account_spec(s, vendors)
  local account, vendor, profile = s, s, nil
  local a, r = s:match("^([^=]+)=(.+)$")
  if a then account, vendor = a, r end
  local v, p = vendor:match("^([^@]+)@(.+)$")
  if v then
    vendor, profile = v, p
    if not a then account = v end
  end
  if not vendors[vendor] then
    usage(("queue run: '%s' names no vendor (%s); write ACCOUNT=VENDOR"):format(vendor,
      table.concat(require("cdnkit").vendors(), ", ")))
  end
  return account, vendor, profile
end

local function cmd_run(flags, pos, write, ewrite, make_client)
  local cdnkit = require "cdnkit"
  local vendors = {}
  for _, v in ipairs(cdnkit.vendors()) do vendors[v] = true end
  if #pos == 0 then usage("queue run: name the accounts to flush (ACCOUNT[=VENDOR[@PROFILE]] ...)") end
  local q = open_queue(flags)
  local rate = number(flags, "rate")
  if rate == 0 then usage("--rate must be above 0") end
  local clients, names = {}, {}
  for _, s in ipairs(pos) do
    local account, vendor, profile = account_spec(s, vendors)
    -- --rate is the account's rate: the clients' own pacing takes it too
    clients[account] = make_client(vendor, { profile = profile }, { rate = rate }, ewrite)
    names[#names + 1] = account .. "=" .. vendor
  end
  local quiet = flags.quiet
  local function log(ev)
    if quiet then return end
    local parts = { os.date("!%Y-%m-%dT%H:%M:%SZ"), ev.event }
    for _, k in ipairs { "account", "kind", "urls", "entries", "parked", "dead", "error", "note" } do
      if ev[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(ev[k]) end
    end
    ewrite(table.concat(parts, " ") .. "\n")
  end
  local ok, f = pcall(q.flusher, q, {
    clients = clients, consumer = flags.consumer, concurrency = number(flags, "concurrency", true),
    rate = rate, read = number(flags, "read", true), claim_idle = number(flags, "claim-idle"),
    max_attempts = number(flags, "max-attempts", true), utc_offset = number(flags, "utc-offset"),
    block = number(flags, "block"), quota = not flags["no-quota"], on_event = log,
  })
  if not ok then usage((tostring(f):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  if not quiet then
    ewrite(("cdnkit queue run: consumer %s flushing %s\n"):format(f.consumer, table.concat(names, ", ")))
  end
  local okr, counts = pcall(f.run, f, { drain = flags.drain, duration = number(flags, "duration") })
  f:close()
  if not okr then return fail(ewrite, "run", counts) end
  write(core.json_encode(counts) .. "\n")
  return (counts.dead > 0) and 1 or 0
end

local function cmd_status(flags, pos, write, ewrite)
  local q = open_queue(flags)
  local s, err = q:status(pos[1])
  if not s then return fail(ewrite, "status", err) end
  local as = flags.output or "table"
  if as == "json" then
    write(core.json_encode(s) .. "\n")
  elseif as == "table" then
    local names = {}
    for a in pairs(s) do names[#names + 1] = a end
    table.sort(names)
    local cols = { "pending", "in_flight", "waiting", "dead_letters", "done", "deduped", "failed", "over_quota" }
    write(("%-20s"):format("account") .. table.concat((function()
      local t = {}
      for i, c in ipairs(cols) do t[i] = ("%13s"):format(c) end
      return t
    end)()) .. "\n")
    for _, a in ipairs(names) do
      local row = { ("%-20s"):format(a) }
      for _, c in ipairs(cols) do row[#row + 1] = ("%13d"):format(s[a][c] or 0) end
      write(table.concat(row) .. "\n")
    end
    if #names == 0 then write("(nothing queued yet)\n") end
  else
    usage("--output: json or table, got '" .. tostring(as) .. "'")
  end
  return 0
end

local function cmd_dead(flags, pos, write, ewrite)
  if not pos[1] then usage("usage: cdnkit queue dead ACCOUNT [--count N]") end
  local q = open_queue(flags)
  local rows, err = q:dead(pos[1], number(flags, "count", true))
  if not rows then return fail(ewrite, "dead", err) end
  write(core.json_encode(rows) .. "\n")
  return 0
end

local function cmd_redrive(flags, pos, write, ewrite)
  if not pos[1] then usage("usage: cdnkit queue redrive ACCOUNT [--count N]") end
  local q = open_queue(flags)
  local n, err = q:redrive(pos[1], number(flags, "count", true))
  if not n then return fail(ewrite, "redrive", err) end
  write(("queued %d dead letters again for %s\n"):format(n, pos[1]))
  return 0
end

--- `cdnkit queue <command> ...` (args after "queue"); make_client is the
-- CLI's (credentials and endpoints as for every other command)
function M.main(args, write, ewrite, make_client)
  local cmd = args[1]
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  if cmd == nil or cmd == "help" or cmd == "--help" then
    write(M.USAGE)
    return cmd == nil and 2 or 0
  end
  local flags, pos = parse(rest)
  if flags.help then write(M.USAGE); return 0 end
  if cmd == "add" then return cmd_add(flags, pos, write, ewrite) end
  if cmd == "run" then return cmd_run(flags, pos, write, ewrite, make_client) end
  if cmd == "status" then return cmd_status(flags, pos, write, ewrite) end
  if cmd == "dead" then return cmd_dead(flags, pos, write, ewrite) end
  if cmd == "redrive" then return cmd_redrive(flags, pos, write, ewrite) end
  usage("queue: unknown command '" .. tostring(cmd) .. "' (add, run, status, dead, redrive)\n" .. M.USAGE)
end

return M
