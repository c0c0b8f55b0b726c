/**
 * The mutating functions: deploy, scale and undeploy are Pulumi updates of one stack per deployment name (with
 * `dryrun`, previews), each in one turn of that stack's queue. Before an update starts: the operator's policy
 * (declared on the arguments), the name's ownership and the budgets. A deploy runs as an executor identity this
 * executor registers; a first deploy that fails leaves nothing behind.
 */
import { generatePrivateKey } from "../../colonies/crypto.js";
import { defineFunction } from "../../executor/define.js";
import { type ArgSpec, type FunctionDef, type ProcessContext, ProcessError } from "../../executor/types.js";
import { ownedLabels } from "../../k8s/labels.js";
import { UnknownStackError } from "../../k8s/stack-errors.js";
import type { ChangeSummary, StackSession } from "../../k8s/stacks.js";
import { deploymentName, dryrun } from "./arguments.js";
import { guarded } from "./errors.js";
import type { K8sDeps } from "./functions.js";
import type { ExecutorIdentity } from "./identity.js";
import { LogBatcher } from "./log-batcher.js";
import { watchRollout } from "./rollout-watch.js";
import { type DeploymentSpec, deploymentProgram, recorded } from "./spec.js";
import {
  checkWith,
  type Parsed,
  parsedValue,
  parseEnv,
  parseNodeSelector,
  parseSecretEnv,
  parseTolerations,
} from "./spec-kwargs.js";
import { executorTypeProblem, imageProblem, quantityProblem, SECRET_NAME } from "./validation.js";

/** How long removing what a failed first deploy created may take (after the deploy's own deadline). */
const ROLLBACK_MS = 120_000;

function changed(changes: ChangeSummary): boolean {
  return Object.entries(changes).some(([op, n]) => op !== "same" && n > 0);
}

/** Runs a stack session with the engine's output batched into the Colonies process log. */
async function inSession<T>(
  deps: K8sDeps,
  name: string,
  ctx: ProcessContext,
  work: (session: StackSession) => Promise<T>,
): Promise<T> {
  const batcher = new LogBatcher(ctx.log);
  try {
    return await deps.stacks.session(
      name,
      { signal: ctx.signal, order: ctx.priorityTime, onOutput: batcher.add },
      work,
    );
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
    release();
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
  const { config, policy } = deps;
  const { namespace } = config;
  const limits = config.limits;
  const secretEnv = (text: string) => parseSecretEnv(text, (secret) => policy.secretProblem(secret));
  const pullSecrets = (text: string): Parsed<string[]> => {
    const names = text
      .split(";")
      .map((n) => n.trim())
      .filter(Boolean);
    for (const name of names) {
      const problem = SECRET_NAME.test(name)
        ? policy.secretProblem(name)
        : `imagepullsecret "${name}" is not a valid Secret name`;
      if (problem) return { problem };
    }
    return { value: names };
  };
  const typeProblem = (type: string) =>
    executorTypeProblem(type) ??
    (type === config.ownType
      ? `executortype "${type}" is this k8s executor's own type: its processes would go to the deployment; choose another`
      : undefined);

  const deployKwargs = [
    {
      name: "executortype",
      type: "string",
      description: "executor type of the deployed executors (default: the deployment name)",
      check: typeProblem,
    },
    {
      name: "cpu",
      type: "string",
      description: `CPU request per container, e.g. 250m (at most ${limits.maxCpu.text})`,
      check: (v: string) => quantityProblem("cpu", v, limits.maxCpu),
    },
    {
      name: "memory",
      type: "string",
      description: `memory request and limit per container, e.g. 256Mi (at most ${limits.maxMemory.text})`,
      check: (v: string) => quantityProblem("memory", v, limits.maxMemory),
    },
    {
      name: "cpulimit",
      type: "string",
      description: `CPU limit per container, e.g. 1 (at most ${limits.maxCpu.text})`,
      check: (v: string) => quantityProblem("cpulimit", v, limits.maxCpu),
    },
    {
      name: "memorylimit",
      type: "string",
      description: `memory limit per container (default: the memory request; at most ${limits.maxMemory.text})`,
      check: (v: string) => quantityProblem("memorylimit", v, limits.maxMemory),
    },
    {
      name: "gpu",
      type: "int",
      min: 1,
      max: Math.max(1, config.gpu.max),
      description: `${config.gpu.resource} per container (the operator allows at most ${config.gpu.max})`,
    },
    {
      name: "env",
      type: "string",
      description: "plain environment, NAME=VALUE items separated by ';', e.g. env:A=1;B=two",
      check: checkWith(parseEnv),
    },
    {
      name: "secretenv",
      type: "string",
      description:
        "environment from keys of Secrets the operator allows (K8S_ALLOWED_SECRETS), e.g. secretenv:DB_PASSWORD=pg-secret/password",
      check: checkWith(secretEnv),
    },
    {
      name: "imagepullsecret",
      type: "string",
      description:
        "Secret(s) with registry credentials for the image, ';'-separated (allowed by K8S_ALLOWED_SECRETS)",
      check: checkWith(pullSecrets),
    },
    {
      name: "nodeselector",
      type: "string",
      description: "node labels the pods must run on, e.g. nodeselector:disk=ssd;zone=a",
      check: checkWith(parseNodeSelector),
    },
    {
      name: "tolerations",
      type: "string",
      description:
        "taints the pods tolerate, KEY[=VALUE][=EFFECT] items separated by ';', e.g. gpu=true=NoSchedule",
      check: checkWith(parseTolerations),
    },
    {
      name: "cmd",
      type: "string",
      description:
        "space-separated arguments to the image entrypoint, e.g. sleep (one the operator allows: K8S_ALLOWED_CMDS)",
      check: (cmd: string) => policy.cmdProblem(cmd.trim().split(/\s+/).join(" ")),
    },
    dryrun,
  ] as const satisfies readonly ArgSpec[];

  const deploy = defineFunction({
    name: "deploy",
    description:
      "Deploy (create or update) executors on Kubernetes: pods x executorperpod containers of dockerimage, running as an executor identity this executor registers",
    args: [
      deploymentName,
      { name: "pods", type: "int", min: 0, max: limits.maxPods, description: "number of pods (replicas)" },
      {
        name: "executorperpod",
        type: "int",
        min: 1,
        max: limits.maxExecutorsPerPod,
        description: "executor containers per pod",
      },
      { name: "ramdisk", type: "bool", description: "mount an in-memory emptyDir at /ramdisk" },
      {
        name: "dockerimage",
        type: "string",
        description: "container image of the executors (one the operator allows: K8S_ALLOWED_IMAGES)",
        check: (image: string) => imageProblem(image) ?? policy.imageProblem(image),
      },
    ],
    kwargs: deployKwargs,
    async handler(args, ctx) {
      const name = args.deploymentname;
      const spec: DeploymentSpec = {
        deployment: name,
        namespace,
        pods: args.pods,
        executorperpod: args.executorperpod,
        ramdisk: args.ramdisk,
        image: args.dockerimage,
        executortype: args.executortype ?? name,
        ...(args.cpu ? { cpu: args.cpu } : {}),
        ...(args.memory ? { memory: args.memory } : {}),
        ...(args.cpulimit ? { cpulimit: args.cpulimit } : {}),
        ...(args.memorylimit ? { memorylimit: args.memorylimit } : {}),
        ...(args.gpu ? { gpu: args.gpu } : {}),
        ...(args.cmd ? { cmd: args.cmd.trim().split(/\s+/) } : {}),
        ...(args.env ? { env: parsedValue(parseEnv, args.env) } : {}),
        ...(args.secretenv ? { secretenv: parsedValue(secretEnv, args.secretenv) } : {}),
        ...(args.imagepullsecret ? { imagepullsecret: parsedValue(pullSecrets, args.imagepullsecret) } : {}),
        ...(args.nodeselector ? { nodeselector: parsedValue(parseNodeSelector, args.nodeselector) } : {}),
        ...(args.tolerations ? { tolerations: parsedValue(parseTolerations, args.tolerations) } : {}),
        ...(policy.isRuntimeImage(args.dockerimage) ? { probes: true } : {}),
      };
      if (spec.gpu && spec.gpu > config.gpu.max) {
        throw new ProcessError(
          `deploy: gpu ${spec.gpu} is more than the operator allows per container (K8S_MAX_GPU=${config.gpu.max})`,
        );
      }
      const typeRefused = typeProblem(spec.executortype);
      if (typeRefused) throw new ProcessError(`deploy: ${typeRefused}`);
      const preview = args.dryrun === true;
      const started = performance.now();
      return guarded("deploy", ctx.signal, () =>
        inSession(deps, name, ctx, async (session) => {
          await deps.ownership.assertNameFree("deploy", name);
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
        }),
      );
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
      return guarded("undeploy", ctx.signal, () =>
        inSession(deps, name, ctx, async (session) => {
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
        }),
      );
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
      return guarded("scale", ctx.signal, () =>
        inSession(deps, name, ctx, async (session) => {
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
        }),
      );
    },
  });

  return [deploy, undeploy, scale];
}
