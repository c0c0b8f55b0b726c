/**
 * Waiting for a pod to stop or disappear: list it (which gives a resourceVersion), then watch from there.
 * A watch that closes is only the server (or the client's 30 s inactivity timer) ending the request: it is
 * resumed from the last resourceVersion seen, never taken as completion. 410 Gone (that version is no longer
 * kept) starts over with a fresh list.
 */
import type { CoreV1Api, V1Pod, Watch } from "@kubernetes/client-node";
import { type Atom, AtomNotFoundError, isFinished, LABEL } from "./engine.js";
import { classifyKubeError, isApiStatus, KubeApiError, withSignal } from "./kube-api.js";
import { KUBERNETES_ENGINE, podToAtom } from "./pod-status.js";

export interface PodWatchContext {
  core: CoreV1Api;
  watch: Watch;
  namespace: string;
}

// Below the client's 30 s inactivity timeout, so that a quiet watch is ended cleanly by the server.
const WATCH_TIMEOUT_SECONDS = 25;

/** How one watch request ended. */
type WatchEnd = { kind: "finished"; atom: Atom } | { kind: "closed" } | { kind: "expired" };

export async function waitForPod(context: PodWatchContext, id: string, signal: AbortSignal): Promise<Atom> {
  let lastSeen: Atom | undefined;
  for (;;) {
    const listed = await listOne(context, id, signal);
    if (!listed.pod) {
      if (lastSeen) return { ...lastSeen, state: "deleted" };
      throw new AtomNotFoundError(KUBERNETES_ENGINE, id);
    }
    lastSeen = podToAtom(listed.pod);
    if (isFinished(lastSeen.state)) return lastSeen;

    const cursor = { resourceVersion: listed.resourceVersion, lastSeen };
    for (;;) {
      const end = await watchOnce(context, id, cursor, signal);
      if (end.kind === "finished") return end.atom;
      if (end.kind === "expired") break;
    }
    lastSeen = cursor.lastSeen;
  }
}

async function listOne(
  { core, namespace }: PodWatchContext,
  id: string,
  signal: AbortSignal,
): Promise<{ pod: V1Pod | undefined; resourceVersion: string | undefined }> {
  try {
    const list = await core.listNamespacedPod(
      { namespace, fieldSelector: `metadata.name=${id}`, labelSelector: LABEL },
      withSignal(signal),
    );
    return { pod: list.items[0], resourceVersion: list.metadata?.resourceVersion };
  } catch (error) {
    throw classifyKubeError(error, { engine: KUBERNETES_ENGINE, action: "wait for", id, signal });
  }
}

interface WatchEvent {
  type: string;
  object: {
    metadata?: { resourceVersion?: string };
    code?: number;
    message?: string;
  };
}

/** One watch request from `cursor.resourceVersion`; advances the cursor with every event. */
function watchOnce(
  { watch, namespace }: PodWatchContext,
  id: string,
  cursor: { resourceVersion: string | undefined; lastSeen: Atom },
  signal: AbortSignal,
): Promise<WatchEnd> {
  return new Promise<WatchEnd>((resolve, reject) => {
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

    const onEvent = (type: string, object: WatchEvent["object"]) => {
      if (type === "ERROR") {
        // The API reports an expired resourceVersion inside a 200 response, as a Status object.
        if (object.code === 410) settle(() => resolve({ kind: "expired" }));
        else
          settle(() =>
            reject(new KubeApiError(`kubernetes: watch pod "${id}": ${object.message}`, object.code ?? 500)),
          );
        return;
      }
      cursor.resourceVersion = object.metadata?.resourceVersion ?? cursor.resourceVersion;
      if (type === "BOOKMARK") return;
      // Watch events carry raw JSON; podToAtom reads its dates from strings as well as Dates.
      const pod = object as V1Pod;
      if (type === "DELETED") {
        settle(() => resolve({ kind: "finished", atom: podToAtom(pod, { gone: true }) }));
        return;
      }
      cursor.lastSeen = podToAtom(pod);
      if (isFinished(cursor.lastSeen.state))
        settle(() => resolve({ kind: "finished", atom: cursor.lastSeen }));
    };

    const onDone = (error: unknown) => {
      if (!error || isTimeout(error)) settle(() => resolve({ kind: "closed" }));
      else if (isGone(error)) settle(() => resolve({ kind: "expired" }));
      else settle(() => reject(error));
    };

    const query = {
      fieldSelector: `metadata.name=${id}`,
      labelSelector: LABEL,
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
