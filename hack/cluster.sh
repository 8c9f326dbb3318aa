#!/usr/bin/env bash
# hack/cluster.sh - a real single-node Kubernetes cluster on this machine, for
# the tests in tests/cluster and for developers: no Docker, no registry, no
# kubeadm, and nothing that leaves the machine.
#
#   hack/cluster.sh build        build what is missing into the cache (once: ~20 min on 2 cores)
#   hack/cluster.sh up           build if needed, start the node (seconds), print the env lines
#   hack/cluster.sh images       build the project's four images from build/*.Dockerfile and load them
#   hack/cluster.sh load X.tar   import image tarballs into the node's containerd
#   hack/cluster.sh status       what runs, with RSS; exit 0 when the node is Ready
#   hack/cluster.sh env          print KUBECONFIG=..., KUBECTL=..., NODE_IP=..., HELM=...
#   hack/cluster.sh keda on|off  KEDA serves the external metrics API (or no longer)
#   hack/cluster.sh down         stop everything by PID and leave the host as it was
#
# See `hack/cluster.sh help` and docs/kubernetes.md ("The test bed").
set -euo pipefail

readonly KUBE_VERSION=v1.37.2
readonly COREDNS_VERSION=v1.15.0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
REPO=$(cd "$HERE/.." && pwd)
readonly REPO
readonly CACHE=${PLAYPULSE_CACHE:-${HOME:?HOME or PLAYPULSE_CACHE must be set}/.cache/playpulse}
readonly BASE=$CACHE/cluster
readonly S=${PLAYPULSE_CLUSTER_DIR:-$BASE/state} # all run-time state
readonly R=$S/run L=$S/logs P=$S/pki
readonly IMAGES=$BASE/images # what the node itself runs: pause, CoreDNS
# The nice level of every process the node runs (and so of containerd's
# shims). 0 by default: the node is what tests/cluster times (a rate patched
# into a Deployment must reach the producers within 15 s), and at nice 19 it
# got a sliver of the CPU beside make test's other lanes, which run at 0 in
# the same session (autogroup), so a rollout took more than 15 s in CI.
# The pods themselves run in the kubepods cgroup, whose share the nice level
# does not change. 19 keeps a developer's machine responsive.
readonly NICE=${PLAYPULSE_CLUSTER_NICE:-0}
if ! [[ $NICE =~ ^[0-9]+$ ]] || ((NICE > 19)); then
  echo "PLAYPULSE_CLUSTER_NICE: $NICE is not a nice level from 0 to 19" >&2
  exit 2
fi
# What "down" compares the host with: written by "up" before its first change.
readonly BEFORE=$S/host.before

# The node's address: a /32 on lo, not an address of the machine's own
# interfaces, so that nothing the cluster serves listens on the network the
# machine is on (and a guard chain drops what arrives for it from anywhere
# but lo and the pods' bridge). Pods reach it through the bridge gateway
# (their route to NODE_IP/32).
readonly NODE_IP=${PLAYPULSE_NODE_IP:-10.250.0.1}
readonly NODE_NAME=playpulse-node
readonly BRIDGE=pp0
readonly POD_CIDR=10.244.0.0/24 CLUSTER_CIDR=10.244.0.0/16
readonly SVC_CIDR=10.96.0.0/24 SVC_API_IP=10.96.0.1 DNS_IP=10.96.0.10
readonly GUARD_IN=PLAYPULSE-NODE-IN GUARD_FWD=PLAYPULSE-NODE-FWD
readonly KUBECONFIG=$S/kubeconfig
export KUBECONFIG

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
ms() { date +%s%3N; }

usage() {
  cat <<EOF
Usage: hack/cluster.sh COMMAND

A single-node Kubernetes $KUBE_VERSION cluster (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet, kube-proxy in iptables
mode, CoreDNS $COREDNS_VERSION) on Debian's containerd, runc and bridge CNI,
running images that were imported, never pulled, with an external metrics
API for HPAs (Debian's Prometheus on $PROM_ADDR scraping annotated pods,
prometheus-adapter). Needs root.

Commands:
  build         Build what is missing, cached in $BASE:
                kubelet, kube-controller-manager, kube-scheduler, kube-proxy
                (hack/envtest/kube, the module envtest's kube-apiserver comes
                from), CoreDNS (hack/cluster/coredns), the pod sandbox
                (hack/cluster/pause), prometheus-adapter (hack/cluster/adapter),
                KEDA (hack/cluster/keda) and the image tool (tools/imagebuild);
                kube-apiserver, kubectl and etcd come from hack/envtest.sh.
                Installs the apt packages it needs when they are missing.
  up            build, then start everything (idempotent: a healthy node is
                left as it is, a broken one is taken down first). On failure,
                everything it started is stopped again. Prints the env lines.
  images [TAG]  Build producer, fanout, controller and collector from build/*.Dockerfile
                without Docker (tools/imagebuild), as
                localhost/playpulse/<name>:TAG (default dev), load them into
                the node and print the helm flags that use them.
  load TAR...   Import docker-save tarballs into the node's containerd.
  status        Every process with its RSS; exit 0 when the node is Ready.
  env           KUBECONFIG=, KUBECTL=, HELM=, NODE_IP=, NODE_NAME=, PROMETHEUS_URL= ... lines.
  down [--if-owner NAME]
                Delete the workloads (so the kubelet tears pods down), stop
                every process by PID, remove the iptables chains, bridge,
                mounts, cgroups and host directories the cluster made, put
                back every sysctl that changed, then compare the host with the
                state "up" recorded before it changed anything: exit 3 and
                print the difference when they differ. With --if-owner, only
                a cluster that "up" started with PLAYPULSE_CLUSTER_OWNER=NAME
                (the tests use this, so a developer's cluster is left running).
  keda on|off   Install KEDA (its CRDs, operator and metrics server, built from
                hack/cluster/keda) and make it serve the external metrics API
                instead of prometheus-adapter, or remove it again. down
                stops it too.
  host-state    Print the host state that up records and down compares.

Environment:
  PLAYPULSE_CACHE          cache root (default \$HOME/.cache/playpulse)
  PLAYPULSE_CLUSTER_DIR    run-time state (default \$PLAYPULSE_CACHE/cluster/state)
  PLAYPULSE_CLUSTER_OWNER  recorded by up (default: manual)
  PLAYPULSE_NODE_IP        the node's address, added to lo (default 10.250.0.1)
  PLAYPULSE_CLUSTER_NICE   nice level of the node's processes, 0 to 19 (default 0)
EOF
}

# ---------------------------------------------------------------- build ---

apt_packages() {
  local need=() p
  for p in containerd runc containernetworking-plugins iptables nftables conntrack openssl iproute2 prometheus curl; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || need+=("$p")
  done
  ((${#need[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "missing apt packages ${need[*]}; run as root"
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

# Version stamps exactly as hack/envtest.sh sets them (helm checks a chart's
# kubeVersion against the server, and the kubelet reports its version).
kube_ldflags() {
  local v=${KUBE_VERSION#v} p out="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$v") -X $p.gitTreeState=clean"
  done
  echo "$out"
}

fp() { cat "$@" | sha256sum | cut -c1-16; }

# build_module DIR OUT LDFLAGS PKG...: go build PKGs of the helper module DIR
# into OUT (a cache directory named by the fingerprint of what decides the
# build), once.
build_module() {
  local dir=$1 out=$2 ldflags=$3
  shift 3
  [[ -f $out/.complete ]] && return 0
  log "building $* from $dir into $out (cached afterwards)"
  local t=$SECONDS tmp
  tmp=$(mktemp -d "$BASE/.build.XXXXXX")
  (cd "$dir" && GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    nice -n 19 go build -trimpath -ldflags="$ldflags" -o "$tmp/" "$@") || {
    rm -rf "$tmp"
    die "build in $dir failed"
  }
  mkdir -p "$out" && mv "$tmp"/* "$out/" && rmdir "$tmp" && touch "$out/.complete"
  log "built $* in $((SECONDS - t)) s"
}

NODE_BIN="" COREDNS_BIN="" PAUSE_BIN="" ADAPTER_BIN="" KEDA_BIN="" IMGTOOL="" ENVTEST_BIN=""
paths() {
  NODE_BIN=$BASE/kube-$KUBE_VERSION-$(fp "$REPO/hack/envtest/kube/go.mod" "$REPO/hack/envtest/kube/go.sum" <(kube_ldflags))
  COREDNS_BIN=$BASE/coredns-$COREDNS_VERSION-$(fp "$HERE/cluster/coredns/go.mod" "$HERE/cluster/coredns/go.sum" "$HERE/cluster/coredns/main.go")
  PAUSE_BIN=$BASE/pause-$(fp "$HERE/cluster/pause/go.mod" "$HERE/cluster/pause/main.go")
  ADAPTER_BIN=$BASE/prometheus-adapter-$(fp "$HERE/cluster/adapter/go.mod" "$HERE/cluster/adapter/go.sum")
  KEDA_BIN=$BASE/keda-$(fp "$HERE/cluster/keda/go.mod" "$HERE/cluster/keda/go.sum")
  IMGTOOL=$BASE/imagebuild-$(cd "$REPO" && fp go.work tools/go.mod tools/go.sum tools/imagebuild/*.go tools/image/*.go)
}

# envtest_bin sets ENVTEST_BIN: kube-apiserver, kubectl and etcd.
envtest_bin() {
  [[ -n $ENVTEST_BIN ]] || ENVTEST_BIN=$("$REPO/hack/envtest.sh" | tail -1) || return 1
  [[ -x $ENVTEST_BIN/kube-apiserver ]] || {
    log "hack/envtest.sh gave no binaries"
    return 1
  }
}

cmd_build() {
  mkdir -p "$BASE"
  apt_packages
  exec 9>"$BASE/.build.lock"
  flock 9
  envtest_bin || die "hack/envtest.sh failed"
  paths
  build_module "$REPO/hack/envtest/kube" "$NODE_BIN" "$(kube_ldflags)" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
  build_module "$HERE/cluster/coredns" "$COREDNS_BIN" "-s -w" .
  build_module "$HERE/cluster/pause" "$PAUSE_BIN" "-s -w" .
  build_module "$HERE/cluster/adapter" "$ADAPTER_BIN" "-s -w" sigs.k8s.io/prometheus-adapter/cmd/adapter
  build_module "$HERE/cluster/keda" "$KEDA_BIN" "-s -w" github.com/kedacore/keda/v2/cmd/operator github.com/kedacore/keda/v2/cmd/adapter
  if [[ ! -f $KEDA_BIN/crds/.complete ]]; then
    # KEDA's CRDs, from the same module version as its binaries.
    local src
    src=$(cd "$HERE/cluster/keda" && GOWORK=off GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2) ||
      die "go list of KEDA's module failed"
    mkdir -p "$KEDA_BIN/crds" && cp "$src"/config/crd/bases/*.yaml "$KEDA_BIN/crds/" && touch "$KEDA_BIN/crds/.complete"
  fi
  if [[ ! -x $IMGTOOL/imagebuild ]]; then
    (cd "$REPO" && CGO_ENABLED=0 nice -n 19 go build -trimpath -o "$IMGTOOL/imagebuild" ./tools/imagebuild) ||
      die "build of tools/imagebuild failed"
  fi
  mkdir -p "$IMAGES"
  # The images the node itself runs. CoreDNS runs as a non-root user on an
  # unprivileged port (the Service maps 53 to it).
  pack "$PAUSE_BIN/pause" localhost/playpulse-testbed/pause:1 "$IMAGES/pause.tar"
  pack "$COREDNS_BIN/coredns" "localhost/playpulse-testbed/coredns:${COREDNS_VERSION#v}" "$IMAGES/coredns.tar"
  exec 9>&-
  echo "$NODE_BIN"
}

pack() { # binary ref tarball: rebuilt only when the binary is newer
  [[ -f $3 && $3 -nt $1 ]] && return 0
  "$IMGTOOL/imagebuild" -bin "$1" -t "$2" -o "$3" >/dev/null
}

# ------------------------------------------------------------ host state ---

# Kernel values that change by themselves: never compared.
readonly VOLATILE_SYSCTL='^(fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\.)|kernel\.(ns_last_pid|random\.|pty\.nr)|net\.netfilter\.nf_conntrack_count)'
readonly HOST_DIRS=(/run/containerd /run/netns /var/lib/cni /var/lib/kubelet /var/log/containers /var/log/pods /etc/cni /etc/kubernetes /opt/cni)

# host_state prints, normalised, everything of the host the cluster could
# change: addresses, links, routes, firewall rules, mounts, cgroups, network
# namespaces, directories, sysctls and processes.
host_state() {
  echo "## addresses"
  ip -o addr show | sed -E 's/^[0-9]+: //; s/\\ +valid_lft.*//' | sort
  echo "## links"
  ip -o link show | awk -F': ' '{print $2}' | sort
  echo "## routes"
  { ip route show table all; ip -6 route show table all; } | sed -E 's/ expires [0-9]+sec//' | sort
  echo "## rules"
  ip rule show
  echo "## nft"
  nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
  echo "## mounts"
  awk '{print $2, $3}' /proc/self/mounts | sort
  echo "## cgroups"
  find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d 2>/dev/null | sort
  echo "## netns"
  ls /run/netns 2>/dev/null || true
  echo "## dirs"
  local d
  for d in "${HOST_DIRS[@]}"; do [[ -e $d ]] && echo "$d"; done
  echo "## sysctl"
  sysctl -a 2>/dev/null | grep -Ev "$VOLATILE_SYSCTL" | sort
  echo "## processes"
  # The cluster's own (their command line names its state directory) and
  # whatever runs in a pod's cgroup.
  local p
  for p in /proc/[0-9]*; do
    if [[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *"$S/"* ]] || grep -qE ':/(kubepods|k8s\.io)' "$p/cgroup" 2>/dev/null; then
      cat "$p/comm" 2>/dev/null
    fi
  done | sort | uniq -c
}

# restore_sysctls puts back every sysctl that differs from the record (the
# kubelet sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops and
# kernel.keys.*; the bridge plugin turns on net.ipv4.ip_forward). Twice,
# because writing ip_forward rewrites the per-interface forwarding values.
restore_sysctls() {
  [[ -f $BEFORE ]] || return 0
  local pass key val
  for pass in 1 2; do
    while IFS= read -r line; do
      key=${line%% = *} val=${line#* = }
      [[ $(sysctl -n "$key" 2>/dev/null | tr '\t' ' ') == "$(tr '\t' ' ' <<<"$val")" ]] && continue
      sysctl -qw "$key=$val" 2>/dev/null || true
    done < <(sed -n '/^## sysctl$/,/^## /p' "$BEFORE" | grep ' = ')
    : "$pass"
  done
}

# ------------------------------------------------------------------- up ---

pidof_name() {
  local f=$R/$1.pid
  [[ -f $f ]] && cat "$f"
}
alive() {
  local p
  p=$(pidof_name "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null
}

# start NAME [--isolated] CMD...: run in the background at $NICE, PID in $R.
# --isolated runs it in a mount namespace of its own whose /etc/resolv.conf
# names no server, so that the control plane cannot resolve a name through
# the machine's resolver even by mistake. The kubelet and containerd stay in
# the host's mount namespace, which they share with the pods' mounts; neither
# resolves anything (the API server is reached by address, images are never
# pulled) and pods get an empty resolv.conf from the kubelet.
start() {
  local n=$1
  shift
  local iso=0
  if [[ ${1:-} == --isolated ]]; then
    iso=1
    shift
  fi
  if ((iso)); then
    (exec nice -n "$NICE" unshare --mount --propagation private \
      sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$S/etc/resolv.conf" "$@" >>"$L/$n.log" 2>&1) &
  else
    (exec nice -n "$NICE" "$@" >>"$L/$n.log" 2>&1) &
  fi
  echo $! >"$R/$n.pid"
}

waitfor() { # what timeout-seconds cmd...
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || {
      log "timeout after ${secs}s waiting for $what; logs in $L"
      return 1
    }
    sleep 0.2
  done
}

k() { "$ENVTEST_BIN/kubectl" "$@"; }

pki() {
  [[ -f $P/tokens.csv && -f $P/front-proxy-client.crt && -f $KUBECONFIG ]] && grep -q "$NODE_IP" "$P/san.ext" 2>/dev/null && return 0
  rm -rf "$P"
  mkdir -p "$P"
  (
    cd "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=playpulse-testbed-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' "$NODE_IP" "$SVC_API_IP" >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile san.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo "$(openssl rand -hex 16),admin,admin-uid,system:masters" >tokens.csv
    # The aggregation layer: the apiserver proxies external.metrics.k8s.io
    # to the metrics adapter with this client certificate, and the adapter
    # trusts the user it names in X-Remote-User because of this CA.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj /CN=playpulse-testbed-front-proxy-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr -subj /CN=front-proxy-client 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >front-proxy.ext
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial -out front-proxy-client.crt -days 3650 -extfile front-proxy.ext 2>/dev/null
  )
  cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: playpulse-testbed, cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$P/ca.crt"}}]
users: [{name: admin, user: {token: "$(cut -d, -f1 "$P/tokens.csv")"}}]
contexts: [{name: playpulse-testbed, context: {cluster: playpulse-testbed, user: admin}}]
current-context: playpulse-testbed
EOF
}

configs() {
  mkdir -p "$S/containerd" "$S/cni/net.d" "$S/etc"
  printf '# playpulse test bed: no name server, on purpose\noptions timeout:1 attempts:1\n' >"$S/etc/resolv.conf"
  : >"$S/etc/resolv-pods.conf"
  cat >"$S/containerd/config.toml" <<EOF
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
[grpc]
  address = "$S/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/playpulse-testbed/pause:1"
  # This machine's root lacks CAP_SYS_RESOURCE, so runc cannot lower
  # oom_score_adj (the kubelet asks -998 for sandboxes): clamp it instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
EOF
  # No default route in pods: they reach the service range and the node only.
  cat >"$S/cni/net.d/10-playpulse.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "playpulse", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
            "routes": [{"dst": "$SVC_CIDR"}, {"dst": "$NODE_IP/32"}]}}]}
EOF
  cat >"$S/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false          # 1.35+ refuses cgroup v1 hosts otherwise
failSwapOn: false
cgroupDriver: cgroupfs       # no systemd here; containerd 1.6 lacks the RuntimeConfig RPC
containerRuntimeEndpoint: unix://$S/containerd/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
podLogsDir: $S/podlogs
resolvConf: "$S/etc/resolv-pods.conf"   # empty: pods inherit no name server of the machine's
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
maxPods: 60
serializeImagePulls: false
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 100   # never delete an imported image: it cannot be pulled again
EOF
  cat >"$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the host's conntrack sysctls as they are.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$NODE_IP/32"]
EOF
}

coredns_manifest() { # cluster names only: no forward plugin, so no upstream is ever asked
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: coredns
        image: localhost/playpulse-testbed/coredns:${COREDNS_VERSION#v}
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        ports: [{containerPort: 1053, protocol: UDP, name: dns}, {containerPort: 1053, protocol: TCP, name: dns-tcp}]
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 1}
        livenessProbe: {httpGet: {path: /health, port: 8080}}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        resources: {requests: {cpu: 20m, memory: 40Mi}, limits: {memory: 170Mi}}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports: [{name: dns, port: 53, targetPort: 1053, protocol: UDP}, {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}]
EOF
}

# guard adds (or, with -D, removes) the chains that keep the cluster on this
# machine: nothing from the pods is forwarded anywhere but back into their
# bridge, nothing from another interface is forwarded to them, and the node
# address answers only on lo and the bridge (Linux would otherwise answer
# for it on every interface).
guard() {
  if [[ ${1:-} == -D ]]; then
    iptables -D INPUT -d "$NODE_IP/32" -j "$GUARD_IN" 2>/dev/null || true
    iptables -D FORWARD -j "$GUARD_FWD" 2>/dev/null || true
    iptables -F "$GUARD_IN" 2>/dev/null || true
    iptables -X "$GUARD_IN" 2>/dev/null || true
    iptables -F "$GUARD_FWD" 2>/dev/null || true
    iptables -X "$GUARD_FWD" 2>/dev/null || true
    local ipt
    for ipt in iptables ip6tables; do $ipt -D INPUT -p tcp --dport $KEDA_METRICS_PORT ! -i lo -j DROP 2>/dev/null || true; done
    return 0
  fi
  guard -D
  iptables -N "$GUARD_IN"
  iptables -A "$GUARD_IN" -i lo -j RETURN
  iptables -A "$GUARD_IN" -i "$BRIDGE" -j RETURN
  iptables -A "$GUARD_IN" -j DROP
  iptables -I INPUT 1 -d "$NODE_IP/32" -j "$GUARD_IN"
  iptables -N "$GUARD_FWD"
  iptables -A "$GUARD_FWD" -s "$CLUSTER_CIDR" ! -o "$BRIDGE" -j DROP
  iptables -A "$GUARD_FWD" -d "$CLUSTER_CIDR" ! -i "$BRIDGE" -j DROP
  iptables -I FORWARD 1 -j "$GUARD_FWD"
  # KEDA's metrics server serves its own /metrics on every address (it
  # takes a port, not an address): only this machine may reach it.
  local ipt
  for ipt in iptables ip6tables; do $ipt -I INPUT 1 -p tcp --dport $KEDA_METRICS_PORT ! -i lo -j DROP; done
}

healthy() {
  local n
  for n in containerd etcd apiserver controller-manager scheduler kubelet kube-proxy pod-targets prometheus metrics-adapter; do alive "$n" || return 1; done
  [[ $(k get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

cmd_up() {
  [[ $(id -u) -eq 0 ]] || die "up needs root (containerd, kubelet, iptables, mounts)"
  cmd_build >/dev/null
  paths
  mkdir -p "$R" "$L"
  if [[ -f $R/owner ]] && healthy; then
    log "already up (owner $(cat "$R/owner"))"
    cmd_env
    return 0
  fi
  if ls "$R"/*.pid >/dev/null 2>&1; then
    log "a previous cluster is partly running: taking it down first"
    cmd_down || log "(the host differed after that down; up goes on)"
    mkdir -p "$R" "$L"
  fi
  # Whatever makes up fail from here on (a timeout, a die), what it started
  # is stopped again.
  trap 'rc=$?; if ((rc != 0)); then log "up failed: stopping what it started"; cmd_down >&2 || true; fi' EXIT
  [[ -f $BEFORE ]] || host_state >"$BEFORE"
  echo "${PLAYPULSE_CLUSTER_OWNER:-manual}" >"$R/owner"
  pki
  configs
  # A fresh cluster each time: no objects, IP allocations or pod dirs from
  # the last run (the image store stays: imports are content-addressed).
  rm -rf "$S/etcd-data" "$S/kubelet" "$S/podlogs" "$S/cni/ipam" "$S/prometheus" "$S/adapter"
  mkdir -p "$S/podlogs"
  : >"$L/times"

  local t0 up
  t0=$(ms)
  [[ $(ip -4 -o addr show dev lo) == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/32" dev lo
  guard

  start containerd containerd --config "$S/containerd/config.toml"
  waitfor containerd 30 ctr --address "$S/containerd/containerd.sock" version
  cmd_load "$IMAGES"/*.tar
  echo "containerd+images $(($(ms) - t0)) ms" >>"$L/times"

  start etcd --isolated "$ENVTEST_BIN/etcd" --name testbed --data-dir "$S/etcd-data" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster testbed=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810 \
    --unsafe-no-fsync
  start apiserver --isolated "$ENVTEST_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
    --token-auth-file="$P/tokens.csv" --authorization-mode=RBAC --service-cluster-ip-range=$SVC_CIDR \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --allow-privileged=false --cert-dir="$P/generated" --kubelet-preferred-address-types=InternalIP --profiling=false \
    --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- --proxy-client-cert-file="$P/front-proxy-client.crt" \
    --proxy-client-key-file="$P/front-proxy-client.key" --enable-aggregator-routing=true
  waitfor apiserver 90 k get --raw /readyz
  echo "apiserver-ready $(($(ms) - t0)) ms" >>"$L/times"
  start controller-manager --isolated "$NODE_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" --leader-elect=false \
    --bind-address=127.0.0.1 --allocate-node-cidrs=true --cluster-cidr=$CLUSTER_CIDR --node-cidr-mask-size=24 \
    --service-cluster-ip-range=$SVC_CIDR --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --use-service-account-credentials=true
  start scheduler --isolated "$NODE_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --authentication-kubeconfig="$KUBECONFIG" \
    --authorization-kubeconfig="$KUBECONFIG" --leader-elect=false --bind-address=127.0.0.1
  start kubelet "$NODE_BIN/kubelet" --config="$S/kubelet-config.yaml" --kubeconfig="$KUBECONFIG" \
    --root-dir="$S/kubelet" --cert-dir="$S/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
  start kube-proxy --isolated "$NODE_BIN/kube-proxy" --config="$S/kube-proxy.yaml"
  waitfor node-ready 90 sh -c "'$ENVTEST_BIN/kubectl' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  echo "node-ready $(($(ms) - t0)) ms" >>"$L/times"
  waitfor default-serviceaccount 60 k -n default get serviceaccount default
  coredns_manifest | k apply -f - >/dev/null
  k -n kube-system rollout status deploy/coredns --timeout=90s >/dev/null
  echo "coredns-ready $(($(ms) - t0)) ms" >>"$L/times"
  metrics_up
  up=$(($(ms) - t0))
  echo "external-metrics-ready $up ms" >>"$L/times"
  trap - EXIT
  log "up in $up ms ($(tr '\n' ';' <"$L/times"))"
  cmd_env
}

cmd_load() {
  local f
  for f in "$@"; do
    [[ -f $f ]] || die "load: no such file $f"
    ctr --address "$S/containerd/containerd.sock" -n k8s.io images import "$f" >/dev/null ||
      die "ctr import $f failed"
  done
}

cmd_images() {
  local tag=${1:-dev} out=$BASE/project-images svc version revision
  healthy_or_die
  mkdir -p "$out"
  version=$(cd "$REPO" && git describe --tags --always --dirty 2>/dev/null || echo dev)
  revision=$(cd "$REPO" && git rev-parse HEAD 2>/dev/null || echo unknown)
  for svc in producer fanout controller collector; do
    (cd "$REPO" && "$IMGTOOL/imagebuild" -f "build/$svc.Dockerfile" -t "localhost/playpulse/$svc:$tag" \
      -build-arg "VERSION=$version" -build-arg "REVISION=$revision" -o "$out/$svc.tar" >&2) ||
      die "image $svc failed"
    cmd_load "$out/$svc.tar"
  done
  echo "--set image.registry=localhost --set image.tag=$tag --set image.pullPolicy=Never"
}

healthy_or_die() {
  envtest_bin || die "hack/envtest.sh failed"
  paths
  healthy || die "the node is not up: run hack/cluster.sh up"
}

cmd_env() {
  paths
  envtest_bin || die "hack/envtest.sh failed"
  echo "KUBECONFIG=$KUBECONFIG"
  echo "KUBECTL=$ENVTEST_BIN/kubectl"
  echo "HELM=$("$REPO/hack/helm.sh" --path 2>/dev/null | tail -1)"
  echo "NODE_IP=$NODE_IP"
  echo "NODE_NAME=$NODE_NAME"
  echo "CONTAINERD_SOCK=$S/containerd/containerd.sock"
  echo "CLUSTER_STATE=$S"
  echo "CLUSTER_LOGS=$L"
  echo "PROMETHEUS_URL=http://$PROM_ADDR"
}

cmd_status() {
  local f n p up=0
  for f in "$R"/*.pid; do
    [[ -f $f ]] || continue
    n=$(basename "$f" .pid) p=$(cat "$f")
    printf '%-20s pid=%-7s rss=%s kB\n' "$n" "$p" "$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo gone)"
  done
  envtest_bin && healthy && up=1
  if ((up)); then echo "node $NODE_NAME Ready (owner $(cat "$R/owner" 2>/dev/null))"; else echo "not up"; fi
  ((up))
}

# ------------------------------------------------------- external metrics ---

# What a cluster's HPA needs for an External metric, as users commonly run
# it: Prometheus (Debian's) scraping every pod annotated prometheus.io/scrape
# (the chart's metrics.scrapeAnnotations; Debian builds Prometheus without
# Kubernetes service discovery, so hack/cluster/pod-targets.sh lists them for
# it every 2 s), and prometheus-adapter
# (hack/cluster/adapter) serving external.metrics.k8s.io from it through the
# apiserver's aggregation layer, with the rules of
# hack/cluster/adapter/rules.yaml: docs/operations.md's rule for the
# aggregators' lag. Both are host processes on local addresses only:
# Prometheus on $PROM_ADDR (the tests query it), the adapter on the node's
# address, reached by the apiserver through a selectorless Service. The
# adapter relists series every 5 s but keeps those seen in the last minute,
# so that a missed scrape does not make the metric vanish for the HPA.
readonly PROM_ADDR=127.0.0.1:29090 ADAPTER_PORT=26443

prometheus_config() {
  cat <<EOF
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: pods
    file_sd_configs: [{files: ["$S/prometheus-targets.json"], refresh_interval: 5s}]
EOF
}

# host_service NAME PORT: a Service in kube-system for a host process
# listening on the node's address (a selectorless Service and its
# EndpointSlice), which an APIService can name.
host_service() {
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: $2}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $1
  namespace: kube-system
  labels: {kubernetes.io/service-name: $1}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports: [{name: https, port: $2, protocol: TCP}]
EOF
}

metrics_manifest() {
  host_service playpulse-testbed-metrics-adapter $ADAPTER_PORT
  cat <<EOF
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  service: {name: playpulse-testbed-metrics-adapter, namespace: kube-system, port: 443}
  group: external.metrics.k8s.io
  version: v1beta1
  # The adapter's certificate is self-signed (its --cert-dir).
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
}

metrics_up() {
  mkdir -p "$S/prometheus" "$S/adapter"
  prometheus_config >"$S/prometheus.yml"
  echo '[]' >"$S/prometheus-targets.json"
  start pod-targets --isolated env KUBECONFIG="$KUBECONFIG" "$HERE/cluster/pod-targets.sh" "$ENVTEST_BIN/kubectl" "$S/prometheus-targets.json"
  start prometheus --isolated prometheus --config.file="$S/prometheus.yml" --storage.tsdb.path="$S/prometheus" \
    --storage.tsdb.retention.time=2h --web.listen-address="$PROM_ADDR"
  start metrics-adapter --isolated "$ADAPTER_BIN/adapter" --bind-address="$NODE_IP" --secure-port=$ADAPTER_PORT \
    --cert-dir="$S/adapter" --lister-kubeconfig="$KUBECONFIG" --authentication-kubeconfig="$KUBECONFIG" \
    --authorization-kubeconfig="$KUBECONFIG" --prometheus-url="http://$PROM_ADDR/" \
    --config="$HERE/cluster/adapter/rules.yaml" --metrics-relist-interval=5s --metrics-max-age=1m
  metrics_manifest | k apply -f - >/dev/null
  waitfor prometheus 30 curl -sf "http://$PROM_ADDR/-/ready"
  waitfor external-metrics 60 k get --raw /apis/external.metrics.k8s.io/v1beta1
}

# ------------------------------------------------------------------ KEDA ---

# KEDA, for the chart's other scaler: "keda on" installs KEDA's CRDs, starts
# its operator and its metrics server (hack/cluster/keda: both built from
# github.com/kedacore/keda/v2, host processes on local addresses like the
# adapter) and points v1beta1.external.metrics.k8s.io at KEDA's metrics
# server, which is what installing KEDA does to a cluster: there is one
# external metrics API. "keda off" puts everything back (prometheus-adapter
# keeps running meanwhile). The operator reads Kafka itself (its Kafka
# scaler); the metrics server asks the operator over gRPC with mutual TLS,
# here with a certificate of the bed's CA for 127.0.0.1 (KEDA generates one
# in a cluster).
readonly KEDA_GRPC=127.0.0.1:26666 KEDA_PORT=26444 KEDA_METRICS_PORT=26445 KEDA_PROBE=127.0.0.1:26446

keda_manifest() { host_service playpulse-testbed-keda-metrics $KEDA_PORT; }

# external_metrics_to SERVICE: the external metrics API served by SERVICE
# (kube-system), once the apiserver finds it available.
external_metrics_to() {
  k patch apiservice v1beta1.external.metrics.k8s.io --type merge -p "{\"spec\":{\"service\":{\"name\":\"$1\",\"namespace\":\"kube-system\",\"port\":443}}}" >/dev/null
  waitfor "external metrics API on $1" 60 sh -c "'$ENVTEST_BIN/kubectl' get apiservice v1beta1.external.metrics.k8s.io -o jsonpath='{.spec.service.name} {.status.conditions[?(@.type==\"Available\")].status}' | grep -qx '$1 True'"
}

keda_on() {
  local d=$S/keda
  if alive keda-operator && alive keda-metrics; then
    log "KEDA already on"
    return 0
  fi
  keda_off >/dev/null 2>&1 || true
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=keda 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >san.ext
    openssl x509 -req -in tls.csr -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -CAserial keda.srl -out tls.crt -days 30 -extfile san.ext 2>/dev/null
    cp "$P/ca.crt" ca.crt
  ) || die "KEDA's certificate"
  k apply --server-side -f "$KEDA_BIN/crds" >/dev/null || die "KEDA's CRDs"
  k wait --for condition=established --timeout=60s -f "$KEDA_BIN/crds" >/dev/null || die "KEDA's CRDs not established"
  # WATCH_NAMESPACE empty: every namespace. The namespaces are where an
  # in-cluster KEDA would read its own objects (none is needed here).
  local env=(env WATCH_NAMESPACE= POD_NAMESPACE=kube-system KEDA_CLUSTER_OBJECT_NAMESPACE=kube-system KUBECONFIG="$KUBECONFIG")
  start keda-operator --isolated "${env[@]}" "$KEDA_BIN/operator" --metrics-bind-address=0 \
    --health-probe-bind-address=$KEDA_PROBE --metrics-service-bind-address=$KEDA_GRPC --cert-dir="$d" \
    --leader-elect=false --zap-log-level=info
  start keda-metrics --isolated "${env[@]}" "$KEDA_BIN/adapter" --bind-address="$NODE_IP" --secure-port=$KEDA_PORT \
    --port=$KEDA_METRICS_PORT --cert-dir="$d" --tls-cert-file="$d/tls.crt" --tls-private-key-file="$d/tls.key" \
    --metrics-service-address=$KEDA_GRPC --lister-kubeconfig="$KUBECONFIG" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG"
  waitfor keda-operator 60 curl -sf "http://$KEDA_PROBE/readyz"
  keda_manifest | k apply -f - >/dev/null
  external_metrics_to playpulse-testbed-keda-metrics
  log "KEDA on: operator and metrics server up, external.metrics.k8s.io served by KEDA"
}

keda_off() {
  # The CRDs go first, and their objects with them, while the operator
  # still runs to remove the HPAs it made.
  if [[ -d $KEDA_BIN/crds ]]; then k delete --ignore-not-found --timeout=60s -f "$KEDA_BIN/crds" >/dev/null || true; fi
  if k get apiservice v1beta1.external.metrics.k8s.io >/dev/null 2>&1; then external_metrics_to playpulse-testbed-metrics-adapter; fi
  keda_manifest | k delete --ignore-not-found -f - >/dev/null 2>&1 || true
  stop keda-metrics
  stop keda-operator
  rm -rf "$S/keda"
  log "KEDA off: external.metrics.k8s.io served by prometheus-adapter again"
}

cmd_keda() {
  healthy_or_die
  case ${1:-} in
  on) keda_on ;;
  off) keda_off ;;
  *) die "keda: on or off" ;;
  esac
}

# ----------------------------------------------------------------- down ---

stop() { # name [tries of 0.2 s]
  local f=$R/$1.pid p
  [[ -f $f ]] || return 0
  p=$(cat "$f")
  if kill "$p" 2>/dev/null; then
    local i
    for ((i = 0; i < ${2:-150}; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

# shims prints the PIDs of the containerd shims of this cluster's containerd
# (their command line names its socket); they outlive a killed containerd.
shims() {
  local d
  for d in /proc/[0-9]*; do
    [[ $(tr '\0' ' ' 2>/dev/null <"$d/cmdline") == *"-address $S/containerd/containerd.sock"* ]] && echo "${d#/proc/}"
  done
  return 0
}

# The chains the kubelet (KUBE-FIREWALL, canaries, the hint) and kube-proxy
# leave in iptables-nft, and the nft tables that did not exist before.
iptables_cleanup() {
  local ipt t c fam
  for ipt in iptables ip6tables; do
    for t in filter nat mangle raw; do
      { $ipt -t $t -S 2>/dev/null || true; } | { grep -E '^-A [A-Z]+ .*-j KUBE-' || true; } | sed 's/^-A/-D/' |
        while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
      for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -F "$c" 2>/dev/null || true; done
      for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -X "$c" 2>/dev/null || true; done
    done
  done
  for fam in ip ip6; do
    for t in filter nat mangle raw; do
      grep -qE "^table $fam $t \{" "$BEFORE" 2>/dev/null && continue
      nft list table $fam $t >/dev/null 2>&1 || continue
      if [[ $(nft list table $fam $t | grep -cE '^\s+(ip|ip6|meta|counter|jump|drop|accept|oifname|iifname|tcp|udp|ct|mark|fib)' || true) == 0 ]]; then
        nft delete table $fam $t 2>/dev/null || true
      fi
    done
  done
}

cmd_down() {
  if [[ ${1:-} == --if-owner ]]; then
    local want=${2:?--if-owner needs a name}
    [[ -f $R/owner && $(cat "$R/owner") == "$want" ]] || {
      log "down: not started by $want, left as it is"
      return 0
    }
  fi
  [[ -d $R || -f $BEFORE ]] || {
    log "down: nothing to do"
    return 0
  }
  paths
  envtest_bin 2>/dev/null || true
  local C="ctr --address $S/containerd/containerd.sock -n k8s.io" t0 ns
  t0=$(ms)
  if alive apiserver && alive kubelet && k get --raw /readyz >/dev/null 2>&1; then
    # Let the kubelet tear pods down properly (CNI DEL, netns, mounts).
    for ns in $(k get ns -o name | cut -d/ -f2 | grep -vE '^(kube-system|kube-public|kube-node-lease|default)$'); do
      k delete ns "$ns" --wait=false >/dev/null 2>&1 || true
    done
    k delete deploy,rs,sts,ds,job,pod --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 150; i++)); do
      [[ -z $($C tasks ls -q 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop keda-metrics
  stop keda-operator
  stop metrics-adapter
  stop prometheus
  stop pod-targets
  stop kube-proxy
  if [[ -x $NODE_BIN/kube-proxy ]]; then "$NODE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  stop kubelet
  stop scheduler
  stop controller-manager
  stop apiserver
  stop etcd
  local t
  for t in $($C tasks ls -q 2>/dev/null); do
    $C tasks kill -s KILL "$t" 2>/dev/null || true
    $C tasks delete -f "$t" 2>/dev/null || true
  done
  for t in $($C containers ls -q 2>/dev/null); do $C containers delete "$t" 2>/dev/null || true; done
  stop containerd
  local p
  for p in $(shims); do kill -9 "$p" 2>/dev/null || true; done
  guard -D
  iptables_cleanup
  ip link del "$BRIDGE" 2>/dev/null || true
  grep -qF " $NODE_IP/32 " "$BEFORE" 2>/dev/null || ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  # Mounts left under our directories (the kubelet bind-mounts its root dir
  # onto itself), deepest first.
  { awk '{print $2}' /proc/mounts | grep -E "^($S/|/run/netns/|/run/containerd/)" || true; } | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/*/kubepods.slice; do
    if [[ -d $cg ]]; then find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  local d
  for d in "${HOST_DIRS[@]}"; do
    grep -qx "$d" <(sed -n '/^## dirs$/,/^## /p' "$BEFORE" 2>/dev/null) || rm -rf "$d"
  done
  restore_sysctls
  rm -rf "$R"
  log "down in $(($(ms) - t0)) ms"
  [[ -f $BEFORE ]] || return 0
  local diff
  if diff=$(diff <(cat "$BEFORE") <(host_state)); then
    rm -f "$BEFORE"
    log "the host is as it was before up"
    return 0
  fi
  log "the host differs from before up (recorded in $BEFORE):"
  printf '%s\n' "$diff" >&2
  return 3
}

case ${1:-help} in
build) shift; cmd_build "$@" ;;
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
status) shift; cmd_status "$@" ;;
images) shift; cmd_images "$@" ;;
load) shift; cmd_load "$@" ;;
env) shift; cmd_env "$@" ;;
keda) shift; cmd_keda "$@" ;;
host-state) host_state ;;
help | -h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
