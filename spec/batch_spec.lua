-- Batching, concurrency, pacing, retries and multi-vendor purges against the
-- emulators, with faults injected.
local cdnkit = require "cdnkit"
local emu = require "emu"
local pace = require "cdnkit.pace"
local retry = require "cdnkit.retry"

-- fn must raise, with a message matching the Lua pattern (which names the
-- parameter or option at fault): a bare "it raised" passes for any bug
local function raises_with(pattern, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching: " .. pattern)
  assert.matches(pattern, tostring(err))
end

local function urls_of(n, host)
  local t = {}
  for i = 1, n do t[i] = "http://" .. (host or "host-0001.example.com") .. "/file-" .. i end
  return t
end

-- every input URL is in exactly one successful batch or one failed entry
local function accounted(report, input)
  local seen = {}
  for _, r in ipairs(report.results) do
    for _, u in ipairs(r.urls) do
      assert.is_nil(seen[u], "URL in two places: " .. u)
      seen[u] = "ok"
    end
  end
  for _, f in ipairs(report.failed) do
    assert.is_table(f.err)
    for _, u in ipairs(f.urls) do
      assert.is_nil(seen[u], "URL in two places: " .. u)
      seen[u] = "failed"
    end
  end
  for _, u in ipairs(input) do assert.is_not_nil(seen[u], "URL lost: " .. u) end
  return seen
end

describe("batch", function()
  local ea, eq
  setup(function()
    ea = emu.start("aliyun", { task_seconds = 0.2 })
    eq = emu.start("qcloud", { task_seconds = 0.2 })
  end)
  teardown(function() ea:stop(); eq:stop() end)
  before_each(function() ea:reset(); eq:reset(); ea:config { latency = 0 }; eq:config { latency = 0 } end)

  it("runs exactly `concurrency` batches at once (observed at the emulator)", function()
    eq:config { latency = 0.2 }
    local qc = emu.client(eq)
    local report = qc:refresh { urls = urls_of(10), batch_size = 1, concurrency = 5 }
    assert.is_true(report.ok)
    assert.equal(10, report.batches)
    assert.equal(5, eq:stats().max_inflight)
    qc:close()
  end)

  it("reports progress after each wave: URLs in finished batches of all URLs", function()
    local qc = emu.client(eq)
    local calls = {}
    local report = qc:refresh { urls = urls_of(10), batch_size = 2, concurrency = 1,
                                progress = function(done, total) calls[#calls + 1] = { done, total } end }
    assert.is_true(report.ok)
    assert.truthy(#calls >= 1)
    local last = calls[#calls]
    assert.same({ 10, 10 }, last)
    for i = 2, #calls do assert.is_true(calls[i][1] >= calls[i - 1][1]) end
    -- a raising callback loses nothing
    local r2 = qc:refresh { urls = urls_of(4), progress = function() error("boom") end }
    assert.is_true(r2.ok)
    assert.equal(4, r2.done)
    assert.has_error(function() qc:refresh { urls = urls_of(1), progress = 5 } end)
    qc:close()
  end)

  it("tells each batch as it ends through on_batch (accepted or failed for good)", function()
    local qc = emu.client(eq, { retry = { attempts = 1 } })
    -- the first request fails (HTTP 503, not retried with attempts = 1)
    eq:faults { { kind = "http503", count = 1 } }
    local evs = {}
    local report = qc:refresh { urls = urls_of(6), batch_size = 2, concurrency = 1,
                                on_batch = function(ev) evs[#evs + 1] = ev end }
    assert.equal(3, #evs)
    local ok_urls, failed_urls = 0, 0
    for _, ev in ipairs(evs) do
      assert.equal("qcloud", ev.vendor)
      assert.equal("refresh_url", ev.kind)
      assert.equal(2, #ev.urls)
      if ev.ok then
        ok_urls = ok_urls + #ev.urls
        assert.is_string(ev.task_ids[1])
      else
        failed_urls = failed_urls + #ev.urls
        assert.equal(503, ev.err.http_status)
      end
    end
    assert.equal(4, ok_urls)
    assert.equal(2, failed_urls)
    assert.equal(report.done, ok_urls)
    accounted(report, urls_of(6))
    -- a raising callback loses nothing
    local r2 = qc:refresh { urls = urls_of(3), on_batch = function() error("boom") end }
    assert.is_true(r2.ok)
    raises_with("on_batch", function() qc:refresh { urls = urls_of(1), on_batch = 5 } end)
    qc:close()
  end)

  it("survives a 5xx storm by retrying with fresh signatures", function()
    local ali = emu.client(ea, { retry = { attempts = 4, base = 0.01, max = 0.02 } })
    ea:faults { { kind = "http503", count = 6 } }
    local input = urls_of(3000)
    local report = ali:refresh { urls = input, concurrency = 3 }
    assert.is_true(report.ok, report.failed[1] and tostring(report.failed[1].err))
    assert.equal(3000, report.done)
    assert.is_true(report.rounds >= 3)
    accounted(report, input)
    local st = ea:stats()
    assert.equal(3000, #st.refreshed_urls)
    assert.equal(9, st.nonces)
    ali:close()
  end)

  it("retries a slow server's timeouts for purges (idempotent)", function()
    local qc = emu.client(eq, { timeout = 0.3, retry = { attempts = 3, base = 0.01, max = 0.02 } })
    eq:faults { { kind = "slow", seconds = 1, count = 1 } }
    local report = qc:refresh { urls = urls_of(1500), concurrency = 2 }
    assert.is_true(report.ok)
    assert.equal(1500, report.done)
    qc:close()
  end)

  it("reports what still failed after the last attempt, losing nothing", function()
    local ali = emu.client(ea, { retry = { attempts = 1 } })
    ea:faults { { kind = "throttle", count = 1, action = "RefreshObjectCaches" } }
    local input = urls_of(1500)
    local report = ali:refresh { urls = input, batch_size = 500, concurrency = 1 }
    assert.is_false(report.ok)
    assert.equal(1, #report.failed)
    assert.equal("Throttling", report.failed[1].err.code)
    assert.equal(1, report.failed[1].err.attempts)
    assert.is_true(report.failed[1].err.retryable)
    assert.equal(1000, report.done)
    accounted(report, input)
    ali:close()
  end)

  it("purges 10,000 URLs through every vendor at once, faults in the middle, nothing lost", function()
    local opts = { retry = { attempts = 3, base = 0.01, max = 0.05 } }
    local ali, qc = emu.client(ea, opts), emu.client(eq, opts)
    ea:faults { { kind = "throttle", count = 2 }, { kind = "http500", count = 1 },
                { kind = "close", count = 2 }, { kind = "badjson", count = 1 } }
    eq:faults { { kind = "throttle", count = 3 }, { kind = "http503", count = 1 },
                { kind = "truncated", count = 1 } }
    local input = urls_of(10000)
    local r = cdnkit.refresh({ ali, qc }, { urls = input, concurrency = 4 })
    assert.equal(2, #r)
    assert.equal("aliyun", r[1].vendor)
    assert.equal("qcloud", r[2].vendor)
    for i, rep in ipairs(r) do
      local seen = accounted(rep, input)
      local em = i == 1 and ea or eq
      local recorded = {}
      for _, u in ipairs(em:stats().refreshed_urls) do recorded[u] = true end
      for u, s in pairs(seen) do
        if s == "ok" then assert.is_true(recorded[u], "reported done but not purged: " .. u) end
      end
      local failed_urls = 0
      for _, f in ipairs(rep.failed) do failed_urls = failed_urls + #f.urls end
      assert.equal(10000, rep.done + failed_urls)
    end
    -- badjson is not retryable (the purge may have happened: we cannot know),
    -- so exactly that batch is reported failed on Alibaba; Tencent recovers
    assert.equal(1, #r[1].failed)
    assert.equal("json", r[1].failed[1].err.code)
    assert.is_true(r[2].ok)
    ali:close(); qc:close()
  end)

  it("report:wait() polls the task APIs until every task is done", function()
    local ali, qc = emu.client(ea), emu.client(eq)
    local r = cdnkit.refresh({ ali, qc }, { urls = urls_of(1200) })
    assert.is_true(r.ok)
    local all, sums = r:wait { timeout = 10, interval = 0.1 }
    assert.is_true(all)
    assert.equal(#r[1].task_ids, #sums[1].done)
    assert.equal(#r[2].task_ids, #sums[2].done)
    assert.equal(0, #sums[1].failed)
    ali:close(); qc:close()
  end)

  it("checks the vendor's quota first when asked, sending nothing if it cannot take the work", function()
    local ali = emu.client(ea)
    local report, err = ali:refresh { urls = urls_of(2500), check_quota = true }
    assert.is_nil(report)
    assert.equal("quota", err.code)
    assert.equal(1996, err.remaining)
    assert.equal(1, ea:stats().requests)
    assert.equal(0, #ea:stats().refreshed_urls)
    report = ali:refresh { urls = urls_of(100), check_quota = true }
    assert.is_true(report.ok)
    local qc = emu.client(eq)
    raises_with("qcloud: the vendor has no quota API",
      function() qc:refresh { urls = urls_of(1), check_quota = true } end)
    ali:close(); qc:close()
  end)

  it("prefetch uses the vendor's prefetch API and limits", function()
    local qc = emu.client(eq)
    local report = qc:prefetch { urls = urls_of(45) }
    assert.is_true(report.ok)
    assert.equal(3, report.batches)
    assert.equal(45, #eq:stats().prefetched_urls)
    qc:close()
  end)

  it("raises on usage mistakes before sending anything", function()
    local qc = emu.client(eq)
    raises_with("refresh needs urls or dirs", function() qc:refresh {} end)
    raises_with("urls%[1%] must be a non%-empty string", function() qc:refresh { urls = { 1 } } end)
    raises_with("'urls' item 1 must be a URL starting with http:// or https://",
      function() qc:refresh { urls = { "no-scheme/x" } } end)
    raises_with("concurrency must be an integer from 1 to 64",
      function() qc:refresh { urls = urls_of(1), concurrency = 0 } end)
    raises_with("unknown option 'colour'", function() qc:refresh { urls = urls_of(1), colour = 1 } end)
    raises_with("clients%[1%] is not a cdnkit client",
      function() cdnkit.refresh({ "x" }, { urls = urls_of(1) }) end)
    assert.equal(0, eq:stats().requests)
    qc:close()
  end)
end)

describe("pace (token bucket)", function()
  it("lets a burst through, then spaces requests at the rate", function()
    local b = pace.new(10, 2)
    b.last = 100
    b.tokens = 2
    assert.equal(100, pace.take(b, 100))
    assert.equal(100, pace.take(b, 100))
    assert.near(100.1, pace.take(b, 100), 1e-9)
    assert.near(100.2, pace.take(b, 100), 1e-9)
    -- after a quiet second the bucket is full again, not more
    assert.equal(101.5, pace.take(b, 101.5))
    assert.equal(101.5, pace.take(b, 101.5))
    assert.near(101.6, pace.take(b, 101.5), 1e-9)
  end)
  it("takes the documented rate of an action, and the vendor's for every action", function()
    local api = cdnkit.api("qcloud", "v2")
    local a
    for _, x in ipairs(api.actions) do if x.name == "RefreshCdnUrl" then a = x end end
    assert.near(20, pace.action_rate(a), 1e-9)
    assert.is_nil(pace.action_rate(nil))
    -- a client's buckets: the vendor-wide one, plus the action's own
    local c = cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", version = "2014-11-11" }
    local st = c:_state()
    local t0 = require("cdnkit.core").monotime() + 0.5 -- the bucket is full by then
    for _ = 1, 50 do assert.equal(t0, pace.reserve(st, "DescribeCdnService", t0)) end
    -- Alibaba documents 50 requests/s for the account: the 51st waits 1/50 s
    assert.near(t0 + 1 / 50, pace.reserve(st, "DescribeCdnService", t0), 1e-9)
    c:close()
  end)
end)

describe("retry policy", function()
  local p = retry.policy { attempts = 5, base = 0.5, max = 2 }
  it("backs off exponentially with full jitter, capped", function()
    for n = 1, 6 do
      local cap = math.min(2, 0.5 * 2 ^ (n - 1))
      for _ = 1, 50 do
        local w = retry.backoff(p, n)
        assert.is_true(w >= 0 and w <= cap)
      end
    end
  end)
  it("retries only retryable errors, and ambiguous ones only when idempotent", function()
    local t0 = require("cdnkit.core").monotime()
    assert.is_true(retry.should_retry(p, { retryable = true }, 1, false, t0))
    assert.is_false(retry.should_retry(p, { retryable = false }, 1, true, t0))
    assert.is_false(retry.should_retry(p, { retryable = true, ambiguous = true }, 1, false, t0))
    assert.is_true(retry.should_retry(p, { retryable = true, ambiguous = true }, 1, true, t0))
    assert.is_false(retry.should_retry(p, { retryable = true }, 5, true, t0))
  end)
  it("honours a total deadline and a custom predicate", function()
    local d = retry.policy { attempts = 10, deadline = 1 }
    assert.is_false(retry.should_retry(d, { retryable = true }, 1, true, -100))
    local only = retry.policy { on = function(e) return e.code == "x" end }
    assert.is_true(retry.should_retry(only, { code = "x" }, 1, true, require("cdnkit.core").monotime()))
    assert.is_false(retry.should_retry(only, { code = "y", retryable = true }, 1, true,
      require("cdnkit.core").monotime()))
  end)
  it("rejects bad policies", function()
    raises_with("retry%.attempts must be a positive integer", function() retry.policy { attempts = 0 } end)
    raises_with("unknown retry option 'tries'", function() retry.policy { tries = 3 } end)
  end)
end)
