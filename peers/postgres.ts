/**
 * A private, throw-away PostgreSQL server for tests: initdb into a temp dir and start it on a free loopback port.
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.js";

export interface Postgres {
  host: string;
  port: number;
  user: string;
  password: string;
  bindir: string;
  dataDir: string;
  stop(): Promise<void>;
}

const HOW_TO_GET = "install it with: bash scripts/peers/postgres.sh (Debian package postgresql)";

export function postgresBindir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const bindir = join(root, version, "bin");
    if (existsSync(join(bindir, "initdb"))) return bindir;
  }
  throw new Error(`PostgreSQL server binaries not found under ${root}: ${HOW_TO_GET}`);
}

function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

function run(command: string, args: string[]): void {
  const [cmd, argv] = asPostgresUser(command, args);
  const result = spawnSync(cmd, argv, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(
      `${command} failed (${result.status}): ${result.stderr || result.stdout || result.error}`,
    );
  }
}

export async function startPostgres(options: { password?: string } = {}): Promise<Postgres> {
  const bindir = postgresBindir();
  const base = mkdtempSync(join(tmpdir(), "colonyos-pg-"));
  const dataDir = join(base, "data");
  const password = options.password ?? randomBytes(12).toString("hex");
  const pwfile = join(base, "pwfile");
  writeFileSync(pwfile, `${password}\n`);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(base, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  chmodSync(base, 0o700);
  run(join(bindir, "initdb"), [
    "-D",
    dataDir,
    "-U",
    "postgres",
    "--auth=scram-sha-256",
    `--pwfile=${pwfile}`,
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ]);
  rmSync(pwfile);
  const port = await freePort();
  const opts = `-h 127.0.0.1 -p ${port} -k ${base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  run(join(bindir, "pg_ctl"), [
    "-D",
    dataDir,
    "-o",
    opts,
    "-l",
    join(base, "log"),
    "-w",
    "-t",
    "60",
    "start",
  ]);
  return {
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    bindir,
    dataDir,
    async stop() {
      try {
        run(join(bindir, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
}

/** Runs one SQL statement on a database of a test server, on a connection of its own. */
export async function query(server: Postgres, database: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
  });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
