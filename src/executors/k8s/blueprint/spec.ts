/**
 * An ExecutorDeployment blueprint's spec as a DeploymentSpec: the other front door to the same spec and the same
 * rules as deploy's arguments. Upstream's example fields are taken as they are (`image`, `replicas`,
 * `executorType`, `cpu`, `memory`, `env` as an object; `executorName(s)` and `ports`, which target Docker
 * reconcilers, are accepted and ignored); everything deploy can do has a name of its own. Values are JSON, so
 * nothing is limited by the CLI's `--kwargs` grammar. Unknown fields are refused (a typo must not pass silently).
 */
import { z } from "zod";
import type { Blueprint } from "../../../colonies/types.js";
import { reservedNameProblem } from "../../../k8s/lease-names.js";
import type { K8sConfig } from "../config.js";
import type { DeployPolicy } from "../policy.js";
import type { DeploymentSpec } from "../spec.js";
import { specProblem } from "../spec-check.js";
import {
  envNameProblem,
  nodeLabelProblem,
  pullSecretProblem,
  type SecretRef,
  secretRefProblem,
  type Toleration,
  taintProblem,
} from "../spec-rules.js";
import { deploymentNameProblem, imageProblem, quantityProblem } from "../validation.js";

const scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const secretRef = z.union([
  z.string().regex(/^[^/]+\/[^/]+$/, "SECRET/KEY"),
  z.strictObject({ secret: z.string(), key: z.string() }),
]);
const toleration = z.strictObject({
  key: z.string(),
  value: z.string().optional(),
  effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
});
const int = (min: number) => z.number().int().min(min);

const specSchema = z.strictObject({
  image: z.string(),
  executorType: z.string(),
  replicas: int(0).default(1),
  executorsPerPod: int(1).default(1),
  ramdisk: z.boolean().default(false),
  cmd: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  cpu: z.string().optional(),
  memory: z.string().optional(),
  cpuLimit: z.string().optional(),
  memoryLimit: z.string().optional(),
  gpu: int(1).optional(),
  env: z.record(z.string(), scalar).optional(),
  secretEnv: z.record(z.string(), secretRef).optional(),
  imagePullSecrets: z.array(z.string()).optional(),
  nodeSelector: z.record(z.string(), z.string()).optional(),
  tolerations: z.array(toleration).optional(),
  autoscale: z
    .strictObject({
      min: int(0),
      max: int(1),
      perExecutor: int(1).optional(),
      cooldown: int(0).optional(),
    })
    .optional(),
  // Upstream's Docker reconciler's fields: accepted, not used here.
  executorName: z.string().optional(),
  executorNames: z.array(z.string()).optional(),
  ports: z.array(z.unknown()).optional(),
});

export type BlueprintSpec = z.infer<typeof specSchema>;

/** The fields a spec may have (the BlueprintDefinition's schema lists the same). */
export const SPEC_FIELDS = Object.keys(specSchema.shape);

/** What a blueprint asks for: the deployment, and its autoscale bounds when it has them. */
export interface BlueprintDeployment {
  spec: DeploymentSpec;
  autoscale?: NonNullable<BlueprintSpec["autoscale"]>;
}

function first<T>(items: T[], problem: (item: T) => string | undefined): string | undefined {
  for (const item of items) {
    const found = problem(item);
    if (found) return found;
  }
  return undefined;
}

/** The deployment a blueprint describes, or what is wrong with it (a phrase naming the field). */
export function blueprintDeployment(
  blueprint: Blueprint,
  config: K8sConfig,
  policy: DeployPolicy,
): { value: BlueprintDeployment } | { problem: string } {
  const name = blueprint.metadata.name;
  const named = deploymentNameProblem(name) ?? reservedNameProblem(name);
  if (named) return { problem: `blueprint name: ${named}` };
  const parsed = specSchema.safeParse(blueprint.spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { problem: `spec${issue?.path.length ? `.${issue.path.join(".")}` : ""}: ${issue?.message}` };
  }
  const s = parsed.data;
  const { limits } = config;
  const secretenv: SecretRef[] = Object.entries(s.secretEnv ?? {}).map(([envName, ref]) => {
    const [secret = "", key = ""] = typeof ref === "string" ? ref.split("/") : [ref.secret, ref.key];
    return { name: envName, secret, key };
  });
  const tolerations: Toleration[] = (s.tolerations ?? []).map((t) => ({
    key: t.key,
    operator: t.value === undefined ? "Exists" : "Equal",
    ...(t.value !== undefined ? { value: t.value } : {}),
    ...(t.effect ? { effect: t.effect } : {}),
  }));
  const cmd = typeof s.cmd === "string" ? s.cmd.trim().split(/\s+/) : s.cmd;
  const problem =
    imageProblem(s.image) ??
    policy.imageProblem(s.image) ??
    (s.replicas > limits.maxPods
      ? `spec.replicas ${s.replicas} is more than K8S_MAX_PODS (${limits.maxPods})`
      : undefined) ??
    (s.executorsPerPod > limits.maxExecutorsPerPod
      ? `spec.executorsPerPod ${s.executorsPerPod} is more than K8S_MAX_EXECUTORS_PER_POD (${limits.maxExecutorsPerPod})`
      : undefined) ??
    (cmd ? policy.cmdProblem(cmd.join(" ")) : undefined) ??
    (s.cpu ? quantityProblem("cpu", s.cpu, limits.maxCpu) : undefined) ??
    (s.memory ? quantityProblem("memory", s.memory, limits.maxMemory) : undefined) ??
    (s.cpuLimit ? quantityProblem("cpuLimit", s.cpuLimit, limits.maxCpu) : undefined) ??
    (s.memoryLimit ? quantityProblem("memoryLimit", s.memoryLimit, limits.maxMemory) : undefined) ??
    first(Object.keys(s.env ?? {}), (n) => envNameProblem("env", n)) ??
    first(secretenv, (ref) => secretRefProblem(ref, (secret) => policy.secretProblem(secret))) ??
    first(s.imagePullSecrets ?? [], (secret) =>
      pullSecretProblem("imagePullSecrets", secret, (name) => policy.secretProblem(name)),
    ) ??
    first(Object.entries(s.nodeSelector ?? {}), ([k, v]) => nodeLabelProblem(k, v)) ??
    first(tolerations, (t) => taintProblem(t.key, (key) => policy.tolerationProblem(key))) ??
    (s.autoscale && s.autoscale.max > limits.maxPods
      ? `spec.autoscale.max ${s.autoscale.max} is more than K8S_MAX_PODS (${limits.maxPods})`
      : undefined) ??
    (s.autoscale && s.autoscale.min > s.autoscale.max
      ? `spec.autoscale.min ${s.autoscale.min} is more than spec.autoscale.max ${s.autoscale.max}`
      : undefined);
  if (problem) return { problem };
  const spec: DeploymentSpec = {
    deployment: name,
    namespace: config.namespace,
    pods: s.replicas,
    executorperpod: s.executorsPerPod,
    ramdisk: s.ramdisk,
    image: s.image,
    executortype: s.executorType,
    ...(s.cpu ? { cpu: s.cpu } : {}),
    ...(s.memory ? { memory: s.memory } : {}),
    ...(s.cpuLimit ? { cpulimit: s.cpuLimit } : {}),
    ...(s.memoryLimit ? { memorylimit: s.memoryLimit } : {}),
    ...(s.gpu ? { gpu: s.gpu } : {}),
    ...(cmd ? { cmd } : {}),
    ...(s.env && Object.keys(s.env).length ? { env: s.env } : {}),
    ...(secretenv.length ? { secretenv } : {}),
    ...(s.imagePullSecrets?.length ? { imagepullsecret: s.imagePullSecrets } : {}),
    ...(s.nodeSelector && Object.keys(s.nodeSelector).length ? { nodeselector: s.nodeSelector } : {}),
    ...(tolerations.length ? { tolerations } : {}),
    ...(policy.isRuntimeImage(s.image) ? { probes: true } : {}),
  };
  const refused = specProblem(spec, config, policy);
  if (refused) return { problem: refused };
  return { value: { spec, ...(s.autoscale ? { autoscale: s.autoscale } : {}) } };
}
