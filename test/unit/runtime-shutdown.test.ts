/**
 * Staged shutdown against an in-memory Colonies (test/support/fake-colonies.ts), in fake time: polling stops at
 * once, running processes get the grace period, what outlives it is aborted and failed with the reason, and only
 * then is the executor deregistered; a second signal skips the grace period.
 */
import { describe, expect, it } from "vitest";
import { generatePrivateKey } from "../../src/colonies/crypto.js";
import { ProcessState } from "../../src/colonies/types.js";
import {
  elapse,
  FakeColonies,
  startOnFake,
  unreachable,
  until,
  useFakeRuntimeTime,
} from "../support/fake-colonies.js";

useFakeRuntimeTime();

/** Starts a shutdown and tracks when it resolves. */
function shutdown(runtime: { shutdown(reason?: string): Promise<void> }, reason: string) {
  const tracked = { promise: runtime.shutdown(reason), at: undefined as number | undefined };
  void tracked.promise.then(() => {
    tracked.at = Date.now();
  });
  return tracked;
}

describe("shutdown", () => {
  it("stops polling, lets processes finish within the grace period, fails the rest with the reason, then deregisters", async () => {
    const { fake, runtime, state } = await startOnFake({ concurrency: 3, shutdownGraceMs: 1000 });
    const short = fake.submit("hold", ["300"]);
    const long = fake.submit("hold", ["60000"]);
    await until("both running, one slot polling", () => state.running === 2 && fake.assignsInFlight === 1);

    // The fail of the long process needs a retry: shutdown waits for it before deregistering.
    fake.fail("closeFailed", unreachable("closeFailed"));
    const t0 = Date.now();
    const stopping = shutdown(runtime, "test");
    await elapse(0);
    expect(fake.assignsInFlight).toBe(0); // the idle slot's long-poll was abandoned at once
    const assigns = fake.callsOf("assign").length;
    const queued = fake.submit("echo", ["too late"]);

    await until("the short process reported", () => fake.reportsOf(short.processid).length === 1);
    expect(fake.reportsOf(short.processid)[0]).toMatchObject({ kind: "success" });
    expect(fake.reportsOf(short.processid)[0]?.at).toBeLessThanOrEqual(t0 + 300);
    expect(fake.reportsOf(long.processid)).toEqual([]);
    expect(state.abortedAt.size).toBe(0);

    await until("the long process reported", () => fake.reportsOf(long.processid).length === 1);
    expect(state.abortedAt.get(long.processid)).toBe(t0 + 1000);
    expect(fake.reportsOf(long.processid)).toEqual([
      expect.objectContaining({
        kind: "failed",
        errors: ["executor shut down (test): the process did not finish within the 1 s grace period"],
      }),
    ]);

    expect(fake.reportsOf(long.processid)[0]?.at).toBe(t0 + 1000 + 400);
    await until("stopped", () => stopping.at !== undefined);
    expect(stopping.at).toBe(t0 + 1400);
    // deregistered after the last report was delivered, then the instance and the client are closed
    const removal = fake.indexOf("removeExecutor");
    expect(fake.calls.slice(removal).map((c) => c.method)).toEqual(["removeExecutor", "close"]);
    expect(fake.callsOf("closeFailed")).toHaveLength(2);
    expect(fake.callsOf("removeExecutor").map((c) => c.args[1])).toEqual(["test-executor"]);
    expect(fake.executors.has("test-executor")).toBe(false);
    expect(state.closedAfterCalls).toBe(removal + 1);
    expect(fake.calls.at(-1)?.method).toBe("close");
    // nothing polled after the shutdown began; the process queued meanwhile is left for others
    expect(fake.callsOf("assign")).toHaveLength(assigns);
    expect(fake.state(queued.processid)).toBe(ProcessState.WAITING);
    expect(runtime.metrics.completed).toEqual({ success: 1, failed: 0, aborted: 1 });
  });

  it("fails a handler that ignores its abort signal 5 s after aborting it", async () => {
    const { fake, runtime, state } = await startOnFake({ shutdownGraceMs: 1000 });
    const stubborn = fake.submit("hold", ["600000"], { stubborn: "true" });
    await until("running", () => state.running === 1);

    const t0 = Date.now();
    const stopping = shutdown(runtime, "SIGTERM");
    await until("reported", () => fake.reports.length === 1);
    expect(state.abortedAt.get(stubborn.processid)).toBe(t0 + 1000);
    expect(fake.reports[0]).toMatchObject({
      processId: stubborn.processid,
      kind: "failed",
      errors: [expect.stringMatching(/^executor shut down \(SIGTERM\)/)],
      at: t0 + 6000,
    });
    await until("stopped", () => stopping.at !== undefined);
    expect(fake.callsOf("removeExecutor")).toHaveLength(1);
    expect(state.running).toBe(1); // the handler itself is still going; shutdown did not wait for it
  });

  it("a second signal aborts at once instead of waiting out the grace period", async () => {
    const { fake, runtime, state } = await startOnFake({ shutdownGraceMs: 600_000 });
    const long = fake.submit("hold", ["60000"]);
    await until("running", () => state.running === 1);

    const t0 = Date.now();
    const first = shutdown(runtime, "SIGTERM");
    await elapse(300);
    expect(fake.reports).toEqual([]);
    expect(state.abortedAt.size).toBe(0);

    const second = runtime.shutdown("SIGINT");
    expect(second).toBe(first.promise);
    await until("stopped", () => first.at !== undefined);
    expect(state.abortedAt.get(long.processid)).toBe(t0 + 300);
    expect(first.at).toBe(t0 + 300);
    expect(fake.reports).toEqual([
      expect.objectContaining({ kind: "failed", errors: ["executor forced to stop (SIGINT)"] }),
    ]);
    expect(fake.callsOf("closeFailed")).toHaveLength(1);
    expect(fake.callsOf("removeExecutor")).toHaveLength(1);
  });

  it("does not wait for a long-poll in flight", async () => {
    const { fake, runtime } = await startOnFake({ assignTimeoutSeconds: 60, concurrency: 2 });
    await until("polling", () => fake.assignsInFlight === 2);
    const t0 = Date.now();
    const stopping = shutdown(runtime, "test");
    await until("stopped", () => stopping.at !== undefined);
    expect(stopping.at).toBe(t0);
    expect(fake.callsOf("removeExecutor")).toHaveLength(1);
    expect(fake.closed).toBe(true);
  });

  it("leaves a pre-registered executor registered", async () => {
    const fake = new FakeColonies();
    const key = generatePrivateKey();
    fake.preRegister(key, "pre-registered");
    const { runtime, state } = await startOnFake({ colonyPrvKey: undefined, executorPrvKey: key }, fake);
    const stopping = shutdown(runtime, "test");
    await until("stopped", () => stopping.at !== undefined);
    expect(fake.callsOf("removeExecutor")).toHaveLength(0);
    expect(fake.executors.has("pre-registered")).toBe(true);
    expect(state.closedAfterCalls).toBeDefined();
    expect(fake.closed).toBe(true);
  });

  it("still stops when deregistration fails", async () => {
    const { fake, runtime, lines } = await startOnFake();
    fake.fail("removeExecutor", new Error("connection reset"));
    const stopping = shutdown(runtime, "test");
    await until("stopped", () => stopping.at !== undefined);
    expect(fake.callsOf("removeExecutor")).toHaveLength(1);
    expect(lines.find((l) => l.msg === "could not deregister")?.err?.message).toBe("connection reset");
    expect(fake.closed).toBe(true);
  });
});
