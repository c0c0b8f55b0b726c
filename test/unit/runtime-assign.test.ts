/**
 * The runtime's assign loops against an in-memory Colonies (test/support/fake-colonies.ts), in fake time: N slots,
 * "nothing to do" (404), backoff while the server is unreachable, re-registration when refused (403), and the
 * heartbeat that keeps a busy executor known to the server.
 */
import { describe, expect, it, vi } from "vitest";
import { generatePrivateKey } from "../../src/colonies/crypto.js";
import { ProcessState } from "../../src/colonies/types.js";
import { backoffMs } from "../../src/executor/runtime.js";
import {
  elapse,
  FakeColonies,
  LEVEL,
  startOnFake,
  until,
  useFakeRuntimeTime,
} from "../support/fake-colonies.js";

useFakeRuntimeTime();

/** Differences between consecutive numbers. */
const gaps = (times: number[]) => times.slice(1).map((time, i) => time - (times[i] as number));

describe("assign loops", () => {
  it("run at most N processes at once on N slots, each process once", async () => {
    const { fake, state } = await startOnFake({ concurrency: 3 });
    await until("three slots polling", () => fake.assignsInFlight === 3);
    const processes = Array.from({ length: 10 }, (_, i) => fake.submit("hold", [String(100 + 37 * i)]));

    await until("all ten reported", () => fake.reports.length === 10);
    expect(state.peak).toBe(3);
    // A slot is either polling or running a handler, never both: no fourth request while three run.
    expect(state.peakBusy).toBe(3);
    expect(fake.maxAssignsInFlight).toBe(3);
    expect([...state.started].sort()).toEqual(processes.map((p) => p.processid).sort());
    for (const process of processes) {
      expect(fake.reportsOf(process.processid)).toEqual([expect.objectContaining({ kind: "success" })]);
    }
    expect(fake.callsOf("closeSuccessful")).toHaveLength(10);
    expect(fake.callsOf("closeFailed")).toHaveLength(0);
  });

  it("poll again at once when the server has nothing to do (404), counting no error", async () => {
    const { fake, runtime } = await startOnFake({ assignTimeoutSeconds: 2 });
    await until("four assign requests", () => fake.callsOf("assign").length >= 4);
    // Each request waits out the server's long-poll; the next follows without a backoff pause.
    expect(gaps(fake.callsOf("assign").map((call) => call.at))).toEqual([2000, 2000, 2000]);
    expect(runtime.metrics.assignErrors).toBe(0);
    expect(await runtime.ready()).toBe(true);

    const process = fake.submit("echo", ["hello"]);
    await until("served", () => fake.reportsOf(process.processid).length === 1);
    expect(fake.reportsOf(process.processid)[0]).toMatchObject({ kind: "success", out: ["hello"] });
  });

  it("back off with full jitter under an exponential ceiling", () => {
    const random = vi.spyOn(Math, "random");
    random.mockReturnValue(0);
    expect([0, 1, 5, 30].map(backoffMs)).toEqual([250, 250, 250, 250]);
    random.mockReturnValue(0.999999);
    expect([0, 1, 2, 3, 4, 5, 30].map((attempt) => Math.round(backoffMs(attempt)))).toEqual([
      500, 1000, 2000, 4000, 8000, 15_000, 15_000,
    ]);
    random.mockReturnValue(0.5);
    expect(backoffMs(2)).toBe(250 + 0.5 * (2000 - 250));
  });

  it("back off with jittered, growing pauses while the server is unreachable, then serve again", async () => {
    const { fake, runtime } = await startOnFake();
    await until("polling", () => fake.assignsInFlight === 1);
    vi.spyOn(Math, "random")
      .mockReturnValueOnce(0.1)
      .mockReturnValueOnce(0.9)
      .mockReturnValueOnce(0.3)
      .mockReturnValueOnce(0.7)
      .mockReturnValue(0.5);
    const downAt = Date.now();
    const before = fake.callsOf("assign").length;
    fake.goDown(); // fails the long-poll in flight as well

    await until("four retries", () => fake.callsOf("assign").length >= before + 4);
    const retries = fake
      .callsOf("assign")
      .slice(before, before + 4)
      .map((call) => call.at - downAt);
    // 250 + r * (min(15000, 500 * 2^attempt) - 250) for r = 0.1, 0.9, 0.3, 0.7, one after the other.
    expect(gaps([0, ...retries])).toEqual([275, 925, 775, 2875]);
    expect(runtime.metrics.assignErrors).toBe(5); // the long-poll that was cut, and the four retries
    expect(await runtime.ready()).toBe(false);

    fake.comeBack();
    await until("polling again", () => fake.assignsInFlight === 1, 30_000);
    const process = fake.submit("echo", ["back"]);
    await until("served", () => fake.reportsOf(process.processid).length === 1);
    expect(fake.state(process.processid)).toBe(ProcessState.SUCCESS);
    expect(await runtime.ready()).toBe(true); // once the server answered again
  });

  it("register again when the server no longer knows the executor (403), and serve again", async () => {
    const { fake, runtime, lines } = await startOnFake({ assignTimeoutSeconds: 1 });
    expect(fake.callsOf("addExecutor")).toHaveLength(1);
    expect(fake.callsOf("addFunction")).toHaveLength(5);

    fake.forget("test-executor");
    await until("registered again", () => fake.executors.get("test-executor")?.approved === true);
    expect(fake.callsOf("addExecutor")).toHaveLength(2);
    expect(fake.callsOf("approveExecutor")).toHaveLength(2);
    expect(fake.functions.map((f) => f.funcname).sort()).toEqual([
      "echo",
      "explode",
      "hold",
      "refuse",
      "wrong",
    ]);
    expect(runtime.metrics.assignErrors).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => l.level === LEVEL.warn && /no longer accepts/.test(l.msg))).toBe(true);

    const process = fake.submit("echo", ["again"]);
    await until("served", () => fake.reportsOf(process.processid).length === 1);
    expect(fake.state(process.processid)).toBe(ProcessState.SUCCESS);
  });

  it("without the colony key, keep backing off when refused instead of registering", async () => {
    const fake = new FakeColonies();
    const key = generatePrivateKey();
    fake.preRegister(key, "pre-registered");
    const { runtime } = await startOnFake(
      { colonyPrvKey: undefined, executorPrvKey: key, assignTimeoutSeconds: 1 },
      fake,
    );
    expect(runtime.executorName).toBe("pre-registered");

    fake.forget("pre-registered");
    const before = fake.callsOf("assign").length;
    await until("three refused assigns", () => fake.callsOf("assign").length >= before + 3);
    // no attempt to register: neither adding itself nor looking its name up again
    expect(fake.callsOf("addExecutor")).toHaveLength(0);
    expect(fake.callsOf("getExecutors")).toHaveLength(1);
    expect(runtime.metrics.assignErrors).toBeGreaterThanOrEqual(2);
    // every retry came after a backoff pause, none at once
    for (const gap of gaps(
      fake
        .callsOf("assign")
        .slice(before)
        .map((call) => call.at),
    )) {
      expect(gap).toBeGreaterThanOrEqual(250);
    }
  });
});

describe("heartbeat", () => {
  it("keeps a busy executor heard from without taking work; none while idle polling does", async () => {
    const { fake, state } = await startOnFake({ assignTimeoutSeconds: 2, heartbeatMs: 4000 });
    await elapse(10_000);
    expect(fake.callsOf("heartbeat")).toHaveLength(0);

    const long = fake.submit("hold", ["30000"]);
    await until("the only slot busy", () => state.running === 1);
    const busyFrom = Date.now();
    const waiting = fake.submit("echo", ["later"]);
    await elapse(20_000);

    const heartbeats = fake.callsOf("heartbeat").map((call) => call.at);
    expect(heartbeats.length).toBeGreaterThanOrEqual(4);
    // Never silent for longer than heartbeatMs plus one check interval (a second) while busy.
    const lastAssign = Math.max(
      ...fake
        .callsOf("assign")
        .map((call) => call.at)
        .filter((at) => at <= busyFrom),
    );
    for (const gap of gaps([lastAssign, ...heartbeats, Date.now()])) expect(gap).toBeLessThanOrEqual(5000);
    expect(fake.state(waiting.processid)).toBe(ProcessState.WAITING);
    expect(fake.state(long.processid)).toBe(ProcessState.RUNNING);

    await until("both served", () => fake.reports.length === 2);
    expect(fake.reports.map((r) => r.processId)).toEqual([long.processid, waiting.processid]);
    expect(state.peak).toBe(1);

    const count = fake.callsOf("heartbeat").length;
    await elapse(10_000);
    expect(fake.callsOf("heartbeat")).toHaveLength(count);
  });

  it("runs a process the heartbeat was assigned anyway, rather than losing it", async () => {
    const { fake, state, lines } = await startOnFake({ assignTimeoutSeconds: 2, heartbeatMs: 4000 });
    fake.submit("hold", ["20000"]);
    await until("the only slot busy", () => state.running === 1);
    const stray = fake.submitToHeartbeat("echo", ["stray"]);
    await until("the stray process reported", () => fake.reportsOf(stray.processid).length === 1);
    expect(fake.reportsOf(stray.processid)[0]).toMatchObject({ kind: "success", out: ["stray"] });
    expect(lines.some((l) => l.level === LEVEL.warn && /heartbeat was assigned/.test(l.msg))).toBe(true);
  });
});
