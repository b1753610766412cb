-- spec/support/emu.lua: start and drive the local vendor emulator
-- (spec/emulator/cdnemu.py) from specs.  Loopback only.
local core = require "cdnkit.core"

local M = {}

local PY = os.getenv("PYTHON") or "python3"
local here = "spec/emulator/cdnemu.py"

-- tiny HTTP/1.0 client over `curl` is avoided: use a throwaway cdnkit client
-- transport for the control API (the C core's libcurl), with no signing.
local control_mt = {}
control_mt.__index = control_mt

--- Start an emulator: emu.start("aliyun", { latency = 0.2, ... })
function M.start(vendor, opts)
  opts = opts or {}
  local portfile = os.tmpname()
  local args = { PY, here, "--vendor", vendor, "--port", "0", "--port-file", portfile }
  for k, v in pairs(opts) do
    args[#args + 1] = "--" .. k:gsub("_", "-")
    args[#args + 1] = tostring(v)
  end
  local cmd = "sh -c 'echo $$; exec " .. table.concat(args, " ") .. "' 2>/dev/null"
  local h = assert(io.popen(cmd, "r"))
  local pid = h:read("*l")
  local line = h:read("*l")
  if not line or not line:match("listening") then
    h:close()
    error("emulator for " .. vendor .. " did not start")
  end
  local port = tonumber(line:match(":(%d+)%s*$"))
  os.remove(portfile)
  local self = setmetatable({ vendor = vendor, pid = pid, handle = h, port = port,
                              url = "http://127.0.0.1:" .. port }, control_mt)
  -- the control API is plain JSON over HTTP: the C core's curl transport,
  -- so no extra dependency is needed
  self.ctl = core.curl()
  return self
end

function control_mt:request(method, path, body)
  local status, _, resp = self.ctl:send {
    method = method, url = self.url .. path, timeout = 10,
    headers = { ["Content-Type"] = "application/json" },
    body = body and core.json_encode(body) or nil,
  }
  assert(status == 200, "emulator control " .. path .. " failed: " .. tostring(status))
  return core.json_decode(resp)
end

function control_mt:stats() return self:request("GET", "/__emu/stats") end
function control_mt:reset() return self:request("POST", "/__emu/reset", {}) end
function control_mt:config(t) return self:request("POST", "/__emu/config", t) end
function control_mt:revoke(token) return self:request("POST", "/__emu/revoke", { token = token }) end
function control_mt:faults(list) return self:request("POST", "/__emu/faults", { faults = list }) end

function control_mt:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.handle:close()
    self.pid = nil
    self.ctl:close()
  end
end

-- standard test credentials known to the emulator
M.creds = {
  aliyun = { access_key_id = "testid", access_key_secret = "testsecret" },
  qcloud = { secret_id = "AKIDtest", secret_key = "testkey" },
  wangsu = { access_key = "wangsu-test-ak", secret_key = "wangsu-test-sk" },
  plcloud = { username = "demo", password = "secreetword", tenant_name = "demo" },
}

-- the API version emu.client() gives unless `extra.version` names one: the
-- seed documents' versions, which most specs were written for (the vendors'
-- current versions have specs of their own, which ask for them)
M.seed_version = { aliyun = "2014-11-11", qcloud = "v2" }

--- A client of `vendor` pointed at emulator `e`, with extra options.
-- `extra.version = false` gives the vendor's default (current) version.
function M.client(e, extra)
  local cdnkit = require "cdnkit"
  local o = {}
  for k, v in pairs(M.creds[e.vendor]) do o[k] = v end
  o.version = M.seed_version[e.vendor]
  if extra and extra.version == false then
    o.version = nil
    local x = {}
    for k, v in pairs(extra) do if k ~= "version" then x[k] = v end end
    extra = x
  end
  if e.vendor == "plcloud" then
    -- keystone on the emulator's port; the service endpoint comes from its catalog
    o.auth_url = e.url .. "/v2.0"
  else
    o.endpoint = e.url
  end
  o.retry = { attempts = 3, base = 0.01, max = 0.05 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return cdnkit[e.vendor](o)
end

--- a free loopback port with nothing listening (for connect errors)
function M.closed_port()
  return 1 -- port 1 on loopback: nothing listens there in the sandbox
end

return M
