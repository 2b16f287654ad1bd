# Shared settings of hack/cluster/up.sh and down.sh: sourced, not run.
#
# The cluster lives in a network namespace of its own ($UIO_E2E_NETNS) and
# a work directory ($UIO_E2E_DIR) that down.sh removes again. Inside the
# namespace, lo has a second address ($UIO_E2E_ADDR) that the API server,
# kubelet and kube-proxy bind: pods on the bridge reach it through their
# gateway, whereas the namespace's 127.0.0.1 is out of their reach.

NETNS=${UIO_E2E_NETNS:-uio-e2e}
NETNS_PATH=/var/run/netns/$NETNS
W=${UIO_E2E_DIR:-/var/tmp/uio-e2e}
ADDR=${UIO_E2E_ADDR:-10.250.0.1}
POD_CIDR=${UIO_E2E_POD_CIDR:-10.244.0.0/24}
SERVICE_CIDR=${UIO_E2E_SERVICE_CIDR:-10.96.0.0/24}
SERVICE_IP=${SERVICE_CIDR%.*/*}.1 # the "kubernetes" Service
NODE=uio-e2e-node
BRIDGE=uio0
PAUSE_IMAGE=uio.local/pause:e2e
KUBECONFIG_PATH=$W/admin.kubeconfig
SOCK=$W/containerd/containerd.sock

# Stopped in this order by down.sh; containerd's shims and the pods'
# processes go between containerd and kube-apiserver.
COMPONENTS_STOP_ORDER=(kubelet kube-proxy kube-scheduler kube-controller-manager containerd kube-apiserver etcd)

# Paths outside $W that the components create on first use (containerd
# keeps its shims' sockets under /run/containerd whatever its config says,
# CNI caches results under /var/lib/cni, the kubelet links container logs
# from /var/log/containers). up.sh records which of them did not exist;
# down.sh removes exactly those.
FOOTPRINT_PATHS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/kubernetes /opt/containerd /var/lib/containerd /etc/cni /opt/cni /run/netns /usr/libexec/kubernetes)

# Host-wide sysctls the kubelet sets at start (setupKernelTunables);
# up.sh saves them and down.sh puts them back.
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

case $W in /*/*) ;; *) echo "UIO_E2E_DIR must be an absolute path below /, not '$W'" >&2; exit 1 ;; esac
# Written by up.sh: down.sh deletes $W only when it carries it.
MARKER=$W/.uio-e2e-cluster

log() { echo "$(basename "$0"): $*" >&2; }
die() { log "$*"; exit 1; }

require_root_linux() {
  [ "$(uname -s)" = Linux ] || die "refusing: the local cluster needs Linux (namespaces, cgroups, containerd); this is $(uname -s)"
  [ "$(id -u)" = 0 ] || die "refusing: the local cluster needs root (network namespace, mounts, cgroups); run it with sudo"
}

# in_netns runs a command inside the cluster's network namespace. nsenter
# only switches the network namespace: `ip netns exec` would also remount
# /sys, and the kubelet then finds no cgroup mounts.
in_netns() { nsenter --net="$NETNS_PATH" -- "$@"; }

# pid_of NAME prints the recorded PID of a component when that process is
# still the component (a recycled PID is not).
pid_of() {
  local f=$W/pids/$1 pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$1" || return 1
  echo "$pid"
}

# cluster_rss_kib prints the resident memory, in KiB, of every process of
# the cluster: the components, containerd's shims and the pods.
cluster_rss_kib() {
  local pids=() c p
  for c in "${COMPONENTS_STOP_ORDER[@]}"; do
    p=$(pid_of "$c") && pids+=("$p")
  done
  for p in /proc/[0-9]*; do
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.*-address $SOCK " && pids+=("${p#/proc/}")
  done
  pids+=($(find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null))
  for p in $(printf '%s\n' "${pids[@]}" | sort -un); do
    awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null
  done | awk '{s += $1} END {print s + 0}'
}
