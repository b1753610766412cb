-- cdnkit.queue.redis: one Redis connection for the fleet queue, over
-- cdnkit's hiredis binding (core.redis, blocking: plain Lua, the CLI) or,
-- inside nginx where cosockets run, lua-resty-redis (non-blocking; a pooled
-- connection per command, since a cosocket cannot outlive its request or
-- timer).  Replies are the same either way: nil as cdnkit.null, errors as
-- nil, { code = "redis" | "redis_io" | "connect", message = }.
--
-- Scripts are sent by SHA (EVALSHA) and loaded again when the server has
-- forgotten them (NOSCRIPT: a restarted Redis).  A broken connection is
-- dropped and the next command opens a new one.
local core = require "cdnkit.core"
local unpack = table.unpack or unpack
local nginx_phase = require("cdnkit.transport").nginx_phase

local M = {}
local R = {}
R.__index = R

-- "resty" in nginx's cosocket phases, "hiredis" outside nginx and at
-- start-up (blocking only delays it); raises in the other nginx phases,
-- where a blocking call would stall every request of the worker
local function backend_here()
  local where, phase = nginx_phase()
  if where == "cosocket" then return "resty" end
  if where == nil or where == "startup" then return "hiredis" end
  error("cdnkit.queue: cannot reach Redis in nginx's " .. tostring(phase) .. " phase (no cosockets " ..
    "there, and a blocking call would stall the worker); queue from a timer: " ..
    "ngx.timer.at(0, function() q:add(...) end)", 4)
end

local function raise(msg) error(msg, 3) end

--- M.new{ host = "127.0.0.1", port = 6379, timeout = 2, password =, db =,
-- backend = "hiredis" | "resty" | nil (chosen per command: resty inside
-- nginx's cosocket phases, else hiredis) }
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then raise("cdnkit.queue: redis must be a table { host =, port = }") end
  for k in pairs(opts) do
    if k ~= "host" and k ~= "port" and k ~= "timeout" and k ~= "password" and k ~= "db" and
       k ~= "backend" and k ~= "pool_size" then
      raise("cdnkit.queue: unknown redis option '" .. tostring(k) ..
        "' (host, port, timeout, password, db, backend, pool_size)")
    end
  end
  local port = opts.port or 6379
  if math.type and math.type(port) == "float" then port = math.tointeger(port) or port end
  if type(port) ~= "number" or port < 1 or port > 65535 or port % 1 ~= 0 then
    raise("cdnkit.queue: redis.port must be a port number, got " .. tostring(opts.port))
  end
  if opts.host ~= nil and type(opts.host) ~= "string" then raise("cdnkit.queue: redis.host must be a string") end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    raise("cdnkit.queue: redis.timeout must be a positive number of seconds")
  end
  if opts.password ~= nil and type(opts.password) ~= "string" then
    raise("cdnkit.queue: redis.password must be a string")
  end
  if opts.db ~= nil and (type(opts.db) ~= "number" or opts.db < 0 or opts.db % 1 ~= 0) then
    raise("cdnkit.queue: redis.db must be a database number")
  end
  if opts.backend ~= nil and opts.backend ~= "hiredis" and opts.backend ~= "resty" then
    raise("cdnkit.queue: redis.backend must be \"hiredis\" or \"resty\"")
  end
  return setmetatable({
    host = opts.host or "127.0.0.1", port = port, timeout = opts.timeout or 2,
    password = opts.password, db = opts.db, backend = opts.backend,
    pool_size = opts.pool_size or 16, shas = {},
  }, R)
end

-- hiredis: one connection kept open between commands
function R:hiredis()
  if self.conn and not self.conn:is_closed() then return self.conn end
  local c, err = core.redis(self.host, self.port, self.timeout)
  if not c then return nil, err end
  if self.password then
    local ok, aerr = c:command("AUTH", self.password)
    if not ok then c:close(); return nil, aerr end
  end
  if self.db and self.db ~= 0 then
    local ok, serr = c:command("SELECT", self.db)
    if not ok then c:close(); return nil, serr end
  end
  self.conn = c
  return c
end

local function hiredis_command(self, ...)
  local c, err = self:hiredis()
  if not c then return nil, err end
  local res, cerr = c:command(...)
  if res == nil and cerr and cerr.code ~= "redis" then
    c:close()
    self.conn = nil
  end
  return res, cerr
end

-- resty: the reply made like core.redis's (null, error tables)
local function from_resty(v, null)
  if v == null then return core.null end
  if type(v) == "table" then
    if v[1] == false and type(v[2]) == "string" and #v == 2 then return { err = v[2] } end
    local out = setmetatable({}, core.array_mt)
    for i = 1, #v do out[i] = from_resty(v[i], null) end
    return out
  end
  return v
end

local function resty_command(self, cmd, ...)
  -- OpenResty ships it as resty.redis; Debian's lua-nginx-redis as nginx.redis
  local ok, redis = pcall(require, "resty.redis")
  if not ok then ok, redis = pcall(require, "nginx.redis") end
  if not ok then
    return nil, { code = "connect", message = "lua-resty-redis is not installed (Debian: lua-nginx-redis)" }
  end
  local ngx = rawget(_G, "ngx")
  local red = redis:new()
  local ms = math.floor(self.timeout * 1000)
  -- set_timeouts came with lua-resty-redis 0.28; on older ones (Debian's
  -- nginx.redis is 0.27) the module's __index would send it as a command
  if rawget(redis, "set_timeouts") then red:set_timeouts(ms, ms, ms) else red:set_timeout(ms) end
  -- a pool of cdnkit's own per server, database and password: a pooled
  -- connection another lua-resty-redis user switched (SELECT, AUTH) is never
  -- handed to the queue, nor ours to them
  local pool = ("cdnkit:%s:%d:%d:%s"):format(self.host, self.port, self.db or 0,
    self.password and ngx.md5(self.password) or "")
  local okc, err = red:connect(self.host, self.port, { pool = pool })
  if not okc then return nil, { code = "connect", message = "redis " .. self.host .. ":" .. self.port .. ": " .. tostring(err) } end
  if (red:get_reused_times() or 0) == 0 then
    if self.password then
      local a, aerr = red:auth(self.password)
      if not a then red:close(); return nil, { code = "redis", message = tostring(aerr) } end
    end
    if self.db and self.db ~= 0 then
      local s, serr = red:select(self.db)
      if not s then red:close(); return nil, { code = "redis", message = tostring(serr) } end
    end
  end
  local res, rerr = red[string.lower(cmd)](red, ...)
  if res == false then
    -- an error reply (lua-resty-redis answers false, message): the
    -- connection stays usable
    red:set_keepalive(60000, self.pool_size)
    return nil, { code = "redis", message = tostring(rerr) }
  end
  if res == nil then
    -- an I/O error (closed, timeout, a failed send): the connection is dropped
    red:close()
    return nil, { code = "redis_io", message = "redis " .. self.host .. ":" .. self.port .. ": " .. tostring(rerr) }
  end
  red:set_keepalive(60000, self.pool_size)
  return from_resty(res, ngx.null)
end

--- Send one command: reply | nil, err.
function R:command(...)
  local backend = self.backend or backend_here()
  if backend == "resty" then return resty_command(self, ...) end
  return hiredis_command(self, ...)
end

--- Run a script of cdnkit.queue.scripts: reply | nil, err.
function R:eval(src, keys, args)
  local n = #keys
  local argv = { "EVALSHA", "", n }
  for i = 1, n do argv[#argv + 1] = keys[i] end
  for i = 1, #args do argv[#argv + 1] = args[i] end
  for _ = 1, 2 do
    local sha = self.shas[src]
    if not sha then
      local s, err = self:command("SCRIPT", "LOAD", src)
      if not s then return nil, err end
      sha = s
      self.shas[src] = sha
    end
    argv[2] = sha
    local res, err = self:command(unpack(argv))
    if res ~= nil or not (err and err.code == "redis" and err.message:find("NOSCRIPT", 1, true)) then
      return res, err
    end
    self.shas[src] = nil -- the server forgot it (restarted): load it again
  end
  return nil, { code = "redis", message = "NOSCRIPT twice" }
end

function R:close()
  if self.conn then self.conn:close(); self.conn = nil end
end

M.R = R
return M
