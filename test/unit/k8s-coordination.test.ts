import { describe, expect, it } from "vitest";
import {
  appliedLater,
  LocalCoordinator,
  type NameRecord,
  type NameTurn,
  nextInTurn,
  nextOrder,
  placedAfter,
  supersedes,
  type Ticket,
  type TicketRequest,
} from "../../src/k8s/coordination.js";
import { SupersededError } from "../../src/k8s/stack-errors.js";

const ticket = (process: string, order: number, effect: Ticket["effect"]): Ticket => ({
  process,
  fn: effect === "pods" ? "scale" : "deploy",
  order,
  effect,
});

describe("supersedes", () => {
  const deployedRecord: NameRecord = {
    version: 3,
    applied: { process: "d0", fn: "deploy", order: 0, at: "then" },
  };

  it("lets later desired states replace earlier ones, and never touches previews", () => {
    const deploy1 = ticket("d1", 1, "replace");
    const scale2 = ticket("s2", 2, "pods");
    const scale3 = ticket("s3", 3, "pods");
    const deploy4 = ticket("d4", 4, "replace");
    const preview5 = ticket("p5", 5, "none");
    const r = deployedRecord;
    expect(supersedes(scale3, scale2, r)).toBe(true);
    expect(supersedes(scale2, deploy1, r)).toBe(false); // a scale keeps the deploy's other fields: it needs it
    expect(supersedes(deploy4, scale3, r)).toBe(true);
    expect(supersedes(deploy4, deploy1, r)).toBe(true);
    expect(supersedes(scale2, scale3, r)).toBe(false); // earlier never supersedes later
    expect(supersedes(preview5, scale3, r)).toBe(false);
    expect(supersedes(deploy4, preview5, r)).toBe(false);
  });

  it("supersedes nothing on a name that is not deployed: the later call may fail", () => {
    const scale1 = ticket("s1", 1, "pods");
    const undeploy2: Ticket = { process: "u2", fn: "undeploy", order: 2, effect: "replace" };
    const undeployed: NameRecord = {
      version: 4,
      applied: { process: "u0", fn: "undeploy", order: 0, at: "" },
    };
    expect(supersedes(undeploy2, scale1, undefined)).toBe(false);
    expect(supersedes(undeploy2, scale1, { version: 0 })).toBe(false);
    expect(supersedes(undeploy2, scale1, undeployed)).toBe(false);
    expect(supersedes(undeploy2, scale1, deployedRecord)).toBe(true);
  });
});

describe("appliedLater", () => {
  const record = (order: number, process = "a"): NameRecord => ({
    version: 1,
    applied: { process, fn: "scale", order, at: "t" },
  });

  it("supersedes desired states and reconciles older than the applied one, never previews or policies", () => {
    expect(appliedLater(ticket("s1", 1, "pods"), record(2))?.process).toBe("a");
    expect(appliedLater(ticket("d1", 1, "replace"), record(2))?.process).toBe("a");
    expect(appliedLater({ ...ticket("r1", 1, "converge"), fn: "reconcile" }, record(2))?.process).toBe("a");
    expect(appliedLater(ticket("p1", 1, "none"), record(2))).toBeUndefined();
    expect(appliedLater(ticket("a1", 1, "policy"), record(2))).toBeUndefined();
    expect(appliedLater(ticket("s3", 3, "pods"), record(2))).toBeUndefined();
  });

  it("never supersedes a call by its own earlier run (a re-run converges again)", () => {
    expect(appliedLater(ticket("same", 1, "pods"), record(2, "same"))).toBeUndefined();
    // The executor's own operations have no process: one of them is not the other.
    expect(appliedLater(ticket("", 1, "pods"), record(2, ""))).toBeDefined();
  });
});

describe("nextInTurn", () => {
  const deployedRecord: NameRecord = {
    version: 1,
    applied: { process: "d0", fn: "deploy", order: 0, at: "" },
  };

  it("is the first ticket that no later waiting ticket supersedes", () => {
    const tickets = [ticket("s1", 1, "pods"), ticket("p2", 2, "none"), ticket("s3", 3, "pods")];
    expect(nextInTurn(tickets, deployedRecord)?.process).toBe("p2");
    // Not deployed: no coalescing, the first goes first.
    expect(nextInTurn(tickets, undefined)?.process).toBe("s1");
    // A ticket that keeps its place (a dead replica's) is not deferred.
    expect(nextInTurn(tickets, deployedRecord, (t) => t.process === "s1")?.process).toBe("s1");
    expect(nextInTurn([], deployedRecord)).toBeUndefined();
  });
});

describe("the order of a ticket placed without one", () => {
  it("is the next number after the largest order the name holds, however large", () => {
    const now = 1.796e18; // nanoseconds since the epoch: 1 is far below a double's precision there
    expect(now + 1).toBe(now);
    expect(nextOrder(now)).toBeGreaterThan(now);
    expect(nextOrder(now) - now).toBe(256);
    expect(nextOrder(-5e18)).toBeGreaterThan(-5e18);
    expect(nextOrder(0)).toBeGreaterThan(0);
    const record: NameRecord = { version: 1, applied: { process: "a", fn: "scale", order: now, at: "" } };
    expect(placedAfter(record, [now - 1000])).toBe(nextOrder(now));
    expect(placedAfter(record, [now + 1e9])).toBe(nextOrder(now + 1e9));
    expect(placedAfter(undefined, [])).toBeGreaterThan(0);
    // Orders written with a priority of 50000 lie before the epoch: still after them.
    expect(placedAfter(undefined, [-4.3e18])).toBeGreaterThan(-4.3e18);
  });
});

describe("LocalCoordinator", () => {
  const signal = new AbortController().signal;
  const gathered = () => new Promise((r) => setTimeout(r, 150)); // past the gather window
  const applied = (turn: NameTurn, t: TicketRequest): NameRecord => ({
    version: turn.record.version + 1,
    applied: { process: t.process, fn: t.fn, order: turn.order, at: "now" },
  });
  /** Takes the turn and ends it: applied (the stack recorded it) or not (failed, skipped). */
  const take = (
    coordinator: LocalCoordinator,
    name: string,
    t: TicketRequest,
    events: string[],
    outcome: "applied" | "failed" = "applied",
  ) =>
    coordinator.acquire(name, t, signal).then(
      async (turn) => {
        events.push(`turn ${t.process || t.fn}`);
        await turn.release(outcome === "applied" ? applied(turn, t) : { version: turn.record.version + 1 });
      },
      (error: unknown) => {
        if (!(error instanceof SupersededError)) throw error;
        events.push(`${t.process || t.fn}: ${error.how} ${error.by.process || error.by.fn}`);
      },
    );
  const deploy = async (coordinator: LocalCoordinator, name: string, order: number) => {
    const turn = await coordinator.acquire(name, ticket(`d${order}`, order, "replace"), signal);
    return { turn, done: () => turn.release(applied(turn, ticket(`d${order}`, order, "replace"))) };
  };

  it("lets waiting desired states defer to the latest, and supersedes them once it was applied", async () => {
    const coordinator = new LocalCoordinator();
    const first = await coordinator.acquire("web", ticket("d1", 1, "replace"), signal);
    expect(first.record).toEqual({ version: 0 });
    expect(first.order).toBe(1);
    // While d1 holds the turn, three more arrive out of order.
    const events: string[] = [];
    const waiting = [ticket("s4", 4, "pods"), ticket("s2", 2, "pods"), ticket("s3", 3, "pods")].map((t) =>
      take(coordinator, "web", t, events),
    );
    await gathered();
    await first.release({ version: 1, applied: { process: "d1", fn: "deploy", order: 1, at: "now" } });
    await Promise.all(waiting);
    expect(events).toEqual(["turn s4", "s3: waited s4", "s2: waited s4"]);
    const again = await coordinator.acquire("web", ticket("s5", 5, "pods"), signal);
    expect(again.record.version).toBe(2);
    expect(again.record.applied?.process).toBe("s4");
    await again.release();
  });

  it("gives a waiting call its own turn after a later one that fails (scale 2, then scale 50 over budget)", async () => {
    const coordinator = new LocalCoordinator();
    const held = await deploy(coordinator, "web", 1);
    const events: string[] = [];
    const waiting = [
      take(coordinator, "web", ticket("s2", 2, "pods"), events),
      take(coordinator, "web", ticket("s50", 3, "pods"), events, "failed"),
    ];
    await gathered();
    await held.done();
    await Promise.all(waiting);
    expect(events).toEqual(["turn s50", "turn s2"]);
  });

  it("gives a user's scale its own turn after an autoscaler decision that superseded it and skipped", async () => {
    const coordinator = new LocalCoordinator();
    const held = await deploy(coordinator, "web", 1);
    const events: string[] = [];
    const user = take(coordinator, "web", ticket("s2", 2, "pods"), events);
    await new Promise((r) => setTimeout(r, 10));
    // Placed after s2, so it supersedes it while both wait; its turn then finds nothing to do.
    const autoscaler = take(
      coordinator,
      "web",
      { process: "", fn: "autoscaler", effect: "pods" },
      events,
      "failed",
    );
    await gathered();
    await held.done();
    await Promise.all([user, autoscaler]);
    expect(events).toEqual(["turn autoscaler", "turn s2"]);
  });

  it("places an operation without an order after everything the name holds, whatever the clock", async () => {
    const coordinator = new LocalCoordinator();
    const now = 1.796e18;
    const held = await deploy(coordinator, "web", now);
    const events: string[] = [];
    const waiting = [take(coordinator, "web", ticket("s1", now + 1e6, "pods"), events)];
    await gathered();
    // The autoscaler's ticket goes after the record (d) and the waiting s1: it is not older than what was applied.
    let placed = 0;
    waiting.push(
      coordinator
        .acquire("web", { process: "", fn: "autoscaler", effect: "pods" }, signal)
        .then(async (turn) => {
          placed = turn.order;
          events.push("turn autoscaler");
          await turn.release(applied(turn, { process: "", fn: "autoscaler", effect: "pods" }));
        }),
    );
    // A call submitted after it supersedes it: the autoscaler waits for it, and it is applied.
    waiting.push(take(coordinator, "web", ticket("s9", now + 9e6, "pods"), events));
    await gathered();
    await held.done();
    await Promise.allSettled(waiting);
    expect(events).toEqual(["turn s9", "s1: waited s9"]);
    expect(placed).toBe(0); // superseded, never took a turn
    // Alone, it takes the turn after the last applied call, and a later call is not superseded by it.
    const alone = await coordinator.acquire("web", { process: "", fn: "autoscaler", effect: "pods" }, signal);
    expect(alone.order).toBeGreaterThan(now + 9e6);
    expect(alone.order).toBeLessThan(now + 9e6 + 1e3);
    await alone.release(applied(alone, { process: "", fn: "autoscaler", effect: "pods" }));
    const later: string[] = [];
    await take(coordinator, "web", ticket("s10", now + 10e6, "pods"), later);
    expect(later).toEqual(["turn s10"]);
  });

  it("supersedes a call older than the one already applied, and says it was applied before it arrived", async () => {
    const coordinator = new LocalCoordinator();
    const held = await deploy(coordinator, "web", 10);
    await held.done();
    const events: string[] = [];
    await take(coordinator, "web", ticket("s5", 5, "pods"), events);
    await take(coordinator, "web", { ...ticket("p5", 5, "none"), fn: "preview" }, events);
    await take(coordinator, "web", ticket("d10", 10, "replace"), events); // a re-run of the applied call
    expect(events).toEqual(["s5: applied d10", "turn p5", "turn d10"]);
    const error = await coordinator.acquire("web", ticket("s6", 6, "pods"), signal).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      "web: superseded by deploy d10, later in the name's order and already applied when this call arrived",
    );
  });

  it("gives every waiting call its own turn on a name that is not deployed", async () => {
    const coordinator = new LocalCoordinator();
    const held = await coordinator.acquire("nosuch", ticket("p0", 0, "none"), signal);
    const turns: string[] = [];
    const waiting = [
      ticket("s1", 1, "pods"),
      { process: "u2", fn: "undeploy", order: 2, effect: "replace" } as Ticket,
    ].map((t) =>
      coordinator.acquire("nosuch", t, signal).then(async (turn) => {
        turns.push(t.process);
        await turn.release(); // each fails as an unknown deployment: nothing is recorded
      }),
    );
    await gathered();
    await held.release();
    await Promise.all(waiting);
    expect(turns).toEqual(["s1", "u2"]);
  });

  it("rejects a waiting ticket when its signal aborts, and the name stays usable", async () => {
    const coordinator = new LocalCoordinator();
    const held = await coordinator.acquire("a", ticket("d1", 1, "replace"), signal);
    const abort = new AbortController();
    const waiting = coordinator.acquire("a", ticket("d2", 2, "replace"), abort.signal);
    abort.abort(new Error("shutdown"));
    await expect(waiting).rejects.toThrow("shutdown");
    await held.release();
    const next = await coordinator.acquire("a", ticket("d3", 3, "replace"), signal);
    await next.release();
  });

  it("leads only the roles that are reserved", async () => {
    const coordinator = new LocalCoordinator();
    expect(await coordinator.leads("autoscaler")).toBe(true);
    await expect(coordinator.leads("orphan")).rejects.toThrow(/not a leader role/);
  });
});
