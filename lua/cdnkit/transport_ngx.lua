-- cdnkit.transport_ngx: the "ngx" transport, an HTTP/1.1 client on nginx
-- cosockets (ngx.socket.tcp) for OpenResty / lua-nginx-module.  Only the I/O
-- moves to nginx: signing and JSON stay in the C core, and the engine paces,
-- retries and re-signs as for every transport (transport.lua's contract).
--
--   send(req) -> status, headers, body | nil, err
--   send_many(reqs, concurrency) -> { {status=, headers=, body=} | {err=}, ... }
--
-- What it does: one connection per request from nginx's keep-alive pool
-- (per scheme, host, port and TLS verification), TLS with SNI and
-- verification (trusted CAs from nginx's lua_ssl_trusted_certificate; host
-- names are resolved by nginx's `resolver`), the
-- request's connect / send / read timeouts (each read or write; the whole
-- request is bounded by the engine's deadline), Content-Length and chunked
-- answers and answers delimited by the connection's end, the same body cap
-- as libcurl (req.max_body; an answer over it is `overflow`).  Like the
-- curl transport, a request that must not run twice (req.idempotent false)
-- goes on a fresh connection, so a pooled connection the server closed
-- meanwhile cannot make it ambiguous; an idempotent request that finds its
-- pooled connection dead is sent once more on a fresh one.  Proxies are not
-- supported (req.proxy gives an error).
--
-- Cosockets work in the rewrite, access, content, timer (and ssl_*) phases;
-- elsewhere the engine does not use this transport (see transport.lua).
local M = {}

local ngx = rawget(_G, "ngx")
local concat, tonumber, lower = table.concat, tonumber, string.lower

local POOL_SIZE = 32          -- idle connections kept per pool and worker
local IDLE_MS = 60000         -- how long an idle connection is kept

local DEFAULT_PORT = { http = 80, https = 443 }

-- scheme, host (as for connect and SNI), port, the Host header, path+query
local function parse_url(url)
  local scheme, authority, path = url:match("^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  if not DEFAULT_PORT[scheme] then return nil end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host then return nil end
  port = tonumber(port) or DEFAULT_PORT[scheme]
  if path == "" then path = "/" elseif path:sub(1, 1) ~= "/" then path = "/" .. path end
  return scheme, host, port, authority, path
end
M.parse_url = parse_url

local function err(code, message, sent, extra)
  local e = { code = code, message = message, sent = sent }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

-- a cosocket error while reading or writing -> a transport error
local function io_err(what, e, sent)
  if e == "timeout" then return err("timeout", what .. " timed out", sent) end
  return err("http", what .. " failed: " .. tostring(e), sent)
end

local function ms(seconds, default)
  local v = tonumber(seconds) or default
  if v < 0.001 then v = 0.001 end
  return math.floor(v * 1000 + 0.5)
end

-- read the header block: status, headers (lower-case names; repeated ones
-- joined with ", "), or nil, err.  `fresh`: nothing was read yet on a
-- reused connection (a dead pooled connection shows up here)
local function read_head(sock)
  local line, e = sock:receive("*l")
  if not line then return nil, e, true end
  local minor, status = line:match("^HTTP/1%.([01]) (%d%d%d)")
  if not status then
    return nil, err("http", "the answer is not HTTP: " .. line:sub(1, 80), true, { malformed = true })
  end
  local headers, n = {}, 0
  while true do
    local h, he = sock:receive("*l")
    if not h then return nil, io_err("reading the headers", he, true) end
    if h == "" then break end
    n = n + #h
    if n > 102400 then return nil, err("http", "the answer's headers are too large", true, { overflow = true }) end
    local name, value = h:match("^([^:%s]+)%s*:%s*(.-)%s*$")
    if name then
      name = lower(name)
      local old = headers[name]
      headers[name] = old and (old .. ", " .. value) or value
    end
  end
  return tonumber(status), headers, minor == "0"
end

local function over(max)
  return err("http", "the answer is larger than max_body (" .. max .. " bytes)", true, { overflow = true })
end

-- the body: by Content-Length, chunked, or until the connection closes.
-- Returns body, keepalive-ok | nil, err
local function read_body(sock, status, headers, method, max)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return "", true
  end
  local te = headers["transfer-encoding"]
  if te and lower(te):find("chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local line, e = sock:receive("*l")
      if not line then return nil, io_err("reading a chunk", e, true) end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, err("http", "bad chunk size line", true, { malformed = true }) end
      if size == 0 then
        -- trailers, up to the empty line
        repeat
          local t, te2 = sock:receive("*l")
          if not t then return nil, io_err("reading the trailers", te2, true) end
        until t == ""
        break
      end
      total = total + size
      if total > max then return nil, over(max) end
      local data, e2 = sock:receive(size)
      if not data then return nil, io_err("reading a chunk", e2, true) end
      parts[#parts + 1] = data
      local crlf, e3 = sock:receive("*l")
      if not crlf then return nil, io_err("reading a chunk", e3, true) end
    end
    return concat(parts), true
  end
  local cl = headers["content-length"]
  if cl then
    local n = tonumber(cl:match("^%s*(%d+)%s*$"))
    if not n then return nil, err("http", "bad Content-Length: " .. cl, true, { malformed = true }) end
    if n > max then return nil, over(max) end
    if n == 0 then return "", true end
    local data, e = sock:receive(n)
    if not data then return nil, io_err("reading the body", e, true) end
    return data, true
  end
  -- no length: the body ends with the connection
  local parts, total = {}, 0
  while true do
    local data, e = sock:receiveany(65536)
    if not data then
      if e == "closed" then break end
      return nil, io_err("reading the body", e, true)
    end
    total = total + #data
    if total > max then return nil, over(max) end
    parts[#parts + 1] = data
  end
  return concat(parts), false
end

local function keepalive_ok(headers, http10)
  local c = headers["connection"]
  c = c and lower(c) or ""
  if c:find("close", 1, true) then return false end
  if http10 and not c:find("keep-alive", 1, true) then return false end
  return true
end

-- one attempt on one connection; `fresh`: a connection that is not reused
-- is wanted (non-idempotent requests, or a retry after a dead pooled one)
local function attempt(req, scheme, host, port, authority, path, fresh)
  local sock, serr = ngx.socket.tcp()
  if not sock then return nil, err("connect", "ngx.socket.tcp: " .. tostring(serr), false) end
  local read_ms = ms(req.timeout, 30)
  sock:settimeouts(ms(req.connect_timeout, 5), read_ms, read_ms)
  local verify = req.verify_tls ~= false
  local pool = scheme .. "://" .. host .. ":" .. port .. (verify and "" or "#noverify")
  -- a pool nothing is ever returned to gives a new connection
  local ok, cerr = sock:connect(host, port, { pool = fresh and (pool .. "#fresh") or pool })
  if not ok then
    return nil, err(cerr == "timeout" and "timeout" or "connect",
      "connecting to " .. host .. ":" .. port .. " failed: " .. tostring(cerr), false)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if scheme == "https" and not reused then
    -- SNI and the name check are for DNS names; for an IP address (no SNI
    -- by RFC 6066) nginx verifies the certificate chain only
    local is_ip = host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
    local sess, herr = sock:sslhandshake(nil, not is_ip and host or nil, verify)
    if not sess then
      sock:close()
      return nil, err("tls", "TLS handshake with " .. host .. " failed: " .. tostring(herr) ..
        (verify and " (trusted CAs come from nginx's lua_ssl_trusted_certificate)" or ""), false)
    end
  end
  local lines = { (req.method or "GET") .. " " .. path .. " HTTP/1.1", "Host: " .. authority }
  local has_len, ua = false, false
  for k, v in pairs(req.headers or {}) do
    local lk = lower(k)
    if lk ~= "host" and lk ~= "connection" and lk ~= "transfer-encoding" then
      if lk == "content-length" then has_len = true end
      if lk == "user-agent" then ua = true end
      lines[#lines + 1] = k .. ": " .. tostring(v)
    end
  end
  local body = req.body
  if body and not has_len then lines[#lines + 1] = "Content-Length: " .. #body end
  if not body and (req.method == "POST" or req.method == "PUT") then lines[#lines + 1] = "Content-Length: 0" end
  if not ua then lines[#lines + 1] = "User-Agent: cdnkit" end
  lines[#lines + 1] = "Connection: keep-alive"
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  local sent, werr = sock:send(concat(lines, "\r\n"))
  if not sent then
    sock:close()
    -- a pooled connection the server had closed: nothing reached it
    return nil, io_err("sending the request", werr, not reused), reused
  end
  local status, headers, dead = read_head(sock)
  local http10 = status and dead or false
  if not status then
    sock:close()
    if type(headers) == "table" then return nil, headers end
    -- nothing at all came back: on a reused connection, the server had
    -- closed it (the request may or may not have been read)
    return nil, io_err("reading the answer", headers, true), reused and dead
  end
  local max = tonumber(req.max_body) or 64 * 1024 * 1024
  local rbody, keep_or_err = read_body(sock, status, headers, req.method, max)
  if not rbody then
    sock:close()
    return nil, keep_or_err
  end
  if keep_or_err and keepalive_ok(headers, http10) and not fresh then
    sock:setkeepalive(IDLE_MS, POOL_SIZE)
  else
    -- (a connection opened for a request that must not run twice is not
    -- pooled: its pool would hand it to the next such request)
    sock:close()
  end
  return status, headers, rbody
end

--- send(req): one request, its answer or nil, err.
function M.send(req)
  if req.proxy then
    return nil, err("http", "the ngx transport does not use proxies (option 'proxy'); " ..
      "reach the vendor directly or use transport = \"curl\"", false)
  end
  local scheme, host, port, authority, path = parse_url(req.url or "")
  if not scheme then return nil, err("http", "bad URL: " .. tostring(req.url), false, { malformed = true }) end
  local fresh = req.idempotent ~= true
  local status, headers, body = attempt(req, scheme, host, port, authority, path, fresh)
  if not status and body == true and req.idempotent then
    -- a dead pooled connection: once more on a new one (what libcurl does)
    status, headers, body = attempt(req, scheme, host, port, authority, path, true)
  end
  if not status then return nil, headers end
  return status, headers, body
end

--- send_many(reqs, concurrency): up to `concurrency` at once, in light
-- threads of the current request (or timer); one result per request.
function M.send_many(reqs, conc)
  local n = #reqs
  local results = {}
  local next_i = 0
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      if i > n then return end
      local ok, status, headers, body = pcall(M.send, reqs[i])
      if not ok then
        results[i] = { err = err("http", "the ngx transport raised: " .. tostring(status), true) }
      elseif status then
        results[i] = { status = status, headers = headers, body = body }
      else
        results[i] = { err = headers }
      end
    end
  end
  conc = math.max(1, math.min(conc or 1, n))
  local threads = {}
  for t = 1, conc - 1 do
    local th, terr = ngx.thread.spawn(worker)
    if not th then
      results.spawn_error = terr
      break
    end
    threads[t] = th
  end
  worker() -- this thread works too
  for _, th in ipairs(threads) do ngx.thread.wait(th) end
  for i = 1, n do
    if not results[i] then results[i] = { err = err("http", "no result (a light thread failed)", true) } end
  end
  return results
end

--- The transport as transport.lua resolves it.
function M.new()
  if not ngx or not ngx.socket or not ngx.socket.tcp then
    error("transport \"ngx\" needs nginx with lua-nginx-module (OpenResty); outside nginx use \"curl\"", 0)
  end
  return { send = M.send, send_many = M.send_many }
end

return M
