/**
 * Labels on everything the k8s executor deploys: Kubernetes' recommended labels, with `instance` = deployment
 * name so that every deployment's selector is its own, plus the atom label that marks managed pods.
 */
import { LABEL as ATOM_LABEL } from "../atoms/engine.js";

export const MANAGED_BY = "colonyos-k8s-executor";
export const LABEL_NAME = "app.kubernetes.io/name";
export const LABEL_INSTANCE = "app.kubernetes.io/instance";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_PART_OF = "app.kubernetes.io/part-of";

/** The labels of a deployment's selector: stable for the deployment's life (selectors are immutable). */
export function selectorLabels(deployment: string): Record<string, string> {
  return { [LABEL_NAME]: "colonyos-executor", [LABEL_INSTANCE]: deployment, [LABEL_MANAGED_BY]: MANAGED_BY };
}

/** All labels of a deployment's objects and pods. */
export function deploymentLabels(deployment: string, executorType: string): Record<string, string> {
  return {
    ...selectorLabels(deployment),
    [LABEL_COMPONENT]: "executor",
    [LABEL_PART_OF]: "colonyos",
    "colonyos.io/executor-type": executorType,
    [ATOM_LABEL]: "true",
  };
}

/** Selects every deployment this executor manages (in its namespace). */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
