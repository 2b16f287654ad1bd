#!/usr/bin/env bash
# Installs a pinned Go tool into bin/ (as NAME-VERSION) from a cache kept
# outside the repository, so that fresh clones on the same machine do not
# rebuild it.  Usage: hack/tool.sh NAME PACKAGE VERSION DEST
set -euo pipefail
name=$1 pkg=$2 ver=$3 dest=$4
cache=${UIO_CACHE:-$HOME/.cache/user-import-operator}/tools
mkdir -p "$cache" "$(dirname "$dest")"
if [ ! -x "$cache/$name-$ver" ]; then
  tmp=$(mktemp -d)
  echo "building $name $ver" >&2
  GOBIN=$tmp go install "$pkg@$ver"
  mv "$tmp/$name" "$cache/$name-$ver"
  rm -rf "$tmp"
fi
cp "$cache/$name-$ver" "$dest"
