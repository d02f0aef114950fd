#!/usr/bin/env bash
# Run scripts/openwrt/Makefile's Build/Prepare, Build/Compile and install
# steps outside an OpenWrt SDK: a stub rules.mk/package.mk stands in for the
# SDK's, tarballs made from the verified trees in deps/src stand in for the
# downloads (so the SDK's hash check is NOT exercised here), and the host's
# musl-gcc stands in for the target compiler. Checks the package's files and
# that the packaged agent runs. Prints "openwrt package: ok" on success.
#
#   tests/openwrt/check-package.sh     (after ./build.sh, which fetches deps/src)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../deps/versions
. "$top/deps/versions"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "openwrt package: FAILED: $*" >&2; exit 1; }

if [ ! -f "$top/deps/src/wslay/.verified" ] || [ ! -f "$top/deps/src/bearssl/.verified" ]; then
	fail "deps/src is not fetched yet (run ./build.sh first)"
fi

mkdir -p "$work/sdk/include" "$work/dl" "$work/tars/wslay-$WSLAY_VERSION" "$work/tars/bearssl-$BEARSSL_VERSION"
cat >"$work/sdk/rules.mk" <<EOF
INCLUDE_DIR:=\$(TOPDIR)/include
BUILD_DIR:=$work/build_dir
DL_DIR:=$work/dl
TAR:=tar
CP:=cp -fpR
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
EOF
# Download records what it was asked for; BuildPackage runs the package's
# steps in the order the SDK does.
cat >"$work/sdk/include/package.mk" <<'EOF'
PKG_BUILD_DIR:=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_JOBS:=-j2
define Download
  $(eval $(Download/$(1)))
  $$(shell echo "$(1) $(URL)$(FILE) $(HASH)" >>$(BUILD_DIR)/downloads)
endef
define BuildPackage
all:
	$(Build/Prepare)
	$(Build/Compile)
	$(call Package/$(1)/install,$(BUILD_DIR)/ipkg-$(1))
endef
EOF
mkdir -p "$work/build_dir"
cp -a "$top/deps/src/wslay/lib" "$work/tars/wslay-$WSLAY_VERSION/"
cp -a "$top/deps/src/bearssl/src" "$top/deps/src/bearssl/inc" "$work/tars/bearssl-$BEARSSL_VERSION/"
tar -C "$work/tars" -caf "$work/dl/$(basename "$WSLAY_URL")" "wslay-$WSLAY_VERSION"
tar -C "$work/tars" -caf "$work/dl/$(basename "$BEARSSL_URL")" "bearssl-$BEARSSL_VERSION"

make -s -C "$top/scripts/openwrt" TOPDIR="$work/sdk" \
	TARGET_CC=musl-gcc TARGET_AR=ar TARGET_CFLAGS="-Os -pipe" TARGET_CPPFLAGS= \
	TARGET_LDFLAGS=-static >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; fail "make"; }

grep -qxF "wslay $WSLAY_URL $WSLAY_SHA256" "$work/build_dir/downloads" || fail "wslay download is not the pinned URL and hash"
grep -qxF "bearssl $BEARSSL_URL $BEARSSL_SHA256" "$work/build_dir/downloads" || fail "bearssl download is not the pinned URL and hash"
pkg=$work/build_dir/ipkg-tunnel-client
for f in usr/bin/tunnel-client etc/init.d/tunnel-client; do
	[ -x "$pkg/$f" ] || fail "$f missing or not executable"
done
cmp -s "$pkg/etc/config/tunnel-client" "$top/scripts/openwrt/tunnel-client.config" || fail "etc/config/tunnel-client"
version=$("$pkg/usr/bin/tunnel-client" --version) || fail "packaged agent does not run"
[ "$version" = "tunnel-client $(cat "$top/VERSION")" ] || fail "packaged agent says '$version'"
echo "openwrt package: ok ($version, $(stat -c %s "$pkg/usr/bin/tunnel-client") bytes unstripped)"
