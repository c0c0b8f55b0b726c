import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1Deployment,
  type V1Pod,
} from "@kubernetes/client-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type Atom, LABEL } from "../../src/atoms/engine.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { CONTAINER_LABEL, LocalPodRunner, POD_LABEL } from "../../src/local/pod-runner.js";

// Against the real local cluster (scripts/cluster.sh): kwok schedules the pods and marks them Running, and the
// runner under test runs their containers as local node processes. Each process writes its pid and environment
// to <dir>/<file>.json, where <file> is the container's first arg ("$(POD_NAME)...", expanded by the runner as
// a kubelet would); on SIGTERM it writes <file>.sigterm and exits 0. A "stubborn" one ignores SIGTERM.

// The report is written once the SIGTERM handler is in place: before that, SIGTERM would kill the process.
const GRACEFUL = `
const fs = require("node:fs");
const out = process.argv[1];
process.on("SIGTERM", () => {
  fs.writeFileSync(out + ".sigterm", "");
  process.exit(0);
});
fs.writeFileSync(out + ".tmp", JSON.stringify({ pid: process.pid, env: process.env }));
fs.renameSync(out + ".tmp", out + ".json");
setInterval(() => {}, 60_000);
`;
const STUBBORN = GRACEFUL.replace("process.exit(0);", "");

interface Report {
  pid: number;
  env: Record<string, string>;
}

const POLL = { timeout: 30_000, interval: 200 };

describe("LocalPodRunner", () => {
  const namespace = `podrunner-${randomBytes(4).toString("hex")}`;
  const token = `s3cr3t-${randomBytes(4).toString("hex")}`;
  let kubeConfig: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let dir: string;
  let runner: LocalPodRunner | undefined;

  const newRunner = () =>
    new LocalPodRunner({
      kubeConfig,
      namespace,
      logger: pino({ level: "warn" }),
      gracePeriodMs: 2_000,
      command: (container: V1Container) => ({
        command: process.execPath,
        args: [
          "-e",
          container.name === "stubborn" ? STUBBORN : GRACEFUL,
          join(dir, container.args?.[0] ?? ""),
        ],
      }),
    });

  beforeAll(async () => {
    kubeConfig = loadKubeConfig({ path: clusterKubeconfig() });
    core = kubeConfig.makeApiClient(CoreV1Api);
    apps = kubeConfig.makeApiClient(AppsV1Api);
    dir = await mkdtemp(join(tmpdir(), "local-pod-runner-"));
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    // Pods are refused until the service-account controller has made the namespace's default account.
    await vi.waitFor(() => core.readNamespacedServiceAccount({ name: "default", namespace }), {
      timeout: 60_000,
      interval: 250,
    });
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: "keys" }, stringData: { token } },
    });
  });

  afterAll(async () => {
    await runner?.stop();
    await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function deployment(name: string, replicas: number, containers: string[]): V1Deployment {
    return {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name, [LABEL]: "true" } },
          spec: {
            containers: containers.map((container) => ({
              name: container,
              image: "registry.invalid/never-pulled:1",
              args: [`$(POD_NAME).${container}`],
              env: [
                { name: "GREETING", value: "hello" },
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "EXECUTOR_NAME", value: "$(POD_NAME)-x" },
                { name: "TOKEN", valueFrom: { secretKeyRef: { name: "keys", key: "token" } } },
                {
                  name: "OPTIONAL_ABSENT",
                  valueFrom: { secretKeyRef: { name: "keys", key: "absent", optional: true } },
                },
                { name: "UNRESOLVED", value: "$(NOT_DEFINED)" },
              ],
            })),
          },
        },
      },
    };
  }

  async function podsOf(app: string): Promise<V1Pod[]> {
    return (await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items;
  }

  async function processesOf(app: string): Promise<Atom[]> {
    return ((await runner?.processes()) ?? []).filter((atom) => atom.labels.app === app);
  }

  const report = async (file: string): Promise<Report> =>
    JSON.parse(await readFile(join(dir, `${file}.json`), "utf8")) as Report;

  it("leaves a pod bound to a node that is not a kwok fake node to that node's kubelet", async () => {
    const node = `real-${randomBytes(4).toString("hex")}`;
    // The taint keeps the scheduler from placing anyone's pods on this node while it exists.
    await core.createNode({
      body: {
        metadata: { name: node, annotations: { "example.com/role": "real" } },
        spec: { taints: [{ key: "colonyos.io/test-only", effect: "NoSchedule" }] },
      },
    });
    try {
      runner = newRunner();
      await runner.start();
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name: "on-a-real-node", labels: { app: "real", [LABEL]: "true" } },
          spec: { nodeName: node, containers: [{ name: "main", image: "x" }] },
        },
      });
      await apps.createNamespacedDeployment({ namespace, body: deployment("beside", 1, ["main"]) });
      // A pod on a fake node, created after it, runs: the one on the real node was seen and left alone.
      await expect.poll(async () => (await processesOf("beside")).length, POLL).toBe(1);
      expect(await processesOf("real")).toEqual([]);
    } finally {
      await runner?.stop();
      runner = undefined;
      await apps.deleteNamespacedDeployment({ name: "beside", namespace }).catch(() => undefined);
      await core.deleteNamespacedPod({ name: "on-a-real-node", namespace, gracePeriodSeconds: 0 });
      await core.deleteNode({ name: node });
    }
  });

  it("runs each container of each scheduled, labelled pod with the environment a kubelet would give it", async () => {
    // Present before the runner starts: seen through its first list.
    await apps.createNamespacedDeployment({ namespace, body: deployment("workers", 2, ["first", "second"]) });
    await core.createNamespacedPod({
      namespace,
      body: { metadata: { name: "unlabelled" }, spec: { containers: [{ name: "main", image: "x" }] } },
    });
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "unscheduled", labels: { [LABEL]: "true" } },
        spec: { nodeSelector: { "colonyos.io/nowhere": "true" }, containers: [{ name: "main", image: "x" }] },
      },
    });
    runner = newRunner();
    await runner.start();

    await expect.poll(async () => (await podsOf("workers")).length, POLL).toBe(2);
    const pods = (await podsOf("workers")).map((pod) => pod.metadata?.name as string).sort();
    const expected = pods.flatMap((pod) => [`${pod}/first`, `${pod}/second`]);
    await expect
      .poll(async () => (await processesOf("workers")).map((atom) => `${atom.id}:${atom.state}`).sort(), POLL)
      .toEqual(expected.map((id) => `${id}:running`));

    for (const pod of pods) {
      for (const container of ["first", "second"]) {
        const { pid, env } = await vi.waitFor(() => report(`${pod}.${container}`), POLL);
        expect(env).toMatchObject({
          GREETING: "hello",
          POD_NAME: pod,
          EXECUTOR_NAME: `${pod}-x`,
          TOKEN: token,
          UNRESOLVED: "$(NOT_DEFINED)",
          PATH: process.env.PATH,
        });
        expect(env).not.toHaveProperty("OPTIONAL_ABSENT");
        expect(isAlive(pid)).toBe(true);
      }
    }
    const atom = (await processesOf("workers")).find((a) => a.id === `${pods[0]}/second`);
    expect(atom?.labels).toMatchObject({
      [POD_LABEL]: pods[0],
      [CONTAINER_LABEL]: "second",
      [LABEL]: "true",
    });
    const ids = ((await runner.processes()) ?? []).map((a) => a.id);
    expect(ids.filter((id) => id.startsWith("unlabelled/") || id.startsWith("unscheduled/"))).toEqual([]);
  });

  it("stops the processes of the pod that scaling down removes, with SIGTERM", async () => {
    const before = (await podsOf("workers")).map((pod) => pod.metadata?.name as string);
    await apps.patchNamespacedDeploymentScale(
      { name: "workers", namespace, body: { spec: { replicas: 1 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await expect.poll(async () => (await podsOf("workers")).length, POLL).toBe(1);
    const kept = (await podsOf("workers"))[0]?.metadata?.name as string;
    const removed = before.find((pod) => pod !== kept) as string;

    await expect
      .poll(async () => summary(await processesOf("workers")), POLL)
      .toEqual({
        [`${kept}/first`]: "running",
        [`${kept}/second`]: "running",
        [`${removed}/first`]: "stopped:0",
        [`${removed}/second`]: "stopped:0",
      });
    for (const container of ["first", "second"]) {
      expect(isAlive((await report(`${removed}.${container}`)).pid)).toBe(false);
      await expect(readFile(join(dir, `${removed}.${container}.sigterm`))).resolves.toBeDefined();
      expect(isAlive((await report(`${kept}.${container}`)).pid)).toBe(true);
    }
  });

  it("stops every process of the Deployment when it is deleted", async () => {
    await apps.deleteNamespacedDeployment({ name: "workers", namespace, propagationPolicy: "Background" });
    await expect
      .poll(async () => (await processesOf("workers")).map((atom) => atom.state), POLL)
      .toEqual(["stopped", "stopped", "stopped", "stopped"]);
    const reports = (await readdir(dir)).filter(
      (file) => file.startsWith("workers-") && file.endsWith(".json"),
    );
    expect(reports).toHaveLength(4);
    for (const file of reports) expect(isAlive((await report(file.replace(/\.json$/, ""))).pid)).toBe(false);
  });

  it("follows pods created after it started, and stop() ends every process before it resolves", async () => {
    await apps.createNamespacedDeployment({
      namespace,
      body: deployment("late", 1, ["graceful", "stubborn"]),
    });
    await expect
      .poll(async () => (await processesOf("late")).map((atom) => atom.state), POLL)
      .toEqual(["running", "running"]);
    const [pod] = await podsOf("late");
    const podName = pod?.metadata?.name as string;
    for (const container of ["graceful", "stubborn"])
      await vi.waitFor(() => report(`${podName}.${container}`), POLL);
    expect(processesMentioning(dir)).not.toEqual([]);

    const stopping = Date.now();
    await runner?.stop();
    // The stubborn process ignores SIGTERM: it is killed once the 2 s grace period is over.
    expect(Date.now() - stopping).toBeGreaterThanOrEqual(1_900);
    expect(summary(await processesOf("late"))).toEqual({
      [`${podName}/graceful`]: "stopped:0",
      [`${podName}/stubborn`]: "stopped:137",
    });
    expect((await processesOf("late")).find((a) => a.id.endsWith("/stubborn"))?.reason).toBe("SIGKILL");
    expect(((await runner?.processes()) ?? []).filter((atom) => atom.state !== "stopped")).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
  });
});

/** Each process as "state" or, once stopped, "stopped:<exit code>". */
function summary(atoms: Atom[]): Record<string, string> {
  return Object.fromEntries(
    atoms.map((atom) => [atom.id, atom.state === "stopped" ? `stopped:${atom.exitCode}` : atom.state]),
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Pids of the processes of this machine whose command line mentions `text` (the test's own processes). */
function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text);
      } catch {
        return false; // ended meanwhile
      }
    })
    .map(Number);
}
