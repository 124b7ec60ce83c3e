#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu, if missing: clang + zlib (Native AOT),
# podman + runc (container engine for Testcontainers), docker-registry (the CNCF distribution
# registry the tests run), skopeo + umoci (peers that judge our images), busybox-static (a
# ModelCar base built offline), apache2-utils (htpasswd), openssl, curl; buildah and aria2 for
# the benchmarks; on x86_64 also what cross-publishing and running the linux-arm64 binaries needs
# (Debian's arm64 cross toolchain, arm64 zlib/libc/OpenSSL, qemu-user-static), and Debian's arm64
# busybox-static unpacked into $ARM64_BUSYBOX_DIR (the tests' two-platform busybox base) and Debian's
# arm64 libc-bin into $TESTS_SHARE/libc-bin-arm64 (its static ldconfig writes the arm64 builder image's
# ld.so.cache, run under qemu: scripts/build-image.sh). Neither can be installed beside the amd64
# package, so each is downloaded and unpacked with dpkg-deb -x. Uses sudo when not root.
set -euo pipefail
# keep in sync with tests/TestSupport/Busybox.cs and scripts/build-image.sh
TESTS_SHARE="${MODELCAR_TESTS_SHARE:-/usr/local/share/modelcar-tests}"
ARM64_BUSYBOX_DIR="${MODELCAR_ARM64_BUSYBOX_DIR:-$TESTS_SHARE/busybox-arm64}"
pkgs=(clang zlib1g-dev podman runc docker-registry skopeo umoci busybox-static apache2-utils openssl curl buildah aria2 python3)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ "$(uname -m)" = x86_64 ] && command -v dpkg >/dev/null; then
  pkgs+=(lld binutils-aarch64-linux-gnu libc6-dev-arm64-cross libgcc-12-dev-arm64-cross qemu-user-static
         zlib1g-dev:arm64 libc6:arm64 libssl3:arm64)
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "prerequisites.sh: install these first: ${missing[*]}" >&2; exit 1; }
  echo "prerequisites.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# unpack_arm64 PACKAGE DIR FILE: Debian's arm64 PACKAGE unpacked into DIR unless DIR/FILE exists
unpack_arm64() {
  local pkg="$1" dir="$2" file="$3" dl
  [ -e "$dir/$file" ] && return 0
  command -v dpkg >/dev/null || return 0
  dpkg --print-foreign-architectures | grep -qx arm64 || { $sudo dpkg --add-architecture arm64; $sudo apt-get update -qq; }
  dl="$(mktemp -d)"; chmod 0777 "$dl"
  echo "prerequisites.sh: downloading $pkg:arm64 into $dir" >&2
  (cd "$dl" && { apt-get download -qq "$pkg:arm64" 2>/dev/null || { $sudo apt-get update -qq && apt-get download -qq "$pkg:arm64"; }; })
  $sudo mkdir -p "$dir"
  $sudo dpkg-deb -x "$dl"/"${pkg}"_*_arm64.deb "$dir"
  rm -rf "$dl"
}
# arm64 busybox for the two-platform test base (statically linked: runs under qemu-aarch64-static)
unpack_arm64 busybox-static "$ARM64_BUSYBOX_DIR" bin/busybox
# arm64 ldconfig (static-pie) for the arm64 builder image's ld.so.cache
[ "$(uname -m)" != x86_64 ] || unpack_arm64 libc-bin "$TESTS_SHARE/libc-bin-arm64" sbin/ldconfig
