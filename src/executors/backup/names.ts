/**
 * Backup names: `backup_<database>_<UTC timestamp>.bak`, e.g. `backup_shop_20250115T103000.123Z.bak`.
 * The timestamp has a fixed width, so names of one database sort by time as plain strings, and the name is
 * parsed from the right, so a database name may itself contain underscores. Characters other than
 * `[A-Za-z0-9_.-]` in the database name are percent-encoded (UTF-8), which keeps names safe as file names
 * and S3 keys. The metadata of a backup is stored beside it as `<name>.json`.
 *
 * Only names matching this pattern are ever listed, verified, restored or deleted: everything else in the
 * directory or under the prefix belongs to someone else.
 */
export const NAME_PREFIX = "backup_";
export const NAME_SUFFIX = ".bak";
export const METADATA_SUFFIX = ".json";

const TIMESTAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/;
const NAME = /^backup_(.+)_(\d{8}T\d{6}\.\d{3}Z)\.bak$/;
const SAFE = /^[A-Za-z0-9_.-]$/;

export interface ParsedName {
  name: string;
  database: string;
  time: Date;
}

export function encodeDatabase(database: string): string {
  let out = "";
  for (const ch of database) {
    if (SAFE.test(ch)) out += ch;
    else
      for (const byte of Buffer.from(ch, "utf8"))
        out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function decodeDatabase(encoded: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+$/.test(encoded)) return undefined;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
}

/** `20250115T103000.123Z` */
export function formatTimestamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/^(\d{8}T\d{6})\.(\d{3})Z$/, "$1.$2Z");
}

export function parseTimestamp(text: string): Date | undefined {
  const m = TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number) as number[];
  const time = new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s, ms));
  // Reject impossible dates (Date.UTC would roll 20250231 over into March).
  return formatTimestamp(time) === text ? time : undefined;
}

/** The part of the names of one database that precedes the timestamp; used as a listing prefix. */
export function namePrefixOf(database: string): string {
  return `${NAME_PREFIX}${encodeDatabase(database)}_`;
}

export function backupName(database: string, at: Date): string {
  return `${namePrefixOf(database)}${formatTimestamp(at)}${NAME_SUFFIX}`;
}

export function parseBackupName(name: string): ParsedName | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const database = decodeDatabase(m[1] as string);
  const time = parseTimestamp(m[2] as string);
  if (database === undefined || time === undefined) return undefined;
  // Only the canonical spelling is ours (e.g. not "%41" for "A").
  if (encodeDatabase(database) !== m[1]) return undefined;
  return { name, database, time };
}

export function metadataNameOf(name: string): string {
  return `${name}${METADATA_SUFFIX}`;
}

/** Newest first; the same instant falls back to the name, so the order is total and stable. */
export function compareNewestFirst(a: ParsedName, b: ParsedName): number {
  return b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}
