#!/usr/bin/env bash
# hack/lowprio.sh COMMAND...: runs COMMAND at the lowest CPU and I/O
# priority, so that it takes only the CPU and disk the other steps leave
# idle. Where the kernel groups processes by session (autogroup), a
# group gets its share whatever the nice of its processes: COMMAND runs
# in a session of its own whose group yields too. Its process group is
# its PID, so `kill -- -PID` stops it and all it started.
set -euo pipefail
if [ "$(ps -o sid= -p $$ | tr -d ' ')" != "$$" ]; then
  exec setsid "$0" "$@"
fi
if [ -w /proc/self/autogroup ]; then
  echo 19 > /proc/self/autogroup || true
fi
exec nice -n 19 ionice -c 3 "$@"
