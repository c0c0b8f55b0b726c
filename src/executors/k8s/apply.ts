/**
 * Applying a deployment's desired state in one turn of its name: what deploy, scale, reconcile, autoscale and the
 * autoscaler share. A session batches the engine's output into the process log and turns "superseded" into an
 * output; an application checks the budget, registers the executor identity a new executor type needs, starts
 * from the live state (refreshing the stack first when the objects drifted), updates the stack, and on failure
 * undoes what it created.
 */
import type { Logger } from "pino";
import { generatePrivateKey } from "../../colonies/crypto.js";
import { type ProcessContext, ProcessError } from "../../executor/types.js";
import { ownedLabels } from "../../k8s/labels.js";
import { SupersededError, UnknownStackError } from "../../k8s/stack-errors.js";
import type { ChangeSummary, Operation, StackSession, UpResult } from "../../k8s/stacks.js";
import type { AutoscaleState } from "./autoscale/policy.js";
import type { K8sDeps } from "./deps.js";
import { type Drift, type ExpectedSecret, findDrift } from "./drift/compare.js";
import type { ExecutorIdentity } from "./identity.js";
import { LogBatcher } from "./log-batcher.js";
import type { LiveObjects } from "./ownership.js";
import { RolloutError, waitForRemoval, waitForRollout } from "./rollout-wait.js";
import { watchRollout } from "./rollout-watch.js";
import {
  type BlueprintRecord,
  type DeploymentSpec,
  deploymentProgram,
  type Recorded,
  recorded,
} from "./spec.js";

/** How long removing what a failed first deploy created may take (after the deploy's own deadline). */
const ROLLBACK_MS = 120_000;

export function changed(changes: ChangeSummary): boolean {
  return Object.entries(changes).some(([op, n]) => op !== "same" && n > 0);
}

/**
 * Runs a stack session with the engine's output batched into the Colonies process log. A mutation that a later
 * one supersedes returns what superseded it instead of its own result.
 */
export async function inSession(
  deps: K8sDeps,
  name: string,
  ctx: ProcessContext,
  effect: Operation["effect"],
  work: (session: StackSession) => Promise<unknown[]>,
): Promise<unknown[]> {
  const batcher = new LogBatcher(ctx.log);
  const operation = { process: ctx.processId, fn: ctx.funcName, effect };
  try {
    return await deps.stacks.session(
      name,
      { signal: ctx.signal, order: ctx.order, onOutput: batcher.add, operation, waiting: ctx.waiting },
      work,
    );
  } catch (error) {
    const unanswered = clusterUnreachable(error);
    if (unanswered)
      throw new ProcessError(`${ctx.funcName}: the Kubernetes API did not answer (${unanswered})`);
    if (!(error instanceof SupersededError)) throw error;
    await ctx.log(`${ctx.funcName}: ${error.message}; nothing was changed for it`);
    return [
      {
        deployment: name,
        superseded: true,
        supersededBy: { process: error.by.process, function: error.by.fn, order: error.by.order },
        reason:
          error.how === "applied"
            ? "a later operation was already applied"
            : "a later operation was applied while this one waited for its outcome",
      },
    ];
  } finally {
    await batcher.close();
  }
}

/** Codes of a request to the Kubernetes API that got no answer (Node's and undici's, the client's transport). */
const UNANSWERED = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_\w+)$/;

/**
 * What kept a Kubernetes API request from an answer (connection refused, reset, timed out), or undefined when
 * `error` is not such a failure. The client (fetch) says only "fetch failed"; the reason is in its cause.
 */
export function clusterUnreachable(error: unknown): string | undefined {
  if (!(error instanceof TypeError) || error.message !== "fetch failed") return undefined;
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (typeof cause?.code !== "string" || !UNANSWERED.test(cause.code)) return undefined;
  return typeof cause.message === "string" && cause.message ? cause.message : cause.code;
}

/**
 * The context of an operation the executor starts itself (the autoscaler, the drift check): no Colonies process
 * and no order of its own (no clock to compare with the server's): its ticket is placed after everything the name
 * holds when it is put down. Its log is ours.
 */
export function ownContext(logger: Logger, funcName: string, deployment: string, signal: AbortSignal) {
  const scoped = logger.child({ deployment, function: funcName });
  const ctx: ProcessContext = {
    processId: "",
    funcName,
    signal,
    logger: scoped,
    log: async (message) => scoped.info(message),
  };
  return ctx;
}

/** What the stack's Secret holds, as its program writes it. */
export function expectedSecret(deps: K8sDeps, identity: ExecutorIdentity | undefined): ExpectedSecret {
  return identity ? { COLONIES_PRVKEY: identity.prvKey } : { COLONIES_COLONY_PRVKEY: deps.config.ownerKey };
}

/** Where the live objects of a recorded deployment differ from its record. */
export async function driftOf(
  deps: K8sDeps,
  record: Recorded & { spec: DeploymentSpec },
  signal: AbortSignal,
): Promise<{ drift: Drift[]; live: LiveObjects }> {
  const live = await deps.ownership.liveObjects(record.spec.deployment, signal);
  const identity = deps.config.identity === "executor" ? record.identity : undefined;
  return { drift: findDrift(record.spec, deps.config, expectedSecret(deps, identity), live), live };
}

export interface Application {
  fn: string;
  spec: DeploymentSpec;
  preview: boolean;
  /** What the stack keeps about autoscaling afterwards: unchanged unless given; null removes it. */
  autoscale?: AutoscaleState | null;
  /** The blueprint the stack is made from: unchanged unless given (every later update keeps the owner). */
  blueprint?: BlueprintRecord;
  /** Refresh the stack before the update even when no drift was seen (reconcile). */
  refresh?: boolean;
}

export interface Applied {
  result: UpResult;
  identity: ExecutorIdentity | undefined;
  /** What the stack recorded before. */
  before: Recorded;
  /** Where the live objects differed from the record before the update (each was refreshed and put back). */
  drift: Drift[];
  /** The live number of pods before the update (the truth, even after a `kubectl scale`). */
  livePods?: number;
}

/**
 * Applies a spec in a session: budget, identity, update; on failure, undoes what this call created (the
 * identity it registered; for a name with no completed deploy, every resource and the stack itself).
 */
export async function applySpec(
  deps: K8sDeps,
  session: StackSession,
  application: Application,
  ctx: ProcessContext,
): Promise<Applied> {
  const { config, budget, identities } = deps;
  const { fn, spec, preview } = application;
  const before = recorded(await session.current());
  // A stack that may not know the live state (someone changed the objects) is refreshed before it is updated,
  // so that the update starts from the truth and puts the rest back.
  const seen = before.spec
    ? await driftOf(deps, { ...before, spec: before.spec }, session.signal)
    : { drift: [], live: {} };
  if (seen.drift.length > 0) {
    // A deleted object may have been replaced by someone else's of the same name: the refresh would read it
    // into the state and the update take it over. That is refused, as for a new name.
    if (seen.drift.some((d) => d.field === "(object)"))
      await deps.ownership.assertNameFree(fn, spec.deployment);
    await ctx.log(
      `${fn}: ${seen.drift.length} field(s) drifted from the record; the stack is refreshed first`,
    );
  }
  const autoscale =
    application.autoscale === undefined ? before.autoscale : (application.autoscale ?? undefined);
  // A preview is checked against the budgets too: it says what would fail.
  const release = await budget.reserve(spec.deployment, spec.pods * spec.executorperpod);
  let fresh: ExecutorIdentity | undefined;
  const owner = application.blueprint ?? before.blueprint;
  try {
    let identity = before.identity;
    if (config.identity === "executor" && identity?.type !== spec.executortype) {
      // A preview must not register anything: it shows the plan with a key that is never used.
      fresh = preview
        ? { name: "(new identity)", type: spec.executortype, prvKey: generatePrivateKey() }
        : await identities.create(spec.deployment, spec.executortype, session.signal, owner);
      identity = fresh;
    }
    if (config.identity === "colony") identity = undefined;
    const watch = preview
      ? undefined
      : watchRollout(
          deps.pods,
          ownedLabels(config.pulumi.project, spec.deployment),
          new Date(),
          session.signal,
        );
    try {
      const result = await session
        .up(deploymentProgram(spec, config, identity, autoscale, owner), {
          dryrun: preview,
          cancel: watch?.signal,
          refresh: application.refresh || seen.drift.length > 0,
        })
        .then(async (updated) => {
          // The Deployment is applied (the provider does not wait for it): wait for its rollout here (a preview
          // has no watch and nothing to wait for).
          if (watch)
            await waitForRollout((signal) => deps.ownership.deployment(spec.deployment, signal), {
              name: spec.deployment,
              timeoutMs: config.rolloutTimeoutSeconds * 1000,
              signal: AbortSignal.any([session.signal, watch.signal]),
            });
          return updated;
        })
        .catch((error: unknown) => {
          // The update or the wait was stopped because a new pod cannot run: that is the reason to give.
          if (watch?.failure) throw new ProcessError(`${fn}: ${watch.failure}`, String(error));
          if (error instanceof RolloutError) throw new ProcessError(`${fn}: ${error.message}`);
          throw error;
        })
        .finally(() => watch?.stop());
      // The identity the deployment ran as before (a different executortype) is not used any more.
      if (fresh && !preview && before.identity) await identities.remove(before.identity);
      return {
        result,
        identity,
        before,
        drift: seen.drift,
        livePods: seen.live.deployment?.spec?.replicas,
      };
    } catch (error) {
      if (preview) throw error;
      if (fresh) await identities.remove(fresh);
      // On shutdown the executor is going away: the next deploy of the name refreshes and converges instead.
      if (!before.spec && !ctx.signal.aborted) await rollback(deps, fn, session, spec.deployment, ctx, error);
      throw error;
    }
  } finally {
    await release();
  }
}

/**
 * Waits until a destroyed stack's Deployment is gone, so that the name is free when the call returns (the provider
 * does not wait: see rollout-wait.ts).
 */
export async function untilRemoved(
  deps: K8sDeps,
  fn: string,
  name: string,
  signal: AbortSignal,
  timeoutMs = deps.config.rolloutTimeoutSeconds * 1000,
): Promise<void> {
  const exists = (s: AbortSignal) => existed(deps.ownership.deployment(name, s));
  await waitForRemoval(exists, { name, timeoutMs, signal }).catch((error: unknown) => {
    if (error instanceof RolloutError) throw new ProcessError(`${fn}: ${error.message}`);
    throw error;
  });
}

/** Whether the name had what `work` acts on: true once it succeeds, false when it finds none (UnknownStackError). */
function existed(work: Promise<unknown>): Promise<boolean> {
  return work.then(
    () => true,
    (error: unknown) => {
      if (error instanceof UnknownStackError) return false;
      throw error;
    },
  );
}

/** Removes what a failed first deploy created, and says in the process log what it did. */
async function rollback(
  deps: K8sDeps,
  fn: string,
  session: StackSession,
  name: string,
  ctx: ProcessContext,
  cause: unknown,
): Promise<void> {
  try {
    const signal = AbortSignal.timeout(ROLLBACK_MS);
    if (!(await existed(session.destroy({ signal })))) {
      // The stack was never created (e.g. the key manager could not be reached): nothing to remove.
      await ctx.log(`${fn}: the first deploy of ${name} failed before it created anything`);
      return;
    }
    await untilRemoved(deps, fn, name, signal);
    await ctx.log(`${fn}: the first deploy of ${name} failed; everything it created was removed`);
  } catch (error) {
    deps.logger.error(
      { err: error, deployment: name, cause },
      "could not remove what a failed deploy created",
    );
    await ctx.log(
      `${fn}: the first deploy of ${name} failed and what it created could not be removed (${(error as Error).message}); undeploy ${name} removes it`,
    );
  }
}
