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
  reply { ok = r.ok, done = r.done, batches = r.batches, failed = #r.failed }
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

function M.in_log()
  local ok, e = pcall(M.client.PurgeUrlsCache, M.client, { Urls = { "http://www.example.com/log" } })
  results:set("log", ok and "sent" or tostring(e))
end

return M
