#!/usr/bin/env bash
# Builds the Go SDK baseline executor into the peers cache and prints its path.
source "$(dirname "$0")/../../scripts/peers/lib.sh"
src="$(cd "$(dirname "$0")" && pwd)"
out="$PEERS_CACHE/bench/go-sleep-executor-$(sha256sum "$src/main.go" "$src/go.mod" | sha256sum | cut -c1-12)"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  work="$(mktemp -d)"
  cp "$src/main.go" "$src/go.mod" "$work/"
  (cd "$work" && run_logged bench-go-tidy go mod tidy && run_logged bench-go-build go build -trimpath -o "$out" .)
  rm -rf "$work"
fi
echo "$out"
