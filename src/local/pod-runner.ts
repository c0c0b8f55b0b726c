/**
 * The local stand-in for a container runtime, for the local demo and tests only. The local cluster's nodes are
 * kwok's fakes: they mark scheduled pods Running, but nothing runs. This runner follows the managed pods
 * ({@link LABEL}) of one namespace and runs each container of each scheduled pod as a local process (one
 * {@link ProcessEngine} atom named `<pod>/<container>`), with the environment the kubelet would give it; when the
 * pod is being deleted or is gone, it stops them (SIGTERM, SIGKILL after the grace period).
 *
 * It never runs against a real cluster, where kubelets already run these pods: {@link LocalPodRunner.start} refuses
 * a cluster without kwok fake nodes, and a pod bound to any other node (a real node's, run by its kubelet) is never
 * started.
 *
 * Not done, unlike a kubelet: images (the caller maps each container to a local command), restarts of processes
 * that end on their own, init containers, probes, volumes, resource limits, and pod status (kwok writes it; it
 * says nothing about the processes).
 */
import { text } from "node:stream/consumers";
import { CoreV1Api, type KubeConfig, type V1Container, type V1Pod, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type Atom, LABEL } from "../atoms/engine.js";
import { ProcessEngine } from "../atoms/process-engine.js";
import { createLogger } from "../executor/logger.js";
import { kubeEnvSources, memoizedEnvSources } from "./env-sources.js";
import { KwokNodes } from "./kwok-nodes.js";
import { type EnvSources, expandCommandAndArgs, resolveContainerEnv } from "./pod-env.js";
import { followPods, type PodWatchHandler } from "./pod-watch.js";

/** What runs locally in place of a container's image. */
export interface LocalCommand {
  /** Executable, looked up on PATH when it has no slash; no shell. */
  command: string;
  args: string[];
  cwd?: string;
}

export interface LocalPodRunnerOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /**
   * The local command for a container, or null to leave that container unstarted. The container comes with
   * `$(VAR)` already expanded in its `command` and `args`, as a kubelet hands them to the runtime.
   */
  command(container: V1Container, pod: V1Pod): LocalCommand | null;
  /** JSON lines on stderr when absent. */
  logger?: Logger;
  /** The pods to follow, as a label selector; the atoms ({@link LABEL}) when absent. */
  labelSelector?: string;
  /** Time between SIGTERM and SIGKILL; the pod's terminationGracePeriodSeconds (default 30 s) when absent. */
  gracePeriodMs?: number;
}

/** Labels of every process, on top of its pod's labels. */
export const POD_LABEL = "colonyos.io/pod";
export const CONTAINER_LABEL = "colonyos.io/container";

// The kubelet's default terminationGracePeriodSeconds.
const DEFAULT_GRACE_PERIOD_MS = 30_000;
// Engine calls that must complete (stopping, waiting for the end) take a signal that never aborts.
const UNCANCELLED = new AbortController().signal;

/** The processes of one pod (by uid: a pod name can come back as a different pod). */
interface PodProcesses {
  pod: string;
  gracePeriodMs: number;
  /** Names of the processes created so far. */
  names: string[];
  /** Settles when every container has been started or given up on. */
  started: Promise<void>;
  stopRequested: boolean;
  stopped?: Promise<void>;
}

export class LocalPodRunner {
  private readonly options: LocalPodRunnerOptions;
  private readonly core: CoreV1Api;
  private readonly watch: Watch;
  private readonly nodes: KwokNodes;
  private readonly logger: Logger;
  private readonly engine = new ProcessEngine();
  private readonly pods = new Map<string, PodProcesses>();
  /** Aborted by stop(): ends the watch and any API read in flight. */
  private readonly run = new AbortController();
  private following?: Promise<void>;
  private stopping?: Promise<void>;

  constructor(options: LocalPodRunnerOptions) {
    if (!options.namespace) throw new TypeError("local pod runner: a namespace is required");
    if (options.gracePeriodMs !== undefined && !(options.gracePeriodMs >= 0)) {
      throw new TypeError("local pod runner: gracePeriodMs must be >= 0");
    }
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.watch = new Watch(options.kubeConfig);
    this.nodes = new KwokNodes(this.core);
    this.logger = (
      options.logger ?? createLogger({ level: "info", pretty: false, name: "local-pod-runner" })
    ).child({ namespace: options.namespace });
  }

  /**
   * Checks that the cluster is a kwok one (throws NotAKwokClusterError otherwise), then follows the pods.
   * Resolves once the pods present have been listed (their processes are being started); starts once.
   */
  async start(): Promise<void> {
    if (this.following || this.stopping) throw new Error("local pod runner: start() can be called once");
    const signal = this.run.signal;
    let listedOnce = false;
    const firstList = new Promise<void>((resolve, reject) => {
      const handler: PodWatchHandler = {
        listed: (pods) => {
          this.reconcileAll(pods);
          listedOnce = true;
          resolve();
        },
        changed: (pod) => this.reconcile(pod),
        deleted: (pod) => void this.stopPod(uidOf(pod)),
        failed: (error, retryInMs) => {
          // Before the first list, a failure is a start-up error (no access, wrong server), not a hiccup.
          if (!listedOnce) reject(error);
          else this.logger.warn({ err: error, retryInMs }, "following pods failed; listing them again");
        },
      };
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      const target = {
        core: this.core,
        watch: this.watch,
        namespace: this.options.namespace,
        labelSelector: this.options.labelSelector ?? LABEL,
      };
      this.following = this.nodes
        .assertHasFake(signal)
        .then(() => followPods(target, handler, signal), reject);
    });
    try {
      await firstList;
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.logger.info("local pod runner started");
  }

  /** Ends the watch, then stops every process (SIGTERM, SIGKILL after the grace period) and waits for each. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.run.abort(new Error("local pod runner stopped"));
      await this.following;
      await Promise.all([...this.pods.keys()].map((uid) => this.stopPod(uid)));
      this.logger.info("local pod runner stopped");
    })();
    return this.stopping;
  }

  /** Every process started (running or ended), as atoms of the process engine. */
  processes(): Promise<Atom[]> {
    return this.engine.list({ signal: UNCANCELLED });
  }

  /** After a (re-)list: pods missing from it are gone. */
  private reconcileAll(pods: V1Pod[]): void {
    const present = new Set(pods.map(uidOf));
    for (const uid of this.pods.keys()) if (!present.has(uid)) void this.stopPod(uid);
    for (const pod of pods) this.reconcile(pod);
  }

  private reconcile(pod: V1Pod): void {
    if (this.run.signal.aborted) return;
    const uid = uidOf(pod);
    if (!shouldRun(pod)) void this.stopPod(uid);
    else if (!this.pods.has(uid)) this.startPod(uid, pod);
  }

  private startPod(uid: string, pod: V1Pod): void {
    const name = pod.metadata?.name ?? uid;
    const entry: PodProcesses = {
      pod: name,
      gracePeriodMs:
        this.options.gracePeriodMs ??
        (pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_MS / 1000) * 1000,
      names: [],
      started: Promise.resolve(),
      stopRequested: false,
    };
    this.pods.set(uid, entry);
    entry.started = this.startContainers(entry, pod);
  }

  private async startContainers(entry: PodProcesses, pod: V1Pod): Promise<void> {
    const signal = this.run.signal;
    const log = this.logger.child({ pod: entry.pod });
    const node = pod.spec?.nodeName ?? "";
    try {
      if (!(await this.nodes.isFake(node, signal))) {
        log.error({ node }, "pod not started: its node is not a kwok fake node, so a real kubelet runs it");
        return;
      }
    } catch (error) {
      if (!signal.aborted) log.error({ err: error, node }, "pod not started: its node could not be checked");
      return;
    }
    if (pod.spec?.initContainers?.length) log.warn("init containers are not run by the local pod runner");
    const sources = memoizedEnvSources(kubeEnvSources(this.core, this.options.namespace, signal));
    for (const container of pod.spec?.containers ?? []) {
      if (entry.stopRequested || signal.aborted) return;
      await this.startContainer(entry, pod, container, sources);
    }
  }

  private async startContainer(
    entry: PodProcesses,
    pod: V1Pod,
    container: V1Container,
    sources: EnvSources,
  ): Promise<void> {
    const name = `${entry.pod}/${container.name}`;
    const log = this.logger.child({ process: name });
    try {
      const declared = await resolveContainerEnv({ container, pod, sources });
      const local = this.options.command(expandCommandAndArgs(container, declared), pod);
      if (!local) {
        log.info("no local command for this container: not started");
        return;
      }
      if (entry.stopRequested || this.run.signal.aborted) return;
      const labels = { ...pod.metadata?.labels, [POD_LABEL]: entry.pod, [CONTAINER_LABEL]: container.name };
      const env = { ...imageEnv(), ...declared };
      await this.engine.create({ name, ...local, env, labels }, { signal: UNCANCELLED });
      entry.names.push(name);
      log.info({ command: local.command }, "process started");
      void this.reportEnd(entry, name, log);
    } catch (error) {
      if (!this.run.signal.aborted) log.error({ err: error }, "container not started");
    }
  }

  /** Logs how a process ended; with its last output when it ended by itself, which nothing will restart. */
  private async reportEnd(entry: PodProcesses, name: string, log: Logger): Promise<void> {
    try {
      const { exitCode, reason, result } = await this.engine.wait(name, { signal: UNCANCELLED });
      if (entry.stopRequested) {
        log.info({ exitCode, reason, result }, "process stopped");
        return;
      }
      const output = await text(await this.engine.logs(name, { tail: 20, signal: UNCANCELLED }));
      log.warn({ exitCode, reason, result, output }, "process ended on its own; it is not restarted");
    } catch (error) {
      log.warn({ err: error }, "cannot report how the process ended");
    }
  }

  /** Stops the pod's processes once; the returned promise settles when they have all ended. */
  private stopPod(uid: string): Promise<void> {
    const entry = this.pods.get(uid);
    if (!entry) return Promise.resolve();
    entry.stopRequested = true;
    entry.stopped ??= (async () => {
      await entry.started;
      await Promise.all(entry.names.map((name) => this.stopProcess(name, entry.gracePeriodMs)));
      this.pods.delete(uid);
    })();
    return entry.stopped;
  }

  private async stopProcess(name: string, gracePeriodMs: number): Promise<void> {
    try {
      await this.engine.stop(name, { gracePeriodMs, signal: UNCANCELLED });
    } catch (error) {
      // Only a refused kill (EPERM) gets here; waiting would then wait for nothing.
      this.logger.error({ err: error, process: name }, "cannot stop the process");
      return;
    }
    await this.engine.wait(name, { signal: UNCANCELLED });
  }
}

/** Scheduled, not being deleted, not finished: what a kubelet would be running. */
function shouldRun(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return (
    Boolean(pod.spec?.nodeName) &&
    !pod.metadata?.deletionTimestamp &&
    phase !== "Succeeded" &&
    phase !== "Failed"
  );
}

function uidOf(pod: V1Pod): string {
  return pod.metadata?.uid ?? `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}

/** What a container's image would provide, taken from this machine: PATH and HOME. */
function imageEnv(): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of ["PATH", "HOME"]) {
    const value = process.env[name];
    if (value !== undefined) base[name] = value;
  }
  return base;
}
