/**
 * reconcile(deploymentname): drift reporting and remediation. In the name's turn (so it never fights a running
 * operation), compares the live objects with the stack's record and, unless `dryrun`, converges them back with a
 * stack update that refreshes the state first — the same update every other mutation makes, so the Pulumi state,
 * the cluster and `status` agree afterwards. A later deploy/scale/undeploy supersedes a waiting reconcile.
 */
import { defineFunction } from "../../../executor/define.js";
import { type FunctionDef, type ProcessContext, ProcessError } from "../../../executor/types.js";
import { UnknownStackError } from "../../../k8s/stack-errors.js";
import type { StackSession } from "../../../k8s/stacks.js";
import { applySpec, driftOf, inSession } from "../apply.js";
import { deploymentName, dryrun } from "../arguments.js";
import { KIND } from "../blueprint/definition.js";
import { assertKind, cleanupIn, reconcileAll, reconcileBlueprint, sourceOf } from "../blueprint/reconcile.js";
import type { K8sDeps } from "../deps.js";
import { recorded } from "../spec.js";
import { type Drift, describeDrift } from "./compare.js";

export interface ReconcileReport {
  deployment: string;
  drifted: boolean;
  drift: Drift[];
  dryrun: boolean;
  /** What the update changed (absent for a dry run). */
  changes?: Record<string, number>;
  /** Drift still seen after the update (empty when it converged). */
  remaining?: Drift[];
}

/** Reconciles one deployment in an open session (shared with the periodic drift check). */
export async function reconcileIn(
  deps: K8sDeps,
  session: StackSession,
  name: string,
  preview: boolean,
  ctx: ProcessContext,
): Promise<ReconcileReport> {
  const record = recorded(await session.current());
  if (!record.spec) throw new UnknownStackError(name);
  const spec = record.spec;
  if (preview) {
    const { drift } = await driftOf(deps, { ...record, spec }, ctx.signal);
    if (drift.length > 0) await ctx.log(`reconcile: ${name} drifted: ${describeDrift(drift)}`);
    return { deployment: name, drifted: drift.length > 0, drift, dryrun: true };
  }
  // Refreshed even without drift seen here: the update then also puts back what the comparison does not cover.
  // The drift it reports is the one applySpec found before the update, in this same turn.
  const { result, drift } = await applySpec(
    deps,
    session,
    { fn: "reconcile", spec, preview: false, refresh: true },
    ctx,
  );
  if (drift.length > 0) await ctx.log(`reconcile: ${name} drifted: ${describeDrift(drift)}`);
  const after = await driftOf(deps, { ...record, spec }, ctx.signal);
  return {
    deployment: name,
    drifted: drift.length > 0,
    drift,
    dryrun: false,
    changes: result.changes,
    remaining: after.drift,
  };
}

export function reconcileFunction(deps: K8sDeps): FunctionDef {
  return defineFunction({
    name: "reconcile",
    description:
      "Report where a deployment's live objects differ from its stack's record (kubectl scale, an edited image, a deleted Secret...) and put them back; dryrun:true only reports: [{deployment, drifted, drift, changes, remaining}]. With kind (the Colonies server's blueprint calls): converge blueprint blueprintName (force: then restart its pods one by one), or every blueprint of the kind at this executor's location",
    args: [{ ...deploymentName, optional: true }],
    kwargs: [
      dryrun,
      { name: "kind", type: "string", description: `blueprint kind (${KIND})` },
      {
        name: "blueprintName",
        type: "string",
        description: "the blueprint to converge (default: every one)",
      },
      { name: "force", type: "bool", description: "blueprint: restart its pods one by one after converging" },
    ],
    async handler(args, ctx) {
      const started = performance.now();
      const took = () => Math.round(performance.now() - started);
      if (args.kind !== undefined) {
        if (args.deploymentname !== undefined || args.dryrun !== undefined)
          throw new ProcessError(
            "reconcile: a blueprint's reconcile takes kind, blueprintName and force only",
          );
        assertKind("reconcile", args.kind);
        const source = sourceOf(deps, "reconcile");
        if (args.blueprintName === undefined)
          return [{ ...(await reconcileAll(deps, source, ctx)), durationMs: took() }];
        const blueprint = await source.get(args.blueprintName, ctx.signal).catch((error: unknown) => {
          throw new ProcessError(
            `reconcile: could not read blueprint ${args.blueprintName}: ${(error as Error).message}`,
          );
        });
        if (!blueprint) throw new ProcessError(`reconcile: blueprint ${args.blueprintName} does not exist`);
        assertKind("reconcile", blueprint.kind);
        const out = await reconcileBlueprint(deps, source, blueprint, { force: args.force === true }, ctx);
        return [{ ...(out as object), durationMs: took() }];
      }
      if (args.blueprintName !== undefined || args.force !== undefined)
        throw new ProcessError("reconcile: blueprintName and force need kind");
      const name = args.deploymentname;
      if (name === undefined)
        throw new ProcessError("reconcile: missing argument deploymentname (or kind, for blueprints)");
      const preview = args.dryrun === true;
      return inSession(deps, name, ctx, preview ? "none" : "converge", async (session) => [
        {
          ...(await reconcileIn(deps, session, name, preview, ctx)),
          durationMs: took(),
        },
      ]);
    },
  });
}

/** cleanup {kind, blueprintName}: the server's call when a blueprint is removed. */
export function cleanupFunction(deps: K8sDeps): FunctionDef {
  return defineFunction({
    name: "cleanup",
    description:
      "Remove a removed blueprint's deployment, its Pulumi stack and its executor identity (the Colonies server calls it on `blueprint remove`)",
    args: [],
    kwargs: [
      { name: "kind", type: "string", description: `blueprint kind (${KIND})` },
      { name: "blueprintName", type: "string", description: "the removed blueprint" },
    ],
    async handler(args, ctx) {
      const started = performance.now();
      if (args.kind === undefined || args.blueprintName === undefined)
        throw new ProcessError("cleanup: kind and blueprintName are required");
      assertKind("cleanup", args.kind);
      // Checked as every name is: the blueprint's name is the deployment's.
      const problem = deploymentName.check(args.blueprintName);
      if (problem) throw new ProcessError(`cleanup: ${problem}`);
      // The server removes a blueprint before it submits its cleanup: one that still exists is not removed (a
      // member's own cleanup call would otherwise delete what the cron puts back a minute later).
      const name = args.blueprintName;
      if (await sourceOf(deps, "cleanup").get(name, ctx.signal))
        throw new ProcessError(
          `cleanup: blueprint ${name} still exists; remove it with \`colonies blueprint remove --name ${name}\``,
        );
      const out = await cleanupIn(deps, name, ctx);
      return [{ ...(out as object), durationMs: Math.round(performance.now() - started) }];
    },
  });
}
