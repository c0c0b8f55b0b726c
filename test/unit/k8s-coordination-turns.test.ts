/**
 * Turns on names' Leases, beyond ordering (k8s-coordination-lease.test.ts): a call on a name that does not exist
 * leaves no Lease behind (but one with a record of anything stays, and a concurrent arrival is never lost), and a
 * waiting operation outlasts apiserver failures and writes whose answer was lost.
 */
import { afterEach, describe, expect, it } from "vitest";
import { testLogger } from "../../peers/executor.js";
import type { TicketRequest } from "../../src/k8s/coordination.js";
import { LeaseCoordinator } from "../../src/k8s/lease-coordinator.js";
import { FakeLeases } from "./fake-leases.js";

const started: LeaseCoordinator[] = [];
afterEach(async () => {
  for (const coordinator of started.splice(0)) await coordinator.close();
});

async function replica(
  leases: FakeLeases,
  name: string,
  processOpen?: (id: string) => Promise<boolean>,
): Promise<LeaseCoordinator> {
  const coordinator = await LeaseCoordinator.start({
    processOpen,
    api: leases.api(),
    namespace: "ns",
    project: "p",
    replica: name,
    leaseSeconds: 30,
    pollMs: 20,
    requestTimeoutMs: 300,
    logger: testLogger,
  });
  started.push(coordinator);
  return coordinator;
}

const forever = new AbortController().signal;
const scale = (process: string, order: number): TicketRequest => ({
  process,
  fn: "scale",
  order,
  effect: "pods",
});
/** The names' Leases (not the replicas', the registry's or the roles'). */
const nameLeases = (leases: FakeLeases) =>
  leases.names().filter((n) => leases.get(n)?.metadata?.labels?.["colonyos.io/lease"] === "deployment");

describe("a name's Lease", () => {
  it("is not left behind by calls on names that do not exist", async () => {
    const leases = new FakeLeases();
    const a = await replica(leases, "a");
    const before = leases.names().length;
    for (let i = 0; i < 20; i++) {
      const turn = await a.acquire(`n${i}`, scale(`s${i}`, i + 1), forever);
      await turn.release(); // unknown deployment: nothing was updated, nothing recorded
    }
    expect(leases.names().length).toBe(before);
    expect(nameLeases(leases)).toEqual([]);
  }, 20_000);

  it("stays once anything was attempted or applied on the name, an undeploy too", async () => {
    const leases = new FakeLeases();
    const a = await replica(leases, "a");
    const undeploy = await a.acquire(
      "gone",
      { process: "u", fn: "undeploy", order: 1, effect: "replace" },
      forever,
    );
    await undeploy.release({ version: 1, applied: { process: "u", fn: "undeploy", order: 1, at: "t" } });
    const failed = await a.acquire(
      "half",
      { process: "d", fn: "deploy", order: 1, effect: "replace" },
      forever,
    );
    await failed.release({ version: 1 }); // a failed update changed the stack partly: its version moved on
    expect(nameLeases(leases).sort()).toEqual([a.nameLease("gone"), a.nameLease("half")]);
  });

  it("stays for a ticket that arrives while the last turn ends", async () => {
    const leases = new FakeLeases();
    const [a, b] = [await replica(leases, "a"), await replica(leases, "b")];
    const held = await a.acquire("x", scale("s1", 1), forever);
    let arrived = false;
    // Between the read that finds nothing left on the Lease and its delete, another replica puts a ticket down.
    leases.before = (verb, name) => {
      if (verb !== "delete" || name !== a.nameLease("x") || arrived) return;
      arrived = true;
      const lease = leases.get(name);
      const tickets = [{ process: "s2", fn: "scale", order: 2, effect: "pods", id: "t2", replica: "b" }];
      leases.put({
        ...lease,
        metadata: {
          ...lease?.metadata,
          annotations: { ...lease?.metadata?.annotations, "colonyos.io/tickets": JSON.stringify(tickets) },
        },
      });
    };
    await held.release();
    expect(arrived).toBe(true);
    const lease = leases.get(a.nameLease("x"));
    expect(lease).toBeDefined();
    expect(JSON.parse(lease?.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]")).toHaveLength(1);
    expect(lease?.spec?.holderIdentity).toBeUndefined();
    leases.before = undefined;
    // And the next call on the name, on the other replica, gets its turn; once it ends, the Lease goes.
    const lease2 = leases.get(a.nameLease("x"));
    leases.put({
      ...lease2,
      metadata: {
        ...lease2?.metadata,
        annotations: { ...lease2?.metadata?.annotations, "colonyos.io/tickets": "[]" },
      },
    });
    const next = await b.acquire("x", scale("s3", 3), forever);
    await next.release();
    expect(nameLeases(leases)).toEqual([]);
  });

  it("keeps the place of a call a gone replica ran without a ticket, until its re-run takes it", async () => {
    const leases = new FakeLeases();
    let open = true;
    const a = await replica(leases, "a", async (id) => id === "p1" && open);
    // Assigned to "dead" just before it died, p1 had no ticket yet; its Colonies record is about to be removed.
    await a.keepPlace("web", { process: "p1", fn: "scale", order: 1, effect: "none" }, "dead");
    await a.keepPlace("web", { process: "p1", fn: "scale", order: 1, effect: "none" }, "dead"); // once only
    const events: string[] = [];
    const later = a.acquire("web", scale("p2", 2), forever).then(async (turn) => {
      events.push("p2");
      await turn.release();
    });
    await new Promise((r) => setTimeout(r, 700));
    expect(events).toEqual([]);
    // Colonies re-queued p1 and it runs again: its ticket takes the place, first.
    const rerun = await a.acquire("web", scale("p1", 1), forever);
    events.push("p1");
    await rerun.release();
    await later;
    expect(events).toEqual(["p1", "p2"]);
    // A stand-in whose call was closed meanwhile holds nothing up.
    await a.keepPlace("web", { process: "p3", fn: "scale", order: 3, effect: "none" }, "dead");
    open = false;
    await (await a.acquire("web", scale("p4", 4), forever)).release();
  });

  it("waits through apiserver failures and lost answers instead of failing the call", async () => {
    const leases = new FakeLeases();
    const [a, b] = [await replica(leases, "a"), await replica(leases, "b")];
    const held = await a.acquire("web", scale("s1", 1), forever);
    const waiting = b.acquire("web", scale("s2", 2), forever);
    await new Promise((r) => setTimeout(r, 400));
    leases.failing = 5; // the apiserver answers 503 a few times
    await new Promise((r) => setTimeout(r, 300));
    await held.release({ version: 1, applied: { process: "s1", fn: "scale", order: 1, at: "t" } });
    const turn = await waiting;
    expect(turn.record.applied?.process).toBe("s1");
    // The write that takes the next turn is stored, but its answer is lost: the turn is still this call's.
    const third = a.acquire("web", scale("s3", 3), forever);
    await new Promise((r) => setTimeout(r, 400));
    leases.loseAnswers = true;
    await turn.release({ version: 2, applied: { process: "s2", fn: "scale", order: 2, at: "t" } });
    await new Promise((r) => setTimeout(r, 300));
    leases.loseAnswers = false;
    const last = await third;
    expect(last.record.version).toBe(2);
    const tickets = JSON.parse(
      leases.get(a.nameLease("web"))?.metadata?.annotations?.["colonyos.io/tickets"] ?? "",
    );
    expect(tickets.map((t: { process: string }) => t.process)).toEqual(["s3"]);
    await last.release();
  });
});
