/**
 * Exactly-once close/fail against an in-memory Colonies (test/support/fake-colonies.ts), in fake time: the
 * outcome of every process is sent once, retried only while the failure is transient, and a report that never
 * arrives is logged and counted (reportsUndelivered, colonies_executor_reports_undelivered_total).
 */
import { describe, expect, it } from "vitest";
import { ProcessState } from "../../src/colonies/types.js";
import {
  elapse,
  httpError,
  LEVEL,
  startOnFake,
  unreachable,
  until,
  useFakeRuntimeTime,
} from "../support/fake-colonies.js";

useFakeRuntimeTime();

const gaps = (times: number[]) => times.slice(1).map((time, i) => time - (times[i] as number));

describe("process reports", () => {
  it("close a successful process exactly once, with its output", async () => {
    const { fake, runtime, state } = await startOnFake();
    const process = fake.submit("echo", ["hello"]);
    await until("reported", () => fake.reports.length === 1);
    await elapse(10_000);
    expect(fake.reports).toEqual([
      expect.objectContaining({ processId: process.processid, kind: "success", out: ["hello"] }),
    ]);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(1);
    expect(fake.callsOf("closeFailed")).toHaveLength(0);
    expect(state.started).toEqual([process.processid]);
    expect(runtime.metrics.completed).toEqual({ success: 1, failed: 0, aborted: 0 });
    expect(runtime.metrics.reportsUndelivered).toBe(0);
  });

  it.each([
    {
      case: "a handler that throws: its first line, the rest to the process log",
      funcname: "explode",
      args: [],
      error: "boom: first line",
      logged: "second line with details",
    },
    {
      case: "a ProcessError: its message, its details to the process log",
      funcname: "refuse",
      args: [],
      error: "refuse: not today",
      logged: "the whole story, for the process log",
    },
    {
      case: "a handler that returns no list",
      funcname: "wrong",
      args: [],
      error: "wrong returned string, not a list of outputs",
    },
    {
      case: "an unknown function",
      funcname: "nap",
      args: [],
      error: "Unsupported function: nap; this executor offers hold, echo, explode, refuse, wrong",
    },
    {
      case: "bad arguments",
      funcname: "hold",
      args: ["soon"],
      error: 'hold: argument ms must be a whole number >= 0, got "soon"',
    },
  ])("fail $case exactly once", async ({ funcname, args, error, logged }) => {
    const { fake, runtime, state } = await startOnFake();
    const process = fake.submit(funcname, args);
    await until("reported", () => fake.reports.length === 1);
    await elapse(10_000);
    expect(fake.reports).toEqual([
      expect.objectContaining({ processId: process.processid, kind: "failed", errors: [error] }),
    ]);
    expect(fake.callsOf("closeFailed")).toHaveLength(1);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(0);
    expect(state.started.length).toBeLessThanOrEqual(1);
    if (logged) expect(fake.logs.map((l) => l.message).join("\n")).toContain(logged);
    expect(runtime.metrics.completed).toEqual({ success: 0, failed: 1, aborted: 0 });
    expect(runtime.metrics.reportsUndelivered).toBe(0);
  });

  it("retry a close that fails transiently, deliver it once, and poll again meanwhile", async () => {
    const { fake, runtime, state } = await startOnFake();
    fake.fail(
      "closeSuccessful",
      unreachable("closeSuccessful"),
      httpError("closeSuccessful", 503, "service unavailable"),
    );
    const process = fake.submit("echo", ["once"]);
    await until("delivered", () => fake.reports.length === 1);
    await elapse(30_000);

    const attempts = fake.callsOf("closeSuccessful");
    expect(attempts.map((call) => call.args[0])).toEqual([
      process.processid,
      process.processid,
      process.processid,
    ]);
    expect(gaps(attempts.map((call) => call.at))).toEqual([400, 800]);
    expect(fake.reports).toEqual([expect.objectContaining({ kind: "success", out: ["once"] })]);
    expect(fake.callsOf("closeFailed")).toHaveLength(0);
    expect(state.started).toEqual([process.processid]);
    // The slot asked for its next process while the close was still being retried.
    const [first, , last] = attempts;
    expect(
      fake.callsOf("assign").some((call) => call.at >= (first?.at ?? 0) && call.at < (last?.at ?? 0)),
    ).toBe(true);
    expect(runtime.metrics.reportsUndelivered).toBe(0);
  });

  it("retry a fail that fails transiently, deliver it once, and never close instead", async () => {
    const { fake, runtime } = await startOnFake();
    fake.fail("closeFailed", httpError("closeFailed", 500, "database is locked"));
    const process = fake.submit("explode");
    await until("delivered", () => fake.reports.length === 1);
    await elapse(30_000);
    expect(fake.callsOf("closeFailed")).toHaveLength(2);
    expect(fake.reports).toEqual([
      expect.objectContaining({ processId: process.processid, kind: "failed", errors: ["boom: first line"] }),
    ]);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(0);
    expect(runtime.metrics.reportsUndelivered).toBe(0);
  });

  it("give up on a rejected report at once, without a fail in its place; log it and count it", async () => {
    const { fake, runtime, lines } = await startOnFake();
    fake.fail(
      "closeSuccessful",
      httpError("closeSuccessful", 403, "process is not running on this executor"),
    );
    const process = fake.submit("echo", ["late"]);
    await until("counted as undelivered", () => runtime.metrics.reportsUndelivered === 1);
    await elapse(30_000);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(1);
    expect(fake.callsOf("closeFailed")).toHaveLength(0);
    expect(fake.reports).toEqual([]);
    expect(fake.state(process.processid)).toBe(ProcessState.RUNNING);
    expect(runtime.metrics.reportsUndelivered).toBe(1);
    const logged = lines.find((l) => l.level === LEVEL.error && /could not report/.test(l.msg));
    expect(logged?.err?.message).toMatch(/HTTP 403: process is not running on this executor/);
  });

  it("give up after five transient failures; count it, also on /metrics", async () => {
    const { fake, runtime } = await startOnFake();
    const registry = await runtime.metrics.export();
    const undelivered = async () =>
      (await registry.metrics()).match(/^colonies_executor_reports_undelivered_total\{[^}]*\} (\d+)$/m)?.[1];
    expect(await undelivered()).toBe("0");

    const down = Array.from({ length: 5 }, () => httpError("closeFailed", 503, "service unavailable"));
    fake.fail("closeFailed", ...down);
    fake.submit("explode");
    await until("counted as undelivered", () => runtime.metrics.reportsUndelivered === 1);
    await elapse(60_000);
    const attempts = fake.callsOf("closeFailed");
    expect(gaps(attempts.map((call) => call.at))).toEqual([400, 800, 1600, 3200]);
    expect(fake.reports).toEqual([]);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(0);
    expect(await undelivered()).toBe("1");
  });

  it("carry undelivered reports counted before the metrics were exported over to them", async () => {
    const { fake, runtime } = await startOnFake();
    fake.fail("closeSuccessful", httpError("closeSuccessful", 403, "rejected"));
    fake.submit("echo", ["lost"]);
    await until("counted as undelivered", () => runtime.metrics.reportsUndelivered === 1);
    const text = await (await runtime.metrics.export()).metrics();
    expect(text).toMatch(/^colonies_executor_reports_undelivered_total\{executor_type="test"\} 1$/m);
  });
});

describe("a process Colonies re-queues (its maxexectime ran out)", () => {
  it("stops its handler here and leaves the report to the executor it went to", async () => {
    const { fake, runtime, state } = await startOnFake({ concurrency: 2 });
    const process = fake.submit("hold", ["600000"], {}, 30);
    await until("started", () => state.started.length === 1);
    await elapse(29_000);
    expect(fake.callsOf("getProcess")).toHaveLength(0); // nothing to look at before the deadline
    fake.requeue(process.processid);
    // The second slot takes it again (in real life: another executor), the first one's handler stops.
    await until("stopped here", () => state.abortedAt.has(process.processid));
    await until("taken again", () => state.started.length === 2);
    expect(fake.callsOf("getProcess").length).toBeGreaterThanOrEqual(1);
    await elapse(10_000);
    // The first run reported nothing; the second still runs and owns the report.
    expect(fake.reports).toEqual([]);
    expect(fake.callsOf("closeFailed")).toHaveLength(0);
    expect(runtime.metrics.completed.aborted).toBe(1);
  });

  it("lets the handler finish when the executor asks so (its report is then refused)", async () => {
    const { fake, state } = await startOnFake({}, undefined, { onReassigned: "finish" });
    const process = fake.submit("hold", ["60000"], {}, 30);
    await until("started", () => state.started.length === 1);
    await elapse(31_000);
    fake.requeue(process.processid);
    await until("the first run tried to report", () => fake.callsOf("closeSuccessful").length === 1, 120_000);
    expect(state.abortedAt.has(process.processid)).toBe(false);
    expect(fake.callsOf("getProcess")).toHaveLength(0);
    expect(fake.reports).toEqual([]); // refused: the process is not running on this executor any more
  });

  it("never looks for a process without a maxexectime", async () => {
    const { fake } = await startOnFake();
    fake.submit("hold", ["100000"]);
    await until("reported", () => fake.reports.length === 1, 200_000);
    expect(fake.callsOf("getProcess")).toHaveLength(0);
  });
});
