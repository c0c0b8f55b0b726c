# syntax=docker/dockerfile:1
# The executors image: `colonyos-executor <sleep|backup|k8s>`. Multi-stage, Node 24, runs as a non-root user.
# Pinned versions must match package.json (checked by test/unit/dockerfile.test.ts).
ARG NODE_VERSION=24
ARG PULUMI_VERSION=3.259.0
ARG PULUMI_KUBERNETES_VERSION=4.25.0
# The image the Pulumi stage starts from. The default downloads the CLI and the provider (get.pulumi.com); an image
# that already holds /opt/pulumi and /opt/pulumi-home at these versions (scripts/peers/image.sh builds one from the
# locally built peers, for machines without internet) is used as it is.
ARG PULUMI_BASE=debian:bookworm-slim

FROM node:${NODE_VERSION}-bookworm-slim AS build
# Optional: the npm registry to install from (npm reads it from the environment); unset, npm's default.
ARG NPM_CONFIG_REGISTRY
WORKDIR /app
COPY package.json package-lock.json ./
# Optional: the CA bundle npm must trust where a TLS-inspecting proxy stands between the build and the registry
# (`--secret id=npm-ca,src=<bundle>`; a secret, so that it stays out of the image). npm's cache is kept across builds.
RUN --mount=type=secret,id=npm-ca --mount=type=cache,target=/root/.npm \
    if [ -s /run/secrets/npm-ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/npm-ca; fi \
 && npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY infra ./infra
# src/local (the local pod runner) is development tooling for kwok clusters: it does not ship.
RUN npm run build && rm -rf dist/src/local && npm prune --omit=dev

# The Pulumi CLI, its Node.js language host and the Kubernetes provider, for the k8s executor. Installed at build
# time so that the executor never downloads plugins at run time.
FROM ${PULUMI_BASE} AS pulumi
ARG PULUMI_VERSION
ARG PULUMI_KUBERNETES_VERSION
ENV PULUMI_HOME=/opt/pulumi-home
RUN [ -x /opt/pulumi/pulumi ] || { apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL "https://get.pulumi.com/releases/sdk/pulumi-v${PULUMI_VERSION}-linux-x64.tar.gz" | tar -xz -C /opt; }
RUN [ -x "$PULUMI_HOME/plugins/resource-kubernetes-v${PULUMI_KUBERNETES_VERSION}/pulumi-resource-kubernetes" ] \
 || /opt/pulumi/pulumi plugin install resource kubernetes "v${PULUMI_KUBERNETES_VERSION}"
# The versions must be the pinned ones, whichever way they came.
RUN /opt/pulumi/pulumi version | grep -qx "v${PULUMI_VERSION}"

FROM node:${NODE_VERSION}-bookworm-slim
# PostgreSQL client tools (pg_dump, pg_restore, psql) for the backup executor.
# tini as PID 1: it reaps the processes orphaned to it (a Pulumi provider whose engine was killed) and forwards signals.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=pulumi /opt/pulumi /opt/pulumi
# Owned by the executor (the engine writes there); chowned while copied, since a recursive chown afterwards would store the
# provider (170 MB) in the image a second time.
COPY --from=pulumi --chown=65532:65532 /opt/pulumi-home /opt/pulumi-home
ENV PATH=/opt/pulumi:$PATH \
    PULUMI_HOME=/opt/pulumi-home \
    PULUMI_SKIP_UPDATE_CHECK=true \
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The uid the pod securityContext runs as (see src/k8s/component.ts).
RUN groupadd --gid 65532 executor && useradd --uid 65532 --gid 65532 --home-dir /data --create-home executor
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "/app/dist/src/cli.js"]
CMD ["--help"]
