# The fuzz targets, linked against the objects build.sh made in $(BUILD)/obj
# with the fuzz flags (ASan, UBSan, -fsanitize=fuzzer-no-link). Whole-program
# targets run the real objects with their libc calls renamed to fz_os's fakes
# (os.syms); every target links the same renamed archives, so a pure parser
# target pulls in only what it calls.
#   make -f tests/fuzz/fuzz.mk BUILD=build/fuzz [TARGETS...]
BUILD ?= build/fuzz
FZ := $(BUILD)/fz
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -g
CFLAGS_FZ := -O1 $(SAN) -fsanitize=fuzzer-no-link -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
             -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers \
             -DTC_VERSION='"fuzz"' -DTC_TARGET='"fuzz"' \
             -I$(BUILD)/deps/include -Ideps/src/wslay/lib/includes -Ideps/src/bearssl/inc \
             -Isrc/common -Itests/fuzz

# Targets on the agent's modules, and on the server's (their headers share
# names: config.h).
AGENT_TARGETS := fuzz_parsers fuzz_agent fuzz_proxy fuzz_allow fuzz_agent_options fuzz_resolve fuzz_tls_client \
                 fuzz_tls_session
SERVER_TARGETS := fuzz_server fuzz_hs_request fuzz_http fuzz_server_config fuzz_token_file
TARGETS := $(AGENT_TARGETS) $(SERVER_TARGETS)

COMMON_O := $(patsubst src/%.c,%.o,$(wildcard src/common/*.c))
AGENT_O := $(filter-out agent/main.o,$(patsubst src/%.c,%.o,$(wildcard src/agent/*.c)))
SERVER_O := $(filter-out server/main.o,$(patsubst src/%.c,%.o,$(wildcard src/server/*.c)))
LIBS := $(BUILD)/deps/libwslay.a $(BUILD)/deps/libbearssl.a

all: $(addprefix $(BUILD)/,$(TARGETS))

$(FZ)/os/%.o: $(BUILD)/obj/%.o tests/fuzz/os.syms
	@mkdir -p $(dir $@)
	objcopy --redefine-syms=tests/fuzz/os.syms $< $@

$(FZ)/libcommon.a: $(addprefix $(FZ)/os/,$(COMMON_O))
	rm -f $@ && ar rcs $@ $^
$(FZ)/libagent.a: $(addprefix $(FZ)/os/,$(AGENT_O))
	rm -f $@ && ar rcs $@ $^
$(FZ)/libserver.a: $(addprefix $(FZ)/os/,$(SERVER_O))
	rm -f $@ && ar rcs $@ $^

$(FZ)/agent/%.o: tests/fuzz/%.c tests/fuzz/*.h
	@mkdir -p $(dir $@)
	clang $(CFLAGS_FZ) -Isrc/agent -c $< -o $@
$(FZ)/server/%.o: tests/fuzz/%.c tests/fuzz/*.h
	@mkdir -p $(dir $@)
	clang $(CFLAGS_FZ) -Isrc/server -c $< -o $@
# The fakes and oracles: sanitized, but without coverage (not the code
# under test; their branches would only distract the fuzzer).
$(FZ)/%.o: tests/fuzz/%.c tests/fuzz/*.h
	@mkdir -p $(dir $@)
	clang $(filter-out -fsanitize=fuzzer-no-link -O1,$(CFLAGS_FZ)) -O2 -c $< -o $@

HELPERS := $(FZ)/fz_os.o $(FZ)/fz_sock.o $(FZ)/fz_frames.o

# fuzz_tls_session runs the server's half of TLS against the agent's.
$(FZ)/agent/fuzz_tls_session.o: CFLAGS_FZ += -idirafter src/server
$(BUILD)/fuzz_tls_session: EXTRA_O := $(FZ)/os/server/tls_server.o
$(BUILD)/fuzz_tls_session: $(FZ)/os/server/tls_server.o

$(addprefix $(BUILD)/,$(AGENT_TARGETS)): $(BUILD)/%: $(FZ)/agent/%.o $(HELPERS) $(FZ)/libagent.a $(FZ)/libcommon.a $(LIBS)
	clang $(SAN) -fsanitize=fuzzer -o $@ $< $(HELPERS) $(EXTRA_O) -Wl,--start-group $(FZ)/libagent.a \
		$(FZ)/libcommon.a $(LIBS) -Wl,--end-group
$(addprefix $(BUILD)/,$(SERVER_TARGETS)): $(BUILD)/%: $(FZ)/server/%.o $(HELPERS) $(FZ)/libserver.a $(FZ)/libcommon.a $(LIBS)
	clang $(SAN) -fsanitize=fuzzer -o $@ $< $(HELPERS) -Wl,--start-group $(FZ)/libserver.a \
		$(FZ)/libcommon.a $(LIBS) -Wl,--end-group

.PHONY: all
.SECONDARY:
