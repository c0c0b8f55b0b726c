import { describe, expect, it } from "vitest";
import { LocalCoordinator, supersedes, type Ticket } from "../../src/k8s/coordination.js";
import type { SupersededError } from "../../src/k8s/stack-errors.js";

const ticket = (process: string, order: number, effect: Ticket["effect"]): Ticket => ({
  process,
  fn: effect === "pods" ? "scale" : "deploy",
  order,
  effect,
});

describe("supersedes", () => {
  it("lets later desired states replace earlier ones, and never touches previews", () => {
    const deploy1 = ticket("d1", 1, "replace");
    const scale2 = ticket("s2", 2, "pods");
    const scale3 = ticket("s3", 3, "pods");
    const deploy4 = ticket("d4", 4, "replace");
    const preview5 = ticket("p5", 5, "none");
    expect(supersedes(scale3, scale2)).toBe(true);
    expect(supersedes(scale2, deploy1)).toBe(false); // a scale keeps the deploy's other fields: it needs it
    expect(supersedes(deploy4, scale3)).toBe(true);
    expect(supersedes(deploy4, deploy1)).toBe(true);
    expect(supersedes(scale2, scale3)).toBe(false); // earlier never supersedes later
    expect(supersedes(preview5, scale3)).toBe(false);
    expect(supersedes(deploy4, preview5)).toBe(false);
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
