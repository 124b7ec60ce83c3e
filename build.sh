#!/usr/bin/env bash
# Publishes the four Native-AOT tools into out/bin (or OUT_DIR).
#   ./build.sh [OUT_DIR [RID]]     RID: linux-x64 or linux-arm64 (default: this machine's)
# Needs clang and zlib1g-dev (scripts/prerequisites.sh installs them on Debian). Publishing for the
# other architecture (x64 → arm64) cross-compiles: it needs lld, binutils-aarch64-linux-gnu, the
# arm64 cross libc and libgcc, and zlib1g-dev:arm64 (scripts/prerequisites.sh --cross-arm64).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out="$(realpath -m "${1:-out/bin}")"
host_rid="linux-$(uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')"
rid="${2:-$host_rid}"
cross=()
if [ "$rid" != "$host_rid" ]; then
  case "$rid" in
    linux-arm64) cross=(-p:LinkerFlavor=lld -p:ObjCopyName=aarch64-linux-gnu-objcopy) ;;
    linux-x64) cross=(-p:LinkerFlavor=lld -p:ObjCopyName=x86_64-linux-gnu-objcopy) ;;
    *) echo "build.sh: unsupported RID '$rid' (linux-x64, linux-arm64)" >&2; exit 2 ;;
  esac
fi
mkdir -p "$out"
for tool in hf-fetch oci-pack registry-push mr-register; do
  echo "build.sh: publishing $tool ($rid, Native AOT)" >&2
  dotnet publish "tools/$tool/$tool.csproj" -c Release -r "$rid" -o "$out" --nologo -v quiet \
    -p:StripSymbols=true -p:CopyOutputSymbolsToPublishDirectory=false "${cross[@]}" >&2
done
rm -f "$out"/*.dbg
ls -l "$out" >&2
