/**
 * An operation's caller is answered by its deadline (plus a grace to cancel cleanly) even when some of its work
 * ignores the signal, e.g. a Kubernetes read on a connection to an API server that stopped answering; and the
 * error of an ordinary Kubernetes API request that got no answer names that.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clusterUnreachable } from "../../src/executors/k8s/apply.js";
import { settledBy } from "../../src/k8s/stacks.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A promise settled from outside. */
function pending<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** How a promise ended, and when (fake time). */
function track(promise: Promise<unknown>) {
  const seen: { value?: unknown; error?: unknown; at?: number } = {};
  promise.then(
    (value) => Object.assign(seen, { value, at: Date.now() }),
    (error: unknown) => Object.assign(seen, { error, at: Date.now() }),
  );
  return seen;
}

describe("settledBy", () => {
  it("is the work's own outcome when it ends before the deadline", async () => {
    const deadline = new AbortController();
    const late = vi.fn();
    const work = pending<string>();
    const seen = track(settledBy(work.promise, deadline.signal, 1000, late));
    await vi.advanceTimersByTimeAsync(60_000);
    work.resolve("done");
    await vi.advanceTimersByTimeAsync(0);
    expect(seen.value).toBe("done");
    deadline.abort(new Error("too late"));
    await vi.advanceTimersByTimeAsync(5000);
    expect(late).not.toHaveBeenCalled();
  });

  it("is the work's error when it stops within the grace after the deadline", async () => {
    const deadline = new AbortController();
    const work = pending<string>();
    const seen = track(settledBy(work.promise, deadline.signal, 1000, vi.fn()));
    deadline.abort(new Error("deadline"));
    await vi.advanceTimersByTimeAsync(500);
    work.reject(new Error("cancelled cleanly"));
    await vi.advanceTimersByTimeAsync(0);
    expect((seen.error as Error).message).toBe("cancelled cleanly");
  });

  it("answers with the deadline's reason once the grace is over, and hands the late outcome on", async () => {
    const deadline = new AbortController();
    const late = vi.fn();
    const work = pending<string>();
    const started = Date.now();
    const seen = track(settledBy(work.promise, deadline.signal, 1000, late));
    await vi.advanceTimersByTimeAsync(3000);
    deadline.abort(new Error("deadline"));
    await vi.advanceTimersByTimeAsync(1000);
    expect((seen.error as Error).message).toBe("deadline");
    expect(seen.at).toBe(started + 4000);
    work.reject(new Error("ended at last"));
    await vi.advanceTimersByTimeAsync(0);
    expect(late).toHaveBeenCalledWith(expect.objectContaining({ message: "ended at last" }));
  });
});

describe("clusterUnreachable", () => {
  const fetchFailed = (cause: object) => new TypeError("fetch failed", { cause });

  it("names what kept a request from an answer", () => {
    const timeout = Object.assign(new Error("Connect Timeout Error (attempted address: 127.0.0.1:6443)"), {
      code: "UND_ERR_CONNECT_TIMEOUT",
    });
    expect(clusterUnreachable(fetchFailed(timeout))).toBe(
      "Connect Timeout Error (attempted address: 127.0.0.1:6443)",
    );
    expect(clusterUnreachable(fetchFailed({ code: "ECONNREFUSED" }))).toBe("ECONNREFUSED");
  });

  it("is undefined for anything else", () => {
    expect(clusterUnreachable(new Error("fetch failed"))).toBeUndefined();
    expect(clusterUnreachable(fetchFailed({ code: "ERR_INVALID_URL" }))).toBeUndefined();
    expect(clusterUnreachable(new TypeError("x is not a function"))).toBeUndefined();
  });
});
