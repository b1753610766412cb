-- cdnkit.queue.scripts: the Redis server-side scripts of the fleet purge
-- queue (data: Lua source run by Redis's EVAL, each one atomic).  Every key
-- a script touches starts with the queue's prefix, `cdnkit:{<name>}:`, whose
-- hash tag keeps them in one Redis Cluster slot.  Times are Redis's own
-- clock (TIME), in milliseconds, so flushers' clocks never matter.
--
-- Entry fields in the streams: k = kind ("refresh_url", "refresh_dir",
-- "prefetch"), u = URL, o = origin id (the id it was first queued under,
-- kept when it is queued again for a retry), n = failed attempts so far,
-- e = the last error, s = 1 when it is to be sent alone (it failed in a
-- batch the vendor refused as a whole).
local M = {}

local NOW = [=[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
]=]

-- add: KEYS stream, stats, accounts; ARGV account, kind, url...
-- -> number of entries added (all or nothing)
M.add = [=[
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'u', ARGV[i])
end
redis.call('HINCRBY', KEYS[2], 'added', #ARGV - 2)
redis.call('SADD', KEYS[3], ARGV[1])
return #ARGV - 2
]=]

-- take (the fleet-wide de-duplication): KEYS stream, stats; ARGV group,
-- seen-key prefix, window seconds, then id, kind, url, origin per entry.
-- The first entry of a URL taken by a flusher owns it: the seen key (SET
-- EX window) holds "<owner origin id>|<ms it was taken>".  A later entry of
-- the same URL that was queued (its id's time) no later than the owner was
-- taken is merged into it: the owner's purge goes out after that entry's
-- change, so it covers it; the entry is acknowledged and deleted, counted
-- "deduped".  An entry queued after the owner was taken may describe a
-- change the owner's purge missed: it becomes the owner and is purged too.
-- The owner itself (read again after a crash, or retried) keeps its place.
-- -> the ids kept.
M.take = NOW .. [=[
local group, prefix, window = ARGV[1], ARGV[2], tonumber(ARGV[3])
local kept, dups = {}, 0
for i = 4, #ARGV, 4 do
  local id, kind, url, origin = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if origin == '' then origin = id end
  local keep = true
  if window > 0 then
    local key = prefix .. kind .. ':' .. url
    local cur = redis.call('GET', key)
    local owner, taken
    if cur then owner, taken = string.match(cur, '^(.*)|(%d+)$') end
    if owner == origin then
      keep = true
    elseif owner and tonumber(string.match(origin, '^(%d+)')) <= tonumber(taken) then
      keep = false
    else
      redis.call('SET', key, origin .. '|' .. now, 'EX', window)
    end
  end
  if keep then
    kept[#kept + 1] = id
  elseif redis.call('XACK', KEYS[1], group, id) == 1 then
    redis.call('XDEL', KEYS[1], id)
    dups = dups + 1
  end
end
if dups > 0 then redis.call('HINCRBY', KEYS[2], 'deduped', dups) end
return kept
]=]

-- ack (the vendor accepted): KEYS stream, stats; ARGV group, id...
-- Acknowledged entries are deleted; counted once even when sent again
-- after a lost reply.  -> number acknowledged now
M.ack = [=[
local n = 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'done', n) end
return n
]=]

-- settle (not accepted): KEYS stream, stats, later, dead; ARGV group,
-- account, mode ("retry" | "solo" | "again" (not sent: no attempt counted) |
-- "quota" | "dead"), max attempts, delay
-- ms (retry) or until the vendor's next day (quota), error text, then id,
-- kind, url, origin, attempts, solo per entry ("solo": a retry sent alone,
-- in a batch of one, so that one URL the vendor refuses fails alone).  Each entry still pending is acknowledged and, in the same
-- step, either parked in `later` (a sorted set by due time) to be queued
-- again, or, after max attempts (or mode "dead"), appended to the
-- dead-letter stream with the last error.  -> { parked, dead }
M.settle = NOW .. [=[
local group, account, mode = ARGV[1], ARGV[2], ARGV[3]
local max, delay, err = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local parked, dead = 0, 0
local solo_all = mode == 'solo'
if solo_all then mode = 'retry' end
for i = 7, #ARGV, 6 do
  local id, kind, url, origin = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local n = tonumber(ARGV[i + 4]) or 0
  local solo = (solo_all or ARGV[i + 5] == '1') and 1 or 0
  if origin == '' then origin = id end
  if redis.call('XACK', KEYS[1], group, id) == 1 then
    redis.call('XDEL', KEYS[1], id)
    if mode ~= 'quota' and mode ~= 'again' then n = n + 1 end
    if mode == 'dead' or (mode == 'retry' and n >= max) then
      redis.call('XADD', KEYS[4], '*', 'k', kind, 'u', url, 'o', origin, 'n', n, 'e', err,
                 'at', now)
      dead = dead + 1
    else
      local due = now + delay
      local member = cjson.encode({ a = account, k = kind, u = url, o = origin, n = n, e = err,
                                    s = solo })
      redis.call('ZADD', KEYS[3], due, member)
      parked = parked + 1
    end
  end
end
if mode == 'quota' then
  redis.call('HINCRBY', KEYS[2], 'over_quota', parked)
elseif mode == 'again' then
  -- never sent (no pacing slot, no session): no attempt spent
else
  if parked + dead > 0 then redis.call('HINCRBY', KEYS[2], 'failed', parked + dead) end
  if dead > 0 then redis.call('HINCRBY', KEYS[2], 'dead', dead) end
end
return { parked, dead }
]=]

-- promote: KEYS later, dead; ARGV stream-key prefix, max entries.  Entries of
-- `later` that are due go back to their account's stream (same step: never
-- in both, never in neither).  -> number promoted
M.promote = NOW .. [=[
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local ok, e = pcall(cjson.decode, m)
  if ok and type(e) == 'table' and type(e.a) == 'string' and type(e.u) == 'string' then
    redis.call('XADD', ARGV[1] .. e.a, '*', 'k', e.k, 'u', e.u, 'o', e.o, 'n', e.n, 'e', e.e,
               's', e.s or 0)
  else
    -- not one of ours (written by hand): kept as a dead letter, not lost
    redis.call('XADD', KEYS[2], '*', 'k', '', 'u', '', 'raw', m, 'e', 'malformed parked entry')
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
]=]

-- redrive (dead letters back to work): KEYS dead, stream, stats; ARGV max.
-- -> number moved
M.redrive = [=[
local rows = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
for _, r in ipairs(rows) do
  local f = {}
  for i = 1, #r[2], 2 do f[r[2][i]] = r[2][i + 1] end
  redis.call('XADD', KEYS[2], '*', 'k', f.k, 'u', f.u, 'o', f.o or '', 'n', 0, 'e', f.e or '')
  redis.call('XDEL', KEYS[1], r[1])
end
if #rows > 0 then redis.call('HINCRBY', KEYS[3], 'redriven', #rows) end
return #rows
]=]

-- reserve (the fleet-wide rate): KEYS the account's slot list; ARGV rate
-- (requests per window), window ms, keep (entries kept).  A sliding-window
-- limit: the list holds the latest start times given out, newest first;
-- a new one is the later of now, the newest, and the rate-th newest plus the
-- window, so no window of that length ever holds more than `rate` starts,
-- however many flushers ask.  -> { wait ms, slot } (strings)
M.reserve = NOW .. [=[
local rate, window, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local times = redis.call('LRANGE', KEYS[1], 0, rate - 1)
local t = now
if #times >= 1 and tonumber(times[1]) > t then t = tonumber(times[1]) end
if #times >= rate then
  local w = tonumber(times[rate]) + window
  if w > t then t = w end
end
redis.call('LPUSH', KEYS[1], t)
redis.call('LTRIM', KEYS[1], 0, keep - 1)
redis.call('PEXPIRE', KEYS[1], t - now + 2 * window)
return { tostring(t - now), tostring(t) }
]=]

-- unreserve: KEYS slot list; ARGV slot.  A start time not used after all.
M.unreserve = [=[
return redis.call('LREM', KEYS[1], 1, ARGV[1])
]=]

-- quota (today's purge budget of an account, kind and area): KEYS stats;
-- ARGV key prefix, wanted, utc offset seconds, initial ("" when unknown).
-- The counter of the vendor's day is created from `initial` (what the
-- vendor's quota API said was left) by the first flusher of the day; a
-- flusher then takes what is left up to `wanted`.  -> { taken | -1 when the
-- counter is unknown, ms until the vendor's next day, the key }
M.quota = NOW .. [=[
local offset = tonumber(ARGV[3]) * 1000
local day = math.floor((now + offset) / 86400000)
local next_day = (day + 1) * 86400000 - offset
local key = ARGV[1] .. day
local left = redis.call('GET', key)
if not left then
  if ARGV[4] == '' then return { -1, next_day - now, key } end
  redis.call('SET', key, ARGV[4], 'NX', 'PX', next_day - now + 86400000)
  left = redis.call('GET', key)
end
local take = math.min(tonumber(ARGV[2]), tonumber(left))
if take < 0 then take = 0 end
if take > 0 then redis.call('DECRBY', key, take) end
return { take, next_day - now, key }
]=]

-- give back (a batch that did not go): KEYS quota key; ARGV n
-- (nothing when the day has changed meanwhile)
M.give_back = [=[
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0
]=]

-- spent (the vendor said the quota is used up): KEYS quota key
M.spent = [=[
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 0
]=]

return M
