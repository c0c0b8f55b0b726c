/**
 * Following the labelled pods of one namespace until cancelled: a list (the whole current set and its
 * resourceVersion), then watches from that version. A watch that closes is only the server (or the client's
 * 30 s inactivity timer) ending the request: it is resumed from the last resourceVersion seen. 410 Gone (that
 * version is no longer kept) starts over with a fresh list at once; any other failure does after a pause.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { CoreV1Api, V1Pod, Watch } from "@kubernetes/client-node";
import { kubeApiError, withSignal } from "../atoms/kube-api.js";
import { watchPodsSession } from "../atoms/kube-watch-session.js";

export interface PodWatchTarget {
  core: CoreV1Api;
  watch: Watch;
  namespace: string;
  labelSelector: string;
}

/** Called synchronously, in the order the API reports. */
export interface PodWatchHandler {
  /** Every matching pod after a (re-)list: a pod reported before and missing now is gone. */
  listed(pods: V1Pod[]): void;
  /** Added or modified. Watch events carry raw JSON: dates are strings there. */
  changed(pod: V1Pod): void;
  deleted(pod: V1Pod): void;
  /** A list or watch failed; the next list comes after `retryInMs`. */
  failed(error: unknown, retryInMs: number): void;
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/** Resolves once `signal` aborts, never earlier. */
export async function followPods(
  target: PodWatchTarget,
  handler: PodWatchHandler,
  signal: AbortSignal,
): Promise<void> {
  let retryInMs = FIRST_RETRY_MS;
  while (!signal.aborted) {
    try {
      const cursor = { resourceVersion: await list(target, handler, signal) };
      retryInMs = FIRST_RETRY_MS;
      for (;;) {
        if ((await watchOnce(target, handler, cursor, signal)) === "expired") break;
      }
    } catch (error) {
      if (signal.aborted) break;
      handler.failed(error, retryInMs);
      await sleep(retryInMs, undefined, { signal }).catch(() => undefined);
      retryInMs = Math.min(retryInMs * 2, MAX_RETRY_MS);
    }
  }
}

async function list(
  { core, namespace, labelSelector }: PodWatchTarget,
  handler: PodWatchHandler,
  signal: AbortSignal,
): Promise<string | undefined> {
  try {
    const pods = await core.listNamespacedPod({ namespace, labelSelector }, withSignal(signal));
    handler.listed(pods.items);
    return pods.metadata?.resourceVersion;
  } catch (error) {
    throw kubeApiError(error, `list pods of namespace "${namespace}"`, signal);
  }
}

/** One watch request from `cursor.resourceVersion`, advancing it; "expired" asks for a fresh list. */
async function watchOnce(
  { watch, namespace, labelSelector }: PodWatchTarget,
  handler: PodWatchHandler,
  cursor: { resourceVersion: string | undefined },
  signal: AbortSignal,
): Promise<"closed" | "expired"> {
  const end = await watchPodsSession<never>({
    watch,
    namespace,
    selectors: { labelSelector },
    cursor,
    action: `watch pods of namespace "${namespace}"`,
    onEvent: (type, pod) => {
      if (type === "ADDED" || type === "MODIFIED") handler.changed(pod);
      else if (type === "DELETED") handler.deleted(pod);
      return undefined;
    },
    signal,
  });
  return end as "closed" | "expired";
}
