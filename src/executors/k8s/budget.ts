/**
 * Budgets over every deployment of this executor (all its replicas), checked before any Pulumi update starts:
 * at most K8S_MAX_DEPLOYMENTS deployments and K8S_MAX_CONTAINERS executor containers (pods x executorperpod
 * summed over every deployment), counted from the cluster plus the updates in flight.
 */
import type { NameCoordinator, Reservations } from "../../k8s/coordination.js";
import type { Ownership } from "./ownership.js";

export class BudgetError extends Error {
  override readonly name = "BudgetError";
}

interface Usage {
  /** Deployment name → executor containers. */
  containers: Map<string, number>;
}

/**
 * Budgets over every deployment of this executor (all its replicas). A reservation holds a deployment's new size
 * from the check until its update is over, so that concurrent deploys of different names, on any replica, cannot
 * together pass the limits; the coordinator makes each check and its reservation one step.
 */
export class Budget {
  constructor(
    private readonly deps: {
      ownership: Ownership;
      coordinator: NameCoordinator;
      limits: { maxDeployments: number; maxContainers: number };
    },
  ) {}

  /**
   * Checks that `name` may have `containers` executor containers, and holds that until the returned release is
   * called. Throws BudgetError naming the limit. Shrinking is always allowed.
   */
  reserve(name: string, containers: number): Promise<() => Promise<void>> {
    return this.deps.coordinator.reserve(name, containers, (reserved) =>
      this.check(name, containers, reserved),
    );
  }

  private async check(name: string, containers: number, reserved: Reservations): Promise<void> {
    const { maxDeployments, maxContainers } = this.deps.limits;
    const usage = await this.usage();
    for (const [other, n] of reserved)
      usage.containers.set(other, Math.max(n, usage.containers.get(other) ?? 0));
    const current = usage.containers.get(name);
    usage.containers.delete(name);
    const others = [...usage.containers.values()].reduce((a, b) => a + b, 0);
    if (current === undefined && usage.containers.size + 1 > maxDeployments) {
      throw new BudgetError(
        `the executor already manages ${usage.containers.size} deployments, the most K8S_MAX_DEPLOYMENTS allows (${maxDeployments}); undeploy one first`,
      );
    }
    if (containers > (current ?? 0) && others + containers > maxContainers) {
      throw new BudgetError(
        `${containers} executor containers would make ${others + containers} over all deployments, more than K8S_MAX_CONTAINERS allows (${maxContainers}); ${Math.max(0, maxContainers - others)} are left`,
      );
    }
  }

  private async usage(): Promise<Usage> {
    const containers = new Map<string, number>();
    for (const d of await this.deps.ownership.deployments()) {
      const n = (d.spec?.replicas ?? 1) * (d.spec?.template.spec?.containers.length ?? 1);
      containers.set(d.metadata?.name as string, n);
    }
    return { containers };
  }
}
