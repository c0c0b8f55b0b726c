/**
 * status(deploymentname): what a user looks at before asking why — the recorded spec, the executor identity,
 * the stack's last updates (kind, result, time, changes) and the Deployment's rollout (replicas, conditions).
 * A read: it does not wait behind a running update of the name.
 */
import { defineFunction } from "../../executor/define.js";
import type { FunctionDef } from "../../executor/types.js";
import { UnknownStackError } from "../../k8s/stack-errors.js";
import { deploymentName } from "./arguments.js";
import type { K8sDeps } from "./deps.js";
import { recorded } from "./spec.js";

export function statusFunction(deps: K8sDeps): FunctionDef {
  return defineFunction({
    name: "status",
    description:
      "A deployment's recorded spec, executor identity, last stack updates and rollout conditions: [{deployment, spec, executor, updates, rollout}]",
    args: [deploymentName],
    async handler(args, ctx) {
      const name = args.deploymentname;
      const { outputs, history } = await deps.stacks.inspect(name);
      const { spec } = recorded(outputs);
      if (!spec && history.length === 0) throw new UnknownStackError(name);
      const deployment = await deps.ownership.deployment(name, ctx.signal).catch((error: unknown) => {
        if (error instanceof UnknownStackError) return undefined;
        throw error;
      });
      const status = deployment?.status;
      return [
        {
          deployment: name,
          namespace: deps.config.namespace,
          spec: spec ?? null,
          executor: typeof outputs.executor === "string" ? outputs.executor : null,
          updates: history,
          rollout: deployment
            ? {
                desired: deployment.spec?.replicas ?? 0,
                updated: status?.updatedReplicas ?? 0,
                ready: status?.readyReplicas ?? 0,
                available: status?.availableReplicas ?? 0,
                conditions: (status?.conditions ?? []).map((c) => ({
                  type: c.type,
                  status: c.status,
                  reason: c.reason ?? null,
                  message: c.message ?? null,
                  lastUpdate: c.lastUpdateTime ? new Date(c.lastUpdateTime).toISOString() : null,
                })),
              }
            : null,
        },
      ];
    },
  });
}
