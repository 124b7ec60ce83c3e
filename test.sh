#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine with the .NET SDK this is the one command:
#   installs prerequisites (apt), starts a Docker-compatible engine for Testcontainers when no
#   Docker engine is there (podman socket + a local registry image), publishes the four
#   Native-AOT binaries (the tests run those; on x86_64 also the linux-arm64 ones into
#   out/bin-arm64, run under qemu-user-static), then runs all xunit projects.
# Extra arguments go to `dotnet test` (e.g. --filter FullyQualifiedName~Registry).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/prerequisites.sh
if [ -z "${DOCKER_HOST:-}" ] && ! { [ -S /var/run/docker.sock ] && curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; }; then
  scripts/container-engine.sh start
  eval "$(scripts/container-engine.sh env)"
fi
./build.sh
[ "$(uname -m)" != x86_64 ] || ./build.sh out/bin-arm64 linux-arm64
log="$(mktemp)"
set +e
dotnet test Tools.sln -c Release --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One summary line over all test assemblies ("N passed, N failed, N skipped").
python3 - "$log" <<'PY'
import re, sys
p = f = s = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Failed:\s*(\d+),\s*Passed:\s*(\d+),\s*Skipped:\s*(\d+)", line)
    if m:
        f += int(m.group(1)); p += int(m.group(2)); s += int(m.group(3))
print(f"tests: {p} passed, {f} failed, {s} skipped")
PY
rm -f "$log"
exit "$status"
