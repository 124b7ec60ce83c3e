#!/usr/bin/env bash
# Benchmark (issue 13): oci-pack --model hf://… (Hub → registry, no copy on disk) versus the sequential
# hf-fetch + oci-pack --output docker://…, and the limits: curl download of the files and curl PUT of the
# same bytes to the registry. One local Hub stand-in (scripts/bench-hf-fetch-server.py: sendfile + Range),
# one local registry (Debian's docker-registry), one run; prints the ratios, bytes written to disk and peak RSS.
# Usage: scripts/bench-direct.sh [SIZE_MIB=512] [COUNT=4]   (default 2 GiB in 4 files; needs ./build.sh's out/bin)
# Needs: python3, curl, docker-registry, GNU time (/usr/bin/time) for RSS and disk writes.
# Goals (issue 13): direct ≤ 0.6× sequential, ≤ 1.2× the slower curl limit, ≤ 1 MB written, ≤ 200 MB RSS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size_mib="${1:-512}"
count="${2:-4}"
bin="$(realpath out/bin)"
for t in hf-fetch oci-pack; do [[ -x "$bin/$t" ]] || { echo "bench: $bin/$t missing: run ./build.sh first" >&2; exit 2; }; done
for p in python3 curl docker-registry; do command -v "$p" >/dev/null || { echo "bench: $p is not installed" >&2; exit 2; }; done
work="$(mktemp -d "${BENCH_DIR:-/var/tmp}/bench-direct.XXXXXX")"
server_pid="" reg_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
  [[ -n "$reg_pid" ]] && kill "$reg_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/data"
files_json=""
names=()
for i in $(seq 1 "$count"); do
  name="model-0000$i-of-0000$count.safetensors"
  names+=("$name")
  head -c "$((size_mib << 20))" /dev/urandom > "$work/data/$name"
  sha=$(sha256sum "$work/data/$name" | cut -d' ' -f1)
  files_json+="${files_json:+,}{\"path\":\"$name\",\"size\":$((size_mib << 20)),\"sha256\":\"$sha\"}"
done
printf '{"repo":"bench/model","commit":"%s","files":[%s]}\n' "$(printf 'bench' | sha1sum | cut -d' ' -f1)" "$files_json" > "$work/data/meta.json"
total=$((count * size_mib << 20))
cat "$work"/data/*.safetensors >/dev/null # warm page cache for every contender

port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/data" "$port" & server_pid=$!
endpoint="http://127.0.0.1:$port"
wait_http "$endpoint/" "$server_pid"
start_registry "$work/registry"
reg_pid="$REGISTRY_PID"
reg="127.0.0.1:$REGISTRY_PORT"

declare -A secs rss disk
measure() { # NAME COMMAND...: wall time, peak RSS (MiB) and file-system writes (MB) of one run
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M %O' -o "$work/time" "$@" >"$work/last.log" 2>&1 || { echo "bench: $name failed" >&2; cat "$work/last.log" >&2; exit 1; }
    read -r kib blocks < "$work/time"
    rss[$name]=$((kib / 1024)); disk[$name]=$(echo "$blocks * 512 / 1000000" | bc -l)
  else
    "$@" >"$work/last.log" 2>&1 || { echo "bench: $name failed" >&2; cat "$work/last.log" >&2; exit 1; }
    rss[$name]="?"; disk[$name]="?"
  fi
  t1=$(date +%s.%N)
  secs[$name]=$(echo "$t1 - $t0" | bc -l)
}
# each contender is a small script (so that GNU time measures it with its children)
pack_args="--base scratch --allow-no-shell --tls-verify=false --jobs $count"
cat > "$work/sequential.sh" <<SH
set -e
rm -rf "$work/dl"
"$bin/hf-fetch" bench/model --dest "$work/dl" --endpoint "$endpoint"
"$bin/oci-pack" --model "$work/dl" --output "docker://$reg/seq/model:1" $pack_args
SH
cat > "$work/direct.sh" <<SH
set -e
"$bin/oci-pack" --model hf://bench/model --endpoint "$endpoint" --output "docker://$reg/direct/model:1" $pack_args
SH
{
  echo 'set -e'; echo "rm -rf '$work/curl'; mkdir -p '$work/curl'"
  printf 'curl -sSfL --no-progress-meter --parallel'
  for n in "${names[@]}"; do printf " -o '%s' '%s'" "$work/curl/$n" "$endpoint/bench/model/resolve/main/$n"; done
  echo
} > "$work/curl-get.sh"
{ # monolithic POST + PUT ?digest= of each file, in parallel
  echo 'set -e'
  for n in "${names[@]}"; do
    d="sha256:$(sha256sum "$work/data/$n" | cut -d' ' -f1)"
    cat <<SH
(
  loc=\$(curl -sSf -X POST -D - -o /dev/null "http://$reg/v2/curl/model/blobs/uploads/" | tr -d '\r' | awk 'tolower(\$1)=="location:" {print \$2}')
  case "\$loc" in http*) ;; *) loc="http://$reg\$loc" ;; esac
  case "\$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$work/data/$n" "\$loc\${sep}digest=$d" -o /dev/null
) &
SH
  done
  echo 'wait'
} > "$work/curl-put.sh"

echo "bench-direct: $count x $size_mib MiB, Hub $endpoint, registry $reg ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))" >&2
measure "curl download" bash "$work/curl-get.sh"
measure "curl PUT" bash "$work/curl-put.sh"
measure "sequential (hf-fetch + oci-pack)" bash "$work/sequential.sh"
seq_digest=$(grep -o 'sha256:[0-9a-f]*' "$work/last.log" | tail -1 || true)
measure "direct (oci-pack hf://)" bash "$work/direct.sh"
direct_digest=$(grep -o 'sha256:[0-9a-f]*' "$work/last.log" | tail -1 || true)
[[ -n "$direct_digest" && "$direct_digest" == "$seq_digest" ]] || echo "bench: note: direct digest $direct_digest, sequential $seq_digest (hf-fetch's annotations come from snapshot.json: equal when both name the same endpoint)" >&2

for name in "curl download" "curl PUT" "sequential (hf-fetch + oci-pack)" "direct (oci-pack hf://)"; do
  printf '%-34s %7.2f s  %8.1f MB/s  RSS %5s MiB  written %8s MB\n' "$name" "${secs[$name]}" "$(echo "$total / ${secs[$name]} / 1000000" | bc -l)" "${rss[$name]}" "$(printf '%.1f' "${disk[$name]}" 2>/dev/null || echo "${disk[$name]}")"
done
slower=$(echo "if (${secs[curl download]} > ${secs[curl PUT]}) ${secs[curl download]} else ${secs[curl PUT]}" | bc -l)
echo
printf 'direct / sequential:             %.2fx  (goal <= 0.6)\n' "$(echo "${secs[direct (oci-pack hf://)]} / ${secs[sequential (hf-fetch + oci-pack)]}" | bc -l)"
printf 'direct / slower curl limit:      %.2fx  (goal <= 1.2)\n' "$(echo "${secs[direct (oci-pack hf://)]} / $slower" | bc -l)"
echo "image: $direct_digest (sequential: $seq_digest)"
exit 0
