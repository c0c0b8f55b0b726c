/**
 * The rules of a deployment spec's items, shared by its two front doors (deploy's kwargs text, a blueprint's
 * JSON): env names, Secret references, node labels, tolerations. Each returns what is wrong (a phrase completing
 * "<function>: ") or undefined.
 */
import { SECRET_NAME } from "./validation.js";

export interface SecretRef {
  name: string;
  secret: string;
  key: string;
}

export interface Toleration {
  key: string;
  operator: "Equal" | "Exists";
  value?: string;
  effect?: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the executor sets itself; a caller may not replace them (e.g. to send the key elsewhere). */
const RESERVED_ENV = /^(COLONIES_.*|POD_NAME|PODNAME|POD_NAMESPACE|EXECUTOR_HTTP_PORT|KUBECONFIG)$/;
/** Variables that change what the container's program loads or opens (a debugger port, preloaded code). */
const RUNTIME_HOOK_ENV = /^(NODE_OPTIONS|LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT)$/;
/** Taints Kubernetes itself puts on nodes (control plane, not-ready, unreachable...): not for callers to tolerate. */
const SYSTEM_TAINT =
  /^(node-role\.kubernetes\.io|node\.kubernetes\.io|node\.cloudprovider\.kubernetes\.io)\//;
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
export const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
export const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** `what` names the field ("env", "secretenv"). */
export function envNameProblem(what: string, name: string): string | undefined {
  if (!ENV_NAME.test(name))
    return `${what} name "${name}" must be letters, digits and '_', not starting with a digit`;
  if (RESERVED_ENV.test(name)) return `${what} name "${name}" is set by the executor and cannot be given`;
  if (RUNTIME_HOOK_ENV.test(name)) {
    return `${what} name "${name}" changes what the container's program loads and cannot be given`;
  }
  return undefined;
}

/** A Secret reference's form, then whether the operator lets it be referenced at all. */
export function secretRefProblem(
  ref: SecretRef,
  allowed: (secret: string) => string | undefined,
): string | undefined {
  const named = envNameProblem("secretenv", ref.name);
  if (named) return named;
  if (!SECRET_NAME.test(ref.secret) || ref.secret.length > 253 || !SECRET_KEY.test(ref.key)) {
    return `secretenv ${ref.name} must refer to SECRET/KEY (e.g. pg-secret/password), got "${ref.secret}/${ref.key}"`;
  }
  return allowed(ref.secret);
}

/** A pull secret's name (`what` names the field), then whether the operator lets it be referenced at all. */
export function pullSecretProblem(
  what: string,
  secret: string,
  allowed: (secret: string) => string | undefined,
): string | undefined {
  return SECRET_NAME.test(secret) ? allowed(secret) : `${what} "${secret}" is not a valid Secret name`;
}

export function nodeLabelProblem(key: string, value: string): string | undefined {
  return LABEL_KEY.test(key) && LABEL_VALUE.test(value)
    ? undefined
    : `nodeselector "${key}=${value}" is not a valid node label`;
}

/** A toleration's taint: never Kubernetes' own, and one the operator allows. */
export function taintProblem(key: string, allowed: (key: string) => string | undefined): string | undefined {
  if (SYSTEM_TAINT.test(key)) {
    return `tolerations may not name Kubernetes' own taint ${key} (they keep pods off reserved nodes)`;
  }
  return allowed(key);
}
