/**
 * The mutating functions: deploy, scale and undeploy are Pulumi updates of one stack per deployment name (with
 * `dryrun`, previews), each in one turn of that name (shared by every replica). Before an update starts: the
 * operator's policy (declared on the arguments), the name's ownership and the budgets. A deploy runs as an
 * executor identity this executor registers; a first deploy that fails leaves nothing behind. They are desired
 * states: one superseded by a later one (applied already, or applied while it waited for it) succeeds without an update of its
 * own, and its output says by what.
 */
import { defineFunction } from "../../executor/define.js";
import { type FunctionDef, ProcessError } from "../../executor/types.js";
import { UnknownStackError } from "../../k8s/stack-errors.js";
import type { StackSession } from "../../k8s/stacks.js";
import { applySpec, changed, inSession, untilRemoved } from "./apply.js";
import { deploymentName, dryrun } from "./arguments.js";
import { assertNotBlueprints } from "./blueprint/owner.js";
import { deployDeclaration } from "./deploy-declaration.js";
import type { K8sDeps } from "./deps.js";
import { type DeploymentSpec, type Recorded, recorded } from "./spec.js";
import { useOf } from "./spec-check.js";

/**
 * What a whole spec may land on, checked in the name's turn before it is applied (deploy, a blueprint's reconcile):
 * a name without a completed deploy must not have objects that are someone else's (its stack's state tracks them
 * otherwise); its Secrets must not hold keys; a new executor type must not be served by others' executors.
 */
export async function assertMayApply(
  deps: K8sDeps,
  fn: string,
  spec: DeploymentSpec,
  before: Recorded,
  signal: AbortSignal,
  nameAdvice?: string,
): Promise<void> {
  if (!before.spec) await deps.ownership.assertNameFree(fn, spec.deployment, nameAdvice);
  await deps.ownership.assertSecretsReferable(fn, useOf(spec).secrets, signal);
  if (before.spec?.executortype !== spec.executortype) await assertTypeFree(deps, fn, spec, signal);
}

/** A new executor type must not be one that executors this executor did not create already serve. */
async function assertTypeFree(
  deps: K8sDeps,
  fn: string,
  spec: DeploymentSpec,
  signal: AbortSignal,
): Promise<void> {
  const ours = [...(await deps.ownership.deploymentNames()), spec.deployment];
  const others = await deps.identities.othersOfType(spec.executortype, ours, signal);
  if (others.length === 0) return;
  throw new ProcessError(
    `${fn}: executortype "${spec.executortype}" is served by executors this executor did not create (${others.slice(0, 5).join(", ")}${others.length > 5 ? ", ..." : ""}): its processes are theirs; choose another type`,
  );
}

/** Removes a deployment's stack and its executor identity in an open session (undeploy, a blueprint's cleanup). */
export async function undeployIn(
  deps: K8sDeps,
  session: StackSession,
  fn: string,
  name: string,
  preview: boolean,
) {
  const outputs = await session.current();
  if (!outputs) throw new UnknownStackError(name);
  const { identity } = recorded(outputs);
  // The stack's objects were deleted and others made under their names: Pulumi would delete those.
  await deps.ownership.assertNameFree(
    fn,
    name,
    `it is not deleted; once its owner removes it, ${fn} removes the rest`,
  );
  const result = await session.destroy({ dryrun: preview });
  if (!preview) await untilRemoved(deps, fn, name, session.signal);
  const removed = !preview && identity ? await deps.identities.remove(identity) : false;
  return {
    deployment: name,
    namespace: deps.config.namespace,
    dryrun: preview,
    changes: result.changes,
    executor: identity?.name ?? null,
    executorRemoved: removed,
  };
}

export function stackFunctions(deps: K8sDeps): FunctionDef[] {
  const { config } = deps;
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
        const before = recorded(await session.current());
        assertNotBlueprints("deploy", name, before);
        await assertMayApply(deps, "deploy", spec, before, session.signal);
        const { result, identity, drift } = await applySpec(
          deps,
          session,
          { fn: "deploy", spec, preview },
          ctx,
        );
        return [
          {
            ...spec,
            executor: preview ? null : (identity?.name ?? null),
            dryrun: preview,
            changed: changed(result.changes),
            changes: result.changes,
            ...(drift.length ? { drift } : {}),
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
        assertNotBlueprints("undeploy", name, recorded(await session.current()));
        const removed = await undeployIn(deps, session, "undeploy", name, preview);
        return [{ ...removed, durationMs: Math.round(performance.now() - started) }];
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
        const record = recorded(outputs);
        assertNotBlueprints("scale", name, record);
        const { spec } = record;
        if (!spec) throw new UnknownStackError(name);
        const { result, drift, livePods } = await applySpec(
          deps,
          session,
          { fn: "scale", spec: { ...spec, pods: args.pods }, preview },
          ctx,
        );
        return [
          {
            deployment: name,
            pods: args.pods,
            // The live size, which a `kubectl scale` behind the stack's back may have changed.
            previous: livePods ?? spec.pods,
            dryrun: preview,
            changes: result.changes,
            ...(drift.length ? { drift } : {}),
            durationMs: Math.round(performance.now() - started),
          },
        ];
      });
    },
  });

  return [deploy, undeploy, scale];
}
