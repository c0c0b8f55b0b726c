/**
 * The rules that span a whole deployment spec, whichever front door it came through (deploy's arguments, a
 * blueprint): the GPU bound, the executor type (its form, never this executor's own, the operator's list), and
 * the operator's profiles over its image, cmd, Secrets and env.
 */
import type { K8sConfig } from "./config.js";
import type { DeployPolicy, Use } from "./policy.js";
import type { DeploymentSpec } from "./spec.js";
import { executorTypeProblem } from "./validation.js";

/** What of a spec the operator's profiles govern. */
export function useOf(spec: DeploymentSpec): Use {
  return {
    image: spec.image,
    cmd: spec.cmd?.join(" ") ?? "",
    secrets: [...new Set([...(spec.secretenv ?? []).map((r) => r.secret), ...(spec.imagepullsecret ?? [])])],
    env: Object.keys(spec.env ?? {}),
  };
}

/** An executor type's own rules: its form, and never the k8s executor's own type. */
export function typeProblem(type: string, ownType: string): string | undefined {
  return (
    executorTypeProblem(type) ??
    (type === ownType
      ? `executortype "${type}" is this k8s executor's own type: its processes would go to the deployment; choose another`
      : undefined)
  );
}

export function specProblem(
  spec: DeploymentSpec,
  config: K8sConfig,
  policy: DeployPolicy,
): string | undefined {
  if (spec.gpu && spec.gpu > config.gpu.max) {
    return `gpu ${spec.gpu} is more than the operator allows per container (K8S_MAX_GPU=${config.gpu.max})`;
  }
  return (
    typeProblem(spec.executortype, config.ownType) ??
    policy.executorTypeProblem(spec.executortype, spec.deployment) ??
    policy.useProblem(useOf(spec))
  );
}
