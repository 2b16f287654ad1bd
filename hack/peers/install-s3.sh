#!/usr/bin/env bash
# Builds versitygw, an S3-compatible server that keeps objects as plain
# files (its posix backend), for the tests of the S3 source
# (internal/testpeer/s3server starts it on 127.0.0.1). Built once from the
# Go module proxy and cached with the project's other tools; prints
# nothing new when cached.
set -euo pipefail
ver=v1.8.0
cache=${UIO_CACHE:-$HOME/.cache/user-import-operator}/tools
if [ ! -x "$cache/versitygw-$ver" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "install-s3: building versitygw $ver (about 4 minutes, once)" >&2
  "$(dirname "$0")/../build-pinned.sh" "$tmp/versitygw" github.com/versity/versitygw/cmd/versitygw "$ver"
  mv "$tmp/versitygw" "$cache/versitygw-$ver"
fi
echo "install-s3: $cache/versitygw-$ver" >&2
