/**
 * What restore and verify accept, as the shared parser sees their declared arguments, and the restore policy
 * that runs before anything is read or connected. The database side (template flags, pg_database unchanged,
 * pg_restore never redirected) is in test/integration/backup.test.ts.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { parseArguments } from "../../src/executor/args.js";
import { type FunctionDef, type ProcessContext, ProcessError } from "../../src/executor/types.js";
import { checkBackupName, checkDatabaseName, DATABASE_RULE } from "../../src/executors/backup/checks.js";
import { type BackupConfig, parseBackupConfig } from "../../src/executors/backup/config.js";
import type { BackupDeps } from "../../src/executors/backup/dump.js";
import { backupFunctions } from "../../src/executors/backup/functions.js";
import { dbnameConninfo } from "../../src/executors/backup/pgtools.js";
import { type RestoreRequest, restoreRefusal, runRestore } from "../../src/executors/backup/restore.js";
import type { Target } from "../../src/executors/backup/targets/target.js";

const GOOD = "backup_shop_20250115T103000.123Z.bak";
const logger = pino({ level: "silent" });

/** A target and a database that fail the test if restore touches them before refusing. */
function untouchable(config: BackupConfig): BackupDeps {
  const target = new Proxy({} as Target, {
    get(_t, prop) {
      if (prop === "then") return undefined;
      throw new Error(`the target was used (${String(prop)}) before the refusal`);
    },
  });
  return {
    config: { ...config, pg: { ...config.pg, host: "192.0.2.1", port: 9, connectTimeoutMs: 1 } },
    target,
    env: {},
    logger,
    pgDumpVersion: () => Promise.reject(new Error("not used")),
  };
}

function fn(name: string): FunctionDef {
  const found = backupFunctions(untouchable(parseBackupConfig({}, "/srv"))).find((f) => f.name === name);
  if (!found) throw new Error(`no function ${name}`);
  return found;
}

function parseError(name: string, args: unknown[], kwargs: Record<string, unknown> = {}): string {
  try {
    parseArguments(fn(name), args, kwargs);
  } catch (err) {
    expect(err).toBeInstanceOf(ProcessError);
    return (err as Error).message;
  }
  throw new Error(`${name}(${JSON.stringify(args)}, ${JSON.stringify(kwargs)}) was accepted`);
}

const plainName = (got: string, why: string) =>
  `restore: argument database must be a plain database name (${DATABASE_RULE}), got ${got}: ${why}`;

describe("restore's database argument: a plain identifier, declared in the function table", () => {
  it("accepts identifiers up to 63 bytes, any case", () => {
    for (const database of ["shop_copy", "_x", "A", "Shop2", "x".repeat(63), "a1_b2"]) {
      expect(checkDatabaseName(database), database).toBeUndefined();
      expect(parseArguments(fn("restore"), [GOOD, database], {})).toEqual({ name: GOOD, database });
    }
  });

  it("refuses connection strings, URIs, SQL, long names and everything else with a specific message", () => {
    const cases: [string, string][] = [
      ["host=203.0.113.5 dbname=x", plainName('"host=203.0.113.5 dbname=x"', '"=" is not allowed')],
      ["dbname=shop", plainName('"dbname=shop"', '"=" is not allowed')],
      [
        "postgresql://postgres@203.0.113.5:5432/shop",
        plainName('"postgresql://postgres@203.0.113.5:5432/shop"', '":" is not allowed'),
      ],
      ["bad;drop database shop", plainName('"bad;drop database shop"', '";" is not allowed')],
      ["x".repeat(64), plainName(`"${"x".repeat(64)}"`, "64 bytes long")],
      ["1shop", plainName('"1shop"', "it starts with a digit")],
      ["shop copy", plainName('"shop copy"', '" " is not allowed')],
      ['sh"op', plainName('"sh\\"op"', '"\\"" is not allowed')],
      ["shop'", plainName('"shop\'"', '"\'" is not allowed')],
      ["shop-copy", plainName('"shop-copy"', '"-" is not allowed')],
      ["shop\\x", plainName('"shop\\\\x"', '"\\\\" is not allowed')],
      ["café", plainName('"café"', '"é" is not allowed')],
      ["shop\n", plainName('"shop\\n"', '"\\n" is not allowed')],
      [" shop", plainName('" shop"', '" " is not allowed')],
    ];
    for (const [database, message] of cases) {
      expect(parseError("restore", [GOOD, database]), database).toBe(message);
      expect(parseError("restore", [], { name: GOOD, database }), database).toBe(message);
    }
  });

  it("cuts very long values short in the message", () => {
    const message = parseError("restore", [GOOD, "y".repeat(5000)]);
    expect(message).toBe(plainName(`"${"y".repeat(80)}"...`, "5000 bytes long"));
  });

  it("keeps the parser's own messages for missing and blank values", () => {
    expect(parseError("restore", [GOOD])).toMatch(
      /^restore: missing argument database \(a non-empty string\)/,
    );
    expect(parseError("restore", [GOOD, " "])).toBe(
      'restore: argument database must be a non-empty string, got " "',
    );
  });
});

describe("the name of verify and restore: one of our backup names", () => {
  const expected = (fnName: string, got: string) =>
    `${fnName}: argument name must be a backup name as list_backups shows it (backup_<database>_<YYYYMMDDTHHMMSS.mmmZ>.bak), got ${got}`;

  it("accepts backup names", () => {
    expect(checkBackupName(GOOD)).toBeUndefined();
    expect(parseArguments(fn("verify"), [GOOD], {})).toEqual({ name: GOOD });
  });

  it("refuses paths, other files and non-canonical names", () => {
    for (const name of [
      "../../etc/passwd",
      "notes.txt",
      "backup_shop.bak",
      "backup_shop_20250115T103000.123Z.bak.json",
      "backup_%41_20250115T103000.123Z.bak",
      "backup_shop_20250231T103000.123Z.bak",
      "dir/backup_shop_20250115T103000.123Z.bak",
      ` ${GOOD}`,
    ]) {
      expect(parseError("verify", [name]), name).toBe(expected("verify", JSON.stringify(name)));
      expect(parseError("restore", [name, "fresh"]), name).toBe(expected("restore", JSON.stringify(name)));
    }
  });
});

describe("allow_existing: a declared bool", () => {
  it("is coerced by the parser", () => {
    expect(parseArguments(fn("restore"), [GOOD, "db"], { allow_existing: "true" }).allow_existing).toBe(true);
    expect(parseArguments(fn("restore"), [GOOD, "db"], { allow_existing: "FALSE" }).allow_existing).toBe(
      false,
    );
    expect(parseArguments(fn("restore"), [GOOD, "db"], { allow_existing: true }).allow_existing).toBe(true);
    expect(parseArguments(fn("restore"), [GOOD, "db"], {}).allow_existing).toBeUndefined();
  });

  it("anything else names the argument", () => {
    expect(parseError("restore", [GOOD, "db"], { allow_existing: "maybe" })).toBe(
      'restore: argument allow_existing must be "true" or "false", got "maybe"',
    );
  });
});

describe("dbnameConninfo: the only connection string pg_restore gets", () => {
  it("has dbname as its only keyword, whatever the name", () => {
    expect(dbnameConninfo("shop_copy")).toBe("dbname='shop_copy'");
    expect(dbnameConninfo("host=203.0.113.5 dbname=x")).toBe("dbname='host=203.0.113.5 dbname=x'");
    expect(dbnameConninfo("x' host='203.0.113.5")).toBe("dbname='x\\' host=\\'203.0.113.5'");
    expect(dbnameConninfo("a\\' host=evil")).toBe("dbname='a\\\\\\' host=evil'");
    expect(dbnameConninfo("postgresql://u@203.0.113.5/x")).toBe("dbname='postgresql://u@203.0.113.5/x'");
  });
});

describe("restore policy: refusals before anything is read or connected", () => {
  const base = parseBackupConfig({ DB_DATABASE: "shop" }, "/srv");
  const allowing = parseBackupConfig({ DB_DATABASE: "shop", BACKUP_ALLOW_RESTORE_EXISTING: "true" }, "/srv");
  const req = (database: string, allowExisting: boolean): RestoreRequest => ({
    name: GOOD,
    database,
    allowExisting,
  });
  const OFF =
    "restore: allow_existing=true is not allowed on this executor: the operator must set BACKUP_ALLOW_RESTORE_EXISTING=true to allow restoring into an existing database; restore into a new database instead";

  it("allow_existing=true needs BACKUP_ALLOW_RESTORE_EXISTING=true, for every database", () => {
    expect(base.allowRestoreExisting).toBe(false);
    for (const database of ["shop_copy", "fresh", "shop", "postgres", "template1"]) {
      expect(restoreRefusal(base, req(database, true)), database).toBe(OFF);
    }
  });

  it("even then never the backed-up database, postgres or a template", () => {
    expect(restoreRefusal(allowing, req("shop", true))).toBe(
      'restore: allow_existing=true may not target "shop": it is the database this executor backs up (DB_DATABASE); restore into a new database instead',
    );
    expect(restoreRefusal(allowing, req("postgres", true))).toBe(
      'restore: allow_existing=true may not target "postgres": it is the maintenance database',
    );
    for (const database of ["template0", "template1"]) {
      expect(restoreRefusal(allowing, req(database, true))).toBe(
        `restore: allow_existing=true may not target "${database}": it is a template database`,
      );
    }
    // Database names are case-sensitive: these are other databases (prefixed, so only the rules above apply).
    const prefixed = parseBackupConfig(
      { DB_DATABASE: "shop", BACKUP_ALLOW_RESTORE_EXISTING: "true", BACKUP_RESTORE_PREFIX: "S" },
      "/srv",
    );
    expect(restoreRefusal(prefixed, req("Shop", true))).toBeUndefined();
    expect(restoreRefusal(allowing, req("restore_shop", true))).toBeUndefined();
    expect(restoreRefusal(allowing, req("restore_constructor", true))).toBeUndefined();
    const anyCase = parseBackupConfig(
      { BACKUP_ALLOW_RESTORE_EXISTING: "true", BACKUP_RESTORE_PREFIX: "t" },
      "/",
    );
    expect(restoreRefusal(anyCase, req("toString", true))).toBeUndefined();
    expect(restoreRefusal(anyCase, req("template1", true))).toMatch(/it is a template database$/);
  });

  it("a new database needs no permission, only the prefix (existence and the count are checked on the server)", () => {
    for (const database of ["restore_shop_copy", "restore_shop", "restore_"]) {
      expect(restoreRefusal(base, req(database, false))).toBeUndefined();
    }
  });

  it("runRestore refuses without touching the target or the database", async () => {
    const ctx: ProcessContext = {
      processId: "p",
      funcName: "restore",
      signal: new AbortController().signal,
      logger,
      log: async () => {
        throw new Error("logged before the refusal");
      },
    };
    await expect(runRestore(untouchable(base), ctx, req("shop_copy", true))).rejects.toThrow(
      new ProcessError(OFF),
    );
    await expect(runRestore(untouchable(allowing), ctx, req("template1", true))).rejects.toThrow(
      /may not target "template1": it is a template database/,
    );
    await expect(runRestore(untouchable(allowing), ctx, req("shop", true))).rejects.toThrow(
      /may not target "shop": it is the database this executor backs up/,
    );
    // Without a refusal it does go to the target first (the proxy says so): the refusals above came earlier.
    await expect(runRestore(untouchable(allowing), ctx, req("restore_copy", true))).rejects.toThrow(
      /the target was used \(readMetadata\) before the refusal/,
    );
  });
});
