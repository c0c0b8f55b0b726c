/**
 * A blueprint's status as `colonies blueprint get` shows it (upstream's conventions: one instance per pod,
 * runningInstances, totalInstances, lastUpdated), plus the generation converged and, on failure, why.
 */
import type { V1Pod } from "@kubernetes/client-node";

export interface BlueprintStatusInput {
  pods: V1Pod[];
  /** Pods the blueprint's deployment asks for now (0 when nothing was created). */
  desired: number;
  /** The generation of the blueprint last converged (absent: none yet). */
  generation?: number;
  /** Why the last reconcile failed (absent: it succeeded). */
  message?: string;
  now?: Date;
}

/** Whether a pod's Ready condition is true. */
export function ready(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** A pod's state in one word: running once ready, else its phase. */
function stateOf(pod: V1Pod): string {
  if (ready(pod)) return "running";
  return (pod.status?.phase ?? "unknown").toLowerCase();
}

export function blueprintStatus(input: BlueprintStatusInput): Record<string, unknown> {
  const now = (input.now ?? new Date()).toISOString();
  const instances = input.pods.map((pod) => ({
    name: pod.metadata?.name ?? "",
    id: pod.metadata?.uid ?? "",
    type: "pod",
    state: stateOf(pod),
    image: pod.spec?.containers[0]?.image ?? "",
    lastCheck: now,
  }));
  return {
    instances,
    runningInstances: input.pods.filter(ready).length,
    totalInstances: input.desired,
    lastUpdated: now,
    ...(input.generation !== undefined ? { generation: input.generation } : {}),
    ...(input.message ? { message: input.message } : {}),
  };
}
