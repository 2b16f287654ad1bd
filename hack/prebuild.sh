#!/usr/bin/env bash
# Builds and installs, once, what the tests and the e2e suites need and a
# cold machine takes long to make: the test servers, the Kubernetes
# control plane for envtest, the cluster's other components, the e2e
# tools, and the compiled packages of the operator's image and of the e2e
# suite. .ci/run starts it beside its own steps at the lowest CPU and I/O
# priority (hack/lowprio.sh), so that it takes only what they leave idle (downloads, tests
# waiting on servers). Every build holds a lock (hack/once.sh): a step
# that needs one waits for it instead of building it again. On a warm
# machine it ends within seconds. A part that fails is only time lost:
# the step that needs it builds it, and says why it cannot.
set -uo pipefail
cd "$(dirname "$0")/.."
# It only compiles and installs.
. hack/compile-env.sh
t0=$(date +%s)
part() {
  local what=$1
  shift
  if "$@"; then
    echo "prebuild: $what ready after $(( $(date +%s) - t0 ))s" >&2
  else
    echo "prebuild: $what failed after $(( $(date +%s) - t0 ))s" >&2
  fi
}

part "test servers" hack/peers/install.sh
part "control plane for envtest" hack/envtest-assets.sh
part "cluster components" hack/envtest-assets.sh cluster
part "tools" make --no-print-directory tools
part "operator for the e2e image" go build -ldflags "-s -w" -o /dev/null ./cmd/user-import-operator
part "e2e suite" go test -c -tags e2e -o /dev/null ./test/e2e
