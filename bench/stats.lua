-- bench/stats.lua: the statistics the benches share.
local M = {}

--- The median of a list of numbers (the list is not changed).
function M.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local m = #s // 2
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

return M
