-- cdnkit.client: builds the client of one vendor from its API data and its
-- protocol adapter (lua/cdnkit/vendors/<vendor>.lua).  The C userdata holds
-- the credentials and the libcurl handles; the methods below are generated,
-- one per declared action, plus prepare/call/actions/help and the helpers.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"
local validate = require "cdnkit.validate"
local errors = require "cdnkit.errors"
local retry = require "cdnkit.retry"
local pace = require "cdnkit.pace"

local M = {}
local VERSION = core.VERSION

local cache = {} -- vendor -> methods table (built once per lua_State)

local function state_of(self) return self:_state() end

-- run the user's transport function once: status, headers, body | nil, err.
-- What it returns is checked: a bad answer is a structured error, never a
-- crash further down; header names are lower-cased as libcurl's are.
local function lua_transport(st, req)
  local ok, status, headers, body = pcall(st.transport, req)
  if not ok then
    return nil, { code = "http", message = "transport raised: " .. tostring(status), sent = true }
  end
  if not status then
    local e = headers
    if type(e) ~= "table" then e = { code = "http", message = tostring(e), sent = true } end
    return nil, e
  end
  if type(status) ~= "number" or status < 100 or status > 999 then
    return nil, { code = "http", sent = true,
                  message = "transport returned a bad status (" .. tostring(status) .. ")" }
  end
  if body ~= nil and type(body) ~= "string" then
    return nil, { code = "http", sent = true, message = "transport returned a non-string body" }
  end
  local h = {}
  if type(headers) == "table" then
    for k, v in pairs(headers) do
      if type(k) == "string" then
        if type(v) == "table" then v = table.concat(v, ", ") end
        h[k:lower()] = tostring(v)
      end
    end
  end
  return status, h, body or ""
end
M.lua_transport = lua_transport

-- run the transport once: the user's transport function or libcurl
local function send(self, st, req)
  if st.transport then return lua_transport(st, req) end
  return self:_perform(req)
end

local function trace(st, event)
  if st.trace then pcall(st.trace, event) end
end

-- mask what must not be shown in traces: signatures, session tokens, auth headers
local function redact_params(s)
  return (s:gsub("([?&]Signature=)[^&]*", "%1***"):gsub("^(Signature=)[^&]*", "%1***")
           :gsub("([?&]Token=)[^&]*", "%1***"):gsub("^(Token=)[^&]*", "%1***"))
end
local function redact_url(url)
  return redact_params(url)
end
local function redact_req(req)
  local h = {}
  for k, v in pairs(req.headers or {}) do
    local lk = k:lower()
    h[k] = (lk == "authorization" or lk == "x-auth-token") and "***" or v
  end
  local body = req.body
  if body then body = redact_params(body) end
  return { method = req.method, url = redact_url(req.url), headers = h, body = body }
end

-- turn a transport-level error into the structured error
local function transport_error(vendor, action, e)
  local err = errors.new(vendor, action, {
    code = e.code or "http", message = e.message or "transport error",
    sent = e.sent, curl_code = e.curl_code,
  })
  -- connect failures never reached the server; anything else may have
  err.ambiguous = e.code ~= "connect" and e.sent ~= false
  err.retryable = (e.code == "connect" or e.code == "timeout" or e.code == "http")
  return err
end

--- Trace a request about to be sent (signature redacted).
function M.trace_request(st, action, req)
  trace(st, { event = "request", vendor = st.adapter.name, action = action, request = redact_req(req) })
end

--- What one transfer came to: data, or nil and the structured error.
-- `status` nil means a transport failure, described by `headers`.
function M.outcome(st, action, req, status, headers, body)
  local A = st.adapter
  if not status then
    local err = transport_error(A.name, action, headers or {})
    trace(st, { event = "error", vendor = A.name, action = action, error = err })
    return nil, err
  end
  trace(st, { event = "response", vendor = A.name, action = action, status = status,
              headers = headers, body = body })
  local data, err = A.parse(st, action, status, headers or {}, body or "", req)
  if err then
    err = errors.new(A.name, action, err)
    if err.ambiguous == nil then err.ambiguous = status >= 500 end
    trace(st, { event = "error", vendor = A.name, action = action, error = err })
  end
  return data, err
end

--- After a timestamp rejection: take the server's clock from its Date header.
function M.learn_clock(st, headers)
  local d = headers and headers["date"]
  local server = d and core.parse_http_date(d)
  if server then
    st.clock_offset = server - core.now()
    return true
  end
  return false
end
local learn_clock = M.learn_clock

-- one signed request -> result | nil, err
local function attempt(self, st, action, flat, opts)
  local at = pace.reserve(st, action)
  if at then
    local w = at - core.monotime()
    if w > 0 then st.sleep(w) end
  end
  local req = st.adapter.build(self, st, action, flat, opts or {})
  M.trace_request(st, action, req)
  local status, headers, body = send(self, st, req)
  local data, err = M.outcome(st, action, req, status, headers, body)
  return data, err, status and headers
end

-- the whole call: attempts with retry policy
local function invoke(self, action, flat, idempotent)
  local st = state_of(self)
  local policy = st.retry
  local t0 = core.monotime()
  local n = 0
  local clock_fixed = false
  while true do
    n = n + 1
    local data, err, headers = attempt(self, st, action, flat)
    if data ~= nil then return data end
    err.attempts = n
    if err.clock and not clock_fixed and learn_clock(st, headers) then
      -- the vendor rejected our timestamp: take its clock from the Date
      -- header and resend at once (one extra attempt, no backoff)
      clock_fixed = true
    elseif not retry.should_retry(policy, err, n, idempotent, t0) then
      return nil, err
    else
      local wait = retry.backoff(policy, n)
      if policy.deadline then
        local left = policy.deadline - (core.monotime() - t0)
        if wait > left then wait = left end
      end
      if wait > 0 then st.sleep(wait) end
    end
  end
end
M.invoke = invoke

local function list_form_of(A)
  return A.list_form
end

local function find_action(st, name)
  return st.api_index[name]
end

local function check_params(self, st, a, params)
  return validate.check(st.api, a, params, list_form_of(st.adapter))
end

local function check_self(self, name)
  if type(self) ~= "userdata" then
    raise("cdnkit: call " .. name .. " with a colon: client:" .. name .. "{ ... }")
  end
  if self:is_closed() then raise("cdnkit: this client is closed") end
end

local function make_action_method(name)
  return function(self, params)
    check_self(self, name)
    local st = state_of(self)
    local a = find_action(st, name)
    local flat, msg = check_params(self, st, a, params)
    if not flat then raise(msg) end
    return invoke(self, name, flat, a.idempotent)
  end
end

-- build the per-vendor methods table (once)
local function build_methods(A)
  local api = A.api
  local methods = {}
  for _, a in ipairs(api.actions) do
    if methods[a.name] then error("duplicate action in API data: " .. a.name) end
    methods[a.name] = make_action_method(a.name)
  end

  local list_mt = { __tostring = function(t) return table.concat(t, "\n") end }

  function methods.actions(self)
    check_self(self, "actions")
    local st = state_of(self)
    local t = {}
    for _, a in ipairs(st.api.actions) do t[#t + 1] = a.name end
    table.sort(t)
    return setmetatable(t, list_mt)
  end

  -- help() results print readably in a REPL (print / tostring)
  function methods.help(self, action)
    check_self(self, "help")
    local st = state_of(self)
    local helptext = require "cdnkit.helptext"
    if action == nil then
      local t = {}
      for _, a in ipairs(st.api.actions) do t[#t + 1] = { action = a.name, doc = a.doc } end
      table.sort(t, function(x, y) return x.action < y.action end)
      return setmetatable(t, { __tostring = function() return helptext.list(A.name, st.api) end })
    end
    local a = find_action(st, action)
    if not a then raise("cdnkit." .. A.name .. ": unknown action '" .. tostring(action) .. "'") end
    local params = {}
    for i, p in ipairs(a.params or {}) do
      local d = { name = p[1], type = p[2], required = p.required and true or false, doc = p.doc }
      for _, k in ipairs { "enum", "min", "max", "max_items", "format", "sep", "item", "max_len" } do
        d[k] = p[k]
      end
      params[i] = d
    end
    return setmetatable({
      action = a.name, doc = a.doc, ref = a.ref, source = helptext.ref(st.api, a.ref),
      method = a.http or st.method, path = A.path,
      idempotent = a.idempotent and true or false,
      params = params, limits = a.limits or {}, one_of = a.one_of, requires_any = a.requires_any,
      paginate = a.paginate, batch = a.batch,
    }, { __tostring = function() return helptext.action(A.name, st.api, a) end })
  end

  local FIXED = { "timestamp", "nonce", "method", "explain", "call", "region", "sign_method", "host" }

  function methods.prepare(self, action, params, fixed)
    check_self(self, "prepare")
    local st = state_of(self)
    fixed = fixed or {}
    validate.only_keys(fixed, FIXED, "cdnkit: prepare: ")
    if A.check_fixed then A.check_fixed(fixed) end
    local a = find_action(st, action)
    local flat, msg
    if a then
      flat, msg = check_params(self, st, a, params)
      if not flat then raise(msg) end
    elseif fixed.call then
      flat = validate.loose(params, list_form_of(A))
    else
      raise("cdnkit." .. A.name .. ": unknown action '" .. tostring(action) .. "'")
    end
    if fixed.method and not A.methods[fixed.method] then
      raise("cdnkit." .. A.name .. ": method must be one of the vendor's (" .. A.method_list .. ")")
    end
    local req = A.build(self, st, action, flat, fixed)
    if not fixed.explain then req.explain = nil end
    return req
  end

  function methods.call(self, action, params, opts)
    if type(action) ~= "string" or action == "" then
      raise("cdnkit." .. A.name .. ": call: action name (string) expected")
    end
    if params ~= nil and type(params) ~= "table" then
      raise("cdnkit." .. A.name .. ": call: parameters must be a table")
    end
    local st = state_of(self)
    local flat = validate.loose(params, list_form_of(A))
    if opts and opts.version then flat.Version = opts.version end
    local a = find_action(st, action)
    local idem = opts and opts.idempotent
    if idem == nil then idem = a and a.idempotent or false end
    return invoke(self, action, flat, idem)
  end

  function methods.vendor(self) return A.name end

  -- Lua helpers (pagination, batching) are attached by their modules
  require("cdnkit.paginate").install(methods, A)
  require("cdnkit.batch").install(methods, A)
  -- unknown names raise at once (a typo in an action name is a usage mistake)
  return setmetatable(methods, {
    __index = function(_, k)
      local hint = ""
      if type(k) == "string" then
        for _, a in ipairs(api.actions) do
          if a.name:lower() == k:lower() then hint = " - did you mean '" .. a.name .. "'?" end
        end
      end
      raise(("cdnkit.%s: unknown action or method '%s'%s (client:actions() lists them)")
        :format(A.name, tostring(k), hint))
    end,
  })
end

-- waiting (retry backoff, pacing): the user's `sleep`, else ngx.sleep where
-- the nginx phase allows yielding, else the C core's.  Chosen at each wait,
-- so a client made in init_by_lua does not block workers later.
local function make_sleep(user)
  if user then return user end
  return function(seconds)
    local ngx = rawget(_G, "ngx")
    if ngx and type(ngx.sleep) == "function" and ngx.get_phase then
      local phase = ngx.get_phase()
      if phase ~= "init" and phase ~= "init_worker" and phase ~= "log"
        and phase ~= "header_filter" and phase ~= "body_filter" then
        return ngx.sleep(seconds)
      end
    end
    return core.sleep(seconds)
  end
end

-- options common to every client, with the type each must have
local COMMON = {
  endpoint = "string", method = "string", timeout = "number", connect_timeout = "number",
  proxy = "string", ca_file = "string", verify_tls = "boolean", user_agent = "string",
  retry = "table", transport = "function", trace = "function", max_body = "number",
  rate = "number", sleep = "function",
}

--- Create a client of adapter A from the user's options.
function M.new(A, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then raise("cdnkit." .. A.name .. ": options table expected") end
  for k, v in pairs(opts) do
    local want = type(k) == "string" and (COMMON[k] or A.options[k])
    if not want then
      raise("cdnkit." .. A.name .. ": unknown option '" .. tostring(k) .. "'")
    end
    local ok = type(v) == want or (k == "retry" and v == false) or (k == "rate" and v == false)
    if not ok then
      raise("cdnkit." .. A.name .. ": option '" .. k .. "' must be a " .. want .. ", got " .. type(v))
    end
  end
  for _, k in ipairs { "timeout", "connect_timeout" } do
    local v = opts[k]
    if v ~= nil and not (v > 0 and v < 86400) then
      raise("cdnkit." .. A.name .. ": option '" .. k .. "' must be > 0 and < 86400 seconds")
    end
  end
  if opts.max_body ~= nil and not (opts.max_body >= 1 and opts.max_body <= 2 ^ 30) then
    raise("cdnkit." .. A.name .. ": option 'max_body' must be 1 .. 2^30 bytes")
  end
  if opts.rate and not (opts.rate > 0 and opts.rate <= 1e6) then
    raise("cdnkit." .. A.name .. ": option 'rate' must be requests per second (> 0) or false")
  end
  local key_id, secret = M.read_credentials(A, opts)
  if A.check_options then A.check_options(opts) end
  local method = opts.method or A.default_method
  if not A.methods[method] then
    raise("cdnkit." .. A.name .. ": option 'method' must be one of " .. A.method_list)
  end
  local endpoint = opts.endpoint or A.default_endpoint
  if endpoint:find("@", 1, true) then
    raise("cdnkit." .. A.name .. ": option 'endpoint' must not contain credentials (user:password@)")
  end
  if not endpoint:match("^https?://[^/]+$") then
    raise("cdnkit." .. A.name .. ": option 'endpoint' must be scheme://host[:port] without a path, got '"
      .. endpoint .. "'")
  end
  local methods = cache[A.name]
  if not methods then
    methods = build_methods(A)
    cache[A.name] = methods
  end
  local index = {}
  for _, a in ipairs(A.api.actions) do index[a.name] = a end
  local st = {
    methods = methods, adapter = A, api = A.api, api_index = index,
    endpoint = endpoint, method = method,
    transport = opts.transport, trace = opts.trace,
    retry = retry.policy(opts.retry), sleep = make_sleep(opts.sleep), clock_offset = 0,
    rate = opts.rate,
  }
  A.init(st, opts, key_id)
  local copts = {
    key_id = key_id, secret = secret, endpoint = endpoint,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, proxy = opts.proxy,
    ca_file = opts.ca_file, verify_tls = opts.verify_tls, max_body = opts.max_body,
    user_agent = opts.user_agent or ("cdnkit/" .. VERSION),
  }
  st.user_agent = copts.user_agent
  return core.new_client(A.name, copts, st)
end

--- The key id and secret from the options or the environment, as the
-- adapter declares them ({ option, ENV_VAR } pairs, key id first).
function M.read_credentials(A, opts)
  local vals, names = {}, {}
  for i, c in ipairs(A.credentials) do
    local v = opts[c[1]]
    if v == nil then v = os.getenv(c[2]) end
    if v ~= nil and (type(v) ~= "string" or v == "") then
      raise("cdnkit." .. A.name .. ": option '" .. c[1] .. "' must be a non-empty string")
    end
    vals[i] = v
    names[#names + 1] = c[1]
  end
  for i, c in ipairs(A.credentials) do
    if vals[i] == nil then
      local envs = {}
      for j, d in ipairs(A.credentials) do envs[j] = d[2] end
      raise("cdnkit." .. A.name .. ": no credentials: give " .. table.concat(names, " and ") ..
        ", or set " .. table.concat(envs, " and ") .. " (" .. c[1] .. " is missing)")
    end
  end
  return vals[1], vals[2]
end

return M
