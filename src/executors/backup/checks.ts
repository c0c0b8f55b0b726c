/**
 * Rules of the backup functions' string arguments, declared in the function table (`ArgSpec.check`), so the
 * shared parser rejects a bad value before any handler runs. Each returns the phrase that completes
 * "<fn>: " (naming the argument and what was expected), or undefined when the value is fine.
 */
import { parseBackupName } from "./names.js";

/** PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated by the server. */
export const MAX_DATABASE_NAME_BYTES = 63;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHOWN_CHARS = 80;

/** The value as JSON, cut short when it is long (the message must stay a message). */
export function shown(value: string): string {
  const cut = [...value];
  return cut.length > SHOWN_CHARS
    ? `${JSON.stringify(cut.slice(0, SHOWN_CHARS).join(""))}...`
    : JSON.stringify(value);
}

export const DATABASE_RULE = `letters, digits and _, starting with a letter or _, at most ${MAX_DATABASE_NAME_BYTES} bytes`;

/**
 * The database of restore: a plain identifier. Nothing else can reach PostgreSQL or libpq: no "=", no spaces,
 * no quotes, no "postgresql://" URI (libpq would read those as connection settings), no ";" or other SQL.
 */
export function checkDatabaseName(value: string): string | undefined {
  const expected = `argument database must be a plain database name (${DATABASE_RULE}), got ${shown(value)}`;
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_DATABASE_NAME_BYTES) return `${expected}: ${bytes} bytes long`;
  if (IDENTIFIER.test(value)) return undefined;
  const bad = [...value].find((ch) => !/^[A-Za-z0-9_]$/.test(ch));
  if (bad !== undefined) return `${expected}: ${JSON.stringify(bad)} is not allowed`;
  return `${expected}: it starts with a digit`;
}

/** The name of verify/restore: one of our backup names, nothing else (no paths, no other files). */
export function checkBackupName(value: string): string | undefined {
  if (parseBackupName(value)) return undefined;
  return `argument name must be a backup name as list_backups shows it (backup_<database>_<YYYYMMDDTHHMMSS.mmmZ>.bak), got ${shown(value)}`;
}
