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
  HIREDIS = { header = "hiredis/hiredis.h" }, -- core.redis (the fleet purge queue)
}
-- The Makefile builds the C core and installs every module under lua/cdnkit/
-- (whatever folder it is in: there is no module list to keep here); without
-- WERROR a packager's newer compiler cannot fail the build on a new warning.
-- Both passes get the Lua headers luarocks targets (LUA_INCDIR: Lua 5.4's
-- with --lua-version 5.4, Lua 5.1's or LuaJIT's with 5.1); the Makefile takes
-- the Lua version from them and builds in build/luarocks/<version>, rebuilding
-- whenever the headers, compiler or flags differ from the last build there, so
-- a 5.1 core is never installed for 5.4 or the other way round.
build = {
  type = "make",
  build_target = "all",
  variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    BUILD_ROOT = "build/luarocks",
  },
  install_target = "install-lib",
  install_variables = {
    PREFIX = "$(PREFIX)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHAREDIR = "$(LUADIR)",
  },
  -- luarocks wraps it in a script that runs its Lua with the tree's paths
  install = {
    bin = { cdnkit = "bin/cdnkit" },
  },
}
test = {
  type = "busted",
}
