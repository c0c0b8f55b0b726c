#!/usr/bin/env bash
# The main job's one command: sets up Node 24, the npm packages and the real peers (cached outside the
# repository), builds the executors, and runs the local demo. Pass --keep to leave it running.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/peers/node.sh --export)"
bash scripts/peers/postgres.sh >/dev/null
COLONIES_BIN_DIR="$(dirname "$(bash scripts/peers/colonies.sh)")"
export PATH="$COLONIES_BIN_DIR:$PATH"
[ -d node_modules ] || npm install --no-audit --no-fund --loglevel=error
npm run build --silent
exec node --import tsx scripts/demo.ts "$@"
