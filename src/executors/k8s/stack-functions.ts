/**
 * The mutating functions: deploy, scale and undeploy are Pulumi updates of one stack per deployment name (with
 * `dryrun`, previews), each in one turn of that name (shared by every replica). Before an update starts: the
 * operator's policy (declared on the arguments), the name's ownership and the budgets. A deploy runs as an
 * executor identity this executor registers; a first deploy that fails leaves nothing behind. They are desired
 * states: one superseded by a later one (applied already, or queued behind it) succeeds without an update of its
 * own, and its output says by what.
 */
import { generatePrivateKey } from "../../colonies/crypto.js";
import { defineFunction } from "../../executor/define.js";
import { type FunctionDef, type ProcessContext, ProcessError } from "../../executor/types.js";
import { ownedLabels } from "../../k8s/labels.js";
import { SupersededError, UnknownStackError } from "../../k8s/stack-errors.js";
import type { ChangeSummary, Operation, StackSession } from "../../k8s/stacks.js";
import { deploymentName, dryrun } from "./arguments.js";
import { deployDeclaration } from "./deploy-declaration.js";
import type { K8sDeps } from "./deps.js";
import type { ExecutorIdentity } from "./identity.js";
import { LogBatcher } from "./log-batcher.js";
import { watchRollout } from "./rollout-watch.js";
import { type DeploymentSpec, deploymentProgram, recorded } from "./spec.js";

/** How long removing what a failed first deploy created may take (after the deploy's own deadline). */
const ROLLBACK_MS = 120_000;

function changed(changes: ChangeSummary): boolean {
  return Object.entries(changes).some(([op, n]) => op !== "same" && n > 0);
}

/**
 * Runs a stack session with the engine's output batched into the Colonies process log. A mutation that a later
 * one supersedes returns what superseded it instead of its own result.
 */
async function inSession(
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
      { signal: ctx.signal, order: ctx.priorityTime, onOutput: batcher.add, operation },
      work,
    );
  } catch (error) {
    if (!(error instanceof SupersededError)) throw error;
    await ctx.log(`${ctx.funcName}: ${error.message}; nothing was changed for it`);
    return [
      {
        deployment: name,
        superseded: true,
        supersededBy: { process: error.by.process, function: error.by.fn, priorityTime: error.by.order },
        reason:
          error.how === "applied" ? "a later operation was already applied" : "a later operation was queued",
      },
    ];
  } finally {
    await batcher.close();
  }
}

/**
 * Applies a spec in a session: budget, identity, update; on failure, undoes what this call created (the
 * identity it registered; for a name with no completed deploy, every resource and the stack itself).
 */
async function applySpec(
  deps: K8sDeps,
  fn: string,
  session: StackSession,
  spec: DeploymentSpec,
  dryrunOnly: boolean,
  ctx: ProcessContext,
) {
  const { config, budget, identities } = deps;
  const current = recorded(await session.current());
  // A preview is checked against the budgets too: it says what would fail.
  const release = await budget.reserve(spec.deployment, spec.pods * spec.executorperpod);
  let fresh: ExecutorIdentity | undefined;
  try {
    let identity = current.identity;
    if (config.identity === "executor" && identity?.type !== spec.executortype) {
      // A preview must not register anything: it shows the plan with a key that is never used.
      fresh = dryrunOnly
        ? { name: "(new identity)", type: spec.executortype, prvKey: generatePrivateKey() }
        : await identities.create(spec.deployment, spec.executortype, ctx.signal);
      identity = fresh;
    }
    if (config.identity === "colony") identity = undefined;
    const watch = dryrunOnly
      ? undefined
      : watchRollout(deps.pods, ownedLabels(config.pulumi.project, spec.deployment), new Date(), ctx.signal);
    try {
      const result = await session
        .up(deploymentProgram(spec, config, identity), { dryrun: dryrunOnly, cancel: watch?.signal })
        .catch((error: unknown) => {
          // The update was stopped because a new pod cannot run: that is the reason to give.
          if (watch?.failure) throw new ProcessError(`${fn}: ${watch.failure}`, String(error));
          throw error;
        })
        .finally(() => watch?.stop());
      // The identity the deployment ran as before (a different executortype) is not used any more.
      if (fresh && !dryrunOnly && current.identity) await identities.remove(current.identity);
      return { result, identity, previous: current.spec };
    } catch (error) {
      if (dryrunOnly) throw error;
      if (fresh) await identities.remove(fresh);
      // On shutdown the executor is going away: the next deploy of the name refreshes and converges instead.
      if (!current.spec && !ctx.signal.aborted)
        await rollback(deps, fn, session, spec.deployment, ctx, error);
      throw error;
    }
  } finally {
    await release();
  }
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
    await session.destroy({ signal: AbortSignal.timeout(ROLLBACK_MS) });
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

export function stackFunctions(deps: K8sDeps): FunctionDef[] {
  const { config } = deps;
  const { namespace } = config;
  const limits = config.limits;
  const declaration = deployDeclaration(config, deps.policy);

  const deploy = defineFunction({
    name: "deploy",
    description:
      "Deploy (create or update) executors on Kubernetes: pods x executorperpod containers of dockerimage, running as an executor identity this executor registers",
    args: declaration.args,
    kwargs: declaration.kwargs,
    async handler(args, ctx) {
      const name = args.deploymentname;
      const spec = declaration.specOf(args);
      const preview = args.dryrun === true;
      const started = performance.now();
      return inSession(deps, name, ctx, preview ? "none" : "replace", async (session) => {
        // A name with a completed deploy owns its objects (its stack's state tracks them); a new one must not
        // land on objects that exist and are someone else's.
        if (!recorded(await session.current()).spec) await deps.ownership.assertNameFree("deploy", name);
        const { result, identity } = await applySpec(deps, "deploy", session, spec, preview, ctx);
        return [
          {
            ...spec,
            executor: preview ? null : (identity?.name ?? null),
            dryrun: preview,
            changed: changed(result.changes),
            changes: result.changes,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      });
    },
  });

  const undeploy = defineFunction({
    name: "undeploy",
    description: "Remove a deployment, its Pulumi stack and its executor identity",
    args: [deploymentName],
    kwargs: [dryrun],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const preview = args.dryrun === true;
      const started = performance.now();
      return inSession(deps, name, ctx, preview ? "none" : "replace", async (session) => {
        const outputs = await session.current();
        if (!outputs) throw new UnknownStackError(name);
        const { identity } = recorded(outputs);
        const result = await session.destroy({ dryrun: preview });
        const removed = !preview && identity ? await deps.identities.remove(identity) : false;
        return [
          {
            deployment: name,
            namespace,
            dryrun: preview,
            changes: result.changes,
            executor: identity?.name ?? null,
            executorRemoved: removed,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      });
    },
  });

  const scale = defineFunction({
    name: "scale",
    description: "Set the number of pods of a deployment (nothing else changes)",
    args: [
      deploymentName,
      { name: "pods", type: "int", min: 0, max: limits.maxPods, description: "number of pods" },
    ],
    kwargs: [dryrun],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const preview = args.dryrun === true;
      const started = performance.now();
      return inSession(deps, name, ctx, preview ? "none" : "pods", async (session) => {
        const outputs = await session.current();
        if (!outputs) throw new UnknownStackError(name);
        const { spec } = recorded(outputs);
        if (!spec) throw new UnknownStackError(name);
        const { result } = await applySpec(
          deps,
          "scale",
          session,
          { ...spec, pods: args.pods },
          preview,
          ctx,
        );
        return [
          {
            deployment: name,
            pods: args.pods,
            previous: spec.pods,
            dryrun: preview,
            changes: result.changes,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      });
    },
  });

  return [deploy, undeploy, scale];
}
