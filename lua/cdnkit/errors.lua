-- cdnkit.errors: the structured runtime error returned as the second value of
-- a failed call (`nil, err`).  Fields: vendor, action, code, message,
-- http_status, request_id, retryable, and where known: sent (the request left
-- this machine), ambiguous (it may have taken effect), page, diff.
local M = {}

local mt = {}
mt.__index = mt

function mt.__tostring(e)
  local parts = { "cdnkit." .. tostring(e.vendor) }
  if e.action then parts[#parts + 1] = " " .. e.action end
  parts[#parts + 1] = ": " .. tostring(e.code)
  if e.message and e.message ~= "" then parts[#parts + 1] = ": " .. e.message end
  local extra = {}
  if e.http_status then extra[#extra + 1] = "HTTP " .. e.http_status end
  if e.request_id then extra[#extra + 1] = "request id " .. e.request_id end
  if e.page then extra[#extra + 1] = "page " .. e.page end
  if #extra > 0 then parts[#parts + 1] = " (" .. table.concat(extra, ", ") .. ")" end
  if e.ambiguous and e.sent ~= false then
    parts[#parts + 1] = "\n  the request may have taken effect" ..
      (e.retryable and "" or "; it was not sent again")
  end
  if e.hint then parts[#parts + 1] = "\n  hint: " .. e.hint end
  if e.diff then parts[#parts + 1] = "\n" .. e.diff end
  return table.concat(parts)
end

M.mt = mt

--- Make an error table.  `fields` must have at least `code` and `message`.
function M.new(vendor, action, fields)
  local e = fields or {}
  e.vendor = vendor
  e.action = action
  e.code = e.code or "error"
  e.message = e.message or ""
  if e.retryable == nil then e.retryable = false end
  return setmetatable(e, mt)
end

function M.is(v)
  return type(v) == "table" and getmetatable(v) == mt
end

-- where cdnkit's Lua files live (this file's folder), to tell its frames apart
local HERE = (debug.getinfo(1, "S").source or ""):match("^(@.*[/\\])errors%.lua$")

--- Raise a usage mistake at the user's call site: the first stack frame
-- that is neither cdnkit's own Lua code nor a C function.  (Counting levels
-- by hand breaks with every helper and tail call in between.)
function M.raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then
      level = 1
      break
    end
    local src = info.source or ""
    local ours = HERE and src:sub(1, #HERE) == HERE
    if info.what ~= "C" and not ours then break end
    level = level + 1
  end
  error(msg, level)
end

--- Turn a body that is not what the document says into a short printable excerpt.
--- The message for an answer that is not the vendor's envelope.
function M.unexpected(status, ctype, body)
  local ex = M.excerpt(body)
  local msg = ex ~= "" and ex or ("empty body from HTTP " .. status)
  if ctype and ctype ~= "" then msg = msg .. " [" .. ctype .. "]" end
  return msg
end

function M.excerpt(body, n)
  n = n or 160
  if type(body) ~= "string" then return "" end
  local s = body:sub(1, n):gsub("[%c]", " "):gsub("<[^>]*>", " "):gsub("%s+", " ")
  s = s:gsub("^%s+", ""):gsub("%s+$", "")
  if #body > n then s = s .. "..." end
  return s
end

return M
