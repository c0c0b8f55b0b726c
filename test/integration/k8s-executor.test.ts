/**
 * The k8s executor on real peers: a real Colonies server, the real Pulumi CLI and Kubernetes provider, and a real
 * Kubernetes API (kube-apiserver + controllers, kwok nodes). Calls go through Colonies, several through the
 * official `colonies` CLI with string arguments, the way users call them.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, submit, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import { k8sCalls } from "../support/k8s-calls.js";

const IMAGE = TEST_IMAGE;
let server: ColoniesServer;
let runtime: ExecutorRuntime;
let kubeConfig: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
const passphrase = randomBytes(16).toString("hex");

const { call, ok } = k8sCalls(() => server);

async function deploymentNames(): Promise<string[]> {
  const list = await apps.listNamespacedDeployment({ namespace });
  return list.items.map((d) => d.metadata?.name ?? "").sort();
}

async function podsOf(name: string) {
  const list = await core.listNamespacedPod({
    namespace,
    labelSelector: `app.kubernetes.io/instance=${name}`,
  });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

beforeAll(async () => {
  const kubeconfigPath = clusterKubeconfig();
  kubeConfig = loadKubeConfig({ path: kubeconfigPath });
  apps = kubeConfig.makeApiClient(AppsV1Api);
  core = kubeConfig.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-exec");
  server = await startColoniesServer();
  dataDir = await mkdtemp(join(tmpdir(), "k8s-executor-"));
  // The executor runs with its least-privilege ServiceAccount's token, not the admin kubeconfig.
  const kubeconfig = await executorKubeconfig(kubeConfig, namespace, dataDir);
  runtime = await startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase },
      {
        K8S_ROLLOUT_TIMEOUT: "120",
        K8S_MAX_PODS: "20",
        K8S_ALLOWED_EXECUTOR_TYPES: "sleep",
        EXECUTOR_CONCURRENCY: "6",
      },
    ),
  );
}, 600_000);

afterAll(async () => {
  await runtime?.shutdown();
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("k8s executor through the official CLI", () => {
  it("deploys with string arguments, and the same deploy again changes nothing", async () => {
    const { stderr } = await server.cli([
      "function",
      "exec",
      "--func",
      "deploy",
      "--args",
      `web,2,2,true,${IMAGE}`,
      "--kwargs",
      "executortype:sleep",
      "--targettype",
      "k8s",
      "--wait",
    ]);
    expect(stderr).toContain("Process finished successfully");

    const deployment = await apps.readNamespacedDeployment({ name: "web", namespace });
    expect(deployment.spec?.replicas).toBe(2);
    const pod = deployment.spec?.template.spec;
    expect(pod?.containers.map((c) => c.name)).toEqual(["executor-0", "executor-1"]);
    expect(pod?.containers[0]?.image).toBe(IMAGE);
    expect(pod?.volumes?.find((v) => v.name === "ramdisk")?.emptyDir?.medium).toBe("Memory");
    // ready: the rollout finished before deploy closed
    expect(deployment.status?.readyReplicas).toBe(2);
    // the colony key only by reference
    expect(JSON.stringify(deployment)).not.toContain(server.colonyPrvKey);

    const again = (
      await ok("deploy", ["web", "2", "2", "true", IMAGE], { executortype: "sleep" })
    )[0] as Record<string, unknown>;
    expect(again).toMatchObject({
      deployment: "web",
      pods: 2,
      executorperpod: 2,
      ramdisk: true,
      image: IMAGE,
      changed: false,
    });
  });

  it("reads deployments, scale, pods and containers", async () => {
    expect(await ok("get_deployments")).toEqual([["web"]]);
    expect(await ok("get_scale", ["web"])).toEqual([2]);
    expect(await ok("pods", ["web"])).toEqual([2]);
    const [pods] = (await ok("get_pods", ["web"])) as [Record<string, unknown>[]];
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.state).toBe("running");
      expect(pod.result).toBeNull();
      expect(typeof pod.createdAt).toBe("string");
      expect((pod.containers as { name: string }[]).map((c) => c.name)).toEqual(["executor-0", "executor-1"]);
    }
    const name = pods[0]?.name as string;
    expect(await ok("get_containers", [name])).toEqual([["executor-0", "executor-1"]]);
    expect(await ok("containers", [name])).toEqual([2]);
  });

  it("answers every read function called through the official CLI with string arguments", async () => {
    const exec = async (func: string, args: string[] = []) => {
      const argv = ["function", "exec", "--func", func, "--targettype", "k8s", "--wait", "--out"];
      const { stdout, stderr } = await server.cli(args.length ? [...argv, "--args", args.join(",")] : argv);
      expect(stderr, `${func} ${args.join(",")}`).toContain("Process finished successfully");
      return stdout.trim();
    };
    expect(await exec("get_deployments")).toContain("web");
    expect(await exec("get_scale", ["web"])).toBe("2");
    expect(await exec("pods", ["web"])).toBe("2");
    const podsOut = await exec("get_pods", ["web"]);
    const pod = (await podsOf("web"))[0]?.metadata?.name as string;
    expect(podsOut).toContain(pod);
    expect(podsOut).toContain("running");
    expect(await exec("get_containers", [pod])).toContain("executor-0 executor-1");
    expect(await exec("containers", [pod])).toBe("2");
    expect(await exec("logs", [pod, "executor-0", "5"])).toContain("fake container output");
  });

  it("reads a container's logs through the atom engine (kwok serves them from a file)", async () => {
    const [pods] = (await ok("get_pods", ["web"])) as [{ name: string }[]];
    const name = pods[0]?.name as string;
    const [text] = (await ok("logs", [name, "executor-1", "10"])) as string[];
    expect(text).toContain("fake container output");
    const bad = await call("logs", [name, "executor-9"]);
    expect(bad.errors?.[0]).toBe(
      `logs: pod ${name} has no container executor-9; it has executor-0, executor-1`,
    );
  });

  it("scales only the replicas, previews without changing anything, and restarts a pod", async () => {
    const before = await apps.readNamespacedDeployment({ name: "web", namespace });
    const [preview] = (await ok("scale", ["web", "5"], { dryrun: "true" })) as Record<string, unknown>[];
    expect(preview).toMatchObject({ deployment: "web", pods: 5, dryrun: true });
    expect(((preview?.changes ?? {}) as Record<string, number>).update).toBeGreaterThanOrEqual(1);
    expect((await apps.readNamespacedDeployment({ name: "web", namespace })).spec?.replicas).toBe(2);

    const [scaled] = (await ok("scale", ["web", "3"])) as Record<string, unknown>[];
    expect(scaled).toMatchObject({ deployment: "web", pods: 3, previous: 2 });
    const after = await apps.readNamespacedDeployment({ name: "web", namespace });
    expect(after.spec?.replicas).toBe(3);
    expect(after.spec?.template).toEqual(before.spec?.template);
    await waitFor("3 pods", async () => (await podsOf("web")).length === 3);

    const victim = (await podsOf("web"))[0]?.metadata?.name as string;
    const restarted = await server.cli([
      "function",
      "exec",
      "--func",
      "restart",
      "--args",
      victim,
      "--targettype",
      "k8s",
      "--wait",
    ]);
    expect(restarted.stderr).toContain("Process finished successfully");
    await waitFor(
      "the replacement pod",
      async () => {
        const names = (await podsOf("web")).map((p) => p.metadata?.name);
        return names.length === 3 && !names.includes(victim);
      },
      120_000,
    );
  });

  it("refuses pods it does not manage", async () => {
    await core.createNamespacedPod({
      namespace,
      body: { metadata: { name: "stranger" }, spec: { containers: [{ name: "c", image: "busybox" }] } },
    });
    for (const func of ["get_containers", "containers", "restart", "logs"]) {
      const done = await call(func, ["stranger"]);
      expect(done.state).toBe(ProcessState.FAILED);
      expect(done.errors?.[0], JSON.stringify(done)).toBe(
        `${func}: pod stranger does not exist or is not managed by this executor`,
      );
    }
    await core.readNamespacedPod({ name: "stranger", namespace }); // still there
  });

  it("previews a new deployment without creating it", async () => {
    const [preview] = (await ok("deploy", ["ghost", "1", "1", "false", IMAGE], { dryrun: "true" })) as Record<
      string,
      unknown
    >[];
    expect(preview).toMatchObject({ deployment: "ghost", dryrun: true });
    expect(((preview?.changes ?? {}) as Record<string, number>).create).toBeGreaterThanOrEqual(2);
    expect(await deploymentNames()).toEqual(["web"]);
  });
});

describe("k8s executor concurrency", () => {
  it("deploys several names at once, and runs deploy, scale, scale on one name in order", async () => {
    const names = ["alpha", "beta", "gamma"];
    const results = await Promise.all(names.map((n) => call("deploy", [n, "1", "1", "false", IMAGE])));
    for (const r of results) expect(r.state, r.errors?.join()).toBe(ProcessState.SUCCESS);

    const sequence = [
      await submit(server, "k8s", "deploy", ["order", "1", "1", "false", IMAGE]),
      await submit(server, "k8s", "scale", ["order", "4"]),
      await submit(server, "k8s", "scale", ["order", "2"]),
    ];
    const done = await Promise.all(sequence.map((p) => waitDone(server, p.processid, 300_000)));
    for (const d of done) expect(d.state, d.errors?.join()).toBe(ProcessState.SUCCESS);
    expect((await apps.readNamespacedDeployment({ name: "order", namespace })).spec?.replicas).toBe(2);

    await Promise.all([...names, "order"].map((n) => ok("undeploy", [n])));
    expect(await deploymentNames()).toEqual(["web"]);
  });
});

describe("k8s executor validation", () => {
  const malformed: [string, unknown[], Record<string, unknown>, RegExp][] = [
    ["deploy", [], {}, /deploy: missing argument deploymentname/],
    ["deploy", ["web"], {}, /missing argument pods/],
    ["deploy", ["web", "1", "1", "false"], {}, /missing argument dockerimage/],
    ["deploy", ["web", "1", "1", "false", IMAGE, "extra"], {}, /at most 5 arguments/],
    ["deploy", ["Web", "1", "1", "false", IMAGE], {}, /deployment name "Web" must be lower-case/],
    ["deploy", ["web_1", "1", "1", "false", IMAGE], {}, /must be lower-case/],
    ["deploy", ["-web", "1", "1", "false", IMAGE], {}, /starting and ending/],
    ["deploy", ["x".repeat(47), "1", "1", "false", IMAGE], {}, /at most 46/],
    ["deploy", ["bad", "-1", "1", "false", IMAGE], {}, /pods must be a whole number from 0 to 20, got "-1"/],
    ["deploy", ["bad", "21", "1", "false", IMAGE], {}, /from 0 to 20, got "21"/],
    ["deploy", ["bad", "2.5", "1", "false", IMAGE], {}, /got "2\.5"/],
    ["deploy", ["bad", "two", "1", "false", IMAGE], {}, /got "two"/],
    [
      "deploy",
      ["bad", "1", "0", "false", IMAGE],
      {},
      /executorperpod must be a whole number from 1 to 16, got "0"/,
    ],
    ["deploy", ["bad", "1", "17", "false", IMAGE], {}, /from 1 to 16, got "17"/],
    ["deploy", ["bad", "1", "1", "yes", IMAGE], {}, /ramdisk must be "true" or "false", got "yes"/],
    ["deploy", ["bad", "1", "1", "1", IMAGE], {}, /ramdisk must be "true" or "false"/],
    ["deploy", ["bad", "1", "1", "false", "Not An Image"], {}, /not a valid image reference/],
    ["deploy", ["bad", "1", "1", "false", "busybox:"], {}, /not a valid image reference/],
    ["deploy", ["bad", "1", "1", "false", ""], {}, /dockerimage must be a non-empty string/],
    ["deploy", ["bad", "1", "1", "false", IMAGE], { replicas: "2" }, /unknown argument replicas/],
    ["deploy", ["bad", "1", "1", "false", IMAGE], { dryrun: "maybe" }, /dryrun must be "true" or "false"/],
    ["deploy", ["bad", "1", "1", "false", IMAGE], { cpu: "lots" }, /cpu "lots" is not a Kubernetes quantity/],
    [
      "deploy",
      ["bad", "1", "1", "false", IMAGE],
      { memory: "1GB" },
      /memory "1GB" is not a Kubernetes quantity/,
    ],
    ["deploy", ["bad", "1", "1", "false", IMAGE], { executortype: "no spaces" }, /executortype "no spaces"/],
    ["scale", ["web"], {}, /scale: missing argument pods/],
    ["scale", ["web", "-3"], {}, /pods must be a whole number/],
    ["scale", ["nosuch", "1"], {}, /scale: unknown deployment: nosuch/],
    ["undeploy", ["nosuch"], {}, /undeploy: unknown deployment: nosuch/],
    ["undeploy", ["NoSuch"], {}, /must be lower-case/],
    ["get_scale", ["nosuch"], {}, /get_scale: unknown deployment: nosuch/],
    ["get_pods", ["nosuch"], {}, /get_pods: unknown deployment: nosuch/],
    ["pods", [""], {}, /deploymentname must be a non-empty string/],
    ["get_containers", ["no-such-pod"], {}, /pod no-such-pod does not exist or is not managed/],
    ["containers", ["Bad_Pod"], {}, /"Bad_Pod" is not a valid pod name/],
    ["restart", [], {}, /restart: missing argument podname/],
    ["get_deployments", ["extra"], {}, /get_deployments: expected at most 0 arguments/],
    ["deploys", [], {}, /Unsupported function: deploys; this executor offers deploy, undeploy/],
  ];

  it(`fails ${malformed.length} malformed calls clearly and changes nothing`, async () => {
    const before = await deploymentNames();
    const submitted = await Promise.all(malformed.map(([f, a, k]) => submit(server, "k8s", f, a, k)));
    for (const [i, process] of submitted.entries()) {
      const [func, args, , expected] = malformed[i] as (typeof malformed)[number];
      const done = await waitDone(server, process.processid, 120_000);
      expect(done.state, `${func}(${JSON.stringify(args)})`).toBe(ProcessState.FAILED);
      expect(done.errors?.[0], `${func}(${JSON.stringify(args)})`).toMatch(expected);
    }
    expect(await deploymentNames()).toEqual(before);
    // still serving
    expect(await ok("get_scale", ["web"])).toEqual([3]);
  });
});

describe("k8s executor state", () => {
  it("keeps secrets out of the Pulumi state in plain text", () => {
    const files = readdirSync(dataDir, { recursive: true, encoding: "utf8" })
      .map((entry) => join(dataDir, entry))
      .filter((path) => statSync(path).isFile());
    const stateFiles = files.filter((f) => f.includes(`${join("state", ".pulumi", "stacks")}`));
    expect(stateFiles.length).toBeGreaterThan(0);
    for (const file of files) expect(readFileSync(file, "utf8")).not.toContain(server.colonyPrvKey);
  });

  it("undeploys: previews, then destroys and removes the stack", async () => {
    const [preview] = (await ok("undeploy", ["web"], { dryrun: "true" })) as Record<string, unknown>[];
    expect(((preview?.changes ?? {}) as Record<string, number>).delete).toBeGreaterThanOrEqual(2);
    expect(await deploymentNames()).toEqual(["web"]);
    const { stderr } = await server.cli([
      "function",
      "exec",
      "--func",
      "undeploy",
      "--args",
      "web",
      "--targettype",
      "k8s",
      "--wait",
    ]);
    expect(stderr).toContain("Process finished successfully");
    expect(await deploymentNames()).toEqual([]);
    expect(await ok("get_deployments")).toEqual([[]]);
    const again = await call("undeploy", ["web"]);
    expect(again.errors?.[0]).toBe("undeploy: unknown deployment: web");
  });
});
