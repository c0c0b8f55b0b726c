/** What a deployment is made of, as recorded in its stack's outputs, and the Pulumi program that makes it. */
import type { PulumiFn } from "@pulumi/pulumi/automation/index.js";
import { ExecutorDeployment } from "../../k8s/component.js";
import type { K8sConfig } from "../../k8s/config.js";

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
  /** Arguments to the image entrypoint (the container's CMD). */
  cmd?: string[];
}

/** An inline program deploying one spec; secrets come from the executor's configuration at run time. */
export function deploymentProgram(spec: DeploymentSpec, config: K8sConfig): PulumiFn {
  return async () => {
    const executors = new ExecutorDeployment(spec.deployment, {
      name: spec.deployment,
      namespace: spec.namespace,
      pods: spec.pods,
      executorsPerPod: spec.executorperpod,
      image: spec.image,
      executorType: spec.executortype,
      colonies: config.child,
      colonyPrvKey: config.child.colonyPrvKey,
      ramdisk: spec.ramdisk,
      ramdiskSizeLimit: config.defaults.ramdiskSize,
      cpu: spec.cpu ?? config.defaults.cpu,
      memory: spec.memory ?? config.defaults.memory,
      args: spec.cmd,
      imagePullPolicy: config.defaults.imagePullPolicy,
      rolloutTimeoutSeconds: config.rolloutTimeoutSeconds,
    });
    return { spec, deployment: executors.deploymentName, replicas: executors.replicas };
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
