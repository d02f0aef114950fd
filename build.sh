#!/usr/bin/env bash
# tunnel-client build driver.
#
#   ./build.sh [build] [--target NAME]   build build/NAME/tunnel-client (default x86_64-linux-musl)
#   ./build.sh test [--target NAME]      build, check the C style, run unit + integration tests
#   ./build.sh cross [--target NAME]...  build every target in toolchains/ (or those named)
#   ./build.sh test-cross [--target NAME]... build and test every target (under qemu)
#   ... -- PYTEST_ARGS                   extra pytest arguments, e.g. -- -m core
#   ./build.sh sanitize                  unit + integration tests under ASan/UBSan (glibc gcc)
#   ./build.sh valgrind                  integration tests with the agent under valgrind
#   ./build.sh fuzz [-- TARGET...]       libFuzzer, every tests/fuzz target ($FUZZ_SECONDS each, default 30)
#   ./build.sh soak [MINUTES] [-- --tls] agent + tunnel-server under random load and faults (default 2)
#   ./build.sh demo                      run the agent against a local runner stand-in
#   ./build.sh demo-server               tunnel-server + the agent: fetch a page through a public port
#   ./build.sh bench [--compare AGENT]   benchmark the agent (side by side with AGENT)
#   ... bench -- BENCH_ARGS              e.g. -- --quick, --runs 5, --only up,rr (tests/bench/bench.py)
#   ./build.sh package [--target NAME]...  build, then dist/: .ipk, .deb, OCI archives, SHA256SUMS
#   ./build.sh clean                     remove build/
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
caller=$PWD
cd "$top"
PY=/usr/bin/python3
DEFAULT_TARGET=x86_64-linux-musl
JOBS=$(nproc 2>/dev/null || echo 2)

usage() {
	sed -n '3,18p' "$0" | sed 's/^# \{0,1\}//' >&2
	echo "targets: $(targets | tr '\n' ' ')" >&2
	exit 2
}
die() { echo "build.sh: $*" >&2; exit 1; }
targets() { (cd toolchains && ls); }

# ensure_deps KIND...: make sure the host has what KIND needs (build, test,
# cross); run the install script by itself when we can, else say how.
ensure_deps() {
	local missing=() k
	for k in "$@"; do
		case $k in
		build)
			command -v "${CC%% *}" >/dev/null || missing+=("${CC%% *}")
			local n
			for n in $NEEDS; do
				case $n in
				/*) [ -e "$n" ] || missing+=("$n") ;;
				*) command -v "$n" >/dev/null || missing+=("$n") ;;
				esac
			done
			command -v make >/dev/null || missing+=(make)
			command -v readelf >/dev/null || missing+=(readelf)
			if [ ! -f deps/src/wslay/.verified ] || [ ! -f deps/src/bearssl/.verified ]; then
				apt-cache showsrc bearssl 2>/dev/null | grep '^Package:' >/dev/null || missing+=("deb-src entries")
			fi
			;;
		fuzz)
			command -v clang >/dev/null || missing+=(clang)
			;;
		test)
			[ -x "$PY" ] && "$PY" -c 'import pytest, websockets' 2>/dev/null || missing+=("python3-pytest python3-websockets")
			command -v openssl >/dev/null || missing+=(openssl)
			# tests/integration/test_packages.py
			for n in lintian systemd-analyze skopeo umoci podman runc; do
				command -v "$n" >/dev/null || missing+=("$n")
			done
			if [ -n "${RUN:-}" ]; then command -v "${RUN%% *}" >/dev/null || missing+=("$RUN"); fi
			;;
		esac
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	local cmd="scripts/install-build-deps.sh"
	[ "${CROSS:-0}" = 1 ] && cmd="$cmd --cross"
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "build.sh: missing ${missing[*]}; running $cmd" >&2
		# shellcheck disable=SC2086
		$cmd >&2 || die "$cmd failed"
	else
		die "missing ${missing[*]}; run as root: sudo $top/$cmd"
	fi
}

# load_target NAME: source its toolchain file into the environment.
load_target() {
	local t=$1
	[ -f "toolchains/$t" ] || { echo "build.sh: unknown target '$t'" >&2; usage; }
	CC='' TARGET_CFLAGS='' TARGET_LDFLAGS='' BIG_ENDIAN=0 RUN='' ELF_MACHINE='' PREPARE=''
	AR=ar NEEDS='' ELF_EXPECT='' ELF_REJECT='' OBJDUMP='' FPU_INSN=''
	# shellcheck disable=SC1090
	. "toolchains/$t"
	TARGET=$t
	BUILD=build/$t
	CROSS=0
	[ "$t" = "$DEFAULT_TARGET" ] || CROSS=1
}

fetch_deps() { scripts/fetch-deps.sh; }

run_make() {
	make -s -j"$JOBS" BUILD="$BUILD" CC="$CC" AR="$AR" TARGET_CFLAGS="$TARGET_CFLAGS" \
		TARGET_LDFLAGS="$TARGET_LDFLAGS" BIG_ENDIAN="$BIG_ENDIAN" "$@"
}

# (No `grep -q` after a pipe here: with pipefail, the writer's SIGPIPE when
# grep -q stops early would turn a match into a failure.)
# check_static BIN: no program interpreter, no DT_NEEDED, stripped, and the
# target's machine, byte order, ELF_EXPECT/ELF_REJECT attributes (float ABI,
# CPU arch) and, with FPU_INSN, no FPU instruction in the disassembly.
check_static() {
	local bin=$1 hdr want item items
	[ -f "$bin" ] || die "$bin was not built"
	if readelf -lW "$bin" | grep 'Requesting program interpreter' >/dev/null; then
		die "$bin has a program interpreter: not static"
	fi
	if readelf -dW "$bin" 2>/dev/null | grep '(NEEDED)' >/dev/null; then
		die "$bin has DT_NEEDED entries: not static"
	fi
	if readelf -SW "$bin" | grep ' \.symtab ' >/dev/null; then
		die "$bin is not stripped"
	fi
	hdr=$(readelf -hAW "$bin")
	if [ -n "$ELF_MACHINE" ] && ! grep -q "Machine:.*$ELF_MACHINE" <<<"$hdr"; then
		die "$bin is not a $ELF_MACHINE binary: $(grep Machine: <<<"$hdr")"
	fi
	want="little endian"
	[ "$BIG_ENDIAN" = 1 ] && want="big endian"
	grep -q "Data:.*$want" <<<"$hdr" || die "$bin is not $want (BIG_ENDIAN=$BIG_ENDIAN): $(grep Data: <<<"$hdr")"
	IFS=';' read -ra items <<<"$ELF_EXPECT"
	for item in "${items[@]}"; do
		grep -qF "$item" <<<"$hdr" || die "$bin: readelf -hA does not show '$item'"
	done
	IFS=';' read -ra items <<<"$ELF_REJECT"
	for item in "${items[@]}"; do
		if grep -qF "$item" <<<"$hdr"; then die "$bin: readelf -hA shows '$item'"; fi
	done
	if [ -n "$FPU_INSN" ] && "$OBJDUMP" -d "$bin" | grep -E "$FPU_INSN" >/dev/null; then
		die "$bin contains FPU instructions ($OBJDUMP -d $bin | grep -E '$FPU_INSN')"
	fi
}

size_of() { stat -c %s "$1"; }

build_target() {
	load_target "$1"
	ensure_deps build
	if [ -n "$PREPARE" ]; then eval "$PREPARE" || die "$TARGET: PREPARE failed: $PREPARE"; fi
	fetch_deps || die "fetching the dependencies failed"
	run_make all || die "$TARGET: make failed"
	check_static "$BUILD/tunnel-client"
	printf 'build.sh: %s/tunnel-client: static, stripped, %s bytes (%s KiB)\n' \
		"$BUILD" "$(size_of "$BUILD/tunnel-client")" "$(( ($(size_of "$BUILD/tunnel-client") + 1023) / 1024 ))"
}

# build_bench: the benchmark's peer and services (tests/bench) for the host
# target, in build/$DEFAULT_TARGET/bench; the agent binary is not touched.
build_bench() {
	(
		load_target "$DEFAULT_TARGET"
		ensure_deps build
		fetch_deps
		run_make bench
	) || { echo "build.sh: make bench failed" >&2; return 1; }
}

# run_tests [PYTEST_ARGS...]: unit tests then the integration suite for the
# loaded target; returns non-zero if either failed. The output is also kept
# in $BUILD/test.log for the summary table. When the agent runs natively the
# benchmark tools are built first (tests/integration/test_bench.py uses them).
run_tests() {
	ensure_deps test
	local rc=0 log=$BUILD/test.log
	: >"$log"
	if [ -z "$RUN" ]; then
		build_bench 2>&1 | tee -a "$log" || rc=1
	fi
	echo "== unit tests ($TARGET)" | tee -a "$log"
	# shellcheck disable=SC2086
	$RUN "$BUILD/unit-tests" 2>&1 | tee -a "$log" || rc=1
	echo "== integration tests ($TARGET)" | tee -a "$log"
	TUNNEL_CLIENT="$top/$BUILD/tunnel-client" TUNNEL_CLIENT_RUN="$RUN" \
		TUNNEL_SERVER="$top/$BUILD/tunnel-server" TUNNEL_SERVER_RUN="$RUN" \
		"$PY" -m pytest -q -p no:cacheprovider tests/integration "$@" 2>&1 | tee -a "$log" || rc=1
	return $rc
}

# no_findings DIR: the sanitizer or valgrind reports written to DIR (one
# file per process that had something to say); fails, printing them, if any.
no_findings() {
	local dir=$1 f n=0
	for f in "$dir"/*; do
		[ -s "$f" ] || continue
		n=$((n + 1))
		echo "== finding: $f"
		head -n 40 "$f"
	done
	if [ "$n" -gt 0 ]; then
		echo "findings: $n report file(s) in $dir" >&2
		return 1
	fi
	echo "findings: none (reports would be in $dir)"
}

# sum_counts WORDS LINE: the sum of the "N word" counts in LINE for WORDS (a regex).
sum_counts() { grep -oE "[0-9]+ ($1)\b" <<<"$2" | awk '{s += $1} END {print s + 0}'; }

# test_counts LOG: "UNIT_PASSED UNIT_FAILED PASSED FAILED NOT_RUN" from the
# unit runner's and pytest's summary lines ("-" where a line is missing:
# the runner crashed or did not start).
test_counts() {
	local log=$1 unit summary p f n
	unit=$(sed -n 's/^unit tests: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log" | tail -n1)
	[ -n "$unit" ] || unit="- -"
	summary=$(grep -E '^=* ?([0-9]+ [a-z]+(, )?)+ in [0-9.]+s|no tests ran' "$log" | tail -n1)
	if [ -z "$summary" ]; then
		echo "$unit - - -"
		return
	fi
	p=$(sum_counts 'passed|xpassed' "$summary")
	f=$(sum_counts 'failed|errors?' "$summary")
	n=$(sum_counts 'skipped|deselected|xfailed' "$summary")
	echo "$unit $p $f $n"
}

# try CMD...: run CMD in a subshell with errexit, return its status (a plain
# `if (CMD)` would run it with errexit off).
try() {
	local rc
	set +e
	(set -e; "$@")
	rc=$?
	set -e
	return $rc
}

# cross_all yes|no [PYTEST_ARGS...]: build (and with yes test) the selected
# targets, going on after a failure, then print one row per target.
cross_all() {
	local with_tests=$1 t rc=0 result counts rows=()
	shift
	for t in "${selected[@]}"; do
		counts="- - - - -"
		if ! try build_target "$t"; then
			result="BUILD FAILED"
			rc=1
		elif [ "$with_tests" = yes ]; then
			load_target "$t"
			if try run_tests "$@"; then result=ok; else result=FAILED; rc=1; fi
			counts=$(test_counts "$BUILD/test.log")
		else
			result=built
		fi
		load_target "$t"
		local size=-
		[ -f "$BUILD/tunnel-client" ] && [ "$result" != "BUILD FAILED" ] && size=$(size_of "$BUILD/tunnel-client")
		# shellcheck disable=SC2086
		rows+=("$(printf '%-24s %9s  %4s %4s   %6s %6s %7s  %s' "$t" "$size" $counts "$result")")
	done
	echo
	printf '%-24s %9s  %9s   %-22s  %s\n' "" "" "unit" "integration (pytest)" ""
	printf '%-24s %9s  %4s %4s   %6s %6s %7s  %s\n' target bytes pass fail passed failed not-run result
	printf '%s\n' "${rows[@]}"
	return $rc
}

cmd=build
target=$DEFAULT_TARGET
selected=()
args=()
compare=
soak_minutes=2
while [ $# -gt 0 ]; do
	case $1 in
	build | test | cross | test-cross | sanitize | valgrind | fuzz | soak | demo | demo-server | bench | package | clean) cmd=$1 ;;
	[0-9]*) [ "$cmd" = soak ] || usage; soak_minutes=$1 ;;
	--compare) [ $# -ge 2 ] || usage; compare=$2; shift ;;
	--compare=*) compare=${1#--compare=} ;;
	--target) [ $# -ge 2 ] || usage; target=$2; selected+=("$2"); shift ;;
	--target=*) target=${1#--target=}; selected+=("$target") ;;
	-h | --help | help) usage ;;
	--) shift; args=("$@"); break ;;
	*) echo "build.sh: unknown command or option '$1'" >&2; usage ;;
	esac
	shift
done
[ ${#selected[@]} -gt 0 ] || mapfile -t selected < <(targets)
for t in "$target" "${selected[@]}"; do
	[ -f "toolchains/$t" ] || { echo "build.sh: unknown target '$t'" >&2; usage; }
done

case $cmd in
build) build_target "$target" ;;
test)
	build_target "$target"
	style_rc=0
	"$PY" scripts/check-style.py || style_rc=1
	run_tests "${args[@]}"
	exit $style_rc
	;;
cross) cross_all no ;;
test-cross) cross_all yes "${args[@]}" ;;
sanitize)
	load_target "$DEFAULT_TARGET"
	ensure_deps build test
	fetch_deps
	BUILD=build/sanitize TARGET=sanitize CC=gcc TARGET_LDFLAGS='' RUN=''
	san='-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g'
	# BearSSL reads unaligned words on x86 on purpose (Poly1305); UBSan
	# would abort on them, so build it with aligned accessors here.
	run_make all OPT='-O1' STRIP_LDFLAG='' EXTRA_LDFLAGS="$san" \
		EXTRA_CFLAGS="$san -DBR_LE_UNALIGNED=0 -DBR_BE_UNALIGNED=0"
	# Every process's reports go to files, so a finding in an agent or
	# server a test started (and killed) fails the run too.
	findings=$top/$BUILD/findings
	rm -rf "$findings" && mkdir -p "$findings"
	san_rc=0
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:log_path=$findings/asan \
		UBSAN_OPTIONS=print_stacktrace=1:log_path=$findings/ubsan run_tests "${args[@]}" || san_rc=1
	no_findings "$findings" || san_rc=1
	exit $san_rc
	;;
fuzz)
	# libFuzzer, ASan + UBSan, over every target of tests/fuzz (fuzz.mk):
	# the codecs and parsers, and the whole receive paths of the agent and
	# tunnel-server on an in-memory OS (fz_os.c). $FUZZ_SECONDS each
	# (default 30), $FUZZ_JOBS at a time (default 2); seeds from
	# tests/fuzz/corpus, the grown corpus in build/fuzz/corpus; -- TARGET...
	# runs only those.
	load_target "$DEFAULT_TARGET"
	ensure_deps build fuzz
	fetch_deps
	BUILD=build/fuzz TARGET=fuzz CC=clang TARGET_LDFLAGS=''
	objs=()
	for f in src/common/*.c src/agent/*.c src/server/*.c; do
		f=${f#src/}
		objs+=("$BUILD/obj/${f%.c}.o")
	done
	run_make "${objs[@]}" "$BUILD/deps/libbearssl.a" "$BUILD/deps/libwslay.a" OPT='-O1' STRIP_LDFLAG='' \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -g -fsanitize=fuzzer-no-link -DBR_LE_UNALIGNED=0 -DBR_BE_UNALIGNED=0"
	make -s -j"$JOBS" -f tests/fuzz/fuzz.mk BUILD="$BUILD" || die "fuzz: building the targets failed"
	JOBS=${FUZZ_JOBS:-2} tests/fuzz/run.sh "$BUILD" "${FUZZ_SECONDS:-30}" "${args[@]}" ||
		die "fuzz: a target found a problem (inputs and logs in $BUILD)"
	;;
soak)
	# The agent and tunnel-server (release flags, in build/soak) under a
	# randomized mixed workload with faults for soak_minutes (tests/soak/
	# soak.py; it prints the figures); -- SOAK_ARGS, e.g. -- --seed N.
	load_target "$DEFAULT_TARGET"
	ensure_deps build test
	fetch_deps
	BUILD=build/soak
	run_make "$BUILD/tunnel-client" "$BUILD/tunnel-server" || die "soak: make failed"
	"$PY" tests/soak/soak.py --minutes "$soak_minutes" --agent "$BUILD/tunnel-client" \
		--server "$BUILD/tunnel-server" --out "$BUILD" "${args[@]}"
	;;
valgrind)
	load_target "$DEFAULT_TARGET"
	ensure_deps build test
	fetch_deps
	BUILD=build/valgrind TARGET=valgrind CC=gcc TARGET_LDFLAGS=''
	run_make all OPT='-O1 -g' STRIP_LDFLAG=''
	findings=$top/$BUILD/findings
	rm -rf "$findings" && mkdir -p "$findings"
	RUN="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --log-file=$findings/vg.%p"
	vg_rc=0
	run_tests "${args[@]}" || vg_rc=1
	no_findings "$findings" || vg_rc=1
	exit $vg_rc
	;;
demo)
	build_target "$target"
	ensure_deps test
	TUNNEL_CLIENT="$top/$BUILD/tunnel-client" TUNNEL_CLIENT_RUN="$RUN" "$PY" scripts/demo.py
	;;
demo-server)
	build_target "$target"
	ensure_deps test
	TUNNEL_CLIENT="$top/$BUILD/tunnel-client" TUNNEL_CLIENT_RUN="$RUN" \
		TUNNEL_SERVER="$top/$BUILD/tunnel-server" TUNNEL_SERVER_RUN="$RUN" "$PY" scripts/demo-server.py
	;;
bench)
	# The benchmark runs on the host: the default target only.
	[ "$target" = "$DEFAULT_TARGET" ] || die "bench runs the host target ($DEFAULT_TARGET) only"
	build_target "$target"
	ensure_deps test
	build_bench || die "make bench failed"
	bench_args=(--agent "$BUILD/tunnel-client" --peer "$BUILD/bench/peer" --svc "$BUILD/bench/svc")
	if [ -n "$compare" ]; then
		case $compare in /*) ;; *) compare=$caller/$compare ;; esac
		bench_args+=(--compare "$compare")
	fi
	"$PY" tests/bench/bench.py "${bench_args[@]}" "${args[@]}"
	;;
package)
	# Every target (or those named), then the packages of exactly those.
	cross_all no
	pkg_args=()
	for t in "${selected[@]}"; do pkg_args+=(--target "$t"); done
	scripts/package.sh "${pkg_args[@]}"
	;;
clean) rm -rf build ;;
esac
