/** Arguments several k8s functions share, each with its rule declared (checked before any handler runs). */
import type { ArgSpec } from "../../executor/types.js";
import { ROLE_LEASES, reservedNameProblem } from "../../k8s/lease-names.js";
import { deploymentNameProblem, podNameProblem } from "./validation.js";

export const deploymentName = {
  name: "deploymentname",
  type: "string",
  description: `deployment name (DNS-1123 label, at most 46 characters; not ${ROLE_LEASES.join(", ")}: the replicas' own Leases)`,
  // Every function that names a deployment refuses a reserved one: each of them may take the name's turn.
  check: (name: string) => deploymentNameProblem(name) ?? reservedNameProblem(name),
} as const satisfies ArgSpec;

export const podName = {
  name: "podname",
  type: "string",
  description: "name of a pod of a managed deployment",
  check: podNameProblem,
} as const satisfies ArgSpec;

export const dryrun = {
  name: "dryrun",
  type: "bool",
  description: "preview only: nothing changes, the output says what would",
} as const satisfies ArgSpec;
