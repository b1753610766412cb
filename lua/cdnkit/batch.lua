-- cdnkit.batch: client:refresh{...} and client:prefetch{...}.  Splits the
-- work to the vendor's per-call limits (declared as `batch` in the API data),
-- de-duplicates, sends up to `concurrency` batches at once through the C
-- core's libcurl multi interface, paced to the vendor's documented request
-- rate, retries retryable failures with fresh signatures, and returns a report
-- in which every input URL is either in a successful batch or in `failed`.
local core = require "cdnkit.core"
local client = require "cdnkit.client"
local validate = require "cdnkit.validate"
local errors = require "cdnkit.errors"
local retry = require "cdnkit.retry"

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

local function dedupe(list, what, level)
  if list == nil then return {} end
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" then error("cdnkit: " .. what .. " must be an array of strings", level) end
  local seen, out = {}, {}
  for i, v in ipairs(list) do
    if type(v) ~= "string" or v == "" then
      error("cdnkit: " .. what .. "[" .. i .. "] must be a non-empty string", level)
    end
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
  end
  return out
end

-- send a list of requests: libcurl multi, or the user's transport one by one
local function send_all(self, st, reqs, conc, rate)
  if not st.transport then return self:_perform_many(reqs, { concurrency = conc, rate = rate }) end
  local res = {}
  for i, req in ipairs(reqs) do
    local ok, status, headers, body = pcall(st.transport, req)
    if ok and status then
      res[i] = { status = status, headers = headers or {}, body = body or "" }
    else
      local e = ok and headers or status
      res[i] = { err = type(e) == "table" and e or { code = "http", message = tostring(e), sent = true } }
    end
  end
  return res
end

local function run(self, jobs_by_kind, opts, level)
  local st = self:_state()
  local A = st.adapter
  local conc = opts.concurrency or 4
  if type(conc) ~= "number" or conc < 1 or conc > 256 or conc ~= math.floor(conc) then
    error("cdnkit: concurrency must be an integer from 1 to 256", level)
  end
  local rate = opts.rate
  if rate == nil then rate = st.api.limits and st.api.limits.per_second end
  if rate ~= nil and rate ~= false and (type(rate) ~= "number" or rate <= 0) then
    error("cdnkit: rate must be a positive number of requests per second, or false", level)
  end
  local policy = opts.retry ~= nil and retry.policy(opts.retry) or st.retry

  -- build and validate every batch first: a usage mistake sends nothing
  local jobs = {}
  for _, kj in ipairs(jobs_by_kind) do
    local kind, items = kj[1], kj[2]
    if #items > 0 then
      local a = find_batch(st.api, kind)
      if not a then
        error("cdnkit." .. A.name .. ": the vendor has no " .. kind:gsub("_", " ") .. " API", level)
      end
      local max = a.batch.max
      if kind == "refresh_dir" and a.batch.dir_max then max = a.batch.dir_max end
      local size = opts.batch_size or max
      if type(size) ~= "number" or size < 1 or size ~= math.floor(size) then
        error("cdnkit: batch_size must be a positive integer", level)
      end
      if size > max then size = max end
      for i = 1, #items, size do
        local chunk = {}
        for j = i, math.min(i + size - 1, #items) do chunk[#chunk + 1] = items[j] end
        local action, params = A.batch_params(kind, chunk)
        local ad = st.api_index[action]
        local flat, msg = validate.check(st.api, ad, params, A.list_form)
        if not flat then error(msg, level) end
        jobs[#jobs + 1] = { kind = kind, urls = chunk, action = action, flat = flat,
                            idempotent = ad.idempotent, attempts = 0 }
      end
    end
  end

  local report = { ok = true, batches = #jobs, done = 0, failed = {}, task_ids = {}, results = {} }
  local pending = jobs
  local t0 = core.monotime()
  local round = 0
  while #pending > 0 do
    round = round + 1
    local reqs = {}
    for i, j in ipairs(pending) do
      j.attempts = j.attempts + 1
      j.req = A.build(self, st, j.action, j.flat, {})
      reqs[i] = j.req
    end
    local results = send_all(self, st, reqs, conc, rate ~= false and rate or nil)
    local again, wait = {}, 0
    local clock_fixed = false
    for i, j in ipairs(pending) do
      local r = results[i]
      local data, err
      if r.err then
        err = errors.new(A.name, j.action, {
          code = r.err.code or "http", message = r.err.message or "transport error",
          sent = r.err.sent,
          retryable = r.err.code == "connect" or r.err.code == "timeout" or r.err.code == "http",
        })
        err.ambiguous = r.err.code ~= "connect" and r.err.sent ~= false
      else
        local e
        data, e = A.parse(st, j.action, r.status, r.headers or {}, r.body or "", j.req)
        if e then
          err = errors.new(A.name, j.action, e)
          if err.ambiguous == nil then err.ambiguous = r.status >= 500 end
          if err.clock and not clock_fixed then
            local d = r.headers and r.headers["date"]
            local server = d and core.parse_http_date(d)
            if server then
              st.clock_offset = server - core.now()
              clock_fixed = true
            end
          end
        end
      end
      if data ~= nil then
        report.done = report.done + #j.urls
        local ids = A.task_ids(j.kind, data)
        for _, id in ipairs(ids) do report.task_ids[#report.task_ids + 1] = id end
        report.results[#report.results + 1] = { kind = j.kind, urls = j.urls, task_ids = ids }
      else
        err.attempts = j.attempts
        if retry.should_retry(policy, err, j.attempts, j.idempotent, t0) then
          again[#again + 1] = j
          local w = retry.backoff(policy, j.attempts)
          if w > wait then wait = w end
        else
          report.ok = false
          report.failed[#report.failed + 1] = { kind = j.kind, urls = j.urls, err = err }
        end
      end
    end
    pending = again
    if #pending > 0 and wait > 0 then st.sleep(wait) end
  end
  report.rounds = round
  return report
end

local function check_opts(opts, level)
  if type(opts) ~= "table" then error("cdnkit: options table expected", level) end
end

function M.install(methods, A)
  function methods.refresh(self, opts)
    check_opts(opts, 2)
    local urls = dedupe(opts.urls, "urls", 2)
    local dirs = dedupe(opts.dirs, "dirs", 2)
    if #urls == 0 and #dirs == 0 then error("cdnkit: refresh needs urls or dirs", 2) end
    return run(self, { { "refresh_url", urls }, { "refresh_dir", dirs } }, opts, 3)
  end

  function methods.prefetch(self, opts)
    check_opts(opts, 2)
    local urls = dedupe(opts.urls, "urls", 2)
    if #urls == 0 then error("cdnkit: prefetch needs urls", 2) end
    return run(self, { { "prefetch", urls } }, opts, 3)
  end
end

return M
