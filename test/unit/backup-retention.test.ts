import { describe, expect, it } from "vitest";
import { backupName, type ParsedName, parseBackupName } from "../../src/executors/backup/names.js";
import { planRetention } from "../../src/executors/backup/retention.js";

function backups(db: string, days: number[]): ParsedName[] {
  return days.map((d) => parseBackupName(backupName(db, new Date(Date.UTC(2025, 0, d)))) as ParsedName);
}

const names = (list: ParsedName[]) => list.map((b) => b.name);

describe("planRetention", () => {
  it("keep = 0 (unset) keeps everything, the new backup included", async () => {
    const existing = backups("db", [1, 2, 3]);
    expect(await planRetention(existing, 0, names(existing)[2] as string, "db")).toEqual({
      keep: names(existing).reverse(),
      delete: [],
    });
  });

  it("with 0 existing backups besides the new one nothing is deleted", async () => {
    const [fresh] = backups("db", [10]);
    expect(await planRetention([fresh as ParsedName], 3, fresh?.name as string, "db")).toEqual({
      keep: [fresh?.name],
      delete: [],
    });
    // Even if the listing does not show the new one yet, it is never a candidate.
    expect(await planRetention([], 1, fresh?.name as string, "db")).toEqual({ keep: [], delete: [] });
  });

  it("with 1 existing backup and keep 1, the old one goes and the new one stays", async () => {
    const all = backups("db", [1, 2]);
    expect(await planRetention(all, 1, all[1]?.name as string, "db")).toEqual({
      keep: [all[1]?.name],
      delete: [all[0]?.name],
    });
  });

  it("with 5 existing backups and keep 3, the newest two old ones stay besides the new one", async () => {
    const all = backups("db", [1, 2, 3, 4, 5, 6]);
    const plan = await planRetention(all, 3, all[5]?.name as string, "db");
    expect(plan.keep).toEqual(names(all).slice(3).reverse());
    expect(plan.delete).toEqual(names(all).slice(0, 3).reverse());
  });

  it("never deletes the backup just made, even when a skewed clock made another one look newer", async () => {
    const all = backups("db", [1, 2, 9]); // day 9 came from an executor whose clock runs ahead
    const justMade = backups("db", [5])[0] as ParsedName;
    const plan = await planRetention([...all, justMade], 1, justMade.name, "db");
    expect(plan.keep).toEqual([justMade.name]);
    expect(plan.delete).toEqual([all[2]?.name, all[1]?.name, all[0]?.name]);
    const two = await planRetention([...all, justMade], 2, justMade.name, "db");
    expect(two.keep).toEqual([all[2]?.name, justMade.name]);
  });

  it("only considers backups of the same database", async () => {
    const mine = backups("db", [1, 2, 3]);
    const theirs = backups("other", [1, 2, 3, 4]);
    const prefixLookalike = backups("db_x", [1]);
    const plan = await planRetention(
      [...mine, ...theirs, ...prefixLookalike],
      1,
      mine[2]?.name as string,
      "db",
    );
    expect(plan.delete).toEqual([mine[1]?.name, mine[0]?.name]);
  });

  it("a backup that is not good never counts: it cannot push a good one out", async () => {
    const all = backups("db", [1, 2, 3, 4, 5]);
    const [oldest, older, good, bad, justMade] = names(all) as [string, string, string, string, string];
    const asked: string[] = [];
    const isGood = async (name: string) => {
      asked.push(name);
      return name !== bad;
    };
    const plan = await planRetention(all, 2, justMade, "db", isGood);
    // Kept: the new one and the newest good one; the failed one newer than that stays too (not counted).
    expect(plan.keep).toEqual([justMade, bad, good]);
    expect(plan.delete).toEqual([older, oldest]);
    expect(asked).toEqual([bad, good]); // newest first, and no further than needed
  });

  it("when no other backup is good, only the new one counts and nothing else is deleted", async () => {
    const all = backups("db", [1, 2, 3]);
    const plan = await planRetention(all, 2, names(all)[2] as string, "db", async () => false);
    expect(plan.delete).toEqual([]);
    expect(plan.keep).toEqual(names(all).reverse());
  });

  it("a bad backup older than the kept good ones is deleted like any other", async () => {
    const all = backups("db", [1, 2, 3]);
    const [bad, good, justMade] = names(all) as [string, string, string];
    const plan = await planRetention(all, 2, justMade, "db", async (name) => name !== bad);
    expect(plan).toEqual({ keep: [justMade, good], delete: [bad] });
  });
});
