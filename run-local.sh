#!/usr/bin/env bash
# The main job, locally: the whole ModelCar pipeline on this machine, then what KServe would see.
#
#   download (hf-fetch) → base image (busybox, built here) → pack (oci-pack) → push (registry-push,
#   a local registry) → register (mr-register, a local Model Registry stand-in) → look up (as the
#   deploy side does) → start the ModelCar as KServe does (podman, random UID, GID 0)
#
# Default: the embedded sample model (samples/tiny-model + a generated safetensors) served by a
# local stand-in for the Hub, so it runs without network. With --repo ORG/NAME it downloads that
# repo from $HF_ENDPOINT (default https://huggingface.co; set HF_TOKEN for gated repos).
# --model-registry URL [--token-file F] registers in a real Model Registry instead of the stand-in.
# --keep leaves the local registry (and the Model Registry stand-in) running after the script.
#
# Usage: ./run-local.sh [--repo ORG/NAME] [--revision REV] [--model-registry URL] [--token-file F]
#                       [--tag TAG] [--work DIR] [--keep]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
. scripts/lib.sh
repo="" revision="main" mr_url="" mr_token="" tag="quantized-w4a16-$(date +%m%d)" work="$here/.run-local" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    --model-registry) mr_url="$2"; shift 2 ;;
    --token-file) mr_token="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --work) work="$(realpath -m "$2")"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-local.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
steps=() step_name="" step_start=0
step() { # step "N/M title": closes the previous step's clock, prints a header
  [ -n "$step_name" ] && steps+=("$(printf '%-22s %4ss' "${step_name%% (*}" "$((SECONDS - step_start))")")
  step_name="$1" step_start=$SECONDS
  [ -n "$1" ] && printf '\n\033[1m==> %s\033[0m\n' "$1" >&2
  return 0
}
produced() { printf '    → %s\n' "$*" >&2; }
pids=() modelcar=""
cleanup() {
  [ -n "$modelcar" ] && podman rm -f -t 0 "$modelcar" >/dev/null 2>&1
  if [ "$keep" = 0 ]; then
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${regdir:-}" ] && rm -rf "$regdir"
  fi
  return 0
}
trap cleanup EXIT

step "1/8 build (prerequisites and the four Native-AOT binaries: ./build.sh)"
mkdir -p "$work"
# only what this job needs (test.sh installs the test and benchmark toolchain); one line per phase,
# apt's output in $work/prerequisites.log
scripts/prerequisites.sh --main-job --log "$work/prerequisites.log"
printf 'build: publishing the four tools (log: %s) … ' "$work/build.log" >&2
build_start=$SECONDS
./build.sh >"$work/build.log" 2>&1 || { echo "FAILED — last lines of $work/build.log:" >&2; tail -n 40 "$work/build.log" >&2; exit 1; }
printf 'done in %ss\n' "$((SECONDS - build_start))" >&2
bin="$here/out/bin"
produced "$(ls "$bin" | tr '\n' ' ')in $bin"
rm -rf "$work/model" "$work/image" "$work/results" "$work/mnt"
mkdir -p "$work/results"

step "2/8 download (hf-fetch)"
if [ -n "$repo" ]; then
  commit="$("$bin/hf-fetch" "$repo" --revision "$revision" --dest "$work/model" --results-dir "$work/results/download")"
else
  repo="modelcar-samples/tiny-model"
  python3 scripts/make-sample-model.py "$work/sample-src"
  hub_port="$(free_port)"
  python3 scripts/fake-hub.py "$work/sample-src" "$repo" "$hub_port" >"$work/hub.log" 2>&1 & pids+=($!)
  endpoint="http://127.0.0.1:$hub_port"
  wait_http "$endpoint/api/models/$repo/revision/$revision" "${pids[-1]}"
  echo "serving the embedded sample model as $repo at $endpoint (a local stand-in for the Hub)" >&2
  commit="$("$bin/hf-fetch" "$repo" --revision "$revision" --endpoint "$endpoint" --dest "$work/model" --results-dir "$work/results/download")"
fi
produced "$repo at commit $commit: $(cat "$work/results/download/files") files, $(cat "$work/results/download/bytes") bytes in $work/model"

step "3/8 base image (busybox, for the sh KServe runs in the modelcar container; built here with umoci)"
if [ ! -f "$work/busybox/index.json" ]; then
  # built aside and renamed into place, so an interrupted build never looks finished
  rm -rf "$work/busybox.new" "$work/busybox-bundle"
  umoci init --layout "$work/busybox.new"
  umoci new --image "$work/busybox.new:latest"
  umoci unpack --image "$work/busybox.new:latest" "$work/busybox-bundle" >/dev/null
  mkdir -p "$work/busybox-bundle/rootfs/bin"
  cp /bin/busybox "$work/busybox-bundle/rootfs/bin/busybox"
  for a in sh ln sleep ls mkdir echo '[' test cat find; do ln -sf busybox "$work/busybox-bundle/rootfs/bin/$a"; done
  umoci repack --image "$work/busybox.new:latest" "$work/busybox-bundle"
  umoci config --image "$work/busybox.new:latest" --config.cmd sh
  rm -rf "$work/busybox-bundle"
  mv "$work/busybox.new" "$work/busybox"
  produced "oci:$work/busybox:latest (new)"
else
  produced "oci:$work/busybox:latest (built by an earlier run)"
fi

step "4/8 pack (oci-pack → OCI image layout)"
"$bin/oci-pack" --model "$work/model" --output "oci:$work/image:$tag" --base "oci:$work/busybox:latest" \
  --layer-threshold 64K --results-dir "$work/results/pack" >/dev/null
digest="$(cat "$work/results/pack/IMAGE_DIGEST")"
produced "oci:$work/image:$tag = $digest ($(cat "$work/results/pack/IMAGE_SIZE") bytes)"

step "5/8 push (registry-push → a local CNCF distribution registry)"
regdir="$work/registry-$$"
rm -rf "$regdir"
start_registry "$regdir"; pids+=("$REGISTRY_PID")
registry="127.0.0.1:$REGISTRY_PORT"
dest="$registry/models/tiny-model"
"$bin/registry-push" --source "oci:$work/image:$tag" --dest "docker://$dest:$tag" --tls-verify=false \
  --results-dir "$work/results/push" >/dev/null
pushed="$(cat "$work/results/push/IMAGE_DIGEST")"
# what the registry itself now serves under the tag
served="$(curl -fsSI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/models/tiny-model/manifests/$tag" \
  | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p')"
if [ "$pushed" != "$digest" ] || [ "$served" != "$digest" ]; then
  echo "run-local.sh: the registry serves $dest:$tag as '$served', registry-push reported '$pushed', the layout holds $digest" >&2
  exit 1
fi
image_url="$dest@$digest"
produced "docker://$dest:$tag = $served (checked with a HEAD of the manifest)"

step "6/8 register (mr-register)"
if [ -z "$mr_url" ]; then
  mr_port="$(free_port)"
  python3 scripts/fake-model-registry.py "$mr_port" >"$work/model-registry.log" 2>&1 & pids+=($!)
  mr_url="http://127.0.0.1:$mr_port"
  wait_http "$mr_url/api/model_registry/v1alpha3/registered_models" "${pids[-1]}"
  echo "using a local stand-in for the Model Registry at $mr_url (--model-registry URL for a real one)" >&2
  mr_tls=(--tls-verify=false)
else
  mr_tls=()
  [ -n "$mr_token" ] && mr_tls+=(--token-file "$mr_token")
fi
model_name="Mistral-Small-24B-Instruct"
"$bin/mr-register" register --server "$mr_url" "${mr_tls[@]}" --model-name "$model_name" --version-name "$tag" \
  --uri "oci://$image_url" --model-format-name vLLM \
  --property "hf-repo=$repo" --property "hf-commit=$commit" --property "image-digest=$digest" \
  --results-dir "$work/results/register" >"$work/results/register.out"
while read -r line; do produced "$line"; done <"$work/results/register.out"

step "7/8 look up (mr-register lookup, as the deploy side does)"
storage_uri="$("$bin/mr-register" lookup --server "$mr_url" "${mr_tls[@]}" --model-name "$model_name" --version-name "$tag")"
if [ "$storage_uri" != "oci://$image_url" ]; then
  echo "run-local.sh: the Model Registry returned '$storage_uri', expected oci://$image_url" >&2
  exit 1
fi
produced "$model_name / $tag → $storage_uri"

step "8/8 ModelCar start (as KServe does it: podman, a random UID with GID 0, KServe's args)"
modelcar_line=""
# this machine's podman settings (runc, cgroupfs, vfs) unless the caller already has its own
command -v podman >/dev/null && { [ -n "${CONTAINERS_CONF:-}" ] || eval "$(scripts/container-engine.sh env)"; }
if ! command -v podman >/dev/null || ! podman info >/dev/null 2>&1; then
  echo "no working container engine (podman) on this machine: skipping the ModelCar start check" >&2
else
  uid=$((1000650000 + RANDOM % 10000))   # as restricted-v2 assigns: from the namespace's range, GID 0
  ref="$registry/models/tiny-model@$digest"
  podman pull -q --tls-verify=false "docker://$ref" >/dev/null
  mkdir -p "$work/mnt" && chmod 0777 "$work/mnt"   # an emptyDir is world-writable
  modelcar="modelcar-run-local-$$"
  # KServe sets only Args on the modelcar container (pkg/utils/storage.go)
  podman run -d --name "$modelcar" --network none --user "$uid:0" -v "$work/mnt:/mnt" "$ref" \
    sh -c 'ln -sf /proc/$$/root/models /mnt/models && sleep infinity' >/dev/null
  # the serving container: same pod, so the same PID namespace (shareProcessNamespace), UID and /mnt
  if ! check="$(podman run --rm --network none --pid "container:$modelcar" --user "$uid:0" -v "$work/mnt:/mnt" "$ref" \
      sh -c 'for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /mnt/models/config.json ] && break; sleep 0.2; done
             cat /mnt/models/config.json >/dev/null || exit 1
             n=0; for f in $(find /mnt/models/ -type f); do cat "$f" >/dev/null || exit 1; n=$((n+1)); done
             echo "$n"; ls -la /mnt/models/ >&2' 2>"$work/modelcar-ls.txt")"; then
    echo "run-local.sh: the ModelCar's /mnt/models is not readable from the serving container as uid $uid:" >&2
    cat "$work/modelcar-ls.txt" >&2
    exit 1
  fi
  modelcar_line="modelcar check: $check files readable under /mnt/models as uid $uid"
  echo "$modelcar_line" >&2
  sed 's/^/      /' "$work/modelcar-ls.txt" >&2
fi
step ""

bold "Summary" >&2
for s in "${steps[@]}"; do echo "  $s" >&2; done
echo "  $(printf '%-22s %4ss' total "$SECONDS")" >&2

if [ "$keep" = 1 ]; then
  kept="The registry at $registry keeps running (--keep): stop it with  kill ${pids[*]}"
else
  kept="The registry at $registry lived only for this run (use --keep to leave it running)."
fi
cat <<OUT

ModelCar image: $storage_uri
  layout:  oci:$work/image:$tag
  $kept
  Push the layout to a real registry:
    $bin/registry-push --source oci:$work/image:$tag --dest docker://YOUR-REGISTRY/YOUR/REPO:$tag
${modelcar_line:+  $modelcar_line
}
Deploy it on OpenShift AI, with the storageUri of the registry you pushed to. First instantiate
OpenShift AI's vLLM ServingRuntime template in your namespace (it offers modelFormat vLLM, no
version), then create the InferenceService:

oc process vllm-cuda-runtime-template -n redhat-ods-applications | oc apply -n YOUR-NAMESPACE -f -
cat <<'YAML' | oc apply -n YOUR-NAMESPACE -f -
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: tiny-model
  annotations:
    serving.kserve.io/deploymentMode: RawDeployment
spec:
  predictor:
    model:
      runtime: vllm-cuda-runtime     # the ServingRuntime the template above creates
      modelFormat:
        name: vLLM
      storageUri: $storage_uri
      resources:
        requests: { cpu: "2", memory: 8Gi, nvidia.com/gpu: "1" }
        limits: { nvidia.com/gpu: "1" }
YAML
OUT
