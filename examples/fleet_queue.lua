-- examples/fleet_queue.lua - the fleet-wide purge queue (cdnkit.queue) in
-- one script: three "edge nodes" queue purges of overlapping URLs into
-- Redis, then a flusher sends them to Tencent Cloud and Alibaba Cloud, each
-- URL once, within the accounts' rates and today's quota.  In production
-- the producers are nginx workers or cron jobs on many machines and the
-- flushers `cdnkit queue run` services or nginx timers (docs/fleet.md).
--   CDNKIT_REDIS=127.0.0.1:6379 lua5.4 examples/fleet_queue.lua
-- Credentials from the environment (see README).  `make demo` runs it
-- against a loopback redis-server and the local emulators.
local cdnkit = require "cdnkit"
local queue = require "cdnkit.queue"

local host, port = (os.getenv("CDNKIT_REDIS") or "127.0.0.1:6379"):match("^(.-):(%d+)$")
local q = queue.new { redis = { host = host, port = tonumber(port) }, name = "demo", window = 60 }

-- producers: every node saw the same deploy, so the lists overlap
local total = 0
for node = 1, 3 do
  local urls = {}
  for i = 1, 40 do urls[i] = ("http://host-0001.example.com/app/%d.js"):format(i + node * 10) end
  local n = assert(q:add("qcloud", { urls = urls }))
  local m = assert(q:add("aliyun", { urls = { ("http://example-0001.com/node%d.html"):format(node) },
                                     dirs = { "http://example-0001.com/static/" } }))
  total = total + n + m
end
print(("queued %d entries from 3 nodes"):format(total))

-- a flusher: one client per vendor account; the accounts' documented rates
-- (Tencent 20 requests/s, Alibaba's RefreshObjectCaches 50/s) are shared by
-- every flusher of the fleet through Redis
local clients = {
  qcloud = cdnkit.qcloud { endpoint = os.getenv("CDNKIT_QCLOUD_ENDPOINT") },
  aliyun = cdnkit.aliyun { endpoint = os.getenv("CDNKIT_ALIYUN_ENDPOINT") },
}
local counts = q:run({ clients = clients, block = 0.2, on_event = function(ev)
  if ev.event == "accepted" then
    print(("  %s accepted %d %s (task %s)"):format(ev.account, ev.urls, ev.kind, ev.task_ids[1] or "-"))
  elseif ev.event == "failed" or ev.event == "over_quota" then
    print(("  %s %s: %s"):format(ev.account, ev.event, tostring(ev.error)))
  end
end }, { drain = true })
print(("flushed: %d sent, %d accepted, %d merged as duplicates, %d failed"):format(
  counts.sent, counts.done, counts.deduped, counts.failed))

for account, s in pairs(assert(q:status())) do
  print(("  %-7s pending %d, in flight %d, done %d, deduped %d, dead letters %d"):format(
    account, s.pending, s.in_flight, s.done, s.deduped, s.dead_letters))
end
