#!/usr/bin/env bash
# Ensures the PostgreSQL server and client tools (Debian packages) are installed; prints the server bin directory.
source "$(dirname "$0")/lib.sh"
find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bindir="$(find_bindir)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || ! command -v pg_dump >/dev/null; then
  log "installing PostgreSQL from Debian packages"
  [ "$(id -u)" = 0 ] || die "PostgreSQL is missing; install it with: sudo apt-get install -y postgresql"
  run_logged apt-update apt-get update
  DEBIAN_FRONTEND=noninteractive run_logged apt-postgresql apt-get install -y --no-install-recommends postgresql postgresql-client
  bindir="$(find_bindir)"
fi
echo "$bindir"
