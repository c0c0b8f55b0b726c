/**
 * The list-valued kwargs of deploy, in a format the official CLI can carry: it splits `--kwargs` on commas and
 * refuses a value containing ':', so items are separated by ';' and nothing uses ':'.
 *   env:A=1;B=two                      plain variables (not the ones the executor sets itself)
 *   secretenv:DB_PASSWORD=pg/password  a key of a Secret the operator binds to the image (K8S_PROFILES)
 *   nodeselector:disk=ssd;zone=a       node labels
 *   tolerations:gpu=true=NoSchedule;dedicated=NoExecute;spot   key[=value][=effect] (K8S_ALLOWED_TOLERATIONS)
 * Each parser returns the value or what is wrong with the text; the argument parser runs it once, before deploy
 * runs (ArgSpec.parse), and deploy gets the value.
 */
import {
  EFFECTS,
  envNameProblem,
  LABEL_KEY,
  LABEL_VALUE,
  nodeLabelProblem,
  type SecretRef,
  secretRefProblem,
  type Toleration,
  taintProblem,
} from "./spec-rules.js";

export type { SecretRef, Toleration } from "./spec-rules.js";

export type Parsed<T> = { value: T } | { problem: string };

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

export function parseEnv(text: string): Parsed<Record<string, string>> {
  const parsed = pairs("env", text, "env:A=1;B=two");
  if ("problem" in parsed) return parsed;
  for (const [name] of parsed.value) {
    const problem = envNameProblem("env", name);
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
  for (const [name, text] of parsed.value) {
    const [secret = "", key = "", ...rest] = text.split("/");
    const problem =
      rest.length > 0
        ? `secretenv ${name} must refer to SECRET/KEY (e.g. pg-secret/password), got "${text}"`
        : secretRefProblem({ name, secret, key }, allowed);
    if (problem) return { problem };
    refs.push({ name, secret, key });
  }
  return { value: refs };
}

export function parseNodeSelector(text: string): Parsed<Record<string, string>> {
  const parsed = pairs("nodeselector", text, "nodeselector:disk=ssd;zone=a");
  if ("problem" in parsed) return parsed;
  for (const [key, value] of parsed.value) {
    const problem = nodeLabelProblem(key, value);
    if (problem) return { problem };
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
    const refused = taintProblem(key, allowed);
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
