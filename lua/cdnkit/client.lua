-- cdnkit.client: the engine of one call.  Builds the client of a vendor from
-- its adapter (lua/cdnkit/vendors/<vendor>.lua, contract in vendors/README.md)
-- and the API data of the chosen version; methods are generated, one per
-- declared action, plus prepare/call/actions/help/version and the helpers.
--
-- The path of one call:
--   plan (validate.plan, compiled once per action) -> adapter.build (signs in C)
--   -> transport (libcurl in C, or a Lua transport) -> adapter.parse
--   -> retry / clock re-sign / pacing (here, for every transport alike).
-- Nothing is built for tracing unless a trace function is set.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"
local validate = require "cdnkit.validate"
local errors = require "cdnkit.errors"
local retry = require "cdnkit.retry"
local pace = require "cdnkit.pace"
local adapter = require "cdnkit.adapter"
local transport = require "cdnkit.transport"

local type, pairs, ipairs, setmetatable = type, pairs, ipairs, setmetatable
local monotime = core.monotime

local M = {}
local VERSION = core.VERSION

-- client userdata -> its Lua state (weak keys: the state goes with the client)
local STATE = setmetatable({}, { __mode = "k" })
M.STATE = STATE

local EMPTY = setmetatable({}, { __newindex = function() error("read-only", 2) end })
local NOFIX = EMPTY

local function trace(st, event)
  if st.trace then pcall(st.trace, event) end
end

-- mask what must not be shown in traces: signatures, session tokens, auth headers
local function redact_params(s)
  -- Signature=, and every ...Token= (Tencent's Token, Alibaba's SecurityToken)
  return (s:gsub("([?&]Signature=)[^&]*", "%1***"):gsub("^(Signature=)[^&]*", "%1***")
           :gsub("([?&][%w_]*Token=)[^&]*", "%1***"):gsub("^([%w_]*Token=)[^&]*", "%1***"))
end
local SECRET_HEADERS = { authorization = true, ["x-auth-token"] = true, ["x-tc-token"] = true,
                         ["x-acs-security-token"] = true }
local function redact_req(req)
  local h = {}
  for k, v in pairs(req.headers or {}) do
    h[k] = SECRET_HEADERS[k:lower()] and "***" or v
  end
  local body = req.body
  if body then body = redact_params(body) end
  return { method = req.method, url = redact_params(req.url), headers = h, body = body }
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
  -- an answer over max_body, one that is not HTTP, or a request that cannot
  -- be made is not transient: no retry
  if e.overflow or e.malformed then
    err.retryable = false
    err.overflow, err.malformed = e.overflow, e.malformed
  end
  return err
end

--- Trace a request about to be sent (signature redacted).  Callers check
-- st.trace first, so nothing is built when tracing is off.
function M.trace_request(st, action, req)
  trace(st, { event = "request", vendor = st.adapter.name, action = action, request = redact_req(req) })
end

--- What one transfer came to: data, or nil, the structured error and the
-- response headers (a table, or the raw block the curl transport returns
-- for a 2xx answer: core.parse_headers reads it when needed).
-- `status` nil means a transport failure, described by `headers`.
function M.outcome(st, action, meta, status, headers, body)
  local A = st.adapter
  if not status then
    local err = transport_error(A.name, action, headers or {})
    if st.trace then trace(st, { event = "error", vendor = A.name, action = action, error = err }) end
    return nil, err
  end
  local h = headers
  if type(h) ~= "table" then h = EMPTY end
  if st.trace then
    if type(headers) == "string" then headers = core.parse_headers(headers); h = headers end
    trace(st, { event = "response", vendor = A.name, action = action, status = status,
                headers = headers, body = body })
  end
  local data, err = A.parse(st, action, status, h, body or "", meta)
  if err then
    err = errors.new(A.name, action, err)
    if err.ambiguous == nil then err.ambiguous = status >= 500 end
    if st.trace then trace(st, { event = "error", vendor = A.name, action = action, error = err }) end
    return nil, err, headers
  end
  return data
end

--- After a timestamp rejection: take the server's clock from its Date header.
function M.learn_clock(st, headers)
  if type(headers) == "string" then headers = core.parse_headers(headers) end
  local d = type(headers) == "table" and headers["date"]
  local server = d and core.parse_http_date(d)
  if server then
    st.clock_offset = server - core.now()
    return true
  end
  return false
end
local learn_clock = M.learn_clock

-- one request on the client's transport -> status, headers, body | nil, err
-- (inside nginx the phase decides: cosockets, or libcurl at start-up)
local function send(st, req, always_headers)
  local curl = st.curl
  if st.route and transport.route(st) then curl = nil end
  if curl then return curl:_perform(req, always_headers or st.trace ~= nil) end
  return transport.lua_send(st.send, req)
end

-- the same, the headers always a table (requests cdnkit makes for itself)
local function send_parsed(st, req)
  local status, headers, body = send(st, req, true)
  if status and type(headers) == "string" then headers = core.parse_headers(headers) end
  return status, headers, body
end

--- A request an adapter makes itself (Plcloud's keystone token request):
-- sent on the client's transport, traced as `shown` (a copy without the
-- secret) with the answer's body passed through `redact` first.  Returns
-- status, headers (a table), body | nil, err.
function M.exchange(st, action, req, shown, redact)
  local vendor = st.adapter.name
  if st.trace then
    trace(st, { event = "request", vendor = vendor, action = action, request = shown or redact_req(req) })
  end
  local status, headers, body = send_parsed(st, req)
  if st.trace and status then
    trace(st, { event = "response", vendor = vendor, action = action, status = status, headers = headers,
                body = redact and body and redact(body) or body })
  end
  return status, headers, body
end

-- the adapter's session (a token to get or renew before sending, Plcloud):
-- true | nil, structured err
local function session(self, st, name, force)
  local ok, e = true, nil
  if st.role then
    -- (on the client's transport, untraced: the answer holds the secret)
    ok, e = require("cdnkit.role").ensure(self, st, force, function(req) return send_parsed(st, req) end)
  end
  if ok and st.adapter.session then
    ok, e = st.adapter.session(self, st, force, function(action, req, shown, redact)
      return M.exchange(st, action, req, shown, redact)
    end)
  end
  if ok then return true end
  local err = errors.new(st.adapter.name, name, e)
  -- the call itself was not sent
  err.ambiguous, err.sent = false, false
  if st.trace then trace(st, { event = "error", vendor = st.adapter.name, action = name, error = err }) end
  return nil, err
end
M.session = session

--- The whole call: attempts under the retry policy.  `fixed` (prepare's
-- values) is normally nil.
local function invoke(self, st, P, flat, idempotent, until_t)
  local A, name, policy = st.adapter, P.name, st.retry
  local n, clock_fixed, t0 = 0, false, nil
  local renew, renewed = false, false -- a refused token: renewed once per call
  idempotent = idempotent and true or false
  if until_t then
    -- a caller's deadline: the same rule as retry.deadline, whichever is sooner
    local now = monotime()
    local d = until_t - now
    if policy.deadline and policy.deadline < d then d = policy.deadline end
    local p = {}
    for k, v in pairs(policy) do p[k] = v end
    p.deadline = math.max(d, 0.001)
    policy = p
  end
  if policy.deadline then t0 = monotime() end
  local last
  while true do
    n = n + 1
    if st.rate ~= false or st.pacer then
      local at = pace.reserve(st, name)
      if at then
        if t0 and at - t0 >= policy.deadline then
          -- the pacing slot comes after the deadline: do not wait for it
          pace.release(st, name)
          if last then return nil, last end
          return nil, errors.new(A.name, name, {
            code = "timeout", sent = false, ambiguous = false, retryable = false, attempts = 0,
            message = "not sent: the deadline comes before this request's pacing slot",
          })
        end
        local w = at - monotime()
        if w > 0 then st.sleep(w) end
      end
    end
    local data, err, headers, meta
    local ready = true
    if A.session or st.role then
      ready, err = session(self, st, name, renew)
      renew = false
    end
    if ready then
      local req
      req, meta = A.build(self, st, P, flat, NOFIX)
      -- transports may resend only what can run twice (the curl transport
      -- sends the others on a fresh connection, which libcurl never replays)
      req.idempotent = idempotent
      if t0 then
        -- the deadline holds: this attempt gets what is left of it at most
        local left = policy.deadline - (monotime() - t0)
        if left < req.timeout then req.timeout = math.max(left, 0.001) end
      end
      if st.trace then M.trace_request(st, name, req) end
      data, err, headers = M.outcome(st, name, meta, send(st, req))
      if data ~= nil then return data end
    end
    err.attempts = n
    last = err
    if err.reauth and not renewed then
      -- the session token was refused (expired, revoked): nothing ran; a
      -- new token and the same request once more, at once
      renewed, renew = true, true
    elseif err.reauth then
      err.message = err.message .. " (a new token was refused too)"
      return nil, err
    elseif M.clock_resign(st, err, meta, headers, idempotent,
         not clock_fixed and (not t0 or monotime() - t0 < policy.deadline)) then
      -- the vendor rejected our timestamp: take its clock from the Date
      -- header and resend at once (one extra attempt, no backoff)
      clock_fixed = true
    elseif not retry.should_retry(policy, err, n, idempotent, t0 or monotime()) then
      return nil, err
    else
      local wait = retry.wait(policy, n, err)
      if policy.deadline then
        local left = policy.deadline - (monotime() - t0)
        if wait > left then wait = left end
      end
      if wait > 0 then st.sleep(wait) end
    end
  end
end

--- After a failed attempt: judge a replay answer (judge_replay), then say
-- whether to send again at once with the server's clock: only for a
-- timestamp rejection, only when `allowed` (once per call, within its
-- deadline), and for a non-idempotent action only when nothing can have run.
-- Single calls and batches both decide here.
function M.clock_resign(st, err, meta, headers, idempotent, allowed)
  M.judge_replay(st, err, meta, headers, idempotent)
  return err.clock and allowed and (idempotent or not err.ambiguous) and learn_clock(st, headers)
    or false
end

--- A vendor answer that may mean "this request was a replay" (Alibaba
-- SignatureNonceUsed; Tencent v2 4500, "replayed or expired"): cdnkit never
-- sends a nonce twice, so a replay is a transport's silent resend and the
-- first copy may have run: the failure is ambiguous.  Where the same code
-- also means "timestamp expired", the server's clock tells them apart: a
-- timestamp outside the vendor's window (adapter field clock_window) was
-- expired, and expired requests never run.
function M.judge_replay(st, err, meta, headers, idempotent)
  if not err.replay then return end
  local window = st.adapter.clock_window
  if err.clock and window and meta and meta.timestamp then
    if type(headers) == "string" then headers = core.parse_headers(headers) end
    local d = type(headers) == "table" and headers["date"]
    local server = d and core.parse_http_date(d)
    if server and math.abs(server - meta.timestamp) > window then
      err.replay = nil
      err.ambiguous = false
      return
    end
  end
  err.ambiguous = true
  err.clock = nil -- not a clock problem (or not known to be one)
  if not idempotent then err.retryable = false end
end

--- Call action `name` with already validated parameters (pagination,
-- report:wait and the quota check use it).  `deadline` (a core.monotime()
-- value) bounds the call: no retry after it, and the request timeout is cut
-- to what is left.
function M.invoke(self, name, flat, idempotent, deadline)
  local st = STATE[self]
  return invoke(self, st, st.plan(name) or { name = name }, flat, idempotent, deadline)
end

local function check_self(self, name)
  local st = type(self) == "userdata" and STATE[self]
  if not st then
    local r, m = name:match("^([%w_]+)%.([%w_]+)$")
    raise("cdnkit: call " .. name .. " with a colon: " ..
      (r and ("client." .. r .. ":" .. m .. "(...) or client[\"" .. name .. "\"](client, { ... })")
         or ("client:" .. name .. "{ ... }")))
  end
  if self:is_closed() then raise("cdnkit: this client is closed") end
  return st
end

local function make_action_method(name)
  return function(self, params)
    local st = check_self(self, name)
    local P = st.plan(name)
    local flat, msg = validate.check_plan(P, params, st.adapter.list_form)
    if not flat then raise(msg) end
    return invoke(self, st, P, flat, P.idempotent)
  end
end

local list_mt = { __tostring = function(t) return table.concat(t, "\n") end }

-- build the methods table of one vendor version (once per lua_State)
local function build_methods(A, V)
  local api = V.api
  local methods = {}
  for _, a in ipairs(api.actions) do
    methods[a.name] = make_action_method(a.name)
  end

  function methods.actions(self)
    check_self(self, "actions")
    local t = {}
    for _, a in ipairs(api.actions) do t[#t + 1] = a.name end
    table.sort(t)
    return setmetatable(t, list_mt)
  end

  -- help() results print readably in a REPL (print / tostring)
  function methods.help(self, action)
    check_self(self, "help")
    local helptext = require "cdnkit.helptext"
    if action == nil then
      local t = {}
      for _, a in ipairs(api.actions) do t[#t + 1] = { action = a.name, doc = a.doc } end
      table.sort(t, function(x, y) return x.action < y.action end)
      return setmetatable(t, { __tostring = function() return helptext.list(A.name, api) end })
    end
    local a = V.index[action]
    if not a then
      raise(type(action) == "string" and M.moved_hint(A, V, action) or
        ("cdnkit." .. A.name .. ": unknown action '" .. tostring(action) .. "'" .. M.did_you_mean(api, action)))
    end
    local params = {}
    for i, p in ipairs(a.params or {}) do
      local d = { name = p[1], type = p[2], required = p.required and true or false, doc = p.doc }
      for _, k in ipairs { "enum", "min", "max", "max_items", "format", "sep", "item", "max_len", "body",
                           "struct", "fields" } do
        d[k] = p[k]
      end
      params[i] = d
    end
    return setmetatable({
      action = a.name, doc = a.doc, ref = a.ref, source = helptext.ref(api, a.ref),
      method = a.http or V.default_method, path = a.path or V.path,
      idempotent = a.idempotent and true or false,
      params = params, limits = a.limits or {}, one_of = a.one_of, requires_any = a.requires_any,
      paginate = a.paginate, batch = a.batch,
    }, { __tostring = function() return helptext.action(A.name, api, a) end })
  end

  local FIXED = { "timestamp", "nonce", "method", "explain", "call" }
  for k in pairs(A.fixed or {}) do FIXED[#FIXED + 1] = k end
  table.sort(FIXED)

  function methods.prepare(self, action, params, fixed)
    local st = check_self(self, "prepare")
    fixed = fixed or {}
    validate.only_keys(fixed, FIXED, "cdnkit: prepare: ")
    if A.check_fixed then A.check_fixed(fixed) end
    local P = st.plan(action)
    local flat, msg
    if fixed.call then
      -- as call() sends it: the parameters as given, no checks
      P = P or { name = action }
      flat = validate.loose(params, A.list_form, V.api.wire)
    elseif P then
      flat, msg = validate.check_plan(P, params, A.list_form)
      if not flat then raise(msg) end
    else
      raise(type(action) == "string" and M.moved_hint(A, V, action) or
        ("cdnkit." .. A.name .. ": unknown action '" .. tostring(action) .. "'"))
    end
    if fixed.method and not V.methods[fixed.method] then
      raise("cdnkit." .. A.name .. ": method must be one of the vendor's (" .. V.method_list .. ")")
    end
    -- (adapters may show less of a live session token in a prepared request)
    local req, meta = A.build(self, st, P, flat, setmetatable({ prepare = true }, { __index = fixed }))
    if fixed.explain then req.explain = meta and meta.explain end
    return req
  end

  function methods.call(self, action, params, opts)
    local st = check_self(self, "call")
    if type(action) ~= "string" or action == "" then
      raise("cdnkit." .. A.name .. ": call: action name (string) expected")
    end
    if params ~= nil and type(params) ~= "table" then
      raise("cdnkit." .. A.name .. ": call: parameters must be a table")
    end
    local flat = validate.loose(params, A.list_form, V.api.wire)
    if opts and opts.version then flat.Version = opts.version end
    local P = st.plan(action)
    local idem = opts and opts.idempotent
    if idem == nil then idem = P and P.idempotent or false end
    return invoke(self, st, P or { name = action }, flat, idem)
  end

  function methods.vendor() return A.name end
  --- "options", "environment" or "profile:<name>": where the client's
  -- credentials came from (never the credentials themselves)
  function methods.credentials_source(self)
    return check_self(self, "credentials_source").credentials_source
  end
  function methods.version() return V.version end
  function methods._state(self) return STATE[self] end

  -- Lua helpers (pagination, batching) are attached by their modules
  require("cdnkit.paginate").install(methods, A)
  require("cdnkit.batch").install(methods, A)
  -- unknown names raise at once (a typo in an action name is a usage mistake)
  return setmetatable(methods, {
    __index = function(_, k)
      local moved = type(k) == "string" and M.moved_hint(A, V, k)
      if moved then raise(moved) end
      local hint = M.did_you_mean(api, k)
      raise(("cdnkit.%s: unknown action or method '%s'%s (client:actions() lists them)")
        :format(A.name, tostring(k), hint))
    end,
  })
end

--- " - did you mean 'X'?" for a name that differs from an action's only in
-- case, or that is the method part of a resource action ("cache_flush" for
-- "cdn.cache_flush"); "" otherwise.
--- Attach a shared pacer (see cdnkit.pace) to `client`, or remove it with
-- nil: cdnkit.queue's fleet-wide rate.  Returns the one it replaced.
function M.set_pacer(client, pacer)
  local st = STATE[client]
  if not st then error("cdnkit: set_pacer needs an open cdnkit client", 2) end
  local old = st.pacer
  st.pacer, st.pacer_held = pacer, nil
  return old
end

function M.did_you_mean(api, k)
  if type(k) ~= "string" then return "" end
  local low = k:lower()
  local names = {}
  for _, a in ipairs(api.actions) do
    local n = a.name:lower()
    if n == low or n:match("%.([%w_]+)$") == low then return " - did you mean '" .. a.name .. "'?" end
    names[#names + 1] = a.name
  end
  -- a near miss (DescribeUserDomain, RefreshCdnUrls)
  return require("cdnkit.suggest").hint(k, names)
end

--- For an action of another API version of the vendor: a message naming its
-- successor in version V (the version's `moved` table) or the version that
-- has it; nil for a name no version declares.
function M.moved_hint(A, V, name)
  local where = ("cdnkit.%s: %s is not in API %s (this client's version)"):format(A.name, name, V.version)
  local others = {}
  for _, ver in ipairs(adapter.version_names(A)) do
    if ver ~= V.version and adapter.version(A, ver).index[name] then others[#others + 1] = ver end
  end
  local succ = V.moved[name]
  if succ == nil and #others == 0 then return nil end
  local old = #others > 0 and (" or create the client with version = \"" .. others[1] .. "\"") or ""
  if succ then
    return where .. ": use " .. succ .. " instead" .. (old ~= "" and ("," .. old) or "") .. " (see client:help(\"" ..
      succ:match("^%w+") .. "\"))"
  elseif succ == false then
    return where .. ": the vendor removed it without a successor" ..
      (old ~= "" and (";" .. old:sub(4)) or "")
  end
  return where .. ":" .. old:sub(4)
end

-- Resource objects (Plcloud's Python client: plcloud.cdn.list(),
-- plcloud.ticket.reply(id, text)): for API data that declares `resources`,
-- client.<resource> is an object whose methods take the call's positional
-- arguments (the data's `args`; "*" = a table of named parameters) and call
-- the action "<resource>.<method>" with named parameters.  A fresh small
-- table per access: it holds the client, and nothing holds it.
function M.install_resources(A, V, mt, methods)
  local api = V.api
  local res_mt = {}
  for rname, rdoc in pairs(api.resources) do
    local calls, names = {}, {}
    for _, a in ipairs(api.actions) do
      local r, m = a.name:match("^([%w_]+)%.([%w_]+)$")
      if r == rname then calls[m] = a; names[#names + 1] = m end
    end
    table.sort(names)
    local list = table.concat(names, ", ")
    local rm = {}
    local this_mt = { __name = "cdnkit." .. A.name .. "." .. rname }
    local function check(res, m)
      if getmetatable(res) ~= this_mt then
        raise("cdnkit." .. A.name .. ": call " .. rname .. "." .. m .. " with a colon: client." .. rname ..
          ":" .. m .. "(...)")
      end
    end
    for m, a in pairs(calls) do
      local args, full = a.args or {}, a.name
      local shown = {}
      for i, x in ipairs(args) do shown[i] = x == "*" and "{ ... }" or x end
      local where = "cdnkit." .. A.name .. " " .. rname .. ":" .. m .. "(" .. table.concat(shown, ", ") .. "): "
      rm[m] = function(res, ...)
        check(res, m)
        local n = select("#", ...)
        if n > #args then
          raise(where .. "takes " .. #args .. " argument" .. (#args == 1 and "" or "s") .. ", got " .. n)
        end
        local params = {}
        for i = 1, n do
          local v, an = select(i, ...), args[i]
          if an == "*" then
            if v ~= nil then
              if type(v) ~= "table" or (#v > 0) then
                raise(where .. "argument " .. i .. " must be a table of named parameters, got " ..
                  (type(v) == "table" and "an array" or type(v)))
              end
              for k, x in pairs(v) do
                if params[k] ~= nil then raise(where .. "parameter '" .. tostring(k) .. "' is given twice") end
                params[k] = x
              end
            end
          elseif v ~= nil then
            params[an] = v
          end
        end
        local client = res.client
        return client[full](client, params)
      end
    end
    function rm.help(res, m)
      check(res, "help")
      if m ~= nil then return res.client:help(rname .. "." .. tostring(m)) end
      -- this resource's calls only
      local t = {}
      for _, n in ipairs(names) do t[#t + 1] = { action = rname .. "." .. n, doc = calls[n].doc } end
      return setmetatable(t, { __tostring = function()
        local out = { ("%s.%s (%s): %d calls"):format(A.name, rname, rdoc, #t), "" }
        for i, n in ipairs(names) do
          local args = {}
          for k, x in ipairs(calls[n].args or {}) do args[k] = x == "*" and "{ ... }" or x end
          out[#out + 1] = ("  %-44s %s"):format(rname .. ":" .. n .. "(" .. table.concat(args, ", ") .. ")", t[i].doc or "")
        end
        return table.concat(out, "\n")
      end })
    end
    this_mt.__index = setmetatable(rm, { __index = function(_, k)
      raise(("cdnkit.%s: %s has no method '%s' (%s)"):format(A.name, rname, tostring(k), list))
    end })
    this_mt.__tostring = function() return "cdnkit." .. A.name .. " " .. rname .. " (" .. rdoc .. "): " .. list end
    res_mt[rname] = this_mt
  end
  mt.__index = function(self, k)
    local r = res_mt[k]
    if r then return setmetatable({ client = self }, r) end
    return methods[k]
  end
end

local classes = {} -- "vendor@version" -> { methods =, mt =, plan = fn }

local function class_of(A, V)
  local key = A.name .. "@" .. V.version
  local c = classes[key]
  if not c then
    local methods = build_methods(A, V)
    local plans = {}
    local mt = core.client_class(A.name, methods)
    -- close() also closes the client's connections (the curl transport);
    -- the C close wipes the secret.  Garbage collection does both anyway.
    local cclose = rawget(methods, "close")
    local function close(self)
      local st = STATE[self]
      if st and st.curl then st.curl:close() end
      return cclose(self)
    end
    rawset(methods, "close", close)
    mt.__close = close
    if V.api.resources then M.install_resources(A, V, mt, methods) end
    c = {
      mt = mt,
      -- the compiled plan of an action (nil for an undeclared one)
      plan = function(name)
        local P = plans[name]
        if P == nil then
          local a = V.index[name]
          if not a then return nil end
          P = validate.plan(V.api, a)
          plans[name] = P
        end
        return P
      end,
    }
    classes[key] = c
  end
  return c
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
  retry = "table", transport = "any", trace = "function", max_body = "number",
  rate = "number", sleep = "function", version = "string", profile = "string",
  metadata_endpoint = "string",
}

-- (a key no option can have: marks the options whose credentials came from
-- the profile file, and its name)
local PROFILE_CREDS = setmetatable({}, { __tostring = function() return "profile credentials" end })

-- The profile file (cdnkit.profile), read last: the options it names for
-- this vendor that the options table lacks.  Credentials in the environment
-- win over the file's (never a key id from one and a secret from the other).
local function with_profile(A, opts)
  if opts.profile ~= nil and type(opts.profile) ~= "string" then
    raise("cdnkit." .. A.name .. ": option 'profile' must be a string")
  end
  local prof, pname = require("cdnkit.profile").options(A.name, opts.profile)
  if next(prof) == nil then return opts end
  local creds, env_creds = {}, false
  for _, list in ipairs { A.credentials, A.credentials_alt or {} } do
    for _, c in ipairs(list) do
      creds[c[1]] = true
      -- credentials come whole from one source: options or the environment
      -- naming any of them leave the file's alone (a key id from one place
      -- and a secret or token from another never meet)
      if core.env_set(c[2]) or opts[c[1]] ~= nil then env_creds = true end
    end
  end
  if A.token then creds[A.token[1]] = true end
  local out = {}
  for k, v in pairs(opts) do out[k] = v end
  for k, v in pairs(prof) do
    local want = COMMON[k] or A.options[k]
    if want and want ~= "function" and want ~= "table" and out[k] == nil and
       not (env_creds and creds[k]) and k ~= "profile" and k ~= "transport" then
      if want == "number" then
        local n = tonumber(v)
        if not n then
          raise(("cdnkit.%s: profile '%s': %s must be a number, got '%s'"):format(A.name, pname, k, v))
        end
        v = n
      elseif want == "boolean" then
        if v ~= "true" and v ~= "false" then
          raise(("cdnkit.%s: profile '%s': %s must be true or false, got '%s'"):format(A.name, pname, k, v))
        end
        v = v == "true"
      end
      out[k] = v
      if creds[k] then out[PROFILE_CREDS] = pname end
    end
  end
  return out
end

local function check_options(A, opts)
  for k, v in pairs(opts) do
    local want = type(k) == "string" and (COMMON[k] or A.options[k])
    if k == PROFILE_CREDS then want = "any" end
    if not want then
      raise("cdnkit." .. A.name .. ": unknown option '" .. tostring(k) .. "'")
    end
    local ok = want == "any" or type(v) == want or (k == "retry" and v == false) or
      (k == "rate" and v == false)
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
  if opts.user_agent and opts.user_agent:find("[%z\r\n]") then
    raise("cdnkit." .. A.name .. ": option 'user_agent' must not contain line breaks or NUL")
  end
  if opts.rate and not (opts.rate > 0 and opts.rate <= 1e6) then
    raise("cdnkit." .. A.name .. ": option 'rate' must be requests per second (> 0) or false")
  end
end

--- Create a client of adapter A from the user's options.
function M.new(A, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then raise("cdnkit." .. A.name .. ": options table expected") end
  check_options(A, opts)
  local given = opts
  opts = with_profile(A, opts)
  if opts ~= given then check_options(A, opts) end
  local ver = opts.version or A.default_version
  local V = adapter.version(A, ver)
  if not V then
    raise("cdnkit." .. A.name .. ": option 'version': unknown API version '" .. ver .. "' (" ..
      table.concat(adapter.version_names(A), ", ") .. ")")
  end
  -- the last link of the chain: the cloud instance's role, asked only when
  -- nothing earlier gave credentials
  local role_info, role_why, vendor_profile
  -- the vendor's own CLI profile (~/.aliyun/config.json, ~/.tccli/)
  if A.vendor_profile and not M.has_credentials(A, opts) then
    local vo, label = A.vendor_profile()
    if vo then
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      for k, v in pairs(vo) do if o[k] == nil then o[k] = v end end
      opts, vendor_profile = o, label
    end
  end
  if A.instance_role and not M.has_credentials(A, opts) then
    local rl = require "cdnkit.role"
    local base, off = rl.base(A.instance_role, opts)
    if base then
      local c, why = rl.fetch(A.instance_role, base)
      if c then
        local o = {}
        for k, v in pairs(opts) do o[k] = v end
        local creds = A.credentials
        o[creds[1][1]], o[creds[#creds][1]] = c.key_id, c.secret
        if A.token then o[A.token[1]] = c.token end
        opts = o
        role_info = { spec = A.instance_role, base = base, expires = c.expires,
                      renew_at = rl.renew_at(c.expires), name = c.role }
      else
        role_why = A.instance_role.name .. ": " .. why
      end
    else
      role_why = A.instance_role.name .. ": " .. off
    end
  end
  M.role_why = role_why
  local key_id, secret, secret_env, alt_creds, token = M.read_credentials(A, opts)
  if A.check_options then A.check_options(opts) end
  local method = opts.method or V.default_method
  if not V.methods[method] then
    raise("cdnkit." .. A.name .. ": option 'method' must be one of " .. V.method_list)
  end
  local endpoint = opts.endpoint or (A.endpoint_env and os.getenv(A.endpoint_env)) or
    (A.endpoint_of and A.endpoint_of(opts, V.version)) or V.endpoint
  if endpoint == "" then endpoint = V.endpoint end
  -- (a vendor without a fixed host, Plcloud, learns it when it authenticates)
  if endpoint then endpoint = M.check_endpoint(A.name, endpoint, A.endpoint_path) end
  local T = transport.resolve(opts.transport, A.name)
  local class = class_of(A, V)
  local st = {
    adapter = A, api = V.api, api_index = V.index, plan = class.plan, sign = V.sign,
    version = V.version, path = V.path, task_status = V.task_status, quota = V.quota,
    endpoint = endpoint, method = method,
    -- where requests go: the endpoint and the version's path, and its GET prefix
    url = endpoint and endpoint .. V.path, url_get = endpoint and endpoint .. V.path .. "?",
    curl = T.curl, send = T.send, send_many = T.send_many, route = T.route, ngx_only = T.ngx_only,
    trace = opts.trace,
    retry = retry.policy(opts.retry), sleep = make_sleep(opts.sleep), clock_offset = 0,
    rate = opts.rate,
    user_agent = opts.user_agent or ("cdnkit/" .. VERSION),
    settings = {
      timeout = opts.timeout or 30, connect_timeout = opts.connect_timeout or 5,
      max_body = opts.max_body or 64 * 1024 * 1024,
      verify_tls = opts.verify_tls ~= false, ca_file = opts.ca_file, proxy = opts.proxy,
    },
  }
  st.credentials_alt = alt_creds ~= nil -- the adapter's second kind of credentials
  A.init(st, opts, key_id, function(url, option) return M.check_endpoint(A.name, url, true, option) end)
  local client = core.new_client(class.mt, {
    key_id = key_id, secret = secret, secret_env = secret_env, endpoint = endpoint or st.auth_url,
    token = token and token.value, token_env = token and token.env,
  })
  st.has_secret = client:_has_secret()
  -- where the credentials came from (never the secret): client:credentials_source()
  local creds = alt_creds or A.credentials
  local secret_opt = creds[#creds][1]
  if role_info then
    st.role = role_info
    st.credentials_source = "instance-role:" .. role_info.name
  elseif vendor_profile then
    st.credentials_source = "profile:" .. vendor_profile
  elseif opts[PROFILE_CREDS] then
    st.credentials_source = "profile:" .. opts[PROFILE_CREDS]
  elseif given[secret_opt] ~= nil or (A.token and given[A.token[1]] ~= nil and not st.has_secret) then
    st.credentials_source = "options"
  else
    st.credentials_source = "environment"
  end
  if not st.has_secret then
    local tok = A.token and A.token.alone and core.client_token(client) ~= nil
    if not tok then
      client:close()
      local creds = alt_creds or A.credentials
      M.no_credentials(A, creds[#creds][1], creds)
    elseif not endpoint then
      client:close()
      raise("cdnkit." .. A.name .. ": option '" .. A.token[1] .. "' needs 'endpoint' too (the service URL; " ..
        "without a password cdnkit cannot read it from the service catalog)" ..
        (A.endpoint_env and (", or set " .. A.endpoint_env) or ""))
    end
  end
  STATE[client] = st
  return client
end

--- The endpoint option, checked: scheme://host[:port], nothing else.  Every
-- fault is a usage error naming the option.
function M.check_endpoint(vendor, endpoint, allow_path, option)
  option = option or "endpoint"
  local function bad(why)
    raise("cdnkit." .. vendor .. ": option '" .. option .. "' " .. why .. ", got " ..
      string.format("%q", endpoint):gsub("\\\n", "\\n"))
  end
  if endpoint:find("@", 1, true) then
    raise("cdnkit." .. vendor .. ": option '" .. option .. "' must not contain credentials (user:password@)")
  end
  if allow_path then
    -- scheme://host[:port]/path (a service URL, e.g. keystone's /v2.0): the
    -- authority is checked like an endpoint's
    local base, path = endpoint:match("^(https?://[^/]+)(/.*)$")
    if base then
      if path:find("[%z%c%s#?]") then bad("must not contain spaces, control characters, '?' or '#'") end
      M.check_endpoint(vendor, base, false, option)
      return endpoint
    end
  end
  if endpoint:find("[%z%c%s]") then bad("must not contain spaces, control characters or NUL") end
  if endpoint:find("[#?]") then bad("must not contain a query or fragment ('?', '#')") end
  local scheme, rest = endpoint:match("^(https?)://(.+)$")
  if not scheme then bad("must be http:// or https:// followed by the host") end
  local host, port
  if rest:sub(1, 1) == "[" then
    local v6, tail = rest:match("^%[([%x:%.]+)%](.*)$")
    if not v6 or not v6:find(":", 1, true) or v6:find(":::", 1, true) or
       select(2, v6:gsub("::", "")) > 1 then
      bad("has a broken IPv6 literal (expected [address])")
    end
    host = v6
    port = tail:match("^:(%d+)$")
    if tail ~= "" and not port then bad("must be scheme://host[:port]" .. (allow_path and "[/path]" or " without a path")) end
  else
    host, port = rest:match("^([%w%.%-_]+):(%d+)$")
    if not host then
      host = rest:match("^([%w%.%-_]+)$")
      if not host then bad("must be scheme://host[:port]" .. (allow_path and "[/path]" or " without a path")) end
    end
  end
  if port and not (tonumber(port) >= 1 and tonumber(port) <= 65535) then
    bad("has a port outside 1-65535")
  end
  return endpoint
end

function M.no_credentials(A, missing, creds)
  local names, envs = {}, {}
  for i, d in ipairs(creds or A.credentials) do names[i] = d[1]; envs[i] = d[2] end
  local prof = require "cdnkit.profile"
  local file = prof.path() or "~/.config/cdnkit/credentials"
  -- what the profile file held, when there is one
  local okr, sections, order = pcall(prof.read, prof.path())
  local pnote = ""
  if okr and sections then
    local want = os.getenv("CDNKIT_PROFILE")
    if not want or want == "" then want = "default" end
    if not sections[want] then
      pnote = ("; %s has no [%s] profile (it has: %s)"):format(file, want,
        #order > 0 and table.concat(order, ", ") or "none")
    end
  elseif okr then
    pnote = "; there is no " .. file
  end
  -- a part of the credentials in the environment keeps the file's out
  local envs_set = {}
  for _, d in ipairs(creds or A.credentials) do
    if core.env_set(d[2]) then envs_set[#envs_set + 1] = d[2] end
  end
  if #envs_set > 0 then
    pnote = pnote .. "; " .. table.concat(envs_set, ", ") .. " is set, so the profile file's credentials were not used"
  end
  local role = M.role_why and ("; tried the instance role: " .. M.role_why) or ""
  M.role_why = nil
  raise("cdnkit." .. A.name .. ": no credentials found: give " .. table.concat(names, " and ") ..
    ", or set " .. table.concat(envs, " and ") .. ", or put them in a profile of " .. file ..
    " (" .. missing .. " is missing" .. pnote .. role .. ")")
end

--- Whether the options or the environment name any credentials (then the
-- instance role is not asked).
function M.has_credentials(A, opts)
  for _, list in ipairs { A.credentials, A.credentials_alt or {} } do
    for _, c in ipairs(list) do
      if opts[c[1]] ~= nil or core.env_set(c[2]) then return true end
    end
  end
  if A.token and A.token.alone and (opts[A.token[1]] ~= nil or core.env_set(A.token[2])) then return true end
  return false
end

--- The key id from the options or the environment, and the secret: from the
-- options (a string), or else the name of its environment variable, which
-- the C core reads itself so that the secret never becomes a Lua string.
-- As the adapter declares them ({ option, ENV_VAR } pairs, key id first,
-- the secret last).
function M.read_credentials(A, opts)
  local creds = A.credentials
  -- a vendor's second kind of credentials (Wangsu's legacy username and
  -- api_key), used when the options name them
  local alt = A.credentials_alt
  local use_alt = alt and (opts[alt[1][1]] ~= nil or opts[alt[#alt][1]] ~= nil)
  -- or, with no options naming either kind, when only the environment has it
  if alt and not use_alt and opts[creds[1][1]] == nil and opts[creds[#creds][1]] == nil and
     os.getenv(creds[1][2]) == nil and os.getenv(alt[1][2]) ~= nil then
    use_alt = true
  end
  if use_alt then creds = alt end
  -- a ready session token (Plcloud's keystone token): from the options, or
  -- its environment variable, which the C core reads itself
  local token
  if A.token then
    local tv = opts[A.token[1]]
    if tv ~= nil and (type(tv) ~= "string" or tv == "") then
      raise("cdnkit." .. A.name .. ": option '" .. A.token[1] .. "' must be a non-empty string")
    end
    if tv ~= nil then
      token = { value = tv }
    elseif core.env_set(A.token[2]) and (A.token.alone or opts[creds[1][1]] == nil) then
      -- (the environment's session token goes with the environment's keys,
      -- never with keys given as options)
      token = { env = A.token[2] }
    end
  end
  -- a token that is a credential of its own needs nothing else
  local token_alone = token and A.token.alone and opts[creds[#creds][1]] == nil and
    not core.env_set(creds[#creds][2])
  local vals = {}
  for i, c in ipairs(creds) do
    local v = opts[c[1]]
    if v ~= nil and (type(v) ~= "string" or v == "") then
      raise("cdnkit." .. A.name .. ": option '" .. c[1] .. "' must be a non-empty string")
    end
    if v == nil and i < #creds then v = os.getenv(c[2]) end
    if v == "" then v = nil end
    if v == nil and i < #creds and not token_alone then M.no_credentials(A, c[1], creds) end
    vals[i] = v
  end
  local last = creds[#creds]
  local secret = vals[#creds]
  return vals[1], secret, secret == nil and last[2] or nil, use_alt and creds or nil, token
end

return M
