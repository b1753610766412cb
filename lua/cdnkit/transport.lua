-- cdnkit.transport: the transport contract.  A transport moves bytes; the
-- engine (client.lua, batch.lua) signs, paces and retries for every transport
-- alike.  The `transport` client option is
--   "curl"                    libcurl in the C core (the default)
--   "ngx"                     nginx cosockets (transport_ngx.lua); inside nginx
--                             the default (nil) picks it per call in the phases
--                             where cosockets work, libcurl at start-up (M.route)
--   function(req)             a bare function is `send`
--   { send = fn, send_many = fn }
-- send(req) -> status, headers, body | nil, err
-- send_many(reqs, concurrency) -> { {status=, headers=, body=} | {err=}, ... }
-- A request is plain data: method, url, headers, body and the client's
-- transfer settings (timeout, connect_timeout, max_body, verify_tls, ca_file,
-- proxy).  A transport must not change it.  What a Lua transport returns is
-- checked here: a bad answer becomes a structured error, never a crash later.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise

local M = {}

local function bad(message)
  return nil, { code = "http", message = message, sent = true }
end

-- check one answer of a Lua transport: status, headers, body | nil, err
local function checked(ok, status, headers, body)
  if not ok then return bad("transport raised: " .. tostring(status)) end
  if not status then
    local e = headers
    if type(e) ~= "table" then e = { code = "http", message = tostring(e), sent = true } end
    return nil, e
  end
  if type(status) ~= "number" or status < 100 or status > 999 then
    return bad("transport returned a bad status (" .. tostring(status) .. ")")
  end
  if body ~= nil and type(body) ~= "string" then
    return bad("transport returned a non-string body")
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

--- A request as the contract describes it: what the adapter built plus the
-- client's transfer settings (st.settings, fixed when the client is made).
function M.request(st, method, url, headers, body)
  local s = st.settings
  return {
    method = method, url = url, headers = headers, body = body,
    timeout = s.timeout, connect_timeout = s.connect_timeout, max_body = s.max_body,
    verify_tls = s.verify_tls, ca_file = s.ca_file, proxy = s.proxy,
  }
end

--- name=value pairs of `t` (string values), percent-encoded (RFC 3986),
-- sorted by name and joined by "&": a query string or form body as the
-- vendors' signatures canonicalise it.
function M.form_query(t)
  local pct = core.pct_encode
  local keys, n = {}, 0
  for k in next, t do n = n + 1; keys[n] = k end
  table.sort(keys)
  for i = 1, n do local k = keys[i]; keys[i] = pct(k) .. "=" .. pct(t[k]) end
  return table.concat(keys, "&")
end

local FORM = "application/x-www-form-urlencoded"
-- a GET whose URL would be longer than this goes as a POST form instead
-- (servers and proxies refuse long URLs; the vendors take either)
M.MAX_GET_URL = 8192

--- A request whose parameters travel as a signed query string: in the URL
-- (st.url .. "?" .. query) for a GET, as a form body to st.url for a POST.
-- Signs with st.query_sign (if the adapter set one) or st.sign(client,
-- params, method, prefix, explain, ...), which
-- returns prefix .. query (plus up to three explanation values, passed
-- through); `...` are the scheme's own arguments.  A GET too long for a URL
-- is signed again as a POST, unless `pinned` (prepare's method).
-- Returns req, the method used, and the explanation values.
function M.query_request(st, client, params, method, pinned, explain, ...)
  local sign = st.query_sign or st.sign
  local post = method == "POST"
  local q, x1, x2, x3 = sign(client, params, method, post and "" or st.url_get, explain, ...)
  if not post and #q > M.MAX_GET_URL and not pinned then
    method, post = "POST", true
    q, x1, x2, x3 = sign(client, params, method, "", explain, ...)
  end
  local req
  if post then
    req = M.request(st, method, st.url, { ["User-Agent"] = st.user_agent, ["Content-Type"] = FORM }, q)
  else
    req = M.request(st, method, q, { ["User-Agent"] = st.user_agent })
  end
  return req, method, x1, x2, x3
end

--- Run a Lua transport's send once, its answer checked.
function M.lua_send(send, req)
  return checked(pcall(send, req))
end

-- nginx phases where cosockets (and ngx.sleep, ngx.thread) work, and those
-- where blocking is acceptable (start-up: it only delays it)
local COSOCKET = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                   ssl_session_fetch = true, ssl_client_hello = true }
local STARTUP = { init = true, init_worker = true, exit_worker = true }

local function in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function" and type(ngx.socket) == "table"
end

--- Where this code runs: nil outside nginx, else "cosocket" (cosockets and
-- ngx.sleep work), "startup" (blocking only delays start-up) or "other"
-- (neither: a blocking call would stall the worker), and the phase's name.
function M.nginx_phase()
  if not in_nginx() then return nil end
  local phase = rawget(_G, "ngx").get_phase()
  if COSOCKET[phase] then return "cosocket", phase end
  if STARTUP[phase] then return "startup", phase end
  return "other", phase
end

--- Inside nginx: whether this call goes through the cosocket transport
-- (true) or libcurl (false), by the current phase; raises in a phase where
-- neither may run (set, log, header/body filter, balancer, ...).
function M.route(st)
  local phase = rawget(_G, "ngx").get_phase()
  if COSOCKET[phase] then return true end
  local vendor = st.adapter and st.adapter.name or "?"
  if STARTUP[phase] and not st.ngx_only then return false end
  if STARTUP[phase] then
    raise(("cdnkit.%s: transport \"ngx\" cannot send in nginx's %s phase (no cosockets there); " ..
      "send from a timer (ngx.timer.at(0, function() ... end)), or leave transport unset: the " ..
      "default uses libcurl at start-up"):format(vendor, phase))
  end
  raise(("cdnkit.%s: cannot send in nginx's %s phase: cosockets are off there and libcurl would " ..
    "block the worker while it serves traffic; send from a timer instead: " ..
    "ngx.timer.at(0, function() ... end)"):format(vendor, phase))
end

--- Resolve the `transport` option of vendor `vendor` into
-- { curl = userdata } or { send = fn, send_many = fn|nil }, plus `route`
-- (inside nginx: choose per call, M.route) and `ngx_only`.
function M.resolve(opt, vendor)
  if opt == nil and in_nginx() then
    -- inside nginx: cosockets where they work, libcurl at start-up
    local T = require("cdnkit.transport_ngx").new()
    return { curl = core.curl(), send = T.send, send_many = T.send_many, route = true }
  end
  if opt == nil or opt == "curl" then return { curl = core.curl() } end
  if opt == "ngx" then
    if not in_nginx() then
      raise("cdnkit." .. vendor .. ": transport \"ngx\" works inside nginx (OpenResty, " ..
        "lua-nginx-module) only; outside it use the default (\"curl\")")
    end
    local T = require("cdnkit.transport_ngx").new()
    return { send = T.send, send_many = T.send_many, route = true, ngx_only = true }
  end
  if type(opt) == "function" then return { send = opt } end
  if type(opt) == "table" then
    if type(opt.send) ~= "function" then
      raise("cdnkit." .. vendor .. ": option 'transport': the table needs a send function")
    end
    if opt.send_many ~= nil and type(opt.send_many) ~= "function" then
      raise("cdnkit." .. vendor .. ": option 'transport': send_many must be a function")
    end
    for k in pairs(opt) do
      if k ~= "send" and k ~= "send_many" then
        raise("cdnkit." .. vendor .. ": option 'transport': unknown field '" .. tostring(k) ..
          "' (send, send_many)")
      end
    end
    return { send = opt.send, send_many = opt.send_many }
  end
  raise("cdnkit." .. vendor .. ": option 'transport' must be \"curl\", \"ngx\", a function or " ..
    "a { send =, send_many = } table, got " .. type(opt))
end

-- one result table of send_many from send's answer
local function result_of(status, headers, body)
  if status then return { status = status, headers = headers, body = body } end
  return { err = headers }
end

--- Send `reqs` through Lua transport T ({ send =, send_many = }), honouring
-- sched.not_before (monotonic start times): the requests due now go out
-- together (send_many, or send one by one), then the engine sleeps until the
-- next ones are due.  Returns one result per request, in order.
function M.lua_many(T, reqs, conc, sched, sleep)
  local n = #reqs
  local nb = sched and sched.not_before or {}
  local order = {}
  for i = 1, n do order[i] = i end
  table.sort(order, function(a, b)
    local x, y = nb[a] or 0, nb[b] or 0
    if x ~= y then return x < y end
    return a < b
  end)
  local results, i = {}, 1
  while i <= n do
    local wait = (nb[order[i]] or 0) - core.monotime()
    if wait > 0 then sleep(wait) end
    local now = core.monotime()
    local slice = {}
    repeat
      slice[#slice + 1] = order[i]
      i = i + 1
    until i > n or (nb[order[i]] or 0) > now
    if T.send_many then
      local batch = {}
      for k, idx in ipairs(slice) do batch[k] = reqs[idx] end
      local ok, rs = pcall(T.send_many, batch, conc)
      for k, idx in ipairs(slice) do
        local r = ok and type(rs) == "table" and rs[k] or nil
        if not ok then
          results[idx] = result_of(bad("transport raised: " .. tostring(rs)))
        elseif type(r) ~= "table" then
          results[idx] = result_of(bad("transport send_many returned no result for request " .. k))
        elseif r.err ~= nil then
          results[idx] = result_of(checked(true, nil, r.err))
        else
          results[idx] = result_of(checked(true, r.status, r.headers, r.body))
        end
      end
    else
      for _, idx in ipairs(slice) do
        results[idx] = result_of(M.lua_send(T.send, reqs[idx]))
      end
    end
  end
  return results
end

return M
