/** What the k8s executor's functions work with, built once at start-up (src/executors/k8s.ts). */
import type { Logger } from "pino";
import type { Engine } from "../../atoms/engine.js";
import type { StackManager } from "../../k8s/stacks.js";
import type { LoadProbe } from "./autoscale/queue-load.js";
import type { BlueprintSource } from "./blueprint/source.js";
import type { Budget } from "./budget.js";
import type { K8sConfig } from "./config.js";
import type { IdentityRegistry } from "./identity.js";
import type { Ownership } from "./ownership.js";
import type { DeployPolicy } from "./policy.js";

export interface K8sDeps {
  config: K8sConfig;
  stacks: StackManager;
  pods: Engine<unknown>;
  ownership: Ownership;
  policy: DeployPolicy;
  budget: Budget;
  identities: IdentityRegistry;
  /** The Colonies queue's load for an executor type (the autoscaler's input). */
  load: LoadProbe;
  logger: Logger;
  /** Blueprints and their status (absent without the runtime's identity: the blueprint calls then fail). */
  blueprints?: BlueprintSource;
}
