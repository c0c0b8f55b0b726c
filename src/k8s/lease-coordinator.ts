/**
 * Per-name turns across k8s-executor replicas with Kubernetes Leases (coordination.k8s.io), the mechanism
 * Kubernetes' own controllers use for leader election:
 * - one Lease per deployment name (`<name>.<project>`), taken by writing `holderIdentity` with the read
 *   resourceVersion (optimistic concurrency: of two replicas, one write wins, the other gets 409 and waits);
 * - the holder renews it every third of its duration while it works, and gives it up at the end;
 * - a holder is proven gone when the Lease stays unchanged for a whole duration as measured by the waiting
 *   replica's own clock (client-go's rule: no comparison of clocks across machines); only then is it taken over;
 * - a holder that cannot renew for two thirds of the duration aborts its own work before anyone may take over;
 * - the name's record (version, last applied operation) lives in the Lease's annotations, written with the
 *   release, so that it changes hands together with the turn.
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { isApiStatus } from "../atoms/kube-api.js";
import type { AppliedOperation, NameCoordinator, NameRecord, NameTurn } from "./coordination.js";
import { ownedLabels } from "./labels.js";

export interface LeaseCoordinatorOptions {
  api: CoordinationV1Api;
  namespace: string;
  project: string;
  /** This process incarnation (unique per start: a restarted replica waits for its predecessor's turns too). */
  holder: string;
  /** How long a silent holder keeps a turn. */
  leaseSeconds?: number;
  /** How often a waiting replica looks at a held Lease. */
  pollMs?: number;
  logger: Logger;
}

const VERSION = "colonyos.io/version";
const APPLIED = "colonyos.io/applied";

export class LeaseCoordinator implements NameCoordinator {
  readonly kind = "lease";
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly held = new Set<() => void>();

  constructor(private readonly options: LeaseCoordinatorOptions) {
    this.leaseMs = (options.leaseSeconds ?? 15) * 1000;
    this.pollMs = options.pollMs ?? 200;
  }

  /** The Lease of a deployment name: readable, and distinct per project. */
  leaseName(name: string): string {
    const { project } = this.options;
    const safe = project.toLowerCase().replace(/[^a-z0-9-]/g, "-");
    const suffix =
      safe === project ? "" : `-${createHash("sha256").update(project).digest("hex").slice(0, 6)}`;
    return `${name}.${safe}${suffix}`;
  }

  async acquire(name: string, signal: AbortSignal): Promise<NameTurn> {
    const leaseName = this.leaseName(name);
    /** The held Lease's resourceVersion and when this replica first saw it (its own clock). */
    let observed: { version: string; since: number } | undefined;
    for (;;) {
      signal.throwIfAborted();
      const lease = await this.read(leaseName);
      if (!lease) {
        const created = await this.write(() =>
          this.options.api.createNamespacedLease({
            namespace: this.options.namespace,
            body: this.fresh(leaseName, name),
          }),
        );
        if (created) return this.turn(leaseName, created, false);
        continue;
      }
      const holder = lease.spec?.holderIdentity;
      const takenOver = !!holder && holder !== this.options.holder;
      if (takenOver) {
        const version = lease.metadata?.resourceVersion ?? "";
        if (observed?.version !== version) observed = { version, since: Date.now() };
        const duration = (lease.spec?.leaseDurationSeconds ?? this.leaseMs / 1000) * 1000;
        if (Date.now() - observed.since < duration) {
          await sleep(this.pollMs + Math.random() * this.pollMs, undefined, { signal });
          continue;
        }
      }
      const taken = await this.write(() =>
        this.options.api.replaceNamespacedLease({
          name: leaseName,
          namespace: this.options.namespace,
          body: this.claimed(lease),
        }),
      );
      if (!taken) continue;
      if (takenOver) {
        this.options.logger.warn(
          { deployment: name, lease: leaseName, previousHolder: holder },
          "took over the turn of a replica that stopped renewing it",
        );
      }
      return this.turn(leaseName, taken, takenOver);
    }
  }

  async close(): Promise<void> {
    for (const stop of this.held) stop();
  }

  private turn(leaseName: string, lease: V1Lease, takenOver: boolean): NameTurn {
    const lost = new AbortController();
    let current = lease;
    let renewedAt = Date.now();
    const renew = async () => {
      try {
        const renewed = { ...current, spec: { ...current.spec, renewTime: new V1MicroTime() } };
        current = await this.options.api.replaceNamespacedLease({
          name: leaseName,
          namespace: this.options.namespace,
          body: renewed,
        });
        renewedAt = Date.now();
      } catch (error) {
        if (isApiStatus(error, 409)) {
          const now = await this.read(leaseName).catch(() => undefined);
          if (now && now.spec?.holderIdentity === this.options.holder) current = now;
          else lost.abort(new Error(`another replica took over the turn on ${leaseName}`));
          return;
        }
        this.options.logger.warn({ err: error, lease: leaseName }, "could not renew a turn");
      }
      if (Date.now() - renewedAt > (this.leaseMs * 2) / 3) {
        lost.abort(new Error(`could not renew the turn on ${leaseName} in time`));
      }
    };
    const timer = setInterval(() => void renew(), this.leaseMs / 3);
    const stop = () => clearInterval(timer);
    this.held.add(stop);
    return {
      record: recordOf(lease),
      takenOver,
      lost: lost.signal,
      release: async (next) => {
        stop();
        this.held.delete(stop);
        if (lost.signal.aborted) return;
        await this.giveUp(leaseName, current, next);
      },
    };
  }

  /** Ends a turn (with the name's new record); retried on conflicts while the turn is still this replica's. */
  private async giveUp(leaseName: string, lease: V1Lease, next?: NameRecord): Promise<void> {
    let current: V1Lease | undefined = lease;
    for (let attempt = 0; attempt < 3 && current; attempt++) {
      if (current.spec?.holderIdentity !== this.options.holder) return;
      const annotations = { ...current.metadata?.annotations, ...(next ? annotationsOf(next) : {}) };
      const body: V1Lease = {
        ...current,
        metadata: { ...current.metadata, annotations },
        spec: { ...current.spec, holderIdentity: undefined },
      };
      try {
        await this.options.api.replaceNamespacedLease({
          name: leaseName,
          namespace: this.options.namespace,
          body,
        });
        return;
      } catch (error) {
        if (!isApiStatus(error, 409)) {
          // The Lease expires by itself; the record's version is what other replicas would miss.
          this.options.logger.error({ err: error, lease: leaseName }, "could not end a turn");
          return;
        }
        current = await this.read(leaseName);
      }
    }
  }

  private async read(leaseName: string): Promise<V1Lease | undefined> {
    try {
      return await this.options.api.readNamespacedLease({
        name: leaseName,
        namespace: this.options.namespace,
      });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** A create or replace; undefined when another replica wrote first (409). */
  private async write(call: () => Promise<V1Lease>): Promise<V1Lease | undefined> {
    try {
      return await call();
    } catch (error) {
      if (isApiStatus(error, 409)) return undefined;
      throw error;
    }
  }

  private fresh(leaseName: string, name: string): V1Lease {
    const now = new V1MicroTime();
    return {
      metadata: {
        name: leaseName,
        namespace: this.options.namespace,
        labels: ownedLabels(this.options.project, name),
        annotations: annotationsOf({ version: 0 }),
      },
      spec: {
        holderIdentity: this.options.holder,
        leaseDurationSeconds: this.leaseMs / 1000,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 0,
      },
    };
  }

  private claimed(lease: V1Lease): V1Lease {
    const now = new V1MicroTime();
    return {
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: this.options.holder,
        leaseDurationSeconds: this.leaseMs / 1000,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1,
      },
    };
  }
}

function annotationsOf(record: NameRecord): Record<string, string> {
  return {
    [VERSION]: String(record.version),
    ...(record.applied ? { [APPLIED]: JSON.stringify(record.applied) } : {}),
  };
}

function recordOf(lease: V1Lease): NameRecord {
  const annotations = lease.metadata?.annotations ?? {};
  const version = Number(annotations[VERSION] ?? 0);
  let applied: AppliedOperation | undefined;
  try {
    const value = annotations[APPLIED] ? JSON.parse(annotations[APPLIED]) : undefined;
    if (value && typeof value.process === "string" && typeof value.order === "number") applied = value;
  } catch {
    // An unreadable record supersedes nothing.
  }
  return { version: Number.isFinite(version) ? version : 0, applied };
}
