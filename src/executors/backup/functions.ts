/** The backup executor's table of Colonies functions. */
import type { ArgSpec, FunctionDef } from "../../executor/types.js";
import { checkBackupName, checkDatabaseName, DATABASE_RULE } from "./checks.js";
import { type BackupDeps, runBackup } from "./dump.js";
import { compareNewestFirst, type ParsedName, parseBackupName } from "./names.js";
import { runRestore } from "./restore.js";
import { runVerify } from "./verify.js";

export interface ListedBackup {
  name: string;
  database: string;
  /** The backup's start (UTC), from its name. */
  time: string;
  size: number;
  target: "dir" | "s3";
  path?: string;
  bucket?: string;
  key?: string;
}

export async function listBackups(deps: BackupDeps, database?: unknown): Promise<ListedBackup[]> {
  const filter = typeof database === "string" && database.trim() !== "" ? database.trim() : undefined;
  const stored = await deps.target.list(filter);
  const sizes = new Map(stored.map((b) => [b.name, b.size]));
  return stored
    .map((b) => parseBackupName(b.name))
    .filter((p): p is ParsedName => p !== undefined)
    .sort(compareNewestFirst)
    .map((p) => ({
      name: p.name,
      database: p.database,
      time: p.time.toISOString(),
      size: sizes.get(p.name) ?? 0,
      ...deps.target.locate(p.name),
    }));
}

/** The name argument of verify and restore: one of our backup names, nothing else (no paths, no other files). */
const BACKUP_NAME_ARG: ArgSpec = {
  name: "name",
  type: "string",
  description: "backup name, as list_backups shows it: backup_<database>_<YYYYMMDDTHHMMSS.mmmZ>.bak",
  check: checkBackupName,
};

export function backupFunctions(deps: BackupDeps): FunctionDef[] {
  return [
    {
      name: "backup",
      description:
        "pg_dump -Fc of the configured database, streamed to the target with size and sha256; then retention. " +
        "Output: {name, filename, target, bucket, key, size, sha256, durationMs, ...}",
      args: [],
      handler: async (_args, ctx) => [await runBackup(deps, ctx)],
    },
    {
      name: "list_backups",
      description: "Backups in the target, newest first: [[{name, database, time, size, ...}]]",
      args: [],
      kwargs: [{ name: "database", type: "string", description: "only the backups of this database" }],
      handler: async (args) => [await listBackups(deps, args.database)],
    },
    {
      name: "verify",
      description:
        "Checks a backup's size and sha256 against its metadata and reads it with pg_restore --list",
      args: [BACKUP_NAME_ARG],
      handler: async (args, ctx) => [await runVerify(deps, ctx, args.name as string)],
    },
    {
      name: "restore",
      description:
        `Restores a backup into a NEW database named ${deps.config.restorePrefix}... on the configured server (at ` +
        `most ${deps.config.maxRestored} such at once; checked against its sha256 while streaming). ` +
        "Output: {name, database, created, size, sha256, sourceDatabase, durationMs}",
      args: [
        BACKUP_NAME_ARG,
        {
          name: "database",
          type: "string",
          description: `database to create and restore into, starting with ${deps.config.restorePrefix}: ${DATABASE_RULE}`,
          check: checkDatabaseName,
        },
      ],
      kwargs: [
        {
          name: "allow_existing",
          type: "bool",
          description:
            "restore into an existing database, replacing the objects the backup contains; only where the operator " +
            "set BACKUP_ALLOW_RESTORE_EXISTING=true, only databases with the prefix, never the backed-up database, " +
            "postgres or a template",
        },
      ],
      handler: async (args, ctx) => [
        await runRestore(deps, ctx, {
          name: args.name as string,
          database: args.database as string,
          allowExisting: args.allow_existing === true,
        }),
      ],
    },
  ];
}
