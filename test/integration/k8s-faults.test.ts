/**
 * Faults in the middle of a deploy end with nothing lost or half-made: the Kubernetes API server paused for 20 s
 * (SIGSTOP, then SIGCONT), and the Colonies server killed -9 and started again on the same port and database.
 * Each time the deploy's process ends exactly once, the next call on the name converges, no Pulumi lock and no
 * executor identity without a stack is left. Also: calls on names that do not exist leave no work directory.
 * (The k8s executor itself killed -9 mid-deploy: k8s-recovery.test.ts.) Real Colonies server, real Pulumi, the
 * real control plane of the local cluster.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AppsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, waitDone } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { type Process, ProcessState } from "../../src/colonies/types.js";
import { identitiesOf, lockFiles } from "../support/k8s-leftovers.js";

/** The executor's hard deadline of one operation (K8S_OPERATION_TIMEOUT): no deploy may end later. */
const DEADLINE_S = 120;
const PAUSE_MS = 20_000;

let server: ColoniesServer;
let kc: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let dataDir: string;
let executorConfig: string;
let executor: ChildProcess;
let executorLog: string;

beforeAll(async () => {
  kc = loadKubeConfig({ path: clusterKubeconfig() });
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  namespace = `k8s-faults-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  server = await startColoniesServer();
  dataDir = await mkdtemp(join(tmpdir(), "k8s-faults-"));
  executorConfig = await executorKubeconfig(kc, namespace, dataDir);
  executorLog = join(dataDir, "executor.log");
  executor = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "k8s"], {
    env: {
      ...process.env,
      ...server.env,
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: "k8s-faults",
      ...k8sExecutorEnv({ kubeconfig: executorConfig, namespace, dataDir, passphrase: "faults-test" }),
      K8S_ROLLOUT_TIMEOUT: "60",
      K8S_OPERATION_TIMEOUT: String(DEADLINE_S),
      EXECUTOR_CONCURRENCY: "4",
      EXECUTOR_ASSIGN_TIMEOUT: "5",
      EXECUTOR_LOG_FORMAT: "json",
    },
    detached: true, // its own process group, so that the end of the test reaches pulumi and the provider too
    stdio: ["ignore", "ignore", openSync(executorLog, "a")],
  });
}, 300_000);

afterAll(async () => {
  try {
    if (executor?.pid) process.kill(-executor.pid, "SIGKILL");
  } catch {
    // already gone
  }
  await server?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

// ---------------------------------------------------------------------------------------------------------------
// What the tests look at: lock files of the file backend, registered identities, the executor's own log.

/** The executor's log records about one process. */
function logOf(processId: string): { msg: string; outcome?: string; err?: { message?: string } }[] {
  return readFileSync(executorLog, "utf8")
    .split("\n")
    .filter((line) => line.includes(processId))
    .flatMap((line) => {
      try {
        return [JSON.parse(line)];
      } catch {
        return [];
      }
    })
    .filter((record) => record.processId === processId);
}

/** The process ended once: one outcome in the executor's log, every report delivered, no re-run by Colonies. */
async function expectEndedOnce(process: Process): Promise<void> {
  // Logged once the report is delivered: a moment after the server has it.
  await waitFor("the outcome in the executor's log", async () =>
    logOf(process.processid).some((r) => r.msg === "process done"),
  );
  const records = logOf(process.processid);
  expect(records.filter((r) => r.msg === "process done")).toHaveLength(1);
  expect(records.filter((r) => r.msg === "process started")).toHaveLength(1);
  expect(records.filter((r) => r.msg === "could not report the process outcome to Colonies")).toEqual([]);
  expect(process.retries).toBe(0);
}

async function expectDeployment(name: string, pods: number): Promise<void> {
  await waitFor(
    `${name} to have ${pods} ready pods`,
    async () => {
      const d = await apps.readNamespacedDeployment({ name, namespace });
      return d.spec?.replicas === pods && (d.status?.readyReplicas ?? 0) === pods;
    },
    30_000,
  );
}

async function call(fn: string, args: unknown[], timeoutMs = 180_000): Promise<Process> {
  return waitDone(server, (await submit(server, "k8s", fn, args)).processid, timeoutMs);
}

// ---------------------------------------------------------------------------------------------------------------
// The control plane's processes (kwokctl's binary runtime: one process per component, pid files, no supervisor).

interface Component {
  name: string;
  pidFile: string;
  pid: number;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** The API server of the test cluster: the kube-apiserver process serving the kubeconfig's port. */
function apiServerPid(): number {
  const port = new URL(kc.getCurrentCluster()?.server ?? "").port;
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    const argv = cmdline(Number(entry));
    if (basename(argv[0] ?? "") === "kube-apiserver" && argv.includes(`--secure-port=${port}`))
      return Number(entry);
  }
  throw new Error(`no kube-apiserver process serves port ${port}`);
}

/** Every component of the cluster, from kwokctl's pid files beside the API server's binary (<cluster>/bin). */
function components(apiServer: number): Component[] {
  const clusterDir = dirname(dirname(cmdline(apiServer)[0] ?? ""));
  const pids = join(clusterDir, "pids");
  return readdirSync(pids)
    .filter((f) => f.endsWith(".pid"))
    .map((f) => {
      const pidFile = join(pids, f);
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      const env = Object.fromEntries(
        readFileSync(`/proc/${pid}/environ`, "utf8")
          .split("\0")
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
      return { name: f.replace(/\.pid$/, ""), pidFile, pid, argv: cmdline(pid), env, cwd: clusterDir };
    });
}

/**
 * Restarts a component that exited (as a supervisor would) with its command line, environment and log file, and
 * records its new pid where kwokctl and scripts/cluster.sh look for it (so that `down` stops it).
 */
function superviseOnce(list: Component[]): void {
  for (const c of list) {
    if (cmdline(c.pid)[0] === c.argv[0]) continue;
    const log = openSync(join(c.cwd, "logs", `${c.name}.log`), "a");
    const child = spawn(c.argv[0] as string, c.argv.slice(1), {
      cwd: c.cwd,
      env: c.env,
      detached: true,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    child.unref();
    c.pid = child.pid as number;
    writeFileSync(c.pidFile, String(c.pid));
  }
}

/** How long after the API server resumed a component may still exit (its leader election lost meanwhile). */
const SETTLE_MS = 15_000;

/**
 * Pauses the API server for `ms` while `meanwhile` runs, and always resumes it (other files share the cluster)
 * and waits until it answers. The controller manager and the scheduler exit once they lose their leader
 * election: every component that exits is restarted from the pause on, until `stop()`, which returns no sooner
 * than SETTLE_MS after the resume.
 */
async function pauseApiServer(ms: number, meanwhile: () => Promise<unknown>) {
  const pid = apiServerPid();
  const list = components(pid);
  const timer = setInterval(() => superviseOnce(list), 1000);
  let resumedAt = Date.now();
  const stop = async () => {
    await sleep(Math.max(0, resumedAt + SETTLE_MS - Date.now()));
    clearInterval(timer);
    superviseOnce(list);
  };
  // Even if the test's process ends early (a timeout of the run).
  const resume = () => process.kill(pid, "SIGCONT");
  process.once("exit", resume);
  process.kill(pid, "SIGSTOP");
  try {
    try {
      await Promise.all([sleep(ms), meanwhile()]);
    } finally {
      resume();
      process.off("exit", resume);
      resumedAt = Date.now();
    }
    await waitFor("the API server to answer again", async () => {
      await core.listNamespace({ limit: 1 });
      return true;
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

// ---------------------------------------------------------------------------------------------------------------

describe("faults in the middle of a deploy", () => {
  it("the Kubernetes API server paused for 20 s: each deploy ends once, the next call converges", async () => {
    const started = Date.now();
    // One deploy is in its Pulumi update when the API server stops; another one arrives while it is stopped.
    const deploys = [await submit(server, "k8s", "deploy", ["paused", "2", "1", "false", "busybox:1.36"])];
    await waitFor("the update to hold its lock", async () => lockFiles(dataDir, "paused").length > 0, 60_000);
    const supervisor = await pauseApiServer(PAUSE_MS, async () => {
      deploys.push(await submit(server, "k8s", "deploy", ["arrived", "1", "1", "false", "busybox:1.36"]));
    });
    try {
      for (const [i, name] of ["paused", "arrived"].entries()) {
        const done = await waitDone(server, deploys[i]?.processid as string, DEADLINE_S * 1000 + 30_000);
        // Never later than the operation's deadline (plus the time to close it).
        expect(Date.now() - started).toBeLessThan(DEADLINE_S * 1000 + 15_000);
        if (done.state === ProcessState.FAILED) {
          // A failure names its cause (the API that did not answer, as this executor or the engine saw it).
          const [error] = done.errors ?? [];
          expect(error).toMatch(/^deploy: .*(Kubernetes API|timed out|timeout|deadline|connect|unable)/i);
          expect(error).not.toMatch(/lock/i);
          // Nothing half-made: a first deploy that failed registered no identity that stays.
          expect(await identitiesOf(server, namespace, name)).toEqual([]);
        } else {
          expect(done.state).toBe(ProcessState.SUCCESS);
          const [out] = done.out as [{ executor: string }];
          expect(await identitiesOf(server, namespace, name)).toEqual([out.executor]);
        }
        await expectEndedOnce(done);
        expect(lockFiles(dataDir, name)).toEqual([]);

        const again = await call("deploy", [name, "1", "1", "false", "busybox:1.36"]);
        expect(again.state, again.errors?.join("; ")).toBe(ProcessState.SUCCESS);
        await expectEndedOnce(again);
        await expectDeployment(name, 1);
        expect(lockFiles(dataDir, name)).toEqual([]);
        const [out] = again.out as [{ executor: string }];
        expect(await identitiesOf(server, namespace, name)).toEqual([out.executor]);
      }
    } finally {
      await supervisor.stop();
    }
  }, 240_000);

  it("the Colonies server killed -9 and started again: the deploy is closed once, the executor serves on", async () => {
    const deploy = await submit(server, "k8s", "deploy", ["outage", "2", "1", "false", "busybox:1.36"]);
    await waitFor("the update to hold its lock", async () => lockFiles(dataDir, "outage").length > 0, 60_000);
    await server.killServer();
    // The update goes on without Colonies; its close is then on the wire while the server is away (3 s and the
    // time the server takes to start).
    await waitFor("the update to end", async () => lockFiles(dataDir, "outage").length === 0, 60_000);
    await sleep(3000);
    await server.startServer();

    const done = await waitDone(server, deploy.processid, 120_000);
    expect(done.state, done.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    await expectEndedOnce(done);
    // Its close was tried while the server was away, and retried until it answered.
    const retried = logOf(done.processid).filter((r) =>
      r.msg.startsWith("could not report the process outcome yet"),
    );
    expect(retried.length).toBeGreaterThan(0);
    await expectDeployment("outage", 2);

    // Its assign loops reconnected: it takes the next call.
    const scaled = await call("scale", ["outage", "1"], 120_000);
    expect(scaled.state, scaled.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    await expectEndedOnce(scaled);
    await expectDeployment("outage", 1);
    expect(lockFiles(dataDir, "outage")).toEqual([]);
    const [out] = done.out as [{ executor: string }];
    expect(await identitiesOf(server, namespace, "outage")).toEqual([out.executor]);
  }, 240_000);
});

describe("a name's work directory lives as long as its stack", () => {
  it("calls on names that do not exist leave none behind", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `nosuch${i}`);
    const calls = await Promise.all(names.map((name) => submit(server, "k8s", "scale", [name, "1"])));
    for (const p of calls) {
      const done = await waitDone(server, p.processid, 120_000);
      expect(done.state).toBe(ProcessState.FAILED);
      expect(done.errors?.[0]).toMatch(/unknown deployment/);
    }
    const status = await call("status", ["nosuch-status"]);
    expect(status.state).toBe(ProcessState.FAILED);
    const left = readdirSync(join(dataDir, "stacks")).filter((d) => d.startsWith("nosuch"));
    expect(left).toEqual([]);
    expect(readdirSync(join(dataDir, "lookups"))).toEqual([]); // status's scratch directory is gone too
    // The deployed names keep theirs.
    expect(existsSync(join(dataDir, "stacks", "outage"))).toBe(true);
  }, 120_000);

  it("a preview of a new name and an undeploy remove theirs", async () => {
    const preview = await waitDone(
      server,
      (
        await submit(server, "k8s", "deploy", ["preview", "1", "1", "false", "busybox:1.36"], {
          dryrun: "true",
        })
      ).processid,
      120_000,
    );
    expect(preview.state, preview.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect(existsSync(join(dataDir, "stacks", "preview"))).toBe(false);

    const undeployed = await call("undeploy", ["outage"]);
    expect(undeployed.state, undeployed.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    expect(existsSync(join(dataDir, "stacks", "outage"))).toBe(false);
    expect(await identitiesOf(server, namespace, "outage")).toEqual([]);
    // And the name can be deployed again.
    const again = await call("deploy", ["outage", "1", "1", "false", "busybox:1.36"]);
    expect(again.state, again.errors?.join("; ")).toBe(ProcessState.SUCCESS);
    await expectDeployment("outage", 1);
    expect(existsSync(join(dataDir, "stacks", "outage"))).toBe(true);
  }, 120_000);
});
