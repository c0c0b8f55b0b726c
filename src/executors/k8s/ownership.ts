/**
 * The k8s executor acts only on objects its own stacks created: their labels name the owning stack (see
 * src/k8s/labels.ts). Everything else in the namespace — the bootstrap's executors, anyone's objects, objects
 * that merely wear the managed-by label — is invisible to callers, and deploy refuses a name taken by them.
 */
import type { AppsV1Api, CoreV1Api, V1Deployment, V1Pod, V1Secret } from "@kubernetes/client-node";
import { isApiStatus, withSignal } from "../../atoms/kube-api.js";
import { ProcessError } from "../../executor/types.js";
import {
  isOwnedBy,
  LABEL_NAME,
  LABEL_PART_OF,
  LABEL_PROJECT,
  ownedLabels,
  owningStack,
  selector,
} from "../../k8s/labels.js";
import { UnknownStackError } from "../../k8s/stack-errors.js";

/** A deployment's objects as they are in the cluster (absent: deleted, or not its stack's). */
export interface LiveObjects {
  deployment?: V1Deployment;
  secret?: V1Secret;
}

export interface OwnershipDeps {
  apps: AppsV1Api;
  core: CoreV1Api;
  namespace: string;
  project: string;
}

export class Ownership {
  constructor(private readonly deps: OwnershipDeps) {}

  /** Whether labels (of a pod, a Deployment...) say the object belongs to deployment `name`'s stack. */
  owns(labels: Record<string, string> | undefined, name: string): boolean {
    return isOwnedBy(labels, this.deps.project, name);
  }

  /** The deployment (stack) an object belongs to, if it is one of ours. */
  owner(labels: Record<string, string> | undefined): string | undefined {
    return owningStack(labels, this.deps.project);
  }

  /** The Deployment of one of our deployments; anything else is an unknown deployment. */
  async deployment(name: string, signal?: AbortSignal): Promise<V1Deployment> {
    const { apps, namespace } = this.deps;
    let deployment: V1Deployment;
    try {
      deployment = await apps.readNamespacedDeployment(
        { name, namespace },
        signal ? withSignal(signal) : undefined,
      );
    } catch (error) {
      if (isApiStatus(error, 404)) throw new UnknownStackError(name);
      throw error;
    }
    if (!this.owns(deployment.metadata?.labels, name)) throw new UnknownStackError(name);
    return deployment;
  }

  /** Our Deployments: each named after the stack its labels name. */
  async deployments(): Promise<V1Deployment[]> {
    const { apps, namespace, project } = this.deps;
    const list = await apps.listNamespacedDeployment({
      namespace,
      labelSelector: selector(ownedLabels(project)),
    });
    return list.items.filter((d) => d.metadata?.name && this.owner(d.metadata.labels) === d.metadata.name);
  }

  /** Names of our deployments, sorted. */
  async deploymentNames(): Promise<string[]> {
    return (await this.deployments()).map((d) => d.metadata?.name as string).sort();
  }

  /**
   * Refuses to deploy `name` over objects that exist and are not its stack's: the provider would adopt them
   * (it upserts), and a later undeploy would delete them. Undeploy refuses them too: Pulumi deletes by name.
   */
  async assertNameFree(fn: string, name: string, advice = "choose another deployment name"): Promise<void> {
    const { apps, core, namespace } = this.deps;
    const secret = `${name}-keys`;
    const objects: [string, string, () => Promise<{ metadata?: { labels?: Record<string, string> } }>][] = [
      ["Deployment", name, () => apps.readNamespacedDeployment({ name, namespace })],
      ["Secret", secret, () => core.readNamespacedSecret({ name: secret, namespace })],
    ];
    for (const [kind, objectName, read] of objects) {
      const object = await read().catch((error: unknown) => {
        if (isApiStatus(error, 404)) return undefined;
        throw error;
      });
      if (object && !this.owns(object.metadata?.labels, name)) {
        throw new ProcessError(
          `${fn}: a ${kind} named ${objectName} already exists in namespace ${namespace} and was not created by this executor's stack for ${name}; ${advice}`,
        );
      }
    }
  }

  /**
   * Refuses Secrets that hold keys of ColonyOS executors — any ExecutorDeployment's (this executor's stacks' or
   * infra's), anything of this project's stacks — and service-account tokens (the executor's own rights), whatever
   * the operator's patterns say. A Secret that does not exist yet is left to the name rules (policy.ts).
   */
  async assertSecretsReferable(fn: string, names: readonly string[], signal?: AbortSignal): Promise<void> {
    const { core, namespace } = this.deps;
    for (const name of names) {
      const secret = await core
        .readNamespacedSecret({ name, namespace }, signal ? withSignal(signal) : undefined)
        .catch((error: unknown) => {
          if (isApiStatus(error, 404)) return undefined;
          throw error;
        });
      const labels = secret?.metadata?.labels ?? {};
      const executorKeys =
        labels[LABEL_NAME] === "colonyos-executor" ||
        labels[LABEL_PART_OF] === "colonyos" ||
        labels[LABEL_PROJECT] !== undefined;
      if (executorKeys || secret?.type === "kubernetes.io/service-account-token") {
        throw new ProcessError(
          `${fn}: Secret ${name} may never be referenced: it holds ${executorKeys ? "keys of ColonyOS executors" : "a service account's token"}, whatever K8S_ALLOWED_SECRETS and K8S_PROFILES say`,
        );
      }
    }
  }

  /**
   * The live Deployment and `<name>-keys` Secret of deployment `name`, each absent when it is deleted or is not
   * its stack's (an object of that name made by someone else is, for this deployment, gone).
   */
  async liveObjects(name: string, signal?: AbortSignal): Promise<LiveObjects> {
    const { apps, core, namespace } = this.deps;
    const options = signal ? withSignal(signal) : undefined;
    const ours = async <T extends { metadata?: { labels?: Record<string, string> } }>(read: Promise<T>) => {
      const object = await read.catch((error: unknown) => {
        if (isApiStatus(error, 404)) return undefined;
        throw error;
      });
      return object && this.owns(object.metadata?.labels, name) ? object : undefined;
    };
    const [deployment, secret] = await Promise.all([
      ours(apps.readNamespacedDeployment({ name, namespace }, options)),
      ours(core.readNamespacedSecret({ name: `${name}-keys`, namespace }, options)),
    ]);
    return { deployment, secret };
  }

  /** The pods of deployment `name` that are not being deleted, sorted by name (a blueprint's instances). */
  async pods(name: string, signal?: AbortSignal): Promise<V1Pod[]> {
    const { core, namespace, project } = this.deps;
    const list = await core.listNamespacedPod(
      { namespace, labelSelector: selector(ownedLabels(project, name)) },
      signal ? withSignal(signal) : undefined,
    );
    return list.items
      .filter((p) => !p.metadata?.deletionTimestamp && this.owns(p.metadata?.labels, name))
      .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
  }
}
