/**
 * The k8s executor on an S3 state backend (real MinIO, the Pulumi CLI, the Colonies server, the executor's built
 * CLI as a process of its own) whose storage refuses a write. MinIO does so on its own, rarely: a PutObject of a
 * new object answers 403 AccessDenied while a concurrent DeleteObject removes the prefix they share, which is
 * what Pulumi's locks do when two stacks update at once (the replicas suite once failed a deploy on it). Here a
 * proxy in front of MinIO refuses the lock writes the same way, so that each case happens every time. Checked:
 * - a lock write refused once: the update is tried once more and the call succeeds; the executor's log (a
 *   warning) and the process's own log say so and name the storage's answer;
 * - lock writes refused until told otherwise: the call fails with the storage's answer after one more try,
 *   the Deployment is unchanged, and the executor serves again once the storage accepts; no lock is left.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { builtCli, processLog, userClient } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { type MinioServer, minioClient, startMinio, stopMinio } from "../../peers/minio.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import { k8sCalls } from "../support/k8s-calls.js";
import { type S3FaultProxy, startS3FaultProxy } from "../support/s3-fault-proxy.js";

const BUCKET = "pulumi-state";
const LOCK_WRITES = /\/\.pulumi\/locks\//;
const type = `k8s-s3-${randomBytes(2).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "k8s-state-s3-"));
const logFile = join(dir, "executor.log");
let server: ColoniesServer;
let minio: MinioServer;
let proxy: S3FaultProxy;
let s3: S3Client;
let executor: ChildProcess | undefined;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
const { call, ok } = k8sCalls(() => server, type);

/** The executor's log lines that say it tried an operation once more. */
function retryWarnings(): { stack: string; reason: string }[] {
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((line) => line.includes("trying it once more"))
    .map((line) => JSON.parse(line));
}

beforeAll(async () => {
  const admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-state-s3");
  [server, minio] = await Promise.all([startColoniesServer(), startMinio()]);
  s3 = minioClient(minio);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  proxy = await startS3FaultProxy(minio.endpoint);
  const kubeconfig = await executorKubeconfig(admin, namespace, dir);
  executor = spawn(process.execPath, [builtCli(), "k8s"], {
    env: {
      ...process.env,
      ...server.env,
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: `${type}-0`,
      COLONIES_EXECUTOR_TYPE: type,
      ...k8sExecutorEnv({
        kubeconfig,
        namespace,
        dataDir: join(dir, "data"),
        passphrase: randomBytes(12).toString("hex"),
      }),
      K8S_PULUMI_BACKEND_URL: `s3://${BUCKET}?endpoint=${proxy.host}&disableSSL=true&s3ForcePathStyle=true&region=${minio.region}`,
      AWS_ACCESS_KEY_ID: minio.accessKey,
      AWS_SECRET_ACCESS_KEY: minio.secretKey,
      AWS_REGION: minio.region,
      EXECUTOR_ASSIGN_TIMEOUT: "5",
      EXECUTOR_LOG_FORMAT: "json",
    },
    detached: true,
    stdio: ["ignore", "ignore", openSync(logFile, "w")],
  });
  const client = userClient(server);
  await waitFor(
    "the k8s executor registered",
    async () =>
      (await client.getExecutors(server.colonyName, server.userPrvKey)).some((e) => e.executortype === type),
    120_000,
  );
}, 300_000);

afterAll(async () => {
  if (executor?.pid) {
    try {
      process.kill(-executor.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await proxy?.close();
  await server?.stop();
  if (minio) await stopMinio(minio);
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("k8s executor on an S3 state backend whose storage refuses a write", () => {
  it("tries an update once more when its lock write is refused once, and succeeds", async () => {
    proxy.refuse("PUT", LOCK_WRITES, 1);
    const deployed = await call("deploy", ["s3-web", "1", "1", "false", TEST_IMAGE]);
    expect(deployed.state, deployed.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect(proxy.refused()).toBe(1);
    // The caller's log says why a second attempt follows the first one's output.
    expect(await processLog(server, deployed.processid)).toMatch(
      /The state backend's storage failed the operation \(.*AccessDenied.*\); trying it once more/,
    );
    const deployment = await apps.readNamespacedDeployment({ name: "s3-web", namespace });
    expect(deployment.spec?.replicas).toBe(1);
    const warnings = retryWarnings();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.stack).toBe("s3-web");
    expect(warnings[0]?.reason).toMatch(/operation error S3: PutObject.*StatusCode: 403.*AccessDenied/);
  }, 300_000);

  it("fails a call clearly when the storage keeps refusing, changes nothing, and serves again once it accepts", async () => {
    proxy.refuse("PUT", LOCK_WRITES, Number.POSITIVE_INFINITY);
    const failed = await call("scale", ["s3-web", "2"]);
    expect(failed.state).toBe(ProcessState.FAILED);
    expect(failed.errors?.join("; ")).toMatch(/^scale: .*operation error S3: PutObject.*AccessDenied/);
    // The first try and one more: no endless retrying.
    expect(proxy.refused()).toBe(3);
    expect(retryWarnings()).toHaveLength(2);
    expect((await apps.readNamespacedDeployment({ name: "s3-web", namespace })).spec?.replicas).toBe(1);

    proxy.refuse("PUT", LOCK_WRITES, 0);
    await ok("scale", ["s3-web", "2"]);
    expect((await apps.readNamespacedDeployment({ name: "s3-web", namespace })).spec?.replicas).toBe(2);
    await ok("undeploy", ["s3-web"]);
    const locks = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: ".pulumi/locks/" }));
    expect(locks.Contents ?? []).toEqual([]);
  }, 300_000);
});
