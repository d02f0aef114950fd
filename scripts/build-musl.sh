#!/usr/bin/env bash
# Build a static, soft-float musl sysroot for a MIPS target. It is the PREPARE
# step of toolchains/mips*-linux-musl: build.sh evals it before it builds
# such a target, and it does nothing when the sysroot is already up to date.
#
#   scripts/build-musl.sh TARGET CROSS CFLAGS
#     TARGET  toolchain name, e.g. mips-linux-musl (output: build/sysroot/TARGET)
#     CROSS   Debian's cross tool prefix, e.g. mips-linux-gnu (CROSS-gcc, CROSS-ar ...)
#     CFLAGS  the target's architecture flags, e.g. "-march=mips32r2 -msoft-float"
#
# Why build musl: Debian bookworm has no mips or mipsel port, so no musl-dev
# for them, and its MIPS ports were hard-float anyway. Routers (ath79,
# ramips) have no FPU, so musl is built here with CFLAGS from Debian's musl
# source package (orig tarball pinned in deps/versions).
#
# Why a libgcc-sf.a: Debian's MIPS cross compiler ships only a hard-float
# libgcc.a. Its __adddf3, __muldf3 ... take their arguments in FPU registers
# and use FPU instructions, so soft-float code calling them (musl's printf
# does) computes garbage, or traps on a CPU without FPU. libgcc-sf.a holds
#   - glibc's soft-fp routines for float/double (Debian's glibc source
#     package, pinned), compiled with CFLAGS;
#   - the integer helpers of the compiler's libgcc.a (__divdi3, __ashldi3 ...):
#     every object that defines no soft-fp symbol and has no FPU instruction,
#     with its (meaningless for integer code) hard-float ABI tag removed.
# Objects with FPU instructions are left out, so a reference to one fails
# the link instead of linking FPU code; build.sh also disassembles the final
# binary and rejects FPU instructions.
#
# Result, in build/sysroot/TARGET:
#   include/ lib/               musl headers, libc.a, crt*.o, libgcc-sf.a,
#                               gcc's crtbeginS.o/crtendS.o without the tag
#   musl-gcc.specs              "CROSS-gcc -specs FILE" compiles and links
#                               against the above (musl's own specs file,
#                               with libgcc-sf.a as libgcc)
set -euo pipefail

[ $# -eq 3 ] || { sed -n '6,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
target=$1 cross=$2 cflags=$3

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../deps/versions
. "$top/deps/versions"
cache=$top/deps/cache
dest=$top/build/sysroot/$target
work=$top/build/sysroot/$target.work

die() { echo "build-musl: $*" >&2; exit 1; }
note() { echo "build-musl: $*" >&2; }

for tool in gcc ar objcopy objdump nm; do
	command -v "$cross-$tool" >/dev/null || die "$cross-$tool not found (scripts/install-build-deps.sh --cross installs it)"
done

# Everything the result depends on; equal stamp = nothing to do.
stamp="musl=$MUSL_DEB_SHA256 softfp=$SOFTFP_DEB_SHA256 cross=$cross cflags=$cflags
gcc=$("$cross-gcc" --version | head -n1)
script=$(sha256sum "$0" | cut -d' ' -f1) dest=$dest"
if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
	exit 0
fi

# source_tarball PKG ORIG SHA256: the verified orig tarball of Debian source
# package PKG in deps/cache (downloaded with apt-get source when missing).
source_tarball() {
	local pkg=$1 orig=$2 want=$3 got
	mkdir -p "$cache"
	if [ ! -f "$cache/$orig" ]; then
		note "fetching Debian source package $pkg"
		(cd "$cache" && apt-get source --download-only "$pkg" >"apt-source-$pkg.log" 2>&1) ||
			die "'apt-get source --download-only $pkg' failed (deps/cache/apt-source-$pkg.log; deb-src entries come from scripts/install-build-deps.sh)"
		[ -f "$cache/$orig" ] || die "Debian source package $pkg did not provide $orig (version changed? update deps/versions)"
	fi
	got=$(sha256sum "$cache/$orig" | cut -d' ' -f1)
	[ "$got" = "$want" ] || die "$orig: SHA-256 mismatch: got $got, want $want"
	echo "$cache/$orig"
}

musl_tar=$(source_tarball "$MUSL_DEB_PKG" "$MUSL_DEB_ORIG" "$MUSL_DEB_SHA256")
glibc_tar=$(source_tarball "$SOFTFP_DEB_PKG" "$SOFTFP_DEB_ORIG" "$SOFTFP_DEB_SHA256")

note "building musl $MUSL_VERSION for $target ($cross-gcc $cflags)"
rm -rf "$work" "$dest"
mkdir -p "$work"
tar -xzf "$musl_tar" -C "$work"
(
	cd "$work/$MUSL_DEB_SUBDIR"
	./configure --target="$cross" --prefix="$dest" --disable-shared --disable-wrapper \
		CC="$cross-gcc" CROSS_COMPILE="$cross-" CFLAGS="-Os $cflags" >"$work/configure.log" 2>&1 ||
		die "musl configure failed (see $work/configure.log)"
	make -j"$(nproc 2>/dev/null || echo 2)" >"$work/make.log" 2>&1 || die "musl build failed (see $work/make.log)"
	make install >>"$work/make.log" 2>&1 || die "musl install failed (see $work/make.log)"
)
# The specs file musl would install with its gcc wrapper, with libgcc-sf.a
# as libgcc and copies of gcc's crtbeginS.o/crtendS.o (made below).
sh "$work/$MUSL_DEB_SUBDIR/tools/musl-gcc.specs.sh" "$dest/include" "$dest/lib" /lib/ld-musl.so.1 |
	sed -e "s|^libgcc.a%s %:if-exists(libgcc_eh.a%s)\$|$dest/lib/libgcc-sf.a|" \
		-e "s| crtbeginS.o%s| $dest/lib/crtbeginS.o|; s|^crtendS.o%s |$dest/lib/crtendS.o |" >"$dest/musl-gcc.specs"
for want in libgcc-sf.a crtbeginS.o crtendS.o; do
	grep -q "$dest/lib/$want" "$dest/musl-gcc.specs" || die "musl-gcc.specs: no line to point at $want"
done

note "building libgcc-sf.a (glibc $SOFTFP_DEB_SUBDIR soft-fp + integer helpers of $cross-gcc's libgcc.a)"
g=$SOFTFP_DEB_SUBDIR
tar -xJf "$glibc_tar" -C "$work" "$g/soft-fp" "$g/sysdeps/mips/mips32/sfp-machine.h" "$g/stdlib/longlong.h"
sf=$work/softfp
mkdir -p "$sf/obj" "$sf/libgcc"
cp "$work/$g/sysdeps/mips/mips32/sfp-machine.h" "$sf/mips32-sfp-machine.h"
cp "$work/$g/stdlib/longlong.h" "$sf/"
# soft-fp.h outside glibc expects sfp-machine.h to give the byte order and
# glibc's strong_alias.
cat >"$sf/sfp-machine.h" <<'EOF'
#define __LITTLE_ENDIAN 1234
#define __BIG_ENDIAN 4321
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define __BYTE_ORDER __BIG_ENDIAN
#else
#define __BYTE_ORDER __LITTLE_ENDIAN
#endif
#define strong_alias(name, aliasname) \
	extern __typeof(name) aliasname __attribute__((alias(#name)));
#include "mips32-sfp-machine.h"
EOF
# float (sf) and double (df) arithmetic, comparisons, conversions to and from
# 32/64-bit integers; long double is double on o32, so no tf/xf; no ti/hf.
n=0
for c in "$work/$g"/soft-fp/*.c; do
	b=$(basename "$c" .c)
	case $b in *tf* | *ti* | *hf* | *xf*) continue ;; esac  # also skips testit
	# shellcheck disable=SC2086 # CFLAGS is a list of flags
	"$cross-gcc" -Os $cflags -I"$sf" -c "$c" -o "$sf/obj/$b.o" || die "soft-fp: $b.c failed to compile"
	n=$((n + 1))
done
[ "$n" -ge 30 ] || die "soft-fp: only $n routines found in $g/soft-fp"
"$cross-nm" --defined-only "$sf"/obj/*.o | awk 'NF == 3 && $2 ~ /[TW]/ {print $3}' | sort -u >"$sf/symbols"

# shellcheck disable=SC2086
libgcc=$("$cross-gcc" $cflags -print-libgcc-file-name)
[ -f "$libgcc" ] || die "$cross-gcc has no libgcc.a ($libgcc)"
# shellcheck disable=SC2016 # a MIPS FPU register operand: $f0 .. $f31
fpu_re='\$f[0-9]'
if "$cross-objdump" -d "$sf"/obj/*.o | grep "$fpu_re" >/dev/null; then
	die "soft-fp objects contain FPU instructions: are the CFLAGS soft-float? ($cflags)"
fi
# Members of libgcc.a to leave out: those defining a soft-fp symbol, and
# those with an FPU instruction (objdump names each member before its code).
cp "$libgcc" "$sf/int.a"
{
	"$cross-nm" -A --defined-only "$sf/int.a" 2>/dev/null |
		awk 'NF == 3 {n = split($1, p, ":"); print p[n - 1] " " $3}' |
		grep -Ff "$sf/symbols" -w | cut -d' ' -f1
	"$cross-objdump" -d "$sf/int.a" |
		awk -v re="$fpu_re" '/:     file format/ {m = $1; sub(/:$/, "", m)} $0 ~ re {print m}'
} | sort -u >"$sf/drop"
if [ -s "$sf/drop" ]; then
	xargs "$cross-ar" d "$sf/int.a" <"$sf/drop"
fi
"$cross-objcopy" -R .gnu.attributes -R .MIPS.abiflags "$sf/int.a"
(cd "$sf/libgcc" && "$cross-ar" x "$sf/int.a")
kept=$(find "$sf/libgcc" -name '*.o' | wc -l)
# gcc's crtbeginS.o/crtendS.o: no FPU code either, same tag removed.
for f in crtbeginS.o crtendS.o; do
	# shellcheck disable=SC2086
	"$cross-objcopy" -R .gnu.attributes -R .MIPS.abiflags "$("$cross-gcc" $cflags -print-file-name=$f)" "$dest/lib/$f"
	if "$cross-objdump" -d "$dest/lib/$f" | grep "$fpu_re" >/dev/null; then die "$f contains FPU instructions"; fi
done
rm -f "$dest/lib/libgcc-sf.a"
"$cross-ar" rcs "$dest/lib/libgcc-sf.a" "$sf"/obj/*.o "$sf"/libgcc/*.o
if "$cross-objdump" -d "$dest/lib/libgcc-sf.a" | grep "$fpu_re" >/dev/null; then
	die "libgcc-sf.a contains FPU instructions"
fi
note "libgcc-sf.a: $n soft-fp routines, $kept integer helpers ($(wc -l <"$sf/drop") members of libgcc.a left out)"

rm -rf "$work"
echo "$stamp" >"$dest/.stamp"
note "sysroot ready in build/sysroot/$target"
