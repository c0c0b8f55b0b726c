import type { V1Pod, V1PodList } from "@kubernetes/client-node";
import { describe, expect, it, vi } from "vitest";
import { followPods, type PodWatchHandler } from "../../src/local/pod-watch.js";
import { fakeKube, type ListAnswer, type Session } from "../support/fake-watch.js";

// Fakes of the two client objects followPods uses (test/support/fake-watch.ts): scripted list answers and
// scripted watch sessions, so that closes, timeouts, 410 Gone and failures (which a real cluster produces only
// now and then) happen on cue. When the script runs out, the run is cancelled, which is the only way followPods
// ends.

const pod = (name: string, resourceVersion: string): V1Pod => ({ metadata: { name, resourceVersion } });
const list = (resourceVersion: string, ...names: string[]): V1PodList => ({
  metadata: { resourceVersion },
  items: names.map((name) => pod(name, resourceVersion)),
});

function run(lists: ListAnswer[], sessions: Session[]) {
  const controller = new AbortController();
  const calls: string[] = [];
  const endOfScript = () => {
    controller.abort(new Error("end of script"));
    return Promise.reject(controller.signal.reason);
  };
  const { core, watch, watchQueries, watchRequests } = fakeKube({
    lists,
    sessions,
    onList: (params) => calls.push(`list ${params.labelSelector}`),
    afterLists: endOfScript,
    // Past the script, the session ends the run; its rejection is for listNamespacedPod's callers only.
    afterSessions: () => void endOfScript().catch(() => undefined),
  });
  const names = (pods: V1Pod[]) => pods.map((p) => p.metadata?.name).join(",");
  const handler: PodWatchHandler = {
    listed: (pods) => calls.push(`listed ${names(pods)}`),
    changed: (p) => calls.push(`changed ${p.metadata?.name}@${p.metadata?.resourceVersion}`),
    deleted: (p) => calls.push(`deleted ${p.metadata?.name}`),
    failed: (error, retryInMs) => calls.push(`failed ${(error as Error).message} (retry in ${retryInMs} ms)`),
  };
  const following = followPods(
    { core, watch, namespace: "ns", labelSelector: "colonyos.io/atom" },
    handler,
    controller.signal,
  );
  return { following, controller, calls, watchQueries, watchRequests };
}

describe("followPods", () => {
  it("resumes a closed or timed-out watch from the last resourceVersion, reporting each change", async () => {
    const { following, calls, watchQueries } = run(
      [list("10", "a", "b")],
      [
        (emit, done) => {
          emit("ADDED", pod("c", "11"));
          emit("MODIFIED", pod("a", "12"));
          done(null);
        },
        (emit, done) => {
          emit("BOOKMARK", { metadata: { resourceVersion: "13" } });
          done(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
        },
        (emit, done) => {
          emit("DELETED", pod("b", "14"));
          done(null);
        },
      ],
    );
    await following;
    expect(calls).toEqual([
      "list colonyos.io/atom",
      "listed a,b",
      "changed c@11",
      "changed a@12",
      "deleted b",
    ]);
    expect(watchQueries.map((q) => q.resourceVersion)).toEqual(["10", "12", "13", "14"]);
    expect(watchQueries[0]).toMatchObject({ labelSelector: "colonyos.io/atom", allowWatchBookmarks: true });
  });

  it("lists again at once after 410 Gone, as an ERROR event or as a refused request", async () => {
    const { following, calls, watchQueries } = run(
      [list("10", "a"), list("50", "b"), list("70")],
      [
        (emit) => emit("ERROR", { kind: "Status", code: 410, message: "too old resource version: 10 (40)" }),
        (_emit, done) => done(Object.assign(new Error("Gone"), { statusCode: 410 })),
      ],
    );
    await following;
    expect(calls.filter((call) => call.startsWith("listed"))).toEqual(["listed a", "listed b", "listed "]);
    expect(calls.some((call) => call.startsWith("failed"))).toBe(false);
    expect(watchQueries.map((q) => q.resourceVersion)).toEqual(["10", "50", "70"]);
  });

  it("reports other failures and lists again after a pause instead of giving up", async () => {
    const started = Date.now();
    const { following, calls } = run(
      [list("10", "a"), list("20", "a")],
      [(emit) => emit("ERROR", { kind: "Status", code: 403, message: "forbidden" })],
    );
    await following;
    expect(calls).toEqual([
      "list colonyos.io/atom",
      "listed a",
      'failed watch pods of namespace "ns": forbidden (retry in 1000 ms)',
      "list colonyos.io/atom",
      "listed a",
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it("ends when its signal aborts, ending the watch request, and reports nothing after that", async () => {
    let emitLater: ((type: string, object: unknown) => void) | undefined;
    const { following, controller, calls, watchRequests } = run(
      [list("10", "a")],
      [
        (emit) => {
          emitLater = emit;
        },
      ],
    );
    await vi.waitFor(() => expect(emitLater).toBeDefined()); // watching now
    controller.abort(new Error("stopping"));
    await following;
    expect(watchRequests[0]?.aborted).toBe(true);
    emitLater?.("MODIFIED", pod("a", "11"));
    expect(calls).toEqual(["list colonyos.io/atom", "listed a"]);
  });
});
