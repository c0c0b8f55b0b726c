#!/usr/bin/env bash
# Builds or reuses every real peer the tests use, pinned and cached outside the repository (see lib.sh):
# Node.js 24, PostgreSQL, the Colonies server, MinIO (when scripts/peers/minio.sh is there), local-kms (a key
# manager speaking AWS KMS's API), the Pulumi engine (CLI, Node.js language host, Kubernetes provider) and the
# Kubernetes control plane binaries (kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, kwokctl).
# Prints how long each took.
#
# Usage: scripts/peers/all.sh            build or reuse, print a summary (stderr) and the timings
#        scripts/peers/all.sh --export   the same, then print the environment to eval on stdout:
#          eval "$(bash scripts/peers/all.sh --export)"
# Cold (nothing cached) this is long: the Go builds of Kubernetes, the Pulumi CLI and the Kubernetes provider
# take many minutes on 2 cores. Warm (everything cached) it takes a few seconds.
source "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-}"
[ -z "$mode" ] || [ "$mode" = "--export" ] || die "usage: $0 [--export]"

exports=""
timings=""
now_ms() { local t="${EPOCHREALTIME//[.,]/}"; echo "${t:0:-3}"; }
secs() { printf '%d.%01d' "$(($1 / 1000))" "$((($1 % 1000) / 100))"; }
total_start=$(now_ms)

# step NAME SCRIPT [ARGS...]: runs one peer script, keeps its stdout, records its duration.
step() {
  local name="$1" script="$2" out start
  start=$(now_ms)
  shift 2
  out="$(bash "$here/$script" "$@")" || die "$script failed"
  timings+="$(printf '  %-10s %7ss' "$name" "$(secs $(($(now_ms) - start)))")"$'\n'
  STEP_OUT="$out"
}

step node node.sh --export
exports+="$STEP_OUT"$'\n'
step postgres postgres.sh
exports+="$(printf 'export COLONYOS_PG_BINDIR=%q' "$STEP_OUT")"$'\n'
step colonies colonies.sh
exports+="$(printf 'export COLONIES_BIN=%q' "$STEP_OUT")"$'\n'
if [ -f "$here/minio.sh" ]; then
  step minio minio.sh
  exports+="$(printf 'export MINIO_BINARY=%q' "$STEP_OUT")"$'\n'
fi
step kms kms.sh
exports+="$(printf 'export LOCAL_KMS_BINARY=%q' "$STEP_OUT")"$'\n'
step pulumi pulumi.sh --export
exports+="$STEP_OUT"$'\n'
step kube kube.sh --export
exports+="$STEP_OUT"$'\n'

log "peers ready in $(secs $(($(now_ms) - total_start)))s (cache: $PEERS_CACHE)"
printf '%s' "$timings" >&2
if [ "$mode" = "--export" ]; then
  printf '%s' "$exports"
fi
