-- cdnkit.pace: token buckets that keep requests within a vendor's documented
-- rates.  A bucket holds up to `burst` tokens and refills at `rate` per
-- second; taking a token when none is left is allowed and returns the time at
-- which the request may start (the debt is paid by waiting).  Each client has
-- one bucket for the vendor-wide rate and one per action with a documented
-- rate of its own; a request takes from both and starts at the later time.
-- Buckets live in the client's state, so consecutive calls and batches share
-- them.
local core = require "cdnkit.core"

local M = {}

local function new(rate, burst)
  burst = burst or math.max(1, rate)
  return { rate = rate, burst = burst, tokens = burst, last = core.monotime() }
end
M.new = new

local function refill(b, now)
  b.tokens = math.min(b.burst, b.tokens + (now - b.last) * b.rate)
  b.last = now
end

--- Take one token; returns the monotonic time at which the request may start.
function M.take(b, now)
  now = now or core.monotime()
  refill(b, now)
  b.tokens = b.tokens - 1
  if b.tokens >= 0 then return now end
  return now + (-b.tokens) / b.rate
end

--- When a token would be available, without taking it.
function M.ready(b, now)
  now = now or core.monotime()
  refill(b, now)
  if b.tokens >= 1 then return now end
  return now + (1 - b.tokens) / b.rate
end

--- The documented rate (requests per second) of action `a` itself, or nil.
function M.action_rate(a)
  local l = a and a.limits
  if l and l.per_second then return l.per_second end
  if l and l.per_minute then return l.per_minute / 60 end
end

-- the buckets of `action` in client state `st` (none when pacing is off)
local function buckets(st, action)
  if st.rate == false then return nil end
  st.buckets = st.buckets or {}
  local list = st.buckets[action]
  if list == nil then
    list = {}
    if st.rate then
      -- the user's rate replaces the documented ones: one shared bucket
      st.vendor_bucket = st.vendor_bucket or new(st.rate)
      list[1] = st.vendor_bucket
    else
      local v = st.api.limits and st.api.limits.per_second
      if v then
        st.vendor_bucket = st.vendor_bucket or new(v)
        list[#list + 1] = st.vendor_bucket
      end
      local r = M.action_rate(st.api_index[action])
      if r then list[#list + 1] = new(r) end
    end
    st.buckets[action] = list
  end
  return list
end

--- Reserve a start time for one request of `action`: the later of what each
-- bucket allows.  Returns nil when pacing is off.
-- A shared pacer (st.pacer, set by cdnkit.queue through client.set_pacer)
-- adds a limit kept outside this process, e.g. one rate for every flusher
-- of a fleet: pacer:reserve(action) returns the seconds to wait from now and
-- a handle (a wait of 0 and no handle when it does not pace `action`), or
-- raises when it cannot tell (the batch then fails as not sent: never sent
-- unpaced); pacer:release(action, handle) gives the reservation back.
function M.reserve(st, action, now)
  local list = buckets(st, action)
  local shared = st.pacer
  if (not list or #list == 0) and not shared then return nil end
  now = now or core.monotime()
  local at = now
  for _, b in ipairs(list or {}) do
    local t = M.take(b, now)
    if t > at then at = t end
  end
  if shared then
    local wait, handle = shared:reserve(action)
    st.pacer_held = handle
    local t = core.monotime() + wait
    if t > at then at = t end
  end
  return at
end

--- Give back the token reserve() took for `action` (the request was not
-- sent after all).
function M.release(st, action)
  local list = buckets(st, action)
  for _, b in ipairs(list or {}) do b.tokens = math.min(b.burst, b.tokens + 1) end
  if st.pacer and st.pacer_held ~= nil then
    local h = st.pacer_held
    st.pacer_held = nil
    st.pacer:release(action, h)
  end
end

--- Reserve `n` units of a sliding-window limit: at most `limit` units in
-- any `window` seconds (Alibaba: 1,000 URLs a minute per domain, counted by
-- the vendor over the last 60 s, so a token bucket, which allows a burst
-- and a refill within one minute, would overrun it).  Returns the monotonic
-- time at which the units may go, and the reservation (for release_window).
-- A reservation is kept at least `window` seconds away from every other
-- reservation it would overfill, before or after it.
function M.reserve_window(st, key, limit, window, n, now)
  st.windows = st.windows or {}
  local log = st.windows[key]
  if not log then log = {}; st.windows[key] = log end
  local real = core.monotime()
  now = now or real
  -- forget what left the window by now (the real now: `now` may be a time
  -- in the future that a batch asks about, and what is within a window of
  -- the present still counts for every later reservation)
  local keep, horizon = {}, math.min(now, real) - window
  for _, e in ipairs(log) do if e.t > horizon then keep[#keep + 1] = e end end
  log = keep
  st.windows[key] = log
  table.sort(log, function(a, b) return a.t < b.t end)
  local t = now
  while true do
    local used, first = 0, nil
    for _, e in ipairs(log) do
      if e.t > t - window and e.t < t + window then
        used = used + e.n
        first = first or e
      end
    end
    if used + n <= limit or not first then break end
    -- the earliest reservation near t: once it leaves the window, try again
    local nt = first.t + window
    if nt <= t then nt = t + window end
    t = nt
  end
  local entry = { t = t, n = n }
  log[#log + 1] = entry
  return t, entry
end

--- Give back a reservation of reserve_window (the units were not sent).
function M.release_window(st, key, entry)
  local log = st.windows and st.windows[key]
  for i, e in ipairs(log or {}) do
    if e == entry then table.remove(log, i); return end
  end
end

--- The earliest time a request of `action` could start, reserving nothing.
function M.ready_at(st, action, now)
  local list = buckets(st, action)
  now = now or core.monotime()
  local at = now
  for _, b in ipairs(list or {}) do
    local t = M.ready(b, now)
    if t > at then at = t end
  end
  return at
end

return M
