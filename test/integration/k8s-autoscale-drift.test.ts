/**
 * Beyond the anchors, on real peers, driven through the official `colonies` CLI: queue-aware autoscaling (a
 * deployment of sleep executors that the local pod runner really runs grows from 0 to 4 under a burst of 40
 * sleeps and returns to 0 once the queue drains, without flapping, every decision recorded with its reason)
 * and drift (a `kubectl scale`, an image edit and a deleted Secret behind the executor's back are reported by
 * `reconcile dryrun:true` and by the periodic check's metrics, and undone by `reconcile` or, after a restart
 * with K8S_DRIFT_REMEDIATE=true, by the periodic check itself; the autoscale policy survives the restart).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startExecutorPodRunner, startRuntime, userClient, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import type { AutoscaleDecision } from "../../src/executors/k8s/autoscale/policy.js";
import type { Drift } from "../../src/executors/k8s/drift/compare.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import type { LocalPodRunner } from "../../src/local/pod-runner.js";

const BURST = 40;
const SLEEP_MS = 1500;
/** Bounds stated and checked (the measured figures are printed and recorded in the README). */
const GROW_BOUND_MS = 60_000;
const SHRINK_BOUND_MS = 90_000;
const COOLDOWN_SECONDS = 10;
const OTHER_IMAGE = "busybox:1.36";

let server: ColoniesServer;
let runtime: ExecutorRuntime;
let runner: LocalPodRunner;
let admin: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
let kubeconfig: string;
const passphrase = randomBytes(8).toString("hex");

function startK8sExecutor(extra: Record<string, string>): Promise<ExecutorRuntime> {
  return startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase },
      {
        K8S_RUNTIME_IMAGES: "registry.example.com/colonyos/*",
        K8S_ALLOWED_EXECUTOR_TYPES: "as-sleep,drift-sleep",
        K8S_ROLLOUT_TIMEOUT: "120",
        K8S_AUTOSCALE_INTERVAL: "2",
        EXECUTOR_CONCURRENCY: "4",
        EXECUTOR_HTTP_PORT: "0",
        EXECUTOR_HTTP_HOST: "127.0.0.1",
        ...extra,
      },
    ),
  );
}

/**
 * `colonies function exec --wait` with string arguments, as users call it; the first value of the process's `out`
 * (read through the API: the CLI prints it in Go's notation).
 */
async function cli(func: string, args: string, kwargs?: string): Promise<Record<string, unknown>> {
  const argv = ["function", "exec", "--func", func, "--targettype", "k8s", "--wait", "--args", args];
  const what = `${func} ${args} ${kwargs ?? ""}`;
  const { stderr } = await server
    .cli(kwargs ? [...argv, "--kwargs", kwargs] : argv)
    .catch(async (error: Error) => {
      // The process log holds the long story (the engine's output).
      const id = /ProcessId=([0-9a-f]{64})/.exec(error.message)?.[1];
      const logs = id
        ? await userClient(server).getLogs(
            { colonyName: server.colonyName, processId: id },
            server.userPrvKey,
          )
        : [];
      throw new Error(`${what}: ${error.message}\n${logs.map((l) => l.message).join("\n")}`);
    });
  expect(stderr, what).toContain("Process finished successfully");
  const id = /ProcessId=([0-9a-f]{64})/.exec(stderr)?.[1] as string;
  return (await waitDone(server, id)).out?.[0] as Record<string, unknown>;
}

/** `colonies function exec` without --wait, as a user scripts a burst; the process id. */
async function submitCli(type: string, func: string, args: string, kwargs?: string): Promise<string> {
  const argv = ["function", "exec", "--func", func, "--targettype", type, "--args", args];
  const { stderr } = await server.cli(kwargs ? [...argv, "--kwargs", kwargs] : argv);
  const id = /ProcessId=([0-9a-f]{64})/.exec(stderr)?.[1];
  if (!id) throw new Error(`no process id in the CLI's output: ${stderr}`);
  return id;
}

async function replicas(name: string): Promise<number | undefined> {
  return (await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas;
}

async function readyPods(name: string): Promise<number> {
  return (await apps.readNamespacedDeployment({ name, namespace })).status?.readyReplicas ?? 0;
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${runtime.httpPort}/metrics`)).text();
}

/** What `kubectl scale` does: a write of the scale subresource. */
async function kubectlScale(name: string, pods: number): Promise<void> {
  await apps.patchNamespacedDeploymentScale(
    { name, namespace, body: { spec: { replicas: pods } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

/** What `kubectl set image deployment/<name> executor-0=<image>` does. */
async function kubectlSetImage(name: string, image: string): Promise<void> {
  await apps.patchNamespacedDeployment(
    {
      name,
      namespace,
      body: { spec: { template: { spec: { containers: [{ name: "executor-0", image }] } } } },
    },
    setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
  );
}

beforeAll(async () => {
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-autoscale");
  server = await startColoniesServer();
  dataDir = mkdtempSync(join(tmpdir(), "k8s-autoscale-"));
  kubeconfig = await executorKubeconfig(admin, namespace, dataDir);
  runtime = await startK8sExecutor({ K8S_DRIFT_INTERVAL: "2" });
  // The deployed containers, run as local processes with the pods' environment.
  runner = await startExecutorPodRunner(admin, namespace);
}, 600_000);

afterAll(async () => {
  await runner?.stop();
  await runtime?.shutdown();
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("autoscaling from the Colonies queue", () => {
  it(`grows 0 → 4 under ${BURST} sleeps, runs them all, and returns to 0 without flapping`, async () => {
    await cli("deploy", `burst,0,1,false,${TEST_IMAGE}`, "executortype:as-sleep,cmd:sleep");
    const set = await cli("autoscale", "burst,0,4", `cooldown:${COOLDOWN_SECONDS},per_executor:1`);
    expect(set).toMatchObject({
      deployment: "burst",
      autoscale: { min: 0, max: 4, perExecutor: 1, cooldownSeconds: COOLDOWN_SECONDS },
      pods: 0,
    });
    expect(await cli("get_autoscale", "burst")).toMatchObject({ enabled: true, min: 0, max: 4, pods: 0 });

    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < BURST; i++) ids.push(await submitCli("as-sleep", "sleep", String(SLEEP_MS)));
    await waitFor("4 ready pods", async () => (await readyPods("burst")) === 4, GROW_BOUND_MS);
    const grewMs = Date.now() - started;
    const waiting = await cli("get_autoscale", "burst");
    expect(waiting.pods).toBe(4);

    for (const id of ids) {
      const done = await waitDone(server, id, 300_000);
      expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    }
    const drainedAt = Date.now();
    // The Deployment shows 0 as soon as the update patches it; the update (and with it the recorded decision) ends
    // once the rollout has: wait for both.
    await waitFor(
      "the deployment to return to 0 pods, recorded",
      async () => (await replicas("burst")) === 0 && (await cli("get_autoscale", "burst")).pods === 0,
      SHRINK_BOUND_MS,
    );
    const shrankMs = Date.now() - drainedAt;

    const after = await cli("get_autoscale", "burst");
    const decisions = after.decisions as AutoscaleDecision[];
    const sizes = decisions.map((d) => d.to);
    console.info(
      `autoscale: 4 pods ready ${(grewMs / 1000).toFixed(1)} s after the first submission, ${BURST} sleeps of ${SLEEP_MS} ms done after ${((drainedAt - started) / 1000).toFixed(1)} s, back to 0 ${(shrankMs / 1000).toFixed(1)} s after the queue drained; decisions: ${decisions.map((d) => `${d.from}→${d.to} (${d.reason})`).join("; ")}`,
    );
    for (const d of decisions) expect(d.reason, JSON.stringify(d)).toMatch(/\S/);
    // Up, then down: one change of direction at most (no flapping), ending at the minimum.
    const directions = decisions.map((d) => Math.sign(d.to - d.from)).filter((s) => s !== 0);
    const changes = directions.filter((s, i) => i > 0 && s !== directions[i - 1]).length;
    expect(changes, sizes.join(",")).toBeLessThanOrEqual(1);
    expect(Math.max(...sizes)).toBe(4);
    expect(sizes.at(-1)).toBe(0);
    expect(after.pods).toBe(0);
    // The autoscaler's updates are the stack's: the recorded spec says 0 as well.
    expect(await cli("get_scale", "burst")).toBe(0);
    expect(await metrics()).toMatch(/colonyos_k8s_autoscale_decisions\{[^}]*direction="up"[^}]*\} [1-9]/);
  }, 600_000);

  it("refuses bad policies clearly and changes nothing", async () => {
    const refusals: [string, string | undefined, RegExp][] = [
      ["burst,3,2", undefined, /autoscale: min \(3\) must not be larger than max \(2\)/],
      ["burst", undefined, /autoscale: min and max are required \(or off:true to stop autoscaling\)/],
      ["burst,0,0", undefined, /max must be a whole number from 1 to/],
      ["burst,0,4", "per_executor:0", /per_executor must be a whole number from 1/],
      ["burst,0,4", "cooldown:soon", /cooldown must be a whole number/],
      ["burst,1,2", "off:true", /off:true takes no min or max/],
      ["nosuch,0,2", undefined, /autoscale: unknown deployment: nosuch/],
    ];
    for (const [args, kwargs, expected] of refusals) {
      const done = await waitDone(server, await submitCli("k8s", "autoscale", args, kwargs), 120_000);
      expect(done.state, `${args} ${kwargs ?? ""}`).toBe(ProcessState.FAILED);
      expect(done.errors?.[0], `${args} ${kwargs ?? ""}`).toMatch(expected);
    }
    expect(await cli("get_autoscale", "burst")).toMatchObject({ enabled: true, min: 0, max: 4 });
  });
});

describe("drift", () => {
  it("reports a kubectl scale and an image edit with reconcile dryrun:true and in the metrics, and undoes them", async () => {
    await cli("deploy", `drifty,2,1,false,${TEST_IMAGE}`, "executortype:drift-sleep,cmd:sleep");
    await kubectlScale("drifty", 4);
    await kubectlSetImage("drifty", OTHER_IMAGE);

    const report = await cli("reconcile", "drifty", "dryrun:true");
    expect(report).toMatchObject({ deployment: "drifty", drifted: true, dryrun: true });
    expect(report.drift).toEqual(
      expect.arrayContaining([
        { object: "Deployment/drifty", field: "replicas", recorded: 2, live: 4 },
        { object: "Deployment/drifty/executor-0", field: "image", recorded: TEST_IMAGE, live: OTHER_IMAGE },
      ]),
    );
    // A dry run changes nothing.
    expect(await replicas("drifty")).toBe(4);
    // The periodic check (K8S_DRIFT_INTERVAL=2, report only) exports it.
    await waitFor(
      "the drift check to export the drifted fields",
      async () => /colonyos_k8s_drifted_fields\{[^}]*deployment="drifty"[^}]*\} 2/.test(await metrics()),
      30_000,
    );

    const fixed = await cli("reconcile", "drifty");
    expect(fixed).toMatchObject({ drifted: true, dryrun: false, remaining: [] });
    const deployment = await apps.readNamespacedDeployment({ name: "drifty", namespace });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(TEST_IMAGE);
    expect(await cli("reconcile", "drifty", "dryrun:true")).toMatchObject({ drifted: false, drift: [] });
  }, 300_000);

  it("puts back a deleted Secret", async () => {
    await core.deleteNamespacedSecret({ name: "drifty-keys", namespace });
    const report = await cli("reconcile", "drifty", "dryrun:true");
    expect(report.drift).toEqual([
      { object: "Secret/drifty-keys", field: "(object)", recorded: "present", live: "deleted" },
    ] satisfies Drift[]);
    expect(await cli("reconcile", "drifty")).toMatchObject({ remaining: [] });
    const secret = await core.readNamespacedSecret({ name: "drifty-keys", namespace });
    expect(Object.keys(secret.data ?? {})).toEqual(["COLONIES_PRVKEY"]);
  }, 300_000);

  it("refuses to take over someone else's object put in place of a deleted one", async () => {
    await core.deleteNamespacedSecret({ name: "drifty-keys", namespace });
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: "drifty-keys" }, stringData: { theirs: "keep" } },
    });
    const done = await waitDone(server, await submitCli("k8s", "reconcile", "drifty"), 120_000);
    expect(done.state).toBe(ProcessState.FAILED);
    expect(done.errors?.[0]).toMatch(
      /a Secret named drifty-keys already exists .* not created by this executor/,
    );
    const theirs = await core.readNamespacedSecret({ name: "drifty-keys", namespace });
    expect(Object.keys(theirs.data ?? {})).toEqual(["theirs"]);
    // Once it is gone, reconcile puts the stack's own back.
    await core.deleteNamespacedSecret({ name: "drifty-keys", namespace });
    expect(await cli("reconcile", "drifty")).toMatchObject({ remaining: [] });
  }, 300_000);

  it("scale starts from the live size: previous is what kubectl left", async () => {
    await kubectlScale("drifty", 5);
    const scaled = await cli("scale", "drifty,3");
    expect(scaled).toMatchObject({ pods: 3, previous: 5 });
    expect(await replicas("drifty")).toBe(3);
  }, 300_000);
});

describe("after a restart with K8S_DRIFT_REMEDIATE=true", () => {
  it("keeps the autoscale policy, and the periodic check converges what drifted", async () => {
    await runtime.shutdown();
    runtime = await startK8sExecutor({ K8S_DRIFT_INTERVAL: "2", K8S_DRIFT_REMEDIATE: "true" });
    expect(await cli("get_autoscale", "burst")).toMatchObject({ enabled: true, min: 0, max: 4 });

    await kubectlScale("drifty", 6);
    const started = Date.now();
    await waitFor(
      "the drift check to put the size back",
      async () => (await replicas("drifty")) === 3,
      90_000,
    );
    console.info(`drift: a kubectl scale was undone ${((Date.now() - started) / 1000).toFixed(1)} s later`);
    await waitFor(
      "the drift metric to return to 0",
      async () => /colonyos_k8s_drifted_fields\{[^}]*deployment="drifty"[^}]*\} 0/.test(await metrics()),
      30_000,
    );

    await cli("autoscale", "burst", "off:true");
    expect(await cli("get_autoscale", "burst")).toMatchObject({ enabled: false });
    const deployment = await apps.readNamespacedDeployment({ name: "burst", namespace });
    expect(deployment.metadata?.annotations?.["colonyos.io/autoscale"]).toBeUndefined();
    await cli("undeploy", "burst");
    await cli("undeploy", "drifty");
  }, 300_000);
});
