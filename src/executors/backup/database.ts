/**
 * The executor's own PostgreSQL connection, used around pg_dump/pg_restore: it checks credentials up front
 * (so a wrong password is reported as such before anything is written), reads the server version, holds the
 * per-database backup lock and creates/drops databases for restore.
 *
 * The backup lock is a session advisory lock. Advisory locks are scoped to the database they are taken in,
 * so one fixed key means "a backup of THIS database is running", across every executor that backs it up.
 * It is released when the session ends, also when the executor dies. The restore lock (another key) works the
 * same way: it serializes counting and creating restored databases (see bound.ts).
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { ProcessError } from "../../executor/types.js";
import type { PgConfig } from "./config.js";
import { pgError } from "./errors.js";

/** "cbak" */
const BACKUP_LOCK_KEY = 0x6362616b;
/** "crst" */
const RESTORE_LOCK_KEY = 0x63727374;

export interface Session {
  client: pg.Client;
  end(): Promise<void>;
}

function sslOption(cfg: PgConfig): pg.ClientConfig["ssl"] {
  switch (cfg.sslMode) {
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
    case "verify-full":
      return cfg.sslRootCert
        ? { rejectUnauthorized: true, ca: readFileSync(cfg.sslRootCert, "utf8") }
        : { rejectUnauthorized: true };
    default:
      // disable/allow/prefer (and unset): node-postgres has no "try TLS, fall back"; pg_dump still honours them.
      return false;
  }
}

export async function connect(cfg: PgConfig, database = cfg.database): Promise<Session> {
  const client = new pg.Client({
    host: cfg.host,
    port: cfg.port,
    user: cfg.user,
    password: cfg.password ?? "",
    database,
    ssl: sslOption(cfg),
    application_name: "colonyos-backup",
    connectionTimeoutMillis: cfg.connectTimeoutMs,
  });
  // Without a listener an 'error' after connect (server restart, network) would crash the executor; the
  // operation using the session notices the failure itself (pg_dump fails too, or the next query does).
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw pgError(err, cfg);
  }
  return {
    client,
    end: () => client.end().catch(() => undefined),
  };
}

export async function serverVersion(session: Session, cfg: PgConfig): Promise<string> {
  try {
    const res = await session.client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return res.rows[0]?.v ?? "unknown";
  } catch (err) {
    throw pgError(err, cfg);
  }
}

/** Takes the backup lock of the session's database or throws a ProcessError saying a backup is running. */
export async function lockForBackup(session: Session, cfg: PgConfig, database: string): Promise<void> {
  let locked: boolean;
  try {
    const res = await session.client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
      BACKUP_LOCK_KEY,
    ]);
    locked = res.rows[0]?.locked === true;
  } catch (err) {
    throw pgError(err, cfg);
  }
  if (!locked) {
    throw new ProcessError(
      `another backup of database "${database}" on ${cfg.host}:${cfg.port} is already running; try again when it has finished`,
    );
  }
}

export interface ExistingDatabase {
  /** pg_database.datistemplate: any database may be a template, not only template0/template1. */
  isTemplate: boolean;
}

/** The database of that exact name, or undefined when there is none. */
export async function existingDatabase(
  session: Session,
  cfg: PgConfig,
  database: string,
): Promise<ExistingDatabase | undefined> {
  try {
    const res = await session.client.query<{ datistemplate: boolean }>(
      "SELECT datistemplate FROM pg_database WHERE datname = $1",
      [database],
    );
    const row = res.rows[0];
    return row ? { isTemplate: row.datistemplate === true } : undefined;
  } catch (err) {
    throw pgError(err, cfg);
  }
}

export async function createDatabase(session: Session, cfg: PgConfig, database: string): Promise<void> {
  try {
    await session.client.query(`CREATE DATABASE ${session.client.escapeIdentifier(database)}`);
  } catch (err) {
    if ((err as { code?: string }).code === "42P04") {
      throw new ProcessError(`database "${database}" already exists on ${cfg.host}:${cfg.port}`);
    }
    throw pgError(err, cfg);
  }
}

/** Drops a database this executor created (closing other sessions first: a failed restore may linger). */
export async function dropDatabase(session: Session, cfg: PgConfig, database: string): Promise<void> {
  try {
    await session.client.query(
      `DROP DATABASE IF EXISTS ${session.client.escapeIdentifier(database)} WITH (FORCE)`,
    );
  } catch (err) {
    throw pgError(err, cfg);
  }
}

/**
 * Runs `fn` holding the restore lock of the session's database, waiting for it (it is held only while counting
 * and creating, not during pg_restore). The lock goes with the session if the unlock cannot be sent.
 */
export async function withRestoreLock<T>(session: Session, cfg: PgConfig, fn: () => Promise<T>): Promise<T> {
  try {
    await session.client.query("SELECT pg_advisory_lock($1)", [RESTORE_LOCK_KEY]);
  } catch (err) {
    throw pgError(err, cfg);
  }
  try {
    return await fn();
  } finally {
    await session.client.query("SELECT pg_advisory_unlock($1)", [RESTORE_LOCK_KEY]).catch(() => undefined);
  }
}

/** How many databases of the server have a name starting with `prefix` (compared as text: no LIKE wildcards). */
export async function countWithPrefix(session: Session, cfg: PgConfig, prefix: string): Promise<number> {
  try {
    const res = await session.client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_database WHERE left(datname::text, char_length($1::text)) = $1::text",
      [prefix],
    );
    return res.rows[0]?.n ?? 0;
  } catch (err) {
    throw pgError(err, cfg);
  }
}
