#!/usr/bin/env bash
# A real local Kubernetes control plane on loopback, for the integration tests and for trying the k8s executor:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the kwok controller run as local processes
# (kwokctl's binary runtime; no Docker, no images), kwok fakes the nodes and makes scheduled pods Running and
# Ready. The binaries come from scripts/peers/kube.sh (built once, cached).
#
# Usage: scripts/cluster.sh up           create (or reuse; recreate when its processes are gone) the cluster, wait until it is ready,
#                                        print the kubeconfig path
#        scripts/cluster.sh down         delete it: no process of it keeps running, its directory is removed
#        scripts/cluster.sh kubeconfig   print the kubeconfig path (fails if the cluster is not up)
#        scripts/cluster.sh env          print `export COLONYOS_TEST_KUBECONFIG=... KUBECONFIG=...` to eval
#        scripts/cluster.sh status       show its components and nodes
# Environment:
#   KWOK_CLUSTER_NAME     cluster name (default colonyos-test)
#   COLONYOS_CLUSTER_DIR  where clusters live, never inside the repository (default
#                         ${XDG_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/colonyos-executors/clusters)
#                         holding kwok/ (kwokctl's work dir: etcd data, certificates, pids, component logs),
#                         <name>.kubeconfig and <name>.pod.log (what `kubectl logs` shows for every pod)
#   KWOK_NODES            number of fake nodes (default 2)
#   CLUSTER_READY_TIMEOUT seconds to wait for readiness (default 180)
# Every port is picked free at run time by kwokctl; every component binds to 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

NAME="${KWOK_CLUSTER_NAME:-colonyos-test}"
BASE="${COLONYOS_CLUSTER_DIR:-${XDG_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/colonyos-executors/clusters}"
NODES="${KWOK_NODES:-2}"
TIMEOUT="${CLUSTER_READY_TIMEOUT:-180}"
KUBECONFIG_OUT="$BASE/$NAME.kubeconfig"
# kwokctl adds (create) and removes (delete) a context in a kubeconfig it is given: give it a scratch file so
# that ~/.kube/config is never touched (delete refuses an empty path).
CONTEXTS="$BASE/$NAME.kwokctl-contexts"
POD_LOG="$BASE/$NAME.pod.log"
export KWOK_WORKDIR="$BASE/kwok"

log() { printf '\033[1m[cluster]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[cluster] error:\033[0m %s\n' "$*" >&2; exit 1; }

case "$BASE" in "$(cd "$here/.." && pwd)"*) die "COLONYOS_CLUSTER_DIR must be outside the repository" ;; esac

# KWOK_*_BINARY variables (read by kwokctl), kwokctl and kubectl 1.34 first on PATH.
kube_env="$("$here/peers/kube.sh" --export)"
eval "$kube_env"
kwokctl() { command "$KWOKCTL_BINARY" --name "$NAME" "$@"; }
kctl() { command "$KWOK_KUBECTL_BINARY" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

exists() { [ -f "$KWOK_WORKDIR/clusters/$NAME/kwok.yaml" ]; }
healthy() { [ -s "$KUBECONFIG_OUT" ] && kctl get --raw /readyz >/dev/null 2>&1; }
# cmd_of PID: the program a process runs (empty when there is no such process).
cmd_of() { tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -n 1; }
# Every component kwokctl started for the cluster is still running.
running() {
  local dir="$KWOK_WORKDIR/clusters/$NAME" f n=0
  for f in "$dir"/pids/*.pid; do
    [ -f "$f" ] || return 1
    [[ "$(cmd_of "$(cat "$f")")" == "$dir/bin/"* ]] || return 1
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}

write_config() {
  mkdir -p "$BASE"
  # The fake containers' output: kwok serves this file, in the CRI log format the kubelet writes
  # (<RFC3339Nano time> <stream> <F|P> <line>), as the logs of every container (`kubectl logs`).
  [ -f "$POD_LOG" ] || printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" \
    "kwok: fake container output (cluster $NAME)" >"$POD_LOG"
  cat >"$BASE/$NAME.kwokctl.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  # The kubernetes Service's ClusterIP (first address of kwokctl's service range 10.0.0.0/24): pods on a real node
  # reach the API server through it and verify its certificate.
  kubeApiserverCertSANs:
  - 10.0.0.1
# kwok fakes only the nodes kwokctl creates (annotated kwok.x-k8s.io/node=fake), not every node: a real kubelet
# can join the cluster (scripts/real-node.sh) without kwok faking its node's and its pods' statuses.
componentsPatches:
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: fake-container-logs
spec:
  logs:
  - logsFile: $POD_LOG
    follow: false
YAML
}

wait_ready() {
  local deadline=$((SECONDS + TIMEOUT))
  until healthy; do
    [ "$SECONDS" -lt "$deadline" ] || die "the API server did not become ready in ${TIMEOUT}s (logs: $KWOK_WORKDIR/clusters/$NAME/logs)"
    sleep 1
  done
  local have
  have="$(kctl get nodes --no-headers 2>/dev/null | wc -l)"
  if [ "$have" -lt "$NODES" ]; then
    log "adding fake nodes ($have -> $NODES)"
    kwokctl scale node --replicas "$NODES" >"$BASE/$NAME.scale.log" 2>&1 || die "kwokctl scale node failed (see $BASE/$NAME.scale.log)"
  fi
  kctl wait --for=condition=Ready node --all --timeout="$((deadline - SECONDS > 1 ? deadline - SECONDS : 1))s" >/dev/null ||
    die "nodes are not Ready"
  # The service-account controller creates `default` in each namespace; pods cannot be created before it.
  until kctl -n default get serviceaccount default >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "no default service account in namespace default after ${TIMEOUT}s"
    sleep 1
  done
}

up() {
  # A test cluster holds nothing worth keeping: one whose processes are gone (after a reboot, or a component
  # died) is recreated, which takes seconds, rather than restarted component by component.
  if exists && ! running; then
    log "cluster $NAME exists but is not running: recreating it"
    down
  fi
  if ! exists; then
    write_config
    log "creating cluster $NAME (kwokctl binary runtime, $("$KWOK_KUBE_APISERVER_BINARY" --version), in $KWOK_WORKDIR)"
    kwokctl create cluster --config "$BASE/$NAME.kwokctl.yaml" --kubeconfig "$CONTEXTS" --runtime binary \
      --wait "${TIMEOUT}s" >"$BASE/$NAME.create.log" 2>&1 || {
      tail -n 30 "$BASE/$NAME.create.log" >&2
      die "kwokctl create cluster failed (full log: $BASE/$NAME.create.log)"
    }
  fi
  kwokctl get kubeconfig >"$KUBECONFIG_OUT.tmp" && mv "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT"
  wait_ready
  log "cluster $NAME is ready: $(kctl get nodes --no-headers | wc -l) nodes; export KUBECONFIG=$KUBECONFIG_OUT"
  echo "$KUBECONFIG_OUT"
}

down() {
  local dir="$KWOK_WORKDIR/clusters/$NAME" pids=() pid f
  # Remember the components' pids first, to make sure none outlives the cluster.
  for f in "$dir"/pids/*.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  if exists; then
    log "deleting cluster $NAME"
    if kwokctl delete cluster --kubeconfig "$CONTEXTS" >"$BASE/$NAME.delete.log" 2>&1; then
      rm -f "$BASE/$NAME.delete.log"
    else
      log "kwokctl delete cluster failed (kept $BASE/$NAME.delete.log): stopping its processes by pid"
    fi
  fi
  for pid in "${pids[@]}"; do
    # Only a process still running one of this cluster's binaries (a pid may have been reused).
    [[ "$(cmd_of "$pid")" == "$dir/bin/"* ]] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir" "$KUBECONFIG_OUT" "$CONTEXTS" "$BASE/$NAME.kwokctl.yaml" "$POD_LOG" \
    "$BASE/$NAME.create.log" "$BASE/$NAME.scale.log"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig)
    healthy || die "cluster $NAME is not up: run scripts/cluster.sh up"
    echo "$KUBECONFIG_OUT"
    ;;
  env)
    healthy || die "cluster $NAME is not up: run scripts/cluster.sh up"
    printf 'export COLONYOS_TEST_KUBECONFIG=%q\nexport KUBECONFIG=%q\n' "$KUBECONFIG_OUT" "$KUBECONFIG_OUT"
    ;;
  status)
    exists || die "cluster $NAME does not exist"
    kwokctl get components || true
    kctl get nodes -o wide
    ;;
  *) die "usage: $0 up|down|kubeconfig|env|status" ;;
esac
