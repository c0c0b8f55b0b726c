/** The order of calls on a name: the Colonies server's submission time, parsed exactly to nanoseconds. */
import { describe, expect, it } from "vitest";
import { submissionOrder } from "../../src/executor/process-runner.js";

/** Nanoseconds since the epoch of a UTC time given as whole seconds + a fraction, computed without Date's ms. */
const ns = (isoSeconds: string, fraction: bigint) =>
  Number(BigInt(Date.parse(isoSeconds) / 1000) * 1_000_000_000n + fraction);

describe("submissionOrder", () => {
  it("parses the server's RFC 3339 time with nanoseconds to nanoseconds since the epoch", () => {
    expect(submissionOrder("2026-12-06T05:51:01.123456789Z")).toBe(ns("2026-12-06T05:51:01Z", 123456789n));
    expect(submissionOrder("2026-12-06T05:51:01Z")).toBe(ns("2026-12-06T05:51:01Z", 0n));
    expect(submissionOrder("2026-12-06T05:51:01.5Z")).toBe(ns("2026-12-06T05:51:01Z", 500_000_000n));
    // Exact where a number can be: near the epoch every nanosecond counts.
    expect(submissionOrder("1970-01-01T00:00:01.000000001Z")).toBe(1_000_000_001);
    expect(submissionOrder("1969-12-31T23:59:59.5Z")).toBe(-500_000_000);
  });

  it("keeps the fraction Date would cut to milliseconds: calls a microsecond apart stay in order", () => {
    const first = submissionOrder("2026-12-06T05:51:01.123456Z") as number;
    const second = submissionOrder("2026-12-06T05:51:01.123457Z") as number;
    expect(second).toBeGreaterThan(first);
    expect(second - first).toBeCloseTo(1000, -3);
    expect(Date.parse("2026-12-06T05:51:01.123456Z")).toBe(Date.parse("2026-12-06T05:51:01.123457Z"));
  });

  it("applies the offset a server outside UTC writes", () => {
    expect(submissionOrder("2026-12-06T07:51:01.000001+02:00")).toBe(
      submissionOrder("2026-12-06T05:51:01.000001Z"),
    );
    expect(submissionOrder("2026-12-05T23:21:01-06:30")).toBe(submissionOrder("2026-12-06T05:51:01Z"));
  });

  it("is undefined for anything that is not such a time", () => {
    for (const text of [
      undefined,
      "",
      "2026-12-06",
      "2026-02-30T00:00:00Z",
      "2026-12-06T05:51:01.1234567890Z",
      "2026-12-06T05:51:01",
      "2026-12-06T25:00:00Z",
      "2026-12-06T05:51:01+24:00",
      "1764998000000000000",
    ]) {
      expect(submissionOrder(text), String(text)).toBeUndefined();
    }
  });
});
