#!/usr/bin/env bash
# The main job's one command: provides Node 24, the npm packages and every real peer (built once and cached
# outside the repository; the first run builds Kubernetes, Pulumi and MinIO from their Go modules, see README),
# builds the executors and runs the local demo end to end. Pass --keep to leave everything running.
set -euo pipefail
cd "$(dirname "$0")/.."
# `eval "$(…)"` would hide the script's exit status: take its output first, so that a failure stops here.
peers_env="$(bash scripts/peers/all.sh --export)"
eval "$peers_env"
export PATH="$(dirname "$COLONIES_BIN"):$PATH"
npm install --no-audit --no-fund --loglevel=error
npm run build --silent
exec node --import tsx scripts/demo.ts "$@"
