# Shell helpers shared by run-local.sh and the benchmark scripts (source it; bash only).
#
# Local servers get their port passed in and count as ready only when they answer over HTTP:
# never when a file exists (a file can be stale, from another run or another machine).

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL PID [SECONDS]: wait until URL answers with any HTTP status (404 counts: the server
# is up). Fails at once when process PID has died, and after SECONDS (default 30) otherwise.
wait_http() {
  local url="$1" pid="$2" limit="${3:-30}" code
  local deadline=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$deadline" ]; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)"
    [ -n "$code" ] && [ "$code" != "000" ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "${0##*/}: the server for $url exited before it answered" >&2; return 1; }
    sleep 0.1
  done
  echo "${0##*/}: $url did not answer within ${limit}s" >&2
  return 1
}

# start_registry DIR: a CNCF distribution registry (Debian's docker-registry) on a free loopback
# port, storage under DIR/data, log in DIR/log. Sets REGISTRY_PORT and REGISTRY_PID; returns once
# /v2/ answers.
start_registry() {
  local dir="$1"
  mkdir -p "$dir/data"
  REGISTRY_PORT="$(free_port)"
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
YML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REGISTRY_PID=$!
  wait_http "http://127.0.0.1:$REGISTRY_PORT/v2/" "$REGISTRY_PID" || { cat "$dir/log" >&2; return 1; }
}

# holes_in FILE…: prints "FILE: N bytes in holes" for every file with a hole, and fails if any has one.
# Asks the file system with lseek(SEEK_DATA/SEEK_HOLE), which counts blocks not yet written back
# (delayed allocation) as data: st_blocks (du) does not, right after a file was written on some file
# systems, so a du check refuses a freshly generated, fully written model as sparse.
holes_in() {
  python3 - "$@" <<'PY'
import os, sys
bad = 0
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        size, pos, holes = os.fstat(fd).st_size, 0, 0
        while pos < size:
            try:
                hole = os.lseek(fd, pos, os.SEEK_HOLE)
            except OSError:
                break
            if hole >= size:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError:  # ENXIO: a hole up to the end
                data = size
            holes += data - hole
            pos = data
    finally:
        os.close(fd)
    if holes:
        print(f"{path}: {holes} bytes in holes")
        bad = 1
sys.exit(bad)
PY
}

# bench_model DIR FILES PER_FILE SEED: a model of FILES "safetensors" files of PER_FILE real, incompressible,
# non-sparse bytes (AES-CTR keystream keyed by SEED) plus a small config.json, generated once into DIR and
# reused (DIR.complete is written last, beside DIR, so DIR holds nothing else). Fails if DIR has holes.
bench_model() {
  local dir="$1" files="$2" per_file="$3" seed="$4" i name holes
  if [[ ! -f "$dir.complete" ]]; then
    echo "bench: generating the model once: $files × $per_file bytes into $dir" >&2
    rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp"
    for i in $(seq 1 "$files"); do
      name=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$files")
      { openssl enc -aes-128-ctr -nosalt -pass pass:"$seed$i" -in /dev/zero 2>/dev/null || true; } | head -c "$per_file" > "$dir.tmp/$name"
    done
    printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"}\n' > "$dir.tmp/config.json"
    sync "$dir.tmp"/*
    mv "$dir.tmp" "$dir"; : > "$dir.complete"
  fi
  holes="$(holes_in "$dir"/*.safetensors)" || { echo "bench: $dir is sparse ($holes): delete it" >&2; return 1; }
  rm -rf "$dir/.oci-pack"   # a record left by a hand-run oci-pack would spare a first run its hashing
}

# bench_bytes SIZE: SIZE (e.g. 4G, 512M, 1.5G, 1048576) in bytes.
bench_bytes() {
  python3 -c 'import sys
s=sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m={"K":1<<10,"M":1<<20,"G":1<<30,"T":1<<40}
print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$1"
}

# bench_dirs SIZE FILES NAME: sets per_file (SIZE split into FILES files), jobs (oci-pack's default --jobs: the
# cores, at most 4), bench_root (.bench, git-ignored), work (a new folder NAME-run.XXXXXX in it) and measure (the
# command prefix of scripts/bench-measure.py).
bench_dirs() {
  per_file=$(( $(bench_bytes "$1") / $2 ))
  jobs="$(( $(nproc) < 4 ? $(nproc) : 4 ))"
  mkdir -p .bench
  bench_root="$(realpath .bench)"
  work="$(mktemp -d "$bench_root/$3-run.XXXXXX")"
  measure=(python3 "$PWD/scripts/bench-measure.py")
}

# bench_need BINARY… -- COMMAND…: fails (exit 2) naming the first BINARY that is not executable (run ./build.sh)
# or COMMAND that is not installed (scripts/prerequisites.sh).
bench_need() {
  local b
  while [[ $# -gt 0 && "$1" != -- ]]; do
    [[ -x "$1" ]] || { echo "bench: $1 missing: run ./build.sh first" >&2; exit 2; }
    shift
  done
  shift || true
  for b in "$@"; do
    command -v "$b" >/dev/null || { echo "bench: $b is not installed (scripts/prerequisites.sh)" >&2; exit 2; }
  done
}

# put_blob REG FILE: the limit the benchmarks compare with: one monolithic upload of FILE (named by its sha256
# hex, as in a layout's blobs/sha256/) to REG's bench/curl: POST a session, then PUT ?digest= with the bytes.
# -T streams the file (checked: curl's peak RSS 11 MiB for a 1 GiB blob); --data-binary @FILE would read it
# whole into memory first (1 GiB RSS for the same blob; "out of memory" beyond), which is no limit to compare with.
put_blob() {
  local loc d
  d="sha256:$(basename "$2")"
  loc="$(curl -sS -f -X POST -D - -o /dev/null "http://$1/v2/bench/curl/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')"
  [[ "$loc" == /* ]] && loc="http://$1$loc"
  [[ "$loc" == *\?* ]] && loc="$loc&digest=$d" || loc="$loc?digest=$d"
  curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' -T "$2" -o /dev/null "$loc"
}
