/**
 * Atoms as Kubernetes pods of one namespace, selected by {@link LABEL}: a pod without it is not ours, and every
 * call treats it as absent.
 */
import { PassThrough, type Readable } from "node:stream";
import { CoreV1Api, type KubeConfig, Log, type V1Pod, Watch } from "@kubernetes/client-node";
import {
  type Atom,
  AtomNotFoundError,
  type CallOptions,
  type Engine,
  LABEL,
  type ListOptions,
  type LogsOptions,
  MAIN_CONTAINER,
  type StopOptions,
} from "./engine.js";
import { classifyKubeError, isApiStatus, kubeApiError, withSignal } from "./kube-api.js";
import { waitForPod } from "./kube-wait.js";
import { KUBERNETES_ENGINE, podToAtom } from "./pod-status.js";

export interface PodSpec {
  /** The pod's name and the atom's id. */
  name: string;
  image: string;
  /** Replaces the image's entrypoint when given. */
  command?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface KubeEngineOptions {
  kubeConfig: KubeConfig;
  namespace: string;
}

export class KubeEngine implements Engine<PodSpec> {
  readonly name = KUBERNETES_ENGINE;
  readonly namespace: string;
  private readonly core: CoreV1Api;
  private readonly watch: Watch;
  private readonly log: Log;

  constructor({ kubeConfig, namespace }: KubeEngineOptions) {
    if (!namespace) throw new TypeError("kubernetes engine: a namespace is required");
    this.namespace = namespace;
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.watch = new Watch(kubeConfig);
    this.log = new Log(kubeConfig);
  }

  async get(id: string, { signal }: CallOptions): Promise<Atom> {
    return podToAtom(await this.readManagedPod(id, "get", signal));
  }

  async list({ labels = {}, signal }: ListOptions): Promise<Atom[]> {
    try {
      const pods = await this.core.listNamespacedPod(
        { namespace: this.namespace, labelSelector: labelSelector(labels) },
        withSignal(signal),
      );
      return pods.items.map((pod) => podToAtom(pod));
    } catch (error) {
      throw kubeApiError(error, `${this.name}: list pods of namespace "${this.namespace}"`, signal);
    }
  }

  async create(spec: PodSpec, { signal }: CallOptions): Promise<Atom> {
    const body: V1Pod = {
      metadata: { name: spec.name, labels: { [LABEL]: "true", ...spec.labels } },
      spec: {
        // An atom runs once: its end is its result, so the kubelet must not restart it.
        restartPolicy: "Never",
        containers: [
          {
            name: MAIN_CONTAINER,
            image: spec.image,
            command: spec.command,
            env: Object.entries(spec.env ?? {}).map(([name, value]) => ({ name, value })),
          },
        ],
      },
    };
    try {
      return podToAtom(
        await this.core.createNamespacedPod({ namespace: this.namespace, body }, withSignal(signal)),
      );
    } catch (error) {
      throw classifyKubeError(error, { engine: this.name, action: "create", id: spec.name, signal });
    }
  }

  /**
   * Deletes the pod with a grace period (the pod's own when none is given; 0 when forced). A pod that is already
   * gone counts as stopped.
   */
  async stop(id: string, { force, gracePeriodMs, signal }: StopOptions): Promise<void> {
    const pod = await this.readPod(id, "stop", signal);
    if (!pod) return;
    // A pod without the label is not ours: refuse rather than delete it.
    if (!isManaged(pod)) throw new AtomNotFoundError(this.name, id);
    const gracePeriodSeconds = force
      ? 0
      : gracePeriodMs === undefined
        ? undefined
        : Math.ceil(gracePeriodMs / 1000);
    try {
      await this.core.deleteNamespacedPod(
        {
          name: id,
          namespace: this.namespace,
          gracePeriodSeconds,
          // Only the pod we checked: a namesake created since then is not ours to delete.
          body: { gracePeriodSeconds, preconditions: { uid: pod.metadata?.uid } },
        },
        withSignal(signal),
      );
    } catch (error) {
      // 404: gone meanwhile. 409: the precondition failed, so the pod we checked is gone too.
      if (isApiStatus(error, 404) || isApiStatus(error, 409)) return;
      throw classifyKubeError(error, { engine: this.name, action: "stop", id, signal });
    }
  }

  async logs(id: string, options: LogsOptions): Promise<Readable> {
    const { follow, since, tail, timestamps, limitBytes, signal } = options;
    if (tail !== undefined && !(Number.isInteger(tail) && tail >= 1)) {
      throw new TypeError("logs: tail must be an integer >= 1");
    }
    const pod = await this.readManagedPod(id, "read logs of", signal);
    const container = options.container ?? pod.spec?.containers[0]?.name ?? MAIN_CONTAINER;
    const output = new PassThrough();
    // The client pipes the response body into `output` and leaves the body's errors unhandled: aborting the
    // request (below, when the reader is done early) makes it emit an AbortError that would crash the process.
    // That one is expected; any other error (the connection broke) ends the reader's stream with it.
    let aborting = false;
    output.once("pipe", (source: Readable) =>
      source.on("error", (error) => {
        if (!aborting) output.destroy(error);
      }),
    );
    let request: AbortController;
    try {
      request = await this.log.log(this.namespace, id, container, output, {
        follow,
        sinceTime: since?.toISOString(),
        tailLines: tail,
        timestamps,
        limitBytes,
      });
    } catch (error) {
      // The pod was just read: a 404 here is about its node or container, not a missing atom.
      throw kubeApiError(error, `${this.name}: read logs of container "${container}" of pod "${id}"`, signal);
    }
    // The client starts the request without a signal; from here, aborting the signal or dropping the stream ends it.
    const abort = () => {
      aborting = true;
      request.abort();
    };
    const cancel = () => {
      abort();
      output.destroy(signal.reason);
    };
    if (signal.aborted) cancel();
    signal.addEventListener("abort", cancel, { once: true });
    output.once("close", () => {
      signal.removeEventListener("abort", cancel);
      abort();
    });
    return output;
  }

  async wait(id: string, { signal }: CallOptions): Promise<Atom> {
    return waitForPod({ core: this.core, watch: this.watch, namespace: this.namespace }, id, signal);
  }

  private async readManagedPod(id: string, action: string, signal: AbortSignal): Promise<V1Pod> {
    const pod = await this.readPod(id, action, signal);
    if (!pod || !isManaged(pod)) throw new AtomNotFoundError(this.name, id);
    return pod;
  }

  /** The pod, managed or not; undefined when there is none. */
  private async readPod(id: string, action: string, signal: AbortSignal): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ name: id, namespace: this.namespace }, withSignal(signal));
    } catch (error) {
      if (isApiStatus(error, 404) && !signal.aborted) return undefined;
      throw classifyKubeError(error, { engine: this.name, action, id, signal });
    }
  }
}

function isManaged(pod: V1Pod): boolean {
  return pod.metadata?.labels?.[LABEL] !== undefined;
}

// Label keys (optional DNS prefix + name) and values as Kubernetes validates them; anything else could smuggle
// extra terms into the selector.
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** {@link LABEL} plus equality terms for the caller's labels. */
export function labelSelector(labels: Record<string, string>): string {
  const terms = [LABEL];
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key)) throw new TypeError(`invalid label key "${key}"`);
    if (!LABEL_VALUE.test(value)) throw new TypeError(`invalid value "${value}" for label "${key}"`);
    terms.push(`${key}=${value}`);
  }
  return terms.join(",");
}
