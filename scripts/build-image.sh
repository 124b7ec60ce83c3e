#!/usr/bin/env bash
# Builds the builder image with podman, offline: the binaries come from ./build.sh (BINARIES=prebuilt)
# and, unless RUNTIME_IMAGE is given, the runtime base is assembled from this host's own glibc,
# OpenSSL 3 and CA bundle as a FROM-scratch image (what ubi-micro provides, nothing more).
# Usage: scripts/build-image.sh [TAG]        (default localhost/modelcar-tools:dev)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-localhost/modelcar-tools:dev}"
cd "$here"
[ -x out/bin/oci-pack ] || ./build.sh
runtime="${RUNTIME_IMAGE:-}"
if [ -z "$runtime" ]; then
  runtime="localhost/modelcar-runtime-base:host"
  if ! podman image exists "$runtime"; then
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/root/etc/ssl/certs" "$ctx/root/tmp"
    chmod 1777 "$ctx/root/tmp"
    libs=(/lib64/ld-linux-x86-64.so.2)
    for l in libc.so.6 libm.so.6 libssl.so.3 libcrypto.so.3; do
      p="$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64|x86_64|AArch64/ { print $NF; exit }')"
      [ -n "$p" ] || { echo "build-image.sh: $l not found on this host" >&2; exit 1; }
      libs+=("$p")
    done
    for l in "${libs[@]}"; do mkdir -p "$ctx/root$(dirname "$l")"; cp -L "$l" "$ctx/root$l"; done
    cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/root/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\ndefault:x:1001:0:default user:/tmp:/sbin/nologin\n' >"$ctx/root/etc/passwd"
    printf 'root:x:0:\n' >"$ctx/root/etc/group"
    printf 'FROM scratch\nCOPY root/ /\n' >"$ctx/Containerfile"
    podman build -q -t "$runtime" "$ctx" >/dev/null
  fi
fi
podman build -q -f images/Containerfile \
  --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE="$runtime" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$tag" . >/dev/null
echo "$tag"
