/**
 * k8s executor replicas on a shared PostgreSQL state backend, on the local cluster, in one run:
 *  1. throughput: 24 deploys of distinct names submitted at once to 1 replica, then to 3 (ops/s, p50/p95);
 *  2. cost of one Pulumi update: CPU-seconds (pulumi and provider, reaped children of this process: exact) and the
 *     peak of the summed RSS of those processes, over sequential scales, with where the CPU went per process;
 *  3. a burst of 20 scales of one name at once (coalesced) vs the same 20 one after the other (each applied):
 *     updates run (the name's version on its Lease) and wall time;
 *  4. the executor's own overhead: its scale (Colonies round trip included) vs a bare `pulumi up` of the same
 *     program and stack with the CLI, and vs the Automation API's `Stack.up` (what the executor ran before), each
 *     with its children's CPU-seconds and peak RSS;
 *  5. where one update's time goes, from Pulumi's own engine events, before (`Stack.up`: a stack selection, then
 *     `pulumi up`, then `stack output` twice and `stack history`) and after (the executor's update driver,
 *     src/k8s/pulumi-update.ts: `pulumi up` alone), on the same stack in this run; and what a refresh (run only
 *     after a takeover) costs.
 * The replicas run in this process (each its own runtime, stack manager and Lease): their updates run as child
 * processes either way, which is where the time and memory go. Needs the peers and a cluster:
 * eval "$(bash scripts/peers/all.sh --export)"; bash scripts/cluster.sh up; eval "$(bash scripts/cluster.sh env)";
 * npm run bench:k8s-replicas
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoordinationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { type EngineEvent, LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import { clusterKubeconfig, createNamespace } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, waitDone } from "../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { query, startPostgres } from "../peers/postgres.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import type { ExecutorRuntime } from "../src/executor/runtime.js";
import { k8sExecutor } from "../src/executors/k8s.js";
import { describeUsage, type UsageReport } from "../src/k8s/cpu-accounting.js";
import { runUpdate } from "../src/k8s/pulumi-update.js";
import { cpu, type Measured, measured, rss, updateThreeWays, wall } from "./update-three-ways.js";

const admin = loadKubeConfig({ path: clusterKubeconfig() });
const core = admin.makeApiClient(CoreV1Api);
const leases = admin.makeApiClient(CoordinationV1Api);
const namespace = await createNamespace(core, "bench-replicas");
const work = mkdtempSync(join(tmpdir(), "bench-replicas-"));
const kubeconfig = await executorKubeconfig(admin, namespace, work);
const server = await startColoniesServer();
const database = await startPostgres({ password: randomBytes(12).toString("hex") });
await query(database, "postgres", "CREATE DATABASE pulumi_state");
const backendUrl = `postgres://${database.user}:${database.password}@${database.host}:${database.port}/pulumi_state?sslmode=disable`;
const passphrase = randomBytes(12).toString("hex");
const env = (extra: Record<string, string>) =>
  k8sExecutorEnv(
    { kubeconfig, namespace, dataDir: mkdtempSync(join(work, "replica-")), passphrase },
    {
      K8S_PULUMI_BACKEND_URL: backendUrl,
      K8S_COORDINATION: "lease",
      K8S_STACK_CONCURRENCY: "4",
      EXECUTOR_CONCURRENCY: "8",
      K8S_MAX_DEPLOYMENTS: "100",
      K8S_MAX_CONTAINERS: "1000",
      ...extra,
    },
  );
const runtimes: ExecutorRuntime[] = [];
async function replicas(type: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++)
    runtimes.push(await startRuntime(server, k8sExecutor, env({ COLONIES_EXECUTOR_TYPE: type })));
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function call(type: string, func: string, args: string[]): Promise<number> {
  const started = performance.now();
  const done = await waitDone(server, (await submit(server, type, func, args)).processid, 900_000);
  if (done.state !== ProcessState.SUCCESS) throw new Error(`${func} ${args}: ${done.errors?.join("; ")}`);
  return performance.now() - started;
}

async function version(name: string): Promise<number> {
  const lease = await leases.readNamespacedLease({ name: `${name}.colonyos-executors`, namespace });
  return Number(lease.metadata?.annotations?.["colonyos.io/version"] ?? 0);
}

const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  console.log(line);
};

try {
  // 1. Throughput, 1 replica vs 3.
  const throughput = async (type: string, n: number) => {
    await replicas(type, n);
    const started = performance.now();
    const latencies = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call(type, "deploy", [`${type}-${i}`, "1", "1", "false", TEST_IMAGE]),
      ),
    );
    const elapsed = performance.now() - started;
    await Promise.all(Array.from({ length: 24 }, (_, i) => call(type, "undeploy", [`${type}-${i}`])));
    return { opsPerSecond: 24 / (elapsed / 1000), p50: pct(latencies, 0.5), p95: pct(latencies, 0.95) };
  };
  const one = await throughput("one", 1);
  const three = await throughput("three", 3);
  say("1. 24 deploys at once (each its own name)");
  say(`   1 replica : ${one.opsPerSecond.toFixed(2)} ops/s, p50 ${s(one.p50)}, p95 ${s(one.p95)}`);
  say(
    `   3 replicas: ${three.opsPerSecond.toFixed(2)} ops/s, p50 ${s(three.p50)}, p95 ${s(three.p95)}   throughput ratio ${(three.opsPerSecond / one.opsPerSecond).toFixed(2)}x`,
  );

  // 2. One update's cost, over sequential scales of one name.
  await call("one", "deploy", ["cost", "1", "1", "false", TEST_IMAGE]);
  const ROUNDS = 6;
  const costs: Measured[] = [];
  for (let i = 0; i < ROUNDS; i++)
    costs.push(await measured(() => call("one", "scale", ["cost", String(2 + (i % 2))])));
  const last = (xs: Measured[]) => describeUsage(xs[xs.length - 1]?.usage as UsageReport);
  say(
    `2. one Pulumi update (scale): ${cpu(costs).toFixed(2)} CPU-s of pulumi + provider, peak ${rss(costs).toFixed(0)} MB of them (medians of ${ROUNDS})`,
  );
  say(`   where: ${last(costs)}`);

  // 3. A burst of 20 scales of one name, coalesced, vs one after the other.
  await call("three", "deploy", ["burst", "1", "1", "false", TEST_IMAGE]);
  let v0 = await version("burst");
  let t = performance.now();
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => call("three", "scale", ["burst", String(1 + (i % 4))])),
  );
  const burstWall = performance.now() - t;
  const burstUpdates = (await version("burst")) - v0;
  v0 = await version("burst");
  t = performance.now();
  for (let i = 0; i < 20; i++) await call("three", "scale", ["burst", String(1 + (i % 4))]);
  const seqWall = performance.now() - t;
  const seqUpdates = (await version("burst")) - v0;
  say(
    `3. 20 scales of one name: at once ${burstUpdates} updates in ${s(burstWall)}; one after the other ${seqUpdates} updates in ${s(seqWall)}   (${(seqWall / burstWall).toFixed(1)}x faster)`,
  );

  // 4. The executor's scale vs a bare `pulumi up` of the same program and stack with the CLI.
  await call("one", "deploy", ["cli", "1", "1", "false", TEST_IMAGE]);
  const stateEnv = {
    PULUMI_BACKEND_URL: backendUrl,
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    KUBECONFIG: kubeconfig,
  };
  const {
    ways,
    program,
    stack: before,
  } = await updateThreeWays({
    rounds: 4,
    dir: work,
    env: { ...env({}), ...server.env, COLONIES_COLONY_PRVKEY: server.colonyPrvKey },
    state: stateEnv,
    scale: (pods) => call("one", "scale", ["cli", String(pods)]),
  });
  say(
    `4. scale through the executor ${s(wall(ways.executor))} vs bare \`pulumi up\` ${s(wall(ways.bare))}   ratio ${(wall(ways.executor) / wall(ways.bare)).toFixed(2)}x (goal <= 0.55x); Stack.up ${s(wall(ways.stackUp))}`,
  );
  for (const [label, xs] of [
    ["executor scale", ways.executor],
    ["Stack.up", ways.stackUp],
    ["bare `pulumi up`", ways.bare],
  ] as const)
    say(
      `   ${label.padEnd(17)} ${s(wall(xs))}  ${cpu(xs).toFixed(2)} CPU-s  ${rss(xs).toFixed(0)} MB   [${last(xs)}]`,
    );

  // 5. Where one update's time goes: Pulumi's engine events, timed as they arrive; before and after.
  type Marks = [string, number][];
  const tracer = (marks: Marks, started: number) => {
    const mark = (what: string) => marks.push([what, performance.now() - started]);
    const seen = new Set<string>();
    return {
      mark,
      onEvent: (event: EngineEvent) => {
        const pre = event.resourcePreEvent?.metadata;
        const out = event.resOutputsEvent?.metadata;
        if (event.preludeEvent && !seen.has("prelude")) mark("engine started, plugins loaded (prelude)");
        if (pre?.type === "pulumi:providers:kubernetes" && !seen.has("provider"))
          mark("program ran: provider registered");
        if (out?.type === "pulumi:providers:kubernetes") mark("provider started and configured");
        if (pre?.type === "kubernetes:apps/v1:Deployment") mark("Deployment diffed, update sent");
        if (out?.type === "kubernetes:apps/v1:Deployment")
          mark("Deployment updated (not awaited: the executor waits for its rollout)");
        if (event.summaryEvent) mark("summary (checkpoint written)");
        if (event.preludeEvent) seen.add("prelude");
        if (pre?.type === "pulumi:providers:kubernetes") seen.add("provider");
      },
    };
  };
  // Part 4 left 3 pods: before sets 2, after 3 again (each a real update of the Deployment).
  // Before: the stack selected (the executor cached that after a name's first operation), then Stack.up; the
  // CPU-seconds and RSS are those of Stack.up alone. One PulumiCommand, as the executor has (no `pulumi version`).
  const command = await PulumiCommand.get({ skipVersionCheck: true });
  const beforeMarks: Marks = [];
  const trace = tracer(beforeMarks, performance.now());
  const selected = await LocalWorkspace.selectStack(
    { projectName: "colonyos-executors", stackName: "cli", program: program(2) },
    { workDir: mkdtempSync(join(work, "trace-")), pulumiCommand: command, envVars: stateEnv },
  );
  trace.mark("stack selected (cached by the executor after the first operation on a name)");
  const beforeUsage = await measured(async () => {
    await selected.up({ onEvent: trace.onEvent, color: "never" });
    trace.mark("Stack.up returned (after `stack output` x2 and `stack history`)");
  });
  // After: what the executor runs now, `pulumi up` alone, in a workspace of its own (no stack selected).
  const workspace = await LocalWorkspace.create({
    workDir: mkdtempSync(join(work, "driver-")),
    pulumiCommand: command,
    projectSettings: { name: "colonyos-executors", runtime: "nodejs", backend: { url: backendUrl } },
    envVars: { ...stateEnv, PULUMI_SKIP_UPDATE_CHECK: "true" },
  });
  const afterMarks: Marks = [];
  const afterUsage = await measured(async () => {
    const trace = tracer(afterMarks, performance.now());
    await runUpdate({
      command,
      workDir: workspace.workDir,
      env: workspace.envVars,
      stackName: "cli",
      program: program(3),
      onEvent: trace.onEvent,
    });
    trace.mark("update returned (pulumi up exited)");
  });
  const refreshStarted = performance.now();
  await before.refresh();
  const refreshMs = performance.now() - refreshStarted;
  say("5. one update, step by step (ms since the operation began), before and after, same stack:");
  say("   | step | before (Stack.up) | after (pulumi up alone) |");
  say("   |---|---|---|");
  const steps = [...new Set([...beforeMarks, ...afterMarks].map(([what]) => what))];
  for (const step of steps) {
    const at = (marks: Marks) => {
      const found = marks.find(([what]) => what === step);
      return found ? found[1].toFixed(0) : "-";
    };
    say(`   | ${step} | ${at(beforeMarks)} | ${at(afterMarks)} |`);
  }
  say(
    `   | CPU-s of children / peak RSS of the update | ${beforeUsage.usage.reapedCpuSeconds.toFixed(2)} / ${beforeUsage.usage.peakRssMb.toFixed(0)} MB | ${afterUsage.usage.reapedCpuSeconds.toFixed(2)} / ${afterUsage.usage.peakRssMb.toFixed(0)} MB |`,
  );
  say(`   before: ${describeUsage(beforeUsage.usage)}`);
  say(`   after:  ${describeUsage(afterUsage.usage)}`);
  say(`   a refresh (run only on a stack taken over from a dead replica) costs ${s(refreshMs)}`);

  say("\ngoals, this run:");
  say("| measure | executor | baseline (same run) | ratio | goal |\n|---|---|---|---|---|");
  say(
    `| executor \`scale\` vs a bare \`pulumi up\` of the same program and stack | ${wall(ways.executor).toFixed(0)} ms | ${wall(ways.bare).toFixed(0)} ms (Stack.up ${wall(ways.stackUp).toFixed(0)} ms) | ${(wall(ways.executor) / wall(ways.bare)).toFixed(2)}x | <= 0.55x |`,
  );
  say(
    `| CPU-seconds per update (engine + provider + CLI children) | ${cpu(costs).toFixed(2)} | Stack.up ${cpu(ways.stackUp).toFixed(2)}; bare ${cpu(ways.bare).toFixed(2)} | ${(cpu(costs) / cpu(ways.stackUp)).toFixed(2)}x of Stack.up | <= 1.5 |`,
  );
  say(
    `| peak RSS of children per update | ${rss(costs).toFixed(0)} MB | Stack.up ${rss(ways.stackUp).toFixed(0)} MB; bare ${rss(ways.bare).toFixed(0)} MB | ${(rss(costs) / rss(ways.stackUp)).toFixed(2)}x of Stack.up | <= 180 MB |`,
  );
  say(
    "(deploy-to-ready vs a direct create and 10 concurrent deploys vs one: npm run bench:k8s; 1 -> 3 replicas: part 1)",
  );
} finally {
  for (const runtime of runtimes) await runtime.shutdown();
  await server.stop();
  await database.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
}
