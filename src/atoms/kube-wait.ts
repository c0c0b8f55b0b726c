/**
 * Waiting for a pod to stop or disappear: list it (which gives a resourceVersion), then watch from there.
 * A watch that closes is only the server (or the client's 30 s inactivity timer) ending the request: it is
 * resumed from the last resourceVersion seen, never taken as completion. 410 Gone (that version is no longer
 * kept) starts over with a fresh list.
 */
import type { CoreV1Api, V1Pod, Watch } from "@kubernetes/client-node";
import { type Atom, AtomNotFoundError, isFinished, LABEL } from "./engine.js";
import { classifyKubeError, withSignal } from "./kube-api.js";
import { watchPodsSession } from "./kube-watch-session.js";
import { KUBERNETES_ENGINE, podToAtom } from "./pod-status.js";

export interface PodWatchContext {
  core: CoreV1Api;
  watch: Watch;
  namespace: string;
}

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

/** One watch request from `cursor.resourceVersion`; advances the cursor with every event. */
async function watchOnce(
  { watch, namespace }: PodWatchContext,
  id: string,
  cursor: { resourceVersion: string | undefined; lastSeen: Atom },
  signal: AbortSignal,
): Promise<WatchEnd> {
  const end = await watchPodsSession({
    watch,
    namespace,
    selectors: { fieldSelector: `metadata.name=${id}`, labelSelector: LABEL },
    cursor,
    action: `kubernetes: watch pod "${id}"`,
    onEvent: (type, pod) => {
      // podToAtom reads its dates from strings as well as Dates.
      if (type === "DELETED") return podToAtom(pod, { gone: true });
      cursor.lastSeen = podToAtom(pod);
      return isFinished(cursor.lastSeen.state) ? cursor.lastSeen : undefined;
    },
    signal,
  });
  return typeof end === "string" ? { kind: end } : { kind: "finished", atom: end.finished };
}
