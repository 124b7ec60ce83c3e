#!/usr/bin/env bash
# Installs what building, running and testing need on Debian/Ubuntu, if missing. Two sets:
#
#   --main-job   what ./run-local.sh needs and nothing else: clang + zlib (Native AOT publish),
#                python3 (the sample model, the local Hub and Model Registry stand-ins), curl,
#                ca-certificates, umoci + busybox-static (the ModelCar base built offline),
#                docker-registry (the local CNCF distribution registry), podman + runc (the ModelCar
#                start check).
#   (default)    everything: the above, plus skopeo, umoci and containerd (peers that judge our images),
#                apache2-utils (htpasswd), openssl, buildah and aria2 for the benchmarks; on x86_64
#                also what cross-publishing and running the linux-arm64 binaries needs (Debian's arm64
#                cross toolchain, arm64 zlib/libc/OpenSSL, qemu-user-static), and Debian's arm64
#                busybox-static unpacked into $ARM64_BUSYBOX_DIR (the tests' two-platform busybox
#                base) and Debian's arm64 libc-bin into $TESTS_SHARE/libc-bin-arm64 (its static
#                ldconfig writes the arm64 builder image's ld.so.cache, run under qemu:
#                scripts/build-image.sh). Neither can be installed beside the amd64 package, so each
#                is downloaded and unpacked with dpkg-deb -x. test.sh installs this set.
#                Also the npm packages of tests/Signing.Tests/judge (npm ci into its git-ignored node_modules:
#                @sigstore/verify@3 + @sigstore/bundle@4, the Sigstore bundle judge; needs Node.js 20 and npm).
#   --log FILE   where apt's and dpkg's output goes (default: a new temporary file).
#   --list       print the package names of the set (one per line) and exit: nothing is installed.
#
# Prints one line per phase on stderr (what it does, the log file, how long it took); apt's output
# goes to the log only, and on a failure the log's last lines are printed. Uses sudo when not root.
set -euo pipefail
# keep in sync with tests/TestSupport/Busybox.cs and scripts/build-image.sh
TESTS_SHARE="${MODELCAR_TESTS_SHARE:-/usr/local/share/modelcar-tests}"
ARM64_BUSYBOX_DIR="${MODELCAR_ARM64_BUSYBOX_DIR:-$TESTS_SHARE/busybox-arm64}"
set_name=all log="" list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --main-job) set_name=main-job; shift ;;
    --all) set_name=all; shift ;;
    --log) log="$2"; shift 2 ;;
    --list) list=1; shift ;;
    *) echo "prerequisites.sh: unknown argument '$1' (--main-job, --all, --log FILE, --list)" >&2; exit 2 ;;
  esac
done
main_pkgs=(clang zlib1g-dev python3 curl ca-certificates umoci busybox-static docker-registry podman runc)
cross=0
if [ "$set_name" = main-job ]; then
  pkgs=("${main_pkgs[@]}")
else
  pkgs=(clang zlib1g-dev podman runc docker-registry skopeo umoci containerd busybox-static apache2-utils openssl curl buildah aria2 python3 ca-certificates)
  if [ "$(uname -m)" = x86_64 ] && command -v dpkg >/dev/null; then
    cross=1
    pkgs+=(lld binutils-aarch64-linux-gnu libc6-dev-arm64-cross libgcc-12-dev-arm64-cross qemu-user-static
           zlib1g-dev:arm64 libc6:arm64 libssl3:arm64)
  fi
fi
if [ "$list" = 1 ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
# ensure_log: the log file, created when the first phase runs (a run with nothing to do leaves none)
ensure_log() {
  if [ -z "$log" ]; then
    log="$(mktemp "${TMPDIR:-/tmp}/modelcar-prerequisites.XXXXXX.log")"
  elif [ ! -e "$log" ]; then
    mkdir -p "$(dirname "$log")"
    : >"$log"
  fi
}

# phase TITLE COMMAND...: one line on stderr ("prerequisites: TITLE … done in Ns"); the command's
# output goes to $log; on failure the line ends with the exit code and the log's last 25 lines follow.
phase() {
  local title="$1" start=$SECONDS status=0
  shift
  ensure_log
  printf 'prerequisites: %s … ' "$title" >&2
  { printf '\n### %s: %s\n' "$title" "$*"; } >>"$log"
  "$@" >>"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    printf 'FAILED (exit %s) — last lines of %s:\n' "$status" "$log" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
    exit "$status"
  fi
  printf 'done in %ss\n' "$((SECONDS - start))" >&2
}

if [ "$cross" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  phase "adding the arm64 architecture to dpkg" $sudo dpkg --add-architecture arm64
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "prerequisites: all ${#pkgs[@]} packages of the $set_name set are installed" >&2
else
  command -v apt-get >/dev/null || { echo "prerequisites: install these first: ${missing[*]}" >&2; exit 1; }
  ensure_log
  echo "prerequisites: ${#missing[@]} of the ${#pkgs[@]} packages of the $set_name set are missing: ${missing[*]} (apt's output: $log)" >&2
  phase "apt-get update" $sudo apt-get update
  phase "apt-get install (${#missing[@]} packages and their dependencies)" \
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
[ "$set_name" = all ] || exit 0

# the Sigstore bundle judge (tests/Signing.Tests/judge): npm's @sigstore/verify@3 + @sigstore/bundle@4 at the
# versions its package-lock.json pins, installed into its git-ignored node_modules; needs Node.js >= 20.17 and npm
judge="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/Signing.Tests/judge"
if [ -f "$judge/package-lock.json" ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "prerequisites: node and npm are missing: install Node.js 20 (>= 20.17) with npm for the Sigstore bundle judge in $judge" >&2
    exit 1
  fi
  # node_modules/.installed-lock.json: the lock file the last npm ci installed (a changed pin installs again)
  if ! cmp -s "$judge/package-lock.json" "$judge/node_modules/.installed-lock.json" 2>/dev/null; then
    phase "npm ci (the Sigstore bundle judge: @sigstore/verify, @sigstore/bundle)" \
      sh -c 'npm ci --prefix "$1" --no-audit --no-fund && cp "$1/package-lock.json" "$1/node_modules/.installed-lock.json"' sh "$judge"
  fi
fi

# fetch_arm64 PACKAGE DIR: Debian's arm64 PACKAGE unpacked into DIR
fetch_arm64() {
  local pkg="$1" dir="$2" dl status=0
  # called from phase (errexit is off there): every step is chained
  dpkg --print-foreign-architectures | grep -qx arm64 || { $sudo dpkg --add-architecture arm64 && $sudo apt-get update; } || return
  dl="$(mktemp -d)" && chmod 0777 "$dl" || return
  { (cd "$dl" && { apt-get download "$pkg:arm64" || { $sudo apt-get update && apt-get download "$pkg:arm64"; }; }) &&
    $sudo mkdir -p "$dir" && $sudo dpkg-deb -x "$dl"/"${pkg}"_*_arm64.deb "$dir"; } || status=$?
  rm -rf "$dl"
  return "$status"
}
# unpack_arm64 PACKAGE DIR FILE: fetch_arm64 unless DIR/FILE exists
unpack_arm64() {
  [ -e "$2/$3" ] && return 0
  command -v dpkg >/dev/null || return 0
  phase "downloading $1:arm64 into $2" fetch_arm64 "$1" "$2"
}
# arm64 busybox for the two-platform test base (statically linked: runs under qemu-aarch64-static)
unpack_arm64 busybox-static "$ARM64_BUSYBOX_DIR" bin/busybox
# arm64 ldconfig (static-pie) for the arm64 builder image's ld.so.cache
[ "$(uname -m)" != x86_64 ] || unpack_arm64 libc-bin "$TESTS_SHARE/libc-bin-arm64" sbin/ldconfig
