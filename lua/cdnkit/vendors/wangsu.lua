-- cdnkit.vendors.wangsu: protocol adapter for Wangsu / ChinaNetCenter
-- (CDNetworks internationally): its OpenAPI of report, purge and prefetch
-- APIs, each at its own URI (the API data's `path`), JSON bodies.
--
-- Signing, AK/SK "CNC-HMAC-SHA256" (the default): CanonicalRequest =
-- METHOD \n PATH \n QUERY \n content-type:<value>\n host:<value>\n \n
-- content-type;host \n hex(sha256(payload)), header values lower-cased, QUERY
-- empty for a POST and the URL-decoded query otherwise, the payload hashed for
-- POST/PUT only; StringToSign = CNC-HMAC-SHA256 \n timestamp \n
-- hex(sha256(CanonicalRequest)); hex HMAC-SHA256 keyed with the secret key
-- (in C: src/sign.c cnc_hmac_sha256); headers x-cnc-auth-method: AKSK,
-- x-cnc-accessKey, x-cnc-timestamp, Authorization.
--
-- Legacy "Basic" (username + api_key, for accounts that still use it): a
-- Date header, password = base64(HMAC-SHA1(api_key, Date)) (in C:
-- wangsu_basic), Authorization: Basic base64(username:password).
--
-- Answers: report APIs answer HTTP 200 with their own shapes ({result},
-- {code, message, data}, {flow-summary, flow-data}); purge/prefetch answer
-- {Code|code, Message|message, itemId}, Code 1 success, 0 failure; errors
-- are HTTP 4xx/5xx with a JSON body; x-cnc-request-id names the request.
-- The contract this file fulfils is in README.md in this folder.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local JSON = "application/json"

-- report:wait(): one query per purge/prefetch item, page by page
local function item_query(action)
  return {
    action = action, id_param = "itemId", items = "resultDetail", field = "status",
    done = { success = true }, failed = { failure = true },
    pages = { page = "pageNo", size = "pageSize", size_max = 500, total = "count" },
  }
end

local A = {
  name = "wangsu",
  order = 3,
  default_version = "v1",
  versions = {
    v1 = {
      api = "cdnkit.apis.wangsu_v1",
      endpoint = "https://open.chinanetcenter.com",
      path = "/", -- each action has its own URI (the API data's `path`)
      scheme = "cnc_hmac_sha256",
      default_method = "POST",
      methods = { GET = true, POST = true },
    },
  },
  options = { access_key = "string", secret_key = "string", username = "string", api_key = "string",
              language = "string" },
  -- prepare()'s third argument may also pin the exact body (to reproduce a
  -- vector whose JSON was written by another encoder) and the host signed
  fixed = { payload = true, host = true, date = true },
  task_status = {
    refresh_url = item_query("PurgeItemIdQuery"),
    refresh_dir = item_query("PurgeItemIdQuery"),
    prefetch = item_query("FetchItemIdQuery"),
  },
  quota = {
    actions = { refresh_url = "PurgeQuota", refresh_dir = "PurgeQuota", prefetch = "PrefetchQuota" },
    remain = { refresh_url = "remainingUrlQuota", refresh_dir = "remainingDirQuota",
               prefetch = "remainingPrefetchQuota" },
  },
}

A.credentials = {
  { "access_key", "WANGSU_ACCESS_KEY" },
  { "secret_key", "WANGSU_SECRET_KEY" },
}
-- the legacy scheme's credentials, used when these options are given
A.credentials_alt = {
  { "username", "WANGSU_USERNAME" },
  { "api_key", "WANGSU_API_KEY" },
}

function A.check_options(opts)
  if (opts.username ~= nil or opts.api_key ~= nil) and (opts.access_key ~= nil or opts.secret_key ~= nil) then
    raise("cdnkit.wangsu: give access_key and secret_key (AK/SK), or username and api_key " ..
      "(the legacy scheme), not both")
  end
  local lang = opts.language
  if lang ~= nil and lang ~= "zh-CN" and lang ~= "en-US" then
    raise("cdnkit.wangsu: option 'language' must be \"zh-CN\" or \"en-US\", got '" .. lang .. "'")
  end
end

function A.check_fixed(fixed)
  if fixed.timestamp ~= nil and not tostring(fixed.timestamp):match("^%d+$") then
    raise("cdnkit.wangsu: prepare: timestamp must be unix seconds, got '" .. tostring(fixed.timestamp) .. "'")
  end
end

function A.init(st, opts, key_id)
  st.key_id = key_id
  st.auth = st.credentials_alt and "basic" or "aksk"
  if st.auth == "basic" then st.sign = core.signers.wangsu_basic end
  st.language = opts.language
  -- the Host header as signed (lower-cased) and sent: the endpoint's authority
  st.host = st.endpoint:match("^https?://([^/]+)")
end

-- JSON arrays on the wire (the API is JSON throughout)
function A.list_form(name, items, p, out)
  out[name] = setmetatable(items, core.array_mt)
end

local pct, sha256_hex, concat, sort = core.pct_encode, core.sha256_hex, table.concat, table.sort

-- RFC 1123 date in GMT, spelled out (os.date's %a/%b follow the C locale)
local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local function http_date(t)
  local d = os.date("!*t", math.floor(t))
  return ("%s, %02d %s %04d %02d:%02d:%02d GMT"):format(DAYS[d.wday], d.day, MONTHS[d.month], d.year,
    d.hour, d.min, d.sec)
end

-- the query parameters: sent percent-encoded, signed decoded, one order
local function query_of(P, flat)
  local q = P.query
  if not q then return "", "", flat end
  local keys, body = {}, {}
  for k, v in pairs(flat) do
    if q[k] then keys[#keys + 1] = k else body[k] = v end
  end
  sort(keys)
  local sent, signed = {}, {}
  for i, k in ipairs(keys) do
    local v = flat[k]
    v = type(v) == "number" and validate.id_string(v) or tostring(v)
    sent[i] = pct(k) .. "=" .. pct(v)
    signed[i] = k .. "=" .. v
  end
  return concat(sent, "&"), concat(signed, "&"), body
end

function A.build(self, st, P, flat, fixed)
  local path = P.path or (P.action and P.action.path)
  if not path then
    raise("cdnkit.wangsu: " .. tostring(P.name) .. " has no URI in the API data; Wangsu's APIs " ..
      "each have their own, so call() works only for declared actions")
  end
  local method = (fixed.method or P.http or st.method):upper()
  local sent_q, signed_q, body = query_of(P, flat)
  local payload = ""
  if method == "POST" or method == "PUT" then payload = fixed.payload or core.json_encode(body) end
  local url = st.endpoint .. path .. (sent_q ~= "" and ("?" .. sent_q) or "")
  local host = fixed.host or st.host
  local headers = { Host = host, Accept = JSON, ["Content-Type"] = JSON, ["User-Agent"] = st.user_agent }
  if st.language then headers["Accept-Language"] = st.language end
  local now = core.now() + st.clock_offset
  local meta = { timestamp = now }
  if st.auth == "basic" then
    local date = fixed.date or http_date(now)
    local password = st.sign(self, date)
    headers.Date = date
    headers.Authorization = "Basic " .. core.b64encode(st.key_id .. ":" .. password)
    if fixed.explain then
      meta.explain = { string_to_sign = date, signature = password, key = "<api_key>" }
    end
  else
    local ts = fixed.timestamp and tostring(fixed.timestamp) or tostring(math.floor(now))
    local canonical = concat {
      method, "\n", path, "\n", method == "POST" and "" or signed_q, "\n",
      "content-type:", JSON, "\nhost:", host:lower(), "\n\ncontent-type;host\n", sha256_hex(payload),
    }
    local sts = "CNC-HMAC-SHA256\n" .. ts .. "\n" .. sha256_hex(canonical)
    local sig = st.sign(self, sts)
    headers["x-cnc-auth-method"] = "AKSK"
    headers["x-cnc-accessKey"] = st.key_id
    headers["x-cnc-timestamp"] = ts
    headers.Authorization = "CNC-HMAC-SHA256 Credential=" .. st.key_id ..
      ", SignedHeaders=content-type;host, Signature=" .. sig
    meta.timestamp = tonumber(ts)
    if fixed.explain then
      meta.explain = { canonical = canonical, string_to_sign = sts, signature = sig,
                       signed_headers = "content-type;host", key = "<secret_key>" }
    end
  end
  local req = transport.request(st, method, url, headers, (method == "POST" or method == "PUT") and payload or nil)
  return req, meta
end

-- a field of a JSON object, its name in any case (Code / code)
local function field(t, name)
  local v = t[name]
  if v ~= nil then return v end
  local low = name:lower()
  for k, x in pairs(t) do
    if type(k) == "string" and k:lower() == low then return x end
  end
end

local QUOTA = { PurgeQuota = true, PrefetchQuota = true }

local RETRYABLE_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

function A.parse(st, action, status, headers, body, meta)
  local ctype = headers["content-type"] or ""
  local rid = headers["x-cnc-request-id"]
  local data, jerr = core.json_decode(body)
  if status < 200 or status >= 300 then
    local code = type(data) == "table" and field(data, "code")
    local msg = type(data) == "table" and field(data, "message")
    local e = {
      code = code ~= nil and code ~= core.null and tostring(code) or "http", http_status = status,
      message = type(msg) == "string" and msg or errors.unexpected(status, ctype, body),
      request_id = rid, retryable = RETRYABLE_STATUS[status] or false, ambiguous = status >= 500,
      hint = (status == 401 or status == 403) and "check access_key and secret_key (or username and api_key)" or nil,
    }
    -- a timestamp (or Date) the server finds too old: nothing ran; the
    -- engine signs again once with the server's clock
    if status == 401 and (e.code:find("[Ee]xpire") or e.code:find("[Tt]imestamp")) then
      e.clock, e.ambiguous, e.hint = true, false, nil
    end
    return nil, e
  end
  if type(data) ~= "table" then
    return nil, {
      code = "json", http_status = status, retryable = false, request_id = rid,
      message = "response is not a JSON object (" .. tostring(jerr or type(data)) .. "): " .. errors.excerpt(body),
    }
  end
  -- purge and prefetch answers: Code 1 is success, 0 failure.  The quota
  -- endpoints answer a lower-case code the SDKs document the other way
  -- round: 0 success, 1 failure.
  local a = st.api_index[action]
  if a and a.path and a.path:match("^/ccm/") then
    local code = tonumber(field(data, "code"))
    local ok
    if QUOTA[action] then ok = code == 0 or code == nil else ok = code == 1 end
    if not ok then
      local msg = field(data, "message")
      return nil, {
        code = code ~= nil and tostring(code) or "json", http_status = status, request_id = rid,
        message = type(msg) == "string" and msg or ("no success code in the answer: " .. errors.excerpt(body)),
        retryable = false,
      }
    end
  end
  return data
end

-- batching: URLs and directories each in calls of at most 500
-- (urls + dirs <= 500 per call); the user's params (urlAction, dirAction,
-- isRange) go with every call
function A.batch_params(kind, items, extra)
  local p = {}
  for k, v in pairs(extra or {}) do p[k] = v end
  if kind == "prefetch" then
    p.urls = items
    return "FetchItemIdReceiver", p
  elseif kind == "refresh_dir" then
    p.dirs = items
    p.urlAction = nil
    return "PurgeItemIdReceiver", p
  end
  p.urls = items
  p.dirAction = nil
  return "PurgeItemIdReceiver", p
end

function A.task_ids(kind, data)
  local id = field(data, "itemId")
  if id ~= nil and id ~= core.null and id ~= "" then return { validate.id_string(id) } end
  return {}
end

return A
