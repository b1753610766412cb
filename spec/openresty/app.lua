-- spec/openresty/app.lua: the handlers test_openresty.py drives.  One client
-- made at module level (in nginx's init phase) serves every request and
-- timer of the worker.
local cdnkit = require "cdnkit"
local cjson = require "cjson"

local M = {}

M.client = cdnkit.qcloud { endpoint = os.getenv("CDNKIT_QCLOUD_ENDPOINT"),
                           retry = { attempts = 3, base = 0.05, max = 0.2 } }
local results = ngx.shared.results

local function reply(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function err_table(err)
  return { code = err.code, message = err.message }
end

function M.at_start()
  local res, err = M.client:DescribePurgeQuota {}
  results:set("init_worker", res and "ok" or ("failed: " .. tostring(err)))
end

function M.call()
  local tag = ngx.var.arg_tag or "x"
  local res, err = M.client:PurgeUrlsCache { Urls = { "http://www.example.com/" .. tag } }
  local st = M.client:_state()
  reply { ok = res ~= nil, err = err and err_table(err), tag = tag, clock_offset = st.clock_offset }
end

function M.refresh()
  local n, c = tonumber(ngx.var.arg_n) or 3000, tonumber(ngx.var.arg_c) or 3
  local urls = {}
  for i = 1, n do urls[i] = ("http://www.example.com/f/%05d"):format(i) end
  local r = M.client:refresh { urls = urls, concurrency = c }
  local sum = ngx.var.arg_wait and r:wait { timeout = 20, interval = 0.2 } or nil
  reply { ok = r.ok, done = r.done, batches = r.batches, failed = #r.failed,
          complete = sum and sum.complete, first_error = r.failed[1] and err_table(r.failed[1].err) }
end

function M.timer()
  local tag = ngx.var.arg_tag or "t"
  local ok, terr = ngx.timer.at(0, function(premature)
    if premature then return end
    local res, err = M.client:PurgeUrlsCache { Urls = { "http://www.example.com/" .. tag } }
    local st = M.client:_state()
    results:set(tag, cjson.encode { ok = res ~= nil, err = err and err_table(err),
                                    state = tostring(st), clock_offset = st.clock_offset })
  end)
  reply { started = ok and true or false, err = terr }
end

function M.state()
  local st = M.client:_state()
  reply { state = tostring(st), clock_offset = st.clock_offset }
end

function M.result()
  reply { value = results:get(ngx.var.arg_key or "") }
end

-- transport = "ngx" given explicitly, and the answer's arrays
function M.explicit()
  local c = cdnkit.qcloud { endpoint = os.getenv("CDNKIT_QCLOUD_ENDPOINT"), transport = "ngx" }
  local res, err = c:DescribeDomains { Limit = 5 }
  reply { ok = res ~= nil, err = err and err_table(err),
          tasks_is_array = res and getmetatable(res.Domains) == cdnkit.array_mt or false }
end

-- the ngx transport on its own, against answers of every shape
function M.tx()
  local T = require "cdnkit.transport_ngx"
  local raw = "http://127.0.0.1:" .. ngx.var.arg_raw
  local out = {}
  local function try(name, req)
    req.timeout = req.timeout or 5
    req.connect_timeout = 2
    req.max_body = req.max_body or 1048576
    if req.idempotent == nil then req.idempotent = true end
    local status, headers, body = T.send(req)
    if status then
      out[name] = { status = status, len = #body, head = body:sub(1, 8), tail = body:sub(-3),
                    method = headers["x-method"], conn = headers["x-conn"] }
    else
      out[name] = { err = headers.code, message = headers.message, overflow = headers.overflow,
                    sent = headers.sent }
    end
  end
  try("chunked", { method = "GET", url = raw .. "/chunked" })
  try("close", { method = "GET", url = raw .. "/close" })
  try("big", { method = "GET", url = raw .. "/big", max_body = 100000 })
  try("nocontent", { method = "GET", url = raw .. "/nocontent" })
  try("post", { method = "POST", url = raw .. "/echo", body = "hello", headers = { ["Content-Type"] = "text/plain" } })
  -- keep-alive: two idempotent calls in a row share a connection; a
  -- non-idempotent one gets its own
  try("ka1", { method = "GET", url = raw .. "/echo" })
  try("ka2", { method = "GET", url = raw .. "/echo" })
  try("fresh", { method = "POST", url = raw .. "/echo", body = "x", idempotent = false })
  try("fresh2", { method = "POST", url = raw .. "/echo", body = "y", idempotent = false })
  try("timeout", { method = "GET", url = raw .. "/slow", timeout = 0.3 })
  try("refused", { method = "GET", url = "http://127.0.0.1:1/" })
  try("tls_ok", { method = "GET", url = "https://127.0.0.1:" .. ngx.var.arg_tls_ok .. "/" })
  try("tls_bad", { method = "GET", url = "https://127.0.0.1:" .. ngx.var.arg_tls_bad .. "/" })
  try("tls_noverify", { method = "GET", url = "https://127.0.0.1:" .. ngx.var.arg_tls_bad .. "/", verify_tls = false })
  try("proxy", { method = "GET", url = raw .. "/echo", proxy = "http://127.0.0.1:3128" })
  reply(out)
end

function M.in_log()
  local ok, e = pcall(M.client.PurgeUrlsCache, M.client, { Urls = { "http://www.example.com/log" } })
  results:set("log", ok and "sent" or tostring(e))
end

return M
