#!/usr/bin/env bash
# Builds and installs, once, what the tests and the e2e suites need and a
# cold machine takes long to make: the test servers, the Kubernetes
# control plane for envtest, the cluster's other components, the e2e
# tools, and the compiled packages of the operator's image and of the e2e
# suite. .ci/run starts it beside its own steps at the lowest CPU and I/O
# priority, so that it takes only what they leave idle (downloads, tests
# waiting on servers). Every build holds a lock (hack/once.sh): a step
# that needs one waits for it instead of building it again. On a warm
# machine it ends within seconds. A part that fails is only time lost:
# the step that needs it builds it, and says why it cannot.
set -uo pipefail
cd "$(dirname "$0")/.."
# Started in a session of its own (setsid), it is a scheduling group of
# its own where the kernel groups sessions (autogroup), and a group gets
# its share whatever the nice of its processes: the group yields too.
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ -w /proc/self/autogroup ]; then
  echo 19 > /proc/self/autogroup || true
fi
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
k8s=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

part "test servers" hack/peers/install.sh
part "control plane for envtest" hack/envtest-assets.sh
part "cluster components" hack/envtest-assets.sh "${k8s[@]}"
part "tools" make --no-print-directory tools
part "operator for the e2e image" go build -ldflags "-s -w" -o /dev/null ./cmd/user-import-operator
part "e2e suite" go test -c -tags e2e -o /dev/null ./test/e2e
