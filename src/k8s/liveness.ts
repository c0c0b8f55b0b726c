/**
 * Whether other replicas are alive, by their Leases (heartbeat.ts), with client-go's rule: a replica is proven gone
 * when its Lease is deleted, or stays at one resourceVersion for a whole duration as measured by this replica's
 * clock (no comparison of clocks across machines). The measure is conservative on both ends: it starts when the
 * version was first seen (after the read returned) and ends when the read that finds it unchanged was sent.
 *
 * Gone is final (identities are never reused). Whoever proves a replica gone cleans up after it: first its
 * Colonies executor record (`executorGone`: Colonies then re-queues what it was running at once, instead of after
 * its stale-executor timeout), then its Lease and its entry in the registry. A cleanup that fails is retried by the
 * watch, which also looks at every registered replica every third of a lease, so that a replica killed while
 * nobody waits for its names is proven gone too.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { executorOf, type ReplicaExecutor } from "./heartbeat.js";
import type { LeaseStore } from "./lease-store.js";
import type { ReplicaRegistry } from "./replica-registry.js";

/** How often another replica's Lease is looked at, at most. */
const LIVENESS_CHECK_MS = 1_000;

export interface LivenessOptions {
  store: LeaseStore;
  registry: ReplicaRegistry;
  /** This replica (never taken for gone here: it would have stopped its work first). */
  replica: string;
  replicaLease: (replica: string) => string;
  /** The duration of a Lease that states none. */
  leaseMs: number;
  /**
   * Removes the Colonies executor record of a replica proven gone, before its Lease (which names it) is deleted;
   * throws to be tried again later.
   */
  executorGone?: (executor: ReplicaExecutor, replica: string) => Promise<void>;
  logger: Logger;
}

export class ReplicaLiveness {
  /** Other replicas' Leases as last observed: resourceVersion, and since when (this replica's clock). */
  private readonly observed = new Map<string, { version: string; since: number; durationMs: number }>();
  private readonly proven = new Set<string>();
  private readonly checked = new Map<string, number>();
  /** Replicas proven gone whose cleanup failed (Colonies or the apiserver unreachable): the watch retries. */
  private readonly leftovers = new Set<string>();
  private readonly cleaning = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private watching?: Promise<void>;

  constructor(private readonly options: LivenessOptions) {}

  /** Which of these replicas are proven gone. */
  async gone(replicas: Iterable<string>): Promise<Set<string>> {
    const gone = new Set<string>();
    for (const replica of new Set(replicas)) {
      if (replica === this.options.replica) continue;
      if (this.proven.has(replica)) {
        gone.add(replica);
        continue;
      }
      // Alive is looked at again after a second at the earliest, whatever the number of operations waiting here.
      if (Date.now() - (this.checked.get(replica) ?? 0) < LIVENESS_CHECK_MS) continue;
      this.checked.set(replica, Date.now());
      const sentAt = Date.now();
      const lease = await this.options.store.read(this.options.replicaLease(replica));
      if (lease && !this.unchangedLongEnough(replica, lease, sentAt)) continue;
      this.proven.add(replica);
      this.observed.delete(replica);
      gone.add(replica);
      await this.cleanup(replica, lease);
    }
    return gone;
  }

  /** Looks at every registered replica every `intervalMs` (and registers this one again if it was dropped). */
  watch(intervalMs: number): void {
    this.watching ??= (async () => {
      while (!this.stopping.signal.aborted) {
        try {
          await sleep(intervalMs, undefined, { signal: this.stopping.signal });
        } catch {
          return;
        }
        await this.look().catch((error: unknown) => {
          this.options.logger.debug({ err: error }, "could not look at the other replicas");
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.watching;
  }

  private async look(): Promise<void> {
    const { registry, replica, store, replicaLease } = this.options;
    const listed = await registry.list();
    if (!listed.includes(replica)) await registry.add(replica);
    await this.gone(listed);
    for (const left of [...this.leftovers]) await this.cleanup(left, await store.read(replicaLease(left)));
    // Proven gone and cleaned up, but still listed (its removal from the list failed, or raced with an add).
    const stale = listed.filter((r) => this.proven.has(r) && !this.leftovers.has(r));
    if (stale.length > 0) await registry.remove(stale);
  }

  private unchangedLongEnough(replica: string, lease: V1Lease, sentAt: number): boolean {
    const version = lease.metadata?.resourceVersion ?? "";
    const seen = this.observed.get(replica);
    if (seen?.version !== version) {
      const durationMs = (lease.spec?.leaseDurationSeconds ?? this.options.leaseMs / 1000) * 1000;
      this.observed.set(replica, { version, since: Date.now(), durationMs });
      return false;
    }
    return sentAt - seen.since >= seen.durationMs;
  }

  /** Removes what a gone replica left: its Colonies record, its Lease, its entry. Never throws. */
  private cleanup(replica: string, lease: V1Lease | undefined): Promise<void> {
    const running = this.cleaning.get(replica);
    if (running) return running;
    const cleanup = (async () => {
      try {
        const executor = executorOf(lease);
        if (executor && this.options.executorGone) await this.options.executorGone(executor, replica);
        // Its Lease serves no one any more.
        if (lease) await this.options.store.remove(this.options.replicaLease(replica));
        this.leftovers.delete(replica);
        await this.options.registry.remove([replica]);
      } catch (error) {
        this.leftovers.add(replica);
        this.options.logger.warn(
          { err: error, replica },
          "could not clean up after a replica proven gone; retrying",
        );
      }
    })().finally(() => this.cleaning.delete(replica));
    this.cleaning.set(replica, cleanup);
    return cleanup;
  }
}
