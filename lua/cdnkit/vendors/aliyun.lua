-- cdnkit.vendors.aliyun: protocol adapter for Alibaba Cloud CDN, RPC API
-- 2014-11-11.  Signing (scheme aliyun_rpc_v2, in C: src/sign.c):
-- percent-encode and sort the query, StringToSign = METHOD&%2F&pct(query),
-- HMAC-SHA1 with key secret.."&".  Errors: HTTP 4xx/5xx with
-- {RequestId, HostId, Code, Message}.  The contract this file fulfils is in
-- README.md in this folder.
local core = require "cdnkit.core"
local raise = require("cdnkit.errors").raise
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local A = {
  name = "aliyun",
  order = 1,
  default_version = "2014-11-11",
  versions = {
    ["2014-11-11"] = {
      api = "cdnkit.apis.aliyun_2014_11_11",
      endpoint = "https://cdn.aliyuncs.com",
      path = "/",
      scheme = "aliyun_rpc_v2",
      default_method = "GET",
      methods = { GET = true, POST = true },
    },
  },
  options = { access_key_id = "string", access_key_secret = "string" },
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

-- prepare()'s fixed values must be what the vendor accepts
function A.check_fixed(fixed)
  if fixed.timestamp ~= nil and not validate.FORMATS.iso8601[2](tostring(fixed.timestamp)) then
    raise("cdnkit.aliyun: prepare: timestamp must be YYYY-MM-DDThh:mm:ssZ (UTC), got '" ..
      tostring(fixed.timestamp) .. "'")
  end
end

function A.init(st, opts, key_id)
  st.key_id = key_id
end

-- Alibaba joins list parameters with the declared separator
function A.list_form(name, items, p, out)
  out[name] = table.concat(items, p.sep or ",")
end

--- Build the signed request.  `fixed` may pin timestamp, nonce, method.
function A.build(self, st, P, flat, fixed)
  local method = fixed.method or P.http or st.method
  -- the common parameters in one constructor (sized once), then the action's
  local now = core.now() + st.clock_offset
  local params = {
    Action = P.name, Format = "JSON", Version = flat.Version or st.version,
    AccessKeyId = st.key_id, SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0",
    SignatureNonce = fixed.nonce or core.uuid4(),
    Timestamp = fixed.timestamp or core.iso8601(now),
  }
  for k, v in next, flat do params[k] = v end
  local explain = fixed.explain
  -- the signer writes the URL prefix before the query: one string, built once
  local req, sts, sig, canonical
  req, method, sts, sig, canonical = transport.query_request(st, self, params, method,
    fixed.method, explain)
  -- meta: what parse needs to explain a signature mismatch (the signed
  -- parameters: the string-to-sign is derived again only then)
  local meta = { client = self, params = params, method = method, timestamp = now }
  if explain then
    meta.explain = { canonical = canonical, string_to_sign = sts, signature = sig,
                     key = "<access_key_secret>&" }
  end
  return req, meta
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
  if data.Code == "SignatureDoesNotMatch" and meta and meta.params then
    local server = e.message:match("server string to sign is:(.*)$")
    local ok, _, ours = pcall(st.sign, meta.client, meta.params, meta.method, "", true)
    if server and ok then
      e.server_string_to_sign = server
      e.diff = diff(ours, server) or "string-to-sign is the same as the server's: check access_key_secret"
    end
  end
  return nil, e
end

-- batching (client:refresh / client:prefetch)
function A.batch_params(kind, items)
  if kind == "refresh_dir" then
    return "RefreshObjectCaches", { ObjectPath = items, ObjectType = "Directory" }
  elseif kind == "prefetch" then
    return "PushObjectCache", { ObjectPath = items }
  end
  return "RefreshObjectCaches", { ObjectPath = items, ObjectType = "File" }
end

-- refresh{ check_quota = true } reads this (values are strings in the response)
A.quota = {
  action = "DescribeRefreshQuota",
  remain = { refresh_url = "UrlRemain", refresh_dir = "DirRemain", prefetch = "PreloadRemain" },
}

-- report:wait() polls this (data, not code): the task list, newest first,
-- 50 tasks a page (`list`), then one query per task id for any not seen
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
