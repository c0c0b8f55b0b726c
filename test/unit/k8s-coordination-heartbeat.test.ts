/**
 * A replica's own Lease under a slow apiserver: one renewal at a time, each with a deadline; a replica that cannot
 * renew gives up two thirds of a lease after its last successful renewal, also while a request hangs; a 409 is
 * read again and is lost only when the Lease is no longer this replica's.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { testLogger } from "../../peers/executor.js";
import { executorOf, Heartbeat } from "../../src/k8s/heartbeat.js";
import { LeaseStore } from "../../src/k8s/lease-store.js";
import { FakeLeases } from "./fake-leases.js";

const LEASE_MS = 1_500;
const OWN = "replica.me.project";
const started: Heartbeat[] = [];
afterEach(async () => {
  for (const heartbeat of started.splice(0)) await heartbeat.stop();
});

async function start(leases: FakeLeases, lost: Error[] = []) {
  const heartbeat = await Heartbeat.start({
    store: new LeaseStore({ api: leases.api(), namespace: "ns" }),
    leaseName: OWN,
    replica: "me",
    leaseMs: LEASE_MS,
    labels: {},
    executor: () => ({ name: "k8s-replica-0", id: "abc", selfRegistered: true }),
    onLost: (reason) => lost.push(reason),
    logger: testLogger,
  });
  started.push(heartbeat);
  return heartbeat;
}

const renewals = (leases: FakeLeases) => leases.requests.filter((r) => r === `replace ${OWN}`).length;

describe("Heartbeat", () => {
  it("renews every third of the lease, one request at a time, and records who the replica is in Colonies", async () => {
    const leases = new FakeLeases();
    const heartbeat = await start(leases);
    const version = leases.get(OWN)?.metadata?.resourceVersion;
    await sleep(LEASE_MS * 1.2);
    expect(renewals(leases)).toBeGreaterThanOrEqual(2);
    expect(leases.get(OWN)?.metadata?.resourceVersion).not.toBe(version);
    expect(executorOf(leases.get(OWN))).toEqual({ name: "k8s-replica-0", id: "abc", selfRegistered: true });
    expect(leases.mostInFlight.get(OWN)).toBe(1);
    expect(heartbeat.lost.aborted).toBe(false);
  });

  it("stops its work two thirds of a lease after its last renewal while the apiserver hangs", async () => {
    const leases = new FakeLeases();
    const lost: Error[] = [];
    const heartbeat = await start(leases, lost);
    await sleep(LEASE_MS / 3 + 100); // one renewal went through
    const before = renewals(leases);
    leases.hang = true;
    const pausedAt = Date.now();
    const stoppedAt = await new Promise<number>((resolve) =>
      heartbeat.lost.addEventListener("abort", () => resolve(Date.now()), { once: true }),
    );
    // The last successful renewal was sent before the pause: the others' full lease is still ahead.
    expect(stoppedAt - pausedAt).toBeLessThanOrEqual((LEASE_MS * 2) / 3 + 100);
    expect(stoppedAt - pausedAt).toBeGreaterThan(LEASE_MS / 4);
    expect(lost[0]?.message).toMatch(/could not renew its Lease/);
    // Requests were retried meanwhile, each cancelled at its deadline: never two at once.
    expect(renewals(leases)).toBeGreaterThan(before);
    expect(leases.mostInFlight.get(OWN)).toBe(1);
    // Nothing is sent once it gave up.
    const after = leases.requests.length;
    leases.hang = false;
    await sleep(LEASE_MS / 2);
    expect(leases.requests.length).toBe(after);
  });

  it("goes on renewing past a request that neither answers nor notices its deadline, and gives up on time", async () => {
    const leases = new FakeLeases();
    const lost: Error[] = [];
    const heartbeat = await start(leases, lost);
    await sleep(LEASE_MS / 3 + 100); // one renewal went through
    const before = renewals(leases);
    leases.deaf = true;
    const pausedAt = Date.now();
    const stoppedAt = await new Promise<number>((resolve) =>
      heartbeat.lost.addEventListener("abort", () => resolve(Date.now()), { once: true }),
    );
    expect(stoppedAt - pausedAt).toBeLessThanOrEqual((LEASE_MS * 2) / 3 + 100);
    // Each deaf request was given up at its deadline and another one sent: not one request waited on forever.
    expect(renewals(leases)).toBeGreaterThanOrEqual(before + 2);
    expect(lost[0]?.message).toMatch(/could not renew its Lease/);
  });

  it("reads the Lease again after a 409 and keeps it when the conflicting write was its own", async () => {
    const leases = new FakeLeases();
    const heartbeat = await start(leases);
    // One renewal is written but its answer is lost: this replica's resourceVersion is stale afterwards.
    await sleep(LEASE_MS / 3 + 200);
    leases.loseAnswers = true;
    await sleep(LEASE_MS / 3 - 50); // past the next renewal's deadline, before its retry
    leases.loseAnswers = false;
    await sleep(LEASE_MS);
    expect(heartbeat.lost.aborted).toBe(false);
    expect(leases.requests).toContain(`read ${OWN}`);
  });

  it("is lost at once when its Lease was deleted or is held by someone else", async () => {
    const deleted = new FakeLeases();
    const lost: Error[] = [];
    const first = await start(deleted, lost);
    await deleted.api().deleteNamespacedLease({ name: OWN, namespace: "ns" });
    await sleep(LEASE_MS / 3 + 100);
    expect(first.lost.aborted).toBe(true);
    expect(lost[0]?.message).toMatch(/another replica proved it gone/);

    const taken = new FakeLeases();
    const second = await start(taken);
    const lease = taken.get(OWN);
    taken.put({ ...lease, spec: { ...lease?.spec, holderIdentity: "someone-else" } });
    await sleep(LEASE_MS / 3 + 100);
    expect(second.lost.aborted).toBe(true);
  });
});
