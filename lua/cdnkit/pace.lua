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
function M.reserve(st, action, now)
  local list = buckets(st, action)
  if not list or #list == 0 then return nil end
  now = now or core.monotime()
  local at = now
  for _, b in ipairs(list) do
    local t = M.take(b, now)
    if t > at then at = t end
  end
  return at
end

--- Give back the token reserve() took for `action` (the request was not
-- sent after all).
function M.release(st, action)
  local list = buckets(st, action)
  for _, b in ipairs(list or {}) do b.tokens = math.min(b.burst, b.tokens + 1) end
end

--- Take `n` units from the bucket `key` of client state `st` (made on first
-- use with `rate` units a second and `burst`): for limits counted in items
-- rather than requests, such as URLs a minute per domain.  Returns the
-- monotonic time at which the units are available.
function M.reserve_units(st, key, rate, burst, n, now)
  st.unit_buckets = st.unit_buckets or {}
  local b = st.unit_buckets[key]
  if not b then b = new(rate, burst); st.unit_buckets[key] = b end
  now = now or core.monotime()
  refill(b, now)
  b.tokens = b.tokens - n
  if b.tokens >= 0 then return now end
  return now + (-b.tokens) / b.rate
end

--- Give back `n` units reserve_units took from bucket `key`.
function M.release_units(st, key, n)
  local b = st.unit_buckets and st.unit_buckets[key]
  if b then b.tokens = math.min(b.burst, b.tokens + n) end
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
