#!/usr/bin/env bash
# The test command: installs the real servers the tests talk to (SCIM,
# LDAP, PostgreSQL, ...), points envtest at a Kubernetes API server and
# etcd, and runs every Go test. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

for f in hack/peers/install-*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done

KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS
export UIO_REPO_ROOT=$PWD

go test -count=1 -timeout 30m "$@" ./...
