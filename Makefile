# Driven by build.sh, which sources toolchains/<target> and passes:
#   BUILD=build/<target> CC=... TARGET_CFLAGS=... TARGET_LDFLAGS=... BIG_ENDIAN=0|1
# Objects of the dependencies and of our code live under $(BUILD); a second
# `make` with nothing changed does nothing.
BUILD ?= build/x86_64-linux-musl
CC ?= musl-gcc
TARGET_CFLAGS ?=
TARGET_LDFLAGS ?= -static
BIG_ENDIAN ?= 0
VERSION := $(shell cat VERSION)
# Certificates are checked against the build date when the clock is older.
BUILD_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

WSLAY := deps/src/wslay
BEARSSL := deps/src/bearssl

# -flto=auto: our own code only (DEP_CFLAGS filters it out, so the archives of
# wslay and BearSSL need no LTO-aware ar); about 3 KiB off the agent.
OPT ?= -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables \
       -fvisibility=hidden -flto=auto
STRIP_LDFLAG ?= -s
DEP_CFLAGS := $(filter-out -flto=auto,$(OPT)) $(TARGET_CFLAGS) $(EXTRA_CFLAGS) -DNDEBUG -w
ENDIAN := $(if $(filter 1,$(BIG_ENDIAN)),-DWORDS_BIGENDIAN=1,)
WSLAY_CFLAGS := $(DEP_CFLAGS) -DHAVE_ARPA_INET_H=1 -DHAVE_NETINET_IN_H=1 $(ENDIAN) \
                -I$(BUILD)/deps/include -I$(WSLAY)/lib/includes -I$(WSLAY)/lib
BEARSSL_CFLAGS := $(DEP_CFLAGS) -I$(BEARSSL)/inc -I$(BEARSSL)/src
CFLAGS_OWN := $(OPT) $(TARGET_CFLAGS) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
              -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
              -Wno-unused-parameter $(EXTRA_CFLAGS) \
              -DTC_VERSION='"$(VERSION)"' -DTC_BUILD_EPOCH=$(BUILD_EPOCH) \
              -DTC_TARGET='"$(notdir $(BUILD))"' \
              -I$(BUILD)/deps/include -I$(WSLAY)/lib/includes -I$(BEARSSL)/inc
# One read-only+exec segment (no page padding between code and data), no
# relro (nothing to protect in a static binary), no build id: about 5 KiB.
# A small common page size: ld otherwise may start the data segment on a
# page boundary in the file to save a page of memory, padding the file
# with up to a page of zeros (2.9 KiB of the agent, depending on where its
# code happens to end).
LDFLAGS_OWN := $(TARGET_LDFLAGS) -Wl,--gc-sections -Wl,-z,noseparate-code -Wl,-z,norelro \
               -Wl,-z,common-page-size=64 -Wl,--build-id=none $(EXTRA_LDFLAGS)

# Objects depend on the flags they were built with: a changed flag rebuilds,
# an unchanged one does nothing.
FLAGS_STAMP := $(BUILD)/flags
FLAGS_NOW := $(CC) | $(WSLAY_CFLAGS) | $(BEARSSL_CFLAGS) | $(CFLAGS_OWN) | $(LDFLAGS_OWN) | $(STRIP_LDFLAG)
ifneq ($(file <$(FLAGS_STAMP)),$(FLAGS_NOW))
$(shell mkdir -p $(BUILD))
$(file >$(FLAGS_STAMP),$(FLAGS_NOW))
endif

WSLAY_SRC := $(wildcard $(WSLAY)/lib/*.c)
BEARSSL_SRC := $(shell find $(BEARSSL)/src -name '*.c' 2>/dev/null | LC_ALL=C sort)
# src/common: what both programs use; src/agent: the agent's own modules.
# A program's objects see src/common and their own folder only.
COMMON_SRC := $(wildcard src/common/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)
SERVER_SRC := $(wildcard src/server/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)

WSLAY_OBJ := $(patsubst $(WSLAY)/lib/%.c,$(BUILD)/deps/wslay/%.o,$(WSLAY_SRC))
BEARSSL_OBJ := $(patsubst $(BEARSSL)/src/%.c,$(BUILD)/deps/bearssl/%.o,$(BEARSSL_SRC))
COMMON_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(COMMON_SRC))
AGENT_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(AGENT_SRC))
SERVER_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SERVER_SRC))
OWN_OBJ := $(COMMON_OBJ) $(AGENT_OBJ)
LIB_OBJ := $(filter-out $(BUILD)/obj/agent/main.o,$(OWN_OBJ))
UNIT_OBJ := $(patsubst tests/unit/%.c,$(BUILD)/unit/%.o,$(UNIT_SRC))
LIBS := $(BUILD)/deps/libwslay.a $(BUILD)/deps/libbearssl.a
# The benchmark's tools (tests/bench, driven by bench.py): the runner-side
# peer, a static test tool built like the agent but not stripped, the
# local services and the fleet of idle agents (tunnel-server scenarios),
# host tools built with the host's compiler.
HOST_CC ?= gcc
BENCH := $(BUILD)/bench/peer $(BUILD)/bench/svc $(BUILD)/bench/fleet

all: $(BUILD)/tunnel-client $(BUILD)/tunnel-server $(BUILD)/unit-tests

$(BUILD)/deps/include/wslay/wslayver.h:
	@mkdir -p $(dir $@)
	printf '#ifndef WSLAYVER_H\n#define WSLAYVER_H\n#define WSLAY_VERSION "1.1.1"\n#endif\n' > $@

$(BUILD)/deps/wslay/%.o: $(WSLAY)/lib/%.c $(BUILD)/deps/include/wslay/wslayver.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(WSLAY_CFLAGS) -c $< -o $@

$(BUILD)/deps/bearssl/%.o: $(BEARSSL)/src/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(CC) $(BEARSSL_CFLAGS) -c $< -o $@

$(BUILD)/deps/libwslay.a: $(WSLAY_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/deps/libbearssl.a: $(BEARSSL_OBJ)
	rm -f $@ && $(AR) rcs $@ $^
	@echo "bearssl: $(words $(BEARSSL_OBJ)) objects"

# src/DIR/x.c sees src/common and src/DIR.
$(BUILD)/obj/%.o: src/%.c $(BUILD)/deps/include/wslay/wslayver.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OWN) -Isrc/common -Isrc/$(patsubst %/,%,$(dir $*)) -MMD -MP -c $< -o $@

$(BUILD)/unit/%.o: tests/unit/%.c $(BUILD)/deps/include/wslay/wslayver.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OWN) -Isrc/common -Isrc/agent -MMD -MP -c $< -o $@

$(BUILD)/tunnel-client: $(OWN_OBJ) $(LIBS) $(FLAGS_STAMP)
	$(CC) $(OPT) $(TARGET_CFLAGS) $(LDFLAGS_OWN) $(STRIP_LDFLAG) -o $@ $(OWN_OBJ) $(LIBS)

$(BUILD)/tunnel-server: $(COMMON_OBJ) $(SERVER_OBJ) $(LIBS) $(FLAGS_STAMP)
	$(CC) $(OPT) $(TARGET_CFLAGS) $(LDFLAGS_OWN) $(STRIP_LDFLAG) -o $@ $(COMMON_OBJ) $(SERVER_OBJ) $(LIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(LIB_OBJ) $(LIBS)
	$(CC) $(TARGET_CFLAGS) $(LDFLAGS_OWN) -o $@ $(UNIT_OBJ) $(LIB_OBJ) $(LIBS)

bench: $(BENCH)

# The peer plays the runner: the server's TLS side serves its wss://.
PEER_OBJ := $(COMMON_OBJ) $(BUILD)/obj/server/tls_server.o
$(BUILD)/bench/peer: tests/bench/peer.c $(PEER_OBJ) $(LIBS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OWN) -Isrc/common -Isrc/server -MMD -MP $(LDFLAGS_OWN) -o $@ $< $(PEER_OBJ) $(LIBS)

$(BUILD)/bench/svc: tests/bench/svc.c
	@mkdir -p $(dir $@)
	$(HOST_CC) -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/bench/fleet: tests/bench/fleet.c
	@mkdir -p $(dir $@)
	$(HOST_CC) -O2 -Wall -Wextra -Werror -o $@ $<

-include $(OWN_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/bench/peer.d

.PHONY: all bench
