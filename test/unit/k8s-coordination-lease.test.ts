/**
 * The LeaseCoordinator's ordering and conditional coalescing across replicas, against an in-memory Lease API with
 * the apiserver's optimistic concurrency (a replace with a stale resourceVersion is a 409). The real apiserver is
 * in test/integration/k8s-lease.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { testLogger } from "../../peers/executor.js";
import type { NameRecord, NameTurn, TicketRequest } from "../../src/k8s/coordination.js";
import { LeaseCoordinator } from "../../src/k8s/lease-coordinator.js";
import { SupersededError } from "../../src/k8s/stack-errors.js";
import { FakeLeases } from "./fake-leases.js";

const started: LeaseCoordinator[] = [];
afterEach(async () => {
  for (const coordinator of started.splice(0)) await coordinator.close();
});

/** Two replicas sharing the Leases. */
async function replicas(
  leases: FakeLeases,
  ...names: [string, string?]
): Promise<[LeaseCoordinator, LeaseCoordinator]> {
  const api = leases.api();
  const start = (replica: string) =>
    LeaseCoordinator.start({
      api,
      namespace: "ns",
      project: "colonyos-executors",
      replica,
      leaseSeconds: 30,
      pollMs: 20,
      logger: testLogger,
    });
  const pair: [LeaseCoordinator, LeaseCoordinator] = [
    await start(names[0]),
    await start(names[1] ?? "other"),
  ];
  started.push(...pair);
  return pair;
}

const forever = new AbortController().signal;
const scale = (process: string, order?: number): TicketRequest => ({
  process,
  fn: "scale",
  order,
  effect: "pods",
});
const applied = (turn: NameTurn, t: TicketRequest): NameRecord => ({
  version: turn.record.version + 1,
  applied: { process: t.process, fn: t.fn, order: turn.order, at: new Date().toISOString() },
});

/** Takes a turn and ends it applied or not (failed, skipped); records what happened. */
function take(
  coordinator: LeaseCoordinator,
  t: TicketRequest,
  events: string[],
  outcome: "applied" | "failed" = "applied",
): Promise<void> {
  return coordinator.acquire("web", t, forever).then(
    async (turn) => {
      events.push(`${coordinator.replica}: turn ${t.process || t.fn}`);
      await turn.release(outcome === "applied" ? applied(turn, t) : { version: turn.record.version + 1 });
    },
    (error: unknown) => {
      if (!(error instanceof SupersededError)) throw error;
      events.push(`${coordinator.replica}: ${t.process} ${error.how} ${error.by.process || error.by.fn}`);
    },
  );
}

/** web deployed by `a`, holding the turn until `done`. */
async function deployed(a: LeaseCoordinator, order: number) {
  const deploy: TicketRequest = { process: "d", fn: "deploy", order, effect: "replace" };
  const turn = await a.acquire("web", deploy, forever);
  return { done: () => turn.release(applied(turn, deploy)) };
}

const settle = () => new Promise((r) => setTimeout(r, 400)); // past the Lease gather window

describe("LeaseCoordinator: conditional coalescing across replicas", () => {
  it("supersedes a waiting scale once the later one, on another replica, was applied", async () => {
    const leases = new FakeLeases();
    const [a, b] = await replicas(leases, "a", "b");
    const held = await deployed(a, 1);
    const events: string[] = [];
    const waiting = [take(a, scale("s2", 2), events), take(b, scale("s3", 3), events)];
    await settle();
    await held.done();
    await Promise.all(waiting);
    expect(events).toEqual(["b: turn s3", "a: s2 waited s3"]);
    const lease = leases.get(a.nameLease("web"));
    expect(JSON.parse(lease?.metadata?.annotations?.["colonyos.io/tickets"] ?? "")).toEqual([]);
  });

  it("gives the waiting scale its own turn when the later one fails", async () => {
    const leases = new FakeLeases();
    const [a, b] = await replicas(leases, "a", "b");
    const held = await deployed(a, 1);
    const events: string[] = [];
    const waiting = [take(a, scale("s2", 2), events), take(b, scale("s50", 3), events, "failed")];
    await settle();
    await held.done();
    await Promise.all(waiting);
    expect(events).toEqual(["b: turn s50", "a: turn s2"]);
  });

  it("places a ticket without an order after the record and every ticket, in the write that puts it down", async () => {
    const leases = new FakeLeases();
    const [a, b] = await replicas(leases, "a", "b");
    const now = 1.796e18;
    const held = await deployed(a, now);
    const events: string[] = [];
    const user = take(b, scale("s1", now + 1e6), events, "failed");
    await settle();
    // The autoscaler's decision comes after s1 (it is placed after it) and supersedes it while both wait; it then
    // skips: s1 takes its own turn.
    const autoscaler = take(a, { process: "", fn: "autoscaler", effect: "pods" }, events, "failed");
    await settle();
    const tickets = JSON.parse(
      leases.get(a.nameLease("web"))?.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]",
    ) as { fn: string; order: number }[];
    const placed = tickets.find((t) => t.fn === "autoscaler")?.order ?? 0;
    expect(placed).toBeGreaterThan(now + 1e6);
    expect(placed - (now + 1e6)).toBeLessThan(1e3);
    await held.done();
    await Promise.all([user, autoscaler]);
    expect(events).toEqual(["a: turn autoscaler", "b: turn s1"]);
    // Next to an applied record far ahead of it (a priority time of -50000 days written before this order), an
    // operation without an order is still not older than what was applied.
    const far = await a.acquire(
      "web",
      { process: "p", fn: "scale", order: now + 4.3e18, effect: "pods" },
      forever,
    );
    await far.release(applied(far, scale("p")));
    const own = await b.acquire("web", { process: "", fn: "drift-check", effect: "converge" }, forever);
    expect(own.order).toBeGreaterThan(now + 4.3e18);
    await own.release();
  });

  it("supersedes a call older than the applied one as applied before it arrived", async () => {
    const leases = new FakeLeases();
    const [a] = await replicas(leases, "a");
    await (await deployed(a, 10)).done();
    const error = await a.acquire("web", scale("s5", 5), forever).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SupersededError);
    expect((error as SupersededError).how).toBe("applied");
    expect((error as Error).message).toBe(
      "web: superseded by deploy d, later in the name's order and already applied when this call arrived",
    );
  });

  it("drops a dead replica's ticket with the superseded re-run of its call: no ticket is left on the name", async () => {
    const leases = new FakeLeases();
    const [a] = await replicas(leases, "a");
    await (await deployed(a, 10)).done();
    // A replica that died (no Lease of its own) left a ticket of `s5`, which waited while `d` was applied.
    const lease = leases.get("web.colonyos-executors");
    const dead = { ...scale("s5", 5), id: "0123456789ab", replica: "dead" };
    leases.put({
      ...lease,
      metadata: {
        ...lease?.metadata,
        annotations: { ...lease?.metadata?.annotations, "colonyos.io/tickets": JSON.stringify([dead]) },
      },
    });
    // Its re-run is superseded, and was the last call on the name.
    const error = await a.acquire("web", scale("s5", 5), forever).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SupersededError);
    expect(leases.get("web.colonyos-executors")?.metadata?.annotations?.["colonyos.io/tickets"]).toBe("[]");
  });

  it("leads only the roles that are reserved", async () => {
    const [a] = await replicas(new FakeLeases(), "a");
    expect(await a.leads("drift")).toBe(true);
    await expect(a.leads("orphan")).rejects.toThrow(/not a leader role/);
  });
});
