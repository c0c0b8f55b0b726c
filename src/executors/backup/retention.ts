/**
 * Retention: after a successful backup, keep the newest `keep` good backups of that database and delete the rest.
 * Unlike the original (which deleted everything, the new backup included, when FULL_BACKUPS was unset):
 * - keep = 0 keeps everything;
 * - the backup just made is always kept and counts as one of the `keep`, even if a clock skew made an older
 *   run's name sort after it;
 * - only a good backup (its metadata document is there and records the stored size) counts as kept: a visible
 *   backup that is not good (a failed run whose cleanup failed too, a file copied in) never pushes a good one
 *   out. It is kept while it is newer than the oldest backup kept, and deleted once it is older;
 * - only names of this database in our pattern are candidates (the caller lists them with parseBackupName).
 */
import { compareNewestFirst, type ParsedName } from "./names.js";

export interface RetentionPlan {
  keep: string[];
  delete: string[];
}

/** `isGood` is asked newest first and only until `keep` good backups are found. */
export async function planRetention(
  existing: readonly ParsedName[],
  keep: number,
  justMade: string,
  database: string,
  isGood: (name: string) => Promise<boolean> = async () => true,
): Promise<RetentionPlan> {
  const sorted = existing.filter((b) => b.database === database).sort(compareNewestFirst);
  if (keep <= 0) return { keep: sorted.map((b) => b.name), delete: [] };
  const plan: RetentionPlan = { keep: [], delete: [] };
  let good = 1; // the backup just made
  for (const b of sorted) {
    if (b.name === justMade) plan.keep.push(b.name);
    else if (good >= keep) plan.delete.push(b.name);
    else {
      plan.keep.push(b.name);
      if (await isGood(b.name)) good++;
    }
  }
  return plan;
}
