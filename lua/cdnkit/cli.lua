-- cdnkit.cli: the `cdnkit` command.
--   cdnkit <vendor> <Action> [--Param value ...] [--all] [--json] [--endpoint URL]
--   cdnkit <vendor> help [Action]
--   cdnkit help
-- Credentials come from the environment (see README).  Flags are generated
-- from the API data: a list parameter repeats its flag (--urls a --urls b),
-- a JSON parameter takes JSON text.  Exit status: 0 ok, 1 runtime failure,
-- 2 usage mistake.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"

local M = {}

local function usage_error(msg)
  error({ usage = msg }, 0)
end

local function pretty(v, indent, out)
  indent = indent or ""
  if type(v) ~= "table" then
    if v == core.null then out[#out + 1] = "null"
    elseif type(v) == "string" then out[#out + 1] = string.format("%q", v)
    else out[#out + 1] = tostring(v) end
    return
  end
  local keys, n = {}, #v
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  if n == 0 and #keys == 0 then
    out[#out + 1] = getmetatable(v) == core.array_mt and "[]" or "{}"
    return
  end
  out[#out + 1] = "{\n"
  local inner = indent .. "  "
  for i = 1, n do
    out[#out + 1] = inner
    pretty(v[i], inner, out)
    out[#out + 1] = ",\n"
  end
  for _, k in ipairs(keys) do
    out[#out + 1] = inner .. tostring(k) .. " = "
    pretty(v[k], inner, out)
    out[#out + 1] = ",\n"
  end
  out[#out + 1] = indent .. "}"
end

function M.format(v, as_json)
  if as_json then return core.json_encode(v) end
  local out = {}
  pretty(v, "", out)
  return table.concat(out)
end

local function convert(p, s, action)
  local t = p[2]
  if t == "integer" or t == "number" or (t == "list" and p.item == "integer") then
    local n = tonumber(s)
    if not n then usage_error(("--%s: a number expected, got '%s'"):format(p[1], s)) end
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

local function parse_params(c, action, args, i)
  local h = c:help(action)
  local byname = {}
  for _, p in ipairs(cdnkit.api(c:vendor(), c:version()).actions) do
    if p.name == action then
      for _, q in ipairs(p.params or {}) do byname[q[1]] = q end
    end
  end
  local params, flags = {}, {}
  while i <= #args do
    local a = args[i]
    if a == "--all" or a == "--json" then
      flags[a:sub(3)] = true
      i = i + 1
    elseif a:match("^%-%-") then
      local name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local value = inline
      if value == nil then
        value = args[i + 1]
        i = i + 1
      end
      i = i + 1
      if name == "endpoint" or name == "method" or name == "version-api" or name == "signature" then
        flags[name] = value
      else
        local p = byname[name]
        if not p then
          usage_error(("%s has no parameter --%s (cdnkit %s help %s)"):format(action, name, c:vendor(), action))
        end
        if value == nil then usage_error("--" .. name .. " needs a value") end
        local v = convert(p, value, action)
        if p[2] == "list" then
          params[name] = params[name] or {}
          table.insert(params[name], v)
        else
          params[name] = v
        end
      end
    else
      usage_error("unexpected argument '" .. a .. "'")
    end
  end
  return params, flags, h
end

local function print_help(vendor, action, write, version)
  local helptext = require "cdnkit.helptext"
  local okv, api = pcall(cdnkit.api, vendor, version)
  if not okv then usage_error((tostring(api):gsub("^[^\n]-:%d+: ", ""))) end
  if not action then
    write(helptext.list(vendor, api) .. "\n")
    return
  end
  for _, a in ipairs(api.actions) do
    if a.name == action then
      write(helptext.action(vendor, api, a, "--") .. "\n")
      return
    end
  end
  usage_error(vendor .. " has no action " .. action .. " (cdnkit " .. vendor .. " help lists them)")
end

-- a Lua error message without the "file:line: " position, for people, and
-- the library's advice in the command's words
local function plain(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", "")
    :gsub('create the client with version = "([^"]+)"', "add --version-api %1")
    :gsub('%(cdnkit%.(%w+){ version = "([^"]+)" }%)', "(--version-api %2)"))
end

-- the structured error as one JSON object (for --json)
local function error_json(err)
  local t = {}
  for _, k in ipairs { "vendor", "action", "code", "message", "http_status", "request_id",
                       "retryable", "hint", "page" } do
    t[k] = err[k]
  end
  return core.json_encode({ error = t })
end

--- Run the CLI with `args`; returns the exit status.
function M.main(args, write, ewrite)
  write = write or io.write
  ewrite = ewrite or function(s) io.stderr:write(s) end
  local ok, status = pcall(function()
    local vendor, action = args[1], args[2]
    local usage = "usage: cdnkit <vendor> <Action> [--Param value ...] [--all] [--json] [--endpoint URL]\n" ..
      "       [--version-api V] (the vendor's API version; default its current one)\n" ..
      "       [--signature v3|v2] (Alibaba 2018-05-10: the signing scheme; default v3)\n" ..
      "       cdnkit <vendor> help [Action]\n\nvendors: " .. table.concat(cdnkit.vendors(), ", ") .. "\n"
    if vendor == "help" or vendor == "--help" or vendor == "-h" then
      write(usage)
      return 0
    end
    if vendor == nil then
      ewrite(usage)
      return 2
    end
    local known = false
    for _, v in ipairs(cdnkit.vendors()) do if v == vendor then known = true end end
    if not known then usage_error("unknown vendor '" .. vendor .. "' (" .. table.concat(cdnkit.vendors(), ", ") .. ")") end
    -- flags needed before the client exists: endpoint, method, API version, signature
    local pre = {}
    local PRE = { endpoint = "endpoint", method = "method", ["version-api"] = "version",
                  signature = "signature" }
    for i = 2, #args do
      local k, v = args[i]:match("^%-%-([%w-]+)=(.*)$")
      if k and PRE[k] then pre[PRE[k]] = v end
      k = args[i]:match("^%-%-([%w-]+)$")
      if k and PRE[k] then pre[PRE[k]] = args[i + 1] end
    end
    if action == nil or action == "help" then
      print_help(vendor, args[3] and not args[3]:match("^%-%-") and args[3] or nil, write, pre.version)
      return 0
    end
    local okc, c = pcall(cdnkit[vendor], { endpoint = pre.endpoint, method = pre.method,
                                           version = pre.version, signature = pre.signature })
    if not okc then usage_error(plain(c)) end
    local okp, params, flags = pcall(parse_params, c, action, args, 3)
    if not okp then
      if type(params) == "table" then error(params, 0) end
      usage_error(plain(params))
    end
    if flags.all then
      local items = setmetatable({}, core.array_mt)
      local okr, err = pcall(function()
        for it in c:each(action, params) do items[#items + 1] = it end
      end)
      if not okr then
        if type(err) == "table" and err.code then
          ewrite((flags.json and error_json(err) or ("cdnkit: " .. tostring(err))) .. "\n")
          return 1
        end
        usage_error(plain(err))
      end
      write(M.format(items, flags.json) .. "\n")
      return 0
    end
    local okr, res, err = pcall(function() return c[action](c, params) end)
    if not okr then usage_error(plain(res)) end
    if res == nil then
      ewrite((flags.json and error_json(err) or ("cdnkit: " .. tostring(err))) .. "\n")
      return 1
    end
    write(M.format(res, flags.json) .. "\n")
    c:close()
    return 0
  end)
  if ok then return status end
  if type(status) == "table" and status.usage then
    ewrite("cdnkit: " .. status.usage .. "\n")
    return 2
  end
  ewrite("cdnkit: " .. tostring(status) .. "\n")
  return 1
end

return M
