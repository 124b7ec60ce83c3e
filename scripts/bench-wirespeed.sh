#!/usr/bin/env bash
# Benchmark: the one pass against its physical limits (issue 19's goals), in one run; prints the ratios
# with pass/miss.
#
#   scripts/bench-wirespeed.sh [SIZE] [FILES]    default 4G in 4 files; the goals are stated at 4G 4 and 1G 2
#   OCI_PACK=…, HF_FETCH=…                        binaries to test (default out/bin from ./build.sh)
#   BENCH_ROUNDS=2                                rounds; the order of the contenders alternates between rounds
#
# Contenders, each into fresh local CNCF distribution registries (scripts/lib.sh start_registry, 127.0.0.1),
# deleted right after each measurement (left on disk, a run's storage pushes the model out of the page
# cache and the order of the runs decides the ratio: see docs/benchmarks.md); every time ends with `sync`:
#   curl → 1     the limit: for every blob of the same image (a layout packed once, not timed), POST an upload
#                session and PUT the bytes with ?digest= (monolithic), as many at once as oci-pack's --jobs
#   pack → 1     oci-pack --model DIR --output docker://A (a plain directory: it hashes every byte twice, the
#                layer digest and each file's sha256 for the provenance annotations)
#   hf → 1       the same from an hf-fetch download of the same files (downloaded once from a local Hub
#                stand-in, not timed): each file's sha256 comes from hf-fetch's record, one hash per byte
#   push → 1     registry-push of that layout (the two-step's second step; the first is not timed)
#   curl → 2, pack → 2   the same to two registries at once
#   re-run       pack → 1 again, unchanged, into the same registry (first round only)
# CPU-seconds (user + system, from wait4: they move little with the machine's load, wall times do):
#   oci-pack's, from scripts/bench-measure.py; curl's, of the whole upload (every curl process);
#   openssl dgst -sha256 over the model files: its user CPU is the cost of one hash per byte (its system CPU
#   is reading the files, which curl's CPU already holds).
#   floor, from an hf-fetch download = hash + curl → 1;  floor, plain directory = 2 × hash + curl → 1.
# Needs: docker-registry, openssl, curl, python3, /usr/bin/time, ./build.sh's out/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size="${1:-4G}"
files="${2:-4}"
rounds="${BENCH_ROUNDS:-2}"
oci_pack="$(realpath "${OCI_PACK:-out/bin/oci-pack}")"
hf_fetch="$(realpath "${HF_FETCH:-out/bin/hf-fetch}")"
registry_push="$(realpath "${REGISTRY_PUSH:-out/bin/registry-push}")"
bench_need "$oci_pack" "$hf_fetch" "$registry_push" -- docker-registry openssl curl python3 /usr/bin/time
bench_dirs "$size" "$files" wirespeed
model="$bench_root/model-${files}x${per_file}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

bench_model "$model" "$files" "$per_file" modelpack
model_bytes=$(cat "$model"/* | wc -c)   # also warms the page cache

# ---- not timed: the layout curl uploads (the same image), and an hf-fetch download of the same files ----
"$oci_pack" --model "$model" --base scratch --allow-no-shell --state-dir "$work/state-layout" \
  --output "oci:$work/layout:v1" >"$work/layout.out" 2>"$work/layout.err" || { tail -5 "$work/layout.err" >&2; exit 1; }
digest="$(tr -d '\n' < "$work/layout.out")"
mkdir -p "$work/hub"; ln "$model"/* "$work/hub/"   # hard links: the Hub serves the same bytes
python3 - "$work/hub" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
files = []
for name in sorted(os.listdir(d)):
    h = hashlib.sha256()
    with open(os.path.join(d, name), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    files.append({"path": name, "size": os.path.getsize(os.path.join(d, name)), "sha256": h.hexdigest()})
json.dump({"repo": "bench/model", "commit": "0" * 39 + "1", "files": files}, open(os.path.join(d, "meta.json"), "w"))
PY
hub_port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/hub" "$hub_port" & hub_pid=$!; pids+=("$hub_pid")
wait_http "http://127.0.0.1:$hub_port/" "$hub_pid"
env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u HF_ENDPOINT HF_HOME="$work/hf-home" \
  "$hf_fetch" bench/model --dest "$work/hf-model" --endpoint "http://127.0.0.1:$hub_port" >/dev/null 2>"$work/hf-fetch.err" \
  || { tail -5 "$work/hf-fetch.err" >&2; exit 1; }
kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
rm -rf "$work/hub"
cat "$work/hf-model"/* >/dev/null
sync

# ---- contenders ----
registries=(); reg_pids=()
fresh_registries() { # N: sets registries=(HOST:PORT…), new and empty
  registries=(); reg_pids=()
  local i
  for i in $(seq 1 "$1"); do
    start_registry "$work/registry-$RANDOM$RANDOM"
    pids+=("$REGISTRY_PID"); reg_pids+=("$REGISTRY_PID")
    registries+=("127.0.0.1:$REGISTRY_PORT")
  done
}
drop_registries() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  pids=(); reg_pids=(); rm -rf "$work"/registry-*
}
put_all() { # REG…: every blob to every registry given, each blob to all of them at once, $jobs blobs at a time
  local regs="$*"
  find "$work/layout/blobs/sha256" -type f -print0 | REGS="$regs" xargs -0 -P "$jobs" -I{} bash -c \
    'ps=(); for r in $REGS; do put_blob "$r" "$0" & ps+=($!); done; rc=0; for p in "${ps[@]}"; do wait "$p" || rc=1; done; exit $rc' {}
}
export -f put_blob put_all
export work jobs
# result lines in $work/results: NAME ROUND SECONDS CPU USER SYS RSS_KIB WRITE_BYTES REGISTRY_CPU MACHINE_BUSY IOWAIT
# (the last three: CPU-seconds of the registries in the measured window, and the share of the machine's CPU
# time that was busy / waiting for the disk: what says which resource set the pace)
record() { echo "$*" "$(registries_cpu)" "$(machine_share "$mark")" >> "$work/results"; }
registries_cpu() { # CPU-seconds (user + system) of the running registries so far
  local p total=0
  for p in "${reg_pids[@]}"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
cpu_mark() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6, $6 }' /proc/stat; }
machine_share() { # "BUSY TOTAL IOWAIT" from cpu_mark at the start → "busy-share iowait-share" since then
  local b0 t0 w0 b1 t1 w1
  read -r b0 t0 w0 <<<"$1"; read -r b1 t1 w1 < <(cpu_mark)
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v w="$((w1 - w0))" 'BEGIN { printf "%.2f %.2f", b / t, w / t }'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

run_curl() { # N ROUND
  fresh_registries "$1"; sync
  local t0 t1; mark="$(cpu_mark)"; t0=$(now)
  /usr/bin/time -f '%U %S' -o "$work/time.txt" bash -c 'put_all "$@"' _ "${registries[@]}" || { echo "bench: curl failed" >&2; exit 1; }
  sync; t1=$(now)
  read -r u s < "$work/time.txt"
  record "curl$1" "$2" "$(elapsed "$t0" "$t1")" "$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')" "$u" "$s" 0 0
  drop_registries
}
run_pack() { # NAME MODEL N ROUND [rerun]
  local name="$1" dir="$2" n="$3" round="$4" t0 t1 outs=() r
  fresh_registries "$n"; sync
  for r in "${registries[@]}"; do outs+=(--output "docker://$r/bench/$name:v1"); done
  local cmd=("$oci_pack" --model "$dir" --base scratch --allow-no-shell --state-dir "$work/state-$name-$round" --tls-verify=false "${outs[@]}")
  mark="$(cpu_mark)"; t0=$(now)
  "${measure[@]}" "$work/m.json" --watch "$dir" -- "${cmd[@]}" >"$work/pack.out" 2>"$work/pack.err" || { tail -5 "$work/pack.err" >&2; exit 1; }
  sync; t1=$(now)
  # the same image as the layout's; from the hf-fetch download the manifest also names the Hub revision
  local want="$digest"; [[ "$dir" == "$model" ]] || want="sha256:[0-9a-f]*"
  [[ "$(grep -c "@$want\$" "$work/pack.out")" == "$n" ]] || { echo "bench: $name printed $(cat "$work/pack.out"), not $want" >&2; exit 1; }
  record "$name" "$round" "$(elapsed "$t0" "$t1")" $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["cpu_seconds"], m["user_seconds"], m["sys_seconds"], m["peak_rss_kib"], m["write_bytes"])' "$work/m.json")
  if [[ "${5:-}" == rerun ]]; then
    "${measure[@]}" "$work/rerun.json" --watch "$dir" -- "${cmd[@]}" >"$work/rerun.out" 2>"$work/rerun.err" || { tail -5 "$work/rerun.err" >&2; exit 1; }
    grep -q "@$digest\$" "$work/rerun.out" || { echo "bench: the re-run printed $(cat "$work/rerun.out")" >&2; exit 1; }
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("rerun", m["seconds"], sum(m["watched_reads"].values()))' "$work/rerun.json" >> "$work/rerun.txt"
  fi
  drop_registries
}
run_push() { # ROUND: registry-push of the layout (the two-step's second step) to a fresh registry
  fresh_registries 1; sync
  mark="$(cpu_mark)"; local t0 t1; t0=$(now)
  "${measure[@]}" "$work/m.json" -- "$registry_push" --source "oci:$work/layout:v1" --dest "docker://${registries[0]}/bench/push:v1" --tls-verify=false \
    --state-dir "$work/push-state-$1" >"$work/push.out" 2>"$work/push.err" || { tail -5 "$work/push.err" >&2; exit 1; }
  sync; t1=$(now)
  grep -q "@$digest\$" "$work/push.out" || { echo "bench: registry-push printed $(cat "$work/push.out"), not $digest" >&2; exit 1; }
  record push1 "$1" "$(elapsed "$t0" "$t1")" $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["cpu_seconds"], m["user_seconds"], m["sys_seconds"], m["peak_rss_kib"], m["write_bytes"])' "$work/m.json")
  drop_registries
}
run_openssl() { # ROUND
  mark="$(cpu_mark)"
  /usr/bin/time -f '%U %S' -o "$work/time.txt" openssl dgst -sha256 "$model"/* >/dev/null
  read -r u s < "$work/time.txt"
  record openssl "$1" 0 "$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')" "$u" "$s" 0 0
}

for round in $(seq 1 "$rounds"); do
  echo "bench: round $round of $rounds …" >&2
  if (( round % 2 == 1 )); then
    run_openssl "$round"; run_curl 1 "$round"; run_pack pack1 "$model" 1 "$round" rerun; run_pack hf1 "$work/hf-model" 1 "$round"; run_push "$round"
    run_curl 2 "$round"; run_pack pack2 "$model" 2 "$round"
  else
    run_push "$round"; run_pack hf1 "$work/hf-model" 1 "$round"; run_pack pack1 "$model" 1 "$round"; run_curl 1 "$round"; run_openssl "$round"
    run_pack pack2 "$model" 2 "$round"; run_curl 2 "$round"
  fi
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work/results" "$work/rerun.txt" "$model_bytes" "$size" "$files" "$load_before" "$load_after" "$digest" "$(nproc)" <<'PY'
import sys
from collections import defaultdict
results, rerun_file, model, size, files, load0, load1, digest, cores = sys.argv[1:]
model = int(model)
runs = defaultdict(list)
for line in open(results):
    name, rnd, secs, cpu, user, sys_, rss, written, reg, busy, iowait = line.split()
    runs[name].append(dict(round=int(rnd), secs=float(secs), cpu=float(cpu), user=float(user), sys=float(sys_), rss=int(rss), written=int(written),
                           reg=float(reg), busy=float(busy), iowait=float(iowait)))
best = {k: min(v, key=lambda r: r["secs"] if k != "openssl" else r["cpu"]) for k, v in runs.items()}
cpu = {k: min(r["cpu"] for r in v) for k, v in runs.items()}   # CPU-seconds: the least of the rounds
print(f"model: {size} in {files} files ({model} bytes); {cores} cores, load average {load0} before, {load1} after; image {digest}")
print(f"{'contender':34s} {'wall s (each round)':>24s}  {'best':>7s}  {'CPU s (user+sys, least)':>24s}   best run: registries' CPU, machine busy, iowait")
names = {"curl1": "limit: curl → 1 registry", "pack1": "one pass → 1, plain directory", "hf1": "one pass → 1, hf-fetch download", "push1": "registry-push of the layout → 1",
         "curl2": "limit: curl → 2 registries", "pack2": "one pass → 2, plain directory", "openssl": "openssl dgst -sha256 (one hash)"}
for k in ("openssl", "curl1", "pack1", "hf1", "push1", "curl2", "pack2"):
    v = runs[k]
    walls = " ".join(f"{r['secs']:.2f}" for r in v) if k != "openssl" else "—"
    b = best[k]
    where = f"   {b['reg']:.2f} s, {100 * b['busy']:.0f}%, {100 * b['iowait']:.0f}%" if k != "openssl" else ""
    print(f"{names[k]:34s} {walls:>24s}  {b['secs'] if k != 'openssl' else 0:7.2f}  {cpu[k]:8.2f} ({min(r['user'] for r in v):.2f} + {min(r['sys'] for r in v):.2f}){where}")
print()
ok = []
def goal(text, passed, value):
    ok.append(passed)
    print(f"{'pass' if passed else 'MISS'}  {text:58s} {value}")
r1 = best["pack1"]["secs"] / best["curl1"]["secs"]
goal("one pass → 1 ≤ 1.10× curl (best of the rounds)", r1 <= 1.10, f"{r1:.3f}×")
rh = best["hf1"]["secs"] / best["curl1"]["secs"]
print(f"      {'one pass → 1 from an hf-fetch download / curl':58s} {rh:.3f}×")
print(f"      {'registry-push of the layout → 1 / curl (same blobs)':58s} {best['push1']['secs'] / best['curl1']['secs']:.3f}×, "
      f"CPU {cpu['push1']:.2f} s / {cpu['curl1']:.2f} s")
r2 = best["pack2"]["secs"] / best["curl2"]["secs"]
goal("one pass → 2 ≤ 1.10× curl to two", r2 <= 1.10, f"{r2:.3f}×")
# the floor: openssl's user CPU is the hash; its system CPU is reading the files, which curl's CPU already holds
hash_cpu = min(r["user"] for r in runs["openssl"])
floor_hf = hash_cpu + cpu["curl1"]
floor_plain = 2 * hash_cpu + cpu["curl1"]
goal("CPU from an hf-fetch download ≤ 1.3× (hash + curl)", cpu["hf1"] <= 1.3 * floor_hf,
     f"{cpu['hf1']:.2f} s / {floor_hf:.2f} s = {cpu['hf1'] / floor_hf:.3f}×")
goal("CPU from a plain directory ≤ 1.3× (2 × hash + curl)", cpu["pack1"] <= 1.3 * floor_plain,
     f"{cpu['pack1']:.2f} s / {floor_plain:.2f} s = {cpu['pack1'] / floor_plain:.3f}×")
extra = cpu["pack2"] - cpu["pack1"]
print(f"      {'CPU of a second registry: oci-pack / curl':58s} {extra:+.2f} s / {cpu['curl2'] - cpu['curl1']:+.2f} s")
rss = max(r["rss"] for k in ("pack1", "hf1", "pack2", "push1") for r in runs[k])
goal("peak RSS ≤ 200 MB", rss * 1024 <= 200e6, f"{rss * 1024 / 1e6:.0f} MB (VmHWM)")
written = max(r["written"] for k in ("pack1", "hf1", "pack2", "push1") for r in runs[k])
goal("local disk writes ≤ 1% of the model", written <= model / 100, f"{written} B")
for line in open(rerun_file):
    _, secs, reads = line.split()
    goal("unchanged re-run ≤ 1 s, no model byte read", float(secs) <= 1.0 and int(reads) == 0, f"{float(secs):.2f} s, {reads} reads of model files")
print(f"{sum(ok)}/{len(ok)} goals met")
PY
