#!/usr/bin/env bash
# Starts a Docker-compatible API for Testcontainers and builds the local registry image.
#
# On a laptop with Docker nothing here is needed: the tests use the public registry:2 image.
# On Debian machines without a Docker engine (our CI) this script:
#   1. configures podman with runc + cgroupfs + vfs through project-local config files
#      (CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, nothing under /etc is edited),
#   2. starts `podman system service` on a unix socket,
#   3. builds `localhost/modelcar-test-registry:latest` FROM scratch with Debian's
#      /usr/bin/docker-registry (CNCF distribution), because no image can be pulled here,
#   4. prints the environment Testcontainers needs (source it: `. <(scripts/container-engine.sh env)`).
# Usage: scripts/container-engine.sh start|env|stop
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${MODELCAR_ENGINE_DIR:-$here/.engine}"
sock="$state/podman.sock"
image="localhost/modelcar-test-registry:latest"

write_conf() {
  mkdir -p "$state/storage" "$state/runroot" "$state/tmp"
  cat >"$state/containers.conf" <<CONF
[engine]
# libpod's own temp state (conmon's exit files among it) beside the rest, not in /run/libpod, which every
# other podman on the machine shares: a "podman system reset" elsewhere deletes that folder, and this
# engine's container removals then time out "waiting for file …/exits/ID"
tmp_dir = "$state/tmp"
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
CONF
  cat >"$state/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$state/storage"
runroot = "$state/runroot"
CONF
}

print_env() {
  echo "export CONTAINERS_CONF='$state/containers.conf'"
  echo "export CONTAINERS_STORAGE_CONF='$state/storage.conf'"
  echo "export DOCKER_HOST='unix://$sock'"
  echo "export TESTCONTAINERS_RYUK_DISABLED=true"
  echo "export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1"
  echo "export MODELCAR_TEST_REGISTRY_IMAGE='$image'"
}

build_registry_image() {
  local ctx="$state/registry-image"
  rm -rf "$ctx"; mkdir -p "$ctx/root/bin" "$ctx/root/etc/docker/registry" "$ctx/root/var/lib/registry"
  cp /usr/bin/docker-registry "$ctx/root/bin/registry"
  # the binary needs only libc + the loader; copy whatever ldd names
  ldd /usr/bin/docker-registry | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    mkdir -p "$ctx/root$(dirname "$lib")"; cp -L "$lib" "$ctx/root$lib"
  done
  cat >"$ctx/root/etc/docker/registry/config.yml" <<'YML'
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
YML
  cat >"$ctx/Containerfile" <<'CF'
FROM scratch
COPY root/ /
EXPOSE 5000
VOLUME /var/lib/registry
ENTRYPOINT ["/bin/registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
CF
  podman build -q -t "$image" "$ctx" >/dev/null
}

start() {
  for cmd in podman runc docker-registry; do
    command -v "$cmd" >/dev/null || { echo "container-engine.sh: '$cmd' is missing (apt-get install podman runc docker-registry)" >&2; exit 1; }
  done
  write_conf
  eval "$(print_env)"
  if ! curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    rm -f "$sock"
    nohup podman system service --time=0 "unix://$sock" >"$state/podman-service.log" 2>&1 &
    for _ in $(seq 1 100); do
      curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && break
      sleep 0.2
    done
    curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null || { echo "container-engine.sh: podman service did not start; see $state/podman-service.log" >&2; exit 1; }
  fi
  if ! podman image exists "$image"; then build_registry_image; fi
}

case "${1:-start}" in
  start) start ;;
  env) write_conf >/dev/null; print_env ;;
  stop) pkill -f "podman system service --time=0 unix://$sock" || true ;;
  *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
