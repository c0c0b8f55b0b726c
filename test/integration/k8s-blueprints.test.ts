/**
 * The k8s executor as the reconciler of ExecutorDeployment blueprints, on real peers (Colonies 1.9.12, Pulumi, a
 * Kubernetes API with kwok nodes), driven by the official CLI only: the owner adds this project's definition with
 * the test executor's type as handler; a member adds, sets and removes blueprints, and the server submits the
 * reconcile and cleanup calls the executor runs. The test reads the cluster, the blueprints' status and the
 * executors' state to check what happened; it never calls the executor itself.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, userClient } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import type { Blueprint } from "../../src/colonies/types.js";
import { ExecutorState, type Process, ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { executorDeploymentDefinition, KIND } from "../../src/executors/k8s/blueprint/definition.js";
import { k8sExecutor } from "../../src/executors/k8s.js";

/** The test k8s executor's type: the definition's handler, so the server's blueprint calls go to it. */
const HANDLER = "k8s-bp";
const ENV = { GREETING: "hello: world, and more", URL: "http://db:5432/x?a=1,b=2" };

let server: ColoniesServer;
let runtime: ExecutorRuntime;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
let specDir: string;

function specFile(name: string, content: unknown): string {
  const file = join(specDir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

function blueprint(name: string, spec: Record<string, unknown>) {
  return specFile(`${name}.json`, { kind: KIND, metadata: { name }, spec });
}

async function read(name: string): Promise<Blueprint> {
  return userClient(server).getBlueprint(server.colonyName, name, server.userPrvKey);
}

/** Waits until the blueprint's status satisfies `done` (the reconciler wrote it); returns that status. */
async function statusWhen(name: string, done: (status: Record<string, unknown>) => boolean) {
  let status: Record<string, unknown> = {};
  await waitFor(
    `the status of blueprint ${name}`,
    async () => {
      status = (await read(name)).status ?? {};
      return done(status);
    },
    120_000,
  );
  return status;
}

async function deploymentNames(): Promise<string[]> {
  const list = await apps.listNamespacedDeployment({ namespace });
  return list.items.map((d) => d.metadata?.name ?? "").sort();
}

function stackFiles(name: string): string[] {
  return readdirSync(dataDir, { recursive: true, encoding: "utf8" }).filter(
    (f) => f.includes(join("state", ".pulumi", "stacks")) && basename(f) === `${name}.json`,
  );
}

beforeAll(async () => {
  const kubeConfig = loadKubeConfig({ path: clusterKubeconfig() });
  apps = kubeConfig.makeApiClient(AppsV1Api);
  core = kubeConfig.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-bp");
  server = await startColoniesServer();
  dataDir = await mkdtemp(join(tmpdir(), "k8s-bp-"));
  specDir = await mkdtemp(join(tmpdir(), "k8s-bp-specs-"));
  const kubeconfig = await executorKubeconfig(kubeConfig, namespace, dataDir);
  runtime = await startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase: randomBytes(16).toString("hex") },
      {
        COLONIES_EXECUTOR_TYPE: HANDLER,
        K8S_ROLLOUT_TIMEOUT: "60",
        K8S_ALLOWED_ENV: "GREETING,URL",
        EXECUTOR_CONCURRENCY: "4",
      },
    ),
  );
  // The owner registers the definition (the CLI reads the owner key from its environment).
  await server.cli(
    ["blueprint", "definition", "add", "--spec", specFile("def.json", executorDeploymentDefinition(HANDLER))],
    {
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
    },
  );
}, 300_000);

afterAll(async () => {
  await runtime?.shutdown();
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("ExecutorDeployment blueprints through the official CLI", () => {
  it("a member's blueprint becomes a ready Deployment with its env exactly, and a status", async () => {
    await server.cli([
      "blueprint",
      "add",
      "--spec",
      blueprint("web", { image: TEST_IMAGE, replicas: 2, executorType: "web", env: ENV }),
    ]);
    const status = await statusWhen("web", (s) => s.runningInstances === 2);
    expect(status).toMatchObject({ totalInstances: 2, generation: 0 });
    expect(status.message).toBeUndefined();
    const instances = status.instances as Record<string, unknown>[];
    expect(instances).toHaveLength(2);
    for (const instance of instances) {
      expect(instance).toMatchObject({ type: "pod", state: "running", image: TEST_IMAGE });
      expect(instance.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(instance.lastCheck as string)).not.toBeNaN();
    }
    const deployment = await apps.readNamespacedDeployment({ name: "web", namespace });
    expect(deployment.status?.readyReplicas).toBe(2);
    const env = deployment.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "GREETING")?.value).toBe(ENV.GREETING);
    expect(env.find((e) => e.name === "URL")?.value).toBe(ENV.URL);
    // The deployment runs as an executor identity of its own type.
    const executors = await userClient(server).getExecutors(server.colonyName, server.userPrvKey);
    expect(
      executors.filter((e) => e.executortype === "web" && e.state === ExecutorState.APPROVED),
    ).toHaveLength(1);
  });

  it("blueprint set spec.replicas scales it, and blueprint get shows running/total instances", async () => {
    await server.cli(["blueprint", "set", "--name", "web", "--key", "spec.replicas", "--value", "3"]);
    const status = await statusWhen("web", (s) => s.generation === 1 && s.runningInstances === 3);
    expect(status.totalInstances).toBe(3);
    expect((await apps.readNamespacedDeployment({ name: "web", namespace })).spec?.replicas).toBe(3);
    const { stdout } = await server.cli(["blueprint", "get", "--name", "web"]);
    expect(stdout).toMatch(/3\s*\/\s*3|Running.*3/i);
    for (const instance of status.instances as { name: string }[]) expect(stdout).toContain(instance.name);
  });

  it("refuses deploy/scale/undeploy/autoscale of a blueprint's name, and a member's cleanup of a live one", async () => {
    const calls: [string, string[]][] = [
      ["deploy", ["--args", `web,1,1,false,${TEST_IMAGE}`, "--kwargs", "executortype:web"]],
      ["scale", ["--args", "web,1"]],
      ["undeploy", ["--args", "web"]],
      ["autoscale", ["--args", "web,1,4"]],
      ["cleanup", ["--kwargs", `kind:${KIND},blueprintName:web`]],
    ];
    for (const [func, args] of calls) {
      const said = await server
        .cli(["function", "exec", "--func", func, ...args, "--targettype", HANDLER, "--wait"])
        .then(
          ({ stdout, stderr }) => stdout + stderr,
          (error: Error) => error.message,
        );
      expect(said, func).not.toContain("Process finished successfully");
    }
    const failed = await userClient(server).getProcesses(
      { colonyName: server.colonyName, state: ProcessState.FAILED, executorType: HANDLER },
      server.userPrvKey,
    );
    for (const [func] of calls.slice(0, 4)) {
      expect(failed.find((p) => p.spec?.funcname === func)?.errors?.[0], func).toMatch(
        new RegExp(
          `^${func}: web is the deployment of blueprint web; change it with \`colonies blueprint set/update --name web\``,
        ),
      );
    }
    expect(failed.find((p) => p.spec?.funcname === "cleanup")?.errors?.[0]).toMatch(
      /^cleanup: blueprint web still exists; remove it with `colonies blueprint remove --name web`/,
    );
    const deployment = await apps.readNamespacedDeployment({ name: "web", namespace });
    expect(deployment.spec?.replicas).toBe(3);
    expect(deployment.metadata?.annotations?.["colonyos.io/autoscale"]).toBeUndefined();
  });

  it("a blueprint with an image outside the policy creates nothing, and its status says why", async () => {
    await server.cli([
      "blueprint",
      "add",
      "--spec",
      blueprint("rogue", { image: "docker.io/someone/miner:1", replicas: 1, executorType: "rogue" }),
    ]);
    const status = await statusWhen("rogue", (s) => typeof s.message === "string");
    expect(status.message).toMatch(/reconcile: blueprint rogue: .*K8S_ALLOWED_IMAGES/);
    expect(status).toMatchObject({ runningInstances: 0, totalInstances: 0, instances: [] });
    expect(await deploymentNames()).toEqual(["web"]);
    expect(stackFiles("rogue")).toEqual([]);
    // The reconcile process itself failed with the same message.
    const failed = await userClient(server).getProcesses(
      { colonyName: server.colonyName, state: ProcessState.FAILED, executorType: HANDLER },
      server.userPrvKey,
    );
    const reconcile = failed.find((p) => p.spec?.kwargs?.blueprintName === "rogue");
    expect(reconcile?.errors?.[0]).toBe(status.message);
    // Its cleanup has nothing to remove, and succeeds.
    await server.cli(["blueprint", "remove", "--name", "rogue"]);
    await waitFor(
      "the cleanup of rogue",
      async () =>
        (
          await userClient(server).getProcesses(
            { colonyName: server.colonyName, state: ProcessState.SUCCESS, executorType: HANDLER },
            server.userPrvKey,
          )
        ).some((p) => p.spec?.funcname === "cleanup" && p.spec?.kwargs?.blueprintName === "rogue"),
      30_000,
    );
  });

  it("blueprint reconcile --force restarts every pod, one at a time", async () => {
    const uids = async () =>
      (await core.listNamespacedPod({ namespace, labelSelector: "app.kubernetes.io/instance=web" })).items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => p.metadata?.uid ?? "");
    const before = await uids();
    expect(before).toHaveLength(3);
    const generation = (await read("web")).metadata.generation ?? 0;
    await server.cli(["blueprint", "reconcile", "--name", "web", "--force"]);
    const status = await statusWhen("web", (s) => (s.generation as number) > generation);
    expect(status.runningInstances).toBe(3);
    const after = await uids();
    expect(after).toHaveLength(3);
    for (const uid of after) expect(before).not.toContain(uid);
  });

  it("the server's cron reconcile {kind} undoes a kubectl scale behind the blueprint's back", async () => {
    await apps.patchNamespacedDeploymentScale(
      { name: "web", namespace, body: { spec: { replicas: 1 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    // The 1.9.12 server's cron runs every 60 s: its reconcile {kind} (only) converges every blueprint.
    let cron: Process | undefined;
    await waitFor(
      "the cron's reconcile",
      async () => {
        const done = await userClient(server).getProcesses(
          { colonyName: server.colonyName, state: ProcessState.SUCCESS, executorType: HANDLER },
          server.userPrvKey,
        );
        cron = done.find(
          (p) => p.spec?.funcname === "reconcile" && p.spec?.kwargs?.blueprintName === undefined,
        );
        return cron !== undefined;
      },
      100_000,
    );
    expect(cron?.spec?.kwargs).toEqual({ kind: KIND });
    expect(cron?.out?.[0]).toMatchObject({ kind: KIND, converged: ["web"], removed: [] });
    expect((await apps.readNamespacedDeployment({ name: "web", namespace })).spec?.replicas).toBe(3);
  }, 120_000);

  it("blueprint remove deletes the Deployment, the stack and the identity", async () => {
    expect(stackFiles("web").length).toBeGreaterThan(0);
    await server.cli(["blueprint", "remove", "--name", "web"]);
    await waitFor("the Deployment deleted", async () => !(await deploymentNames()).includes("web"), 120_000);
    await waitFor("the stack removed", async () => stackFiles("web").length === 0, 30_000);
    // Removed executors stay as UNREGISTERED records in Colonies 1.9.
    await waitFor(
      "the identity removed",
      async () =>
        (await userClient(server).getExecutors(server.colonyName, server.userPrvKey)).every(
          (e) => e.executortype !== "web" || e.state === ExecutorState.UNREGISTERED,
        ),
      30_000,
    );
  });
});
