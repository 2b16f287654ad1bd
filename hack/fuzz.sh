#!/usr/bin/env bash
# Gives each fuzz target of internal/ a short run: FUZZTIME (default
# 20000x: that many inputs) each. A count rather than a duration: Go
# 1.26's fuzzer may fail a duration-bound run with "context deadline
# exceeded" as it ends (golang/go#75804).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20000x}
grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u | while read -r pkg; do
  for target in $(grep -h '^func Fuzz' "$pkg"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    echo "fuzz: $pkg $target for $FUZZTIME"
    go test -run='^$' -fuzz="^$target\$" -fuzztime="$FUZZTIME" "./$pkg"
  done
done
