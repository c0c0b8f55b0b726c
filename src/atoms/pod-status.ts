/**
 * A Kubernetes pod as an atom: a pure mapping of a V1Pod (from a read, a list or a watch event) to an {@link Atom},
 * per the "good mapping" of atom-model.md.
 */
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { type Atom, type AtomContainer, type AtomResult, type AtomState, isFinished } from "./engine.js";
import { resultOfExitCode } from "./exit-result.js";

export const KUBERNETES_ENGINE = "kubernetes";

/** Waiting reasons after which a container never starts unless someone changes the pod or the cluster. */
export const STARTUP_FAILURE_REASONS: ReadonlySet<string> = new Set([
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

/** A container the kubelet keeps restarting after it ends. */
export const CRASH_LOOP = "CrashLoopBackOff";

const PHASE_STATES: Readonly<Record<string, AtomState>> = {
  Pending: "created",
  Running: "running",
  Succeeded: "stopped",
  Failed: "stopped",
  Unknown: "invalid",
};

// When containers disagree, the most telling result wins: a container that could not start or ran out of
// resources explains the others, a job's own failure explains the kills that often follow it, and "unknown"
// (a container whose end nobody saw) outranks only success.
const RESULT_PRIORITY: readonly AtomResult[] = [
  "startup_failure",
  "resource_failure",
  "failure",
  "killed",
  "terminated",
  "unknown",
  "success",
];

export interface PodToAtomOptions {
  /** The pod no longer exists (a watch DELETED event, or missing on a later read): its state is "deleted". */
  gone?: boolean;
}

export function podToAtom(pod: V1Pod, options: PodToAtomOptions = {}): Atom {
  const state = options.gone ? "deleted" : podState(pod);
  const containers = appContainers(pod);
  const initContainers = namedStatuses(
    pod.spec?.initContainers?.map((c) => c.name),
    pod.status?.initContainerStatuses,
  ).map(([name, status]) => containerOf(name, status));
  const verdict = podResult(pod, state, containers, initContainers);
  return {
    id: pod.metadata?.name ?? "",
    engine: KUBERNETES_ENGINE,
    state,
    result: verdict?.result,
    exitCode: verdict?.container?.exitCode,
    reason: pod.status?.reason ?? verdict?.container?.reason,
    message: pod.status?.message ?? verdict?.container?.message,
    createdAt: toDate(pod.metadata?.creationTimestamp),
    startedAt: earliest(containerTimes(pod, "started")),
    stoppedAt: isFinished(state) ? latest(containerTimes(pod, "finished")) : undefined,
    labels: { ...pod.metadata?.labels },
    containers,
  };
}

function podState(pod: V1Pod): AtomState {
  if (pod.metadata?.deletionTimestamp) return "deleting";
  return PHASE_STATES[pod.status?.phase ?? ""] ?? "invalid";
}

function appContainers(pod: V1Pod): AtomContainer[] {
  return namedStatuses(
    pod.spec?.containers.map((c) => c.name),
    pod.status?.containerStatuses,
  ).map(([name, status]) => containerOf(name, status));
}

/**
 * Pairs each container of the spec with its status by NAME (statuses are not guaranteed to follow spec order);
 * without a spec (a partial object), the statuses alone.
 */
function namedStatuses(
  specNames: string[] | undefined,
  statuses: V1ContainerStatus[] | undefined,
): [string, V1ContainerStatus | undefined][] {
  const byName = new Map((statuses ?? []).map((s) => [s.name, s]));
  const names = specNames?.length ? specNames : [...byName.keys()];
  return names.map((name) => [name, byName.get(name)]);
}

function containerOf(name: string, status: V1ContainerStatus | undefined): AtomContainer {
  const restarts = status?.restartCount ?? 0;
  const { waiting, running, terminated } = status?.state ?? {};
  if (terminated) {
    const result =
      terminated.reason === "OOMKilled" ? "resource_failure" : resultOfExitCode(terminated.exitCode);
    return {
      name,
      state: "stopped",
      result,
      exitCode: terminated.exitCode,
      reason: terminated.reason,
      message: terminated.message,
      restarts,
    };
  }
  if (running) return { name, state: "running", restarts };
  const last = status?.lastState?.terminated;
  if (waiting?.reason === CRASH_LOOP && last) {
    // Restarted again and again: how its last run ended is what it has to say (e.g. OOMKilled, exit 1).
    return {
      name,
      state: "created",
      result: last.reason === "OOMKilled" ? "resource_failure" : resultOfExitCode(last.exitCode),
      exitCode: last.exitCode,
      reason: CRASH_LOOP,
      message: `last run: ${last.reason ?? "exited"} with exit code ${last.exitCode}${last.message ? `: ${last.message}` : ""}`,
      restarts,
    };
  }
  const result =
    waiting?.reason && STARTUP_FAILURE_REASONS.has(waiting.reason) ? ("startup_failure" as const) : undefined;
  return { name, state: "created", result, reason: waiting?.reason, message: waiting?.message, restarts };
}

interface Verdict {
  result: AtomResult;
  /** The container that decided it, if one did. */
  container?: AtomContainer;
}

function podResult(
  pod: V1Pod,
  state: AtomState,
  containers: AtomContainer[],
  initContainers: AtomContainer[],
): Verdict | undefined {
  const all = [...initContainers, ...containers];
  // A container that can never start decides the result at once, whatever the phase: otherwise the atom would
  // stay "created" forever.
  const neverStarts = all.find((c) => c.result === "startup_failure");
  if (neverStarts) return { result: "startup_failure", container: neverStarts };
  // Likewise a container stuck restarting: the pod keeps running, but its result is already known.
  const crashLooping = all.find((c) => c.reason === CRASH_LOOP && c.result !== undefined);
  if (crashLooping) return { result: crashLooping.result as AtomResult, container: crashLooping };
  if (!isFinished(state)) return undefined;
  if (pod.status?.reason === "Evicted") return { result: "resource_failure" };

  // Init containers that never ran say nothing; app containers whose end nobody saw make the result unknown.
  const decided = all.filter((c) => c.result !== undefined);
  if (decided.length === 0) return phaseVerdict(pod);
  const candidates: Verdict[] = decided.map((c) => ({ result: c.result as AtomResult, container: c }));
  if (containers.some((c) => c.result === undefined)) candidates.push({ result: "unknown" });
  return mostTelling(candidates);
}

/** No container reported how it ended (e.g. the node failed the pod before starting them). */
function phaseVerdict(pod: V1Pod): Verdict {
  if (pod.status?.phase === "Succeeded") return { result: "success" };
  if (pod.status?.phase === "Failed") return { result: "failure" };
  return { result: "unknown" };
}

function mostTelling(candidates: Verdict[]): Verdict {
  const rank = (v: Verdict) => RESULT_PRIORITY.indexOf(v.result);
  return candidates.reduce((best, v) => (rank(v) < rank(best) ? v : best));
}

function containerTimes(pod: V1Pod, which: "started" | "finished"): Date[] {
  const times: (Date | undefined)[] = [];
  for (const status of pod.status?.containerStatuses ?? []) {
    const { running, terminated } = status.state ?? {};
    if (which === "started") times.push(toDate(running?.startedAt), toDate(terminated?.startedAt));
    else times.push(toDate(terminated?.finishedAt));
  }
  return times.filter((t): t is Date => t !== undefined);
}

/**
 * Objects from the typed API carry Dates; objects from a watch event are raw JSON and carry RFC 3339 strings.
 */
function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function earliest(dates: Date[]): Date | undefined {
  return dates.reduce<Date | undefined>((min, d) => (min === undefined || d < min ? d : min), undefined);
}

function latest(dates: Date[]): Date | undefined {
  return dates.reduce<Date | undefined>((max, d) => (max === undefined || d > max ? d : max), undefined);
}
