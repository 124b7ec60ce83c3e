#!/usr/bin/env bash
# Benchmark: hf-fetch (sha256-verified, resumable) vs curl fetching the same files from the same local
# Hub-like server (scripts/bench-hf-fetch-server.py, sendfile + Range) in one run; prints throughput ratios.
# Usage: [ROUNDS=3] scripts/bench-hf-fetch.sh [SIZE_MIB=1024] [COUNT=2]   (needs out/bin/hf-fetch: ./build.sh)
# Each tool runs ROUNDS times, interleaved; the best time counts (the machine may be shared).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size_mib="${1:-1024}"
count="${2:-2}"
bin="${HF_FETCH_BIN:-out/bin/hf-fetch}"
[[ -x "$bin" ]] || { echo "bench: $bin missing: run ./build.sh first" >&2; exit 1; }
bin="$(realpath "$bin")"
work="$(mktemp -d /tmp/bench-hf-fetch.XXXXXX)"
server_pid=""
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/data"
files_json=""
for i in $(seq 1 "$count"); do
  name="model-0000$i-of-0000$count.safetensors"
  head -c "$((size_mib << 20))" /dev/urandom > "$work/data/$name"
  sha=$(sha256sum "$work/data/$name" | cut -d' ' -f1)
  files_json+="${files_json:+,}{\"path\":\"$name\",\"size\":$((size_mib << 20)),\"sha256\":\"$sha\"}"
done
printf '{"repo":"bench/model","commit":"%s","files":[%s]}\n' "$(printf 'bench' | sha1sum | cut -d' ' -f1)" "$files_json" > "$work/data/meta.json"
total=$((count * size_mib << 20))

port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/data" "$port" & server_pid=$!
endpoint="http://127.0.0.1:$port"
wait_http "$endpoint/" "$server_pid"
urls=()
for i in $(seq 1 "$count"); do urls+=("$endpoint/bench/model/resolve/main/model-0000$i-of-0000$count.safetensors"); done

now() { date +%s.%N; }
declare -A secs
run() { # name command...: keeps the best time over the rounds (the machine may be shared)
  local name="$1"; shift
  rm -rf "$work/out"; mkdir -p "$work/out"; sync
  local t0 t1 s; t0=$(now)
  ( cd "$work/out" && "$@" ) >/dev/null
  t1=$(now)
  s=$(echo "$t1 - $t0" | bc -l)
  if [[ -z "${secs[$name]:-}" ]] || (( $(echo "$s < ${secs[$name]}" | bc -l) )); then secs[$name]=$s; fi
}
curl_seq() { for u in "${urls[@]}"; do curl -sSfL -o "$(basename "$u")" "$u"; done; }
curl_par() { local args=(); for u in "${urls[@]}"; do args+=(-o "$(basename "$u")" "$u"); done; curl -sSfL --no-progress-meter --parallel "${args[@]}" 2>/dev/null; }
curl_seq_sha() { curl_seq; sha256sum ./*.safetensors >/dev/null; }
hf_fetch() { "$bin" bench/model --dest . --endpoint "$endpoint" 2>/dev/null; }
aria() { aria2c -q -x4 -s4 -j4 --allow-overwrite=true --auto-file-renaming=false "${urls[@]}"; }

rounds="${ROUNDS:-3}"
echo "bench-hf-fetch: $count x $size_mib MiB from $endpoint ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)), best of $rounds rounds"
names=("curl (sequential)" "curl (--parallel)" "curl + sha256sum" "hf-fetch (verified)")
command -v aria2c >/dev/null && names+=("aria2c -x4")
for _ in $(seq 1 "$rounds"); do
  run "curl (sequential)" curl_seq
  run "curl (--parallel)" curl_par
  run "curl + sha256sum" curl_seq_sha
  command -v aria2c >/dev/null && run "aria2c -x4" aria
  run "hf-fetch (verified)" hf_fetch
done
for name in "${names[@]}"; do
  printf '%-28s %7.2f s  %8.1f MB/s\n' "$name" "${secs[$name]}" "$(echo "$total / ${secs[$name]} / 1000000" | bc -l)"
done
# verify what hf-fetch wrote really is the data (outside the timing)
for i in $(seq 1 "$count"); do cmp -s "$work/out/model-0000$i-of-0000$count.safetensors" "$work/data/model-0000$i-of-0000$count.safetensors" || { echo "bench: hf-fetch output differs" >&2; exit 1; }; done
echo
printf 'hf-fetch throughput vs curl (sequential):  %.2fx\n' "$(echo "${secs[curl (sequential)]} / ${secs[hf-fetch (verified)]}" | bc -l)"
printf 'hf-fetch throughput vs curl --parallel:    %.2fx\n' "$(echo "${secs[curl (--parallel)]} / ${secs[hf-fetch (verified)]}" | bc -l)"
printf 'hf-fetch throughput vs curl + sha256sum:   %.2fx\n' "$(echo "${secs[curl + sha256sum]} / ${secs[hf-fetch (verified)]}" | bc -l)"
if [[ -x /usr/bin/time ]]; then
  rm -rf "$work/out"; mkdir -p "$work/out"
  /usr/bin/time -f '%M' -o "$work/rss" "$bin" bench/model --dest "$work/out" --endpoint "$endpoint" >/dev/null 2>&1
  printf 'hf-fetch peak RSS for %d x %d MiB:          %d MiB\n' "$count" "$size_mib" "$(( $(cat "$work/rss") / 1024 ))"
fi
[[ -n "${secs[aria2c -x4]:-}" ]] && printf 'hf-fetch throughput vs aria2c -x4:         %.2fx\n' "$(echo "${secs[aria2c -x4]} / ${secs[hf-fetch (verified)]}" | bc -l)"
exit 0
