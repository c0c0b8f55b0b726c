/**
 * This project's BlueprintDefinition of the ExecutorDeployment kind: the schema the Colonies server validates every
 * blueprint against (its subset of JSON schema: type, properties, required, enum, default, items, nested
 * objects), with the k8s executor as handler. It describes the fields `blueprintDeployment` reads; a unit test
 * keeps the two in step. Whole numbers are declared "number": the 1.9.12 server checks that type and ignores
 * "integer"; the reconciler refuses fractions itself.
 */

export const KIND = "ExecutorDeployment";

interface Property {
  type: "string" | "number" | "boolean" | "object" | "array";
  description: string;
  default?: unknown;
  enum?: unknown[];
  items?: Omit<Property, "description"> & { description?: string };
  properties?: Record<string, Property>;
}

const str = (description: string): Property => ({ type: "string", description });
const quantity = (what: string) => str(`${what} per container, a Kubernetes quantity (e.g. 500m, 512Mi)`);

/** Every field of an ExecutorDeployment spec, by name. */
export const SPEC_PROPERTIES: Record<string, Property> = {
  image: str("container image of the executors (one the operator allows: K8S_ALLOWED_IMAGES)"),
  executorType: str(
    "executor type the deployed executors serve (the blueprint's name, or one K8S_ALLOWED_EXECUTOR_TYPES allows)",
  ),
  replicas: { type: "number", description: "number of pods", default: 1 },
  executorsPerPod: { type: "number", description: "executor containers per pod", default: 1 },
  ramdisk: { type: "boolean", description: "mount an in-memory emptyDir at /ramdisk", default: false },
  cmd: {
    type: "array",
    description: 'arguments to the image\'s entry point, e.g. ["sleep"] (allowed by K8S_ALLOWED_CMDS)',
    items: { type: "string" },
  },
  cpu: quantity("CPU request"),
  memory: quantity("memory request (and limit unless memoryLimit)"),
  cpuLimit: quantity("CPU limit"),
  memoryLimit: quantity("memory limit"),
  gpu: { type: "number", description: "GPUs per container (at most K8S_MAX_GPU)" },
  env: {
    type: "object",
    description: "plain environment, NAME: value (names the operator allows: K8S_ALLOWED_ENV, K8S_PROFILES)",
  },
  secretEnv: {
    type: "object",
    description:
      'environment from keys of Secrets, NAME: "secret/key" (Secrets a profile of K8S_PROFILES binds to the image and cmd)',
  },
  imagePullSecrets: {
    type: "array",
    description: "Secrets with registry credentials for the image (bound to it by K8S_PROFILES)",
    items: { type: "string" },
  },
  nodeSelector: { type: "object", description: "node labels the pods must run on" },
  tolerations: {
    type: "array",
    description: "taints the pods tolerate (keys the operator allows: K8S_ALLOWED_TOLERATIONS)",
    items: {
      type: "object",
      properties: {
        key: str("taint key"),
        value: str("taint value (absent: any)"),
        effect: { ...str("taint effect"), enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"] },
      },
    },
  },
  autoscale: {
    type: "object",
    description: "size the deployment from the Colonies queue of its executor type",
    properties: {
      min: { type: "number", description: "fewest pods" },
      max: { type: "number", description: "most pods" },
      perExecutor: { type: "number", description: "waiting + running processes one executor takes" },
      cooldown: { type: "number", description: "seconds the load must stay low before scaling down" },
    },
  },
  executorName: str("upstream's Docker reconcilers' target node: accepted, not used by the k8s executor"),
  executorNames: {
    type: "array",
    description: "upstream's Docker reconcilers' target nodes: accepted, not used by the k8s executor",
    items: { type: "string" },
  },
  ports: { type: "array", description: "upstream's Docker reconcilers' ports: accepted, not used here" },
};

/** The definition to register (colony owner key), with the k8s executor's type as handler. */
export function executorDeploymentDefinition(handlerExecutorType: string, name = "executor-deployment") {
  return {
    kind: "BlueprintDefinition",
    metadata: { name },
    spec: {
      group: "compute.colonies.io",
      version: "v1",
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: "executordeployments",
        singular: "executordeployment",
      },
      scope: "Namespaced",
      schema: { type: "object", properties: SPEC_PROPERTIES, required: ["image", "executorType"] },
      handler: { executorType: handlerExecutorType, functionName: "reconcile" },
    },
  };
}
