-- cdnkit.vendors.qcloud: protocol adapter for Tencent Cloud CDN.
--
-- Version 2018-06-06 (API 3.0, the default): service cdn at
-- cdn.tencentcloudapi.com, POST with a JSON body (or GET with the query
-- string), signed with TC3-HMAC-SHA256: CanonicalRequest = METHOD \n / \n
-- query \n content-type and host \n their names \n hex(sha256(payload)),
-- StringToSign = TC3-HMAC-SHA256 \n timestamp \n date/cdn/tc3_request \n
-- hex(sha256(CanonicalRequest)), key derived from the secret per UTC date and
-- service in C (src/sign.c tc3_hmac_sha256).  Envelope: HTTP 200 with
-- {"Response": {..., "RequestId"}}, failures with Response.Error{Code, Message}.
--
-- Version v2 (the seed document's API, cdn.api.qcloud.com/v2/index.php, shut
-- down by Tencent on 2022-11-30): scheme qcloud_v2 (in C): params minus
-- Signature, '_' -> '.' in names, sorted, raw values, METHOD + host + path +
-- '?' + joined, HMAC-SHA1 or HMAC-SHA256 as SignatureMethod says.  Envelope:
-- HTTP 200 with {code, message "(NNNN)text", codeDesc, data}.
--
-- The contract this file fulfils is in README.md in this folder.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local PATH = "/v2/index.php"
local V3 = "2018-06-06"

-- v2 actions and their API 3.0 successors (Tencent's v2 shut-down notice)
local MOVED_V3 = {
  RefreshCdnUrl = "PurgeUrlsCache", RefreshCdnDir = "PurgePathCache",
  CdnPusherV2 = "PushUrlsCache", CdnUrlPusher = "PushUrlsCache",
  GetCdnRefreshLog = "DescribePurgeTasks", GetPushLogs = "DescribePushTasks",
  GetCdnPushStatus = "DescribePushTasks", GetFlushQuota = "DescribePurgeQuota",
  DescribeCdnHosts = "DescribeDomains", GetHostInfoByHost = "DescribeDomains",
  GetHostInfoById = "DescribeDomains", AddCdnHost = "AddCdnDomain",
  DeleteCdnHost = "DeleteCdnDomain", OnlineHost = "StartCdnDomain", OfflineHost = "StopCdnDomain",
  UpdateCdnConfig = "UpdateDomainConfig", SetHttpsInfo = "UpdateDomainConfig",
  GetCdnLogList = "DescribeCdnDomainLogs", DescribeCdnHostInfo = "DescribeCdnData",
  GetCdnStatusCode = "DescribeCdnData", GetCdnOriginStat = "DescribeOriginData",
  GetCdnStatTop = "ListTopData", QueryCdnIp = "DescribeIpStatus", GetCdnIps = "DescribeIpStatus",
  GetCdnProvIspDetailStat = "DescribeDistrictIspData",
}

-- report:wait() on API 3.0: one query per task id (Status process | done | fail;
-- a push also "invalid": the origin answered 4xx/5xx)
-- A task has one row per URL (up to 1,000); the default page is 20 rows, so
-- ask for them all, and a task with more rows than the answer holds
-- (TotalCount) counts as still running.
local purge_tasks = {
  action = "DescribePurgeTasks", id_param = "TaskId", items = "PurgeLogs",
  field = "Status", done = { done = true }, failed = { fail = true },
  params = { Limit = 1000 }, total = "TotalCount",
}

local A = {
  name = "qcloud",
  order = 2,
  default_version = V3,
  versions = {
    [V3] = {
      api = "cdnkit.apis.qcloud_2018_06_06",
      endpoint = "https://cdn.tencentcloudapi.com",
      path = "/",
      scheme = "tc3_hmac_sha256",
      default_method = "POST",
      methods = { GET = true, POST = true },
      moved = MOVED_V3,
      task_status = {
        refresh_url = purge_tasks, refresh_dir = purge_tasks,
        prefetch = {
          action = "DescribePushTasks", id_param = "TaskId", items = "PushLogs",
          field = "Status", done = { done = true }, failed = { fail = true, invalid = true },
          params = { Limit = 1000 }, total = "TotalCount",
        },
      },
      -- check_quota: rows { Batch, Total, Available, Area } per area; the
      -- purge's Area (params) picks the row, else the smallest Available counts
      quota = {
        actions = { refresh_url = "DescribePurgeQuota", refresh_dir = "DescribePurgeQuota",
                    prefetch = "DescribePushQuota" },
        remain = { refresh_url = "UrlPurge", refresh_dir = "PathPurge", prefetch = "UrlPush" },
        row_field = "Available", area_param = "Area", area_field = "Area",
      },
    },
    v2 = {
      api = "cdnkit.apis.qcloud_v2",
      endpoint = "https://cdn.api.qcloud.com",
      path = PATH,
      scheme = "qcloud_v2",
      default_method = "POST",
      methods = { GET = true, POST = true },
    },
  },
  options = { secret_id = "string", secret_key = "string", sign_method = "string", region = "string",
              token = "string", language = "string", site = "string" },
  -- prepare()'s third argument may also pin these (service, version,
  -- payload and content_type reproduce TC3 vectors of other products)
  fixed = { region = true, sign_method = true, host = true, service = true, version = true,
            payload = true, content_type = true },
  -- seconds a Timestamp may be off the server's clock (v2: error 4500 beyond)
  clock_window = 7200,
}

-- Retryable: rate limiting and transient server states.  Daily quotas
-- (22044, 22046, 21000, 23101) are not: retrying cannot succeed today.
local RETRYABLE = {
  [4400] = true, [4500] = true, [6000] = true, [6200] = true,
  [9163] = true, [22063] = true,
}
local NOT_RETRYABLE_MODULE = { [22044] = true, [22046] = true, [21000] = true, [23101] = true }

-- credentials: option name and environment variable, key id first (data read by cdnkit.client)
A.credentials = {
  { "secret_id", "TENCENTCLOUD_SECRET_ID" },
  { "secret_key", "TENCENTCLOUD_SECRET_KEY" },
}
-- temporary (STS) credentials carry a session token: kept in the C client
-- with the secret, sent as X-TC-Token (3.0) or Token (v2)
A.token = { "token", "TENCENTCLOUD_SESSION_TOKEN" }

-- The Tencent Cloud CLI's own profiles (~/.tccli/<profile>.credential:
-- { secretId, secretKey, token? }; <profile>.configure may name the region),
-- read when nothing earlier in the chain gave credentials: the profile
-- TCCLI_PROFILE names, else "default".  Returns options, label | nil.
function A.vendor_profile()
  local home = os.getenv("HOME")
  local dir = os.getenv("TCCLI_CONFIG_DIR") or (home and home .. "/.tccli")
  if not dir then return nil end
  local name = os.getenv("TCCLI_PROFILE") or "default"
  local f = io.open(dir .. "/" .. name .. ".credential", "r")
  if not f then return nil end
  local d = core.json_decode(f:read("*a") or "")
  f:close()
  if type(d) ~= "table" or type(d.secretId) ~= "string" or d.secretId == "" or
     type(d.secretKey) ~= "string" or d.secretKey == "" then
    return nil
  end
  local o = { secret_id = d.secretId, secret_key = d.secretKey }
  if type(d.token) == "string" and d.token ~= "" then o.token = d.token end
  local cf = io.open(dir .. "/" .. name .. ".configure", "r")
  if cf then
    local c = core.json_decode(cf:read("*a") or "")
    cf:close()
    local sys = type(c) == "table" and (c._sys_param or c.sysParam)
    local region = type(c) == "table" and (type(sys) == "table" and sys.region or c.region)
    if type(region) == "string" and region ~= "" then o.region = region end
  end
  return o, "tccli:" .. name
end

-- the CVM instance's CAM role (cdnkit.role)
A.instance_role = {
  name = "Tencent CVM CAM role", endpoint = "http://metadata.tencentyun.com",
  path = "/latest/meta-data/cam/security-credentials/",
  key_id = "TmpSecretId", secret = "TmpSecretKey", token = "Token", expired_time = "ExpiredTime",
  key_field = "secret_id",
}

-- the endpoint a site or version asks for (the `endpoint` option wins):
-- site = "intl" is the international site's host (API 3.0)
function A.endpoint_of(opts, version)
  if opts.site == "intl" and version == V3 then return "https://cdn.intl.tencentcloudapi.com" end
end

function A.check_options(opts)
  local sm = opts.sign_method
  if sm ~= nil and sm ~= "HmacSHA1" and sm ~= "HmacSHA256" then
    raise("cdnkit.qcloud: option 'sign_method' must be \"HmacSHA1\" or \"HmacSHA256\"")
  end
  if sm ~= nil and (opts.version or V3) == V3 then
    raise("cdnkit.qcloud: option 'sign_method' is for version = \"v2\"; API 3.0 signs with " ..
      "TC3-HMAC-SHA256")
  end
  local lang = opts.language
  if lang ~= nil and lang ~= "zh-CN" and lang ~= "en-US" then
    raise("cdnkit.qcloud: option 'language' must be \"zh-CN\" or \"en-US\", got '" .. lang .. "'")
  end
  if opts.site ~= nil and opts.site ~= "intl" and opts.site ~= "china" then
    raise("cdnkit.qcloud: option 'site' must be \"china\" (cdn.tencentcloudapi.com, the default) or " ..
      "\"intl\" (cdn.intl.tencentcloudapi.com), got '" .. opts.site .. "'")
  end
  if opts.site == "intl" and (opts.version or V3) ~= V3 then
    raise("cdnkit.qcloud: option 'site' is for API 3.0")
  end
  for _, k in ipairs { "region", "token", "language" } do
    if opts[k] ~= nil and opts[k]:find("[%z\r\n]") then
      raise("cdnkit.qcloud: option '" .. k .. "' must not contain line breaks or NUL")
    end
  end
end

-- prepare()'s fixed values must be what the vendor accepts
function A.check_fixed(fixed)
  for _, k in ipairs { "timestamp", "nonce" } do
    local v = fixed[k]
    if v ~= nil and not tostring(v):match("^%d+$") then
      raise("cdnkit.qcloud: prepare: " .. k .. " must be a positive integer, got '" .. tostring(v) .. "'")
    end
  end
end

function A.init(st, opts, key_id)
  st.secret_id = key_id
  st.sign_method = opts.sign_method
  st.region = opts.region
  st.language = opts.language
  if st.version == V3 then
    -- TC3 signs the Host header as sent: the endpoint's authority (with a port)
    st.host = st.endpoint:match("^https?://([^/]+)")
  else
    -- the host as signed: no port; an IPv6 literal keeps its brackets
    st.host = st.endpoint:match("^https?://(%b[])") or st.endpoint:match("^https?://([^/:]+)")
  end
end

-- Tencent list form: name.0, name.1, ...
function A.list_form(name, items, p, out)
  for i, v in ipairs(items) do out[name .. "." .. (i - 1)] = v end
end

local HASH = { HmacSHA256 = "sha256" }

local sha256_hex = core.sha256_hex
local JSON = "application/json"
local FORM = "application/x-www-form-urlencoded"

-- GET on API 3.0: nested values flattened (Filters.0.Name=...), sorted,
-- RFC 3986 encoded
local function flatten(prefix, v, out)
  if type(v) == "table" then
    local n = #v
    if n > 0 or getmetatable(v) == core.array_mt then
      for i = 1, n do flatten(prefix .. "." .. (i - 1), v[i], out) end
    else
      for k, x in pairs(v) do flatten(prefix .. "." .. k, x, out) end
    end
  elseif type(v) == "boolean" then
    out[prefix] = v and "true" or "false"
  elseif type(v) == "number" then
    out[prefix] = validate.id_string(v)
  elseif v ~= core.null then
    out[prefix] = tostring(v)
  end
end

local function query_of(flat)
  local f = {}
  for k, v in pairs(flat) do flatten(k, v, f) end
  return transport.form_query(f)
end

-- API 3.0: TC3-HMAC-SHA256 over the JSON body (POST) or the query (GET)
local function build_v3(self, st, P, flat, fixed)
  local method = (fixed.method or P.http or st.method):upper()
  local version = fixed.version or flat.Version or st.version
  if flat.Version ~= nil then
    local f = {}
    for k, v in pairs(flat) do if k ~= "Version" then f[k] = v end end
    flat = f
  end
  local ts = fixed.timestamp and tonumber(fixed.timestamp) or math.floor(core.now() + st.clock_offset)
  -- the UTC date of the timestamp (the scope), formatted once a day
  local date = st.tc3_day
  if not date or ts < st.tc3_day0 or ts >= st.tc3_day0 + 86400 then
    date = os.date("!%Y-%m-%d", ts)
    st.tc3_day, st.tc3_day0 = date, ts - ts % 86400
  end
  local service = fixed.service or "cdn"
  local host = fixed.host or st.host
  local query, payload, ctype = "", "", FORM
  if method == "GET" then
    query = query_of(flat)
  else
    payload = fixed.payload or core.json_encode(flat)
    ctype = fixed.content_type or JSON
  end
  local hash = sha256_hex(payload)
  local canonical = method .. "\n/\n" .. query .. "\ncontent-type:" .. ctype .. "\nhost:" .. host ..
    "\n\ncontent-type;host\n" .. hash
  local scope = date .. "/" .. service .. "/tc3_request"
  local sts = "TC3-HMAC-SHA256\n" .. ts .. "\n" .. scope .. "\n" .. sha256_hex(canonical)
  local sig = st.sign(self, date, service, sts)
  local headers = {
    Host = host, ["Content-Type"] = ctype, ["User-Agent"] = st.user_agent,
    ["X-TC-Action"] = P.name, ["X-TC-Version"] = version, ["X-TC-Timestamp"] = tostring(ts),
    Authorization = "TC3-HMAC-SHA256 Credential=" .. st.secret_id .. "/" .. scope ..
      ", SignedHeaders=content-type;host, Signature=" .. sig,
  }
  local region = fixed.region or st.region
  if region then headers["X-TC-Region"] = region end
  local token = core.client_token(self)
  if token then headers["X-TC-Token"] = token end
  if st.language then headers["X-TC-Language"] = st.language end
  local url = method == "GET" and query ~= "" and (st.url_get .. query) or st.url
  local req = transport.request(st, method, url, headers, method ~= "GET" and payload or nil)
  local meta = { timestamp = ts }
  if fixed.explain then
    meta.explain = { canonical = canonical, string_to_sign = sts, signature = sig,
                     signed_headers = "content-type;host", key = "<secret_key>" }
  end
  return req, meta
end

local function build_v2(self, st, P, flat, fixed)
  local method = (fixed.method or P.http or st.method):upper()
  -- the common parameters in one constructor (sized once), then the action's
  local now = math.floor(core.now() + st.clock_offset)
  local params = {
    Action = P.name, SecretId = st.secret_id,
    Timestamp = tostring(fixed.timestamp or now),
    Nonce = tostring(fixed.nonce or core.nonce_int()),
  }
  for k, v in next, flat do params[k] = v end
  local region = fixed.region or st.region
  if region then params.Region = region end
  local sm = fixed.sign_method or st.sign_method
  if sm then params.SignatureMethod = sm end
  local token = core.client_token(self)
  if token then params.Token = token end
  -- the hash follows what is signed: SignatureMethod, however it was given
  local hash = HASH[params.SignatureMethod] or "sha1"
  local explain = fixed.explain
  local req, source, sig
  req, method, source, sig = transport.query_request(st, self, params, method,
    fixed.method, explain, fixed.host or st.host, PATH, hash)
  local meta = { timestamp = tonumber(params.Timestamp) }
  if explain then
    meta.explain = { string_to_sign = source, signature = sig, key = "<secret_key>" }
  end
  return req, meta
end

function A.build(self, st, P, flat, fixed)
  local ver = fixed.version or flat.Version
  if (ver == "v2" and st.version ~= "v2") or (ver == V3 and st.version == "v2") then
    -- v2 and 3.0 differ in host, path, envelope and signing: not one call's option
    raise("cdnkit.qcloud: version '" .. tostring(ver) .. "' needs a client of that version " ..
      "(cdnkit.qcloud{ version = \"" .. tostring(ver) .. "\" }); this one speaks " .. st.version)
  end
  if st.version == V3 then return build_v3(self, st, P, flat, fixed) end
  return build_v2(self, st, P, flat, fixed)
end

local function module_code(message, code)
  local m = type(message) == "string" and message:match("^%((%-?%d+)%)")
  if m then return tonumber(m) end
  return code
end

-- API 3.0 codes worth another attempt: rate limits (and their sub-codes),
-- internal errors, a service briefly away (the SDK retries the first kind)
local function v3_retryable(code)
  return code == "RequestLimitExceeded" or code:match("^RequestLimitExceeded%.") ~= nil or
    code == "InternalError" or code:match("^InternalError%.") ~= nil or
    code == "ServiceUnavailable" or code == "ResourceUnavailable.ServiceBusy"
end

local function parse_v3(st, action, status, headers, body)
  local ctype = headers["content-type"] or ""
  if status ~= 200 then
    return nil, {
      code = "http", http_status = status, retryable = status >= 500 or status == 429,
      message = errors.unexpected(status, ctype, body),
    }
  end
  local data, jerr = core.json_decode(body)
  local r = type(data) == "table" and data.Response
  if type(r) ~= "table" then
    return nil, {
      code = "json", http_status = status, retryable = false,
      message = "response is not a {\"Response\": {...}} object (" ..
        tostring(jerr or (type(data) == "table" and "no Response" or type(data))) .. "): " ..
        errors.excerpt(body),
    }
  end
  local rid = type(r.RequestId) == "string" and r.RequestId or nil
  if r.DeprecatedWarning ~= nil and st.trace then
    pcall(st.trace, { event = "deprecated", vendor = "qcloud", action = action,
                      warning = r.DeprecatedWarning, request_id = rid })
  end
  local e = r.Error
  if e == nil then return r end
  local code = type(e) == "table" and type(e.Code) == "string" and e.Code or "json"
  local err = {
    code = code, message = type(e) == "table" and type(e.Message) == "string" and e.Message or
      ("error without a code: " .. errors.excerpt(body)),
    http_status = status, request_id = rid, retryable = v3_retryable(code),
    deprecated_warning = r.DeprecatedWarning,
  }
  -- an internal error may come after the work was done
  if code == "InternalError" or code:match("^InternalError%.") then err.ambiguous = true end
  -- the timestamp was off by more than 5 minutes: the request never ran
  if code == "AuthFailure.SignatureExpire" then err.clock = true; err.ambiguous = false end
  -- today's quota is used up: the work can go tomorrow (cdnkit.queue waits)
  if code:match("ExceedDayLimit$") then err.over_quota = true end
  if code == "AuthFailure.SecretIdNotFound" or code == "AuthFailure.InvalidSecretId" then
    err.hint = "check secret_id"
  elseif code == "AuthFailure.SignatureFailure" then
    err.hint = "check secret_key (and that nothing between you and the vendor rewrites the request)"
  elseif code == "AuthFailure.TokenFailure" then
    err.hint = "the session token (option token) is wrong or expired"
  end
  -- instance-role credentials refused as expired: renewed once, the call
  -- resent (nothing ran)
  if st.role and (code == "AuthFailure.TokenFailure" or code == "AuthFailure.SecretIdNotFound") then
    err.reauth, err.ambiguous = true, false
  end
  return nil, err
end

function A.parse(st, action, status, headers, body, meta)
  if st.version == V3 then return parse_v3(st, action, status, headers, body) end
  local ctype = headers["content-type"] or ""
  if status ~= 200 then
    return nil, {
      code = "http", http_status = status,
      retryable = status >= 500 or status == 429,
      message = errors.unexpected(status, ctype, body),
    }
  end
  local data, jerr = core.json_decode(body)
  if type(data) ~= "table" then
    return nil, {
      code = "json", http_status = status, retryable = false,
      message = "response is not a JSON object (" .. tostring(jerr or type(data)) .. "): " ..
        errors.excerpt(body),
    }
  end
  local code = tonumber(data.code)
  if code == nil then
    return nil, { code = "json", http_status = status, retryable = false,
                  message = "response has no numeric 'code' field: " .. errors.excerpt(body) }
  end
  if code == 0 then return data end
  local message = type(data.message) == "string" and data.message or ""
  local mcode = module_code(message, code)
  local e = {
    code = mcode, vendor_code = code, message = message, code_desc = data.codeDesc,
    http_status = status,
    retryable = (RETRYABLE[mcode] or RETRYABLE[code]) and not NOT_RETRYABLE_MODULE[mcode] or false,
  }
  -- 4500 is "replayed or expired": a timestamp outside the window, or a
  -- nonce seen before (a transport's silent resend whose first copy may
  -- have run); client.lua judge_replay tells them apart with our clock
  if code == 4500 or mcode == 4500 then e.clock = true; e.replay = true end
  if code == 4100 then e.hint = "check secret_id and secret_key" end
  if NOT_RETRYABLE_MODULE[mcode] then e.over_quota = true end
  -- an internal error or maintenance answer may come after the work was done:
  -- never resend a non-idempotent action after one
  if code == 6000 or code == 6200 then e.ambiguous = true end
  return nil, e
end

-- does any URL of the batch hold a byte outside ASCII?
local function non_ascii(items)
  for _, u in ipairs(items) do if u:find("[\128-\255]") then return true end end
  return false
end

function A.batch_params(kind, items, extra, version)
  if version ~= V3 then
    local p = {}
    for k, v in pairs(extra or {}) do p[k] = v end
    if kind == "refresh_dir" then p.dirs = items; return "RefreshCdnDir", p end
    if kind == "prefetch" then p.urls = items; return "CdnUrlPusher", p end
    p.urls = items
    return "RefreshCdnUrl", p
  end
  local p = {}
  for k, v in pairs(extra or {}) do p[k] = v end
  -- URLs go as given; a batch with non-ASCII bytes asks the vendor to
  -- encode them (UrlEncode), unless the caller chose through params
  if p.UrlEncode == nil and non_ascii(items) then p.UrlEncode = true end
  if kind == "refresh_dir" then
    p.Paths = items
    p.FlushType = p.FlushType or "flush"
    return "PurgePathCache", p
  elseif kind == "prefetch" then
    p.Urls = items
    return "PushUrlsCache", p
  end
  p.FlushType = nil -- for directories only (the engine refuses it when no batch takes it)
  p.Urls = items
  return "PurgeUrlsCache", p
end

-- report:wait() polls these (data, not code): one query per task id.
-- GetCdnRefreshLog status: 1 done, 0 running, < 0 failed;
-- GetPushLogs status: init | queue | process | done | fail.
local refresh_log = {
  action = "GetCdnRefreshLog", id_param = "taskId", items = "data.logs",
  field = "status", done = { [1] = true }, failed_below = 0,
  -- every task of a time window in one query (rows name their task by id)
  list = { id = "id", since = { from = "startDate", to = "endDate" } },
}
A.task_status = {
  refresh_url = refresh_log,
  refresh_dir = refresh_log,
  prefetch = {
    action = "GetPushLogs", id_param = "taskId", items = "data.logs",
    field = "status", done = { done = true }, failed = { fail = true },
  },
}

function A.task_ids(kind, data)
  if data.TaskId ~= nil then return { validate.id_string(data.TaskId) } end -- API 3.0
  local d = type(data.data) == "table" and data.data or {}
  local t = {}
  if d.task_id ~= nil then t[1] = validate.id_string(d.task_id) end
  if type(d.task_ids) == "table" then
    for _, x in ipairs(d.task_ids) do
      if type(x) == "table" and x.task_id then t[#t + 1] = validate.id_string(x.task_id) end
    end
  end
  return t
end

return A
