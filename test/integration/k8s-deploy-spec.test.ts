/**
 * deploy provisions any executor a user runs, on real peers: every spec kwarg given through the official CLI
 * (string arguments, ';' between items) lands in the Deployment's fields as the Kubernetes API shows them; a
 * backup executor deployed through Colonies, its database password from a Secret reference, takes a backup;
 * get_pods()/pods() without a name, and status().
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startExecutorPodRunner, startRuntime, submit, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import type { LocalPodRunner } from "../../src/local/pod-runner.js";
import { k8sCalls } from "../support/k8s-calls.js";

const IMAGE = TEST_IMAGE;
const GPU = "example.com/gpu";
let server: ColoniesServer;
let database: Postgres;
let runtime: ExecutorRuntime;
let runner: LocalPodRunner;
let admin: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let nodeLabel: [string, string];
const backupDir = mkdtempSync(join(tmpdir(), "k8s-spec-backups-"));

const { call, ok } = k8sCalls(() => server);

/** `colonies function exec` with string arguments, as users call it; fails the test unless it succeeded. */
async function cli(func: string, args: string, kwargs?: string): Promise<string> {
  const argv = ["function", "exec", "--func", func, "--targettype", "k8s", "--wait", "--out", "--args", args];
  const { stdout, stderr } = await server.cli(kwargs ? [...argv, "--kwargs", kwargs] : argv);
  expect(stderr, `${func} ${args} ${kwargs ?? ""}`).toContain("Process finished successfully");
  return stdout;
}

beforeAll(async () => {
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-spec");
  // A label every node has, for nodeselector; and an extended resource on the nodes, for gpu.
  const nodes = (await core.listNode()).items;
  nodeLabel = ["kubernetes.io/os", nodes[0]?.metadata?.labels?.["kubernetes.io/os"] ?? "linux"];
  for (const node of nodes) {
    await core.patchNodeStatus(
      {
        name: node.metadata?.name as string,
        body: { status: { capacity: { [GPU]: "4" }, allocatable: { [GPU]: "4" } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
  database = await startPostgres({ password: randomBytes(12).toString("hex") });
  await query(database, "postgres", "CREATE DATABASE shop");
  await query(
    database,
    "shop",
    "CREATE TABLE orders (id int primary key, item text); INSERT INTO orders VALUES (1, 'tea')",
  );
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: "pg-secret" }, stringData: { password: database.password } },
  });
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "regcred" },
      type: "kubernetes.io/dockerconfigjson",
      stringData: { ".dockerconfigjson": JSON.stringify({ auths: {} }) },
    },
  });
  server = await startColoniesServer();
  const dataDir = mkdtempSync(join(tmpdir(), "k8s-spec-"));
  const kubeconfig = await executorKubeconfig(admin, namespace, dataDir);
  runtime = await startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase: randomBytes(8).toString("hex") },
      {
        K8S_ALLOWED_CMDS: "sleep,backup",
        K8S_ALLOWED_SECRETS: "pg-secret,regcred",
        K8S_ALLOWED_EXECUTOR_TYPES: "spec-*",
        K8S_ALLOWED_TOLERATIONS: "gpu,spot",
        // pg-secret goes to the backup command with the settings a backup executor needs, or to the sleep
        // command beside the env the first test sets; the pull secret to any cmd of the image.
        K8S_PROFILES: JSON.stringify({
          "spec-sleep": {
            images: ["registry.example.com/colonyos/*"],
            cmds: ["sleep"],
            secrets: ["pg-secret", "regcred"],
            env: ["GREETING", "EMPTY"],
          },
          "spec-backup": {
            images: ["registry.example.com/colonyos/*"],
            cmds: ["backup"],
            secrets: ["pg-secret"],
            env: [
              "DB_HOST",
              "DB_PORT",
              "DB_DATABASE",
              "DB_USER",
              "BACKUP_TARGET",
              "BACKUP_DIR",
              "BACKUP_PG_BINDIR",
            ],
          },
          pull: { images: ["registry.example.com/colonyos/*"], secrets: ["regcred"] },
        }),
        K8S_RUNTIME_IMAGES: "registry.example.com/colonyos/*",
        K8S_MAX_GPU: "2",
        K8S_GPU_RESOURCE: GPU,
        K8S_ROLLOUT_TIMEOUT: "120",
        EXECUTOR_CONCURRENCY: "4",
      },
    ),
  );
  // The containers of the deployed executors, run as local processes with the pods' environment.
  runner = await startExecutorPodRunner(admin, namespace);
}, 600_000);

afterAll(async () => {
  await runner?.stop();
  await runtime?.shutdown();
  await server?.stop();
  await database?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("deploy's spec kwargs through the official CLI", () => {
  it("puts every kwarg into the Deployment the Kubernetes API shows", async () => {
    const kwargs = [
      "executortype:spec-sleep",
      "cmd:sleep",
      "env:GREETING=hello world;EMPTY=",
      "secretenv:DB_PASSWORD=pg-secret/password",
      "imagepullsecret:regcred",
      "cpu:100m",
      "cpulimit:500m",
      "memory:64Mi",
      "memorylimit:128Mi",
      "gpu:1",
      `nodeselector:${nodeLabel[0]}=${nodeLabel[1]}`,
      "tolerations:gpu=true=NoSchedule;spot",
    ].join(",");
    await cli("deploy", `full,1,2,false,${IMAGE}`, kwargs);

    const deployment = await apps.readNamespacedDeployment({ name: "full", namespace });
    const pod = deployment.spec?.template.spec;
    expect(pod?.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod?.nodeSelector).toEqual({ [nodeLabel[0]]: nodeLabel[1] });
    expect(pod?.tolerations).toEqual([
      { key: "gpu", operator: "Equal", value: "true", effect: "NoSchedule" },
      { key: "spot", operator: "Exists" },
    ]);
    expect(pod?.containers).toHaveLength(2);
    for (const [i, container] of (pod?.containers ?? []).entries()) {
      expect(container.args).toEqual(["sleep"]);
      expect(container.resources).toEqual({
        requests: { cpu: "100m", memory: "64Mi" },
        limits: { cpu: "500m", memory: "128Mi", [GPU]: "1" },
      });
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
      expect(env).toMatchObject({
        GREETING: "hello world",
        DB_PASSWORD: { secretKeyRef: { name: "pg-secret", key: "password" } },
        POD_NAME: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" } },
        PODNAME: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" } },
        EXECUTOR_HTTP_PORT: String(9464 + i),
      });
      // The API leaves an empty value out: the variable is there, empty.
      expect(container.env?.find((e) => e.name === "EMPTY")?.value ?? "").toBe("");
      // An image built on this runtime: ready means its executor is registered and polling.
      expect(container.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(container.ports?.[0]?.containerPort).toBe(9464 + i);
    }
    expect(JSON.stringify(deployment)).not.toContain(database.password);
    expect(deployment.status?.readyReplicas).toBe(1);
  });

  it("refuses what the operator does not allow, naming the policy", async () => {
    const refusals: [Record<string, string>, RegExp][] = [
      [
        { secretenv: "P=other-secret/key" },
        /Secret other-secret may not be referenced: it is not allowed by K8S_ALLOWED_SECRETS \(pg-secret, regcred\)/,
      ],
      [{ imagepullsecret: "someone-elses" }, /Secret someone-elses may not be referenced/],
      [
        { env: "COLONIES_SERVER_HOST=evil.example.com" },
        /env name "COLONIES_SERVER_HOST" is set by the executor/,
      ],
      [
        { cmd: "backup", secretenv: "DB_PASSWORD=pg-secret/password", env: "AWS_S3_ENDPOINT=x" },
        /env AWS_S3_ENDPOINT may not be set beside Secret\(s\) pg-secret: profile spec-backup allows env DB_HOST, DB_PORT, DB_DATABASE, DB_USER, BACKUP_TARGET, BACKUP_DIR, BACKUP_PG_BINDIR \(K8S_PROFILES\)/,
      ],
      [
        { cmd: "backup", env: "GREETING=hi" },
        /env GREETING may not be set for image \S+ with cmd "backup": K8S_ALLOWED_ENV \(none\) and the profiles for this image \(spec-backup, pull\) do not allow it/,
      ],
      [{ tolerations: "dedicated" }, /tolerations may not name the taint dedicated/],
      [{ executortype: "sleep" }, /executortype "sleep" is not allowed/],
      [{ gpu: "3" }, /gpu must be a whole number from 1 to 2/],
      [{ cpulimit: "9" }, /cpulimit "9" is more than the largest allowed, 4/],
      [
        { tolerations: "a=b=c=NoSchedule" },
        /tolerations item "a=b=c=NoSchedule" must be KEY\[=VALUE\]\[=EFFECT\]/,
      ],
    ];
    for (const [kwargs, expected] of refusals) {
      const done = await call("deploy", ["refused", "1", "1", "false", IMAGE], kwargs);
      expect(done.state, JSON.stringify(kwargs)).toBe(ProcessState.FAILED);
      expect(done.errors?.[0], JSON.stringify(kwargs)).toMatch(expected);
    }
    const names = (await apps.listNamespacedDeployment({ namespace })).items.map((d) => d.metadata?.name);
    expect(names).not.toContain("refused");
  });

  it("answers get_pods() and pods() without a name for every managed pod, and status()", async () => {
    const all = (await ok("get_pods"))[0] as { name: string }[];
    expect(all.length).toBe(1);
    expect(all[0]?.name).toMatch(/^full-/);
    expect(await ok("pods")).toEqual([1]);
    const [status] = (await ok("status", ["full"])) as [
      {
        spec: unknown;
        executor: string;
        updates: { kind: string; result: string }[];
        rollout: { desired: number; ready: number; conditions: { type: string }[] };
      },
    ];
    expect(status.spec).toMatchObject({ deployment: "full", pods: 1, executorperpod: 2, gpu: 1 });
    expect(status.executor).toMatch(/^full-[0-9a-f]{6}$/);
    expect(status.updates[0]).toMatchObject({ kind: "update", result: "succeeded" });
    expect(status.rollout).toMatchObject({ desired: 1, ready: 1 });
    expect(status.rollout.conditions.map((c) => c.type)).toContain("Available");
    expect(JSON.stringify(status)).not.toMatch(/prvKey|[0-9a-f]{64}/);
    await ok("undeploy", ["full"]);
  });
});

describe("a rollout that cannot finish", () => {
  it("fails at once with the container's reason instead of after the rollout timeout, and leaves nothing", async () => {
    // Pods that fit no node stay Pending: kwok leaves them alone, so their status is ours to write, as a
    // kubelet would when the image cannot be pulled.
    const started = Date.now();
    const process = await submit(server, "k8s", "deploy", ["unpullable", "1", "1", "false", IMAGE], {
      nodeselector: "colonyos.io/no-such-node=true",
    });
    let pod = "";
    await waitFor(
      "the rollout's pod",
      async () => {
        const pods = await core.listNamespacedPod({
          namespace,
          labelSelector: "app.kubernetes.io/instance=unpullable",
        });
        pod = pods.items[0]?.metadata?.name ?? "";
        return pod !== "";
      },
      120_000,
    );
    await core.patchNamespacedPodStatus(
      {
        name: pod,
        namespace,
        body: {
          status: {
            containerStatuses: [
              {
                name: "executor-0",
                image: IMAGE,
                imageID: "",
                ready: false,
                restartCount: 0,
                state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const done = await waitDone(server, process.processid, 120_000);
    expect(done.state).toBe(ProcessState.FAILED);
    expect(done.errors?.[0]).toBe(
      `deploy: pod ${pod} container executor-0 cannot run: ImagePullBackOff (Back-off pulling image)`,
    );
    expect(Date.now() - started).toBeLessThan(120_000); // K8S_ROLLOUT_TIMEOUT is 120 s here
    const names = (await apps.listNamespacedDeployment({ namespace })).items.map((d) => d.metadata?.name);
    expect(names).not.toContain("unpullable");
  });
});

describe("a backup executor deployed through Colonies", () => {
  it("gets its database password from a Secret reference and takes a backup", async () => {
    const env = [
      `DB_HOST=${database.host}`,
      `DB_PORT=${database.port}`,
      "DB_DATABASE=shop",
      `DB_USER=${database.user}`,
      "BACKUP_TARGET=dir",
      `BACKUP_DIR=${backupDir}`,
      `BACKUP_PG_BINDIR=${database.bindir}`,
    ].join(";");
    await cli(
      "deploy",
      `backups,1,1,false,${IMAGE}`,
      `executortype:spec-backup,cmd:backup,env:${env},secretenv:DB_PASSWORD=pg-secret/password`,
    );
    const done = await waitDone(server, (await submit(server, "spec-backup", "backup")).processid, 180_000);
    expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    const [backup] = done.out as [{ filename?: string; name?: string; size: number }];
    expect(backup.size).toBeGreaterThan(0);
    expect(readdirSync(backupDir).some((f) => f.startsWith("backup_shop_") && f.endsWith(".bak"))).toBe(true);
    await ok("undeploy", ["backups"]);
  });
});
