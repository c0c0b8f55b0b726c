#!/usr/bin/env bash
# One command for all tests on a fresh machine: provides Node 24 (when the machine's node is older than 22),
# installs the npm packages, builds or reuses every real peer (cached outside the repository: PostgreSQL, the
# Colonies server, MinIO, the Pulumi CLI + Kubernetes provider, kube-apiserver & co. + kwok), builds the image from
# the Dockerfile into a registry on loopback, starts a private local Kubernetes cluster with a real node beside its
# kwok nodes (kubelet, containerd, runc: needs root), runs lint, type check, unit and integration tests, and deletes
# the node and the cluster.
# Usage: bash scripts/test.sh [vitest arguments, e.g. test/integration/k8s-executor.test.ts]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
# `eval "$(…)"` would hide the script's exit status: take its output first, so that a failure stops here.
peers_env="$(bash scripts/peers/all.sh --export)"
eval "$peers_env"
echo "[test] node $(node -v); peers ready after $((SECONDS - started)) s"

# npm ci rejects lockfiles written with omit-lockfile-registry-resolved; install honours the lock all the same.
npm install --no-audit --no-fund --loglevel=error
npm run build --silent
image_env="$(bash scripts/peers/image.sh --export)"
eval "$image_env"
echo "[test] image $COLONYOS_IMAGE ready after $((SECONDS - started)) s"

export KWOK_CLUSTER_NAME="test-$$"
trap 'bash scripts/real-node.sh down >/dev/null 2>&1 || true; bash scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/cluster.sh up >/dev/null
cluster_env="$(bash scripts/cluster.sh env)"
eval "$cluster_env"
REAL_NODE_REGISTRY="$COLONYOS_REGISTRY" bash scripts/real-node.sh up
echo "[test] cluster $KWOK_CLUSTER_NAME with a real node ready after $((SECONDS - started)) s"

npm run lint
npm run typecheck
npx vitest run "$@"
echo "[test] all tests passed in $((SECONDS - started)) s"
