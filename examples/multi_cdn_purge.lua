-- examples/multi_cdn_purge.lua - purge the same URLs on every CDN in front of
-- a site (multi-CDN), wait until every vendor reports the purge done, and
-- say what failed.  Usage:
--   lua5.4 examples/multi_cdn_purge.lua urls.txt      (one URL per line; a line
--                                                     ending in / is a directory)
-- Credentials from the environment (see README).  `make demo` runs it against
-- the local emulators with a generated list.
local cdnkit = require "cdnkit"

local urls, dirs = {}, {}
local src = arg[1] and assert(io.open(arg[1])) or nil
if src then
  for line in src:lines() do
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" and not line:match("^#") then
      if line:sub(-1) == "/" then dirs[#dirs + 1] = line else urls[#urls + 1] = line end
    end
  end
  src:close()
else
  -- 2,500 URLs on three sites: Alibaba takes URLs of up to 10 domains per call
  -- and 1,000 URLs a minute per domain; cdnkit groups and paces for you
  for i = 1, 2500 do
    urls[i] = ("http://host-%04d.example.com/assets/%04d.js"):format(i % 3 + 1, i)
  end
  dirs[1] = "http://host-0001.example.com/static/"
end

local clients = {
  cdnkit.aliyun { endpoint = os.getenv("CDNKIT_ALIYUN_ENDPOINT") }, -- API 2018-05-10
  cdnkit.qcloud { endpoint = os.getenv("CDNKIT_QCLOUD_ENDPOINT") }, -- API 3.0
  cdnkit.wangsu { endpoint = os.getenv("CDNKIT_WANGSU_ENDPOINT") },
}

print(("purging %d URLs and %d directories on %d CDNs"):format(#urls, #dirs, #clients))
local result = cdnkit.refresh(clients, { urls = urls, dirs = dirs, concurrency = 4 })
for _, r in ipairs(result) do
  print(("  %-7s %d of %d accepted in %d calls, %d tasks%s"):format(r.vendor, r.done,
    #urls + #dirs, r.batches, #r.task_ids, r.ok and "" or (", " .. #r.failed .. " batches FAILED")))
  for _, f in ipairs(r.failed) do
    print(("          %d URLs not purged: %s"):format(#f.urls, tostring(f.err)))
  end
end

io.write("waiting for the vendors to finish ... ")
io.flush()
local all, sums = result:wait { timeout = 120, interval = 1 }
print(all and "done everywhere" or "not complete")
for i, s in ipairs(sums) do
  print(("  %-7s %d tasks done, %d failed, %d running, %d untracked"):format(result[i].vendor,
    #s.done, #s.failed, #s.running, s.untracked))
end
for _, c in ipairs(clients) do c:close() end
os.exit(all and result.ok and 0 or 1)
