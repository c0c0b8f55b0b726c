/**
 * This replica's own Lease (`replica.<id>.<project>`): the proof that it is alive. Others take it for gone once it
 * stays unchanged for a whole duration by their own clocks (liveness.ts), so this replica must stop its work
 * before that, whatever the apiserver does:
 * - renewals run one at a time, every third of the duration, each with a deadline of a sixth (a request that
 *   hangs is cancelled, never overlapped by the next one); a failed one is retried soon after;
 * - the time of a renewal is when it was sent (the apiserver wrote it after that), and this replica gives up two
 *   thirds of a duration after its last successful one, by a timer of its own: also while a request hangs;
 * - a 409 is read again: the Lease changed since this replica's last write, possibly by its own renewal that
 *   committed after its deadline; it is lost only when it is gone (404) or held by someone else.
 * Giving up aborts `lost`: every turn's work stops, and the executor exits for a fresh replica.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { deadlineSignal } from "../atoms/abort.js";
import { annotation, type LeaseStore } from "./lease-store.js";

/** Who a replica is in Colonies, as its Lease records it (so that a survivor can remove its executor record). */
export interface ReplicaExecutor {
  name: string;
  id: string;
  /** Registered by the replica itself with the colony owner key (not a pre-registered identity). */
  selfRegistered: boolean;
}

const EXECUTOR = "colonyos.io/executor";

export function executorOf(lease: V1Lease | undefined): ReplicaExecutor | undefined {
  return annotation<ReplicaExecutor>(
    lease,
    EXECUTOR,
    (v) => typeof v?.name === "string" && typeof v?.id === "string" && typeof v?.selfRegistered === "boolean",
  );
}

export interface HeartbeatOptions {
  store: LeaseStore;
  leaseName: string;
  replica: string;
  leaseMs: number;
  labels: Record<string, string>;
  /** Who this replica is in Colonies, once it is registered (recorded on its Lease at the next renewal). */
  executor?: () => ReplicaExecutor | undefined;
  onLost: (reason: Error) => void;
  logger: Logger;
}

export class Heartbeat {
  private readonly alive = new AbortController();
  /** Stops the renewals (and cancels one in flight) on close. */
  private readonly stopping = new AbortController();
  private lease: V1Lease;
  private renewedAt: number;
  private giveUp?: NodeJS.Timeout;
  private loop?: Promise<void>;
  /** When the renewal now in flight was sent (for the give-up's reason: a request that outlived its deadline). */
  private inFlightSince?: number;

  private constructor(
    private readonly options: HeartbeatOptions,
    lease: V1Lease,
    sentAt: number,
  ) {
    this.lease = lease;
    this.renewedAt = sentAt;
  }

  /** Creates this replica's Lease (throws when it cannot) and starts renewing it. */
  static async start(options: HeartbeatOptions): Promise<Heartbeat> {
    const sentAt = Date.now();
    const now = new V1MicroTime();
    const created = await options.store.create({
      metadata: { name: options.leaseName, labels: options.labels, annotations: annotations(options) },
      spec: {
        holderIdentity: options.replica,
        leaseDurationSeconds: options.leaseMs / 1000,
        acquireTime: now,
        renewTime: now,
      },
    });
    if (!created) throw new Error(`the Lease ${options.leaseName} exists already (replica ids are unique)`);
    const heartbeat = new Heartbeat(options, created, sentAt);
    heartbeat.armGiveUp();
    heartbeat.loop = heartbeat.run();
    return heartbeat;
  }

  /** Aborts once this replica can no longer prove it is alive. */
  get lost(): AbortSignal {
    return this.alive.signal;
  }

  /** Stops renewing (the Lease itself is deleted by the caller, after what depends on it). */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.giveUp);
    await this.loop;
  }

  private async run(): Promise<void> {
    const interval = this.options.leaseMs / 3;
    // After a failure, soon: with a deadline of a sixth, a second attempt fits before the give-up time.
    const retry = Math.max(100, this.options.leaseMs / 30);
    let next = interval;
    while (!this.stopping.signal.aborted && !this.lost.aborted) {
      try {
        await sleep(next, undefined, { signal: this.stopping.signal });
      } catch {
        return;
      }
      const startedAt = Date.now();
      const renewed = await this.renew();
      next = renewed ? Math.max(0, interval - (Date.now() - startedAt)) : retry;
    }
  }

  /** One renewal, within its deadline; true when the Lease was renewed. */
  private async renew(): Promise<boolean> {
    // Never past the give-up time: a renewal written after it would make others wait for a replica that stopped.
    const deadlineMs = Math.min(this.options.leaseMs / 6, this.renewedAt + this.giveUpMs() - Date.now());
    if (deadlineMs <= 0) return false;
    const signal = deadlineSignal(deadlineMs, this.stopping.signal);
    this.inFlightSince = Date.now();
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const sentAt = Date.now();
        const written = await this.options.store.replace(this.body(), signal);
        if (written) {
          this.lease = written;
          this.renewedAt = sentAt;
          this.armGiveUp();
          return true;
        }
        // Changed or deleted since this replica's last write: whose is it now?
        const current = await this.options.store.read(this.options.leaseName, signal);
        if (current?.spec?.holderIdentity !== this.options.replica) {
          this.lose(
            current
              ? `its Lease is held by ${current.spec?.holderIdentity ?? "nobody"}`
              : "its Lease was deleted: another replica proved it gone",
          );
          return false;
        }
        // Its own: a renewal that timed out here was written after all. Renew on top of it.
        this.lease = current;
      }
    } catch (error) {
      if (!this.stopping.signal.aborted) {
        this.options.logger.warn(
          { err: (error as Error).message, sinceRenewalMs: Date.now() - this.renewedAt },
          "could not renew this replica's Lease; retrying",
        );
      }
    } finally {
      this.inFlightSince = undefined;
    }
    return false;
  }

  private body(): V1Lease {
    return {
      ...this.lease,
      metadata: {
        ...this.lease.metadata,
        annotations: { ...this.lease.metadata?.annotations, ...annotations(this.options) },
      },
      spec: { ...this.lease.spec, renewTime: new V1MicroTime() },
    };
  }

  private giveUpMs(): number {
    return (this.options.leaseMs * 2) / 3;
  }

  /** Gives up two thirds of a duration after the last successful renewal was sent, unless renewed again first. */
  private armGiveUp(): void {
    clearTimeout(this.giveUp);
    const left = this.renewedAt + this.giveUpMs() - Date.now();
    this.giveUp = setTimeout(
      () => {
        const since = this.inFlightSince;
        const pending =
          since === undefined ? "" : `; a renewal sent ${Date.now() - since} ms ago has not answered`;
        this.lose(`it could not renew its Lease for ${Math.round(this.giveUpMs())} ms${pending}`);
      },
      Math.max(0, left),
    );
    this.giveUp.unref();
  }

  private lose(why: string): void {
    if (this.lost.aborted || this.stopping.signal.aborted) return;
    clearTimeout(this.giveUp);
    this.options.logger.error({ reason: why }, "this replica can no longer prove it is alive");
    const reason = new Error(
      `this k8s-executor replica lost its Lease (${why}); its operations were stopped`,
    );
    this.alive.abort(reason);
    this.stopping.abort();
    this.options.onLost(reason);
  }
}

function annotations(options: HeartbeatOptions): Record<string, string> {
  const executor = options.executor?.();
  return executor ? { [EXECUTOR]: JSON.stringify(executor) } : {};
}
