#!/usr/bin/env bash
# Builds the Pulumi engine the tests and the k8s executor use, pinned to package.json, into the peers cache:
#   <cache>/pulumi-<ver>/bin/pulumi                    the CLI, same version as @pulumi/pulumi
#   <cache>/pulumi-<ver>/bin/pulumi-language-nodejs    the Node.js language host, next to the CLI
#   <cache>/pulumi-<ver>/bin/pulumi-resource-pulumi-nodejs   the host of dynamic providers (infra/'s blueprint
#                                                      definition), as the official distribution ships it
#   <cache>/pulumi-home/plugins/resource-kubernetes-v<k8s ver>/pulumi-resource-kubernetes
#                                                      the provider @pulumi/kubernetes asks for
# Everything is built from Go modules (nothing is downloaded from get.pulumi.com, which is unreachable here) and
# reused when present; a change of a pinned version builds the new one next to the old.
#
# Usage: scripts/peers/pulumi.sh            builds or reuses, prints the CLI's path
#        scripts/peers/pulumi.sh --export   prints the environment to eval (PATH, PULUMI_HOME, no update checks,
#                                           no automatic plugin downloads)
#
# Why it is built the way it is (the module proxy here refuses version-list lookups and some versions):
# - `go install mod@ver` is refused, and the three modules carry replace directives: each is built from a
#   throw-away wrapper module naming exact versions (Go ignores the replace directives of dependencies).
# - CLI: github.com/pulumi/pulumi/pkg/v3 at the @pulumi/pulumi version, stamped with that version (without it the
#   Automation API fails with "Failed to get Pulumi version").
# - Node.js language host: its own module (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) has
#   no tags, and the proxy refuses its pseudo-versions (403). The last release that still shipped the host
#   inside github.com/pulumi/pulumi/sdk/v3 is v3.68.0 (package sdk/v3/nodejs/cmd/pulumi-language-nodejs);
#   it is built from there. The engine talks to it over the versioned gRPC protocol and falls back for the calls
#   an older host lacks (GetRequiredPackages -> GetRequiredPlugins); the program itself runs on the
#   @pulumi/pulumi in the project's node_modules. Only CLI-driven project directories need it: inline programs
#   of the Automation API do not use it.
# - Kubernetes provider: the proxy refuses github.com/pulumi/pulumi-kubernetes/provider/v4 at its release
#   pseudo-versions; the nearest served commit is mapped below (and stamped as the npm version, which is the
#   plugin version @pulumi/kubernetes asks the engine for). Its main embeds generated files that are not in the
#   module zip, so a tiny main here serves the schema and mappings taken from the module.
source "$(dirname "$0")/lib.sh"

PULUMI_VERSION="$(npm_pin '@pulumi/pulumi')"
K8S_PROVIDER_VERSION="$(npm_pin '@pulumi/kubernetes')"
[ -n "$PULUMI_VERSION" ] && [ -n "$K8S_PROVIDER_VERSION" ] || die "cannot read @pulumi/pulumi and @pulumi/kubernetes from package.json"
LANGHOST_SDK_VERSION=3.68.0

# Module version of pulumi-kubernetes' provider for each @pulumi/kubernetes version, and the h1 hashes of the
# modules whose checksum-database lookups the proxy here answers with 404 (the provider's pseudo-version, the
# pulumi pkg/v3 and cloud-ready-checks releases it requires). Those hashes are pinned in the wrapper's go.sum
# (recorded from the first download) and only those modules skip the checksum database: their downloads are
# still verified against the pins.
case "$K8S_PROVIDER_VERSION" in
  4.25.0)
    # v4.25.0 was tagged on 2026-01-16 (commit 144dd813); the proxy refuses that commit. f47bc2d6 is the
    # main-branch commit of 2026-01-15 03:34:56Z, the nearest one it serves (1.5 days earlier).
    K8S_PROVIDER_MODULE=v4.0.0-20260115033456-f47bc2d6f199
    K8S_PROVIDER_NOSUMDB=github.com/pulumi/pulumi-kubernetes/provider/v4,github.com/pulumi/pulumi/pkg/v3,github.com/pulumi/cloud-ready-checks
    K8S_PROVIDER_GOSUM='github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199 h1:j2bphCf7c2YhnBrhwht2f3TNRRgcMImltUlAgzxr9H4=
github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199/go.mod h1:61at6ZXhz4COFbTksqENrBzq5VUQ/LV8sdZ7WJt9KT4=
github.com/pulumi/pulumi/pkg/v3 v3.215.0 h1:/3HEWgLEa8QDqwQd6qv1A66c5+9azGaVtpCUXTkFnr0=
github.com/pulumi/pulumi/pkg/v3 v3.215.0/go.mod h1:5kx6//mZ6u6KtG3zPyvxgGnc17gZqUFQ5n+GeYY1gT8=
github.com/pulumi/cloud-ready-checks v1.3.0 h1:sakLHDVOxw6xQQI61NV+sjZNlVbDOe3G6Ie+YQ7le38=
github.com/pulumi/cloud-ready-checks v1.3.0/go.mod h1:Qyyn9c1LftCgYmAHfPzR/f4NLR1j+F85cwDst8bXi18='
    ;;
  *) die "no served module version of github.com/pulumi/pulumi-kubernetes/provider/v4 is known for @pulumi/kubernetes $K8S_PROVIDER_VERSION: add it to $0" ;;
esac

root="$PEERS_CACHE/pulumi-$PULUMI_VERSION"
bin="$root/bin"
PULUMI_HOME_DIR="$PEERS_CACHE/pulumi-home"
plugin_dir="$PULUMI_HOME_DIR/plugins/resource-kubernetes-v$K8S_PROVIDER_VERSION"
# Which module version the installed plugin was built from (kept outside plugins/, which the engine scans).
plugin_stamp="$PEERS_CACHE/pulumi-kubernetes-$K8S_PROVIDER_VERSION/built-from"
mkdir -p "$bin" "$PULUMI_HOME_DIR"

build_cli() {
  local wrap="$root/wrapper-cli"
  log "building the Pulumi CLI v$PULUMI_VERSION from github.com/pulumi/pulumi/pkg/v3 (about 5 minutes the first time)"
  mkdir -p "$wrap"
  # pkg/v3's go.mod replaces sdk/v3 with ../sdk (require it at the same release) and atotto/clipboard with a
  # fork (copied here, since a dependency's replace directives are ignored).
  cat >"$wrap/go.mod" <<MOD
module wrapper/pulumi

go 1.25.11

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
MOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >"$wrap/tools.go"
  (cd "$wrap" && run_logged pulumi-cli-tidy go mod tidy)
  (cd "$wrap" && run_logged pulumi-cli-build go build -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$bin/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$bin/pulumi.tmp" "$bin/pulumi"
}

build_language_host() {
  local wrap="$root/wrapper-language-nodejs"
  log "building pulumi-language-nodejs from github.com/pulumi/pulumi/sdk/v3 v$LANGHOST_SDK_VERSION"
  mkdir -p "$wrap/options-shim" "$root/libexec"
  printf 'module wrapper/pulumi-language-nodejs\n\ngo 1.20\n\nrequire github.com/pulumi/pulumi/sdk/v3 v%s\n' \
    "$LANGHOST_SDK_VERSION" >"$wrap/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"\n' >"$wrap/tools.go"
  # The host of that era takes the project's runtime options (Pulumi.yaml `runtime.options`: typescript,
  # nodeargs, tsconfig) as command-line flags, which CLIs of that era passed; current CLIs send them over gRPC
  # instead, which that host ignores. This shim, installed as bin/pulumi-language-nodejs, reads them from the
  # Pulumi.yaml above its working directory (the CLI starts the plugin in the project) and passes them as
  # flags, as the old CLI did, to the real host in libexec/.
  cp "$PROJECT_ROOT/scripts/peers/go/language-host-shim/main.go" "$wrap/options-shim/main.go"
  (cd "$wrap" && run_logged pulumi-language-nodejs-tidy go mod tidy)
  (cd "$wrap" && CGO_ENABLED=0 run_logged pulumi-language-nodejs-build go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$LANGHOST_SDK_VERSION" \
    -o "$root/libexec/pulumi-language-nodejs.tmp" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs)
  (cd "$wrap" && CGO_ENABLED=0 run_logged pulumi-language-nodejs-shim-build go build -trimpath \
    -o "$bin/pulumi-language-nodejs.tmp" ./options-shim)
  mv "$root/libexec/pulumi-language-nodejs.tmp" "$root/libexec/pulumi-language-nodejs"
  mv "$bin/pulumi-language-nodejs.tmp" "$bin/pulumi-language-nodejs"
  echo "$LANGHOST_SDK_VERSION+options-shim" >"$bin/.pulumi-language-nodejs.version"
}

build_kubernetes_provider() {
  local wrap="$PEERS_CACHE/pulumi-kubernetes-$K8S_PROVIDER_VERSION/wrapper"
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  log "building pulumi-resource-kubernetes v$K8S_PROVIDER_VERSION from $mod@$K8S_PROVIDER_MODULE (several minutes the first time)"
  rm -rf "$wrap" && mkdir -p "$wrap/gen"
  # provider/v4 replaces sdk/v4 with ../sdk: require the released sdk/v4 of the same version instead.
  cat >"$wrap/go.mod" <<MOD
module wrapper/pulumi-resource-kubernetes

go 1.24.7

require (
	$mod $K8S_PROVIDER_MODULE
	github.com/pulumi/pulumi-kubernetes/sdk/v4 v$K8S_PROVIDER_VERSION
)
MOD
  printf '%s\n' "$K8S_PROVIDER_GOSUM" >"$wrap/go.sum"
  # The upstream main embeds schema-embed.json (schema.json with its version set) and terraform-mapping-embed.json,
  # both produced by `go generate` and absent from the module zip; gen/ produces them from the module's sources.
  cp "$PROJECT_ROOT/scripts/peers/go/provider-gen/main.go" "$wrap/gen/main.go"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "%s/pkg/provider"\n\t_ "%s/pkg/version"\n)\n' "$mod" "$mod" >"$wrap/tools.go"
  (cd "$wrap" && GONOSUMDB=$K8S_PROVIDER_NOSUMDB run_logged pulumi-kubernetes-tidy go mod tidy)
  local src
  src="$(cd "$wrap" && GONOSUMDB=$K8S_PROVIDER_NOSUMDB go list -m -f '{{.Dir}}' "$mod")/cmd/pulumi-resource-kubernetes"
  [ -f "$src/schema.json" ] || die "no schema.json in $src"
  (cd "$wrap" && run_logged pulumi-kubernetes-gen go run ./gen "$src" "$K8S_PROVIDER_VERSION")
  # provider.Serve takes the helm mapping too in later provider versions (when helm-mapping.json exists).
  if [ -f "$wrap/helm-mapping-embed.json" ]; then
    cp "$PROJECT_ROOT/scripts/peers/go/provider/with-helm/main.go" "$wrap/main.go"
  else
    cp "$PROJECT_ROOT/scripts/peers/go/provider/without-helm/main.go" "$wrap/main.go"
  fi
  (cd "$wrap" && GONOSUMDB=$K8S_PROVIDER_NOSUMDB CGO_ENABLED=0 run_logged pulumi-kubernetes-build go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    -o "$wrap/pulumi-resource-kubernetes" .)
  # Install it the official way (the engine then finds it by exact version in $PULUMI_HOME/plugins).
  rm -rf "$plugin_dir" "$plugin_dir.partial" "$plugin_dir.lock"
  PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true run_logged pulumi-kubernetes-install \
    "$bin/pulumi" plugin install resource kubernetes "v$K8S_PROVIDER_VERSION" --file "$wrap/pulumi-resource-kubernetes"
  [ -x "$plugin_dir/pulumi-resource-kubernetes" ] || die "the plugin was not installed at $plugin_dir"
  rm -f "$wrap/pulumi-resource-kubernetes" # installed copy above; the build cache keeps rebuilds fast
  echo "$K8S_PROVIDER_MODULE" >"$plugin_stamp"
}

[ -x "$bin/pulumi" ] || build_cli
[ -x "$bin/pulumi-language-nodejs" ] && [ -x "$root/libexec/pulumi-language-nodejs" ] &&
  [ "$(cat "$bin/.pulumi-language-nodejs.version" 2>/dev/null)" = "$LANGHOST_SDK_VERSION+options-shim" ] ||
  build_language_host
[ -x "$plugin_dir/pulumi-resource-kubernetes" ] && [ "$(cat "$plugin_stamp" 2>/dev/null)" = "$K8S_PROVIDER_MODULE" ] ||
  build_kubernetes_provider
# Dynamic providers run in Node: the host is the dynamic-provider module of the @pulumi/pulumi the program uses
# (resolved from the program's directory, where Pulumi starts it).
dynamic_host="$bin/pulumi-resource-pulumi-nodejs"
[ -x "$dynamic_host" ] || {
  printf '%s\n' '#!/bin/sh' \
    'exec node "$(node -p "require.resolve('"'"'@pulumi/pulumi/cmd/dynamic-provider'"'"')")" "$@"' >"$dynamic_host.tmp"
  chmod +x "$dynamic_host.tmp" && mv "$dynamic_host.tmp" "$dynamic_host"
}

if [ "${1:-}" = "--export" ]; then
  printf 'export PATH=%q:"$PATH"\n' "$bin"
  printf 'export PULUMI_HOME=%q\n' "$PULUMI_HOME_DIR"
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
else
  echo "$bin/pulumi"
fi
