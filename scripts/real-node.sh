#!/usr/bin/env bash
# A REAL Kubernetes node joined to the local control plane of scripts/cluster.sh: containerd (CRI, overlayfs, runc),
# a bridge CNI network, kubelet and kube-proxy (iptables mode) run on this machine as root, so that pods placed on it
# run as real containers (images, logs, probes, OOM kills, Service ClusterIPs). kwok keeps faking its own nodes.
# The node is tainted, so that only pods that tolerate the taint (and select the label) run on it:
#   label colonyos.io/real-node=true, taint colonyos.io/real-node=true:NoSchedule
#
# Usage: scripts/real-node.sh up             start (or reuse) the node of cluster $KWOK_CLUSTER_NAME (which must be up),
#                                            wait until it is Ready
#        scripts/real-node.sh down           stop everything it started (kubelet, kube-proxy, containers, shims,
#                                            containerd), remove its network (bridge, netns, nftables table, kube-proxy's
#                                            iptables chains), its Node object and its directory
#        scripts/real-node.sh env            print the variables below as `export ...` lines to eval
#        scripts/real-node.sh status         show the processes, the Node and its pods
#        scripts/real-node.sh expose PORT... make host ports bound to 127.0.0.1 (a Colonies server, PostgreSQL, MinIO)
#                                            reachable from pods at $REAL_NODE_HOST_ADDRESS:PORT
#        scripts/real-node.sh unexpose PORT...
# How pods reach the host's loopback: the node's bridge has an address (the pods' gateway); an nftables NAT chain
# that runs before kube-proxy's rewrites, for packets from the pods, <bridge address>:PORT (exposed ports) and the
# kubernetes Service (ClusterIP 10.0.0.1:443) to 127.0.0.1:PORT / 127.0.0.1:<API server port>, and the bridge has
# route_localnet=1 so the kernel delivers them to loopback. Pods reach nothing else outside the pod range: the
# same table drops their packets to any other host address and everything they would route off the bridge.
# Environment:
#   KWOK_CLUSTER_NAME      the cluster to join (default colonyos-test); COLONYOS_CLUSTER_DIR as for scripts/cluster.sh
#   REAL_NODE_POD_CIDR     pod range, a /24 (default 10.217.N.0/24, N derived from the cluster name); must not overlap a route
#   REAL_NODE_REGISTRY     HOST:PORT of a local plain-HTTP registry (e.g. 127.0.0.1:5000) that containerd pulls from
#   REAL_NODE_EXPOSE       host loopback ports to expose at `up` (space separated)
#   REAL_NODE_READY_TIMEOUT seconds to wait for the node to be Ready (default 120)
# The node lives in $COLONYOS_CLUSTER_DIR/<cluster>-node/ (containerd root and state, kubelet root, certificates,
# configs, logs/). The kubelet authenticates with a client certificate for system:node:<cluster>-node (group
# system:nodes) signed by the cluster's CA; kube-proxy with one for system:kube-proxy. Outside that directory, while it
# runs: the bridge rn<hash>, the nftables table realnode_<hash>, kube-proxy's and the kubelet's iptables chains
# (KUBE-*), the pods' /var/run/netns/cni-* and /kubepods cgroups, /run/containerd (shim sockets) and one /etc/hosts
# line naming the node (the API server reaches a kubelet by its Hostname address first); `down` removes them all.
# Only one real node per machine: kube-proxy's chains and the kubelet's /kubepods cgroups are machine-wide.
# Binaries and images come from scripts/peers/kubelet.sh; packages (containerd, runc, CNI plugins, iptables,
# nftables, conntrack) are installed with apt-get when missing. The cluster must come from scripts/cluster.sh, whose
# kwok fakes only kwokctl's own nodes and whose API server certificate names the kubernetes Service's ClusterIP.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

NAME="${KWOK_CLUSTER_NAME:-colonyos-test}"
BASE="${COLONYOS_CLUSTER_DIR:-${XDG_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/colonyos-executors/clusters}"
DIR="$BASE/$NAME-node"
NODE="$NAME-node"
TIMEOUT="${REAL_NODE_READY_TIMEOUT:-120}"
CLUSTER_DIR="$BASE/kwok/clusters/$NAME"
ADMIN_KUBECONFIG="$BASE/$NAME.kubeconfig"
LABEL_KEY=colonyos.io/real-node
hash="$(printf '%s' "$NAME" | sha1sum | cut -c1-8)"
BRIDGE="rn$hash"
NFT_TABLE="realnode_$hash"
POD_CIDR="${REAL_NODE_POD_CIDR:-10.217.$((16#${hash:0:2})).0/24}"
GATEWAY="${POD_CIDR%.*/*}.1"
SERVICE_IP=10.0.0.1 # kwokctl's service range is 10.0.0.0/24
SOCK="$DIR/containerd/containerd.sock"

log() { printf '\033[1m[real-node]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[real-node] error:\033[0m %s\n' "$*" >&2; exit 1; }

case "$BASE" in "$(cd "$here/.." && pwd)"*) die "COLONYOS_CLUSTER_DIR must be outside the repository" ;; esac
[ "$(id -u)" = 0 ] || die "a real node needs root (containerd, runc, network namespaces, iptables)"
[[ "$POD_CIDR" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.0/24$ ]] || die "REAL_NODE_POD_CIDR must be a /24 (got $POD_CIDR)"

# kubectl 1.34 (KWOK_KUBECTL_BINARY), read when a command needs it: `expose` must not wait for the peers' lock.
kube_env() { [ -n "${KWOK_KUBECTL_BINARY:-}" ] || eval "$("$here/peers/kube.sh" --export)"; }
kctl() { command "$KWOK_KUBECTL_BINARY" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
ctr_() { command ctr --address "$SOCK" --namespace k8s.io "$@"; }
cluster_up() { [ -s "$ADMIN_KUBECONFIG" ] && kctl get --raw /readyz >/dev/null 2>&1; }
cmd_of() { tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -n 1; }
# alive NAME: the process recorded in pids/NAME.pid still runs the binary recorded with it.
alive() {
  local f="$DIR/pids/$1.pid" pid bin
  [ -f "$f" ] || return 1
  read -r pid bin <"$f"
  [ -n "$pid" ] && [ "$(cmd_of "$pid")" = "$bin" ]
}
# stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 20).
stop() {
  local f="$DIR/pids/$1.pid" pid bin
  alive "$1" || { rm -f "$f"; return 0; }
  read -r pid bin <"$f"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((${2:-20} * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}
# start NAME BINARY ARGS...: runs it in the background, in its own session, output in logs/NAME.log.
start() {
  local name="$1" bin="$2"
  shift 2
  mkdir -p "$DIR/logs" "$DIR/pids"
  setsid "$bin" "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo "$! $bin" >"$DIR/pids/$name.pid"
}
free_port() { # free_port ADDRESS
  python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

apt_install() { # apt_install PACKAGE...: retries while another apt/dpkg holds the lock
  local out="$BASE/real-node-apt.log" updated=
  mkdir -p "$BASE"
  log "installing $* (apt-get)"
  for _ in $(seq 1 90); do
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$out" 2>&1; then return 0; fi
    if grep -q 'Could not get lock\|dpkg frontend lock\|Unable to acquire' "$out"; then sleep 2; continue; fi
    if [ -z "$updated" ] && grep -q 'Unable to locate\|has no installation candidate\|404' "$out"; then
      apt-get update -q >>"$out" 2>&1 || true
      updated=1
      continue
    fi
    break
  done
  tail -n 20 "$out" >&2
  die "apt-get install $* failed (log: $out)"
}

ensure_packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nft >/dev/null || need+=(nftables)
  command -v conntrack >/dev/null || need+=(conntrack)
  [ "${#need[@]}" -eq 0 ] || apt_install "${need[@]}"
  # The Debian package enables and starts a system containerd on /run/containerd: this node runs its own.
  if [ -n "${need[*]}" ] && [[ " ${need[*]} " == *" containerd "* ]] && command -v systemctl >/dev/null &&
    systemctl is-active --quiet containerd 2>/dev/null; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
  fi
}

check_cluster() {
  cluster_up || die "cluster $NAME is not up: run scripts/cluster.sh up (with KWOK_CLUSTER_NAME=$NAME) first"
  # kwok must not fake this node (scripts/cluster.sh makes it manage only nodes annotated kwok.x-k8s.io/node=fake).
  if grep -q -- '--manage-all-nodes=true' "$CLUSTER_DIR/kwok.yaml" 2>/dev/null &&
    ! grep -q -- '--manage-all-nodes=false' "$CLUSTER_DIR/kwok.yaml"; then
    die "cluster $NAME's kwok manages all nodes (created by an older scripts/cluster.sh): recreate it (scripts/cluster.sh down; scripts/cluster.sh up)"
  fi
  local other
  for other in "$BASE"/*-node/pids/kube-proxy.pid; do
    [ -f "$other" ] && [ "$other" != "$DIR/pids/kube-proxy.pid" ] || continue
    local pid bin
    read -r pid bin <"$other"
    [ "$(cmd_of "$pid")" = "$bin" ] && die "another real node runs on this machine ($(dirname "$(dirname "$other")")): one at a time (kube-proxy's chains are machine-wide)"
  done
  while read -r route; do
    case "$route" in "$POD_CIDR "* | *" dev $BRIDGE "*) ;; *)
      local net="${route%% *}"
      [ "$net" = default ] && continue
      if python3 -c 'import ipaddress,sys; sys.exit(0 if ipaddress.ip_network(sys.argv[1]).overlaps(ipaddress.ip_network(sys.argv[2])) else 1)' "$net" "$POD_CIDR" 2>/dev/null; then
        die "REAL_NODE_POD_CIDR $POD_CIDR overlaps the route $route: pick another one"
      fi
      ;;
    esac
  done < <(ip -4 route show)
}

# The API server's port on 127.0.0.1 (from the cluster's kubeconfig).
api_port() { sed -n 's#^ *server: https://127.0.0.1:\([0-9]*\).*#\1#p' "$ADMIN_KUBECONFIG" | head -n 1; }

write_pki() {
  # Client certificates signed by the cluster's CA: the kubelet as system:node:<node> in group system:nodes (the API
  # server runs the Node and RBAC authorizers and NodeRestriction), kube-proxy as system:kube-proxy (RBAC's
  # system:node-proxier binding).
  local pki="$DIR/pki" who
  mkdir -p "$pki"
  for who in kubelet kube-proxy; do
    if [ -f "$pki/$who.crt" ] && openssl verify -CAfile "$CLUSTER_DIR/pki/ca.crt" "$pki/$who.crt" >/dev/null 2>&1; then continue; fi
    local subj="/O=system:nodes/CN=system:node:$NODE"
    [ "$who" = kube-proxy ] && subj="/CN=system:kube-proxy"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$who.key" -subj "$subj" -out "$pki/$who.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$who.csr" -CA "$CLUSTER_DIR/pki/ca.crt" -CAkey "$CLUSTER_DIR/pki/ca.key" -CAcreateserial \
      -days 30 -out "$pki/$who.crt" 2>/dev/null
    rm -f "$pki/$who.csr"
  done
  cp "$CLUSTER_DIR/pki/ca.crt" "$pki/ca.crt"
  for who in kubelet kube-proxy; do
    cat >"$DIR/$who.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster:
    server: https://127.0.0.1:$(api_port)
    certificate-authority: $pki/ca.crt
users:
- name: $who
  user:
    client-certificate: $pki/$who.crt
    client-key: $pki/$who.key
contexts:
- name: $who
  context: {cluster: $NAME, user: $who}
current-context: $who
YAML
  done
}

write_containerd_config() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d" "$DIR/certs.d"
  cat >"$DIR/containerd/config.toml" <<TOML
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$DIR/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REAL_NODE_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384
  # This machine refuses to lower oom_score_adj (runc: "failed to update /proc/self/oom_score_adj: Permission
  # denied" for the sandbox's -998): keep every container's at least containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$DIR/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$DIR/certs.d"
TOML
  # The pods' network: one bridge, host-local addresses, the bridge's address is their gateway. No masquerading:
  # pods talk to each other and (through the NAT table below) to the host's loopback, nothing else.
  cat >"$DIR/cni/net.d/10-realnode.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  write_registry_config
}

# A local registry (plain HTTP), e.g. the one the project image is pushed to: containerd reads certs.d/<host>/hosts.toml
# at every pull, so a changed REAL_NODE_REGISTRY applies without a restart.
write_registry_config() {
  mkdir -p "$DIR/certs.d"
  rm -rf "${DIR:?}/certs.d/"*
  [ -n "${REAL_NODE_REGISTRY:-}" ] || return 0
  [[ "$REAL_NODE_REGISTRY" =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "REAL_NODE_REGISTRY must be HOST:PORT (got $REAL_NODE_REGISTRY)"
  mkdir -p "$DIR/certs.d/$REAL_NODE_REGISTRY"
  cat >"$DIR/certs.d/$REAL_NODE_REGISTRY/hosts.toml" <<TOML
server = "http://$REAL_NODE_REGISTRY"
[host."http://$REAL_NODE_REGISTRY"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
TOML
}

write_kubelet_config() {
  local kport hport
  kport="$(free_port "$GATEWAY")"
  hport="$(free_port 127.0.0.1)"
  mkdir -p "$DIR/kubelet" "$DIR/pod-logs"
  # No cluster DNS, and pods may not leave the node: their resolv.conf names their own loopback, where nothing answers
  # (an empty one would make containerd copy the host's).
  printf 'nameserver 127.0.0.1\n' >"$DIR/resolv.conf"
  # The API server has no kubelet client certificate: it reaches the kubelet (logs, exec) anonymously, so the kubelet
  # allows anonymous requests; it listens only on the bridge address, and the NAT table keeps pods away from it.
  cat >"$DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: $DIR/pod-logs
resolvConf: $DIR/resolv.conf
registerNode: true
registerWithTaints:
- {key: $LABEL_KEY, value: "true", effect: NoSchedule}
maxPods: 30
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
YAML
  cat >"$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$(free_port 127.0.0.1)
metricsBindAddress: 127.0.0.1:$(free_port 127.0.0.1)
nodePortAddresses: ["$GATEWAY/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# The bridge (created before the CNI plugin needs it: the kubelet listens on its address) and the nftables table.
setup_network() {
  modprobe overlay 2>/dev/null || true
  modprobe br_netfilter 2>/dev/null || true
  # Bridged traffic between pods goes through iptables, as kube-proxy's Service rules need.
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  local api
  api="$(api_port)"
  [ -n "$api" ] || die "cannot read the API server's port from $ADMIN_KUBECONFIG"
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
  # priority -110: before kube-proxy's nat rules (iptables-nft, -100), which would send the kubernetes Service to
  # the address the API server advertises (the host's own address, where it does not listen).
  nft -f - <<NFT
table ip $NFT_TABLE {
  set exposed { type inet_service; }
  chain prerouting {
    type nat hook prerouting priority -110; policy accept;
    iifname "$BRIDGE" ip saddr $POD_CIDR ip daddr $SERVICE_IP tcp dport 443 dnat to 127.0.0.1:$api
    iifname "$BRIDGE" ip saddr $POD_CIDR ip daddr $GATEWAY tcp dport @exposed dnat to 127.0.0.1
  }
  chain input {
    type filter hook input priority -10; policy accept;
    ct state established,related accept
    iifname "$BRIDGE" ip saddr $POD_CIDR ip daddr != 127.0.0.1 drop
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip saddr $POD_CIDR oifname != "$BRIDGE" drop
  }
}
NFT
  # shellcheck disable=SC2086
  [ -z "${REAL_NODE_EXPOSE:-}" ] || expose $REAL_NODE_EXPOSE
}

expose() {
  nft list table ip "$NFT_TABLE" >/dev/null 2>&1 || die "the real node of $NAME is not up"
  local p
  for p in "$@"; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -gt 0 ] && [ "$p" -lt 65536 ] || die "not a port: $p"
    nft add element ip "$NFT_TABLE" exposed "{ $p }"
  done
}
unexpose() {
  nft list table ip "$NFT_TABLE" >/dev/null 2>&1 || die "the real node of $NAME is not up"
  local p
  for p in "$@"; do nft delete element ip "$NFT_TABLE" exposed "{ $p }" 2>/dev/null || true; done
}

# The API server reaches a kubelet (logs, exec) at the node's Hostname address first (kwokctl's fake nodes are
# "localhost"), which is the node's name: /etc/hosts names the bridge address so, one line, removed by `down`.
HOSTS_TAG="# colonyos-executors real node of cluster $NAME"
hosts_add() {
  grep -qF "$HOSTS_TAG" /etc/hosts 2>/dev/null && grep -q "^$GATEWAY $NODE " /etc/hosts && return 0
  hosts_remove
  printf '%s %s %s\n' "$GATEWAY" "$NODE" "$HOSTS_TAG" >>/etc/hosts
}
hosts_remove() {
  grep -qF "$HOSTS_TAG" /etc/hosts 2>/dev/null || return 0
  # In place (/etc/hosts may be a bind mount): keep every other line.
  local kept
  kept="$(grep -vF "$HOSTS_TAG" /etc/hosts)"
  printf '%s\n' "$kept" >/etc/hosts
}

# The kubelet's own iptables chains (kube-proxy --cleanup removes kube-proxy's): KUBE-FIREWALL (drops packets to
# 127.0.0.0/8 from elsewhere that were not DNATed), KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, in both families.
kubelet_chains_remove() {
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    while "$ipt" -w -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while "$ipt" -w -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    "$ipt" -w -t filter -F KUBE-FIREWALL 2>/dev/null && "$ipt" -w -t filter -X KUBE-FIREWALL 2>/dev/null
    for t in nat filter mangle; do "$ipt" -w -t "$t" -X KUBE-KUBELET-CANARY 2>/dev/null || true; done
    "$ipt" -w -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null || true
  done
}

start_containerd() {
  alive containerd && ctr_ version >/dev/null 2>&1 && return 0
  stop containerd
  rm -f "$SOCK"
  log "starting containerd ($SOCK)"
  [ -e /run/containerd ] || echo yes >"$DIR/run-containerd-ours"
  start containerd "$(command -v containerd)" --config "$DIR/containerd/config.toml"
  for _ in $(seq 1 120); do ctr_ version >/dev/null 2>&1 && break; alive containerd || break; sleep 0.25; done
  ctr_ version >/dev/null 2>&1 || { tail -n 20 "$DIR/logs/containerd.log" >&2; die "containerd did not start (log: $DIR/logs/containerd.log)"; }
  local archive image
  for archive in "$REAL_NODE_PAUSE_ARCHIVE:$REAL_NODE_PAUSE_IMAGE" "$REAL_NODE_BUSYBOX_ARCHIVE:$REAL_NODE_BUSYBOX_IMAGE"; do
    image="${archive#*:}"
    archive="${archive%%:*}"
    ctr_ images import "$archive" >/dev/null || die "cannot import $archive into containerd"
    # Pinned: the kubelet's image garbage collector leaves it alone.
    ctr_ images label "$image" io.cri-containerd.pinned=pinned >/dev/null
  done
}

node_ready() {
  [ "$(kctl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

up() {
  check_cluster
  ensure_packages
  eval "$("$here/peers/kubelet.sh" --export)"
  # Reuse a node whose processes all run and whose certificates the (possibly recreated) cluster still accepts.
  if alive containerd && alive kubelet && alive kube-proxy && [ -f "$DIR/pki/kubelet.crt" ] &&
    openssl verify -CAfile "$CLUSTER_DIR/pki/ca.crt" "$DIR/pki/kubelet.crt" >/dev/null 2>&1 &&
    grep -q "127.0.0.1:$(api_port)\$" "$DIR/kubelet.kubeconfig" && nft list table ip "$NFT_TABLE" >/dev/null 2>&1 && node_ready; then
    # shellcheck disable=SC2086
    [ -z "${REAL_NODE_EXPOSE:-}" ] || expose $REAL_NODE_EXPOSE
    write_registry_config
    log "node $NODE of cluster $NAME is up"
    return 0
  fi
  [ -d "$DIR" ] && { log "restarting node $NODE"; down_local; }
  log "starting node $NODE (pods $POD_CIDR on bridge $BRIDGE, host ports at $GATEWAY) for cluster $NAME"
  mkdir -p "$DIR"
  write_pki
  write_containerd_config
  setup_network
  hosts_add
  write_kubelet_config
  start_containerd
  echo "$REAL_NODE_KUBE_PROXY_BINARY" >"$DIR/kube-proxy.bin"
  start kube-proxy "$REAL_NODE_KUBE_PROXY_BINARY" --config "$DIR/kube-proxy.yaml" -v=1
  start kubelet "$REAL_NODE_KUBELET_BINARY" --config "$DIR/kubelet/config.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet" --cert-dir "$DIR/kubelet/pki" --hostname-override "$NODE" --node-ip "$GATEWAY" \
    --node-labels "$LABEL_KEY=true" -v=1
  local deadline=$((SECONDS + TIMEOUT))
  until node_ready; do
    alive kubelet || { tail -n 30 "$DIR/logs/kubelet.log" >&2; die "kubelet exited (log: $DIR/logs/kubelet.log)"; }
    alive kube-proxy || { tail -n 30 "$DIR/logs/kube-proxy.log" >&2; die "kube-proxy exited (log: $DIR/logs/kube-proxy.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$DIR/logs/kubelet.log" >&2; die "node $NODE not Ready after ${TIMEOUT}s (logs: $DIR/logs)"; }
    sleep 1
  done
  log "node $NODE is Ready; eval \"\$(scripts/real-node.sh env)\""
}

# Everything on this machine: processes, containers, mounts, netns, cgroups, network, directory.
down_local() {
  local run_containerd_ours
  run_containerd_ours="$(cat "$DIR/run-containerd-ours" 2>/dev/null || echo no)"
  # The kubelet first, so that it restarts nothing.
  stop kubelet
  stop kube-proxy
  if alive containerd; then
    # Kill every container (pods' processes and sandboxes) and remove the tasks while containerd still runs.
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  # kube-proxy's own clean-up removes its KUBE-* chains and rules (the binary `up` ran, recorded in kube-proxy.bin).
  local kube_proxy
  kube_proxy="$(cat "$DIR/kube-proxy.bin" 2>/dev/null || true)"
  if [ -x "$kube_proxy" ] && [ -f "$DIR/kube-proxy.yaml" ]; then
    "$kube_proxy" --config "$DIR/kube-proxy.yaml" --cleanup >/dev/null 2>&1 || true
  fi
  # The pods' network namespaces (containerd's CRI mounts them as /var/run/netns/cni-*, outside its state dir): those
  # with an address in this node's pod range. Deleting one removes its veth.
  local ns
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    if ip -n "$(basename "$ns")" -o addr show 2>/dev/null | grep -q "inet ${POD_CIDR%.*}\."; then
      ip netns delete "$(basename "$ns")" 2>/dev/null || { umount "$ns" 2>/dev/null; rm -f "$ns"; }
    fi
  done
  stop containerd 30
  # The runc shims of this containerd (started with its socket address), then any process left in the pods' cgroups.
  local pid
  for pid in $(grep -l -s -F -- "$DIR/containerd" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [[ "$(cmd_of "$pid")" == *containerd-shim* ]] && kill -9 "$pid" 2>/dev/null || true
  done
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -9 2>/dev/null || true
  # Mounts under the node's directory (overlay rootfs, shm, secret and token tmpfs), deepest first.
  local m
  for _ in 1 2 3; do
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done < <(
      awk -v d="$DIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  done
  # The kubelet's cgroups (empty by now), deepest first.
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} \; 2>/dev/null || true
  kubelet_chains_remove
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
  ip link delete "$BRIDGE" 2>/dev/null || true
  hosts_remove
  # containerd 1.6 keeps shim sockets and FIFOs under /run/containerd whatever its state dir: remove it if this node
  # created it.
  [ "$run_containerd_ours" != yes ] || rm -rf /run/containerd
  rm -rf "$DIR"
}

down() {
  if cluster_up && kctl get node "$NODE" >/dev/null 2>&1; then
    log "removing node $NODE from cluster $NAME"
    kctl delete node "$NODE" --wait=false >/dev/null 2>&1 || true
  fi
  [ -d "$DIR" ] || ip link show "$BRIDGE" >/dev/null 2>&1 || nft list table ip "$NFT_TABLE" >/dev/null 2>&1 || return 0
  log "stopping node $NODE"
  down_local
}

env_() {
  node_ready && alive kubelet || die "the real node of cluster $NAME is not up: run scripts/real-node.sh up"
  eval "$("$here/peers/kubelet.sh" --export)"
  printf 'export REAL_NODE_NAME=%q\n' "$NODE"
  printf 'export REAL_NODE_LABEL=%q\n' "$LABEL_KEY=true"
  printf 'export REAL_NODE_TAINT=%q\n' "$LABEL_KEY=true:NoSchedule"
  printf 'export REAL_NODE_HOST_ADDRESS=%q\n' "$GATEWAY"
  printf 'export REAL_NODE_POD_CIDR=%q\n' "$POD_CIDR"
  printf 'export REAL_NODE_CONTAINERD_ADDRESS=%q\n' "$SOCK"
  printf 'export REAL_NODE_PAUSE_IMAGE=%q\n' "$REAL_NODE_PAUSE_IMAGE"
  printf 'export REAL_NODE_BUSYBOX_IMAGE=%q\n' "$REAL_NODE_BUSYBOX_IMAGE"
  [ -z "${REAL_NODE_REGISTRY:-}" ] || printf 'export REAL_NODE_REGISTRY=%q\n' "$REAL_NODE_REGISTRY"
}

status() {
  local p
  for p in containerd kubelet kube-proxy; do
    if alive "$p"; then echo "$p: running (pid $(cut -d' ' -f1 "$DIR/pids/$p.pid"))"; else echo "$p: not running"; fi
  done
  echo "bridge $BRIDGE: $(ip -br addr show "$BRIDGE" 2>/dev/null || echo absent)"
  echo "exposed host ports at $GATEWAY: $(nft list set ip "$NFT_TABLE" exposed 2>/dev/null | sed -n 's/.*elements = { \(.*\) }.*/\1/p')"
  if cluster_up; then
    kctl get node "$NODE" -o wide || true
    kctl get pods -A -o wide --field-selector "spec.nodeName=$NODE" || true
  fi
}

case "${1:-}" in
  up) kube_env; up ;;
  down) kube_env; down ;;
  env) kube_env; env_ ;;
  status) kube_env; status ;;
  expose) shift; expose "$@" ;;
  unexpose) shift; unexpose "$@" ;;
  *) die "usage: $0 up|down|env|status|expose PORT...|unexpose PORT..." ;;
esac
