#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu, if missing: clang + zlib (Native AOT),
# podman + runc (container engine for Testcontainers), docker-registry (the CNCF distribution
# registry the tests run), skopeo + umoci (peers that judge our images), busybox-static (a
# ModelCar base built offline), apache2-utils (htpasswd), openssl, curl; buildah and aria2 for
# the benchmarks. Uses sudo when not root.
set -euo pipefail
pkgs=(clang zlib1g-dev podman runc docker-registry skopeo umoci busybox-static apache2-utils openssl curl buildah aria2 python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "prerequisites.sh: install these first: ${missing[*]}" >&2; exit 1; }
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "prerequisites.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
