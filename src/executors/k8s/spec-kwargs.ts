/**
 * The list-valued kwargs of deploy, in a format the official CLI can carry: it splits `--kwargs` on commas and
 * refuses a value containing ':', so items are separated by ';' and nothing uses ':'.
 *   env:A=1;B=two                      plain variables (not the ones the executor sets itself)
 *   secretenv:DB_PASSWORD=pg/password  a key of a Secret the operator binds to the image (K8S_PROFILES)
 *   nodeselector:disk=ssd;zone=a       node labels
 *   tolerations:gpu=true=NoSchedule;dedicated=NoExecute;spot   key[=value][=effect] (K8S_ALLOWED_TOLERATIONS)
 * Each parser returns the value or what is wrong with the text.
 */
import { SECRET_NAME } from "./validation.js";

export type Parsed<T> = { value: T } | { problem: string };

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
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

function items(text: string): string[] {
  return text
    .split(";")
    .map((item) => item.trim())
    .filter(Boolean);
}

function pairs(what: string, text: string, example: string): Parsed<[string, string][]> {
  const out: [string, string][] = [];
  for (const item of items(text)) {
    const at = item.indexOf("=");
    if (at <= 0) return { problem: `${what} item "${item}" must be NAME=VALUE (e.g. ${example})` };
    out.push([item.slice(0, at), item.slice(at + 1)]);
  }
  return { value: out };
}

function envName(what: string, name: string): string | undefined {
  if (!ENV_NAME.test(name))
    return `${what} name "${name}" must be letters, digits and '_', not starting with a digit`;
  if (RESERVED_ENV.test(name)) return `${what} name "${name}" is set by the executor and cannot be given`;
  if (RUNTIME_HOOK_ENV.test(name)) {
    return `${what} name "${name}" changes what the container's program loads and cannot be given`;
  }
  return undefined;
}

export function parseEnv(text: string): Parsed<Record<string, string>> {
  const parsed = pairs("env", text, "env:A=1;B=two");
  if ("problem" in parsed) return parsed;
  for (const [name] of parsed.value) {
    const problem = envName("env", name);
    if (problem) return { problem };
  }
  return { value: Object.fromEntries(parsed.value) };
}

export function parseSecretEnv(
  text: string,
  allowed: (secret: string) => string | undefined,
): Parsed<SecretRef[]> {
  const parsed = pairs("secretenv", text, "secretenv:DB_PASSWORD=pg-secret/password");
  if ("problem" in parsed) return parsed;
  const refs: SecretRef[] = [];
  for (const [name, ref] of parsed.value) {
    const problem = envName("secretenv", name);
    if (problem) return { problem };
    const [secret = "", key = "", ...rest] = ref.split("/");
    if (rest.length > 0 || !SECRET_NAME.test(secret) || secret.length > 253 || !SECRET_KEY.test(key)) {
      return {
        problem: `secretenv ${name} must refer to SECRET/KEY (e.g. pg-secret/password), got "${ref}"`,
      };
    }
    const refused = allowed(secret);
    if (refused) return { problem: refused };
    refs.push({ name, secret, key });
  }
  return { value: refs };
}

export function parseNodeSelector(text: string): Parsed<Record<string, string>> {
  const parsed = pairs("nodeselector", text, "nodeselector:disk=ssd;zone=a");
  if ("problem" in parsed) return parsed;
  for (const [key, value] of parsed.value) {
    if (!LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
      return { problem: `nodeselector "${key}=${value}" is not a valid node label` };
    }
  }
  return { value: Object.fromEntries(parsed.value) };
}

export function parseTolerations(
  text: string,
  allowed: (key: string) => string | undefined = () => undefined,
): Parsed<Toleration[]> {
  const out: Toleration[] = [];
  for (const item of items(text)) {
    const parts = item.split("=");
    const effect = parts.length > 1 && EFFECTS.includes(parts.at(-1) as string) ? parts.pop() : undefined;
    const [key = "", value, ...rest] = parts;
    const bad = rest.length > 0 || !LABEL_KEY.test(key) || (value !== undefined && !LABEL_VALUE.test(value));
    if (bad) {
      return {
        problem: `tolerations item "${item}" must be KEY[=VALUE][=EFFECT] with EFFECT one of ${EFFECTS.join(", ")} (e.g. gpu=true=NoSchedule)`,
      };
    }
    if (SYSTEM_TAINT.test(key)) {
      return {
        problem: `tolerations may not name Kubernetes' own taint ${key} (they keep pods off reserved nodes)`,
      };
    }
    const refused = allowed(key);
    if (refused) return { problem: refused };
    out.push({
      key,
      operator: value === undefined ? "Exists" : "Equal",
      ...(value !== undefined ? { value } : {}),
      ...(effect ? { effect } : {}),
    });
  }
  return { value: out };
}

/** An ArgSpec check from a parser. */
export function checkWith<T>(parse: (text: string) => Parsed<T>): (text: string) => string | undefined {
  return (text) => {
    const parsed = parse(text);
    return "problem" in parsed ? parsed.problem : undefined;
  };
}

/** The value of text that its check already accepted. */
export function parsedValue<T>(parse: (text: string) => Parsed<T>, text: string): T {
  const parsed = parse(text);
  if ("problem" in parsed) throw new TypeError(parsed.problem);
  return parsed.value;
}
