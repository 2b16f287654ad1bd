#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster for the e2e tests on this
# machine and prints the path of its admin kubeconfig on stdout.
#
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and kubectl are built from the Go module proxy by
# hack/envtest-assets.sh and cached by version; containerd, runc and the
# CNI plugins come from Debian (installed when missing). Everything runs
# inside the network namespace $UIO_E2E_NETNS (default uio-e2e): nothing
# listens on the machine's own interfaces. Talk to the cluster from inside
# it, e.g.
#
#	nsenter --net=/var/run/netns/uio-e2e kubectl --kubeconfig "$(hack/cluster/up.sh)" get nodes
#
# Running it again while the cluster is up only prints the path; a cluster
# left half-up is torn down and started afresh. hack/cluster/down.sh
# stops it and leaves the machine as it was.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
require_root_linux
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# wait_for SECONDS WHAT COMMAND...: retries COMMAND twice a second.
wait_for() {
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not come up within ${limit}s; logs: $W/logs (hack/cluster/down.sh cleans up)"
}

# --- already up? ------------------------------------------------------------
if [ -d "$W/pids" ] || [ -e "$NETNS_PATH" ]; then
  all_up=true
  for c in "${COMPONENTS_STOP_ORDER[@]}"; do
    pid_of "$c" >/dev/null || { all_up=false; break; }
  done
  if $all_up && in_netns "$W/bin/kubectl" --kubeconfig "$KUBECONFIG_PATH" get --raw /readyz >/dev/null 2>&1; then
    log "the cluster is already up"
    echo "$KUBECONFIG_PATH"
    exit 0
  fi
  log "a cluster is half up (or left over): tearing it down first"
  "$HERE/down.sh" >&2
fi
for d in /sys/fs/cgroup/*/kubepods; do
  [ -d "$d" ] && die "refusing: $d exists, so another kubelet runs (or ran) on this machine"
done

# --- what the machine needs -------------------------------------------------
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables) # kube-proxy's iptables mode
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} from Debian"
  apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
log "Kubernetes binaries (built once from the Go module proxy, then cached)"
BIN=$("$REPO/hack/envtest-assets.sh" cluster)

# --- state, namespace, footprint ---------------------------------------------
[ ! -e "$W" ] || die "refusing: $W exists and is not a cluster of this script; remove it or set UIO_E2E_DIR"
mkdir -p "$W"
touch "$MARKER"
mkdir -p "$W"/{pids,logs,pki,bin,images,etcd,kubelet,pod-logs,cni/net.d,cni/ipam,containerd/opt,runc}
: > "$W/created-paths"
for p in "${FOOTPRINT_PATHS[@]}"; do
  [ -e "$p" ] || echo "$p" >> "$W/created-paths"
done
: > "$W/sysctl.saved"
for s in "${KUBELET_SYSCTLS[@]}"; do
  echo "$s $(cat "/proc/sys/$s")" >> "$W/sysctl.saved"
done
for f in "$BIN"/*; do
  ln -sf "$f" "$W/bin/${f##*/}"
done
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
ip -n "$NETNS" addr add "$ADDR/32" dev lo

# --- certificates ------------------------------------------------------------
P=$W/pki
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
newkey "$P/ca.key"
openssl req -x509 -new -key "$P/ca.key" -subj "/CN=uio-e2e-ca" -days 7 -out "$P/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
# cert NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
cert() {
  local name=$1 subj=$2 eku=$3 sans=${4:-}
  newkey "$P/$name.key"
  openssl req -new -key "$P/$name.key" -subj "$subj" -out "$P/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } > "$P/$name.ext"
  openssl x509 -req -in "$P/$name.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 7 -extfile "$P/$name.ext" -out "$P/$name.crt" 2>/dev/null
  rm -f "$P/$name.csr" "$P/$name.ext"
}
cert kube-apiserver "/CN=kube-apiserver" serverAuth \
  "IP:$ADDR,IP:$SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-serving "/CN=$NODE" serverAuth "IP:$ADDR,DNS:$NODE"
cert admin "/O=system:masters/CN=uio-e2e-admin" clientAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
newkey "$P/sa.key"
openssl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null

kubeconfig() { # NAME: a kubeconfig with the client certificate NAME
  cat > "$W/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: uio-e2e
  cluster:
    server: https://$ADDR:6443
    certificate-authority: $P/ca.crt
users:
- name: $1
  user:
    client-certificate: $P/$1.crt
    client-key: $P/$1.key
contexts:
- name: uio-e2e
  context: {cluster: uio-e2e, user: $1}
current-context: uio-e2e
KC
}
for k in admin kube-controller-manager kube-scheduler kubelet kube-proxy; do kubeconfig "$k"; done

# start NAME COMMAND...: runs a component in the namespace, in a session
# of its own (so that it outlives this script), and records its PID.
# Neither setsid (not a group leader here) nor nsenter fork: $! is the
# component itself.
start() {
  local name=$1
  shift
  setsid nsenter --net="$NETNS_PATH" -- "$@" > "$W/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$W/pids/$name"
}
kubectl() { in_netns "$W/bin/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# --- control plane -------------------------------------------------------------
log "starting etcd"
start etcd "$W/bin/etcd" --name uio-e2e --data-dir "$W/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster uio-e2e=http://127.0.0.1:2380 --listen-metrics-urls '' \
  --unsafe-no-fsync --quota-backend-bytes 1073741824 --log-level warn
wait_for 30 etcd in_netns curl -sf http://127.0.0.1:2379/health

log "starting kube-apiserver"
start kube-apiserver "$W/bin/kube-apiserver" \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address "$ADDR" --advertise-address "$ADDR" --secure-port 6443 \
  --tls-cert-file "$P/kube-apiserver.crt" --tls-private-key-file "$P/kube-apiserver.key" \
  --client-ca-file "$P/ca.crt" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" --kubelet-client-key "$P/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$P/ca.crt" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --profiling=false --event-ttl 30m
wait_for 90 kube-apiserver kubectl get --raw /readyz

log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$W/bin/kube-controller-manager" \
  --kubeconfig "$W/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$W/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$W/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --use-service-account-credentials=true --profiling=false
start kube-scheduler "$W/bin/kube-scheduler" \
  --kubeconfig "$W/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$W/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$W/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false

# --- node ----------------------------------------------------------------------
log "starting containerd"
cat > "$W/containerd/config.toml" <<TOML
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The VM withholds CAP_SYS_RESOURCE: without this runc fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$W/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
TOML
cat > "$W/cni/net.d/10-uio-e2e.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "uio-e2e",
  "plugins": [{
    "type": "bridge",
    "bridge": "$BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "$POD_CIDR"}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": "$W/cni/ipam"
    }
  }]
}
JSON
start containerd containerd --config "$W/containerd/config.toml"
wait_for 30 containerd ctr -a "$SOCK" version

log "building and importing the pause image"
(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$W/images/pause" ./hack/image/pause &&
  go build -o "$W/bin/image" ./hack/image) >&2
"$W/bin/image" -binary "$W/images/pause" -path /pause -ref "$PAUSE_IMAGE" -out "$W/images/pause.tar"
ctr -a "$SOCK" -n k8s.io images import "$W/images/pause.tar" >&2

log "starting kubelet and kube-proxy"
cat > "$W/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ADDR
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Small test machine: evict late, and never collect the imported images,
# which cannot be pulled again.
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
volumePluginDir: $W/kubelet/volume-plugins
podLogsDir: $W/pod-logs
resolvConf: /etc/resolv.conf
maxPods: 30
serializeImagePulls: false
YAML
start kubelet "$W/bin/kubelet" --config "$W/kubelet/config.yaml" \
  --kubeconfig "$W/kubelet.kubeconfig" --root-dir "$W/kubelet" \
  --hostname-override "$NODE" --node-ip "$ADDR"
cat > "$W/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $W/kube-proxy.kubeconfig}
hostnameOverride: $NODE
bindAddress: $ADDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: [primary]
iptables: {localhostNodePorts: false}
# 0 everywhere: kube-proxy leaves the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "$W/bin/kube-proxy" --config "$W/kube-proxy.yaml"

wait_for 120 "node $NODE" kubectl wait --for=condition=Ready "node/$NODE" --timeout=2s
# Pods need their namespace's ServiceAccount before they can be created.
wait_for 60 "the default ServiceAccount" kubectl get serviceaccount default -n default
log "node $NODE Ready $(since)s after start (kubeconfig below; talk to the cluster inside: nsenter --net=$NETNS_PATH ...)"
echo "$KUBECONFIG_PATH"
