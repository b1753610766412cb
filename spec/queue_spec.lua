-- cdnkit.queue: the fleet-wide purge queue on Redis streams, in one process,
-- against a redis-server started by this spec on a free loopback port and
-- the qcloud emulator (Tencent Cloud API 3.0).  Every test uses a queue name
-- of its own (its own keys), so tests do not see each other's work.
local core = require "cdnkit.core"
local queue = require "cdnkit.queue"
local S = require "cdnkit.queue.scripts"
local emu = require "emu"

local rs = require "redis_server"
local free_port, have_redis, start_redis, stop_redis = rs.free_port, rs.available, rs.start, rs.stop

-- pcall fn; the error must contain `text` (plain)
local function raises(text, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert.truthy(err:find(text, 1, true), "error '" .. err .. "' does not contain '" .. text .. "'")
  return err
end

local function count_of(list, x)
  local n = 0
  for _, v in ipairs(list or {}) do if v == x then n = n + 1 end end
  return n
end

local seq = 0
local function uniq()
  seq = seq + 1
  local b = core.random_bytes(3)
  return ("t%d-%02x%02x%02x"):format(seq, b:byte(1, 3))
end

describe("cdnkit.queue", function()
  local port, server, e, raw

  setup(function()
    if not have_redis() then return end
    port = free_port()
    server = start_redis(port)
    raw = server.conn
    e = emu.start("qcloud")
  end)

  teardown(function()
    if e then e:stop() end
    stop_redis(server)
  end)

  local DEFAULT_CONFIG = { purge_url_day_limit = 10000, purge_path_day_limit = 100,
                           push_url_day_limit = 1000, rate_limit = 0 }

  before_each(function()
    if e then e:config(DEFAULT_CONFIG); e:reset() end
  end)

  -- a queue of its own; pending when redis-server is missing
  local function newq(extra)
    if not raw then pending("needs redis-server (make deps installs it)") end
    local o = { redis = { host = "127.0.0.1", port = port }, name = uniq() }
    for k, v in pairs(extra or {}) do o[k] = v end
    return queue.new(o)
  end

  local function client(extra)
    local o = { version = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return emu.client(e, o)
  end

  local function st(q, account)
    account = account or "qcloud"
    local all = assert(q:status(account))
    return all[account]
  end

  local function redis(...)
    local res, err = raw:command(...)
    assert(res ~= nil, err and err.message)
    return res
  end

  -- nothing lost: every entry q:add queued is done, merged, dead-lettered
  -- or still somewhere in the queue
  local function conserved(s)
    local held = s.done + s.deduped + s.dead_letters + s.pending + s.in_flight + s.waiting
    assert.equal(s.added, held, ("entries lost: added %d, done %d, deduped %d, dead letters %d, pending %d, " ..
      "in flight %d, waiting %d"):format(s.added, s.done, s.deduped, s.dead_letters, s.pending, s.in_flight, s.waiting))
  end

  -- step until nothing is pending, in flight or parked (or `timeout`)
  local function settle_all(f, q, timeout)
    local t0 = core.monotime()
    while core.monotime() - t0 < (timeout or 5) do
      local s = st(q)
      conserved(s)
      if s.pending == 0 and s.in_flight == 0 and s.waiting == 0 then return s end
      assert(f:step())
    end
    return st(q)
  end

  local function urls(prefix, n)
    local out = {}
    for i = 1, n do out[i] = ("http://www.example.com/%s/%d.css"):format(prefix, i) end
    return out
  end

  ---------------------------------------------------------------------------
  describe("producers", function()
    it("q:add validates and raises naming the problem", function()
      local q = newq()
      local check = raises
      check("account must be a name", function() q:add("bad name", { urls = { "http://a.example/x" } }) end)
      check("account must be a name", function() q:add("", { urls = { "http://a.example/x" } }) end)
      check("got number", function() q:add(5, { urls = { "http://a.example/x" } }) end)
      check("add needs { urls =, dirs =, prefetch = }", function() q:add("qcloud", "http://a.example/x") end)
      check("unknown key 'url'", function() q:add("qcloud", { url = { "http://a.example/x" } }) end)
      check("urls must be a list of URLs", function() q:add("qcloud", { urls = 5 }) end)
      check("urls[2] must be a string, got number", function() q:add("qcloud", { urls = { "http://a.example/x", 7 } }) end)
      check("urls[1] is not an http(s) URL", function() q:add("qcloud", { urls = { "ftp://a.example/x" } }) end)
      check("urls[1] is not an http(s) URL", function() q:add("qcloud", { urls = { "a.example/x" } }) end)
      check("dirs[1] is not an http(s) URL", function() q:add("qcloud", { dirs = { "http://a.example/with space/" } }) end)
      check("prefetch[1] is not an http(s) URL", function() q:add("qcloud", { prefetch = { "http://" } }) end)
      -- a refused call queued nothing (each kind all or nothing, checked first)
      raises("is not an http(s) URL", function()
        q:add("qcloud", { urls = { "http://a.example/ok" }, dirs = { "bad" } })
      end)
      local s = st(q)
      conserved(s)
      assert.equal(0, s.added)
      assert.equal(0, s.pending)
      -- queue.new's own checks
      raises("unknown option 'nmae'", function() queue.new { nmae = "x" } end)
      raises("name must be a name", function() queue.new { name = "a b" } end)
      raises("window must be a whole number", function() queue.new { window = -1 } end)
      raises("window must be a whole number", function() queue.new { window = 1.5 } end)
      raises("unknown redis option 'hots'", function() queue.new { redis = { hots = "x" } } end)
      raises("redis.port must be a port number", function() queue.new { redis = { port = 70000 } } end)
    end)

    it("q:add reports its usage mistakes at the caller's line", function()
      local q = newq()
      local cases = {
        function() q:add("bad name", {}) end,
        function() q:add("qcloud", "x") end,
        function() q:add("qcloud", { url = {} }) end,
        function() q:add("qcloud", { urls = 5 }) end,
        function() q:add("qcloud", { urls = { 7 } }) end,
        function() q:add("qcloud", { urls = { "ftp://a.example/x" } }) end,
      }
      for i, fn in ipairs(cases) do
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("^spec/queue_spec%.lua:%d+: cdnkit%.queue"),
          "case " .. i .. " not reported at the caller: " .. tostring(err))
      end
    end)

    it("q:add takes https URLs (any case of the scheme) and a flusher sends them", function()
      local q = newq()
      local list = { "https://www.example.com/s/a.css", "HTTPS://www.example.com/s/b.css",
                     "https://x.example/", "http://www.example.com/s/c.css" }
      local ok, n = pcall(q.add, q, "qcloud", { urls = list, dirs = { "https://www.example.com/s/" } })
      assert.is_true(ok, tostring(n))
      assert.equal(5, n)
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2 }
      f:run { drain = true }
      f:close()
      local stats = e:stats()
      for _, x in ipairs(list) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
      assert.same({ "https://www.example.com/s/" }, stats.refreshed_dirs)
      assert.equal(5, st(q).done)
    end)

    it("q:add returns the count; status counts added and pending; accounts are listed", function()
      local q = newq()
      local n = assert(q:add("qcloud", { urls = urls("a", 3), dirs = { "http://www.example.com/d/" },
                                        prefetch = "http://www.example.com/p.js" }))
      assert.equal(5, n)
      assert.equal(2, assert(q:add("qcloud-b", { urls = urls("b", 2) })))
      local s = st(q)
      conserved(s)
      assert.equal(5, s.added)
      assert.equal(5, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(0, s.waiting)
      assert.equal(0, s.done)
      assert.equal(0, s.dead_letters)
      assert.same({ "qcloud", "qcloud-b" }, q:accounts())
      local all = q:status()
      assert.equal(2, all["qcloud-b"].pending)
      assert.equal(5, all.qcloud.pending)
      -- the entries are in the account's stream, in order
      local rows = redis("XRANGE", "cdnkit:{" .. q.name .. "}:s:qcloud", "-", "+")
      assert.equal(5, #rows)
      assert.same({ "k", "refresh_url", "u", "http://www.example.com/a/1.css" }, { table.unpack(rows[1][2]) })
      -- an empty add is fine and queues nothing
      assert.equal(0, q:add("qcloud", {}))
    end)
  end)

  ---------------------------------------------------------------------------
  describe("flushers", function()
    it("send everything once: URLs, dirs and prefetch; status shows it done", function()
      local q = newq()
      local u = urls("all", 25)
      local dirs = { "http://www.example.com/d1/", "http://www.example.com/d2/" }
      local pre = { "http://www.example.com/pre/1.js", "http://www.example.com/pre/2.js" }
      assert.equal(25, q:add("qcloud", { urls = u }))
      assert.equal(4, q:add("qcloud", { dirs = dirs, prefetch = pre }))
      local events = {}
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2,
                            on_event = function(ev) events[#events + 1] = ev end }
      local counts = f:run { drain = true }
      f:close()
      local stats = e:stats()
      for _, x in ipairs(u) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
      assert.equal(#u, #stats.refreshed_urls)
      for _, x in ipairs(dirs) do assert.equal(1, count_of(stats.refreshed_dirs, x), x) end
      assert.equal(#dirs, #stats.refreshed_dirs)
      for _, x in ipairs(pre) do assert.equal(1, count_of(stats.prefetched_urls, x), x) end
      assert.equal(#pre, #stats.prefetched_urls)
      assert.equal(1, stats.executed.PurgeUrlsCache)
      assert.equal(1, stats.executed.PurgePathCache)
      assert.equal(1, stats.executed.PushUrlsCache)
      local s = st(q)
      conserved(s)
      assert.equal(29, s.added)
      assert.equal(29, s.done)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(0, s.waiting)
      assert.equal(0, s.dead_letters)
      assert.equal(0, s.failed)
      assert.equal(29, counts.done)
      assert.equal(29, counts.sent)
      -- acknowledged entries leave the stream
      assert.equal(0, redis("XLEN", "cdnkit:{" .. q.name .. "}:s:qcloud"))
      local accepted = 0
      for _, ev in ipairs(events) do if ev.event == "accepted" then accepted = accepted + 1 end end
      assert.equal(3, accepted)
    end)

    it("merges the same URL queued again before its purge was taken (fleet-wide), purged once", function()
      local q = newq { window = 60 }
      local x = "http://www.example.com/dup.css"
      -- three nodes queue the same change before any flusher reads it
      q:add("qcloud", { urls = { x, "http://www.example.com/other.css" } })
      q:add("qcloud", { urls = { x } })
      q:add("qcloud", { urls = { x } })
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, read = 2 }
      f:run { drain = true }
      assert.equal(1, count_of(e:stats().refreshed_urls, x))
      local s = st(q)
      conserved(s)
      assert.equal(4, s.added)
      assert.equal(2, s.deduped)
      assert.equal(2, s.done)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(2, f.counts.deduped)
      -- queued again after its purge went out (a later change the purge may
      -- have missed): purged again, within the window or not
      core.sleep(0.01)
      q:add("qcloud", { urls = { x } })
      f:run { drain = true }
      f:close()
      assert.equal(2, count_of(e:stats().refreshed_urls, x))
      s = st(q)
      conserved(s)
      assert.equal(2, s.deduped)
      assert.equal(3, s.done)
    end)

    it("merges a copy read after its owner was taken only if queued before (a backlog)", function()
      local q = newq { window = 60 }
      local x = "http://www.example.com/backlog.css"
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, read = 1 }
      -- the owner is taken in the first step; the two copies were queued
      -- before that, read in later steps: merged
      q:add("qcloud", { urls = { x } })
      q:add("qcloud", { urls = { x } })
      q:add("qcloud", { urls = { x } })
      f:run { drain = true }
      f:close()
      assert.equal(1, count_of(e:stats().refreshed_urls, x))
      assert.equal(2, st(q).deduped)
    end)

    it("window = 0: the same URL queued again is purged again", function()
      local q = newq { window = 0 }
      local x = "http://www.example.com/again.css"
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2 }
      q:add("qcloud", { urls = { x } })
      f:run { drain = true }
      q:add("qcloud", { urls = { x } })
      f:run { drain = true }
      f:close()
      assert.equal(2, count_of(e:stats().refreshed_urls, x))
      local s = st(q)
      conserved(s)
      assert.equal(0, s.deduped)
      assert.equal(2, s.done)
    end)
  end)

  it("q:run flushes several accounts in one read and gives the clients their pacing back", function()
    local q = newq()
    local a, b = client(), client()
    q:add("qcloud", { urls = urls("ra", 2) })
    q:add("qcloud-b", { urls = urls("rb", 3) })
    local counts = q:run({ clients = { qcloud = a, ["qcloud-b"] = b }, rate = 50, block = 0.2 }, { drain = true })
    assert.equal(5, counts.done)
    local stats = e:stats()
    for _, x in ipairs(urls("ra", 2)) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
    for _, x in ipairs(urls("rb", 3)) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
    local all = q:status()
    assert.equal(2, all.qcloud.done)
    assert.equal(3, all["qcloud-b"].done)
    -- closed: the clients pace themselves again (no fleet pacer left behind)
    assert.is_nil(a:_state().pacer)
    assert.is_nil(b:_state().pacer)
  end)

  ---------------------------------------------------------------------------
  describe("acknowledges only what the vendor accepted", function()
    it("a batch refused for one bad URL: each entry is retried alone, only the bad one dies", function()
      local q = newq()
      local good = urls("solo", 2)
      local bad = "http://*.example.com/solo.css" -- Tencent refuses wildcard hosts
      q:add("qcloud", { urls = { good[1], bad, good[2] } })
      local f = q:flusher { clients = { qcloud = client { retry = { attempts = 1 } } }, rate = 50,
                            block = 0.2, max_attempts = 2, backoff = { base = 0.05, max = 0.1 } }
      local s = settle_all(f, q, 5)
      f:close()
      conserved(s)
      local stats = e:stats()
      assert.equal(1, count_of(stats.refreshed_urls, good[1]))
      assert.equal(1, count_of(stats.refreshed_urls, good[2]))
      assert.equal(0, count_of(stats.refreshed_urls, bad))
      -- one refused batch of three, then one call per entry: 2 accepted, 1 refused
      assert.equal(4, stats.by_action.PurgeUrlsCache)
      assert.equal(2, s.done)
      assert.equal(1, s.dead_letters)
      local dead = assert(q:dead("qcloud"))
      assert.equal(bad, dead[1].url)
      assert.equal(2, dead[1].attempts)
      assert.truthy(dead[1].error:find("Wildcard", 1, true), dead[1].error)
    end)

    it("failing answers: retried, then dead letters with the vendor's message; redrive delivers them", function()
      local q = newq()
      local u = urls("dead", 3)
      q:add("qcloud", { urls = u })
      -- both attempts answer an error (the client does not retry itself)
      e:faults { { kind = "error", code = "InternalError", message = "cdnemu says no", action = "PurgeUrlsCache",
                   count = 2 } }
      local c = client { retry = { attempts = 1 } }
      local f = q:flusher { clients = { qcloud = c }, rate = 50, block = 0.2, max_attempts = 2,
                            backoff = { base = 0.05, max = 0.1 } }
      local s = settle_all(f, q, 5)
      conserved(s)
      local stats = e:stats()
      assert.equal(0, #stats.refreshed_urls)
      assert.equal(2, stats.by_action.PurgeUrlsCache, "the parked entries were not sent again")
      assert.equal(0, #stats.faults_pending)
      assert.equal(3, s.dead_letters)
      assert.equal(3, s.dead)
      assert.equal(6, s.failed) -- two failed attempts each
      assert.equal(0, s.done)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(0, s.waiting)
      local dead = assert(q:dead("qcloud"))
      assert.equal(3, #dead)
      local seen = {}
      for _, d in ipairs(dead) do
        seen[d.url] = true
        assert.equal("refresh_url", d.kind)
        assert.equal(2, d.attempts)
        assert.truthy(d.error:find("cdnemu says no", 1, true), d.error)
        assert.truthy(d.error:find("InternalError", 1, true), d.error)
        assert.is_number(d.at)
      end
      for _, x in ipairs(u) do assert.is_true(seen[x], x) end
      -- redrive: queued again, then delivered
      assert.equal(3, q:redrive("qcloud"))
      s = st(q)
      conserved(s)
      assert.equal(0, s.dead_letters)
      assert.equal(3, s.redriven)
      assert.equal(3, s.pending)
      f:run { drain = true }
      f:close()
      stats = e:stats()
      for _, x in ipairs(u) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
      s = st(q)
      conserved(s)
      assert.equal(3, s.done)
      assert.equal(0, s.pending)
      assert.equal(0, s.dead_letters)
      assert.same({}, q:dead("qcloud"))
    end)

    it("a transient failure is parked, retried later and delivered, never dead-lettered", function()
      local q = newq()
      local u = urls("transient", 2)
      q:add("qcloud", { urls = u })
      e:faults { { kind = "error", code = "InternalError", action = "PurgeUrlsCache", count = 1 } }
      local events = {}
      local f = q:flusher { clients = { qcloud = client { retry = { attempts = 1 } } }, rate = 50, block = 0.2,
                            max_attempts = 3, backoff = { base = 0.3, max = 0.3 },
                            on_event = function(ev) events[#events + 1] = ev end }
      -- the first step sends and fails: the entries are parked, not acknowledged
      assert(f:step())
      local s = st(q)
      conserved(s)
      assert.equal(2, s.waiting)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(0, s.done)
      assert.equal(2, s.failed)
      local parked = redis("ZRANGE", "cdnkit:{" .. q.name .. "}:later:qcloud", 0, -1)
      assert.equal(2, #parked)
      local m = core.json_decode(parked[1])
      assert.equal(1, m.n)
      assert.equal("qcloud", m.a)
      s = settle_all(f, q, 5)
      f:close()
      conserved(s)
      local stats = e:stats()
      for _, x in ipairs(u) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
      assert.equal(2, s.done)
      assert.equal(0, s.waiting)
      assert.equal(0, s.pending)
      assert.equal(0, s.dead)
      assert.equal(0, s.dead_letters)
      local failed = 0
      for _, ev in ipairs(events) do if ev.event == "failed" then failed = failed + 1 end end
      assert.equal(1, failed)
    end)

    it("a Redis error on the acknowledgement loses nothing: the entries are reclaimed and sent again", function()
      local q = newq()
      local u = urls("ackfail", 3)
      q:add("qcloud", { urls = u })
      local r = q.redis
      local fail_acks, injected = true, 0
      r.eval = function(self, src, keys, args)
        if src == S.ack and fail_acks then
          injected = injected + 1
          return nil, { code = "redis_io", message = "injected: connection lost" }
        end
        return getmetatable(self).eval(self, src, keys, args)
      end
      local events = {}
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, claim_idle = 0.2,
                            redis_wait = 0.2,
                            on_event = function(ev)
                              events[#events + 1] = ev
                              if ev.event == "redis_lost" then fail_acks = false end
                            end }
      f:run { drain = true }
      f:close()
      assert.is_true(injected >= 1)
      assert.is_false(fail_acks)
      local stats = e:stats()
      -- at least once: sent, the acknowledgement lost, sent again
      for _, x in ipairs(u) do assert.equal(2, count_of(stats.refreshed_urls, x), x) end
      local s = st(q)
      conserved(s)
      assert.equal(3, s.done)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
      assert.equal(0, s.dead_letters)
      assert.equal(3, f.counts.reclaimed)
    end)
  end)

  ---------------------------------------------------------------------------
  it("a Redis restart (its data lost) does not stop the flushers for good", function()
    newq() -- pending without redis-server
    -- a server of this test's own, restarted empty on the same port
    local p2 = free_port()
    local srv = start_redis(p2)
    local ok, err = pcall(function()
      local q = queue.new { redis = { host = "127.0.0.1", port = p2 }, name = uniq() }
      local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, redis_wait = 1 }
      q:add("qcloud", { urls = urls("before", 2) })
      f:run { drain = true }
      assert.equal(2, #e:stats().refreshed_urls)
      stop_redis(srv)
      srv = start_redis(p2)
      -- a producer sees the lost connection once, then queues
      local n = q:add("qcloud", { urls = urls("after", 2) })
      if n == nil then n = assert(q:add("qcloud", { urls = urls("after", 2) })) end
      assert.equal(2, n)
      f:run { drain = true, duration = 2.5 }
      f:close()
      local stats = e:stats()
      for _, x in ipairs(urls("after", 2)) do
        assert.equal(1, count_of(stats.refreshed_urls, x), x .. " not delivered after the restart")
      end
      local s = st(q)
      conserved(s)
      assert.equal(0, s.pending)
      assert.equal(0, s.in_flight)
    end)
    stop_redis(srv)
    assert(ok, err)
  end)

  ---------------------------------------------------------------------------
  it("a quota API that fails: the purges still go, and it is not asked again for a minute", function()
    local q = newq()
    e:faults { { kind = "error", code = "InternalError", action = "DescribePurgeQuota", count = 5 } }
    local events = {}
    local f = q:flusher { clients = { qcloud = client { retry = { attempts = 1 } } }, rate = 50, block = 0.2,
                          read = 2, on_event = function(ev) events[#events + 1] = ev end }
    q:add("qcloud", { urls = urls("qfail", 6) })
    f:run { drain = true }
    f:close()
    local stats = e:stats()
    assert.equal(6, #stats.refreshed_urls)
    assert.equal(1, stats.by_action.DescribePurgeQuota, "the failed quota API was asked again")
    assert.equal(3, stats.by_action.PurgeUrlsCache)
    local unknown = 0
    for _, ev in ipairs(events) do if ev.event == "quota_unknown" then unknown = unknown + 1 end end
    assert.equal(1, unknown)
    conserved(st(q))
  end)

  it("a failed send gives its share of today's quota back (the counter matches what was accepted)", function()
    local q = newq()
    e:config { purge_url_day_limit = 10 }
    e:faults { { kind = "error", code = "InternalError", action = "PurgeUrlsCache", count = 1 } }
    q:add("qcloud", { urls = urls("giveback", 3) })
    local f = q:flusher { clients = { qcloud = client { retry = { attempts = 1 } } }, rate = 50, block = 0.2,
                          backoff = { base = 0.05, max = 0.1 } }
    local s = settle_all(f, q, 5)
    f:close()
    assert.equal(3, s.done)
    local keys = redis("KEYS", "cdnkit:{" .. q.name .. "}:quota:*")
    assert.equal(1, #keys)
    assert.equal("7", redis("GET", keys[1]))
  end)

  it("over today's quota: the rest is parked until the vendor's next (Beijing) day", function()
    local q = newq()
    e:config { purge_url_day_limit = 3 }
    local t = redis("TIME")
    local before_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local u = urls("quota", 5)
    q:add("qcloud", { urls = u })
    local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2 }
    f:run { drain = true }
    f:close()
    local stats = e:stats()
    assert.equal(3, #stats.refreshed_urls)
    for _, x in ipairs(stats.refreshed_urls) do assert.equal(1, count_of(stats.refreshed_urls, x)) end
    -- cdnkit asked the quota first: the vendor never had to refuse
    assert.equal(1, stats.executed.DescribePurgeQuota)
    for _, entry in ipairs(stats.request_log) do
      assert.is_nil(tostring(entry.error):find("DayLimit", 1, true), tostring(entry.error))
    end
    assert.equal(1, stats.by_action.PurgeUrlsCache)
    local s = st(q)
    conserved(s)
    assert.equal(3, s.done)
    assert.equal(2, s.waiting)
    assert.equal(2, s.over_quota)
    assert.equal(0, s.pending)
    assert.equal(0, s.in_flight)
    assert.equal(0, s.failed)
    assert.equal(0, s.dead_letters)
    -- due just after the next midnight of UTC+8, by Redis's clock
    t = redis("TIME")
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local day = 86400000
    local next_midnight = (math.floor((before_ms + 8 * 3600000) / day) + 1) * day - 8 * 3600000
    local rows = redis("ZRANGE", "cdnkit:{" .. q.name .. "}:later:qcloud", 0, -1, "WITHSCORES")
    assert.equal(4, #rows)
    for i = 2, #rows, 2 do
      local due = tonumber(rows[i])
      assert.is_true(due > now_ms and due <= now_ms + day + 3600000, "due " .. due .. " now " .. now_ms)
      assert.is_true(math.abs(due - (next_midnight + 1000)) < 10000,
        ("due %d, next midnight UTC+8 %d"):format(due, next_midnight))
      local m = core.json_decode(rows[i - 1])
      assert.equal(0, m.n) -- waiting for quota is not a failed attempt
    end
    -- a second flusher of the same queue takes nothing more today and asks
    -- the vendor nothing: the day's counter is shared
    q:add("qcloud", { urls = { "http://www.example.com/quota/late.css" } })
    local f2 = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2 }
    f2:run { drain = true }
    f2:close()
    stats = e:stats()
    assert.equal(3, #stats.refreshed_urls)
    assert.equal(1, stats.by_action.DescribePurgeQuota)
    assert.equal(1, stats.by_action.PurgeUrlsCache)
    s = st(q)
    conserved(s)
    assert.equal(3, s.waiting)
    assert.equal(3, s.over_quota)
  end)

  it("the vendor's own day-limit answer parks the batch until its next day (not a failure)", function()
    local q = newq()
    local u = urls("vendorquota", 2)
    q:add("qcloud", { urls = u })
    e:faults { { kind = "error", code = "LimitExceeded.CdnPurgeUrlExceedDayLimit", action = "PurgeUrlsCache",
                 message = "day limit reached" } }
    local f = q:flusher { clients = { qcloud = client { retry = { attempts = 1 } } }, rate = 50, block = 0.2,
                          max_attempts = 1 }
    f:run { drain = true }
    local stats = e:stats()
    assert.equal(0, #stats.refreshed_urls)
    assert.equal(1, stats.by_action.PurgeUrlsCache)
    local s = st(q)
    conserved(s)
    assert.equal(2, s.waiting)
    assert.equal(2, s.over_quota)
    assert.equal(0, s.failed)
    assert.equal(0, s.dead_letters)
    assert.equal(0, s.done)
    local rows = redis("ZRANGE", "cdnkit:{" .. q.name .. "}:later:qcloud", 0, -1, "WITHSCORES")
    local t = redis("TIME")
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    for i = 2, #rows, 2 do
      local due = tonumber(rows[i])
      assert.is_true(due > now_ms and due <= now_ms + 86400000 + 3600000, "due " .. due .. " now " .. now_ms)
      assert.truthy(core.json_decode(rows[i - 1]).e:find("day limit reached", 1, true))
    end
    -- the shared day counter now says "used up": more work waits without asking the vendor
    q:add("qcloud", { urls = { "http://www.example.com/vendorquota/late.css" } })
    f:run { drain = true }
    f:close()
    stats = e:stats()
    assert.equal(1, stats.by_action.PurgeUrlsCache)
    assert.equal(3, st(q).waiting)
  end)

  ---------------------------------------------------------------------------
  it("reclaims entries a dead flusher read and never settled", function()
    local q = newq()
    local u = urls("reclaim", 4)
    q:add("qcloud", { urls = u })
    local key = "cdnkit:{" .. q.name .. "}:s:qcloud"
    local got = redis("XREADGROUP", "GROUP", "flushers", "dead-one", "COUNT", 10, "STREAMS", key, ">")
    assert.equal(4, #got[1][2])
    local s = st(q)
    conserved(s)
    assert.equal(4, s.in_flight)
    assert.equal(0, s.pending)
    assert.equal(1, #s.consumers)
    assert.equal("dead-one", s.consumers[1].name)
    assert.equal(4, s.consumers[1].pending)
    core.sleep(0.3)
    local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, claim_idle = 0.2,
                          consumer = "alive-one" }
    f:run { drain = true }
    f:close()
    local stats = e:stats()
    for _, x in ipairs(u) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
    assert.equal(4, f.counts.reclaimed)
    s = st(q)
    conserved(s)
    assert.equal(4, s.done)
    assert.equal(0, s.in_flight)
    assert.equal(0, s.pending)
    for _, c in ipairs(s.consumers) do
      assert.is_true(c.name ~= "dead-one" or c.pending == 0, "dead-one still holds entries")
    end
  end)

  it("an entry whose flushers keep dying while it is in flight goes to the dead letters", function()
    local q = newq()
    local u = urls("poison", 2)
    q:add("qcloud", { urls = u })
    local key = "cdnkit:{" .. q.name .. "}:s:qcloud"
    local got = redis("XREADGROUP", "GROUP", "flushers", "dead-one", "COUNT", 10, "STREAMS", key, ">")
    -- the first entry was delivered (claimed after a death) 9 times already
    redis("XCLAIM", key, "flushers", "dead-one", 0, got[1][2][1][1], "RETRYCOUNT", 9)
    core.sleep(0.3)
    local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, claim_idle = 0.2,
                          max_attempts = 3 }
    f:run { drain = true }
    f:close()
    local stats = e:stats()
    assert.equal(0, count_of(stats.refreshed_urls, u[1]))
    assert.equal(1, count_of(stats.refreshed_urls, u[2]))
    local s = st(q)
    conserved(s)
    assert.equal(1, s.dead_letters)
    assert.equal(1, s.done)
    local dead = assert(q:dead("qcloud"))
    assert.equal(u[1], dead[1].url)
    assert.truthy(dead[1].error:find("died", 1, true), dead[1].error)
  end)

  it("a step of more than a thousand entries goes in slices (LuaJIT unpacks at most ~8,000 values)", function()
    local q = newq()
    local u = urls("big", 2500)
    assert.equal(2500, q:add("qcloud", { urls = u }))
    local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2, read = 2500 }
    assert.equal(2500, f:step())
    f:close()
    local s = st(q)
    conserved(s)
    assert.equal(2500, s.done)
    assert.equal(2500, #e:stats().refreshed_urls)
  end)

  it("a rate below one request a second spaces the starts by 1/rate", function()
    local q = newq()
    local f = q:flusher { clients = { qcloud = client() }, rate = 0.5, rate_margin = 0 }
    local p = f.pacers.qcloud
    local w1 = p:reserve("PurgeUrlsCache")
    local w2 = p:reserve("PurgeUrlsCache")
    local w3 = p:reserve("PurgeUrlsCache")
    f:close()
    assert.is_true(w2 - w1 >= 1.95, ("%g %g"):format(w1, w2))
    assert.is_true(w3 - w2 >= 1.95, ("%g %g"):format(w2, w3))
  end)

  it("cdnkit queue add / run / status / dead / redrive from the shell", function()
    local q = newq()
    local env = ("env CDNKIT_REDIS=127.0.0.1:%d CDNKIT_QUEUE=%s CDNKIT_QCLOUD_ENDPOINT=%s " ..
      "TENCENTCLOUD_SECRET_ID=AKIDtest TENCENTCLOUD_SECRET_KEY=testkey CDNKIT_METADATA=off " ..
      "CDNKIT_CREDENTIALS_FILE=/nonexistent "):format(port, q.name, e.url)
    local function sh(args)
      local h = io.popen(env .. "./bin/cdnkit queue " .. args .. " 2>&1; echo \"rc=$?\"")
      local out = h:read("*a")
      h:close()
      return out, tonumber(out:match("rc=(%d+)%s*$"))
    end
    local list = os.tmpname()
    local fh = io.open(list, "w")
    fh:write("http://www.example.com/cli/1.css\n# a comment\nhttp://www.example.com/cli/2.css\n")
    fh:close()
    local out, rc = sh("add qcloud --urls-from " .. list .. " --dirs http://www.example.com/cli/d/")
    os.remove(list)
    assert.equal(0, rc, out)
    assert.truthy(out:find("queued 3 for qcloud", 1, true), out)
    out, rc = sh("status")
    assert.equal(0, rc, out)
    assert.truthy(out:find("qcloud%s+3%s+0%s+0%s+0%s+0"), out) -- pending 3, nothing else yet
    out, rc = sh("run qcloud --drain --block 0.2 --quiet")
    assert.equal(0, rc, out)
    local counts = core.json_decode(out:match("(%b{})"))
    assert.equal(3, counts.done)
    assert.equal(1, count_of(e:stats().refreshed_urls, "http://www.example.com/cli/1.css"))
    assert.equal(1, count_of(e:stats().refreshed_dirs, "http://www.example.com/cli/d/"))
    out, rc = sh("status qcloud --output json")
    assert.equal(0, rc, out)
    local s = core.json_decode(out:match("(%b{})"))
    assert.equal(3, s.qcloud.done)
    assert.equal(0, s.qcloud.pending)
    out, rc = sh("dead qcloud")
    assert.equal(0, rc, out)
    assert.truthy(out:find("[]", 1, true), out)
    out, rc = sh("redrive qcloud")
    assert.equal(0, rc, out)
    assert.truthy(out:find("queued 0 dead letters again", 1, true), out)
    -- usage mistakes: exit 2, named
    out, rc = sh("add qcloud --urls ftp://x")
    assert.equal(2, rc, out)
    assert.truthy(out:find("ftp://x", 1, true), out)
    out, rc = sh("run qcloud --bogus")
    assert.equal(2, rc, out)
    assert.truthy(out:find("--bogus", 1, true), out)
    out, rc = sh("run nosuchvendor")
    assert.equal(2, rc, out)
    assert.truthy(out:find("ACCOUNT=VENDOR", 1, true), out)
  end)

  ---------------------------------------------------------------------------
  it("two flushers of one account share its rate (the fleet pacer)", function()
    local q = newq()
    local u = urls("pace", 12)
    q:add("qcloud", { urls = u })
    local opts = { rate = 5, block = 0.2, read = 1, concurrency = 1 }
    local o1, o2 = { clients = { qcloud = client() }, consumer = "f1" }, { clients = { qcloud = client() }, consumer = "f2" }
    for k, v in pairs(opts) do o1[k] = v; o2[k] = v end
    local f1, f2 = q:flusher(o1), q:flusher(o2)
    local t0 = core.monotime()
    local deadline = t0 + 15
    while core.monotime() < deadline do
      assert(f1:step())
      assert(f2:step())
      local s = st(q)
      conserved(s)
      if s.pending == 0 and s.in_flight == 0 and s.waiting == 0 then break end
    end
    local elapsed = core.monotime() - t0
    f1:close()
    f2:close()
    local stats = e:stats()
    for _, x in ipairs(u) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
    assert.equal(12, stats.by_action.PurgeUrlsCache)
    assert.is_true(f1.counts.done > 0 and f2.counts.done > 0, "both flushers did some of the work")
    assert.equal(12, f1.counts.done + f2.counts.done)
    -- 13 requests (12 purges and one quota query) at 5 a second: the 11th
    -- may start 2 s after the first at the earliest
    local requests = stats.requests
    assert.is_true(requests >= 13)
    assert.is_true(elapsed >= 2.0 - 0.05, ("%d requests in %.2f s"):format(requests, elapsed))
    -- at the vendor (arrival times): never more than 5 in any second; one
    -- more is allowed for a stall longer than the 0.1 s margin (unshared,
    -- the two flushers would reach 10, unpaced 13)
    assert.is_number(stats.max_in_1s["*"])
    assert.is_true(stats.max_in_1s["*"] <= 6, "busiest second at the vendor: " .. tostring(stats.max_in_1s["*"]))
    -- the start times given out, newest first: no 6 in a row within a second
    local slots = redis("LRANGE", "cdnkit:{" .. q.name .. "}:rate:qcloud", 0, -1)
    assert.is_true(#slots >= 11, "slots kept: " .. #slots)
    for i = 1, #slots - 5 do
      local span = tonumber(slots[i]) - tonumber(slots[i + 5])
      assert.is_true(span >= 1000, ("slots %d..%d span %d ms"):format(i, i + 5, span))
    end
  end)

  ---------------------------------------------------------------------------
  it("a usage mistake inside the queued data is dead-lettered; the good URLs are still delivered", function()
    local q = newq()
    local good = urls("good", 3)
    q:add("qcloud", { urls = good })
    local key = "cdnkit:{" .. q.name .. "}:s:qcloud"
    -- written by something other than q:add: a URL the API data refuses, and
    -- an entry without a kind
    redis("XADD", key, "*", "k", "refresh_url", "u", "ftp://www.example.com/bad.css")
    redis("XADD", key, "*", "u", "http://www.example.com/nokind.css")
    local f = q:flusher { clients = { qcloud = client() }, rate = 50, block = 0.2 }
    f:run { drain = true }
    f:close()
    local stats = e:stats()
    for _, x in ipairs(good) do assert.equal(1, count_of(stats.refreshed_urls, x), x) end
    assert.equal(3, #stats.refreshed_urls)
    local s = st(q)
    assert.equal(3, s.done)
    assert.equal(2, s.dead_letters)
    assert.equal(0, s.pending)
    assert.equal(0, s.in_flight)
    local by_url = {}
    for _, d in ipairs(q:dead("qcloud")) do by_url[d.url] = d end
    local bad = by_url["ftp://www.example.com/bad.css"]
    assert.is_table(bad)
    assert.truthy(bad.error:find("refused before sending", 1, true), bad.error)
    assert.truthy(bad.error:find("ftp://www.example.com/bad.css", 1, true), bad.error)
    assert.equal("refresh_url", bad.kind)
    local nokind = by_url["http://www.example.com/nokind.css"]
    assert.is_table(nokind)
    assert.truthy(nokind.error:find("malformed queue entry", 1, true), nokind.error)
  end)

  ---------------------------------------------------------------------------
  it("flusher options are checked", function()
    local q = newq()
    local c = client()
    raises("flusher needs { clients", function() q:flusher() end)
    raises("unknown flusher option 'rat'", function() q:flusher { clients = { qcloud = c }, rat = 5 } end)
    raises("flusher needs clients", function() q:flusher { clients = {} } end)
    raises("clients.qcloud must be an open cdnkit client", function() q:flusher { clients = { qcloud = {} } } end)
    raises("clients.qcloud must be an open cdnkit client", function() q:flusher { clients = { qcloud = "c" } } end)
    raises("account must be a name", function() q:flusher { clients = { ["no such"] = c } } end)
    raises("rate must be a positive number", function() q:flusher { clients = { qcloud = c }, rate = 0 } end)
    raises("rate must be a positive number", function() q:flusher { clients = { qcloud = c }, rate = "fast" } end)
    raises("rate must be a positive number", function() q:flusher { clients = { qcloud = c }, rate = { qcloud = -1 } } end)
    raises("concurrency must be a whole number", function() q:flusher { clients = { qcloud = c }, concurrency = 0 } end)
    raises("max_attempts must be a whole number", function() q:flusher { clients = { qcloud = c }, max_attempts = 1.5 } end)
    raises("block must be a positive number", function() q:flusher { clients = { qcloud = c }, block = 0 } end)
    raises("must be shorter than the Redis timeout", function() q:flusher { clients = { qcloud = c }, block = 5 } end)
    raises("backoff must be", function() q:flusher { clients = { qcloud = c }, backoff = { base = "x" } } end)
    raises("utc_offset must be", function() q:flusher { clients = { qcloud = c }, utc_offset = 15 } end)
    raises("on_event must be a function", function() q:flusher { clients = { qcloud = c }, on_event = 1 } end)
    raises("consumer must be a name", function() q:flusher { clients = { qcloud = c }, consumer = "a b" } end)
    -- qcloud documents its purge rate: no rate needed
    local f = q:flusher { clients = { qcloud = c } }
    assert.equal(20, f.pacers.qcloud.rate)
    f:close()
    -- a vendor that documents no request rate needs one
    local w = emu.start("wangsu")
    local ok, err = pcall(function()
      local wc = emu.client(w)
      raises("give rate = { wangsu = n }", function() q:flusher { clients = { wangsu = wc } } end)
      local fw = q:flusher { clients = { wangsu = wc }, rate = { wangsu = 3 } }
      assert.equal(3, fw.pacers.wangsu.rate)
      fw:close()
    end)
    w:stop()
    assert(ok, err)
  end)
end)
