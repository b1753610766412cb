-- spec/support/redis_server.lua: a redis-server of the spec's own on a
-- free loopback port (no persistence), for the specs of core.redis and
-- cdnkit.queue.
local core = require "cdnkit.core"

local M = {}

function M.free_port()
  local p = io.popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'")
  local port = tonumber(p:read("*l"))
  p:close()
  return port
end

--- whether redis-server is installed (make deps installs it)
function M.available()
  local r = os.execute("command -v redis-server >/dev/null 2>&1")
  return r == true or r == 0
end

--- start one on `port`; returns { pid, handle, dir, conn } once it answers
function M.start(port)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local h = io.popen(("echo $$; exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s " ..
    "--daemonize no --loglevel warning"):format(port, dir))
  local srv = { pid = h:read("*l"), handle = h, dir = dir }
  for _ = 1, 100 do
    local c = core.redis("127.0.0.1", port, 1)
    if c then srv.conn = c; break end
    core.sleep(0.05)
  end
  assert(srv.conn, "redis-server did not start on port " .. port)
  return srv
end

function M.stop(srv)
  if not srv or not srv.pid then return end
  if srv.conn then srv.conn:close() end
  os.execute("kill " .. srv.pid .. " 2>/dev/null")
  srv.handle:close() -- waits for it to exit
  os.execute("rm -rf " .. srv.dir)
  srv.pid = nil
end

return M
