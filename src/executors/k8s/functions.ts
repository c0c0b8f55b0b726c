/**
 * The k8s executor's table of Colonies functions: the stack functions (deploy, undeploy, scale, reconcile,
 * autoscale: Pulumi updates), get_autoscale, and the cluster functions (reads, restart, logs: the Kubernetes
 * API), over one set of dependencies, each behind the one error boundary.
 */
import type { FunctionDef } from "../../executor/types.js";
import { autoscaleFunctions } from "./autoscale/functions.js";
import { clusterFunctions } from "./cluster-functions.js";
import type { K8sDeps } from "./deps.js";
import { cleanupFunction, reconcileFunction } from "./drift/reconcile.js";
import { guarded } from "./errors.js";
import { stackFunctions } from "./stack-functions.js";
import { statusFunction } from "./status.js";

export function k8sFunctions(deps: K8sDeps): FunctionDef[] {
  return [
    ...stackFunctions(deps),
    reconcileFunction(deps),
    cleanupFunction(deps),
    ...autoscaleFunctions(deps),
    ...clusterFunctions(deps),
    statusFunction(deps),
  ].map(throughBoundary);
}

/** Every function fails through the one error boundary (errors.ts), whatever its work throws. */
function throughBoundary(fn: FunctionDef): FunctionDef {
  return { ...fn, handler: (args, ctx) => guarded(fn.name, ctx.signal, () => fn.handler(args, ctx)) };
}
