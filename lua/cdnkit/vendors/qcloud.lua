-- cdnkit.vendors.qcloud: protocol adapter for Tencent Cloud CDN API v2
-- (cdn.api.qcloud.com/v2/index.php).  Signing (scheme qcloud_v2, in C:
-- src/sign.c): params minus Signature, '_' -> '.' in names, sorted, raw
-- values, METHOD + host + path + '?' + joined, HMAC-SHA1 or HMAC-SHA256 as
-- SignatureMethod says.  Envelope: HTTP 200 with {code, message
-- "(NNNN)text", codeDesc, data}.  The contract this file fulfils is in
-- README.md in this folder.
local raise = require("cdnkit.errors").raise
local core = require "cdnkit.core"
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"
local transport = require "cdnkit.transport"

local PATH = "/v2/index.php"

local A = {
  name = "qcloud",
  order = 2,
  default_version = "v2",
  versions = {
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
              token = "string" },
  -- prepare()'s third argument may also pin these
  fixed = { region = true, sign_method = true, host = true },
  -- seconds a Timestamp may be off the server's clock (error 4500 beyond)
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

function A.check_options(opts)
  local sm = opts.sign_method
  if sm ~= nil and sm ~= "HmacSHA1" and sm ~= "HmacSHA256" then
    raise("cdnkit.qcloud: option 'sign_method' must be \"HmacSHA1\" or \"HmacSHA256\"")
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
  st.token = opts.token
  -- the host as signed: no port; an IPv6 literal keeps its brackets
  st.host = st.endpoint:match("^https?://(%b[])") or st.endpoint:match("^https?://([^/:]+)")
end

-- Tencent list form: name.0, name.1, ...
function A.list_form(name, items, p, out)
  for i, v in ipairs(items) do out[name .. "." .. (i - 1)] = v end
end

local HASH = { HmacSHA256 = "sha256" }

function A.build(self, st, P, flat, fixed)
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
  if st.token then params.Token = st.token end
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

local function module_code(message, code)
  local m = type(message) == "string" and message:match("^%((%-?%d+)%)")
  if m then return tonumber(m) end
  return code
end

function A.parse(st, action, status, headers, body, meta)
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
  -- an internal error or maintenance answer may come after the work was done:
  -- never resend a non-idempotent action after one
  if code == 6000 or code == 6200 then e.ambiguous = true end
  return nil, e
end

function A.batch_params(kind, items)
  if kind == "refresh_dir" then return "RefreshCdnDir", { dirs = items } end
  if kind == "prefetch" then return "CdnUrlPusher", { urls = items } end
  return "RefreshCdnUrl", { urls = items }
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
