/**
 * restore(name, database[, allow_existing]): restores a backup into a NEW database (created here), or into an
 * existing one when allow_existing is true (objects are then replaced: --clean --if-exists).
 *
 * Who may call it: anyone who may submit processes to the colony, so the arguments are untrusted. `database`
 * is a plain identifier (checked by the parser, see checks.ts) and reaches pg_restore only as the dbname of a
 * connection string we build (pgtools.dbnameConninfo): host, port, user and password are the executor's own.
 * Restore writes only into databases named with BACKUP_RESTORE_PREFIX and creates one only while fewer than
 * BACKUP_MAX_RESTORED of those exist (bound.ts), so calls cannot fill the server with databases.
 * allow_existing=true is refused unless the operator set BACKUP_ALLOW_RESTORE_EXISTING=true, and never targets
 * the database this executor backs up, `postgres` or a template database. Every refusal happens before a
 * database is created or touched.
 *
 * The backup streams from the target through a VerifyingStream into `pg_restore --single-transaction
 * --exit-on-error`: the last chunk is held back until size and sha256 matched the metadata, so a damaged
 * backup makes pg_restore fail and roll back. A database created here is dropped again on any failure.
 * Objects are restored without their original owners (--no-owner): they belong to the restoring user.
 */
import { pipeline } from "node:stream/promises";
import { type ProcessContext, ProcessError } from "../../executor/types.js";
import { createBounded, limitRefusal, prefixRefusal } from "./bound.js";
import type { BackupConfig } from "./config.js";
import { connect, dropDatabase, existingDatabase } from "./database.js";
import { type BackupDeps, cancelled } from "./dump.js";
import { messageOf } from "./errors.js";
import { dbnameConninfo, startTool, toolEnv, toolFailure } from "./pgtools.js";
import { IntegrityError, VerifyingStream } from "./streams.js";
import { requireMetadata } from "./verify.js";

export interface RestoreOutput {
  name: string;
  database: string;
  created: boolean;
  size: number;
  sha256: string;
  sourceDatabase: string;
  durationMs: number;
}

export interface RestoreRequest {
  /** A backup name (checked by the parser: checkBackupName). */
  name: string;
  /** A plain identifier (checked by the parser: checkDatabaseName). */
  database: string;
  allowExisting: boolean;
}

/** Databases of every PostgreSQL cluster that allow_existing never targets (besides the backed-up one). */
const BUILT_IN: Readonly<Record<string, string>> = {
  postgres: "the maintenance database",
  template0: "a template database",
  template1: "a template database",
};

/**
 * Why a restore is refused before anything is read or connected, or undefined. Every database restore writes
 * into carries BACKUP_RESTORE_PREFIX: the prefix marks the databases restore manages, so even with allow_existing
 * it cannot replace another application's database. allow_existing=true replaces the contents of a database,
 * so it needs the operator's consent (BACKUP_ALLOW_RESTORE_EXISTING) and never reaches the database this
 * executor backs up, the maintenance database or a template (templates are copied into every new database).
 * Template databases by flag (datistemplate) and the number of restored databases are checked on the server.
 */
export function restoreRefusal(config: BackupConfig, request: RestoreRequest): string | undefined {
  if (!request.allowExisting) {
    // BACKUP_MAX_RESTORED=0 first: no name would do.
    const none = config.maxRestored === 0 ? limitRefusal(config, 0, "") : undefined;
    return none ?? prefixRefusal(config, request.database, false);
  }
  if (!config.allowRestoreExisting) {
    return "restore: allow_existing=true is not allowed on this executor: the operator must set BACKUP_ALLOW_RESTORE_EXISTING=true to allow restoring into an existing database; restore into a new database instead";
  }
  const { database } = request;
  const never = `restore: allow_existing=true may not target "${database}"`;
  if (database === config.pg.database) {
    return `${never}: it is the database this executor backs up (DB_DATABASE); restore into a new database instead`;
  }
  const builtIn = Object.hasOwn(BUILT_IN, database) ? BUILT_IN[database] : undefined;
  return builtIn === undefined ? prefixRefusal(config, database, true) : `${never}: it is ${builtIn}`;
}

export async function runRestore(
  deps: BackupDeps,
  ctx: ProcessContext,
  request: RestoreRequest,
): Promise<RestoreOutput> {
  const { name, database, allowExisting } = request;
  const refusal = restoreRefusal(deps.config, request);
  if (refusal) throw new ProcessError(refusal);
  const { target, config } = deps;
  const pgc = config.pg;
  const started = Date.now();
  const meta = await requireMetadata(target, name, "restore");

  const session = await connect(pgc);
  let created = false;
  try {
    const existing = await existingDatabase(session, pgc, database);
    const exists = existing !== undefined;
    if (exists && !allowExisting) {
      // Suggest allow_existing only where it would be accepted.
      const hint =
        !existing.isTemplate && restoreRefusal(config, { ...request, allowExisting: true }) === undefined
          ? "pass allow_existing=true to restore into it"
          : "choose a new name";
      throw new ProcessError(
        `restore: database "${database}" already exists on ${pgc.host}:${pgc.port}; restore creates a new database (${hint})`,
      );
    }
    if (existing?.isTemplate) {
      throw new ProcessError(
        `restore: allow_existing=true may not target "${database}": it is a template database (pg_database.datistemplate)`,
      );
    }
    if (ctx.signal.aborted) throw cancelled(`restore ${name}`, ctx.signal);
    if (!exists) {
      await createBounded(session, config, database, () => {
        created = true;
      });
    }
    await ctx.log(`restore ${name} into ${created ? "new" : "existing"} database "${database}"`);

    // The database goes to pg_restore as a connection string of our own with dbname as its only keyword
    // (dbnameConninfo): whatever the name, libpq cannot read host, port or user from it, so the restore and
    // PGPASSWORD go to the configured server only.
    const args = [
      "--no-password",
      "--single-transaction",
      "--exit-on-error",
      "--no-owner",
      `--dbname=${dbnameConninfo(database)}`,
    ];
    if (!created) args.push("--clean", "--if-exists");
    const source = await target.read(name, ctx.signal);
    const tool = startTool(pgc, "pg_restore", args, toolEnv(pgc, deps.env, database), "pipe");
    const stdin = tool.child.stdin;
    if (!stdin) throw new ProcessError("restore: pg_restore has no stdin");
    tool.child.stdout?.resume(); // pg_restore prints nothing to stdout with --dbname; never let the pipe fill
    const verifier = new VerifyingStream(meta, `backup ${name}`);
    const onAbort = () => {
      tool.stop();
      source.destroy();
    };
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    let streamError: unknown;
    try {
      await pipeline(source, verifier, stdin).catch((err: unknown) => {
        streamError = err;
        tool.stop();
      });
      const result = await tool.exited;
      if (ctx.signal.aborted) throw cancelled(`restore ${name}`, ctx.signal);
      if (streamError instanceof IntegrityError) {
        throw new ProcessError(
          `restore: backup ${name} is damaged (${streamError.message}); nothing was restored`,
        );
      }
      if (result.code !== 0)
        throw toolFailure("pg_restore", `restore of ${name} into "${database}" failed`, result);
      if (streamError !== undefined) {
        throw new ProcessError(
          `restore: cannot read backup ${name} from ${target.description}: ${messageOf(streamError)}`,
        );
      }
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      tool.stop();
    }
    await ctx.log(`restore ${name} into "${database}" finished`);
    return {
      name,
      database,
      created,
      size: meta.size,
      sha256: meta.sha256,
      sourceDatabase: meta.database,
      durationMs: Date.now() - started,
    };
  } catch (err) {
    if (created) {
      await dropDatabase(session, pgc, database).catch((dropErr: unknown) => {
        deps.logger.error(
          { database, err: messageOf(dropErr) },
          "could not drop the database of a failed restore",
        );
      });
    }
    throw err;
  } finally {
    await session.end();
  }
}
