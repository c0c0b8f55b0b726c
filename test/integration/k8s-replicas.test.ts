/**
 * Three k8s-executor processes sharing one Pulumi state backend (PostgreSQL, then S3 on MinIO) and the local
 * cluster, driven the way users drive them: 60 interleaved deploy/scale/undeploy calls over 10 names through the
 * official `colonies` CLI, and one replica killed with -9 (its pulumi and provider processes too) while it holds
 * a name's turn. On PostgreSQL the calls are submitted as the CLI does by default (no exec deadline: Colonies
 * would wait 600 s for a dead executor), on MinIO with a `--maxexectime`. Either way a survivor proves the dead
 * replica gone by its Lease and removes its Colonies record, so that its calls are re-run at once: every call is
 * done long before 600 s. Afterwards each call's outcome is the one submission order gives it (its own result, a
 * supersession by a later call on the name, or `unknown deployment` on a name not deployed at that point) and every
 * name's Deployment is what the last calls made it; none mentions a lock; the process the dead replica held was
 * completed once elsewhere; no Pulumi lock and no ticket is left behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { AppsV1Api, CoordinationV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { builtCli, processLog, submit as submitCall, userClient, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { type MinioServer, minioClient, startMinio, stopMinio } from "../../peers/minio.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ExecutorState, type Process, ProcessState } from "../../src/colonies/types.js";

const NAMES = 10;
const CALLS = 60;
/** The MinIO round's exec deadline: long enough for any call to finish on a live replica. */
const MAX_EXEC_SECONDS = 120;
/**
 * Short for a fast takeover, not so short that the survivors give up under this suite's own load: with 6 s (a
 * renewal's deadline of 1 s, giving up after 4 s) both survivors once gave up together on two cores busy with six
 * updates, and nothing was left to serve. The Lease's timing itself is k8s-lease.test.ts's subject.
 */
const LEASE_SECONDS = 10;
/** Every call is done within this after the kill (Colonies' stale-executor timeout alone would be 600 s). */
const DONE_AFTER_KILL_SECONDS = 240;

let admin: KubeConfig;
let server: ColoniesServer;
let database: Postgres;
let minio: MinioServer;
const children: ChildProcess[] = [];

interface Call {
  name: string;
  fn: "deploy" | "scale" | "undeploy";
  args: string[];
  /** In submission order, the call meets a name that is not deployed: it fails (unless a later one supersedes it). */
  fails?: boolean;
}

/** A deterministic mix of calls, and what each name is after them in submission order (pods, or absent). */
function plan(seed: number): { calls: Call[]; expected: Map<string, number | undefined> } {
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const pick = (n: number) => Math.floor(random() * n);
  const expected = new Map<string, number | undefined>();
  const calls: Call[] = [];
  for (let i = 0; i < CALLS; i++) {
    const name = `r${i < NAMES ? i : pick(NAMES)}`;
    const pods = expected.get(name);
    const roll = random();
    const deploy = (): Call => {
      const n = 1 + pick(3);
      expected.set(name, n);
      return { name, fn: "deploy", args: [name, String(n), "1", "false", TEST_IMAGE] };
    };
    if (pods === undefined) {
      // Mostly a deploy; sometimes a call that must fail: the name is not deployed (at that point in order).
      calls.push(roll < 0.85 ? deploy() : { name, fn: "scale", args: [name, "2"], fails: true });
    } else if (roll < 0.45) {
      const n = pick(4);
      expected.set(name, n);
      calls.push({ name, fn: "scale", args: [name, String(n)] });
    } else if (roll < 0.8) {
      calls.push(deploy());
    } else {
      expected.set(name, undefined);
      calls.push({ name, fn: "undeploy", args: [name] });
    }
  }
  return { calls, expected };
}

/**
 * `colonies function exec` without --wait, as a user would script it; returns the process id. Without
 * `maxExecSeconds`, with the CLI's defaults (no exec deadline, unlimited retries).
 */
async function submit(type: string, call: Call, maxExecSeconds?: number): Promise<string> {
  const deadline = maxExecSeconds ? ["--maxexectime", String(maxExecSeconds), "--maxretries", "3"] : [];
  const { stderr } = await server.cli([
    "function",
    "exec",
    "--func",
    call.fn,
    "--targettype",
    type,
    "--args",
    call.args.join(","),
    ...deadline,
  ]);
  const id = /ProcessId=([0-9a-f]{64})/.exec(stderr)?.[1];
  if (!id) throw new Error(`no process id in the CLI's output: ${stderr}`);
  return id;
}

interface Replicas {
  dir: string;
  namespace: string;
  type: string;
  replicas: ChildProcess[];
  leases: CoordinationV1Api;
  apps: AppsV1Api;
}

async function startReplicas(
  backendUrl: string,
  extraEnv: Record<string, string>,
  settings: Record<string, string> = {},
): Promise<Replicas> {
  const core = admin.makeApiClient(CoreV1Api);
  const namespace = await createNamespace(core, "k8s-replicas");
  const dir = mkdtempSync(join(tmpdir(), "k8s-replicas-"));
  const kubeconfig = await executorKubeconfig(admin, namespace, dir);
  const type = `k8s-${randomBytes(2).toString("hex")}`;
  const passphrase = randomBytes(12).toString("hex");
  const replicas: ChildProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const child = spawn(process.execPath, [builtCli(), "k8s"], {
      env: {
        ...process.env,
        ...server.env,
        ...extraEnv,
        COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
        COLONIES_EXECUTOR_NAME: `${type}-replica-${i}`,
        COLONIES_EXECUTOR_TYPE: type,
        ...k8sExecutorEnv({ kubeconfig, namespace, dataDir: join(dir, `replica-${i}`), passphrase }),
        K8S_PULUMI_BACKEND_URL: backendUrl,
        K8S_LEASE_SECONDS: String(LEASE_SECONDS),
        K8S_ROLLOUT_TIMEOUT: "90",
        K8S_STACK_CONCURRENCY: "2",
        EXECUTOR_CONCURRENCY: "8",
        EXECUTOR_ASSIGN_TIMEOUT: "5",
        EXECUTOR_LOG_FORMAT: "json",
        ...settings,
      },
      detached: true, // its own process group: kill -9 reaches its pulumi and provider processes, as in a pod
      // Its structured log, for the failure messages.
      stdio: ["ignore", "ignore", openSync(join(dir, `replica-${i}.log`), "w")],
    });
    child.once("exit", (code, signal) => {
      if (code !== 0 && signal !== "SIGKILL" && signal !== "SIGTERM") {
        console.error(`replica ${i} exited (${code ?? signal}):\n${logTail(dir, i)}`);
      }
    });
    replicas.push(child);
    children.push(child);
  }
  const client = userClient(server);
  await waitFor(
    "three k8s-executor replicas registered",
    async () =>
      (await client.getExecutors(server.colonyName, server.userPrvKey)).filter((e) => e.executortype === type)
        .length === 3,
    120_000,
  );
  return {
    dir,
    namespace,
    type,
    replicas,
    leases: admin.makeApiClient(CoordinationV1Api),
    apps: admin.makeApiClient(AppsV1Api),
  };
}

function logTail(dir: string, i: number): string {
  return readFileSync(join(dir, `replica-${i}.log`), "utf8")
    .split("\n")
    .slice(-30)
    .join("\n");
}

/** What the run looks like now: the replicas' last log lines and the names' Leases. */
async function diagnosis(run: Replicas): Promise<string> {
  const leases = await run.leases.listNamespacedLease({ namespace: run.namespace });
  return [
    ...[0, 1, 2].map((i) => `replica ${i}:\n${logTail(run.dir, i)}`),
    ...leases.items.map(
      (l) =>
        `${l.metadata?.name} holder=${l.spec?.holderIdentity} ${JSON.stringify(l.metadata?.annotations)}`,
    ),
  ].join("\n");
}

/** The replica holding a name's turn now, and the process of that turn. */
async function holding(run: Replicas, pid: number): Promise<string | undefined> {
  const leases = await run.leases.listNamespacedLease({ namespace: run.namespace });
  for (const lease of leases.items) {
    const holder = lease.spec?.holderIdentity;
    if (!holder?.includes(`-${pid}-`) || !holder.includes("/")) continue;
    const id = holder.split("/")[1];
    const tickets = JSON.parse(lease.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]");
    return tickets.find((t: { id: string }) => t.id === id)?.process;
  }
  return undefined;
}

async function runScenario(
  run: Replicas,
  lockKeys: () => Promise<string[]>,
  maxExecSeconds?: number,
): Promise<void> {
  const { calls, expected } = plan(7);
  const ids: string[] = [];
  let killedHolding: string | undefined;
  let killedAt = 0;
  const victim = run.replicas[1] as ChildProcess;
  const client = userClient(server);
  const victimId = (await client.getExecutors(server.colonyName, server.userPrvKey)).find(
    (e) => e.executorname === `${run.type}-replica-1`,
  )?.executorid;
  expect(victimId).toBeDefined();
  for (const [i, call] of calls.entries()) {
    ids.push(await submit(run.type, call, maxExecSeconds));
    if (i === CALLS / 2) {
      // Kill one replica while it holds a turn (mid-update, or about to start one).
      await waitFor(
        "replica 1 to hold a name's turn",
        async () => {
          killedHolding = await holding(run, victim.pid as number);
          return killedHolding !== undefined;
        },
        120_000,
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await diagnosis(run)}`);
      });
      process.kill(-(victim.pid as number), "SIGKILL");
      killedAt = Date.now();
    }
  }
  // A survivor proves the dead replica gone (its Lease unchanged for a lease) and removes its Colonies record:
  // Colonies re-queues what it was running at once.
  await waitFor(
    "the dead replica's Colonies record to be removed",
    async () =>
      (await client.getExecutors(server.colonyName, server.userPrvKey)).find((e) => e.executorid === victimId)
        ?.state !== ExecutorState.APPROVED,
    (LEASE_SECONDS + 30) * 1000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await diagnosis(run)}`);
  });
  const removedAfter = Date.now() - killedAt;
  const done: Process[] = [];
  for (const id of ids) {
    const left = killedAt + DONE_AFTER_KILL_SECONDS * 1000 - Date.now();
    done.push(
      await waitDone(server, id, Math.max(left, 1_000)).catch(async (error: Error) => {
        throw new Error(
          `${error.message} ${DONE_AFTER_KILL_SECONDS} s after the kill\n${await diagnosis(run)}`,
        );
      }),
    );
  }
  const doneAfter = Date.now() - killedAt;

  const report = done.map((p, i) => `${calls[i]?.fn} ${calls[i]?.args.join(" ")}: ${summary(p)}`).join("\n");
  let superseded = 0;
  for (const [i, p] of done.entries()) {
    const text = JSON.stringify([p.errors, p.out]);
    expect(text, report).not.toMatch(/lock|ConcurrentUpdate/i);
    if (p.state === ProcessState.FAILED) {
      // The only failures: calls on a name that is not deployed at that point in submission order.
      const unexpected = !/unknown deployment/.test(p.errors?.join("; ") ?? "");
      const log = unexpected ? `process log:\n${await processLog(server, p.processid)}` : "";
      expect(p.errors?.join("; "), `${calls[i]?.fn} ${calls[i]?.args}\n${log}\n${report}`).toMatch(
        /unknown deployment/,
      );
    } else {
      expect(p.state, report).toBe(ProcessState.SUCCESS);
      if ((p.out?.[0] as { superseded?: boolean })?.superseded) superseded++;
    }
  }
  // The call the dead replica held was re-queued and completed once, by another replica, with its own outcome
  // (the turn may have been that of a call on a name not deployed, which fails).
  const heldAt = ids.indexOf(killedHolding as string);
  const held = done[heldAt] as Process;
  const heldCall = `${calls[heldAt]?.fn} ${calls[heldAt]?.args.join(" ")}`;
  if (calls[heldAt]?.fails && held.state === ProcessState.FAILED) {
    expect(held.errors?.join("; "), heldCall).toMatch(/unknown deployment/);
  } else {
    expect(held.state, `${heldCall}\n${report}`).toBe(ProcessState.SUCCESS);
  }
  expect(held.assignedexecutorid, report).not.toBe(victimId);
  // Each call's outcome is the one submission order gives it, not only the names' final sizes.
  expectSubmissionOrder(calls, ids, done, new Set([killedHolding as string]));

  for (const [name, pods] of expected) {
    const deployment = await run.apps
      .readNamespacedDeployment({ name, namespace: run.namespace })
      .catch(() => undefined);
    expect(deployment?.spec?.replicas, `${name}\n${report}`).toBe(pods);
  }
  // A call Colonies re-queued (its maxexectime ran out while it waited behind the dead replica's place) was
  // stopped on its first replica; that replica may still be handing the turn on when the last call completes.
  const turnsHeld = async () =>
    (await run.leases.listNamespacedLease({ namespace: run.namespace })).items.filter(
      (l) =>
        l.metadata?.labels?.["colonyos.io/lease"] === "deployment" &&
        (l.spec?.holderIdentity !== undefined ||
          JSON.parse(l.metadata?.annotations?.["colonyos.io/tickets"] ?? "[]").length > 0),
    );
  await waitFor(
    "every name's turn and tickets to be released",
    async () => (await turnsHeld()).length === 0,
    60_000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await diagnosis(run)}`);
  });
  expect(await lockKeys()).toEqual([]);
  console.info(
    `dead replica's record removed ${Math.round(removedAfter / 1000)} s and every call done ${Math.round(doneAfter / 1000)} s after the kill (it held #${heldAt} ${heldCall}); ${superseded} of ${CALLS} calls superseded\n${report}`,
  );
}

/** `scale n<i> 1` over 20 names that do not exist: each fails, and no Lease is left behind (etcd does not grow). */
async function callsOnUnknownNames(run: Replicas): Promise<void> {
  const count = async () => (await run.leases.listNamespacedLease({ namespace: run.namespace })).items.length;
  const before = await count();
  const ids: string[] = [];
  for (let i = 0; i < 20; i++)
    ids.push(await submit(run.type, { name: `n${i}`, fn: "scale", args: [`n${i}`, "1"] }));
  for (const id of ids) {
    const p = await waitDone(server, id, 60_000);
    expect(p.errors?.join("; ")).toMatch(/unknown deployment/);
  }
  expect(await count()).toBe(before);
}

/**
 * Walks the calls in submission order with each name's state (pods, or not deployed) and checks every outcome
 * against it: a superseded call names a later applied call on its name, and only on a deployed name; a failed one
 * met a name not deployed; a scale reports the size before it as `previous`; a deploy changed something exactly
 * when the size differed. A call whose update a dead replica may have begun (`rerun`) converges again on its re-run,
 * so what it reports as before is either state.
 */
function expectSubmissionOrder(
  calls: Call[],
  ids: string[],
  done: Process[],
  rerun: ReadonlySet<string>,
): void {
  const state = new Map<string, number | undefined>();
  const applied = new Set<number>();
  const superseding: [number, number][] = [];
  for (const [i, call] of calls.entries()) {
    const p = done[i] as Process;
    const before = state.get(call.name);
    const where = `#${i} ${call.fn} ${call.args.slice(0, 2).join(" ")} (before: ${before ?? "not deployed"}): ${summary(p)}`;
    const out = p.out?.[0] as
      | {
          superseded?: boolean;
          supersededBy?: { process: string };
          pods?: number;
          previous?: number;
          changed?: boolean;
        }
      | undefined;
    if (out?.superseded) {
      const by = ids.indexOf(out.supersededBy?.process ?? "");
      expect(by, where).toBeGreaterThan(i);
      expect(calls[by]?.name, where).toBe(call.name);
      expect(before, `${where}: only a deployed name's calls coalesce`).toBeDefined();
      superseding.push([i, by]);
      continue;
    }
    if (p.state === ProcessState.FAILED) {
      expect(before, `${where}: failed on a deployed name`).toBeUndefined();
      continue;
    }
    applied.add(i);
    const pods = call.fn === "undeploy" ? undefined : Number(call.args[1]);
    const again = rerun.has(ids[i] as string);
    if (call.fn === "scale") {
      expect(before, where).toBeDefined();
      expect(again ? [before, pods] : [before], where).toContain(out?.previous);
    }
    if (call.fn === "undeploy") expect(before, where).toBeDefined();
    if (call.fn === "deploy") {
      expect(out?.pods, where).toBe(pods);
      if (!again) expect(out?.changed, where).toBe(before !== pods);
    }
    state.set(call.name, pods);
  }
  // What superseded a call was applied itself (a call is never closed as superseded by one that then failed).
  for (const [i, by] of superseding)
    expect(applied.has(by), `#${i} superseded by #${by}, which was not applied`).toBe(true);
}

function summary(p: Process): string {
  if (p.state === ProcessState.FAILED) return `FAILED ${p.errors?.join("; ")}`;
  const out = p.out?.[0] as { superseded?: boolean; supersededBy?: { function: string } } | undefined;
  return out?.superseded ? `superseded by ${out.supersededBy?.function}` : `SUCCESS (retries ${p.retries})`;
}

beforeAll(async () => {
  admin = loadKubeConfig({ path: clusterKubeconfig() });
  server = await startColoniesServer();
}, 180_000);

afterAll(async () => {
  for (const child of children) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // already gone
    }
  }
  await server?.stop();
  await database?.stop();
  if (minio) await stopMinio(minio);
});

describe("three k8s-executor replicas on a PostgreSQL state backend", () => {
  it("apply 60 interleaved CLI calls (no exec deadline) over 10 names in submission order through a kill -9", async () => {
    database = await startPostgres({ password: randomBytes(12).toString("hex") });
    await query(database, "postgres", "CREATE DATABASE pulumi_state");
    const table = "pulumi_state";
    const url = `postgres://${database.user}:${database.password}@${database.host}:${database.port}/pulumi_state?sslmode=disable&table=${table}`;
    const run = await startReplicas(url, {});
    await runScenario(run, async () => {
      const result = await query(
        database,
        "pulumi_state",
        `SELECT key FROM ${table} WHERE key LIKE '%/locks/%'`,
      );
      return result.rows.map((row: { key: string }) => row.key);
    });
    await callsOnUnknownNames(run);
  }, 900_000);
});

describe("three k8s-executor replicas with one slot each", () => {
  it("run a dead replica's call again though every survivor's slot waits for its turn", async () => {
    database ??= await startPostgres({ password: randomBytes(12).toString("hex") });
    await query(database, "postgres", "CREATE DATABASE one_slot");
    const url = `postgres://${database.user}:${database.password}@${database.host}:${database.port}/one_slot?sslmode=disable`;
    const run = await startReplicas(url, {}, { EXECUTOR_CONCURRENCY: "1", K8S_ROLLOUT_TIMEOUT: "20" });
    const call = (fn: string, args: string[], kwargs: Record<string, unknown> = {}) =>
      submitCall(server, run.type, fn, args, kwargs);
    const first = await waitDone(
      server,
      (await call("deploy", ["d", "1", "1", "false", TEST_IMAGE])).processid,
      120_000,
    );
    expect(first.state, first.errors?.join("; ")).toBe(ProcessState.SUCCESS);

    // A deploy whose pods no node can take holds the name's turn until its rollout times out: its replica is
    // killed holding it.
    const held = await call("deploy", ["d", "1", "1", "false", TEST_IMAGE], { nodeselector: "nowhere=true" });
    let victim: ChildProcess | undefined;
    await waitFor(
      "a replica to hold the name's turn for the unschedulable deploy",
      async () => {
        for (const child of run.replicas) {
          if ((await holding(run, child.pid as number)) === held.processid) victim = child;
        }
        return victim !== undefined;
      },
      60_000,
    );
    const victimName = `${run.type}-replica-${run.replicas.indexOf(victim as ChildProcess)}`;
    const victimId = (await userClient(server).getExecutors(server.colonyName, server.userPrvKey)).find(
      (e) => e.executorname === victimName,
    )?.executorid;
    expect(victimId).toBeDefined();
    process.kill(-((victim as ChildProcess).pid as number), "SIGKILL");
    const killedAt = Date.now();
    // Each survivor's only slot takes one of these, and each waits for the dead replica's call, which Colonies
    // re-queues once a survivor proves that replica gone.
    const later = [
      await call("deploy", ["d", "1", "1", "false", TEST_IMAGE]),
      await call("scale", ["d", "2"]),
    ];
    const done = [];
    for (const p of [held, ...later]) {
      done.push(
        await waitDone(server, p.processid, 120_000).catch(async (error: Error) => {
          throw new Error(
            `${error.message} ${Math.round((Date.now() - killedAt) / 1000)} s after the kill\n${await diagnosis(run)}`,
          );
        }),
      );
    }
    const [rerun, redeploy, scale] = done as [Process, Process, Process];
    // Run again elsewhere (Colonies re-queues a removed executor's processes as new: no retry is counted).
    expect(rerun.assignedexecutorid).not.toBe(victimId);
    expect(rerun.errors?.join("; ") ?? "").not.toMatch(/took longer than/);
    for (const p of [redeploy, scale]) expect(p.state, summary(p)).toBe(ProcessState.SUCCESS);
    const deployment = await run.apps.readNamespacedDeployment({ name: "d", namespace: run.namespace });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.template.spec?.nodeSelector).toBeUndefined();
    console.info(
      `every call done ${Math.round((Date.now() - killedAt) / 1000)} s after the kill; the re-run: ${summary(rerun)}`,
    );
  }, 300_000);
});

describe("three k8s-executor replicas on an S3 state backend (MinIO)", () => {
  it("apply 60 interleaved CLI calls (--maxexectime) over 10 names in submission order through a kill -9", async () => {
    minio = await startMinio();
    const bucket = "pulumi-state";
    const s3 = minioClient(minio);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const endpoint = new URL(minio.endpoint).host;
    const url = `s3://${bucket}?endpoint=${endpoint}&disableSSL=true&s3ForcePathStyle=true&region=${minio.region}`;
    const run = await startReplicas(url, {
      AWS_ACCESS_KEY_ID: minio.accessKey,
      AWS_SECRET_ACCESS_KEY: minio.secretKey,
      AWS_REGION: minio.region,
    });
    await runScenario(
      run,
      async () => {
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: ".pulumi/locks/" }));
        return (listed.Contents ?? []).map((o) => o.Key as string);
      },
      MAX_EXEC_SECONDS,
    );
  }, 900_000);
});
