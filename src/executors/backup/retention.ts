/**
 * Retention: after a successful backup, keep the newest `keep` backups of that database and delete the rest.
 * Unlike the original (which deleted everything, the new backup included, when FULL_BACKUPS was unset):
 * - keep = 0 keeps everything;
 * - the backup just made is always kept and counts as one of the `keep`, even if a clock skew made an older
 *   run's name sort after it;
 * - only names of this database in our pattern are candidates (the caller lists them with parseBackupName).
 */
import { compareNewestFirst, type ParsedName } from "./names.js";

export interface RetentionPlan {
  keep: string[];
  delete: string[];
}

export function planRetention(
  existing: readonly ParsedName[],
  keep: number,
  justMade: string,
  database: string,
): RetentionPlan {
  const ours = existing.filter((b) => b.database === database);
  const sorted = [...ours].sort(compareNewestFirst);
  if (keep <= 0) return { keep: sorted.map((b) => b.name), delete: [] };
  const kept = new Set<string>([justMade]);
  for (const b of sorted) {
    if (kept.size >= keep) break;
    kept.add(b.name);
  }
  return {
    keep: sorted.filter((b) => kept.has(b.name)).map((b) => b.name),
    delete: sorted.filter((b) => !kept.has(b.name)).map((b) => b.name),
  };
}
