#!/usr/bin/env bash
# Release packages from the binaries in build/<target>/ (./build.sh package
# builds them first, then runs this):
#
#   scripts/package.sh [--out DIR] [--target NAME]...     (default: dist/, every target)
#
#   tunnel-client_V_ARCH.ipk   OpenWrt package per router architecture, built
#                              without an SDK the way OpenWrt's ipkg-build
#                              writes one; same files as scripts/openwrt/Makefile
#   tunnel-{client,server}_V_ARCH.deb   Debian packages (dpkg-deb): /usr/bin,
#                              a systemd unit, /etc/default/NAME as a conffile
#   tunnel-{client,server}-oci.tar      OCI image layout archive: one image per
#                              target (only the static binary) and an index over them
#   SHA256SUMS
#
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: the date of the
# last commit, which the Makefile also builds in), owners are 0, entries are
# sorted, gzip stores no name or time. Two builds of one commit give the same
# bytes (scripts/package/reproducible.sh checks it).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
PY=/usr/bin/python3
export LC_ALL=C TZ=UTC
umask 022

die() { echo "package: $*" >&2; exit 1; }
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

out=$top/dist
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || usage; out=$2; shift ;;
	--target) [ $# -ge 2 ] || usage; targets+=("$2"); shift ;;
	-h | --help) usage ;;
	*) echo "package: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cd toolchains && ls)

VERSION=$(cat VERSION)
RELEASE=1                       # packaging revision: OpenWrt's PKG_RELEASE, Debian's -1
PKG_VERSION=$VERSION-$RELEASE
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
# The commit (OCI label org.opencontainers.image.revision), "-dirty" when
# tracked files differ from it.
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REVISION" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	REVISION=$REVISION-dirty
fi
export SOURCE_DATE_EPOCH
# Where the source lives (OCI label org.opencontainers.image.source, Debian
# Homepage) and who answers for the packages.
PROJECT_URL=${PROJECT_URL:-https://github.com/KohakuBlueleaf/KohakuRiver}
MAINTAINER=${MAINTAINER:-tunnel-client maintainers <tunnel-client@kohakuriver.invalid>}

# arch_of TARGET: "IPK_ARCH DEB_ARCH OCI_PLATFORM" ('-': no package of
# that kind). IPK: OpenWrt's package architecture of the routers the
# binary is built for; DEB: Debian's port with the same ABI (Debian has no
# big-endian mips port any more); OCI: os/architecture/variant as Go names them.
arch_of() {
	case $1 in
	x86_64-linux-musl) echo "x86_64 amd64 linux/amd64" ;;
	aarch64-linux-musl) echo "aarch64_generic arm64 linux/arm64/v8" ;;
	armv7-linux-musleabihf) echo "arm_cortex-a7_neon-vfpv4 armhf linux/arm/v7" ;;
	armv5-linux-musleabi) echo "arm_arm926ej-s armel linux/arm/v5" ;;
	mips-linux-musl) echo "mips_24kc - linux/mips" ;;
	mipsel-linux-musl) echo "mipsel_24kc mipsel linux/mipsle" ;;
	*) return 1 ;;
	esac
}

for t in "${targets[@]}"; do
	arch_of "$t" >/dev/null || die "no package architecture known for target '$t' (add it to arch_of in $0)"
	for prog in tunnel-client tunnel-server; do
		[ -x "build/$t/$prog" ] || die "build/$t/$prog is missing: run ./build.sh cross --target $t first"
	done
done
for f in deps/src/wslay/COPYING deps/src/bearssl/LICENSE.txt; do
	[ -f "$f" ] || die "$f is missing: run ./build.sh first (it fetches the dependencies)"
done
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out"/*.ipk "$out"/*.deb "$out"/*-oci.tar "$out/SHA256SUMS"

# stamp DIR: every mtime in DIR is SOURCE_DATE_EPOCH.
stamp() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

# tar_gz DIR FILE [MEMBER...]: a gzip'd tar of DIR (or of the named members,
# in that order) as OpenWrt's ipkg-build writes it: GNU format, numeric
# owner 0, sorted, every mtime SOURCE_DATE_EPOCH, gzip without name or time.
tar_gz() {
	local dir=$1 file=$2
	shift 2
	[ $# -gt 0 ] || set -- .
	tar -C "$dir" --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$@" | gzip -n >"$file"
}

# ---- OpenWrt .ipk -----------------------------------------------------------
# The control fields and the conffiles come from scripts/openwrt/Makefile, so
# a package built here and one built in an SDK say the same.
MK=scripts/openwrt/Makefile
mk_var() { sed -n "s/^  $1:=//p" "$MK"; }
mk_define() { sed -n "\|^define Package/tunnel-client/$1\$|,/^endef/p" "$MK" | sed '1d;$d'; }
ipk_title=$(mk_var TITLE)
ipk_section=$(mk_var SECTION)
ipk_depends=$(mk_var DEPENDS | tr -d '+')
ipk_description=$(mk_define description)
ipk_conffiles=$(mk_define conffiles)
for v in "$ipk_title" "$ipk_section" "$ipk_description" "$ipk_conffiles"; do
	[ -n "$v" ] || die "could not read TITLE, SECTION, description and conffiles of tunnel-client from $MK"
done

# OpenWrt's own maintainer scripts (include/package-pack.mk): postinst
# enables and starts every /etc/init.d script of the package through
# default_postinst, prerm stops and disables them (default_prerm).
openwrt_postinst() {
	# shellcheck disable=SC2016 # written as text, expanded on the router
	printf '%s\n' '#!/bin/sh' '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' '. ${IPKG_INSTROOT}/lib/functions.sh' \
		'default_postinst $0 $@'
}
openwrt_prerm() {
	# shellcheck disable=SC2016 # written as text, expanded on the router
	printf '%s\n' '#!/bin/sh' '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_prerm $0 $@'
}

# build_ipk TARGET ARCH
build_ipk() {
	local t=$1 arch=$2 dir data ctl pkg
	dir=$work/ipk-$arch
	data=$dir/data ctl=$dir/control pkg=$dir/pkg
	mkdir -p "$dir"
	# The files of Package/tunnel-client/install in scripts/openwrt/Makefile.
	install -d -m 0755 "$data" "$data/usr/bin" "$data/etc/init.d" "$data/etc/config"
	install -m 0755 "build/$t/tunnel-client" "$data/usr/bin/tunnel-client"
	install -m 0755 scripts/openwrt/tunnel-client.init "$data/etc/init.d/tunnel-client"
	install -m 0600 scripts/openwrt/tunnel-client.config "$data/etc/config/tunnel-client"
	stamp "$data"
	install -d -m 0755 "$pkg"
	tar_gz "$data" "$pkg/data.tar.gz"

	install -d -m 0755 "$ctl"
	{
		echo "Package: tunnel-client"
		echo "Version: $PKG_VERSION"
		echo "Depends: $ipk_depends"
		echo "Source: scripts/openwrt"
		echo "SourceName: tunnel-client"
		echo "Section: $ipk_section"
		echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
		echo "URL: $PROJECT_URL"
		echo "Maintainer: $MAINTAINER"
		echo "Architecture: $arch"
		# ipkg-build: the size of the uncompressed data archive.
		echo "Installed-Size: $(gzip -dc "$pkg/data.tar.gz" | wc -c)"
		echo "Description: $ipk_title"
		# shellcheck disable=SC2001 # per line, not per string
		sed 's/^[[:space:]]*/ /' <<<"$ipk_description"
	} >"$ctl/control"
	printf '%s\n' "$ipk_conffiles" >"$ctl/conffiles"
	openwrt_postinst >"$ctl/postinst"
	openwrt_prerm >"$ctl/prerm"
	chmod 0644 "$ctl/control" "$ctl/conffiles"
	chmod 0755 "$ctl/postinst" "$ctl/prerm"
	stamp "$ctl"
	tar_gz "$ctl" "$pkg/control.tar.gz"

	echo "2.0" >"$pkg/debian-binary"
	stamp "$pkg"
	tar_gz "$pkg" "$out/tunnel-client_${PKG_VERSION}_$arch.ipk" ./debian-binary ./data.tar.gz ./control.tar.gz
}

# ---- Debian .deb --------------------------------------------------------------
DEB=scripts/package/debian

# deb_copyright: /usr/share/doc/PKG/copyright, with the licenses of the
# code linked into the static binary.
deb_copyright() {
	sed "s|@URL@|$PROJECT_URL|" "$DEB/copyright"
	printf '\nwslay %s (deps/src/wslay/COPYING):\n\n' "1.1.1"
	sed 's/^/  /; s/^  $//' deps/src/wslay/COPYING
	printf '\nBearSSL %s (deps/src/bearssl/LICENSE.txt):\n\n' "0.6"
	sed 's/[[:space:]]*$//; s/^/  /; s/^  $//' deps/src/bearssl/LICENSE.txt
}

# build_deb PROG TARGET ARCH
build_deb() {
	local prog=$1 t=$2 arch=$3 root doc
	root=$work/deb-$prog-$arch
	doc=$root/usr/share/doc/$prog
	install -d -m 0755 "$root" "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
		"$root/etc/default" "$doc" "$root/usr/share/lintian/overrides"
	install -m 0755 "build/$t/$prog" "$root/usr/bin/$prog"
	# The unit of scripts/systemd with the package's paths; its header
	# (how to install it by hand) is replaced by one line.
	{
		echo "# $prog as a systemd service (Debian package $prog). Settings: /etc/default/$prog."
		sed -n '/^\[Unit\]/,$p' "scripts/systemd/$prog.service" |
			sed "s|^ExecStart=/usr/local/bin/|ExecStart=/usr/bin/|; s|^EnvironmentFile=/etc/$prog.env\$|EnvironmentFile=/etc/default/$prog|
				/^Description=/a Documentation=$PROJECT_URL"
	} >"$root/lib/systemd/system/$prog.service"
	if ! grep -qx "ExecStart=/usr/bin/$prog.*" "$root/lib/systemd/system/$prog.service" ||
		! grep -qx "EnvironmentFile=/etc/default/$prog" "$root/lib/systemd/system/$prog.service"; then
		die "scripts/systemd/$prog.service: ExecStart= or EnvironmentFile= not where expected"
	fi
	chmod 0644 "$root/lib/systemd/system/$prog.service"
	# The environment file may hold secrets (a token): root only, as systemd reads it.
	sed "1s|^# /etc/$prog.env:|# /etc/default/$prog:|" "scripts/systemd/$prog.env.example" >"$root/etc/default/$prog"
	chmod 0600 "$root/etc/default/$prog"
	local conffiles=("/etc/default/$prog")
	if [ "$prog" = tunnel-server ]; then
		install -d -m 0755 "$root/etc/tunnel-server"
		install -m 0644 scripts/systemd/tunnel-server.conf.example "$root/etc/tunnel-server/tunnel-server.conf"
		conffiles+=(/etc/tunnel-server/tunnel-server.conf)
	fi
	deb_copyright >"$doc/copyright"
	sed "s|@PROG@|$prog|g; s|@VERSION@|$PKG_VERSION|g; s|@MAINTAINER@|$MAINTAINER|g; s|@DATE@|$(date -R -d "@$SOURCE_DATE_EPOCH")|g" \
		"$DEB/changelog" | gzip -9n >"$doc/changelog.Debian.gz"
	sed "s/@PROG@/$prog/g" "$DEB/lintian-overrides" >"$root/usr/share/lintian/overrides/$prog"
	chmod 0644 "$doc/copyright" "$doc/changelog.Debian.gz" "$root/usr/share/lintian/overrides/$prog"

	local s
	for s in postinst prerm postrm; do
		sed "s/@PROG@/$prog/g" "$DEB/$s" >"$root/DEBIAN/$s"
		chmod 0755 "$root/DEBIAN/$s"
	done
	printf '%s\n' "${conffiles[@]}" >"$root/DEBIAN/conffiles"
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
	{
		echo "Package: $prog"
		echo "Version: $PKG_VERSION"
		echo "Architecture: $arch"
		echo "Maintainer: $MAINTAINER"
		# What dpkg-gencontrol counts: KiB per file, rounded up.
		echo "Installed-Size: $(find "$root" -path "$root/DEBIAN" -prune -o -type f -printf '%s\n' |
			awk '{ s += int(($1 + 1023) / 1024) } END { print s }')"
		echo "Section: net"
		echo "Priority: optional"
		echo "Homepage: $PROJECT_URL"
		cat "$DEB/$prog.description"
	} >"$root/DEBIAN/control"
	chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
	stamp "$root"
	dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${prog}_${PKG_VERSION}_$arch.deb" >/dev/null
}

# ---- OCI image layouts --------------------------------------------------------

# build_oci PROG: one image per target holding only /PROG, one index.
build_oci() {
	local prog=$1 t row args=()
	for t in "${targets[@]}"; do
		read -r -a row <<<"$(arch_of "$t")"
		args+=(--image "${row[2]}=build/$t/$prog")
	done
	if [ "$prog" = tunnel-server ]; then
		# As Dockerfile.build's server stage: agents connect on 8001.
		args+=(--entrypoint-arg=--listen --entrypoint-arg=0.0.0.0:8001 --expose 8001/tcp)
	fi
	"$PY" scripts/package/oci.py --name "$prog" --version "$VERSION" --revision "$REVISION" \
		--source "$PROJECT_URL" --epoch "$SOURCE_DATE_EPOCH" --out "$out/$prog-oci.tar" "${args[@]}"
}

for t in "${targets[@]}"; do
	read -r ipk_arch deb_arch _ <<<"$(arch_of "$t")"
	[ "$ipk_arch" = - ] || build_ipk "$t" "$ipk_arch"
	if [ "$deb_arch" != - ]; then
		build_deb tunnel-client "$t" "$deb_arch"
		build_deb tunnel-server "$t" "$deb_arch"
	fi
done
build_oci tunnel-client
build_oci tunnel-server

(cd "$out" && find . -maxdepth 1 -type f -printf '%P\n' | sort | xargs sha256sum) >"$work/SHA256SUMS"
mv "$work/SHA256SUMS" "$out/SHA256SUMS"
echo "package: $(($(wc -l <"$out/SHA256SUMS"))) packages and SHA256SUMS in $out (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH):"
(cd "$out" && find . -maxdepth 1 -type f -printf '%s %P\n' | sort -k2 | awk '{ printf "  %9d  %s\n", $1, $2 }')
