#!/usr/bin/env bash
# Benchmark: registry-push vs skopeo pushing the same OCI layout to a fresh local registry.
#
#   scripts/bench-registry-push.sh [FILES] [SIZE]      (default: 4 files x 1G, the baseline's model shape)
#   e.g. scripts/bench-registry-push.sh 4 256M
#
# Builds an OCI image layout with one uncompressed tar layer per model file (FILES x SIZE of random,
# incompressible bytes, like safetensors) plus a layer of small JSON files, then for each contender
# starts a fresh `docker-registry` (CNCF distribution) on 127.0.0.1 with filesystem storage and times:
#   1. skopeo copy oci:… docker://…                     (as the seed calls it: compresses the layers)
#   2. skopeo copy --preserve-digests oci:… docker://…  (skopeo at its best: no recompression)
#   3. out/bin/registry-push --source oci:… --dest docker://…
#   4. registry-push again, same image, same registry   (re-push: HEAD requests only)
# and prints the ratios. Needs: skopeo, docker-registry, python3, curl, and ./build.sh's out/bin.
# Work files go to $BENCH_DIR (default /var/tmp); everything is deleted at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
files="${1:-4}"
size="${2:-1G}"
tool="${REGISTRY_PUSH:-$PWD/out/bin/registry-push}"
for p in skopeo docker-registry python3 curl; do
  command -v "$p" >/dev/null || { echo "bench: $p is not installed" >&2; exit 1; }
done
[ -x "$tool" ] || { echo "bench: $tool missing: run ./build.sh first" >&2; exit 1; }
bytes="$(python3 -c 'import sys
s=sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m={"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}
print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$size")"
work="$(mktemp -d "${BENCH_DIR:-/var/tmp}/bench-registry-push.XXXXXX")"
reg_pid=""
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building an OCI layout: $files files x $size (random) + small JSON files in $work/layout" >&2
python3 - "$work/layout" "$files" "$bytes" <<'PY'
import hashlib, io, json, os, sys, tarfile
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
def tar_layer(entries):
    # streams a GNU tar of (name, size, data-generator) into a temp blob while hashing it
    tmp = os.path.join(blobs, ".tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        class W:
            def write(self, b):
                h.update(b); out.write(b); return len(b)
        with tarfile.open(fileobj=W(), mode="w|", format=tarfile.GNU_FORMAT) as t:
            for name, length, gen in entries:
                info = tarfile.TarInfo(name); info.size = length; info.mode = 0o664; info.mtime = 0
                t.addfile(info, gen())
    d = h.hexdigest(); os.rename(tmp, os.path.join(blobs, d))
    return "sha256:" + d, os.path.getsize(os.path.join(blobs, d))
class Rand(io.RawIOBase):
    def __init__(self, n): self.left = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.left, 1 << 20)
        if k == 0: return 0
        b[:k] = os.urandom(k); self.left -= k; return k
layers = []
small = [("models/config.json", b'{"model_type":"bench"}'), ("models/tokenizer.json", b'{"version":"1.0"}' * 1000)]
layers.append(tar_layer([(nm, len(d), lambda d=d: io.BytesIO(d)) for nm, d in small]))
for i in range(n):
    layers.append(tar_layer([(f"models/model-{i+1:05d}-of-{n:05d}.safetensors", size, lambda: io.BufferedReader(Rand(size), 1 << 20))]))
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "1001"},
    "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}, separators=(",", ":")).encode()
cd, cs = put(config)
lt = "application/vnd.oci.image.layer.v1.tar"
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": lt, "digest": d, "size": s} for d, s in layers]}, separators=(",", ":")).encode()
md, ms = put(manifest)
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
     "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, open(os.path.join(root, "index.json"), "w"))
print(md)
PY
image="oci:$work/layout:bench"
cat "$work"/layout/blobs/sha256/* >/dev/null   # same (warm) page cache for every contender

start_registry_fresh() {
  [ -n "$reg_pid" ] && { kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true; }
  rm -rf "$work/registry"
  start_registry "$work/registry"
  reg_pid="$REGISTRY_PID" port="$REGISTRY_PORT"
}

timeit() { # prints seconds taken by "$@" (its output goes to $work/last.log)
  local t0 t1
  t0="$(date +%s.%N)"
  "$@" >"$work/last.log" 2>&1 || { echo "bench: failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  t1="$(date +%s.%N)"
  python3 -c "print(f'{$t1-$t0:.2f}')"
}

start_registry_fresh
t_seed="$(timeit skopeo copy --dest-tls-verify=false "$image" "docker://127.0.0.1:$port/bench/model:seed")"
echo "bench: skopeo copy (seed, compresses)       ${t_seed} s" >&2
start_registry_fresh
t_best="$(timeit skopeo copy --preserve-digests --dest-tls-verify=false "$image" "docker://127.0.0.1:$port/bench/model:best")"
echo "bench: skopeo copy --preserve-digests       ${t_best} s" >&2
start_registry_fresh
t_ours="$(timeit "$tool" --source "$image" --dest "docker://127.0.0.1:$port/bench/model:ours" --tls-verify=false)"
echo "bench: registry-push                        ${t_ours} s" >&2
t_again="$(timeit "$tool" --source "$image" --dest "docker://127.0.0.1:$port/bench/model:ours" --tls-verify=false)"
echo "bench: registry-push re-push (unchanged)    ${t_again} s" >&2
grep -q "manifest unchanged" "$work/last.log" || { echo "bench: re-push was not HEAD-only" >&2; cat "$work/last.log" >&2; exit 1; }

python3 - "$files" "$size" "$t_seed" "$t_best" "$t_ours" "$t_again" <<'PY'
import sys
files, size, seed, best, ours, again = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
print(f"model: {files} x {size}")
print(f"skopeo copy (seed)            {seed:8.2f} s")
print(f"skopeo --preserve-digests     {best:8.2f} s")
print(f"registry-push                 {ours:8.2f} s")
print(f"registry-push re-push         {again:8.2f} s")
print(f"ratio seed/registry-push      {seed/ours:8.2f}x   (goal >= 2)")
print(f"ratio best/registry-push      {best/ours:8.2f}x   (goal > 1)")
print(f"re-push                       {again:8.2f} s    (goal <= 1 s)")
PY
