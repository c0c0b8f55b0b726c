/**
 * A real Colonies server (the official Go binary, built by scripts/peers/colonies.sh) on PostgreSQL, on free
 * loopback ports, with a colony and a user made with keys generated for this run. The same binary is the
 * official `colonies` CLI, which tests use the way users do.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generatePrivateKey, idOf } from "../src/colonies/crypto.js";
import { peersCache } from "./peer-binary.js";
import { freePort, waitFor } from "./ports.js";
import { type Postgres, startPostgres } from "./postgres.js";

const execFileAsync = promisify(execFile);
export const COLONIES_VERSION = "1.9.12";

export function coloniesBinary(): string {
  const bin = process.env.COLONIES_BIN ?? join(peersCache(), `colonies-${COLONIES_VERSION}`, "colonies");
  if (!existsSync(bin)) {
    throw new Error(
      `Colonies server binary not found at ${bin}: build it with: bash scripts/peers/colonies.sh`,
    );
  }
  return bin;
}

export interface ColoniesServer {
  host: string;
  port: number;
  colonyName: string;
  colonyPrvKey: string;
  serverPrvKey: string;
  /** A user of the colony: can submit and read processes. */
  userPrvKey: string;
  /** The server's PostgreSQL (the demo also backs up a database of it). */
  databasePort: number;
  databasePassword: string;
  /** Its data directory (pg_hba.conf), e.g. to let pods of a real node connect. */
  databaseDir: string;
  /** Environment for executors and the CLI (COLONIES_*), without the colony owner key. */
  env: Record<string, string>;
  /** Runs the official CLI with the user's key; returns stdout. */
  cli(args: string[], extraEnv?: Record<string, string>): Promise<{ stdout: string; stderr: string }>;
  /** Stops the server process only (the database stays), e.g. to test reconnection. */
  stopServer(): Promise<void>;
  /** Kills the server process with SIGKILL (a crash: no shutdown of its own); the database stays. */
  killServer(): Promise<void>;
  /** Starts the server process again on the same port, database and etcd directory. */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startColoniesServer(options: { colonyName?: string } = {}): Promise<ColoniesServer> {
  const bin = coloniesBinary();
  const pg: Postgres = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), "colonyos-server-"));
  const serverPrvKey = generatePrivateKey();
  const colonyPrvKey = generatePrivateKey();
  const userPrvKey = generatePrivateKey();
  const colonyName = options.colonyName ?? "dev";
  const [port, etcdClient, etcdPeer, relay] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const base = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? dir,
    TZ: "UTC",
    COLONIES_SERVER_HOST: "127.0.0.1",
    COLONIES_SERVER_PORT: String(port),
    COLONIES_TLS: "false",
  };
  let server: ChildProcess | null = null;
  let output = "";
  let initdb = true;

  async function startServer(): Promise<void> {
    const args = ["server", "start", "--insecure", "--port", String(port), "--etcdhost", "127.0.0.1"];
    args.push("--etcddatadir", join(dir, "etcd"), "--etcdclientport", String(etcdClient));
    args.push("--etcdpeerport", String(etcdPeer), "--relayport", String(relay));
    if (initdb) args.push("--initdb");
    initdb = false;
    output = "";
    server = spawn(bin, args, {
      env: {
        ...base,
        COLONIES_DB_HOST: pg.host,
        COLONIES_DB_PORT: String(pg.port),
        COLONIES_DB_USER: pg.user,
        COLONIES_DB_PASSWORD: pg.password,
        COLONIES_SERVER_ID: idOf(serverPrvKey),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    server.stdout?.on("data", keep);
    server.stderr?.on("data", keep);
    const exited = new Promise<never>((_, reject) =>
      server?.once("exit", (code) =>
        reject(new Error(`colonies server exited (${code}):\n${output.slice(-3000)}`)),
      ),
    );
    exited.catch(() => {});
    await Promise.race([
      waitFor(
        `the Colonies server on port ${port}`,
        async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok,
        90_000,
      ),
      exited,
    ]);
  }

  /** Ends the server process with `signal` (SIGKILL after 10 s) and waits until it has exited. */
  async function endServer(signal: NodeJS.Signals): Promise<void> {
    const child = server;
    server = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
  }
  const stopServer = () => endServer("SIGTERM");

  const cli: ColoniesServer["cli"] = (args, extraEnv = {}) =>
    execFileAsync(bin, args, {
      env: { ...base, COLONIES_COLONY_NAME: colonyName, COLONIES_PRVKEY: userPrvKey, ...extraEnv },
      timeout: 120_000,
    });

  try {
    await startServer();
    await cli(["colony", "add", "--name", colonyName, "--colonyid", idOf(colonyPrvKey)], {
      COLONIES_SERVER_PRVKEY: serverPrvKey,
    });
    await cli(
      ["user", "add", "--name", "tester", "--email", "", "--phone", "", "--userid", idOf(userPrvKey)],
      {
        COLONIES_COLONY_PRVKEY: colonyPrvKey,
      },
    );
  } catch (error) {
    await stopServer();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    host: "127.0.0.1",
    port,
    colonyName,
    colonyPrvKey,
    serverPrvKey,
    userPrvKey,
    databasePort: pg.port,
    databasePassword: pg.password,
    databaseDir: pg.dataDir,
    env: { ...base, COLONIES_COLONY_NAME: colonyName },
    cli,
    stopServer,
    killServer: () => endServer("SIGKILL"),
    startServer,
    async stop() {
      await stopServer();
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
