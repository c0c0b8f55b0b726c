/**
 * One watch request on the pods of a namespace, from a resourceVersion: the part shared by waiting for one pod
 * and following all of them. It ends "closed" when the server (or the client's 30 s inactivity timer) ends the
 * request, "expired" on 410 Gone (that version is no longer kept: list again), or as the caller's `onEvent` asks.
 */
import type { V1Pod, Watch } from "@kubernetes/client-node";
import { isApiStatus, KubeApiError } from "./kube-api.js";

// Below the client's 30 s inactivity timeout, so that a quiet watch is ended cleanly by the server.
const WATCH_TIMEOUT_SECONDS = 25;

export interface PodWatchSession<T> {
  watch: Watch;
  namespace: string;
  selectors: { fieldSelector?: string; labelSelector: string };
  /** Where the watch starts; advanced with every event. */
  cursor: { resourceVersion: string | undefined };
  /** Prefixes the message of an ERROR event, e.g. `watch pods of namespace "x"`. */
  action: string;
  /**
   * Every event but ERROR and BOOKMARK, after the cursor has advanced. Watch events carry raw JSON: dates are
   * strings there. Returning a value other than undefined ends the session with it.
   */
  onEvent(type: string, pod: V1Pod): T | undefined;
  signal: AbortSignal;
}

export type WatchSessionEnd<T> = "closed" | "expired" | { finished: T };

interface WatchEvent {
  metadata?: { resourceVersion?: string };
  code?: number;
  message?: string;
}

/** Rejects with `signal.reason` once aborted, or with any failure but a timeout or 410 Gone. */
export function watchPodsSession<T>({
  watch,
  namespace,
  selectors,
  cursor,
  action,
  onEvent,
  signal,
}: PodWatchSession<T>): Promise<WatchSessionEnd<T>> {
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

    const onWatchEvent = (type: string, object: WatchEvent) => {
      if (settled) return;
      if (type === "ERROR") {
        // The API reports an expired resourceVersion inside a 200 response, as a Status object.
        if (object.code === 410) settle(() => resolve("expired"));
        else settle(() => reject(new KubeApiError(`${action}: ${object.message}`, object.code ?? 500)));
        return;
      }
      cursor.resourceVersion = object.metadata?.resourceVersion ?? cursor.resourceVersion;
      if (type === "BOOKMARK") return;
      const finished = onEvent(type, object as V1Pod);
      if (finished !== undefined) settle(() => resolve({ finished }));
    };

    const onDone = (error: unknown) => {
      if (!error || isTimeout(error)) settle(() => resolve("closed"));
      else if (isGone(error)) settle(() => resolve("expired"));
      else settle(() => reject(error));
    };

    const query = {
      ...selectors,
      resourceVersion: cursor.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: WATCH_TIMEOUT_SECONDS,
    };
    watch.watch(`/api/v1/namespaces/${namespace}/pods`, query, onWatchEvent, onDone).then(
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
