import { describe, expect, it } from "vitest";
import {
  backupName,
  compareNewestFirst,
  encodeDatabase,
  formatTimestamp,
  type ParsedName,
  parseBackupName,
  parseTimestamp,
} from "../../src/executors/backup/names.js";

const at = (iso: string) => new Date(iso);

describe("backup names", () => {
  it("include the database and a fixed-width UTC timestamp with milliseconds", () => {
    expect(backupName("shop", at("2025-01-15T10:30:00.123Z"))).toBe("backup_shop_20250115T103000.123Z.bak");
    expect(formatTimestamp(at("2025-01-05T01:02:03.004Z"))).toBe("20250105T010203.004Z");
  });

  it("round-trip, also for database names with underscores and odd characters", () => {
    for (const db of ["shop", "my_db_2", "Ünïcode db", "a/b", "x%y", "dots.and-dashes", "_"]) {
      const name = backupName(db, at("2024-02-29T23:59:59.999Z"));
      expect(name).toMatch(/^backup_(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+_\d{8}T\d{6}\.\d{3}Z\.bak$/);
      expect(parseBackupName(name)).toEqual({ name, database: db, time: at("2024-02-29T23:59:59.999Z") });
    }
    expect(encodeDatabase("a b/ü")).toBe("a%20b%2F%C3%BC");
  });

  it("reject anything that is not ours", () => {
    for (const name of [
      "backup_1700000000.bak", // the original's names
      "backup_shop_20250115T103000Z.bak",
      "backup_shop_20250115T103000.123Z.bak.json",
      "backup_shop_20250231T103000.123Z.bak", // 31 February
      "backup__20250115T103000.123Z.bak",
      "backup_%41_20250115T103000.123Z.bak", // non-canonical spelling of "A"
      "backup_a%2_20250115T103000.123Z.bak",
      ".backup_shop_20250115T103000.123Z.bak.partial-abc",
      "../backup_shop_20250115T103000.123Z.bak",
      "notes.txt",
    ]) {
      expect(parseBackupName(name), name).toBeUndefined();
    }
    expect(parseTimestamp("20251301T000000.000Z")).toBeUndefined();
  });

  it("sort by time: as plain strings within a database, and newest first across databases", () => {
    const times = ["2025-03-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z", "2025-03-01T00:00:00.001Z"];
    const names = times.map((t) => backupName("db", at(t)));
    expect([...names].sort()).toEqual([names[1], names[0], names[2]]);

    const mixed = [
      backupName("b", at("2025-01-02T00:00:00.000Z")),
      backupName("a", at("2025-01-03T00:00:00.000Z")),
      backupName("c", at("2025-01-01T00:00:00.000Z")),
      backupName("a_b", at("2025-01-02T00:00:00.000Z")),
    ].map((n) => parseBackupName(n) as ParsedName);
    expect(mixed.sort(compareNewestFirst).map((p) => p.database)).toEqual(["a", "b", "a_b", "c"]);
  });
});
