/**
 * reconcile(deploymentname): drift reporting and remediation. In the name's turn (so it never fights a running
 * operation), compares the live objects with the stack's record and, unless `dryrun`, converges them back with a
 * stack update that refreshes the state first — the same update every other mutation makes, so the Pulumi state,
 * the cluster and `status` agree afterwards. A later deploy/scale/undeploy supersedes a waiting reconcile.
 */
import { defineFunction } from "../../../executor/define.js";
import type { FunctionDef, ProcessContext } from "../../../executor/types.js";
import { UnknownStackError } from "../../../k8s/stack-errors.js";
import type { StackSession } from "../../../k8s/stacks.js";
import { applySpec, driftOf, inSession } from "../apply.js";
import { deploymentName, dryrun } from "../arguments.js";
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
      "Report where a deployment's live objects differ from its stack's record (kubectl scale, an edited image, a deleted Secret...) and put them back; dryrun:true only reports: [{deployment, drifted, drift, changes, remaining}]",
    args: [deploymentName],
    kwargs: [dryrun],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const preview = args.dryrun === true;
      const started = performance.now();
      return inSession(deps, name, ctx, preview ? "none" : "converge", async (session) => [
        {
          ...(await reconcileIn(deps, session, name, preview, ctx)),
          durationMs: Math.round(performance.now() - started),
        },
      ]);
    },
  });
}
