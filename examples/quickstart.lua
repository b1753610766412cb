-- examples/quickstart.lua - list every domain (across pages) and refresh a few
-- URLs, on Alibaba Cloud CDN (API 2018-05-10) and Tencent Cloud CDN (API 3.0).
--
-- Against the real services: set the credentials in the environment
--   ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET
--   TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY
-- `make demo` runs it against the bundled local emulators instead, by setting
-- CDNKIT_ALIYUN_ENDPOINT / CDNKIT_QCLOUD_ENDPOINT to loopback addresses.
local cdnkit = require "cdnkit"

local function show_error(what, err)
  io.stderr:write(("  %s failed: %s\n"):format(what, tostring(err)))
end

-- Alibaba Cloud: API 2018-05-10 (the default; signature V3) ---------------
local ali = cdnkit.aliyun { endpoint = os.getenv("CDNKIT_ALIYUN_ENDPOINT") }
print(("== %s, API %s"):format(tostring(ali), ali:version()))

local count, by_status = 0, {}
local ok, err = pcall(function()
  for d in ali:each("DescribeUserDomains", { PageSize = 50 }) do
    count = count + 1
    by_status[d.DomainStatus] = (by_status[d.DomainStatus] or 0) + 1
    if count <= 3 then
      print(("  %-28s %-8s cname %s"):format(d.DomainName, d.DomainStatus, d.Cname))
    end
  end
end)
if not ok then show_error("DescribeUserDomains", err) end
print(("  ... %d domains in all"):format(count))
for status, n in pairs(by_status) do print(("      %-10s %d"):format(status, n)) end

local report = ali:refresh {
  urls = { "http://example-0001.com/index.html", "http://example-0001.com/app.js",
           "http://example-0001.com/index.html" },               -- the duplicate is sent once
  dirs = { "http://example-0001.com/static/" },
}
print(("  refresh: %d URLs/dirs in %d calls, task ids %s, %s"):format(
  report.done, report.batches, table.concat(report.task_ids, ","),
  report.ok and "all accepted" or (#report.failed .. " batches failed")))

-- when has the purge taken effect?  poll the task API (DescribeRefreshTaskById)
-- until every task is done
local status = report:wait { timeout = 30, interval = 0.5 }
print(("  tasks: %d done, %d failed, %d still running%s"):format(#status.done, #status.failed,
  #status.running, status.complete and " - purge complete" or ""))

local quota, qerr = ali:DescribeRefreshQuota {}
if quota then
  print(("  refresh quota left today: %s URLs, %s dirs"):format(quota.UrlRemain, quota.DirRemain))
else
  show_error("DescribeRefreshQuota", qerr)
end

-- Tencent Cloud: API 3.0 (2018-06-06, the default; TC3-HMAC-SHA256) --------
local qc = cdnkit.qcloud { endpoint = os.getenv("CDNKIT_QCLOUD_ENDPOINT") }
print(("\n== %s, API %s"):format(tostring(qc), qc:version()))
local hosts = 0
for d in qc:each("DescribeDomains", { Limit = 100 }) do
  hosts = hosts + 1
  if hosts <= 3 then print(("  %-28s %-8s cname %s"):format(d.Domain, d.Status, tostring(d.Cname))) end
end
print(("  ... %d domains in all"):format(hosts))
local res, rerr = qc:PurgeUrlsCache { Urls = { "http://host-0001.example.com/index.html" } }
if res then
  print(("  PurgeUrlsCache: task %s (request %s)"):format(tostring(res.TaskId), tostring(res.RequestId)))
else
  show_error("PurgeUrlsCache", rerr)
end

-- A usage mistake raises at once, naming the parameter; nothing is sent.
local ok2, msg = pcall(function() return qc:PurgeUrlsCache { Urls = { "www.no-scheme.com/x" } } end)
print(("\n  usage mistakes raise before sending: %s"):format(ok2 and "?" or msg))
ali:close()
qc:close()
