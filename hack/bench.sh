#!/usr/bin/env bash
# Benchmarks: hack/bench.sh [engine|ldap|ad|scim|mail|postgres|codes|sources|groups|fleet] (none = all).
# The last line each benchmark prints is "BENCH <name> key=value ...".
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

run() {
  local name=$1
  case $name in
    engine)
      go build -o "$bin/engine" ./hack/bench/engine
      "$bin/engine"
      ;;
    ldap | ad | scim | mail | postgres | codes | sources | groups)
      # The directory benchmarks talk to real servers started by the
      # project's test peers; install them first.
      hack/peers/install.sh
      export UIO_REPO_ROOT=$PWD
      # codes keeps its codes in Secrets of a real API server.
      [ "$name" = codes ] && export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/envtest-assets.sh | tail -n1)}
      go build -o "$bin/$name" "./hack/bench/$name"
      "$bin/$name"
      ;;
    fleet)
      # The manager against a real API server (envtest), at fleet scale.
      export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/envtest-assets.sh | tail -n1)}
      go build -o "$bin/fleet" ./hack/bench/fleet
      "$bin/fleet" ${FLEET_FLAGS:-}
      ;;
    *)
      echo "unknown benchmark $name (engine, ldap, ad, scim, mail, postgres, codes, sources, groups, fleet)" >&2
      return 2
      ;;
  esac
}

if [ $# -eq 0 ]; then
  for b in engine ldap ad scim mail postgres codes sources groups fleet; do run "$b"; done
else
  for b in "$@"; do run "$b"; done
fi
