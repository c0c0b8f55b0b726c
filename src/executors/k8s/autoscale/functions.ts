/**
 * autoscale(deploymentname, min, max) and get_autoscale(deploymentname). The policy is a stack update of the
 * name (it lives in the stack's outputs and survives restarts; the Deployment carries it as an annotation for
 * the autoscaler to list), in the name's turn; the deployment's size is brought within [min, max] in the same
 * update. The autoscaler (autoscaler.ts) then sizes it from the Colonies queue through the same updates.
 */
import { defineFunction } from "../../../executor/define.js";
import { type FunctionDef, ProcessError } from "../../../executor/types.js";
import { UnknownStackError } from "../../../k8s/stack-errors.js";
import { applySpec, inSession } from "../apply.js";
import { deploymentName, dryrun } from "../arguments.js";
import { assertNotBlueprints } from "../blueprint/owner.js";
import type { K8sDeps } from "../deps.js";
import { recorded } from "../spec.js";
import {
  type AutoscalePolicy,
  type AutoscaleState,
  DEFAULT_COOLDOWN_SECONDS,
  podsFor,
  withDecision,
} from "./policy.js";

const MAX_PER_EXECUTOR = 10_000;
const MAX_COOLDOWN_SECONDS = 86_400;

export function autoscaleFunctions(deps: K8sDeps): FunctionDef[] {
  const { maxPods } = deps.config.limits;

  const autoscale = defineFunction({
    name: "autoscale",
    description:
      "Size a deployment from the Colonies queue between min and max pods (min 0 allows scale to zero); off:true stops autoscaling: [{deployment, autoscale, pods, previous}]",
    args: [
      deploymentName,
      { name: "min", type: "int", min: 0, max: maxPods, optional: true, description: "fewest pods" },
      { name: "max", type: "int", min: 1, max: maxPods, optional: true, description: "most pods" },
    ],
    kwargs: [
      {
        name: "per_executor",
        type: "int",
        min: 1,
        max: MAX_PER_EXECUTOR,
        description: "waiting or running processes one executor should absorb (default 1)",
      },
      {
        name: "cooldown",
        type: "int",
        min: 0,
        max: MAX_COOLDOWN_SECONDS,
        description: `seconds of low load before the deployment shrinks (default ${DEFAULT_COOLDOWN_SECONDS})`,
      },
      { name: "off", type: "bool", description: "stop autoscaling (the size stays as it is)" },
      dryrun,
    ],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const off = args.off === true;
      const preview = args.dryrun === true;
      let policy: AutoscalePolicy | undefined;
      if (!off && deps.config.autoscaleIntervalSeconds === 0) {
        throw new ProcessError(
          "autoscale: the autoscaler is off on this executor (K8S_AUTOSCALE_INTERVAL=0); only off:true is accepted",
        );
      }
      if (!off) {
        if (args.min === undefined || args.max === undefined) {
          throw new ProcessError("autoscale: min and max are required (or off:true to stop autoscaling)");
        }
        if (args.min > args.max) {
          throw new ProcessError(`autoscale: min (${args.min}) must not be larger than max (${args.max})`);
        }
        policy = {
          min: args.min,
          max: args.max,
          perExecutor: args.per_executor ?? 1,
          cooldownSeconds: args.cooldown ?? DEFAULT_COOLDOWN_SECONDS,
        };
      } else if (args.min !== undefined || args.max !== undefined) {
        throw new ProcessError("autoscale: off:true takes no min or max");
      }
      const started = performance.now();
      return inSession(deps, name, ctx, preview ? "none" : "policy", async (session) => {
        const record = recorded(await session.current());
        if (!record.spec) throw new UnknownStackError(name);
        // A blueprint's bounds are its spec.autoscale: its reconcile would put them back.
        assertNotBlueprints("autoscale", name, record);
        const { spec } = record;
        let state: AutoscaleState | null = null;
        let pods = spec.pods;
        if (policy) {
          // The budgets hold for the largest size the autoscaler may reach, before anything changes.
          await (await deps.budget.reserve(name, policy.max * spec.executorperpod))();
          pods = Math.min(policy.max, Math.max(policy.min, spec.pods));
          state = { policy, decisions: record.autoscale?.decisions ?? [] };
          if (pods !== spec.pods) {
            state = withDecision(state, {
              at: new Date().toISOString(),
              from: spec.pods,
              to: pods,
              waiting: 0,
              running: 0,
              reason: `autoscale: brought within [${policy.min}, ${policy.max}]`,
            });
          }
        }
        const { result, livePods } = await applySpec(
          deps,
          session,
          { fn: "autoscale", spec: { ...spec, pods }, preview, autoscale: state },
          ctx,
        );
        return [
          {
            deployment: name,
            autoscale: policy ?? null,
            pods,
            previous: livePods ?? spec.pods,
            dryrun: preview,
            changes: result.changes,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      });
    },
  });

  const getAutoscale = defineFunction({
    name: "get_autoscale",
    description:
      "A deployment's autoscale policy, the load Colonies has for it now, the size that load asks for and the latest decisions: [{deployment, enabled, min, max, per_executor, cooldown, pods, load, wanted, decisions}]",
    args: [deploymentName],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const { outputs } = await deps.stacks.inspect(name, 1);
      const { spec, autoscale: state } = recorded(outputs);
      if (!spec) throw new UnknownStackError(name);
      const load = await deps.load(spec.executortype, ctx.signal);
      const policy = state?.policy;
      return [
        {
          deployment: name,
          enabled: policy !== undefined,
          min: policy?.min ?? null,
          max: policy?.max ?? null,
          per_executor: policy?.perExecutor ?? null,
          cooldown: policy?.cooldownSeconds ?? null,
          pods: spec.pods,
          executortype: spec.executortype,
          load,
          wanted: policy ? podsFor(load.waiting + load.running, policy, spec.executorperpod) : null,
          decisions: state?.decisions ?? [],
        },
      ];
    },
  });

  return [autoscale, getAutoscale];
}
