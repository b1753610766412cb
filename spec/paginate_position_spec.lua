-- Pagination's guard against servers that ignore the page position: the
-- position a page reports, and pages that start where the previous one did.
local cdnkit = require "cdnkit"
local core = require "cdnkit.core"

-- an Alibaba client whose transport serves DescribeUserDomains pages from `serve`
local function client(serve)
  return cdnkit.aliyun { access_key_id = "k", access_key_secret = "s", rate = false, retry = false,
    transport = function(req)
      local page = tonumber(req.url:match("[?&]PageNumber=(%d+)"))
      return 200, {}, core.json_encode(serve(page))
    end }
end

local function domains(from, to)
  local t = setmetatable({}, core.array_mt)
  for i = from, to do t[#t + 1] = { DomainName = "d" .. i .. ".com", CdnType = "web" } end
  return t
end

describe("pagination page positions", function()
  it("follows the pages a well-behaved server reports", function()
    local c = client(function(page)
      return { PageNumber = page, PageSize = 50, TotalCount = 120,
               Domains = { PageData = domains((page - 1) * 50 + 1, math.min(page * 50, 120)) } }
    end)
    local n = 0
    for _ in c:each("DescribeUserDomains", {}) do n = n + 1 end
    assert.equal(120, n)
  end)

  it("raises when a page reports another position than was asked for", function()
    local calls = 0
    local c = client(function(page)
      calls = calls + 1
      -- always reports page 1, but with new items: only the position gives it away
      return { PageNumber = 1, PageSize = 50, TotalCount = 120,
               Domains = { PageData = domains(calls * 50 - 49, calls * 50) } }
    end)
    local ok, err = pcall(function() for _ in c:each("DescribeUserDomains", {}) do end end)
    assert.is_false(ok)
    assert.equal("json", err.code)
    assert.equal(2, err.page)
    assert.matches("reports PageNumber 1 %(the server ignores PageNumber%)", err.message)
  end)

  it("items that differ only in nested fields are different items", function()
    local c = client(function(page)
      local items = setmetatable({}, core.array_mt)
      for i = 1, (page < 3 and 50 or 20) do
        items[i] = { Sources = { Source = { { Content = "1.1.1." .. ((page - 1) * 50 + i) } } } }
      end
      return { PageNumber = page, TotalCount = 120, Domains = { PageData = items } }
    end)
    local n = 0
    for _ in c:each("DescribeUserDomains", {}) do n = n + 1 end
    assert.equal(120, n)
  end)

  it("raises when a page starts where the previous one did, even with a total", function()
    local c = client(function()
      return { TotalCount = 120, Domains = { PageData = domains(1, 50) } }
    end)
    local ok, err = pcall(function() for _ in c:each("DescribeUserDomains", {}) do end end)
    assert.is_false(ok)
    assert.equal(2, err.page)
    assert.matches("repeats the previous page", err.message)
  end)
end)
