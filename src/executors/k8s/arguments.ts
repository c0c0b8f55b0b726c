/** Arguments several k8s functions share, each with its rule declared (checked before any handler runs). */
import type { ArgSpec } from "../../executor/types.js";
import { deploymentNameProblem, podNameProblem } from "./validation.js";

export const deploymentName = {
  name: "deploymentname",
  type: "string",
  description: "deployment name (DNS-1123 label, at most 46 characters)",
  check: deploymentNameProblem,
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
