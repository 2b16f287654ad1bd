#!/usr/bin/env bash
# The test command: installs the real servers the tests talk to (SCIM,
# LDAP, a Samba AD DC, PostgreSQL, Mailpit, an S3 server, sshd), points envtest at a Kubernetes API server and etcd,
# runs every Go test, then gives each fuzz target a short run
# (hack/fuzz.sh). Extra arguments go to `go test`. FUZZTIME (default
# 20000x: that many inputs) sets the length of each fuzz run; FUZZTIME=0
# skips them.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/peers/install.sh

KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS
export UIO_REPO_ROOT=$PWD

# One control plane for the packages whose tests share one
# (testenv.Shared: the worker's and the plugin's, each test in names or a
# namespace of its own). The integration suite and the demo start their
# own.
shared=$(mktemp -d)
go build -o "$shared/testcontrolplane" ./hack/testcontrolplane
"$shared/testcontrolplane" -write-kubeconfig "$shared/kubeconfig" &
shared_pid=$!
stop_shared() {
  kill "$shared_pid" 2>/dev/null || true
  wait "$shared_pid" 2>/dev/null || true
  rm -rf "$shared"
}
trap stop_shared EXIT
# The tests wait for the kubeconfig (testenv.Connect): the control plane
# comes up while they compile.
export UIO_TEST_KUBECONFIG=$shared/kubeconfig

# Four test binaries at a time, whatever the cores: most packages spend
# their time waiting on servers (an API server, LDAP, PostgreSQL).
go test -count=1 -p "${GOTEST_PARALLEL:-4}" -timeout 30m "$@" ./...
stop_shared
trap - EXIT

[ "${FUZZTIME:-}" = 0 ] || hack/fuzz.sh
