-- bench/request.lua: the cdnkit contender of the request-overhead bench
-- (run by bench/overhead.lua, one process per round).
--
--   lua5.4 bench/request.lua PORT N WARMUP
--
-- One client against the local nginx, WARMUP calls, then N timed sequential
-- DescribeCdnService calls (each planned, signed with HMAC-SHA1 v2, sent as a
-- GET over the client's keep-alive connection, the JSON answer decoded).
-- Prints "<calls per second> <process CPU microseconds per call>" for the
-- timed calls (CPU time from os.clock).  Any
-- call that does not return a table aborts with the error (exit 1).
local core = require "cdnkit.core"
local cdnkit = require "cdnkit"

local port, n, warm = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3] or 0)
assert(port and n and warm, "usage: request.lua PORT N WARMUP [v3]")

-- the 2014-11-11 client (a signed GET, comparable with the bare libcurl
-- loop), or with "v3" today's default: 2018-05-10 signed with ACS3
local c = cdnkit.aliyun {
  access_key_id = "testid", access_key_secret = "testsecret",
  version = arg[4] == "v3" and "2018-05-10" or "2014-11-11",
  endpoint = "http://127.0.0.1:" .. port, rate = false, retry = false,
}

local function fail(r, err)
  io.stderr:write(("bench/request.lua: DescribeCdnService returned %s, not a table: %s\n")
    :format(type(r), tostring(err)))
  os.exit(1)
end

for _ = 1, warm do
  local r, err = c:DescribeCdnService {}
  if type(r) ~= "table" then fail(r, err) end
end
local t, cpu = core.monotime(), os.clock()
for _ = 1, n do
  local r, err = c:DescribeCdnService {}
  if type(r) ~= "table" then fail(r, err) end
end
t, cpu = core.monotime() - t, os.clock() - cpu
print(("%.1f %.2f"):format(n / t, cpu / n * 1e6))
c:close()
