#!/usr/bin/env bash
# Builds Mailpit, the SMTP server with an HTTP API to read what arrived,
# for the tests of mail (internal/testpeer/mailpit starts it on 127.0.0.1
# with STARTTLS and SMTP auth). Built once from the Go module proxy and
# cached with the project's other tools; prints nothing when cached.
set -euo pipefail
ver=v1.33.1
cache=${UIO_CACHE:-$HOME/.cache/user-import-operator}/tools
if [ ! -x "$cache/mailpit-$ver" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "install-mailpit: building mailpit $ver (a few minutes, once)" >&2
  "$(dirname "$0")/../build-pinned.sh" "$tmp/mailpit" github.com/axllent/mailpit "$ver"
  mv "$tmp/mailpit" "$cache/mailpit-$ver"
fi
echo "install-mailpit: $cache/mailpit-$ver" >&2
