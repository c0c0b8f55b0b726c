import type { V1Pod, V1PodList } from "@kubernetes/client-node";
import { describe, expect, it, vi } from "vitest";
import { AtomNotFoundError } from "../../src/atoms/engine.js";
import { waitForPod } from "../../src/atoms/kube-wait.js";
import { fakeKube, type Session } from "../support/fake-watch.js";

// Fakes of the two client objects waitForPod uses (test/support/fake-watch.ts): scripted list answers and
// scripted watch sessions, so that closes, timeouts and 410 Gone (which a real cluster produces only after
// compaction) happen on cue.

function podIn(phase: string, resourceVersion: string, terminated?: { exitCode: number }): V1Pod {
  return {
    metadata: { name: "p", resourceVersion, labels: { "colonyos.io/atom": "true" } },
    spec: { containers: [{ name: "main", image: "x" }] },
    status: {
      phase,
      containerStatuses: [
        {
          name: "main",
          image: "x",
          imageID: "",
          ready: phase === "Running",
          restartCount: 0,
          state: terminated ? { terminated } : { running: {} },
        },
      ],
    },
  };
}

function fakes(lists: V1PodList[], sessions: Session[]) {
  const { core, watch, listCalls, watchQueries, watchRequests } = fakeKube({ lists, sessions });
  return { context: { core, watch, namespace: "ns" }, listCalls, watchQueries, watchRequests };
}

const list = (resourceVersion: string, ...items: V1Pod[]): V1PodList => ({
  metadata: { resourceVersion },
  items,
});
const signal = () => AbortSignal.timeout(5_000);

describe("waitForPod", () => {
  it("resumes a closed or timed-out watch from the last resourceVersion instead of taking it as the end", async () => {
    const { context, watchQueries, listCalls } = fakes(
      [list("10", podIn("Running", "10"))],
      [
        (emit, done) => {
          emit("MODIFIED", podIn("Running", "11"));
          done(null);
        },
        (emit, done) => {
          emit("BOOKMARK", { metadata: { resourceVersion: "12" } });
          done(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
        },
        (emit) => emit("MODIFIED", podIn("Failed", "13", { exitCode: 143 })),
      ],
    );
    const atom = await waitForPod(context, "p", signal());
    expect(atom).toMatchObject({ state: "stopped", result: "terminated", exitCode: 143 });
    expect(watchQueries.map((q) => q.resourceVersion)).toEqual(["10", "11", "12"]);
    expect(watchQueries[0]).toMatchObject({
      fieldSelector: "metadata.name=p",
      labelSelector: "colonyos.io/atom",
    });
    expect(listCalls).toHaveLength(1);
  });

  it("lists again after 410 Gone, as an ERROR event or as a refused request", async () => {
    const { context, watchQueries, listCalls } = fakes(
      [
        list("10", podIn("Running", "10")),
        list("50", podIn("Running", "50")),
        list("70", podIn("Running", "70")),
      ],
      [
        (emit) => emit("ERROR", { kind: "Status", code: 410, message: "too old resource version: 10 (40)" }),
        (_emit, done) => done(Object.assign(new Error("Gone"), { statusCode: 410 })),
        (emit) => emit("MODIFIED", podIn("Succeeded", "71", { exitCode: 0 })),
      ],
    );
    expect(await waitForPod(context, "p", signal())).toMatchObject({ state: "stopped", result: "success" });
    expect(listCalls).toHaveLength(3);
    expect(watchQueries.map((q) => q.resourceVersion)).toEqual(["10", "50", "70"]);
  });

  it("returns at once for a pod that has already stopped", async () => {
    const { context, watchQueries } = fakes([list("10", podIn("Failed", "10", { exitCode: 3 }))], []);
    expect(await waitForPod(context, "p", signal())).toMatchObject({ state: "stopped", result: "failure" });
    expect(watchQueries).toEqual([]);
  });

  it("reports a pod deleted while watched as deleted, and one that vanished between watches too", async () => {
    const deletedEvent = fakes(
      [list("10", podIn("Running", "10"))],
      [(emit) => emit("DELETED", podIn("Running", "12"))],
    );
    expect(await waitForPod(deletedEvent.context, "p", signal())).toMatchObject({
      state: "deleted",
      result: "unknown",
    });

    const vanished = fakes(
      [list("10", podIn("Running", "10")), list("60")],
      [(emit) => emit("ERROR", { kind: "Status", code: 410, message: "gone" })],
    );
    expect(await waitForPod(vanished.context, "p", signal())).toMatchObject({ id: "p", state: "deleted" });
  });

  it("rejects for a pod that does not exist when the wait starts", async () => {
    const { context } = fakes([list("10")], []);
    await expect(waitForPod(context, "p", signal())).rejects.toBeInstanceOf(AtomNotFoundError);
  });

  it("fails on a watch error other than 410 instead of retrying forever", async () => {
    const { context } = fakes(
      [list("10", podIn("Running", "10"))],
      [(emit) => emit("ERROR", { kind: "Status", code: 403, message: "forbidden" })],
    );
    await expect(waitForPod(context, "p", signal())).rejects.toThrow(/watch pod "p": forbidden/);
  });

  it("is cancelled by its signal with the caller's reason, and ends the watch request", async () => {
    let watchAborted: AbortSignal | undefined;
    const { context } = fakes(
      [list("10", podIn("Running", "10"))],
      [
        (_emit, _done, aborted) => {
          watchAborted = aborted;
        },
      ],
    );
    const controller = new AbortController();
    const waiting = waitForPod(context, "p", controller.signal);
    await vi.waitFor(() => expect(watchAborted).toBeDefined()); // watching now
    controller.abort(new Error("shutting down"));
    await expect(waiting).rejects.toThrow("shutting down");
    expect(watchAborted?.aborted).toBe(true);
  });
});
