#!/usr/bin/env bash
# Publishes the four Native-AOT tools into out/bin (or $1). Needs clang and zlib1g-dev
# (scripts/prerequisites.sh installs them on Debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out="$(realpath -m "${1:-out/bin}")"
mkdir -p "$out"
rid="linux-$(uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')"
for tool in hf-fetch oci-pack registry-push mr-register; do
  echo "build.sh: publishing $tool ($rid, Native AOT)" >&2
  dotnet publish "tools/$tool/$tool.csproj" -c Release -r "$rid" -o "$out" --nologo -v quiet \
    -p:StripSymbols=true -p:CopyOutputSymbolsToPublishDirectory=false >&2
done
rm -f "$out"/*.dbg
ls -l "$out" >&2
