# The libFuzzer targets (clang, ASan + UBSan), driven by `make fuzz` in the top Makefile.
#   make -f tests/fuzz/fuzz.mk build     build every target (and the seed generator)
#   make -f tests/fuzz/fuzz.mk run       build, replay tests/fuzz/regressions, then fuzz each
#                                        target FUZZ_SECONDS (see tests/fuzz/README.md)
# Each target compiles the core sources itself, instrumented; nothing is shared with the
# normal build.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SEED    ?= 1
FUZZ_TARGETS ?= fuzz_datagram fuzz_tun fuzz_uapi fuzz_keys fuzz_config fuzz_metrics
FUZZ_FLAGS   ?=
O            := build/fuzz

PKGS     := libsodium libb2 libcrypto
FLAGS    := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Wall -Wextra -fno-omit-frame-pointer \
            -fno-sanitize-recover=all $(shell pkg-config --cflags $(PKGS))
LIBS     := $(shell pkg-config --libs $(PKGS))
CORE     := $(wildcard lib/*.c)
DEPS     := $(CORE) $(wildcard include/noisetun/*.h) tests/fuzz/harness.h tests/fuzz/fuzz.mk
FUZZ     := $(FUZZ_CC) $(FLAGS) -fsanitize=fuzzer,address,undefined

.PHONY: build run toolchain
build: $(addprefix $(O)/,$(FUZZ_TARGETS)) $(O)/gen_seeds

toolchain:
	@mkdir -p $(O)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)(n & 0); }\n' \
		> $(O)/toolchain.c
	@$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $(O)/toolchain $(O)/toolchain.c 2>/dev/null || { \
		echo "fuzz: '$(FUZZ_CC) -fsanitize=fuzzer' does not link; install clang and libclang-rt-dev" \
		     "(scripts/install-deps)" >&2; exit 1; }

$(O)/fuzz_datagram $(O)/fuzz_tun: $(O)/%: tests/fuzz/%.c tests/fuzz/receiver.c $(DEPS) | toolchain
	$(FUZZ) -o $@ $(filter %.c,$^) $(LIBS)

$(O)/fuzz_keys $(O)/fuzz_metrics: $(O)/%: tests/fuzz/%.c $(DEPS) | toolchain
	$(FUZZ) -o $@ $(filter %.c,$^) $(LIBS)

# lib/uapi.c checks a peer name (noisetun_name=) with lib/config.c's nt_config_valid_name.
$(O)/fuzz_uapi: tests/fuzz/fuzz_uapi.c lib/config.c $(DEPS) | toolchain
	$(FUZZ) -o $@ $(filter %.c,$^) $(LIBS)

# lib/config.c is new: until it exists and compiles, this target is skipped, not failed.
$(O)/fuzz_config: tests/fuzz/fuzz_config.c $(wildcard lib/config.c) $(DEPS) | toolchain
	@if [ ! -f lib/config.c ]; then \
		echo "fuzz_config: SKIPPED: lib/config.c does not exist yet"; \
	elif ! { echo "$(FUZZ) -o $@ $(filter %.c,$^) $(LIBS)"; $(FUZZ) -o $@ $(filter %.c,$^) $(LIBS); }; then \
		rm -f $@; echo "fuzz_config: SKIPPED: lib/config.c does not compile"; \
	fi

# Not a fuzzer: writes and checks the fuzz_datagram seeds.
$(O)/gen_seeds: tests/fuzz/gen_seeds.c tests/fuzz/receiver.c $(DEPS) | toolchain
	$(FUZZ_CC) $(FLAGS) -fsanitize=address,undefined -o $@ $(filter %.c,$^) $(LIBS)

run: build
	@rm -rf $(O)/seeds && $(O)/gen_seeds $(O)/seeds
	@O=$(O) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) FUZZ_FLAGS="$(FUZZ_FLAGS)" \
		tests/fuzz/run $(FUZZ_TARGETS)
