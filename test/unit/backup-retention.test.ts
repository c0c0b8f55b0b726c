import { describe, expect, it } from "vitest";
import { backupName, type ParsedName, parseBackupName } from "../../src/executors/backup/names.js";
import { planRetention } from "../../src/executors/backup/retention.js";

function backups(db: string, days: number[]): ParsedName[] {
  return days.map((d) => parseBackupName(backupName(db, new Date(Date.UTC(2025, 0, d)))) as ParsedName);
}

const names = (list: ParsedName[]) => list.map((b) => b.name);

describe("planRetention", () => {
  it("keep = 0 (unset) keeps everything, the new backup included", () => {
    const existing = backups("db", [1, 2, 3]);
    expect(planRetention(existing, 0, names(existing)[2] as string, "db")).toEqual({
      keep: names(existing).reverse(),
      delete: [],
    });
  });

  it("with 0 existing backups besides the new one nothing is deleted", () => {
    const [fresh] = backups("db", [10]);
    expect(planRetention([fresh as ParsedName], 3, fresh?.name as string, "db")).toEqual({
      keep: [fresh?.name],
      delete: [],
    });
    // Even if the listing does not show the new one yet, it is never a candidate.
    expect(planRetention([], 1, fresh?.name as string, "db")).toEqual({ keep: [], delete: [] });
  });

  it("with 1 existing backup and keep 1, the old one goes and the new one stays", () => {
    const all = backups("db", [1, 2]);
    expect(planRetention(all, 1, all[1]?.name as string, "db")).toEqual({
      keep: [all[1]?.name],
      delete: [all[0]?.name],
    });
  });

  it("with 5 existing backups and keep 3, the newest two old ones stay besides the new one", () => {
    const all = backups("db", [1, 2, 3, 4, 5, 6]);
    const plan = planRetention(all, 3, all[5]?.name as string, "db");
    expect(plan.keep).toEqual(names(all).slice(3).reverse());
    expect(plan.delete).toEqual(names(all).slice(0, 3).reverse());
  });

  it("never deletes the backup just made, even when a skewed clock made another one look newer", () => {
    const all = backups("db", [1, 2, 9]); // day 9 came from an executor whose clock runs ahead
    const justMade = backups("db", [5])[0] as ParsedName;
    const plan = planRetention([...all, justMade], 1, justMade.name, "db");
    expect(plan.keep).toEqual([justMade.name]);
    expect(plan.delete).toEqual([all[2]?.name, all[1]?.name, all[0]?.name]);
    const two = planRetention([...all, justMade], 2, justMade.name, "db");
    expect(two.keep).toEqual([all[2]?.name, justMade.name]);
  });

  it("only considers backups of the same database", () => {
    const mine = backups("db", [1, 2, 3]);
    const theirs = backups("other", [1, 2, 3, 4]);
    const prefixLookalike = backups("db_x", [1]);
    const plan = planRetention([...mine, ...theirs, ...prefixLookalike], 1, mine[2]?.name as string, "db");
    expect(plan.delete).toEqual([mine[1]?.name, mine[0]?.name]);
  });
});
