#!/usr/bin/env bash
# Builds the builder image with podman, offline: the binaries come from ./build.sh (BINARIES=prebuilt:
# out/bin for x86_64, out/bin-arm64 for arm64) and, unless RUNTIME_IMAGE is given, the runtime base is
# a FROM-scratch stand-in for ubi9/ubi-minimal holding exactly the files of it the tools use, at
# ubi-minimal's paths (x86_64; aarch64 differs only in the loader's name and link):
#   glibc            /usr/lib64/{ld-linux-x86-64.so.2,libc.so.6,libm.so.6}, /lib64 -> usr/lib64,
#                    /etc/ld.so.conf + /etc/ld.so.cache
#                    aarch64: /usr/lib64/ld-linux-aarch64.so.1, /lib -> usr/lib,
#                    /usr/lib/ld-linux-aarch64.so.1 -> ../lib64/ld-linux-aarch64.so.1 (the binaries'
#                    interpreter is /lib/ld-linux-aarch64.so.1)
#   openssl-libs     /usr/lib64/{libssl.so.3,libcrypto.so.3}
#   ca-certificates  /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, the links
#                    /etc/pki/tls/certs/ca-bundle.crt, /etc/pki/tls/cert.pem, /etc/ssl/certs -> ../pki/tls/certs
#   setup/filesystem /etc/passwd, /etc/group (root only: no user 1001), /tmp (1777)
# plus one link ubi-minimal does not need: /usr/lib/ssl/{cert.pem,certs} -> the bundle, because
# the copied libcrypto is this host's (Debian's, OPENSSLDIR=/usr/lib/ssl) where ubi-minimal's looks
# in /etc/pki/tls. The arm64 libraries are Debian's libc6:arm64 and libssl3:arm64, and its
# ld.so.cache is written by Debian's arm64 ldconfig (libc-bin:arm64, unpacked by
# scripts/prerequisites.sh) under qemu-aarch64-static: the host's ldconfig skips foreign libraries.
# No shell, no package manager: what the tools do not load is not there, so a missing runtime
# dependency fails here as it would on ubi-minimal (BuilderImageTests lists the files).
#
# Usage: scripts/build-image.sh [TAG]        (default localhost/modelcar-tools:dev; this machine's platform)
#        PLATFORMS=linux/amd64,linux/arm64 scripts/build-image.sh [TAG]
#            one image per platform (TAG-amd64, TAG-arm64) and a two-platform image index TAG (a podman
#            manifest list); with INDEX_LAYOUT=DIR also written as an OCI layout DIR:<tag> (podman
#            manifest push --all), blobs as built. Builds need no emulation (no RUN in the prebuilt
#            path); running the arm64 image needs qemu-user-static's binfmt_misc entry.
#        RUNTIME_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal:latest scripts/build-image.sh   (the real base)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-localhost/modelcar-tools:dev}"
cd "$here"
host_arch="$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')"
platforms="${PLATFORMS:-linux/$host_arch}"
tests_share="${MODELCAR_TESTS_SHARE:-/usr/local/share/modelcar-tests}"   # see scripts/prerequisites.sh

# the prebuilt binaries of an architecture, at out/bin-<arch> where the Containerfile takes them (TARGETARCH)
binaries_for() {
  local arch="$1" rid dir
  rid="linux-$(echo "$arch" | sed -e 's/amd64/x64/')"
  if [ "$arch" = "$host_arch" ]; then
    [ -x out/bin/oci-pack ] || ./build.sh
    dir="out/bin"
  else
    [ -x "out/bin-$arch/oci-pack" ] || ./build.sh "out/bin-$arch" "$rid"
    dir="out/bin-$arch"
  fi
  if [ "$dir" != "out/bin-$arch" ]; then
    rm -rf "out/bin-$arch"; mkdir -p "out/bin-$arch"
    cp -l "$dir"/hf-fetch "$dir"/oci-pack "$dir"/registry-push "$dir"/mr-register "out/bin-$arch/"
  fi
}

# the ubi-minimal stand-in for an architecture (see the header)
runtime_base_for() {
  local arch="$1" name="localhost/modelcar-runtime-base:ubi-minimal-files"
  [ "$arch" = amd64 ] || name="$name-$arch"
  if podman image exists "$name"; then echo "$name"; return; fi
  local ctx; ctx="$(mktemp -d)"
  local r="$ctx/root" loader triple ldconfig_cmd=(ldconfig)
  case "$arch" in
    amd64) loader=ld-linux-x86-64.so.2; triple=x86_64-linux-gnu ;;
    arm64) loader=ld-linux-aarch64.so.1; triple=aarch64-linux-gnu ;;
    *) echo "build-image.sh: unsupported architecture $arch" >&2; exit 2 ;;
  esac
  mkdir -p "$r/usr/lib64" "$r/usr/lib/ssl" "$r/etc/pki/ca-trust/extracted/pem" "$r/etc/pki/tls/certs" "$r/etc/ssl" "$r/tmp"
  chmod 1777 "$r/tmp"
  ln -s usr/lib64 "$r/lib64"
  for l in "$loader" libc.so.6 libm.so.6 libssl.so.3 libcrypto.so.3; do
    p=""
    for d in "/lib/$triple" "/usr/lib/$triple" /lib64 /usr/lib64; do
      [ -e "$d/$l" ] && { p="$d/$l"; break; }
    done
    [ -n "$p" ] || { echo "build-image.sh: $l for $arch not found on this host (scripts/prerequisites.sh installs libc6:$arch and libssl3:$arch)" >&2; exit 1; }
    cp -L "$p" "$r/usr/lib64/$l"
  done
  if [ "$arch" = arm64 ]; then
    ln -s usr/lib "$r/lib"
    ln -s ../lib64/ld-linux-aarch64.so.1 "$r/usr/lib/ld-linux-aarch64.so.1"
    if [ "$host_arch" != arm64 ]; then
      ldconfig_cmd=(qemu-aarch64-static "$tests_share/libc-bin-arm64/sbin/ldconfig")
      [ -e "${ldconfig_cmd[1]}" ] || { echo "build-image.sh: ${ldconfig_cmd[1]} is missing: run scripts/prerequisites.sh" >&2; exit 1; }
    fi
  fi
  printf '/usr/lib64\n' >"$r/etc/ld.so.conf"
  "${ldconfig_cmd[@]}" -r "$r"
  cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
  ln -s ../../ca-trust/extracted/pem/tls-ca-bundle.pem "$r/etc/pki/tls/certs/ca-bundle.crt"
  ln -s certs/ca-bundle.crt "$r/etc/pki/tls/cert.pem"
  ln -s ../pki/tls/certs "$r/etc/ssl/certs"
  ln -s /etc/pki/tls/cert.pem "$r/usr/lib/ssl/cert.pem"
  ln -s /etc/pki/tls/certs "$r/usr/lib/ssl/certs"
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
  printf 'FROM scratch\nCOPY root/ /\n' >"$ctx/Containerfile"
  podman build -q --platform "linux/$arch" -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "$name"
}

build_one() {
  local arch="$1" image="$2" runtime
  binaries_for "$arch"
  runtime="${RUNTIME_IMAGE:-$(runtime_base_for "$arch")}"
  podman build -q -f images/Containerfile --platform "linux/$arch" \
    --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE="$runtime" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$image" . >/dev/null
}

IFS=',' read -r -a list <<<"$platforms"
if [ "${#list[@]}" -eq 1 ]; then
  build_one "${list[0]#linux/}" "$tag"
  echo "$tag"
  exit 0
fi
podman manifest rm "$tag" >/dev/null 2>&1 || podman rmi -f "$tag" >/dev/null 2>&1 || true
podman manifest create "$tag" >/dev/null
for p in "${list[@]}"; do
  arch="${p#linux/}"
  build_one "$arch" "$tag-$arch"
  podman manifest add "$tag" "containers-storage:$tag-$arch" >/dev/null
done
if [ -n "${INDEX_LAYOUT:-}" ]; then
  rm -rf "$INDEX_LAYOUT"
  podman manifest push -q --all --format oci "$tag" "oci:$INDEX_LAYOUT:${tag##*:}" >/dev/null
fi
echo "$tag"
