-- cdnkit.profile: the credentials file the CLI and the client constructors
-- share (read last, after the options and the environment).
--
--   ~/.config/cdnkit/credentials   (or $CDNKIT_CREDENTIALS_FILE)
--
--   [default]
--   secret_key = ...              ; applies to every vendor that takes it
--   qcloud.secret_id = AKID...    ; to one vendor only (wins over the plain key)
--   qcloud.secret_key = ...
--   [staging]
--   aliyun.access_key_id = ...
--
-- Sections are profiles: `[default]` unless one is named (the `profile`
-- option, `--profile`, or $CDNKIT_PROFILE).  Keys are constructor option
-- names, optionally prefixed with the vendor and a dot.  Lines starting with
-- `#` or `;` are comments; values are the rest of the line, trimmed (quotes
-- around a value are removed).  A file others can read gets a warning on
-- stderr (once per file and process); a profile named but absent raises,
-- naming the file and the profiles it has.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise

local M = {}

--- The file's path.
function M.path()
  local p = os.getenv("CDNKIT_CREDENTIALS_FILE")
  if p and p ~= "" then return p end
  local home = os.getenv("HOME")
  if not home or home == "" then return nil end
  return home .. "/.config/cdnkit/credentials"
end

--- Parse INI text: { [section] = { key = value } }, and the section names in
-- file order.  Raises on a line it cannot read (naming the file and line).
function M.parse(text, where)
  local sections, order, cur = {}, {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line == "" or line:match("^[#;]") then -- luacheck: ignore (blank or comment)
    else
      local sec = line:match("^%[%s*(.-)%s*%]$")
      if sec then
        if sec == "" then raise(("cdnkit: %s line %d: empty section name"):format(where, n)) end
        if not sections[sec] then sections[sec] = {}; order[#order + 1] = sec end
        cur = sections[sec]
      else
        local k, v = line:match("^([%w_.%-]+)%s*=%s*(.-)$")
        if not k then
          raise(("cdnkit: %s line %d: expected [section] or key = value"):format(where, n))
        end
        if not cur then
          raise(("cdnkit: %s line %d: '%s' comes before any [section]"):format(where, n, k))
        end
        local q = v:match('^"(.*)"$') or v:match("^'(.*)'$")
        cur[k:gsub("%-", "_")] = q or v
      end
    end
  end
  return sections, order
end

local warned = {}

--- Read the file: sections, order | nil when there is none.
function M.read(path)
  path = path or M.path()
  if not path then return nil end
  local f = io.open(path, "r")
  if not f then return nil end
  local text, rerr = f:read("*a")
  f:close()
  if not text then raise("cdnkit: cannot read the credentials file " .. path .. " (" .. tostring(rerr) .. ")") end
  local mode = core.file_mode(path)
  if mode and mode % 64 ~= 0 and not warned[path] then
    -- (group or others may read or write it: bits 0077)
    warned[path] = true
    io.stderr:write(("cdnkit: warning: %s can be read by other users (mode %o); chmod 600 it\n")
      :format(path, mode))
  end
  return M.parse(text, path)
end

--- The options profile `name` gives vendor `vendor` (a table; empty when
-- there is no file, or no [default] section and no name was given).
-- `name`: the profile asked for (nil: $CDNKIT_PROFILE, else "default").
function M.options(vendor, name)
  local explicit = name ~= nil or (os.getenv("CDNKIT_PROFILE") or "") ~= ""
  name = name or os.getenv("CDNKIT_PROFILE")
  if name == "" or name == nil then name = "default" end
  local path = M.path()
  local sections, order = M.read(path)
  if not sections then
    if explicit then
      raise(("cdnkit: profile '%s' asked for, but there is no credentials file (%s)")
        :format(name, tostring(path)))
    end
    return {}, nil
  end
  local sec = sections[name]
  if not sec then
    if explicit then
      raise(("cdnkit: profile '%s' is not in %s (profiles there: %s)")
        :format(name, path, #order > 0 and table.concat(order, ", ") or "none"))
    end
    return {}, nil
  end
  local out = {}
  for k, v in pairs(sec) do
    if not k:find(".", 1, true) then out[k] = v end
  end
  local prefix = vendor .. "."
  for k, v in pairs(sec) do
    if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = v end
  end
  return out, name
end

return M
