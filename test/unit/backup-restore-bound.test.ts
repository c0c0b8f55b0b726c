/**
 * The bound on restore (BACKUP_RESTORE_PREFIX, BACKUP_MAX_RESTORED): the refusal messages, the order in which
 * runRestore applies them (before the target is read or PostgreSQL connected), and what createBounded sends to
 * the server (lock, count, create, count, unlock; nothing created on a refusal). The real server, concurrency
 * included, is in test/integration/backup.test.ts.
 */
import type pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { type ProcessContext, ProcessError } from "../../src/executor/types.js";
import { createBounded, limitRefusal, prefixRefusal } from "../../src/executors/backup/bound.js";
import { type BackupConfig, parseBackupConfig } from "../../src/executors/backup/config.js";
import type { Session } from "../../src/executors/backup/database.js";
import type { BackupDeps } from "../../src/executors/backup/dump.js";
import { restoreRefusal, runRestore } from "../../src/executors/backup/restore.js";
import type { Target } from "../../src/executors/backup/targets/target.js";

const GOOD = "backup_shop_20250115T103000.123Z.bak";
const WHERE = "db.internal:5432";
const config = (env: NodeJS.ProcessEnv = {}) => parseBackupConfig({ DB_DATABASE: "shop", ...env }, "/srv");

describe("prefixRefusal", () => {
  it("a new database must start with the prefix; the message names the rule, the variable and an example", () => {
    const cfg = config();
    expect(prefixRefusal(cfg, "restore_shop", false)).toBeUndefined();
    expect(prefixRefusal(cfg, "restore_", false)).toBeUndefined();
    expect(prefixRefusal(cfg, "shop_copy", false)).toBe(
      'restore: database "shop_copy" must start with BACKUP_RESTORE_PREFIX (restore_): this executor creates only databases with that prefix, e.g. "restore_shop_copy"',
    );
    // Case-sensitive, like database names; "_" is a character, not a LIKE wildcard.
    expect(prefixRefusal(cfg, "Restore_shop", false)).toMatch(/^restore: database "Restore_shop" must start/);
    expect(prefixRefusal(cfg, "restoreXshop", false)).toMatch(/^restore: database "restoreXshop" must start/);
    // No example when it would be too long to be a database name.
    expect(prefixRefusal(cfg, "x".repeat(60), false)).toBe(
      `restore: database "${"x".repeat(60)}" must start with BACKUP_RESTORE_PREFIX (restore_): this executor creates only databases with that prefix`,
    );
  });

  it("allow_existing: only databases with the prefix are replaced", () => {
    const cfg = config({ BACKUP_RESTORE_PREFIX: "copy_" });
    expect(prefixRefusal(cfg, "copy_shop", true)).toBeUndefined();
    expect(prefixRefusal(cfg, "billing", true)).toBe(
      'restore: allow_existing=true may not target "billing": its name does not start with BACKUP_RESTORE_PREFIX (copy_); this executor replaces only databases with that prefix',
    );
  });
});

describe("limitRefusal", () => {
  it("room below BACKUP_MAX_RESTORED; at it, the count, the prefix, the limit and the variable", () => {
    const cfg = config();
    for (const n of [0, 1, 4]) expect(limitRefusal(cfg, n, WHERE), `${n}`).toBeUndefined();
    expect(limitRefusal(cfg, 5, WHERE)).toBe(
      "restore: 5 databases with prefix restore_ already exist on db.internal:5432, the most BACKUP_MAX_RESTORED allows (5); drop one first",
    );
    expect(limitRefusal(cfg, 7, WHERE)).toMatch(/^restore: 7 databases with prefix restore_ already exist/);
    expect(limitRefusal(config({ BACKUP_MAX_RESTORED: "1" }), 1, WHERE)).toBe(
      "restore: 1 database with prefix restore_ already exists on db.internal:5432, the most BACKUP_MAX_RESTORED allows (1); drop one first",
    );
  });

  it("BACKUP_MAX_RESTORED=0: no database is ever created", () => {
    expect(limitRefusal(config({ BACKUP_MAX_RESTORED: "0" }), 0, WHERE)).toBe(
      "restore: this executor creates no databases (BACKUP_MAX_RESTORED=0)",
    );
    expect(
      limitRefusal(config({ BACKUP_MAX_RESTORED: "0", BACKUP_ALLOW_RESTORE_EXISTING: "true" }), 0, WHERE),
    ).toBe(
      "restore: this executor creates no databases (BACKUP_MAX_RESTORED=0); restore into an existing one with allow_existing=true",
    );
  });
});

describe("restoreRefusal with the bound", () => {
  const req = (database: string, allowExisting = false) => ({ name: GOOD, database, allowExisting });
  const allowing = config({ BACKUP_ALLOW_RESTORE_EXISTING: "true" });

  it("BACKUP_MAX_RESTORED=0 comes first for a new database, then the prefix", () => {
    const none = config({ BACKUP_MAX_RESTORED: "0" });
    expect(restoreRefusal(none, req("restore_x"))).toBe(
      "restore: this executor creates no databases (BACKUP_MAX_RESTORED=0)",
    );
    expect(restoreRefusal(none, req("shop_copy"))).toMatch(/BACKUP_MAX_RESTORED=0/);
    expect(restoreRefusal(config(), req("shop_copy"))).toMatch(/must start with BACKUP_RESTORE_PREFIX/);
  });

  it("allow_existing: the existing rules keep their messages; the prefix comes after them", () => {
    expect(restoreRefusal(config(), req("billing", true))).toMatch(
      /not allowed on this executor: .*BACKUP_ALLOW_RESTORE_EXISTING=true/,
    );
    expect(restoreRefusal(allowing, req("shop", true))).toMatch(/it is the database this executor backs up/);
    expect(restoreRefusal(allowing, req("postgres", true))).toMatch(/it is the maintenance database$/);
    expect(restoreRefusal(allowing, req("billing", true))).toMatch(
      /may not target "billing": its name does not start with BACKUP_RESTORE_PREFIX \(restore_\)/,
    );
    expect(restoreRefusal(allowing, req("restore_billing", true))).toBeUndefined();
    // The backed-up database stays out of reach even when it carries the prefix.
    const prefixedSource = config({ DB_DATABASE: "restore_main", BACKUP_ALLOW_RESTORE_EXISTING: "true" });
    expect(restoreRefusal(prefixedSource, req("restore_main", true))).toMatch(/backs up \(DB_DATABASE\)/);
  });

  it("runRestore refuses before the target is read or PostgreSQL connected", async () => {
    const target = new Proxy({} as Target, {
      get(_t, prop) {
        if (prop === "then") return undefined;
        throw new Error(`the target was used (${String(prop)}) before the refusal`);
      },
    });
    const logger = pino({ level: "silent" });
    const deps = (cfg: BackupConfig): BackupDeps => ({
      config: { ...cfg, pg: { ...cfg.pg, host: "192.0.2.1", port: 9, connectTimeoutMs: 1 } },
      target,
      env: {},
      logger,
      pgDumpVersion: () => Promise.reject(new Error("not used")),
    });
    const ctx: ProcessContext = {
      processId: "p",
      funcName: "restore",
      signal: new AbortController().signal,
      logger,
      log: async () => {
        throw new Error("logged before the refusal");
      },
    };
    await expect(runRestore(deps(config()), ctx, req("shop_copy"))).rejects.toThrow(
      new ProcessError(`${prefixRefusal(config(), "shop_copy", false)}`),
    );
    await expect(
      runRestore(deps(config({ BACKUP_MAX_RESTORED: "0" })), ctx, req("restore_x")),
    ).rejects.toThrow(/creates no databases \(BACKUP_MAX_RESTORED=0\)/);
    await expect(runRestore(deps(allowing), ctx, req("billing", true))).rejects.toThrow(
      /its name does not start with BACKUP_RESTORE_PREFIX/,
    );
    await expect(runRestore(deps(config()), ctx, req("restore_x"))).rejects.toThrow(
      /the target was used \(readMetadata\)/,
    );
  });
});

describe("createBounded: what reaches the server", () => {
  /** A session whose client records statements and answers the count queries from `counts`. */
  function fakeSession(counts: number[]): { session: Session; sent: string[] } {
    const sent: string[] = [];
    const client = {
      escapeIdentifier: (s: string) => `"${s}"`,
      async query(text: string, params: unknown[] = []) {
        const statement = `${text.replace(/\s+/g, " ").slice(0, 42)} ${JSON.stringify(params)}`;
        sent.push(statement);
        if (text.includes("count(*)")) return { rows: [{ n: counts.shift() }] };
        return { rows: [] };
      },
    };
    return { session: { client: client as unknown as pg.Client, end: async () => undefined }, sent };
  }
  const LOCK = "SELECT pg_advisory_lock($1) [1668445044]";
  const UNLOCK = "SELECT pg_advisory_unlock($1) [1668445044]";
  const COUNT = 'SELECT count(*)::int AS n FROM pg_database ["restore_"]';

  it("with room: lock, count, create, count again, unlock", async () => {
    const { session, sent } = fakeSession([4, 5]);
    let created = false;
    await createBounded(session, config(), "restore_x", () => {
      created = true;
    });
    expect(created).toBe(true);
    expect(sent).toEqual([LOCK, COUNT, 'CREATE DATABASE "restore_x" []', COUNT, UNLOCK]);
  });

  it("at the limit: refused with the message, nothing created, the lock released", async () => {
    const { session, sent } = fakeSession([5]);
    let created = false;
    const cfg = { ...config(), pg: { ...config().pg, host: "db.internal" } };
    await expect(
      createBounded(session, cfg, "restore_x", () => {
        created = true;
      }),
    ).rejects.toThrow(new ProcessError(`${limitRefusal(cfg, 5, WHERE)}`));
    expect(created).toBe(false);
    expect(sent).toEqual([LOCK, COUNT, UNLOCK]);
  });

  it("passed by a restore not under this lock (another database's executor): refused after creating", async () => {
    const { session, sent } = fakeSession([4, 6]);
    let created = false;
    await expect(
      createBounded(session, config(), "restore_x", () => {
        created = true;
      }),
    ).rejects.toThrow(/restore: 5 databases with prefix restore_ already exist on .*drop one first/);
    // The caller drops what was created (runRestore does so for every failure after onCreated).
    expect(created).toBe(true);
    expect(sent).toEqual([LOCK, COUNT, 'CREATE DATABASE "restore_x" []', COUNT, UNLOCK]);
  });
});
