/**
 * k8s executor benchmark on the local cluster, printing ratios against baselines run side by side:
 *  - deploy-to-ready through Colonies + the executor (a Pulumi update) vs a direct create of the same Deployment
 *    with @kubernetes/client-node and a wait for readiness (the floor);
 *  - scale latency, the same way;
 *  - `colonies blueprint set --key spec.replicas` (the official CLI) until the blueprint's status shows the pods
 *    running, vs the scale function, same sizes, same run;
 *  - wall time of 10 concurrent deploys (different names) vs one;
 *  - the same deploys, scales and burst through a second executor whose stacks' secrets a key manager encrypts
 *    (K8S_PULUMI_SECRETS_PROVIDER=awskms://..., against local-kms: peers/kms.ts) instead of the passphrase,
 *    interleaved with the first, with the CPU-seconds and memory of each one's children;
 *  - one update, three ways on the same stack and program, interleaved: the executor's scale (Colonies round
 *    trip included), the Automation API's `Stack.up` (what the executor ran before: `pulumi up`, then
 *    `stack output` twice and `stack history`), and a bare `pulumi up` of the project with the CLI (its nodejs
 *    language host running the program): wall time, CPU-seconds of the child processes (reaped: exact) and the
 *    peak of their summed RSS, with where the CPU went per kind of process;
 *  - peak RSS of the executor process and, separately, of its pulumi/provider child processes;
 *  - the issue's goals table, every row with the baseline of this run.
 * Needs the peers and a cluster: eval "$(bash scripts/peers/all.sh --export)"; bash scripts/cluster.sh up;
 * eval "$(bash scripts/cluster.sh env)"; npm run bench:k8s
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { AppsV1Api, CoreV1Api, type V1Deployment } from "@kubernetes/client-node";
import { clusterKubeconfig } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, userClient, waitDone } from "../peers/executor.js";
import { k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { startKms } from "../peers/kms.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import { executorDeploymentDefinition, KIND } from "../src/executors/k8s/blueprint/definition.js";
import { k8sExecutor } from "../src/executors/k8s.js";
import { ChildUsage, describeUsage, type UsageReport } from "../src/k8s/cpu-accounting.js";
import { deploymentLabels, selectorLabels } from "../src/k8s/labels.js";
import {
  cpu,
  type Measured,
  measured,
  median,
  privateRss,
  rss,
  updateThreeWays,
  wall,
} from "./update-three-ways.js";

const ROUNDS = 5;
const IMAGE = TEST_IMAGE;
const kubeconfig = clusterKubeconfig();
const kc = loadKubeConfig({ path: kubeconfig });
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const namespace = `bench-${randomBytes(3).toString("hex")}`;

async function ready(name: string, replicas: number): Promise<void> {
  for (;;) {
    const d = await apps.readNamespacedDeployment({ name, namespace });
    if (
      (d.status?.readyReplicas ?? 0) === replicas &&
      d.status?.observedGeneration === d.metadata?.generation
    )
      return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function directDeployment(name: string, pods: number): V1Deployment {
  const labels = deploymentLabels(name, "bench");
  return {
    metadata: { name, namespace, labels },
    spec: {
      replicas: pods,
      selector: { matchLabels: selectorLabels(name) },
      template: {
        metadata: { labels },
        spec: {
          containers: Array.from({ length: 2 }, (_, i) => ({
            name: `executor-${i}`,
            image: IMAGE,
            env: [{ name: "COLONIES_EXECUTOR_NAME", value: `x-${i}` }],
          })),
        },
      },
    },
  };
}

await core.createNamespace({ body: { metadata: { name: namespace } } });
const server = await startColoniesServer();
const dataDir = await mkdtemp(join(tmpdir(), "k8s-bench-"));
const passphrase = "bench";
const executorEnv = k8sExecutorEnv(
  { kubeconfig, namespace, dataDir, passphrase },
  // 10 concurrent deploys of 2 x 2 containers: the budgets allow it.
  {
    K8S_STACK_CONCURRENCY: "10",
    EXECUTOR_CONCURRENCY: "12",
    K8S_MAX_DEPLOYMENTS: "40",
    K8S_MAX_CONTAINERS: "400",
  },
);
const runtime = await startRuntime(server, k8sExecutor, executorEnv);
// The second executor: same settings, its own namespace, data dir and type, a key manager instead of a passphrase.
const kms = await startKms();
const kmsNamespace = `${namespace}-kms`;
await core.createNamespace({ body: { metadata: { name: kmsNamespace } } });
const kmsEnv = k8sExecutorEnv(
  {
    kubeconfig,
    namespace: kmsNamespace,
    dataDir: await mkdtemp(join(tmpdir(), "k8s-bench-kms-")),
    passphrase: "",
  },
  {
    K8S_STACK_CONCURRENCY: "10",
    EXECUTOR_CONCURRENCY: "12",
    K8S_MAX_DEPLOYMENTS: "40",
    K8S_MAX_CONTAINERS: "400",
    COLONIES_EXECUTOR_TYPE: "k8s-kms",
    K8S_PULUMI_SECRETS_PROVIDER: kms.secretsProvider,
    ...kms.env,
  },
);
delete kmsEnv.K8S_PULUMI_PASSPHRASE;
const kmsRuntime = await startRuntime(server, k8sExecutor, kmsEnv);
const backendUrl = pathToFileURL(join(dataDir, "state")).href;
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss / 1048576);
}, 250);
const children = new ChildUsage(/pulumi/, 250);
await children.start();

const specDir = await mkdtemp(join(tmpdir(), "k8s-bench-specs-"));
function specFile(name: string, content: unknown): string {
  const file = join(specDir, `${name}.json`);
  writeFileSync(file, JSON.stringify(content));
  return file;
}
// The owner registers the definition with this executor's type as handler.
await server.cli(
  ["blueprint", "definition", "add", "--spec", specFile("def", executorDeploymentDefinition("k8s"))],
  {
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
  },
);

/** Waits until the blueprint's status shows `running` pods for its generation `generation`. */
async function blueprintRunning(name: string, running: number, generation: number): Promise<void> {
  for (;;) {
    const blueprint = await userClient(server).getBlueprint(server.colonyName, name, server.userPrvKey);
    const status = blueprint.status ?? {};
    if (status.runningInstances === running && status.generation === generation) return;
    if (typeof status.message === "string") throw new Error(`blueprint ${name}: ${status.message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function viaExecutor(func: string, args: string[], type = "k8s"): Promise<number> {
  const started = performance.now();
  const done = await waitDone(server, (await submit(server, type, func, args)).processid, 600_000);
  if (done.state !== ProcessState.SUCCESS) throw new Error(`${func} failed: ${done.errors?.join("; ")}`);
  return performance.now() - started;
}

/**
 * 10 deploys submitted at once, until all are done: wall time. The harness asks about one unfinished process at
 * a time, every 50 ms while it is still running (as waitDone does for one call), so that its own polling loads
 * the machine (signatures, the Colonies server, its database) no more than while one call is measured.
 */
async function burst(type: string, prefix: string): Promise<number> {
  const started = performance.now();
  const pending = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const { processid } = await submit(server, type, "deploy", [
        `${prefix}-${i}`,
        "1",
        "1",
        "false",
        IMAGE,
      ]);
      return processid;
    }),
  );
  const client = userClient(server);
  for (let i = 0; pending.length > 0; i %= Math.max(pending.length, 1)) {
    const process = await client.getProcess(pending[i] as string, server.userPrvKey);
    if (process.state === ProcessState.FAILED)
      throw new Error(`deploy failed: ${process.errors?.join("; ")}`);
    if (process.state === ProcessState.SUCCESS) {
      pending.splice(i, 1);
      continue;
    }
    i++;
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - started;
}

try {
  const deployExec: number[] = [];
  const deployDirect: number[] = [];
  const scaleExec: number[] = [];
  const scaleDirect: number[] = [];
  // Each executor's deploys and scales, with what their children cost: passphrase vs key manager.
  const deploys: Record<string, Measured[]> = { k8s: [], "k8s-kms": [] };
  const scales: Record<string, Measured[]> = { k8s: [], "k8s-kms": [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const type of ["k8s", "k8s-kms"]) {
      const name = `${type}-${i}`;
      deploys[type]?.push(
        await measured(() => viaExecutor("deploy", [name, "2", "2", "false", IMAGE], type)),
      );
      scales[type]?.push(await measured(() => viaExecutor("scale", [name, "3"], type)));
    }
    deployExec.push(await viaExecutor("deploy", [`exec-${i}`, "2", "2", "false", IMAGE]));
    let t = performance.now();
    await apps.createNamespacedDeployment({ namespace, body: directDeployment(`direct-${i}`, 2) });
    await ready(`direct-${i}`, 2);
    deployDirect.push(performance.now() - t);

    scaleExec.push(await viaExecutor("scale", [`exec-${i}`, "3"]));
    t = performance.now();
    await apps.patchNamespacedDeploymentScale({
      name: `direct-${i}`,
      namespace,
      body: [{ op: "replace", path: "/spec/replicas", value: 3 }],
    });
    await ready(`direct-${i}`, 3);
    scaleDirect.push(performance.now() - t);
  }

  // The same change declared: a blueprint of 2 pods set to 3, timed from the CLI call to the status showing them.
  const setExec: number[] = [];
  const scaleSide: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const name = `bp-${i}`;
    const spec = { image: IMAGE, executorType: name, replicas: 2, executorsPerPod: 2 };
    await server.cli([
      "blueprint",
      "add",
      "--spec",
      specFile(name, { kind: KIND, metadata: { name }, spec }),
    ]);
    await blueprintRunning(name, 2, 0);
    const t = performance.now();
    await server.cli(["blueprint", "set", "--name", name, "--key", "spec.replicas", "--value", "3"]);
    await blueprintRunning(name, 3, 1);
    setExec.push(performance.now() - t);
    // Side by side: the scale function on a deployment of the same size.
    await viaExecutor("deploy", [`side-${i}`, "2", "2", "false", IMAGE]);
    scaleSide.push(await viaExecutor("scale", [`side-${i}`, "3"]));
  }

  // One update, three ways on the same stack and program, interleaved (bench/update-three-ways.ts).
  await viaExecutor("deploy", ["cli", "1", "1", "false", IMAGE]);
  const { ways } = await updateThreeWays({
    rounds: ROUNDS,
    dir: dataDir,
    env: { ...executorEnv, ...server.env, COLONIES_COLONY_PRVKEY: server.colonyPrvKey },
    state: { PULUMI_BACKEND_URL: backendUrl, PULUMI_CONFIG_PASSPHRASE: passphrase, KUBECONFIG: kubeconfig },
    scale: (pods) => viaExecutor("scale", ["cli", String(pods)]),
  });

  const one = await viaExecutor("deploy", ["solo", "1", "1", "false", IMAGE]);
  const ten = await burst("k8s", "burst");
  const oneKms = await viaExecutor("deploy", ["kms-solo", "1", "1", "false", IMAGE], "k8s-kms");
  const tenKms = await burst("k8s-kms", "kms-burst");

  const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;
  const allChildren = await children.stop();
  console.log(`\nk8s executor benchmark (${ROUNDS} rounds, medians; namespace ${namespace})\n`);
  console.log(
    `deploy-to-ready  executor ${fmt(median(deployExec))}   direct apply ${fmt(median(deployDirect))}   ratio ${(median(deployExec) / median(deployDirect)).toFixed(2)}x`,
  );
  console.log(
    `scale            executor ${fmt(median(scaleExec))}   direct patch ${fmt(median(scaleDirect))}   ratio ${(median(scaleExec) / median(scaleDirect)).toFixed(2)}x`,
  );
  console.log(
    `blueprint set    spec.replicas ${fmt(median(setExec))}   scale function ${fmt(median(scaleSide))}   ratio ${(median(setExec) / median(scaleSide)).toFixed(2)}x`,
  );
  console.log(`10 concurrent deploys ${fmt(ten)} vs one ${fmt(one)}   ratio ${(ten / one).toFixed(2)}x`);
  console.log(
    `   key manager: 10 concurrent ${fmt(tenKms)} vs one ${fmt(oneKms)}   ratio ${(tenKms / oneKms).toFixed(2)}x`,
  );
  console.log(
    "\nthe stacks' secrets encrypted by the passphrase vs a key manager (awskms), same run, interleaved:",
  );
  for (const [label, type] of [
    ["passphrase", "k8s"],
    ["key manager", "k8s-kms"],
  ] as const) {
    const d = deploys[type] ?? [];
    const sc = scales[type] ?? [];
    console.log(
      `   ${label.padEnd(12)} deploy ${fmt(wall(d))} ${cpu(d).toFixed(2)} CPU-s  [${describeUsage(d[d.length - 1]?.usage as UsageReport)}]`,
    );
    console.log(
      `   ${"".padEnd(12)} scale  ${fmt(wall(sc))} ${cpu(sc).toFixed(2)} CPU-s  RSS ${rss(sc).toFixed(0)} MB, private ${privateRss(sc).toFixed(0)} MB`,
    );
  }
  console.log(
    `peak RSS: executor process ${peakRss.toFixed(0)} MB (target < 500 MB); pulumi + provider children ${allChildren.peakRssMb.toFixed(0)} MB, private ${allChildren.peakPrivateMb.toFixed(0)} MB (all operations, 10 concurrent deploys included)`,
  );
  console.log(
    "\none update of the same stack and program, three ways (wall, CPU-s of children, peak RSS of children):",
  );
  for (const [label, xs] of [
    ["executor scale (Colonies round trip included)", ways.executor],
    ["Stack.up (the executor's update before)", ways.stackUp],
    ["bare `pulumi up` (CLI + nodejs language host)", ways.bare],
  ] as const) {
    console.log(
      `   ${label.padEnd(48)} ${fmt(wall(xs))}  ${cpu(xs).toFixed(2)} CPU-s  ${rss(xs).toFixed(0).padStart(4)} MB   [${describeUsage(xs[xs.length - 1]?.usage as UsageReport)}]`,
    );
  }
  const row = (measure: string, value: string, baseline: string, ratio: string, kms: string, goal: string) =>
    console.log(`| ${measure} | ${value} | ${baseline} | ${ratio} | ${kms} | ${goal} |`);
  const kmsDeploys = deploys["k8s-kms"] ?? [];
  const kmsScales = scales["k8s-kms"] ?? [];
  const passScales = scales.k8s ?? [];
  console.log("\ngoals, this run:\n");
  console.log(
    "| measure | executor | baseline (same run) | ratio | with a key manager (awskms) | goal |\n|---|---|---|---|---|---|",
  );
  row(
    "executor `scale` vs a bare `pulumi up` of the same program and stack",
    `${wall(ways.executor).toFixed(0)} ms`,
    `${wall(ways.bare).toFixed(0)} ms (Stack.up: ${wall(ways.stackUp).toFixed(0)} ms)`,
    `${(wall(ways.executor) / wall(ways.bare)).toFixed(2)}x`,
    `scale ${wall(kmsScales).toFixed(0)} ms vs ${wall(passScales).toFixed(0)} ms with the passphrase`,
    "<= 0.55x",
  );
  row(
    "deploy-to-ready vs a direct create + wait",
    `${median(deployExec).toFixed(0)} ms`,
    `${median(deployDirect).toFixed(0)} ms`,
    `${(median(deployExec) / median(deployDirect)).toFixed(1)}x`,
    `${wall(kmsDeploys).toFixed(0)} ms: ${(wall(kmsDeploys) / median(deployDirect)).toFixed(1)}x`,
    "<= 15x",
  );
  row(
    "CPU-seconds per update (engine + provider + CLI children)",
    cpu(ways.executor).toFixed(2),
    `Stack.up ${cpu(ways.stackUp).toFixed(2)}; bare ${cpu(ways.bare).toFixed(2)}`,
    `${(cpu(ways.executor) / cpu(ways.stackUp)).toFixed(2)}x of Stack.up`,
    `${cpu(kmsScales).toFixed(2)} (passphrase ${cpu(passScales).toFixed(2)}); a deploy ${cpu(kmsDeploys).toFixed(2)} (passphrase ${cpu(deploys.k8s ?? []).toFixed(2)})`,
    "<= 1.5",
  );
  row(
    "10 concurrent deploys vs one",
    `${ten.toFixed(0)} ms`,
    `${one.toFixed(0)} ms`,
    `${(ten / one).toFixed(2)}x`,
    `${tenKms.toFixed(0)} ms vs ${oneKms.toFixed(0)} ms: ${(tenKms / oneKms).toFixed(2)}x`,
    "<= 4x",
  );
  row(
    "peak RSS of children per update",
    `${rss(ways.executor).toFixed(0)} MB (private ${privateRss(ways.executor).toFixed(0)} MB)`,
    `Stack.up ${rss(ways.stackUp).toFixed(0)} MB; bare ${rss(ways.bare).toFixed(0)} MB`,
    `${(rss(ways.executor) / rss(ways.stackUp)).toFixed(2)}x of Stack.up`,
    `${rss(kmsScales).toFixed(0)} MB (private ${privateRss(kmsScales).toFixed(0)} MB)`,
    "<= 180 MB",
  );
} finally {
  clearInterval(sampler);
  await children.stop();
  await runtime.shutdown();
  await kmsRuntime.shutdown();
  await kms.stop();
  await server.stop();
  await core.deleteNamespace({ name: kmsNamespace }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
}
