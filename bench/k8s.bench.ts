/**
 * k8s executor benchmark on the local cluster, printing ratios against baselines run side by side:
 *  - deploy-to-ready through Colonies + the executor (a Pulumi update) vs a direct create of the same Deployment
 *    with @kubernetes/client-node and a wait for readiness (the floor);
 *  - scale latency, the same way;
 *  - `colonies blueprint set --key spec.replicas` (the official CLI) until the blueprint's status shows the pods
 *    running, vs the scale function, same sizes, same run;
 *  - wall time of 10 concurrent deploys (different names) vs one;
 *  - peak RSS of the executor process and, separately, of its pulumi/provider child processes.
 * Needs the peers and a cluster: eval "$(bash scripts/peers/all.sh --export)"; bash scripts/cluster.sh up;
 * eval "$(bash scripts/cluster.sh env)"; npm run bench:k8s
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type V1Deployment } from "@kubernetes/client-node";
import { clusterKubeconfig } from "../peers/cluster.js";
import { startColoniesServer } from "../peers/colonies-server.js";
import { startRuntime, submit, userClient, waitDone } from "../peers/executor.js";
import { k8sExecutorEnv, TEST_IMAGE } from "../peers/k8s-executor.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import { executorDeploymentDefinition, KIND } from "../src/executors/k8s/blueprint/definition.js";
import { k8sExecutor } from "../src/executors/k8s.js";
import { deploymentLabels, selectorLabels } from "../src/k8s/labels.js";

const ROUNDS = 5;
const IMAGE = TEST_IMAGE;
const kubeconfig = clusterKubeconfig();
const kc = loadKubeConfig({ path: kubeconfig });
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const namespace = `bench-${randomBytes(3).toString("hex")}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

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

/** RSS (MB) of this process's descendants whose command line mentions pulumi. */
function pulumiChildrenRss(): number {
  try {
    const out = execFileSync("ps", ["-eo", "pid=,ppid=,rss=,args="], { encoding: "utf8" });
    const rows = out
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/));
    const descendants = new Set([String(process.pid)]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [pid, ppid] of rows) {
        if (pid && ppid && descendants.has(ppid) && !descendants.has(pid)) {
          descendants.add(pid);
          grew = true;
        }
      }
    }
    return (
      rows
        .filter(
          ([pid, , , ...args]) =>
            pid !== String(process.pid) && descendants.has(pid ?? "") && /pulumi/.test(args.join(" ")),
        )
        .reduce((sum, [, , rss]) => sum + Number(rss), 0) / 1024
    );
  } catch {
    return 0;
  }
}

await core.createNamespace({ body: { metadata: { name: namespace } } });
const server = await startColoniesServer();
const runtime = await startRuntime(
  server,
  k8sExecutor,
  k8sExecutorEnv(
    {
      kubeconfig,
      namespace,
      dataDir: await mkdtemp(join(tmpdir(), "k8s-bench-")),
      passphrase: "bench",
    },
    // 10 concurrent deploys of 2 x 2 containers: the budgets allow it.
    {
      K8S_STACK_CONCURRENCY: "10",
      EXECUTOR_CONCURRENCY: "12",
      K8S_MAX_DEPLOYMENTS: "40",
      K8S_MAX_CONTAINERS: "400",
    },
  ),
);
let peakRss = 0;
let peakChildren = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss / 1048576);
  peakChildren = Math.max(peakChildren, pulumiChildrenRss());
}, 250);

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

async function viaExecutor(func: string, args: string[]): Promise<number> {
  const started = performance.now();
  const done = await waitDone(server, (await submit(server, "k8s", func, args)).processid, 600_000);
  if (done.state !== ProcessState.SUCCESS) throw new Error(`${func} failed: ${done.errors?.join("; ")}`);
  return performance.now() - started;
}

try {
  const deployExec: number[] = [];
  const deployDirect: number[] = [];
  const scaleExec: number[] = [];
  const scaleDirect: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
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

  const one = await viaExecutor("deploy", ["solo", "1", "1", "false", IMAGE]);
  const t = performance.now();
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => viaExecutor("deploy", [`burst-${i}`, "1", "1", "false", IMAGE])),
  );
  const ten = performance.now() - t;

  const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;
  console.log(`\nk8s executor benchmark (${ROUNDS} rounds, medians; namespace ${namespace})\n`);
  console.log(
    `deploy-to-ready  executor ${fmt(median(deployExec))}   direct apply ${fmt(median(deployDirect))}   ratio ${(median(deployExec) / median(deployDirect)).toFixed(2)}x  (target <= 5x)`,
  );
  console.log(
    `scale            executor ${fmt(median(scaleExec))}   direct patch ${fmt(median(scaleDirect))}   ratio ${(median(scaleExec) / median(scaleDirect)).toFixed(2)}x`,
  );
  console.log(
    `blueprint set    spec.replicas ${fmt(median(setExec))}   scale function ${fmt(median(scaleSide))}   ratio ${(median(setExec) / median(scaleSide)).toFixed(2)}x`,
  );
  console.log(
    `10 concurrent deploys ${fmt(ten)} vs one ${fmt(one)}   ratio ${(ten / one).toFixed(2)}x  (target <= 3x)`,
  );
  console.log(
    `peak RSS: executor process ${peakRss.toFixed(0)} MB (target < 500 MB); pulumi + provider children ${peakChildren.toFixed(0)} MB`,
  );
} finally {
  clearInterval(sampler);
  await runtime.shutdown();
  await server.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
}
