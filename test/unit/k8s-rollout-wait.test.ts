import type { V1Deployment } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  RolloutError,
  rolloutProgress,
  waitForRemoval,
  waitForRollout,
} from "../../src/executors/k8s/rollout-wait.js";

function deployment(
  status: NonNullable<V1Deployment["status"]>,
  { replicas = 2, generation = 2 } = {},
): V1Deployment {
  return { metadata: { name: "web", generation }, spec: { replicas, selector: {}, template: {} }, status };
}

const done = {
  observedGeneration: 2,
  replicas: 2,
  updatedReplicas: 2,
  availableReplicas: 2,
  readyReplicas: 2,
};

describe("a Deployment's rollout, as kubectl rollout status judges it", () => {
  it("is complete only when this generation is seen and every replica is updated and available", () => {
    expect(rolloutProgress(deployment(done))).toEqual({});
    expect(rolloutProgress(deployment({ ...done, observedGeneration: 1 })).pending).toMatch(/not seen/);
    expect(rolloutProgress(deployment({ ...done, updatedReplicas: 1 })).pending).toBe("1 of 2 pods updated");
    expect(rolloutProgress(deployment({ ...done, replicas: 3 })).pending).toBe("1 old pod(s) still running");
    expect(rolloutProgress(deployment({ ...done, availableReplicas: 0 })).pending).toBe(
      "0 of 2 updated pods available",
    );
    // Scaled to zero: nothing to wait for.
    expect(rolloutProgress(deployment({ observedGeneration: 2 }, { replicas: 0 }))).toEqual({});
    expect(
      rolloutProgress(
        deployment({
          ...done,
          updatedReplicas: 1,
          conditions: [
            {
              type: "Progressing",
              status: "False",
              reason: "ProgressDeadlineExceeded",
              message: 'ReplicaSet "web-1" has timed out progressing.',
            },
          ],
        }),
      ).failed,
    ).toMatch(/progress deadline was exceeded/);
  });

  it("waits, reading again, until the rollout completes", async () => {
    const states = [{ observedGeneration: 1 }, { ...done, availableReplicas: 1 }, done];
    let reads = 0;
    await waitForRollout(async () => deployment(states[Math.min(reads++, 2)] ?? done), {
      name: "web",
      timeoutMs: 5_000,
      signal: new AbortController().signal,
    });
    expect(reads).toBe(3);
  });

  it("fails with what it still waited for at the timeout, and at once on a failed rollout", async () => {
    const stuck = waitForRollout(async () => deployment({ ...done, availableReplicas: 1 }), {
      name: "web",
      timeoutMs: 150,
      signal: new AbortController().signal,
    });
    await expect(stuck).rejects.toThrow(RolloutError);
    await expect(stuck).rejects.toThrow(
      "the rollout of web did not finish within 0 s (1 of 2 updated pods available)",
    );
    const failed = deployment({
      ...done,
      conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" }],
    });
    await expect(
      waitForRollout(async () => failed, {
        name: "web",
        timeoutMs: 5_000,
        signal: new AbortController().signal,
      }),
    ).rejects.toThrow("the rollout of web failed: its progress deadline was exceeded");
  });

  it("stops with the caller's reason when aborted", async () => {
    const controller = new AbortController();
    const waiting = waitForRollout(async () => deployment({ ...done, updatedReplicas: 0 }), {
      name: "web",
      timeoutMs: 5_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("pod web-1 cannot run")), 50);
    await expect(waiting).rejects.toThrow("pod web-1 cannot run");
  });
});

describe("a destroyed Deployment's removal", () => {
  it("waits until it is gone, and says so when it is still there at the timeout", async () => {
    let reads = 0;
    await waitForRemoval(async () => ++reads < 3, {
      name: "web",
      timeoutMs: 5_000,
      signal: new AbortController().signal,
    });
    expect(reads).toBe(3);
    await expect(
      waitForRemoval(async () => true, { name: "web", timeoutMs: 150, signal: new AbortController().signal }),
    ).rejects.toThrow("the Deployment web is still being deleted after 0 s");
  });
});
