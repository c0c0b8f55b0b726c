/**
 * kill -9 of the k8s executor (and its pulumi processes) in the middle of an update, then a restart: the stale
 * Pulumi lock is recovered, the interrupted process is re-queued to the new executor, and the deployment
 * converges. Real Colonies server, real Pulumi, real Kubernetes API.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, userClient, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { ExecutorState, ProcessState } from "../../src/colonies/types.js";
import { identitiesOf, lockDir, lockFiles } from "../support/k8s-leftovers.js";

let server: ColoniesServer;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
let kubeconfig: string;
/** The k8s executor's own least-privilege credentials. */
let executorConfig: string;
const running: ChildProcess[] = [];

function startExecutor(): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "k8s"], {
    env: {
      ...process.env,
      ...server.env,
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: "k8s-recovery",
      ...k8sExecutorEnv({ kubeconfig: executorConfig, namespace, dataDir, passphrase: "recovery-test" }),
      EXECUTOR_ASSIGN_TIMEOUT: "5",
      EXECUTOR_LOG_FORMAT: "json",
    },
    detached: true, // its own process group, so that kill -9 reaches pulumi and the provider too
    // Its log, for a failing test's diagnosis.
    stdio: ["ignore", "ignore", openSync(join(dataDir, `executor-${running.length}.log`), "a")],
  });
  running.push(child);
  return child;
}

beforeAll(async () => {
  kubeconfig = clusterKubeconfig();
  const kc = loadKubeConfig({ path: kubeconfig });
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  namespace = `k8s-recovery-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  server = await startColoniesServer();
  dataDir = await mkdtemp(join(tmpdir(), "k8s-recovery-"));
  executorConfig = await executorKubeconfig(kc, namespace, dataDir);
}, 300_000);

afterAll(async () => {
  for (const child of running) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // already gone
    }
  }
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("k8s executor after kill -9", () => {
  it("recovers the stale lock and converges the interrupted deploy", async () => {
    const first = startExecutor();
    const deploy = await submit(server, "k8s", "deploy", ["crash", "3", "1", "false", "busybox:1.36"]);
    await waitFor("the update to hold its lock", async () => lockFiles(dataDir, "crash").length > 0, 120_000);
    process.kill(-(first.pid as number), "SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect(lockFiles(dataDir, "crash").length).toBeGreaterThan(0); // left behind: its holder is dead

    startExecutor();
    const done = await waitDone(server, deploy.processid, 300_000);
    expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect(
      lockFiles(dataDir, "crash"),
      lockFiles(dataDir, "crash")
        .map((f) => readFileSync(join(lockDir(dataDir, "crash"), f), "utf8"))
        .join("\n"),
    ).toEqual([]);
    const deployment = await apps.readNamespacedDeployment({ name: "crash", namespace });
    expect(deployment.spec?.replicas).toBe(3);
    expect(deployment.status?.readyReplicas).toBe(3);

    // and the stack keeps working
    const scaled = await waitDone(
      server,
      (await submit(server, "k8s", "scale", ["crash", "1"])).processid,
      300_000,
    );
    expect(scaled.state, scaled.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect((await apps.readNamespacedDeployment({ name: "crash", namespace })).spec?.replicas).toBe(1);
  });
});

async function stopExecutor(child: ChildProcess): Promise<void> {
  process.kill(-(child.pid as number), "SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
}

describe("kill -9 leaves no executor identity without a stack", () => {
  // One executor at a time on the shared backend: the earlier tests' are stopped.
  beforeAll(async () => {
    await Promise.all(running.filter((c) => c.exitCode === null && c.signalCode === null).map(stopExecutor));
  });

  it("sweeps the identity of a deploy killed before its stack recorded it", async () => {
    // The kill lands while the update holds its lock: the stack records the identity (an output) only when the
    // update ends. Its pods need a node label no node has yet, given only once the first executor is dead.
    const label = `colonyos.io/sweep-${randomBytes(3).toString("hex")}`;
    const first = startExecutor();
    const deploy = await submit(server, "k8s", "deploy", ["orphan", "1", "1", "false", "busybox:1.36"], {
      nodeselector: `${label}=yes`,
    });
    // The identity is registered before the update takes its lock.
    await waitFor(
      "the update to hold its lock",
      async () => lockFiles(dataDir, "orphan").length > 0,
      120_000,
    );
    await stopExecutor(first);
    const [leftover] = await identitiesOf(server, namespace, "orphan");
    expect(leftover).toBeDefined();

    const node = (await core.listNode()).items[0]?.metadata?.name as string;
    const labelNode = (value: string | null) =>
      core.patchNode(
        { name: node, body: { metadata: { labels: { [label]: value } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    await labelNode("yes");
    onTestFinished(() => labelNode(null).then(() => undefined));
    const second = startExecutor();
    const done = await waitDone(server, deploy.processid, 300_000);
    expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    const [out] = (done.out ?? []) as [{ executor: string }];
    const recorded = out.executor;
    expect(recorded).not.toBe(leftover);
    // The re-run registered its own identity; the killed run's is swept (at start-up, in the name's turn).
    await waitFor(
      "only the recorded identity to be left",
      async () => (await identitiesOf(server, namespace, "orphan")).join() === recorded,
      60_000,
    );

    // An undeploy killed mid-destroy, re-run: neither the stack nor any identity is left.
    const undeploy = await submit(server, "k8s", "undeploy", ["orphan"]);
    await waitFor(
      "the destroy to hold its lock",
      async () => lockFiles(dataDir, "orphan").length > 0,
      120_000,
    );
    await stopExecutor(second);
    const third = startExecutor();
    const removed = await waitDone(server, undeploy.processid, 300_000);
    expect(removed.state, removed.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    await waitFor(
      "no identity of orphan",
      async () => (await identitiesOf(server, namespace, "orphan")).length === 0,
      60_000,
    );
    await stopExecutor(third);
  }, 900_000);

  it("removes identities at its location that no stack records, and keeps the recorded ones", async () => {
    // What an undeploy killed between destroying the stack and removing the identity leaves: an approved
    // identity at the executor's location, with no stack. And an identity of another project's executor.
    const client = userClient(server);
    const register = async (name: string, location: string) => {
      const key = generatePrivateKey();
      await client.addExecutor(
        {
          executorid: idOf(key),
          executortype: "ghost",
          executorname: name,
          colonyname: server.colonyName,
          locationname: location,
        },
        server.colonyPrvKey,
      );
      await client.approveExecutor(server.colonyName, name, server.colonyPrvKey);
    };
    const first = startExecutor();
    const deployed = await waitDone(
      server,
      (await submit(server, "k8s", "deploy", ["kept", "1", "1", "false", "busybox:1.36"])).processid,
      300_000,
    );
    expect(deployed.state, deployed.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    const [kept] = await identitiesOf(server, namespace, "kept");
    expect(kept).toBeDefined();
    await stopExecutor(first);
    // A leftover of this executor's location and one of another project's executor in the same namespace.
    await register("ghost-0a1b2c", `kubernetes/${namespace}/colonyos-executors`);
    await register("ghost-3d4e5f", `kubernetes/${namespace}/another-project`);
    const second = startExecutor();
    await waitFor(
      "the ghost to be swept",
      async () => (await identitiesOf(server, namespace, "ghost")).length === 0,
      60_000,
    );
    const all = await client.getExecutors(server.colonyName, server.userPrvKey);
    const state = (name: string) => all.find((e) => e.executorname === name)?.state;
    expect(state("ghost-3d4e5f")).toBe(ExecutorState.APPROVED);
    expect(await identitiesOf(server, namespace, "kept")).toEqual([kept]);
    await stopExecutor(second);
  }, 600_000);
});

describe("k8s executor shutdown during an update", () => {
  it("cancels the Pulumi update cleanly, fails the process with the reason, and leaves the stack usable", async () => {
    const { startRuntime } = await import("../../peers/executor.js");
    const { k8sExecutor } = await import("../../src/executors/k8s.js");
    const env = k8sExecutorEnv(
      { kubeconfig: executorConfig, namespace, dataDir, passphrase: "recovery-test" },
      // 1000 CPUs pass the operator's bound here, so that the rollout can wait for a node that never comes.
      { EXECUTOR_SHUTDOWN_GRACE: "2", COLONIES_EXECUTOR_TYPE: "k8s-shutdown", K8S_MAX_CPU: "2000" },
    );
    const runtime = await startRuntime(server, k8sExecutor, env);
    // No node can fit a container asking for 1000 CPUs: the rollout waits until the update is cancelled.
    const stuck = await submit(
      server,
      "k8s-shutdown",
      "deploy",
      ["stuck", "1", "1", "false", "busybox:1.36"],
      {
        cpu: "1000",
      },
    );
    await waitFor("the update to hold its lock", async () => lockFiles(dataDir, "stuck").length > 0, 120_000);
    const started = Date.now();
    await runtime.shutdown("test");
    // Far below the rollout it would otherwise wait for (K8S_ROLLOUT_TIMEOUT, 300 s): a loaded machine cannot
    // break it, and a shutdown that waited for the update would.
    expect(Date.now() - started).toBeLessThan(120_000);
    const failed = await waitDone(server, stuck.processid);
    expect(failed.state).toBe(ProcessState.FAILED);
    expect(failed.errors?.[0]).toMatch(/executor shut down \(test\)/);
    expect(lockFiles(dataDir, "stuck")).toEqual([]); // cancelled, not abandoned

    const again = await startRuntime(server, k8sExecutor, env);
    try {
      const fixed = await waitDone(
        server,
        (
          await submit(server, "k8s-shutdown", "deploy", ["stuck", "1", "1", "false", "busybox:1.36"], {
            cpu: "100m",
          })
        ).processid,
        300_000,
      );
      expect(fixed.state, fixed.errors?.join("; ")).toBe(ProcessState.SUCCESS);
      expect((await apps.readNamespacedDeployment({ name: "stuck", namespace })).status?.readyReplicas).toBe(
        1,
      );
    } finally {
      await again.shutdown();
    }
  });
});
