#!/usr/bin/env bash
# Stops the cluster of hack/cluster/up.sh and leaves the machine as it was
# before: the processes it started (by recorded PID), containerd's shims
# and the pods' processes, the mounts under its work directory, the
# kubepods cgroups, the paths and sysctls the components changed, the
# network namespace and the work directory itself. Safe to run when the
# cluster is down or only half up.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
require_root_linux

# stop NAME [GRACE]: SIGTERM, then SIGKILL after GRACE seconds.
stop() {
  local name=$1 grace=${2:-10} pid i
  pid=$(pid_of "$name") || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    [ -d "/proc/$pid" ] || { log "stopped $name ($pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  log "killed $name ($pid) after ${grace}s"
  for ((i = 0; i < 50; i++)); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
}

# kubepods_pids: every process in the kubelet's pod cgroups.
kubepods_pids() {
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

# shim_pids: containerd's shims for this cluster, known by the socket
# path in their command line (they outlive containerd by design).
shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.*-address $SOCK " && echo "${p#/proc/}"
  done
}

if [ ! -d "$W" ] && [ ! -e "$NETNS_PATH" ]; then
  log "no cluster here ($W, $NETNS_PATH)"
  exit 0
fi
[ ! -d "$W" ] || [ -e "$MARKER" ] || die "refusing: $W is not the work directory of a cluster of up.sh"

for c in kubelet kube-proxy kube-scheduler kube-controller-manager; do stop "$c"; done
# The pods' processes, then containerd and its shims.
for i in 1 2 3; do
  pids=$(kubepods_pids)
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.5
done
stop containerd
for i in 1 2 3; do
  pids=$(shim_pids)
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.5
done
# kube-apiserver may wait for its watchers; etcd last.
stop kube-apiserver 10
stop etcd

# Mounts under the work directory (pod volumes, rootfs overlays, the
# pods' network namespaces), deepest first, lazily.
if [ -d "$W" ]; then
  for i in 1 2 3; do
    mounts=$(awk -v w="$W" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -n "$mounts" ] || break
    for m in $mounts; do umount -l "$m" 2>/dev/null; done
  done
fi

for d in /sys/fs/cgroup/*/kubepods; do
  [ -d "$d" ] || continue
  for i in 1 2 3 4 5; do
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$d" ] || break
    sleep 0.5
  done
  [ -d "$d" ] && log "could not remove $d (processes still in it?)"
done

if [ -e "$NETNS_PATH" ]; then
  ip netns del "$NETNS" && log "deleted network namespace $NETNS"
fi

if [ -f "$W/sysctl.saved" ]; then
  while read -r s v; do
    [ "$(cat "/proc/sys/$s")" = "$v" ] || echo "$v" > "/proc/sys/$s"
  done < "$W/sysctl.saved"
fi
if [ -f "$W/created-paths" ]; then
  while read -r p; do
    [ -e "$p" ] || continue
    # /run/netns is a mount point of its own once `ip netns add` made it.
    if [ "$p" = /run/netns ]; then
      [ -z "$(ls -A /run/netns)" ] || continue
      umount /run/netns 2>/dev/null
    fi
    rm -rf "$p"
  done < "$W/created-paths"
fi
rm -rf "$W"
left=$(shim_pids; kubepods_pids)
[ -z "$left" ] || { log "processes left: $left"; exit 1; }
[ ! -d "$W" ] || { log "could not remove $W"; exit 1; }
log "cluster down"
