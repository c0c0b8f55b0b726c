/**
 * The k8s executor on Pulumi's PostgreSQL state backend, with real peers (PostgreSQL, the Pulumi CLI, the
 * Colonies server and its official CLI, the executor's built CLI as a process of its own). Checked:
 * - replicas opening a new database together all succeed: Pulumi creates its table on every open, and
 *   concurrent opens race in PostgreSQL's CREATE TABLE IF NOT EXISTS (the CI once failed a first call on it);
 * - an unusable backend is retried for a while at start-up, then stops it with the database's reason;
 * - a CLI failure that quotes the backend's URL (the database refuses the password) fails the call with the
 *   database's reason, and the password appears in no process error, process log or executor log line;
 *   nothing changed, and the executor serves again once the database accepts it; no file the executor wrote
 *   holds the password either (the CLI gets the backend URL in its environment, not in Pulumi.yaml).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { builtCli, userClient } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import { redactingFailures } from "../../src/k8s/redacted-cli.js";
import { openStateBackend } from "../../src/k8s/state-backend.js";
import { k8sCalls } from "../support/k8s-calls.js";

const ROLE = "pulumi_writer";
const password = randomBytes(12).toString("hex");
const type = `k8s-pg-${randomBytes(2).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "k8s-state-postgres-"));
const logFile = join(dir, "executor.log");
let server: ColoniesServer;
let database: Postgres;
let executor: ChildProcess | undefined;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
const { call, ok } = k8sCalls(() => server, type);

function backendUrl(db: Postgres, name: string, user = db.user, secret = db.password): string {
  return `postgres://${user}:${secret}@${db.host}:${db.port}/${name}?sslmode=disable&table=pulumi_state`;
}

beforeAll(async () => {
  const admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-state-pg");
  [server, database] = await Promise.all([startColoniesServer(), startPostgres()]);
}, 180_000);

afterAll(async () => {
  if (executor?.pid) {
    try {
      process.kill(-executor.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await server?.stop();
  await database?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("k8s executor on a PostgreSQL state backend", () => {
  it("replicas opening a new database together all start: the table race is retried", async () => {
    const command = redactingFailures(await PulumiCommand.get(), [database.password]);
    const env = { ...(process.env as Record<string, string>), PULUMI_SKIP_UPDATE_CHECK: "true" };
    for (let round = 0; round < 6; round++) {
      const name = `race_${round}`;
      await query(database, "postgres", `CREATE DATABASE ${name}`);
      const url = backendUrl(database, name);
      const opened = await Promise.allSettled(
        [0, 1, 2, 3].map(() => openStateBackend(command, dir, { ...env, PULUMI_BACKEND_URL: url })),
      );
      const failures = opened.filter((o) => o.status === "rejected").map((o) => String(o.reason));
      expect(failures, `round ${round}`).toEqual([]);
      const table = await query(database, name, "SELECT 1 FROM pg_tables WHERE tablename = 'pulumi_state'");
      expect(table.rows).toHaveLength(1);
    }
  }, 120_000);

  it("waits for an unusable backend a while, then names it clearly at start-up, its password masked", async () => {
    const command = redactingFailures(await PulumiCommand.get(), []);
    const url = backendUrl(database, "postgres", database.user, "not-the-password");
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => warnings.push(line) });
    const started = Date.now();
    const env = { ...(process.env as Record<string, string>), PULUMI_BACKEND_URL: url };
    const failure = await openStateBackend(command, dir, env, {
      logger,
      waitMs: 2_000,
    }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    expect(warnings[0]).toMatch(/cannot open the Pulumi state backend yet; retrying/);
    expect(failure?.message).toMatch(
      /^cannot open the Pulumi state backend: .*password authentication failed/,
    );
    expect(failure?.message).toContain(`${database.user}:[redacted]@`);
    const shown = JSON.stringify([failure?.message, failure?.stack, warnings]);
    expect(shown).toContain("password authentication failed");
    expect(shown).not.toContain("not-the-password");
  }, 60_000);

  it("fails a call whose CLI quotes the backend URL with the database's reason and no password anywhere; keeps serving", async () => {
    await query(database, "postgres", `CREATE ROLE ${ROLE} LOGIN PASSWORD '${password}'`);
    await query(database, "postgres", `CREATE DATABASE pulumi_state OWNER ${ROLE}`);
    const admin = loadKubeConfig({ path: clusterKubeconfig() });
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
        K8S_PULUMI_BACKEND_URL: backendUrl(database, "pulumi_state", ROLE, password),
        EXECUTOR_ASSIGN_TIMEOUT: "5",
        EXECUTOR_LOG_FORMAT: "json",
        EXECUTOR_LOG_LEVEL: "debug",
      },
      detached: true,
      stdio: ["ignore", "ignore", openSync(logFile, "w")],
    });
    const client = userClient(server);
    await waitFor(
      "the k8s executor registered",
      async () =>
        (await client.getExecutors(server.colonyName, server.userPrvKey)).some(
          (e) => e.executortype === type,
        ),
      120_000,
    );
    await ok("deploy", ["pg-web", "1", "1", "false", TEST_IMAGE]);

    // The database refuses the executor's password now: every CLI process fails to open the backend.
    await query(database, "postgres", `ALTER ROLE ${ROLE} PASSWORD 'changed-${password}'`);
    const failed = await call("scale", ["pg-web", "2"]);
    expect(failed.state).toBe(ProcessState.FAILED);
    const error = failed.errors?.join("; ") ?? "";
    expect(error).toMatch(/^scale: .*unable to open state database.*password authentication failed/);
    expect(error).toContain(`${ROLE}:[redacted]@`);
    const logs = await client.getLogs(
      { colonyName: server.colonyName, processId: failed.processid, count: 500 },
      server.userPrvKey,
    );
    expect(logs.length).toBeGreaterThan(0);
    const executorLog = readFileSync(logFile, "utf8");
    expect(executorLog).toContain("password authentication failed");
    // Nor in the stacks' work directories: the CLI gets the backend URL in its environment, not in Pulumi.yaml.
    const files = readdirSync(join(dir, "data"), { recursive: true, encoding: "utf8" })
      .map((entry) => join(dir, "data", entry))
      .filter((path) => statSync(path).isFile());
    expect(files.some((path) => path.endsWith("Pulumi.yaml"))).toBe(true);
    for (const [where, text] of [
      ["process error", error],
      ["process log", JSON.stringify(logs)],
      ["executor log", executorLog],
      ...files.map((path) => [path, readFileSync(path, "utf8")]),
    ]) {
      expect(text, where).not.toContain(password);
    }
    const deployment = await apps.readNamespacedDeployment({ name: "pg-web", namespace });
    expect(deployment.spec?.replicas).toBe(1);

    await query(database, "postgres", `ALTER ROLE ${ROLE} PASSWORD '${password}'`);
    await ok("scale", ["pg-web", "2"]);
    expect((await apps.readNamespacedDeployment({ name: "pg-web", namespace })).spec?.replicas).toBe(2);
    await ok("undeploy", ["pg-web"]);
  }, 300_000);
});
