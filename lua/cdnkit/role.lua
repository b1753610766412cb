-- cdnkit.role: credentials of the cloud instance's role, from its metadata
-- service (the last link of the credential chain: asked only when the
-- options, the environment and the profile file gave nothing).
--
-- An adapter declares its service as data (`instance_role`):
--   { name = "Alibaba ECS RAM role", endpoint = "http://100.100.100.200",
--     path = "/latest/meta-data/ram/security-credentials/",
--     token_path = "/latest/api/token",            -- hardened mode (optional)
--     token_header = "X-aliyun-ecs-metadata-token",
--     ttl_header = "X-aliyun-ecs-metadata-token-ttl-seconds",
--     key_id = "AccessKeyId", secret = "AccessKeySecret", token = "SecurityToken",
--     expiration = "Expiration" (ISO 8601) | expired_time = "ExpiredTime" (unix),
--     key_field = "key_id" (where the adapter keeps the key id in st) }
-- GET <path> names the role; GET <path><role> is the credentials document.
--
-- Each request has a 1 s timeout; a negative answer (no service, no role) is
-- remembered for this Lua state, so a host that is not a cloud instance asks
-- once.  CDNKIT_METADATA=off skips the service; option `metadata_endpoint` or
-- CDNKIT_METADATA_ENDPOINT points it elsewhere (tests: a loopback emulator).
-- The credentials are renewed a few minutes before they expire (a third of
-- their life when that is shorter), and at once when the vendor refuses the
-- session token; they go into the C client (core.client_set_credentials).
-- The document's secret and token pass through Lua strings as they are read.
local core = require "cdnkit.core"

local M = {}

local NEGATIVE = {} -- metadata base URL -> why (this lua_State)

local iso_time = require("cdnkit.validate").iso_time

--- The metadata base URL for these options, or nil when switched off.
-- (the `metadata_endpoint` option is a choice made in code: it is asked even
-- with CDNKIT_METADATA=off, which covers the default and the environment's)
function M.base(spec, opts)
  local off = os.getenv("CDNKIT_METADATA")
  if not opts.metadata_endpoint and (off == "off" or off == "0" or off == "false") then
    return nil, "skipped (CDNKIT_METADATA=off)"
  end
  local b = opts.metadata_endpoint or os.getenv("CDNKIT_METADATA_ENDPOINT")
  if b == "" then b = nil end
  return (b or spec.endpoint):gsub("/+$", "")
end

-- one metadata request; `send` is the client's transport (inside nginx:
-- cosockets, so a renewal does not block the worker), else libcurl
local function get(curl, method, url, headers, send)
  -- proxy "": never through a proxy (the answer holds credentials)
  local req = { method = method, url = url, headers = headers or {}, proxy = "",
                timeout = 1, connect_timeout = 1, max_body = 65536, idempotent = true }
  local status, h, body
  if send then status, h, body = send(req) else status, h, body = curl:send(req) end
  if not status then return nil, type(h) == "table" and h.message or "no answer" end
  return status, body, h
end

--- Fetch the role's credentials: { key_id, secret, token, expires, role } |
-- nil, why.  A negative answer is remembered (`fresh` skips that memory).
function M.fetch(spec, base, fresh, send)
  local mkey = base .. spec.path
  if not fresh and NEGATIVE[mkey] then return nil, NEGATIVE[mkey] end
  -- (a renewal's failure is not remembered: it may be transient)
  local memo = NEGATIVE
  if fresh then memo = {} end
  local curl = not send and core.curl() or nil
  local function done(...) if curl then curl:close() end; return ... end
  local hdr = {}
  if spec.token_path then
    local st, tok = get(curl, "PUT", base .. spec.token_path, { [spec.ttl_header] = "21600" }, send)
    if st == 200 and tok and tok ~= "" then hdr[spec.token_header] = tok
    elseif st == nil then
      memo[mkey] = "no metadata service at " .. base .. " (" .. tostring(tok) .. ")"
      return done(nil, memo[mkey])
    end
  end
  local st, body = get(curl, "GET", base .. spec.path, hdr, send)
  if st == nil then
    memo[mkey] = "no metadata service at " .. base .. " (" .. tostring(body) .. ")"
    return done(nil, memo[mkey])
  end
  if st ~= 200 then
    memo[mkey] = "no instance role (" .. base .. spec.path .. " answered HTTP " .. st .. ")"
    return done(nil, memo[mkey])
  end
  local role = body:match("^%s*([^%s]+)")
  if not role then
    memo[mkey] = "no instance role (an empty role list at " .. base .. ")"
    return done(nil, memo[mkey])
  end
  local st2, doc = get(curl, "GET", base .. spec.path .. role, hdr, send)
  if curl then curl:close() end
  if st2 ~= 200 then return nil, "the role's credentials: HTTP " .. tostring(st2 or doc) end
  local d = core.json_decode(doc or "")
  if type(d) ~= "table" or (d.Code ~= nil and d.Code ~= "Success") then
    return nil, "the role's credentials document is not usable" ..
      (type(d) == "table" and d.Code and (" (Code " .. tostring(d.Code) .. ")") or "")
  end
  local key, secret, token = d[spec.key_id], d[spec.secret], d[spec.token]
  if type(key) ~= "string" or key == "" or type(secret) ~= "string" or secret == "" then
    return nil, "the role's credentials document has no " .. spec.key_id .. "/" .. spec.secret
  end
  local expires = spec.expired_time and tonumber(d[spec.expired_time]) or iso_time(d[spec.expiration])
  NEGATIVE[mkey] = nil
  return { key_id = key, secret = secret, token = type(token) == "string" and token or nil,
           expires = expires, role = role }
end

--- When to renew credentials that expire at `expires` (epoch seconds), on
-- the monotonic clock: 3 minutes before, or a third of the remaining life
-- when that is shorter.
function M.renew_at(expires)
  if not expires then return math.huge end
  local left = expires - core.now()
  return core.monotime() + left - math.min(180, math.max(left, 0) / 3)
end

--- Before a request: renew the client's role credentials when due (or
-- `force`d after a refused token).  true | nil, err fields.
function M.ensure(client, st, force, send)
  local r = st.role
  if not force and core.monotime() < r.renew_at then return true end
  local c, why = M.fetch(r.spec, r.base, true, send)
  if not c then
    -- not renewed: the old ones still serve until they expire; the next
    -- try waits a little, so calls do not each wait for the timeout
    if not force and r.expires and core.now() < r.expires then
      r.renew_at = core.monotime() + 15
      return true
    end
    return nil, { code = "credentials", retryable = true, ambiguous = false, sent = false,
      message = "cannot renew the instance role's credentials: " .. why }
  end
  core.client_set_credentials(client, c.key_id, c.secret, c.token)
  st[r.spec.key_field or "key_id"] = c.key_id
  r.expires, r.renew_at, r.renewals = c.expires, M.renew_at(c.expires), (r.renewals or 0) + 1
  return true
end

return M
