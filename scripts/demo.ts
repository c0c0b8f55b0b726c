/**
 * The local demo, on real peers: PostgreSQL, a Colonies server with a colony, MinIO, a local Kubernetes control
 * plane (kwok nodes) and a file-backend Pulumi. It bootstraps the executors with `pulumi up` of infra/, then
 * walks through the mission with the official `colonies` CLI: deploy sleep executors, run a batch of sleeps on
 * them, scale, get_pods, restart, undeploy, declare them as an ExecutorDeployment blueprint (add, set, remove), absorb
 * a burst of sleeps with autoscaling, take a backup and verify it, then deploy a backup executor whose
 * database password comes from a Kubernetes Secret, take a backup with it and undeploy it.
 *
 * The cluster has no container runtime: the local pod runner (src/local) starts the executor processes of the
 * pods' containers on this machine, with the pods' environment, and stops them when the pods go away. It is the
 * local stand-in for a container runtime and refuses to run against anything but a kwok cluster.
 *
 * With --real-node the k8s steps run on a REAL node instead (scripts/real-node.sh: containerd, runc, kubelet,
 * kube-proxy joined to the demo's cluster) from the project's image built from the Dockerfile (scripts/peers/image.sh,
 * served from a registry on loopback; demo.sh builds it): infra's executors and every deployment are placed on the
 * node (its label selected, its taint tolerated), the pods reach the Colonies server, PostgreSQL and MinIO on this
 * machine's loopback through the ports the node exposes, and the demo counts the ready containers the kubelet
 * reports instead of the runner's processes. Only one real node can run per machine.
 *
 * Each step of the walk-through is one function below, called in order by `main`; a step that starts something
 * registers how to undo it (`atTeardown`), and the demo undoes them in reverse order at the end, also on failure.
 *
 * Usage: bash scripts/demo.sh [--keep] [--real-node]
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { CoreV1Api, type KubeConfig, type V1Container, type V1Pod } from "@kubernetes/client-node";
import { type ColoniesServer, startColoniesServer } from "../peers/colonies-server.js";
import { builtCli, submit, waitDone } from "../peers/executor.js";
import { type MinioServer, startMinio, stopMinio } from "../peers/minio.js";
import { waitFor } from "../peers/ports.js";
import { postgresBindir } from "../peers/postgres.js";
import { linkPulumiProject } from "../peers/pulumi-project.js";
import { findRealNode, REAL_NODE_KWARGS, REAL_NODE_LABEL, REAL_NODE_PLACEMENT } from "../peers/real-node.js";
import { loadKubeConfig } from "../src/atoms/kube-config.js";
import { ProcessState } from "../src/colonies/types.js";
import { createLogger } from "../src/executor/logger.js";
import { LocalPodRunner } from "../src/local/pod-runner.js";

const run = promisify(execFile);
const { values } = parseArgs({
  options: { keep: { type: "boolean", default: false }, "real-node": { type: "boolean", default: false } },
});
const REAL_NODE = values["real-node"];
if (REAL_NODE && !(process.env.COLONYOS_IMAGE && process.env.COLONYOS_REGISTRY)) {
  console.error(
    "--real-node runs the project's image: start the demo with `bash scripts/demo.sh --real-node`, which builds and serves it (scripts/peers/image.sh --export sets COLONYOS_IMAGE and COLONYOS_REGISTRY)",
  );
  process.exit(2);
}
const IMAGE = REAL_NODE ? (process.env.COLONYOS_IMAGE as string) : "colonyos-executors:local";
/** What the demo waits for of a deployment: the runner's processes, or the real node's containers. */
const EXECUTORS = REAL_NODE ? "executor containers" : "executor processes";
/** What a deploy adds on the real node: its label selected and its taint tolerated (`,`-prefixed kwargs). */
const PLACEMENT = REAL_NODE ? `,${REAL_NODE_KWARGS}` : "";
const NAMESPACE = "colonyos-demo";
/** The S3 bucket of infra's backup executor. */
const BUCKET = "demo-backups";
/** The Secret with the shop database's password that the deployed backup executor references. */
const DB_SECRET = { name: "shop-db", key: "password" };
const started = Date.now();
const summary: string[] = [];
let stepNo = 0;

function step(text: string): void {
  stepNo++;
  console.log(`\n\x1b[1m[${stepNo}] ${text}\x1b[0m  (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
function done(text: string): void {
  console.log(`    \x1b[32m✓\x1b[0m ${text}`);
  summary.push(text);
}

const work = mkdtempSync(join(tmpdir(), "colonyos-demo-"));
const logFile = join(work, "executors.log");
const logger = createLogger({ level: "info", pretty: false, name: "demo" });

const teardown: { what: string; undo: () => unknown }[] = [];
/** Registers how to undo a step; the demo undoes them in reverse order at the end, also when a step fails. */
function atTeardown(what: string, undo: () => unknown): void {
  teardown.push({ what, undo });
}
atTeardown("work directory", () => rmSync(work, { recursive: true, force: true }));
/** What the demo shows about its state when a step fails (before tearing down). */
const diagnostics: { what: string; show: () => Promise<string> }[] = [];

/** The servers on loopback, and the official CLI talking to the colony (printing each command). */
interface Peers {
  colonies: ColoniesServer;
  minio: MinioServer;
  cli(args: string[]): Promise<string>;
}
/**
 * The local cluster: its kubeconfig file, and a client of it with the cluster admin's credentials; with --real-node,
 * its real node's name and the address its pods reach this machine's exposed loopback ports at.
 */
interface Cluster {
  kubeconfig: string;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  realNode?: { name: string; hostAddress: string };
}
/**
 * Where the executors of the pods run, and what the demo counts of them: the local pod runner's processes, or the
 * containers of the real node as its kubelet reports them.
 */
interface Runtime {
  /** How the steps name it. */
  what: string;
  /** Where the pods reach the servers bound to this machine's loopback. */
  hostAddress: string;
  /** Starts it before `pulumi up` (the runner; the real node is up already). */
  start(): Promise<void>;
  /** Whether a container of infra's k8s executor has started. */
  infraStarted(): Promise<boolean>;
  /** The executor containers of a deployment that run (on the real node: running and ready). */
  runningContainers(deployment: string): Promise<number>;
}

/** `colonies function exec --func <func> --targettype <type> --wait [--args <args>] [...more]`. */
function exec(func: string, targettype: string, args?: string, ...more: string[]): string[] {
  return [
    "function",
    "exec",
    "--func",
    func,
    ...(args !== undefined ? ["--args", args] : []),
    "--targettype",
    targettype,
    "--wait",
    ...more,
  ];
}

async function startPeers(): Promise<Peers> {
  step("Starting PostgreSQL, a Colonies server with a colony, and MinIO on loopback");
  const colonies = await startColoniesServer();
  atTeardown("Colonies server", () => colonies.stop());
  const minio = await startMinio();
  atTeardown("MinIO", () => stopMinio(minio));
  console.log(
    `    Colonies http://127.0.0.1:${colonies.port} (colony ${colonies.colonyName}); MinIO ${minio.endpoint}`,
  );
  return {
    colonies,
    minio,
    async cli(args) {
      console.log(`    $ colonies ${args.join(" ")}`);
      return (await colonies.cli(args)).stdout;
    },
  };
}

async function startCluster(): Promise<Cluster> {
  step(
    REAL_NODE
      ? "Starting a local Kubernetes cluster (kube-apiserver, controllers, kwok nodes) and a real node (containerd, runc, kubelet, kube-proxy)"
      : "Starting a local Kubernetes cluster (kube-apiserver, controllers, kwok nodes)",
  );
  const clusterEnv = { ...process.env, KWOK_CLUSTER_NAME: "colonyos-demo" };
  atTeardown("cluster", () =>
    execFileSync("bash", ["scripts/cluster.sh", "down"], { env: clusterEnv, stdio: "ignore" }),
  );
  const kubeconfig = execFileSync("bash", ["scripts/cluster.sh", "up"], {
    env: clusterEnv,
    encoding: "utf8",
  }).trim();
  const kubeConfig = loadKubeConfig({ path: kubeconfig });
  done(`cluster up (kubeconfig ${kubeconfig})`);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  if (!REAL_NODE) return { kubeconfig, kubeConfig, core };
  // Down before the cluster (teardown runs in reverse): its containers, network and Node object go first.
  atTeardown("real node", () =>
    execFileSync("bash", ["scripts/real-node.sh", "down"], { env: clusterEnv, stdio: "ignore" }),
  );
  console.log(`    $ REAL_NODE_REGISTRY=${process.env.COLONYOS_REGISTRY} bash scripts/real-node.sh up`);
  execFileSync("bash", ["scripts/real-node.sh", "up"], {
    env: { ...clusterEnv, REAL_NODE_REGISTRY: process.env.COLONYOS_REGISTRY ?? "" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const { node, name, hostAddress } = await findRealNode(core, "real-node.sh up did not leave it Ready");
  const runtime = node.status?.nodeInfo?.containerRuntimeVersion;
  done(
    `real node ${name} Ready (${runtime}, kubelet ${node.status?.nodeInfo?.kubeletVersion}), image ${IMAGE}`,
  );
  return { kubeconfig, kubeConfig, core, realNode: { name, hostAddress } };
}

/** Where the kubeconfig of a service account goes: a token of it, so that the process gets exactly its RBAC. */
const accountKubeconfig = (account: string) => join(work, `${account}.kubeconfig`);

async function writeAccountKubeconfig({ kubeConfig, core }: Cluster, account: string): Promise<void> {
  const token = await core.createNamespacedServiceAccountToken({
    name: account,
    namespace: NAMESPACE,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = kubeConfig.getCurrentCluster();
  writeFileSync(
    accountKubeconfig(account),
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "local",
          cluster: { server: cluster?.server, "certificate-authority-data": cluster?.caData },
        },
      ],
      users: [{ name: account, user: { token: token.status?.token } }],
      contexts: [{ name: "local", context: { cluster: "local", user: account, namespace: NAMESPACE } }],
      "current-context": "local",
    }),
  );
}

const pulumiEnv = Object.fromEntries(
  ["PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"]
    .filter((k) => process.env[k])
    .map((k) => [k, process.env[k] as string]),
);

/** The pods of the namespace, with their nodes and their containers' readiness, for diagnostics. */
async function showPods({ core }: Cluster): Promise<string> {
  return (await core.listNamespacedPod({ namespace: NAMESPACE })).items
    .map((p) => {
      const ready = (p.status?.containerStatuses ?? []).filter((c) => c.ready).length;
      return `${p.metadata?.name} ${p.status?.phase} ${ready}/${p.spec?.containers.length} ready on ${p.spec?.nodeName ?? "-"}`;
    })
    .join("\n");
}

/**
 * The local pod runner (started by the bootstrap, before `pulumi up`), and tokens for the namespace's service
 * accounts, made as soon as `pulumi up` has created them.
 */
function preparePodRunner(cluster: Cluster): Runtime {
  const { kubeConfig, core } = cluster;
  // Every executor pod of the namespace: the k8s executor's deployments (atoms) and infra's own executors, which
  // carry no atom label (so that the k8s executor never sees them). `labelSelector` is the runner's option for
  // that (src/local/pod-runner.ts; the atoms only without it).
  const runnerOptions: ConstructorParameters<typeof LocalPodRunner>[0] & { labelSelector?: string } = {
    kubeConfig,
    namespace: NAMESPACE,
    labelSelector: "app.kubernetes.io/name=colonyos-executor",
    logger,
    gracePeriodMs: 10_000,
    command(container: V1Container, pod: V1Pod) {
      if (!container.image?.startsWith("colonyos-executors")) return null;
      // What an image and the kubelet would provide: the Pulumi plugins, a free port for /metrics (the pods'
      // port is the same for all, but here they share one host), and the service account's credentials. The
      // pod's own environment (Secret references resolved) is the runner's.
      const extra: Record<string, string> = {
        ...pulumiEnv,
        EXECUTOR_LOG_FORMAT: "json",
        EXECUTOR_HTTP_PORT: "0",
      };
      const account = pod.spec?.serviceAccountName;
      if (account && pod.spec?.automountServiceAccountToken !== false)
        extra.KUBECONFIG = accountKubeconfig(account);
      return {
        command: "env",
        args: [
          ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
          "sh",
          "-c",
          // a mounted token exists before the container starts: wait for ours
          `while [ -n "$KUBECONFIG" ] && [ ! -s "$KUBECONFIG" ]; do sleep 0.2; done; exec "$0" "$@" 2>>${logFile}`,
          process.execPath,
          builtCli(),
          ...(container.args ?? []),
        ],
      };
    },
  };
  const runner = new LocalPodRunner(runnerOptions);
  const accounts = new Set<string>();
  const prepare = setInterval(async () => {
    const list = await core
      .listNamespacedServiceAccount({ namespace: NAMESPACE })
      .catch(() => ({ items: [] }));
    for (const account of list.items.map((a) => a.metadata?.name ?? "")) {
      if (account && !accounts.has(account)) {
        accounts.add(account);
        await writeAccountKubeconfig(cluster, account).catch(() => accounts.delete(account));
      }
    }
  }, 200);
  atTeardown("service account tokens", () => clearInterval(prepare));
  atTeardown("pod runner", () => runner.stop());
  diagnostics.push({ what: `pods in ${NAMESPACE}`, show: () => showPods(cluster) });
  diagnostics.push({
    what: "local processes",
    show: async () => (await runner.processes()).map((a) => `${a.id} ${a.state}`).join("\n"),
  });
  return {
    what: "the local pod runner",
    hostAddress: "127.0.0.1",
    start: () => runner.start(),
    infraStarted: async () => (await runner.processes()).some((a) => a.id.startsWith("k8s-executor-")),
    // Executor containers of a deployment that the local pod runner has running.
    runningContainers: async (deployment) =>
      (await runner.processes()).filter((a) => a.id.startsWith(`${deployment}-`) && a.state === "running")
        .length,
  };
}

/**
 * The real node: its pods reach the Colonies server, PostgreSQL and MinIO (all bound to 127.0.0.1) at the node's
 * bridge address once their ports are exposed; PostgreSQL also lets in the pods' /24 (connections keep the pods'
 * own addresses). The demo counts the containers of a deployment that run and are ready on that node (a pod
 * placed on a kwok node would only look Running: kwok fakes it).
 */
function prepareRealNode({ colonies, minio }: Peers, cluster: Cluster): Runtime {
  const { core } = cluster;
  const { name, hostAddress } = cluster.realNode as NonNullable<Cluster["realNode"]>;
  step(`Exposing the Colonies server, PostgreSQL and MinIO to the pods of ${name} at ${hostAddress}`);
  const ports = [colonies.port, colonies.databasePort, Number(new URL(minio.endpoint).port)].map(String);
  console.log(`    $ bash scripts/real-node.sh expose ${ports.join(" ")}`);
  execFileSync("bash", ["scripts/real-node.sh", "expose", ...ports], {
    env: { ...process.env, KWOK_CLUSTER_NAME: "colonyos-demo" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const podCidr = `${hostAddress.replace(/\.\d+$/, ".0")}/24`;
  appendFileSync(join(colonies.databaseDir, "pg_hba.conf"), `host all all ${podCidr} scram-sha-256\n`);
  psql(colonies, "-c", "SELECT pg_reload_conf()");
  done(
    `ports ${ports.join(", ")} (Colonies, PostgreSQL, MinIO) reachable from the pods at ${hostAddress}; PostgreSQL accepts ${podCidr}`,
  );
  const podsOf = async (instance: string) =>
    (
      await core.listNamespacedPod({
        namespace: NAMESPACE,
        labelSelector: `app.kubernetes.io/instance=${instance}`,
      })
    ).items.filter((p) => p.spec?.nodeName === name);
  diagnostics.push({ what: `pods in ${NAMESPACE}`, show: () => showPods(cluster) });
  diagnostics.push({
    what: "the k8s executor's log (last 40 lines)",
    show: async () => {
      const [pod] = await podsOf("k8s-executor");
      if (!pod) return "(no pod)";
      return await core.readNamespacedPodLog({
        name: pod.metadata?.name as string,
        namespace: NAMESPACE,
        tailLines: 40,
      });
    },
  });
  return {
    what: `the real node ${name}`,
    hostAddress,
    start: async () => {},
    infraStarted: async () =>
      (await podsOf("k8s-executor")).some((p) => p.status?.containerStatuses?.some((c) => c.started)),
    // Terminating pods count while their containers still run: 0 means they have stopped.
    runningContainers: async (deployment) =>
      (await podsOf(deployment))
        .flatMap((p) => p.status?.containerStatuses ?? [])
        .filter((c) => c.ready && c.state?.running).length,
  };
}

/** Creates the S3 bucket of infra's backup executor in MinIO. */
function createBucket(minio: MinioServer): void {
  execFileSync(process.execPath, [
    "--import",
    "tsx",
    "-e",
    `
    import { S3Client, CreateBucketCommand } from "@aws-sdk/client-s3";
    const s3 = new S3Client({ endpoint: ${JSON.stringify(minio.endpoint)}, region: ${JSON.stringify(minio.region)}, forcePathStyle: true,
      credentials: { accessKeyId: ${JSON.stringify(minio.accessKey)}, secretAccessKey: ${JSON.stringify(minio.secretKey)} } });
    await s3.send(new CreateBucketCommand({ Bucket: ${JSON.stringify(BUCKET)} }));
  `,
  ]);
}

async function bootstrap({ colonies, minio }: Peers, { kubeconfig }: Cluster, runtime: Runtime) {
  step(
    "Bootstrapping with `pulumi up` of infra/ (restricted namespace with quota, k8s executor with its RBAC and policy, backup executor)",
  );
  const project = join(work, "project");
  mkdirSync(project);
  linkPulumiProject(project);
  mkdirSync(join(work, "pulumi-state"));
  createBucket(minio);
  const pulumiProcessEnv = {
    ...process.env,
    KUBECONFIG: kubeconfig,
    PULUMI_BACKEND_URL: `file://${join(work, "pulumi-state")}`,
    PULUMI_CONFIG_PASSPHRASE: randomBytes(12).toString("hex"),
  };
  async function pulumi(...args: string[]): Promise<string> {
    const { stdout } = await run("pulumi", [...args, "--stack", "demo", "--non-interactive"], {
      cwd: project,
      env: pulumiProcessEnv,
      maxBuffer: 16 << 20,
    });
    return stdout;
  }
  await pulumi("stack", "init", "--secrets-provider", "passphrase");
  atTeardown("pulumi destroy", () => pulumi("destroy", "--yes"));
  const settings: [string, string, boolean?][] = [
    ["namespace", NAMESPACE],
    ["image", IMAGE],
    // What callers may deploy through the k8s executor: the image above (always allowed), as the arguments of its
    // entry point the cmds `sleep` and `backup`, with the executor types `sleep` and `shop-backup` besides a
    // deployment's own name; the Secret shop-db only through the profile below (nothing unless listed).
    ["allowedCmds", "sleep,backup"],
    ["allowedSecrets", DB_SECRET.name],
    ["allowedExecutorTypes", "sleep,shop-backup"],
    // Where the pods reach the Colonies server (on the real node: its bridge address; `pulumi up` itself, which
    // registers the blueprint definition, reaches it on loopback).
    ["coloniesHost", runtime.hostAddress],
    ["coloniesPort", String(colonies.port)],
    ...(REAL_NODE ? [["coloniesApiHost", "127.0.0.1"] as [string, string]] : []),
    ["colonyName", colonies.colonyName],
    ["colonyPrvKey", colonies.colonyPrvKey, true],
    ["k8sPulumiPassphrase", randomBytes(12).toString("hex"), true],
    ...(REAL_NODE
      ? // The node has no volume provisioner: the k8s executor keeps its stacks in its container's writable /data.
        ([
          ["k8sStateBackend", "file:///data/state", true],
          ["allowedTolerations", REAL_NODE_LABEL],
        ] as [string, string, boolean?][])
      : ([
          ["k8sStateBackend", `file://${join(work, "k8s-executor-state")}`, true],
          ["k8sDataDir", join(work, "k8s-executor-data")],
        ] as [string, string, boolean?][])),
    ["databasePassword", colonies.databasePassword, true],
    ["s3AccessKey", minio.accessKey, true],
    ["s3SecretKey", minio.secretKey, true],
  ];
  mkdirSync(join(work, "k8s-executor-state"));
  for (const [key, value, secret] of settings) {
    await pulumi("config", "set", ...(secret ? ["--secret"] : []), key, value);
  }
  if (REAL_NODE) {
    // infra's own executors on the real node: its label selected, its taint tolerated.
    await pulumi("config", "set", "--path", "nodeSelector", JSON.stringify(REAL_NODE_PLACEMENT.nodeSelector));
    await pulumi("config", "set", "--path", "tolerations", JSON.stringify(REAL_NODE_PLACEMENT.tolerations));
  }
  const minioPort = new URL(minio.endpoint).port;
  await pulumi(
    "config",
    "set",
    "--path",
    "backup",
    JSON.stringify({
      database: { host: runtime.hostAddress, port: colonies.databasePort, name: "shop", user: "postgres" },
      target: "s3",
      keep: 3,
      s3: {
        endpoint: `http://${runtime.hostAddress}:${minioPort}`,
        region: minio.region,
        bucket: BUCKET,
        pathStyle: true,
      },
    }),
  );
  // The password of shop-db goes only to the backup command of the image installed here, with only the settings
  // the demo's backup executor needs beside it: no caller-chosen S3 endpoint, database or retention.
  await pulumi(
    "config",
    "set",
    "--path",
    "profiles",
    JSON.stringify({
      "shop-backup": {
        images: [IMAGE],
        cmds: ["backup"],
        secrets: [DB_SECRET.name],
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
    }),
  );
  await runtime.start();
  console.log("    $ pulumi preview");
  const preview = await pulumi("preview");
  console.log(`    ${/Resources:[\s\S]*?\n\n/.exec(preview)?.[0].trim().replace(/\n/g, "\n    ") ?? ""}`);
  console.log("    $ pulumi up --yes");
  const up = await pulumi("up", "--yes");
  done(`pulumi up: ${/(\d+) created/.exec(up)?.[0] ?? "done"}`);
  const policy = JSON.parse(await pulumi("stack", "output", "--json")).outputs.policy;
  console.log(
    `    policy: images ${policy.allowedImages.join(", ")}; cmds ${policy.allowedCmds.join(", ")}; secrets ${policy.allowedSecrets.join(", ")} (profiles ${Object.keys(policy.profiles).join(", ")}); ${policy.podSecurity}; quota ${JSON.stringify(policy.quota)}`,
  );
}

async function waitForRegistration({ colonies, cli }: Peers, runtime: Runtime): Promise<void> {
  step(`Waiting for the k8s and backup executors (run by ${runtime.what}) to register with Colonies`);
  await waitFor(`${runtime.what} to start infra's executors`, () => runtime.infraStarted(), 30_000).catch(
    () => {
      throw new Error(
        REAL_NODE
          ? `no container of infra's k8s executor started on ${runtime.what}`
          : "the local pod runner started none of infra's pods: they carry no atom label, so it must follow them by the labelSelector option (src/local/pod-runner.ts)",
      );
    },
  );
  await waitFor(
    "the k8s and backup executors",
    async () => {
      const out = (await colonies.cli(["executor", "ls"])).stdout;
      return out.includes("k8s-executor") && out.includes("backup-executor");
    },
    180_000,
  );
  console.log(await cli(["executor", "ls"]));
  done(
    REAL_NODE
      ? `k8s and backup executors registered (from their containers on ${runtime.what})`
      : "k8s and backup executors registered (from pods, through the local pod runner)",
  );
}

/** The colony's executors of a type (registered, not removed), by name. */
async function executorsOfType({ colonies }: Peers, type: string): Promise<string[]> {
  const out = (await colonies.cli(["executor", "ls", "--type", type, "--full", "--json"])).stdout.trim();
  return out ? (JSON.parse(out) as { executorname: string }[]).map((e) => e.executorname) : [];
}

/** The executor identity (`<deployment>-<6 hex>`) that deploy's output names. */
function identityIn(deployment: string, deployOut: string): string {
  const identity = new RegExp(`\\bexecutor"?:\\s*"?(${deployment}-[0-9a-f]{6})\\b`).exec(deployOut)?.[1];
  if (!identity) throw new Error(`deploy output names no executor identity:\n${deployOut}`);
  return identity;
}

/** Deploys the sleep executors; returns their executor identity. */
async function deploySleepers(peers: Peers, runtime: Runtime): Promise<string> {
  step("Deploying sleep executors through the k8s executor: 2 pods x 2 containers");
  const deployOut = await peers.cli([
    "function",
    "exec",
    "--func",
    "deploy",
    "--args",
    `sleepers,2,2,false,${IMAGE}`,
    "--kwargs",
    `executortype:sleep,cmd:sleep${PLACEMENT}`,
    "--targettype",
    "k8s",
    "--wait",
    "--out",
  ]);
  console.log(`    ${deployOut.trim()}`);
  // The k8s executor registered ONE executor identity for the deployment (`sleepers-<6 hex>`) and gave its key,
  // not the colony's, to every container: the containers all serve as that executor.
  const identity = identityIn("sleepers", deployOut);
  await waitFor(
    "4 sleep executor containers",
    async () => (await runtime.runningContainers("sleepers")) === 4,
    180_000,
  );
  const registered = await executorsOfType(peers, "sleep");
  if (registered.join() !== identity) {
    throw new Error(
      `expected the one executor identity ${identity} in Colonies, found: ${registered.join(", ")}`,
    );
  }
  console.log(await peers.cli(["executor", "ls"]));
  done(`deploy sleepers: 4 containers running, all as one executor identity ${identity}`);
  return identity;
}

async function runSleeps({ colonies }: Peers, identity: string): Promise<void> {
  step("Running a batch of 16 sleep processes on them");
  const t0 = Date.now();
  const outs = await Promise.all(
    Array.from(
      { length: 16 },
      async () => (await colonies.cli(exec("sleep", "sleep", "500", "--out"))).stdout,
    ),
  );
  const batchMs = Date.now() - t0;
  const served = outs.filter((out) => /\bmilliseconds"?:\s*500\b/.test(out)).length;
  if (served !== 16)
    throw new Error(`${16 - served} of 16 sleeps did not close with their output:\n${outs.join("\n")}`);
  // The only executor of type sleep in the colony is the deployment's identity: it served them all, 4 at a time.
  done(`16 x sleep(500) served by ${identity} in ${batchMs} ms on 4 containers (serial would be 8000 ms)`);
}

async function scaleSleepers(peers: Peers, runtime: Runtime, identity: string): Promise<void> {
  step("Scaling to 3 pods, listing pods, restarting one");
  await peers.cli(exec("scale", "k8s", "sleepers,3"));
  await waitFor(
    "6 sleep executor containers",
    async () => (await runtime.runningContainers("sleepers")) === 6,
    180_000,
  );
  const afterScale = await executorsOfType(peers, "sleep");
  if (afterScale.join() !== identity) {
    throw new Error(`expected still the one executor identity ${identity}, found: ${afterScale.join(", ")}`);
  }
  done(`scale sleepers 3: 6 containers running, still as ${identity}`);
}

/** The sleepers' pods (those not being deleted when `live`), by name. */
async function sleeperPods({ core }: Cluster, live = false): Promise<string[]> {
  const pods = await core.listNamespacedPod({
    namespace: NAMESPACE,
    labelSelector: "app.kubernetes.io/instance=sleepers",
  });
  return pods.items
    .filter((p) => !live || !p.metadata?.deletionTimestamp)
    .map((p) => p.metadata?.name as string);
}

async function listPodsAndRestartOne(peers: Peers, cluster: Cluster): Promise<void> {
  const pods = await peers.cli(exec("get_pods", "k8s", "sleepers", "--out"));
  console.log(`    ${pods.trim().slice(0, 300)}...`);
  const [restarted] = await sleeperPods(cluster);
  await peers.cli(exec("restart", "k8s", restarted as string));
  await waitFor(
    "the replacement pod",
    async () => {
      const names = await sleeperPods(cluster, true);
      return names.length === 3 && !names.includes(restarted as string);
    },
    120_000,
  );
  done(`restart ${restarted}: replaced`);
}

/** Undeploys a deployment and waits for its executor processes to stop and its executor identity to go. */
async function undeploy(peers: Peers, runtime: Runtime, deployment: string, type: string) {
  const undeployOut = await peers.cli(exec("undeploy", "k8s", deployment, "--out"));
  console.log(`    ${undeployOut.trim()}`);
  await waitFor(
    `the ${type} ${EXECUTORS} to stop`,
    async () => (await runtime.runningContainers(deployment)) === 0,
    120_000,
  );
  await waitFor(
    "the executor identity to be removed",
    async () => (await executorsOfType(peers, type)).length === 0,
    60_000,
  );
}

async function undeploySleepers(peers: Peers, runtime: Runtime, identity: string): Promise<void> {
  step("Undeploying the sleep executors");
  await undeploy(peers, runtime, "sleepers", "sleep");
  done(`undeploy sleepers: pods and ${EXECUTORS} gone, executor identity ${identity} removed`);
}

/**
 * The same job declared as a blueprint: `pulumi up` registered the ExecutorDeployment definition with the k8s
 * executor as handler; a member adds a blueprint, the server submits the reconcile, and the k8s executor converges
 * it and writes its status; `blueprint set` scales it, `blueprint remove` deletes it and its executor identity.
 */
async function blueprintSleepers(peers: Peers, runtime: Runtime): Promise<void> {
  step("Declaring sleep executors as an ExecutorDeployment blueprint: add, set spec.replicas, remove");
  const running = async (n: number) => {
    await waitFor(
      `blueprint sleepers-bp running ${n} pods`,
      async () => {
        const out = (await peers.colonies.cli(["blueprint", "get", "--name", "sleepers-bp", "--json"]))
          .stdout;
        const status = (JSON.parse(out) as { status?: { runningInstances?: number } }).status;
        return status?.runningInstances === n && (await runtime.runningContainers("sleepers-bp")) === n;
      },
      180_000,
    );
  };
  const file = join(work, "sleepers-bp.json");
  writeFileSync(
    file,
    JSON.stringify({
      kind: "ExecutorDeployment",
      metadata: { name: "sleepers-bp" },
      spec: {
        image: IMAGE,
        cmd: ["sleep"],
        executorType: "sleep",
        replicas: 2,
        cpu: "100m",
        memory: "128Mi",
        ...(REAL_NODE
          ? {
              nodeSelector: REAL_NODE_PLACEMENT.nodeSelector,
              tolerations: [{ key: REAL_NODE_LABEL, value: "true", effect: "NoSchedule" }],
            }
          : {}),
      },
    }),
  );
  await peers.cli(["blueprint", "add", "--spec", file]);
  await running(2);
  await peers.cli(["blueprint", "set", "--name", "sleepers-bp", "--key", "spec.replicas", "--value", "3"]);
  await running(3);
  console.log(await peers.cli(["blueprint", "get", "--name", "sleepers-bp"]));
  await peers.cli(["blueprint", "remove", "--name", "sleepers-bp"]);
  await waitFor(
    `the blueprint's ${EXECUTORS} to stop`,
    async () => (await runtime.runningContainers("sleepers-bp")) === 0,
    120_000,
  );
  await waitFor(
    "the blueprint's executor identity to be removed",
    async () => (await executorsOfType(peers, "sleep")).length === 0,
    60_000,
  );
  done("blueprint sleepers-bp: 2 pods, `blueprint set spec.replicas 3` → 3, removed with its identity");
}

/**
 * A burst absorbed by autoscaling: a deployment of no pods, autoscaled 0..4 from the Colonies queue, gets 24
 * sleeps; the k8s executor grows it while they wait and shrinks it to 0 once they are done.
 */
async function absorbBurst(peers: Peers, runtime: Runtime): Promise<void> {
  step("Absorbing a burst with autoscaling: 0..4 pods sized from the Colonies queue");
  await peers.cli([
    ...exec("deploy", "k8s", `burst,0,1,false,${IMAGE}`),
    "--kwargs",
    `executortype:burst,cmd:sleep${PLACEMENT}`,
  ]);
  await peers.cli([...exec("autoscale", "k8s", "burst,0,4"), "--kwargs", "cooldown:10"]);
  const t0 = Date.now();
  const ids = await Promise.all(
    Array.from({ length: 24 }, async () => {
      const { stderr } = await peers.colonies.cli([
        "function",
        "exec",
        "--func",
        "sleep",
        "--args",
        "1000",
        "--targettype",
        "burst",
      ]);
      return /ProcessId=([0-9a-f]{64})/.exec(stderr)?.[1] ?? "";
    }),
  );
  console.log(
    "    $ colonies function exec --func sleep --args 1000 --targettype burst   (x 24, without --wait)",
  );
  let peak = 0;
  const watch = setInterval(async () => {
    peak = Math.max(peak, await runtime.runningContainers("burst").catch(() => 0));
  }, 500);
  try {
    const finished = await Promise.all(ids.map((id) => waitDone(peers.colonies, id, 300_000)));
    const failed = finished.filter((p) => p.state !== ProcessState.SUCCESS);
    if (failed.length)
      throw new Error(`${failed.length} of the burst's sleeps failed: ${failed[0]?.errors?.join("; ")}`);
  } finally {
    clearInterval(watch);
  }
  const drainedMs = Date.now() - t0;
  await waitFor(
    "the burst deployment to shrink to 0",
    async () => (await runtime.runningContainers("burst")) === 0,
    120_000,
  );
  console.log(await peers.cli([...exec("get_autoscale", "k8s", "burst"), "--out"]));
  // The same through the API, for the summary (the CLI prints values in Go's notation).
  const status = await waitDone(
    peers.colonies,
    (await submit(peers.colonies, "k8s", "get_autoscale", ["burst"])).processid,
  );
  const recorded = (status.out?.[0] as { decisions?: { from: number; to: number }[] })?.decisions ?? [];
  const decisions = recorded.map((d) => `${d.from}→${d.to}`);
  await undeploy(peers, runtime, "burst", "burst");
  done(
    `autoscale burst 0..4: 24 x sleep(1000) drained in ${(drainedMs / 1000).toFixed(0)} s on up to ${peak} pods, then back to 0 (decisions ${decisions.join(", ")})`,
  );
}

/** `psql` as postgres against the Colonies server's PostgreSQL. */
function psql(colonies: ColoniesServer, ...args: string[]): void {
  execFileSync("psql", ["-h", "127.0.0.1", "-p", String(colonies.databasePort), "-U", "postgres", ...args], {
    env: { ...process.env, PGPASSWORD: colonies.databasePassword },
  });
}

/** The shop database with a table of 50000 rows, for the backups. */
function createShopDatabase({ colonies }: Peers): void {
  psql(colonies, "-c", "CREATE DATABASE shop");
  psql(
    colonies,
    "-d",
    "shop",
    "-c",
    "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS item FROM generate_series(1, 50000) g",
  );
}

const BACKUP_NAME = /(backup_shop_\d{8}T\d{6}\.\d{3}Z\.bak)/;

async function backupWithInfraExecutor(peers: Peers): Promise<void> {
  step("Taking a backup of the shop database with the backup executor, then verifying it");
  createShopDatabase(peers);
  const backupOut = await peers.cli(exec("backup", "backup", undefined, "--out"));
  const name = BACKUP_NAME.exec(backupOut)?.[1];
  console.log(`    ${backupOut.trim()}`);
  if (!name) throw new Error(`backup output names no backup:\n${backupOut}`);
  const verifyOut = await peers.cli(exec("verify", "backup", name, "--out"));
  console.log(`    ${verifyOut.trim()}`);
  done(`backup ${name} to s3://${BUCKET} and verified`);
}

/**
 * A backup executor deployed through Colonies: the database password stays in a Secret (the k8s executor
 * passes only the reference; the local pod runner resolves it as a kubelet would), the rest is plain env.
 * On the real node it writes to /data/backups inside its container, and the demo checks the backup through the
 * executor itself (`verify` reads it back) instead of looking at a directory of this machine.
 */
async function deployBackupExecutor(peers: Peers, cluster: Cluster, runtime: Runtime): Promise<void> {
  step("Deploying a backup executor through the k8s executor, its database password from a Secret; a backup");
  const { colonies } = peers;
  await cluster.core.createNamespacedSecret({
    namespace: NAMESPACE,
    body: {
      metadata: { name: DB_SECRET.name },
      stringData: { [DB_SECRET.key]: colonies.databasePassword },
    },
  });
  atTeardown(`Secret ${DB_SECRET.name}`, () =>
    cluster.core.deleteNamespacedSecret({ name: DB_SECRET.name, namespace: NAMESPACE }),
  );
  console.log(`    Secret ${DB_SECRET.name} (key ${DB_SECRET.key}) created in ${NAMESPACE}`);
  const backupDir = REAL_NODE ? "/data/backups" : join(work, "shop-backups");
  // The CLI splits --kwargs on ',' and refuses ':' in values: items of env and secretenv are ';'-separated.
  // On the real node the image's own pg_dump runs; locally the one of this machine's PostgreSQL.
  const env = [
    `DB_HOST=${runtime.hostAddress}`,
    `DB_PORT=${colonies.databasePort}`,
    "DB_DATABASE=shop",
    "DB_USER=postgres",
    "BACKUP_TARGET=dir",
    `BACKUP_DIR=${backupDir}`,
    ...(REAL_NODE ? [] : [`BACKUP_PG_BINDIR=${postgresBindir()}`]),
  ].join(";");
  const deployOut = await peers.cli([
    "function",
    "exec",
    "--func",
    "deploy",
    "--targettype",
    "k8s",
    "--wait",
    "--out",
    "--args",
    `shop-backups,1,1,false,${IMAGE}`,
    "--kwargs",
    `executortype:shop-backup,cmd:backup,env:${env},secretenv:DB_PASSWORD=${DB_SECRET.name}/${DB_SECRET.key}${PLACEMENT}`,
  ]);
  console.log(`    ${deployOut.trim()}`);
  if (deployOut.includes(colonies.databasePassword)) throw new Error("deploy's output shows the password");
  const identity = identityIn("shop-backups", deployOut);
  await waitFor(
    "the shop-backup executor to register",
    async () => (await executorsOfType(peers, "shop-backup")).join() === identity,
    180_000,
  );
  const backupOut = await peers.cli(exec("backup", "shop-backup", undefined, "--out"));
  console.log(`    ${backupOut.trim()}`);
  const name = BACKUP_NAME.exec(backupOut)?.[1];
  if (!name) throw new Error(`backup output names no backup:\n${backupOut}`);
  if (REAL_NODE) {
    // The backup is in the container's /data/backups: the executor reads it back (checksum, size, database).
    const verifyOut = await peers.cli(exec("verify", "shop-backup", name, "--out"));
    console.log(`    ${verifyOut.trim()}`);
    if (!/\bok:true\b/.test(verifyOut) || !verifyOut.includes("database:shop"))
      throw new Error(`verify ${name} did not confirm a backup of shop:\n${verifyOut}`);
    done(
      `deploy shop-backups (password from Secret ${DB_SECRET.name}) as ${identity}: backup ${name} in ${backupDir} of its container, verified by it`,
    );
  } else {
    if (!existsSync(join(backupDir, name))) throw new Error(`${name} is not in ${backupDir}`);
    done(
      `deploy shop-backups (password from Secret ${DB_SECRET.name}) as ${identity}: backup ${name} in ${backupDir}`,
    );
  }
  await undeploy(peers, runtime, "shop-backups", "shop-backup");
  done(`undeploy shop-backups: ${EXECUTORS} gone, executor identity ${identity} removed`);
}

function printSummary(runtime: Runtime): void {
  console.log(`\n\x1b[1mSummary\x1b[0m (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  if (REAL_NODE)
    console.log(
      `  The k8s steps ran on ${runtime.what}: real containers of ${IMAGE} (containerd, runc, kubelet), no local pod runner.`,
    );
  for (const line of summary) console.log(`  ✓ ${line}`);
}

async function keepRunning({ colonies }: Peers, { kubeconfig }: Cluster): Promise<void> {
  const logs = REAL_NODE
    ? `KUBECONFIG=${kubeconfig} kubectl -n ${NAMESPACE} logs deploy/k8s-executor`
    : logFile;
  console.log(`\nStill running. Talk to it with:
    export COLONIES_SERVER_HOST=127.0.0.1 COLONIES_SERVER_PORT=${colonies.port} COLONIES_TLS=false
    export COLONIES_COLONY_NAME=${colonies.colonyName} COLONIES_PRVKEY=${colonies.userPrvKey}
    colonies function exec --func get_deployments --targettype k8s --wait --out
    KUBECONFIG=${kubeconfig} kubectl -n ${NAMESPACE} get pods
  Executor logs: ${logs}. Press Ctrl-C to tear everything down.`);
  await new Promise((r) => process.once("SIGINT", r));
}

async function main(): Promise<void> {
  const peers = await startPeers();
  const cluster = await startCluster();
  const runtime = REAL_NODE ? prepareRealNode(peers, cluster) : preparePodRunner(cluster);
  await bootstrap(peers, cluster, runtime);
  await waitForRegistration(peers, runtime);
  const identity = await deploySleepers(peers, runtime);
  await runSleeps(peers, identity);
  await scaleSleepers(peers, runtime, identity);
  await listPodsAndRestartOne(peers, cluster);
  await undeploySleepers(peers, runtime, identity);
  await blueprintSleepers(peers, runtime);
  await absorbBurst(peers, runtime);
  await backupWithInfraExecutor(peers);
  await deployBackupExecutor(peers, cluster, runtime);
  printSummary(runtime);
  if (values.keep) await keepRunning(peers, cluster);
}

try {
  await main();
} catch (error) {
  console.log(`\n\x1b[31mThe demo failed:\x1b[0m ${(error as Error).message}`);
  for (const { what, show } of diagnostics) {
    console.log(`${what}:\n${await show().catch((e: Error) => `(${e.message})`)}`);
  }
  const log = existsSync(logFile) ? readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-40) : [];
  if (log.length) console.log(`Last lines of the executors' log (${logFile}):\n${log.join("\n")}`);
  throw error;
} finally {
  step(`Tearing down: pulumi destroy, ${REAL_NODE ? "real node" : "pod runner"}, cluster, servers`);
  for (const { what, undo } of teardown.reverse()) {
    try {
      await undo();
    } catch (error) {
      console.log(`    ${what}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  console.log("    done");
}
