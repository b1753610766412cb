-- cdnkit.vendors.plcloud: protocol adapter for Plcloud (Powerleader), a REST
-- API behind an OpenStack Keystone v2.0 token service, used by the vendor's
-- Python client (plcloudclient.v1_0) through resource objects: plcloud.cdn.*,
-- plcloud.ticket.*.  Here: pl.cdn:list(), pl.ticket:reply(id, text), ...
--
-- Authentication (A.session, called by the engine before requests):
--   POST {auth_url}/tokens
--   {"auth":{"passwordCredentials":{"username":U,"password":P},"tenantName":T}}
--   -> {"access":{"token":{"id","expires","issued_at","tenant":{"id"}},
--                 "serviceCatalog":[{"type","name","endpoints":[{"region","publicURL",...}]}],
--                 "user":{"id"}}}
-- The body is built by the C core from the password it holds
-- (core.signers.keystone_password); the token goes into the C core's token
-- slot (core.client_set_token) and is wiped when replaced or on close.  The
-- service endpoint is the catalog entry of type "plcloud" and name "plcloud"
-- (endpoint_type publicURL unless told, filtered by region when one is
-- given).  Requests carry X-Auth-Token.  The token is renewed a little before
-- its `expires` (measured on the local monotonic clock from the lifetime the
-- answer states, so clock skew does not matter), and once on a 401 (the
-- engine resends the call once; a second 401 is the caller's "auth" error).
-- A client given `endpoint` and `token` skips keystone until the token is
-- refused; with a password too it then authenticates, without one it fails.
--
-- Requests: REST paths from the API data (`path`, `{param}` substituted),
-- JSON bodies (`wrap` puts the body parameters under one key), answers
-- unwrapped from the resource key (`key`: cdn, ticket) as the Python client
-- does.  Errors: non-2xx with Keystone's envelope {"error":{"message","code",
-- "title"}}.
-- The contract this file fulfils is in README.md in this folder.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local JSON = "application/json"
local AUTH_URL = "http://api.plcloud.com:5001/v2.0"

local A = {
  name = "plcloud",
  order = 4,
  default_version = "v1_0",
  versions = {
    v1_0 = {
      api = "cdnkit.apis.plcloud_v1_0",
      -- no fixed host: the service endpoint comes from the token's service catalog
      path = "/", -- each call has its own REST path (the API data's `path`)
      scheme = "keystone_password",
      default_method = "GET",
      methods = { GET = true, POST = true, PUT = true, DELETE = true },
    },
  },
  options = { username = "string", password = "string", tenant_name = "string", auth_url = "string",
              region = "string", token = "string", endpoint_type = "string" },
  credentials = {
    { "username", "PLCLOUD_USERNAME" },
    { "password", "PLCLOUD_PASSWORD" },
  },
  -- a ready keystone token (with `endpoint`) is a credential of its own
  token = { "token", "PLCLOUD_TOKEN", alone = true },
  endpoint_env = "PLCLOUD_SERVICE_ENDPOINT",
  endpoint_path = true, -- the service endpoint has a path (http://host:port/v1.0)
  fixed = { token = true, endpoint = true },
  task_status = {
    prefetch = {
      action = "cdn.prefetch_query", id_param = "request_id", items = "urls", field = "status",
      done = { done = true, success = true, finished = true }, failed = { failed = true, failure = true },
    },
  },
}

local ENDPOINT_TYPES = { publicURL = true, internalURL = true, adminURL = true }

function A.check_options(opts)
  if opts.endpoint_type ~= nil and not ENDPOINT_TYPES[opts.endpoint_type] then
    raise("cdnkit.plcloud: option 'endpoint_type' must be publicURL, internalURL or adminURL, got '" ..
      opts.endpoint_type .. "'")
  end
  for _, k in ipairs { "username", "tenant_name", "region" } do
    if opts[k] == "" then raise("cdnkit.plcloud: option '" .. k .. "' must not be empty") end
  end
end

function A.check_fixed(fixed)
  if fixed.token ~= nil and (type(fixed.token) ~= "string" or fixed.token == "") then
    raise("cdnkit.plcloud: prepare: token must be a non-empty string")
  end
  if fixed.endpoint ~= nil and type(fixed.endpoint) ~= "string" then
    raise("cdnkit.plcloud: prepare: endpoint must be a string")
  end
end

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

function A.init(st, opts, key_id, check_endpoint)
  st.username = key_id
  st.tenant_name = opts.tenant_name or env("PLCLOUD_TENANT_NAME") or key_id -- the login name, as documented
  st.region = opts.region or env("PLCLOUD_REGION")
  st.endpoint_type = opts.endpoint_type or "publicURL"
  local auth_url, from = opts.auth_url, "auth_url"
  if not auth_url then auth_url, from = env("PLCLOUD_AUTH_URL"), "auth_url (PLCLOUD_AUTH_URL)" end
  st.auth_url = check_endpoint(auth_url or AUTH_URL, from):gsub("/+$", "")
  st.endpoint_given = st.endpoint ~= nil
  if st.endpoint then st.endpoint = st.endpoint:gsub("/+$", "") end
  -- a token given with the client: used until refused (its expiry is not known)
  st.token_until = nil
end

-- JSON arrays on the wire
function A.list_form(name, items, p, out)
  out[name] = setmetatable(items, core.array_mt)
end

---------------------------------------------------------------------------
-- keystone

local iso_time = validate.iso_time

-- the service endpoint in the catalog, or nil and what the catalog offers
local function find_endpoint(st, catalog)
  local seen = {}
  if type(catalog) ~= "table" then return nil, "the answer has no serviceCatalog" end
  for _, svc in ipairs(catalog) do
    if type(svc) == "table" and svc.type == "plcloud" and svc.name == "plcloud" and type(svc.endpoints) == "table" then
      for _, ep in ipairs(svc.endpoints) do
        if type(ep) == "table" then
          seen[#seen + 1] = tostring(ep.region)
          if (st.region == nil or ep.region == st.region) and type(ep[st.endpoint_type]) == "string" then
            return ep[st.endpoint_type]
          end
        end
      end
    end
  end
  if #seen == 0 then return nil, "the service catalog has no entry of type and name 'plcloud'" end
  return nil, "the service catalog has no plcloud " .. st.endpoint_type ..
    (st.region and (" in region '" .. st.region .. "'") or "") .. " (regions: " .. table.concat(seen, ", ") .. ")"
end

-- a keystone answer as traces show it: the token id masked wherever it
-- appears (found by decoding, so key order and nesting do not matter)
local function redact_token_answer(body)
  local ok, d = pcall(core.json_decode, body)
  local tok = ok and type(d) == "table" and type(d.access) == "table" and type(d.access.token) == "table"
    and d.access.token.id
  if type(tok) ~= "string" or tok == "" then
    -- not the documented shape: show nothing of it that could hold the token
    return ok and type(d) == "table" and "(keystone answer without access.token.id)" or errors.excerpt(body)
  end
  local out, at = {}, 1
  while true do
    local i, j = body:find(tok, at, true)
    if not i then break end
    out[#out + 1] = body:sub(at, i - 1)
    out[#out + 1] = "***"
    at = j + 1
  end
  out[#out + 1] = body:sub(at)
  return table.concat(out)
end

-- POST {auth_url}/tokens with the password; stores the token, the endpoint
-- (unless given) and the token's lifetime.  true | nil, err
local function authenticate(client, st, exchange)
  local body = st.sign(client, st.username, st.tenant_name)
  local req = transport.request(st, "POST", st.auth_url .. "/tokens",
    { ["Content-Type"] = JSON, Accept = JSON, ["User-Agent"] = st.user_agent }, body)
  body = nil -- luacheck: ignore (dropped as soon as it is sent)
  req.idempotent = true -- asking for a token twice is harmless
  local shown
  if st.trace then
    shown = { method = "POST", url = req.url, headers = req.headers,
              body = '{"auth":{"passwordCredentials":{"username":' .. core.json_encode(st.username) ..
                ',"password":"***"},"tenantName":' .. core.json_encode(st.tenant_name) .. '}}' }
  end
  local t0 = core.monotime()
  local status, headers, rbody = exchange("tokens", req, shown, redact_token_answer)
  req.body = nil
  if not status then
    local e = headers or {}
    return nil, { code = e.code or "http", message = "keystone (" .. st.auth_url .. "): " ..
      tostring(e.message), retryable = e.code == "connect" or e.code == "timeout" or e.code == "http",
      ambiguous = false, sent = false, curl_code = e.curl_code }
  end
  local data = core.json_decode(rbody or "")
  if status == 401 or status == 403 then
    local msg = type(data) == "table" and type(data.error) == "table" and data.error.message
    return nil, { code = "auth", http_status = status, retryable = false, ambiguous = false, sent = false,
      message = ("keystone refused the credentials of user '%s' (tenant '%s'): %s")
        :format(tostring(st.username), tostring(st.tenant_name), type(msg) == "string" and msg or status),
      hint = "check username, password and tenant_name (PLCLOUD_USERNAME, PLCLOUD_PASSWORD, PLCLOUD_TENANT_NAME)" }
  end
  if status ~= 200 and status ~= 203 then
    local msg = type(data) == "table" and type(data.error) == "table" and data.error.message
    return nil, { code = "auth_http", http_status = status, retryable = status >= 500 or status == 429,
      ambiguous = false, sent = false,
      message = "keystone answered HTTP " .. status .. " to POST " .. st.auth_url .. "/tokens: " ..
        (type(msg) == "string" and msg or errors.unexpected(status, "", rbody or "")),
      hint = (status == 404 or status == 405) and
        "auth_url is the Keystone v2.0 URL, e.g. http://api.plcloud.com:5001/v2.0 (without /tokens)" or nil }
  end
  local access = type(data) == "table" and data.access
  local token = type(access) == "table" and type(access.token) == "table" and access.token
  if not token or type(token.id) ~= "string" or token.id == "" then
    return nil, { code = "json", http_status = status, retryable = false, ambiguous = false, sent = false,
      message = "keystone's answer has no access.token.id" }
  end
  if not st.endpoint_given then
    local url, why = find_endpoint(st, access.serviceCatalog)
    if not url then
      return nil, { code = "catalog", retryable = false, ambiguous = false, sent = false,
        message = why, hint = "give region = one of those, or endpoint = the service URL" }
    end
    if not url:match("^https?://[^%s]+$") then
      return nil, { code = "catalog", retryable = false, ambiguous = false, sent = false,
        message = "the catalog's plcloud endpoint is not an http(s) URL" }
    end
    st.endpoint = url:gsub("/+$", "")
  end
  core.client_set_token(client, token.id)
  token.id = nil
  st.tenant_id = type(token.tenant) == "table" and token.tenant.id or nil
  if type(st.tenant_id) ~= "string" then st.tenant_id = st.tenant_id and tostring(st.tenant_id) end
  st.user_id = type(access.user) == "table" and access.user.id or nil
  -- renew a little before the stated expiry: the lifetime the answer
  -- states, on the local monotonic clock
  local expires = iso_time(token.expires)
  local issued = iso_time(token.issued_at)
  if not issued and type(headers) == "table" and headers.date then issued = core.parse_http_date(headers.date) end
  if expires then
    local life = expires - (issued or core.now())
    local margin = math.min(60, math.max(life, 0) * 0.1)
    st.token_until = t0 + life - margin
  else
    st.token_until = math.huge
  end
  st.token_expires = token.expires
  st.auths = (st.auths or 0) + 1
  return true
end

--- The engine calls this before sending: a usable token and endpoint, or
-- nil, err.  `force`: the last token was refused (a 401).
function A.session(client, st, force, exchange)
  local has_token = core.client_token(client) ~= nil
  if not force and has_token and st.endpoint and (st.token_until == nil or core.monotime() < st.token_until) then
    return true
  end
  -- a refused or expired token is never sent again, whatever happens next
  -- (keystone failing now must not leave it in use for the retry)
  if has_token then
    core.client_set_token(client, nil)
    if force then st.token_refused = true end
  end
  if not st.has_secret then
    core.client_set_token(client, nil)
    return nil, { code = "auth", retryable = false, ambiguous = false, sent = false,
      message = (has_token or st.token_refused) and
        "the token was refused (expired or revoked) and the client has no password to get another"
        or "no token and no password",
      hint = "give username and password (or PLCLOUD_USERNAME and PLCLOUD_PASSWORD) so cdnkit can renew the token" }
  end
  if not st.username then
    return nil, { code = "auth", retryable = false, ambiguous = false, sent = false,
      message = "a password but no username: give username (or PLCLOUD_USERNAME)" }
  end
  local ok, err = authenticate(client, st, exchange)
  if ok then st.token_refused = nil end
  return ok, err
end

---------------------------------------------------------------------------
-- requests

local pct = core.pct_encode

local function wire_string(v)
  if type(v) == "number" then return validate.id_string(v) end
  return tostring(v)
end

function A.build(client, st, P, flat, fixed)
  local a = P.action
  if not a then
    raise("cdnkit.plcloud: " .. tostring(P.name) .. " is not a Plcloud call (each has its own REST path; " ..
      "client:actions() lists them)")
  end
  local byname = P.byname
  local used = {}
  local missing = false
  local function fill(path)
    missing = false
    return (path:gsub("{([%w_]+)}", function(name)
      local v = flat[name]
      if v == nil then
        local p = byname[name]
        v = p and p.default_from and st[p.default_from]
      end
      if v == nil then missing = name; return "" end
      used[name] = true
      return pct(wire_string(v))
    end))
  end
  local path = fill(a.path)
  if missing and a.path_alt then
    used = {}
    path = fill(a.path_alt)
  end
  if missing then
    raise("cdnkit.plcloud " .. a.name .. ": parameter '" .. missing .. "' is needed for the path" ..
      (missing == "project_id" and " (the tenant id is known only after authenticating with a password)" or ""))
  end
  local method = (fixed.method or a.http):upper()
  local q, body = {}, nil
  for k, v in pairs(flat) do
    local p = byname[k]
    if used[k] or (p and p.path) then -- luacheck: ignore (in the path)
    elseif P.query and P.query[k] then
      q[k] = wire_string(v)
    else
      body = body or {}
      body[k] = v
    end
  end
  local qs = transport.form_query(q)
  local payload
  if method == "POST" or method == "PUT" then
    body = body or {}
    if a.wrap then body = { [a.wrap] = body } end
    payload = core.json_encode(body)
  end
  local endpoint = fixed.endpoint or st.endpoint or "{endpoint from the service catalog}"
  local url = endpoint .. path .. (qs ~= "" and ("?" .. qs) or "")
  -- prepare() shows the live token only when given one (a REPL prints it)
  local token = fixed.token or (fixed.prepare and "{token: give prepare's token = to show one}")
    or core.client_token(client) or "{token from keystone}"
  local headers = { Accept = JSON, ["User-Agent"] = st.user_agent, ["X-Auth-Token"] = token }
  if payload then headers["Content-Type"] = JSON end
  local req = transport.request(st, method, url, headers, payload)
  local meta = {}
  if fixed.explain then meta.explain = { path = path, query = qs, body = payload, key = a.key, wrap = a.wrap } end
  return req, meta
end

local RETRYABLE_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

function A.parse(st, action, status, headers, body, meta)
  local a = st.api_index[action]
  local rid = headers["x-openstack-request-id"] or headers["x-compute-request-id"]
  if status >= 200 and status < 300 then
    local key = a and a.key
    if not key then return true end
    if body == "" and (status == 204 or (a and a.http ~= "GET")) then return true end
    local data, jerr = core.json_decode(body)
    if type(data) ~= "table" then
      return nil, { code = "json", http_status = status, retryable = false, request_id = rid, ambiguous = a.http ~= "GET",
        message = "response is not a JSON object (" .. tostring(jerr or type(data)) .. "): " .. errors.excerpt(body) }
    end
    local v = data[key]
    if v == nil then
      return nil, { code = "json", http_status = status, retryable = false, request_id = rid, ambiguous = a.http ~= "GET",
        message = "the answer has no '" .. key .. "' key: " .. errors.excerpt(body) }
    end
    return v
  end
  local data = core.json_decode(body)
  local e = type(data) == "table" and (type(data.error) == "table" and data.error or data) or {}
  local msg = type(e.message) == "string" and e.message or errors.unexpected(status, headers["content-type"] or "", body)
  if status == 401 then
    -- the token was refused (expired, revoked): nothing ran; the engine
    -- calls session() to renew it (which drops it first) and resends once
    return nil, { code = "auth", http_status = 401, message = "the token was refused: " .. msg, request_id = rid,
      retryable = false, ambiguous = false, reauth = true }
  end
  local code = type(e.title) == "string" and e.title:gsub("%s+", "") or "http"
  if code == "" then code = "http" end
  return nil, { code = code, http_status = status, message = msg, request_id = rid,
    retryable = RETRYABLE_STATUS[status] or false, ambiguous = status >= 500 }
end

---------------------------------------------------------------------------
-- refresh{} / prefetch{}: URLs go to their domain's cache_flush

--- Once per refresh: the account's domains (host -> domain id).
-- a URL's host as the account's domain list names it: no port, no
-- trailing dot, lower case
local function domain_of(host)
  return (host:gsub(":%d*$", ""):gsub("%.$", ""):lower())
end

function A.batch_scope(client, st, invoke)
  local list, err = invoke("cdn.list", {})
  if not list then return nil, err end
  if type(list) ~= "table" then
    return nil, { code = "json", retryable = false, message = "cdn.list answered no list of domains" }
  end
  local hosts = {}
  for _, d in ipairs(list) do
    local id = type(d) == "table" and d.id
    if type(id) == "string" and id:match("^%d+$") then id = tonumber(id) end
    -- only ids cache_flush can take (a positive integer)
    if type(d) == "table" and type(d.domain) == "string" and type(id) == "number" and id >= 1 and
       id == math.floor(id) then
      hosts[domain_of(d.domain)] = id
    end
  end
  return { hosts = hosts }
end

--- An item that cannot be sent: its error, or nil.
function A.batch_reject(kind, item, scope, host)
  if not scope.hosts[domain_of(host)] then
    return { code = "unknown_domain", retryable = false, ambiguous = false, sent = false,
             message = "'" .. domain_of(host) .. "' is not one of the account's domains (pl.cdn:list())" }
  end
end

function A.batch_params(kind, items, extra, version, scope, host)
  local p = {}
  for k, v in pairs(extra or {}) do p[k] = v end
  if kind == "prefetch" then
    p.urls = items
    return "cdn.prefetch", p
  end
  p.domain_id = scope.hosts[domain_of(host)]
  if kind == "refresh_dir" then p.dirs = items else p.urls = items end
  return "cdn.cache_flush", p
end

function A.task_ids(kind, data)
  if kind == "prefetch" then
    local id = type(data) == "table" and data.request_id
    if id ~= nil and id ~= core.null and id ~= "" then return { validate.id_string(id) } end
  end
  return {}
end

return A
