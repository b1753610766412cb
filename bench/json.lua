-- bench/json.lua: the C JSON decoder against Debian's lua-cjson on the same
-- documents in the same run (ratios, not absolute times), plus the memory of
-- the decoded result.  cdnkit keeps 64-bit integers exact and marks arrays,
-- which cjson does not; the ratio shows what that costs.
local core = require "cdnkit.core"
local ok, cjson = pcall(require, "cjson")

local function doc(n)
  local hosts = {}
  for i = 1, n do
    hosts[i] = ('{"id":%d,"host":"host-%04d.example.com","status":5,"origin":"1.1.1.1:80",' ..
      '"cache":[{"type":0,"rule":"all","time":2592000,"unit":"s"}],"task_id":1480069888795584532,' ..
      '"ssl_expire_time":null,"disabled":false,"ratio":0.75}'):format(i, i)
  end
  return '{"code":0,"message":"","codeDesc":"Success","data":{"total":' .. n .. ',"hosts":[' ..
    table.concat(hosts, ",") .. ']}}'
end

local function time(f, s, reps)
  local t = core.monotime()
  for _ = 1, reps do f(s) end
  return (core.monotime() - t) / reps
end

local function mem(f, s)
  collectgarbage(); collectgarbage()
  local before = collectgarbage("count")
  local v = f(s)
  local after = collectgarbage("count")
  assert(v)
  return (after - before) * 1024
end

for _, n in ipairs { 10, 1000 } do
  local s = doc(n)
  local reps = n == 10 and 20000 or 100
  local ours = time(core.json_decode, s, reps)
  print(("json decode, %d hosts (%d bytes):"):format(n, #s))
  print(("  cdnkit  %.1f us/doc  %.0f KiB/doc"):format(ours * 1e6, mem(core.json_decode, s) / 1024))
  if ok then
    local theirs = time(cjson.decode, s, reps)
    print(("  cjson   %.1f us/doc  %.0f KiB/doc   ratio cdnkit/cjson %.2f"):format(
      theirs * 1e6, mem(cjson.decode, s) / 1024, ours / theirs))
  end
end
