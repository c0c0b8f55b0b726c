/** Writer tags (whose leftovers a backup may remove) and the temporary names that carry them. */
import { describe, expect, it } from "vitest";
import { backupName } from "../../src/executors/backup/names.js";
import { parsePartial, partialBase, partialPrefixOf } from "../../src/executors/backup/targets/partial.js";
import { WRITER_TAG, writerTag } from "../../src/executors/backup/writer.js";

const shop = { host: "db.internal", port: 5432, database: "shop" };
const name = backupName("shop", new Date(Date.UTC(2025, 0, 15, 10, 30)));

describe("writerTag", () => {
  it("is stable for one server, address and database, and differs when any of them differs", () => {
    const tag = writerTag("7316871826513467261", shop);
    expect(tag).toMatch(WRITER_TAG);
    expect(writerTag("7316871826513467261", { ...shop })).toBe(tag);
    const others = [
      writerTag("7316871826513467262", shop), // another cluster behind the same address
      writerTag("7316871826513467261", { ...shop, port: 5433 }), // e.g. its standby
      writerTag("7316871826513467261", { ...shop, host: "db2.internal" }),
      writerTag("7316871826513467261", { ...shop, database: "shop2" }),
      writerTag("", shop), // the server did not tell its identifier
    ];
    expect(new Set([tag, ...others]).size).toBe(others.length + 1);
  });

  it("cannot be forged by moving characters between fields", () => {
    expect(writerTag("1", { host: "a:1", port: 2, database: "d" })).not.toBe(
      writerTag("1", { host: "a", port: 2, database: "1:d" }),
    );
  });
});

describe("parsePartial", () => {
  const tag = "0123456789ab";

  it("reads the backup name, the writer and whether it is the metadata document", () => {
    const base = partialBase(name, tag);
    expect(base.startsWith(partialPrefixOf("shop"))).toBe(true);
    expect(parsePartial(`${base}-a1b2c3d4e5f6`)).toEqual({ name, writer: tag, metadata: false });
    expect(parsePartial(`${base}-a1b2c3d4e5f6.json`)).toEqual({ name, writer: tag, metadata: true });
    expect(parsePartial(base, true)).toEqual({ name, writer: tag, metadata: false });
  });

  it("takes a bare random suffix as an earlier version's untagged file, except for markers", () => {
    expect(parsePartial(`.${name}.partial-a1b2c3d4e5f6`)).toEqual({ name, metadata: false });
    expect(parsePartial(`.${name}.partial-a1b2c3d4e5f6.json`)).toEqual({ name, metadata: true });
    expect(parsePartial(`.${name}.partial-a1b2c3d4e5f6`, true)).toEqual({
      name,
      writer: "a1b2c3d4e5f6",
      metadata: false,
    });
  });

  it("refuses everything else", () => {
    for (const entry of [
      name,
      `${name}.partial-${tag}-a1b2c3`, // not hidden
      `.${name}.partial-`,
      `.${name}.partial-XYZ`,
      `.${name}.partial-${tag}-a1b2c3-extra`,
      `.${name}.partial-0123-a1b2c3`, // a tag of the wrong length
      `.backup_shop.bak.partial-${tag}-a1b2c3`, // not a backup name
      `.probe.partial-a1b2c3d4e5f6`,
    ]) {
      expect(parsePartial(entry), entry).toBeUndefined();
    }
    expect(parsePartial(`${partialBase(name, tag)}-a1b2c3`, true)).toBeUndefined();
  });
});
