/**
 * Other replicas' liveness: proven gone only after their Lease stayed unchanged for its whole duration by this
 * replica's clock (or was deleted); the cleanup after a gone replica removes its Colonies record first (only a
 * record the Lease names), then its Lease and its entry in the registry; the watch does that for a registered
 * replica nobody waits for, and retries a cleanup that failed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { V1MicroTime } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { testLogger } from "../../peers/executor.js";
import type { ReplicaExecutor } from "../../src/k8s/heartbeat.js";
import { LeaseStore } from "../../src/k8s/lease-store.js";
import { ReplicaLiveness } from "../../src/k8s/liveness.js";
import { ReplicaRegistry } from "../../src/k8s/replica-registry.js";
import { FakeLeases } from "./fake-leases.js";

const leaseOf = (replica: string) => `replica.${replica}.p`;
const REGISTRY = "replica.p";
const watched: ReplicaLiveness[] = [];
afterEach(async () => {
  for (const liveness of watched.splice(0)) await liveness.stop();
});

function setup(executorGone?: (executor: ReplicaExecutor, replica: string) => Promise<void>) {
  const leases = new FakeLeases();
  const store = new LeaseStore({ api: leases.api(), namespace: "ns" });
  const registry = new ReplicaRegistry(store, REGISTRY, {});
  const liveness = new ReplicaLiveness({
    store,
    registry,
    replica: "me",
    replicaLease: leaseOf,
    leaseMs: 1_000,
    executorGone,
    logger: testLogger,
  });
  watched.push(liveness);
  /** A replica's Lease as it writes it (each write a new resourceVersion), naming its Colonies executor. */
  const renew = (replica: string, seconds = 1) =>
    leases.put({
      metadata: {
        name: leaseOf(replica),
        annotations: {
          "colonyos.io/executor": JSON.stringify({
            name: `k8s-${replica}`,
            id: `id-${replica}`,
            selfRegistered: true,
          }),
        },
      },
      spec: { holderIdentity: replica, leaseDurationSeconds: seconds, renewTime: new V1MicroTime() },
    });
  return { leases, registry, liveness, renew };
}

/** Asks until the replica is proven gone; returns how long that took. */
async function untilGone(liveness: ReplicaLiveness, replica: string, limitMs = 5_000): Promise<number> {
  const started = Date.now();
  while (!(await liveness.gone([replica])).has(replica)) {
    if (Date.now() - started > limitMs) throw new Error(`${replica} was not proven gone in ${limitMs} ms`);
    await sleep(50);
  }
  return Date.now() - started;
}

describe("ReplicaLiveness", () => {
  it("proves a replica gone once its Lease stayed unchanged for its duration, and cleans up in order", async () => {
    const calls: string[] = [];
    const { leases, registry, liveness, renew } = setup(async (executor, replica) => {
      // Its Lease still names it while the record is removed.
      calls.push(`${replica}:${executor.name}:${leases.get(leaseOf(replica)) ? "lease kept" : "lease gone"}`);
    });
    await registry.add("dead");
    renew("dead", 2);
    const waited = await untilGone(liveness, "dead");
    expect(waited).toBeGreaterThanOrEqual(2_000);
    expect(waited).toBeLessThan(3_500);
    expect(calls).toEqual(["dead:k8s-dead:lease kept"]);
    expect(leases.get(leaseOf("dead"))).toBeUndefined();
    expect(await registry.list()).toEqual([]);
    // Gone is final.
    expect((await liveness.gone(["dead"])).has("dead")).toBe(true);
  });

  it("never takes a renewing replica, or itself, for gone", async () => {
    const { liveness, renew } = setup();
    renew("alive");
    const renewing = setInterval(() => renew("alive"), 300);
    try {
      const until = Date.now() + 2_500;
      while (Date.now() < until) {
        expect((await liveness.gone(["alive", "me"])).size).toBe(0);
        await sleep(100);
      }
    } finally {
      clearInterval(renewing);
    }
  });

  it("takes a replica whose Lease is deleted for gone at once, with nothing of Colonies to remove", async () => {
    const calls: string[] = [];
    const { liveness } = setup(async (_, replica) => {
      calls.push(replica);
    });
    expect((await liveness.gone(["closed"])).has("closed")).toBe(true);
    expect(calls).toEqual([]);
  });

  it("watches every registered replica, and retries a cleanup that failed", async () => {
    let failures = 1;
    const removed: string[] = [];
    const { leases, registry, liveness, renew } = setup(async (executor) => {
      if (failures-- > 0) throw new Error("Colonies unreachable");
      removed.push(executor.name);
    });
    await registry.add("killed");
    renew("killed");
    // Nobody asks about it (no name of it is waited for): the watch proves it gone, and registers "me" again.
    liveness.watch(200);
    const started = Date.now();
    while (removed.length === 0 && Date.now() - started < 6_000) await sleep(50);
    expect(removed).toEqual(["k8s-killed"]);
    // Its Lease stayed until the record was removed (the retry needed the name on it).
    await sleep(300);
    expect(leases.get(leaseOf("killed"))).toBeUndefined();
    expect(await registry.list()).toEqual(["me"]);
  });
});
