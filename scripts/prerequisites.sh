#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu, if missing: clang + zlib (Native AOT),
# podman + runc (container engine for Testcontainers), docker-registry (the CNCF distribution
# registry the tests run), skopeo + umoci (peers that judge our images), busybox-static (a
# ModelCar base built offline), apache2-utils (htpasswd), openssl, curl; buildah and aria2 for
# the benchmarks; on x86_64 also what cross-publishing and running the linux-arm64 binaries needs
# (Debian's arm64 cross toolchain, arm64 zlib/libc/OpenSSL, qemu-user-static), and Debian's arm64
# busybox-static unpacked into $ARM64_BUSYBOX_DIR (the tests' two-platform busybox base; it cannot be
# installed beside the amd64 package, so it is downloaded and unpacked with dpkg-deb -x). Uses sudo when not root.
set -euo pipefail
# keep in sync with tests/TestSupport/Busybox.cs
ARM64_BUSYBOX_DIR="${MODELCAR_ARM64_BUSYBOX_DIR:-/usr/local/share/modelcar-tests/busybox-arm64}"
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
# arm64 busybox for the two-platform test base (statically linked: runs under qemu-aarch64-static)
if [ ! -x "$ARM64_BUSYBOX_DIR/bin/busybox" ] && command -v dpkg >/dev/null; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { $sudo dpkg --add-architecture arm64; $sudo apt-get update -qq; }
  dl="$(mktemp -d)"; chmod 0777 "$dl"
  echo "prerequisites.sh: downloading busybox-static:arm64 into $ARM64_BUSYBOX_DIR" >&2
  (cd "$dl" && { apt-get download -qq busybox-static:arm64 2>/dev/null || { $sudo apt-get update -qq && apt-get download -qq busybox-static:arm64; }; })
  $sudo mkdir -p "$ARM64_BUSYBOX_DIR"
  $sudo dpkg-deb -x "$dl"/busybox-static_*_arm64.deb "$ARM64_BUSYBOX_DIR"
  rm -rf "$dl"
fi
