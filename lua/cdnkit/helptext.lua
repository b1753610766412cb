-- cdnkit.helptext: readable text for the API data, shared by client:help()
-- (its __tostring, for the REPL) and the command line.
local M = {}

-- A `ref` of the API data as people can follow it: a URL as is; "NNN:line"
-- (a vendor document cdnkit was built from) as that document's title, from
-- the data's `documents` table; "notes:<section>" as the data's title for it.
function M.ref(api, ref)
  if type(ref) ~= "string" then return nil end
  local docs = api.documents or {}
  local num = ref:match("^(%d%d%d):%d+$")
  if num then return docs[num] or api.source end
  local sec = ref:match("^notes:(.+)$")
  if sec then return docs[sec] or api.source end
  return ref
end

local function param_line(p)
  local extra = {}
  if p.enum then
    local e = {}
    for i, v in ipairs(p.enum) do e[i] = tostring(v) end
    extra[#extra + 1] = "one of " .. table.concat(e, "|")
  end
  if p.format then extra[#extra + 1] = p.format end
  if p.body then extra[#extra + 1] = "in the form body" end
  if p.query then extra[#extra + 1] = "in the query string" end
  if p.path then extra[#extra + 1] = "in the path" end
  if p.default ~= nil then extra[#extra + 1] = "default " .. tostring(p.default) end
  if p.max_items then extra[#extra + 1] = "max " .. p.max_items .. " items" end
  if p.min or p.max then extra[#extra + 1] = ("%s..%s"):format(p.min or "", p.max or "") end
  local name, typ = p.name or p[1], p.type or p[2]
  return ("  %-24s %-8s %s%s%s"):format(name, typ, p.required and "required. " or "",
    p.doc or "", #extra > 0 and (" [" .. table.concat(extra, "; ") .. "]") or "")
end

--- Text for one action of `api` (an action table from the API data).
function M.action(vendor, api, a, flag_prefix)
  local out = { ("%s %s - %s"):format(vendor, a.name, a.doc or "") }
  local l = a.limits or {}
  local rate = l.per_second and (l.per_second .. " calls a second") or
    (l.per_minute and (l.per_minute .. " calls a minute"))
  if a.http or rate then
    out[#out + 1] = "  " .. (a.http and ("HTTP " .. a.http .. (a.path and (" " .. a.path) or "")) or "") ..
      (a.http and rate and ", " or "") ..
      (rate and ("at most " .. rate .. " (cdnkit paces to it)") or "")
  end
  if a.args then
    -- a resource method (Plcloud): its Lua call, and what it answers
    local r, m = a.name:match("^([%w_]+)%.([%w_]+)$")
    local args = {}
    for i, x in ipairs(a.args) do args[i] = x == "*" and "{ named parameters }" or x end
    out[#out + 1] = ("  Lua: client.%s:%s(%s)%s"):format(r or "?", m or a.name, table.concat(args, ", "),
      a.key and (" -> the answer's '" .. a.key .. "'") or " -> true")
  end
  local where = M.ref(api, a.ref)
  if where then out[#out + 1] = "  documented in " .. where end
  if a.one_of then out[#out + 1] = "  one of: " .. table.concat(a.one_of, ", ") end
  if a.requires_any then
    local g = {}
    for i, group in ipairs(a.requires_any) do g[i] = table.concat(group, " and ") end
    out[#out + 1] = "  requires: " .. table.concat(g, ", or ")
  end
  if a.paginate then out[#out + 1] = "  paginated: client:each() / client:pages() (CLI: --all)" end
  for _, p in ipairs(a.params or {}) do
    out[#out + 1] = (param_line(p):gsub("^  ", "  " .. (flag_prefix or "")))
  end
  if #(a.params or {}) == 0 then out[#out + 1] = "  (no parameters)" end
  return table.concat(out, "\n")
end

--- Text listing every action of `api`.
function M.list(vendor, api)
  local out = { ("%s (%s, API %s): %d actions"):format(vendor, api.title, api.api_version, #api.actions), "" }
  local names = {}
  for _, a in ipairs(api.actions) do names[#names + 1] = a end
  table.sort(names, function(x, y) return x.name < y.name end)
  for _, a in ipairs(names) do out[#out + 1] = ("  %-40s %s"):format(a.name, a.doc or "") end
  return table.concat(out, "\n")
end

return M
