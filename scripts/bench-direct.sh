#!/usr/bin/env bash
# Benchmark (issue 13): oci-pack --model hf://… (Hub → registry, no copy on disk) versus the sequential
# hf-fetch + oci-pack --output docker://…, and the limits: curl download of the files and curl PUT of the
# same bytes to the registry. One local Hub stand-in (scripts/bench-hf-fetch-server.py: sendfile + Range),
# one local registry (Debian's docker-registry), one run; prints the ratios, bytes written to disk and peak RSS.
# Then the same Hub throttled (HUB_THROTTLE bytes/s for all its connections together, default 50 MB/s =
# 50000000): curl's download of the files versus direct, which should then take the download time.
# Usage: scripts/bench-direct.sh [SIZE_MIB=512] [COUNT=4]   (default 2 GiB in 4 files; needs ./build.sh's out/bin)
#   e.g. scripts/bench-direct.sh 16 4   (a smoke run: the goals are meant for the 2 GiB default)
# Needs: python3, curl, docker-registry, GNU time (/usr/bin/time) for RSS and disk writes.
# Goals (issue 13), printed with pass/MISS: direct ≤ 0.6× sequential, ≤ 1.2× the slower curl limit, ≤ 1 MB
# written, ≤ 200 MB peak RSS; with the Hub at 50 MB/s direct ≤ 1.1× curl's download. Each oci-pack hf:// run
# gets a fresh HF_HOME: the layer record (kept under HF_HOME without --state-dir) must not spare any reads.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size_mib="${1:-512}"
count="${2:-4}"
bin="$(realpath out/bin)"
for t in hf-fetch oci-pack; do [[ -x "$bin/$t" ]] || { echo "bench: $bin/$t missing: run ./build.sh first" >&2; exit 2; }; done
for p in python3 curl docker-registry; do command -v "$p" >/dev/null || { echo "bench: $p is not installed" >&2; exit 2; }; done
work="$(mktemp -d "${BENCH_DIR:-/var/tmp}/bench-direct.XXXXXX")"
server_pid="" slow_pid="" reg_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
  [[ -n "$slow_pid" ]] && kill "$slow_pid" 2>/dev/null
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

throttle="${HUB_THROTTLE:-50000000}"
port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/data" "$port" & server_pid=$!
endpoint="http://127.0.0.1:$port"
wait_http "$endpoint/" "$server_pid"
port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/data" "$port" "$throttle" & slow_pid=$!
slow_endpoint="http://127.0.0.1:$port"
wait_http "$slow_endpoint/" "$slow_pid"
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
direct_script() { # ENDPOINT REPO: oci-pack hf:// into REPO, with a fresh HF_HOME (no layer record from an earlier run)
  cat <<SH
set -e
rm -rf "$work/hf-home"
export HF_HOME="$work/hf-home"
"$bin/oci-pack" --model hf://bench/model --endpoint "$1" --output "docker://$reg/$2:1" $pack_args
SH
}
direct_script "$endpoint" direct/model > "$work/direct.sh"
direct_script "$slow_endpoint" slow/model > "$work/direct-slow.sh"
curl_get_script() { # ENDPOINT: every file at once, as direct's --jobs $count does
  echo 'set -e'; echo "rm -rf '$work/curl'; mkdir -p '$work/curl'"
  printf 'curl -sSfL --no-progress-meter --parallel'
  for n in "${names[@]}"; do printf " -o '%s' '%s'" "$work/curl/$n" "$1/bench/model/resolve/main/$n"; done
  echo
}
curl_get_script "$endpoint" > "$work/curl-get.sh"
curl_get_script "$slow_endpoint" > "$work/curl-get-slow.sh"
{ # monolithic POST + PUT ?digest= of each file, in parallel
  echo 'set -e'
  for n in "${names[@]}"; do
    d="sha256:$(sha256sum "$work/data/$n" | cut -d' ' -f1)"
    cat <<SH
(
  loc=\$(curl -sSf -X POST -D - -o /dev/null "http://$reg/v2/curl/model/blobs/uploads/" | tr -d '\r' | awk 'tolower(\$1)=="location:" {print \$2}')
  case "\$loc" in http*) ;; *) loc="http://$reg\$loc" ;; esac
  case "\$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' -T "$work/data/$n" "\$loc\${sep}digest=$d" -o /dev/null
) &
SH
  done
  echo 'wait'
} > "$work/curl-put.sh"

echo "bench-direct: $count x $size_mib MiB, Hub $endpoint (and $slow_endpoint at $throttle B/s), registry $reg ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))" >&2
measure "curl download" bash "$work/curl-get.sh"
measure "curl PUT" bash "$work/curl-put.sh"
measure "sequential (hf-fetch + oci-pack)" bash "$work/sequential.sh"
seq_digest=$(grep -o 'sha256:[0-9a-f]*' "$work/last.log" | tail -1 || true)
measure "direct (oci-pack hf://)" bash "$work/direct.sh"
direct_digest=$(grep -o 'sha256:[0-9a-f]*' "$work/last.log" | tail -1 || true)
slow_mbs=$(echo "$throttle / 1000000" | bc -l | xargs printf '%.0f')
slow_get="curl download, Hub ${slow_mbs} MB/s"
slow_direct="direct, Hub ${slow_mbs} MB/s"
measure "$slow_get" bash "$work/curl-get-slow.sh"
measure "$slow_direct" bash "$work/direct-slow.sh"
slow_digest=$(grep -o 'sha256:[0-9a-f]*' "$work/last.log" | tail -1 || true)
rm -rf "$work/curl"

for name in "curl download" "curl PUT" "sequential (hf-fetch + oci-pack)" "direct (oci-pack hf://)" "$slow_get" "$slow_direct"; do
  printf '%-34s %7.2f s  %8.1f MB/s  RSS %5s MiB  written %8s MB\n' "$name" "${secs[$name]}" "$(echo "$total / ${secs[$name]} / 1000000" | bc -l)" "${rss[$name]}" "$(printf '%.1f' "${disk[$name]}" 2>/dev/null || echo "${disk[$name]}")"
done
echo
python3 - "${secs[direct (oci-pack hf://)]}" "${secs[sequential (hf-fetch + oci-pack)]}" "${secs[curl download]}" "${secs[curl PUT]}" \
  "${secs[$slow_direct]}" "${secs[$slow_get]}" "${disk[direct (oci-pack hf://)]}" "${disk[$slow_direct]}" \
  "${rss[direct (oci-pack hf://)]}" "${rss[$slow_direct]}" "$slow_mbs" "$direct_digest" "$seq_digest" "$slow_digest" <<'PY'
import sys
(direct, seq, get, put, slow_direct, slow_get, disk, slow_disk, rss, slow_rss, mbs, digest, seq_digest, slow_digest) = sys.argv[1:]
direct, seq, get, put, slow_direct, slow_get = map(float, (direct, seq, get, put, slow_direct, slow_get))
goals = []
def goal(text, ok, value):
    goals.append(ok)
    print(f"{'pass' if ok else 'MISS'}  {text:44s} {value}")
def num(x):
    try:
        return float(x)
    except ValueError:
        return None  # no GNU time: not measured
slower = max(get, put)
goal("direct ≤ 0.6× sequential", direct <= 0.6 * seq, f"{direct / seq:.2f}×")
goal("direct ≤ 1.2× the slower curl limit", direct <= 1.2 * slower, f"{direct / slower:.2f}× ({'download' if get >= put else 'PUT'} {slower:.2f} s)")
written = [w for w in map(num, (disk, slow_disk)) if w is not None]
goal("bytes written to disk ≤ 1 MB", bool(written) and max(written) <= 1.0, f"{max(written):.2f} MB" if written else "not measured (no /usr/bin/time)")
peak = [r for r in map(num, (rss, slow_rss)) if r is not None]
goal("peak RSS ≤ 200 MB", bool(peak) and max(peak) * 1.048576 <= 200, f"{max(peak) * 1.048576:.0f} MB" if peak else "not measured (no /usr/bin/time)")
goal(f"Hub at {mbs} MB/s: direct ≤ 1.1× download", slow_direct <= 1.1 * slow_get, f"{slow_direct / slow_get:.2f}× ({slow_direct:.2f} s vs {slow_get:.2f} s)")
# (the throttled run's image differs: its source annotation names the other endpoint's port)
goal("direct digest = sequential digest", digest != "" and digest == seq_digest, f"{digest} (sequential {seq_digest})")
print(f"{sum(goals)}/{len(goals)} goals met")
PY
exit 0
