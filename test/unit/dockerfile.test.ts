/** Built for real by scripts/peers/image.sh (buildah, no Docker engine); here: keep it in step with the code and pins. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dockerfile = readFileSync("Dockerfile", "utf8");
const pkg = JSON.parse(readFileSync("package.json", "utf8"));
const tsconfig = JSON.parse(readFileSync("tsconfig.json", "utf8"));
/** `${NAME}`: a build argument's expansion as the Dockerfile writes it. */
const arg = (name: string) => `\${${name}}`;

describe("Dockerfile", () => {
  it("runs the built CLI entry point named in package.json", () => {
    const bin: string = pkg.bin["colonyos-executor"];
    // tini as PID 1 reaps the processes orphaned to it (a Pulumi provider whose engine was killed)
    expect(dockerfile).toContain(
      `ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "/app/${bin}"]`,
    );
    expect(dockerfile).toMatch(/apt-get install[^\n]* tini/);
    // the same flag as the bin's shebang
    expect(readFileSync("src/cli.ts", "utf8").split("\n")[0]).toBe(
      "#!/usr/bin/env -S node --max-semi-space-size=1",
    );
    expect(bin).toBe(`${tsconfig.compilerOptions.outDir}/src/cli.js`);
    expect(existsSync("src/cli.ts")).toBe(true);
  });

  it("pins the Pulumi CLI and Kubernetes provider to the npm packages' versions", () => {
    expect(dockerfile).toContain(`ARG PULUMI_VERSION=${pkg.dependencies["@pulumi/pulumi"]}`);
    expect(dockerfile).toContain(`ARG PULUMI_KUBERNETES_VERSION=${pkg.dependencies["@pulumi/kubernetes"]}`);
  });

  it("takes the Pulumi CLI and provider from PULUMI_BASE when that image has them, else downloads them", () => {
    // scripts/peers/image.sh passes an image built from the peers cache (no internet needed); the default downloads.
    expect(dockerfile).toContain("ARG PULUMI_BASE=debian:bookworm-slim");
    expect(dockerfile).toContain(`FROM ${arg("PULUMI_BASE")} AS pulumi`);
    expect(dockerfile).toContain("RUN [ -x /opt/pulumi/pulumi ] || {");
    expect(dockerfile).toContain(
      `|| /opt/pulumi/pulumi plugin install resource kubernetes "v${arg("PULUMI_KUBERNETES_VERSION")}"`,
    );
    // whichever way they came, the versions are the pinned ones
    expect(dockerfile).toContain(`RUN /opt/pulumi/pulumi version | grep -qx "v${arg("PULUMI_VERSION")}"`);
    expect(readFileSync("scripts/peers/image.sh", "utf8")).toContain("--build-arg PULUMI_BASE=");
  });

  it("installs the npm packages from the registry and with the CA bundle the builder passes, if any", () => {
    expect(dockerfile).toContain("ARG NPM_CONFIG_REGISTRY\n");
    expect(dockerfile).toContain("RUN --mount=type=secret,id=npm-ca");
    expect(dockerfile).toContain("export NPM_CONFIG_CAFILE=/run/secrets/npm-ca");
  });

  it("uses the Node major the project targets and runs as the uid of the pod security context", () => {
    const major = /^>=(\d+)/.exec(pkg.engines.node)?.[1];
    const nodeArg = Number(/ARG NODE_VERSION=(\d+)/.exec(dockerfile)?.[1]);
    expect(nodeArg).toBeGreaterThanOrEqual(Number(major));
    expect(nodeArg).toBe(24);
    const component = readFileSync("src/k8s/component.ts", "utf8");
    const uid = /runAsUser: (\d+)/.exec(component)?.[1];
    expect(dockerfile).toContain(`USER ${uid}:${uid}`);
    // the engine writes to PULUMI_HOME (chowned while copied: a recursive chown would store the provider twice)
    expect(dockerfile).toContain(
      `COPY --from=pulumi --chown=${uid}:${uid} /opt/pulumi-home /opt/pulumi-home`,
    );
    expect(dockerfile).not.toContain("chown -R");
  });

  it("ships the PostgreSQL client tools the backup executor spawns", () => {
    expect(dockerfile).toMatch(/apt-get install[^\n]*postgresql-client/);
  });

  it("copies every file the build needs", () => {
    for (const file of ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"]) {
      expect(dockerfile).toContain(file);
      expect(existsSync(file)).toBe(true);
    }
  });

  it("leaves the local pod runner (development tooling) out, and nothing shipped imports it", () => {
    expect(dockerfile).toMatch(/npm run build && rm -rf dist\/src\/local/);
    const shipped = readdirSync("src", { recursive: true, encoding: "utf8" }).filter(
      (f) => f.endsWith(".ts") && !f.startsWith("local"),
    );
    for (const file of shipped) {
      expect(readFileSync(join("src", file), "utf8"), file).not.toMatch(/from "(\.\.?\/)+local\//);
    }
  });
});
