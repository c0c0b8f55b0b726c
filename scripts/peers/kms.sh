#!/usr/bin/env bash
# Builds a local key management service speaking AWS KMS's API (local-kms, pinned, from its Go module) into the
# peers cache, for the tests and benchmarks of K8S_PULUMI_SECRETS_PROVIDER=awskms://...: the Pulumi CLI's own
# awskms keeper (gocloud.dev, AWS SDK v2) talks to it through the URL's endpoint parameter.
# Prints the path of the binary. Its main is kms/main.go here: it binds a loopback address chosen at run time
# (local-kms's own main binds every interface on a fixed port). local-kms is a test double of AWS KMS made for
# development and tests; production uses a real key manager.
source "$(dirname "$0")/lib.sh"
LOCAL_KMS_MODULE=v0.0.0-20260228092603-2a5e92d09ab6
out="$PEERS_CACHE/local-kms-$LOCAL_KMS_MODULE/local-kms"
if [ ! -x "$out" ]; then
  log "building local-kms $LOCAL_KMS_MODULE from its Go module (under a minute the first time)"
  wrap="$PEERS_CACHE/local-kms-$LOCAL_KMS_MODULE/wrapper"
  mkdir -p "$wrap"
  cat >"$wrap/go.mod" <<MOD
module wrapper/localkms

go 1.24.0

require github.com/nsmithuk/local-kms $LOCAL_KMS_MODULE
MOD
  cp "$(dirname "$0")/kms/main.go" "$wrap/main.go"
  (cd "$wrap" && run_logged local-kms-tidy go mod tidy)
  (cd "$wrap" && CGO_ENABLED=0 run_logged local-kms-build go build -trimpath -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
echo "$out"
