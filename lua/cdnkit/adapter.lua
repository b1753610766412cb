-- cdnkit.adapter: loads a vendor adapter (lua/cdnkit/vendors/<vendor>.lua),
-- checks it against the adapter contract (lua/cdnkit/vendors/README.md) and
-- resolves its API versions.  A broken adapter fails when it loads, with an
-- error naming the field, not later in the middle of a call.
local core = require "cdnkit.core"

local M = {}

-- { field, type, required, what it is } - the contract, as data.  The README
-- in lua/cdnkit/vendors/ documents each field and who reads it.
M.FIELDS = {
  { "name", "string", true, "vendor name: cdnkit.<name>{...}" },
  { "order", "number", true, "position in cdnkit.vendors()" },
  { "default_version", "string", true, "the API version a client speaks unless told" },
  { "versions", "table", true, "version -> version table (VERSION_FIELDS)" },
  { "options", "table", true, "vendor-specific constructor options: name -> Lua type" },
  { "credentials", "table", true, "{ option, ENV_VAR } pairs, key id first, then the secret" },
  { "credentials_alt", "table", false, "a second { option, ENV_VAR } list, used when its options are given" },
  { "fixed", "table", false, "extra keys prepare()'s third argument accepts" },
  { "init", "function", true, "init(st, opts, key_id): vendor state of a new client" },
  { "build", "function", true, "build(client, st, plan, flat, fixed) -> req, meta" },
  { "parse", "function", true, "parse(st, action, status, headers, body, meta) -> data | nil, err" },
  { "list_form", "function", true, "list_form(name, items, p, out): a list parameter on the wire" },
  { "check_options", "function", false, "check_options(opts): raise on bad vendor options" },
  { "check_fixed", "function", false, "check_fixed(fixed): raise on bad prepare() values" },
  { "batch_params", "function", false, "batch_params(kind, items) -> action, params" },
  { "task_ids", "function", false, "task_ids(kind, data) -> { id, ... }" },
  { "task_status", "table", false, "kind -> { action, id_param, items, field, done, failed }" },
  { "quota", "table", false, "{ action | actions, remain = { kind = field }, ... }" },
  { "clock_window", "number", false, "seconds a timestamp may be off the server's clock" },
  { "token", "table", false, "{ option, ENV_VAR, alone = bool }: a session token kept in C" },
  { "endpoint_env", "string", false, "environment variable naming the endpoint" },
  { "vendor_profile", "function", false, "vendor_profile() -> options, label | nil: the vendor's own CLI profile" },
  { "instance_role", "table", false, "the cloud's metadata service of instance-role credentials (role.lua)" },
  { "endpoint_of", "function", false, "endpoint_of(opts, version) -> the endpoint a region/site asks for, or nil" },
  { "endpoint_path", "boolean", false, "the endpoint may have a path (a service URL)" },
  { "session", "function", false, "session(client, st, force, exchange) -> true | nil, err" },
  { "batch_scope", "function", false, "batch_scope(client, st, invoke) -> scope | nil, err" },
  { "batch_reject", "function", false, "batch_reject(kind, item, scope, host) -> err | nil" },
}

M.VERSION_FIELDS = {
  { "api", "string", true, "module of the API data, cdnkit.apis.<vendor>_<version>" },
  { "endpoint", "string", false, "default scheme://host (none: the adapter's session finds it)" },
  { "path", "string", true, "request path (help() shows it)" },
  { "scheme", "string", true, "signing scheme: a key of core.signers" },
  { "default_method", "string", true, "HTTP method unless the action or the user says" },
  { "methods", "table", true, "set of HTTP methods the vendor accepts" },
  { "moved", "table", false, "action of another version -> successor here (string) or false" },
  { "task_status", "table", false, "this version's task_status (else the adapter's)" },
  { "quota", "table", false, "this version's quota (else the adapter's)" },
}

local function check_fields(where, t, fields)
  for _, f in ipairs(fields) do
    local name, want, required = f[1], f[2], f[3]
    local v = t[name]
    if v == nil then
      if required then
        error(where .. ": required field '" .. name .. "' (" .. want .. ") is missing", 0)
      end
    elseif type(v) ~= want then
      error(where .. ": field '" .. name .. "' must be a " .. want .. ", got " .. type(v), 0)
    end
  end
  local known = {}
  for _, f in ipairs(fields) do known[f[1]] = true end
  for k in pairs(t) do
    if not known[k] then
      error(where .. ": unknown field '" .. tostring(k) .. "' (the contract is in vendors/README.md)", 0)
    end
  end
end

--- Check adapter A (a table) against the contract; raises naming the field.
function M.check(A, file)
  local where = "cdnkit: adapter " .. (file or tostring(A and A.name))
  if type(A) ~= "table" then error(where .. ": must return a table", 0) end
  check_fields(where, A, M.FIELDS)
  for i, c in ipairs(A.credentials) do
    if type(c) ~= "table" or type(c[1]) ~= "string" or type(c[2]) ~= "string" then
      error(where .. ": credentials[" .. i .. "] must be { option, ENV_VAR }", 0)
    end
  end
  if #A.credentials < 1 then error(where .. ": credentials must name at least one option", 0) end
  for k, v in pairs(A.options) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error(where .. ": options must map option names to Lua type names", 0)
    end
  end
  for k in pairs(A.fixed or {}) do
    if type(k) ~= "string" then error(where .. ": fixed must map key names to true", 0) end
  end
  if not A.versions[A.default_version] then
    error(where .. ": default_version '" .. A.default_version .. "' is not in versions", 0)
  end
  for ver, V in pairs(A.versions) do
    local vw = where .. " version " .. tostring(ver)
    if type(V) ~= "table" then error(vw .. ": must be a table", 0) end
    check_fields(vw, V, M.VERSION_FIELDS)
    if type(core.signers[V.scheme]) ~= "function" then
      error(vw .. ": field 'scheme': unknown signing scheme '" .. V.scheme .. "'", 0)
    end
    if not V.methods[V.default_method] then
      error(vw .. ": field 'default_method' is not in methods", 0)
    end
  end
  if A.token and (type(A.token[1]) ~= "string" or type(A.token[2]) ~= "string") then
    error(where .. ": token must be { option, ENV_VAR }", 0)
  end
  for ver, V in pairs(A.versions) do
    if V.endpoint == nil and not A.session then
      error(where .. " version " .. tostring(ver) .. ": field 'endpoint' is required without a session", 0)
    end
  end
  if A.batch_params and not A.task_ids then
    error(where .. ": field 'task_ids' is required with batch_params", 0)
  end
  return A
end

local loaded = {}   -- name -> checked adapter (per lua_State: module upvalue)

--- The checked adapter of vendor `name` (raises for an unknown vendor).
function M.get(name)
  local A = loaded[name]
  if A then return A end
  local known = false
  local index = require "cdnkit.vendors.index"
  for _, v in ipairs(index) do if v == name then known = true end end
  if not known then
    require("cdnkit.errors").raise("cdnkit: unknown vendor '" .. tostring(name) .. "' (" ..
      table.concat(index, ", ") .. ")")
  end
  local file = "lua/cdnkit/vendors/" .. name .. ".lua"
  A = M.check(require("cdnkit.vendors." .. name), file)
  if A.name ~= name then
    error("cdnkit: adapter " .. file .. ": field 'name' is '" .. A.name .. "'", 0)
  end
  loaded[name] = A
  return A
end

local versions = {} -- "name@version" -> resolved version info

--- The resolved version `ver` of adapter A: its API data and derived facts.
-- Nil when A has no such version.
function M.version(A, ver)
  local key = A.name .. "@" .. ver
  local V = versions[key]
  if V then return V end
  local decl = A.versions[ver]
  if not decl then return nil end
  local api = require(decl.api)
  local index = {}
  for _, a in ipairs(api.actions) do
    if index[a.name] then error("cdnkit: duplicate action in " .. decl.api .. ": " .. a.name, 0) end
    index[a.name] = a
  end
  local mlist = {}
  for m in pairs(decl.methods) do mlist[#mlist + 1] = m end
  table.sort(mlist)
  V = {
    version = ver, api = api, index = index, endpoint = decl.endpoint, path = decl.path,
    scheme = decl.scheme, sign = core.signers[decl.scheme],
    default_method = decl.default_method, methods = decl.methods,
    method_list = table.concat(mlist, ", "),
    moved = decl.moved or {},
    task_status = decl.task_status or A.task_status, quota = decl.quota or A.quota,
  }
  versions[key] = V
  return V
end

--- Version names of A, sorted.
function M.version_names(A)
  local t = {}
  for v in pairs(A.versions) do t[#t + 1] = v end
  table.sort(t)
  return t
end

return M
