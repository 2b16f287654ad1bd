#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres)
# for the tests of the SQL directory provider. The tests start their own
# server with initdb + pg_ctl in a temporary directory on 127.0.0.1, as the
# package's "postgres" system user (see internal/testpeer/postgres); the
# package's own cluster is left stopped.
# Idempotent: does nothing but the stop check when the binaries are there.
set -euo pipefail

# find_bindir prints the newest /usr/lib/postgresql/<ver>/bin holding initdb.
find_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

if ! find_bindir >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

bindir=$(find_bindir) || { echo "install-postgres: initdb not found after install" >&2; exit 1; }

# The tests need a non-root user to run the server as; the package creates
# "postgres". Make sure it exists even on an odd install.
if ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# The package creates and may start a "main" cluster on port 5432: stop
# every cluster it runs so that only the tests' own servers listen.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
    if [ "$status" = "online" ]; then
      pg_ctlcluster "$ver" "$name" stop --mode fast >/dev/null 2>&1 || true
    fi
  done
fi

echo "install-postgres: PostgreSQL binaries in $bindir" >&2
