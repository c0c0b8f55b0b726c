/**
 * Labels on everything an ExecutorDeployment makes: Kubernetes' recommended labels, with `instance` = deployment
 * name so that every deployment's selector is its own.
 *
 * Ownership: objects made by one of the k8s executor's stacks are `managed-by: colonyos-k8s-executor` and name
 * their owning stack (`colonyos.io/project` + `colonyos.io/stack`); their pods also carry the atom label. The
 * bootstrap's own objects (infra/) are `managed-by: pulumi` and name no stack, so the k8s executor never sees
 * them. The executor acts only on objects whose labels name the stack of the deployment it was asked about.
 */
import { LABEL as ATOM_LABEL } from "../atoms/engine.js";

export const MANAGED_BY = "colonyos-k8s-executor";
/** The bootstrap program's objects (infra/): deployed by `pulumi up`, not by the k8s executor. */
export const MANAGED_BY_BOOTSTRAP = "pulumi";
export const LABEL_NAME = "app.kubernetes.io/name";
export const LABEL_INSTANCE = "app.kubernetes.io/instance";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_PART_OF = "app.kubernetes.io/part-of";
export const LABEL_PROJECT = "colonyos.io/project";
export const LABEL_STACK = "colonyos.io/stack";

/** The Pulumi stack (of the k8s executor) that owns a deployment's objects. */
export interface StackOwner {
  project: string;
  stack: string;
}

/** The labels of a deployment's selector: stable for the deployment's life (selectors are immutable). */
export function selectorLabels(deployment: string, owner?: StackOwner): Record<string, string> {
  return {
    [LABEL_NAME]: "colonyos-executor",
    [LABEL_INSTANCE]: deployment,
    [LABEL_MANAGED_BY]: owner ? MANAGED_BY : MANAGED_BY_BOOTSTRAP,
  };
}

/** All labels of a deployment's objects and pods. */
export function deploymentLabels(
  deployment: string,
  executorType: string,
  owner?: StackOwner,
): Record<string, string> {
  return {
    ...selectorLabels(deployment, owner),
    [LABEL_COMPONENT]: "executor",
    [LABEL_PART_OF]: "colonyos",
    "colonyos.io/executor-type": executorType,
    ...(owner ? { [LABEL_PROJECT]: owner.project, [LABEL_STACK]: owner.stack, [ATOM_LABEL]: "true" } : {}),
  };
}

/** Label terms selecting the objects of the k8s executor's stacks in one project. */
export function ownedLabels(project: string, stack?: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_PROJECT]: project,
    ...(stack ? { [LABEL_STACK]: stack, [LABEL_INSTANCE]: stack } : {}),
  };
}

export function selector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
}

/** Whether an object's labels say it belongs to the stack of deployment `stack` in `project`. */
export function isOwnedBy(
  labels: Record<string, string> | undefined,
  project: string,
  stack: string,
): boolean {
  return Object.entries(ownedLabels(project, stack)).every(([key, value]) => labels?.[key] === value);
}

/** The deployment (stack) name an owned object belongs to, or undefined when it is not one of the project's. */
export function owningStack(labels: Record<string, string> | undefined, project: string): string | undefined {
  const stack = labels?.[LABEL_STACK];
  return stack && isOwnedBy(labels, project, stack) ? stack : undefined;
}
