/**
 * restore(name, database[, allow_existing]): restores a backup into a NEW database (created here), or into an
 * existing one only when allow_existing is true (objects are then replaced: --clean --if-exists).
 *
 * The backup streams from the target through a VerifyingStream into `pg_restore --single-transaction
 * --exit-on-error`: the last chunk is held back until size and sha256 matched the metadata, so a damaged
 * backup makes pg_restore fail and roll back. A database created here is dropped again on any failure.
 * Objects are restored without their original owners (--no-owner): they belong to the restoring user.
 */
import { pipeline } from "node:stream/promises";
import { type ProcessContext, ProcessError } from "../../executor/types.js";
import { connect, createDatabase, databaseExists, dropDatabase } from "./database.js";
import { type BackupDeps, cancelled } from "./dump.js";
import { messageOf } from "./errors.js";
import { startTool, toolEnv, toolFailure } from "./pgtools.js";
import { IntegrityError, VerifyingStream } from "./streams.js";
import { requireBackupName, requireMetadata } from "./verify.js";

export interface RestoreOutput {
  name: string;
  database: string;
  created: boolean;
  size: number;
  sha256: string;
  sourceDatabase: string;
  durationMs: number;
}

export function requireDatabaseName(fn: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new ProcessError(`${fn}: argument database must be the name of the database to restore into`);
  }
  const database = value.trim();
  if (Buffer.byteLength(database) > 63) {
    throw new ProcessError(`${fn}: database name ${JSON.stringify(database)} is longer than 63 bytes`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f]/.test(database)) {
    throw new ProcessError(`${fn}: database name ${JSON.stringify(database)} contains control characters`);
  }
  return database;
}

function asBool(fn: string, name: string, value: unknown): boolean {
  if (value === undefined || value === false || value === "false") return false;
  if (value === true || value === "true") return true;
  throw new ProcessError(`${fn}: argument ${name} must be "true" or "false", got ${JSON.stringify(value)}`);
}

export async function runRestore(
  deps: BackupDeps,
  ctx: ProcessContext,
  rawName: unknown,
  rawDatabase: unknown,
  rawAllowExisting: unknown,
): Promise<RestoreOutput> {
  const name = requireBackupName("restore", rawName);
  const database = requireDatabaseName("restore", rawDatabase);
  const allowExisting = asBool("restore", "allow_existing", rawAllowExisting);
  const { target, config } = deps;
  const pgc = config.pg;
  const started = Date.now();
  const meta = await requireMetadata(target, name, "restore");

  const session = await connect(pgc);
  let created = false;
  try {
    const exists = await databaseExists(session, pgc, database);
    if (exists && !allowExisting) {
      throw new ProcessError(
        `restore: database "${database}" already exists on ${pgc.host}:${pgc.port}; restore creates a new database (pass allow_existing=true to restore into it)`,
      );
    }
    if (ctx.signal.aborted) throw cancelled(`restore ${name}`, ctx.signal);
    if (!exists) {
      await createDatabase(session, pgc, database);
      created = true;
    }
    await ctx.log(`restore ${name} into ${created ? "new" : "existing"} database "${database}"`);

    const args = [
      "--no-password",
      "--single-transaction",
      "--exit-on-error",
      "--no-owner",
      `--dbname=${database}`,
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
