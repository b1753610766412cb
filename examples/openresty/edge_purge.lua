-- edge_purge.lua - an edge purge service for nginx + lua-nginx-module, built on
-- cdnkit: a purge queue in a lua_shared_dict that every worker shares, an
-- authenticated POST /purge that fills it, a hook that fills it when the
-- upstream says a page changed, and a flusher (a timer) that sends it to the
-- CDN vendor in vendor-sized batches.  See README.md next to this file.
--
-- Storage: one lua_shared_dict (default `edge_purge`), no state that exists
-- only in a worker's memory (the dict survives `nginx -s reload` when its name
-- and size stay the same).  Keys:
--
--   q:<url>        the URL is pending (waiting in `ready`, or about to be);
--                  value = the time it was queued.  This key is the truth and
--                  the de-duplication: safe_add fails "exists" while pending.
--                  The flusher deletes it when it takes the URL into flight,
--                  so a change reported while a purge is out is purged again
--                  after it (a purge only covers what changed before it).
--   ready          a list of URLs: producers lpush (left), the flusher rpops
--                  (right), so FIFO.  Entries are hints: one whose q:<url> is
--                  gone (already taken) is skipped when popped.
--   inflight       "<token>\n<url>\n<url>..." the batch being sent, written
--                  before its q: keys are deleted; inflight_n = its size.
--   lock           "<pid>:<seq>:<time>" of the one flusher at a time, taken
--                  with safe_add and an expiry (`lease`), renewed per round.
--                  A flusher that finds `inflight` when it takes the lock knows
--                  the previous holder died (or lost the lock) mid-flush: it
--                  puts those URLs back in the queue first (`recovered`).
--   need_sweep     set by every worker start (start, reload, a worker that
--                  crashed and was respawned): the next flusher rebuilds
--                  `ready` from the q: keys, so a URL orphaned by a crash
--                  between two dict operations is queued again.
--   next_at, fail_streak   backoff: after a flush with failures no flush
--                  starts before next_at (exponential, equal jitter).
--   c:*            counters (sent, failed, dropped, enqueued, duplicates,
--                  flushes, recovered); last_error, last_error_at,
--                  last_flush_at, last_success_at.
--
-- Every write that can allocate uses safe_add/safe_set (or a list push, which
-- never evicts): the dict never evicts a pending URL to make room; a full dict
-- answers "queue full" instead.  ETags seen by the hook live in a second dict
-- (default `edge_purge_etags`) where eviction is harmless.
--
-- Delivery is at least once: a URL is removed only after the vendor accepted
-- its batch; a flusher that dies after the vendor accepted but before it
-- recorded that makes the URL go out again (purges are idempotent).

local ngx = ngx
local cdnkit = require "cdnkit"
local bit = require "bit"

local type, tostring, tonumber, pairs, ipairs, pcall = type, tostring, tonumber, pairs, ipairs, pcall
local error = error
local concat, floor, ceil, min, random = table.concat, math.floor, math.ceil, math.min, math.random
local randomseed = math.randomseed
local byte, getenv, open = string.byte, os.getenv, io.open
local bxor, bor = bit.bxor, bit.bor

local M = {}

local READY, INFLIGHT, INFLIGHT_N, LOCK = "ready", "inflight", "inflight_n", "lock"
local NEED_SWEEP, NEXT_AT, STREAK = "need_sweep", "next_at", "fail_streak"
local Q = "q:"
local COUNTERS = { "c:sent", "c:failed", "c:dropped", "c:enqueued", "c:duplicates", "c:flushes",
                   "c:recovered", STREAK }

-- the configuration (defaults; start{} overrides them in each worker)
local cfg = {
  dict = "edge_purge",            -- the queue's lua_shared_dict
  etag_dict = "edge_purge_etags", -- the hook's ETags (evictable)
  vendor = "qcloud",              -- cdnkit.<vendor>{...}
  client = {},                    -- its options; endpoint defaults to $CDNKIT_<VENDOR>_ENDPOINT
  concurrency = 3,                -- refresh{ concurrency = }
  params = nil,                   -- refresh{ params = } (e.g. { Area = "overseas" })
  batch_size = 3000,              -- URLs taken from the queue per flush round
  rounds = 10,                    -- flush rounds per timer run (while the queue is not empty)
  interval = 1,                   -- seconds between timer runs
  lease = 60,                     -- seconds the flush lock (and the in-flight batch) is held for
  backoff_base = 1,               -- first backoff, seconds
  backoff_max = 60,               -- longest backoff, seconds
  max_urls = 1000,                -- URLs per POST /purge (413 above)
  max_url_length = 2048,          -- bytes per URL (400 above)
  max_queued = 30000,             -- queue length above which POST /purge answers 503
  token_env = "EDGE_PURGE_TOKEN", -- env variable holding the bearer token
  public_base = nil,              -- the hook purges public_base .. request_uri
                                  -- (default: this request's scheme://host)
  etag_ttl = 86400,               -- seconds an ETag is remembered
  -- a vendor answer that means "this URL can never be purged": the batch is
  -- split in halves until the URL is alone, then it is dropped (and counted)
  is_invalid = function(err)
    local code = type(err) == "table" and not err.retryable and tostring(err.code or "") or ""
    return code:find("^InvalidParameter%.") ~= nil or code:find("^InvalidParameterValue") ~= nil
  end,
}

local client          -- this worker's cdnkit client, made at the first flush
local seq = 0         -- makes lock tokens unique within the worker

local function shdict()
  local d = ngx.shared[cfg.dict]
  if not d then error("edge_purge: no lua_shared_dict " .. tostring(cfg.dict), 2) end
  return d
end

local function bump(d, key, n)
  if n == 0 then return d:get(key) or 0 end
  local v, err = d:incr(key, n)
  if not v and err == "not found" then
    d:safe_add(key, 0)
    v = d:incr(key, n)
  end
  return v
end

local function now()
  ngx.update_time()
  return ngx.now()
end

local function note_error(d, msg)
  msg = tostring(msg):gsub("%s+", " ")
  if #msg > 500 then msg = msg:sub(1, 497) .. "..." end
  d:safe_set("last_error", msg)
  d:safe_set("last_error_at", now())
end

-- ---------------------------------------------------------------------------
-- the queue
-- ---------------------------------------------------------------------------

--- Why `u` cannot be queued (a string), or nil when it can.
function M.check_url(u)
  if type(u) ~= "string" then return "not a string" end
  if #u > cfg.max_url_length then return "longer than " .. cfg.max_url_length .. " bytes" end
  if u:find("[%c%s]") then return "contains whitespace or control characters" end
  if not u:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+") then
    return "not an http:// or https:// URL with a host"
  end
  return nil
end

--- Queue URLs (already checked).  Safe in every phase (shared dict only).
-- Returns n_new, n_duplicates[, err] (err: the queue is full; the URLs before
-- it were queued).
function M.enqueue(urls)
  local d = shdict()
  if cfg.max_queued and (d:llen(READY) or 0) + #urls > cfg.max_queued then
    return 0, 0, "queue full (at most " .. cfg.max_queued .. " URLs wait; nothing was queued)"
  end
  local t, new, dup, err = ngx.now(), 0, 0, nil
  for _, u in ipairs(urls) do
    local ok, e = d:safe_add(Q .. u, t)
    if ok then
      local n, perr = d:lpush(READY, u)
      if not n then
        d:delete(Q .. u)
        err = "queue full (" .. tostring(perr) .. ")"
        break
      end
      new = new + 1
    elseif e == "exists" then
      dup = dup + 1
    else
      err = "queue full (" .. tostring(e) .. ")"
      break
    end
  end
  bump(d, "c:enqueued", new)
  bump(d, "c:duplicates", dup)
  return new, dup, err
end

-- put URLs back at the front of the queue (popped first); those that cannot
-- be stored (dict full) are returned
local function requeue(d, urls)
  local t, left = ngx.now(), {}
  for i = #urls, 1, -1 do
    local u = urls[i]
    local ok, err = d:safe_add(Q .. u, t)
    if ok then
      if not d:rpush(READY, u) then
        d:delete(Q .. u)
        left[#left + 1] = u
      end
    elseif err ~= "exists" then          -- "exists": queued again meanwhile
      left[#left + 1] = u
    end
  end
  return left
end

local function inflight_urls(v)
  local urls, first = {}, true
  for line in v:gmatch("[^\n]+") do
    if first then first = false else urls[#urls + 1] = line end
  end
  return urls
end

-- what a dead (or lock-losing) flusher left in flight goes back to the queue
local function recover(d)
  local v = d:get(INFLIGHT)
  if not v then return end
  local urls = inflight_urls(v)
  local left = requeue(d, urls)
  bump(d, "c:recovered", #urls - #left)
  if #left == 0 then
    d:delete(INFLIGHT)
    d:delete(INFLIGHT_N)
  else
    d:safe_set(INFLIGHT, "recover\n" .. concat(left, "\n"))
    d:safe_set(INFLIGHT_N, #left)
  end
  ngx.log(ngx.WARN, "edge_purge: ", #urls, " URLs left in flight by an earlier flusher are queued again")
end

-- rebuild `ready` from the q: keys (after a worker start): drops stale
-- entries, queues orphans (pending URLs in no list) in front
local function sweep(d)
  local order, seen = {}, {}
  while true do
    local u = d:rpop(READY)
    if not u then break end
    if not seen[u] and d:get(Q .. u) then
      seen[u] = true
      order[#order + 1] = u
    end
  end
  local v = d:get(INFLIGHT)
  if v then for _, u in ipairs(inflight_urls(v)) do seen[u] = true end end
  local orphans = {}
  for _, k in ipairs(d:get_keys(0)) do
    if k:sub(1, #Q) == Q then
      local u = k:sub(#Q + 1)
      if not seen[u] then seen[u] = true; orphans[#orphans + 1] = u end
    end
  end
  local ok = true
  for i = #order, 1, -1 do ok = d:rpush(READY, order[i]) and ok end
  for i = #orphans, 1, -1 do ok = d:rpush(READY, orphans[i]) and ok end
  if not ok then d:safe_set(NEED_SWEEP, 1) end   -- their q: keys remain: later
  if #orphans > 0 then
    ngx.log(ngx.WARN, "edge_purge: sweep queued ", #orphans, " orphaned URLs again")
    bump(d, "c:recovered", #orphans)
  end
end

-- up to `max` pending URLs, in queue order
local function take(d, max)
  local batch, seen = {}, {}
  while #batch < max do
    local u = d:rpop(READY)
    if not u then break end
    if not seen[u] and d:get(Q .. u) then
      seen[u] = true
      batch[#batch + 1] = u
    end
  end
  return batch
end

-- ---------------------------------------------------------------------------
-- the flusher
-- ---------------------------------------------------------------------------

local function get_client()
  if client and not client:is_closed() then return client end
  local o = {}
  for k, v in pairs(cfg.client or {}) do o[k] = v end
  if o.endpoint == nil then
    o.endpoint = getenv("CDNKIT_" .. cfg.vendor:upper() .. "_ENDPOINT")
  end
  local ok, c = pcall(cdnkit[cfg.vendor], o)   -- credentials: options or env
  if not ok then return nil, "cannot make the " .. cfg.vendor .. " client: " .. tostring(c) end
  client = c
  return client
end

-- send `urls`; returns done, again (to retry), dropped (never purgeable), last error
local function purge(c, urls, keep_lock)
  local done, again, dropped, last = {}, {}, {}, nil
  local function run(list, size)
    keep_lock()
    local ok, rep = pcall(c.refresh, c, { urls = list, concurrency = cfg.concurrency,
                                          params = cfg.params, batch_size = size })
    if not ok then
      -- refresh raises only for usage mistakes, before sending anything:
      -- find the URLs the client refuses (a dry run sends nothing)
      last = rep
      local fine = {}
      for _, u in ipairs(list) do
        if pcall(c.refresh, c, { urls = { u }, params = cfg.params, dry_run = true }) then
          fine[#fine + 1] = u
        else
          dropped[#dropped + 1] = u
        end
      end
      if #fine == #list then                  -- not a URL's fault: try again later
        for _, u in ipairs(list) do again[#again + 1] = u end
      elseif #fine > 0 then
        run(fine, size)
      end
      return
    end
    local failed = {}
    for _, f in ipairs(rep.failed) do
      last = f.err
      for _, u in ipairs(f.urls) do failed[u] = true end
      if cfg.is_invalid(f.err) then
        if #f.urls == 1 then
          dropped[#dropped + 1] = f.urls[1]
        else                                  -- which one? split in halves
          run(f.urls, ceil(#f.urls / 2))
        end
      else
        for _, u in ipairs(f.urls) do again[#again + 1] = u end
      end
    end
    for _, u in ipairs(list) do
      if not failed[u] then done[#done + 1] = u end
    end
  end
  run(urls, nil)
  return done, again, dropped, last
end

local function backoff(d, t)
  local streak = bump(d, STREAK, 1) or 1
  local exp = min(cfg.backoff_max, cfg.backoff_base * 2 ^ (streak - 1))
  local delay = exp / 2 + random() * exp / 2      -- "equal jitter"
  d:safe_set(NEXT_AT, t + delay)
  return delay
end

local function flush(d, token)
  local function keep_lock()
    if d:get(LOCK) == token then d:expire(LOCK, cfg.lease) end
  end
  recover(d)
  if d:get(NEED_SWEEP) then
    d:delete(NEED_SWEEP)
    sweep(d)
  end
  for _ = 1, cfg.rounds do
    if ngx.worker.exiting() or d:get(LOCK) ~= token then return end
    keep_lock()
    local batch = take(d, cfg.batch_size)
    if #batch == 0 then return end
    -- in flight: on record before the URLs stop being pending
    local ok, err = d:safe_set(INFLIGHT, token .. "\n" .. concat(batch, "\n"))
    if not ok then
      requeue(d, batch)
      note_error(d, "cannot record the batch in flight: " .. tostring(err))
      backoff(d, now())
      return
    end
    d:safe_set(INFLIGHT_N, #batch)
    for _, u in ipairs(batch) do d:delete(Q .. u) end

    local done, again, dropped, last
    local c, cerr = get_client()
    if c then
      done, again, dropped, last = purge(c, batch, keep_lock)
    else
      done, again, dropped, last = {}, batch, {}, cerr
    end
    local t = now()
    bump(d, "c:flushes", 1)
    bump(d, "c:sent", #done)
    bump(d, "c:failed", #again)
    bump(d, "c:dropped", #dropped)
    d:safe_set("last_flush_at", t)
    local left = requeue(d, again)
    local v = d:get(INFLIGHT)
    if v and v:sub(1, #token + 1) == token .. "\n" then   -- still ours
      if #left == 0 then
        d:delete(INFLIGHT)
        d:delete(INFLIGHT_N)
      else                            -- the dict is full: keep them in flight
        d:safe_set(INFLIGHT, token .. "\n" .. concat(left, "\n"))
        d:safe_set(INFLIGHT_N, #left)
      end
    end
    if #dropped > 0 then
      ngx.log(ngx.WARN, "edge_purge: dropped ", #dropped, " URLs the vendor refuses, e.g. ",
              dropped[1], ": ", tostring(last))
    end
    if #again > 0 then
      note_error(d, last or "failed")
      local delay = backoff(d, t)
      ngx.log(ngx.ERR, "edge_purge: ", #again, " URLs stay queued, next attempt in ",
              floor(delay * 1000) / 1000, " s: ", tostring(last))
      return
    end
    if #dropped > 0 then note_error(d, last) end
    d:safe_set(STREAK, 0)
    d:delete(NEXT_AT)
    d:safe_set("last_success_at", t)
  end
end

local function tick(premature)
  if premature or ngx.worker.exiting() then return end
  local d = shdict()
  local t = now()
  if (d:get(NEXT_AT) or 0) > t then return end
  if (d:llen(READY) or 0) == 0 and not d:get(INFLIGHT) and not d:get(NEED_SWEEP) then return end
  seq = seq + 1
  local token = ("%d:%d:%.3f"):format(ngx.worker.pid(), seq, t)
  if not d:safe_add(LOCK, token, cfg.lease) then return end     -- another flusher runs
  local ok, err = pcall(flush, d, token)
  if not ok then
    -- what was in flight stays recorded: the next flush recovers it
    note_error(d, "flusher: " .. tostring(err))
    backoff(d, now())
    ngx.log(ngx.ERR, "edge_purge: flusher: ", tostring(err))
  end
  if d:get(LOCK) == token then d:delete(LOCK) end
end

--- init_worker_by_lua: configure this worker and start its flusher timer.
function M.start(opts)
  for k, v in pairs(opts or {}) do
    if k == "backoff" then
      cfg.backoff_base = v.base or cfg.backoff_base
      cfg.backoff_max = v.max or cfg.backoff_max
    elseif cfg[k] == nil and k ~= "params" and k ~= "public_base" then
      error("edge_purge.start: unknown option '" .. tostring(k) .. "'", 2)
    else
      cfg[k] = v
    end
  end
  local d = shdict()
  for _, k in ipairs(COUNTERS) do d:safe_add(k, 0) end
  d:safe_set(NEED_SWEEP, 1)
  randomseed(floor(ngx.now() * 1000) + ngx.worker.pid())
  local ok, err = ngx.timer.every(cfg.interval, tick)
  if not ok then ngx.log(ngx.ERR, "edge_purge: cannot start the flusher: ", err) end
  ngx.timer.at(0, tick)
end

-- ---------------------------------------------------------------------------
-- HTTP handlers (content_by_lua)
-- ---------------------------------------------------------------------------

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cdnkit.json_encode(t))
  return ngx.exit(ngx.HTTP_OK)
end

-- equal strings, in a time that does not depend on where they differ or on
-- their lengths (compares SHA-1 digests with no early exit)
local function same_secret(a, b)
  local x, y = ngx.sha1_bin(a), ngx.sha1_bin(b)
  local diff = 0
  for i = 1, #x do diff = bor(diff, bxor(byte(x, i), byte(y, i))) end
  return diff == 0
end

local function parse_body(body)
  if body:find("^%s*{") then
    local t, err = cdnkit.json_decode(body)
    if type(t) ~= "table" then return nil, "the body is not valid JSON: " .. tostring(err) end
    local urls = t.urls
    if type(urls) ~= "table" then return nil, 'the JSON body must be {"urls": [...]}' end
    local n = 0
    for _ in pairs(urls) do n = n + 1 end
    if n ~= #urls then return nil, '"urls" must be an array of strings' end
    return urls
  end
  local urls = {}
  for line in body:gmatch("[^\n]+") do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then urls[#urls + 1] = line end
  end
  return urls
end

--- POST /purge
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
    ngx.header["WWW-Authenticate"] = 'Bearer realm="edge-purge"'
    return reply(401, { error = "a valid 'Authorization: Bearer <token>' header is required" })
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local path = ngx.req.get_body_file()
    local f = path and open(path, "rb")
    if f then body = f:read("*a"); f:close() end
  end
  if not body or not body:find("%S") then
    return reply(400, { error = 'empty body: send {"urls": [...]} or one URL per line' })
  end
  local urls, perr = parse_body(body)
  if not urls then return reply(400, { error = perr }) end
  if #urls == 0 then return reply(400, { error = "no URLs in the body" }) end
  if #urls > cfg.max_urls then
    return reply(413, { error = ("%d URLs in one request; at most %d"):format(#urls, cfg.max_urls),
                        max_urls = cfg.max_urls })
  end
  local invalid = {}
  for i, u in ipairs(urls) do
    local why = M.check_url(u)
    if why then
      if #invalid < 20 then
        local shown = type(u) == "string" and (#u > 200 and u:sub(1, 200) .. "..." or u) or cdnkit.null
        invalid[#invalid + 1] = { index = i, url = shown, reason = why }
      else
        break
      end
    end
  end
  if #invalid > 0 then
    return reply(400, { error = "invalid URLs (nothing was queued)", invalid = invalid })
  end
  local new, dup, err = M.enqueue(urls)
  if err then return reply(503, { error = err, queued = new, duplicates = dup }) end
  return reply(202, { queued = new, duplicates = dup })
end

--- GET /purge/status
function M.handle_status()
  local d = shdict()
  local function get(k) return d:get(k) or 0 end
  local function at(k) local v = d:get(k); return v and floor(v) or cdnkit.null end
  local lock = d:get(LOCK)
  local t = now()
  local next_at = d:get(NEXT_AT)
  return reply(200, {
    queued = d:llen(READY) or 0,
    in_flight = get(INFLIGHT_N),
    sent = get("c:sent"),
    failed = get("c:failed"),            -- URL attempts that failed (then queued again)
    dropped = get("c:dropped"),          -- URLs the vendor refuses for good
    enqueued = get("c:enqueued"),
    duplicates = get("c:duplicates"),
    flushes = get("c:flushes"),
    recovered = get("c:recovered"),
    fail_streak = get(STREAK),
    last_error = d:get("last_error") or cdnkit.null,
    last_error_at = at("last_error_at"),
    last_flush_at = at("last_flush_at"),
    last_success_at = at("last_success_at"),
    next_attempt_in = next_at and next_at > t and floor((next_at - t) * 1000) / 1000 or 0,
    flush_lock = lock and tonumber(lock:match("^(%d+):")) or cdnkit.null,  -- holder's pid
    free_bytes = d.free_space and d:free_space() or cdnkit.null,   -- of the dict
    pid = ngx.worker.pid(),
  })
end

-- ---------------------------------------------------------------------------
-- the upstream hook (header_filter_by_lua + log_by_lua): no cosockets there,
-- so it only queues (shared dict); the flusher does the sending
-- ---------------------------------------------------------------------------

local TRUE = { ["1"] = true, ["true"] = true, ["yes"] = true }

--- header_filter_by_lua: decide whether this response means "changed"
function M.hook_header_filter()
  local h = ngx.header
  local flag = h["X-Content-Changed"]
  if flag ~= nil then h["X-Content-Changed"] = nil end     -- internal: not for clients
  local method = ngx.req.get_method()
  if ngx.status ~= 200 or (method ~= "GET" and method ~= "HEAD") then return end
  local url = (cfg.public_base or (ngx.var.scheme .. "://" .. ngx.var.host)) .. ngx.var.request_uri
  if type(flag) == "string" and TRUE[flag:lower()] then
    ngx.ctx.edge_purge_url = url
    return
  end
  local etag = h["ETag"]
  local tags = ngx.shared[cfg.etag_dict]
  if type(etag) ~= "string" or not tags then return end
  local old = tags:get(url)
  if old ~= etag then
    tags:set(url, etag, cfg.etag_ttl)      -- this dict may evict: only ETags live there
    if old then ngx.ctx.edge_purge_url = url end   -- first sight: nothing to purge
  end
end

--- log_by_lua: queue what the header filter found (after the response is out)
function M.hook_log()
  local url = ngx.ctx.edge_purge_url
  if not url then return end
  local why = M.check_url(url)
  if why then
    ngx.log(ngx.WARN, "edge_purge: not queued, ", why, ": ", url)
    return
  end
  local _, _, err = M.enqueue({ url })
  if err then ngx.log(ngx.ERR, "edge_purge: not queued, ", err, ": ", url) end
end

return M
