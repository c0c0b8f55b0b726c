#!/usr/bin/env bash
# The main job's one command: provides Node 24, the npm packages and every real peer (built once and cached
# outside the repository; the first run builds Kubernetes, Pulumi and MinIO from their Go modules, see README),
# builds the executors and runs the local demo end to end. Pass --keep to leave everything running, --real-node to
# run the k8s steps on a real node (containerd, runc, kubelet; needs root, one per machine) from the project's image
# built from the Dockerfile and served from a registry on loopback (scripts/peers/image.sh) instead of the local
# pod runner.
set -euo pipefail
cd "$(dirname "$0")/.."
# `eval "$(…)"` would hide the script's exit status: take its output first, so that a failure stops here.
peers_env="$(bash scripts/peers/all.sh --export)"
eval "$peers_env"
export PATH="$(dirname "$COLONIES_BIN"):$PATH"
npm install --no-audit --no-fund --loglevel=error
npm run build --silent
for arg in "$@"; do
  if [ "$arg" = --real-node ]; then
    image_env="$(bash scripts/peers/image.sh --export)"
    eval "$image_env"
    export COLONYOS_IMAGE COLONYOS_REGISTRY
  fi
done
exec node --import tsx scripts/demo.ts "$@"
