/**
 * Loading a KubeConfig without @kubernetes/client-node's silent fallback: with no KUBECONFIG, no ~/.kube/config
 * and no in-cluster service account, `loadFromDefault()` quietly points at http://localhost:8080, and every call
 * then fails far from the cause with "connect ECONNREFUSED".
 */
import { KubeConfig } from "@kubernetes/client-node";

export class KubeConfigError extends Error {
  override readonly name = "KubeConfigError";
}

export interface LoadKubeConfigOptions {
  /** A kubeconfig file; KUBECONFIG, ~/.kube/config or the in-cluster service account when absent. */
  path?: string;
  /** A context other than the file's current one. */
  context?: string;
}

// What loadFromDefault() installs when it finds nothing (client-node 2.x, config.js).
const FALLBACK_CONTEXT = "loaded-context";
const FALLBACK_SERVER = "http://localhost:8080";

export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const kubeConfig = new KubeConfig();
  try {
    if (options.path) kubeConfig.loadFromFile(options.path);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    const source = options.path || process.env.KUBECONFIG || "~/.kube/config";
    throw new KubeConfigError(`cannot read the kubeconfig ${source}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (options.context) {
    if (!kubeConfig.getContextObject(options.context)) {
      throw new KubeConfigError(`the kubeconfig has no context "${options.context}"`);
    }
    kubeConfig.setCurrentContext(options.context);
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) {
    throw new KubeConfigError(
      `the kubeconfig's current context "${kubeConfig.getCurrentContext()}" names no cluster`,
    );
  }
  if (
    !options.path &&
    kubeConfig.getCurrentContext() === FALLBACK_CONTEXT &&
    cluster.server === FALLBACK_SERVER
  ) {
    throw new KubeConfigError(
      "no Kubernetes configuration found: set KUBECONFIG (or create ~/.kube/config, or run in a pod with a service account)",
    );
  }
  return kubeConfig;
}
