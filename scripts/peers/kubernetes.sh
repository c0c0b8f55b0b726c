# shellcheck shell=bash
# The Kubernetes release every Kubernetes peer is built from, and how its commands are built. Source it after
# lib.sh; do not run it. scripts/peers/kube.sh builds the control plane with it, scripts/peers/kubelet.sh the node.
#
# Kubernetes 1.34: its go line (1.24) builds with the installed Go, kwok 0.8.0 supports it, and the
# executor's @kubernetes/client-node 2.x targets it.
KUBE_VERSION=1.34.4

# build_kubernetes_commands DIR NAME CMD...: builds k8s.io/kubernetes/cmd/<CMD> at KUBE_VERSION into DIR/bin
# (replaced whole once every command built), from a throw-away wrapper module DIR/wrapper named wrapper/NAME;
# the build logs are NAME-tidy and NAME-build. Statically (CGO_ENABLED=0, as Kubernetes' own release builds them),
# version stamped as a release would be.
build_kubernetes_commands() {
  local dir="$1" name="$2"
  shift 2
  local wrap="$dir/wrapper" minor="${KUBE_VERSION#*.}" cmd
  minor="${minor%%.*}"
  mkdir -p "$wrap"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging/...; the wrapper
  # replaces each with its published release (v0.N.P for Kubernetes v1.N.P). The list comes from the module's go.mod.
  local modfile
  modfile="$(cd "$wrap" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$modfile" ] || die "cannot download k8s.io/kubernetes@v$KUBE_VERSION's go.mod"
  {
    printf 'module wrapper/%s\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$name" "$KUBE_VERSION"
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 v0.'"${KUBE_VERSION#1.}"'#p' "$modfile"
    printf ')\n'
  } >"$wrap/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$wrap/tools.go"
  for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" >>"$wrap/tools.go"; done
  printf ')\n' >>"$wrap/tools.go"
  (cd "$wrap" && run_logged "$name-tidy" go mod tidy)
  local commit ldflags p
  commit="$(cd "$wrap" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^\t\t"Hash": "\(.*\)",\{0,1\}$/\1/p')"
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ldflags+=" -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    [ -z "$commit" ] || ldflags+=" -X $p.gitCommit=$commit"
  done
  local packages=()
  for cmd in "$@"; do packages+=("k8s.io/kubernetes/cmd/$cmd"); done
  mkdir -p "$dir/bin.tmp"
  (cd "$wrap" && CGO_ENABLED=0 run_logged "$name-build" go build -trimpath -ldflags "$ldflags" -o "$dir/bin.tmp/" \
    "${packages[@]}")
  rm -rf "${dir:?}/bin" && mv "$dir/bin.tmp" "$dir/bin"
}
