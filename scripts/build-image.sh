#!/usr/bin/env bash
# Builds the builder image with podman, offline: the binaries come from ./build.sh (BINARIES=prebuilt)
# and, unless RUNTIME_IMAGE is given, the runtime base is a FROM-scratch stand-in for
# ubi9/ubi-minimal holding exactly the files of it the tools use, at ubi-minimal's paths:
#   glibc            /usr/lib64/{ld-linux-x86-64.so.2,libc.so.6,libm.so.6}, /lib64 -> usr/lib64,
#                    /etc/ld.so.conf + /etc/ld.so.cache
#   openssl-libs     /usr/lib64/{libssl.so.3,libcrypto.so.3}
#   ca-certificates  /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, the links
#                    /etc/pki/tls/certs/ca-bundle.crt, /etc/pki/tls/cert.pem, /etc/ssl/certs -> ../pki/tls/certs
#   setup/filesystem /etc/passwd, /etc/group (root only: no user 1001), /tmp (1777)
# plus one link ubi-minimal does not need: /usr/lib/ssl/{cert.pem,certs} -> the bundle, because
# the copied libcrypto is this host's (Debian's, OPENSSLDIR=/usr/lib/ssl) where ubi-minimal's looks
# in /etc/pki/tls. No shell, no package manager: what the tools do not load is not there, so a
# missing runtime dependency fails here as it would on ubi-minimal (BuilderImageTests lists the files).
# Usage: scripts/build-image.sh [TAG]        (default localhost/modelcar-tools:dev)
#        RUNTIME_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal:latest scripts/build-image.sh   (the real base)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-localhost/modelcar-tools:dev}"
cd "$here"
[ -x out/bin/oci-pack ] || ./build.sh
runtime="${RUNTIME_IMAGE:-}"
if [ -z "$runtime" ]; then
  runtime="localhost/modelcar-runtime-base:ubi-minimal-files"
  if ! podman image exists "$runtime"; then
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    r="$ctx/root"
    mkdir -p "$r/usr/lib64" "$r/usr/lib/ssl" "$r/etc/pki/ca-trust/extracted/pem" "$r/etc/pki/tls/certs" "$r/etc/ssl" "$r/tmp"
    chmod 1777 "$r/tmp"
    ln -s usr/lib64 "$r/lib64"
    for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libssl.so.3 libcrypto.so.3; do
      p="$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64|x86_64/ { print $NF; exit }')"
      [ -n "$p" ] || { echo "build-image.sh: $l not found on this host" >&2; exit 1; }
      cp -L "$p" "$r/usr/lib64/$l"
    done
    printf '/usr/lib64\n' >"$r/etc/ld.so.conf"
    ldconfig -r "$r"
    cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
    ln -s ../../ca-trust/extracted/pem/tls-ca-bundle.pem "$r/etc/pki/tls/certs/ca-bundle.crt"
    ln -s certs/ca-bundle.crt "$r/etc/pki/tls/cert.pem"
    ln -s ../pki/tls/certs "$r/etc/ssl/certs"
    ln -s /etc/pki/tls/cert.pem "$r/usr/lib/ssl/cert.pem"
    ln -s /etc/pki/tls/certs "$r/usr/lib/ssl/certs"
    printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
    printf 'FROM scratch\nCOPY root/ /\n' >"$ctx/Containerfile"
    podman build -q -t "$runtime" "$ctx" >/dev/null
  fi
fi
podman build -q -f images/Containerfile \
  --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE="$runtime" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$tag" . >/dev/null
echo "$tag"
