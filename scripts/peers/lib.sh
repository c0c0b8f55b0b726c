# Shared helpers for the peer scripts. Source it; do not run it.
# Every peer is pinned, built or installed into a cache OUTSIDE the repository and reused when present.
set -euo pipefail

PEERS_CACHE="${COLONYOS_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/colonyos-executors/peers}"
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$PEERS_CACHE/logs"

log() { printf '\033[1m[peers]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[peers] error:\033[0m %s\n' "$*" >&2; exit 1; }

# One run at a time per cache: two runs building the same peer would corrupt it. The first peer script takes the
# lock for itself and the peer scripts it runs (they inherit the descriptor and COLONYOS_PEERS_LOCK_HELD); it is
# released when that script exits. No peer script leaves a daemon behind that could hold it.
if [ -z "${COLONYOS_PEERS_LOCK_HELD:-}" ]; then
  exec 8>"$PEERS_CACHE/.lock"
  if ! flock -n 8; then
    log "another run is using $PEERS_CACHE; waiting for it to finish"
    flock 8
  fi
  export COLONYOS_PEERS_LOCK_HELD=1
fi

# Version of an npm dependency as pinned in package.json (the single source of truth for Pulumi versions).
npm_pin() {
  # `|` as the sed delimiter: package names contain slashes (@pulumi/pulumi).
  sed -n "s|^ *\"$1\": *\"\([^\"]*\)\".*|\1|p" "$PROJECT_ROOT/package.json" | head -n 1
}

# run_logged NAME CMD...: runs a long build with its output in a log file, prints the tail on failure.
run_logged() {
  local name="$1"; shift
  local logfile="$PEERS_CACHE/logs/$name.log"
  if ! "$@" >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    die "$name failed (full log: $logfile)"
  fi
}

# Go builds must never consult the version list (refused by the module proxy here): wrapper modules
# always name exact versions, and -mod=mod lets `go mod tidy` write go.sum.
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || die "Go is required to build the peers (expected at /usr/local/go)"
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
