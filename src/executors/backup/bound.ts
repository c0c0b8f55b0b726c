/**
 * The bound on restore. Any colony member may call restore with any name, and restore creates the database it
 * restores into: unbounded, a loop of calls would fill the operator's server with databases. So restore writes
 * only into databases whose name starts with BACKUP_RESTORE_PREFIX, and creates one only while fewer than
 * BACKUP_MAX_RESTORED databases with that prefix exist on the server. Every refusal comes before CREATE DATABASE.
 */
import { ProcessError } from "../../executor/types.js";
import { MAX_DATABASE_NAME_BYTES } from "./checks.js";
import type { BackupConfig } from "./config.js";
import { countWithPrefix, createDatabase, type Session, withRestoreLock } from "./database.js";

type Bound = Pick<BackupConfig, "restorePrefix" | "maxRestored" | "allowRestoreExisting">;

/** Why restore may not write into `database` (its name lacks the prefix), or undefined. */
export function prefixRefusal(config: Bound, database: string, allowExisting: boolean): string | undefined {
  const prefix = config.restorePrefix;
  if (database.startsWith(prefix)) return undefined;
  const rule = `BACKUP_RESTORE_PREFIX (${prefix})`;
  if (allowExisting) {
    return `restore: allow_existing=true may not target "${database}": its name does not start with ${rule}; this executor replaces only databases with that prefix`;
  }
  const example = `${prefix}${database}`;
  const eg = Buffer.byteLength(example) <= MAX_DATABASE_NAME_BYTES ? `, e.g. "${example}"` : "";
  return `restore: database "${database}" must start with ${rule}: this executor creates only databases with that prefix${eg}`;
}

/** Why no database may be created while `existing` databases on `where` carry the prefix, or undefined. */
export function limitRefusal(config: Bound, existing: number, where: string): string | undefined {
  const { restorePrefix: prefix, maxRestored: max } = config;
  if (max === 0) {
    const hint = config.allowRestoreExisting ? "; restore into an existing one with allow_existing=true" : "";
    return `restore: this executor creates no databases (BACKUP_MAX_RESTORED=0)${hint}`;
  }
  if (existing < max) return undefined;
  const [dbs, exist] = existing === 1 ? ["database", "exists"] : ["databases", "exist"];
  return `restore: ${existing} ${dbs} with prefix ${prefix} already ${exist} on ${where}, the most BACKUP_MAX_RESTORED allows (${max}); drop one first`;
}

/**
 * Creates `database` unless the bound is reached; `onCreated` runs as soon as it exists (the caller drops it
 * on any later failure, this one included).
 *
 * Two restores at once must not both pass the count. CREATE DATABASE cannot run inside a transaction, so
 * count and create run under a session advisory lock, which serializes every executor connected to the same
 * database (DB_DATABASE): of two restores with room for one, exactly one creates. Advisory locks are per
 * database, so executors of other databases on the same server are not serialized with these; the count after
 * creating catches them: when the bound was passed, the new database is dropped and restore refused.
 */
export async function createBounded(
  session: Session,
  config: BackupConfig,
  database: string,
  onCreated: () => void,
): Promise<void> {
  const pgc = config.pg;
  const where = `${pgc.host}:${pgc.port}`;
  const count = () => countWithPrefix(session, pgc, config.restorePrefix);
  await withRestoreLock(session, pgc, async () => {
    const refusal = limitRefusal(config, await count(), where);
    if (refusal) throw new ProcessError(refusal);
    await createDatabase(session, pgc, database);
    onCreated();
    const after = await count();
    if (after > config.maxRestored) {
      throw new ProcessError(
        limitRefusal(config, after - 1, where) ?? "restore: BACKUP_MAX_RESTORED reached",
      );
    }
  });
}
