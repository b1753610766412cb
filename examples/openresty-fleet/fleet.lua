-- fleet.lua - the fleet-wide purge queue (cdnkit.queue on Redis) inside nginx
-- (Debian's nginx + libnginx-mod-http-lua + lua-nginx-redis, or OpenResty).
-- See README.md next to this file, and docs/fleet.md for the design.
--
-- Every node of the fleet runs this nginx.  Each one is a producer:
--
--   POST /purge        (content phase: cosockets) queues URLs with q:add;
--   the upstream hook  (header_filter + log phase: no cosockets there) takes
--                      the URLs the application names in `X-Purge-Urls` and
--                      queues them from a zero-delay timer, ngx.timer.at(0);
--
-- and, where start_flusher is called, one flusher: a timer of worker 0
-- that calls f:step() again and again (each step waits on Redis for new
-- entries for at most `block` seconds, holding a cosocket, which leaves the
-- worker free) and re-arms itself.  All flushers of all nodes are one
-- consumer group: each entry goes to one of them, the same URL queued
-- anywhere within the window is purged once, and the vendor's rate and
-- daily quota are shared through Redis.
--
-- GET /purge/status shows the queue's counts (from Redis: the whole fleet)
-- and this node's flusher.
local ngx = ngx
local cdnkit = require "cdnkit"
local queue = require "cdnkit.queue"
local bit = require "bit"

local type, tostring, tonumber, pairs, ipairs, pcall, next = type, tostring, tonumber, pairs, ipairs, pcall, next
local byte, getenv, open = string.byte, os.getenv, io.open
local bxor, bor = bit.bxor, bit.bor

local M = {}

local cfg = {
  default = nil,          -- the account POST /purge and the hook queue for
  token_env = "FLEET_PURGE_TOKEN",
  max_urls = 1000,        -- per POST /purge
  dict = "fleet",         -- lua_shared_dict: this node's flusher, for /purge/status
}
M.clients = {}            -- account -> cdnkit client (made in init_by_lua)
M.q = nil                 -- the queue handle
M.flusher = nil           -- worker 0's flusher (nil elsewhere)

-- "host:port" (CDNKIT_REDIS, as the command line reads it) -> host, port
local function parse_redis(s)
  s = s or "127.0.0.1:6379"
  local host, port = s:match("^%[(.+)%]:(%d+)$")          -- [::1]:6379
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  if not host then host, port = s, 6379 end
  return host, tonumber(port)
end

local function hostname()
  local f = open("/etc/hostname")
  local h = f and f:read("*l")
  if f then f:close() end
  h = (h or "node"):gsub("[^%w._%-]", "")
  return h ~= "" and h or "node"
end

--- init_by_lua: make the vendor clients and the queue handle (once, in the
-- master: the workers inherit them).  Nothing connects here.
--   accounts = { <account> = { vendor = "qcloud", <client options> }, ... }
--   default  = the account POST /purge and the hook use (the first, sorted)
--   redis    = { host =, port =, timeout =, password =, db = }
--              (default: $CDNKIT_REDIS "host:port", else 127.0.0.1:6379)
--   name     = the queue's name (default: $CDNKIT_QUEUE, else "purge")
--   window   = seconds within which a URL queued again is purged once (60)
function M.init(opts)
  local names = {}
  for account, o in pairs(opts.accounts or {}) do
    local copy = {}
    for k, v in pairs(o) do if k ~= "vendor" then copy[k] = v end end
    local vendor = o.vendor or account
    if copy.endpoint == nil then copy.endpoint = getenv("CDNKIT_" .. vendor:upper() .. "_ENDPOINT") end
    M.clients[account] = cdnkit[vendor](copy)     -- credentials: options, env or profile
    names[#names + 1] = account
  end
  table.sort(names)
  cfg.default = opts.default or names[1]
  if not cfg.default then error("fleet.init: give accounts = { name = { vendor = ... } }", 2) end
  for _, k in ipairs { "token_env", "max_urls", "dict" } do
    if opts[k] ~= nil then cfg[k] = opts[k] end
  end
  local redis = opts.redis
  if not redis then
    local host, port = parse_redis(getenv("CDNKIT_REDIS"))
    redis = { host = host, port = port }
  end
  M.q = queue.new { redis = redis, name = opts.name or getenv("CDNKIT_QUEUE") or "purge",
                    window = opts.window }
  cfg.redis = M.q.redis.host .. ":" .. M.q.redis.port
end

-- ---------------------------------------------------------------------------
-- the flusher: worker 0 of each node that calls start_flusher
-- ---------------------------------------------------------------------------

local LOG = { accepted = ngx.INFO, reclaimed = ngx.WARN, failed = ngx.WARN, over_quota = ngx.WARN,
              quota_unknown = ngx.WARN, redis_retry = ngx.WARN, redis_lost = ngx.ERR }

local function log_event(ev)
  local level = LOG[ev.event] or ngx.NOTICE
  ngx.log(level, "fleet: ", cdnkit.json_encode(ev))
end

local function publish(f, state)
  local d = ngx.shared[cfg.dict]
  if not d then return end
  d:set("flusher", cdnkit.json_encode {
    consumer = f.consumer, pid = ngx.worker.pid(), state = state,
    last_step_at = ngx.now(), counts = f.counts,
  })
end

local loop

-- one run of the timer: steps for up to `slice` seconds, then a new timer
local function run_slice(f, slice)
  local t0 = ngx.now()
  while not ngx.worker.exiting() and ngx.now() - t0 < slice do
    local n, err = f:step()          -- waits up to `block` seconds on Redis
    if n == nil then
      -- Redis is away (a restart, a failover): entries stay where they are;
      -- said once, then tried again every second
      if not f.fleet_down then
        ngx.log(ngx.WARN, "fleet: flusher: Redis is unavailable, waiting: ", tostring(err and err.message))
        f.fleet_down = true
      end
      publish(f, "redis unavailable: " .. tostring(err and err.message))
      ngx.sleep(1)
    else
      if f.fleet_down then
        ngx.log(ngx.NOTICE, "fleet: flusher: Redis is back")
        f.fleet_down = nil
      end
      publish(f, "running")
    end
  end
end

function loop(premature, f, slice)
  if premature or ngx.worker.exiting() then return end
  local ok, err = pcall(run_slice, f, slice)
  local delay = 0
  if not ok then
    -- a bug or a raising vendor client: logged, and tried again in a second
    ngx.log(ngx.ERR, "fleet: flusher: ", tostring(err))
    publish(f, "error: " .. tostring(err))
    delay = 1
  end
  if not ngx.worker.exiting() then
    local tok, terr = ngx.timer.at(delay, loop, f, slice)
    if not tok then ngx.log(ngx.ERR, "fleet: cannot re-arm the flusher: ", terr) end
  end
end

--- init_worker_by_lua: start this node's flusher in worker 0 (the others
-- only produce).  Options are q:flusher's (clients are the init's), plus
--   slice = seconds one timer runs before it re-arms itself (30)
function M.start_flusher(opts)
  if (ngx.worker.id() or 0) ~= 0 then return end
  local o = { clients = M.clients, on_event = log_event, consumer = hostname() .. "-nginx" }
  local slice = 30
  for k, v in pairs(opts or {}) do
    if k == "slice" then slice = v else o[k] = v end
  end
  -- no connection is made here (init_worker has no cosockets): the first
  -- step, in the timer, creates the consumer group if it is not there
  M.flusher = M.q:flusher(o)
  publish(M.flusher, "starting")
  local ok, err = ngx.timer.at(0, loop, M.flusher, slice)
  if not ok then ngx.log(ngx.ERR, "fleet: cannot start the flusher: ", err) end
end

-- ---------------------------------------------------------------------------
-- producers
-- ---------------------------------------------------------------------------

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cdnkit.json_encode(t))
  return ngx.exit(ngx.HTTP_OK)
end

-- equal strings, in a time that does not depend on where they differ
local function same_secret(a, b)
  local x, y = ngx.sha1_bin(a), ngx.sha1_bin(b)
  local diff = 0
  for i = 1, #x do diff = bor(diff, bxor(byte(x, i), byte(y, i))) end
  return diff == 0
end

-- q:add's error for a usage mistake, without the file:line in front
local function why(e) return (tostring(e):gsub("^[^\n]-%.lua:%d+: ", "")) end

-- {"urls": [...], "dirs": [...], "prefetch": [...], "account": "..."} or
-- one URL per line -> work, account | nil, message
local function parse_body(body)
  if body:find("^%s*{") then
    local t = cdnkit.json_decode(body)
    if type(t) ~= "table" then return nil, "the body is not valid JSON" end
    local work = {}
    for _, k in ipairs { "urls", "dirs", "prefetch" } do
      if t[k] ~= nil then
        if type(t[k]) ~= "table" then return nil, ('"%s" must be an array of URLs'):format(k) end
        work[k] = t[k]
      end
    end
    if next(work) == nil then return nil, 'give {"urls": [...]} (or "dirs", "prefetch")' end
    return work, t.account
  end
  local urls = {}
  for line in body:gmatch("[^\n]+") do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then urls[#urls + 1] = line end
  end
  if #urls == 0 then return nil, "no URLs in the body" end
  return { urls = urls }
end

--- content_by_lua: POST /purge (Authorization: Bearer <$FLEET_PURGE_TOKEN>)
-- -> 202 {"queued": n, "account": a}; 400/401/413/503 {"error": ...}
function M.handle_purge()
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return reply(405, { error = "use POST" })
  end
  local expected = getenv(cfg.token_env)
  if not expected or expected == "" then
    return reply(503, { error = "the purge API is off: " .. cfg.token_env .. " is not set" })
  end
  local auth = ngx.var.http_authorization
  local given = type(auth) == "string" and auth:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  if not given or not same_secret(given, expected) then
    return reply(401, { error = "a valid 'Authorization: Bearer <token>' header is required" })
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local path = ngx.req.get_body_file()
    local fh = path and open(path, "rb")
    if fh then body = fh:read("*a"); fh:close() end
  end
  if not body or not body:find("%S") then return reply(400, { error = "empty body" }) end
  local work, account = parse_body(body)
  if not work then return reply(400, { error = account }) end
  account = account or cfg.default
  local n = 0
  for _, l in pairs(work) do n = n + (type(l) == "table" and #l or 1) end
  if n > cfg.max_urls then
    return reply(413, { error = ("%d URLs in one request; at most %d"):format(n, cfg.max_urls) })
  end
  -- q:add raises on a usage mistake (not a URL, a bad account name): nothing
  -- is queued then; it returns nil, err when Redis cannot take it
  local ok, queued, err = pcall(M.q.add, M.q, account, work)
  if not ok then
    if tostring(queued):find("cdnkit.queue: ", 1, true) then return reply(400, { error = why(queued) }) end
    ngx.log(ngx.ERR, "fleet: POST /purge: ", tostring(queued))
    return reply(500, { error = "internal error (see the error log)" })
  end
  if not queued then
    return reply(503, { error = "the queue is unavailable: " .. tostring(err and err.message),
                        queued = err and err.queued or 0 })
  end
  return reply(202, { queued = queued, account = account })
end

-- the hook's timer: cosockets work here.  A few tries while Redis is away;
-- then the URLs are logged (the upstream's answer has long gone out).
local function enqueue_later(premature, account, urls)
  for attempt = 1, 3 do
    local ok, n, err = pcall(M.q.add, M.q, account, { urls = urls })
    if ok and n then return end
    if not ok then
      ngx.log(ngx.WARN, "fleet: hook: not queued (", why(n), "): ", table.concat(urls, " "))
      return
    end
    if premature or attempt == 3 then
      ngx.log(ngx.ERR, "fleet: hook: not queued (", tostring(err and err.message), "): ",
              table.concat(urls, " "))
      return
    end
    ngx.sleep(attempt * 0.5)
  end
end

--- header_filter_by_lua: the application names what its answer changed,
-- `X-Purge-Urls: <url> <url> ...` (internal: removed before the client sees it)
function M.hook_header_filter()
  local v = ngx.header["X-Purge-Urls"]
  if v == nil then return end
  ngx.header["X-Purge-Urls"] = nil
  if type(v) == "table" then v = table.concat(v, " ") end
  local urls = {}
  for u in tostring(v):gmatch("%S+") do urls[#urls + 1] = u end
  if #urls > 0 and ngx.status < 400 then ngx.ctx.fleet_purge = urls end
end

--- log_by_lua: queue them.  No cosockets in this phase (nor in the header
-- filter): a zero-delay timer does the Redis call, after the response.
function M.hook_log()
  local urls = ngx.ctx.fleet_purge
  if not urls then return end
  local ok, err = ngx.timer.at(0, enqueue_later, cfg.default, urls)
  if not ok then
    -- too many pending timers (lua_max_pending_timers) or nginx is exiting
    ngx.log(ngx.ERR, "fleet: hook: not queued (", err, "): ", table.concat(urls, " "))
  end
end

-- ---------------------------------------------------------------------------
-- status
-- ---------------------------------------------------------------------------

--- content_by_lua: GET /purge/status -> {"queue", "redis", "accounts":
-- { <account>: {pending, in_flight, waiting, dead_letters, added, done,
-- deduped, failed, dead, over_quota, redriven, consumers} }, "flusher":
-- this node's (consumer, pid, state, last_step_at, counts) or null}
function M.handle_status()
  local st, err = M.q:status()
  local d = ngx.shared[cfg.dict]
  local fl = d and d:get("flusher")
  local out = {
    queue = M.q.name, redis = cfg.redis, worker = ngx.worker.id(),
    flusher = fl and cdnkit.json_decode(fl) or cdnkit.null,
  }
  if not st then
    out.error = "redis: " .. tostring(err and err.message)
    return reply(503, out)
  end
  out.accounts = st
  return reply(200, out)
end

return M
