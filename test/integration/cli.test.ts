/** The `colonyos-executor` command as users run it: --help, configuration errors, signals, health endpoints. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, uniqueName, waitDone } from "../../peers/executor.js";
import { freePort, waitFor } from "../../peers/ports.js";
import { ProcessState } from "../../src/colonies/types.js";

const CLI = ["--import", "tsx", "src/cli.ts"];
let server: ColoniesServer;

beforeAll(async () => {
  server = await startColoniesServer();
});
afterAll(async () => {
  await server?.stop();
});

function startCli(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number>;
} {
  const child = spawn(process.execPath, [...CLI, "sleep"], {
    env: { PATH: process.env.PATH ?? "", EXECUTOR_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? -1)));
  return { child, output: () => output, exited };
}

describe("colonyos-executor command", () => {
  it("documents every environment variable in --help", () => {
    const result = spawnSync(process.execPath, [...CLI, "--help"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    for (const name of [
      "COLONIES_SERVER_HOST",
      "COLONIES_COLONY_PRVKEY",
      "COLONIES_PRVKEY",
      "EXECUTOR_CONCURRENCY",
    ]) {
      expect(result.stdout).toContain(name);
    }
    expect(result.stdout).toContain("SLEEP_MAX_MS");
  });

  it("refuses a bad configuration with exit code 2 and names the variables", () => {
    const result = spawnSync(process.execPath, [...CLI, "sleep"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", COLONIES_SERVER_PORT: "x" },
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("COLONIES_SERVER_PORT must be a whole number");
    expect(result.stderr).toContain("COLONIES_COLONY_NAME is required");
    expect(spawnSync(process.execPath, [...CLI, "nope"], { encoding: "utf8" }).stderr).toContain(
      'unknown executor "nope"; known: sleep, backup, k8s',
    );
  });

  it("serves health, readiness and metrics, and drains on SIGTERM, failing what outlives the grace period", async () => {
    const port = await freePort();
    const name = uniqueName("cli");
    const cli = startCli({
      ...server.env,
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: name,
      EXECUTOR_HTTP_PORT: String(port),
      EXECUTOR_HTTP_HOST: "127.0.0.1",
      EXECUTOR_SHUTDOWN_GRACE: "1",
      EXECUTOR_ASSIGN_TIMEOUT: "5",
    });
    try {
      await waitFor("readiness", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30_000);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const quick = await waitDone(server, (await submit(server, "sleep", "sleep", ["10"])).processid);
      expect(quick.state).toBe(ProcessState.SUCCESS);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(
        /colonies_executor_processes_total\{[^}]*function="sleep"[^}]*outcome="success"[^}]*\} 1/,
      );
      expect(metrics).toMatch(/^colonies_executor_reports_undelivered_total\{[^}]*\} 0$/m);

      const long = await submit(server, "sleep", "sleep", ["60000"]);
      await waitFor("the long process to start", async () => cli.output().includes(long.processid));
      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
      const failed = await waitDone(server, long.processid);
      expect(failed.state).toBe(ProcessState.FAILED);
      expect(failed.errors?.[0]).toMatch(/executor shut down \(SIGTERM\)/);
      expect(cli.output()).not.toContain(server.colonyPrvKey);
      const executors = await server.cli(["executor", "ls"]);
      expect(executors.stdout).not.toContain(name);
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("a second signal aborts at once", async () => {
    const name = uniqueName("cli");
    const cli = startCli({
      ...server.env,
      COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: name,
      EXECUTOR_SHUTDOWN_GRACE: "600",
      EXECUTOR_ASSIGN_TIMEOUT: "5",
    });
    try {
      await waitFor(
        "registration",
        async () => (await server.cli(["executor", "ls"])).stdout.includes(name),
        30_000,
      );
      const long = await submit(server, "sleep", "sleep", ["60000"]);
      // Started by this executor (not merely assigned: an assign aborted in flight is re-queued on deregistration).
      await waitFor("the process to start", async () => cli.output().includes(long.processid));
      const started = Date.now();
      cli.child.kill("SIGTERM");
      await waitFor("the executor to start draining", async () =>
        cli.output().includes("draining (send again to force)"),
      );
      cli.child.kill("SIGINT");
      expect(await cli.exited).toBe(0);
      // Without the second signal it would wait for the 60 s process (within its 600 s grace period).
      expect(Date.now() - started).toBeLessThan(45_000);
      const failed = await waitDone(server, long.processid, 30_000).catch((e) => {
        throw new Error(`${e}\n${cli.output()}`);
      });
      expect(failed.errors?.[0]).toMatch(/executor forced to stop/);
    } finally {
      cli.child.kill("SIGKILL");
    }
  });
});
