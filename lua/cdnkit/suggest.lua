-- cdnkit.suggest: "did you mean" for a mistyped action, method, parameter or
-- flag: the closest known name by edit distance (case-insensitive), when it
-- is close enough to be the one meant (DescribeUserDomain ->
-- DescribeUserDomains, pageSize -> PageSize, RefreshCdnUrls -> RefreshCdnUrl).
local M = {}

local byte, min = string.byte, math.min

-- Levenshtein distance of two strings (lower-cased by the caller), stopping
-- early above `limit`
local function distance(a, b, limit)
  local la, lb = #a, #b
  if math.abs(la - lb) > limit then return limit + 1 end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local best = i
    local ai = byte(a, i)
    for j = 1, lb do
      local cost = ai == byte(b, j) and 0 or 1
      local v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      cur[j] = v
      if v < best then best = v end
    end
    if best > limit then return limit + 1 end
    prev, cur = cur, prev
  end
  return prev[lb]
end
M.distance = distance

--- The candidate closest to `name`, or nil when none is close: at most 1
-- edit for short names, up to a quarter of the name's length for long ones.
-- `candidates` is an array of strings.
function M.closest(name, candidates)
  if type(name) ~= "string" or name == "" then return nil end
  local low = name:lower()
  local limit = math.max(1, math.min(3, math.floor(#name / 4)))
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = distance(low, c:lower(), limit)
    if d <= limit and (not bestd or d < bestd) then best, bestd = c, d end
  end
  return best
end

--- " - did you mean 'X'?" or "".
function M.hint(name, candidates)
  local c = M.closest(name, candidates)
  return c and (" - did you mean '" .. c .. "'?") or ""
end

return M
