-- cdnkit.vendors.aliyun: protocol adapter for Alibaba Cloud CDN, RPC API.
--
-- Version 2018-05-10 (the default, today's API) signs with ACS3-HMAC-SHA256
-- ("signature V3", the official SDKs' default): the canonical request
-- METHOD \n / \n sorted RFC 3986 query \n signed headers \n their names \n
-- hex(sha256(body)), StringToSign = "ACS3-HMAC-SHA256\n" .. hex(sha256(it)),
-- HMAC-SHA256 keyed with the secret (in C: src/sign.c acs3_hmac_sha256),
-- sent in an Authorization header with x-acs-action, x-acs-version,
-- x-acs-date, x-acs-signature-nonce and x-acs-content-sha256.  Each action's
-- parameters go in the query string, except those the API data marks `body`
-- (a form body).  `signature = "v2"` signs the same request the older way.
--
-- Version 2014-11-11 (the seed document's API, retired by the vendor in
-- September 2023) and signature V2: scheme aliyun_rpc_v2 (in C): percent-encode
-- and sort the parameters, StringToSign = METHOD&%2F&pct(query), HMAC-SHA1
-- with key secret.."&", sent as the Signature parameter.
--
-- Errors (both): HTTP 4xx/5xx with {RequestId, HostId, Code, Message}.  The
-- contract this file fulfils is in README.md in this folder.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local V2018, V2014 = "2018-05-10", "2014-11-11"

-- 2014-11-11 actions that 2018-05-10 renamed or replaced (the vendor's
-- announcement of the 2014 API's retirement); `false`: no successor
local CONFIG = "BatchSetCdnDomainConfig (DescribeCdnDomainConfigs reads, DeleteSpecificConfig removes)"
local MOVED_2018 = {
  DescribeDomainFlowData = "DescribeDomainTrafficData",
  DescribeDomainSrcFlowData = "DescribeDomainSrcTrafficData",
  DescribeDomainConfigs = "DescribeCdnDomainConfigs",
  DescribeUserCustomLogConfig = "ListUserCustomLogConfig",
  SetDomainServerCertificate = "SetCdnDomainSSLCertificate",
  DeleteCacheExpiredConfig = "DeleteSpecificConfig",
  DeleteHttpHeaderConfig = "DeleteSpecificConfig",
  ModifyFileCacheExpiredConfig = CONFIG, ModifyHttpHeaderConfig = CONFIG,
  ModifyPathCacheExpiredConfig = CONFIG, SetErrorPageConfig = CONFIG,
  SetFileCacheExpiredConfig = CONFIG, SetForceRedirectConfig = CONFIG,
  SetHttpHeaderConfig = CONFIG, SetIgnoreQueryStringConfig = CONFIG,
  SetIpBlackListConfig = CONFIG, SetOptimizeConfig = CONFIG, SetPageCompressConfig = CONFIG,
  SetPathCacheExpiredConfig = CONFIG, SetRangeConfig = CONFIG, SetRefererConfig = CONFIG,
  SetReqAuthConfig = CONFIG, SetSourceHostConfig = CONFIG, SetVideoSeekConfig = CONFIG,
  DescribeDomainFileSizeProportionData = false, DescribeDomainSlowRatio = false,
  SetDynamicConfig = false, ModifyUserCustomLogConfig = false,
  ModifyDomainCustomLogConfig = false,
}

local A = {
  name = "aliyun",
  order = 1,
  default_version = V2018,
  versions = {
    [V2018] = {
      api = "cdnkit.apis.aliyun_2018_05_10",
      endpoint = "https://cdn.aliyuncs.com",
      path = "/",
      scheme = "acs3_hmac_sha256",
      default_method = "POST",
      methods = { GET = true, POST = true },
      moved = MOVED_2018,
      -- report:wait(): DescribeRefreshTaskById (30/s), ten task ids a query
      task_status = {
        default = {
          action = "DescribeRefreshTaskById", id_param = "TaskId", items = "Tasks",
          field = "Status", done = { Complete = true }, failed = { Failed = true },
          ids_max = 10, row_id = "TaskId",
        },
      },
    },
    [V2014] = {
      api = "cdnkit.apis.aliyun_2014_11_11",
      endpoint = "https://cdn.aliyuncs.com",
      path = "/",
      scheme = "aliyun_rpc_v2",
      default_method = "GET",
      methods = { GET = true, POST = true },
    },
  },
  options = { access_key_id = "string", access_key_secret = "string", signature = "string",
              security_token = "string", region = "string" },
  -- prepare()'s third argument may also pin the version signed (with call =
  -- true, to reproduce a vector of another product's API)
  fixed = { version = true },
}

-- the transient codes Alibaba documents for its RPC API: retry with a fresh nonce
local RETRYABLE = {
  Throttling = true, ["Throttling.User"] = true, ["Throttling.Api"] = true,
  InternalError = true, ServiceUnAvailable = true, ServiceUnavailable = true,
  SignatureNonceUsed = true, ["InvalidTimeStamp.Expired"] = true,
}

-- credentials: option name and environment variable, key id first (data read by cdnkit.client)
A.credentials = {
  { "access_key_id", "ALIBABA_CLOUD_ACCESS_KEY_ID" },
  { "access_key_secret", "ALIBABA_CLOUD_ACCESS_KEY_SECRET" },
}
-- temporary (STS) credentials carry a security token: kept in the C client
-- with the secret, sent as x-acs-security-token (V3, signed) or
-- SecurityToken (V2, signed)
A.token = { "security_token", "ALIBABA_CLOUD_SECURITY_TOKEN" }

-- The Alibaba Cloud CLI's own profiles (~/.aliyun/config.json: { current,
-- profiles = { { name, mode, access_key_id, access_key_secret, sts_token,
-- region_id } } }), read when nothing earlier in the chain gave credentials:
-- the profile named (ALIBABA_CLOUD_PROFILE, else the file's `current`), in
-- mode AK or StsToken.  Returns options, label | nil.
function A.vendor_profile()
  local home = os.getenv("HOME")
  local path = os.getenv("ALIBABA_CLOUD_CONFIG_FILE") or (home and home .. "/.aliyun/config.json")
  local f = path and io.open(path, "r")
  if not f then return nil end
  local d = core.json_decode(f:read("*a") or "")
  f:close()
  if type(d) ~= "table" or type(d.profiles) ~= "table" then return nil end
  local want = os.getenv("ALIBABA_CLOUD_PROFILE") or d.current or "default"
  for _, p in ipairs(d.profiles) do
    if type(p) == "table" and p.name == want and (p.mode == "AK" or p.mode == "StsToken") and
       type(p.access_key_id) == "string" and p.access_key_id ~= "" and
       type(p.access_key_secret) == "string" and p.access_key_secret ~= "" then
      local o = { access_key_id = p.access_key_id, access_key_secret = p.access_key_secret }
      if p.mode == "StsToken" and type(p.sts_token) == "string" and p.sts_token ~= "" then
        o.security_token = p.sts_token
      end
      if type(p.region_id) == "string" and p.region_id ~= "" then o.region = p.region_id end
      return o, "aliyun-cli:" .. want
    end
  end
end

-- the ECS instance's RAM role (cdnkit.role), hardened mode first
A.instance_role = {
  name = "Alibaba ECS RAM role", endpoint = "http://100.100.100.200",
  path = "/latest/meta-data/ram/security-credentials/",
  token_path = "/latest/api/token", token_header = "X-aliyun-ecs-metadata-token",
  ttl_header = "X-aliyun-ecs-metadata-token-ttl-seconds",
  key_id = "AccessKeyId", secret = "AccessKeySecret", token = "SecurityToken", expiration = "Expiration",
  key_field = "key_id",
}

-- the endpoint a region asks for (the `endpoint` option wins), as the
-- official SDK maps it: the Asia-Pacific, Europe, America and Middle East
-- regions to cdn.ap-southeast-1.aliyuncs.com, the others to cdn.aliyuncs.com
function A.endpoint_of(opts)
  local r = opts.region
  if r and (r:match("^ap%-") or r:match("^eu%-") or r:match("^us%-") or r:match("^me%-")) then
    return "https://cdn.ap-southeast-1.aliyuncs.com"
  end
end

-- prepare()'s fixed values must be what the vendor accepts
function A.check_fixed(fixed)
  if fixed.timestamp ~= nil and not validate.FORMATS.iso8601[2](tostring(fixed.timestamp)) then
    raise("cdnkit.aliyun: prepare: timestamp must be YYYY-MM-DDThh:mm:ssZ (UTC), got '" ..
      tostring(fixed.timestamp) .. "'")
  end
end

function A.check_options(opts)
  local sig = opts.signature
  if sig ~= nil and sig ~= "v3" and sig ~= "v2" then
    raise("cdnkit.aliyun: option 'signature' must be \"v3\" (ACS3-HMAC-SHA256) or \"v2\" " ..
      "(HMAC-SHA1), got '" .. sig .. "'")
  end
  if opts.method ~= nil and (opts.version or V2018) ~= V2014 then
    raise("cdnkit.aliyun: option 'method' is for version = \"2014-11-11\"; API 2018-05-10 sends each " ..
      "action with the method the vendor's SDK declares (client:help(action).method)")
  end
  if sig == "v3" and opts.version == V2014 then
    raise("cdnkit.aliyun: option 'signature': API 2014-11-11 is signed with \"v2\" only")
  end
  if opts.security_token ~= nil and opts.security_token:find("[%z\r\n]") then
    raise("cdnkit.aliyun: option 'security_token' must not contain line breaks or NUL")
  end
  if opts.region ~= nil and not opts.region:match("^[%l%d%-]+$") then
    raise("cdnkit.aliyun: option 'region' must be a region id such as cn-hangzhou or ap-southeast-1, got '" ..
      opts.region .. "'")
  end
end

function A.init(st, opts, key_id)
  st.key_id = key_id
  st.signature = st.version == V2014 and "v2" or (opts.signature or "v3")
  if st.signature == "v2" then st.sign = core.signers.aliyun_rpc_v2 end
  -- query-signed requests (2014-11-11, also through call() on a 2018 client)
  st.query_sign = core.signers.aliyun_rpc_v2
  -- the Host header as signed and sent (V3): the endpoint's authority
  st.host = st.endpoint:match("^https?://([^/]+)")
end

-- Alibaba joins list parameters with the declared separator; a list
-- declared without one is the RPC repeated form Name.1, Name.2, ...
function A.list_form(name, items, p, out)
  if p.sep or p[2] == nil then
    out[name] = table.concat(items, p.sep or ",")
  else
    for i, v in ipairs(items) do out[name .. "." .. i] = v end
  end
end

local sha256_hex = core.sha256_hex
local concat = table.concat
local FORM = "application/x-www-form-urlencoded"

local encoded = transport.form_query

-- the action's parameters split by where they travel (plan.body: the names
-- that go in the form body); nil body when none does
-- (call()'s `version` option arrives as flat.Version: it names the version,
-- it is not a parameter of the action)
local function split(P, flat, method)
  local body = method ~= "GET" and P.body
  if not body and flat.Version == nil then return flat, nil end
  local q, b = {}, nil
  for k, v in next, flat do
    if body and body[k] then b = b or {}; b[k] = v elseif k ~= "Version" then q[k] = v end
  end
  return q, b
end

-- the method of one request on 2018-05-10: prepare's, else the one the
-- action declares (the SDK's; the gateway refuses the other)
local function method_of(st, P, fixed)
  return fixed.method or P.http or st.method
end

-- the timestamp and nonce of one attempt (prepare may pin them)
local function stamp(st, fixed)
  local now = core.now() + st.clock_offset
  return now, fixed.timestamp or core.iso8601(now), fixed.nonce or core.uuid4()
end

-- Signature V3 (ACS3-HMAC-SHA256): headers signed, query and body as sent
local SIGNED = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
local SIGNED_FORM = "content-type;" .. SIGNED
-- with a security token (STS credentials), signed too
local SIGNED_TOKEN = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;" ..
  "x-acs-signature-nonce;x-acs-version"
local SIGNED_FORM_TOKEN = "content-type;" .. SIGNED_TOKEN
local CT_LINE = "content-type:" .. FORM .. "\n"
local function build_v3(self, st, P, flat, fixed)
  local method = method_of(st, P, fixed)
  local query, body = split(P, flat, method)
  local version = fixed.version or flat.Version or st.version
  local now, date, nonce = stamp(st, fixed)
  local q = encoded(query)
  local payload = body and encoded(body) or ""
  local hash = sha256_hex(payload)
  -- the signed headers, in their sorted order (a fixed set: no sort per call)
  local token = core.client_token(self)
  local signed = token and (body and SIGNED_FORM_TOKEN or SIGNED_TOKEN) or (body and SIGNED_FORM or SIGNED)
  local canonical = concat {
    method, "\n/\n", q, "\n", body and CT_LINE or "", "host:", st.host,
    "\nx-acs-action:", P.name, "\nx-acs-content-sha256:", hash, "\nx-acs-date:", date,
    token and "\nx-acs-security-token:" or "", token or "",
    "\nx-acs-signature-nonce:", nonce, "\nx-acs-version:", version, "\n\n", signed, "\n", hash,
  }
  local sts = "ACS3-HMAC-SHA256\n" .. sha256_hex(canonical)
  local sig = st.sign(self, sts)
  local headers = {
    Host = st.host, ["User-Agent"] = st.user_agent,
    ["x-acs-action"] = P.name, ["x-acs-version"] = version, ["x-acs-date"] = date,
    ["x-acs-signature-nonce"] = nonce, ["x-acs-content-sha256"] = hash,
    Authorization = "ACS3-HMAC-SHA256 Credential=" .. st.key_id .. ",SignedHeaders=" .. signed ..
      ",Signature=" .. sig,
  }
  if body then headers["Content-Type"] = FORM end
  if token then headers["x-acs-security-token"] = token end
  local req = transport.request(st, method, q ~= "" and (st.url_get .. q) or st.url, headers,
    body and payload or nil)
  local meta = { client = self, timestamp = now, sts = sts }
  if fixed.explain then
    meta.explain = { canonical = canonical, string_to_sign = sts, signature = sig,
                     signed_headers = signed, key = "<access_key_secret>" }
  end
  return req, meta
end

-- Signature V2 on 2018-05-10: the common parameters, the action's query
-- parameters and the Signature in the URL, the form-body parameters in the
-- body; the signature covers all of them (as the official SDKs' V2 does)
-- The RPC common parameters of signature V2 (in one constructor, sized once),
-- then the action's; and the meta of such a request (parse derives the
-- string-to-sign again from the signed parameters only on a mismatch).
local function rpc_params(self, st, P, flat, fixed, params_of_action)
  local now, date, nonce = stamp(st, fixed)
  local params = {
    Action = P.name, Format = "JSON", Version = fixed.version or flat.Version or st.version,
    AccessKeyId = st.key_id, SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0",
    SignatureNonce = nonce, Timestamp = date,
  }
  local token = core.client_token(self)
  if token then params.SecurityToken = token end
  for k, v in next, params_of_action do params[k] = v end
  return params, now
end

local function rpc_meta(self, params, method, now, explain, canonical, sts, sig)
  local meta = { client = self, params = params, method = method, timestamp = now }
  if explain then
    meta.explain = { canonical = canonical, string_to_sign = sts, signature = sig,
                     key = "<access_key_secret>&" }
  end
  return meta
end

local function build_v2(self, st, P, flat, fixed)
  local method = method_of(st, P, fixed)
  local query, body = split(P, flat, method)
  local params, now = rpc_params(self, st, P, flat, fixed, query)
  local explain, url, sts, sig, canonical = fixed.explain, nil, nil, nil, nil
  local req
  if not body then
    url, sts, sig, canonical = st.sign(self, params, method, st.url_get, explain)
    req = transport.request(st, method, url, { ["User-Agent"] = st.user_agent })
  else
    local all = {}
    for k, v in next, params do all[k] = v end
    for k, v in next, body do all[k] = v end
    local _
    _, sts, sig, canonical = st.sign(self, all, method, "", true)
    params.Signature = sig
    req = transport.request(st, method, st.url_get .. encoded(params),
      { ["User-Agent"] = st.user_agent, ["Content-Type"] = FORM }, encoded(body))
    params = all
  end
  return req, rpc_meta(self, params, method, now, explain, canonical, sts, sig)
end

--- 2014-11-11: the signed query in the URL (GET) or a form body (POST).
local function build_2014(self, st, P, flat, fixed)
  local method = fixed.method or P.http or st.method
  local params, now = rpc_params(self, st, P, flat, fixed, flat)
  local explain = fixed.explain
  -- the signer writes the URL prefix before the query: one string, built once
  local req, sts, sig, canonical
  req, method, sts, sig, canonical = transport.query_request(st, self, params, method,
    fixed.method, explain)
  return req, rpc_meta(self, params, method, now, explain, canonical, sts, sig)
end

--- Build the signed request.  `fixed` may pin timestamp, nonce, method.
function A.build(self, st, P, flat, fixed)
  -- call(..., { version = "2014-11-11" }) on a 2018-05-10 client: that API
  -- takes signature V2 only
  if st.version ~= V2014 and (fixed.version or flat.Version) ~= V2014 then
    if st.signature == "v3" then return build_v3(self, st, P, flat, fixed) end
    return build_v2(self, st, P, flat, fixed)
  end
  return build_2014(self, st, P, flat, fixed)
end

-- where our string-to-sign and the server's differ, for SignatureDoesNotMatch
local function diff(ours, theirs)
  local n = math.min(#ours, #theirs)
  local i = 1
  while i <= n and ours:byte(i) == theirs:byte(i) do i = i + 1 end
  if i > n and #ours == #theirs then return nil end
  local from = math.max(1, i - 30)
  return ("string-to-sign differs from the server's at byte %d:\n  ours:   ...%s\n  server: ...%s")
    :format(i, ours:sub(from, i + 40), theirs:sub(from, i + 40))
end

function A.parse(st, action, status, headers, body, meta)
  local ctype = headers["content-type"] or ""
  local data, jerr = core.json_decode(body)
  if status >= 200 and status < 300 then
    if type(data) ~= "table" then
      return nil, {
        code = "json", http_status = status, retryable = false,
        message = "response is not a JSON object (" .. tostring(jerr or type(data)) .. "): " ..
          errors.excerpt(body),
      }
    end
    return data
  end
  if type(data) ~= "table" or type(data.Code) ~= "string" then
    return nil, {
      code = "http", http_status = status,
      retryable = status >= 500 or status == 429,
      message = errors.unexpected(status, ctype, body),
    }
  end
  local e = {
    code = data.Code, message = type(data.Message) == "string" and data.Message or "",
    http_status = status, request_id = type(data.RequestId) == "string" and data.RequestId or nil,
    host_id = data.HostId,
    retryable = RETRYABLE[data.Code] or false,
    ambiguous = status >= 500,
  }
  if data.Code:match("^InvalidTimeStamp") then e.clock = true end
  -- a reused nonce: cdnkit never sends one twice, so this answers a silent
  -- resend by a transport and the first copy may have run (client.lua
  -- judge_replay makes it ambiguous)
  if data.Code == "SignatureNonceUsed" then e.replay = true end
  if data.Code:match("^InvalidAccessKeyId") then e.hint = "check access_key_id" end
  -- today's purge/preload quota is used up (cdnkit.queue waits for the next day)
  if data.Code:match("^QuotaExceeded") then e.over_quota = true end
  if RETRYABLE[data.Code] and data.Code:match("^Throttling") then
    -- the vendor may say how long until the limit resets: TimeLeft in the
    -- x-ratelimit-user-api / x-ratelimit-user header ("k:v,k:v"; the unit
    -- is not documented: read as milliseconds).  The retry waits at least
    -- this long (capped by the retry policy's max).
    for _, hn in ipairs { "x-ratelimit-user-api", "x-ratelimit-user" } do
      local left = headers[hn] and tonumber(headers[hn]:match("[Tt]ime[Ll]eft:%s*(%d+)"))
      if left then e.retry_after = left / 1000; break end
    end
  end
  if data.Code == "SignatureDoesNotMatch" and meta and meta.sts then
    local server = e.message:match("server string to sign is:(.*)$")
    if server then
      e.server_string_to_sign = server
      e.diff = diff(meta.sts, server) or
        "string-to-sign is the same as the server's: check access_key_secret"
    end
  elseif data.Code == "SignatureDoesNotMatch" and meta and meta.params then
    local server = e.message:match("server string to sign is:(.*)$")
    local ok, _, ours = pcall(st.query_sign, meta.client, meta.params, meta.method, "", true)
    if server and ok then
      e.server_string_to_sign = server
      e.diff = diff(ours, server) or "string-to-sign is the same as the server's: check access_key_secret"
    end
  end
  -- the server's string-to-sign (echoed in the message) holds a session
  -- token when one was signed: masked wherever it went
  for _, k in ipairs { "message", "server_string_to_sign", "diff" } do
    if type(e[k]) == "string" then
      e[k] = e[k]:gsub("(SecurityToken%%3D)[^%%&\n]*", "%1***"):gsub("(SecurityToken=)[^&\n]*", "%1***")
        :gsub("(x%-acs%-security%-token:)[^\n]*", "%1***")
    end
  end
  -- instance-role credentials refused as expired: renewed once, the call
  -- resent (nothing ran)
  if st.role and type(data.Code) == "string" and
     (data.Code:match("^InvalidSecurityToken") or data.Code == "InvalidAccessKeyId.NotFound") then
    e.reauth, e.ambiguous = true, false
  end
  return nil, e
end

-- batching (client:refresh / client:prefetch); `extra` are the user's
-- `params` (ObjectType Regex/ExQuery, Force, Area, ...), checked by the
-- engine against the action's API data
function A.batch_params(kind, items, extra)
  local p = {}
  for k, v in pairs(extra or {}) do p[k] = v end
  p.ObjectPath = items
  if kind == "refresh_dir" then
    p.ObjectType = "Directory"
    return "RefreshObjectCaches", p
  elseif kind == "prefetch" then
    return "PushObjectCache", p
  end
  p.ObjectType = p.ObjectType or "File"
  return "RefreshObjectCaches", p
end

-- refresh{ check_quota = true } reads this (values are strings in the response)
-- (both versions); a refresh with params.ObjectType Regex or ExQuery counts
-- against those quotas instead
A.quota = {
  action = "DescribeRefreshQuota",
  remain = { refresh_url = "UrlRemain", refresh_dir = "DirRemain", prefetch = "PreloadRemain" },
  type_param = "ObjectType",
  by_type = { Regex = "RegexRemain", ExQuery = "IgnoreParamsRemain", Directory = "DirRemain" },
}

-- report:wait() polls this (data, not code) on 2014-11-11: the task list,
-- newest first, 50 tasks a page (`list`), then one query per task id for any
-- not seen.  2018-05-10 declares its own (DescribeRefreshTaskById) above.
A.task_status = {
  default = {
    action = "DescribeRefreshTasks", id_param = "TaskId", items = "Tasks.CDNTask",
    field = "Status", done = { Complete = true }, failed = { Failed = true },
    list = { page = "PageNumber", size = "PageSize", size_max = 50, id = "TaskId",
             total = "TotalCount" },
  },
}

function A.task_ids(kind, data)
  local s = data.RefreshTaskId or data.PushTaskId
  local t = {}
  if s ~= nil then
    for id in validate.id_string(s):gmatch("[^,%s]+") do t[#t + 1] = id end
  end
  return t
end

return A
