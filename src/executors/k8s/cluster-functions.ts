/**
 * The functions that go straight to the Kubernetes API: the reads (deployments, scale, pods as atoms,
 * containers, logs) and restart. Each sees only objects of this executor's own stacks (ownership.ts).
 */
import { type Atom, AtomNotFoundError } from "../../atoms/engine.js";
import { defineFunction } from "../../executor/define.js";
import { type FunctionDef, type ProcessContext, ProcessError } from "../../executor/types.js";
import { ownedLabels } from "../../k8s/labels.js";
import { deploymentName, dryrun, podName } from "./arguments.js";
import type { K8sDeps } from "./deps.js";

const RESTART_GRACE_SECONDS = 30;

function atomJson(atom: Atom) {
  return {
    name: atom.id,
    state: atom.state,
    result: atom.result ?? null,
    createdAt: atom.createdAt?.toISOString() ?? null,
    startedAt: atom.startedAt?.toISOString() ?? null,
    stoppedAt: atom.stoppedAt?.toISOString() ?? null,
    exitCode: atom.exitCode ?? null,
    reason: atom.reason ?? null,
    message: atom.message ?? null,
    containers: atom.containers.map((c) => ({
      name: c.name,
      state: c.state,
      result: c.result ?? null,
      exitCode: c.exitCode ?? null,
      reason: c.reason ?? null,
      message: c.message ?? null,
      restarts: c.restarts,
    })),
  };
}

/** Reads at most `limit` bytes of a stream, then stops it. */
async function readCapped(stream: AsyncIterable<unknown> & { destroy(): void }, limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.from(chunk as Buffer);
    chunks.push(buffer.subarray(0, limit - size));
    size += buffer.length;
    if (size >= limit) {
      stream.destroy();
      break;
    }
  }
  return { text: Buffer.concat(chunks).toString("utf8"), truncated: size >= limit };
}

export function clusterFunctions(deps: K8sDeps): FunctionDef[] {
  const { pods, ownership, config } = deps;

  /** A pod of one of our deployments, or a ProcessError saying it is none. */
  async function ownedPod(fn: string, name: string, ctx: ProcessContext): Promise<Atom> {
    const notOurs = new ProcessError(`${fn}: pod ${name} does not exist or is not managed by this executor`);
    let atom: Atom;
    try {
      atom = await pods.get(name, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof AtomNotFoundError) throw notOurs;
      throw error;
    }
    if (!ownership.owner(atom.labels)) throw notOurs;
    return atom;
  }

  /** The pods of one of our deployments, or (no name) of all of them. */
  async function deploymentPods(name: string | undefined, ctx: ProcessContext): Promise<Atom[]> {
    if (name) await ownership.deployment(name, ctx.signal);
    const atoms = await pods.list({ signal: ctx.signal, labels: ownedLabels(config.pulumi.project, name) });
    return atoms
      .filter((atom) => ownership.owner(atom.labels) !== undefined)
      .sort((a, b) => a.id.localeCompare(b.id));
  }
  const anyDeployment = {
    ...deploymentName,
    optional: true,
    description: "deployment name (default: every deployment this executor manages)",
  } as const;

  return [
    defineFunction({
      name: "get_deployments",
      description: "Names of the deployments this executor manages",
      args: [],
      handler: async () => [await ownership.deploymentNames()],
    }),
    defineFunction({
      name: "get_scale",
      description: "Desired number of pods of a deployment",
      args: [deploymentName],
      handler: async (args, ctx) => [
        (await ownership.deployment(args.deploymentname, ctx.signal)).spec?.replicas ?? 0,
      ],
    }),
    defineFunction({
      name: "get_pods",
      description:
        "The pods of a deployment (or of every managed one), as atoms (state, result, times, containers)",
      args: [anyDeployment],
      handler: async (args, ctx) => [(await deploymentPods(args.deploymentname, ctx)).map(atomJson)],
    }),
    defineFunction({
      name: "pods",
      description: "Number of pods of a deployment (or of every managed one)",
      args: [anyDeployment],
      handler: async (args, ctx) => [(await deploymentPods(args.deploymentname, ctx)).length],
    }),
    defineFunction({
      name: "get_containers",
      description: "Container names of a managed pod",
      args: [podName],
      handler: async (args, ctx) => [
        (await ownedPod("get_containers", args.podname, ctx)).containers.map((c) => c.name),
      ],
    }),
    defineFunction({
      name: "containers",
      description: "Number of containers of a managed pod",
      args: [podName],
      handler: async (args, ctx) => [(await ownedPod("containers", args.podname, ctx)).containers.length],
    }),
    defineFunction({
      name: "restart",
      description: "Restart a managed pod: delete it with a grace period; its ReplicaSet starts a new one",
      args: [podName],
      kwargs: [dryrun],
      async handler(args, ctx) {
        const name = args.podname;
        await ownedPod("restart", name, ctx);
        const preview = args.dryrun === true;
        if (!preview) {
          await pods.stop(name, { signal: ctx.signal, gracePeriodMs: RESTART_GRACE_SECONDS * 1000 });
        }
        return [{ pod: name, gracePeriodSeconds: RESTART_GRACE_SECONDS, dryrun: preview }];
      },
    }),
    defineFunction({
      name: "logs",
      description: `Recent log lines of a container of a managed pod (at most limitbytes, default ${config.limits.logBytes.default})`,
      args: [
        podName,
        {
          name: "container",
          type: "string",
          optional: true,
          description: "container name (default: the first)",
        },
        {
          name: "tail",
          type: "int",
          min: 1,
          max: 10_000,
          optional: true,
          description: "number of lines (default 100)",
        },
      ],
      kwargs: [
        {
          name: "limitbytes",
          type: "int",
          min: 1,
          max: config.limits.logBytes.max,
          description: `bytes returned at most (default ${config.limits.logBytes.default})`,
        },
      ],
      async handler(args, ctx) {
        const name = args.podname;
        const pod = await ownedPod("logs", name, ctx);
        const container = args.container ?? pod.containers[0]?.name;
        if (container && !pod.containers.some((c) => c.name === container)) {
          throw new ProcessError(
            `logs: pod ${name} has no container ${container}; it has ${pod.containers.map((c) => c.name).join(", ")}`,
          );
        }
        const limit = args.limitbytes ?? config.limits.logBytes.default;
        const stream = await pods.logs(name, {
          signal: ctx.signal,
          container,
          tail: args.tail ?? 100,
          limitBytes: limit,
        });
        const { text, truncated } = await readCapped(stream, limit);
        if (truncated) await ctx.log(`logs: the output was cut at ${limit} bytes (limitbytes)`);
        return [text];
      },
    }),
  ];
}
