/**
 * Autoscaling benchmark on the local cluster, with the local pod runner really running the sleep executors: a
 * burst of N sleeps drained by (a) a fixed deployment of 1 pod, (b) a fixed deployment of MAX pods, (c) a
 * deployment autoscaled 0..MAX from the Colonies queue — one after the other in one run. For each: the time from
 * the first submission until every sleep is done, and the pod-seconds spent over one period of PERIOD seconds from
 * the first submission (a workload with one such burst per period): what the user pays for. Ratios are against
 * (b), the fastest fixed choice.
 * Needs the peers and a cluster: eval "$(bash scripts/peers/all.sh --export)"; bash scripts/cluster.sh up;
 * eval "$(bash scripts/cluster.sh env)"; npm run build; npm run bench:k8s-autoscale
 */
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { clusterKubeconfig } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startExecutorPodRunner, startRuntime, submit, waitDone } from "../peers/executor.js";
import { k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import { k8sExecutor } from "../src/executors/k8s.js";

const N = Number(process.env.BENCH_BURST ?? 40);
const SLEEP_MS = Number(process.env.BENCH_SLEEP_MS ?? 1000);
const MAX = 4;
const COOLDOWN_SECONDS = 10;
const PERIOD_SECONDS = Number(process.env.BENCH_PERIOD ?? 90);

const kubeconfig = clusterKubeconfig();
const kc = loadKubeConfig({ path: kubeconfig });
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const namespace = `bench-as-${randomBytes(3).toString("hex")}`;

await core.createNamespace({ body: { metadata: { name: namespace } } });
const server = await startColoniesServer();
const runtime = await startRuntime(
  server,
  k8sExecutor,
  k8sExecutorEnv(
    { kubeconfig, namespace, dataDir: await mkdtemp(join(tmpdir(), "k8s-as-bench-")), passphrase: "bench" },
    {
      K8S_RUNTIME_IMAGES: "registry.example.com/colonyos/*",
      K8S_AUTOSCALE_INTERVAL: "2",
      EXECUTOR_CONCURRENCY: "4",
    },
  ),
);
const runner = await startExecutorPodRunner(kc, namespace);

async function call(func: string, args: string[], kwargs: Record<string, string> = {}): Promise<void> {
  const done = await waitDone(server, (await submit(server, "k8s", func, args, kwargs)).processid, 600_000);
  if (done.state !== ProcessState.SUCCESS) throw new Error(`${func} failed: ${done.errors?.join("; ")}`);
}

async function readyPods(name: string): Promise<number> {
  return (await apps.readNamespacedDeployment({ name, namespace })).status?.readyReplicas ?? 0;
}

interface Result {
  what: string;
  drainMs: number;
  podSeconds: number;
  peak: number;
}

/** Submits the burst to `type`, and integrates the deployment's ready pods over one period. */
async function burst(what: string, name: string, type: string): Promise<Result> {
  let podSeconds = 0;
  let peak = 0;
  let last = performance.now();
  const sampler = setInterval(async () => {
    const pods = await readyPods(name).catch(() => 0);
    const now = performance.now();
    podSeconds += (pods * (now - last)) / 1000;
    last = now;
    peak = Math.max(peak, pods);
  }, 250);
  try {
    const started = performance.now();
    const ids = [];
    for (let i = 0; i < N; i++) ids.push((await submit(server, type, "sleep", [String(SLEEP_MS)])).processid);
    for (const id of ids) {
      const done = await waitDone(server, id, 600_000);
      if (done.state !== ProcessState.SUCCESS) throw new Error(`a sleep failed: ${done.errors?.join("; ")}`);
    }
    const drainMs = performance.now() - started;
    const rest = PERIOD_SECONDS * 1000 - (performance.now() - started);
    if (rest < 0) throw new Error(`${what}: the burst took longer than the period (${PERIOD_SECONDS} s)`);
    await new Promise((r) => setTimeout(r, rest));
    return { what, drainMs, podSeconds, peak };
  } finally {
    clearInterval(sampler);
  }
}

async function fixed(pods: number): Promise<Result> {
  const name = `fixed-${pods}`;
  await call("deploy", [name, String(pods), "1", "false", TEST_IMAGE], { executortype: name, cmd: "sleep" });
  while ((await readyPods(name)) < pods) await new Promise((r) => setTimeout(r, 250));
  const result = await burst(`fixed ${pods} pod(s)`, name, name);
  await call("undeploy", [name]);
  return result;
}

async function autoscaled(): Promise<Result> {
  const name = "autoscaled";
  await call("deploy", [name, "0", "1", "false", TEST_IMAGE], { executortype: name, cmd: "sleep" });
  await call("autoscale", [name, "0", String(MAX)], { cooldown: String(COOLDOWN_SECONDS) });
  const result = await burst(`autoscale 0..${MAX}`, name, name);
  await call("undeploy", [name]);
  return result;
}

try {
  const results = [await fixed(1), await fixed(MAX), await autoscaled()];
  const base = results[1] as Result;
  console.log(`\nautoscaling benchmark: a burst of ${N} x sleep(${SLEEP_MS} ms), one executor per pod\n`);
  for (const r of results) {
    console.log(
      `${r.what.padEnd(16)} drained in ${(r.drainMs / 1000).toFixed(1).padStart(6)} s (${(r.drainMs / base.drainMs).toFixed(2)}x)   ${r.podSeconds.toFixed(0).padStart(5)} pod-seconds (${(r.podSeconds / base.podSeconds).toFixed(2)}x)   peak ${r.peak} pods`,
    );
  }
  console.log(
    `\npod-seconds over one period of ${PERIOD_SECONDS} s from the first submission (one burst per period); autoscale cooldown ${COOLDOWN_SECONDS} s`,
  );
} finally {
  await runner.stop();
  await runtime.shutdown();
  await server.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
}
