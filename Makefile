# noisetun: one Makefile for the core library, the daemon, the CLI and the tests.
#   make              build everything
#   make check        install missing deps, build, run every test
#   make check SANITIZE=1   the same under AddressSanitizer + UBSan (also: make asan)

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := libsodium libb2 libmnl libcrypto

SANITIZE ?=
ifeq ($(SANITIZE),1)
BUILD   ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# LeakSanitizer ptraces the process at exit: the privsep worker stays dumpable, unfiltered.
SANDEFS := -DNT_SANITIZE
else
BUILD   ?= build/release
SANFLAGS :=
SANDEFS :=
endif

OPTFLAGS ?= -O2 -g
CFLAGS  := -std=gnu11 $(OPTFLAGS) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wvla -D_GNU_SOURCE -Iinclude -I. $(SANFLAGS) $(SANDEFS) \
           $(shell pkg-config --cflags $(PKGS) libnftnl libqrencode libpng 2>/dev/null) $(EXTRA_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# libnftnl: config mode's full-tunnel nftables guard (daemon/nft.c), as wg-quick's `nft -f`.
DAEMON_PKGS := libseccomp libnftnl
DAEMON_LIBS := $(shell pkg-config --libs $(DAEMON_PKGS) 2>/dev/null) -pthread
# libqrencode, libpng: `noisetun client add` draws the client's config as a QR code / PNG.
CLI_PKGS := libqrencode libpng
CLI_LIBS := $(shell pkg-config --libs $(CLI_PKGS) 2>/dev/null)

LIB_SRCS    := $(sort $(wildcard lib/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB         := $(BUILD)/libnoisetun.a

# common/: the jobs with I/O that both binaries do (files, names, the control socket);
# written once, linked into both (lib/ stays pure).
COMMON_SRCS := $(sort $(wildcard common/*.c))
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)

DAEMON_SRCS := $(sort $(wildcard daemon/*.c))
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS    := $(sort $(wildcard cli/*.c))
CLI_OBJS    := $(CLI_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS   := $(UNIT_SRCS:%.c=$(BUILD)/%)
UNIT_COMMON := $(filter-out tests/unit/test_%,$(wildcard tests/unit/*.c))
UNIT_COMMON_OBJS := $(UNIT_COMMON:%.c=$(BUILD)/%.o)

BINS := $(if $(DAEMON_SRCS),$(BUILD)/noisetund) $(if $(CLI_SRCS),$(BUILD)/noisetun)

.PHONY: all check unit net asan deps clean install bench anchors demo check-systemd check-slow
.SECONDARY:
all: $(LIB) $(BINS) $(UNIT_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/noisetund: $(DAEMON_OBJS) $(COMMON_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(DAEMON_LIBS)

$(BUILD)/noisetun: $(CLI_OBJS) $(COMMON_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CLI_LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(UNIT_COMMON_OBJS) $(COMMON_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

deps:
	@scripts/install-deps

# Deps first (a fresh machine has no pkg-config flags yet), then a clean recursive build
# so the flags above are computed with the libraries present.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit net

unit: $(UNIT_BINS)
	@BUILD=$(BUILD) scripts/run-unit $(UNIT_BINS)

net: $(BINS)
	@BUILD=$(BUILD) scripts/run-net

# The scenarios marked "# slow:" (a minute each, or close): not in make check, in CI.
check-slow: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) NT_SLOW=1 scripts/run-net

asan:
	@$(MAKE) --no-print-directory check SANITIZE=1

# make fuzz [FUZZ_SECONDS=n]: clang libFuzzer targets, each run n s after its regressions
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk run FUZZ_SECONDS=$(FUZZ_SECONDS)

# make bench [QUICK=1] [ANCHORS=0]: noisetund against Debian's wireguard-go and the modern
# anchors (scripts/anchors; built once per pinned version, skipped when their toolchain is
# missing; ANCHORS=0: do not build them, use those already cached), release build
# (bench/README.md)
bench: deps
	@$(MAKE) --no-print-directory SANITIZE= build/release/noisetund
	@$(if $(filter 0,$(ANCHORS)),,scripts/anchors build)
	@bench/run $(if $(filter 1,$(QUICK)),--quick)

# make anchors: build the pinned wireguard-go (Go module) and boringtun (crate) into
# /var/cache/noisetun-anchors, once per version; skips one whose toolchain is missing.
anchors:
	@scripts/anchors build

# Binaries, the units (their /usr/local/bin rewritten to $(PREFIX)/bin), example configs.
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/noisetun/examples
	$(if $(BINS),install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/)
	for u in noisetun@.service noisetun-worker@.service noisetun-worker@.socket; do \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' systemd/$$u >$(BUILD)/$$u && \
		install -m 0644 $(BUILD)/$$u $(DESTDIR)$(UNITDIR)/ || exit 1; \
	done
	install -m 0644 configs/*.conf $(DESTDIR)$(PREFIX)/share/noisetun/examples/
	install -d -m 0700 $(DESTDIR)/etc/noisetun

# The unit under a real systemd (PID 1 in an nspawn container; root; not part of check):
# a Debian bookworm root, cached in /var/cache/noisetun-test (tests/systemd/run.sh).
check-systemd: deps
	@scripts/install-systemd-test-deps
	@$(MAKE) --no-print-directory SANITIZE= $(BINS)
	@BUILD=$(BUILD) tests/systemd/run.sh

# Two sites in network namespaces, up from configs/site-*.conf, a ping across (root).
demo: deps
	@$(MAKE) --no-print-directory $(BINS)
	@BUILD=$(BUILD) scripts/demo

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(COMMON_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d) $(UNIT_COMMON_OBJS:.o=.d)
