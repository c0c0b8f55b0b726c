/**
 * The k8s executor as the reconciler of ExecutorDeployment blueprints. The server submits `reconcile {kind,
 * blueprintName[, force]}` when a blueprint is added, changed or reconciled by hand, `reconcile {kind}` from its
 * cron, and `cleanup {kind, blueprintName}` when one is removed. A blueprint's deployment is one stack named after
 * it, converged through the path deploy takes (the name's turn, policy, budgets, identity, rollback of a failed
 * first deploy); its outputs record the blueprint, which makes the blueprint the name's owner. Every reconcile
 * writes the blueprint's status, a failure's reason included.
 */
import { isDeepStrictEqual } from "node:util";
import type { Blueprint } from "../../../colonies/types.js";
import { type ProcessContext, ProcessError } from "../../../executor/types.js";
import { applySpec, changed, driftOf, inSession } from "../apply.js";
import { DEFAULT_COOLDOWN_SECONDS } from "../autoscale/policy.js";
import type { K8sDeps } from "../deps.js";
import { callerError } from "../errors.js";
import { BLUEPRINT_ANNOTATION, type Recorded, recorded } from "../spec.js";
import { assertMayApply, undeployIn } from "../stack-functions.js";
import { KIND } from "./definition.js";
import { assertNotFunctions } from "./owner.js";
import { rollingRestart } from "./restart.js";
import type { BlueprintSource } from "./source.js";
import { blueprintDeployment } from "./spec.js";
import { blueprintStatus } from "./status.js";

/** Refuses a kind this executor does not reconcile: nothing is read or changed for it. */
export function assertKind(fn: string, kind: string): void {
  if (kind !== KIND) {
    throw new ProcessError(`${fn}: this executor reconciles blueprints of kind ${KIND}, not ${kind}`);
  }
}

/** The blueprint source, or why there is none (an executor started without the runtime's identity). */
export function sourceOf(deps: K8sDeps, fn: string): BlueprintSource {
  if (!deps.blueprints) throw new ProcessError(`${fn}: blueprints need the runtime's executor identity`);
  return deps.blueprints;
}

/** Writes the status from what the cluster has for the name now; a failure to write is logged, not thrown. */
async function report(
  deps: K8sDeps,
  source: BlueprintSource,
  name: string,
  record: Recorded,
  ctx: ProcessContext,
  message?: string,
): Promise<void> {
  try {
    // Only a stack the blueprint owns has its instances: another owner's pods are not the blueprint's.
    const owned = record.blueprint !== undefined;
    const live = owned ? await deps.ownership.liveObjects(name, ctx.signal) : {};
    const pods = owned ? await deps.ownership.pods(name, ctx.signal) : [];
    const status = blueprintStatus({
      pods,
      desired: live.deployment?.spec?.replicas ?? 0,
      generation: record.blueprint?.generation,
      message,
    });
    await source.writeStatus(name, status, ctx.signal);
  } catch (error) {
    deps.logger.warn({ err: error, blueprint: name }, "could not write a blueprint's status");
    await ctx.log(
      `reconcile: the status of blueprint ${name} could not be written: ${(error as Error).message}`,
    );
  }
}

/** How a reconcile goes: `force` restarts every pod; `skipConverged` leaves an up-to-date stack alone. */
export interface ReconcileMode {
  force?: boolean;
  /**
   * The cron's round: a stack that records this generation of this blueprint, with the spec and autoscale policy
   * the blueprint maps to now and no drift in the cluster, gets no stack update (only its status is written).
   */
  skipConverged?: boolean;
}

/** Plain data as the stack's outputs keep it (no `undefined` members), for comparing a record with a new spec. */
const plain = (value: unknown): unknown =>
  value === undefined ? undefined : JSON.parse(JSON.stringify(value));

/** Converges one blueprint (read from the server now), writes its status; fails with the reason it did not. */
export async function reconcileBlueprint(
  deps: K8sDeps,
  source: BlueprintSource,
  blueprint: Blueprint,
  mode: ReconcileMode,
  ctx: ProcessContext,
): Promise<unknown> {
  const force = mode.force === true;
  const { config } = deps;
  const name = blueprint.metadata.name;
  const generation = blueprint.metadata.generation ?? 0;
  let record: Recorded = {};
  try {
    const [out] = await inSession(deps, name, ctx, "replace", async (session) => {
      const before = recorded(await session.current());
      record = before;
      assertNotFunctions("reconcile", name, before);
      const mapped = blueprintDeployment(blueprint, config, deps.policy);
      if ("problem" in mapped) throw new ProcessError(`reconcile: blueprint ${name}: ${mapped.problem}`);
      const { spec, autoscale } = mapped.value;
      await assertMayApply(
        deps,
        "reconcile",
        spec,
        before,
        session.signal,
        "give the blueprint another name",
      );
      let pods = spec.pods;
      let state = null;
      if (autoscale) {
        if (config.autoscaleIntervalSeconds === 0)
          throw new ProcessError(
            "reconcile: spec.autoscale needs the autoscaler, which is off on this executor (K8S_AUTOSCALE_INTERVAL=0)",
          );
        // The budgets hold for the largest size the autoscaler may reach; the size is the autoscaler's within
        // the bounds (a reconcile keeps it rather than resetting it to spec.replicas).
        await (await deps.budget.reserve(name, autoscale.max * spec.executorperpod))();
        pods = Math.min(autoscale.max, Math.max(autoscale.min, before.spec?.pods ?? spec.pods));
        state = {
          policy: {
            min: autoscale.min,
            max: autoscale.max,
            perExecutor: autoscale.perExecutor ?? 1,
            cooldownSeconds: autoscale.cooldown ?? DEFAULT_COOLDOWN_SECONDS,
          },
          decisions: before.autoscale?.decisions ?? [],
        };
      }
      const converged =
        mode.skipConverged &&
        before.spec !== undefined &&
        before.blueprint?.id === blueprint.blueprintid &&
        before.blueprint.generation === generation &&
        isDeepStrictEqual(plain(before.spec), plain({ ...spec, pods })) &&
        isDeepStrictEqual(plain(before.autoscale?.policy), plain(state?.policy)) &&
        (await driftOf(deps, { ...before, spec: before.spec }, session.signal)).drift.length === 0;
      if (converged)
        return [{ blueprint: name, kind: KIND, generation, deployment: name, pods, unchanged: true }];
      const { result, identity } = await applySpec(
        deps,
        session,
        {
          fn: "reconcile",
          spec: { ...spec, pods },
          preview: false,
          autoscale: state,
          blueprint: { id: blueprint.blueprintid, name, generation },
        },
        ctx,
      );
      record = {
        ...before,
        spec: { ...spec, pods },
        blueprint: { id: blueprint.blueprintid, name, generation },
      };
      const restarted = force ? await rollingRestart(deps, name, pods, ctx) : [];
      return [
        {
          blueprint: name,
          kind: KIND,
          generation,
          deployment: name,
          pods,
          executor: identity?.name ?? null,
          changed: changed(result.changes),
          changes: result.changes,
          ...(force ? { restarted } : {}),
        },
      ];
    });
    await report(deps, source, name, record, ctx);
    return out;
  } catch (error) {
    const failure = callerError("reconcile", error, ctx.signal);
    if (!ctx.signal.aborted) await report(deps, source, name, record, ctx, (failure as Error).message);
    throw failure;
  }
}

/**
 * The cron's reconcile: every blueprint of the kind at this executor's location, one at a time (each in its name's
 * turn), then the stacks of blueprints that are gone. Fails, after trying every one, naming those that failed.
 */
export async function reconcileAll(deps: K8sDeps, source: BlueprintSource, ctx: ProcessContext) {
  const blueprints = await source.list(KIND, ctx.signal);
  const converged: string[] = [];
  const unchanged: string[] = [];
  const failed: string[] = [];
  for (const blueprint of blueprints) {
    ctx.signal.throwIfAborted();
    await reconcileBlueprint(deps, source, blueprint, { skipConverged: true }, ctx).then(
      (out) =>
        ((out as { unchanged?: boolean }).unchanged ? unchanged : converged).push(blueprint.metadata.name),
      (error: unknown) => failed.push(`${blueprint.metadata.name}: ${(error as Error).message}`),
    );
  }
  const names = new Set(blueprints.map((b) => b.metadata.name));
  const removed: string[] = [];
  for (const deployment of await deps.ownership.deployments()) {
    const name = deployment.metadata?.name ?? "";
    const from = deployment.metadata?.annotations?.[BLUEPRINT_ANNOTATION];
    if (!from || names.has(from)) continue;
    // Gone from the server (listed above; read again so that one added meanwhile is not removed).
    if (await source.get(from, ctx.signal)) continue;
    await cleanupIn(deps, name, ctx).then(
      () => removed.push(name),
      (error: unknown) => failed.push(`${name}: ${(error as Error).message}`),
    );
  }
  if (failed.length > 0)
    throw new ProcessError(`reconcile: ${failed.length} blueprint(s) failed: ${failed.join("; ")}`);
  return { kind: KIND, location: source.location, converged, unchanged, removed };
}

/** Removes a blueprint's deployment, stack and identity; nothing to do when it has none. */
export async function cleanupIn(deps: K8sDeps, name: string, ctx: ProcessContext) {
  const [out] = await inSession(deps, name, ctx, "replace", async (session) => {
    const before = recorded(await session.current());
    if (!before.spec) return [{ blueprint: name, deployment: name, removed: false }];
    if (!before.blueprint)
      throw new ProcessError(
        `cleanup: ${name} was made by the deploy function, not from a blueprint; it is left as it is`,
      );
    return [{ blueprint: name, ...(await undeployIn(deps, session, "cleanup", name, false)), removed: true }];
  });
  return out;
}
