-- cdnkit: drive the HTTP APIs of CDN vendors from Lua.
--   local cdnkit = require "cdnkit"
--   local ali = cdnkit.aliyun { access_key_id = "...", access_key_secret = "..." }
--   local res, err = ali:DescribeUserDomains { PageSize = 50 }
-- See README.md and the API contract (API.md).
local core = require "cdnkit.core"

local M = {
  VERSION = core.VERSION,
  null = core.null,
  array_mt = core.array_mt,
  json_decode = core.json_decode,
  json_encode = core.json_encode,
}

-- vendors whose client is implemented, in the documented order
local VENDORS = { "aliyun", "qcloud" }
local adapters = {}

local function adapter(name)
  local a = adapters[name]
  if not a then
    a = require("cdnkit.vendors." .. name)
    adapters[name] = a
  end
  return a
end

function M.vendors()
  local t = {}
  for i, v in ipairs(VENDORS) do t[i] = v end
  return t
end

for _, name in ipairs(VENDORS) do
  M[name] = function(opts)
    return require("cdnkit.client").new(adapter(name), opts)
  end
end

-- vendors the contract names that this version does not have yet: a clear
-- error instead of "attempt to call a nil value"
for _, name in ipairs { "wangsu", "plcloud" } do
  M[name] = function()
    require("cdnkit.errors").raise(("cdnkit.%s: not in cdnkit %s yet (available: %s)")
      :format(name, M.VERSION, table.concat(VENDORS, ", ")))
  end
end

--- The same purge on several vendors at once (multi-CDN):
--   local r = cdnkit.refresh({ ali, qc }, { urls = {...}, dirs = {...} })
--   r.ok, r[1] (Alibaba's report), r[2] (Tencent's); r:wait{ timeout = 600 }
function M.refresh(clients, opts)
  return require("cdnkit.batch").refresh_all(clients, opts)
end

--- The API data of a vendor (read-only use): actions, parameters, limits.
function M.api(name)
  return adapter(name).api
end

function M.help(out)
  out = out or io.write
  out(("cdnkit %s - CDN vendor APIs from Lua\n\n"):format(M.VERSION))
  for _, v in ipairs(VENDORS) do
    local api = adapter(v).api
    out(("  cdnkit.%-8s %s, API %s, %d actions\n"):format(v, api.title, api.api_version, #api.actions))
  end
  out("\nStart: local c = cdnkit.aliyun{ access_key_id=..., access_key_secret=... }\n" ..
      "       c:actions()  c:help(\"RefreshObjectCaches\")  c:RefreshObjectCaches{ ObjectPath = {...} }\n")
end

return M
