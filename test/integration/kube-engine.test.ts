import { randomBytes } from "node:crypto";
import { text } from "node:stream/consumers";
import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1PodStatus,
  type Watch,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type Atom, AtomAlreadyExistsError, AtomNotFoundError, LABEL } from "../../src/atoms/engine.js";
import { KubeApiError } from "../../src/atoms/kube-api.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { KubeEngine } from "../../src/atoms/kube-engine.js";

// Against the real local cluster (scripts/cluster.sh): kwok's fake nodes make scheduled pods Running and serve
// the same fake log for every container. What only real containers do (exit codes, OOM kills, image pulls,
// evictions) is written by the test through the pods' status subresource, as a kubelet would.

const call = () => ({ signal: AbortSignal.timeout(20_000) });
const HOLD = "colonyos.io/test-hold";

describe("KubeEngine", () => {
  const namespace = `atoms-${randomBytes(4).toString("hex")}`;
  let kubeConfig: KubeConfig;
  let core: CoreV1Api;
  let engine: KubeEngine;

  beforeAll(async () => {
    kubeConfig = loadKubeConfig({ path: clusterKubeconfig() });
    core = kubeConfig.makeApiClient(CoreV1Api);
    engine = new KubeEngine({ kubeConfig, namespace });
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    // Pods are refused until the service-account controller has made the namespace's default account.
    await vi.waitFor(() => core.readNamespacedServiceAccount({ name: "default", namespace }), {
      timeout: 60_000,
      interval: 250,
    });
  });

  afterAll(async () => {
    await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  /** A pod through the engine, once kwok reports it running. */
  async function runningPod(name: string, labels: Record<string, string> = {}): Promise<Atom> {
    await engine.create(
      { name, image: "busybox:1.36", command: ["sleep", "3600"], env: { ROLE: "test" }, labels },
      call(),
    );
    await expect
      .poll(async () => (await engine.get(name, call())).state, { timeout: 30_000 })
      .toBe("running");
    return engine.get(name, call());
  }

  /**
   * Counts the engine's watch requests the API server has answered (Watch.watch resolves once the response has
   * begun), so that a test can act once a wait is really watching rather than after some time.
   */
  function countWatches(): { established: () => number; restore: () => void } {
    const watch = (engine as unknown as { watch: Watch }).watch;
    const original = watch.watch.bind(watch);
    let established = 0;
    const spy = vi.spyOn(watch, "watch").mockImplementation(async (...args) => {
      const request = await original(...args);
      established++;
      return request;
    });
    return { established: () => established, restore: () => spy.mockRestore() };
  }

  /** Writes the pod's status as a kubelet would (merge patch: the lists given replace the old ones). */
  async function writeStatus(name: string, status: V1PodStatus): Promise<void> {
    await core.patchNamespacedPodStatus(
      { name, namespace, body: { status } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }

  const mainStatus = (state: NonNullable<V1PodStatus["containerStatuses"]>[number]["state"]) => ({
    containerStatuses: [
      { name: "main", image: "busybox:1.36", imageID: "", ready: false, restartCount: 1, state },
    ],
  });
  const terminated = (exitCode: number, reason: string) =>
    mainStatus({ terminated: { exitCode, reason, startedAt: new Date(), finishedAt: new Date() } });

  it("creates a pod that kwok runs, with its spec, labels and times", async () => {
    const atom = await runningPod("created", { team: "atoms" });
    expect(atom).toMatchObject({ id: "created", engine: "kubernetes", state: "running", result: undefined });
    expect(atom.labels).toMatchObject({ [LABEL]: "true", team: "atoms" });
    expect(atom.containers).toEqual([{ name: "main", state: "running", restarts: 0 }]);
    expect(atom.createdAt).toBeInstanceOf(Date);
    expect(atom.startedAt).toBeInstanceOf(Date);

    const pod = await core.readNamespacedPod({ name: "created", namespace });
    expect(pod.spec?.restartPolicy).toBe("Never");
    expect(pod.spec?.containers[0]).toMatchObject({
      image: "busybox:1.36",
      command: ["sleep", "3600"],
      env: [{ name: "ROLE", value: "test" }],
    });
    await expect(engine.create({ name: "created", image: "busybox:1.36" }, call())).rejects.toBeInstanceOf(
      AtomAlreadyExistsError,
    );
  });

  it("lists only managed pods of its namespace, filtered by the caller's labels", async () => {
    await runningPod("list-a", { group: "a" });
    await runningPod("list-b", { group: "b" });
    const foreign: V1Pod = {
      metadata: { name: "not-managed", labels: { group: "a" } },
      spec: { containers: [{ name: "main", image: "busybox:1.36" }] },
    };
    await core.createNamespacedPod({ namespace, body: foreign });

    const ids = async (labels?: Record<string, string>) =>
      (await engine.list({ labels, ...call() })).map((a) => a.id).sort();
    expect(await ids()).toEqual(expect.arrayContaining(["list-a", "list-b"]));
    expect(await ids()).not.toContain("not-managed");
    expect(await ids({ group: "a" })).toEqual(["list-a"]);
    expect(await ids({ group: "nobody" })).toEqual([]);
    await expect(engine.list({ labels: { group: "a,b" }, ...call() })).rejects.toThrow(TypeError);
  });

  it("treats a pod without the label as absent and never deletes it", async () => {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "foreign" },
        spec: { containers: [{ name: "main", image: "busybox:1.36" }] },
      },
    });
    await expect(engine.get("foreign", call())).rejects.toBeInstanceOf(AtomNotFoundError);
    await expect(engine.stop("foreign", { force: true, ...call() })).rejects.toBeInstanceOf(
      AtomNotFoundError,
    );
    expect(
      (await core.readNamespacedPod({ name: "foreign", namespace })).metadata?.deletionTimestamp,
    ).toBeUndefined();
  });

  it("stops with a grace period: deleting while held, deleted once gone, and stopping again is fine", async () => {
    // A finalizer keeps the deleted pod visible, so that "deleting" can be observed before it goes.
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "graceful", labels: { [LABEL]: "true" }, finalizers: [HOLD] },
        spec: { containers: [{ name: "main", image: "busybox:1.36" }] },
      },
    });
    await expect
      .poll(async () => (await engine.get("graceful", call())).state, { timeout: 30_000 })
      .toBe("running");
    const waiting = engine.wait("graceful", call());

    await engine.stop("graceful", { gracePeriodMs: 5_000, ...call() });
    expect((await engine.get("graceful", call())).state).toBe("deleting");
    await core.patchNamespacedPod(
      { name: "graceful", namespace, body: { metadata: { finalizers: null } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );

    expect(await waiting).toMatchObject({ id: "graceful", state: "deleted" });
    await expect(engine.get("graceful", call())).rejects.toBeInstanceOf(AtomNotFoundError);
    await expect(engine.stop("graceful", call())).resolves.toBeUndefined();
  });

  it("force-stops a pod at once", async () => {
    await runningPod("forced");
    await engine.stop("forced", { force: true, ...call() });
    await expect(engine.get("forced", call())).rejects.toBeInstanceOf(AtomNotFoundError);
    await expect(engine.stop("forced", { force: true, ...call() })).resolves.toBeUndefined();
  });

  it.each([
    {
      name: "oom",
      status: { phase: "Failed", ...terminated(137, "OOMKilled") },
      result: "resource_failure",
      exitCode: 137,
    },
    {
      name: "sigkill",
      status: { phase: "Failed", ...terminated(137, "Error") },
      result: "killed",
      exitCode: 137,
    },
    {
      name: "sigterm",
      status: { phase: "Failed", ...terminated(143, "Error") },
      result: "terminated",
      exitCode: 143,
    },
    { name: "exit3", status: { phase: "Failed", ...terminated(3, "Error") }, result: "failure", exitCode: 3 },
    {
      name: "done",
      status: { phase: "Succeeded", ...terminated(0, "Completed") },
      result: "success",
      exitCode: 0,
    },
    {
      name: "evicted",
      status: { phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." },
      result: "resource_failure",
      exitCode: undefined,
    },
  ])("reads a pod that ended as $name: $result", async ({ name, status, result, exitCode }) => {
    await runningPod(name);
    await writeStatus(name, status);
    const atom = await engine.get(name, call());
    expect(atom).toMatchObject({ state: "stopped", result, exitCode });
    expect(atom.stoppedAt === undefined).toBe(exitCode === undefined);
  });

  it("reads a pod whose image cannot be pulled as a startup failure before it stops", async () => {
    // Unschedulable, so no kwok node writes its status: the test plays the kubelet.
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "no-image", labels: { [LABEL]: "true" } },
        spec: {
          nodeSelector: { "colonyos.io/no-such-node": "true" },
          containers: [{ name: "main", image: "registry.invalid/none:1" }],
        },
      },
    });
    await writeStatus("no-image", {
      phase: "Pending",
      ...mainStatus({
        waiting: { reason: "ImagePullBackOff", message: 'Back-off pulling image "registry.invalid/none:1"' },
      }),
    });
    const atom = await engine.get("no-image", call());
    expect(atom).toMatchObject({ state: "created", result: "startup_failure", reason: "ImagePullBackOff" });
    expect(atom.containers[0]).toMatchObject({
      name: "main",
      state: "created",
      result: "startup_failure",
      restarts: 1,
    });
  });

  it("waits through the watch until the pod's status says it stopped", async () => {
    await runningPod("watched");
    const watches = countWatches();
    try {
      const waiting = engine.wait("watched", { signal: AbortSignal.timeout(90_000) });
      // Changed only once the wait is watching: the initial list saw the pod running.
      await vi.waitFor(() => expect(watches.established()).toBeGreaterThanOrEqual(1), {
        timeout: 30_000,
        interval: 50,
      });
      await writeStatus("watched", { phase: "Failed", ...terminated(143, "Error") });
      expect(await waiting).toMatchObject({
        id: "watched",
        state: "stopped",
        result: "terminated",
        exitCode: 143,
      });
    } finally {
      watches.restore();
    }
  });

  it("keeps waiting when the API server ends a quiet watch (after its 25 s timeout)", async () => {
    await runningPod("quiet");
    const watches = countWatches();
    try {
      const waiting = engine.wait("quiet", { signal: AbortSignal.timeout(150_000) });
      let settled = false;
      void waiting.finally(() => {
        settled = true;
      });
      // A second watch request means the first one ended while nothing happened (the server's 25 s timeout).
      await vi.waitFor(() => expect(watches.established()).toBeGreaterThanOrEqual(2), {
        timeout: 90_000,
        interval: 250,
      });
      expect(settled).toBe(false);
      await writeStatus("quiet", { phase: "Succeeded", ...terminated(0, "Completed") });
      expect(await waiting).toMatchObject({ id: "quiet", state: "stopped", result: "success" });
    } finally {
      watches.restore();
    }
  }, 180_000);

  it("cancels a wait with the caller's reason", async () => {
    await runningPod("wait-cancel");
    const controller = new AbortController();
    const waiting = engine.wait("wait-cancel", { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("caller gave up")), 300);
    await expect(waiting).rejects.toThrow("caller gave up");
    expect((await engine.get("wait-cancel", call())).state).toBe("running");
  });

  it("rejects waiting for a pod that does not exist", async () => {
    await expect(engine.wait("never-created", call())).rejects.toBeInstanceOf(AtomNotFoundError);
  });

  it("reads a container's logs, with tail, and names the container it cannot find", async () => {
    await runningPod("logs");
    const all = await text(await engine.logs("logs", call()));
    expect(all).toContain("fake container output");
    const last = await text(
      await engine.logs("logs", { container: "main", tail: 1, timestamps: true, ...call() }),
    );
    expect(last.trimEnd().split("\n")).toHaveLength(1);
    expect(Number.isNaN(new Date(last.split(" ")[0] ?? "").getTime())).toBe(false);
    await expect(engine.logs("logs", { container: "sidecar", ...call() })).rejects.toBeInstanceOf(
      KubeApiError,
    );
    await expect(engine.logs("never-created", call())).rejects.toBeInstanceOf(AtomNotFoundError);
  });
});
