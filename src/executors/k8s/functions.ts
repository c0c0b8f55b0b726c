/**
 * The k8s executor's Colonies functions. deploy, scale and undeploy are Pulumi updates of one stack per
 * deployment name (with `dryrun`, previews); the read functions ask the Kubernetes API directly; pods are atoms.
 */
import type { AppsV1Api, V1Deployment } from "@kubernetes/client-node";
import { type Atom, AtomNotFoundError, type Engine } from "../../atoms/engine.js";
import {
  type ArgSpec,
  type FunctionDef,
  type ParsedArgs,
  type ProcessContext,
  ProcessError,
} from "../../executor/types.js";
import type { K8sConfig } from "../../k8s/config.js";
import { LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY, MANAGED_SELECTOR } from "../../k8s/labels.js";
import type { ChangeSummary, StackManager } from "../../k8s/stacks.js";
import {
  validateDeploymentName,
  validateImage,
  validatePodName,
  validateQuantity,
} from "../../k8s/validation.js";
import { LogBatcher } from "./log-batcher.js";
import { type DeploymentSpec, deploymentProgram, isDeploymentSpec } from "./spec.js";

export interface K8sDeps {
  config: K8sConfig;
  stacks: StackManager;
  apps: AppsV1Api;
  pods: Engine<unknown>;
}

const RESTART_GRACE_SECONDS = 30;

const deploymentName: ArgSpec = {
  name: "deploymentname",
  type: "string",
  description: "deployment name (DNS-1123 label, at most 46 characters)",
};
const podName: ArgSpec = {
  name: "podname",
  type: "string",
  description: "name of a pod of a managed deployment",
};
const dryrun: ArgSpec = {
  name: "dryrun",
  type: "bool",
  description: "preview only: nothing changes, the output says what would",
};

/** The server's message of a Kubernetes API error (its body is a Status object, or its JSON text). */
function apiMessage(error: unknown): string | undefined {
  let body = (error as { body?: unknown } | null)?.body;
  if (typeof body === "string") {
    const text = body;
    try {
      body = JSON.parse(text);
    } catch {
      return text || undefined;
    }
  }
  const message = (body as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : undefined;
}

/** Kubernetes and Pulumi errors: their first meaningful line; the whole text goes to the process log. */
function kubeError(fn: string, error: unknown): never {
  if (error instanceof ProcessError) throw error;
  const message = apiMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const lines = message.split("\n").map((l) => l.trim());
  const meaningful =
    lines.find(
      (l) => /error|fail|denied|forbidden|invalid|timed out|refused/i.test(l) && !l.startsWith("at "),
    ) ??
    lines.find((l) => l !== "") ??
    message;
  throw new Error(`${fn}: ${meaningful}\n${message}`);
}

function changed(changes: ChangeSummary): boolean {
  return Object.entries(changes).some(([op, n]) => op !== "same" && n > 0);
}

/** Runs a Pulumi operation with its output batched into the Colonies process log. */
async function withPulumiLog<T>(
  ctx: ProcessContext,
  work: (onOutput: (line: string) => void) => Promise<T>,
): Promise<T> {
  const batcher = new LogBatcher(ctx.log);
  try {
    return await work(batcher.add);
  } finally {
    await batcher.close();
  }
}

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

export function k8sFunctions(deps: K8sDeps): FunctionDef[] {
  const { config, stacks, apps, pods } = deps;
  const { namespace } = config;

  async function readDeployment(fn: string, name: string): Promise<V1Deployment> {
    let deployment: V1Deployment;
    try {
      deployment = await apps.readNamespacedDeployment({ name, namespace });
    } catch (error) {
      if ((error as { code?: number }).code === 404)
        throw new ProcessError(`${fn}: unknown deployment: ${name}`);
      kubeError(fn, error);
    }
    if (deployment.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY) {
      throw new ProcessError(`${fn}: deployment ${name} is not managed by this executor`);
    }
    return deployment;
  }

  async function apply(fn: string, spec: DeploymentSpec, args: ParsedArgs, ctx: ProcessContext) {
    const started = performance.now();
    const result = await withPulumiLog(ctx, (onOutput) =>
      stacks.up(spec.deployment, deploymentProgram(spec, config), {
        dryrun: args.dryrun === true,
        signal: ctx.signal,
        onOutput,
        order: ctx.priorityTime,
      }),
    ).catch((error: unknown) => kubeError(fn, error));
    return {
      ...spec,
      dryrun: args.dryrun === true,
      changed: changed(result.changes),
      changes: result.changes,
      durationMs: Math.round(performance.now() - started),
    };
  }

  async function managedPod(fn: string, name: string, ctx: ProcessContext): Promise<Atom> {
    validatePodName(fn, name);
    try {
      return await pods.get(name, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof AtomNotFoundError) {
        throw new ProcessError(`${fn}: pod ${name} does not exist or is not managed by this executor`);
      }
      kubeError(fn, error);
    }
  }

  async function deploymentPods(fn: string, name: string, ctx: ProcessContext): Promise<Atom[]> {
    validateDeploymentName(fn, name);
    await readDeployment(fn, name);
    const atoms = await pods
      .list({ signal: ctx.signal, labels: { [LABEL_INSTANCE]: name, [LABEL_MANAGED_BY]: MANAGED_BY } })
      .catch((error: unknown) => kubeError(fn, error));
    return atoms.sort((a, b) => a.id.localeCompare(b.id));
  }

  return [
    {
      name: "deploy",
      description:
        "Deploy (create or update) executors on Kubernetes: pods x executorperpod containers of dockerimage",
      args: [
        deploymentName,
        {
          name: "pods",
          type: "int",
          min: 0,
          max: config.limits.maxPods,
          description: "number of pods (replicas)",
        },
        {
          name: "executorperpod",
          type: "int",
          min: 1,
          max: config.limits.maxExecutorsPerPod,
          description: "executor containers per pod",
        },
        { name: "ramdisk", type: "bool", description: "mount an in-memory emptyDir at /ramdisk" },
        { name: "dockerimage", type: "string", description: "container image of the executors" },
      ],
      kwargs: [
        {
          name: "executortype",
          type: "string",
          description: "executor type of the deployed executors (default: the deployment name)",
        },
        { name: "cpu", type: "string", description: "CPU request per container, e.g. 250m" },
        { name: "memory", type: "string", description: "memory request and limit per container, e.g. 256Mi" },
        {
          name: "cmd",
          type: "string",
          description: "space-separated arguments to the image entrypoint, e.g. sleep",
        },
        dryrun,
      ],
      async handler(args, ctx) {
        const name = validateDeploymentName("deploy", args.deploymentname as string);
        const executortype = (args.executortype as string | undefined) ?? name;
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(executortype)) {
          throw new ProcessError(
            `deploy: executortype "${executortype}" must be letters, digits, '.', '_' or '-'`,
          );
        }
        const spec: DeploymentSpec = {
          deployment: name,
          namespace,
          pods: args.pods as number,
          executorperpod: args.executorperpod as number,
          ramdisk: args.ramdisk as boolean,
          image: validateImage("deploy", args.dockerimage as string),
          executortype,
          ...(args.cpu ? { cpu: validateQuantity("deploy: cpu", args.cpu as string) } : {}),
          ...(args.memory ? { memory: validateQuantity("deploy: memory", args.memory as string) } : {}),
          ...(args.cmd ? { cmd: (args.cmd as string).trim().split(/\s+/) } : {}),
        };
        return [await apply("deploy", spec, args, ctx)];
      },
    },
    {
      name: "undeploy",
      description: "Remove a deployment and its Pulumi stack",
      args: [deploymentName],
      kwargs: [dryrun],
      async handler(args, ctx) {
        const name = validateDeploymentName("undeploy", args.deploymentname as string);
        const started = performance.now();
        const result = await withPulumiLog(ctx, (onOutput) =>
          stacks.destroy(name, {
            dryrun: args.dryrun === true,
            signal: ctx.signal,
            onOutput,
            order: ctx.priorityTime,
          }),
        ).catch((error: unknown) => {
          if (error instanceof ProcessError) throw new ProcessError(`undeploy: ${error.message}`);
          kubeError("undeploy", error);
        });
        return [
          {
            deployment: name,
            namespace,
            dryrun: args.dryrun === true,
            changes: result.changes,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      },
    },
    {
      name: "get_deployments",
      description: "Names of the deployments this executor manages",
      args: [],
      async handler() {
        const list = await apps
          .listNamespacedDeployment({ namespace, labelSelector: MANAGED_SELECTOR })
          .catch((error: unknown) => kubeError("get_deployments", error));
        return [
          list.items
            .map((d) => d.metadata?.name ?? "")
            .filter(Boolean)
            .sort(),
        ];
      },
    },
    {
      name: "scale",
      description: "Set the number of pods of a deployment (nothing else changes)",
      args: [
        deploymentName,
        { name: "pods", type: "int", min: 0, max: config.limits.maxPods, description: "number of pods" },
      ],
      kwargs: [dryrun],
      async handler(args, ctx) {
        const name = validateDeploymentName("scale", args.deploymentname as string);
        const pods = args.pods as number;
        const started = performance.now();
        let previous = 0;
        const result = await withPulumiLog(ctx, (onOutput) =>
          stacks.update(
            name,
            (outputs) => {
              if (!isDeploymentSpec(outputs.spec)) {
                throw new ProcessError(
                  `scale: deployment ${name} has no completed deploy on record; run deploy again`,
                );
              }
              previous = outputs.spec.pods;
              return deploymentProgram({ ...outputs.spec, pods }, config);
            },
            { dryrun: args.dryrun === true, signal: ctx.signal, onOutput, order: ctx.priorityTime },
          ),
        ).catch((error: unknown) => {
          if (error instanceof ProcessError && !error.message.startsWith("scale:")) {
            throw new ProcessError(`scale: ${error.message}`);
          }
          kubeError("scale", error);
        });
        return [
          {
            deployment: name,
            pods,
            previous,
            dryrun: args.dryrun === true,
            changes: result.changes,
            durationMs: Math.round(performance.now() - started),
          },
        ];
      },
    },
    {
      name: "get_scale",
      description: "Desired number of pods of a deployment",
      args: [deploymentName],
      async handler(args) {
        const name = validateDeploymentName("get_scale", args.deploymentname as string);
        return [(await readDeployment("get_scale", name)).spec?.replicas ?? 0];
      },
    },
    {
      name: "get_pods",
      description: "The pods of a deployment, as atoms (state, result, times, containers)",
      args: [deploymentName],
      async handler(args, ctx) {
        return [(await deploymentPods("get_pods", args.deploymentname as string, ctx)).map(atomJson)];
      },
    },
    {
      name: "pods",
      description: "Number of pods of a deployment",
      args: [deploymentName],
      async handler(args, ctx) {
        return [(await deploymentPods("pods", args.deploymentname as string, ctx)).length];
      },
    },
    {
      name: "get_containers",
      description: "Container names of a managed pod",
      args: [podName],
      async handler(args, ctx) {
        return [
          (await managedPod("get_containers", args.podname as string, ctx)).containers.map((c) => c.name),
        ];
      },
    },
    {
      name: "containers",
      description: "Number of containers of a managed pod",
      args: [podName],
      async handler(args, ctx) {
        return [(await managedPod("containers", args.podname as string, ctx)).containers.length];
      },
    },
    {
      name: "restart",
      description: "Restart a managed pod: delete it with a grace period; its ReplicaSet starts a new one",
      args: [podName],
      async handler(args, ctx) {
        const name = args.podname as string;
        await managedPod("restart", name, ctx);
        await pods
          .stop(name, { signal: ctx.signal, gracePeriodMs: RESTART_GRACE_SECONDS * 1000 })
          .catch((error: unknown) => kubeError("restart", error));
        return [{ pod: name, gracePeriodSeconds: RESTART_GRACE_SECONDS }];
      },
    },
    {
      name: "logs",
      description: "Recent log lines of a container of a managed pod",
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
      async handler(args, ctx) {
        const name = args.podname as string;
        const pod = await managedPod("logs", name, ctx);
        const container = (args.container as string | undefined) ?? pod.containers[0]?.name;
        if (container && !pod.containers.some((c) => c.name === container)) {
          throw new ProcessError(
            `logs: pod ${name} has no container ${container}; it has ${pod.containers.map((c) => c.name).join(", ")}`,
          );
        }
        const stream = await pods
          .logs(name, { signal: ctx.signal, container, tail: (args.tail as number | undefined) ?? 100 })
          .catch((error: unknown) => kubeError("logs", error));
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
        return [Buffer.concat(chunks).toString("utf8")];
      },
    },
  ];
}
