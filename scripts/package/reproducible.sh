#!/usr/bin/env bash
# Reproducibility check: two clean clones of the committed HEAD, at paths of
# different lengths and built one after the other, each run
# `./build.sh package` for the chosen targets; their binaries and every file
# of their dist/ must be byte-identical.
#
#   scripts/package/reproducible.sh [--target NAME]...
#       (default: x86_64-linux-musl mipsel-linux-musl)
#
# The clones take this tree's verified sources (deps/src through WSLAY_SRC
# and BEARSSL_SRC; deps/cache holds Debian's musl and glibc sources for the
# MIPS targets), so no download is needed when this tree has built once.
# Uncommitted changes are not in the clones. Prints one line per file and
# "reproducible: N files identical" on success.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "reproducible: $*" >&2; exit 1; }

targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--target) [ $# -ge 2 ] || die "--target needs a value"; targets+=("$2"); shift ;;
	*) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-linux-musl mipsel-linux-musl)
for f in "$top/deps/src/wslay/.verified" "$top/deps/src/bearssl/.verified"; do
	[ -f "$f" ] || die "$f is missing: run ./build.sh first"
done

commit=$(git -C "$top" rev-parse HEAD)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=()
for t in "${targets[@]}"; do args+=(--target "$t"); done

# build_in DIR: a clean clone of $commit in DIR, packaged.
build_in() {
	local dir=$1
	git clone -q --no-checkout "$top" "$dir"
	git -C "$dir" checkout -q "$commit"
	if [ -d "$top/deps/cache" ]; then
		mkdir -p "$dir/deps"
		cp -a "$top/deps/cache" "$dir/deps/"
	fi
	echo "reproducible: building $commit in $dir"
	if ! (cd "$dir" && WSLAY_SRC=$top/deps/src/wslay BEARSSL_SRC=$top/deps/src/bearssl \
		./build.sh package "${args[@]}") >"$dir.log" 2>&1; then
		tail -n 30 "$dir.log" >&2
		die "./build.sh package failed in $dir (log above)"
	fi
}

a=$work/a
b=$work/second-build-at-a-longer-path
build_in "$a"
build_in "$b"

files=()
for t in "${targets[@]}"; do
	files+=("build/$t/tunnel-client" "build/$t/tunnel-server")
done
mapfile -t dist_a < <(cd "$a/dist" && ls)
mapfile -t dist_b < <(cd "$b/dist" && ls)
[ "${dist_a[*]}" = "${dist_b[*]}" ] || die "the two dist/ differ in their file lists: ${dist_a[*]} / ${dist_b[*]}"
for f in "${dist_a[@]}"; do files+=("dist/$f"); done

bad=0
for f in "${files[@]}"; do
	if cmp -s "$a/$f" "$b/$f"; then
		printf '  same  %s  %s\n' "$(sha256sum <"$a/$f" | cut -c1-16)" "$f"
	else
		printf '  DIFF  %s\n' "$f"
		bad=$((bad + 1))
	fi
done
[ "$bad" -eq 0 ] || die "$bad of ${#files[@]} files differ between two builds of $commit (diffoscope shows where)"
echo "reproducible: ${#files[@]} files identical in two clean builds of $commit (${targets[*]})"
