-- bench/queue.lua: throughput of the fleet purge queue (cdnkit.queue), from
-- producers to the vendor, next to the vendor rate that caps it and to one
-- direct client:refresh of the same URLs (the baseline of the same run).
--
-- It starts its own loopback redis-server (appendonly no; one row again with
-- appendonly yes + appendfsync always) and the Tencent emulator
-- (spec/emulator/cdnemu.py --vendor qcloud) at each latency, and runs the
-- flushers as `cdnkit queue run qcloud` processes (1 or 3).  A row: start the
-- flushers and wait until each is blocked in XREADGROUP (ready); t0; the
-- producer queues the URLs (q:add, 1,000 URLs per server-side script, as
-- `cdnkit queue add --urls-from` does): t0 -> its return is the producer
-- time; then until the queue's `done` counter reaches N (an entry is
-- acknowledged right after the vendor accepted its batch): t0 -> that is
-- the end-to-end time.  The emulator's recorded URLs are checked afterwards
-- (every URL exactly once), and its busiest second of PurgeUrlsCache
-- requests is shown next to the rate.  See bench/README.md.
--
-- Usage (bench/run.sh does this): lua5.4 bench/queue.lua [PIDFILE]
-- Every process it starts is written to PIDFILE (one pid a line) so that
-- run.sh's trap can stop them if this script is killed.
-- Environment: BENCH_QUEUE_N (20000 URLs), BENCH_QUEUE_RATE_N (2500 URLs
-- for the rate-bound rows), BENCH_QUEUE_SINGLE_N (2000 one-URL adds),
-- BENCH_QUEUE_LATENCIES ("0.05 0.2"), LUA (lua5.4).
local core = require "cdnkit.core"
local cdnkit = require "cdnkit"
local queue = require "cdnkit.queue"
local emu = require "emu"

local LUA = os.getenv("LUA") or "lua5.4"
local PIDFILE = arg[1]
local N = tonumber(os.getenv("BENCH_QUEUE_N") or "") or 20000
local RATE_N = tonumber(os.getenv("BENCH_QUEUE_RATE_N") or "") or 2500
local SINGLE_N = tonumber(os.getenv("BENCH_QUEUE_SINGLE_N") or "") or 2000
local LATENCIES = {}
for l in (os.getenv("BENCH_QUEUE_LATENCIES") or "0.05 0.2"):gmatch("%S+") do LATENCIES[#LATENCIES + 1] = tonumber(l) end
local DIR = (os.getenv("PWD") or io.popen("pwd"):read("*l")) .. "/build/bench/queue"
local QNAME = "bench"
local ACCOUNT = "qcloud"
local VENDOR_RATE, VENDOR_BATCH = 20, 1000 -- PurgeUrlsCache: 20 requests/s, 1,000 URLs a request
local CREDS = { secret_id = "AKIDtest", secret_key = "testkey" }

os.execute("mkdir -p " .. DIR)
io.stdout:setvbuf("line")

---------------------------------------------------------------------------
-- processes: started with `echo $$; exec ...`, so the pid is the process's

local procs = {}  -- pid -> popen handle
local others = {} -- pids started elsewhere (the emulator, by spec/support/emu.lua)
local function note_pids()
  if not PIDFILE then return end
  local f = assert(io.open(PIDFILE, "w"))
  for pid in pairs(procs) do f:write(pid, "\n") end
  for pid in pairs(others) do f:write(pid, "\n") end
  f:close()
end

local function spawn(cmd)
  local h = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = h:read("*l")
  assert(pid and pid:match("^%d+$"), "could not start: " .. cmd)
  procs[pid] = h
  note_pids()
  return pid
end

local function stop(pid)
  local h = procs[pid]
  if not h then return end
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  h:close() -- waits for it
  procs[pid] = nil
  note_pids()
end

local function stop_all()
  for pid in pairs(procs) do stop(pid) end
end

local function free_port()
  local p = io.popen("python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); " ..
    "print(s.getsockname()[1])'")
  local port = tonumber(p:read("*l"))
  p:close()
  return assert(port, "no free port (python3 needed)")
end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

---------------------------------------------------------------------------
-- redis-server

local redis -- { port, pid, aof }

local function redis_start(aof)
  local rdir = DIR .. "/redis"
  os.execute("rm -rf " .. rdir .. " && mkdir -p " .. rdir)
  for _ = 1, 5 do
    local port = free_port()
    local cmd = ("redis-server --bind 127.0.0.1 --port %d --save '' --dir %s --logfile %s " ..
      "--daemonize no --loglevel warning --protected-mode no"):format(port, rdir, DIR .. "/redis.log")
    if aof then
      cmd = cmd .. " --appendonly yes --appendfsync always"
    else
      cmd = cmd .. " --appendonly no"
    end
    local pid = spawn(cmd .. " >/dev/null 2>&1")
    for _ = 1, 100 do
      local c = core.redis("127.0.0.1", port, 1)
      if c then
        local pong = c:command("PING")
        c:close()
        if pong == "PONG" then
          redis = { port = port, pid = pid, aof = aof }
          return redis
        end
      end
      core.sleep(0.05)
    end
    stop(pid)
  end
  error("redis-server did not start (see " .. DIR .. "/redis.log)")
end

local function redis_stop()
  if redis then stop(redis.pid); redis = nil end
end

local function rconn()
  return assert(core.redis("127.0.0.1", redis.port, 5))
end

local function new_queue()
  return queue.new { redis = { host = "127.0.0.1", port = redis.port, timeout = 5 }, name = QNAME }
end

---------------------------------------------------------------------------
-- one row

local function urls_of(n, tag)
  local out = {}
  for i = 1, n do
    out[i] = ("https://host-%04d.example.com/static/%s/asset-%06d.css"):format(i % 57 + 1, tag, i)
  end
  return out
end

local row_no = 0

local function emulator_check(e, urls)
  local st = e:stats()
  local seen, dup = {}, 0
  for _, u in ipairs(st.refreshed_urls or {}) do
    if seen[u] then dup = dup + 1 end
    seen[u] = true
  end
  local missing = 0
  for _, u in ipairs(urls) do if not seen[u] then missing = missing + 1 end end
  local req = (st.executed or {}).PurgeUrlsCache or 0
  local warn = {}
  if missing > 0 then warn[#warn + 1] = missing .. " URLs never reached the emulator" end
  if dup > 0 then warn[#warn + 1] = dup .. " URLs purged twice" end
  if ((st.by_action or {}).PurgeUrlsCache or 0) ~= req then
    warn[#warn + 1] = ((st.by_action.PurgeUrlsCache or 0) - req) .. " PurgeUrlsCache requests refused"
  end
  return {
    requests = req,
    max_1s = (st.max_in_1s or {}).PurgeUrlsCache or 0,
    inflight = st.max_inflight or 0,
    warn = warn,
  }
end

-- the direct baseline: one client:refresh{ urls = ... } with the client's
-- defaults (its own pacer at the documented 20/s, concurrency 4)
local function run_direct(e, n)
  row_no = row_no + 1
  local urls = urls_of(n, "r" .. row_no)
  e:reset()
  local c = cdnkit.qcloud { secret_id = CREDS.secret_id, secret_key = CREDS.secret_key, endpoint = e.url }
  local t0 = core.monotime()
  local rep, err = c:refresh { urls = urls }
  local dt = core.monotime() - t0
  c:close()
  local r = emulator_check(e, urls)
  if not rep or not rep.ok then
    r.warn[#r.warn + 1] = "refresh failed: " .. tostring(err and err.message or (rep and rep.failed and #rep.failed))
  end
  r.n, r.total, r.batch, r.rate = n, dt, math.min(n, VENDOR_BATCH), VENDOR_RATE
  return r
end

-- flushers: `cdnkit queue run qcloud` processes; wait until each one is
-- blocked in XREADGROUP on the empty stream (CLIENT LIST flags=b), i.e. ready
local function start_flushers(e, k, flags)
  local env = table.concat({
    "CDNKIT_REDIS=127.0.0.1:" .. redis.port, "CDNKIT_QUEUE=" .. QNAME,
    "TENCENTCLOUD_SECRET_ID=" .. CREDS.secret_id, "TENCENTCLOUD_SECRET_KEY=" .. CREDS.secret_key,
    "CDNKIT_QCLOUD_ENDPOINT=" .. e.url, "CDNKIT_METADATA=off",
  }, " ")
  local pids = {}
  for i = 1, k do
    local cmd = ("env %s %s bin/cdnkit queue run %s --consumer bench-%d --quiet --duration 900 %s " ..
      ">>%s 2>&1"):format(env, sh_quote(LUA), ACCOUNT, i, flags, DIR .. "/flusher.log")
    pids[i] = spawn(cmd)
  end
  local c = rconn()
  local t = core.monotime()
  while true do
    local list = c:command("CLIENT", "LIST") or ""
    local blocked = 0
    for line in list:gmatch("[^\n]+") do
      if line:find(" flags=b ", 1, true) and line:find(" cmd=xreadgroup", 1, true) then blocked = blocked + 1 end
    end
    if blocked >= k then break end
    if core.monotime() - t > 20 then
      c:close()
      error("the flushers did not start (see " .. DIR .. "/flusher.log)")
    end
    core.sleep(0.01)
  end
  c:close()
  return pids
end

-- a queue row: k flushers with `flags`, n URLs queued in one q:add
local function run_queue(e, k, n, flags, rate, batch)
  row_no = row_no + 1
  local urls = urls_of(n, "r" .. row_no)
  e:reset()
  local c = rconn()
  c:command("FLUSHALL")
  local pids = start_flushers(e, k, flags)
  local q = new_queue()
  assert(q.redis:command("PING") == "PONG") -- the producer's connection is open before t0
  local key = q:key("stats", ACCOUNT)
  local t0 = core.monotime()
  local added, aerr = q:add(ACCOUNT, { urls = urls })
  local t_enq = core.monotime() - t0
  assert(added == n, "add failed: " .. tostring(aerr and aerr.message))
  local last, t_last = -1, core.monotime()
  local done
  while true do
    done = tonumber(c:command("HGET", key, "done")) or 0
    if done >= n then break end
    local now = core.monotime()
    if done ~= last then last, t_last = done, now end
    if now - t_last > 60 then break end -- stuck: reported below
    core.sleep(0.002)
  end
  local total = core.monotime() - t0
  for _, pid in ipairs(pids) do stop(pid) end
  local st = q:status(ACCOUNT)[ACCOUNT]
  q.redis:close()
  c:close()
  local r = emulator_check(e, urls)
  if done < n then r.warn[#r.warn + 1] = ("stuck: %d of %d done after 60 s without progress"):format(done, n) end
  if st.failed > 0 or st.dead > 0 or st.over_quota > 0 or st.deduped > 0 then
    r.warn[#r.warn + 1] = ("queue counts: failed %d, dead %d, over_quota %d, deduped %d")
      :format(st.failed, st.dead, st.over_quota, st.deduped)
  end
  r.n, r.enq, r.total, r.batch, r.rate = n, t_enq, total, batch, rate
  return r
end

-- producer only (no flushers): n URLs in one q:add, or n q:add calls of one URL
local function run_producer(n, one_by_one)
  row_no = row_no + 1
  local urls = urls_of(n, "p" .. row_no)
  local c = rconn()
  c:command("FLUSHALL")
  c:close()
  local q = new_queue()
  assert(q:ensure_group(ACCOUNT))
  local t0 = core.monotime()
  if one_by_one then
    for i = 1, n do assert(q:add(ACCOUNT, { urls = { urls[i] } }) == 1) end
  else
    assert(q:add(ACCOUNT, { urls = urls }) == n)
  end
  local dt = core.monotime() - t0
  q.redis:close()
  return n / dt
end

---------------------------------------------------------------------------
-- output

local function fmt_rate(x)
  if x >= 100000 then return ("%.0fk"):format(x / 1000) end
  return ("%.0f"):format(x)
end

local HEAD = "  %-42s %7s %6s %9s %8s %8s %6s %8s %10s %5s"
local function header(lat)
  print(("latency %.2f s"):format(lat))
  print(HEAD:format("", "URLs/s", "time s", "vs direct", "requests", "URLs/req", "max/1s", "inflight", "cap URLs/s", "/cap"))
end

local function row(label, r, direct)
  local ups = r.n / r.total
  local cap = r.rate * r.batch
  -- time per URL against the direct refresh's (same vendor rate only)
  local vs = "1.00"
  if direct then
    vs = r.rate == direct.rate and ("%.2f"):format(r.total / (direct.total * r.n / direct.n)) or "-"
  end
  local line = HEAD:format(label, fmt_rate(ups), ("%.2f"):format(r.total), vs, r.requests,
    r.requests > 0 and ("%.0f"):format(r.n / r.requests) or "-", r.max_1s, r.inflight,
    fmt_rate(cap), ("%.2f"):format(ups / cap))
  if r.enq then line = line .. ("  producer %s URLs/s"):format(fmt_rate(r.n / r.enq)) end
  print(line)
  for _, w in ipairs(r.warn) do print("    WARNING: " .. w) end
end

---------------------------------------------------------------------------

local function main()
  local ver = io.popen("redis-server --version 2>/dev/null"):read("*l") or "?"
  ver = ver:match("v=(%S+)") or ver
  print(("fleet queue: %d URLs (rate-bound rows: %d) to the qcloud emulator's PurgeUrlsCache " ..
    "(%d URLs a request, %d requests/s documented),"):format(N, RATE_N, VENDOR_BATCH, VENDOR_RATE))
  print(("  redis-server %s on loopback (appendonly no unless marked), flushers = " ..
    "`cdnkit queue run qcloud` processes, 1 run per row"):format(ver))
  redis_start(false)
  for _, lat in ipairs(LATENCIES) do
    local e = emu.start("qcloud", { latency = lat })
    local epid = e.pid
    others[epid] = true
    note_pids()
    local ok, err = pcall(function()
      -- Tencent's default daily purge quota (10,000 URLs) would park half of them
      e:config { purge_url_day_limit = 100000000 }
      header(lat)
      local direct = run_direct(e, N)
      row("direct client:refresh (baseline)", direct)
      -- "queue defaults": no tuning, so `read` is concurrency (2) x Tencent's
      -- 1,000 URLs a call = 2,000 a step (two full requests at once);
      -- "--read 200": small batches, 200 URLs a request, one in flight
      local rows = {
        { "queue defaults, 1 flusher", 1, N, "", VENDOR_RATE, VENDOR_BATCH },
        { "queue defaults, 3 flushers", 3, N, "", VENDOR_RATE, VENDOR_BATCH },
        { "queue --read 200, 1 flusher", 1, N, "--read 200", VENDOR_RATE, 200 },
        { "queue --read 200, 3 flushers", 3, N, "--read 200", VENDOR_RATE, 200 },
        { "rate-bound --rate 5 --read 50, 1 flusher", 1, RATE_N, "--rate 5 --read 50", 5, 50 },
        { "rate-bound --rate 5 --read 50, 3 flushers", 3, RATE_N, "--rate 5 --read 50", 5, 50 },
      }
      for _, d in ipairs(rows) do
        row(d[1], run_queue(e, d[2], d[3], d[4], d[5], d[6]), direct)
      end
      if lat == LATENCIES[1] then
        -- above the documented rate: --rate also sets the clients' own pacing
        -- (the emulator does not limit the rate unless told to)
        row("--rate 60 --read 200, 3 flushers", run_queue(e, 3, N, "--rate 60 --read 200", 60, 200), direct)
        -- the durability cost: the two 3-flusher rate-20 rows on a Redis that fsyncs every write
        redis_stop()
        redis_start(true)
        row("fsync always: defaults, 3 flushers", run_queue(e, 3, N, "", VENDOR_RATE, VENDOR_BATCH), direct)
        row("fsync always: --read 200, 3 flushers", run_queue(e, 3, N, "--read 200", VENDOR_RATE, 200),
          direct)
        redis_stop()
        redis_start(false)
      end
    end)
    e:stop()
    others[epid] = nil
    note_pids()
    if not ok then error(err, 0) end
  end
  -- producers alone
  local bulk = run_producer(N, false)
  local single = run_producer(SINGLE_N, true)
  redis_stop()
  redis_start(true)
  local bulk_aof = run_producer(N, false)
  local single_aof = run_producer(SINGLE_N, true)
  redis_stop()
  print("producers alone (no flusher running)        appendonly no   appendfsync always   ratio")
  print(("  one q:add of %5d URLs (1,000 per script) %9s URLs/s %12s URLs/s   %.2f")
    :format(N, fmt_rate(bulk), fmt_rate(bulk_aof), bulk_aof / bulk))
  print(("  %5d q:add calls of 1 URL each           %9s URLs/s %12s URLs/s   %.2f")
    :format(SINGLE_N, fmt_rate(single), fmt_rate(single_aof), single_aof / single))
  print("cap = rate x URLs per request; the fleet pacer starts at most `rate` requests per 1.1 s " ..
    "(rate_window 1 + rate_margin 0.1),")
  print("  so a long run tops out at 0.91 of it; each run's one DescribePurgeQuota takes a slot too. " ..
    "vs direct = time per URL / the direct refresh's.")
end

local ok, err = pcall(main)
stop_all()
if not ok then
  io.stderr:write("bench/queue.lua: ", tostring(err), "\n")
  os.exit(1)
end
