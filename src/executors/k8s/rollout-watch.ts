/**
 * Fail fast during a rollout: while an update waits for readiness, the pods it created are checked every few
 * seconds, and a container that can never become ready — an image that cannot be pulled, a config error, a
 * crash loop (e.g. an executor that cannot register: bad key, unreachable server) — aborts the update with
 * that container's reason, instead of the caller waiting for the whole rollout timeout.
 */
import type { Atom, Engine } from "../../atoms/engine.js";

const POLL_MS = 2_000;
/** Pods older than the update by more than this are not its own (e.g. the previous ReplicaSet's). */
const CLOCK_SLACK_MS = 2_000;

export interface RolloutWatch {
  /** Aborts when a new pod cannot run; its reason is {@link RolloutWatch.failure}. */
  readonly signal: AbortSignal;
  readonly failure: string | undefined;
  stop(): void;
}

/** What is wrong with an atom that will not become ready by itself, if anything. */
export function stuckReason(atom: Atom): string | undefined {
  const bad = atom.containers.find(
    (c) => c.result === "startup_failure" || (c.reason === "CrashLoopBackOff" && c.result !== undefined),
  );
  if (!bad) return undefined;
  const detail = bad.message ? ` (${bad.message})` : "";
  return `pod ${atom.id} container ${bad.name} cannot run: ${bad.reason ?? bad.result}${detail}`;
}

export function watchRollout(
  pods: Engine<unknown>,
  labels: Record<string, string>,
  since: Date,
  signal: AbortSignal,
): RolloutWatch {
  const controller = new AbortController();
  let failure: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const check = async () => {
    try {
      const atoms = await pods.list({ labels, signal });
      const fresh = atoms.filter((a) => (a.createdAt?.getTime() ?? 0) >= since.getTime() - CLOCK_SLACK_MS);
      for (const atom of fresh) {
        const reason = stuckReason(atom);
        if (reason) {
          failure = reason;
          controller.abort(new Error(reason));
          return;
        }
      }
    } catch {
      // A failed look is no verdict: the update's own wait goes on, and the next look may succeed.
    }
    if (!stopped) timer = setTimeout(check, POLL_MS);
  };
  timer = setTimeout(check, POLL_MS);
  return {
    signal: controller.signal,
    get failure() {
      return failure;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
