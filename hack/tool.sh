#!/usr/bin/env bash
# Installs a pinned Go tool into bin/ (as NAME-VERSION) from a cache kept
# outside the repository, so that fresh clones on the same machine do not
# rebuild it.  Usage: hack/tool.sh NAME PACKAGE VERSION DEST
set -euo pipefail
name=$1 pkg=$2 ver=$3 dest=$4
cache=${UIO_CACHE:-$HOME/.cache/user-import-operator}/tools
mkdir -p "$cache" "$(dirname "$dest")"
if [ ! -x "$cache/$name-$ver" ] && [ -z "${UIO_TOOL_LOCKED:-}" ]; then
  # One build of a tool at a time (hack/once.sh); the second finds it built.
  UIO_TOOL_LOCKED=1 exec "$(dirname "$0")/once.sh" "tool-$name-$ver" "$0" "$@"
fi
if [ ! -x "$cache/$name-$ver" ]; then
  # Built beside the cache, then renamed into it: whoever checks for it
  # meanwhile never finds half of it.
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  echo "building $name $ver" >&2
  "$(dirname "$0")/build-pinned.sh" "$tmp/$name" "$pkg" "$ver"
  mv "$tmp/$name" "$cache/$name-$ver"
  rm -rf "$tmp"
fi
# Copied, then renamed: a make that checks for $dest meanwhile never
# finds half of it.
cp "$cache/$name-$ver" "$dest.tmp.$$"
mv "$dest.tmp.$$" "$dest"
