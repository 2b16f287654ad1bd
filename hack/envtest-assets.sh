#!/usr/bin/env bash
# Prints a directory holding etcd and kube-apiserver for envtest
# (KUBEBUILDER_ASSETS), building them from the Go module proxy when
# setup-envtest cannot download its release archives.
#
# The binaries are cached by version under $UIO_CACHE (default
# ~/.cache/user-import-operator) and reused by every later run; a cold
# build takes about 12 minutes on 2 cores, a warm run is instant.
#
# Usage: hack/envtest-assets.sh [component ...]
#   components default to "etcd kube-apiserver"; "kubectl",
#   "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"
#   may be added, and "cluster" names them all (the local cluster of
#   test/e2e uses them).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=compile-env.sh
. "$HERE/compile-env.sh"
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
CACHE=${UIO_CACHE:-$HOME/.cache/user-import-operator}
OUT="$CACHE/k8s/$K8S_VERSION-etcd-$ETCD_VERSION"
components=()
for c in "$@"; do
  case $c in
    cluster) components+=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl) ;;
    *) components+=("$c") ;;
  esac
done
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver)

log() { echo "envtest-assets: $*" >&2; }

missing=()
for c in "${components[@]}"; do
  [ -x "$OUT/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT"
# One build at a time (hack/once.sh): a test run waits for the one that
# hack/prebuild.sh started, and then finds the binaries built.
if [ -z "${UIO_K8S_LOCKED:-}" ]; then
  UIO_K8S_LOCKED=1 exec "$HERE/once.sh" "k8s-$K8S_VERSION-etcd-$ETCD_VERSION" "$0" "$@"
fi

# A laptop with internet access: setup-envtest's archives are the fastest way.
only_envtest=true
for c in "${missing[@]}"; do
  case $c in etcd|kube-apiserver|kubectl) ;; *) only_envtest=false ;; esac
done
if $only_envtest && [ -z "${UIO_BUILD_ENVTEST:-}" ] &&
   curl -sf --max-time 5 -o /dev/null https://raw.githubusercontent.com/kubernetes-sigs/controller-tools/HEAD/envtest-releases.yaml 2>/dev/null; then
  log "downloading envtest ${K8S_VERSION#v} with setup-envtest"
  dir=$(go run sigs.k8s.io/controller-runtime/tools/setup-envtest@release-0.22 use "${K8S_VERSION#v}" --bin-dir "$CACHE/setup-envtest" -p path)
  cp "$dir"/* "$OUT"/
  echo "$OUT"
  exit 0
fi

work="$CACHE/build/k8s-$K8S_VERSION"
mkdir -p "$work"
export GOFLAGS=-mod=mod

build_etcd() {
  local d="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$d"
  log "building etcd $ETCD_VERSION from the Go module proxy (a few minutes)"
  (
    cd "$d"
    cat > go.mod <<MOD
module uio.local/etcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod tidy >&2
    # The libraries etcd shares with the operator at the operator's
    # versions (hack/build-pinned.sh): compiled once, for both. etcd's
    # own modules keep theirs.
    "$HERE/build-pinned.sh" pin . go.etcd.io/
    go mod tidy >&2
    CGO_ENABLED=0 go build -trimpath -o "$OUT/.etcd.tmp" go.etcd.io/etcd/server/v3 >&2
    mv "$OUT/.etcd.tmp" "$OUT/etcd"
  )
}

k8s_module() {
  # The throwaway module that builds k8s.io/kubernetes commands: every
  # staging module that kubernetes' go.mod replaces with a local path is
  # replaced with the published module of the matching v0 version.
  [ -f "$work/go.sum" ] && return 0
  log "preparing a module for k8s.io/kubernetes $K8S_VERSION"
  local staging="v0.${K8S_VERSION#v1.}"
  local modfile
  modfile=$(cd "$work" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "module uio.local/k8sbuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$modfile" | grep -o 'k8s.io/[a-z0-9-]* => \./staging' | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/vishvananda/netlink"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$work" && go mod tidy >&2)
  # The libraries Kubernetes shares with the operator at the operator's
  # versions (hack/build-pinned.sh): compiled once, for both.
  "$HERE/build-pinned.sh" pin "$work" k8s.io/kubernetes
  (cd "$work" && go mod tidy >&2)
}

# build_k8s COMPONENT...: one go build for all of them, so that their
# compiles and links overlap.
build_k8s() {
  k8s_module
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="" c pkgs=()
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building $* $K8S_VERSION from the Go module proxy (several minutes when cold)"
  rm -rf "$OUT/.build"
  mkdir -p "$OUT/.build"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ld" -o "$OUT/.build/" "${pkgs[@]}" >&2)
  # Renamed once whole: whoever checks for one meanwhile never finds half.
  for c in "$@"; do mv "$OUT/.build/$c" "$OUT/$c"; done
  rm -rf "$OUT/.build"
}

# A cold build takes minutes: say so every 30 seconds.
ticker() {
  local what=$1 t0
  t0=$(date +%s)
  while sleep 30; do log "still building $what ($(( $(date +%s) - t0 ))s; about 12 minutes in all on 2 cores when cold)"; done
}

start=$(date +%s)
log "the Kubernetes control plane for tests is not in $OUT yet: building ${missing[*]} once; later runs reuse it"
ticker "${missing[*]}" &
tick=$!
trap 'kill $tick 2>/dev/null' EXIT
k8s=()
for c in "${missing[@]}"; do
  case $c in
    etcd) build_etcd ;;
    *) k8s+=("$c") ;;
  esac
done
[ ${#k8s[@]} -eq 0 ] || build_k8s "${k8s[@]}"
log "built ${missing[*]} in $(( $(date +%s) - start ))s into $OUT"
echo "$OUT"
