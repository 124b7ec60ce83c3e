#!/usr/bin/env bash
# Benchmark: mr-register (Native AOT) vs the Python register_model flow, in the same run, against
# the same local fake Model Registry (scripts/fake-model-registry.py on 127.0.0.1).
#
# The peer is the HTTP call sequence of model_registry's `ModelRegistry.register_model` (find model
# or create, find version (fails if it exists), create version, create artifact) written with the
# standard library (urllib): the real `model-registry` package cannot be installed here (no PyPI)
# and would only be slower to start (it imports aiohttp, pydantic, the generated OpenAPI client).
# So the ratio is a LOWER bound of the real speed-up.
#
# Usage: scripts/bench-mr-register.sh [N]   (N registrations per tool, default 30; needs ./build.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
n="${1:-30}"
bin="${MODELCAR_BIN_DIR:-out/bin}"
[ -x "$bin/mr-register" ] || { echo "bench: $bin/mr-register missing: run ./build.sh" >&2; exit 1; }
# the interpreter itself, not a pyenv/asdf shim script (that would add its own start-up to the peer)
py="$(python3 -c 'import sys; print(sys.executable)')"
work="$(mktemp -d)"
trap 'kill "$fake_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(free_port)"
"$py" scripts/fake-model-registry.py "$port" & fake_pid=$!
url="http://127.0.0.1:$port"
wait_http "$url/" "$fake_pid"

cat > "$work/peer.py" <<'PY'
import json, sys, urllib.error, urllib.request
base, model, version, uri = sys.argv[1] + "/api/model_registry/v1alpha3", sys.argv[2], sys.argv[3], sys.argv[4]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
s, m = call("GET", "/registered_model?" + urllib.parse.urlencode({"name": model}))
if s == 404:
    s, m = call("POST", "/registered_models", {"name": model})
s, v = call("GET", "/model_version?" + urllib.parse.urlencode({"name": version, "parentResourceId": m["id"]}))
if s == 200:
    sys.exit("Version already exists")
s, v = call("POST", "/model_versions", {"name": version, "registeredModelId": m["id"]})
s, a = call("POST", f"/model_versions/{v['id']}/artifacts", {"artifactType": "model-artifact", "name": model, "uri": uri})
print(m["id"], v["id"], a["id"])
PY
sed -i '1i import urllib.parse' "$work/peer.py"

now() { date +%s.%N; }
run_ours() {
  for i in $(seq "$n"); do
    "$bin/mr-register" register --server "$url" --tls-verify=false --model-name "bench-$1" \
      --version-name "v$i" --uri "oci://127.0.0.1/bench:$i" --model-format-name vLLM >/dev/null 2>&1
  done
}
run_peer() {
  for i in $(seq "$n"); do
    "$py" "$work/peer.py" "$url" "bench-$1" "v$i" "oci://127.0.0.1/bench:$i" >/dev/null
  done
}

echo "bench: $n registrations per tool against $url" >&2
t0=$(now); run_peer py; t1=$(now); run_ours aot; t2=$(now); run_ours aot; t3=$(now)
peer=$(echo "$t1 - $t0" | bc -l); ours=$(echo "$t2 - $t1" | bc -l); rerun=$(echo "$t3 - $t2" | bc -l)
printf 'python register_model flow (urllib): %6.2f s  (%5.1f ms per registration)\n' "$peer" "$(echo "$peer * 1000 / $n" | bc -l)"
printf 'mr-register register (fresh):       %6.2f s  (%5.1f ms per registration)\n' "$ours" "$(echo "$ours * 1000 / $n" | bc -l)"
printf 'mr-register register (re-run):      %6.2f s  (%5.1f ms per registration; the Python flow fails here)\n' "$rerun" "$(echo "$rerun * 1000 / $n" | bc -l)"
printf 'ratio python / mr-register (fresh): %.2fx\n' "$(echo "$peer / $ours" | bc -l)"
if command -v /usr/bin/time >/dev/null; then
  rss_ours=$(/usr/bin/time -f %M "$bin/mr-register" register --server "$url" --tls-verify=false --model-name bench-rss --version-name v1 --uri oci://x/y:1 2>&1 >/dev/null | tail -1)
  rss_peer=$(/usr/bin/time -f %M "$py" "$work/peer.py" "$url" bench-rss-py v1 oci://x/y:1 2>&1 >/dev/null | tail -1)
  echo "peak RSS: mr-register ${rss_ours} KiB, python flow ${rss_peer} KiB"
fi
