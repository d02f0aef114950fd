#!/usr/bin/env bash
# Install everything the build and the tests need on Debian/Ubuntu (root).
# The only place that knows package names. Idempotent: when every package is
# already installed it does nothing and touches no network.
#
#   scripts/install-build-deps.sh            host build + tests
#   scripts/install-build-deps.sh --cross    also the cross toolchains + qemu
set -uo pipefail

want_cross=no
for a in "$@"; do
	case $a in
	--cross) want_cross=yes ;;
	*) echo "usage: $0 [--cross]" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" != 0 ]; then
	echo "install-build-deps: must run as root (try: sudo $0 $*)" >&2
	exit 2
fi
command -v apt-get >/dev/null || { echo "install-build-deps: needs apt-get (Debian/Ubuntu)" >&2; exit 2; }

# Host: compilers, musl, tests (pytest + websockets for the fake runner,
# openssl CLI for TLS certificates, headless chromium for tunnel-server's
# admin page), tooling the scripts use.
pkgs=(gcc make binutils musl-tools musl-dev file xz-utils curl ca-certificates
	python3 python3-pytest python3-websockets openssl chromium valgrind shellcheck
	clang libclang-rt-14-dev)  # libFuzzer + sanitizers for ./build.sh fuzz
# ./build.sh package and its checks (tests/integration/test_packages.py):
# lintian and systemd-analyze for the .deb files (dpkg-deb is in dpkg),
# skopeo, umoci and podman with runc for the OCI archives.
pkgs+=(lintian systemd skopeo umoci podman runc)

cross_arches=()
if [ "$want_cross" = yes ]; then
	# shellcheck source=cross-packages.sh
	. "$(dirname "$0")/cross-packages.sh"
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# deb-src entries for `apt-get source` (BearSSL, wslay via aria2, musl).
add_deb_src() {
	local f=/etc/apt/sources.list.d/tunnel-client-src.sources
	[ -f "$f" ] && return 1
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$f"
	elif [ -f /etc/apt/sources.list ]; then
		grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >/etc/apt/sources.list.d/tunnel-client-src.list
		touch "$f"
	else
		echo "install-build-deps: no apt sources found to derive deb-src entries from" >&2
		return 1
	fi
	return 0
}

need_update=no
add_deb_src && need_update=yes
for a in "${cross_arches[@]}"; do
	if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		dpkg --add-architecture "$a"
		need_update=yes
	fi
done
[ ${#missing[@]} -gt 0 ] && need_update=yes
# An index without Sources (apt-cache showsrc finds nothing) also needs one.
apt-cache showsrc bearssl 2>/dev/null | grep '^Package:' >/dev/null || need_update=yes

if [ "$need_update" = yes ]; then
	# One index of the mirror may be out of sync (seen: bookworm-security
	# armhf) while every package still installs: do not stop here, check the
	# installs instead.
	apt-get update -q || echo "install-build-deps: apt-get update reported errors; checking the installs" >&2
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-build-deps: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

bad=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || bad+=("$p")
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "install-build-deps: failed to install: ${bad[*]}" >&2
	exit 1
fi
/usr/bin/python3 -c 'import pytest, websockets' || { echo "install-build-deps: /usr/bin/python3 cannot import pytest and websockets" >&2; exit 1; }
echo "install-build-deps: all build and test dependencies present" >&2
