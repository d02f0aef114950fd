# shellcheck shell=bash
# Packages for the cross targets in toolchains/. Sourced by
# scripts/install-build-deps.sh --cross, which installs "${pkgs[@]}" after
# `dpkg --add-architecture` for every entry of "${cross_arches[@]}".
#
#   mips-linux-musl, mipsel-linux-musl     Debian's glibc cross compilers; musl
#       and the soft-float runtime are built from Debian's musl and glibc source
#       packages by scripts/build-musl.sh (deb-src entries: install-build-deps.sh)
#   armv7-linux-musleabihf, armv5-linux-musleabi, aarch64-linux-musl
#       Debian's cross compilers plus musl-dev of the target architecture,
#       which ships the <triplet>-linux-musl*-gcc wrapper
#   every target: qemu-user-static runs the binaries and the tests
# shellcheck disable=SC2034 # both arrays are used by the sourcing script

cross_arches+=(armhf armel arm64)
pkgs+=(
	qemu-user-static
	gcc-mips-linux-gnu binutils-mips-linux-gnu
	gcc-mipsel-linux-gnu binutils-mipsel-linux-gnu
	gcc-arm-linux-gnueabihf binutils-arm-linux-gnueabihf musl-dev:armhf
	gcc-arm-linux-gnueabi binutils-arm-linux-gnueabi musl-dev:armel
	gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu musl-dev:arm64
)
