/**
 * Fakes of the two Kubernetes client objects the pod watchers use (CoreV1Api.listNamespacedPod and
 * Watch.watch): scripted list answers and scripted watch sessions, so that closes, timeouts, 410 Gone and
 * failures (which a real cluster produces only now and then) happen on cue.
 */
import type { CoreV1Api, V1PodList, Watch } from "@kubernetes/client-node";

/** One watch request: emits events and ends it (done) as scripted; `aborted` is the request's own signal. */
export type Session = (
  emit: (type: string, object: unknown) => void,
  done: (error: unknown) => void,
  aborted: AbortSignal,
) => void;

/** A list answer, or the error the list call fails with. */
export type ListAnswer = V1PodList | Error;

export interface FakeKubeScript {
  lists: ListAnswer[];
  sessions: Session[];
  /** Called with every list request before it is answered. */
  onList?: (params: { namespace: string; labelSelector?: string; fieldSelector?: string }) => void;
  /** Answers a list past the script; without it such a list fails with "unexpected list". */
  afterLists?: () => Promise<V1PodList>;
  /** Runs a watch past the script; without it such a watch fails with "unexpected watch". */
  afterSessions?: Session;
}

export interface FakeKube {
  core: CoreV1Api;
  watch: Watch;
  /** The parameters of every list request, in order. */
  listCalls: Record<string, unknown>[];
  /** The query of every watch request, in order. */
  watchQueries: Record<string, unknown>[];
  /** The signal of every watch request started: aborted when the watcher ends that request. */
  watchRequests: AbortSignal[];
}

export function fakeKube(script: FakeKubeScript): FakeKube {
  const lists = [...script.lists];
  const sessions = [...script.sessions];
  const listCalls: Record<string, unknown>[] = [];
  const watchQueries: Record<string, unknown>[] = [];
  const watchRequests: AbortSignal[] = [];
  const core = {
    async listNamespacedPod(params: { namespace: string; labelSelector?: string; fieldSelector?: string }) {
      listCalls.push(params);
      script.onList?.(params);
      const next = lists.shift();
      if (!next) {
        if (script.afterLists) return script.afterLists();
        throw new Error("unexpected list");
      }
      if (next instanceof Error) throw next;
      return next;
    },
  } as unknown as CoreV1Api;
  const watch = {
    async watch(
      _path: string,
      query: Record<string, unknown>,
      callback: (type: string, object: unknown) => void,
      done: (error: unknown) => void,
    ) {
      watchQueries.push(query);
      const session = sessions.shift() ?? script.afterSessions;
      if (!session) throw new Error("unexpected watch");
      const request = new AbortController();
      watchRequests.push(request.signal);
      // As with a real watch, events arrive after watch() has returned its controller.
      setTimeout(() => session(callback, done, request.signal), 1);
      return request;
    },
  } as unknown as Watch;
  return { core, watch, listCalls, watchQueries, watchRequests };
}
