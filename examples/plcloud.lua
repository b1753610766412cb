-- examples/plcloud.lua - Plcloud (Powerleader) as its Python client uses it:
-- keystone login, domains, a purge by URL, a prefetch followed to the end, a
-- ticket.  Credentials from the environment: PLCLOUD_USERNAME,
-- PLCLOUD_PASSWORD, PLCLOUD_TENANT_NAME (default: the username) and
-- PLCLOUD_AUTH_URL (default http://api.plcloud.com:5001/v2.0).  `make demo`
-- runs it against the local emulator.
local cdnkit = require "cdnkit"

local pl = cdnkit.plcloud {}

-- the first call logs in (POST {auth_url}/tokens) and finds the service in
-- the token's catalog; later calls reuse the token until shortly before it
-- expires
local domains, err = pl.cdn:list()
if not domains then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("%d domains"):format(#domains))
for _, d in ipairs(domains) do
  print(("  %-8s %-24s areas %-8s %s"):format(d.id, d.domain, table.concat(d.areas or {}, ","), d.status or ""))
end
if #domains == 0 then return end

-- purge by URL: cdnkit maps each URL's host to its domain id and sends one
-- cache_flush per domain; a host that is not one of the account's domains
-- is reported, not sent
local a, b = domains[1].domain, domains[#domains].domain
local report = pl:refresh {
  urls = { "http://" .. a .. "/index.html", "http://" .. a .. "/app.js", "http://" .. b .. "/logo.png",
           "http://not-mine.example.org/x" },
  dirs = { "http://" .. a .. "/static/" },
}
print(("\npurge: %d accepted in %d cache_flush calls"):format(report.done, report.batches))
for _, f in ipairs(report.failed) do
  print(("  not sent (%s): %s"):format(f.err.code, table.concat(f.urls, " ")))
end
local sum = report:wait { timeout = 5, interval = 0.5 }
print("  " .. (sum.untracked_reason or "confirmed"))

-- prefetch is tracked: wait() polls prefetch_query
local pre = pl:prefetch { urls = { "http://" .. a .. "/big/video.mp4" } }
local psum = pre:wait { timeout = 60, interval = 0.5 }
print(("\nprefetch %s: %s"):format(pre.task_ids[1], psum.complete and "done" or "not done"))

-- the ticket resource
local t = pl.ticket:create("slow first byte", "TTFB over 2 s on " .. a .. " since 10:00")
print(("\nticket %s opened (%s)"):format(t.id, t.status))
pl.ticket:reply(t.id, "seen from several regions")
print(("ticket %s: %s, %d replies"):format(t.id, pl.ticket:update(t.id, "closed").status,
  #pl.ticket:list_reply(t.id)))
pl:close()
