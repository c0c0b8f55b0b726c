import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { capturingOutputs, parseEvents } from "../../src/k8s/pulumi-update.js";

describe("the update driver's pieces", () => {
  it("reads an event log: one event a line, blank and torn lines skipped", () => {
    const log = [
      JSON.stringify({ sequence: 1, timestamp: 1, preludeEvent: { config: {} } }),
      "",
      JSON.stringify({
        sequence: 2,
        timestamp: 2,
        summaryEvent: { maybeCorrupt: false, durationSeconds: 2, resourceChanges: { same: 3, update: 1 } },
      }),
      '{"sequence": 3, "timest',
    ].join("\n");
    const events = parseEvents(log);
    expect(events).toHaveLength(2);
    expect(events[1]?.summaryEvent?.resourceChanges).toEqual({ same: 3, update: 1 });
  });

  it("captures the program's outputs as plain JSON: nested outputs resolved, secrets unwrapped, undefined dropped", async () => {
    const capture = capturingOutputs(async () => ({
      spec: { pods: 2, cpu: undefined, list: [1, undefined] },
      replicas: pulumi.output(2),
      identity: pulumi.secret({ name: "x", prvKey: "k" }),
      executor: null,
    }));
    const returned = await capture.program();
    expect(returned).toBeDefined();
    expect(await capture.outputs()).toEqual({
      spec: { pods: 2, list: [1, null] },
      replicas: 2,
      identity: { name: "x", prvKey: "k" },
      executor: null,
    });
  });

  it("has no outputs when the program did not return", async () => {
    const capture = capturingOutputs(async () => {
      throw new Error("boom");
    });
    await expect(capture.program()).rejects.toThrow("boom");
    await expect(capture.outputs()).rejects.toThrow(/did not return/);
  });
});
