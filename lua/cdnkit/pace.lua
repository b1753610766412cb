-- cdnkit.pace: token buckets that keep requests within a vendor's documented
-- rate.  A bucket holds up to `burst` tokens and refills at `rate` per second;
-- taking a token when none is left is allowed and returns the time at which
-- the request may start (the debt is paid by waiting).  Buckets live in the
-- client's state, so consecutive calls and batches share them.
local core = require "cdnkit.core"

local M = {}

local function new(rate, burst)
  burst = burst or math.max(1, rate)
  return { rate = rate, burst = burst, tokens = burst, last = core.monotime() }
end
M.new = new

--- Take one token; returns the monotonic time at which the request may start.
function M.take(b, now)
  now = now or core.monotime()
  b.tokens = math.min(b.burst, b.tokens + (now - b.last) * b.rate)
  b.last = now
  b.tokens = b.tokens - 1
  if b.tokens >= 0 then return now end
  return now + (-b.tokens) / b.rate
end

--- The documented rate (requests per second) of action `a` of `api`, or nil.
function M.rate_of(api, a)
  local l = a and a.limits
  if l and l.per_second then return l.per_second end
  if l and l.per_minute then return l.per_minute / 60 end
  return api.limits and api.limits.per_second
end

--- The bucket of `action` in client state `st` (nil when pacing is off).
function M.bucket(st, action)
  if st.rate == false then return nil end
  st.buckets = st.buckets or {}
  local b = st.buckets[action]
  if b == nil then
    local a = st.api_index[action]
    local rate = st.rate or M.rate_of(st.api, a)
    if not rate then
      st.buckets[action] = false
      return nil
    end
    -- vendor-wide and per-action limits both apply: use the smaller
    local vr = st.rate or (st.api.limits and st.api.limits.per_second)
    if vr and vr < rate then rate = vr end
    b = new(rate)
    st.buckets[action] = b
  end
  return b or nil
end

return M
