/**
 * `blueprint reconcile --force`: a rolling restart of a blueprint's pods, one at a time, each replaced and the
 * deployment ready again before the next goes, so that the executors never all go at once. Deleting pods (as the
 * restart function does) leaves the spec and the stack as they are: nothing to undo on the next reconcile.
 */
import type { ProcessContext } from "../../../executor/types.js";
import { ProcessError } from "../../../executor/types.js";
import type { K8sDeps } from "../deps.js";
import { ready } from "./status.js";

const GRACE_MS = 30_000;
const POLL_MS = 1_000;

export async function rollingRestart(
  deps: K8sDeps,
  name: string,
  desired: number,
  ctx: ProcessContext,
): Promise<string[]> {
  const restarted: string[] = [];
  const before = await deps.ownership.pods(name, ctx.signal);
  const deadline = Date.now() + deps.config.rolloutTimeoutSeconds * 1000;
  for (const pod of before) {
    const podName = pod.metadata?.name;
    if (!podName) continue;
    await deps.pods.stop(podName, { signal: ctx.signal, gracePeriodMs: GRACE_MS });
    restarted.push(podName);
    // Replaced and ready again: the old pod is gone from the list and `desired` pods are ready.
    for (;;) {
      const now = await deps.ownership.pods(name, ctx.signal);
      const readyPods = now.filter(ready);
      if (!now.some((p) => p.metadata?.name === podName) && readyPods.length >= desired) break;
      if (Date.now() > deadline) {
        throw new ProcessError(
          `reconcile: the rolling restart of ${name} did not get ${desired} ready pods within K8S_ROLLOUT_TIMEOUT (${deps.config.rolloutTimeoutSeconds} s)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      ctx.signal.throwIfAborted();
    }
  }
  await ctx.log(`reconcile: ${name}: ${restarted.length} pod(s) restarted one by one (force)`);
  return restarted;
}
