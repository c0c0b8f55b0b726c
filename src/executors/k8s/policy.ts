/**
 * The operator's limits on what callers may deploy, checked before any Pulumi update starts:
 * - images and cmd strings must match the operator's glob patterns (K8S_ALLOWED_IMAGES, K8S_ALLOWED_CMDS);
 *   nothing is allowed until the operator says so;
 * - budgets: at most K8S_MAX_DEPLOYMENTS deployments and K8S_MAX_CONTAINERS executor containers (pods x
 *   executorperpod summed over every deployment), counted from the cluster plus the updates in flight.
 */
import picomatch from "picomatch";
import type { NameCoordinator, Reservations } from "../../k8s/coordination.js";
import type { K8sConfig } from "./config.js";
import type { Ownership } from "./ownership.js";

/** A glob allow-list; `*` stays within a path segment, `**` crosses them (picomatch's rules). */
class AllowList {
  private readonly matchers: ((value: string) => boolean)[];
  constructor(
    readonly patterns: readonly string[],
    options: picomatch.PicomatchOptions = {},
  ) {
    this.matchers = patterns.map((p) => picomatch(p, { dot: true, ...options }));
  }
  allows(value: string): boolean {
    return this.matchers.some((match) => match(value));
  }
}

export class DeployPolicy {
  private readonly images: AllowList;
  private readonly cmds: AllowList;
  private readonly secrets: AllowList;
  private readonly runtimeImages: AllowList;

  constructor(policy: Pick<K8sConfig["policy"], "images" | "cmds"> & Partial<K8sConfig["policy"]>) {
    this.images = new AllowList(policy.images);
    // A cmd is a line of arguments, not a path: '*' matches across '/' there.
    this.cmds = new AllowList(policy.cmds, { bash: true });
    this.secrets = new AllowList(policy.secrets ?? []);
    this.runtimeImages = new AllowList(policy.runtimeImages ?? []);
  }

  /** Whether the image is built on this project's runtime (it serves /readyz once registered). */
  isRuntimeImage(image: string): boolean {
    return this.runtimeImages.allows(image);
  }

  secretProblem(secret: string): string | undefined {
    if (this.secrets.allows(secret)) return undefined;
    if (this.secrets.patterns.length === 0) {
      return `Secret ${secret} may not be referenced: no Secret may, until the operator lists the allowed ones in K8S_ALLOWED_SECRETS`;
    }
    return `Secret ${secret} may not be referenced: it is not allowed by K8S_ALLOWED_SECRETS (${this.secrets.patterns.join(", ")})`;
  }

  imageProblem(image: string): string | undefined {
    if (this.images.allows(image)) return undefined;
    if (this.images.patterns.length === 0) {
      return `image ${image} is not allowed: no image is, until the operator lists the allowed ones in K8S_ALLOWED_IMAGES (e.g. registry.example.com/colonyos/*)`;
    }
    return `image ${image} is not allowed by K8S_ALLOWED_IMAGES (${this.images.patterns.join(", ")})`;
  }

  cmdProblem(cmd: string): string | undefined {
    if (this.cmds.allows(cmd)) return undefined;
    if (this.cmds.patterns.length === 0) {
      return `cmd "${cmd}" is not allowed: no cmd is, until the operator lists the allowed ones in K8S_ALLOWED_CMDS (deploy without cmd runs the image's own command)`;
    }
    return `cmd "${cmd}" is not allowed by K8S_ALLOWED_CMDS (${this.cmds.patterns.join(", ")})`;
  }
}

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
