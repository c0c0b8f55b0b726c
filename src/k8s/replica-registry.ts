/**
 * The replicas that may be alive, on one Lease (`replica.<project>`, a reserved name): each replica adds itself
 * at start and removes itself on a clean shutdown; whoever proves one gone removes it. Survivors look at every
 * listed replica, so that one killed while nobody waits for its names is still proven gone (and its Colonies
 * record removed) within about a lease — not only when a later call on one of its names comes along. It also
 * spares the executor's Role a `list` on Leases.
 */
import type { V1Lease } from "@kubernetes/client-node";
import { annotation, type LeaseStore } from "./lease-store.js";
import { ROLE_LABEL } from "./name-lease.js";

const REPLICAS = "colonyos.io/replicas";

export class ReplicaRegistry {
  constructor(
    private readonly store: LeaseStore,
    private readonly leaseName: string,
    private readonly labels: Record<string, string>,
  ) {}

  async list(signal?: AbortSignal): Promise<string[]> {
    return listed(await this.store.read(this.leaseName, signal));
  }

  add(replica: string): Promise<void> {
    return this.change((replicas) => (replicas.includes(replica) ? undefined : [...replicas, replica]));
  }

  remove(gone: readonly string[]): Promise<void> {
    return this.change((replicas) =>
      replicas.some((r) => gone.includes(r)) ? replicas.filter((r) => !gone.includes(r)) : undefined,
    );
  }

  /** Read-modify-write, again on conflicts; `edit` returns undefined when there is nothing to write. */
  private async change(edit: (replicas: string[]) => string[] | undefined): Promise<void> {
    for (;;) {
      const lease: V1Lease = (await this.store.read(this.leaseName)) ?? {
        metadata: { name: this.leaseName, labels: { ...this.labels, [ROLE_LABEL]: "replicas" } },
        spec: {},
      };
      const next = edit(listed(lease));
      if (!next) return;
      const body = {
        ...lease,
        metadata: {
          ...lease.metadata,
          annotations: { ...lease.metadata?.annotations, [REPLICAS]: JSON.stringify(next) },
        },
      };
      if (await this.store.write(body)) return;
    }
  }
}

function listed(lease: V1Lease | undefined): string[] {
  return (
    annotation<string[]>(lease, REPLICAS, (v) => Array.isArray(v) && v.every((r) => typeof r === "string")) ??
    []
  );
}
