#!/usr/bin/env bash
# Builds a Go command from the module proxy (a tool, a test server, the
# Kubernetes control plane) in a throwaway module whose dependencies are
# raised to this repository's versions wherever it has newer ones. The
# libraries the command shares with the operator (client-go, the AWS
# SDK, SQLite, x/net, ...) are then the versions the operator's tests
# compile, and their compiled packages come from the Go build cache: a
# cold machine compiles them once instead of once per command. Where the
# command needs a newer version of one, it keeps it (minimal version
# selection only raises).
#
# Usage:
#   hack/build-pinned.sh OUT PACKAGE VERSION  build PACKAGE@VERSION into OUT
#   hack/build-pinned.sh pin DIR [PREFIX...]  raise the requirements of the
#                                             module in DIR, except of the
#                                             modules under a PREFIX (the
#                                             project built, whose own
#                                             versions hold)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=compile-env.sh
. "$REPO/hack/compile-env.sh"

# pin DIR [PREFIX...]
pin() {
  local dir=$1 p
  shift
  local ours theirs args=()
  ours=$(cd "$REPO" && GOFLAGS= go list -m -f '{{if not .Main}}{{if not .Replace}}{{.Path}} {{.Version}}{{end}}{{end}}' all)
  theirs=$(cd "$dir" && GOFLAGS=-mod=mod go list -m -f '{{if not .Main}}{{.Path}}{{end}}' all)
  while read -r path version; do
    for p in "$@"; do
      [[ $path == "$p"* ]] && continue 2
    done
    grep -qxF "$path" <<< "$theirs" && args+=("-require=$path@$version")
  done <<< "$ours"
  [ ${#args[@]} -eq 0 ] || (cd "$dir" && go mod edit "${args[@]}")
}

if [ "${1:-}" = pin ]; then
  shift
  pin "$@"
  exit 0
fi
[ $# -eq 3 ] || { echo "usage: $0 OUT PACKAGE VERSION | $0 pin DIR [PREFIX...]" >&2; exit 2; }
out=$1 pkg=$2 ver=$3
mod=$(mktemp -d)
trap 'rm -rf "$mod"' EXIT
cd "$mod"
export GOFLAGS="$GOFLAGS -mod=mod"
go mod init uio.local/pinned 2> /dev/null
go get "$pkg@$ver" >&2
pin "$mod" "$(go list -f '{{.Module.Path}}' "$pkg")"
go build -o "$out" "$pkg" >&2
