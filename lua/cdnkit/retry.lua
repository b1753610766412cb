-- cdnkit.retry: the retry policy.  Exponential backoff with full jitter
-- (sleep = random(0, min(max, base * 2^(attempt-1)))), an optional total
-- deadline, and the rule for ambiguous failures: a request that may already
-- have taken effect (sent, then timeout / HTTP 5xx) is resent only when the
-- action is declared idempotent.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"

local M = {}

M.DEFAULT = { attempts = 3, base = 0.2, max = 5, deadline = nil }

--- Normalise the `retry` client option into a policy table.
function M.policy(opt)
  if opt == false then return { attempts = 1, base = 0, max = 0 } end
  if opt == nil then opt = {} end
  if type(opt) ~= "table" then raise("cdnkit: option 'retry' must be a table or false") end
  local p = {}
  for k, v in pairs(M.DEFAULT) do p[k] = v end
  for k, v in pairs(opt) do
    if M.DEFAULT[k] == nil and k ~= "deadline" and k ~= "on" then
      raise("cdnkit: unknown retry option '" .. tostring(k) .. "'")
    end
    p[k] = v
  end
  local a = p.attempts
  -- NaN (0/0) and math.huge fail these comparisons: no endless retries
  if type(a) ~= "number" or not (a >= 1 and a <= 1000) or a ~= math.floor(a) then
    raise("cdnkit: retry.attempts must be a positive integer (1 .. 1000), got " .. tostring(a))
  end
  for _, k in ipairs { "base", "max" } do
    if type(p[k]) ~= "number" or not (p[k] >= 0 and p[k] < 3600) then
      raise("cdnkit: retry." .. k .. " must be seconds, 0 <= " .. k .. " < 3600")
    end
  end
  if p.deadline ~= nil and (type(p.deadline) ~= "number" or not (p.deadline > 0 and p.deadline < 86400 * 365)) then
    raise("cdnkit: retry.deadline must be a finite number of seconds > 0")
  end
  if p.on ~= nil and type(p.on) ~= "function" then
    raise("cdnkit: retry.on must be a function(err) -> boolean")
  end
  return p
end

-- uniform random in [0, 1) from the OS CSPRNG (never math.random: forked
-- nginx workers share its sequence)
local function unit()
  local b = core.random_bytes(4)
  local a, c, d, e = b:byte(1, 4)
  return (((a * 256 + c) * 256 + d) * 256 + e) / 4294967296
end
M.unit = unit

--- Seconds to wait before attempt number `attempt + 1`.
function M.backoff(p, attempt)
  local cap = p.base * 2 ^ (attempt - 1)
  if cap > p.max then cap = p.max end
  return cap * unit()
end

--- Seconds to wait before resending after `err` (attempt number `attempt`):
-- the backoff, or longer when the vendor said when its limit resets
-- (err.retry_after, seconds), never longer than the policy's max.
function M.wait(p, attempt, err)
  local w = M.backoff(p, attempt)
  local ra = err and tonumber(err.retry_after)
  if ra and ra > w then w = math.min(ra, p.max) end
  return w
end

--- Should `err` (after attempt number `attempt`, started at `t0`) be retried?
function M.should_retry(p, err, attempt, idempotent, t0)
  if attempt >= p.attempts then return false end
  if p.deadline and core.monotime() - t0 >= p.deadline then return false end
  local ok
  if p.on then ok = p.on(err) else ok = err.retryable end
  if not ok then return false end
  if err.ambiguous and not idempotent then return false end
  return true
end

return M
