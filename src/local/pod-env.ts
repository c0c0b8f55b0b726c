/**
 * A container's environment as the kubelet computes it (pkg/kubelet/kubelet_pods.go, makeEnvironmentVariables):
 * `envFrom` first, then `env` in order, a later name replacing an earlier one; a literal `value` has `$(VAR)`
 * expanded against the variables defined before it; otherwise `valueFrom` reads a pod field, a Secret key or a
 * ConfigMap key. What cannot be resolved the way the kubelet would is an {@link EnvResolutionError}, and the
 * container is not started, rather than started with an environment it was not meant to have.
 */
import type { V1Container, V1EnvVar, V1Pod } from "@kubernetes/client-node";
import { expandVars } from "./var-expansion.js";

/** Reads the Secrets and ConfigMaps of the pod's namespace. */
export interface EnvSources {
  /** The Secret's data, decoded; undefined when there is no such Secret. */
  secret(name: string): Promise<Record<string, string> | undefined>;
  /** The ConfigMap's `data`; undefined when there is no such ConfigMap. */
  configMap(name: string): Promise<Record<string, string> | undefined>;
}

export class EnvResolutionError extends Error {
  override readonly name = "EnvResolutionError";
}

export interface ResolveEnvInput {
  container: V1Container;
  pod: V1Pod;
  sources: EnvSources;
}

/**
 * The variables the container spec defines. Like the kubelet's, they leave out what the image provides (the
 * runner adds PATH and HOME), which `$(VAR)` therefore does not see.
 */
export async function resolveContainerEnv({
  container,
  pod,
  sources,
}: ResolveEnvInput): Promise<Record<string, string>> {
  const defined = new Map<string, string>();
  const where = `container "${container.name}" of pod "${pod.metadata?.name}"`;

  for (const from of container.envFrom ?? []) {
    const source = sourceOf(from.secretRef, from.configMapRef);
    if (!source) throw new EnvResolutionError(`${where}: envFrom names neither a Secret nor a ConfigMap`);
    const data = await read(source, sources);
    if (!data) {
      if (source.optional) continue;
      throw new EnvResolutionError(`${where}: ${source.kind} "${source.name}" (envFrom) does not exist`);
    }
    const prefix = from.prefix ?? "";
    for (const [key, value] of Object.entries(data)) defined.set(`${prefix}${key}`, value);
  }

  for (const variable of container.env ?? []) {
    const value = await variableValue(variable, pod, sources, defined, where);
    if (value !== undefined) defined.set(variable.name, value);
  }
  return Object.fromEntries(defined);
}

/** The container with `$(VAR)` expanded in its command and args, as the kubelet hands them to the runtime. */
export function expandCommandAndArgs(container: V1Container, env: Record<string, string>): V1Container {
  const expand = (words: string[] | undefined) => words?.map((word) => expandVars(word, (name) => env[name]));
  return { ...container, command: expand(container.command), args: expand(container.args) };
}

/** The variable's value; undefined when an optional source lacks it and the variable is left out. */
async function variableValue(
  variable: V1EnvVar,
  pod: V1Pod,
  sources: EnvSources,
  defined: Map<string, string>,
  where: string,
): Promise<string | undefined> {
  // The kubelet reads valueFrom only when value is empty.
  if (variable.value) return expandVars(variable.value, (name) => defined.get(name));
  const from = variable.valueFrom;
  if (!from) return "";
  const what = `${where}, variable ${variable.name}`;
  if (from.fieldRef) return podField(pod, from.fieldRef.fieldPath, what);
  const key = from.secretKeyRef?.key ?? from.configMapKeyRef?.key;
  const source = sourceOf(from.secretKeyRef, from.configMapKeyRef);
  if (!source || key === undefined) {
    const kind = Object.keys(from).join(", ") || "an empty valueFrom";
    throw new EnvResolutionError(`${what}: ${kind} is not supported by the local pod runner`);
  }
  const data = await read(source, sources);
  const value = data?.[key];
  if (value !== undefined) return value;
  if (source.optional) return undefined;
  throw new EnvResolutionError(
    data
      ? `${what}: ${source.kind} "${source.name}" has no key "${key}"`
      : `${what}: ${source.kind} "${source.name}" does not exist`,
  );
}

/** A Secret or ConfigMap an env entry refers to (by a whole-object or a key reference). */
interface Source {
  kind: "Secret" | "ConfigMap";
  name: string;
  optional: boolean;
}

type Reference = { name?: string; optional?: boolean } | undefined;

function sourceOf(secretRef: Reference, configMapRef: Reference): Source | undefined {
  const [kind, ref] = secretRef ? (["Secret", secretRef] as const) : (["ConfigMap", configMapRef] as const);
  return ref && { kind, name: ref.name ?? "", optional: ref.optional ?? false };
}

function read(source: Source, sources: EnvSources): Promise<Record<string, string> | undefined> {
  return source.kind === "Secret" ? sources.secret(source.name) : sources.configMap(source.name);
}

// metadata.labels['key'] and metadata.annotations['key'], as the downward API writes them.
const MAP_FIELD = /^metadata\.(labels|annotations)\['(.+)'\]$/;

/** The downward API's fields for environment variables (pkg/fieldpath and the kubelet's pod fields). */
function podField(pod: V1Pod, path: string, what: string): string {
  const mapField = MAP_FIELD.exec(path);
  if (mapField) {
    const map = mapField[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[mapField[2] as string] ?? "";
  }
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return pod.metadata?.namespace ?? "";
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.podIP":
      return pod.status?.podIP ?? "";
    case "status.podIPs":
      return (pod.status?.podIPs ?? []).map((entry) => entry.ip).join(",");
    case "status.hostIP":
      return pod.status?.hostIP ?? "";
    default:
      throw new EnvResolutionError(`${what}: field "${path}" is not supported by the local pod runner`);
  }
}
