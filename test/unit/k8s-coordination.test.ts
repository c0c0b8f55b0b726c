import { describe, expect, it } from "vitest";
import { LocalCoordinator, type NameRecord, supersedes, type Ticket } from "../../src/k8s/coordination.js";
import type { SupersededError } from "../../src/k8s/stack-errors.js";

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

describe("LocalCoordinator", () => {
  const signal = new AbortController().signal;

  it("gives turns in ticket order, coalesces waiting desired states, and keeps each name's record", async () => {
    const coordinator = new LocalCoordinator();
    const first = await coordinator.acquire("web", ticket("d1", 1, "replace"), signal);
    expect(first.record).toEqual({ version: 0 });
    // While d1 holds the turn, three more arrive out of order.
    const events: string[] = [];
    const waiting = [ticket("s4", 4, "pods"), ticket("s2", 2, "pods"), ticket("s3", 3, "pods")].map((t) =>
      coordinator.acquire("web", t, signal).then(
        async (turn) => {
          events.push(`turn ${t.process} v${turn.record.version}`);
          await turn.release({ version: turn.record.version + 1 });
        },
        (error: unknown) =>
          events.push(
            `${t.process}: ${(error as SupersededError).how} ${(error as SupersededError).by.process}`,
          ),
      ),
    );
    await new Promise((r) => setTimeout(r, 150)); // past the gather window
    await first.release({ version: 1, applied: { process: "d1", fn: "deploy", order: 1, at: "now" } });
    await Promise.all(waiting);
    expect(events.sort()).toEqual(["s2: queued s4", "s3: queued s4", "turn s4 v1"]);
    const again = await coordinator.acquire("web", ticket("s5", 5, "pods"), signal);
    expect(again.record.version).toBe(2);
    expect(again.record.applied).toBeUndefined(); // s4's release recorded no applied operation
    await again.release();
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
    await new Promise((r) => setTimeout(r, 150));
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
});
