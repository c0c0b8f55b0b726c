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
}

export function recorded(outputs: Outputs | undefined): Recorded {
  return {
    spec: isDeploymentSpec(outputs?.spec) ? outputs.spec : undefined,
    identity: isExecutorIdentity(outputs?.identity) ? outputs.identity : undefined,
    autoscale: isAutoscaleState(outputs?.autoscale) ? outputs.autoscale : undefined,
  };
}

/**
 * The annotation through which a deployment's autoscale policy reaches the cluster: the autoscaler lists
 * Deployments (one call) instead of reading every stack. The stack's outputs stay the record.
 */
export const AUTOSCALE_ANNOTATION = "colonyos.io/autoscale";

/**
 * An inline program deploying one spec as the given executor identity (or, when the operator chose so, with the
 * colony key); keys reach the containers only through the stack's Secret and are secret outputs in the state.
 */
export function deploymentProgram(
  spec: DeploymentSpec,
  config: K8sConfig,
  identity: ExecutorIdentity | undefined,
  autoscale?: AutoscaleState,
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
      rolloutTimeoutSeconds: config.rolloutTimeoutSeconds,
      annotations: autoscale ? { [AUTOSCALE_ANNOTATION]: JSON.stringify(autoscale.policy) } : undefined,
    });
    return {
      spec,
      deployment: executors.deploymentName,
      replicas: executors.replicas,
      executor: identity?.name ?? null,
      identity: identity ? pulumi.secret(identity) : null,
      autoscale: autoscale ?? null,
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
