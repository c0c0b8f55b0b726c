/**
 * Following the labelled pods of one namespace until cancelled: a list (the whole current set and its
 * resourceVersion), then watches from that version. A watch that closes is only the server (or the client's
 * 30 s inactivity timer) ending the request: it is resumed from the last resourceVersion seen. 410 Gone (that
 * version is no longer kept) starts over with a fresh list at once; any other failure does after a pause.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { CoreV1Api, V1Pod, Watch } from "@kubernetes/client-node";
import { isApiStatus, KubeApiError, kubeApiError, withSignal } from "../atoms/kube-api.js";

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

// Below the client's 30 s inactivity timeout, so that a quiet watch is ended cleanly by the server.
const WATCH_TIMEOUT_SECONDS = 25;
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

interface WatchEvent {
  metadata?: { resourceVersion?: string };
  code?: number;
  message?: string;
}

/** One watch request from `cursor.resourceVersion`, advancing it; "expired" asks for a fresh list. */
function watchOnce(
  { watch, namespace, labelSelector }: PodWatchTarget,
  handler: PodWatchHandler,
  cursor: { resourceVersion: string | undefined },
  signal: AbortSignal,
): Promise<"closed" | "expired"> {
  return new Promise((resolve, reject) => {
    let request: AbortController | undefined;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      request?.abort();
      outcome();
    };
    const onAbort = () => settle(() => reject(signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });

    const onEvent = (type: string, object: WatchEvent) => {
      if (settled) return;
      if (type === "ERROR") {
        // The API reports an expired resourceVersion inside a 200 response, as a Status object.
        if (object.code === 410) settle(() => resolve("expired"));
        else {
          const message = `watch pods of namespace "${namespace}": ${object.message}`;
          settle(() => reject(new KubeApiError(message, object.code ?? 500)));
        }
        return;
      }
      cursor.resourceVersion = object.metadata?.resourceVersion ?? cursor.resourceVersion;
      if (type === "ADDED" || type === "MODIFIED") handler.changed(object as V1Pod);
      else if (type === "DELETED") handler.deleted(object as V1Pod);
    };

    const onDone = (error: unknown) => {
      if (!error || isTimeout(error)) settle(() => resolve("closed"));
      else if (isGone(error)) settle(() => resolve("expired"));
      else settle(() => reject(error));
    };

    const query = {
      labelSelector,
      resourceVersion: cursor.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: WATCH_TIMEOUT_SECONDS,
    };
    watch.watch(`/api/v1/namespaces/${namespace}/pods`, query, onEvent, onDone).then(
      (controller) => {
        request = controller;
        if (settled) controller.abort();
      },
      (error: unknown) => settle(() => reject(error)),
    );
  });
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === "TimeoutError";
}

/** A watch refused with HTTP 410 (rather than an ERROR event): the resourceVersion is too old. */
function isGone(error: unknown): boolean {
  return isApiStatus(error, 410) || (error as { statusCode?: number } | null)?.statusCode === 410;
}
