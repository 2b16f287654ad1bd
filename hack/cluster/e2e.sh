#!/usr/bin/env bash
# make test-e2e: brings up the local cluster (hack/cluster/up.sh), builds
# the operator image from the static binary and imports it, deploys
# config/default with only the image replaced (test/e2e/config), runs the
# Ginkgo suite of test/e2e inside the cluster's network namespace, and
# tears the cluster down whatever happened. On failure, the operator's
# logs, those of failed pods and of the cluster's components land in
# artifacts/e2e/.
#
# E2E_REUSE=1 reuses a running cluster and leaves it running afterwards
# (hack/cluster/down.sh stops it). KUSTOMIZE names the kustomize binary;
# GINKGO names the ginkgo CLI, which runs the suite in E2E_PROCS processes
# (default 3), so that specs that wait (a Job's deadline, a schedule's
# minutes) overlap with the others. E2E_GINKGO_FLAGS adds flags, e.g.
# --label-filter=smoke or --focus=S3.
# E2E_INSTALL=chart installs the operator with the Helm chart (HELM names
# the helm binary) instead of config/default.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
require_root_linux
KUSTOMIZE=${KUSTOMIZE:-kustomize}
IMAGE=user-import-operator:e2e
ARTIFACTS=$REPO/artifacts/e2e
OPERATOR_NS=user-import-operator-system
REUSE=${E2E_REUSE:-}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
kubectl() { in_netns "$W/bin/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

collect() {
  rm -rf "$ARTIFACTS"
  mkdir -p "$ARTIFACTS/pods"
  log "collecting logs into $ARTIFACTS"
  [ -d "$W/logs" ] && cp -r "$W/logs" "$ARTIFACTS/cluster"
  [ -e "$NETNS_PATH" ] || return 0
  kubectl get nodes,all,events -A -o wide > "$ARTIFACTS/objects.txt" 2>&1 || true
  kubectl describe pods -A > "$ARTIFACTS/pods-describe.txt" 2>&1 || true
  kubectl logs -n "$OPERATOR_NS" -l control-plane=controller-manager --all-containers --tail=-1 > "$ARTIFACTS/operator.log" 2>&1 || true
  kubectl logs -n "$OPERATOR_NS" -l control-plane=controller-manager --all-containers --tail=-1 --previous > "$ARTIFACTS/operator-previous.log" 2>/dev/null || true
  # Failed pods, and pods whose containers restarted or are not ready.
  kubectl get pods -A --no-headers -o custom-columns='NS:.metadata.namespace,NAME:.metadata.name,PHASE:.status.phase,READY:.status.containerStatuses[*].ready,RESTARTS:.status.containerStatuses[*].restartCount' 2>/dev/null |
    while read -r ns name phase ready restarts; do
      case "$phase $ready $restarts" in
        "Succeeded "*) continue ;;
        "Running true 0") continue ;;
      esac
      kubectl logs -n "$ns" "$name" --all-containers --tail=-1 > "$ARTIFACTS/pods/$ns.$name.log" 2>&1 || true
      kubectl logs -n "$ns" "$name" --all-containers --tail=-1 --previous > "$ARTIFACTS/pods/$ns.$name.previous.log" 2>/dev/null || true
    done
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then
    collect || true
  fi
  if [ -d "$W/pids" ]; then
    log "cluster memory: $(( $(cluster_rss_kib) / 1024 )) MiB RSS (components, shims and pods)"
  fi
  if [ -n "$REUSE" ]; then
    log "E2E_REUSE: leaving the cluster up (hack/cluster/down.sh stops it)"
  else
    "$HERE/down.sh" 9>&- || rc=1
  fi
  [ "$rc" = 0 ] && log "PASS" || log "FAIL (exit $rc); logs in $ARTIFACTS"
  exit "$rc"
}
# One run at a time on a machine: a second one would tear down the
# cluster under the first. The lock goes with this process; the cluster's
# daemons must not inherit it (9>&- below), or a kept cluster would hold it.
exec 9> /run/lock/uio-e2e.lock
if ! flock -n 9; then
  log "another make test-e2e runs on this machine; waiting for it (up to 30 minutes)"
  flock -w 1800 9 || die "gave up waiting for the other make test-e2e"
fi
trap finish EXIT
trap 'exit 130' INT TERM

[ -n "$REUSE" ] || "$HERE/down.sh" 9>&- # a fresh cluster: nothing left over
# The cluster comes up while the operator, its image and the suite build.
t=$(now)
"$HERE/up.sh" 9>&- > /dev/null &
up_pid=$!
build=$(mktemp -d)
cd "$REPO"
# The binary exactly as the Dockerfile builds it, the image around it,
# and the suite.
build_all() (
  . hack/compile-env.sh
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$build/user-import-operator" ./cmd/user-import-operator &&
    go build -o "$build/image" ./hack/image &&
    "$build/image" -binary "$build/user-import-operator" -ref "$IMAGE" -static-base -user 65532:65532 -cmd manager -out "$build/operator.tar" &&
    go test -c -tags e2e -o "$build/e2e.test" ./test/e2e
)
if ! build_all; then
  kill "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  die "building the operator, its image or the e2e suite failed"
fi
wait "$up_pid" || die "the cluster did not come up (hack/cluster/up.sh); logs: $W/logs"
log "up in $(secs "$t")s (the builds meanwhile)"
version=$("$build/user-import-operator" version)
mkdir -p "$W/images"
mv "$build/operator.tar" "$W/images/operator.tar"
mv "$build/e2e.test" "$W/bin/e2e.test"
rm -rf "$build"
ctr -a "$SOCK" -n k8s.io images import "$W/images/operator.tar" >&2
# A reused cluster may run an older image under the same tag.
kubectl delete deployment -n "$OPERATOR_NS" user-import-operator-controller-manager --ignore-not-found >&2
if [ "${E2E_INSTALL:-}" = chart ]; then
  # The operator as the Helm chart installs it, with the same image.
  log "installing the operator with charts/user-import-operator"
  in_netns "${HELM:-helm}" --kubeconfig "$KUBECONFIG_PATH" upgrade --install user-import-operator charts/user-import-operator \
    --namespace "$OPERATOR_NS" --create-namespace --set image.repository=user-import-operator --set image.tag=e2e --wait --timeout 3m >&2
else
  "$KUSTOMIZE" build test/e2e/config | kubectl apply --server-side --force-conflicts -f - >&2
fi

# The directories the suite imports into (PostgreSQL, SCIM, slapd).
hack/peers/install.sh
t=$(now)
(cd test/e2e && in_netns env KUBECONFIG="$KUBECONFIG_PATH" E2E_IMAGE="$IMAGE" E2E_OPERATOR_VERSION="$version" UIO_REPO_ROOT="$REPO" \
  "${GINKGO:-ginkgo}" --procs="${E2E_PROCS:-3}" -v --no-color --timeout=20m ${E2E_GINKGO_FLAGS:-} "$W/bin/e2e.test")
log "suite passed in $(secs "$t")s"
