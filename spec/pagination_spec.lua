-- each()/pages() for every action the API data declares paginated, against
-- the emulators: the declared item path must find the items, and iteration
-- must stop on the reported total or a short page.
local cdnkit = require "cdnkit"
local emu = require "emu"
local samples = require "samples"
local dig = require("cdnkit.paginate").dig

local function urls(n, from)
  local t = {}
  for i = 1, n do t[i] = "http://host-0001.example.com/p" .. (from or 0) + i end
  return t
end

-- stateful lists need something in them first
local seed = {
  DescribeRefreshTasks = function(c) assert(c:RefreshObjectCaches { ObjectPath = urls(120) }) end,
  GetPushLogs = function(c)
    for k = 0, 2 do assert(c:CdnUrlPusher { urls = urls(20, k * 20) }) end
  end,
}

for _, vendor in ipairs { "aliyun", "qcloud" } do
  describe(vendor .. " pagination", function()
    local e, c
    setup(function()
      e = emu.start(vendor, { domains = 123, hosts = 57 })
      c = emu.client(e)
    end)
    teardown(function() c:close(); e:stop() end)
    before_each(function() e:reset() end)

    local n = 0
    for _, a in ipairs(cdnkit.api(vendor, emu.seed_version[vendor]).actions) do
      local pg = a.paginate
      if pg then
        n = n + 1
        it(a.name .. " via each() and pages()", function()
          if seed[a.name] then seed[a.name](c) end
          local params = samples.params(a)
          for _, k in ipairs { pg.page, pg.size, pg.offset, pg.limit, "offset", "limit",
                               "PageNumber", "PageSize" } do
            params[k] = nil
          end
          local items = 0
          for item in c:each(a.name, params) do
            items = items + 1
            assert.is_not_nil(item)
          end
          assert.is_true(items > 0, "no items found at " .. pg.items)
          -- every item the server reports, not just the first page
          local first = c[a.name](c, params)
          local total = tonumber(dig(first, pg.total))
          if total then assert.equal(total, items) end
          local requests = e:stats().by_action[a.name] - 1
          local size = pg.max_size or pg.default_size
          assert.is_true(requests <= math.ceil(items / size) + 1)
          -- pages() sees the same items
          local again = 0
          for page in c:pages(a.name, params) do
            local list = dig(page, pg.items)
            again = again + #list
          end
          assert.equal(items, again)
        end)
      end
    end
    it("declares paginated actions", function() assert.is_true(n >= 4) end)
  end)
end
