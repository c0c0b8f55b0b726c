#!/usr/bin/env bash
# Builds the Colonies server + official CLI (one binary) from its Go module, pinned, into the peers cache.
# Prints the path of the binary. `go install ...@version` is refused here (it asks the proxy for the version
# list), so a throw-away wrapper module names the exact version.
source "$(dirname "$0")/lib.sh"
COLONIES_VERSION=1.9.12
out="$PEERS_CACHE/colonies-$COLONIES_VERSION/colonies"
if [ ! -x "$out" ]; then
  log "building the Colonies server v$COLONIES_VERSION from its Go module (about 1-2 minutes the first time)"
  wrap="$PEERS_CACHE/colonies-$COLONIES_VERSION/wrapper"
  mkdir -p "$wrap"
  cat >"$wrap/go.mod" <<MOD
module wrapper/colonies

go 1.25

require github.com/colonyos/colonies v$COLONIES_VERSION
MOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/colonyos/colonies/cmd"\n' >"$wrap/tools.go"
  (cd "$wrap" && run_logged colonies-tidy go mod tidy)
  (cd "$wrap" && run_logged colonies-build go build -trimpath -o "$out.tmp" github.com/colonyos/colonies/cmd)
  mv "$out.tmp" "$out"
fi
echo "$out"
