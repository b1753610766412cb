-- cdnkit.validate: checks one call's parameters against the declared API data
-- (lua/cdnkit/apis/<vendor>_<version>.lua) and flattens them to the
-- name -> string table that the signers take.  Each action is compiled once
-- into a plan (its parameters by name, the message prefix, its flags); the
-- API data itself is never written to.  Usage mistakes come back as an error
-- message; the caller raises it at the user's call site.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"

local M = {}

local tostring, type, pairs, ipairs = tostring, type, pairs, ipairs
local floor = math.floor
local concat, sort = table.concat, table.sort

-- documented text formats: patterns and field ranges
local function ranges_ok(y, mo, d, h, mi, se)
  mo, d = tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return false end
  if h and (tonumber(h) > 23 or tonumber(mi) > 59) then return false end
  if se and se ~= "" and tonumber(se) > 59 then return false end
  return true
end

local FORMATS = {
  date = { "YYYY-MM-DD", function(s)
    local y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    return y and ranges_ok(y, mo, d)
  end },
  datetime = { "YYYY-MM-DD hh:mm:ss", function(s)
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d) (%d%d):(%d%d):(%d%d)$")
    return y and ranges_ok(y, mo, d, h, mi, se)
  end },
  date_or_datetime = { "YYYY-MM-DD hh:mm:ss or YYYY-MM-DD", function(s)
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d) (%d%d):(%d%d):(%d%d)$")
    if not y then
      y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    end
    return y and ranges_ok(y, mo, d, h, mi, se)
  end },
  iso8601 = { "YYYY-MM-DDThh:mm[:ss]Z (UTC)", function(s)
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
    if not y then
      y, mo, d, h, mi = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d)Z$")
    end
    return y and ranges_ok(y, mo, d, h, mi, se)
  end },
  datetime_iso = { "YYYY-MM-DDThh:mm:ss+hh:mm (ISO 8601 with an offset, or Z)", function(s)
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
    local tz = y and s:sub(20)
    return y and (tz == "Z" or tz:match("^[+-]%d%d:%d%d$") ~= nil) and ranges_ok(y, mo, d, h, mi, se)
  end },
  datetime_cst = { "YYYY-MM-DDThh:mm:ss+08:00", function(s)
    local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%+08:00$")
    return y and ranges_ok(y, mo, d, h, mi, se)
  end },
  isoformat = { "YYYY-MM-DDThh:mm:ss[.ffffff] (Python isoformat() of a naive time, no zone)", function(s)
    local y, mo, d, h, mi, se, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
    if not y then return false end
    return (rest == "" or rest:match("^%.%d%d?%d?%d?%d?%d?$") ~= nil) and ranges_ok(y, mo, d, h, mi, se)
  end },
  url = { "a URL starting with http:// or https://", function(s)
    return s:match("^[hH][tT][tT][pP][sS]?://[^%c]+$") ~= nil
  end },
}
M.FORMATS = FORMATS

--- Seconds since the epoch of an ISO 8601 time (2014-08-21T08:05:24Z,
-- optional fraction, Z or +hh:mm), or nil
function M.iso_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, se, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (proleptic Gregorian), no dependence on the local time zone
  local floor = math.floor
  local yy = mo <= 2 and y - 1 or y
  local era = floor(yy / 400)
  local yoe = yy - era * 400
  local mp = (mo + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
  rest = rest:gsub("^%.%d+", "")
  local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(oh) * 3600 + tonumber(om) * 60
    t = sign == "+" and t - off or t + off
  elseif rest ~= "" and rest ~= "Z" then
    return nil
  end
  return t
end

--- The host of a URL, lower-cased (what a vendor counts as its domain), or nil.
local function url_host(u)
  local h = u:match("^%a[%w+.-]*://([^/?#]+)")
  return h and h:lower()
end
M.url_host = url_host

local function is_integer(v)
  return type(v) == "number" and v == floor(v) and v > -2^63 and v < 2^63
end

local function finite(v)
  return v == v and v ~= math.huge and v ~= -math.huge
end

-- integral numbers as digits (never "1.2e+14" or "-0", on LuaJIT too)
local function int_string(v)
  if v == 0 then return "0" end
  if math.type and math.type(v) == "integer" then return tostring(v) end
  return string.format("%.0f", v)
end
M.int_string = int_string

--- A number or string id as text (task ids, host ids).
function M.id_string(v)
  if type(v) == "number" and is_integer(v) then return int_string(v) end
  return tostring(v)
end

local function check_format(p, s)
  local f = p.format and FORMATS[p.format]
  if f and not f[2](s) then
    return "must be " .. f[1] .. ", got '" .. s .. "'"
  end
  if p.pattern and not s:match(p.pattern) then
    return "does not match the documented form (" .. p.pattern .. "), got '" .. s .. "'"
  end
  if p.max_len and #s > p.max_len then
    return "is longer than " .. p.max_len .. " characters"
  end
end

local function in_enum(enum, v)
  for _, e in ipairs(enum) do
    if e == v or tostring(e) == tostring(v) then return true end
  end
  return false
end

local function enum_text(enum)
  local t = {}
  for i, e in ipairs(enum) do t[i] = tostring(e) end
  return concat(t, ", ")
end

-- Check one scalar; returns the string to send, or nil, message.
local function scalar(p, v, typ, item)
  typ = typ or p[2]
  if typ == "integer" then
    if type(v) == "string" and v:match("^%-?%d+$") then v = tonumber(v) end
    if not is_integer(v) then return nil, "must be an integer, got " .. type(v) end
    if p.min and v < p.min then return nil, "must be >= " .. p.min .. ", got " .. int_string(v) end
    if p.max and v > p.max then return nil, "must be <= " .. p.max .. ", got " .. int_string(v) end
    if p.enum and not in_enum(p.enum, v) then
      return nil, "must be one of " .. enum_text(p.enum) .. ", got " .. int_string(v)
    end
    return int_string(v)
  elseif typ == "boolean" then
    if v == true or v == "true" then return "true" end
    if v == false or v == "false" then return "false" end
    return nil, "must be a boolean (true or false), got " .. (type(v) == "string" and ("'" .. v .. "'") or type(v))
  elseif typ == "number" then
    if type(v) == "string" then v = tonumber(v) or v end
    if type(v) ~= "number" or not finite(v) then return nil, "must be a finite number, got " .. tostring(v) end
    if p.min and v < p.min then return nil, "must be >= " .. p.min end
    if p.max and v > p.max then return nil, "must be <= " .. p.max end
    if is_integer(v) then return int_string(v) end
    return string.format("%.17g", v)
  else -- string
    if type(v) == "number" then
      if not finite(v) then return nil, "must be a string, got the number " .. tostring(v) end
      v = is_integer(v) and int_string(v) or string.format("%.17g", v)
    elseif type(v) ~= "string" then
      return nil, "must be a string, got " .. type(v)
    end
    if v == "" and (p.required or item) then return nil, "must not be empty" end
    if p.enum and not in_enum(p.enum, v) then
      return nil, "must be one of " .. enum_text(p.enum) .. ", got '" .. v .. "'"
    end
    local msg = check_format(p, v)
    if msg then return nil, msg end
    return v
  end
end

--- One item of list parameter `p` (a URL of a purge, say): true, or
-- false and the message.
function M.check_item(p, v)
  local s, msg = scalar(p, v, p.item or "string", true)
  if not s then return false, msg end
  return true
end

-- Lua array check: 1..n keys only
-- a Lua sequence: keys exactly 1..n (a hole makes # unreliable, so count)
local function as_array(v)
  if type(v) ~= "table" then return nil end
  local n, count = #v, 0
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then return nil end
    count = count + 1
  end
  if count ~= n then return nil end
  return v, n
end

M.as_array = as_array

--- Raise (at the caller) unless `t` is a table whose keys are all in `names`
-- (an array); the message lists what is accepted.  `where` prefixes it.
function M.only_keys(t, names, where)
  if type(t) ~= "table" then raise(where .. "options table expected") end
  local ok = {}
  for _, n in ipairs(names) do ok[n] = true end
  for k in pairs(t) do
    if not ok[k] then
      raise(where .. "unknown option '" .. tostring(k) .. "' (" .. concat(names, ", ") .. ")")
    end
  end
end

-- the checked string of a scalar as a JSON value (APIs whose parameters
-- travel as JSON: the API data says wire = "json")
local function native(typ, s)
  if typ == "integer" then return math.tointeger and math.tointeger(tonumber(s)) or tonumber(s) end
  if typ == "number" then return tonumber(s) end
  if typ == "boolean" then return s == "true" end
  return s
end

-- a nested structure (type object/objects): a table whose keys are among
-- p.fields (when declared) and hold p.required_fields; nil or a message
local function check_struct(p, t, what)
  if type(t) ~= "table" then return what .. " must be a table, got " .. type(t) end
  local ok = p.fields and {}
  for _, f in ipairs(p.fields or {}) do ok[f] = true end
  for k in pairs(t) do
    if type(k) ~= "string" then
      return what .. " must be a table of named fields, not an array"
    elseif ok and not ok[k] then
      return what .. " has an unknown field '" .. k .. "' (" .. (p.struct or "documented") ..
        ": " .. concat(p.fields, ", ") .. ")"
    end
  end
  for _, f in ipairs(p.required_fields or {}) do
    if t[f] == nil then return what .. " misses the required field '" .. f .. "'" end
  end
  -- members with a declared type (members = { name = { "list", max_items = n } |
  -- { "string" } }): their values are checked too; an empty list stays an array
  for f, m in pairs(p.members or {}) do
    local v = t[f]
    if v ~= nil then
      if m[1] == "list" then
        local items, n = as_array(v)
        if not items then return what .. " field '" .. f .. "' must be an array, got " .. type(v) end
        if m.max_items and n > m.max_items then
          return what .. " field '" .. f .. "' has " .. n .. " items; the documented limit is " ..
            m.max_items .. " per call"
        end
        for i = 1, n do
          if type(items[i]) ~= "string" or items[i] == "" then
            return what .. " field '" .. f .. "' item " .. i .. " must be a non-empty string"
          end
        end
        if n == 0 and getmetatable(v) == nil then setmetatable(v, core.array_mt) end
      elseif m[1] == "string" and type(v) ~= "string" then
        return what .. " field '" .. f .. "' must be a string, got " .. type(v)
      end
    end
  end
end

--- Compile action `a` of `api` into a plan, once: what every call of it
-- needs, computed before the first call.
function M.plan(api, a)
  local params = a.params or {}
  local byname, known, required, body, query = {}, {}, false, nil, nil
  for i, p in ipairs(params) do
    byname[p[1]] = p
    known[i] = p[1]
    -- (a default value makes the call worth checking even when empty)
    if p.required or p.default ~= nil then required = true end
    -- parameters the vendor takes in the request body (Alibaba's form body)
    if p.body then body = body or {}; body[p[1]] = true end
    -- parameters of a JSON-body API that travel in the query string (Wangsu)
    if p.query then query = query or {}; query[p[1]] = true end
  end
  sort(known)
  return {
    name = a.name, action = a, api = api, params = params, byname = byname,
    where = "cdnkit." .. api.vendor .. " " .. a.name .. ": ",
    known = #known > 0 and (" (documented: " .. concat(known, ", ") .. ")") or
      " (it takes no parameters)",
    idempotent = a.idempotent, http = a.http, paginate = a.paginate, body = body,
    typed = api.wire == "json", query = query, path = a.path,
    -- nothing to check when no parameter is given
    trivial = not required and not a.one_of and not a.requires_any,
  }
end

local plans = setmetatable({}, { __mode = "k" }) -- action table -> plan

--- Validate `params` for action `a` (a declared action table) of vendor `api`.
-- `list_form(name, items, p, out)` writes a list into `out` (vendor-specific).
-- Returns the flat table, or nil, message.
function M.check(api, a, params, list_form)
  local P = plans[a]
  if not P then
    P = M.plan(api, a)
    plans[a] = P
  end
  return M.check_plan(P, params, list_form)
end

--- Validate `params` against plan P; the flat table, or nil, message.
function M.check_plan(P, params, list_form)
  if (params == nil or (type(params) == "table" and next(params) == nil)) and P.trivial then
    return {}
  end
  local a, where, byname = P.action, P.where, P.byname
  if params == nil then params = {} end
  if type(params) ~= "table" then
    return nil, where .. "parameters must be a table, got " .. type(params)
  end
  for k in pairs(params) do
    if type(k) ~= "string" then
      return nil, where .. "parameter names must be strings, got " .. type(k)
    end
    if not byname[k] then
      local names = {}
      for _, p in ipairs(P.params) do names[#names + 1] = p[1] end
      return nil, where .. "unknown parameter '" .. k .. "'" .. require("cdnkit.suggest").hint(k, names) .. P.known
    end
  end
  local out = {}
  for _, p in ipairs(P.params) do
    local name, typ, v = p[1], p[2], params[p[1]]
    if v == nil and p.default ~= nil then v = p.default end
    if v == nil or v == core.null then
      if p.required then
        return nil, where .. "missing required parameter '" .. name .. "'"
      end
    elseif typ == "list" then
      local items, n = as_array(v)
      if type(v) == "string" and p.sep then
        -- one string in the vendor's joined form: split it, so limits and
        -- reports count what the vendor will count
        items = {}
        local pat = p.sep == "\n" and "[^\r\n]+" or ("[^" .. p.sep:gsub("%p", "%%%0") .. "]+")
        for part in v:gmatch(pat) do items[#items + 1] = part end
        n = #items
      elseif not items then
        return nil, where .. "parameter '" .. name .. "' must be an array (a Lua sequence)" ..
          (p.sep and " or a string" or "") .. ", got " .. type(v)
      end
      if n == 0 and (p.required or p.min_items) then
        return nil, where .. "parameter '" .. name .. "' must not be empty"
      end
      if p.min_items and n < p.min_items then
        return nil, where .. "parameter '" .. name .. "' needs at least " .. p.min_items .. " items"
      end
      if p.max_items and n > p.max_items then
        return nil, where .. "parameter '" .. name .. "' has " .. n .. " items; the documented limit is " ..
          p.max_items .. " per call" ..
          (P.action.batch and P.action.batch.param == name and " (client:refresh/prefetch split big lists for you)" or "")
      end
      local by = p.max_by
      local cap = by and params[by.param] ~= nil and by[tostring(params[by.param])]
      if cap and n > cap then
        return nil, where .. "parameter '" .. name .. "' has " .. n .. " items; with " .. by.param ..
          " = " .. tostring(params[by.param]) .. " the documented limit is " .. cap .. " per call"
      end
      if p.max_domains then
        local hosts, nh = {}, 0
        for i = 1, n do
          local h = type(items[i]) == "string" and url_host(items[i])
          if h and not hosts[h] then hosts[h] = true; nh = nh + 1 end
        end
        if nh > p.max_domains then
          return nil, where .. "parameter '" .. name .. "' holds URLs of " .. nh .. " domains; the " ..
            "documented limit is " .. p.max_domains .. " domains per call (client:refresh splits for you)"
        end
      end
      local strs = {}
      for i = 1, n do
        local s, msg = scalar(p, items[i], p.item or "string", true)
        if not s then
          return nil, where .. "parameter '" .. name .. "' item " .. i .. " " .. msg
        end
        if p.sep and (s:find(p.sep, 1, true) or (p.sep == "\n" and s:find("\r", 1, true))) then
          return nil, where .. "parameter '" .. name .. "' item " .. i .. " contains the separator " ..
            (p.sep == "\n" and "(a line break)" or ("'" .. p.sep .. "'"))
        end
        strs[i] = s
      end
      if P.typed then
        local it = p.item or "string"
        for i = 1, n do strs[i] = native(it, strs[i]) end
        out[name] = setmetatable(strs, core.array_mt)
      elseif n > 0 then list_form(name, strs, p, out) end
    elseif typ == "object" then
      local msg = check_struct(p, v, "parameter '" .. name .. "'")
      if msg then return nil, where .. msg end
      if P.typed then
        out[name] = v
      else
        local ok, js = pcall(core.json_encode, v)
        if not ok then return nil, where .. "parameter '" .. name .. "' cannot be encoded as JSON: " .. tostring(js) end
        out[name] = js
      end
    elseif typ == "objects" then
      -- an array of structures: a JSON array (typed), or flattened as
      -- Name.1.Key=value, Name.1.Value=value, ... (Alibaba)
      local items, n = as_array(v)
      if not items then
        return nil, where .. "parameter '" .. name .. "' must be an array of tables, got " .. type(v)
      end
      if p.max_items and n > p.max_items then
        return nil, where .. "parameter '" .. name .. "' has " .. n .. " items; the documented limit is " ..
          p.max_items .. " per call"
      end
      for i = 1, n do
        local msg = check_struct(p, items[i], "parameter '" .. name .. "' item " .. i)
        if msg then return nil, where .. msg end
      end
      if P.typed then
        -- an empty one is still a JSON array ([], not {})
        out[name] = n == 0 and setmetatable({}, core.array_mt) or v
      else
        for i = 1, n do
          for k, x in pairs(items[i]) do
            if not k:match("^[%w_]+$") then
              return nil, where .. "parameter '" .. name .. "' item " .. i .. " has a bad field name"
            end
            local s, msg = scalar({}, x, type(x) == "boolean" and "boolean" or
              (type(x) == "number" and "number" or "string"))
            if not s then
              return nil, where .. "parameter '" .. name .. "' item " .. i .. " field '" .. k .. "' " .. msg
            end
            out[name .. "." .. i .. "." .. k] = s
          end
        end
      end
    elseif typ == "json" then
      if type(v) == "table" then
        local ok, s = pcall(core.json_encode, v)
        if not ok then
          return nil, where .. "parameter '" .. name .. "' cannot be encoded as JSON: " .. tostring(s)
        end
        out[name] = P.typed and v or s
      elseif type(v) == "string" then
        local ok, dec, msg = pcall(core.json_decode, v)
        if not ok or (dec == nil and msg) then
          return nil, where .. "parameter '" .. name .. "' is not valid JSON: " .. tostring(msg or dec)
        end
        out[name] = P.typed and dec or v
      else
        return nil, where .. "parameter '" .. name .. "' must be a table (encoded to JSON) or a JSON string"
      end
    else
      local s, msg = scalar(p, v)
      if not s then return nil, where .. "parameter '" .. name .. "' " .. msg end
      -- (not `typed and native() or s`: a false would become "false")
      if P.typed then out[name] = native(typ, s) else out[name] = s end
    end
  end
  -- a per-call limit on several list parameters together (Wangsu: urls and
  -- dirs, 500 in all)
  local mt = a.max_total
  if mt then
    local n = 0
    for _, pn in ipairs(mt.params) do
      local v = params[pn]
      if type(v) == "table" then n = n + #v elseif type(v) == "string" then n = n + 1 end
    end
    if n > mt.max then
      return nil, where .. "parameters '" .. concat(mt.params, "' and '") .. "' hold " .. n ..
        " items together; the documented limit is " .. mt.max .. " per call"
    end
  end
  local function present(n) return params[n] ~= nil and params[n] ~= core.null end
  if a.one_of then
    -- (an empty list gives nothing: it does not count as one of them)
    local found = false
    for _, n in ipairs(a.one_of) do
      local v = params[n]
      if present(n) and not (type(v) == "table" and next(v) == nil) then found = true end
    end
    if not found then
      return nil, where .. "one of the parameters '" .. concat(a.one_of, "', '") .. "' is required"
    end
  end
  if a.requires_any then
    -- at least one of the groups, every parameter of it
    local texts = {}
    for i, group in ipairs(a.requires_any) do
      local all = true
      for _, n in ipairs(group) do
        if not present(n) then all = false end
      end
      if all then return out end
      texts[i] = concat(group, " and ")
    end
    return nil, where .. "give " .. concat(texts, ", or ")
  end
  return out
end

--- Flatten params without validation (client:call): scalars to strings,
-- arrays through list_form, tables otherwise to JSON.
function M.loose(params, list_form, wire)
  local out = {}
  if wire == "json" then
    -- the values travel as JSON: as given
    for k, v in pairs(params or {}) do
      if type(k) ~= "string" then raise("parameter names must be strings") end
      out[k] = v
    end
    return out
  end
  for k, v in pairs(params or {}) do
    if type(k) ~= "string" then raise("parameter names must be strings") end
    if type(v) == "table" then
      local items, n = as_array(v)
      if items and n > 0 then
        local strs = {}
        for i = 1, n do
          local x = v[i]
          if type(x) == "number" then
            strs[i] = scalar({}, x, "number")
          elseif type(x) == "table" then
            strs[i] = core.json_encode(x)
          elseif x == core.null then
            strs[i] = ""
          else
            strs[i] = tostring(x)
          end
        end
        list_form(k, strs, {}, out)
      else
        out[k] = core.json_encode(v)
      end
    elseif type(v) == "number" then
      out[k] = scalar({}, v, "number")
    elseif type(v) == "boolean" then
      out[k] = v and "true" or "false"
    elseif v ~= core.null then
      out[k] = tostring(v)
    end
  end
  return out
end

return M
