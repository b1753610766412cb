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
-- The Makefile builds the C core and installs every module under lua/cdnkit/
-- (whatever folder it is in: there is no module list to keep here); without
-- WERROR a packager's newer compiler cannot fail the build on a new warning.
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    BUILD = "build/luarocks",
  },
  install_target = "install-lib",
  install_variables = {
    BUILD = "build/luarocks",
    PREFIX = "$(PREFIX)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHAREDIR = "$(LUADIR)",
  },
  install = {
    bin = { cdnkit = "bin/cdnkit" },
  },
}
test = {
  type = "busted",
}
