/**
 * Smoke tests of the real Pulumi engine against the real local Kubernetes API (no mocks):
 * - the Automation API with an inline program, a file:// backend and passphrase secrets creates a Deployment
 *   through @pulumi/kubernetes (explicit Provider), its pods go Running (kwok), a second identical `up` changes
 *   nothing, a replicas change updates it, destroy removes it;
 * - two stacks updated concurrently from this one process both succeed;
 * - the CLI's own `pulumi preview` and `pulumi up` of a project directory (runtime nodejs, a plain JS program)
 *   prove the Node.js language host and the provider plugin lookup.
 * Needs: eval "$(bash scripts/peers/pulumi.sh --export)"; bash scripts/cluster.sh up; eval "$(bash scripts/cluster.sh env)".
 * Missing pieces make the tests fail with the command to run; they never skip.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import * as kube from "@kubernetes/client-node";
import * as k8s from "@pulumi/kubernetes";
import { LocalWorkspace, PulumiCommand, type PulumiFn, type Stack } from "@pulumi/pulumi/automation/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { waitFor } from "../../peers/ports.js";

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const PULUMI_HOW_TO =
  'build and export the Pulumi engine with `eval "$(bash scripts/peers/pulumi.sh --export)"`';
const PASSPHRASE = "smoke-test-passphrase";

interface Engine {
  /** Directory holding bin/pulumi (for PulumiCommand.get). */
  root: string;
  pulumi: string;
  home: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The engine exported by scripts/peers/pulumi.sh, checked piece by piece; throws what to run when missing. */
function pulumiEngine(): Engine {
  const home = process.env.PULUMI_HOME;
  if (!home) throw new Error(`PULUMI_HOME is unset; ${PULUMI_HOW_TO}`);
  if (process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION !== "true") {
    throw new Error(
      `PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION is not true (plugins would be downloaded); ${PULUMI_HOW_TO}`,
    );
  }
  const dir = (process.env.PATH ?? "").split(delimiter).find((d) => d && executable(join(d, "pulumi")));
  if (!dir) throw new Error(`no pulumi on PATH; ${PULUMI_HOW_TO}`);
  if (!executable(join(dir, "pulumi-language-nodejs"))) {
    throw new Error(`no pulumi-language-nodejs next to ${join(dir, "pulumi")}; ${PULUMI_HOW_TO}`);
  }
  const k8sVersion = JSON.parse(
    readFileSync(join(REPO, "node_modules/@pulumi/kubernetes/package.json"), "utf8"),
  ).version as string;
  const plugin = join(home, "plugins", `resource-kubernetes-v${k8sVersion}`, "pulumi-resource-kubernetes");
  if (!executable(plugin)) throw new Error(`no Kubernetes provider plugin at ${plugin}; ${PULUMI_HOW_TO}`);
  return { root: dirname(dir), pulumi: join(dir, "pulumi"), home };
}

function suffix(): string {
  return randomBytes(3).toString("hex");
}

/** Pods of a Deployment (by its app label) that are Running and not being deleted. */
async function runningPods(core: kube.CoreV1Api, namespace: string, app: string): Promise<number> {
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
  return pods.items.filter((p) => p.status?.phase === "Running" && !p.metadata?.deletionTimestamp).length;
}

async function podCount(core: kube.CoreV1Api, namespace: string, app: string): Promise<number> {
  return (await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items.length;
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (err) {
    if (err instanceof kube.ApiException && err.code === 404) return true;
    throw err;
  }
}

/** An inline program: a namespace and a Deployment of `replicas` pods in it, through an explicit provider. */
function deploymentProgram(kubeconfig: string, namespace: string, app: string, replicas: number): PulumiFn {
  return async () => {
    const provider = new k8s.Provider("local", { kubeconfig: readFileSync(kubeconfig, "utf8") });
    const ns = new k8s.core.v1.Namespace("ns", { metadata: { name: namespace } }, { provider });
    const labels = { app };
    const deployment = new k8s.apps.v1.Deployment(
      app,
      {
        metadata: { name: app, namespace: ns.metadata.name, labels },
        spec: {
          replicas,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            // kwok never pulls the image: pods are scheduled to fake nodes and marked Running.
            spec: { containers: [{ name: "main", image: "registry.invalid/colonyos/smoke:1" }] },
          },
        },
      },
      { provider },
    );
    return { name: deployment.metadata.name, replicas: deployment.spec.replicas };
  };
}

describe("Pulumi engine on the local Kubernetes API", () => {
  let engine: Engine;
  let kubeconfig: string;
  let command: PulumiCommand;
  let core: kube.CoreV1Api;
  let apps: kube.AppsV1Api;
  let scratch: string;
  let backendUrl: string;
  const stacks: Stack[] = [];
  const namespaces: string[] = [];

  // A missing peer fails every test with the command to run (an error thrown in beforeAll would only mark them
  // skipped).
  let setupError: unknown;
  const ready = (): void => {
    if (setupError) throw setupError;
  };

  beforeAll(async () => {
    try {
      await setup();
    } catch (err) {
      setupError = err;
    }
  });

  async function setup(): Promise<void> {
    engine = pulumiEngine();
    kubeconfig = clusterKubeconfig();
    const kc = new kube.KubeConfig();
    kc.loadFromFile(kubeconfig);
    core = kc.makeApiClient(kube.CoreV1Api);
    apps = kc.makeApiClient(kube.AppsV1Api);
    await core.listNode().catch((err: unknown) => {
      throw new Error(
        `the test cluster in ${kubeconfig} does not answer (${String(err)}); start it with \`bash scripts/cluster.sh up\``,
      );
    });
    command = await PulumiCommand.get({ root: engine.root });
    const pinned = JSON.parse(
      readFileSync(join(REPO, "node_modules/@pulumi/pulumi/package.json"), "utf8"),
    ).version;
    if (command.version?.toString() !== pinned) {
      throw new Error(
        `${engine.pulumi} is version ${command.version}, @pulumi/pulumi is ${pinned}; ${PULUMI_HOW_TO}`,
      );
    }
    scratch = mkdtempSync(join(tmpdir(), "colonyos-smoke-pulumi-"));
    mkdirSync(join(scratch, "state"));
    backendUrl = pathToFileURL(join(scratch, "state")).href;
  }

  afterAll(async () => {
    // Leave nothing behind, whatever failed: stacks destroyed, test namespaces deleted, temp dir removed.
    for (const stack of stacks) {
      await stack.destroy().catch(() => undefined);
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    for (const name of namespaces) await core?.deleteNamespace({ name }).catch(() => undefined);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function newStack(project: string, stackName: string, program: PulumiFn): Promise<Stack> {
    const workDir = join(scratch, `${project}-${stackName}`);
    mkdirSync(workDir, { recursive: true });
    const stack = await LocalWorkspace.createOrSelectStack(
      { projectName: project, stackName, program },
      {
        workDir,
        pulumiCommand: command,
        secretsProvider: "passphrase",
        envVars: { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE },
        projectSettings: { name: project, runtime: "nodejs", backend: { url: backendUrl } },
      },
    );
    stacks.push(stack);
    return stack;
  }

  describe("Automation API, inline program", () => {
    const app = `smoke-${suffix()}`;
    const namespace = `smoke-${suffix()}`;
    let stack: Stack;

    it("creates a Deployment whose pods go Running", async () => {
      ready();
      namespaces.push(namespace);
      stack = await newStack("smoke", "deployment", deploymentProgram(kubeconfig, namespace, app, 2));
      const result = await stack.up();
      expect(result.summary.result).toBe("succeeded");
      expect(result.summary.resourceChanges?.create).toBe(4); // stack, provider, namespace, deployment
      expect(result.outputs.name?.value).toBe(app);
      await waitFor("2 Running pods", async () => (await runningPods(core, namespace, app)) === 2, 60_000);
      const deployment = await apps.readNamespacedDeployment({ name: app, namespace });
      expect(deployment.status?.readyReplicas).toBe(2);
    }, 180_000);

    it("a second identical up reports no changes", async () => {
      ready();
      const preview = await stack.preview();
      expect(Object.keys(preview.changeSummary).sort()).toEqual(["same"]);
      const result = await stack.up();
      expect(result.summary.result).toBe("succeeded");
      expect(result.summary.resourceChanges).toEqual({ same: 4 });
    }, 120_000);

    it("a replicas change updates it", async () => {
      ready();
      const result = await stack.up({ program: deploymentProgram(kubeconfig, namespace, app, 3) });
      expect(result.summary.resourceChanges).toEqual({ same: 3, update: 1 });
      expect(result.outputs.replicas?.value).toBe(3);
      await waitFor("3 Running pods", async () => (await runningPods(core, namespace, app)) === 3, 60_000);
    }, 120_000);

    it("destroy removes it", async () => {
      ready();
      const result = await stack.destroy();
      expect(result.summary.result).toBe("succeeded");
      expect(result.summary.resourceChanges?.delete).toBe(4);
      expect(await gone(() => apps.readNamespacedDeployment({ name: app, namespace }))).toBe(true);
      await waitFor(
        "the pods to be deleted",
        async () => (await podCount(core, namespace, app)) === 0,
        60_000,
      );
      await waitFor(
        "the namespace to be deleted",
        () => gone(() => core.readNamespace({ name: namespace })),
        60_000,
      );
    }, 120_000);
  });

  it("updates two stacks concurrently from one process", async () => {
    ready();
    // Each program waits at a barrier until the other program is running too: the two updates can only
    // succeed if the engine runs both inline programs of this process at the same time.
    let arrived = 0;
    let release = (): void => undefined;
    const bothRunning = new Promise<void>((resolve) => {
      release = resolve;
    });
    const barrier = async (): Promise<void> => {
      arrived += 1;
      if (arrived === 2) release();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error("the other stack's program never started: the updates ran one after the other")),
          90_000,
        );
      });
      await Promise.race([bothRunning, timeout]).finally(() => clearTimeout(timer));
    };
    const targets = ["a", "b"].map((name) => ({
      name,
      app: `smoke-${name}-${suffix()}`,
      namespace: `smoke-${name}-${suffix()}`,
    }));
    const created = await Promise.all(
      targets.map(async ({ name, app, namespace }) => {
        namespaces.push(namespace);
        const program = deploymentProgram(kubeconfig, namespace, app, 1);
        return newStack("smoke-concurrent", name, async () => {
          await barrier();
          return program();
        });
      }),
    );
    const ups = await Promise.all(created.map((stack) => stack.up()));
    for (const [i, up] of ups.entries()) {
      const { app, namespace } = targets[i] as (typeof targets)[number];
      expect(up.summary.result).toBe("succeeded");
      expect(up.summary.resourceChanges?.create).toBe(4);
      expect(up.outputs.name?.value).toBe(app);
      await waitFor(
        `a Running pod of ${app}`,
        async () => (await runningPods(core, namespace, app)) === 1,
        60_000,
      );
    }
    expect(arrived).toBe(2);
    const destroyed = await Promise.all(created.map((stack) => stack.destroy()));
    for (const d of destroyed) expect(d.summary.result).toBe("succeeded");
  }, 240_000);

  it("runs `pulumi preview` and `pulumi up` of a Node.js project directory through the CLI", async () => {
    ready();
    const dir = join(scratch, "cli-project");
    const state = join(scratch, "cli-state");
    mkdirSync(dir);
    mkdirSync(state);
    const name = `smoke-cli-${suffix()}`;
    // Runtime options reach the language host: nodeargs preloads a module that the program reports back.
    writeFileSync(
      join(dir, "Pulumi.yaml"),
      [
        "name: smoke-cli",
        "runtime:",
        "  name: nodejs",
        "  options:",
        "    typescript: false",
        '    nodeargs: "--require=./preload.cjs"',
        "main: index.js",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "preload.cjs"), 'globalThis.smokePreloaded = "yes";\n');
    writeFileSync(
      join(dir, "package.json"),
      '{ "name": "smoke-cli", "private": true, "main": "index.js" }\n',
    );
    writeFileSync(
      join(dir, "index.js"),
      [
        '"use strict";',
        'const fs = require("node:fs");',
        'const pulumi = require("@pulumi/pulumi");',
        'const k8s = require("@pulumi/kubernetes");',
        "const config = new pulumi.Config();",
        'const provider = new k8s.Provider("local", { kubeconfig: fs.readFileSync(config.require("kubeconfigPath"), "utf8") });',
        "const cm = new k8s.core.v1.ConfigMap(",
        '  "cm",',
        '  { metadata: { name: config.require("name"), namespace: "default" }, data: { greeting: "hello from " + pulumi.getStack() } },',
        "  { provider },",
        ");",
        "exports.configMap = cm.metadata.name;",
        'exports.preloaded = globalThis.smokePreloaded ?? "no";',
        "",
      ].join("\n"),
    );
    // The program resolves @pulumi/pulumi and @pulumi/kubernetes from the repository's node_modules.
    symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"), "dir");
    const env = {
      ...process.env,
      PULUMI_BACKEND_URL: pathToFileURL(state).href,
      PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
    };
    const pulumi = (...args: string[]) =>
      run(engine.pulumi, [...args, "--non-interactive", "--cwd", dir], { env, maxBuffer: 16 << 20 });

    await pulumi("stack", "init", "dev");
    try {
      await pulumi("config", "set", "kubeconfigPath", kubeconfig);
      await pulumi("config", "set", "name", name);

      const preview = JSON.parse((await pulumi("preview", "--json")).stdout) as {
        changeSummary: Record<string, number>;
        steps: { op: string; urn: string }[];
      };
      expect(preview.changeSummary).toEqual({ create: 3 }); // stack, provider, config map
      expect(
        preview.steps.some((s) => s.op === "create" && s.urn.endsWith("kubernetes:core/v1:ConfigMap::cm")),
      ).toBe(true);
      expect(await gone(() => core.readNamespacedConfigMap({ name, namespace: "default" }))).toBe(true);

      const up = await pulumi("up", "--yes", "--skip-preview");
      expect(up.stdout).toMatch(/3 created/);
      const cm = await core.readNamespacedConfigMap({ name, namespace: "default" });
      expect(cm.data?.greeting).toBe("hello from dev");
      expect(JSON.parse((await pulumi("stack", "output", "--json")).stdout)).toEqual({
        configMap: name,
        preloaded: "yes",
      });

      const again = JSON.parse((await pulumi("preview", "--json")).stdout) as {
        changeSummary: Record<string, number>;
      };
      expect(again.changeSummary).toEqual({ same: 3 });
    } finally {
      await pulumi("destroy", "--yes", "--skip-preview").catch(() => undefined);
      await pulumi("stack", "rm", "--yes", "dev").catch(() => undefined);
    }
    expect(await gone(() => core.readNamespacedConfigMap({ name, namespace: "default" }))).toBe(true);
  }, 240_000);
});
