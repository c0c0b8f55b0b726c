#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go modules, pinned, into the peers cache, for tests on loopback:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok, kwokctl                                                     (sigs.k8s.io/kwok)
# No container runtime is needed: kwokctl's binary runtime starts them as local processes and kwok fakes the
# nodes and makes pods Running (see scripts/cluster.sh).
#
# Usage: scripts/peers/kube.sh            builds or reuses, prints one line NAME=PATH per binary
#        scripts/peers/kube.sh --export   prints the KWOK_*_BINARY variables (and PATH) to eval
#
# None of these can be `go install`ed here: the proxy refuses version-list lookups, and k8s.io/kubernetes and
# etcd's server module carry replace directives. Each is built from a throw-away wrapper module that names
# exact versions (Go ignores the replace directives of dependencies).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/kubernetes.sh" # KUBE_VERSION, build_kubernetes_commands

# etcd 3.6 is what kubeadm pairs with Kubernetes 1.34.
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0

kube_dir="$PEERS_CACHE/kubernetes-$KUBE_VERSION"
etcd_dir="$PEERS_CACHE/etcd-$ETCD_VERSION"
kwok_dir="$PEERS_CACHE/kwok-$KWOK_VERSION"

build_kubernetes() {
  log "building Kubernetes v$KUBE_VERSION (apiserver, controller-manager, scheduler, kubectl) from k8s.io/kubernetes (long the first time)"
  build_kubernetes_commands "$kube_dir" kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl
}

build_etcd() {
  local wrap="$etcd_dir/wrapper"
  log "building etcd v$ETCD_VERSION from go.etcd.io/etcd/server/v3"
  mkdir -p "$wrap"
  # The server module replaces its sibling modules with ../<dir>: require them at the same release instead.
  cat >"$wrap/go.mod" <<MOD
module wrapper/etcd

go 1.26.0

require (
	go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/server/v3 v$ETCD_VERSION
)
MOD
  # etcd's own main.go (module go.etcd.io/etcd/v3) is a one-liner around etcdmain.Main.
  cp "$PROJECT_ROOT/scripts/peers/go/etcd/main.go" "$wrap/main.go"
  (cd "$wrap" && run_logged etcd-tidy go mod tidy)
  mkdir -p "$etcd_dir/bin"
  (cd "$wrap" && CGO_ENABLED=0 run_logged etcd-build go build -trimpath -ldflags "-s -w" -o "$etcd_dir/bin/etcd.tmp" .)
  mv "$etcd_dir/bin/etcd.tmp" "$etcd_dir/bin/etcd"
}

build_kwok() {
  local wrap="$kwok_dir/wrapper"
  log "building kwok and kwokctl v$KWOK_VERSION from sigs.k8s.io/kwok"
  mkdir -p "$wrap"
  printf 'module wrapper/kwok\n\ngo 1.26.0\n\nrequire sigs.k8s.io/kwok v%s\n' "$KWOK_VERSION" >"$wrap/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "sigs.k8s.io/kwok/cmd/kwok"\n\t_ "sigs.k8s.io/kwok/cmd/kwokctl"\n)\n' >"$wrap/tools.go"
  (cd "$wrap" && run_logged kwok-tidy go mod tidy)
  # KubeVersion is kwokctl's default Kubernetes version: make it the one built above.
  local c=sigs.k8s.io/kwok/pkg/consts
  mkdir -p "$kwok_dir/bin.tmp"
  (cd "$wrap" && CGO_ENABLED=0 run_logged kwok-build go build -trimpath \
    -ldflags "-s -w -X $c.Version=$KWOK_VERSION -X $c.KubeVersion=$KUBE_VERSION" \
    -o "$kwok_dir/bin.tmp/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl)
  rm -rf "$kwok_dir/bin" && mv "$kwok_dir/bin.tmp" "$kwok_dir/bin"
}

[ -x "$kube_dir/bin/kube-apiserver" ] && [ -x "$kube_dir/bin/kubectl" ] || build_kubernetes
[ -x "$etcd_dir/bin/etcd" ] || build_etcd
# kwokctl's binary runtime is pinned to the Kubernetes version above: rebuild it when that pin moves.
if [ ! -x "$kwok_dir/bin/kwokctl" ] || [ "$(cat "$kwok_dir/bin/.kube-version" 2>/dev/null)" != "$KUBE_VERSION" ]; then
  build_kwok
  echo "$KUBE_VERSION" >"$kwok_dir/bin/.kube-version"
fi

if [ "${1:-}" = "--export" ]; then
  printf 'export KWOK_KUBE_VERSION=%q\n' "v$KUBE_VERSION"
  printf 'export KWOK_KUBE_APISERVER_BINARY=%q\n' "$kube_dir/bin/kube-apiserver"
  printf 'export KWOK_KUBE_CONTROLLER_MANAGER_BINARY=%q\n' "$kube_dir/bin/kube-controller-manager"
  printf 'export KWOK_KUBE_SCHEDULER_BINARY=%q\n' "$kube_dir/bin/kube-scheduler"
  printf 'export KWOK_KUBECTL_BINARY=%q\n' "$kube_dir/bin/kubectl"
  printf 'export KWOK_ETCD_BINARY=%q\n' "$etcd_dir/bin/etcd"
  printf 'export KWOK_CONTROLLER_BINARY=%q\n' "$kwok_dir/bin/kwok"
  printf 'export KWOKCTL_BINARY=%q\n' "$kwok_dir/bin/kwokctl"
  printf 'export PATH=%q:%q:"$PATH"\n' "$kwok_dir/bin" "$kube_dir/bin"
else
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do echo "$b=$kube_dir/bin/$b"; done
  echo "etcd=$etcd_dir/bin/etcd"
  echo "kwok=$kwok_dir/bin/kwok"
  echo "kwokctl=$kwok_dir/bin/kwokctl"
fi
