/**
 * deploy's declaration: its positional arguments and kwargs, each with its rule (the operator's policy and
 * limits included), and the DeploymentSpec a parsed call describes. Everything here is checked before the
 * handler runs; what is left for the handler is the work.
 */
import type { ArgsOf } from "../../executor/define.js";
import { type ArgSpec, ProcessError } from "../../executor/types.js";
import { deploymentName, dryrun } from "./arguments.js";
import type { K8sConfig } from "./config.js";
import type { DeployPolicy } from "./policy.js";
import type { DeploymentSpec } from "./spec.js";
import { typeProblem as ownTypeProblem, specProblem } from "./spec-check.js";
import { type Parsed, parseEnv, parseNodeSelector, parseSecretEnv, parseTolerations } from "./spec-kwargs.js";
import { pullSecretProblem } from "./spec-rules.js";
import { imageProblem, quantityProblem } from "./validation.js";

export function deployDeclaration(config: K8sConfig, policy: DeployPolicy) {
  const { namespace, limits } = config;
  const secretEnv = (text: string) => parseSecretEnv(text, (secret) => policy.secretProblem(secret));
  const pullSecrets = (text: string): Parsed<string[]> => {
    const names = text
      .split(";")
      .map((n) => n.trim())
      .filter(Boolean);
    for (const name of names) {
      const problem = pullSecretProblem("imagepullsecret", name, (secret) => policy.secretProblem(secret));
      if (problem) return { problem };
    }
    return { value: names };
  };
  const tolerations = (text: string) => parseTolerations(text, (key) => policy.tolerationProblem(key));
  const typeProblem = (type: string) => ownTypeProblem(type, config.ownType);

  const positional = [
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
  ] as const satisfies readonly ArgSpec[];

  const named = [
    {
      name: "executortype",
      type: "string",
      description:
        "executor type of the deployed executors (default: the deployment name; others as K8S_ALLOWED_EXECUTOR_TYPES allows)",
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
      description:
        "plain environment, NAME=VALUE items separated by ';', e.g. env:A=1;B=two (names the operator allows: K8S_ALLOWED_ENV, K8S_PROFILES)",
      parse: parseEnv,
    },
    {
      name: "secretenv",
      type: "string",
      description:
        "environment from keys of Secrets the operator binds to the image and cmd (K8S_PROFILES), e.g. secretenv:DB_PASSWORD=pg-secret/password",
      parse: secretEnv,
    },
    {
      name: "imagepullsecret",
      type: "string",
      description:
        "Secret(s) with registry credentials for the image, ';'-separated (bound to the image by K8S_PROFILES)",
      parse: pullSecrets,
    },
    {
      name: "nodeselector",
      type: "string",
      description: "node labels the pods must run on, e.g. nodeselector:disk=ssd;zone=a",
      parse: parseNodeSelector,
    },
    {
      name: "tolerations",
      type: "string",
      description:
        "taints the pods tolerate (keys the operator allows: K8S_ALLOWED_TOLERATIONS), KEY[=VALUE][=EFFECT] items separated by ';', e.g. gpu=true=NoSchedule",
      parse: tolerations,
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

  /** The spec a call describes; throws ProcessError for rules that span arguments. */
  function specOf(args: ArgsOf<typeof positional, typeof named>): DeploymentSpec {
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
      ...(args.env ? { env: args.env } : {}),
      ...(args.secretenv ? { secretenv: args.secretenv } : {}),
      ...(args.imagepullsecret ? { imagepullsecret: args.imagepullsecret } : {}),
      ...(args.nodeselector ? { nodeselector: args.nodeselector } : {}),
      ...(args.tolerations ? { tolerations: args.tolerations } : {}),
      ...(policy.isRuntimeImage(args.dockerimage) ? { probes: true } : {}),
    };
    const refused = specProblem(spec, config, policy);
    if (refused) throw new ProcessError(`deploy: ${refused}`);
    return spec;
  }

  return { args: positional, kwargs: named, specOf };
}
