/**
 * The k8s executor's table of Colonies functions: the stack functions (deploy, undeploy, scale: Pulumi updates)
 * and the cluster functions (reads, restart, logs: the Kubernetes API), over one set of dependencies.
 */

import type { Logger } from "pino";
import type { Engine } from "../../atoms/engine.js";
import type { FunctionDef } from "../../executor/types.js";
import type { StackManager } from "../../k8s/stacks.js";
import { clusterFunctions } from "./cluster-functions.js";
import type { K8sConfig } from "./config.js";
import type { IdentityRegistry } from "./identity.js";
import type { Ownership } from "./ownership.js";
import type { Budget, DeployPolicy } from "./policy.js";
import { stackFunctions } from "./stack-functions.js";
import { statusFunction } from "./status.js";

export interface K8sDeps {
  config: K8sConfig;
  stacks: StackManager;
  pods: Engine<unknown>;
  ownership: Ownership;
  policy: DeployPolicy;
  budget: Budget;
  identities: IdentityRegistry;
  logger: Logger;
}

export function k8sFunctions(deps: K8sDeps): FunctionDef[] {
  return [...stackFunctions(deps), ...clusterFunctions(deps), statusFunction(deps)];
}
