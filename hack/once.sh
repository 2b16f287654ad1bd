#!/usr/bin/env bash
# hack/once.sh NAME COMMAND...: runs COMMAND holding the lock NAME (a file
# under $UIO_CACHE/locks), so that two runs that would build or install
# the same thing take turns, and the second finds it done: a test run and
# the hack/prebuild.sh that .ci/run starts beside it, or two test runs on
# one machine. COMMAND does not inherit the lock: a server it starts
# cannot keep holding it.
set -euo pipefail
name=$1
shift
dir=${UIO_CACHE:-$HOME/.cache/user-import-operator}/locks
mkdir -p "$dir"
rc=0
flock --nonblock --conflict-exit-code 75 --close "$dir/$name.lock" "$@" || rc=$?
if [ "$rc" = 75 ]; then
  echo "once: waiting for the other run that builds or installs $name" >&2
  exec flock --close "$dir/$name.lock" "$@"
fi
exit "$rc"
