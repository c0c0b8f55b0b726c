/** The k8s executor: deploys other executors on Kubernetes through Pulumi stacks, one per deployment name. */
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { loadKubeConfig } from "../atoms/kube-config.js";
import { KubeEngine } from "../atoms/kube-engine.js";
import { ColoniesClient } from "../colonies/client.js";
import { redactText } from "../executor/redact.js";
import { ConfigError, type ExecutorModule } from "../executor/types.js";
import { StackManager } from "../k8s/stacks.js";
import { Autoscaler } from "./k8s/autoscale/autoscaler.js";
import { coloniesLoad } from "./k8s/autoscale/queue-load.js";
import { coloniesBlueprints } from "./k8s/blueprint/source.js";
import { Budget } from "./k8s/budget.js";
import { K8S_ENV, loadK8sConfig } from "./k8s/config.js";
import { startCoordinator } from "./k8s/coordinator.js";
import type { K8sDeps } from "./k8s/deps.js";
import { DriftCheck } from "./k8s/drift/check.js";
import { k8sFunctions } from "./k8s/functions.js";
import { IdentityRegistry } from "./k8s/identity.js";
import { IdentitySweep } from "./k8s/identity-sweep.js";
import { registerK8sMetrics } from "./k8s/metrics.js";
import { Ownership } from "./k8s/ownership.js";
import { DeployPolicy } from "./k8s/policy.js";

const READY_CACHE_MS = 5_000;

export const k8sExecutor: ExecutorModule = {
  kind: "k8s",
  description: "deploys executors on Kubernetes through Pulumi (one stack per deployment)",
  env: K8S_ENV,
  async create(env, logger, runtime) {
    const config = loadK8sConfig(env);
    let kubeConfig: ReturnType<typeof loadKubeConfig>;
    try {
      kubeConfig = loadKubeConfig({ path: config.kubeconfig });
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const { namespace } = config;
    const project = config.pulumi.project;
    const colonies = new ColoniesClient(config.server);
    const coordinator = await startCoordinator(config, kubeConfig, colonies, runtime, logger);
    const stacks = await StackManager.create({
      project,
      backendUrl: config.pulumi.backendUrl,
      passphrase: config.pulumi.passphrase,
      secretsProvider: config.pulumi.secretsProvider,
      dataDir: config.dataDir,
      maxConcurrent: config.stackConcurrency,
      deadlineMs: config.operationTimeoutSeconds * 1000,
      pulumiRoot: config.pulumi.root,
      env: { ...config.pulumi.env, ...(config.kubeconfig ? { KUBECONFIG: config.kubeconfig } : {}) },
      coordinator,
      logger,
    }).catch((error: unknown) => {
      throw new ConfigError(`cannot use the Pulumi CLI: ${(error as Error).message}`);
    });
    logger.info(
      {
        namespace,
        cluster: kubeConfig.getCurrentCluster()?.server,
        backend: redactText(config.pulumi.backendUrl),
        encryption: config.pulumi.secretsProvider,
        pulumi: stacks.pulumiVersion,
        identity: config.identity,
        coordination: coordinator.kind,
        allowedImages: config.policy.images,
        allowedCmds: config.policy.cmds,
        autoscaleIntervalSeconds: config.autoscaleIntervalSeconds,
        drift: config.drift,
      },
      "k8s executor configured",
    );

    const ownership = new Ownership({ apps, core, namespace, project });
    const deps: K8sDeps = {
      config,
      stacks,
      pods: new KubeEngine({ kubeConfig, namespace }),
      ownership,
      policy: new DeployPolicy(config.policy),
      budget: new Budget({ ownership, coordinator, limits: config.limits }),
      identities: new IdentityRegistry({
        client: colonies,
        colonyName: config.child.colonyName,
        ownerKey: config.ownerKey,
        readerKey: runtime?.executorPrvKey,
        location: `kubernetes/${namespace}/${project}`,
        logger,
      }),
      load: runtime
        ? coloniesLoad(colonies, runtime.colonyName, runtime.executorPrvKey)
        : async () => {
            throw new Error("the Colonies queue cannot be read without the runtime's executor identity");
          },
      logger,
      ...(runtime
        ? {
            blueprints: coloniesBlueprints(
              colonies,
              runtime.colonyName,
              runtime.executorPrvKey,
              runtime.locationName ?? env.EXECUTOR_LOCATION?.trim() ?? "",
            ),
          }
        : {}),
    };
    // One replica runs each loop (the coordinator elects it); with one replica, this one.
    const autoscaler =
      config.autoscaleIntervalSeconds > 0 && runtime
        ? new Autoscaler(deps, coordinator, config.autoscaleIntervalSeconds * 1000, logger).start()
        : undefined;
    const drift =
      config.drift.intervalSeconds > 0
        ? new DriftCheck(
            deps,
            coordinator,
            config.drift.intervalSeconds * 1000,
            config.drift.remediate,
            logger,
          ).start()
        : undefined;
    const stopping = new AbortController();
    const sweep = new IdentitySweep(
      deps,
      coordinator,
      config.identitySweepIntervalSeconds * 1000,
      logger,
    ).start(stopping.signal);
    let readyAt = 0;
    return {
      functions: k8sFunctions(deps),
      // A call Colonies re-queued: with Leases it stops and leaves its ticket as the re-run's place; the in-process
      // queue keeps no place for a stopped call, so there it finishes (the re-run repeats it or is superseded).
      onReassigned: coordinator.kind === "lease" ? "stop" : "finish",
      registerMetrics: (prom, registry) => registerK8sMetrics(prom, registry, { autoscaler, drift }),
      async ready() {
        if (Date.now() - readyAt < READY_CACHE_MS) return true;
        try {
          await apps.listNamespacedDeployment({ namespace, limit: 1 });
          readyAt = Date.now();
          return true;
        } catch {
          return false;
        }
      },
      async close() {
        stopping.abort(new Error("the k8s executor is stopping"));
        await Promise.all([autoscaler?.stop(), drift?.stop(), sweep.stop()]);
        await coordinator.close();
        colonies.close();
      },
    };
  },
};
