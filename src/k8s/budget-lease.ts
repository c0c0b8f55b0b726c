/**
 * Budget reservations of every replica on one Lease (`budget.<project>`): a check and its reservation are written
 * with the resourceVersion the check read, so that a concurrent reservation makes it check again, and two replicas
 * cannot both pass a limit only one fits. A gone replica's reservations no longer count.
 */
import type { V1Lease } from "@kubernetes/client-node";
import type { Reservations } from "./coordination.js";
import { annotation, type LeaseStore } from "./lease-store.js";
import type { ReplicaLiveness } from "./liveness.js";
import { ROLE_LABEL } from "./name-lease.js";

const RESERVED = "colonyos.io/reserved";

type Stored = Record<string, { amount: number; replica: string }>;

export interface BudgetLeaseOptions {
  store: LeaseStore;
  liveness: ReplicaLiveness;
  leaseName: string;
  labels: Record<string, string>;
  replica: string;
  lost: AbortSignal;
}

export class BudgetLease {
  constructor(private readonly options: BudgetLeaseOptions) {}

  async reserve(
    name: string,
    amount: number,
    check: (reserved: Reservations) => Promise<void>,
  ): Promise<() => Promise<void>> {
    const { store, liveness, leaseName, replica, lost } = this.options;
    for (;;) {
      lost.throwIfAborted();
      const lease = (await store.read(leaseName)) ?? this.fresh();
      const stored = storedOf(lease);
      const gone = await liveness.gone(Object.values(stored).map((r) => r.replica));
      for (const [key, r] of Object.entries(stored)) if (gone.has(r.replica)) delete stored[key];
      const reserved: Reservations = new Map(Object.entries(stored).map(([key, r]) => [key, r.amount]));
      await check(reserved);
      stored[name] = { amount: Math.max(amount, stored[name]?.amount ?? 0), replica };
      if (await store.write(withStored(lease, stored))) break;
    }
    return async () => {
      for (let attempt = 0; attempt < 8; attempt++) {
        const lease = await store.read(leaseName);
        const stored = lease ? storedOf(lease) : {};
        if (!lease || stored[name]?.replica !== replica) return;
        delete stored[name];
        if (await store.write(withStored(lease, stored))) return;
      }
    };
  }

  private fresh(): V1Lease {
    return {
      metadata: { name: this.options.leaseName, labels: { ...this.options.labels, [ROLE_LABEL]: "budget" } },
      spec: {},
    };
  }
}

function storedOf(lease: V1Lease): Stored {
  return annotation<Stored>(lease, RESERVED, (v) => typeof v === "object" && v !== null) ?? {};
}

function withStored(lease: V1Lease, stored: Stored): V1Lease {
  return {
    ...lease,
    metadata: {
      ...lease.metadata,
      annotations: { ...lease.metadata?.annotations, [RESERVED]: JSON.stringify(stored) },
    },
  };
}
