/**
 * Reports while the Colonies server is away (killed, restarting), against the in-memory Colonies in fake time: a
 * close is retried until the server answers again, however long that takes, and is never sent twice, also when
 * an attempt reached the server but its answer was lost; on shutdown, reports wait one more grace period.
 */
import { describe, expect, it } from "vitest";
import { ProcessState } from "../../src/colonies/types.js";
import {
  elapse,
  FakeColonies,
  LEVEL,
  startOnFake,
  unreachable,
  until,
  useFakeRuntimeTime,
} from "../support/fake-colonies.js";

useFakeRuntimeTime();

describe("a report while the server is away", () => {
  it("is retried until the server answers again, delivered once, and the executor serves on", async () => {
    const { fake, runtime, state, lines } = await startOnFake();
    const process = fake.submit("hold", ["1000"]);
    await until("running", () => state.running === 1);
    fake.goDown();
    await elapse(120_000); // far longer than five attempts used to last (6.2 s)
    expect(fake.reports).toEqual([]);
    // Each retry first asks whether the process was closed meanwhile; the server cannot say, so it waits on,
    // with a capped backoff (about one retry per 10 s once it has grown).
    const retries = fake.callsOf("getProcess").length;
    expect(retries).toBeGreaterThan(5);
    expect(retries).toBeLessThan(25);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(1);
    expect(runtime.metrics.reportsUndelivered).toBe(0);

    fake.comeBack();
    await until("delivered", () => fake.reports.length === 1, 30_000);
    expect(fake.reportsOf(process.processid)).toEqual([expect.objectContaining({ kind: "success" })]);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(2);
    expect(lines.filter((l) => l.level >= LEVEL.error)).toEqual([]);

    const next = fake.submit("echo", ["after the outage"]);
    await until("served", () => fake.state(next.processid) === ProcessState.SUCCESS, 30_000);
    expect(runtime.metrics.reportsUndelivered).toBe(0);
  });

  it("is not sent again when an attempt closed the process but its answer was lost", async () => {
    const fake = new FakeColonies();
    const close = fake.closeSuccessful.bind(fake);
    let lost = 1;
    // The server closes the process and dies before answering.
    fake.closeSuccessful = async (...args) => {
      await close(...args);
      if (lost-- > 0) {
        fake.goDown();
        throw unreachable("closeSuccessful");
      }
      return {};
    };
    const { runtime, lines } = await startOnFake({}, fake);
    const process = fake.submit("echo", ["once"]);
    await until("closed", () => fake.reports.length === 1);
    await elapse(5_000);
    fake.comeBack();
    await until("the report settled", () => lines.some((l) => l.msg === "process done"), 30_000);
    expect(fake.callsOf("closeSuccessful")).toHaveLength(1);
    expect(fake.callsOf("getProcess").length).toBeGreaterThanOrEqual(1);
    expect(fake.reportsOf(process.processid)).toHaveLength(1);
    expect(runtime.metrics.reportsUndelivered).toBe(0);
    expect(lines.filter((l) => l.level >= LEVEL.error)).toEqual([]);
  });

  it("gives up one grace period after the handlers are done when the executor shuts down", async () => {
    const { fake, runtime } = await startOnFake({ shutdownGraceMs: 2000 });
    fake.submit("hold", ["100"]);
    fake.goDown();
    await until("the close was tried", () => fake.callsOf("closeSuccessful").length >= 1);
    const t0 = Date.now();
    let stoppedAt: number | undefined;
    void runtime.shutdown("test").then(() => {
      stoppedAt = Date.now();
    });
    await until("stopped", () => stoppedAt !== undefined, 30_000);
    // The slot's loop ends at once (nothing runs); the report gets the grace period, then gives up.
    expect((stoppedAt as number) - t0).toBeGreaterThanOrEqual(2000);
    expect((stoppedAt as number) - t0).toBeLessThan(3000);
    expect(runtime.metrics.reportsUndelivered).toBe(1);
  });
});
