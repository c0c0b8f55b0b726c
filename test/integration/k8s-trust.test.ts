/**
 * The trust boundary of the k8s executor, on real peers (Colonies server, Pulumi CLI + Kubernetes provider,
 * Kubernetes API): a colony user — not the owner — calls the functions with any strings. Each attack fails with a
 * specific message, changes nothing (cluster objects, Colonies executors), leaks no key, and the executor keeps
 * serving. Deployments run as executor identities the executor registered; their containers never see the
 * colony owner key. The executor runs with its least-privilege ServiceAccount's token.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { builtCli, startRuntime, submit, testLogger, userClient, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { generatePrivateKey, idOf } from "../../src/colonies/crypto.js";
import { ExecutorState, type Process, ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import { selectorLabels } from "../../src/k8s/labels.js";
import { kubeEnvSources } from "../../src/local/env-sources.js";
import { resolveContainerEnv } from "../../src/local/pod-env.js";
import { LocalPodRunner } from "../../src/local/pod-runner.js";
import { submitByCli } from "../support/cli-submit.js";
import { k8sCalls } from "../support/k8s-calls.js";

const IMAGE = TEST_IMAGE;
let CLI: string;
let server: ColoniesServer;
let runtime: ExecutorRuntime;
let admin: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
const passphrase = randomBytes(16).toString("hex");

const { call, ok } = k8sCalls(() => server);

/** Executors of the colony that are still registered (removed ones stay as UNREGISTERED records in 1.9). */
async function activeExecutors() {
  const all = await userClient(server).getExecutors(server.colonyName, server.userPrvKey);
  return all
    .filter((e) => e.state !== ExecutorState.UNREGISTERED)
    .map((e) => ({ name: e.executorname, type: e.executortype, id: e.executorid, state: e.state }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function livePods(selector?: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace, labelSelector: selector });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** What an attack must not change: objects in the namespace and the colony's executors. */
async function snapshot() {
  const deployments = await apps.listNamespacedDeployment({ namespace });
  const secrets = await core.listNamespacedSecret({ namespace });
  return {
    deployments: deployments.items
      .map((d) => [d.metadata?.name, d.metadata?.generation, d.spec?.replicas])
      .sort(),
    secrets: secrets.items.map((s) => [s.metadata?.name, s.metadata?.resourceVersion]).sort(),
    pods: (await livePods()).map((p) => p.metadata?.uid).sort(),
    executors: await activeExecutors(),
  };
}

/** A Deployment the executor did not create, with the given labels, and its pods running. */
async function foreignDeployment(name: string, labels: Record<string, string>) {
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "main", image: "busybox:1.36" }] } },
      },
    },
  });
}

async function podOf(deployment: string): Promise<string> {
  let name = "";
  await waitFor(
    `a running pod of ${deployment}`,
    async () => {
      const pod = (await livePods(`app.kubernetes.io/instance=${deployment}`)).find(
        (p) => p.status?.phase === "Running",
      );
      name = pod?.metadata?.name ?? "";
      return name !== "";
    },
    120_000,
  );
  return name;
}

let bootstrapPod: string;
let foreignPod: string;

beforeAll(async () => {
  CLI = builtCli();
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-trust");
  // Objects that are not the executor's: the bootstrap's own executor (labelled as infra/ labels it), a
  // stranger wearing the executor's managed-by and atom labels, and a Secret named like a deployment's keys.
  await foreignDeployment("k8s-executor", {
    ...selectorLabels("k8s-executor"),
    "app.kubernetes.io/part-of": "colonyos",
  });
  await foreignDeployment("foreign", {
    "app.kubernetes.io/name": "colonyos-executor",
    "app.kubernetes.io/instance": "foreign",
    "app.kubernetes.io/managed-by": "colonyos-k8s-executor",
    "colonyos.io/atom": "true",
  });
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: "taken-keys" }, stringData: { precious: "do not delete" } },
  });
  // Secrets a caller must never reach, whatever the operator's patterns say: one wearing the labels of infra's
  // executors' keys under another name, and a service account's token (the executor's own rights).
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "relabelled", labels: selectorLabels("k8s-executor") },
      stringData: { COLONIES_COLONY_PRVKEY: "not a real key" },
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "sa-token", annotations: { "kubernetes.io/service-account.name": "default" } },
      type: "kubernetes.io/service-account-token",
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: "shop-db" }, stringData: { password: "shop-password" } },
  });
  server = await startColoniesServer();
  // Executors of a type that infra (or anyone with the owner key) registered: their processes are not a
  // deployment's to take.
  await registerForeignExecutor(server, "backup");
  await registerForeignExecutor(server, "trust-taken");
  dataDir = mkdtempSync(join(tmpdir(), "k8s-trust-"));
  const kubeconfig = await executorKubeconfig(admin, namespace, dataDir);
  runtime = await startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase },
      {
        K8S_ALLOWED_IMAGES: "registry.example.com/colonyos/*",
        K8S_ALLOWED_CMDS: "sleep,backup",
        K8S_ALLOWED_EXECUTOR_TYPES: "trust-*",
        K8S_ALLOWED_TOLERATIONS: "gpu",
        // Every Secret is under the ceiling, and a profile binds the ones that hold keys explicitly: they stay out
        // of reach anyway.
        K8S_ALLOWED_SECRETS: "*",
        K8S_PROFILES: JSON.stringify({
          keys: {
            images: ["registry.example.com/colonyos/*"],
            cmds: ["sleep"],
            secrets: ["*-keys", "relabelled", "sa-token"],
          },
          "shop-backup": {
            images: ["registry.example.com/colonyos/*"],
            cmds: ["backup"],
            secrets: ["shop-db"],
            env: ["DB_HOST", "DB_DATABASE"],
          },
        }),
        K8S_MAX_DEPLOYMENTS: "2",
        K8S_MAX_CONTAINERS: "6",
        K8S_MAX_CPU: "100",
        K8S_MAX_MEMORY: "2Gi",
        K8S_MAX_LOG_LIMIT: "4096",
        K8S_ROLLOUT_TIMEOUT: "120",
        K8S_OPERATION_TIMEOUT: "40",
        EXECUTOR_CONCURRENCY: "4",
      },
    ),
  );
  bootstrapPod = await podOf("k8s-executor");
  foreignPod = await podOf("foreign");
}, 600_000);

afterAll(async () => {
  await runtime?.shutdown();
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

/** Registers (and approves) an executor of `type` with the owner key, as infra's executors are. */
async function registerForeignExecutor(server: ColoniesServer, type: string) {
  const key = generatePrivateKey();
  const client = userClient(server);
  const name = `foreign-${type}`;
  await client.addExecutor(
    { executorid: idOf(key), executortype: type, executorname: name, colonyname: server.colonyName },
    server.colonyPrvKey,
  );
  await client.approveExecutor(server.colonyName, name, server.colonyPrvKey);
}

/** No key may appear in what a caller sees: errors, outputs, process logs. */
async function expectNoSecrets(process: Process, keys: string[]) {
  const logs = await userClient(server).getLogs(
    { colonyName: server.colonyName, processId: process.processid },
    server.userPrvKey,
  );
  const seen = JSON.stringify([process.errors, process.out, logs]);
  for (const key of keys) expect(seen).not.toContain(key);
}

describe("the attack table: a colony user's calls that must change nothing", () => {
  const forbidden = /is not allowed by K8S_ALLOWED_IMAGES \(registry\.example\.com\/colonyos\/\*\)/;
  const attacks: [string, string, () => unknown[], Record<string, unknown>, RegExp][] = [
    [
      "owner key from a chosen image",
      "deploy",
      () => ["x", "1", "1", "false", "busybox:1"],
      { cmd: "env" },
      forbidden,
    ],
    [
      "owner key from a chosen cmd",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "env" },
      /cmd "env" is not allowed by K8S_ALLOWED_CMDS \(sleep, backup\)/,
    ],
    [
      "a shell as cmd",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sh -c env" },
      /cmd "sh -c env" is not allowed/,
    ],
    [
      "an image nested under an allowed path",
      "deploy",
      () => ["x", "1", "1", "false", "registry.example.com/colonyos/a/evil:1"],
      {},
      /is not allowed by K8S_ALLOWED_IMAGES/,
    ],
    [
      "an image under a look-alike path",
      "deploy",
      () => ["x", "1", "1", "false", "registry.example.com/colonyosx/evil:1"],
      {},
      /is not allowed by K8S_ALLOWED_IMAGES/,
    ],
    [
      "taking over the bootstrap's executor",
      "deploy",
      () => ["k8s-executor", "1", "1", "false", IMAGE],
      {},
      /a Deployment named k8s-executor already exists in namespace k8s-trust-\w+ and was not created by this executor's stack for k8s-executor; choose another deployment name/,
    ],
    [
      "taking over a look-alike Deployment",
      "deploy",
      () => ["foreign", "1", "1", "false", IMAGE],
      {},
      /a Deployment named foreign already exists/,
    ],
    [
      "taking over someone's Secret",
      "deploy",
      () => ["taken", "1", "1", "false", IMAGE],
      {},
      /a Secret named taken-keys already exists/,
    ],
    [
      "the k8s executor's own processes",
      "deploy",
      () => ["thief", "1", "1", "false", IMAGE],
      { executortype: "k8s" },
      /executortype "k8s" is this k8s executor's own type/,
    ],
    [
      "a deployment named after the k8s executor's type",
      "deploy",
      () => ["k8s", "1", "1", "false", IMAGE],
      {},
      /executortype "k8s" is this k8s executor's own type/,
    ],
    [
      "a deployment's executor key as env",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", secretenv: "K=taken-keys/COLONIES_PRVKEY" },
      /Secret taken-keys may never be referenced: Secrets named \*-keys hold the keys of ColonyOS executors/,
    ],
    [
      "infra's executor keys as env",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", secretenv: "K=k8s-executor-keys/COLONIES_COLONY_PRVKEY" },
      /Secret k8s-executor-keys may never be referenced/,
    ],
    [
      "executor keys under another name",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", secretenv: "K=relabelled/COLONIES_COLONY_PRVKEY" },
      /^deploy: Secret relabelled may never be referenced: it holds keys of ColonyOS executors/,
    ],
    [
      "a service account's token",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", secretenv: "T=sa-token/token" },
      /^deploy: Secret sa-token may never be referenced: it holds a service account's token/,
    ],
    [
      "executor keys as a pull secret",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", imagepullsecret: "web-keys" },
      /Secret web-keys may never be referenced/,
    ],
    [
      "a bound Secret sent to the caller's own bucket",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      {
        cmd: "backup",
        secretenv: "DB_PASSWORD=shop-db/password",
        env: "DB_HOST=shop;AWS_S3_ENDPOINT=http//evil.example.com",
      },
      /^deploy: env AWS_S3_ENDPOINT may not be set beside Secret\(s\) shop-db: profile shop-backup allows env DB_HOST, DB_DATABASE \(K8S_PROFILES\)$/,
    ],
    [
      "a restore over the real database through a decoy",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "backup", secretenv: "DB_PASSWORD=shop-db/password", env: "BACKUP_ALLOW_RESTORE_EXISTING=true" },
      /^deploy: env BACKUP_ALLOW_RESTORE_EXISTING may not be set beside Secret\(s\) shop-db/,
    ],
    [
      "retention over the real backups",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "backup", secretenv: "DB_PASSWORD=shop-db/password", env: "BACKUP_KEEP=1" },
      /^deploy: env BACKUP_KEEP may not be set beside Secret\(s\) shop-db/,
    ],
    [
      "a bound Secret in another program",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", secretenv: "DB_PASSWORD=shop-db/password" },
      /^deploy: Secret shop-db is not bound to image registry\.example\.com\/colonyos\/\S+ with cmd "sleep": the profile\(s\) binding it \(shop-backup\) do not allow this image and cmd \(K8S_PROFILES\)$/,
    ],
    [
      "env the operator did not allow",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cmd: "sleep", env: "NODE_DEBUG=http" },
      /^deploy: env NODE_DEBUG may not be set for image \S+ with cmd "sleep": K8S_ALLOWED_ENV \(none\)/,
    ],
    [
      "infra's backup processes",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { executortype: "backup" },
      /^deploy: executortype "backup" is not allowed: a deployment's executors take its own name \(x\) as their type unless K8S_ALLOWED_EXECUTOR_TYPES \(trust-\*\) allows another$/,
    ],
    [
      "infra's backup processes, by the deployment's name",
      "deploy",
      () => ["backup", "1", "1", "false", IMAGE],
      {},
      /^deploy: executortype "backup" is served by executors this executor did not create \(foreign-backup\): its processes are theirs; choose another type$/,
    ],
    [
      "an allowed type someone else serves",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { executortype: "trust-taken" },
      /^deploy: executortype "trust-taken" is served by executors this executor did not create \(foreign-trust-taken\)/,
    ],
    [
      "a taint the operator did not list",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { tolerations: "dedicated=NoSchedule" },
      /tolerations may not name the taint dedicated: it is not allowed by K8S_ALLOWED_TOLERATIONS \(gpu\)/,
    ],
    [
      "a billion CPUs",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cpu: "1e9" },
      /deploy: cpu "1e9" is more than the largest allowed, 100/,
    ],
    [
      "a terabyte of memory",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { memory: "1Ti" },
      /deploy: memory "1Ti" is more than the largest allowed, 2Gi/,
    ],
    [
      "zero CPUs",
      "deploy",
      () => ["x", "1", "1", "false", IMAGE],
      { cpu: "0" },
      /cpu "0" must be more than zero/,
    ],
    [
      "more containers than the budget",
      "deploy",
      () => ["x", "4", "2", "false", IMAGE],
      {},
      /8 executor containers would make 8 over all deployments, more than K8S_MAX_CONTAINERS allows \(6\)/,
    ],
    [
      "reading the bootstrap's scale",
      "get_scale",
      () => ["k8s-executor"],
      {},
      /^get_scale: unknown deployment: k8s-executor$/,
    ],
    [
      "listing the bootstrap's pods",
      "get_pods",
      () => ["k8s-executor"],
      {},
      /^get_pods: unknown deployment: k8s-executor$/,
    ],
    ["counting a look-alike's pods", "pods", () => ["foreign"], {}, /^pods: unknown deployment: foreign$/],
    [
      "scaling the bootstrap's executor",
      "scale",
      () => ["k8s-executor", "0"],
      {},
      /^scale: unknown deployment: k8s-executor$/,
    ],
    [
      "undeploying the bootstrap's executor",
      "undeploy",
      () => ["k8s-executor"],
      {},
      /^undeploy: unknown deployment: k8s-executor$/,
    ],
    [
      "undeploying a name never deployed",
      "undeploy",
      () => ["never"],
      {},
      /^undeploy: unknown deployment: never$/,
    ],
    [
      "restarting the k8s executor's own pod",
      "restart",
      () => [bootstrapPod],
      {},
      /^restart: pod k8s-executor-\S+ does not exist or is not managed by this executor$/,
    ],
    [
      "reading the k8s executor's logs",
      "logs",
      () => [bootstrapPod],
      {},
      /^logs: pod k8s-executor-\S+ does not exist or is not managed/,
    ],
    [
      "restarting a look-alike's pod",
      "restart",
      () => [foreignPod],
      {},
      /^restart: pod foreign-\S+ does not exist or is not managed/,
    ],
    [
      "containers of a look-alike's pod",
      "get_containers",
      () => [foreignPod],
      {},
      /does not exist or is not managed/,
    ],
    [
      "an unbounded log read",
      "logs",
      () => [bootstrapPod],
      { limitbytes: "100000000" },
      /logs: argument limitbytes must be a whole number from 1 to 4096/,
    ],
  ];

  it(`fails ${attacks.length} attacks with specific messages, changing nothing and leaking nothing`, async () => {
    const before = await snapshot();
    // Through the official CLI, as a colony member submits them (a raw spec: any strings).
    const submitted = await Promise.all(
      attacks.map(([, funcname, args, kwargs]) =>
        submitByCli(server, dataDir, { funcname, args: args(), kwargs, executortype: "k8s" }),
      ),
    );
    for (const [i, processId] of submitted.entries()) {
      const [what, func, , , expected] = attacks[i] as (typeof attacks)[number];
      const done = await waitDone(server, processId, 120_000);
      expect(done.state, `${what}: ${func} ${JSON.stringify(done.out)}`).toBe(ProcessState.FAILED);
      expect(done.errors?.[0], what).toMatch(expected);
      await expectNoSecrets(done, [server.colonyPrvKey]);
    }
    expect(await snapshot()).toEqual(before);
    expect(await ok("get_deployments")).toEqual([[]]); // neither the bootstrap's executor nor the look-alike
    expect((await core.readNamespacedSecret({ name: "taken-keys", namespace })).data?.precious).toBeDefined();
  });
});

describe("deployments run as executor identities, never with the owner key", () => {
  let runner: LocalPodRunner | undefined;
  const envDir = mkdtempSync(join(tmpdir(), "k8s-trust-env-"));
  afterAll(async () => runner?.stop());

  it("previews register nothing and leave no stack: undeploy of a name only previewed fails", async () => {
    const before = await snapshot();
    const [preview] = (await ok("deploy", ["ghost", "1", "1", "false", IMAGE], { dryrun: "true" })) as [
      Record<string, unknown>,
    ];
    expect(preview).toMatchObject({ deployment: "ghost", dryrun: true, executor: null });
    expect(await snapshot()).toEqual(before);
    const undeploy = await call("undeploy", ["ghost"]);
    expect(undeploy.errors?.[0]).toBe("undeploy: unknown deployment: ghost");
  });

  it("registers one identity per deployment; its containers get only that key and serve as it", async () => {
    const [out] = (await ok("deploy", ["web", "1", "2", "false", IMAGE], {
      executortype: "trust-sleep",
      cmd: "sleep",
    })) as [Record<string, unknown>];
    const identity = String(out.executor);
    expect(identity).toMatch(/^web-[0-9a-f]{6}$/);
    const registered = (await activeExecutors()).find((e) => e.name === identity);
    expect(registered).toMatchObject({ type: "trust-sleep", state: ExecutorState.APPROVED });

    // The Secret holds the identity's key only; the pod spec holds no key at all.
    const secret = await core.readNamespacedSecret({ name: "web-keys", namespace });
    expect(Object.keys(secret.data ?? {})).toEqual(["COLONIES_PRVKEY"]);
    const key = Buffer.from(secret.data?.COLONIES_PRVKEY ?? "", "base64").toString();
    expect(idOf(key)).toBe(registered?.id);
    expect(key).not.toBe(server.colonyPrvKey);
    const deployment = await apps.readNamespacedDeployment({ name: "web", namespace });
    expect(JSON.stringify(deployment)).not.toContain(key);
    expect(JSON.stringify(deployment)).not.toContain(server.colonyPrvKey);

    // The containers, run locally with the environment the kubelet would give them, print it and then serve.
    runner = new LocalPodRunner({
      kubeConfig: admin,
      namespace,
      logger: testLogger,
      gracePeriodMs: 5_000,
      // Only the deployment's containers (the look-alike's pods wear the atom label too).
      command: (container, pod) =>
        pod.metadata?.labels?.["app.kubernetes.io/instance"] !== "web"
          ? null
          : {
              command: "sh",
              args: [
                "-c",
                // written aside, then renamed: the test reads only complete files
                'env > "$0.part" && mv "$0.part" "$0" && exec "$@"',
                join(envDir, `${pod.metadata?.name}-${container.name}.env`),
                process.execPath,
                CLI,
                ...(container.args ?? []),
              ],
            },
    });
    await runner.start();
    const envFiles = () => readdirSync(envDir).filter((f) => f.endsWith(".env"));
    await waitFor("both containers' environments", async () => envFiles().length === 2, 60_000);
    for (const file of envFiles()) {
      const text = readFileSync(join(envDir, file), "utf8");
      expect(text).not.toContain(server.colonyPrvKey);
      const env = Object.fromEntries(
        text.split("\n").map((line) => [line.split("=")[0], line.slice(line.indexOf("=") + 1)]),
      );
      expect(env.COLONIES_COLONY_PRVKEY, file).toBeUndefined();
      expect(env.COLONIES_PRVKEY, file).toBe(key);
    }
    const [pod] = await livePods("app.kubernetes.io/instance=web");
    const kubeletEnv = await resolveContainerEnv({
      container: pod?.spec?.containers[0] as NonNullable<V1Pod["spec"]>["containers"][number],
      pod: pod as V1Pod,
      sources: kubeEnvSources(core, namespace, new AbortController().signal),
    });
    expect(Object.values(kubeletEnv)).not.toContain(server.colonyPrvKey);

    const sleeps = await Promise.all(
      Array.from({ length: 4 }, () => submit(server, "trust-sleep", "sleep", ["200"])),
    );
    for (const s of sleeps) {
      const done = await waitDone(server, s.processid, 120_000);
      expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    }
  });

  it("bounds logs, previews a restart without deleting, and keeps every key out of the state in plain text", async () => {
    const [pod] = await livePods("app.kubernetes.io/instance=web");
    const name = pod?.metadata?.name as string;
    const [text] = (await ok("logs", [name, "executor-0"], { limitbytes: "10" })) as [string];
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(10);
    expect(text.length).toBeGreaterThan(0);

    const [preview] = (await ok("restart", [name], { dryrun: "true" })) as [Record<string, unknown>];
    expect(preview).toMatchObject({ pod: name, dryrun: true });
    expect((await core.readNamespacedPod({ name, namespace })).metadata?.uid).toBe(pod?.metadata?.uid);

    const secret = await core.readNamespacedSecret({ name: "web-keys", namespace });
    const key = Buffer.from(secret.data?.COLONIES_PRVKEY ?? "", "base64").toString();
    const files = readdirSync(dataDir, { recursive: true, encoding: "utf8" })
      .map((entry) => join(dataDir, entry))
      .filter((path) => statSync(path).isFile());
    expect(files.some((f) => f.includes(join(".pulumi", "stacks")))).toBe(true);
    for (const file of files) {
      const content = readFileSync(file, "utf8");
      expect(content, file).not.toContain(key);
      expect(content, file).not.toContain(server.colonyPrvKey);
    }
  });

  it("undeploys: the deployment, its stack and its executor identity are gone", async () => {
    const before = (await activeExecutors()).filter((e) => e.name.startsWith("web-"));
    expect(before).toHaveLength(1);
    const [out] = (await ok("undeploy", ["web"])) as [Record<string, unknown>];
    expect(out).toMatchObject({ deployment: "web", executor: before[0]?.name, executorRemoved: true });
    expect((await activeExecutors()).filter((e) => e.name.startsWith("web-"))).toEqual([]);
    expect(await ok("get_deployments")).toEqual([[]]);
  });
});

describe("budgets and deadlines", () => {
  it("counts deployments and containers over every deployment before an update starts", async () => {
    await ok("deploy", ["a", "1", "2", "false", IMAGE]);
    await ok("deploy", ["b", "1", "2", "false", IMAGE]);
    const third = await call("deploy", ["c", "1", "1", "false", IMAGE]);
    expect(third.errors?.[0]).toBe(
      "deploy: the executor already manages 2 deployments, the most K8S_MAX_DEPLOYMENTS allows (2); undeploy one first",
    );
    await ok("scale", ["a", "2"]); // 4 + 2 = 6 containers: exactly the budget
    const over = await call("scale", ["b", "2"]);
    expect(over.errors?.[0]).toMatch(
      /^scale: 4 executor containers would make 8 over all deployments, more than K8S_MAX_CONTAINERS allows \(6\); 2 are left$/,
    );
    expect((await apps.readNamespacedDeployment({ name: "b", namespace })).spec?.replicas).toBe(1);
    await ok("scale", ["a", "0"]); // shrinking is always allowed
    await Promise.all(["a", "b"].map((n) => ok("undeploy", [n])));
    expect((await activeExecutors()).filter((e) => /^[ab]-/.test(e.name))).toEqual([]);
  });

  it("cancels an update at its hard deadline, leaves nothing behind, and the name deploys again", async () => {
    // 99 CPUs pass the operator's bound (100) but fit no node: the rollout waits until the deadline (40 s).
    const slow = await call("deploy", ["slow", "1", "1", "false", IMAGE], { cpu: "99" });
    expect(slow.state).toBe(ProcessState.FAILED);
    expect(slow.errors?.[0]).toBe(
      "deploy: the Pulumi operation on slow took longer than 40 s and was cancelled",
    );
    const deployments = await apps.listNamespacedDeployment({ namespace });
    expect(deployments.items.map((d) => d.metadata?.name)).not.toContain("slow");
    const secrets = await core.listNamespacedSecret({ namespace });
    expect(secrets.items.map((s) => s.metadata?.name)).not.toContain("slow-keys");
    expect((await activeExecutors()).filter((e) => e.name.startsWith("slow-"))).toEqual([]);
    // no lock left, no stack left: the same name deploys at once
    await ok("deploy", ["slow", "1", "1", "false", IMAGE], { cpu: "100m" });
    await ok("undeploy", ["slow"]);
  });
});

describe("what the operator binds, and objects that are not the stack's", () => {
  it("deploys a bound Secret to the image and cmd of its profile, with that profile's env", async () => {
    const [out] = (await ok("deploy", ["shop", "1", "1", "false", IMAGE], {
      cmd: "backup",
      executortype: "trust-shop",
      secretenv: "DB_PASSWORD=shop-db/password",
      env: "DB_HOST=db.example.com;DB_DATABASE=shop",
    })) as [Record<string, unknown>];
    expect(out).toMatchObject({ deployment: "shop", executortype: "trust-shop", cmd: ["backup"] });
    const container = (await apps.readNamespacedDeployment({ name: "shop", namespace })).spec?.template.spec
      ?.containers[0];
    expect(container?.env?.find((e) => e.name === "DB_PASSWORD")?.valueFrom?.secretKeyRef).toEqual({
      name: "shop-db",
      key: "password",
    });
    await ok("undeploy", ["shop"]);
  });

  it("refuses to undeploy over a Deployment someone else made under the name, and leaves it", async () => {
    await ok("deploy", ["own", "1", "1", "false", IMAGE]);
    await apps.deleteNamespacedDeployment({ name: "own", namespace });
    await waitFor(
      "the Deployment to be gone",
      async () =>
        !(await apps.listNamespacedDeployment({ namespace })).items.some((d) => d.metadata?.name === "own"),
      30_000,
    );
    await foreignDeployment("own", { app: "own-by-someone-else" });
    const refused = await call("undeploy", ["own"]);
    expect(refused.state).toBe(ProcessState.FAILED);
    expect(refused.errors?.[0]).toMatch(
      /^undeploy: a Deployment named own already exists in namespace k8s-trust-\w+ and was not created by this executor's stack for own; it is not deleted; once its owner removes it, undeploy removes the rest$/,
    );
    const foreign = await apps.readNamespacedDeployment({ name: "own", namespace });
    expect(foreign.metadata?.labels).toEqual({ app: "own-by-someone-else" });
    await apps.deleteNamespacedDeployment({ name: "own", namespace });
    const [out] = (await ok("undeploy", ["own"])) as [Record<string, unknown>];
    expect(out).toMatchObject({ deployment: "own", executorRemoved: true });
    expect((await activeExecutors()).filter((e) => e.name.startsWith("own-"))).toEqual([]);
  });
});
