#!/usr/bin/env bash
# The main job, locally: the whole ModelCar pipeline on this machine.
#
#   download (hf-fetch) → pack (oci-pack, busybox base built here) → push (registry-push, a local
#   registry) → register (mr-register; --dry-run unless --model-registry URL is given)
#
# Default: the embedded sample model (samples/tiny-model + a generated safetensors) served by a
# local stand-in for the Hub, so it runs without network. With --repo ORG/NAME it downloads that
# repo from $HF_ENDPOINT (default https://huggingface.co; set HF_TOKEN for gated repos).
#
# Usage: ./run-local.sh [--repo ORG/NAME] [--revision REV] [--model-registry URL] [--token-file F]
#                       [--tag TAG] [--work DIR] [--keep]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
repo="" revision="main" mr_url="" mr_token="" tag="quantized-w4a16-$(date +%m%d)" work="$here/.run-local" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    --model-registry) mr_url="$2"; shift 2 ;;
    --token-file) mr_token="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-local.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ "$keep" = 1 ] || rm -rf "$work/registry"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "run-local.sh: $1 did not answer" >&2; return 1; }

say "1/6 prerequisites and the four Native-AOT binaries (./build.sh)"
scripts/prerequisites.sh
./build.sh >/dev/null 2>&1 || ./build.sh
bin="$here/out/bin"
rm -rf "$work/model" "$work/image" "$work/results"
mkdir -p "$work/results"

say "2/6 download (hf-fetch)"
if [ -n "$repo" ]; then
  "$bin/hf-fetch" "$repo" --revision "$revision" --dest "$work/model" --results-dir "$work/results/download"
else
  repo="modelcar-samples/tiny-model"
  python3 scripts/make-sample-model.py "$work/sample-src"
  python3 scripts/fake-hub.py "$work/sample-src" "$repo" "$work/hub.port" & pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/hub.port" ] && break; sleep 0.1; done
  endpoint="http://127.0.0.1:$(cat "$work/hub.port")"
  echo "serving the embedded sample model as $repo at $endpoint" >&2
  "$bin/hf-fetch" "$repo" --revision "$revision" --endpoint "$endpoint" --dest "$work/model" --results-dir "$work/results/download"
fi

say "3/6 a busybox base image (sh for KServe's modelcar sidecar), built here from busybox-static with umoci"
if [ ! -f "$work/busybox/index.json" ]; then
  rm -rf "$work/busybox" "$work/busybox-bundle"
  umoci init --layout "$work/busybox"
  umoci new --image "$work/busybox:latest"
  umoci unpack --image "$work/busybox:latest" "$work/busybox-bundle" >/dev/null
  mkdir -p "$work/busybox-bundle/rootfs/bin"
  cp /bin/busybox "$work/busybox-bundle/rootfs/bin/busybox"
  for a in sh ln sleep ls mkdir echo '[' test cat; do ln -sf busybox "$work/busybox-bundle/rootfs/bin/$a"; done
  umoci repack --image "$work/busybox:latest" "$work/busybox-bundle"
  umoci config --image "$work/busybox:latest" --config.cmd sh
  rm -rf "$work/busybox-bundle"
fi

say "4/6 pack (oci-pack → OCI image layout)"
"$bin/oci-pack" --model "$work/model" --output "oci:$work/image:$tag" --base "oci:$work/busybox:latest" \
  --layer-threshold 64K --results-dir "$work/results/pack"

say "5/6 push (registry-push → a local registry)"
port="$(free_port)"
mkdir -p "$work/registry/data"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $work/registry/data } }
http: { addr: 127.0.0.1:$port }
YML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$port/v2/"
dest="127.0.0.1:$port/models/tiny-model"
"$bin/registry-push" --source "oci:$work/image:$tag" --dest "docker://$dest:$tag" --tls-verify=false \
  --results-dir "$work/results/push" | tee "$work/pushed.txt"
image_url="$dest@$(cat "$work/results/push/IMAGE_DIGEST")"

say "6/6 register (mr-register)"
mr_args=(register --model-name "Mistral-Small-24B-Instruct" --version-name "$tag" --uri "oci://$image_url"
  --model-format-name vLLM --model-format-version 1 --results-dir "$work/results/register")
if [ -n "$mr_url" ]; then
  [ -n "$mr_token" ] && mr_args+=(--token-file "$mr_token")
  "$bin/mr-register" "${mr_args[@]}" --server "$mr_url"
else
  echo "no --model-registry URL given: showing what would be sent (--dry-run)" >&2
  "$bin/mr-register" "${mr_args[@]}" --server "https://modelregistry.example:8443" --dry-run
fi

cat <<OUT

ModelCar image: oci://$image_url   (layout: $work/image, tag $tag)
Deploy it with KServe (the registry above lives only while this script runs; push to yours with
registry-push --dest docker://YOUR/REPO:$tag):

apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: tiny-model
spec:
  predictor:
    model:
      modelFormat: { name: vLLM }
      storageUri: oci://$image_url
OUT
