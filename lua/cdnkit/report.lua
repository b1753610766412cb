-- cdnkit.report: purge reports on disk.  `cdnkit <vendor> refresh --save FILE`
-- writes one; `cdnkit wait FILE` (or cdnkit.load_report(path) in a script,
-- later or in another process) waits on it.
--
-- The file is JSON: { format = "cdnkit-report/1", vendor, version,
-- endpoint (when not the vendor's default), started, ok, done, batches,
-- task_ids, results = { { kind, urls, task_ids, params, untracked } },
-- failed = { { kind, urls, err = { code, message, http_status, retryable,
-- ambiguous, request_id } } } }.  No credentials are in it.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise

local M = {}

local FORMAT = "cdnkit-report/1"

local function arr(t) return setmetatable(t or {}, core.array_mt) end

--- A report as plain data (what the file holds).
function M.to_data(r)
  local st = r.client and r.client:_state()
  local results, failed = arr(), arr()
  for i, x in ipairs(r.results or {}) do
    results[i] = { kind = x.kind, urls = arr(x.urls), task_ids = arr(x.task_ids), params = x.params,
                   untracked = x.untracked }
  end
  for i, f in ipairs(r.failed or {}) do
    local e = f.err or {}
    failed[i] = { kind = f.kind, urls = arr(f.urls), err = { code = e.code, message = e.message,
      http_status = e.http_status, retryable = e.retryable, ambiguous = e.ambiguous, request_id = e.request_id } }
  end
  local endpoint
  if st and st.endpoint then
    local A = st.adapter
    local V = require("cdnkit.adapter").version(A, st.version)
    if st.endpoint ~= V.endpoint then endpoint = st.endpoint end
  end
  return { format = FORMAT, vendor = r.vendor, version = st and st.version, endpoint = endpoint,
           started = r.started, ok = r.ok, done = r.done, batches = r.batches, task_ids = arr(r.task_ids),
           results = results, failed = failed }
end

--- Write report `r` to `path` (through a temporary file and a rename, so a
-- reader never sees half of it).
function M.save(r, path)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then raise("cdnkit: cannot write " .. tmp .. ": " .. tostring(err)) end
  f:write(core.json_encode(M.to_data(r)), "\n")
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then raise("cdnkit: cannot write " .. path .. ": " .. tostring(rerr)) end
  return true
end

--- A report read back from `path`, ready for :wait{}.  `client` is the
-- client to ask (it must be of the report's vendor); without one, a client
-- of the saved vendor, version and endpoint is made from the environment
-- or the profile file.
function M.load(path, client)
  if type(path) ~= "string" then raise("cdnkit.load_report: a file path expected") end
  local f, err = io.open(path, "r")
  if not f then raise("cdnkit.load_report: cannot read " .. path .. ": " .. tostring(err)) end
  local text = f:read("*a")
  f:close()
  local d = core.json_decode(text)
  if type(d) ~= "table" or d.format ~= FORMAT or type(d.vendor) ~= "string" then
    raise("cdnkit.load_report: " .. path .. " is not a report saved by cdnkit (format " .. FORMAT .. ")")
  end
  local cdnkit = require "cdnkit"
  if client == nil then
    client = cdnkit[d.vendor] { version = d.version, endpoint = d.endpoint }
  elseif type(client) ~= "userdata" or client:vendor() ~= d.vendor then
    raise("cdnkit.load_report: the report is " .. d.vendor .. "'s; give a " .. d.vendor .. " client")
  end
  local results = {}
  for i, x in ipairs(d.results or {}) do
    local ids = {}
    for k, id in ipairs(x.task_ids or {}) do ids[k] = tostring(id) end
    results[i] = { kind = x.kind, urls = x.urls or {}, task_ids = ids, params = x.params,
                   untracked = x.untracked ~= core.null and x.untracked or nil }
  end
  local failed = {}
  for i, x in ipairs(d.failed or {}) do
    failed[i] = { kind = x.kind, urls = x.urls or {}, err = require("cdnkit.errors").new(d.vendor, x.kind,
      type(x.err) == "table" and x.err or {}) }
  end
  local ids = {}
  for k, id in ipairs(d.task_ids or {}) do ids[k] = tostring(id) end
  local r = { vendor = d.vendor, client = client, ok = d.ok == true, done = tonumber(d.done) or 0,
              batches = tonumber(d.batches) or #results, failed = failed, task_ids = ids, results = results,
              started = tonumber(d.started) or core.now(), loaded_from = path }
  return setmetatable(r, require("cdnkit.batch").report_mt)
end

return M
