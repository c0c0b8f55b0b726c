/**
 * ProcessContext.waiting against an in-memory Colonies (test/support/fake-colonies.ts), in fake time: a handler
 * that waits on another call does not hold its slot, so that the call it waits for is assigned even when every
 * slot is taken by such waiters (the k8s replicas deadlocked so once: every slot of both survivors waited for the
 * turns of calls Colonies had re-queued from the dead replica, and nothing could assign them).
 */
import { describe, expect, it } from "vitest";
import type { FunctionDef } from "../../src/executor/types.js";
import { elapse, gate, startOnFake, until, useFakeRuntimeTime } from "../support/fake-colonies.js";

useFakeRuntimeTime();

/** `wait` waits (through ctx.waiting) until `open` is called with the same key, or for `ms` when given. */
function waitingFunctions(): FunctionDef[] {
  const gates = new Map<string, ReturnType<typeof gate>>();
  const gateOf = (key: string) => {
    let g = gates.get(key);
    if (!g) {
      g = gate();
      gates.set(key, g);
    }
    return g;
  };
  return [
    {
      name: "wait",
      description: "waits on another call",
      args: [{ name: "key", type: "string", description: "which call" }],
      kwargs: [{ name: "ms", type: "int", min: 0, description: "or this long" }],
      async handler(args, ctx) {
        const blocked =
          args.ms === undefined
            ? gateOf(args.key as string).promise
            : new Promise<void>((resolve) => setTimeout(resolve, args.ms as number));
        await (ctx.waiting ? ctx.waiting(blocked) : blocked);
        return [args.key];
      },
    },
    {
      name: "open",
      description: "lets the waiters on a key go on",
      args: [{ name: "key", type: "string", description: "which call" }],
      async handler(args) {
        gateOf(args.key as string).open(undefined);
        return [args.key];
      },
    },
  ];
}

describe("a handler waiting on other calls", () => {
  it("frees its slot while it waits: the call it waits for runs, though every slot held a waiter", async () => {
    const { fake } = await startOnFake({ concurrency: 2 }, undefined, { functions: waitingFunctions() });
    await until("two slots polling", () => fake.assignsInFlight === 2);
    const waiters = ["a", "b", "c"].map((key) => fake.submit("wait", [key]));
    const openers = ["a", "b", "c"].map((key) => fake.submit("open", [key]));

    await until("all six reported", () => fake.reports.length === 6);
    for (const p of [...waiters, ...openers]) {
      expect(fake.reportsOf(p.processid)).toEqual([expect.objectContaining({ kind: "success" })]);
    }
    // Once nothing waits, the loops beyond two end when their long poll (60 s) comes back empty.
    await elapse(130_000);

    expect(fake.assignsInFlight).toBe(2);
  });

  it("keeps its slot through a short wait", async () => {
    const { fake } = await startOnFake({ concurrency: 1 }, undefined, { functions: waitingFunctions() });
    await until("one slot polling", () => fake.assignsInFlight === 1);
    const brief = fake.submit("wait", ["brief"], { ms: 200 });
    await until("the brief wait reported", () => fake.reportsOf(brief.processid).length === 1);
    expect(fake.maxAssignsInFlight).toBe(1);
  });

  it("without waiting, one slot runs one process: a waiter holding it blocks what it waits for", async () => {
    const functions = waitingFunctions().map((fn) =>
      fn.name === "wait"
        ? {
            ...fn,
            handler: (
              args: Parameters<FunctionDef["handler"]>[0],
              ctx: Parameters<FunctionDef["handler"]>[1],
            ) => fn.handler(args, { ...ctx, waiting: undefined }),
          }
        : fn,
    );
    const { fake } = await startOnFake({ concurrency: 1 }, undefined, { functions });
    await until("one slot polling", () => fake.assignsInFlight === 1);
    fake.submit("wait", ["x"]);
    const opener = fake.submit("open", ["x"]);
    await elapse(60_000);
    expect(fake.reportsOf(opener.processid)).toEqual([]);
    expect(fake.maxAssignsInFlight).toBe(1);
  });
});
