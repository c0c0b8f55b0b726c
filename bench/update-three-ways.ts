/**
 * One Pulumi update of the executor's stack `cli`, three ways on the same stack and program, interleaved, for
 * bench:k8s and bench:k8s-replicas: the executor's `scale`; `Stack.up` of the inline program (what the executor
 * ran before issue 21, its stack selected once, as it cached it); and a bare `pulumi up` with the CLI of the same
 * program as a project (bench/cli-program.ts). Each one changes the number of pods, and each executor scale
 * starts from live objects equal to its record (no drift, so no refresh): the executor sets X, the bare CLI Y,
 * Stack.up X again; the next round the other way round. Each is measured with the CPU-seconds and peak RSS of
 * its child processes.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { LocalWorkspace, type PulumiFn, type Stack } from "@pulumi/pulumi/automation/index.js";
import { loadK8sConfig } from "../src/executors/k8s/config.js";
import { deploymentProgram, recorded } from "../src/executors/k8s/spec.js";
import { measureChildren, type UsageReport } from "../src/k8s/cpu-accounting.js";

const run = promisify(execFile);

/** Wall time, and the CPU-seconds and peak RSS of the child processes, of one operation. */
export interface Measured {
  ms: number;
  usage: UsageReport;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
/** Medians of measured operations: wall time (ms), children's CPU-seconds (reaped), their peak RSS (MB). */
export const wall = (xs: Measured[]) => median(xs.map((m) => m.ms));
export const cpu = (xs: Measured[]) => median(xs.map((m) => m.usage.reapedCpuSeconds));
export const rss = (xs: Measured[]) => median(xs.map((m) => m.usage.peakRssMb));
/** Median of the peak private memory (RssAnon) of the child processes (MB). */
export const privateRss = (xs: Measured[]) => median(xs.map((m) => m.usage.peakPrivateMb));

export async function measured(work: () => Promise<unknown>): Promise<Measured> {
  const { ms, usage } = await measureChildren(work);
  return { ms, usage };
}

export interface ThreeWays {
  executor: Measured[];
  stackUp: Measured[];
  bare: Measured[];
}

/** The ways, and what they updated: the stack's record and the executor's configuration, and `Stack.up`'s stack. */
export interface Updated {
  ways: ThreeWays;
  program: (pods: number) => PulumiFn;
  stack: Stack;
}

/**
 * Measures `rounds` updates each way of the stack `cli`, which the executor has deployed already. `env` is the
 * executor's environment (its K8S_* and COLONIES_* settings, the colony key included), `state` how the CLI reaches
 * the stack's state; `scale` scales `cli` through the executor.
 */
export async function updateThreeWays(options: {
  rounds: number;
  dir: string;
  env: Record<string, string>;
  state: { PULUMI_BACKEND_URL: string; PULUMI_CONFIG_PASSPHRASE: string; KUBECONFIG: string };
  scale: (pods: number) => Promise<unknown>;
}): Promise<Updated> {
  const { rounds, dir, env, state, scale } = options;
  const project = mkdtempSync(join(dir, "cli-"));
  for (const entry of ["package.json", "tsconfig.json", "node_modules", "src", "bench"])
    symlinkSync(resolve(entry), join(project, entry));
  writeFileSync(
    join(project, "Pulumi.yaml"),
    "name: colonyos-executors\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n    nodeargs: --import=tsx\nmain: bench/cli-program.ts\n",
  );
  const stack = await LocalWorkspace.selectStack(
    { projectName: "colonyos-executors", stackName: "cli", program: async () => ({}) },
    { workDir: project, envVars: state },
  );
  const current = recorded(
    Object.fromEntries(Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value])),
  );
  if (!current.spec) throw new Error("the stack cli has no recorded spec");
  const spec = current.spec;
  const config = loadK8sConfig(env);
  const before = await LocalWorkspace.selectStack(
    { projectName: "colonyos-executors", stackName: "cli", program: async () => ({}) },
    { workDir: mkdtempSync(join(dir, "stack-up-")), envVars: { ...state, PULUMI_SKIP_UPDATE_CHECK: "true" } },
  );
  const program = (pods: number) => deploymentProgram({ ...spec, pods }, config, current.identity);
  const ways: ThreeWays = { executor: [], stackUp: [], bare: [] };
  for (let i = 0; i < rounds; i++) {
    const x = 2 + (i % 2);
    const y = 5 - x;
    ways.executor.push(await measured(() => scale(x)));
    ways.bare.push(
      await measured(() =>
        run("pulumi", ["up", "--yes", "--skip-preview", "--stack", "cli", "--non-interactive"], {
          cwd: project,
          env: {
            ...process.env,
            ...env,
            ...state,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            BENCH_PROGRAM: JSON.stringify({ spec: { ...spec, pods: y }, identity: current.identity }),
          },
          maxBuffer: 64 * 1024 * 1024,
        }),
      ),
    );
    (before.workspace as LocalWorkspace).program = program(x);
    ways.stackUp.push(await measured(() => before.up({ color: "never" })));
  }
  return { ways, program, stack: before };
}
