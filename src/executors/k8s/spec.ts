/** What a deployment is made of, as recorded in its stack's outputs, and the Pulumi program that makes it. */
import * as pulumi from "@pulumi/pulumi";
import type { PulumiFn } from "@pulumi/pulumi/automation/index.js";
import { ExecutorDeployment } from "../../k8s/component.js";
import type { Outputs } from "../../k8s/stacks.js";
import { type AutoscaleState, isAutoscaleState } from "./autoscale/policy.js";
import type { K8sConfig } from "./config.js";
import { type ExecutorIdentity, isExecutorIdentity } from "./identity.js";
import type { SecretRef, Toleration } from "./spec-kwargs.js";

/** The port of the runtime's /readyz in a deployed container (container i listens on it + i). */
export const CHILD_HTTP_PORT = 9464;

/** The non-secret description of a deployment: the seed's arguments plus the optional extras. */
export interface DeploymentSpec {
  deployment: string;
  namespace: string;
  pods: number;
  executorperpod: number;
  ramdisk: boolean;
  image: string;
  executortype: string;
  cpu?: string;
  memory?: string;
  cpulimit?: string;
  memorylimit?: string;
  gpu?: number;
  /** Arguments to the image entrypoint (the container's CMD). */
  cmd?: string[];
  env?: Record<string, string>;
  /** References to keys of Secrets (never their values). */
  secretenv?: SecretRef[];
  imagepullsecret?: string[];
  nodeselector?: Record<string, string>;
  tolerations?: Toleration[];
  /** The image is built on this runtime: probes on /readyz make ready mean registered. */
  probes?: boolean;
}

/** What a stack's outputs say about its deployment. */
export interface Recorded {
  spec?: DeploymentSpec;
  /** The executor identity the containers run as (absent when they get the colony key). */
  identity?: ExecutorIdentity;
  /** Autoscaling of the deployment (absent: its size changes only when asked). */
  autoscale?: AutoscaleState;
  /** The blueprint the deployment is made from (absent: a deploy function made it): the name's owner. */
  blueprint?: BlueprintRecord;
}

/** Which blueprint, and which generation of it, a stack was last converged to. */
export interface BlueprintRecord {
  id: string;
  name: string;
  generation: number;
}

function isBlueprintRecord(value: unknown): value is BlueprintRecord {
  const v = value as Partial<BlueprintRecord> | null;
  return (
    typeof v === "object" && v !== null && typeof v.name === "string" && typeof v.generation === "number"
  );
}

export function recorded(outputs: Outputs | undefined): Recorded {
  return {
    spec: isDeploymentSpec(outputs?.spec) ? outputs.spec : undefined,
    identity: isExecutorIdentity(outputs?.identity) ? outputs.identity : undefined,
    autoscale: isAutoscaleState(outputs?.autoscale) ? outputs.autoscale : undefined,
    blueprint: isBlueprintRecord(outputs?.blueprint) ? outputs.blueprint : undefined,
  };
}

/**
 * The annotation through which a deployment's autoscale policy reaches the cluster: the autoscaler lists
 * Deployments (one call) instead of reading every stack. The stack's outputs stay the record.
 */
export const AUTOSCALE_ANNOTATION = "colonyos.io/autoscale";

/**
 * The annotation naming the blueprint a Deployment is made from: the cron's reconcile finds the stacks of removed
 * blueprints with one list of Deployments. The stack's outputs stay the record (checked before anything goes).
 */
export const BLUEPRINT_ANNOTATION = "colonyos.io/blueprint";

/** The Kubernetes provider's switch for not waiting for a resource to become ready. */
const SKIP_AWAIT = "pulumi.com/skipAwait";

/**
 * An inline program deploying one spec as the given executor identity (or, when the operator chose so, with the
 * colony key); keys reach the containers only through the stack's Secret and are secret outputs in the state.
 */
export function deploymentProgram(
  spec: DeploymentSpec,
  config: K8sConfig,
  identity: ExecutorIdentity | undefined,
  autoscale?: AutoscaleState,
  blueprint?: BlueprintRecord,
): PulumiFn {
  return async () => {
    const executors = new ExecutorDeployment(spec.deployment, {
      name: spec.deployment,
      owner: { project: config.pulumi.project, stack: spec.deployment },
      namespace: spec.namespace,
      pods: spec.pods,
      executorsPerPod: spec.executorperpod,
      image: spec.image,
      executorType: spec.executortype,
      colonies: config.child,
      ...(identity
        ? { executorPrvKey: pulumi.secret(identity.prvKey) }
        : { colonyPrvKey: pulumi.secret(config.ownerKey) }),
      ramdisk: spec.ramdisk,
      ramdiskSizeLimit: config.defaults.ramdiskSize,
      cpu: spec.cpu ?? config.defaults.cpu,
      memory: spec.memory ?? config.defaults.memory,
      cpuLimit: spec.cpulimit,
      memoryLimit: spec.memorylimit,
      gpu: spec.gpu ? { resource: config.gpu.resource, count: spec.gpu } : undefined,
      env: spec.env,
      secretRefs: spec.secretenv,
      imagePullSecrets: spec.imagepullsecret,
      nodeSelector: spec.nodeselector,
      tolerations: spec.tolerations,
      httpPort: spec.probes ? CHILD_HTTP_PORT : undefined,
      args: spec.cmd,
      imagePullPolicy: config.defaults.imagePullPolicy,
      annotations: {
        // The executor waits for the rollout itself (rollout-wait.ts), within K8S_ROLLOUT_TIMEOUT.
        [SKIP_AWAIT]: "true",
        ...(autoscale ? { [AUTOSCALE_ANNOTATION]: JSON.stringify(autoscale.policy) } : {}),
        ...(blueprint ? { [BLUEPRINT_ANNOTATION]: blueprint.name } : {}),
      },
    });
    return {
      spec,
      deployment: executors.deploymentName,
      replicas: executors.replicas,
      executor: identity?.name ?? null,
      identity: identity ? pulumi.secret(identity) : null,
      autoscale: autoscale ?? null,
      blueprint: blueprint ?? null,
    };
  };
}

export function isDeploymentSpec(value: unknown): value is DeploymentSpec {
  const v = value as Partial<DeploymentSpec> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.deployment === "string" &&
    typeof v.pods === "number" &&
    typeof v.executorperpod === "number" &&
    typeof v.image === "string"
  );
}
