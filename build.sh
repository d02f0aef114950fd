#!/usr/bin/env bash
# tunnel-client build driver.
#
#   ./build.sh [build] [--target NAME]   build build/NAME/tunnel-client (default x86_64-linux-musl)
#   ./build.sh test [--target NAME]      build, then run unit + integration tests
#   ./build.sh cross                     build every target in toolchains/
#   ./build.sh test-cross                build and test every target (under qemu)
#   ./build.sh sanitize                  unit + integration tests under ASan/UBSan (glibc gcc)
#   ./build.sh valgrind                  integration tests with the agent under valgrind
#   ./build.sh demo                      run the agent against a local runner stand-in
#   ./build.sh clean                     remove build/
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
PY=/usr/bin/python3
DEFAULT_TARGET=x86_64-linux-musl
JOBS=$(nproc 2>/dev/null || echo 2)

usage() {
	sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//' >&2
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
			command -v "${CC%% *}" >/dev/null || missing+=("$CC")
			command -v make >/dev/null || missing+=(make)
			command -v readelf >/dev/null || missing+=(readelf)
			if [ ! -f deps/src/wslay/.verified ] || [ ! -f deps/src/bearssl/.verified ]; then
				apt-cache showsrc bearssl 2>/dev/null | grep -q '^Package:' || missing+=("deb-src entries")
			fi
			;;
		test)
			[ -x "$PY" ] && "$PY" -c 'import pytest, websockets' 2>/dev/null || missing+=("python3-pytest python3-websockets")
			command -v openssl >/dev/null || missing+=(openssl)
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
	# shellcheck disable=SC1090
	. "toolchains/$t"
	TARGET=$t
	BUILD=build/$t
	CROSS=0
	[ "$t" = "$DEFAULT_TARGET" ] || CROSS=1
}

fetch_deps() { scripts/fetch-deps.sh; }

run_make() {
	make -s -j"$JOBS" BUILD="$BUILD" CC="$CC" TARGET_CFLAGS="$TARGET_CFLAGS" \
		TARGET_LDFLAGS="$TARGET_LDFLAGS" BIG_ENDIAN="$BIG_ENDIAN" "$@"
}

# check_static BIN: no program interpreter, no DT_NEEDED, right machine, stripped.
check_static() {
	local bin=$1
	if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
		die "$bin has a program interpreter: not static"
	fi
	if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
		die "$bin has DT_NEEDED entries: not static"
	fi
	if [ -n "$ELF_MACHINE" ] && ! readelf -hW "$bin" | grep -q "Machine:.*$ELF_MACHINE"; then
		die "$bin is not a $ELF_MACHINE binary: $(readelf -hW "$bin" | grep Machine:)"
	fi
	if readelf -SW "$bin" | grep -q ' \.symtab '; then
		die "$bin is not stripped"
	fi
}

size_of() { stat -c %s "$1"; }

build_target() {
	load_target "$1"
	ensure_deps build
	if [ -n "$PREPARE" ]; then eval "$PREPARE"; fi
	fetch_deps
	run_make all
	check_static "$BUILD/tunnel-client"
	printf 'build.sh: %s/tunnel-client: static, stripped, %s bytes (%s KiB)\n' \
		"$BUILD" "$(size_of "$BUILD/tunnel-client")" "$(( ($(size_of "$BUILD/tunnel-client") + 1023) / 1024 ))"
}

# run_tests [PYTEST_ARGS...]: unit tests then the integration suite for the
# loaded target; returns non-zero if either failed.
run_tests() {
	ensure_deps test
	local rc=0
	echo "== unit tests ($TARGET)"
	# shellcheck disable=SC2086
	$RUN "$BUILD/unit-tests" || rc=1
	echo "== integration tests ($TARGET)"
	TUNNEL_CLIENT="$top/$BUILD/tunnel-client" TUNNEL_CLIENT_RUN="$RUN" \
		"$PY" -m pytest -q -p no:cacheprovider tests/integration "$@" || rc=1
	return $rc
}

cmd=build
target=$DEFAULT_TARGET
args=()
while [ $# -gt 0 ]; do
	case $1 in
	build | test | cross | test-cross | sanitize | valgrind | demo | clean) cmd=$1 ;;
	--target) [ $# -ge 2 ] || usage; target=$2; shift ;;
	--target=*) target=${1#--target=} ;;
	-h | --help | help) usage ;;
	--) shift; args=("$@"); break ;;
	*) echo "build.sh: unknown command or option '$1'" >&2; usage ;;
	esac
	shift
done
[ -f "toolchains/$target" ] || { echo "build.sh: unknown target '$target'" >&2; usage; }

case $cmd in
build) build_target "$target" ;;
test)
	build_target "$target"
	run_tests "${args[@]}"
	;;
cross)
	for t in $(targets); do build_target "$t"; done
	;;
test-cross)
	summary=()
	fail=0
	for t in $(targets); do
		build_target "$t"
		if run_tests "${args[@]}"; then r=passed; else r=FAILED; fail=1; fi
		summary+=("$(printf '%-22s %9s bytes  %s' "$t" "$(size_of "$BUILD/tunnel-client")" "$r")")
	done
	printf '%s\n' "target                      size        tests" "${summary[@]}"
	exit $fail
	;;
sanitize)
	load_target "$DEFAULT_TARGET"
	ensure_deps build test
	fetch_deps
	BUILD=build/sanitize TARGET=sanitize CC=gcc TARGET_LDFLAGS='' RUN=''
	san='-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g'
	run_make all OPT='-O1' STRIP_LDFLAG='' EXTRA_CFLAGS="$san" EXTRA_LDFLAGS="$san"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 run_tests "${args[@]}"
	;;
valgrind)
	load_target "$DEFAULT_TARGET"
	ensure_deps build test
	fetch_deps
	BUILD=build/valgrind TARGET=valgrind CC=gcc TARGET_LDFLAGS=''
	run_make all OPT='-O1 -g' STRIP_LDFLAG=''
	RUN='valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite'
	run_tests "${args[@]}"
	;;
demo)
	build_target "$target"
	ensure_deps test
	TUNNEL_CLIENT="$top/$BUILD/tunnel-client" TUNNEL_CLIENT_RUN="$RUN" "$PY" scripts/demo.py
	;;
clean) rm -rf build ;;
esac
