-- cdnkit.paginate: client:pages(action, params) and client:each(action, params)
-- for every action whose API data declares `paginate` (Alibaba
-- PageNumber/PageSize, Tencent offset/limit).  Where the items sit and the
-- page-size cap come from the data.
--
-- Errors: a runtime failure on any page is RAISED from the iterator (both
-- `pages` and `each`) as the structured error table, with `err.page` set to the
-- page number (1-based) it happened on.  Wrap the loop in pcall to handle it.
local raise = require("cdnkit.errors").raise
local client = require "cdnkit.client"
local errors = require "cdnkit.errors"
local validate = require "cdnkit.validate"

local M = {}

-- the value at a dotted path; a numeric element indexes an array
-- ("DomainLogDetails.DomainLogDetail.1.LogInfos")
local function dig(t, path)
  for key in path:gmatch("[^%.]+") do
    if type(t) ~= "table" then return nil end
    local v = t[key]
    if v == nil and key:match("^%d+$") then v = t[tonumber(key)] end
    t = v
  end
  return t
end
M.dig = dig

-- A cheap identity of a page's first item: its scalar values, and those of
-- the tables in it, in key order (no JSON encoding of whole pages).  Two
-- pages starting with the same item mean the server ignored the page
-- position.
local function fingerprint(item, depth)
  depth = depth or 0
  local t = type(item)
  if t ~= "table" then return tostring(item) end
  if depth >= 8 then return "{}" end
  local keys = {}
  for k in pairs(item) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y)
    local tx, ty = type(x), type(y)
    if tx ~= ty then return tx < ty end
    if tx == "number" or tx == "string" then return x < y end
    return false
  end)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = tostring(k) .. "=" .. fingerprint(item[k], depth + 1)
  end
  return "{" .. table.concat(parts, "\0") .. "}"
end

local function paginated(self, action)
  local st = self:_state()
  local a = st.api_index[action]
  if not a then
    local adapter = require "cdnkit.adapter"
    local hint = type(action) == "string" and
      client.moved_hint(st.adapter, adapter.version(st.adapter, st.version), action)
    raise(hint or ("cdnkit." .. st.adapter.name .. ": unknown action '" .. tostring(action) .. "'"))
  end
  if not a.paginate then
    raise("cdnkit." .. st.adapter.name .. ": " .. action .. " is not paginated by the vendor")
  end
  return st, a, a.paginate
end

local function pages(self, action, params)
  local st, a, pg = paginated(self, action)
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  local offset_style = pg.style == "offset"
  local pk = offset_style and (pg.offset or "offset") or (pg.page or "PageNumber")
  local sk = offset_style and (pg.limit or "limit") or (pg.size or "PageSize")
  local size = p[sk] or pg.max_size or pg.default_size
  p[sk] = size
  if p[pk] == nil then p[pk] = offset_style and 0 or 1 end
  -- validate once up front so usage mistakes raise at the call, not mid-loop
  local flat, msg = validate.check(st.api, a, p, st.adapter.list_form)
  if not flat then raise(msg) end
  size = tonumber(size)
  local n, seen, finished = 0, 0, false
  local prev_first
  local function fail(code, message, page)
    finished = true
    local err = errors.new(st.adapter.name, action, { code = code, message = message })
    err.page = page
    error(err, 0)
  end
  return function()
    if finished then return nil end
    n = n + 1
    flat = validate.check(st.api, a, p, st.adapter.list_form)
    local page, err = client.invoke(self, action, flat, a.idempotent)
    if not page then
      finished = true
      err.page = n
      error(err, 0)
    end
    local items = dig(page, pg.items)
    if items == nil then
      -- an empty result may leave the list out; anything else is a surprise
      local total0 = pg.total and tonumber(dig(page, pg.total))
      if total0 == 0 or (total0 == nil and seen == 0) then
        finished = true
        return page, n
      end
      fail("json", "page " .. n .. " has no '" .. pg.items .. "' list", n)
    end
    if type(items) ~= "table" then
      fail("json", "'" .. pg.items .. "' is not a list on page " .. n, n)
    end
    local count = #items
    local total = pg.total and tonumber(dig(page, pg.total))
    -- a server that ignores the page position would loop for ever (or, with
    -- a total, hand out the first page again and again): check the position
    -- it reports, and that the page does not start where the previous one did
    local echoed = not offset_style and pg.echo ~= false and tonumber(page[pk])
    if echoed and echoed ~= tonumber(p[pk]) then
      fail("json", "page " .. n .. " reports " .. pk .. " " .. echoed .. " (the server ignores " .. pk .. ")", n)
    end
    local first = count > 0 and fingerprint(items[1]) or nil
    if first and first == prev_first then
      fail("json", "page " .. n .. " repeats the previous page (the server ignores " .. pk .. ")", n)
    end
    prev_first = first
    seen = seen + count
    if count == 0 then
      finished = true
    elseif total then
      -- the reported total decides; a short page only means the server
      -- serves smaller pages than we asked for
      finished = seen >= total
    elseif size and count < size then
      finished = true
    end
    if not finished then
      if offset_style then p[pk] = (tonumber(p[pk]) or 0) + count else p[pk] = (tonumber(p[pk]) or 1) + 1 end
    end
    return page, n
  end
end

function M.install(methods, A)
  function methods.pages(self, action, params)
    local it = pages(self, action, params)
    return it
  end

  function methods.each(self, action, params)
    local _, _, pg = paginated(self, action)
    local it = pages(self, action, params)
    local items, i = nil, 0
    return function()
      while true do
        if items and i < #items then
          i = i + 1
          return items[i]
        end
        local page = it()
        if page == nil then return nil end
        items = dig(page, pg.items)
        if type(items) ~= "table" then items = {} end
        i = 0
      end
    end
  end
end

return M
