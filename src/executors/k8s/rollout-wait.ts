/**
 * Waiting for a Deployment's rollout after its stack update, and for its removal after a destroy, instead of the
 * Kubernetes provider's own await (`pulumi.com/skipAwait` on the executor's Deployments, which skips both): the
 * provider took ~0.5 s after a rollout that the cluster had finished in ~0.1 s, on every deploy and scale.
 * Complete means what `kubectl rollout status` means: the controller has seen this generation, every replica runs
 * the new template and is available, and no old one is left; a Deployment past its progress deadline has failed.
 * Removed means the Deployment is gone (its pods first: the provider deletes in the foreground), so that the name
 * is free again. The Deployment is read at growing intervals (from 20 ms up to 1 s), so a quick rollout is seen at
 * once and a long one costs one read a second.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Deployment } from "@kubernetes/client-node";
import { abortable } from "../../atoms/abort.js";

const FIRST_INTERVAL_MS = 20;
const MAX_INTERVAL_MS = 1_000;

/** Why the rollout is not complete yet (undefined when it is), or a failure it will not recover from. */
export function rolloutProgress(deployment: V1Deployment): { pending?: string; failed?: string } {
  const spec = deployment.spec;
  const status = deployment.status ?? {};
  const wanted = spec?.replicas ?? 1;
  const generation = deployment.metadata?.generation ?? 0;
  if ((status.observedGeneration ?? 0) < generation) return { pending: "the controller has not seen it yet" };
  const progressing = status.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded")
    return { failed: `its progress deadline was exceeded (${progressing.message ?? "no message"})` };
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  const total = status.replicas ?? 0;
  if (updated < wanted) return { pending: `${updated} of ${wanted} pods updated` };
  if (total > updated) return { pending: `${total - updated} old pod(s) still running` };
  if (available < updated) return { pending: `${available} of ${updated} updated pods available` };
  return {};
}

export class RolloutError extends Error {}

/**
 * Calls `done` at growing intervals until it says true; rejects with a RolloutError saying `timedOut()` after
 * `timeoutMs`, with `signal.reason` when aborted, and with what `done` throws.
 */
async function pollUntil(
  done: (signal: AbortSignal) => Promise<boolean>,
  options: { timeoutMs: number; signal: AbortSignal },
  timedOut: () => string,
): Promise<void> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, deadline]);
  try {
    for (
      let interval = FIRST_INTERVAL_MS;
      !(await done(signal));
      interval = Math.min(interval * 2, MAX_INTERVAL_MS)
    )
      await abortable(sleep(interval), signal);
  } catch (error) {
    if (deadline.aborted && !options.signal.aborted) throw new RolloutError(timedOut());
    throw error;
  }
}

const seconds = (ms: number) => Math.round(ms / 1000);

/**
 * Resolves once the Deployment `read` returns has rolled out; rejects with a RolloutError when it failed or did
 * not finish within `timeoutMs`, and with `signal.reason` when aborted (a pod that cannot run, the caller gone).
 */
export async function waitForRollout(
  read: (signal: AbortSignal) => Promise<V1Deployment>,
  options: { name: string; timeoutMs: number; signal: AbortSignal },
): Promise<void> {
  let pending = "not read yet";
  await pollUntil(
    async (signal) => {
      const progress = rolloutProgress(await read(signal));
      if (progress.failed)
        throw new RolloutError(`the rollout of ${options.name} failed: ${progress.failed}`);
      pending = progress.pending ?? pending;
      return progress.pending === undefined;
    },
    options,
    () => `the rollout of ${options.name} did not finish within ${seconds(options.timeoutMs)} s (${pending})`,
  );
}

/**
 * Resolves once `exists` says the Deployment is gone; rejects with a RolloutError when it is still there after
 * `timeoutMs`, and with `signal.reason` when aborted.
 */
export async function waitForRemoval(
  exists: (signal: AbortSignal) => Promise<boolean>,
  options: { name: string; timeoutMs: number; signal: AbortSignal },
): Promise<void> {
  await pollUntil(
    async (signal) => !(await exists(signal)),
    options,
    () => `the Deployment ${options.name} is still being deleted after ${seconds(options.timeoutMs)} s`,
  );
}
