-- cdnkit: drive the HTTP APIs of CDN vendors from Lua.
--   local cdnkit = require "cdnkit"
--   local ali = cdnkit.aliyun { access_key_id = "...", access_key_secret = "..." }
--   local res, err = ali:DescribeUserDomains { PageSize = 50 }
-- See README.md.
local core = require "cdnkit.core"
local adapter = require "cdnkit.adapter"

-- lua-cjson 2.1.0.9 and later (OpenResty's) mark arrays with cjson.array_mt;
-- where it is there, decoded arrays carry it, so cjson.encode(result) writes
-- [] for an empty array as cdnkit.json_encode does
do
  local ok, cjson = pcall(require, "cjson")
  if ok and type(cjson) == "table" and type(cjson.array_mt) == "table" and core.array_mt ~= cjson.array_mt then
    core.use_array_mt(cjson.array_mt)
    core.array_mt = cjson.array_mt
  end
end

local M = {
  VERSION = core.VERSION,
  null = core.null,
  array_mt = core.array_mt,
  json_decode = core.json_decode,
  json_encode = core.json_encode,
  -- pretty-print a result: cdnkit.pp(value [, opts]) -> string
  pp = require "cdnkit.pp",
}

-- the vendors: every adapter in lua/cdnkit/vendors/ (its index is generated
-- from the folder), in the order the adapters declare
local VENDORS = {}
do
  local list = {}
  for _, name in ipairs(require "cdnkit.vendors.index") do list[#list + 1] = adapter.get(name) end
  table.sort(list, function(a, b) return a.order < b.order end)
  for i, A in ipairs(list) do VENDORS[i] = A.name end
end

function M.vendors()
  local t = {}
  for i, v in ipairs(VENDORS) do t[i] = v end
  return t
end

for _, name in ipairs(VENDORS) do
  M[name] = function(opts)
    return require("cdnkit.client").new(adapter.get(name), opts)
  end
end

-- cdnkit.tencent is cdnkit.qcloud (Tencent Cloud's own name for it)
M.tencent = M.qcloud

--- The same purge on several vendors at once (multi-CDN):
--   local r = cdnkit.refresh({ ali, qc }, { urls = {...}, dirs = {...} })
--   r.ok, r[1] (Alibaba's report), r[2] (Tencent's); r:wait{ timeout = 600 }
function M.refresh(clients, opts)
  return require("cdnkit.batch").refresh_all(clients, opts)
end

--- A report saved with `cdnkit <vendor> refresh --save FILE` (or
-- require("cdnkit.report").save), ready for :wait{}; `client` optional.
function M.load_report(path, client)
  return require("cdnkit.report").load(path, client)
end

--- The API data of a vendor (read-only): actions, parameters, limits.
-- `version` defaults to the vendor's default API version.
function M.api(name, version)
  local A = adapter.get(name)
  local V = adapter.version(A, version or A.default_version)
  if not V then
    require("cdnkit.errors").raise("cdnkit.api: " .. name .. " has no API version '" ..
      tostring(version) .. "' (" .. table.concat(adapter.version_names(A), ", ") .. ")")
  end
  return V.api
end

function M.help(out)
  out = out or io.write
  out(("cdnkit %s - CDN vendor APIs from Lua\n\n"):format(M.VERSION))
  for _, v in ipairs(VENDORS) do
    local api = M.api(v)
    out(("  cdnkit.%-8s %s, API %s, %d actions\n"):format(v, api.title, api.api_version, #api.actions))
  end
  out("\nStart: local c = cdnkit.aliyun{ access_key_id=..., access_key_secret=... }\n" ..
      "       c:actions()  c:help(\"RefreshObjectCaches\")  c:RefreshObjectCaches{ ObjectPath = {...} }\n")
end

return M
