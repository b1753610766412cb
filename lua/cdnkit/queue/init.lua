-- cdnkit.queue: a fleet-wide purge queue on Redis.
--
-- Producers (nginx workers on any node, cron scripts, `cdnkit queue add`)
-- append purge requests to one Redis Stream per vendor account; flushers
-- (nginx timers on some nodes, or `cdnkit queue run` as a service) read
-- them as one consumer group, merge the same URL queued again within a
-- window (fleet-wide), take today's quota and the account's rate from
-- counters every flusher shares, send vendor-sized batches through the
-- normal clients, and acknowledge an entry only once the vendor accepted
-- the batch holding it.  The design, keys and failure cases: docs/fleet.md.
--
--   local queue = require "cdnkit.queue"
--   local q = queue.new{ redis = { host = "127.0.0.1", port = 6379 } }
--   q:add("qcloud", { urls = { "https://example.com/a.css" } })      -- producer
--   q:run{ clients = { qcloud = cdnkit.qcloud{} } }                   -- flusher
--   q:status()                                                         -- counts
local core = require "cdnkit.core"
local client_mod = require "cdnkit.client"
local batch = require "cdnkit.batch"
local pace = require "cdnkit.pace"
local nginx_phase = require("cdnkit.transport").nginx_phase
local rds = require "cdnkit.queue.redis"
local S = require "cdnkit.queue.scripts"
local unpack = table.unpack or unpack

local M = {}
local Q = {}
Q.__index = Q
local F = {}
F.__index = F

local KINDS = { urls = "refresh_url", dirs = "refresh_dir", prefetch = "prefetch" }
local KIND_OK = { refresh_url = true, refresh_dir = true, prefetch = true }
local GROUP = "flushers"
local ADD_CHUNK = 1000

local function raise(msg, level) error(msg, (level or 1) + 1) end

-- ngx.sleep where nginx allows it (the flusher in a timer), else blocking
local function sleep(seconds)
  if nginx_phase() == "cosocket" then return rawget(_G, "ngx").sleep(seconds) end
  return core.sleep(seconds)
end
M.sleep = sleep

local function check_name(what, s)
  if type(s) ~= "string" or not s:match("^[%w][%w._%-]*$") or #s > 64 then
    raise(("cdnkit.queue: %s must be a name of letters, digits, '.', '_' or '-' (at most 64), got %s")
      :format(what, type(s) == "string" and ("%q"):format(s) or type(s)), 3)
  end
end

--- queue.new{ redis = { host, port, timeout, password, db }, name = "purge",
-- window = 60 }: a queue handle (no connection is made until used).
-- `window`: seconds within which the same URL queued again is purged once
-- (0: no fleet-wide de-duplication; the same URL read twice in one batch is
-- still sent once, and both entries count as done).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then raise("cdnkit.queue.new: options must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "redis" and k ~= "name" and k ~= "window" then
      raise("cdnkit.queue.new: unknown option '" .. tostring(k) .. "' (redis, name, window)", 2)
    end
  end
  local name = opts.name or "purge"
  check_name("name", name)
  local window = opts.window == nil and 60 or opts.window
  if type(window) ~= "number" or window < 0 or window % 1 ~= 0 then
    raise("cdnkit.queue.new: window must be a whole number of seconds >= 0", 2)
  end
  local r = opts.redis
  if getmetatable(r) ~= rds.R then r = rds.new(r) end
  local prefix = "cdnkit:{" .. name .. "}:"
  return setmetatable({ redis = r, name = name, window = window, prefix = prefix, groups = {} }, Q)
end

-- keys of one account
function Q:key(what, account) return self.prefix .. what .. ":" .. account end

-- the consumer group exists (created with its stream on first use)
function Q:ensure_group(account)
  if self.groups[account] then return true end
  local ok, err = self.redis:command("XGROUP", "CREATE", self:key("s", account), GROUP, "0", "MKSTREAM")
  if not ok and not (err.code == "redis" and err.message:find("BUSYGROUP", 1, true)) then
    return nil, err
  end
  self.groups[account] = true
  return true
end

local function check_urls(list, what)
  if list == nil then return {} end
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" then raise(("cdnkit.queue: %s must be a list of URLs"):format(what), 3) end
  for i, u in ipairs(list) do
    if type(u) ~= "string" then
      raise(("cdnkit.queue: %s[%d] must be a string, got %s"):format(what, i, type(u)), 3)
    end
    local low = u:sub(1, 9):lower()
    if not (low:find("^https?://[^/%s]")) or u:find("[%s%z]") or #u > 4096 then
      raise(("cdnkit.queue: %s[%d] is not an http(s) URL without spaces (at most 4096 bytes): %q")
        :format(what, i, u:sub(1, 200)), 3)
    end
  end
  return list
end

--- q:add(account, { urls = {...}, dirs = {...}, prefetch = {...} }) ->
-- number queued | nil, err.  `account` names the vendor account the
-- flushers map to a client (e.g. "qcloud", "aliyun-prod").  Each kind's
-- list is queued all or nothing (one script per 1,000 URLs).
function Q:add(account, work)
  check_name("account", account)
  if type(work) ~= "table" then raise("cdnkit.queue: add needs { urls =, dirs =, prefetch = }", 2) end
  for k in pairs(work) do
    if not KINDS[k] then raise("cdnkit.queue: add: unknown key '" .. tostring(k) .. "' (urls, dirs, prefetch)", 2) end
  end
  local lists = {}
  for key, kind in pairs(KINDS) do lists[kind] = check_urls(work[key], key) end
  local ok, err = self:ensure_group(account)
  if not ok then return nil, err end
  local total = 0
  local keys = { self:key("s", account), self:key("stats", account), self.prefix .. "accounts" }
  for _, kind in ipairs { "refresh_url", "refresh_dir", "prefetch" } do
    local list = lists[kind]
    for i = 1, #list, ADD_CHUNK do
      local args = { account, kind }
      for j = i, math.min(#list, i + ADD_CHUNK - 1) do args[#args + 1] = list[j] end
      local n, aerr = self.redis:eval(S.add, keys, args)
      if not n then
        aerr.queued = total
        return nil, aerr
      end
      total = total + n
    end
  end
  return total
end

--- q:accounts() -> sorted list of the accounts anything was queued for
function Q:accounts()
  local list, err = self.redis:command("SMEMBERS", self.prefix .. "accounts")
  if not list then return nil, err end
  local out = {}
  for i, a in ipairs(list) do out[i] = a end
  table.sort(out)
  return out
end

local STAT_FIELDS = { "added", "done", "deduped", "failed", "dead", "over_quota", "redriven" }

--- q:status([account]) -> { [account] = { pending, in_flight, waiting,
-- dead_letters, added, done, deduped, failed, dead, over_quota, redriven,
-- consumers = { { name, pending, idle = seconds since it last read } } } }
-- | nil, err
-- pending: queued, not yet read by a flusher; in_flight: read, not yet
-- settled; waiting: parked until a retry or the vendor's next day.
function Q:status(account)
  local accounts
  if account then
    check_name("account", account)
    accounts = { account }
  else
    local err
    accounts, err = self:accounts()
    if not accounts then return nil, err end
  end
  local out = {}
  local r = self.redis
  for _, a in ipairs(accounts) do
    local s = { consumers = setmetatable({}, core.array_mt) }
    local st, err = r:command("HGETALL", self:key("stats", a))
    if not st then return nil, err end
    for _, f in ipairs(STAT_FIELDS) do s[f] = 0 end
    for i = 1, #st, 2 do s[st[i]] = tonumber(st[i + 1]) end
    local len = r:command("XLEN", self:key("s", a))
    local pend = r:command("XPENDING", self:key("s", a), GROUP)
    local in_flight = type(pend) == "table" and tonumber(pend[1]) or 0
    -- the group's consumers: entries each holds, ms since it last read
    local cons = r:command("XINFO", "CONSUMERS", self:key("s", a), GROUP)
    for _, c in ipairs(type(cons) == "table" and cons or {}) do
      local m = {}
      for i = 1, #c, 2 do m[c[i]] = c[i + 1] end
      s.consumers[#s.consumers + 1] = { name = m.name, pending = tonumber(m.pending) or 0,
                                        idle = (tonumber(m.idle) or 0) / 1000 }
    end
    s.in_flight = in_flight
    s.pending = math.max(0, (tonumber(len) or 0) - in_flight)
    s.waiting = tonumber(r:command("ZCARD", self:key("later", a))) or 0
    s.dead_letters = tonumber(r:command("XLEN", self:key("dead", a))) or 0
    out[a] = s
  end
  return out
end

--- q:dead(account [, count]) -> { { id, kind, url, attempts, error, at }, ... }
function Q:dead(account, count)
  check_name("account", account)
  local rows, err = self.redis:command("XRANGE", self:key("dead", account), "-", "+", "COUNT",
    math.floor(count or 100))
  if not rows then return nil, err end
  local out = setmetatable({}, core.array_mt)
  for _, row in ipairs(rows) do
    local f = {}
    for i = 1, #row[2], 2 do f[row[2][i]] = row[2][i + 1] end
    out[#out + 1] = { id = row[1], kind = f.k, url = f.u, attempts = tonumber(f.n), error = f.e,
                      at = tonumber(f.at) }
  end
  return out
end

--- q:redrive(account [, count]) -> number of dead letters queued again
function Q:redrive(account, count)
  check_name("account", account)
  local ok, err = self:ensure_group(account)
  if not ok then return nil, err end
  return self.redis:eval(S.redrive, { self:key("dead", account), self:key("s", account),
                                      self:key("stats", account) }, { math.floor(count or 1000) })
end

---------------------------------------------------------------------------
-- flushers

-- the account's documented request rate: the vendor-wide rate, or the
-- slowest documented rate of its purge and prefetch actions
local function documented_rate(client)
  local st = client:_state()
  local rate = st.api.limits and st.api.limits.per_second
  for _, a in pairs(st.api_index) do
    if type(a) == "table" and a.batch then
      local r = pace.action_rate(a)
      if r and (rate == nil or r < rate) then rate = r end
    end
  end
  return rate
end

local FLUSH_OPTS = {
  "clients", "consumer", "concurrency", "read", "block", "claim_idle", "max_attempts", "backoff",
  "rate", "rate_window", "rate_margin", "quota", "utc_offset", "params", "on_event", "redis_wait",
}

-- what one step reads by default: enough to give every concurrent request
-- a full vendor-sized batch (Tencent: 1,000 URLs a call)
local function default_read(clients, concurrency)
  local max = 0
  for _, c in pairs(type(clients) == "table" and clients or {}) do
    local st = client_mod.STATE[c]
    for _, a in pairs(st and st.api_index or {}) do
      if type(a) == "table" and a.batch and (a.batch.max or 0) > max then max = a.batch.max end
    end
  end
  return math.max(200, (type(concurrency) == "number" and concurrency or 2) * max)
end

local function consumer_name()
  local host = os.getenv("HOSTNAME")
  if not host then
    local f = io.open("/etc/hostname")
    if f then host = f:read("*l"); f:close() end
  end
  host = (host or ""):gsub("[^%w._%-]", ""):gsub("^[^%w]+", ""):sub(1, 55)
  if host == "" then host = "flusher" end
  local b = core.random_bytes(4)
  return ("%s-%02x%02x%02x%02x"):format(host, b:byte(1, 4))
end

--- q:flusher{ clients = { account = client, ... }, consumer =, concurrency = 2,
-- read = (concurrency x the largest per-call batch of its vendors, at
-- least 200), block = 1, claim_idle = 60, max_attempts = 5,
-- backoff = { base = 5, max = 300 }, rate = n | { account = n },
-- rate_window = 1, rate_margin = 0.1, quota = true, utc_offset = 8,
-- params = { account = { ... } }, on_event = function(ev), redis_wait = 60 }
-- -> a flusher (f:step(), f:run{ ... }, f:close()).  See docs/fleet.md.
function Q:flusher(opts)
  if type(opts) ~= "table" then raise("cdnkit.queue: flusher needs { clients = { account = client } }", 2) end
  local known = {}
  for _, k in ipairs(FLUSH_OPTS) do known[k] = true end
  for k in pairs(opts) do
    if not known[k] then raise("cdnkit.queue: unknown flusher option '" .. tostring(k) .. "'", 2) end
  end
  if type(opts.clients) ~= "table" or next(opts.clients) == nil then
    raise("cdnkit.queue: flusher needs clients = { account = client, ... }", 2)
  end
  local f = setmetatable({
    q = self, clients = {}, accounts = {}, pacers = {}, old_pacers = {}, old_sleeps = {},
    consumer = opts.consumer or consumer_name(),
    concurrency = opts.concurrency or 2, read = opts.read or default_read(opts.clients, opts.concurrency),
    block = opts.block or 1,
    claim_idle = opts.claim_idle or 60, max_attempts = opts.max_attempts or 5,
    backoff = opts.backoff or { base = 5, max = 300 },
    quota = opts.quota ~= false, utc_offset = opts.utc_offset or 8,
    params = opts.params or {}, on_event = opts.on_event, redis_wait = opts.redis_wait or 60,
    rate_window = opts.rate_window or 1, rate_margin = opts.rate_margin == nil and 0.1 or opts.rate_margin,
    next_claim = 0, quota_keys = {}, quota_skip = {}, step_taken = {},
    counts = { sent = 0, done = 0, failed = 0, dead = 0, deduped = 0, over_quota = 0, reclaimed = 0,
               not_sent = 0 },
  }, F)
  check_name("consumer", f.consumer)
  for _, k in ipairs { "concurrency", "read", "max_attempts" } do
    local v = f[k]
    if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then raise("cdnkit.queue: " .. k .. " must be a whole number >= 1", 2) end
    if math.tointeger then f[k] = math.tointeger(v) end -- (1e3 would go to Redis as "1000.0")
  end
  for _, k in ipairs { "block", "claim_idle", "rate_window", "redis_wait" } do
    if type(f[k]) ~= "number" or f[k] <= 0 then raise("cdnkit.queue: " .. k .. " must be a positive number of seconds", 2) end
  end
  if f.block >= self.redis.timeout then
    raise(("cdnkit.queue: block (%g s) must be shorter than the Redis timeout (%g s)")
      :format(f.block, self.redis.timeout), 2)
  end
  if type(f.rate_margin) ~= "number" or f.rate_margin < 0 then
    raise("cdnkit.queue: rate_margin must be a number of seconds >= 0", 2)
  end
  if type(f.backoff) ~= "table" or type(f.backoff.base or 5) ~= "number" or type(f.backoff.max or 300) ~= "number" then
    raise("cdnkit.queue: backoff must be { base = seconds, max = seconds }", 2)
  end
  if type(f.utc_offset) ~= "number" or f.utc_offset < -14 or f.utc_offset > 14 then
    raise("cdnkit.queue: utc_offset must be hours east of UTC (-14..14)", 2)
  end
  if f.on_event ~= nil and type(f.on_event) ~= "function" then raise("cdnkit.queue: on_event must be a function", 2) end
  if type(f.params) ~= "table" then raise("cdnkit.queue: params must be { account = { ... } }", 2) end
  for account, c in pairs(opts.clients) do
    check_name("account", account)
    if type(c) ~= "userdata" or not client_mod.STATE[c] then
      raise("cdnkit.queue: clients." .. account .. " must be an open cdnkit client", 2)
    end
    local rate = opts.rate
    if type(rate) == "table" then rate = rate[account] end
    if rate == nil then rate = documented_rate(c) end
    if rate == nil then
      raise(("cdnkit.queue: the %s API documents no request rate for account %s; give rate = { %s = n }")
        :format(c:vendor(), account, account), 2)
    end
    if type(rate) ~= "number" or rate <= 0 then raise("cdnkit.queue: rate must be a positive number of requests per second", 2) end
    f.clients[account] = c
    f.accounts[#f.accounts + 1] = account
    f.pacers[account] = f:make_pacer(account, rate)
  end
  table.sort(f.accounts)
  for account, c in pairs(f.clients) do
    f.old_pacers[account] = client_mod.set_pacer(c, f.pacers[account])
    -- a step may wait long inside a purge (Alibaba's per-domain minute):
    -- the client's waits are cut into slices that tell Redis the step's
    -- entries are still being worked on, so no other flusher reclaims them
    local st = client_mod.STATE[c]
    local own_sleep = st.sleep
    f.old_sleeps[account] = own_sleep
    st.sleep = function(seconds)
      local slice = f.claim_idle / 3
      while seconds > slice do
        own_sleep(slice)
        seconds = seconds - slice
        f:heartbeat()
      end
      own_sleep(seconds)
      f:heartbeat()
    end
  end
  return f
end

-- the entries of the step in progress are still ours: reset their idle
-- time (XCLAIM ... JUSTID to ourselves), at most every claim_idle / 3 s
function F:heartbeat(force)
  local now = core.monotime()
  if not force and now - (self.last_beat or 0) < self.claim_idle / 3 then return end
  self.last_beat = now
  for account, ids in pairs(self.working or {}) do
    if #ids > 0 then
      -- (only entries idle a while: one another flusher has just
      -- reclaimed from us is not taken back)
      local args = { "XCLAIM", self.q:key("s", account), GROUP, self.consumer,
                     math.floor(self.claim_idle * 250) }
      for _, id in ipairs(ids) do args[#args + 1] = id end
      args[#args + 1] = "JUSTID"
      self.q.redis:command(unpack(args))
    end
  end
end

function F:event(ev)
  if self.on_event then pcall(self.on_event, ev) end
end

-- error replies that pass: a server loading its data, a failover, a busy
-- script, memory full (until something is freed)
local TRANSIENT = { LOADING = true, NOSCRIPT = true, READONLY = true, MASTERDOWN = true,
                    BUSY = true, TRYAGAIN = true, OOM = true, CLUSTERDOWN = true }

-- a Redis step that must happen (an acknowledgement, a settlement, a
-- pacing slot): tried again while Redis is away (a restart), for up to
-- redis_wait seconds; then nil, err
function F:must(fn, ...)
  local t0 = core.monotime()
  local pause = 0.1
  while true do
    local res, err = fn(...)
    if res ~= nil then return res end
    if err and err.code == "redis" and not TRANSIENT[err.message:match("^(%u+)") or ""] then
      return nil, err -- a real error reply: trying again cannot help
    end
    if core.monotime() - t0 > self.redis_wait then return nil, err end
    self:event({ event = "redis_retry", error = err and err.message })
    sleep(pause)
    pause = math.min(pause * 2, 1)
  end
end

function F:eval(src, keys, args)
  local r = self.q.redis
  return self:must(r.eval, r, src, keys, args)
end

-- the fleet-wide rate of one account, as a cdnkit.pace shared pacer: every
-- request of the account's client takes a start time from Redis
function F:make_pacer(account, rate)
  local f = self
  local key = self.q:key("rate", account)
  -- per window: `rate` starts in any (window + margin) seconds; the margin
  -- covers the time between a start and its arrival at the vendor
  local per = math.max(1, math.floor(rate * self.rate_window + 1e-9))
  -- below one request per window: one request per 1/rate seconds
  local span = math.max(self.rate_window, per / rate)
  local window_ms = math.floor((span + self.rate_margin) * 1000 + 0.5)
  local p = { rate = rate, account = account }
  function p.reserve(_, _)
    f:heartbeat()
    local res, err = f:eval(S.reserve, { key }, { per, window_ms, per * 2 + 1 })
    if not res then error("fleet pacing unavailable (redis: " .. tostring(err and err.message) .. ")", 0) end
    return tonumber(res[1]) / 1000, res[2]
  end
  function p.release(_, _, slot)
    f.q.redis:eval(S.unreserve, { key }, { slot })
  end
  return p
end

-- parse stream rows into entries
local function entries_of(rows)
  local out = {}
  for _, row in ipairs(rows or {}) do
    if type(row) == "table" and type(row[2]) == "table" then
      local fl = {}
      for i = 1, #row[2], 2 do fl[row[2][i]] = row[2][i + 1] end
      out[#out + 1] = { id = row[1], kind = fl.k, url = fl.u, origin = fl.o or "", attempts = tonumber(fl.n) or 0,
                        solo = fl.s == "1" }
    end
  end
  return out
end

local function backoff(b, n)
  local base, max = b.base or 5, b.max or 300
  local d = math.min(max, base * 2 ^ math.max(0, n))
  -- full jitter on the upper half: spread, never hammer
  local r = core.random_bytes(2)
  local x = (r:byte(1) * 256 + r:byte(2)) / 65535
  return d / 2 + d / 2 * x
end

-- settle entries that were not accepted: "retry" (parked with backoff,
-- dead after max attempts), "quota" (parked until the vendor's next day) or
-- "dead" (straight to the dead letters)
-- scripts take at most SLICE entries (LuaJIT and Redis's Lua unpack at
-- most ~8,000 values): larger lists go in slices
local SLICE = 1000
local function slices(self, fn, account, list, ...)
  local ok, err = true, nil
  for i = 1, #list, SLICE do
    local part = {}
    for j = i, math.min(#list, i + SLICE - 1) do part[#part + 1] = list[j] end
    local r, e = fn(self, account, part, ...)
    if not r then ok, err = nil, e end
  end
  return ok, err
end

function F:settle(account, mode, list, message, delay_ms)
  if #list == 0 then return true end
  if #list > SLICE then
    return slices(self, function(f, a, part) return f:settle(a, mode, part, message, delay_ms) end, account, list)
  end
  if mode ~= "quota" then
    local per = {}
    for _, e in ipairs(list) do
      if e.kind then per[e.kind] = (per[e.kind] or 0) + 1 end
    end
    for kind, n in pairs(per) do self:give_back(account, kind, n) end
  end
  local q = self.q
  local args = { GROUP, account, mode, self.max_attempts, 0, message or "" }
  if mode == "retry" or mode == "solo" then
    -- one delay for the group: from the most tried entry
    local n = 0
    for _, e in ipairs(list) do if e.attempts > n then n = e.attempts end end
    args[5] = math.floor(backoff(self.backoff, n) * 1000)
  elseif mode == "quota" or mode == "again" then
    args[5] = delay_ms
  end
  for _, e in ipairs(list) do
    args[#args + 1] = e.id
    args[#args + 1] = e.kind or ""
    args[#args + 1] = e.url or ""
    args[#args + 1] = e.origin
    args[#args + 1] = e.attempts
    args[#args + 1] = e.solo and "1" or "0"
  end
  local res, err = self:eval(S.settle, { q:key("s", account), q:key("stats", account),
                                         q:key("later", account), q:key("dead", account) }, args)
  if not res then
    self:event({ event = "redis_lost", account = account, error = err and err.message,
                 note = "entries stay pending; another flusher reclaims them" })
    self.step_lost = err
    return nil, err
  end
  if mode == "quota" then
    self.counts.over_quota = self.counts.over_quota + res[1]
  elseif mode == "again" then
    self.counts.not_sent = (self.counts.not_sent or 0) + res[1]
  else
    self.counts.failed = self.counts.failed + res[1] + res[2]
    self.counts.dead = self.counts.dead + res[2]
  end
  self:event({ event = mode == "quota" and "over_quota" or "failed", account = account,
               parked = res[1], dead = res[2], error = message })
  return true
end

function F:ack(account, list)
  if #list == 0 then return true end
  if #list > SLICE then return slices(self, F.ack, account, list) end
  local q = self.q
  local args = { GROUP }
  for _, e in ipairs(list) do args[#args + 1] = e.id end
  local n, err = self:eval(S.ack, { q:key("s", account), q:key("stats", account) }, args)
  if not n then
    self:event({ event = "redis_lost", account = account, error = err and err.message })
    self.step_lost = err
    return nil, err
  end
  self.counts.done = self.counts.done + n
  return true
end

-- today's quota: how many of `list` may go; parks the rest until the
-- vendor's next day.  Returns the list that may go.
function F:take_quota(account, kind, list)
  local c = self.clients[account]
  local st = c:_state()
  if not self.quota or not st.quota or #list == 0 then return list end
  if (self.quota_skip[account .. ":" .. kind] or 0) > core.monotime() then return list end
  local q = self.q
  local params = self.params[account] or {}
  local area = st.quota.area_param and params[st.quota.area_param] or "any"
  local typ = st.quota.type_param and params[st.quota.type_param] or ""
  local prefix = q:key("quota", account) .. ":" .. kind .. ":" .. tostring(area) .. ":" .. tostring(typ) .. ":"
  local keys = { q:key("stats", account) }
  local res, err = self:eval(S.quota, keys, { prefix, #list, self.utc_offset * 3600, "" })
  if not res then return list end -- Redis away: the vendor still says no when over quota
  if res[1] == -1 then
    -- first flusher of the vendor's day: read what the vendor says is left
    local okq, left, qerr = pcall(batch.quota_left, c, kind, params)
    if not okq then left, qerr = nil, { message = tostring(left) } end
    if left == nil then
      -- the quota API failed: not asked again for a minute (the vendor
      -- still refuses work over quota, which then waits for the next day)
      self.quota_skip[account .. ":" .. kind] = core.monotime() + 60
      self:event({ event = "quota_unknown", account = account, kind = kind, error = qerr and qerr.message })
      return list
    end
    if left == false then
      self.quota_skip[account .. ":" .. kind] = math.huge -- no quota API for this kind
      return list
    end
    res, err = self:eval(S.quota, keys, { prefix, #list, self.utc_offset * 3600, left })
    if not res then return list end
  end
  local taken = tonumber(res[1])
  self.quota_keys[account .. ":" .. kind] = { key = res[3], next_ms = tonumber(res[2]) }
  self.step_taken[account .. ":" .. kind] = taken
  if taken >= #list then return list end
  local go, over = {}, {}
  for i, e in ipairs(list) do
    if i <= taken then go[#go + 1] = e else over[#over + 1] = e end
  end
  self:settle(account, "quota", over, "today's quota is used up; waiting for the vendor's next day",
    tonumber(res[2]) + 1000)
  return go
end

-- a share of today's quota this step took and did not use (its entries
-- were not sent, or not accepted): back to the counter, never more than the
-- step took
function F:give_back(account, kind, n)
  local k = account .. ":" .. kind
  local qk, left = self.quota_keys[k], self.step_taken[k] or 0
  n = math.min(n, left)
  if qk and n > 0 then
    self.step_taken[k] = left - n
    self.q.redis:eval(S.give_back, { qk.key }, { n })
  end
end

-- send one account's entries (already de-duplicated) and settle each
function F:send(account, list)
  local c = self.clients[account]
  local params = self.params[account]
  local by_kind = { refresh_url = {}, refresh_dir = {}, prefetch = {} }
  for _, e in ipairs(list) do by_kind[e.kind][#by_kind[e.kind] + 1] = e end
  for _, kind in ipairs { "refresh_url", "refresh_dir", "prefetch" } do
    by_kind[kind] = self:take_quota(account, kind, by_kind[kind])
  end
  local open = {} -- kind .. "\n" .. url -> { entries }
  local n_open = 0
  local urls = { refresh_url = {}, refresh_dir = {}, prefetch = {} }
  for kind, l in pairs(by_kind) do
    for _, e in ipairs(l) do
      local k = kind .. "\n" .. e.url
      if not open[k] then open[k] = {}; urls[kind][#urls[kind] + 1] = e.url end
      table.insert(open[k], e)
      n_open = n_open + 1
    end
  end
  if n_open == 0 then return end
  local function take(kind, url_list)
    local out = {}
    for _, u in ipairs(url_list) do
      local k = kind .. "\n" .. u
      for _, e in ipairs(open[k] or {}) do out[#out + 1] = e end
      open[k] = nil
    end
    return out
  end
  local function on_batch(ev)
    self:heartbeat()
    local ents = take(ev.kind, ev.urls)
    self.counts.sent = self.counts.sent + #ents
    if ev.ok then
      self:ack(account, ents)
      self:event({ event = "accepted", account = account, kind = ev.kind, urls = #ev.urls,
                   task_ids = ev.task_ids })
    else
      local err = ev.err or {}
      if err.over_quota then
        local qk = self.quota_keys[account .. ":" .. ev.kind]
        if qk then self.q.redis:eval(S.spent, { qk.key }, {}) end
        local next_ms = qk and qk.next_ms or 3600 * 1000
        self:settle(account, "quota", ents, tostring(err.message), next_ms + 1000)
      else
        -- refused as a whole and not worth retrying as is (a bad parameter,
        -- one URL the vendor rejects): each entry is retried alone, so
        -- the one at fault fails alone
        local mode = (#ents > 1 and err.retryable == false and not err.ambiguous) and "solo" or "retry"
        local delay
        if err.sent == false then
          -- never sent (no pacing slot from Redis, no session token): it
          -- costs no attempt and is tried again soon
          mode, delay = "again", 2000
        end
        self:settle(account, mode, ents, ("%s: %s"):format(tostring(err.code), tostring(err.message)), delay)
      end
    end
  end
  local common = { concurrency = self.concurrency, on_batch = on_batch, params = params }
  local CALLS = { refresh = { "refresh_url", "refresh_dir" }, prefetch = { "prefetch" } }
  -- one vendor call (refresh or prefetch) of `kinds`' URLs: its report row,
  -- or nothing when it has no URLs; raises on a usage mistake
  local function call(which, kinds)
    local o = {}
    for k, v in pairs(common) do o[k] = v end
    if which == "refresh" then
      if #kinds.refresh_url + #kinds.refresh_dir == 0 then return nil end
      o.urls, o.dirs = kinds.refresh_url, kinds.refresh_dir
    else
      if #kinds.prefetch == 0 then return nil end
      o.urls = kinds.prefetch
    end
    local rep, err = c[which](c, o)
    return { which, rep, err, kinds }
  end
  -- each call on its own: one that raises never makes the other be sent
  -- twice.  A usage mistake in what a producer queued (a URL the vendor's
  -- data refuses, a purge kind the vendor lacks): each URL is tried in a
  -- dry run, those refused go to the dead letters, the rest is sent.
  local reports = {}
  local function run(kinds, alone)
    for _, which in ipairs { "refresh", "prefetch" } do
      local ok, r = pcall(call, which, kinds)
      if ok then
        if r then reports[#reports + 1] = r end
      else
        local good = { refresh_url = {}, refresh_dir = {}, prefetch = {} }
        for _, kind in ipairs(CALLS[which]) do
          for _, u in ipairs(kinds[kind]) do
            local o = { dry_run = true, params = params }
            if kind == "refresh_dir" then o.dirs = { u } else o.urls = { u } end
            local fine, why = true, r
            if not alone then fine, why = pcall(c[which], c, o) end
            if fine then
              good[kind][#good[kind] + 1] = u
            else
              local msg = tostring(why):gsub("^[^\n]-%.lua:%d+: ", "")
              self:settle(account, "dead", take(kind, { u }), "refused before sending: " .. msg)
            end
          end
        end
        if not alone then
          local ok2, r2 = pcall(call, which, good)
          if ok2 and r2 then reports[#reports + 1] = r2 end
        end
      end
    end
  end
  -- entries to send alone: one call each, after the others
  local solo = {}
  for kind, l in pairs(urls) do
    local keep = {}
    for _, u in ipairs(l) do
      local alone = false
      for _, e in ipairs(open[kind .. "\n" .. u]) do if e.solo then alone = true end end
      if alone then solo[#solo + 1] = { kind, u } else keep[#keep + 1] = u end
    end
    urls[kind] = keep
  end
  run(urls)
  for _, ku in ipairs(solo) do
    local one = { refresh_url = {}, refresh_dir = {}, prefetch = {} }
    one[ku[1]][1] = ku[2]
    run(one, true)
  end
  -- whatever has no outcome yet (refused at planning, e.g. a host the
  -- vendor account does not serve; or the run stopped): a failed attempt
  for _, r in ipairs(reports) do
    local rep, rerr = r[2], r[3]
    if rep == nil and rerr then
      -- the whole call failed before sending (a quota or session error)
      local kinds = r[1] == "prefetch" and { "prefetch" } or { "refresh_url", "refresh_dir" }
      for _, kind in ipairs(kinds) do
        local ents = take(kind, r[4][kind])
        if #ents > 0 then
          if rerr.over_quota then
            self:settle(account, "quota", ents, tostring(rerr.message), 3600 * 1000)
          else
            self:settle(account, "retry", ents, ("%s: %s"):format(tostring(rerr.code), tostring(rerr.message)))
          end
        end
      end
    elseif type(rep) == "table" then
      for _, fl in ipairs(rep.failed or {}) do
        local ents = take(fl.kind or "refresh_url", fl.urls or {})
        if fl.kind == nil then
          for _, k in ipairs { "refresh_dir", "prefetch" } do
            for _, e in ipairs(take(k, fl.urls or {})) do ents[#ents + 1] = e end
          end
        end
        if #ents > 0 then
          local e = fl.err or {}
          self:settle(account, "retry", ents, ("%s: %s"):format(tostring(e.code), tostring(e.message)))
        end
      end
    end
  end
  local rest = {}
  for _, ents in pairs(open) do for _, e in ipairs(ents) do rest[#rest + 1] = e end end
  if #rest > 0 then self:settle(account, "retry", rest, "no outcome from the vendor call") end
end

-- reclaimed entries that were delivered (read or claimed) more than
-- max_attempts + 1 times: their flushers keep dying while they are in flight
-- (a poison entry); dead letters instead of another claim.  -> the others
function F:poison(account, ents)
  local res = self.q.redis:command("XPENDING", self.q:key("s", account), GROUP, "-", "+", #ents * 2 + 10,
    self.consumer)
  if type(res) ~= "table" then return ents end
  local times = {}
  for _, row in ipairs(res) do times[row[1]] = tonumber(row[4]) end
  local keep, bad = {}, {}
  for _, e in ipairs(ents) do
    if (times[e.id] or 0) > self.max_attempts + 1 then bad[#bad + 1] = e else keep[#keep + 1] = e end
  end
  if #bad > 0 then
    self:settle(account, "dead", bad, ("claimed again %d times: the flushers that held it died " ..
      "while it was in flight"):format(self.max_attempts + 1))
  end
  return keep
end

-- one account's batch of read entries
function F:handle(account, list)
  local q = self.q
  local good, bad = {}, {}
  for _, e in ipairs(list) do
    if KIND_OK[e.kind] and type(e.url) == "string" and e.url ~= "" then good[#good + 1] = e else bad[#bad + 1] = e end
  end
  if #bad > 0 then self:settle(account, "dead", bad, "malformed queue entry (no kind or URL)") end
  if #good == 0 then return true end
  local keep = {}
  for i = 1, #good, SLICE do
    local args = { GROUP, q:key("seen", account) .. ":", q.window }
    for j = i, math.min(#good, i + SLICE - 1) do
      local e = good[j]
      args[#args + 1] = e.id
      args[#args + 1] = e.kind
      args[#args + 1] = e.url
      args[#args + 1] = e.origin
    end
    local kept, err = self:eval(S.take, { q:key("s", account), q:key("stats", account) }, args)
    if not kept then
      self:event({ event = "redis_lost", account = account, error = err and err.message })
      return nil, err
    end
    for _, id in ipairs(kept) do keep[id] = true end
  end
  local list2 = {}
  for _, e in ipairs(good) do if keep[e.id] then list2[#list2 + 1] = e end end
  self.counts.deduped = self.counts.deduped + (#good - #list2)
  return self:send(account, list2)
end

--- f:step() -> entries handled | nil, err: promote parked entries that are
-- due, reclaim entries a dead flusher left (idle longer than claim_idle),
-- else read new ones (waiting up to `block` seconds), and flush them.
function F:step()
  local q, r = self.q, self.q.redis
  for _, a in ipairs(self.accounts) do
    local ok, err = q:ensure_group(a)
    if not ok then return nil, err end
    local n, perr = r:eval(S.promote, { q:key("later", a), q:key("dead", a) }, { q.prefix .. "s:", 1000 })
    if not n then return nil, perr end
  end
  local got = {}
  local now = core.monotime()
  local total = 0
  if now >= self.next_claim then
    self.next_claim = now + math.max(1, self.claim_idle / 4)
    for _, a in ipairs(self.accounts) do
      -- (the cursor XAUTOCLAIM returns carries on past a long pending list)
      self.claim_from = self.claim_from or {}
      local res, err = r:command("XAUTOCLAIM", q:key("s", a), GROUP, self.consumer,
        math.floor(self.claim_idle * 1000), self.claim_from[a] or "0-0", "COUNT", self.read)
      if type(res) == "table" and type(res[1]) == "string" then
        self.claim_from[a] = res[1] ~= "0-0" and res[1] or nil
        if res[1] ~= "0-0" then self.next_claim = 0 end
      end
      if not res then
        if err and err.message and err.message:find("NOGROUP", 1, true) then q.groups = {} end
        return nil, err
      end
      local ents = entries_of(res[2])
      if #ents > 0 then
        ents = self:poison(a, ents)
      end
      if #ents > 0 then
        got[a] = ents
        total = total + #ents
        self.counts.reclaimed = self.counts.reclaimed + #ents
        self:event({ event = "reclaimed", account = a, entries = #ents })
        -- more may be waiting: look again at the next step
        self.next_claim = 0
      end
    end
  end
  if total == 0 then
    local args = { "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", self.read,
                   "BLOCK", math.floor(self.block * 1000), "STREAMS" }
    for _, a in ipairs(self.accounts) do args[#args + 1] = q:key("s", a) end
    -- after a lost reply to a read (a Redis crash after it logged the
    -- read), our own unacknowledged entries first: ID 0 reads them again
    local from = self.reread and "0" or ">"
    for _ = 1, #self.accounts do args[#args + 1] = from end
    local res, err = r:command(unpack(args))
    if res == nil and err and err.code ~= "redis" then self.reread = true end
    if res == nil then
      -- the group vanished (a Redis without persistence restarted): made
      -- again at the next step
      if err and err.message and err.message:find("NOGROUP", 1, true) then q.groups = {} end
      return nil, err
    end
    if res ~= core.null and type(res) == "table" then
      local by_key = {}
      for _, a in ipairs(self.accounts) do by_key[q:key("s", a)] = a end
      for _, s in ipairs(res) do
        local a = by_key[s[1]]
        if a then
          got[a] = entries_of(s[2])
          total = total + #got[a]
        end
      end
    end
    if from == "0" and total == 0 then self.reread = nil end
  end
  self.working = {}
  for a, list in pairs(got) do
    local ids = {}
    for i, e in ipairs(list) do ids[i] = e.id end
    self.working[a] = ids
  end
  self.last_beat = core.monotime()
  self.step_lost = nil
  self.step_taken = {}
  for _, a in ipairs(self.accounts) do
    if got[a] and #got[a] > 0 then
      local ok, herr = self:handle(a, got[a])
      if ok == nil and herr then self.step_lost = herr end
    end
  end
  self.working = nil
  -- a Redis step that could not be made (entries left pending): nil, err,
  -- so that run pauses rather than reading the same entries again at once
  if self.step_lost then
    local lost = self.step_lost
    self.step_lost = nil
    return nil, lost
  end
  return total
end

-- the streams are empty and nothing parked is due within a minute (a
-- retry soon; work parked until the vendor's next day does not count)
function F:drained()
  local r = self.q.redis
  local t = r:command("TIME")
  if type(t) ~= "table" then return false end
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _, a in ipairs(self.accounts) do
    if r:command("XLEN", self.q:key("s", a)) ~= 0 then return false end
    local first = r:command("ZRANGE", self.q:key("later", a), 0, 0, "WITHSCORES")
    if type(first) ~= "table" then return false end
    if first[2] and tonumber(first[2]) < now + 60000 then return false end
  end
  return true
end

--- f:run{ duration = seconds, drain = true, stop = function() -> bool }:
-- step until told to stop (forever by default).  `drain`: stop once the
-- streams are empty (nothing pending or in flight) and no parked retry is
-- due within a minute (work parked until the vendor's next day stays).
-- A Redis outage is waited out (a pause, then again).  -> counts
function F:run(opts)
  opts = opts or {}
  local t0 = core.monotime()
  while true do
    if opts.stop and opts.stop() then break end
    if opts.duration and core.monotime() - t0 >= opts.duration then break end
    local n, err = self:step()
    if n == nil then
      self:event({ event = "redis_retry", error = err and err.message })
      sleep(0.5)
    elseif n == 0 and opts.drain and self:drained() then
      break
    end
  end
  return self.counts
end

--- f:close(): give the clients their own pacing and sleep back
function F:close()
  for account, c in pairs(self.clients) do
    local st = client_mod.STATE[c]
    if st then
      client_mod.set_pacer(c, self.old_pacers[account])
      st.sleep = self.old_sleeps[account] or st.sleep
    end
  end
  self.clients = {}
  self.accounts = {}
end

--- q:run(flusher options, run options): a flusher that runs until stopped
function Q:run(opts, run_opts)
  local f = self:flusher(opts)
  local ok, counts = pcall(f.run, f, run_opts)
  f:close()
  if not ok then error(counts, 0) end
  return counts
end

return M
