/**
 * k8s executor replicas on a shared PostgreSQL state backend, on the local cluster, in one run:
 *  1. throughput: 24 deploys of distinct names submitted at once to 1 replica, then to 3 (ops/s, p50/p95);
 *  2. cost of one Pulumi update: CPU-seconds (pulumi and provider, reaped children of this process) and the
 *     peak memory of those processes, over sequential scales;
 *  3. a burst of 20 scales of one name at once (coalesced) vs the same 20 one after the other (each applied):
 *     updates run (the name's version on its Lease) and wall time;
 *  4. the executor's own overhead: its scale (Colonies round trip included) vs a bare `pulumi up` of the same
 *     program and stack with the CLI;
 *  5. where one update's time goes, from Pulumi's own engine events, and what the cuts the executor makes save
 *     (the stack selection it caches, the refresh it runs only after a takeover).
 * The replicas run in this process (each its own runtime, stack manager and Lease): their updates run as child
 * processes either way, which is where the time and memory go. Needs the peers and a cluster:
 * eval "$(bash scripts/peers/all.sh --export)"; bash scripts/cluster.sh up; eval "$(bash scripts/cluster.sh env)";
 * npm run bench:k8s-replicas
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { CoordinationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { type EngineEvent, LocalWorkspace } from "@pulumi/pulumi/automation/index.js";
import { clusterKubeconfig, createNamespace } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, waitDone } from "../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { query, startPostgres } from "../peers/postgres.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import type { ExecutorRuntime } from "../src/executor/runtime.js";
import { loadK8sConfig } from "../src/executors/k8s/config.js";
import { deploymentProgram, recorded } from "../src/executors/k8s/spec.js";
import { k8sExecutor } from "../src/executors/k8s.js";

const run = promisify(execFile);
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

/** CPU-seconds of this process's reaped children (pulumi, and the providers pulumi reaped). */
function childCpuSeconds(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  // cutime and cstime are fields 16 and 17 of stat, i.e. 13 and 14 after the command name.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** RSS (MB) of this process's descendants whose command line mentions pulumi. */
async function pulumiRss(): Promise<number> {
  const { stdout } = await run("ps", ["-eo", "pid=,ppid=,rss=,args="]);
  const rows = stdout
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/));
  const family = new Set([String(process.pid)]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of rows) {
      if (pid && ppid && family.has(ppid) && !family.has(pid)) grew = family.add(pid) !== undefined;
    }
  }
  return rows
    .filter(
      ([pid, , , ...args]) =>
        pid !== String(process.pid) && family.has(pid ?? "") && /pulumi/.test(args.join(" ")),
    )
    .reduce((sum, [, , rss]) => sum + Number(rss) / 1024, 0);
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
    const wall = performance.now() - started;
    await Promise.all(Array.from({ length: 24 }, (_, i) => call(type, "undeploy", [`${type}-${i}`])));
    return { opsPerSecond: 24 / (wall / 1000), p50: pct(latencies, 0.5), p95: pct(latencies, 0.95) };
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
  let peak = 0;
  const sampler = setInterval(() => void pulumiRss().then((mb) => (peak = Math.max(peak, mb))), 100);
  const cpuBefore = childCpuSeconds();
  const ROUNDS = 6;
  for (let i = 0; i < ROUNDS; i++) await call("one", "scale", ["cost", String(2 + (i % 2))]);
  clearInterval(sampler);
  say(
    `2. one Pulumi update (scale): ${((childCpuSeconds() - cpuBefore) / ROUNDS).toFixed(2)} CPU-s of pulumi + provider, peak ${peak.toFixed(0)} MB of them`,
  );

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
  const project = mkdtempSync(join(work, "cli-"));
  for (const entry of ["package.json", "tsconfig.json", "node_modules", "src", "bench"])
    symlinkSync(resolve(entry), join(project, entry));
  writeFileSync(
    join(project, "Pulumi.yaml"),
    "name: colonyos-executors\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n    nodeargs: --import=tsx\nmain: bench/cli-program.ts\n",
  );
  const executorEnv = env({});
  const stack = await LocalWorkspace.selectStack(
    { projectName: "colonyos-executors", stackName: "cli", program: async () => ({}) },
    {
      workDir: project,
      envVars: {
        PULUMI_BACKEND_URL: backendUrl,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
        KUBECONFIG: kubeconfig,
      },
    },
  );
  const current = recorded(
    Object.fromEntries(Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value])),
  );
  const executorTimes: number[] = [];
  const cliTimes: number[] = [];
  for (let i = 0; i < 4; i++) {
    executorTimes.push(await call("one", "scale", ["cli", String(2 + (i % 2))]));
    const spec = { ...current.spec, pods: 1 + (i % 2) };
    t = performance.now();
    await run("pulumi", ["up", "--yes", "--skip-preview", "--stack", "cli", "--non-interactive"], {
      cwd: project,
      env: {
        ...process.env,
        ...executorEnv,
        ...server.env,
        COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
        PULUMI_BACKEND_URL: backendUrl,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        BENCH_PROGRAM: JSON.stringify({ spec, identity: current.identity }),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    cliTimes.push(performance.now() - t);
  }
  const median = (xs: number[]) => pct(xs, 0.5);
  say(
    `4. scale through the executor ${s(median(executorTimes))} vs bare \`pulumi up\` ${s(median(cliTimes))}   ratio ${(median(executorTimes) / median(cliTimes)).toFixed(2)}x (target <= 1.1x)`,
  );

  // 5. Where one update's time goes: Pulumi's engine events, timed as they arrive.
  const config = loadK8sConfig({
    ...executorEnv,
    ...server.env,
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
  });
  const marks: [string, number][] = [];
  const started = performance.now();
  const mark = (what: string) => marks.push([what, performance.now() - started]);
  const selected = await LocalWorkspace.selectStack(
    {
      projectName: "colonyos-executors",
      stackName: "cli",
      program: deploymentProgram({ ...current.spec, pods: 3 } as never, config, current.identity),
    },
    {
      workDir: mkdtempSync(join(work, "trace-")),
      envVars: {
        PULUMI_BACKEND_URL: backendUrl,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
        KUBECONFIG: kubeconfig,
      },
    },
  );
  mark("stack selected (cached by the executor after the first operation on a name)");
  const seen = new Set<string>();
  const onEvent = (event: EngineEvent) => {
    const pre = event.resourcePreEvent?.metadata;
    const out = event.resOutputsEvent?.metadata;
    if (event.preludeEvent && !seen.has("prelude")) mark("engine started, plugins loaded (prelude)");
    if (pre?.type === "pulumi:providers:kubernetes" && !seen.has("provider"))
      mark("program ran: provider registered");
    if (out?.type === "pulumi:providers:kubernetes") mark("provider started and configured");
    if (pre?.type === "kubernetes:apps/v1:Deployment") mark("Deployment diffed, update sent");
    if (out?.type === "kubernetes:apps/v1:Deployment") mark("Deployment updated and awaited (ready)");
    if (event.summaryEvent) mark("summary (checkpoint written)");
    if (event.preludeEvent) seen.add("prelude");
    if (pre?.type === "pulumi:providers:kubernetes") seen.add("provider");
  };
  await selected.up({ onEvent });
  mark("pulumi exited");
  const refreshStarted = performance.now();
  await selected.refresh();
  const refreshMs = performance.now() - refreshStarted;
  say("5. one update, step by step (ms since the operation began):");
  for (const [what, ms] of marks) say(`   ${ms.toFixed(0).padStart(6)}  ${what}`);
  say(`   a refresh (run only on a stack taken over from a dead replica) costs ${s(refreshMs)}`);
} finally {
  for (const runtime of runtimes) await runtime.shutdown();
  await server.stop();
  await database.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
}
