/**
 * What the k8s executor tests share: the executor's least-privilege credentials (a token of a ServiceAccount
 * bound to the Role that infra/ grants, so that the Role is proven sufficient), and its environment.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, type KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { K8S_EXECUTOR_RULES } from "../src/k8s/rbac.js";

/** The image the tests deploy (kwok runs no containers; the local pod runner maps it to local commands). */
export const TEST_IMAGE = "registry.example.com/colonyos/executors:1.0.0";
/** The operator's policy in the tests: the project's registry, and busybox for the recovery test. */
export const TEST_ALLOWED_IMAGES = "registry.example.com/colonyos/*,busybox:*";

const ACCOUNT = "colonyos-k8s-executor";

/**
 * Creates the k8s executor's ServiceAccount, Role (K8S_EXECUTOR_RULES) and RoleBinding in `namespace` with the
 * admin credentials, and writes a kubeconfig with a token of that account into `dir`; returns its path.
 */
export async function executorKubeconfig(admin: KubeConfig, namespace: string, dir: string): Promise<string> {
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const metadata = { name: ACCOUNT, namespace };
  await core.createNamespacedServiceAccount({ namespace, body: { metadata } });
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata, rules: K8S_EXECUTOR_RULES.map((rule) => ({ ...rule })) },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: ACCOUNT },
      subjects: [{ kind: "ServiceAccount", name: ACCOUNT, namespace }],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    name: ACCOUNT,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 * 3 } },
  });
  const cluster = admin.getCurrentCluster();
  const file = join(dir, `${ACCOUNT}.kubeconfig`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "local",
          cluster: {
            server: cluster?.server,
            ...(cluster?.caData ? { "certificate-authority-data": cluster.caData } : {}),
            ...(cluster?.caFile ? { "certificate-authority": cluster.caFile } : {}),
            ...(cluster?.skipTLSVerify ? { "insecure-skip-tls-verify": true } : {}),
          },
        },
      ],
      users: [{ name: ACCOUNT, user: { token: token.status?.token } }],
      contexts: [{ name: "local", context: { cluster: "local", user: ACCOUNT, namespace } }],
      "current-context": "local",
    }),
    { mode: 0o600 },
  );
  return file;
}

/** The k8s executor's environment in the tests; `extra` overrides. */
export function k8sExecutorEnv(
  base: { kubeconfig: string; namespace: string; dataDir: string; passphrase: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    KUBECONFIG: base.kubeconfig,
    K8S_NAMESPACE: base.namespace,
    K8S_DATA_DIR: base.dataDir,
    K8S_PULUMI_PASSPHRASE: base.passphrase,
    K8S_ALLOWED_IMAGES: TEST_ALLOWED_IMAGES,
    K8S_ALLOWED_CMDS: "sleep",
    ...extra,
  };
}
