-- cdnkit.batch: client:refresh{...}, client:prefetch{...} and
-- cdnkit.refresh({client, ...}, {...}).
--
-- Splits the work to each vendor's per-call limits (declared as `batch` in the
-- API data), de-duplicates, and sends the batches of every vendor through one
-- libcurl multi loop in the C core: at most `concurrency` batches in flight
-- per vendor, each vendor paced by its own token bucket (documented request
-- rate).  Retryable failures are resent in later rounds with fresh signatures
-- (new nonce and timestamp), after backoff with full jitter.  The report
-- accounts for every input URL: it is either in a successful batch or in
-- `failed` together with its error.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"
local validate = require "cdnkit.validate"
local errors = require "cdnkit.errors"
local retry = require "cdnkit.retry"
local pace = require "cdnkit.pace"
local paginate = require "cdnkit.paginate"
local client_mod = require "cdnkit.client"
local transport = require "cdnkit.transport"

local M = {}

local function find_batch(api, kind)
  for _, a in ipairs(api.actions) do
    if a.batch and a.batch.kind == kind then return a end
  end
  -- one action for files and directories (Alibaba ObjectType): `dir_max` marks it
  if kind == "refresh_dir" then
    for _, a in ipairs(api.actions) do
      if a.batch and a.batch.kind == "refresh_url" and a.batch.dir_max then return a end
    end
  end
end

local function dedupe(list, what)
  if list == nil then return {} end
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" or not validate.as_array(list) then
    raise("cdnkit: " .. what .. " must be an array (a Lua sequence without holes) of strings")
  end
  local seen, out = {}, {}
  for i, v in ipairs(list) do
    if type(v) ~= "string" or v == "" then
      raise("cdnkit: " .. what .. "[" .. i .. "] must be a non-empty string")
    end
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
  end
  return out
end

local report_mt = {}
report_mt.__index = report_mt
M.report_mt = report_mt

-- Reports and wait summaries print readably (print(report), tostring, the
-- REPL): one line of counts, then a line per failed batch.
local function plural(n, one, many)
  return n .. " " .. (n == 1 and one or (many or one .. "s"))
end

-- URLs and directories in a list of batches ({ kind =, urls = })
local function count_items(list)
  local urls, dirs = 0, 0
  for _, b in ipairs(list or {}) do
    local n = type(b.urls) == "table" and #b.urls or 0
    if b.kind == "refresh_dir" then dirs = dirs + n else urls = urls + n end
  end
  return urls, dirs
end

local function items_text(urls, dirs)
  if dirs == 0 then return plural(urls, "URL") end
  if urls == 0 then return plural(dirs, "directory", "directories") end
  return plural(urls, "URL") .. " and " .. plural(dirs, "directory", "directories")
end

-- "aliyun: 2501 URLs accepted in 4 calls, 4 tasks; 0 failed", and per
-- failed batch "  failed: refresh_url, 1000 URLs: <the error>"
function report_mt.__tostring(r)
  local results, failed = r.results or {}, r.failed or {}
  local u, d = count_items(results)
  local line = ("%s: %s accepted in %s, %s; "):format(tostring(r.vendor), items_text(u, d),
    plural(#results, "call"), plural(#(r.task_ids or {}), "task"))
  if #failed == 0 then
    line = line .. "0 failed"
  else
    local fu, fd = count_items(failed)
    line = line .. items_text(fu, fd) .. " failed in " .. plural(#failed, "batch", "batches")
  end
  local out = { line }
  for _, b in ipairs(failed) do
    local n = type(b.urls) == "table" and #b.urls or 0
    local what = b.kind == "refresh_dir" and plural(n, "directory", "directories") or plural(n, "URL")
    local e = tostring(b.err):gsub("\n", "\n    ")
    out[#out + 1] = ("  failed: %s, %s: %s"):format(tostring(b.kind), what, e)
  end
  return table.concat(out, "\n")
end

-- report:wait{} summaries: "complete: 4 tasks done", or "not complete:
-- 3 running, 1 failed, 2 untracked (reason)", and what else kept it open
local summary_mt = {}
summary_mt.__tostring = function(s)
  local done, running, failed = s.done or {}, s.running or {}, s.failed or {}
  if s.complete then return "complete: " .. plural(#done, "task") .. " done" end
  local parts = {}
  if #running > 0 then parts[#parts + 1] = #running .. " running" end
  if #failed > 0 then parts[#parts + 1] = #failed .. " failed" end
  if (s.untracked or 0) > 0 then
    local why = tostring(s.untracked_reason or "no task id to check")
      :gsub(" %(%d+ batch%a* accepted, not confirmable%)$", "")
    parts[#parts + 1] = s.untracked .. " untracked (" .. why .. ")"
  end
  if (s.failed_batches or 0) > 0 then
    parts[#parts + 1] = plural(s.failed_batches, "batch", "batches") .. " not accepted (report.failed)"
  end
  if #done > 0 then parts[#parts + 1] = #done .. " done" end
  local out = "not complete" .. (#parts > 0 and ": " .. table.concat(parts, ", ") or "")
  if s.timed_out then out = out .. "; the wait timed out" end
  local errs = s.errors or {}
  if #errs > 0 then
    out = out .. "; " .. plural(#errs, "status query", "status queries") .. " failed, the last: " ..
      tostring(errs[#errs]):match("^[^\n]*")
  end
  return out
end

-- the host of a URL (what the vendor counts as its domain), or the item itself
local function host_of(u)
  return validate.url_host(u) or u:lower()
end

-- Split `items` into chunks of at most `size`, each holding URLs of at most
-- `max_domains` hosts (nil: any).  Items are grouped by host (in order of
-- first appearance) so the chunks are few and full.
local function chunks(items, size, max_domains)
  local out = {}
  if not max_domains then
    for i = 1, #items, size do
      local c = {}
      for j = i, math.min(i + size - 1, #items) do c[#c + 1] = items[j] end
      out[#out + 1] = c
    end
    return out
  end
  local hosts, by = {}, {}
  for _, u in ipairs(items) do
    local h = host_of(u)
    if not by[h] then by[h] = {}; hosts[#hosts + 1] = h end
    table.insert(by[h], u)
  end
  local cur, nh, seen = {}, 0, {}
  for _, h in ipairs(hosts) do
    for _, u in ipairs(by[h]) do
      if #cur >= size or (not seen[h] and nh >= max_domains) then
        out[#out + 1] = cur
        cur, nh, seen = {}, 0, {}
      end
      if not seen[h] then seen[h] = true; nh = nh + 1 end
      cur[#cur + 1] = u
    end
  end
  if #cur > 0 then out[#out + 1] = cur end
  return out
end
M.chunks = chunks

-- the user's `params` for this vendor's purge calls: a table of documented
-- wire parameters, never the list parameter the batching fills
local function extra_params(A, a, extra)
  if extra == nil then return nil end
  if type(extra) ~= "table" then raise("cdnkit." .. A.name .. ": params must be a table") end
  for k in pairs(extra) do
    if type(k) ~= "string" then raise("cdnkit." .. A.name .. ": params names must be strings") end
    if k == a.batch.param then
      raise("cdnkit." .. A.name .. ": params." .. k .. " is what refresh/prefetch fill from " ..
        "urls/dirs; give the URLs there")
    end
  end
  return extra
end

-- Build one vendor's plan: validated batches, nothing sent.  Usage mistakes
-- raise.  `extra` are the user's params for this vendor.
local function plan(self, kinds, opts, extra)
  local st = self:_state()
  local A = st.adapter
  local conc = opts.concurrency or 4
  if type(conc) ~= "number" or conc < 1 or conc > 64 or conc ~= math.floor(conc) then
    raise("cdnkit: concurrency must be an integer from 1 to 64")
  end
  local policy = opts.retry ~= nil and retry.policy(opts.retry) or st.retry
  local jobs, rejected = {}, {}
  if self:is_closed() then raise("cdnkit: this client is closed") end
  -- inside nginx: a phase where nothing may be sent raises here, at the call
  if st.route then transport.route(st) end
  -- a vendor that asks something before splitting (batch_scope): usage
  -- mistakes raise before that request too: each item against its list
  -- parameter's declared format, params against the batch action's
  -- parameters (the others find them when the batches are checked)
  for _, kj in ipairs(A.batch_scope and kinds or {}) do
    local kind, items = kj[1], kj[2]
    local a = #items > 0 and find_batch(st.api, kind)
    if a then
      local pname = kind == "refresh_dir" and a.batch.dir_param or a.batch.param
      for _, p in ipairs(a.params or {}) do
        if p[1] == pname and (p.format or p.pattern) then
          for i, u in ipairs(items) do
            local ok, msg = validate.check_item(p, u)
            if not ok then
              raise("cdnkit." .. A.name .. " " .. a.name .. ": " .. (kind == "refresh_dir" and "dirs" or "urls") ..
                "[" .. i .. "] " .. msg)
            end
          end
        end
      end
      if extra ~= nil and type(extra) == "table" then
        for k in pairs(extra) do
          local known = false
          for _, p in ipairs(a.params or {}) do if p[1] == k then known = true end end
          if not known then
            raise("cdnkit." .. A.name .. ": params." .. tostring(k) .. " is not a parameter of " .. a.name ..
              " (see client:help(\"" .. a.name .. "\"))")
          end
        end
      end
    end
  end
  -- what the vendor's batches need to know first (Plcloud: the account's
  -- domains, to map each URL's host to its domain id), once per refresh
  local scope, scope_err
  if A.batch_scope then
    local any = false
    for _, kj in ipairs(kinds) do if #kj[2] > 0 then any = true end end
    if any then
      scope, scope_err = A.batch_scope(self, st, function(name, params)
        return client_mod.invoke(self, name, params, true)
      end)
      if not scope and not errors.is(scope_err) then
        scope_err = errors.new(A.name, "refresh", scope_err or { code = "internal", message = "no scope" })
      end
    end
  end
  for _, kj in ipairs(kinds) do
    local kind, items = kj[1], kj[2]
    if #items > 0 and scope_err then
      -- nothing can be sent: every item fails with the reason
      rejected[#rejected + 1] = { kind = kind, urls = items, err = scope_err }
      items = {}
    elseif #items > 0 and A.batch_reject then
      -- items the vendor cannot take (a host that is not one of the
      -- account's domains) fail alone, one entry per host
      local keep, by_host, hosts = {}, {}, {}
      for _, u in ipairs(items) do
        local h = host_of(u)
        local e = A.batch_reject(kind, u, scope, h)
        if e then
          if not by_host[h] then
            local ba = find_batch(st.api, kind)
            by_host[h] = { kind = kind, urls = {}, err = errors.new(A.name, ba and ba.name or kind, e) }
            hosts[#hosts + 1] = h
          end
          table.insert(by_host[h].urls, u)
        else
          keep[#keep + 1] = u
        end
      end
      for _, h in ipairs(hosts) do rejected[#rejected + 1] = by_host[h] end
      items = keep
    end
    if #items > 0 then
      local a = find_batch(st.api, kind)
      if not a then
        raise("cdnkit." .. A.name .. ": the vendor has no " .. kind:gsub("_", " ") .. " API")
      end
      local b = a.batch
      local ex = extra_params(A, a, extra)
      local max = b.max
      if kind == "refresh_dir" and b.dir_max then max = b.dir_max end
      -- a purge type with its own per-call maximum (Alibaba ObjectType
      -- Regex: one rule per call)
      -- (declared on the list parameter: max_by = { param =, [type] = max })
      local by
      for _, p in ipairs(a.params or {}) do if p[1] == b.param then by = p.max_by end end
      local ptype = by and ex and ex[by.param]
      if ptype and kind == "refresh_dir" and b.dir_max then
        raise("cdnkit." .. A.name .. ": params." .. by.param .. " applies to urls; " ..
          "purge dirs in a refresh of their own")
      end
      local type_max = ptype and by[tostring(ptype)]
      if type_max then max = type_max end
      local size = opts.batch_size or max
      if type(size) ~= "number" or size < 1 or size ~= math.floor(size) then
        raise("cdnkit: batch_size must be a positive integer")
      end
      if size > max then size = max end
      -- Alibaba's per-domain refresh rate (URLs a minute per domain) paces
      -- URL purges; directories and rules are not counted per URL
      local per_domain = a.limits and a.limits.per_minute_per_domain
      if kind ~= "refresh_url" or type_max then per_domain = nil end
      for _, chunk in ipairs(chunks(items, size, b.max_domains)) do
        local action, params = A.batch_params(kind, chunk, ex, st.version, scope, host_of(chunk[1]))
        local P = st.plan(action)
        local flat, msg = validate.check_plan(P, params, A.list_form)
        if not flat then raise(msg) end
        local units
        if per_domain then
          units = {}
          for _, u in ipairs(chunk) do local h = host_of(u); units[h] = (units[h] or 0) + 1 end
        end
        -- the batch's other wire parameters, as sent (reports show them)
        local sent = {}
        for k, v in pairs(params) do if k ~= b.param and k ~= b.dir_param then sent[k] = v end end
        local ba = P.action and P.action.batch
        jobs[#jobs + 1] = { kind = kind, urls = chunk, action = action, plan = P, flat = flat,
                            sent_params = sent, untracked = ba and ba.untracked,
                            idempotent = P.idempotent, attempts = 0, units = units,
                            per_domain = per_domain }
      end
    end
  end
  -- a purge option no batch takes (Tencent FlushType with URLs only) is a
  -- mistake, not something to drop without a word
  if extra and #jobs > 0 then
    for k in pairs(extra) do
      local used = false
      for _, j in ipairs(jobs) do if j.sent_params[k] ~= nil then used = true end end
      if not used then
        raise("cdnkit." .. A.name .. ": params." .. tostring(k) .. " does not apply to this purge " ..
          "(no batch of it takes that parameter: see client:help() of the purge actions)")
      end
    end
  end
  local report = setmetatable({ vendor = A.name, client = self, ok = #rejected == 0, batches = #jobs, done = 0,
                                failed = {}, task_ids = {}, results = {}, started = core.now() },
                              report_mt)
  for i, r in ipairs(rejected) do report.failed[i] = r end
  return {
    client = self, st = st, A = A, jobs = jobs, conc = conc, policy = policy, extra = extra,
    rejected = rejected, report = report,
  }
end

-- reserve a start time for one batch: the action's request rate and, where
-- the vendor limits URLs per domain and minute, each domain's URL budget
-- (returns the slot and the action's own, without the domains)
-- The vendor counts the URLs of the last minute by its own clock: a second
-- of margin keeps a batch that lands just inside the boundary from tripping it.
local DOMAIN_WINDOW = 61

local function reserve_slot(g, j, now)
  local slot = pace.reserve(g.st, j.action, now) or now
  local own = slot
  if j.units and g.st.rate ~= false then
    j.reserved = {}
    -- every domain of the batch must have room at the same time: reserve
    -- at the latest of their times, again until all agree
    local at = slot
    for _ = 1, 8 do
      for h, e in pairs(j.reserved) do pace.release_window(g.st, "domain:" .. h, e) end
      j.reserved = {}
      local latest = at
      for h, n in pairs(j.units) do
        local t, e = pace.reserve_window(g.st, "domain:" .. h, j.per_domain, DOMAIN_WINDOW, n, at)
        j.reserved[h] = e
        if t > latest then latest = t end
      end
      if latest == at then break end
      at = latest
    end
    if at > slot then slot = at end
  end
  return slot, own
end

local function release_slot(g, j)
  pace.release(g.st, j.action)
  for h, e in pairs(j.reserved or {}) do pace.release_window(g.st, "domain:" .. h, e) end
  j.reserved = nil
end

-- send the requests of one wave.  The requests of every vendor that uses
-- the curl transport go through one libcurl multi loop (the first such
-- client's transport runs it; each request carries its own client's
-- settings), each vendor at most its concurrency at once and started at its
-- pacing time; Lua transports get theirs through send_many / send.
local function send_round(items, max_bytes)
  local results = {}
  local curl_reqs, curl_idx = {}, {}
  local sched = { not_before = {}, group = {}, limits = {}, max_bytes = max_bytes }
  local runner, total, seen = nil, 0, {}
  local lua_groups, lua_order = {}, {}
  for i, it in ipairs(items) do
    local g = it.group
    if g.st.curl and not (g.st.route and transport.route(g.st)) then
      runner = runner or g.st.curl
      local k = #curl_reqs + 1
      curl_reqs[k] = it.req
      curl_idx[k] = i
      sched.not_before[k] = it.not_before or 0
      sched.group[k] = it.gi
      if not seen[it.gi] then
        seen[it.gi] = true
        sched.limits[it.gi] = g.conc
        total = total + g.conc
      end
    else
      local lg = lua_groups[g]
      if not lg then
        lg = { reqs = {}, idx = {}, nb = {} }
        lua_groups[g] = lg
        lua_order[#lua_order + 1] = g
      end
      local k = #lg.reqs + 1
      lg.reqs[k] = it.req
      lg.idx[k] = i
      lg.nb[k] = it.not_before or 0
    end
  end
  -- a failure of one transport fails its own requests, not the others':
  -- answers already received are kept
  local function failed_all(idx, message, sent)
    for _, i in ipairs(idx) do
      results[i] = { err = { code = sent and "internal" or "not_sent", message = message,
                             sent = sent } }
    end
  end
  for _, g in ipairs(lua_order) do
    local lg = lua_groups[g]
    local ok, rs = pcall(transport.lua_many, g.st, lg.reqs, g.conc, { not_before = lg.nb },
      g.st.sleep)
    if ok then
      for k, i in ipairs(lg.idx) do results[i] = rs[k] end
    else
      failed_all(lg.idx, "the transport failed: " .. tostring(rs), true)
    end
  end
  if #curl_reqs > 0 then
    if total > 256 then total = 256 end -- the C core's ceiling; group limits still apply
    if runner:is_closed() then
      -- closed (e.g. by a trace callback or a finalizer): nothing was sent
      failed_all(curl_idx, "the client was closed before this request was sent", false)
    else
      local ok, res = pcall(runner.send_many, runner, curl_reqs, total, sched)
      if ok then
        for k, i in ipairs(curl_idx) do results[i] = res[k] end
      else
        -- every request is checked before the first starts, so a failure
        -- here came mid-flight (out of memory, libcurl): any may have run
        failed_all(curl_idx, "the transfer loop failed: " .. tostring(res), true)
      end
    end
  end
  return results
end

-- what one batch came to: data | nil, err.  Never raises: an unexpected
-- failure reading the answer is recorded against the batch, so a report is
-- always complete.
local function outcome(group, job, r)
  local ok, data, err = pcall(function()
    if r == nil then
      return nil, { code = "http", message = "no result for this request", sent = true }
    end
    if r.err then
      return client_mod.outcome(group.st, job.action, job.meta, nil, r.err)
    end
    return client_mod.outcome(group.st, job.action, job.meta, r.status, r.headers, r.body)
  end)
  if not ok then
    return nil, errors.new(group.A.name, job.action, {
      code = "http", retryable = false, ambiguous = true,
      message = "cannot read the answer: " .. tostring(data),
    })
  end
  if err and not errors.is(err) then err = errors.new(group.A.name, job.action, err) end
  return data, err
end

-- requests signed per wave and per vendor, as a multiple of its concurrency:
-- a wave goes out at once, so nothing waits long after being signed
local WAVE = 4
-- a request whose pacing slot is further away than this is left for a later
-- wave rather than signed now (signatures carry a timestamp)
local PACE_WINDOW = 30

-- Run the plans of one or more vendors to the end; fills each plan's report.
-- Work goes out in waves: each wave takes, per vendor, up to WAVE x
-- concurrency batches that are due (not backing off, pacing slot near),
-- signs them with a fresh nonce and timestamp, and sends them through one
-- libcurl multi loop.  Failed batches are queued again after backoff, or
-- recorded as failed; every batch ends in exactly one of the two lists.
local function record_failed(it, err)
  local rep, j = it.group.report, it.job
  rep.ok = false
  rep.failed[#rep.failed + 1] = { kind = j.kind, urls = j.urls, err = err }
end

-- what an answer without the promised task id is: the vendor said yes but
-- gave nothing to check the purge by, so it cannot count as done
local function no_task_id(g, j)
  return errors.new(g.A.name, j.action, {
    code = "bad_response", retryable = false, ambiguous = true,
    message = "the answer has no task id, so the purge cannot be confirmed",
  })
end

local function run(groups, max_bytes, all, progress, on_batch)
  local queue = {}
  -- progress: URLs in finished batches (accepted or failed) of all URLs,
  -- after every wave; a raising callback is ignored (it cannot lose work)
  local total, finished = 0, 0
  for _, it in ipairs(all) do total = total + #it.job.urls end
  local function tell()
    if progress then pcall(progress, finished, total) end
  end
  -- on_batch: each batch as it ends, accepted or failed for good (a
  -- raising callback is ignored, as progress)
  local function ended(g, ev)
    if on_batch then ev.vendor = g.A.name; pcall(on_batch, ev) end
  end
  for _, it in ipairs(all) do queue[#queue + 1] = it end
  local t0 = core.monotime()
  local waves = 0
  while #queue > 0 do
    local now = core.monotime()
    local wave, rest, taken = {}, {}, {}
    local next_due = math.huge
    local paced_due = {} -- vendor -> when its next batch fits the pacing window
    for _, it in ipairs(queue) do
      local g = it.group
      local n = taken[g] or 0
      local due = math.max(it.due, paced_due[g] or 0)
      local take = false
      if due <= now and n < g.conc * WAVE then
        -- reserve the pacing slot now: a wave takes only what can start
        -- within PACE_WINDOW of being signed (a signature carries a timestamp)
        local slot, own = reserve_slot(g, it.job, now)
        if slot > now + PACE_WINDOW then
          release_slot(g, it.job)
          if own > now + PACE_WINDOW then
            -- the vendor's request rate: nothing more of this vendor fits now
            paced_due[g] = own - PACE_WINDOW
            due = paced_due[g]
          else
            -- a domain's URL budget: this batch waits, the others go on
            it.due = slot - PACE_WINDOW
            due = it.due
          end
        else
          it.not_before = slot
          take = true
        end
      end
      if take then
        taken[g] = n + 1
        wave[#wave + 1] = it
      else
        rest[#rest + 1] = it
        if due > now and due < next_due then next_due = due end
      end
    end
    if #wave == 0 then
      groups[1].st.sleep(math.max(0.001, next_due - now))
    else
      waves = waves + 1
      -- vendors with a session (a token to get or renew): once per wave
      local no_session = {}
      for _, it in ipairs(wave) do
        local g = it.group
        if (g.A.session or g.st.role) and no_session[g] == nil then
          local ok, serr = client_mod.session(g.client, g.st, "refresh", g.renew)
          g.renew = false
          no_session[g] = not ok and serr or false
        end
      end
      local sendable, results_of = {}, {}
      for _, it in ipairs(wave) do
        local g, j = it.group, it.job
        j.attempts = j.attempts + 1
        if no_session[g] then
          results_of[it] = { session_err = no_session[g] }
        else
          it.req, j.meta = g.A.build(g.client, g.st, j.plan, j.flat, {})
          it.req.idempotent = j.idempotent and true or false
          if g.st.trace then client_mod.trace_request(g.st, j.action, it.req) end
          sendable[#sendable + 1] = it
        end
      end
      for _, it in ipairs(sendable) do it.flying = true end
      local sent = send_round(sendable, max_bytes)
      local results = {}
      for k, it in ipairs(sendable) do results_of[it] = sent[k] or false end
      for i, it in ipairs(wave) do results[i] = results_of[it] or nil end
      local after = core.monotime()
      for i, it in ipairs(wave) do
        local g, j = it.group, it.job
        local rep = g.report
        local r = results[i]
        it.flying = nil
        it.not_before = nil
        if r and r.deferred then
          -- not started (the wave's answers filled the memory budget): next wave
          j.attempts = j.attempts - 1
          it.due = 0
          rest[#rest + 1] = it
        else
          local data, err
          if r and r.session_err then
            -- no token: the batch was not sent
            err = errors.new(g.A.name, j.action, {})
            for k, v in pairs(r.session_err) do err[k] = v end
            err.action = j.action
            r = nil
          else
            data, err = outcome(g, j, r)
          end
          local ids
          if data ~= nil then
            local ok
            ok, ids = pcall(g.A.task_ids, j.kind, data)
            if not ok or type(ids) ~= "table" then
              data, err = nil, no_task_id(g, j)
            elseif #ids == 0 and not j.untracked then
              -- (an action the vendor gives no task id for at all is
              -- declared `untracked` in the data: accepted, not confirmable)
              data, err = nil, no_task_id(g, j)
            end
          end
          if data ~= nil then
            rep.done = rep.done + #j.urls
            finished = finished + #j.urls
            for _, id in ipairs(ids) do rep.task_ids[#rep.task_ids + 1] = id end
            rep.results[#rep.results + 1] = { kind = j.kind, urls = j.urls, task_ids = ids,
                                              params = j.sent_params, untracked = j.untracked }
            it.open = nil
            ended(g, { ok = true, kind = j.kind, urls = j.urls, task_ids = ids })
          else
            err.attempts = j.attempts
            it.last_err = err
            if err.reauth and j.renewed then
              -- a new token was refused too: not renewed again for this
              -- vendor in this run (no login per wave)
              err.message = err.message .. " (a new token was refused too)"
              g.refused_fresh = true
            end
            if err.reauth and not j.renewed and not g.refused_fresh then
              -- the session token was refused: nothing ran; a new token
              -- before the next wave, and this batch once more at once
              j.renewed, g.renew = true, true
              j.attempts = j.attempts - 1
              it.due = 0
              rest[#rest + 1] = it
            elseif client_mod.clock_resign(g.st, err, j.meta, r and r.headers, j.idempotent,
                 not j.clock_fixed and r ~= nil) then
              -- the vendor rejected our timestamp: resend at once with its clock
              -- (one extra attempt, as for single calls)
              j.clock_fixed = true
              it.due = 0
              rest[#rest + 1] = it
            elseif retry.should_retry(g.policy, err, j.attempts, j.idempotent, t0) then
              it.due = after + retry.wait(g.policy, j.attempts, err)
              rest[#rest + 1] = it
            else
              record_failed(it, err)
              finished = finished + #j.urls
              it.open = nil
              ended(g, { ok = false, kind = j.kind, urls = j.urls, err = err })
            end
          end
        end
        j.meta = nil
        it.req = nil
      end
    end
    queue = rest
    tell()
  end
  return waves
end

-- Run the plans of one or more vendors to the end; fills each plan's report.
-- Work goes out in waves: each wave takes, per vendor, up to WAVE x
-- concurrency batches that are due (not backing off, pacing slot near),
-- signs them with a fresh nonce and timestamp, and sends them through one
-- libcurl multi loop.  Failed batches are queued again after backoff, or
-- recorded as failed; every batch ends in exactly one of the two lists.
-- Nothing raises from here: if anything fails unexpectedly (the client
-- closed by a trace callback or a finalizer, a raising retry hook, a C
-- error, out of memory), the batches not finished are recorded as failed:
-- those that were in flight as ambiguous, those never sent as "not_sent".
local function execute(groups, max_bytes, progress, on_batch)
  local all = {}
  for gi, g in ipairs(groups) do
    for _, j in ipairs(g.jobs) do
      all[#all + 1] = { group = g, gi = gi, job = j, due = 0, open = true }
    end
  end
  local ok, waves = pcall(run, groups, max_bytes, all, progress, on_batch)
  if not ok then
    -- the reason, without the position inside cdnkit's own files
    local why = tostring(waves):gsub("^[^\n]-%.lua:%d+: ", "")
    for _, it in ipairs(all) do
      if it.open then
        local g, j = it.group, it.job
        local err
        if it.flying then
          err = errors.new(g.A.name, j.action, {
            code = "internal", retryable = false, ambiguous = true, sent = true,
            message = "the batch stopped while this request was out: " .. why })
        elseif it.last_err then
          err = it.last_err
          err.message = err.message .. " (not retried: the batch stopped: " .. why .. ")"
        else
          err = errors.new(g.A.name, j.action, {
            code = "not_sent", retryable = false, ambiguous = false, sent = false,
            message = "not sent: the batch stopped: " .. why })
        end
        pcall(record_failed, it, err)
        if on_batch then
          pcall(on_batch, { vendor = g.A.name, ok = false, kind = j.kind, urls = j.urls, err = err })
        end
      end
    end
    waves = nil
  end
  for _, g in ipairs(groups) do g.report.rounds = waves end
end

---------------------------------------------------------------------------
-- report:wait{ timeout = seconds (300), interval = seconds (5) }
-- Polls the vendor's task-status API (declared in the adapter as
-- `task_status`) until every task is done or failed, or the timeout passes.
-- Returns a summary { complete = bool, done = {ids}, failed = {ids},
-- running = {ids}, untracked = n (batches the vendor gave no task id for),
-- failed_batches = n (batches the vendor never accepted: report.failed),
-- timed_out = bool, errors = {err, ...} } and stores per-task states in
-- report.tasks.  `complete` is true only when every input URL was accepted
-- and every task is done.
local function task_state(spec, items)
  if type(items) ~= "table" or #items == 0 then return "running" end
  local any_running = false
  for _, it in ipairs(items) do
    local v = it[spec.field]
    if spec.failed and spec.failed[v] then return "failed" end
    if spec.failed_below and tonumber(v) and tonumber(v) < spec.failed_below then return "failed" end
    if not (spec.done and spec.done[v]) then any_running = true end
  end
  return any_running and "running" or "done"
end

-- The rows of the vendor's task list (task_status.list) for the tasks in
-- `group`, newest first, page by page until every one was seen, the list
-- ends, or the deadline passes.  Returns { [task id] = { row, ... } }.
-- "YYYY-MM-DD hh:mm:ss" in China Standard Time (UTC+8), as the Chinese
-- vendors' date-range parameters take it
local function cst(t)
  return (core.iso8601(t + 8 * 3600):gsub("T", " "):sub(1, 19))
end

local function list_states(client, st, spec, group, deadline, errs, started)
  local L, A = spec.list, st.adapter
  local want, missing = {}, 0
  for _, t in ipairs(group) do
    if not want[t.id] then want[t.id] = true; missing = missing + 1 end
  end
  local rows, page = {}, 1
  -- newest first: the tasks of a report are near the top; a few more pages
  -- than they fill, then the per-task queries take over.  A list without
  -- pages (a time window instead) is one query.
  local max_pages = L.page and (math.ceil(missing / L.size_max) + 2) or 1
  while missing > 0 and page <= max_pages and core.monotime() < deadline do
    local params = {}
    if L.page then
      params[L.page], params[L.size] = page, L.size_max
    end
    if L.since then
      -- from a little before the report's first purge to now, in the
      -- server's clock and the vendor's time zone
      local off = st.clock_offset or 0
      params[L.since.from] = cst((started or core.now()) + off - 300)
      params[L.since.to] = cst(core.now() + off + 60)
    end
    local flat, msg = validate.check(st.api, st.api_index[spec.action], params, A.list_form)
    if not flat then
      errs[#errs + 1] = errors.new(A.name, spec.action, { code = "json", message = msg })
      break
    end
    local data, err = client_mod.invoke(client, spec.action, flat, true, deadline)
    if not data then
      errs[#errs + 1] = err
      break
    end
    local items = paginate.dig(data, spec.items)
    if type(items) ~= "table" or #items == 0 then break end
    for _, row in ipairs(items) do
      local id = type(row) == "table" and row[L.id] ~= nil and validate.id_string(row[L.id])
      if id and want[id] then
        if not rows[id] then rows[id] = {}; missing = missing - 1 end
        table.insert(rows[id], row)
      end
    end
    local total = L.total and tonumber(paginate.dig(data, L.total))
    if not L.page or (total and page * L.size_max >= total) then break end
    page = page + 1
  end
  return rows
end

-- The tasks of `todo` not yet handled whose status spec passes `pred`,
-- grouped by spec: groups[spec] = { task, ... }, and the specs in order.
local function by_spec(todo, handled, spec_of, pred)
  local groups, order = {}, {}
  for _, t in ipairs(todo) do
    local spec = spec_of(t)
    if not handled[t] and pred(spec) then
      if not groups[spec] then groups[spec] = {}; order[#order + 1] = spec end
      table.insert(groups[spec], t)
    end
  end
  return groups, order
end

-- One status query: the spec's fixed parameters, `extra` (paging) and `id`
-- (one task id, or several as the parameter's list form).  data | nil, err.
local function query_status(client, st, spec, id, deadline, extra)
  local A = st.adapter
  local params = {}
  for pk, v in pairs(spec.params or {}) do params[pk] = v end
  for pk, v in pairs(extra or {}) do params[pk] = v end
  params[spec.id_param] = id
  local flat, msg = validate.check(st.api, st.api_index[spec.action], params, A.list_form)
  if not flat then
    return nil, errors.new(A.name, spec.action, { code = "json", message = "cannot query tasks: " .. msg })
  end
  return client_mod.invoke(client, spec.action, flat, true, deadline)
end

-- The rows of one task -> rows, unseen | nil, nil, err.  Where the status
-- query is paged (spec.pages = { page, size, size_max, total }) every page is
-- read; `unseen` is true when the vendor's total (spec.total, or the pages'
-- total) says the task has more rows than were read.
local function task_rows(client, st, spec, id, deadline)
  local pg = spec.pages
  if not pg then
    local data, err = query_status(client, st, spec, id, deadline)
    if not data then return nil, nil, err end
    local items = paginate.dig(data, spec.items)
    local total = spec.total and tonumber(paginate.dig(data, spec.total))
    return items, total ~= nil and type(items) == "table" and total > #items
  end
  local rows, total, n = setmetatable({}, core.array_mt), nil, 0
  repeat
    n = n + 1
    local data, err = query_status(client, st, spec, id, deadline,
      { [pg.page] = n, [pg.size] = pg.size_max })
    if not data then return nil, nil, err end
    local items = paginate.dig(data, spec.items)
    total = tonumber(paginate.dig(data, pg.total))
    if type(items) ~= "table" or #items == 0 then break end
    for _, r in ipairs(items) do rows[#rows + 1] = r end
  until not total or #rows >= total or core.monotime() >= deadline or n >= 100
  return rows, total ~= nil and #rows < total
end

local function wait_opts(opts)
  if opts == nil then opts = {} end
  validate.only_keys(opts, { "timeout", "interval" }, "cdnkit: wait: ")
  local timeout, interval = opts.timeout or 300, opts.interval or 5
  if type(timeout) ~= "number" or not (timeout >= 0) then raise("cdnkit: wait: timeout must be seconds >= 0") end
  if type(interval) ~= "number" or not (interval > 0) then raise("cdnkit: wait: interval must be seconds > 0") end
  return timeout, interval
end

function report_mt:wait(opts, deadline)
  local timeout, interval = wait_opts(opts)
  local self_client = self.client
  local st = self_client:_state()
  local A = st.adapter
  self.tasks = self.tasks or {}
  local todo, untracked, why = {}, 0, nil
  for _, r in ipairs(self.results) do
    if #r.task_ids == 0 then
      untracked = untracked + 1
      why = why or r.untracked
    end
    for _, id in ipairs(r.task_ids) do
      if self.tasks[id] ~= "done" and self.tasks[id] ~= "failed" then
        todo[#todo + 1] = { id = id, kind = r.kind }
      end
    end
  end
  deadline = deadline or core.monotime() + timeout
  local errs = {}
  local function spec_of(t)
    local ts = st.task_status
    local spec = ts and (ts[t.kind] or ts.default)
    if not spec then
      raise("cdnkit." .. A.name .. ": no task-status API is declared for " .. t.kind)
    end
    return spec
  end
  while true do
    local still, handled = {}, {}
    -- the vendor's task list, where the adapter declares one: a page holds
    -- the states of many tasks, so 1,000 tasks cost 20 queries, not 1,000
    local groups, order = by_spec(todo, handled, spec_of, function(spec) return spec.list end)
    for _, spec in ipairs(order) do
      local group = groups[spec]
      if #group > 1 then
        local rows = list_states(self_client, st, spec, group, deadline, errs, self.started)
        for _, t in ipairs(group) do
          if rows[t.id] then
            local s = task_state(spec, rows[t.id])
            self.tasks[t.id] = s
            handled[t] = true
            if s == "running" then still[#still + 1] = t end
          end
        end
      end
    end
    -- a status API that takes several task ids at once (ids_max): a query
    -- per ids_max tasks, the rows matched to tasks by row_id
    local multi, morder = by_spec(todo, handled, spec_of, function(spec) return spec.ids_max end)
    for _, spec in ipairs(morder) do
      local group = multi[spec]
      local a = st.api_index[spec.action]
      local is_list = false
      for _, p in ipairs(a.params or {}) do
        if p[1] == spec.id_param and p[2] == "list" then is_list = true end
      end
      local i = 1
      while i <= #group do
        local ids, chunk = {}, {}
        for k = i, math.min(i + spec.ids_max - 1, #group) do
          local t = group[k]
          handled[t] = true
          chunk[#chunk + 1] = t
          if not ids[t.id] then ids[#ids + 1] = t.id; ids[t.id] = true end
        end
        i = i + spec.ids_max
        local idl = {}
        for k = 1, #ids do idl[k] = ids[k] end
        if core.monotime() >= deadline then
          for _, t in ipairs(chunk) do still[#still + 1] = t end
        else
          local data, err = query_status(self_client, st, spec,
            is_list and idl or table.concat(idl, ","), deadline)
          if data == nil then
            errs[#errs + 1] = err
            for _, t in ipairs(chunk) do still[#still + 1] = t end
          else
            local rows = {}
            local items = paginate.dig(data, spec.items)
            for _, row in ipairs(type(items) == "table" and items or {}) do
              local id = type(row) == "table" and row[spec.row_id] ~= nil and
                validate.id_string(row[spec.row_id])
              if id then rows[id] = rows[id] or {}; table.insert(rows[id], row) end
            end
            for _, t in ipairs(chunk) do
              -- a task the answer does not list is not known yet: still running
              local s = task_state(spec, rows[t.id])
              self.tasks[t.id] = s
              if s == "running" then still[#still + 1] = t end
            end
          end
        end
      end
    end
    -- one query per task for the rest
    for _, t in ipairs(todo) do
      if not handled[t] then
        -- the deadline is checked before every query, so a long list of
        -- tasks cannot hold the caller much beyond it (one request at most)
        if core.monotime() >= deadline then
          still[#still + 1] = t
        else
          local spec = spec_of(t)
          local items, unseen, err = task_rows(self_client, st, spec, t.id, deadline)
          if err then
            errs[#errs + 1] = err
            still[#still + 1] = t
          else
            local s = task_state(spec, items)
            -- rows not read (the vendor's total says there are more) are not
            -- known: a failure may be among them
            if s == "done" and unseen then s = "running" end
            self.tasks[t.id] = s
            if s == "running" then still[#still + 1] = t end
          end
        end
      end
    end
    todo = still
    local left = deadline - core.monotime()
    if #todo == 0 or left <= 0 then break end
    st.sleep(math.min(interval, left))
  end
  -- batches the vendor never accepted were not purged: the purge is not complete
  local sum = { done = {}, failed = {}, running = {}, untracked = untracked, errors = errs,
                failed_batches = #self.failed }
  if untracked > 0 then
    -- why `complete` cannot be true: batches accepted without a task to check
    sum.untracked_reason = (why or "the vendor gave no task id for them") ..
      (" (%d batch%s accepted, not confirmable)"):format(untracked, untracked == 1 and "" or "es")
  end
  for _, t in ipairs(todo) do
    if self.tasks[t.id] == nil then self.tasks[t.id] = "running" end -- never answered yet
  end
  for id, s in pairs(self.tasks) do table.insert(sum[s], id) end
  for _, k in ipairs { "done", "failed", "running" } do table.sort(sum[k]) end
  sum.timed_out = #todo > 0
  -- complete only when every batch has task ids and the vendor reported
  -- every one of them done
  sum.complete = #todo == 0 and #sum.failed == 0 and #self.failed == 0 and untracked == 0 and
    #sum.running == 0
  return setmetatable(sum, summary_mt)
end

---------------------------------------------------------------------------

local OPTS = { "urls", "dirs", "concurrency", "batch_size", "retry", "check_quota", "max_batch_bytes",
               "params", "dry_run", "progress", "on_batch" }

-- the answers of one wave held in memory at once, at most (then the rest of
-- the wave waits for the next one); every answer is also capped by max_body
local MAX_BATCH_BYTES = 256 * 1024 * 1024

local function batch_bytes(opts)
  local v = opts.max_batch_bytes
  if v == nil then return MAX_BATCH_BYTES end
  if type(v) ~= "number" or not (v >= 1024 and v < math.huge) then
    raise("cdnkit: max_batch_bytes must be a number of bytes >= 1024")
  end
  return v
end

local function check_opts(opts)
  validate.only_keys(opts, OPTS, "cdnkit: ")
  if opts.progress ~= nil and type(opts.progress) ~= "function" then
    raise("cdnkit: progress must be a function(done_urls, total_urls)")
  end
  if opts.on_batch ~= nil and type(opts.on_batch) ~= "function" then
    raise("cdnkit: on_batch must be a function(event)")
  end
  batch_bytes(opts)
end

-- check_quota = true: ask the vendor's quota API (declared in the adapter as
-- `quota`) before sending; nil, err (code "quota") when today's remaining
-- quota cannot take the work.  Vendors without a quota API raise.
-- today's remaining quota of `kind` by the vendor's quota API: left,
-- field | nil, err.  `answers` (action -> data) shares one query per action.
local function quota_left(A, st, client, kind, extra, answers)
  local q = st.quota
  local action = q.actions and q.actions[kind] or q.action
  if not action then return nil end
  local data = answers[action]
  if not data then
    local err
    data, err = client_mod.invoke(client, action, {}, true)
    if not data then return nil, err end
    answers[action] = data
  end
  local field = q.remain[kind]
  -- a purge type with its own quota (Alibaba ObjectType Regex, ExQuery)
  local t = kind == "refresh_url" and q.type_param and extra and extra[q.type_param]
  if t and q.by_type and q.by_type[t] then field = q.by_type[t] end
  local v = field and paginate.dig(data, field)
  if v == nil or v == core.null then
    -- no figure to check against: not a pass
    return nil, errors.new(A.name, action, {
      code = "bad_response", retryable = false, kind = kind,
      message = "the quota answer has no " .. tostring(field) .. "; nothing was sent",
    })
  end
  local left
  if type(v) == "table" and q.row_field then
    -- one row per area (Tencent): the purge's Area, else the tightest
    -- (an area no row names, e.g. Tencent's "global", spends every
    -- area's quota: the smallest counts)
    local area = q.area_param and extra and extra[q.area_param]
    local function pick(only)
      for _, row in ipairs(v) do
        local x = type(row) == "table" and tonumber(row[q.row_field])
        if x and (only == nil or row[q.area_field] == only) then
          if left == nil or x < left then left = x end
        end
      end
    end
    pick(area)
    if left == nil and area ~= nil then pick(nil) end
  else
    left = tonumber(v)
  end
  if left == nil then return false end -- no figure for this purge (as before: not checked)
  local what = kind:gsub("_", " ")
  if t and q.by_type and q.by_type[t] then what = what .. " (" .. tostring(t) .. ")" end
  return left, field, action, what
end

-- check_quota = true: ask the vendor's quota API (declared in the adapter as
-- `quota`) before sending; nil, err (code "quota") when today's remaining
-- quota cannot take the work.  Vendors without a quota API raise.
local function check_quota(g, kinds)
  local A, st = g.A, g.st
  if not st.quota then raise("cdnkit." .. A.name .. ": the vendor has no quota API to check") end
  local answers = {} -- action -> data (one query per quota action)
  for _, kj in ipairs(kinds) do
    local kind, n = kj[1], #kj[2]
    if n > 0 then
      local left, field, action, what = quota_left(A, st, g.client, kind, g.extra, answers)
      if left == nil and field ~= nil then return nil, field end -- (the second value is the error)
      if left and n > left then
        return nil, errors.new(A.name, action, {
          code = "quota", retryable = false, kind = kind, needed = n, remaining = left,
          quota_field = field,
          message = ("%d %s needed, %d left in today's quota (%s); nothing was sent")
            :format(n, what, left, field),
        })
      end
    end
  end
  return true
end

--- Today's remaining quota of `kind` ("refresh_url", "refresh_dir",
-- "prefetch") for purges with wire parameters `params` (Tencent's Area,
-- Alibaba's ObjectType), read from the vendor's quota API: left | false
-- (the vendor has no quota API, or none for this kind) | nil, err.
function M.quota_left(client, kind, params)
  local st = client_mod.STATE[client]
  if not st then error("cdnkit: quota_left needs an open cdnkit client", 2) end
  if not st.quota then return false end
  local left, err = quota_left(st.adapter, st, client, kind, params, {})
  if left == nil and err ~= nil then return nil, err end
  return left or false
end

local function refresh_kinds(opts)
  local urls = dedupe(opts.urls, "urls")
  local dirs = dedupe(opts.dirs, "dirs")
  -- an empty list is no mistake (a deploy that changed nothing): an empty,
  -- successful report; giving neither is
  if opts.urls == nil and opts.dirs == nil then raise("cdnkit: refresh needs urls or dirs") end
  return { { "refresh_url", urls }, { "refresh_dir", dirs } }
end

-- dry_run = true: what would be sent, nothing sent.  { dry_run = true,
-- vendor =, batches = { { kind =, action =, urls =, params = }, ... },
-- needed = { [kind] = URLs } }
local function dry_report(g)
  local out = { dry_run = true, vendor = g.A.name, batches = {}, needed = {}, rejected = g.rejected }
  for i, j in ipairs(g.jobs) do
    out.batches[i] = { kind = j.kind, action = j.action, urls = j.urls, params = j.sent_params }
    out.needed[j.kind] = (out.needed[j.kind] or 0) + #j.urls
  end
  return out
end

function M.install(methods, A)
  -- one vendor: plan, optional quota check, run
  local function run_one(self, kinds, opts)
    local g = plan(self, kinds, opts, opts.params)
    if opts.dry_run then return dry_report(g) end
    if opts.check_quota then
      local ok, err = check_quota(g, kinds)
      if not ok then return nil, err end
      g.report.quota_checked = true
    end
    execute({ g }, batch_bytes(opts), opts.progress, opts.on_batch)
    return g.report
  end

  local function check_client(self, name)
    if type(self) ~= "userdata" then
      raise("cdnkit: call " .. name .. " with a colon: client:" .. name .. "{ urls = {...} }")
    end
  end

  function methods.refresh(self, opts)
    check_client(self, "refresh")
    check_opts(opts)
    return run_one(self, refresh_kinds(opts), opts)
  end

  function methods.prefetch(self, opts)
    check_client(self, "prefetch")
    check_opts(opts)
    if opts.dirs ~= nil then raise("cdnkit: prefetch takes urls only") end
    local urls = dedupe(opts.urls, "urls")
    if opts.urls == nil then raise("cdnkit: prefetch needs urls") end
    return run_one(self, { { "prefetch", urls } }, opts)
  end
end

local multi_mt = {}
multi_mt.__index = multi_mt
M.multi_mt = multi_mt

-- one line per vendor (each report's own lines)
function multi_mt.__tostring(m)
  local out = {}
  for i, r in ipairs(m) do out[i] = tostring(r) end
  return table.concat(out, "\n")
end

--- cdnkit.refresh({ c1, c2, ... }, { urls =, dirs =, concurrency =, ... }):
-- the same purge on several vendors at once; returns { ok =, [i] = report }.
function M.refresh_all(clients, opts)
  if type(clients) ~= "table" or #clients == 0 then
    raise("cdnkit.refresh: a non-empty array of clients expected")
  end
  if #clients > 64 then raise("cdnkit.refresh: at most 64 clients at once") end
  check_opts(opts)
  local kinds = refresh_kinds(opts)
  local groups = {}
  for i, c in ipairs(clients) do
    if type(c) ~= "userdata" or not pcall(function() return c:_state() end) then
      raise("cdnkit.refresh: clients[" .. i .. "] is not a cdnkit client")
    end
    -- params per vendor: { aliyun = { Force = true }, qcloud = { ... } }
    local extra = nil
    if opts.params ~= nil then
      if type(opts.params) ~= "table" then raise("cdnkit.refresh: params must be a table") end
      for k in pairs(opts.params) do
        local known = false
        for _, v in ipairs(require("cdnkit").vendors()) do if v == k then known = true end end
        if k == "tencent" then known = true end -- cdnkit.tencent is cdnkit.qcloud
        if not known then
          raise("cdnkit.refresh: params are given per vendor ({ aliyun = {...}, qcloud = {...} }), " ..
            "got key '" .. tostring(k) .. "'")
        end
      end
      extra = opts.params[c:vendor()]
      if extra == nil and c:vendor() == "qcloud" then extra = opts.params.tencent end
    end
    groups[i] = plan(c, kinds, opts, extra)
  end
  if opts.dry_run then
    local out = { dry_run = true }
    for i, g in ipairs(groups) do out[i] = dry_report(g) end
    return out
  end
  if opts.check_quota then
    -- every vendor that has a quota API is asked before anything is sent;
    -- the others are purged unchecked (report.quota_checked = false)
    for _, g in ipairs(groups) do
      g.report.quota_checked = g.st.quota ~= nil
      if g.st.quota then
        local ok, err = check_quota(g, kinds)
        if not ok then return nil, err end
      end
    end
  end
  execute(groups, batch_bytes(opts), opts.progress, opts.on_batch)
  local out = setmetatable({ ok = true }, multi_mt)
  for i, g in ipairs(groups) do
    out[i] = g.report
    if not g.report.ok then out.ok = false end
  end
  return out
end

--- wait for every vendor's tasks; returns the summaries, and true when all complete
function multi_mt:wait(opts)
  local timeout = wait_opts(opts)
  local deadline = core.monotime() + timeout -- one deadline for every vendor
  local all, sums = true, {}
  for i, r in ipairs(self) do
    sums[i] = r:wait(opts, deadline)
    if not sums[i].complete then all = false end
  end
  -- one line per vendor
  return all, setmetatable(sums, { __tostring = function(t)
    local out = {}
    for i, sum in ipairs(t) do out[i] = tostring(self[i] and self[i].vendor) .. ": " .. tostring(sum) end
    return table.concat(out, "\n")
  end })
end

return M
