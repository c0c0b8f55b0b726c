/**
 * The local Kubernetes cluster of the integration tests: a real control plane on loopback (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler) with kwok's fake nodes, started by `scripts/cluster.sh up`.
 * Its kubeconfig comes from the environment; nothing here starts or guesses a cluster, and a missing or
 * unreachable one is an error that says which command to run (integration tests fail, they never skip).
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import type { CoreV1Api } from "@kubernetes/client-node";
import { waitFor } from "./ports.js";

export const CLUSTER_HOW_TO =
  'start it with `bash scripts/cluster.sh up` and export its kubeconfig with `eval "$(bash scripts/cluster.sh env)"` ' +
  "(sets COLONYOS_TEST_KUBECONFIG and KUBECONFIG)";

/**
 * Path of the test cluster's kubeconfig: COLONYOS_TEST_KUBECONFIG, else the single path in KUBECONFIG.
 * Throws a helpful error when neither names a readable kubeconfig with a cluster server.
 */
export function clusterKubeconfig(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.COLONYOS_TEST_KUBECONFIG || env.KUBECONFIG;
  if (!fromEnv) {
    throw new Error(`no test cluster: COLONYOS_TEST_KUBECONFIG and KUBECONFIG are unset; ${CLUSTER_HOW_TO}`);
  }
  const path = fromEnv.split(":").filter(Boolean);
  if (path.length !== 1 || !isAbsolute(path[0] ?? "")) {
    throw new Error(
      `the test cluster's kubeconfig must be one absolute path, got "${fromEnv}"; ${CLUSTER_HOW_TO}`,
    );
  }
  const file = path[0] as string;
  try {
    accessSync(file, constants.R_OK);
  } catch {
    throw new Error(
      `the test cluster's kubeconfig ${file} does not exist (cluster down?); ${CLUSTER_HOW_TO}`,
    );
  }
  if (!/^\s*server:\s*\S+/m.test(readFileSync(file, "utf8"))) {
    throw new Error(`${file} names no cluster server; ${CLUSTER_HOW_TO}`);
  }
  return file;
}

/** Creates a namespace with a random suffix and waits until pods can be created in it (its default account). */
export async function createNamespace(core: CoreV1Api, prefix: string): Promise<string> {
  const namespace = `${prefix}-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await waitFor("the namespace's default service account", async () => {
    await core.readNamespacedServiceAccount({ name: "default", namespace });
    return true;
  });
  return namespace;
}
