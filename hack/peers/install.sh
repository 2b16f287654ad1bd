#!/usr/bin/env bash
# Installs every test server the tests and benchmarks start
# (hack/peers/install-*.sh). One run at a time on a machine
# (hack/once.sh): apt and the Go builds of Mailpit and versitygw are not
# for two at once, and the second run finds everything installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${UIO_PEERS_LOCKED:-}" ]; then
  UIO_PEERS_LOCKED=1 exec "$HERE/../once.sh" peers "$HERE/install.sh" "$@"
fi
cd "$HERE/../.."
for f in hack/peers/install-*.sh; do
  bash "$f"
done
