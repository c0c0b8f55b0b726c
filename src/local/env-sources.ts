/** The Secrets and ConfigMaps that containers' environments refer to, read through the Kubernetes API. */
import type { CoreV1Api } from "@kubernetes/client-node";
import { isApiStatus, kubeApiError, withSignal } from "../atoms/kube-api.js";
import type { EnvSources } from "./pod-env.js";

/** Reads of one namespace; each call goes to the API (see {@link memoizedEnvSources}). */
export function kubeEnvSources(core: CoreV1Api, namespace: string, signal: AbortSignal): EnvSources {
  return {
    secret: async (name) => {
      const secret = await readOrUndefined(
        () => core.readNamespacedSecret({ name, namespace }, withSignal(signal)),
        `read Secret "${name}" of namespace "${namespace}"`,
        signal,
      );
      if (!secret) return undefined;
      // The API returns `data` base64-encoded; `stringData` is write-only.
      return Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([key, value]) => [
          key,
          Buffer.from(value, "base64").toString(),
        ]),
      );
    },
    configMap: async (name) => {
      const configMap = await readOrUndefined(
        () => core.readNamespacedConfigMap({ name, namespace }, withSignal(signal)),
        `read ConfigMap "${name}" of namespace "${namespace}"`,
        signal,
      );
      // Like the kubelet, key references see `data` only, not `binaryData`.
      return configMap && { ...configMap.data };
    },
  };
}

/** Each Secret and ConfigMap read once: the containers of one pod then see the same values. */
export function memoizedEnvSources(sources: EnvSources): EnvSources {
  return {
    secret: memoized((name) => sources.secret(name)),
    configMap: memoized((name) => sources.configMap(name)),
  };
}

function memoized<T>(read: (name: string) => Promise<T>): (name: string) => Promise<T> {
  const answers = new Map<string, Promise<T>>();
  return (name) => {
    let answer = answers.get(name);
    if (!answer) {
      answer = read(name);
      answers.set(name, answer);
    }
    return answer;
  };
}

async function readOrUndefined<T>(
  read: () => Promise<T>,
  what: string,
  signal: AbortSignal,
): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (isApiStatus(error, 404) && !signal.aborted) return undefined;
    throw kubeApiError(error, what, signal);
  }
}
