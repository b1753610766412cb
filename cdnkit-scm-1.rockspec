rockspec_format = "3.0"
package = "cdnkit"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "Drive the HTTP APIs of CDN vendors (Alibaba Cloud, Tencent Cloud, ...) from Lua",
  detailed = [[
A C core (libcurl, OpenSSL, JSON) with one userdata client per vendor and a
method for every documented API, declared as data; Lua helpers for
pagination, batched concurrent purges, retries and multi-CDN purges.
]],
  license = "MIT",
  labels = { "cdn", "http", "aliyun", "qcloud", "purge" },
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  CURL = { library = "curl" },   -- Debian keeps curl.h in a multiarch include dir
  OPENSSL = { header = "openssl/evp.h" },
}
build = {
  type = "builtin",
  modules = {
    ["cdnkit.core"] = {
      sources = { "src/core.c", "src/client.c", "src/json.c", "src/util.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["cdnkit"] = "lua/cdnkit/init.lua",
    ["cdnkit.batch"] = "lua/cdnkit/batch.lua",
    ["cdnkit.cli"] = "lua/cdnkit/cli.lua",
    ["cdnkit.client"] = "lua/cdnkit/client.lua",
    ["cdnkit.errors"] = "lua/cdnkit/errors.lua",
    ["cdnkit.helptext"] = "lua/cdnkit/helptext.lua",
    ["cdnkit.pace"] = "lua/cdnkit/pace.lua",
    ["cdnkit.paginate"] = "lua/cdnkit/paginate.lua",
    ["cdnkit.retry"] = "lua/cdnkit/retry.lua",
    ["cdnkit.validate"] = "lua/cdnkit/validate.lua",
    ["cdnkit.apis.aliyun"] = "lua/cdnkit/apis/aliyun.lua",
    ["cdnkit.apis.qcloud"] = "lua/cdnkit/apis/qcloud.lua",
    ["cdnkit.vendors.aliyun"] = "lua/cdnkit/vendors/aliyun.lua",
    ["cdnkit.vendors.qcloud"] = "lua/cdnkit/vendors/qcloud.lua",
  },
  install = {
    bin = { cdnkit = "bin/cdnkit" },
  },
}
test = {
  type = "busted",
}
