#!/usr/bin/env bash
# Builds what a REAL Kubernetes node needs besides the Debian packages (containerd, runc, CNI plugins), pinned,
# into the peers cache (see scripts/real-node.sh, which runs them):
#   kubelet, kube-proxy     from k8s.io/kubernetes, the same version and the same way as scripts/peers/kube.sh
#                           (a throw-away wrapper module, CGO_ENABLED=0, version stamped with -ldflags)
#   pause image             the pod sandbox: a tiny static C program (sleeps, reaps children, exits on
#                           SIGINT/SIGTERM, like Kubernetes' build/pause/linux/pause.c) as an OCI image archive
#   busybox image           a test image: Debian's busybox-static as /bin/* in an OCI image archive
# There are no container registries here: both images are written by hand as OCI image layouts (tar archives)
# that `ctr images import` loads into containerd under the names printed below.
#
# Usage: scripts/peers/kubelet.sh            builds or reuses, prints one line NAME=PATH per artefact
#        scripts/peers/kubelet.sh --export   prints the variables to eval (REAL_NODE_KUBELET_BINARY, ...)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/kubernetes.sh" # KUBE_VERSION (the control plane's), build_kubernetes_commands

PAUSE_VERSION=3.10
# Names the images get in containerd (namespace k8s.io). "localhost/" keeps them from ever being pulled.
PAUSE_IMAGE="localhost/colonyos/pause:$PAUSE_VERSION"
BUSYBOX_IMAGE="localhost/colonyos/busybox:1"

node_dir="$PEERS_CACHE/kubelet-$KUBE_VERSION"

build_kubelet() {
  log "building kubelet and kube-proxy v$KUBE_VERSION from k8s.io/kubernetes (long the first time)"
  build_kubernetes_commands "$node_dir" kubelet kubelet kube-proxy
}

# oci_archive OUT NAME ROOTFS_DIR CONFIG_JSON: writes an OCI image layout as a tar archive, one layer (ROOTFS_DIR),
# the image config's "config" object CONFIG_JSON, named NAME (for `ctr images import`).
oci_archive() {
  local out="$1" name="$2" rootfs="$3" config="$4" work
  work="$(mktemp -d)"
  mkdir -p "$work/blobs/sha256"
  # Reproducible layer: fixed owner and times, sorted names.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
  local diff_id layer_digest layer_size cfg cfg_digest cfg_size man man_digest man_size
  diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 "$work/layer.tar"
  layer_digest="$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)"
  layer_size="$(stat -c %s "$work/layer.tar.gz")"
  mv "$work/layer.tar.gz" "$work/blobs/sha256/$layer_digest"
  cfg="$(printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/peers/kubelet.sh"}]}' "$config" "$diff_id")"
  printf '%s' "$cfg" >"$work/cfg"
  cfg_digest="$(sha256sum "$work/cfg" | cut -d' ' -f1)"
  cfg_size="$(stat -c %s "$work/cfg")"
  mv "$work/cfg" "$work/blobs/sha256/$cfg_digest"
  man="$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cfg_digest" "$cfg_size" "$layer_digest" "$layer_size")"
  printf '%s' "$man" >"$work/man"
  man_digest="$(sha256sum "$work/man" | cut -d' ' -f1)"
  man_size="$(stat -c %s "$work/man")"
  mv "$work/man" "$work/blobs/sha256/$man_digest"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_digest" "$man_size" "$name" "${name##*:}" >"$work/index.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

# apt_install PACKAGE...: retries while another apt/dpkg run holds the lock.
apt_install() {
  for _ in $(seq 1 60); do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$PEERS_CACHE/logs/apt-$1.log" 2>&1 && return 0
    grep -q 'Could not get lock\|dpkg frontend lock\|lock-frontend' "$PEERS_CACHE/logs/apt-$1.log" || break
    sleep 2
  done
  tail -n 20 "$PEERS_CACHE/logs/apt-$1.log" >&2
  die "apt-get install $* failed"
}

build_pause() {
  log "building the pause image ($PAUSE_IMAGE)"
  command -v gcc >/dev/null || apt_install gcc libc6-dev
  local src="$PROJECT_ROOT/scripts/peers/pause/pause.c" root
  root="$(mktemp -d)"
  gcc -Os -static -Wall -Werror -o "$root/pause" "$src" || die "cannot compile $src"
  strip "$root/pause"
  oci_archive "$node_dir/images/pause.oci.tar" "$PAUSE_IMAGE" "$root" '{"Entrypoint":["/pause"],"User":"65535:65535"}'
  rm -rf "$root"
}

build_busybox() {
  log "building the busybox test image ($BUSYBOX_IMAGE) from Debian's busybox-static"
  dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
  local root
  root="$(mktemp -d)"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev"
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  oci_archive "$node_dir/images/busybox.oci.tar" "$BUSYBOX_IMAGE" "$root" \
    '{"Cmd":["/bin/sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}'
  rm -rf "$root"
}

mkdir -p "$node_dir/images"
[ -x "$node_dir/bin/kubelet" ] && [ -x "$node_dir/bin/kube-proxy" ] || build_kubelet
# The pause image is rebuilt when its source changes.
pause_sum="$(sha256sum "$PROJECT_ROOT/scripts/peers/pause/pause.c" | cut -d' ' -f1)"
if [ ! -f "$node_dir/images/pause.oci.tar" ] || [ "$(cat "$node_dir/images/.pause.sum" 2>/dev/null)" != "$pause_sum" ]; then
  build_pause
  echo "$pause_sum" >"$node_dir/images/.pause.sum"
fi
[ -f "$node_dir/images/busybox.oci.tar" ] || build_busybox

if [ "${1:-}" = "--export" ]; then
  printf 'export REAL_NODE_KUBE_VERSION=%q\n' "v$KUBE_VERSION"
  printf 'export REAL_NODE_KUBELET_BINARY=%q\n' "$node_dir/bin/kubelet"
  printf 'export REAL_NODE_KUBE_PROXY_BINARY=%q\n' "$node_dir/bin/kube-proxy"
  printf 'export REAL_NODE_PAUSE_ARCHIVE=%q\n' "$node_dir/images/pause.oci.tar"
  printf 'export REAL_NODE_PAUSE_IMAGE=%q\n' "$PAUSE_IMAGE"
  printf 'export REAL_NODE_BUSYBOX_ARCHIVE=%q\n' "$node_dir/images/busybox.oci.tar"
  printf 'export REAL_NODE_BUSYBOX_IMAGE=%q\n' "$BUSYBOX_IMAGE"
else
  echo "kubelet=$node_dir/bin/kubelet"
  echo "kube-proxy=$node_dir/bin/kube-proxy"
  echo "pause-archive=$node_dir/images/pause.oci.tar ($PAUSE_IMAGE)"
  echo "busybox-archive=$node_dir/images/busybox.oci.tar ($BUSYBOX_IMAGE)"
fi
