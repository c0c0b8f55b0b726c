/**
 * Running pg_dump and pg_restore. Connection settings reach them through the libpq environment (PGHOST,
 * PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...), never through argv, so the password is neither visible in
 * `ps` nor in any log line that prints a command. Their stderr is kept (the last 16 KiB) for error messages.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Socket } from "node:net";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { ProcessError } from "../../executor/types.js";
import type { PgConfig } from "./config.js";

const STDERR_LIMIT = 16 * 1024;
/** After SIGTERM, how long a tool gets before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/** Variables of the executor's environment a client tool may see; everything else (keys, secrets) stays out. */
const PASSTHROUGH = /^(PATH|HOME|LANG|LANGUAGE|TZ|TMPDIR|LC_[A-Z]+|PG(?!PASSWORD$)[A-Z_]+)$/;

export type PgTool = "pg_dump" | "pg_restore";

export function toolPath(pg: PgConfig, tool: PgTool): string {
  return pg.bindir ? path.join(pg.bindir, tool) : tool;
}

/** The environment of a client tool: harmless inherited variables, then our connection settings. */
export function toolEnv(pg: PgConfig, base: NodeJS.ProcessEnv, database = pg.database): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && PASSTHROUGH.test(k)) env[k] = v;
  env.PGHOST = pg.host;
  env.PGPORT = String(pg.port);
  env.PGUSER = pg.user;
  env.PGDATABASE = database;
  env.PGCONNECT_TIMEOUT = String(Math.max(1, Math.round(pg.connectTimeoutMs / 1000)));
  env.PGAPPNAME = "colonyos-backup";
  if (pg.password !== undefined) env.PGPASSWORD = pg.password;
  if (pg.sslMode) env.PGSSLMODE = pg.sslMode;
  if (pg.sslRootCert) env.PGSSLROOTCERT = pg.sslRootCert;
  return env;
}

/**
 * The `--dbname` value that names a database and nothing else. libpq reads a dbname containing "=" or starting
 * with "postgresql://" as a whole connection string, whose host, port, user... would override ours (and
 * receive PGPASSWORD). Handing it a connection string we built ourselves means the expansion happens once,
 * on OUR string: its only keyword is dbname, and the quoted value is taken literally (libpq never expands a
 * dbname found inside a connection string again). Host, port, user and TLS therefore come only from the
 * environment of toolEnv, i.e. the executor's configuration. The caller's value is a checked identifier
 * anyway (checks.ts); the quoting keeps this safe on its own.
 */
export function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface RunningTool {
  /** stdout is null when it was given as a socket. */
  child: ChildProcessByStdio<Writable | null, Readable | null, Readable>;
  /** Resolves when the tool exited (never rejects; a spawn failure becomes code null + stderr). */
  exited: Promise<ToolResult>;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): void;
  /** Whether stop() was called while the tool was running (its complaints are then about being stopped). */
  readonly stopped: boolean;
}

export function startTool(
  pg: PgConfig,
  tool: PgTool,
  args: string[],
  env: NodeJS.ProcessEnv,
  stdin: "pipe" | "ignore",
  stdout: "pipe" | Socket = "pipe",
): RunningTool {
  const child = spawn(toolPath(pg, tool), args, {
    env,
    stdio: [stdin, stdout, "pipe"],
  }) as RunningTool["child"];
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    stderr = (stderr + text).slice(-STDERR_LIMIT);
  });
  let killTimer: NodeJS.Timeout | undefined;
  const exited = new Promise<ToolResult>((resolve) => {
    child.once("error", (err: NodeJS.ErrnoException) => {
      const why =
        err.code === "ENOENT"
          ? `${toolPath(pg, tool)} not found (install the PostgreSQL client tools or set BACKUP_PG_BINDIR)`
          : err.message;
      resolve({ code: null, signal: null, stderr: why });
    });
    child.once("close", (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      resolve({ code, signal, stderr });
    });
  });
  let stopped = false;
  const stop = () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    stopped = true;
    child.kill("SIGTERM");
    killTimer ??= setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
    killTimer.unref();
  };
  return {
    child,
    exited,
    stop,
    get stopped() {
      return stopped;
    },
  };
}

/** "pg_dump: error: ... " lines of stderr, trimmed, for messages. */
export function stderrSummary(stderr: string): string {
  const text = stderr.trim();
  return text === "" ? "(no output on stderr)" : text;
}

export function toolFailure(tool: PgTool, what: string, result: ToolResult): ProcessError {
  if (result.code === null && result.signal === null) return new ProcessError(`${what}: ${result.stderr}`);
  const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
  return new ProcessError(`${what}: ${tool} ${how}: ${stderrSummary(result.stderr)}`);
}

/** `pg_dump (PostgreSQL) 15.14 (Debian ...)` → `15.14 (Debian ...)` */
export async function toolVersion(pg: PgConfig, tool: PgTool): Promise<string> {
  const run = startTool(pg, tool, ["--version"], { PATH: process.env.PATH }, "ignore");
  let out = "";
  run.child.stdout?.setEncoding("utf8");
  run.child.stdout?.on("data", (t: string) => {
    out += t;
  });
  const result = await run.exited;
  if (result.code !== 0) throw toolFailure(tool, `cannot run ${tool} --version`, result);
  return out.trim().replace(/^\S+\s+\(PostgreSQL\)\s+/, "");
}
