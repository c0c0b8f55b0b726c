/**
 * Names of unfinished writes: `.<backup name>.partial-<writer tag>[-<random>][.json]`. Hidden (a leading dot),
 * never in the backup name pattern, so nothing lists, verifies, restores or counts them for retention; the
 * backup name and the writer tag (writer.ts) in them say which backup they belong to and whose they are.
 */
import { namePrefixOf, parseBackupName } from "../names.js";
import { WRITER_TAG } from "../writer.js";

export const PARTIAL = ".partial-";

export interface PartialWrite {
  /** The backup being written. */
  name: string;
  /** Its writer's tag; undefined for a temporary file of an earlier version (no tag: `-<random>` only). */
  writer?: string;
  /** The temporary metadata document (`.json`) rather than the backup itself. */
  metadata: boolean;
}

/** `.<name>.partial-<writer>`: the common start of every temporary name of one write. */
export function partialBase(name: string, writer: string): string {
  return `.${name}${PARTIAL}${writer}`;
}

/** What every temporary name of a database's backups starts with (a listing prefix). */
export function partialPrefixOf(database: string): string {
  return `.${namePrefixOf(database)}`;
}

const TAGGED = /^([0-9a-f]+)-[0-9a-f]+(\.json)?$/;
const TAG_ONLY = /^([0-9a-f]+)(\.json)?$/;
const LEGACY = /^[0-9a-f]{12}(\.json)?$/;

/**
 * Parses a temporary name. `tagOnly`: the name has no random part (S3 markers: one per backup name), so a bare
 * hex suffix is a tag, not an earlier version's random one.
 */
export function parsePartial(entry: string, tagOnly = false): PartialWrite | undefined {
  const at = entry.lastIndexOf(PARTIAL);
  if (!entry.startsWith(".") || at < 0) return undefined;
  const name = entry.slice(1, at);
  if (!parseBackupName(name)) return undefined;
  const rest = entry.slice(at + PARTIAL.length);
  const tagged = (tagOnly ? TAG_ONLY : TAGGED).exec(rest);
  if (tagged && WRITER_TAG.test(tagged[1] as string)) {
    return { name, writer: tagged[1], metadata: tagged[2] !== undefined };
  }
  if (!tagOnly && LEGACY.test(rest)) return { name, metadata: rest.endsWith(".json") };
  return undefined;
}
