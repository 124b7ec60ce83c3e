#!/usr/bin/env bash
# Benchmark: oci-pack in one pass (model → registries, no image on disk) against the seed, the
# two-step pack + push, and the limit (curl PUT of the same bytes), in one run; prints the ratios
# and the goals of issue 12 with pass/miss.
#
#   scripts/bench-onepass.sh [SIZE] [FILES]     default 4G in 4 files (the baseline's model shape)
#   e.g. scripts/bench-onepass.sh 256M 4        (a quick look; the goals are meant for 4G)
#   BENCH_SEED=0        skip the seed (buildah bud + buildah push + skopeo copy: minutes)
#   OCI_PACK=…, REGISTRY_PUSH=…, HF_FETCH=…     binaries to test (default out/bin from ./build.sh)
#
# The model is SIZE of real, incompressible, non-sparse bytes (AES-CTR keystream) in FILES
# "safetensors" files, generated once into .bench/onepass-model-FILESxSIZE (git-ignored) and reused.
# The base is a busybox image built with buildah from Debian's busybox-static. Every contender
# pushes to a fresh local CNCF distribution registry (scripts/lib.sh start_registry, 127.0.0.1,
# filesystem storage under .bench/), with a warm page cache for the model, and every time includes a
# final `sync`, so bytes still in the page cache (the registry's storage, a layout) are paid for:
#   seed      buildah bud (vfs, chroot isolation; COPY --chown=1001:0) + buildah push oci-archive:
#             + skopeo copy oci-archive: docker://                 (what the seed pipeline did)
#   two-step  oci-pack --output oci:LAYOUT, then registry-push LAYOUT → registry
#   one pass  oci-pack --output docker://A                        (one registry)
#   two       oci-pack --output docker://A --output docker://B    (two registries)
#   re-run    the one-pass command again, unchanged, same registry
#   signed    the one-pass command with --sign-key (a fresh P-256 key) and --model-signature, to a fresh
#             registry: cosign .sig + Sigstore bundle referrers of each manifest, the SLSA attestation and
#             the OpenSSF model signature, all from the hashes of the one read; reported as the ratio
#             signed / unsigned and the seconds signing adds (issue 18's goal: at most 1 s per registry)
#   from hf   the default pipeline's shape: hf-fetch downloads the model from a local Hub stand-in
#             (scripts/bench-hf-fetch-server.py) into a directory (not timed), then the one-pass
#             command packs that directory (timed): each file's sha256 for the provenance annotations
#             comes from hf-fetch's verified record, so oci-pack hashes the bytes once (the layer digest)
#   limit     curl: for every blob of the same image (the two-step layout's), POST an upload
#             session and PUT the bytes with ?digest= (monolithic), as many at once as oci-pack's jobs;
#             then the same to two registries at once (each blob to both): the registries run on
#             this machine too, so this says what a second one costs here, whoever the client is
# For oci-pack, scripts/bench-measure.py samples /proc/PID/io (write_bytes, rchar) and VmHWM until
# exit and watches the model files with inotify (IN_ACCESS = their bytes were read).
# buildah runs as root here: rootless buildah cannot do the seed's COPY --chown=1001:0 on this
# machine (no /etc/subuid range: "chown /models: invalid argument"), see docs/benchmarks.md.
# Needs: buildah, skopeo, docker-registry, busybox-static, openssl, curl, python3, ./build.sh's out/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
size="${1:-${BENCH_SIZE:-4G}}"
files="${2:-${BENCH_FILES:-4}}"
oci_pack="$(realpath "${OCI_PACK:-out/bin/oci-pack}")"
registry_push="$(realpath "${REGISTRY_PUSH:-out/bin/registry-push}")"
hf_fetch="$(realpath "${HF_FETCH:-out/bin/hf-fetch}")"
run_seed="${BENCH_SEED:-1}"
bench_need "$oci_pack" "$registry_push" "$hf_fetch" -- buildah skopeo docker-registry openssl curl python3
[[ -x /bin/busybox ]] || { echo "bench: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 2; }
"$oci_pack" --help 2>&1 | grep -q 'docker://' || { echo "bench: $oci_pack has no --output docker:// (build the one-pass oci-pack)" >&2; exit 2; }
bench_dirs "$size" "$files" onepass
model="$bench_root/onepass-model-${files}x${per_file}"
bah=(buildah --root "$work/buildah/storage" --runroot "$work/buildah/run" --storage-driver vfs)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  "${bah[@]}" rm -a >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the model: generated once, real bytes (no holes), reused by later runs ----
if [[ ! -f "$model.complete" ]]; then
  echo "bench: generating the model once: $files × $per_file bytes into $model" >&2
  rm -rf "$model"; mkdir -p "$model.tmp"
  for i in $(seq 1 "$files"); do
    name=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$files")
    { openssl enc -aes-128-ctr -nosalt -pass pass:"onepass$i" -in /dev/zero 2>/dev/null || true; } | head -c "$per_file" > "$model.tmp/$name"
  done
  sync "$model.tmp"/*.safetensors   # on disk before the stamp says the model is complete
  mv "$model.tmp" "$model"; : > "$model.complete"   # the stamp lives beside the model: nothing else in it
fi
# real bytes, no holes: asked with SEEK_HOLE/SEEK_DATA (du's allocated blocks lag behind the data just written)
holes="$(holes_in "$model"/*.safetensors)" || { echo "bench: $model is sparse ($holes): delete it" >&2; exit 1; }
rm -rf "$model/.oci-pack"   # a record left by a hand-run oci-pack would spare the first runs their hashing
model_files=("$model"/*.safetensors)
model_bytes=$(cat "${model_files[@]}" | wc -c)   # also warms the page cache: every contender reads from memory

# ---- the busybox base: buildah image (for the seed) and an OCI layout (for oci-pack) ----
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh ln sleep ls mkdir cat echo '['; do ln -s busybox "$work/rootfs/bin/$a"; done
ctr=$("${bah[@]}" from scratch)
"${bah[@]}" copy "$ctr" "$work/rootfs/" / >/dev/null
"${bah[@]}" config --cmd '["sh"]' "$ctr"
"${bah[@]}" commit -q "$ctr" localhost/bench-busybox:latest >/dev/null
"${bah[@]}" rm "$ctr" >/dev/null
"${bah[@]}" push -q localhost/bench-busybox:latest "oci:$work/base:1" >/dev/null
base="oci:$work/base:1"

# ---- helpers ----
n_reg=0
fresh_registry() { # sets REG (HOST:PORT) for a new, empty registry
  n_reg=$((n_reg + 1))
  start_registry "$work/registry-$n_reg"
  pids+=("$REGISTRY_PID")
  REG="127.0.0.1:$REGISTRY_PORT"
}
drop_registries() { # stop every registry and delete its storage (disk is not free)
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  pids=(); rm -rf "$work"/registry-*
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
run_logged() { # NAME CMD…: runs CMD, stdout → $work/NAME.out, stderr → $work/NAME.err; fails the bench on error
  local name="$1"; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" || { echo "bench: $name failed: $*" >&2; tail -20 "$work/$name.err" >&2; exit 1; }
}
json() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v if not isinstance(v, dict) else sum(v.values()))' "$1" "$2"; }
# oci-pack remembers layer digests between runs (MODEL/.oci-pack/layers.json, or --state-dir): every
# measured first run gets a fresh state dir, so it hashes everything as a first run does, and the
# kept model folder never gets a record
state_args() { "$oci_pack" --help 2>&1 | grep -q -- '--state-dir' && echo "--state-dir $work/state-$1" || true; }
pack_common=(--model "$model" --base "$base" --tls-verify=false --log-format text)
sync

# ---- 1. seed: buildah bud + buildah push oci-archive: + skopeo copy ----
t_seed=""
if [[ "$run_seed" != 0 ]]; then
  echo "bench: seed (buildah bud + buildah push oci-archive: + skopeo copy) …" >&2
  mkdir -p "$work/ctx"; cp -al "$model" "$work/ctx/model"   # hard links: the build context holds the model
  cat > "$work/ctx/Containerfile" <<'CF'
FROM localhost/bench-busybox:latest
COPY --chown=1001:0 model/ /models/
USER 1001
CF
  fresh_registry
  t0=$(now)
  run_logged seed-bud "${bah[@]}" bud -q --isolation chroot -t localhost/bench-model:latest -f "$work/ctx/Containerfile" "$work/ctx/"
  t1=$(now)
  run_logged seed-push "${bah[@]}" push -q localhost/bench-model:latest "oci-archive:$work/seed.tar"
  t2=$(now)
  run_logged seed-skopeo skopeo copy --dest-tls-verify=false "oci-archive:$work/seed.tar" "docker://$REG/bench/seed:v1"
  sync; t3=$(now)
  t_seed=$(elapsed "$t0" "$t3"); seed_parts="bud $(elapsed "$t0" "$t1") s + push $(elapsed "$t1" "$t2") s + skopeo $(elapsed "$t2" "$t3") s"
  "${bah[@]}" rmi -f localhost/bench-model:latest >/dev/null 2>&1 || true
  rm -f "$work/seed.tar"; drop_registries; sync
  echo "bench: seed $t_seed s ($seed_parts)" >&2
fi

# ---- 2. two-step: oci-pack → layout, then registry-push ----
echo "bench: two-step (oci-pack → layout, registry-push) …" >&2
fresh_registry
t0=$(now)
run_logged two-pack "$oci_pack" "${pack_common[@]}" $(state_args two) --output "oci:$work/layout:v1"
t1=$(now)
run_logged two-push "$registry_push" --source "oci:$work/layout:v1" --dest "docker://$REG/bench/two:v1" --tls-verify=false
sync; t2=$(now)
t_two=$(elapsed "$t0" "$t2"); two_parts="pack $(elapsed "$t0" "$t1") s + push $(elapsed "$t1" "$t2") s"
layout_digest="$(tr -d '\n' < "$work/two-pack.out")"
drop_registries; sync
echo "bench: two-step $t_two s ($two_parts), $layout_digest" >&2

# ---- 3. one pass, one registry; 4. the unchanged re-run ----
echo "bench: one pass to one registry …" >&2
fresh_registry; reg_one="$REG"
one=("$oci_pack" "${pack_common[@]}" $(state_args one) --output "docker://$reg_one/bench/one:v1")
t0=$(now)
run_logged one "${measure[@]}" "$work/one.json" --watch "$model" -- "${one[@]}"
sync; t1=$(now); t_one=$(elapsed "$t0" "$t1")
grep -q "^$reg_one/bench/one@$layout_digest\$" "$work/one.out" || { echo "bench: one pass printed $(cat "$work/one.out"), not the two-step digest $layout_digest" >&2; exit 1; }
echo "bench: one pass $t_one s" >&2
run_logged rerun "${measure[@]}" "$work/rerun.json" --watch "$model" -- "${one[@]}"
t_rerun=$(json "$work/rerun.json" seconds)
grep -q "@$layout_digest\$" "$work/rerun.out" || { echo "bench: the re-run printed $(cat "$work/rerun.out")" >&2; exit 1; }
echo "bench: re-run $t_rerun s" >&2
drop_registries; sync

# ---- 4a. the same one pass, signed: --sign-key (cosign .sig + bundle referrers of each manifest, SLSA
# attestation, the OpenSSF model signature from the inline hashes) against the unsigned one pass above, same run ----
echo "bench: one pass, signed (--sign-key, --model-signature) …" >&2
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$work/sign.key"
fresh_registry
t0=$(now)
run_logged signed "${measure[@]}" "$work/signed.json" --watch "$model" -- "$oci_pack" "${pack_common[@]}" $(state_args signed) \
  --output "docker://$REG/bench/signed:v1" --sign-key "$work/sign.key" --model-signature "$work/model.sig"
sync; t1=$(now); t_signed=$(elapsed "$t0" "$t1")
grep -q "@$layout_digest\$" "$work/signed.out" || { echo "bench: the signed pass printed $(cat "$work/signed.out"), not $layout_digest" >&2; exit 1; }
[[ -s "$work/model.sig" ]] || { echo "bench: no model.sig" >&2; exit 1; }
drop_registries; sync
echo "bench: one pass, signed $t_signed s" >&2

# ---- 4b. one pass from an hf-fetch download: hf-fetch (not timed) from a local Hub stand-in, then the oci-pack (timed) ----
echo "bench: one pass from an hf-fetch download …" >&2
if [[ ! -f "$model.sha256" ]]; then   # the Hub's lfs.oid of each file, computed once beside the model
  (cd "$model" && sha256sum -- *.safetensors) > "$model.sha256.tmp" && mv "$model.sha256.tmp" "$model.sha256"
fi
mkdir -p "$work/hub"; ln "${model_files[@]}" "$work/hub/"   # hard links: the Hub serves the same bytes
python3 - "$model.sha256" "$work/hub/meta.json" <<'PY'
import json, os, sys
files = []
for line in open(sys.argv[1]):
    sha, name = line.split(None, 1)
    name = name.strip().lstrip("*")
    files.append({"path": name, "size": os.path.getsize(os.path.join(os.path.dirname(sys.argv[2]), name)), "sha256": sha})
json.dump({"repo": "bench/model", "commit": "0" * 39 + "1", "files": files}, open(sys.argv[2], "w"))
PY
hub_port="$(free_port)"
python3 scripts/bench-hf-fetch-server.py "$work/hub" "$hub_port" & pids+=("$!")
wait_http "http://127.0.0.1:$hub_port/" "$!"
run_logged hf-fetch env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u HF_ENDPOINT HF_HOME="$work/hf-home" "$hf_fetch" bench/model --dest "$work/hf-model" --endpoint "http://127.0.0.1:$hub_port"
sync
fresh_registry
t0=$(now)
run_logged fromhf "${measure[@]}" "$work/fromhf.json" --watch "$work/hf-model" -- "$oci_pack" --model "$work/hf-model" --base "$base" --tls-verify=false --log-format text \
  $(state_args fromhf) --output "docker://$REG/bench/fromhf:v1"
sync; t1=$(now); t_fromhf=$(elapsed "$t0" "$t1")
# the same layers (descriptors, annotations included) as the two-step's; the manifest differs only by hf-fetch's source/revision
fromhf_ref="$(head -1 "$work/fromhf.out")"
curl -sSf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/bench/fromhf/manifests/${fromhf_ref##*@}" > "$work/fromhf-manifest.json"
python3 - "$work/fromhf-manifest.json" "$work/layout/blobs/sha256/${layout_digest#sha256:}" <<'PY' || { echo "bench: the pack from the hf-fetch download has other layers than the two-step's" >&2; exit 1; }
import json, sys
a, b = (json.load(open(p))["layers"] for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
PY
drop_registries; rm -rf "$work/hf-model" "$work/hub" "$work/hf-home"; sync
echo "bench: one pass from an hf-fetch download $t_fromhf s" >&2

# ---- 5. one pass, two registries ----
echo "bench: one pass to two registries …" >&2
fresh_registry; reg_a="$REG"; fresh_registry; reg_b="$REG"
t0=$(now)
run_logged both "${measure[@]}" "$work/both.json" --watch "$model" -- "$oci_pack" "${pack_common[@]}" $(state_args both) \
  --output "docker://$reg_a/bench/a:v1" --output "docker://$reg_b/bench/b:v1"
sync; t1=$(now); t_both=$(elapsed "$t0" "$t1")
[[ "$(grep -c "@$layout_digest\$" "$work/both.out")" == 2 ]] || { echo "bench: two registries printed $(cat "$work/both.out")" >&2; exit 1; }
drop_registries; sync
echo "bench: two registries $t_both s" >&2

# ---- 6. the limit: curl PUT of the same bytes (monolithic POST + PUT ?digest=) ----
echo "bench: limit (curl POST + PUT of every blob, $jobs at a time) …" >&2
fresh_registry
export -f put_blob
t0=$(now)
find "$work/layout/blobs/sha256" -type f -print0 | xargs -0 -P "$jobs" -I{} bash -c 'put_blob "$0" "$1"' "$REG" {} \
  || { echo "bench: curl upload failed" >&2; exit 1; }
sync; t1=$(now); t_curl=$(elapsed "$t0" "$t1")
drop_registries; sync
echo "bench: limit $t_curl s" >&2
# the same to two registries at once (each blob to both): what two local registries cost this machine
echo "bench: limit to two registries (curl, each blob to both at once) …" >&2
fresh_registry; reg_a="$REG"; fresh_registry; reg_b="$REG"
put_both() { put_blob "$1" "$3" & put_blob "$2" "$3"; local rc=$?; wait $! || rc=1; return $rc; }
export -f put_both
t0=$(now)
find "$work/layout/blobs/sha256" -type f -print0 | xargs -0 -P "$jobs" -I{} bash -c 'put_both "$0" "$1" "$2"' "$reg_a" "$reg_b" {} \
  || { echo "bench: curl upload failed" >&2; exit 1; }
sync; t1=$(now); t_curl2=$(elapsed "$t0" "$t1")
image_bytes=$(du -s -B1 --apparent-size "$work/layout/blobs" | cut -f1)
drop_registries
echo "bench: limit to two registries $t_curl2 s" >&2
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report ----
python3 - "$model_bytes" "$files" "$image_bytes" "$t_seed" "${seed_parts:-}" "$t_two" "$two_parts" "$t_one" "$t_both" "$t_curl" "$t_curl2" \
  "$work/one.json" "$work/both.json" "$work/rerun.json" "$(nproc)" "$load_before" "$load_after" "$layout_digest" "$t_fromhf" "$work/fromhf.json" \
  "$t_signed" "$work/signed.json" <<'PY'
import json, sys
(model, files, image, seed, seed_parts, two, two_parts, one, both, curl, curl2, one_j, both_j, rerun_j,
 cores, load0, load1, digest, fromhf, fromhf_j, signed, signed_j) = sys.argv[1:]
signed = float(signed)
sg = json.load(open(signed_j))
model, image = int(model), int(image)
two, one, both, curl, curl2, fromhf = map(float, (two, one, both, curl, curl2, fromhf))
o, b, r, h = (json.load(open(p)) for p in (one_j, both_j, rerun_j, fromhf_j))
gib = model / (1 << 30)
print(f"model: {files} files, {model} bytes ({gib:.2f} GiB), image {image} bytes; {cores} cores, "
      f"load average {load0} before, {load1} after (shared machine); digest {digest}")
rows = []
if seed:
    rows.append(("seed: buildah bud + push oci-archive: + skopeo copy", float(seed), seed_parts))
rows += [("two-step: oci-pack → layout, registry-push", two, two_parts),
         ("one pass → 1 registry", one, f"RSS {o['peak_rss_kib'] // 1024} MiB, wrote {o['write_bytes']} B, CPU {o.get('cpu_seconds', 0):.1f} s"),
         ("one pass, signed (--sign-key, --model-signature)", signed, f"RSS {sg['peak_rss_kib'] // 1024} MiB, wrote {sg['write_bytes']} B, CPU {sg.get('cpu_seconds', 0):.1f} s"),
         ("one pass → 2 registries", both, f"RSS {b['peak_rss_kib'] // 1024} MiB, wrote {b['write_bytes']} B, CPU {b.get('cpu_seconds', 0):.1f} s"),
         ("one pass from an hf-fetch download → 1 registry", fromhf, f"RSS {h['peak_rss_kib'] // 1024} MiB, wrote {h['write_bytes']} B, CPU {h.get('cpu_seconds', 0):.1f} s"),
         ("re-run, unchanged", r["seconds"], f"model files read: {sum(r['watched_reads'].values())}, rchar {r['rchar']} B, read_bytes {r['read_bytes']} B"),
         ("limit: curl POST + PUT of the same blobs", curl, ""),
         ("limit: the same to two registries at once", curl2, "")]
for name, t, extra in rows:
    print(f"{name:52s} {t:8.2f} s   {extra}")
print()
goals = []
def goal(text, ok, value):
    goals.append(ok)
    print(f"{'pass' if ok else 'MISS'}  {text:44s} {value}")
if seed:
    print(f"      {'seed / one pass':44s} {float(seed) / one:.1f}×")
goal("one pass ≤ 0.6× two-step", one <= 0.6 * two, f"{one / two:.2f}×")
goal("one pass ≤ 1.15× curl PUT limit", one <= 1.15 * curl, f"{one / curl:.2f}×")
goal("two registries ≤ 1.3× one", both <= 1.3 * one, f"{both / one:.2f}×")
print(f"      {'(curl: two registries / one)':44s} {curl2 / curl:.2f}×   (the local registries' own share)")
print(f"      {'two registries / curl to two':44s} {both / curl2:.2f}×")
if curl2 > 1.3 * curl:
    print(f"      note: curl itself needs {curl2 / curl:.2f}× as long for two registries as for one: both registries run on these "
          f"{cores} cores beside the client, so here the registries are the limit and no client can reach 1.3×; "
          f"compare oci-pack with curl to two registries ({both / curl2:.2f}×) instead")
written = max(o["write_bytes"], b["write_bytes"])
goal("local disk writes ≤ 1% of the model", written <= model / 100, f"{written} B = {100 * written / model:.4f}%")
rss = max(o["peak_rss_kib"], b["peak_rss_kib"], r["peak_rss_kib"])
goal("peak RSS ≤ 200 MB", rss * 1024 <= 200e6, f"{rss * 1024 / 1e6:.0f} MB (VmHWM)")
goal("unchanged re-run ≤ 1 s", r["seconds"] <= 1.0, f"{r['seconds']:.2f} s")
goal("re-run reads no model bytes", not r["watched_reads"], f"{sum(r['watched_reads'].values())} reads of model files (inotify IN_ACCESS) {r['watched_reads'] or ''}")
print(f"      {'from an hf-fetch download / curl PUT limit':44s} {fromhf / curl:.2f}×   (/ two-step {fromhf / two:.2f}×)")
print(f"      {'oci-pack CPU: one pass / from hf-fetch':44s} {o.get('cpu_seconds', 0):.1f} s / {h.get('cpu_seconds', 0):.1f} s   "
      f"(from an hf-fetch download each file's sha256 is hf-fetch's verified one: one sha256 over the bytes, not two)")
goal("signing adds ≤ 1 s (one registry)", signed - one <= 1.0, f"{signed - one:+.2f} s; signed / unsigned {signed / one:.2f}×")
print(f"      {'model reads: signed / unsigned':44s} {sum(sg['watched_reads'].values())} / {sum(o['watched_reads'].values())} read() calls, "
      f"rchar {sg['rchar']} / {o['rchar']} B (signing reads no model byte: the hashes are the pass's own)")
one_reads = o["watched_reads"]
print(f"      {'one pass: reads of model files':44s} {sum(one_reads.values())} read() calls, rchar {o['rchar']} B ({o['rchar'] / model:.2f}× the model)")
print(f"{sum(goals)}/{len(goals)} goals met")
PY
