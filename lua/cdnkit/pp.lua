-- cdnkit.pp: pretty-print Lua values, results of cdnkit calls in particular.
--
--   local pp = require "cdnkit.pp"      -- also cdnkit.pp
--   print(pp(res))                      -- pp(value [, opts]) -> string
--   pp.print(res, { max_items = 5 })    -- the same, written to stdout
--
-- The style is Lua table syntax, with a few marks for what Lua has no
-- literal for:
--
--   {                                  -- nested tables indent by 2; a table
--     Domains = {                      -- whose one-line form fits the width
--       PageData = {                   -- is printed on one line
--         { DomainName = "a.com", Tags = [] },
--         ... 180 more                 -- an array longer than max_items: the
--       },                             -- first max_items items, then the count
--     },                               -- ({ 1, 2, 3, ... 7 more } on one line)
--     Marker = null,                   -- cdnkit.null (JSON null)
--     ["domain-list"] = { "a.com" },   -- keys that are not identifiers: ["..."]
--     [7] = true,                      -- numeric keys outside the array part
--   }
--
-- - Keys are sorted: the array part (1..n) first, in order, without keys;
--   then other numbers, numerically; then strings; then anything else.
--   Identifiers are unquoted.
-- - `[]` is an empty array (a table carrying cdnkit.array_mt, as decoded
--   from JSON `[]`); `{}` an empty table / JSON object.
-- - `null` is cdnkit.null.  Strings are double-quoted and escaped (\n, \t,
--   \", \\, \xHH for control bytes and bytes that are not UTF-8); UTF-8 text
--   is shown as it is.
-- - Integers are exact (Lua 5.4 integers, %d); floats are the shortest form
--   that reads back to the same number (%.17g at most), with ".0" on Lua 5.4
--   when the float is integral (1.0 is a float, 1 an integer); math.huge,
--   -math.huge and 0/0 for the specials.  LuaJIT has one number type: its
--   numbers print as %.17g, trimmed.
-- - Functions print as <function>, userdata (clients, ...) and threads as
--   <tostring(value)>, a table met again inside itself as <cycle>, a table
--   deeper than opts.depth as {...}.
-- - Metatables are not followed (rawget/next), so pp shows a value's data:
--   a report or an error prints its fields (print(v) / tostring(v) gives
--   their one-paragraph summaries).
--
-- opts: max_items (20: arrays longer than this are folded; false: never),
-- width (80: the one-line limit), depth (nil: unlimited), max_string (nil:
-- strings longer than this many bytes are cut, "... (N bytes)").
-- Works on Lua 5.4 and LuaJIT 2.1.
local core = require "cdnkit.core"

local M = {}

M.defaults = { max_items = 20, width = 80, depth = nil, max_string = nil }

local mtype = math.type -- nil on LuaJIT / Lua 5.1
local huge = math.huge
local concat, sort, format = table.concat, table.sort, string.format

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local ESC = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ["\a"] = "\\a", ["\b"] = "\\b",
              ["\f"] = "\\f", ["\v"] = "\\v", ['"'] = '\\"', ["\\"] = "\\\\" }

local function esc_byte(c)
  return ESC[c] or format("\\x%02X", c:byte())
end

-- bytes >= 0x80 kept where they form valid UTF-8, else \xHH
local function esc_high(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = 0
    if b >= 0xC2 and b <= 0xDF then len = 2
    elseif b >= 0xE0 and b <= 0xEF then len = 3
    elseif b >= 0xF0 and b <= 0xF4 then len = 4 end
    local ok = len > 0 and i + len - 1 <= n
    if ok then
      for k = i + 1, i + len - 1 do
        local c = s:byte(k)
        if c < 0x80 or c > 0xBF then ok = false; break end
      end
      if ok then
        local b2 = s:byte(i + 1)
        -- no overlong forms, no surrogates, nothing above U+10FFFF
        if (b == 0xE0 and b2 < 0xA0) or (b == 0xED and b2 > 0x9F) or
           (b == 0xF0 and b2 < 0x90) or (b == 0xF4 and b2 > 0x8F) then ok = false end
      end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    elseif b >= 0x80 then
      out[#out + 1] = format("\\x%02X", b)
      i = i + 1
    else
      -- an ASCII run up to the next high byte
      local j = s:find("[\128-\255]", i) or n + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    end
  end
  return concat(out)
end

local function quote(s, max)
  local cut
  if max and #s > max then
    cut = #s
    s = s:sub(1, max)
    -- do not end inside a UTF-8 sequence
    while #s > 0 and s:byte(#s) >= 0x80 and s:byte(#s) < 0xC0 do s = s:sub(1, -2) end
    if #s > 0 and s:byte(#s) >= 0xC0 then s = s:sub(1, -2) end
  end
  s = s:gsub('[%c"\\\127]', esc_byte)
  if s:find("[\128-\255]") then s = esc_high(s) end
  s = '"' .. s .. '"'
  if cut then s = s .. format("... (%d bytes)", cut) end
  return s
end
M.quote = quote

local function number(v)
  if mtype and mtype(v) == "integer" then return format("%d", v) end
  if v ~= v then return "0/0" end
  if v == huge then return "math.huge" end
  if v == -huge then return "-math.huge" end
  local s
  for p = 14, 17 do
    s = format("%." .. p .. "g", v)
    if tonumber(s) == v then break end
  end
  -- Lua 5.4: a float with an integral value reads as a float (1.0, not 1)
  if mtype and s:match("^%-?%d+$") then s = s .. ".0" end
  return s
end
M.number = number

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return (TYPE_ORDER[ta] or 4) < (TYPE_ORDER[tb] or 4) or
      ((TYPE_ORDER[ta] or 4) == (TYPE_ORDER[tb] or 4) and ta < tb)
  end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return (not a) and b end -- false before true
  return tostring(a) < tostring(b)
end

local function key_text(k)
  if is_ident(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  if type(k) == "number" then return "[" .. number(k) .. "]" end
  if type(k) == "boolean" then return "[" .. tostring(k) .. "]" end
  return "[<" .. tostring(k) .. ">]"
end

-- the array part (1..n, raw) and the other keys, sorted
local function layout(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in next, t do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  sort(keys, key_less)
  return n, keys
end

local function scalar(v, o)
  local tv = type(v)
  if tv == "string" then return quote(v, o.max_string) end
  if tv == "number" then return number(v) end
  if tv == "boolean" or tv == "nil" then return tostring(v) end
  if v == core.null then return "null" end
  if tv == "function" then return "<function>" end
  return "<" .. tostring(v) .. ">"
end

-- a table's one-line form, or nil when it does not fit in `budget` columns
local function inline(t, o, depth, seen, budget)
  if seen[t] then return "<cycle>" end
  if o.depth and depth >= o.depth then return next(t) == nil and "{}" or "{...}" end
  local n, keys = layout(t)
  if n == 0 and #keys == 0 then
    return getmetatable(t) == core.array_mt and "[]" or "{}"
  end
  local shown = n
  if o.max_items and n > o.max_items then shown = o.max_items end
  seen[t] = true
  local parts, used = {}, 4
  local function add(s)
    if not s then return false end
    used = used + #s + 2
    parts[#parts + 1] = s
    return used <= budget
  end
  local ok = true
  for i = 1, shown do
    local v = rawget(t, i)
    local s = type(v) == "table" and inline(v, o, depth + 1, seen, budget - used) or
      (type(v) ~= "table" and scalar(v, o))
    if not add(s) then ok = false; break end
  end
  if ok and shown < n then ok = add("... " .. (n - shown) .. " more") end
  if ok then
    for _, k in ipairs(keys) do
      local v = rawget(t, k)
      local kt = key_text(k) .. " = "
      local s = type(v) == "table" and inline(v, o, depth + 1, seen, budget - used - #kt) or
        (type(v) ~= "table" and scalar(v, o))
      if not add(s and kt .. s) then ok = false; break end
    end
  end
  seen[t] = nil
  if not ok then return nil end
  return "{ " .. concat(parts, ", ") .. " }"
end

local function block(t, o, depth, seen, indent, out, first_col)
  if seen[t] then out[#out + 1] = "<cycle>"; return end
  local one = inline(t, o, depth, seen, o.width - first_col)
  if one then out[#out + 1] = one; return end
  seen[t] = true
  local n, keys = layout(t)
  local inner = indent .. "  "
  out[#out + 1] = "{\n"
  local shown = n
  if o.max_items and n > o.max_items then shown = o.max_items end
  local flat = true
  for i = 1, shown do
    local tv = type(rawget(t, i))
    if tv == "table" or tv == "string" then flat = false; break end
  end
  if flat and shown > 0 then
    -- an array of numbers (booleans, nulls): as many to a line as fit the
    -- width; strings and tables one to a line
    local line = inner
    for i = 1, shown do
      local s = scalar(rawget(t, i), o) .. ","
      if line ~= inner and #line + 1 + #s > o.width then
        out[#out + 1] = line .. "\n"
        line = inner
      end
      line = line .. (line ~= inner and " " or "") .. s
    end
    out[#out + 1] = line .. "\n"
  else
    for i = 1, shown do
      local v = rawget(t, i)
      out[#out + 1] = inner
      if type(v) == "table" then block(v, o, depth + 1, seen, inner, out, #inner)
      else out[#out + 1] = scalar(v, o) end
      out[#out + 1] = ",\n"
    end
  end
  if shown < n then
    out[#out + 1] = inner .. "... " .. (n - shown) .. " more\n"
  end
  for _, k in ipairs(keys) do
    local v = rawget(t, k)
    local kt = key_text(k) .. " = "
    out[#out + 1] = inner .. kt
    if type(v) == "table" then block(v, o, depth + 1, seen, inner, out, #inner + #kt)
    else out[#out + 1] = scalar(v, o) end
    out[#out + 1] = ",\n"
  end
  out[#out + 1] = indent .. "}"
  seen[t] = nil
end

local function options(opts)
  if opts == nil then return M.defaults end
  if type(opts) ~= "table" then
    require("cdnkit.errors").raise("cdnkit.pp: options must be a table, got " .. type(opts))
  end
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  for k, v in pairs(opts) do
    if M.defaults[k] == nil and k ~= "depth" and k ~= "max_string" then
      require("cdnkit.errors").raise("cdnkit.pp: unknown option '" .. tostring(k) ..
        "' (max_items, width, depth, max_string)")
    end
    o[k] = v
  end
  if o.max_items == false then o.max_items = nil end
  return o
end

--- The text of `value` (see the top of this file for the style).
function M.format(value, opts)
  local o = options(opts)
  if type(value) ~= "table" then return scalar(value, o) end
  local out = {}
  block(value, o, 0, {}, "", out, 0)
  return concat(out)
end

--- Write pp(value, opts) and a newline to stdout.
function M.print(value, opts)
  io.write(M.format(value, opts), "\n")
end

return setmetatable(M, { __call = function(_, value, opts) return M.format(value, opts) end })
