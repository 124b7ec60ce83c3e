#!/usr/bin/env bash
# Benchmark (issue 20): oci-pack --format modelcar,modelpack against --format modelcar alone, same model,
# same run, one pass into a fresh local CNCF distribution registry each time; prints the time ratio
# (goal ≤ 1.02×) and the blob bytes each registry stored (goal: the same layer bytes; ModelPack adds
# only its config, its manifest and the index).
#
#   scripts/bench-modelpack.sh [SIZE] [FILES]     default 4G in 4 files
#   OCI_PACK=…                                   the binary (default out/bin/oci-pack from ./build.sh)
#
# The model is SIZE of incompressible bytes (AES-CTR keystream) in FILES "safetensors" files plus a
# small config.json (the ModelPack config reads it), generated once into
# .bench/model-FILESxSIZE (git-ignored) and reused; the page cache is warm for every run.
# Each format runs twice, alternating (A B B A), the best of two counts; every run gets a fresh
# registry (scripts/lib.sh start_registry) and a fresh --state-dir (no layer record), and its time
# includes a final sync. Base: scratch (the base is the same for both and not what is measured).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size="${1:-4G}"
files="${2:-4}"
oci_pack="$(realpath "${OCI_PACK:-out/bin/oci-pack}")"
bench_need "$oci_pack" -- docker-registry openssl curl python3
bench_dirs "$size" "$files" modelpack
model="$bench_root/model-${files}x${per_file}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bench_model "$model" "$files" "$per_file" modelpack
cat "$model"/* > /dev/null   # warm the page cache

# run NAME FORMAT: one pass into a fresh registry; prints "SECONDS STORED_BLOB_BYTES LAYER_BYTES"
run() {
  local name="$1" format="$2" dir="$work/$1" start end
  start_registry "$dir/registry" >/dev/null
  pids+=("$REGISTRY_PID")
  sync
  start=$(date +%s.%N)
  "$oci_pack" --model "$model" --base scratch --allow-no-shell --format "$format" --state-dir "$dir/state" \
    --output "docker://127.0.0.1:$REGISTRY_PORT/bench/model:v1" --tls-verify=false 2>"$dir/log" >/dev/null \
    || { tail -5 "$dir/log" >&2; exit 1; }
  sync
  end=$(date +%s.%N)
  kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true
  python3 - "$dir/registry/data" "$start" "$end" <<'PY'
import os, sys
root = os.path.join(sys.argv[1], "docker/registry/v2/blobs")
sizes = [os.path.getsize(os.path.join(d, "data")) for d, _, f in os.walk(root) if "data" in f]
big = sum(s for s in sizes if s >= 1 << 20)   # the model layers (every other blob is a few KB)
print(f"{float(sys.argv[3]) - float(sys.argv[2]):.2f} {sum(sizes)} {big} {len(sizes)}")
PY
  # each run stores 4 GiB: left on disk (and in the page cache) it pushes the model out of the cache, so every
  # later run would read more from disk than the first and the order, not the format, would decide the ratio
  rm -rf "$dir"
}

declare -A best blobs layers count
for order in "modelcar modelcar,modelpack" "modelcar,modelpack modelcar"; do
  for f in $order; do
    read -r secs stored big n < <(run "r$RANDOM-${f//,/-}" "$f") || true
    [[ -n "${n:-}" ]] || { echo "bench: the --format $f run failed" >&2; exit 1; }
    echo "bench: --format $f: ${secs} s, ${n} blobs stored, ${stored} bytes (${big} in model layers)" >&2
    if [[ -z "${best[$f]:-}" ]] || python3 -c "import sys; sys.exit(0 if float('$secs') < float('${best[$f]}') else 1)"; then best[$f]=$secs; fi
    blobs[$f]=$stored; layers[$f]=$big; count[$f]=$n
  done
done
python3 - "${best[modelcar]}" "${best[modelcar,modelpack]}" "${layers[modelcar]}" "${layers[modelcar,modelpack]}" \
  "${blobs[modelcar]}" "${blobs[modelcar,modelpack]}" "${count[modelcar]}" "${count[modelcar,modelpack]}" "$size" "$files" <<'PY'
import sys
a, b = float(sys.argv[1]), float(sys.argv[2])
la, lb, sa, sb, na, nb = map(int, sys.argv[3:9])
ratio = b / a
print(f"model: {sys.argv[9]} in {sys.argv[10]} files; one pass into a fresh registry, best of 2, alternating")
print(f"  --format modelcar            {a:7.2f} s   {na} blobs, {sa} bytes stored ({la} in model layers)")
print(f"  --format modelcar,modelpack  {b:7.2f} s   {nb} blobs, {sb} bytes stored ({lb} in model layers)")
print(f"  time ratio {ratio:.3f}x (goal <= 1.02x): {'pass' if ratio <= 1.02 else 'MISS'}")
print(f"  model-layer bytes equal: {'pass' if la == lb else 'MISS'}; ModelPack adds {nb - na} blobs, {sb - sa} bytes")
PY
