# cdnkit - Makefile.  `make help` lists the targets.
# Overridable: CC, LUA, LUA_INCDIR, LUA_VERSION, PREFIX, DESTDIR, LUA_LIBDIR, LUA_SHAREDIR.

LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
CC          ?= cc
PKG_CONFIG  ?= pkg-config
LUA_INCDIR  ?= $(shell $(PKG_CONFIG) --variable=includedir lua$(LUA_VERSION) 2>/dev/null || echo /usr/include)/lua$(LUA_VERSION)
PREFIX      ?= /usr/local
LUA_LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR?= $(PREFIX)/share/lua/$(LUA_VERSION)
VERSION     := 0.1.0

# -Werror only where we develop and test (make check/test/sanitize and CI set
# WERROR=-Werror); a packager's build with a newer compiler must not fail on a
# new warning.
WERROR  ?=
WARN    = -Wall -Wextra $(WERROR) -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
          -Wpointer-arith -Wformat=2
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
             -I$(LUA_INCDIR) -DCDNKIT_VERSION='"$(VERSION)"'
LIBS    = -lcurl -lcrypto

SRC     = $(sort $(wildcard src/*.c))
HDR     = $(sort $(wildcard src/*.h))
BUILD   = build/$(LUA_VERSION)
SO      = $(BUILD)/cdnkit/core.so
ASAN_SO = build/asan/cdnkit/core.so
JIT_SO  = build/5.1/cdnkit/core.so
JIT_INC = /usr/include/luajit-2.1

DEBS = lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev lua-cjson lua-busted \
       pkg-config gcc make valgrind python3 ca-certificates binutils locales luarocks clang \
       luajit2 libluajit2-5.1-dev

FUZZ_BIN = build/fuzz/json_fuzz
FUZZ_SECONDS ?= 20

.PHONY: fuzz all deps check test demo sanitize valgrind bench install uninstall clean help luajit

all: $(SO)

help:
	@echo "cdnkit $(VERSION) - targets:"
	@echo "  make demo      install missing Debian packages, build, start the local vendor"
	@echo "                 emulators and run examples/quickstart.lua and"
	@echo "                 examples/multi_cdn_purge.lua against them"
	@echo "  make check     install missing packages, build, run the whole test suite"
	@echo "                 (emulator selftest, busted specs on Lua 5.4 and LuaJIT and under"
	@echo "                 ASan/UBSan, valgrind, luarocks make, make install, the demo)"
	@echo "  make           build $(SO)"
	@echo "  make test      emulator selftest + busted specs (no install step, no sanitizers)"
	@echo "  make sanitize  the specs against an ASan/UBSan build of the core"
	@echo "  make luajit    build the core against LuaJIT (Lua 5.1 API) into $(JIT_SO)"
	@echo "  make valgrind  a core workload under valgrind, failing on any leak or error"
	@echo "  make fuzz      libFuzzer on the JSON codec for FUZZ_SECONDS (20)"
	@echo "  make bench     speed and memory measurements (ratios, see bench/README.md)"
	@echo "  make install   install into PREFIX=$(PREFIX) (DESTDIR honoured)"
	@echo "  make deps      only install the missing Debian packages (needs root)"
	@echo "  make clean     remove build/"

# Install what is missing, quickly when everything is there already.
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

$(SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(SRC) $(LIBS)

# the same C against the Lua 5.1 API of LuaJIT (OpenResty)
$(JIT_SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(subst -I$(LUA_INCDIR),-I$(JIT_INC),$(ALL_CFLAGS)) -shared -o $@ $(SRC) $(LIBS)

$(ASAN_SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined -shared -o $@ $(SRC) $(LIBS)

# libFuzzer on the JSON codec (links liblua: a test binary, not the module)
$(FUZZ_BIN): fuzz/json_fuzz.c src/json.c src/json.h src/compat.h
	@mkdir -p $(dir $@)
	clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -I$(LUA_INCDIR) -o $@ fuzz/json_fuzz.c src/json.c -llua$(LUA_VERSION) -lm

fuzz: deps $(FUZZ_BIN)
	@mkdir -p build/fuzz/corpus
	@$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  build/fuzz/corpus fuzz/corpus >build/fuzz/log 2>&1; rc=$$?; \
	  grep -E "^Done|ERROR|SUMMARY" build/fuzz/log; exit $$rc

test: $(SO)
	@CDNKIT_CPATH="$(BUILD)/?.so" LUA=$(LUA) sh spec/run.sh

check: deps $(SO) $(JIT_SO)
	@CDNKIT_CPATH="$(BUILD)/?.so" LUA=$(LUA) SANITIZE=1 VALGRIND=1 LUAJIT=1 PACKAGING=1 DEMO=1 FUZZ=1 sh spec/run.sh

luajit: deps $(JIT_SO)

sanitize: deps $(ASAN_SO)
	@CDNKIT_CPATH="build/asan/?.so" LUA=$(LUA) ASAN=1 sh spec/run.sh

valgrind: deps $(SO)
	@CDNKIT_CPATH="$(BUILD)/?.so" LUA=$(LUA) sh spec/valgrind.sh

demo: deps $(SO)
	@CDNKIT_CPATH="$(BUILD)/?.so" LUA=$(LUA) sh examples/demo.sh

bench: deps $(SO)
	@CDNKIT_CPATH="$(BUILD)/?.so" LUA=$(LUA) sh bench/run.sh

install: $(SO)
	install -d $(DESTDIR)$(LUA_LIBDIR)/cdnkit $(DESTDIR)$(LUA_SHAREDIR)/cdnkit/apis \
	  $(DESTDIR)$(LUA_SHAREDIR)/cdnkit/vendors $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(SO) $(DESTDIR)$(LUA_LIBDIR)/cdnkit/core.so
	install -m 0644 lua/cdnkit/*.lua $(DESTDIR)$(LUA_SHAREDIR)/cdnkit/
	install -m 0644 lua/cdnkit/apis/*.lua $(DESTDIR)$(LUA_SHAREDIR)/cdnkit/apis/
	install -m 0644 lua/cdnkit/vendors/*.lua $(DESTDIR)$(LUA_SHAREDIR)/cdnkit/vendors/
	install -m 0755 bin/cdnkit $(DESTDIR)$(PREFIX)/bin/cdnkit

uninstall:
	rm -rf $(DESTDIR)$(LUA_LIBDIR)/cdnkit $(DESTDIR)$(LUA_SHAREDIR)/cdnkit $(DESTDIR)$(PREFIX)/bin/cdnkit

clean:
	rm -rf build
