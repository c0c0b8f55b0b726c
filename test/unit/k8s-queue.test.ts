import { describe, expect, it } from "vitest";
import { KeyedQueue } from "../../src/k8s/queue.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("KeyedQueue", () => {
  it("runs operations on one key one at a time in arrival order, even when one fails", async () => {
    const queue = new KeyedQueue({ limit: 4 });
    const events: string[] = [];
    const op =
      (name: string, ms: number, fail = false) =>
      async () => {
        events.push(`start ${name}`);
        await tick(ms);
        events.push(`end ${name}`);
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([
      queue.run("a", op("deploy", 30)),
      queue.run("a", op("scale-1", 5, true)),
      queue.run("a", op("scale-2", 1)),
    ]);
    expect(events).toEqual([
      "start deploy",
      "end deploy",
      "start scale-1",
      "end scale-1",
      "start scale-2",
      "end scale-2",
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });

  it("sorts a burst of operations on an idle key by their order, not their arrival", async () => {
    const queue = new KeyedQueue({ limit: 4, gatherMs: 20 });
    const events: string[] = [];
    const op = (name: string) => async () => {
      events.push(name);
      await tick(5);
    };
    await Promise.all([
      queue.run("k", op("scale-2"), 3),
      queue.run("k", op("deploy"), 1),
      queue.run("k", op("scale-4"), 2),
    ]);
    expect(events).toEqual(["deploy", "scale-4", "scale-2"]);
  });

  it("runs different keys concurrently up to the limit", async () => {
    const queue = new KeyedQueue({ limit: 2 });
    let running = 0;
    let peak = 0;
    const op = async () => {
      running++;
      peak = Math.max(peak, running);
      await tick(20);
      running--;
    };
    await Promise.all(["a", "b", "c", "d", "e"].map((key) => queue.run(key, op)));
    expect(peak).toBe(2);
    expect(queue.busyKeys).toEqual([]);
  });

  it("lets a waiting operation defer to a later waiting one, and runs it once that one has gone", async () => {
    type Tag = { name: string; kind: "scale" | "deploy" | "preview" };
    const queue = new KeyedQueue<Tag>({
      limit: 4,
      // A scale defers to later scales; previews neither defer nor are deferred to.
      defers: (earlier, later) => earlier.kind === "scale" && later.kind === "scale",
    });
    const ran: string[] = [];
    const op = (tag: Tag, order: number) =>
      queue.run(
        "k",
        async () => {
          ran.push(tag.name);
          await tick(10);
          return tag.name;
        },
        order,
        tag,
      );
    const results = await Promise.allSettled([
      op({ name: "deploy", kind: "deploy" }, 1),
      op({ name: "scale-1", kind: "scale" }, 2),
      op({ name: "preview", kind: "preview" }, 3),
      op({ name: "scale-2", kind: "scale" }, 4),
      op({ name: "scale-3", kind: "scale" }, 5),
    ]);
    // Nothing is dropped: the earlier scales run after the last one (their operation decides what to do then).
    expect(ran).toEqual(["deploy", "preview", "scale-3", "scale-2", "scale-1"]);
    expect(results.map((r) => r.status)).toEqual(Array(5).fill("fulfilled"));
    expect(queue.busyKeys).toEqual([]);
  });

  it("runs operations without an order after every ordered one", async () => {
    const queue = new KeyedQueue({ gatherMs: 20 });
    const ran: string[] = [];
    const op = (name: string) => async () => {
      ran.push(name);
    };
    await Promise.all([queue.run("k", op("unordered")), queue.run("k", op("ordered"), 1.8e18)]);
    expect(ran).toEqual(["ordered", "unordered"]);
  });
});
