/**
 * The artefact users install, end to end on a REAL node (scripts/real-node.sh: containerd, runc, kubelet,
 * kube-proxy joined to the local control plane): the image built from the Dockerfile (scripts/peers/image.sh,
 * pulled from the local registry), bootstrapped with `pulumi up` of infra/ into a namespace enforcing the
 * `restricted` Pod Security level. The k8s executor runs in its container as uid 65532 and drives its in-container
 * Pulumi to deploy sleep executors as real containers whose readiness is the executors' /readyz; everything is
 * driven the way users drive it, with the official `colonies` CLI against a real Colonies server.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, userClient, waitDone } from "../../peers/executor.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { linkPulumiProject } from "../../peers/pulumi-project.js";
import {
  findRealNode,
  REAL_NODE_KWARGS,
  REAL_NODE_LABEL,
  REAL_NODE_PLACEMENT,
} from "../../peers/real-node.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ExecutorState, ProcessState } from "../../src/colonies/types.js";

const run = promisify(execFile);
const HOW_TO =
  'build and serve the image with `eval "$(bash scripts/peers/image.sh --export)"`, then start the node with ' +
  "`REAL_NODE_REGISTRY=$COLONYOS_REGISTRY bash scripts/real-node.sh up` after `bash scripts/cluster.sh up` " +
  "(scripts/test.sh does all of it)";
/** A profile binding the database's Secret to the image's backup command, with the settings beside it. */
const PROFILE = {
  "shop-backup": {
    images: [process.env.COLONYOS_IMAGE ?? ""],
    cmds: ["backup"],
    secrets: ["shop-db"],
    env: ["DB_HOST", "DB_PORT", "DB_DATABASE", "DB_USER", "BACKUP_TARGET", "BACKUP_DIR"],
  },
};
/** What a deploy to the real node adds: its label, and its taint tolerated (the operator allows that key). */
const ON_REAL_NODE = REAL_NODE_KWARGS;

const image = process.env.COLONYOS_IMAGE ?? "";
const namespace = `real-${randomBytes(3).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "real-node-e2e-"));
const projectDir = join(work, "project");
let server: ColoniesServer;
/** The database a deployed backup executor backs up, reached from the pods at the node's bridge address. */
let shop: Postgres;
let core: CoreV1Api;
let apps: AppsV1Api;
let cluster = "";
let hostAddress = "";
let env: NodeJS.ProcessEnv;
let upDone = false;

async function pulumi(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run("pulumi", [...args, "--stack", "real", "--non-interactive"], {
      env,
      cwd: projectDir,
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`pulumi ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

async function realNodeScript(...args: string[]): Promise<void> {
  await run("bash", ["scripts/real-node.sh", ...args], {
    env: { ...process.env, KWOK_CLUSTER_NAME: cluster },
  });
}

/** `colonies function exec --func F --targettype T --wait --out [...]`: the process's output, or its error. */
async function exec(func: string, targettype: string, ...more: string[]): Promise<string> {
  const { stdout, stderr } = await server.cli([
    "function",
    "exec",
    "--func",
    func,
    "--targettype",
    targettype,
    "--wait",
    "--out",
    ...more,
  ]);
  return stdout + stderr;
}

async function podsOf(instance: string): Promise<V1Pod[]> {
  const pods = await core.listNamespacedPod({
    namespace,
    labelSelector: `app.kubernetes.io/instance=${instance}`,
  });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** get_pods of a deployment, its output read from the process (the CLI's --out prints Go maps, not JSON). */
async function getPods(deployment: string): Promise<unknown[]> {
  const done = await waitDone(
    server,
    (await submit(server, "k8s", "get_pods", [deployment])).processid,
    60_000,
  );
  if (done.state !== ProcessState.SUCCESS)
    throw new Error(`get_pods ${deployment}: ${done.errors?.join("; ")}`);
  return done.out?.[0] as unknown[];
}

const ready = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");

async function registered(type: string): Promise<string[]> {
  return (await userClient(server).getExecutors(server.colonyName, server.userPrvKey))
    .filter((e) => e.executortype === type && e.state === ExecutorState.APPROVED)
    .map((e) => e.executorname);
}

beforeAll(async () => {
  if (!image) throw new Error(`COLONYOS_IMAGE is not set; ${HOW_TO}`);
  const kubeconfig = clusterKubeconfig();
  const kc = loadKubeConfig({ path: kubeconfig });
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  const found = await findRealNode(core, HOW_TO);
  cluster = found.name.replace(/-node$/, "");
  hostAddress = found.hostAddress;
  server = await startColoniesServer();
  shop = await startPostgres();
  // Connections from the pods arrive with their own addresses (the node's NAT rewrites only the destination).
  // The pods' /24, whose first address is the bridge's (scripts/real-node.sh).
  const podCidr = `${hostAddress.replace(/\.\d+$/, ".0")}/24`;
  appendFileSync(join(shop.dataDir, "pg_hba.conf"), `host all all ${podCidr} scram-sha-256\n`);
  await query(shop, "postgres", "SELECT pg_reload_conf()");
  await query(shop, "postgres", "CREATE DATABASE shop");
  await query(
    shop,
    "shop",
    "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS item FROM generate_series(1, 5000) g",
  );
  // The pods reach the servers, bound to 127.0.0.1 here, at the node's bridge address.
  await realNodeScript("expose", String(server.port), String(shop.port));
  mkdirSync(projectDir);
  mkdirSync(join(work, "state"));
  linkPulumiProject(projectDir);
  env = {
    ...process.env,
    KUBECONFIG: kubeconfig,
    PULUMI_BACKEND_URL: `file://${join(work, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: randomBytes(8).toString("hex"),
  };
  await pulumi("stack", "init", "--secrets-provider", "passphrase");
  const settings: [string, string, boolean?][] = [
    ["namespace", namespace],
    ["image", image],
    ["coloniesHost", hostAddress],
    ["coloniesPort", String(server.port)],
    ["coloniesApiHost", server.host],
    ["colonyName", server.colonyName],
    ["colonyPrvKey", server.colonyPrvKey, true],
    ["k8sPulumiPassphrase", randomBytes(12).toString("hex"), true],
    // The node has no volume provisioner: the executor keeps its stacks in its own writable home.
    ["k8sStateBackend", "file:///data/state", true],
    ["k8sStackConcurrency", "2"],
    ["allowedTolerations", REAL_NODE_LABEL],
    ["allowedExecutorTypes", "sleep,shop-backup"],
    ["allowedCmds", "sleep,backup"],
    ["allowedSecrets", "shop-db"],
    ["blueprintDefinition", "false"],
  ];
  for (const [key, value, secret] of settings)
    await pulumi("config", "set", ...(secret ? ["--secret"] : []), key, value);
  await pulumi("config", "set", "--path", "nodeSelector", JSON.stringify(REAL_NODE_PLACEMENT.nodeSelector));
  await pulumi("config", "set", "--path", "tolerations", JSON.stringify(REAL_NODE_PLACEMENT.tolerations));
  await pulumi("config", "set", "--path", "profiles", JSON.stringify(PROFILE));
  await pulumi("up", "--yes", "--skip-preview");
  upDone = true;
}, 600_000);

afterAll(async () => {
  if (upDone) await pulumi("destroy", "--yes", "--skip-preview").catch(() => undefined);
  if (server && shop)
    await realNodeScript("unexpose", String(server.port), String(shop.port)).catch(() => undefined);
  await server?.stop();
  await shop?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}, 300_000);

describe("the executors image on a real node", () => {
  it("runs the k8s executor in its container as uid 65532 under the restricted level, registered", async () => {
    const ns = await core.readNamespace({ name: namespace });
    expect(ns.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const [pod] = await podsOf("k8s-executor");
    expect(pod?.spec?.nodeName).toBe(`${cluster}-node`);
    expect(ready(pod as V1Pod)).toBe(true);
    const status = pod?.status?.containerStatuses?.[0];
    expect(status?.imageID).toContain("sha256:");
    expect(
      pod?.spec?.securityContext?.runAsUser ?? pod?.spec?.containers[0]?.securityContext?.runAsUser,
    ).toBe(65532);
    await waitFor("the k8s executor registered", async () => (await registered("k8s")).length === 1, 60_000);
  });

  it("deploys sleep executors as real containers through its in-container Pulumi; 16 sleeps run on them", async () => {
    const out = await exec(
      "deploy",
      "k8s",
      "--args",
      `sleepers,2,2,false,${image}`,
      "--kwargs",
      `executortype:sleep,cmd:sleep,${ON_REAL_NODE}`,
    );
    expect(out).toMatch(/sleepers-[0-9a-f]{6}/);
    const pods = await podsOf("sleepers");
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toBe(`${cluster}-node`);
      // Ready means /readyz answered: the executors registered and poll.
      expect(ready(pod)).toBe(true);
      expect(pod.spec?.containers[0]?.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(pod.status?.containerStatuses?.every((c) => c.ready && c.started)).toBe(true);
    }
    const processes = await Promise.all(
      Array.from({ length: 16 }, () => submit(server, "sleep", "sleep", [500])),
    );
    for (const p of processes) {
      const done = await waitDone(server, p.processid, 120_000);
      expect(done.state).toBe(ProcessState.SUCCESS);
    }
  }, 300_000);

  it("scales, lists pods, restarts one into a new container, and reads logs from the runtime", async () => {
    await exec("scale", "k8s", "--args", "sleepers,3");
    const pods = await podsOf("sleepers");
    expect(pods.filter(ready)).toHaveLength(3);
    const listed = (await getPods("sleepers")) as { id: string; state: string }[];
    expect(listed.map((p) => p.state)).toEqual(["running", "running", "running"]);

    const victim = pods[0]?.metadata?.name as string;
    await exec("restart", "k8s", "--args", victim);
    await waitFor(
      "a new pod in place of the restarted one",
      async () => {
        const now = await podsOf("sleepers");
        return now.length === 3 && now.every(ready) && !now.some((p) => p.metadata?.name === victim);
      },
      120_000,
    );
    const logs = await exec("logs", "k8s", "--args", `${(await podsOf("sleepers"))[0]?.metadata?.name}`);
    // The runtime's own structured log lines, read from the container runtime through the kubelet.
    expect(logs).toMatch(/registered|assign|serving/);
  }, 300_000);

  it("a container whose memory limit is below its use is OOM-killed, and get_pods says resource_failure", async () => {
    await exec(
      "deploy",
      "k8s",
      "--args",
      `hog,1,1,false,${image}`,
      "--kwargs",
      `executortype:hog,cmd:sleep,${ON_REAL_NODE}`,
    );
    // The same executors under a limit far below what Node needs to start: the update's rollout cannot finish.
    const refused = await exec(
      "deploy",
      "k8s",
      "--args",
      `hog,1,1,false,${image}`,
      "--kwargs",
      `executortype:hog,cmd:sleep,memory:8Mi,${ON_REAL_NODE}`,
    ).catch((error: Error) => error.message);
    expect(refused).not.toContain("Process finished successfully");
    let atoms: { result?: string; containers?: { result?: string }[] }[] = [];
    await waitFor(
      "an OOM-killed container",
      async () => {
        atoms = (await getPods("hog")) as typeof atoms;
        return JSON.stringify(atoms).includes("resource_failure");
      },
      120_000,
    );
    const oom = (await podsOf("hog")).flatMap((p) => p.status?.containerStatuses ?? []);
    expect(
      oom.some((c) => (c.lastState?.terminated?.reason ?? c.state?.terminated?.reason) === "OOMKilled"),
    ).toBe(true);
    await exec("undeploy", "k8s", "--args", "hog");
  }, 300_000);

  it("a deployed backup executor takes a real backup, its password from a Secret", async () => {
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: "shop-db" }, stringData: { password: shop.password } },
    });
    const settings = [
      `DB_HOST=${hostAddress}`,
      `DB_PORT=${shop.port}`,
      "DB_DATABASE=shop",
      "DB_USER=postgres",
      "BACKUP_TARGET=dir",
      "BACKUP_DIR=/data/backups",
    ].join(";");
    const deployed = await exec(
      "deploy",
      "k8s",
      "--args",
      `shop-backups,1,1,false,${image}`,
      "--kwargs",
      `executortype:shop-backup,cmd:backup,env:${settings},secretenv:DB_PASSWORD=shop-db/password,${ON_REAL_NODE}`,
    );
    expect(deployed).not.toContain(shop.password);
    const backup = await exec("backup", "shop-backup");
    const name = /backup_shop_\d{8}T\d{6}\.\d{3}Z\.bak/.exec(backup)?.[0];
    expect(name, backup).toBeDefined();
    const verified = await exec("verify", "shop-backup", "--args", name as string);
    // The archive read back: checksum and size match, and it is the shop database's (the CLI prints Go maps).
    expect(verified).toMatch(/\bok:true\b/);
    expect(verified).toContain("database:shop");
    await exec("undeploy", "k8s", "--args", "shop-backups");
  }, 300_000);

  it("undeploys: the containers stop and the identity goes", async () => {
    await exec("undeploy", "k8s", "--args", "sleepers");
    await waitFor("the sleepers' pods gone", async () => (await podsOf("sleepers")).length === 0, 120_000);
    expect(await registered("sleep")).toEqual([]);
    expect((await apps.listNamespacedDeployment({ namespace })).items.map((d) => d.metadata?.name)).toEqual([
      "k8s-executor",
    ]);
  }, 180_000);
});
