/** The k8s executor: deploys other executors on Kubernetes through Pulumi stacks, one per deployment name. */
import { AppsV1Api } from "@kubernetes/client-node";
import { loadKubeConfig } from "../atoms/kube-config.js";
import { KubeEngine } from "../atoms/kube-engine.js";
import { ConfigError, type ExecutorModule } from "../executor/types.js";
import { K8S_ENV, loadK8sConfig } from "../k8s/config.js";
import { StackManager } from "../k8s/stacks.js";
import { k8sFunctions } from "./k8s/functions.js";

const READY_CACHE_MS = 5_000;

export const k8sExecutor: ExecutorModule = {
  kind: "k8s",
  description: "deploys executors on Kubernetes through Pulumi (one stack per deployment)",
  env: K8S_ENV,
  async create(env, logger) {
    const config = loadK8sConfig(env);
    let kubeConfig: ReturnType<typeof loadKubeConfig>;
    try {
      kubeConfig = loadKubeConfig({ path: config.kubeconfig });
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const pods = new KubeEngine({ kubeConfig, namespace: config.namespace });
    const stacks = await StackManager.create({
      project: config.pulumi.project,
      backendUrl: config.pulumi.backendUrl,
      passphrase: config.pulumi.passphrase,
      dataDir: config.dataDir,
      maxConcurrent: config.stackConcurrency,
      pulumiRoot: config.pulumi.root,
      env: config.kubeconfig ? { KUBECONFIG: config.kubeconfig } : {},
      logger,
    }).catch((error: unknown) => {
      throw new ConfigError(`cannot use the Pulumi CLI: ${(error as Error).message}`);
    });
    logger.info(
      {
        namespace: config.namespace,
        cluster: kubeConfig.getCurrentCluster()?.server,
        backend: config.pulumi.backendUrl.replace(/\/\/[^@/]*@/, "//***@"),
        pulumi: stacks.pulumiVersion,
      },
      "k8s executor configured",
    );

    let readyAt = 0;
    return {
      functions: k8sFunctions({ config, stacks, apps, pods }),
      async ready() {
        if (Date.now() - readyAt < READY_CACHE_MS) return true;
        try {
          await apps.listNamespacedDeployment({ namespace: config.namespace, limit: 1 });
          readyAt = Date.now();
          return true;
        } catch {
          return false;
        }
      },
    };
  },
};
