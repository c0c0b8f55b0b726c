/**
 * Which coordinator the k8s executor takes turns with (K8S_COORDINATION): in-process for a single writer, or
 * Kubernetes Leases for replicas sharing a state backend, which keep a dead replica's place in a name's order
 * while Colonies may still re-run its process.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { CoordinationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { ColoniesClient } from "../../colonies/client.js";
import { idOf } from "../../colonies/crypto.js";
import { ColoniesError } from "../../colonies/errors.js";
import { ExecutorState, type Process, ProcessState } from "../../colonies/types.js";
import { ReassignedAbort, submissionOrder } from "../../executor/process-runner.js";
import { ConfigError, type RuntimeIdentity } from "../../executor/types.js";
import { LocalCoordinator, type NameCoordinator } from "../../k8s/coordination.js";
import { LeaseCoordinator, type ReplicaExecutor } from "../../k8s/lease-coordinator.js";
import type { K8sConfig } from "./config.js";

/** The functions that take a turn to change a name (reads and previews do not order anything). */
const MUTATIONS = new Set(["deploy", "undeploy", "scale", "reconcile", "autoscale", "cleanup"]);

/** The deployment name a call is about: its first positional argument, or the kwarg (a blueprint's name). */
function deploymentOf(process: Process): string | undefined {
  const first = process.spec?.args?.[0];
  const kwargs = process.spec?.kwargs;
  const named = kwargs?.deploymentname ?? kwargs?.blueprintName;
  return typeof first === "string" ? first : typeof named === "string" ? named : undefined;
}

export async function startCoordinator(
  config: K8sConfig,
  kubeConfig: KubeConfig,
  colonies: ColoniesClient,
  runtime: RuntimeIdentity | undefined,
  logger: Logger,
): Promise<NameCoordinator> {
  if (config.coordination.kind === "local") return new LocalCoordinator();
  if (!runtime) throw new ConfigError("K8S_COORDINATION=lease needs the runtime's executor identity");
  const processOpen = async (processId: string) => {
    try {
      const { state } = await colonies.getProcess(processId, runtime.executorPrvKey);
      return state === ProcessState.WAITING || state === ProcessState.RUNNING;
    } catch (error) {
      // Gone from Colonies: nothing will run it again. Anything else proves nothing: keep the place.
      return !(error instanceof ColoniesError && error.notFound);
    }
  };
  const untrackedEarlier = async (name: string, order: number, tracked: ReadonlySet<string>) => {
    const open = await Promise.all(
      [ProcessState.RUNNING, ProcessState.WAITING].map((state) =>
        colonies.getProcesses(
          { colonyName: runtime.colonyName, state, executorType: config.ownType, count: 100 },
          runtime.executorPrvKey,
        ),
      ),
    ).catch((error: unknown) => {
      // Colonies cannot say: the tickets alone order the turn, as they do for every call that put one down.
      logger.warn({ err: error, deployment: name }, "could not look for untracked earlier calls");
      return [];
    });
    const earlier = open.flat().find(
      (p) =>
        !tracked.has(p.processid) &&
        // A waiting one counts only once it was re-queued (it ran before): a first one is assigned in order.
        (p.state === ProcessState.RUNNING || p.retries > 0) &&
        MUTATIONS.has(p.spec?.funcname ?? "") &&
        deploymentOf(p) === name &&
        // Submission order, as the tickets: priority time is the caller's to skew.
        (submissionOrder(p.submissiontime) ?? Number.POSITIVE_INFINITY) < order,
    );
    return earlier?.processid;
  };
  const ownId = idOf(runtime.executorPrvKey);
  const executorGone = async (executor: ReplicaExecutor, replica: string) => {
    // A pre-registered identity is the operator's: only a record the replica made for itself is removed.
    if (!executor.selfRegistered || executor.id === ownId || !config.ownerKey) return;
    const options = { timeoutMs: 10_000 };
    let record: Awaited<ReturnType<ColoniesClient["getExecutor"]>>;
    try {
      record = await colonies.getExecutor(runtime.colonyName, executor.name, runtime.executorPrvKey, options);
    } catch (error) {
      // Colonies 1.9.12 answers an unknown name with 500 "executor is nil": nothing to remove.
      if (error instanceof ColoniesError && (error.notFound || /executor is nil/.test(error.serverMessage)))
        return;
      throw error;
    }
    // The name may be another executor's by now (a restarted replica re-registered under it): only this one.
    if (record.executorid !== executor.id || record.executortype !== config.ownType) return;
    if (record.state === ExecutorState.UNREGISTERED) return;
    // Colonies re-queues its calls as if new (no retry counted): the ones it had put no ticket down for yet would
    // look like calls still to be assigned, which a later call on the name does not wait for. Their places first.
    const running = await colonies.getProcesses(
      {
        colonyName: runtime.colonyName,
        state: ProcessState.RUNNING,
        executorType: config.ownType,
        count: 100,
      },
      runtime.executorPrvKey,
      options,
    );
    for (const p of running) {
      const name = deploymentOf(p);
      const order = submissionOrder(p.submissiontime);
      const fn = p.spec?.funcname ?? "";
      if (p.assignedexecutorid !== executor.id || !MUTATIONS.has(fn) || !name || order === undefined)
        continue;
      if (!coordinator) throw new Error("the coordinator is still starting");
      await coordinator.keepPlace(name, { process: p.processid, fn, order, effect: "none" }, replica);
    }
    await colonies.removeExecutor(runtime.colonyName, executor.name, config.ownerKey, options);
    logger.warn(
      { replica, executor: executor.name },
      "removed the Colonies record of a replica proven gone: Colonies re-queues the processes it was running",
    );
  };
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-");
  let coordinator: LeaseCoordinator | undefined;
  coordinator = await LeaseCoordinator.start({
    api: kubeConfig.makeApiClient(CoordinationV1Api),
    namespace: config.namespace,
    project: config.pulumi.project,
    // Unique per start: a restarted replica must not resume a dead predecessor's turns as its own.
    replica: `${host}-${process.pid}-${randomBytes(3).toString("hex")}`,
    leaseSeconds: config.coordination.leaseSeconds,
    processOpen,
    // Its turns are others' from now on: stop serving (its updates were already cancelled) and let the
    // supervisor start a fresh replica with a new identity.
    onLost: (reason) => runtime.fatal?.(reason.message),
    // A call stopped because Colonies re-queued it keeps its place in its name's order for the re-run.
    keepsPlace: (reason) => reason instanceof ReassignedAbort,
    untrackedEarlier,
    // Recorded on this replica's Lease, so that whoever proves it gone can remove its Colonies record.
    executor: () => {
      const executor = runtime.executor?.();
      return executor && { ...executor, id: ownId };
    },
    executorGone,
    logger,
  }).catch((error: unknown) => {
    throw new ConfigError(
      `K8S_COORDINATION=lease: cannot create this replica's Lease in namespace ${config.namespace}: ${(error as Error).message}`,
    );
  });
  return coordinator;
}
