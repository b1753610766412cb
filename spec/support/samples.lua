-- spec/support/samples.lua: a valid sample value for each declared parameter,
-- so that specs can call every action once without hand-written tables.
local M = {}

local by_format = {
  date = "2024-01-02",
  datetime = "2024-01-02 00:00:00",
  iso8601 = "2024-01-02T00:00:00Z",
  datetime_iso = "2024-01-02T00:00:00+08:00",
  datetime_cst = "2024-01-02T00:00:00+08:00",
  url = "http://www.example.com/a.html",
}

local function scalar(p, typ)
  if p.enum then return p.enum[1] end
  if p.format and by_format[p.format] then return by_format[p.format] end
  if p.pattern and p.pattern:find("%d%d%d%d", 1, true) then return "2024-01-02" end
  if typ == "integer" or typ == "number" then return p.min or 1 end
  local n = p[1]:lower()
  if n:find("domain") or n:find("host") then return "example-0001.com" end
  if n:find("ip") then return "1.1.1.1" end
  return "sample"
end

-- JSON parameters whose documented shape the emulators check
local JSON = {
  Sources = { { content = "1.1.1.1", type = "ipaddr", priority = "20", port = 80, weight = "10" } },
  Functions = { { functionName = "referer_white_list_set",
                  functionArgs = { { argName = "refer_domain_allow_list", argValue = "a.example.com" } } } },
}

-- nested structures (Tencent API 3.0) whose members the emulator checks
local STRUCTS = {
  DomainFilter = { Name = "domain", Value = { "example-0001.com" } },
  HTTPHeader = { Name = "X-Sample", Value = "v" },
  DomainAreaConfig = { Domain = "host-0001.example.com", Area = { "mainland" } },
  Origin = { Origins = { "1.1.1.1" }, OriginType = "ip" },
  -- Wangsu
  QueryDomainTotalTrafficDomainList = { ["domain-name"] = { "www.example.com" } },
  ReportFlowDirInfoServiceRequestDomainDir = { domain = "www.example.com", dir = { "/a/" } },
  QueryDirectoryBandwidthTrafficUnderLivestreamDomainRequestDomainDir = { domain = "www.example.com",
                                                                          dir = { "/a/" } },
  QueryStreamTrafficUnderMALBDomainRequestDomainStream = { domain = "www.example.com", stream = { "s" } },
  QueryMultipleStreamTrafficAndBandwidthUnderTheDomainRequestDomainStream = { domain = "www.example.com",
                                                                              stream = { "s" } },
}

function M.value(p)
  local typ = p[2]
  if typ == "list" then return { scalar(p, p.item or "string") } end
  if typ == "json" then return JSON[p[1]] or { sample = 1 } end
  if typ == "boolean" then return true end
  if typ == "objects" or typ == "object" then
    local item = STRUCTS[p.struct]
    if not item then
      item = {}
      if not p.struct then item = { Key = "k", Value = "v" } end -- Alibaba Tag.N.Key
      for _, f in ipairs(p.required_fields or {}) do item[f] = "sample" end
    end
    if typ == "object" then return item end
    return { item }
  end
  return scalar(p, typ)
end

--- Parameters with every required parameter (and the first of one_of) set.
function M.params(a)
  local t = {}
  local want = {}
  if a.one_of then want[a.one_of[1]] = true end
  for _, p in ipairs(a.params or {}) do
    if p.required or want[p[1]] then t[p[1]] = M.value(p) end
  end
  if a.requires_any then
    for _, n in ipairs(a.requires_any[#a.requires_any]) do
      for _, p in ipairs(a.params) do
        if p[1] == n then t[n] = M.value(p) end
      end
    end
  end
  return t
end

return M
