/** The Lease store: the apiserver's 404 and 409 as values, deadlines, and which failures are worth a retry. */
import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { LeaseStore, transient } from "../../src/k8s/lease-store.js";
import { FakeLeases } from "./fake-leases.js";

const lease = (name: string, resourceVersion?: string) => ({ metadata: { name, resourceVersion }, spec: {} });

describe("LeaseStore", () => {
  it("answers a missing Lease, a taken name and a stale write with undefined, not an error", async () => {
    const leases = new FakeLeases();
    const store = new LeaseStore({ api: leases.api(), namespace: "ns" });
    expect(await store.read("a")).toBeUndefined();
    const created = await store.create(lease("a"));
    expect(created?.metadata?.resourceVersion).toBeDefined();
    expect(await store.create(lease("a"))).toBeUndefined(); // 409: someone else created it first
    const replaced = await store.replace(created as never);
    expect(replaced).toBeDefined();
    expect(await store.replace(created as never)).toBeUndefined(); // 409: stale resourceVersion
    expect(await store.replace(lease("b", "7"))).toBeUndefined(); // 404: deleted since it was read
    // write: create without a resourceVersion, replace with one
    expect(await store.write(lease("c"))).toBeDefined();
    expect(await store.write(replaced as never)).toBeDefined();
  });

  it("deletes only a Lease still at the resourceVersion read, and counts one already gone as deleted", async () => {
    const leases = new FakeLeases();
    const store = new LeaseStore({ api: leases.api(), namespace: "ns" });
    const first = await store.create(lease("a"));
    const second = await store.replace(first as never);
    expect(await store.remove("a", first?.metadata?.resourceVersion)).toBe(false);
    expect(leases.get("a")).toBeDefined();
    expect(await store.remove("a", second?.metadata?.resourceVersion)).toBe(true);
    expect(leases.get("a")).toBeUndefined();
    expect(await store.remove("a")).toBe(true);
  });

  it("gives up on a request that hangs at its deadline", async () => {
    const leases = new FakeLeases();
    const store = new LeaseStore({ api: leases.api(), namespace: "ns", timeoutMs: 200 });
    leases.hang = true;
    const started = Date.now();
    const error = await store.read("a").catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(transient(error)).toBe(true);
    // A caller's own, shorter signal wins.
    const caller = new AbortController();
    setTimeout(() => caller.abort(new Error("stop")), 20);
    await expect(store.read("a", caller.signal)).rejects.toThrow("stop");
  });

  it("retries what may pass later, not what the apiserver refused", () => {
    expect(transient(new ApiException(503, "unavailable", {}, {}))).toBe(true);
    expect(transient(new ApiException(429, "slow down", {}, {}))).toBe(true);
    expect(transient(new ApiException(403, "forbidden", {}, {}))).toBe(false);
    expect(transient(new ApiException(422, "invalid", {}, {}))).toBe(false);
    expect(transient(new TypeError("fetch failed"))).toBe(true);
    expect(transient(Object.assign(new Error("connect"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(transient(new Error("a bug"))).toBe(false);
  });
});
