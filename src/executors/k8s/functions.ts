/**
 * The k8s executor's table of Colonies functions: the stack functions (deploy, undeploy, scale: Pulumi updates)
 * and the cluster functions (reads, restart, logs: the Kubernetes API), over one set of dependencies.
 */
import type { FunctionDef } from "../../executor/types.js";
import { clusterFunctions } from "./cluster-functions.js";
import type { K8sDeps } from "./deps.js";
import { stackFunctions } from "./stack-functions.js";
import { statusFunction } from "./status.js";

export function k8sFunctions(deps: K8sDeps): FunctionDef[] {
  return [...stackFunctions(deps), ...clusterFunctions(deps), statusFunction(deps)];
}
