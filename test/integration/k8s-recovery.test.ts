/**
 * kill -9 of the k8s executor (and its pulumi processes) in the middle of an update, then a restart: the stale
 * Pulumi lock is recovered, the interrupted process is re-queued to the new executor, and the deployment
 * converges. Real Colonies server, real Pulumi, real Kubernetes API.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";

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
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.resume();
  running.push(child);
  return child;
}

function lockDir(stack = "crash"): string {
  return join(dataDir, "state", ".pulumi", "locks", "organization", "colonyos-executors", stack);
}

function lockFiles(stack = "crash"): string[] {
  return existsSync(lockDir(stack)) ? readdirSync(lockDir(stack)).filter((f) => f.endsWith(".json")) : [];
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
    await waitFor("the update to hold its lock", async () => lockFiles().length > 0, 120_000);
    process.kill(-(first.pid as number), "SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect(lockFiles().length).toBeGreaterThan(0); // left behind: its holder is dead

    startExecutor();
    const done = await waitDone(server, deploy.processid, 300_000);
    expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect(
      lockFiles(),
      lockFiles()
        .map((f) => readFileSync(join(lockDir(), f), "utf8"))
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
    await waitFor("the update to hold its lock", async () => lockFiles("stuck").length > 0, 120_000);
    const started = Date.now();
    await runtime.shutdown("test");
    // Far below the rollout it would otherwise wait for (K8S_ROLLOUT_TIMEOUT, 300 s): a loaded machine cannot
    // break it, and a shutdown that waited for the update would.
    expect(Date.now() - started).toBeLessThan(120_000);
    const failed = await waitDone(server, stuck.processid);
    expect(failed.state).toBe(ProcessState.FAILED);
    expect(failed.errors?.[0]).toMatch(/executor shut down \(test\)/);
    expect(lockFiles("stuck")).toEqual([]); // cancelled, not abandoned

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
