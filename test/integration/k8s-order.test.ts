/**
 * The order of the calls on a deployment name, on real peers through the official `colonies` CLI, the way any
 * colony member can call: `colonies function submit --spec` with the `priority` of their choice cannot move a
 * call's place (the order is the Colonies server's submission time), also after a restart (the record on the
 * name's Lease); a waiting call is closed as superseded only by a later call that was applied (a later scale over
 * the budget supersedes nothing); a deployment cannot be named after one of the coordinator's own Leases.
 * The executor coordinates with Leases (K8S_COORDINATION=lease), as replicas do: the record outlives a restart.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoordinationV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, userClient, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { type Process, ProcessState } from "../../src/colonies/types.js";
import { submissionOrder } from "../../src/executor/process-runner.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import { nameLease } from "../../src/k8s/lease-names.js";
import { processIdIn, submitByCli } from "../support/cli-submit.js";

const PROJECT = "colonyos-executors";
/** Executor containers over all deployments: web fits with 2 pods, not with 50. */
const MAX_CONTAINERS = 10;
/** What Colonies adds to a call's priority time per point of priority: one day, in nanoseconds. */
const DAY_NS = 86_400e9;

let server: ColoniesServer;
let runtime: ExecutorRuntime;
let admin: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let leases: CoordinationV1Api;
let namespace: string;
let dataDir: string;
let kubeconfig: string;
const passphrase = randomBytes(8).toString("hex");

function startK8sExecutor(): Promise<ExecutorRuntime> {
  return startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase },
      {
        K8S_COORDINATION: "lease",
        K8S_LEASE_SECONDS: "5",
        K8S_MAX_CONTAINERS: String(MAX_CONTAINERS),
        K8S_ROLLOUT_TIMEOUT: "120",
        EXECUTOR_CONCURRENCY: "6",
      },
    ),
  );
}

/** The process id the CLI logged. */
/** `colonies function exec` without --wait, as users script calls: the process id. */
async function exec(func: string, args: string): Promise<string> {
  const { stderr } = await server.cli([
    "function",
    "exec",
    "--func",
    func,
    "--targettype",
    "k8s",
    "--args",
    args,
  ]);
  return processIdIn(stderr);
}

/** `colonies function submit --spec <file>`: a raw function spec, with the priority the caller chooses. */
const submitSpec = (func: string, args: string[], priority: number) =>
  submitByCli(server, dataDir, { funcname: func, args, priority, executortype: "k8s" });

const done = (id: string) => waitDone(server, id, 300_000);

interface Out {
  superseded?: boolean;
  supersededBy?: { process: string; function: string; order: number };
  reason?: string;
  pods?: number;
}

function outOf(p: Process): Out {
  return (p.out?.[0] ?? {}) as Out;
}

/** A call that succeeded with its own update (not superseded). */
function expectApplied(p: Process, what: string): void {
  expect(p.state, `${what}: ${p.errors?.join("; ")}`).toBe(ProcessState.SUCCESS);
  expect(outOf(p).superseded, `${what}: ${JSON.stringify(p.out)}`).toBeUndefined();
}

/** A call closed as superseded was superseded by a call submitted after it that succeeded. */
async function expectSupersededOnlyByLaterSuccess(p: Process): Promise<void> {
  const out = outOf(p);
  if (!out.superseded) return;
  const by = await userClient(server).getProcess(out.supersededBy?.process as string, server.userPrvKey);
  expect(by.state).toBe(ProcessState.SUCCESS);
  expect(submissionOrder(by.submissiontime)).toBeGreaterThan(submissionOrder(p.submissiontime) as number);
  expect(out.supersededBy?.order).toBe(submissionOrder(by.submissiontime));
}

async function replicas(name: string): Promise<number | undefined> {
  return (await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas;
}

/** What the name's Lease records as last applied. */
async function appliedOn(name: string): Promise<{ process: string; order: number }> {
  const lease = await leases.readNamespacedLease({ name: nameLease(name, PROJECT), namespace });
  return JSON.parse(lease.metadata?.annotations?.["colonyos.io/applied"] ?? "{}");
}

beforeAll(async () => {
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  leases = admin.makeApiClient(CoordinationV1Api);
  namespace = await createNamespace(core, "k8s-order");
  server = await startColoniesServer();
  dataDir = mkdtempSync(join(tmpdir(), "k8s-order-"));
  kubeconfig = await executorKubeconfig(admin, namespace, dataDir);
  runtime = await startK8sExecutor();
}, 600_000);

afterAll(async () => {
  await runtime?.shutdown();
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("the order of calls on a name is the server's, not the caller's", () => {
  it("applies each call in submission order whatever priority it was submitted with, also after a restart", async () => {
    expectApplied(await done(await exec("deploy", `web,1,1,false,${TEST_IMAGE}`)), "deploy web 1");

    // Priority -50000 puts the call's priority time 50000 days after its submission: ordered by it, every later
    // call on web would be "older than the one applied" for 137 years.
    const future = await done(await submitSpec("scale", ["web", "0"], -50000));
    expectApplied(future, "scale web 0 with priority -50000");
    expect(future.prioritytime).toBeGreaterThan(
      (submissionOrder(future.submissiontime) as number) + 49_999 * DAY_NS,
    );
    expect(await replicas("web")).toBe(0);
    expect(await appliedOn("web")).toMatchObject({
      process: future.processid,
      order: submissionOrder(future.submissiontime),
    });

    // Priority 50000 puts it 50000 days before its submission: ordered by it, it would be dropped as older than
    // what was applied.
    const past = await done(await submitSpec("scale", ["web", "3"], 50000));
    expectApplied(past, "scale web 3 with priority 50000");
    expect(past.prioritytime).toBeLessThan(
      (submissionOrder(past.submissiontime) as number) - 49_999 * DAY_NS,
    );
    expect(await replicas("web")).toBe(3);

    const normal = await done(await exec("scale", "web,2"));
    expectApplied(normal, "scale web 2");
    expect(outOf(normal).pods).toBe(2);
    expect(await replicas("web")).toBe(2);
    expect((await appliedOn("web")).order).toBe(submissionOrder(normal.submissiontime));

    // The record on web's Lease outlives the executor: a call after the restart is applied too.
    await runtime.shutdown();
    runtime = await startK8sExecutor();
    const afterRestart = await done(await exec("scale", "web,1"));
    expectApplied(afterRestart, "scale web 1 after the restart");
    expect(await replicas("web")).toBe(1);
  }, 600_000);
});

describe("a waiting call is superseded only by a later call that was applied", () => {
  it("gives scale web 2 its own turn after scale web 50 fails over the budget", async () => {
    // A deploy that changes the pods (a ramdisk) holds web's turn for a rollout; both scales wait behind it.
    const deploy = await exec("deploy", `web,1,1,true,${TEST_IMAGE}`);
    const two = await exec("scale", "web,2");
    const fifty = await exec("scale", "web,50");
    const [deployed, scaledTwo, scaledFifty] = await Promise.all([done(deploy), done(two), done(fifty)]);
    expectApplied(deployed, "deploy web with a ramdisk");
    expect(scaledFifty.state).toBe(ProcessState.FAILED);
    expect(scaledFifty.errors?.join("; ")).toMatch(/K8S_MAX_CONTAINERS/);
    // scale web 50 did nothing: scale web 2 was not closed as superseded by it, and took effect.
    expectApplied(scaledTwo, "scale web 2");
    expect(outOf(scaledTwo).pods).toBe(2);
    expect(await replicas("web")).toBe(2);
    console.info(
      `scale web 2 ended ${scaledTwo.endtime}, scale web 50 ended ${scaledFifty.endtime} (the earlier one waited for the later one's outcome)`,
    );
  }, 600_000);

  it("closes scale web 3 as superseded by a later scale web 1 once that one was applied", async () => {
    const deploy = await exec("deploy", `web,2,1,false,${TEST_IMAGE}`);
    const three = await exec("scale", "web,3");
    const one = await exec("scale", "web,1");
    const [deployed, scaledThree, scaledOne] = await Promise.all([done(deploy), done(three), done(one)]);
    expectApplied(deployed, "deploy web without a ramdisk");
    expectApplied(scaledOne, "scale web 1");
    expect(scaledThree.state).toBe(ProcessState.SUCCESS);
    expect(outOf(scaledThree)).toMatchObject({
      superseded: true,
      supersededBy: { process: one, function: "scale", order: submissionOrder(scaledOne.submissiontime) },
      reason: "a later operation was applied while this one waited for its outcome",
    });
    await expectSupersededOnlyByLaterSuccess(scaledThree);
    expect(await replicas("web")).toBe(1);
  }, 600_000);
});

describe("deployment names", () => {
  it("refuses a deployment named after one of the coordinator's own Leases at once", async () => {
    const started = Date.now();
    const refused = await done(await exec("deploy", `autoscaler,1,1,false,${TEST_IMAGE}`));
    expect(refused.state).toBe(ProcessState.FAILED);
    expect(refused.errors?.join("; ")).toMatch(/deployment name "autoscaler" is reserved/);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 120_000);
});
