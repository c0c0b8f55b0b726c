/**
 * The Lease coordination of k8s-executor replicas against the real kube-apiserver, on the executor's
 * least-privilege ServiceAccount: turns in ticket order across replicas, coalescing across replicas, takeover
 * from a replica that died (only after its Lease went unrenewed for its whole duration), and budget reservations
 * that two replicas cannot both pass.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoordinationV1Api, CoreV1Api, type KubeConfig, V1MicroTime } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { testLogger } from "../../peers/executor.js";
import { executorKubeconfig } from "../../peers/k8s-executor.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import type { NameTurn, Ticket } from "../../src/k8s/coordination.js";
import { LeaseCoordinator } from "../../src/k8s/lease-coordinator.js";
import { SupersededError } from "../../src/k8s/stack-errors.js";

const PROJECT = "colonyos-executors";
const LEASE_SECONDS = 5;
let admin: KubeConfig;
let namespace: string;
let leases: CoordinationV1Api;
let executorApi: CoordinationV1Api;
const started: LeaseCoordinator[] = [];

async function replica(
  name: string,
  processOpen?: (processId: string) => Promise<boolean>,
  keepsPlace?: (reason: unknown) => boolean,
  project = PROJECT,
  leaseSeconds = LEASE_SECONDS,
): Promise<LeaseCoordinator> {
  const coordinator = await LeaseCoordinator.start({
    processOpen,
    keepsPlace,
    api: executorApi,
    namespace,
    project,
    replica: name,
    leaseSeconds,
    pollMs: 100,
    logger: testLogger,
  });
  started.push(coordinator);
  return coordinator;
}

const ticket = (process: string, order: number, effect: Ticket["effect"] = "replace"): Ticket => ({
  process,
  fn: effect === "pods" ? "scale" : "deploy",
  order,
  effect,
});
const forever = new AbortController().signal;

/**
 * The test cluster's kube-apiserver process (kwokctl runs it as a local binary): the one serving the kubeconfig's
 * port, so that only this cluster is paused.
 */
function apiserverPid(): number {
  const port = /server:\s*https?:\/\/[^:\s]+:(\d+)/.exec(readFileSync(clusterKubeconfig(), "utf8"))?.[1];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    if (argv[0]?.endsWith("/kube-apiserver") && argv.includes(`--secure-port=${port}`)) return Number(entry);
  }
  throw new Error(`no kube-apiserver process serves port ${port}`);
}

beforeAll(async () => {
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  namespace = await createNamespace(admin.makeApiClient(CoreV1Api), "k8s-lease");
  leases = admin.makeApiClient(CoordinationV1Api);
  const file = await executorKubeconfig(admin, namespace, mkdtempSync(join(tmpdir(), "k8s-lease-")));
  executorApi = loadKubeConfig({ path: file }).makeApiClient(CoordinationV1Api);
}, 120_000);

afterAll(async () => {
  for (const coordinator of started) await coordinator.close();
  await admin
    ?.makeApiClient(CoreV1Api)
    .deleteNamespace({ name: namespace })
    .catch(() => undefined);
});

describe("LeaseCoordinator", () => {
  it("gives a name's turns in submission order whichever replica holds the ticket", async () => {
    const [a, b] = [await replica("order-a"), await replica("order-b")];
    const first = await a.acquire("web", ticket("p1", 1), forever);
    expect(first.takenOver).toBe(false);
    const events: string[] = [];
    const take = (coordinator: LeaseCoordinator, t: Ticket) =>
      coordinator.acquire("web", t, forever).then(async (turn) => {
        events.push(`${coordinator.replica}:${t.process}`);
        await turn.release({ version: turn.record.version + 1 });
      });
    // p3 reaches the Lease before p2, on another replica; p2 still goes first.
    const third = take(b, ticket("p3", 3, "pods"));
    await new Promise((r) => setTimeout(r, 300));
    const second = take(a, ticket("p2", 2, "none"));
    await new Promise((r) => setTimeout(r, 300));
    await first.release({ version: 1, applied: { process: "p1", fn: "deploy", order: 1, at: "t" } });
    await Promise.all([second, third]);
    expect(events).toEqual(["order-a:p2", "order-b:p3"]);
    const record = (await a.acquire("web", ticket("p4", 4, "none"), forever)) as NameTurn;
    expect(record.record.version).toBe(3);
    expect(record.record.applied?.process).toBe("p1");
    await record.release();
  });

  it("coalesces waiting desired states across replicas only once the later one was applied", async () => {
    const [a, b] = [await replica("coalesce-a"), await replica("coalesce-b")];
    const held = await a.acquire("api", ticket("d1", 1), forever);
    const outcomes: string[] = [];
    /** Takes the turn and ends it applied (recorded) or failed (nothing recorded), or reports the supersession. */
    const take = (coordinator: LeaseCoordinator, t: Ticket, applied: boolean) =>
      coordinator.acquire("api", t, forever).then(
        async (turn) => {
          outcomes.push(`turn ${t.process}`);
          await turn.release({
            version: turn.record.version + 1,
            ...(applied
              ? { applied: { process: t.process, fn: t.fn, order: turn.order, at: new Date().toISOString() } }
              : { applied: turn.record.applied }),
          });
        },
        (error: unknown) => {
          expect(error).toBeInstanceOf(SupersededError);
          const superseded = error as SupersededError;
          outcomes.push(`${t.process}: ${superseded.how} by ${superseded.by.process}`);
        },
      );
    // s5, the latest, goes first; once it was applied, the calls it superseded (on either replica) are closed.
    const waiting = [
      take(b, ticket("s2", 2, "pods"), true),
      take(a, ticket("s3", 3, "pods"), true),
      take(b, ticket("s4", 4, "pods"), true),
      take(a, ticket("s5", 5, "pods"), true),
    ];
    await new Promise((r) => setTimeout(r, 500));
    // d1 deploys the name: only a deployed name's waiting calls coalesce.
    await held.release({ version: 1, applied: { process: "d1", fn: "deploy", order: 1, at: "t" } });
    await Promise.all(waiting);
    expect(outcomes[0]).toBe("turn s5");
    expect(outcomes.slice(1).sort()).toEqual(["s2: waited by s5", "s3: waited by s5", "s4: waited by s5"]);
    // No ticket is left behind.
    const lease = await leases.readNamespacedLease({ name: a.nameLease("api"), namespace });
    expect(JSON.parse(lease.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]")).toEqual([]);
    expect(lease.spec?.holderIdentity).toBeUndefined();

    // A later scale that fails (over a budget) supersedes nothing: the earlier one gets its own turn after it.
    const again = await a.acquire("api", ticket("h6", 6, "none"), forever);
    outcomes.length = 0;
    const second = [take(b, ticket("s7", 7, "pods"), true), take(a, ticket("s8", 8, "pods"), false)];
    await new Promise((r) => setTimeout(r, 500));
    await again.release();
    await Promise.all(second);
    expect(outcomes).toEqual(["turn s8", "turn s7"]);
  });

  it("takes over from a replica killed mid-turn only after its Lease went unrenewed for its duration", async () => {
    const live = await replica("live");
    // What a replica killed with -9 while holding the turn of "db" leaves behind: its own Lease, never renewed
    // again, and the name's Lease held by it with one more ticket of its own.
    const now = new V1MicroTime();
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: live.replicaLease("dead") },
        spec: { holderIdentity: "dead", leaseDurationSeconds: LEASE_SECONDS, renewTime: now },
      },
    });
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: {
          name: live.nameLease("db"),
          annotations: {
            "colonyos.io/version": "7",
            "colonyos.io/tickets": JSON.stringify([
              { process: "q", fn: "scale", order: 1, effect: "pods", id: "deadticket", replica: "dead" },
            ]),
          },
        },
        spec: { holderIdentity: "dead/abc", leaseDurationSeconds: LEASE_SECONDS, renewTime: now },
      },
    });
    const started = Date.now();
    const turn = await live.acquire("db", ticket("p9", 9), forever);
    const waited = Date.now() - started;
    expect(turn.takenOver).toBe(true);
    expect(turn.record.version).toBe(7);
    expect(waited).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000);
    expect(waited).toBeLessThan(LEASE_SECONDS * 1000 + 5_000);
    await turn.release({ version: 8 });
    // The dead replica's Lease is removed by whoever proved it gone.
    await expect(
      leases.readNamespacedLease({ name: live.replicaLease("dead"), namespace }),
    ).rejects.toThrow();
  });

  it("keeps a dead replica's place in the order while Colonies may re-run its process", async () => {
    let open = true;
    const live = await replica("heir", async (id) => id === "p-rerun" && open);
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: live.replicaLease("dead2") },
        spec: { holderIdentity: "dead2", leaseDurationSeconds: LEASE_SECONDS, renewTime: new V1MicroTime() },
      },
    });
    const deadTicket = {
      process: "p-rerun",
      fn: "deploy",
      order: 1,
      effect: "replace",
      id: "t0",
      replica: "dead2",
    };
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: {
          name: live.nameLease("queue"),
          annotations: { "colonyos.io/version": "1", "colonyos.io/tickets": JSON.stringify([deadTicket]) },
        },
        spec: {
          holderIdentity: "dead2/t0",
          leaseDurationSeconds: LEASE_SECONDS,
          renewTime: new V1MicroTime(),
        },
      },
    });
    const events: string[] = [];
    const later = live.acquire("queue", ticket("p-later", 5, "pods"), forever).then(async (turn) => {
      events.push("later");
      await turn.release();
    });
    // Long past the dead replica's proof of death: p-later still waits behind p-rerun's place.
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000 + 2_000));
    expect(events).toEqual([]);
    // Colonies re-queued p-rerun and this replica took it: its new ticket takes the place, first.
    const rerun = await live.acquire("queue", ticket("p-rerun", 1), forever);
    expect(rerun.takenOver).toBe(true);
    events.push("rerun");
    await rerun.release({ version: 2 });
    await later;
    expect(events).toEqual(["rerun", "later"]);
    open = false;
  });

  it("keeps the place of a call stopped because Colonies re-queued it, for its re-run", async () => {
    class Requeued extends Error {}
    const open = async (id: string) => id === "p1";
    const keeps = (reason: unknown) => reason instanceof Requeued;
    const [a, b] = [await replica("requeue-a", open, keeps), await replica("requeue-b", open, keeps)];
    const held = await a.acquire("requeued", ticket("h0", 0), forever);
    const stop = new AbortController();
    const stopped = a.acquire("requeued", ticket("p1", 1, "pods"), stop.signal);
    const events: string[] = [];
    const later = b.acquire("requeued", ticket("p2", 2, "none"), forever).then(async (turn) => {
      events.push("later");
      await turn.release();
    });
    await new Promise((r) => setTimeout(r, 400));
    stop.abort(new Requeued("re-queued"));
    await expect(stopped).rejects.toThrow();
    await held.release();
    // p1's process is open (re-queued) and its ticket stays: p2 must not go first.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(events).toEqual([]);
    const lease = await leases.readNamespacedLease({ name: a.nameLease("requeued"), namespace });
    const tickets = JSON.parse(lease.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]");
    expect(tickets.find((t: { process: string }) => t.process === "p1")).toMatchObject({ abandoned: true });
    // The re-run, on the other replica, takes the place.
    const rerun = await b.acquire("requeued", ticket("p1", 1, "pods"), forever);
    events.push("rerun");
    await rerun.release();
    await later;
    expect(events).toEqual(["rerun", "later"]);
  });

  it("gives a dead replica's place up when its process is closed", async () => {
    const live = await replica("closer", async () => false);
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: {
          name: live.nameLease("closed"),
          annotations: {
            "colonyos.io/tickets": JSON.stringify([
              {
                process: "p-failed",
                fn: "deploy",
                order: 1,
                effect: "replace",
                id: "t1",
                replica: "gone-for-good",
              },
            ]),
          },
        },
        spec: {},
      },
    });
    // Its replica Lease does not exist at all: gone at once, and its process is closed.
    const turn = await live.acquire("closed", ticket("p-next", 2), forever);
    expect(turn.takenOver).toBe(false);
    await turn.release();
  });

  it("hands a turn on at once when its holder's replica shuts down cleanly", async () => {
    const [a, b] = [await replica("clean-a"), await replica("clean-b")];
    await a.acquire("cache", ticket("x1", 1), forever); // never released: the replica goes away
    const waiting = b.acquire("cache", ticket("x2", 2), forever);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await a.close();
    const turn = await waiting;
    expect(turn.takenOver).toBe(true); // its update may have been cut off: the stack is refreshed first
    expect(Date.now() - started).toBeLessThan(LEASE_SECONDS * 1000);
    await turn.release();
  });

  it("gives every waiting call its own turn on a name that is not deployed", async () => {
    const [a, b] = [await replica("unknown-a"), await replica("unknown-b")];
    const held = await a.acquire("nosuch", ticket("r0", 0, "none"), forever);
    const turns: string[] = [];
    const take = (coordinator: LeaseCoordinator, t: Ticket) =>
      coordinator.acquire("nosuch", t, forever).then(async (turn) => {
        turns.push(t.process);
        await turn.release(); // each fails as an unknown deployment: nothing is recorded
      });
    const waiting = [
      take(b, ticket("s1", 1, "pods")),
      take(a, { process: "u2", fn: "undeploy", order: 2, effect: "replace" }),
    ];
    await new Promise((r) => setTimeout(r, 500));
    await held.release();
    await Promise.all(waiting);
    expect(turns).toEqual(["s1", "u2"]);
  });

  it("leaves no Lease behind for calls on names that do not exist", async () => {
    const [a, b] = [await replica("unknown-names-a"), await replica("unknown-names-b")];
    const names = async () =>
      (
        await leases.listNamespacedLease({ namespace, labelSelector: "colonyos.io/lease=deployment" })
      ).items.map((l) => l.metadata?.name);
    const before = await names();
    // 20 `scale n<i> 1` calls: each takes its turn, fails as an unknown deployment, and ends its turn unrecorded.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b)
          .acquire(`n${i}`, ticket(`s${i}`, i + 1, "pods"), forever)
          .then((turn) => turn.release()),
      ),
    );
    expect(await names()).toEqual(before);
  });

  it("elects one leader per role, and hands the role on when the leader goes", async () => {
    const [a, b] = [await replica("lead-a"), await replica("lead-b")];
    expect(await a.leads("autoscaler")).toBe(true);
    expect(await b.leads("autoscaler")).toBe(false);
    expect(await a.leads("autoscaler")).toBe(true); // it keeps the role
    expect(await b.leads("drift")).toBe(true); // roles are separate
    expect(await a.leads("drift")).toBe(false);
    const lease = await leases.readNamespacedLease({ name: `autoscaler.${PROJECT}`, namespace });
    expect(lease.spec?.holderIdentity).toBe("lead-a");
    // A clean shutdown hands the role on at once.
    await a.close();
    expect(await b.leads("autoscaler")).toBe(true);
    // A leader killed with -9: its Lease stops being renewed, and the role moves once it is proven gone (in a
    // project of its own, whose drift role the dead replica holds).
    const ORPHANS = "orphans";
    const c = await replica("lead-c", undefined, undefined, ORPHANS);
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: c.replicaLease("lead-dead") },
        spec: {
          holderIdentity: "lead-dead",
          leaseDurationSeconds: LEASE_SECONDS,
          renewTime: new V1MicroTime(),
        },
      },
    });
    await leases.createNamespacedLease({
      namespace,
      body: { metadata: { name: `drift.${ORPHANS}` }, spec: { holderIdentity: "lead-dead" } },
    });
    const started = Date.now();
    expect(await c.leads("drift")).toBe(false);
    while (!(await c.leads("drift"))) await new Promise((r) => setTimeout(r, 200));
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000 - 500);
    expect(waited).toBeLessThan(LEASE_SECONDS * 1000 + 5_000);
  });

  it("stops a replica that cannot renew through a paused apiserver before another takes its turns", async () => {
    // "a" gives up 2/3 of its 5 s lease after its last renewal; "b" (a 20 s lease of its own) outlasts the pause,
    // and takes a's turns once a's Lease went unchanged for 5 s by b's clock.
    const a = await replica("pause-a");
    const b = await replica("pause-b", undefined, undefined, PROJECT, 20);
    const spans: { name: string; replica: string; start: number; end: number }[] = [];
    /** Takes a turn and works until released, or (as a stack update does) until the replica loses its Lease. */
    const work = async (c: LeaseCoordinator, name: string, t: Ticket, release = true) => {
      const turn = await c.acquire(name, t, forever);
      const span = { name, replica: c.replica, start: Date.now(), end: 0 };
      spans.push(span);
      return {
        turn,
        ended: new Promise<void>((resolve) =>
          turn.lost.addEventListener("abort", () => resolve(), { once: true }),
        ).then(async () => {
          span.end = Date.now();
          // p2's holder is wedged after it stopped: only the proof that it is gone frees the name.
          if (release) await turn.release({ version: turn.record.version + 1 });
        }),
        done: async () => {
          span.end = Date.now();
          await turn.release({ version: turn.record.version + 1 });
        },
      };
    };
    const held = [await work(a, "p1", ticket("a1", 1)), await work(a, "p2", ticket("a2", 1), false)];
    const waiting = ["p1", "p2"].map((name) => work(b, name, ticket(`b-${name}`, 2)));
    await new Promise((r) => setTimeout(r, 1_500)); // b's tickets are down, and b has seen a's Lease
    const apiserver = apiserverPid();
    const pausedAt = Date.now();
    process.kill(apiserver, "SIGSTOP");
    let resumedAt: number;
    try {
      await new Promise((r) => setTimeout(r, 8_000));
    } finally {
      process.kill(apiserver, "SIGCONT");
      resumedAt = Date.now();
    }
    const taken = await Promise.all(waiting);
    await Promise.all(held.map((h) => h.ended));
    // a stopped its work on its own clock, while every request hung, within 2/3 of its lease (a renewal sent
    // just before the pause counts as its last).
    expect(a.lost.aborted).toBe(true);
    for (const span of spans.filter((s) => s.replica === a.replica)) {
      expect(span.end).toBeGreaterThan(pausedAt);
      expect(span.end - pausedAt).toBeLessThanOrEqual((LEASE_SECONDS * 1000 * 2) / 3 + 500);
    }
    expect(b.lost.aborted).toBe(false);
    // b took p2 over from a proven gone, about a lease after the apiserver came back (a's clock stopped earlier).
    expect(taken[1]?.turn.takenOver).toBe(true);
    expect(Date.now() - resumedAt).toBeLessThan(LEASE_SECONDS * 1000 + 8_000);
    for (const t of taken) await t.done();
    // Work converges: b and a fresh replica (what Kubernetes starts for a) take the names' turns in order.
    const c = await replica("pause-c");
    await expect(a.acquire("p1", ticket("a3", 3), forever)).rejects.toThrow(/lost its Lease/);
    for (const [i, name] of ["p1", "p2", "p1", "p2"].entries()) {
      const next = await work(i % 2 ? b : c, name, ticket(`n${i}`, 10 + i));
      await next.done();
    }
    // No two replicas ever worked on one name at once.
    for (const name of ["p1", "p2"]) {
      const ordered = spans.filter((s) => s.name === name).sort((x, y) => x.start - y.start);
      for (let i = 1; i < ordered.length; i++) {
        expect(ordered[i]?.start, JSON.stringify(ordered)).toBeGreaterThanOrEqual(
          ordered[i - 1]?.end as number,
        );
      }
    }
    for (const name of ["p1", "p2"]) {
      const lease = await leases.readNamespacedLease({ name: a.nameLease(name), namespace });
      expect(JSON.parse(lease.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]")).toEqual([]);
      expect(lease.spec?.holderIdentity).toBeUndefined();
    }
    // a's Lease is removed by whoever proved it gone.
    await expect(
      leases.readNamespacedLease({ name: a.replicaLease(a.replica), namespace }),
    ).rejects.toThrow();
  }, 90_000);

  it("lets only one of two replicas reserve what only one fits", async () => {
    const [a, b] = [await replica("budget-a"), await replica("budget-b")];
    const limit = 4;
    const check = (amount: number) => async (reserved: Map<string, number>) => {
      const used = [...reserved.values()].reduce((x, y) => x + y, 0);
      await new Promise((r) => setTimeout(r, 50)); // as long as a real check reading the cluster
      if (used + amount > limit) throw new Error(`over budget: ${used} + ${amount} > ${limit}`);
    };
    const results = await Promise.allSettled([a.reserve("n1", 3, check(3)), b.reserve("n2", 3, check(3))]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const winner = results.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<
      () => Promise<void>
    >;
    await winner.value();
    const release = await b.reserve("n2", 3, check(3)); // room again after the release
    await release();
  });
});
