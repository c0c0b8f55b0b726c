#!/usr/bin/env bash
# One command for all tests on a fresh machine: provides Node 24 (when the machine's node is older than 22),
# installs the npm packages, builds or reuses the real peers (cached outside the repository), then runs the
# linter, the type checker, the unit tests and the integration tests against the real peers.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
eval "$(bash scripts/peers/node.sh --export)"
echo "[test] node $(node -v), npm $(npm -v)"
bash scripts/peers/postgres.sh >/dev/null
bash scripts/peers/colonies.sh >/dev/null
echo "[test] peers ready after $((SECONDS - started)) s"
# npm ci rejects lockfiles written with omit-lockfile-registry-resolved; install honours the lock all the same.
npm install --no-audit --no-fund --loglevel=error
npm run build
npm test
echo "[test] all tests passed in $((SECONDS - started)) s"
