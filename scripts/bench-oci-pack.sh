#!/usr/bin/env bash
# Benchmark: oci-pack (to an OCI layout and to an oci-archive) vs buildah bud + buildah push
# oci-archive: (vfs driver) vs cp -r of the same model, in one run, warm page cache for all.
#
# usage: scripts/bench-oci-pack.sh [FILE_SIZE_MIB] [FILE_COUNT]
#   default 1024 × 4 (4 × 1 GiB random "safetensors" + small JSON files, the baseline's shape)
#   BENCH_DIR=/var/tmp/...  work directory (default: a fresh dir under /var/tmp, removed at the end)
#   OCI_PACK=path           binary to test (default out/bin/oci-pack from ./build.sh)
# Needs: buildah, busybox-static (/bin/busybox), openssl, GNU time (optional, else /proc polling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mib="${1:-1024}"
count="${2:-4}"
oci_pack="$(realpath "${OCI_PACK:-out/bin/oci-pack}")"
[[ -x "$oci_pack" ]] || { echo "bench: $oci_pack missing: run ./build.sh first" >&2; exit 2; }
command -v buildah >/dev/null || { echo "bench: buildah is not installed" >&2; exit 2; }
[[ -x /bin/busybox ]] || { echo "bench: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 2; }
work="${BENCH_DIR:-$(mktemp -d /var/tmp/bench-oci-pack.XXXXXX)}"
mkdir -p "$work"
cleanup() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs rm -a >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

# peak RSS (KiB) of a command: GNU time if present, else poll VmHWM in /proc
run_measured() { # $1 = rss output file, rest = command
  local rss_file="$1"; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M' -o "$rss_file" "$@"
  else
    "$@" & local pid=$! peak=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0); (( v > peak )) && peak=$v; sleep 0.05
    done
    wait "$pid"; echo "$peak" > "$rss_file"
  fi
}

echo "bench: model = $count × ${size_mib} MiB random + small JSON files, work dir $work" >&2
mkdir -p "$work/model"
for i in $(seq 1 "$count"); do
  name=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$count")
  { openssl enc -aes-128-ctr -nosalt -pass pass:"bench$i" -in /dev/zero 2>/dev/null || true; } | head -c "$((size_mib << 20))" > "$work/model/$name"
done
printf '{"architectures":["LlamaForCausalLM"],"hidden_size":2048}\n' > "$work/model/config.json"
printf '{"bos_token_id":1,"eos_token_id":2}\n' > "$work/model/generation_config.json"
{ head -c 2000000 /dev/urandom | base64 || true; } > "$work/model/tokenizer.json"
printf '{"model_max_length":4096}\n' > "$work/model/tokenizer_config.json"
model_bytes=$(du -sb "$work/model" | cut -f1)

# busybox base image, built with buildah from Debian's busybox-static, also exported as an OCI layout
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh ln sleep ls mkdir echo '['; do ln -s busybox "$work/rootfs/bin/$a"; done
ctr=$("${bah[@]}" from scratch)
"${bah[@]}" copy "$ctr" "$work/rootfs/" / >/dev/null
"${bah[@]}" commit -q "$ctr" localhost/bench-busybox:latest >/dev/null
"${bah[@]}" rm "$ctr" >/dev/null
"${bah[@]}" push -q localhost/bench-busybox:latest "oci:$work/base:1" >/dev/null

cat "$work"/model/* > /dev/null   # warm cache: every contender reads from memory
sync

# 1. cp -r
t0=$(now); cp -r "$work/model" "$work/copy"; sync; t1=$(now); t_cp=$(elapsed "$t0" "$t1"); rm -rf "$work/copy"

# 2. oci-pack → layout
t0=$(now); run_measured "$work/rss-layout" "$oci_pack" --model "$work/model" --base "oci:$work/base:1" --output "oci:$work/layout:v1" --log-format text >/dev/null 2>"$work/log-layout"; sync; t1=$(now)
t_layout=$(elapsed "$t0" "$t1"); rss_layout=$(cat "$work/rss-layout"); rm -rf "$work/layout"

# 3. oci-pack → oci-archive
t0=$(now); run_measured "$work/rss-archive" "$oci_pack" --model "$work/model" --base "oci:$work/base:1" --output "oci-archive:$work/model.tar:v1" >/dev/null 2>"$work/log-archive"; sync; t1=$(now)
t_archive=$(elapsed "$t0" "$t1"); rss_archive=$(cat "$work/rss-archive"); rm -f "$work/model.tar"

# 4. buildah bud + buildah push oci-archive: (what the pipeline did)
cat > "$work/Containerfile" <<'CF'
FROM localhost/bench-busybox:latest
COPY --chown=1001:0 model/ /models/
USER 1001
CF
t0=$(now)
"${bah[@]}" bud -q --isolation chroot -t localhost/bench-model:latest -f "$work/Containerfile" "$work" >/dev/null
t1=$(now)
"${bah[@]}" push -q localhost/bench-model:latest "oci-archive:$work/buildah.tar" >/dev/null
sync; t2=$(now)
t_bud=$(elapsed "$t0" "$t1"); t_push=$(elapsed "$t1" "$t2"); t_buildah=$(elapsed "$t0" "$t2"); rm -f "$work/buildah.tar"

echo
echo "model: $count × ${size_mib} MiB + 4 small files ($((model_bytes >> 20)) MiB), warm cache, $(nproc) cores"
printf '%-40s %8s s\n' "cp -r" "$t_cp"
printf '%-40s %8s s   peak RSS %d MiB\n' "oci-pack → oci: layout" "$t_layout" "$((rss_layout / 1024))"
printf '%-40s %8s s   peak RSS %d MiB\n' "oci-pack → oci-archive:" "$t_archive" "$((rss_archive / 1024))"
printf '%-40s %8s s   (bud %s s + push %s s)\n' "buildah bud + push oci-archive: (vfs)" "$t_buildah" "$t_bud" "$t_push"
echo
echo "buildah / oci-pack(archive): $(ratio "$t_buildah" "$t_archive")×   (goal ≥ 40×)"
echo "buildah / oci-pack(layout):  $(ratio "$t_buildah" "$t_layout")×"
echo "oci-pack(layout) / cp -r:    $(ratio "$t_layout" "$t_cp")×   (goal ≤ 1.3×)"
echo "oci-pack(archive) / cp -r:   $(ratio "$t_archive" "$t_cp")×"
echo "peak RSS oci-pack: layout $((rss_layout / 1024)) MiB, archive $((rss_archive / 1024)) MiB   (goal ≤ 200 MiB)"
