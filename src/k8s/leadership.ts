/**
 * One leader per role (LEADER_ROLES: the autoscaler, the drift check, the identity sweep): a Lease
 * (`<role>.<project>`) whose holder is a replica. It is held while that replica's own Lease proves it alive and
 * taken over once it is proven gone (the same rule as for turns), so it needs no renewing of its own; a clean
 * shutdown hands it on at once.
 */
import type { V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { assertLeaderRole, type LeaderRole } from "./lease-names.js";
import type { LeaseStore } from "./lease-store.js";
import type { ReplicaLiveness } from "./liveness.js";
import { ROLE_LABEL } from "./name-lease.js";

export interface LeadershipOptions {
  store: LeaseStore;
  liveness: ReplicaLiveness;
  roleLease: (role: LeaderRole) => string;
  labels: Record<string, string>;
  replica: string;
  leaseMs: number;
  lost: AbortSignal;
  logger: Logger;
}

export class Leadership {
  /** Leader Leases this replica took. */
  private readonly led = new Set<string>();

  constructor(private readonly options: LeadershipOptions) {}

  async leads(role: string): Promise<boolean> {
    assertLeaderRole(role);
    const { store, liveness, replica, lost } = this.options;
    if (lost.aborted) return false;
    const leaseName = this.options.roleLease(role);
    const lease = await store.read(leaseName);
    const holder = lease?.spec?.holderIdentity;
    if (holder === replica) {
      this.led.add(leaseName);
      return true;
    }
    if (holder && !(await liveness.gone([holder])).has(holder)) return false;
    const now = new V1MicroTime();
    const body: V1Lease = lease ?? {
      metadata: { name: leaseName, labels: { ...this.options.labels, [ROLE_LABEL]: "leader" } },
      spec: {},
    };
    body.spec = {
      ...body.spec,
      holderIdentity: replica,
      leaseDurationSeconds: this.options.leaseMs / 1000,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (lease ? 1 : 0),
    };
    if (!(await store.write(body))) return false;
    this.led.add(leaseName);
    this.options.logger.info({ role, previousHolder: holder ?? null }, "this replica leads now");
    return true;
  }

  /** Hands every role this replica leads on at once. */
  async handOn(): Promise<void> {
    const { store, replica } = this.options;
    for (const leaseName of this.led) {
      const lease = await store.read(leaseName).catch(() => undefined);
      if (lease?.spec?.holderIdentity !== replica) continue;
      await store
        .replace({ ...lease, spec: { ...lease.spec, holderIdentity: undefined } })
        .catch(() => undefined);
    }
  }
}
