#!/usr/bin/env bash
# Installs the SCIM 2.0 test server (SCIMMY on Express, pinned by
# package-lock.json) into hack/peers/scim/node_modules. Idempotent: does
# nothing when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/scim"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-scim: node and npm are required (apt-get install -y nodejs npm)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# A stamp of the lock file written after a successful install tells
# whether node_modules is current.
stamp=node_modules/.uio-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d node_modules/scimmy-routers ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
