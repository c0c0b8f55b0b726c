/**
 * The coordinator's two shared roles on Leases of their own: budget reservations (a check and its reservation are
 * one write; a gone replica's reservations stop counting) and one leader per role (taken over from a holder proven
 * gone, handed on at once on a clean shutdown).
 */
import { V1MicroTime } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { testLogger } from "../../peers/executor.js";
import { BudgetLease } from "../../src/k8s/budget-lease.js";
import { Leadership } from "../../src/k8s/leadership.js";
import { LeaseStore } from "../../src/k8s/lease-store.js";
import { ReplicaLiveness } from "../../src/k8s/liveness.js";
import { ReplicaRegistry } from "../../src/k8s/replica-registry.js";
import { FakeLeases } from "./fake-leases.js";

const leaseOf = (replica: string) => `replica.${replica}.p`;
const never = new AbortController().signal;

/** One replica's view of the shared Leases. */
function replica(leases: FakeLeases, name: string) {
  const store = new LeaseStore({ api: leases.api(), namespace: "ns" });
  const liveness = new ReplicaLiveness({
    store,
    registry: new ReplicaRegistry(store, "replica.p", {}),
    replica: name,
    replicaLease: leaseOf,
    leaseMs: 30_000,
    logger: testLogger,
  });
  const alive = () => leases.put({ metadata: { name: leaseOf(name) }, spec: { holderIdentity: name } });
  alive();
  return {
    alive,
    budget: new BudgetLease({
      store,
      liveness,
      leaseName: "budget.p",
      labels: {},
      replica: name,
      lost: never,
    }),
    leadership: new Leadership({
      store,
      liveness,
      roleLease: (role) => `${role}.p`,
      labels: {},
      replica: name,
      leaseMs: 30_000,
      lost: never,
      logger: testLogger,
    }),
  };
}

const limit =
  (max: number, amount: number) =>
  async (reserved: Map<string, number>): Promise<void> => {
    const used = [...reserved.values()].reduce((x, y) => x + y, 0);
    await new Promise((r) => setTimeout(r, 20)); // as long as a check that reads the cluster
    if (used + amount > max) throw new Error(`over budget: ${used} + ${amount} > ${max}`);
  };

describe("BudgetLease", () => {
  it("lets only one of two replicas reserve what only one fits, and frees it on release", async () => {
    const leases = new FakeLeases();
    const [a, b] = [replica(leases, "a"), replica(leases, "b")];
    const results = await Promise.allSettled([
      a.budget.reserve("n1", 3, limit(4, 3)),
      b.budget.reserve("n2", 3, limit(4, 3)),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const won = results.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<() => Promise<void>>;
    await won.value();
    await (await b.budget.reserve("n2", 3, limit(4, 3)))();
  });

  it("stops counting the reservations of a replica whose Lease is gone", async () => {
    const leases = new FakeLeases();
    const [a, b] = [replica(leases, "a"), replica(leases, "b")];
    await a.budget.reserve("n1", 3, limit(4, 3)); // never released: "a" dies
    await expect(b.budget.reserve("n2", 3, limit(4, 3))).rejects.toThrow(/over budget/);
    await leases.api().deleteNamespacedLease({ name: leaseOf("a"), namespace: "ns" });
    await new Promise((r) => setTimeout(r, 1_100)); // liveness looks again after a second
    await b.budget.reserve("n2", 3, limit(4, 3));
  });
});

describe("Leadership", () => {
  it("elects one leader per role, keeps it, and hands it on at once", async () => {
    const leases = new FakeLeases();
    const [a, b] = [replica(leases, "a"), replica(leases, "b")];
    expect(await a.leadership.leads("autoscaler")).toBe(true);
    expect(await b.leadership.leads("autoscaler")).toBe(false);
    expect(await a.leadership.leads("autoscaler")).toBe(true);
    expect(await b.leadership.leads("drift")).toBe(true);
    await a.leadership.handOn();
    expect(await b.leadership.leads("autoscaler")).toBe(true);
    await expect(a.leadership.leads("budget")).rejects.toThrow(/not a leader role/);
  });

  it("takes a role over from a holder proven gone, not before", async () => {
    const leases = new FakeLeases();
    const c = replica(leases, "c");
    leases.put({
      metadata: { name: leaseOf("dead") },
      spec: { holderIdentity: "dead", leaseDurationSeconds: 1, renewTime: new V1MicroTime() },
    });
    leases.put({ metadata: { name: "sweep.p" }, spec: { holderIdentity: "dead" } });
    const started = Date.now();
    expect(await c.leadership.leads("sweep")).toBe(false);
    while (!(await c.leadership.leads("sweep"))) await new Promise((r) => setTimeout(r, 100));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(leases.get("sweep.p")?.spec?.holderIdentity).toBe("c");
  });
});
