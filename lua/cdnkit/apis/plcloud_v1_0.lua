-- Plcloud (Powerleader) CDN and ticket API, declared as data (see README.md here): the 14 CDN
-- and 6 ticket calls of the vendor's Python client (python-plcloudclient, plcloudclient.v1_0:
-- cdn.py and ticket.py), which the vendor's API document describes call by call.
--
-- Plcloud is a REST API behind an OpenStack Keystone v2.0 token service: the client gets a
-- token from POST {auth_url}/tokens, finds the service endpoint in the token's service catalog
-- and sends X-Auth-Token (all of which the adapter does; nothing of it is listed here).
--
-- Each call is a resource method of the Python client (`plcloud.cdn.list()`), here an action
-- named "<resource>.<method>" (`pl.cdn:list()` or `pl["cdn.list"](pl, {})`), with
-- * `http` and `path` (the REST method and path; `{name}` is a parameter of the call, put in the
--   path percent-encoded; `path_alt` is the path used when those parameters are not given),
-- * `args`: the positional arguments of the Python method in order ("*" = a table of named
--   parameters, the Python **kwargs),
-- * `wrap`: the body is { [wrap] = { the body parameters } } (else the body parameters are the
--   top-level keys of the JSON body), `key`: the resource key the answer is unwrapped from (the
--   Python client returns body[key]); a call without `key` returns true on success.
-- Parameters marked `path = true` go in the path, `query = true` in the query string, the
-- others in the JSON body (wire = "json").
--
-- Judgement calls (the vendor documents no types or limits):
-- * domain_id is an integer (the document's example: 206813); ticket ids are strings
--   ("tk-8b47870c"); url_id and request_id are strings (numbers are accepted).
-- * cdn.create requires domain, origin_ips and areas (a CDN domain without an origin or a
--   service area cannot work); areas are "cn", "hk", "ov" as documented; type defaults to
--   "web" on the server.
-- * cdn.recharge requires flow (GB): the Python client's default of 10 GB is not applied, so
--   nothing is bought by omission. project_id defaults to the token's tenant id, as in the
--   Python client.
-- * cdn.request_log: type defaults to "cache" (the document's default); start_at/end_at are
--   Python isoformat() times (YYYY-MM-DDThh:mm:ss[.ffffff], optional offset).
-- * cache_flush and prefetch document no per-call limit; cdnkit's batching sends at most 100
--   URLs (and 100 dirs) per call, one domain per cache_flush call (it names one domain_id).
-- * Plcloud has no purge-status API: cache_flush batches are untracked (report:wait says so).
local REF = "plcloudclient.v1_0 (python-plcloudclient) "

local DOMAIN_ID = { "domain_id", "integer", required = true, path = true, min = 1,
                    doc = "domain id, e.g. 206813 (pl.cdn:list() lists them)" }
local TICKET_ID = { "ticket_id", "string", required = true, path = true, doc = "ticket id, e.g. tk-8b47870c" }
local AREAS = { "areas", "list", enum = { "cn", "hk", "ov" }, min_items = 1,
                doc = "service areas: cn (mainland China), hk (Hong Kong), ov (overseas)" }
local ORIGIN_IPS = { "origin_ips", "list", min_items = 1, pattern = "^%d+%.%d+%.%d+%.%d+$",
                     doc = "origin IPv4 addresses, e.g. { \"114.114.114.114\" }" }

-- the same parameter, required
local function required(p)
  local t = {}
  for k, v in pairs(p) do t[k] = v end
  t.required = true
  return t
end

return {
  vendor = "plcloud",
  title = "Plcloud (Powerleader) CDN",
  api_version = "v1_0",
  wire = "json",
  source = "Plcloud API document (Python client plcloudclient.v1_0) and the client's cdn.py / ticket.py",
  resources = {
    cdn = "CDN domains, traffic, recharge, common URLs, cache flush, logs and prefetch",
    ticket = "support tickets and their replies",
  },
  actions = {
    ---------------------------------------------------------------------------
    -- cdn
    ---------------------------------------------------------------------------
    {
      name = "cdn.list", http = "GET", path = "/cdn/domain", key = "cdn", args = {},
      idempotent = true, ref = REF .. "cdn.list",
      doc = "List the account's CDN domains.",
    },
    {
      name = "cdn.create", http = "POST", path = "/cdn/domain", wrap = "domain", key = "cdn",
      args = { "*" }, ref = REF .. "cdn.create",
      doc = "Create a CDN domain (mainland domains need an ICP record).",
      params = {
        { "domain", "string", required = true, pattern = "^[%w%.%-]+$", doc = "the domain name" },
        required(ORIGIN_IPS),
        required(AREAS),
        { "type", "string", doc = "domain type, default \"web\"" },
        { "icp_record", "string", doc = "ICP record number (required by the vendor for mainland domains)" },
      },
    },
    {
      name = "cdn.update", http = "PUT", path = "/cdn/domain/{domain_id}", wrap = "domain", key = "cdn",
      args = { "domain_id", "*" }, idempotent = true, ref = REF .. "cdn.update",
      doc = "Change a CDN domain (origin IPs, areas, type, ICP record, enable).",
      params = {
        DOMAIN_ID,
        ORIGIN_IPS, AREAS,
        { "type", "string", doc = "domain type" },
        { "icp_record", "string", doc = "ICP record number" },
        { "enable", "boolean", doc = "false pauses the domain, true resumes it" },
      },
      requires_any = { { "origin_ips" }, { "areas" }, { "type" }, { "icp_record" }, { "enable" } },
    },
    {
      name = "cdn.get", http = "GET", path = "/cdn/domain/{domain_id}", key = "cdn",
      args = { "domain_id" }, idempotent = true, ref = REF .. "cdn.get",
      doc = "Show one CDN domain.",
      params = { DOMAIN_ID },
    },
    {
      name = "cdn.delete", http = "DELETE", path = "/cdn/domain/{domain_id}",
      args = { "domain_id" }, ref = REF .. "cdn.delete",
      doc = "Delete a CDN domain.",
      params = { DOMAIN_ID },
    },
    {
      name = "cdn.flow", http = "GET", path = "/cdn/flow/{domain_id}", key = "cdn",
      args = { "domain_id" }, idempotent = true, ref = REF .. "cdn.flow",
      doc = "Traffic of a CDN domain.",
      params = { DOMAIN_ID },
    },
    {
      name = "cdn.recharge", http = "POST", path = "/recharge/{project_id}/cdn_flow", key = "cdn",
      args = { "*" }, ref = REF .. "cdn.recharge",
      doc = "Buy CDN traffic (GB) for the project (the token's tenant unless project_id is given).",
      params = {
        { "flow", "integer", required = true, min = 1, doc = "traffic to buy, GB" },
        { "project_id", "string", path = true, default_from = "tenant_id",
          doc = "project (tenant) id; default: the tenant of the token" },
      },
    },
    {
      name = "cdn.create_urls", http = "POST", path = "/cdn/urls", key = "cdn",
      args = { "urls" }, ref = REF .. "cdn.create_urls",
      doc = "Save common URLs (for later flushes and prefetches).",
      params = {
        { "urls", "list", required = true, format = "url", doc = "URLs" },
      },
    },
    {
      name = "cdn.list_urls", http = "GET", path = "/cdn/urls", key = "cdn", args = {},
      idempotent = true, ref = REF .. "cdn.list_urls",
      doc = "List the saved common URLs.",
    },
    {
      name = "cdn.delete_urls", http = "DELETE", path = "/cdn/urls/{url_id}",
      args = { "url_id" }, ref = REF .. "cdn.delete_urls",
      doc = "Delete a saved common URL.",
      params = {
        { "url_id", "string", required = true, path = true, doc = "id of a saved URL (pl.cdn:list_urls())" },
      },
    },
    {
      name = "cdn.cache_flush", http = "PUT", path = "/cdn/cache_flush", wrap = "domain", key = "cdn",
      args = { "domain_id", "urls", "dirs" }, idempotent = true, ref = REF .. "cdn.cache_flush",
      doc = "Purge URLs and directories of one domain from the CDN cache.",
      params = {
        { "domain_id", "integer", required = true, min = 1, doc = DOMAIN_ID.doc },
        { "urls", "list", format = "url", max_items = 100, doc = "URLs of the domain to purge" },
        { "dirs", "list", format = "url", max_items = 100, doc = "directories of the domain to purge (ending in /)" },
      },
      one_of = { "urls", "dirs" },
      batch = { kind = "refresh_url", param = "urls", max = 100, dir_max = 100, dir_param = "dirs",
                max_domains = 1,
                untracked = "Plcloud has no purge-status API: a cache_flush cannot be confirmed" },
    },
    {
      name = "cdn.request_log", http = "GET", path = "/cdn/request_log", key = "cdn",
      args = { "domain_id", "type", "start_at", "end_at" }, idempotent = true, ref = REF .. "cdn.request_log",
      doc = "Download links of a domain's request logs.",
      params = {
        { "domain_id", "integer", required = true, query = true, min = 1, doc = DOMAIN_ID.doc },
        { "type", "string", query = true, default = "cache", pattern = "^[%a_]+$",
          doc = "log type (a word), default \"cache\"" },
        { "start_at", "string", query = true, format = "isoformat",
          doc = "start time, YYYY-MM-DDThh:mm:ss (Python isoformat())" },
        { "end_at", "string", query = true, format = "isoformat",
          doc = "end time, YYYY-MM-DDThh:mm:ss (Python isoformat())" },
      },
    },
    {
      name = "cdn.prefetch", http = "PUT", path = "/cdn/prefetch", key = "cdn",
      args = { "urls" }, idempotent = true, ref = REF .. "cdn.prefetch",
      doc = "Prefetch URLs into the CDN cache (their domains must exist on Plcloud); answers a request_id.",
      params = {
        { "urls", "list", required = true, format = "url", max_items = 100, doc = "URLs to prefetch" },
      },
      batch = { kind = "prefetch", param = "urls", max = 100 },
    },
    {
      name = "cdn.prefetch_query", http = "GET", path = "/cdn/prefetch/{request_id}", key = "cdn",
      args = { "request_id" }, idempotent = true, ref = REF .. "cdn.prefetch_query",
      doc = "Progress of a prefetch.",
      params = {
        { "request_id", "string", required = true, path = true, doc = "the request_id pl.cdn:prefetch() answered" },
      },
    },
    ---------------------------------------------------------------------------
    -- ticket
    ---------------------------------------------------------------------------
    {
      name = "ticket.list", http = "GET", path = "/ticket/{user_id}/list", path_alt = "/ticket",
      key = "ticket", args = { "user_id" }, idempotent = true, ref = REF .. "ticket.list",
      doc = "List tickets (of one user when user_id is given).",
      params = {
        { "user_id", "string", path = true, doc = "user id; all of the account's tickets without it" },
      },
    },
    {
      name = "ticket.get", http = "GET", path = "/ticket/{ticket_id}", key = "ticket",
      args = { "ticket_id" }, idempotent = true, ref = REF .. "ticket.get",
      doc = "Show one ticket.",
      params = { TICKET_ID },
    },
    {
      name = "ticket.create", http = "POST", path = "/ticket", key = "ticket",
      args = { "summary", "description" }, ref = REF .. "ticket.create",
      doc = "Open a ticket.",
      params = {
        { "summary", "string", required = true, doc = "summary" },
        { "description", "string", required = true, doc = "description" },
      },
    },
    {
      name = "ticket.update", http = "PUT", path = "/ticket/{ticket_id}", key = "ticket",
      args = { "ticket_id", "status" }, idempotent = true, ref = REF .. "ticket.update",
      doc = "Set a ticket's status.",
      params = {
        TICKET_ID,
        { "status", "string", required = true, enum = { "accepted", "closed" }, doc = "accepted or closed" },
      },
    },
    {
      name = "ticket.list_reply", http = "GET", path = "/ticket/reply/{ticket_id}", key = "ticket",
      args = { "ticket_id" }, idempotent = true, ref = REF .. "ticket.list_reply",
      doc = "List a ticket's replies.",
      params = { TICKET_ID },
    },
    {
      name = "ticket.reply", http = "POST", path = "/ticket/reply/{ticket_id}", key = "ticket",
      args = { "ticket_id", "content" }, ref = REF .. "ticket.reply",
      doc = "Reply to a ticket.",
      params = {
        TICKET_ID,
        { "content", "string", required = true, doc = "the reply" },
      },
    },
  },
}
