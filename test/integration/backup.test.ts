/**
 * The backup executor against a real PostgreSQL server (Debian packages) and a real S3-compatible server
 * (MinIO built from its Go module). Most tests call the functions in-process (arguments through the shared
 * parser, then the handler, with a test ProcessContext); the restore attack table goes through a real Colonies
 * server, the way a colony user would call it. Every failure case checks the message, that nothing partial is
 * left behind and that the newest good backup survives.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, submit, waitDone } from "../../peers/executor.js";
import { type MinioServer, minioClient, startMinio, stopMinio } from "../../peers/minio.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { type Process, ProcessState } from "../../src/colonies/types.js";
import { parseArguments } from "../../src/executor/args.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import type { ExecutorInstance, ProcessContext } from "../../src/executor/types.js";
import { DATABASE_RULE } from "../../src/executors/backup/checks.js";
import type { BackupOutput } from "../../src/executors/backup/dump.js";
import type { ListedBackup } from "../../src/executors/backup/functions.js";
import { dbnameConninfo, startTool, toolEnv } from "../../src/executors/backup/pgtools.js";
import type { RestoreOutput } from "../../src/executors/backup/restore.js";
import type { VerifyOutput } from "../../src/executors/backup/verify.js";
import { backupExecutor } from "../../src/executors/backup.js";

let server: Postgres;
let minio: MinioServer;
let s3: S3Client;
let work: string;
const BUCKET = "backups";
const mounts: string[] = [];
/** Every line any executor logged, to check that no secret ever appears. */
const logged: string[] = [];
const logger = pino({ level: "debug" }, { write: (line: string) => void logged.push(line) });

function sql(database: string, text: string, srv: Postgres = server): Promise<pg.QueryResult> {
  return query(srv, database, text);
}

/** A small database with the kinds of things a dump must carry: schemas, FKs, arrays, jsonb, bytea, NULLs. */
async function createShop(database: string, srv: Postgres = server): Promise<void> {
  await sql("postgres", `CREATE DATABASE ${database}`, srv);
  await sql(
    database,
    `CREATE SCHEMA sales;
     CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz);
     CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
       amount numeric(12,2), note text, tags text[], payload jsonb, blob bytea);
     CREATE TABLE empty_table (id int);
     CREATE INDEX ON sales.orders (customer_id);
     CREATE VIEW big_spenders AS SELECT customer_id, sum(amount) FROM sales.orders GROUP BY 1;
     INSERT INTO customers (name, email, created)
       SELECT 'customer ' || i, 'c' || i || '@example.org', timestamptz '2024-01-01' + i * interval '1 hour'
       FROM generate_series(1, 2000) i;
     INSERT INTO sales.orders (customer_id, amount, note, tags, payload, blob)
       SELECT 1 + i % 2000, (i * 7 % 100000) / 100.0, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || md5(i::text) END,
         ARRAY['t' || i % 5, 'u' || i % 7], jsonb_build_object('i', i, 'sq', i * i), decode(md5(i::text), 'hex')
       FROM generate_series(1, 20000) i;`,
    srv,
  );
}

/** Rows that take pg_dump a few seconds: for progress, cancellation and killing the server mid-dump. */
async function createBig(database: string, rows: number, srv: Postgres = server): Promise<void> {
  await sql("postgres", `CREATE DATABASE ${database}`, srv);
  await sql(
    database,
    `CREATE TABLE big AS SELECT i AS id, md5(i::text) || md5((i * 31)::text) || md5((i * 17)::text) AS payload
     FROM generate_series(1, ${rows}) i`,
    srv,
  );
}

/** Per table: row count and an md5 over all rows in a stable order. */
async function tableChecksums(database: string): Promise<Record<string, { rows: number; md5: string }>> {
  const tables = await sql(
    database,
    `SELECT format('%I.%I', table_schema, table_name) AS t FROM information_schema.tables
     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, { rows: number; md5: string }> = {};
  for (const { t } of tables.rows as { t: string }[]) {
    const res = await sql(
      database,
      `SELECT count(*)::int AS rows, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS md5 FROM ${t} x`,
    );
    out[t] = res.rows[0] as { rows: number; md5: string };
  }
  return out;
}

function pgEnv(database: string, srv: Postgres = server): Record<string, string> {
  return {
    DB_HOST: srv.host,
    DB_PORT: String(srv.port),
    DB_DATABASE: database,
    DB_USER: srv.user,
    DB_PASSWORD: srv.password,
    BACKUP_PG_BINDIR: srv.bindir,
  };
}

function s3Env(prefix: string, bucket = BUCKET): Record<string, string> {
  return {
    BACKUP_TARGET: "s3",
    AWS_S3_ENDPOINT: minio.endpoint.replace("http://", ""),
    AWS_S3_SECURE: "false",
    AWS_S3_REGION: minio.region,
    AWS_S3_ACCESS_KEY: minio.accessKey,
    AWS_S3_SECRET_ACCESS_KEY: minio.secretKey,
    AWS_S3_BUCKET_NAME: bucket,
    AWS_S3_PREFIX: prefix,
  };
}

interface TestContext extends ProcessContext {
  lines: string[];
  controller: AbortController;
}

function context(funcName: string, onLog?: (line: string) => void): TestContext {
  const controller = new AbortController();
  const lines: string[] = [];
  return {
    processId: randomBytes(8).toString("hex"),
    funcName,
    signal: controller.signal,
    logger: logger.child({ process: funcName }),
    lines,
    controller,
    async log(message: string) {
      lines.push(message);
      onLog?.(message);
    },
  };
}

class Executor {
  constructor(readonly instance: ExecutorInstance) {}

  /** Calls a function the way the runtime does: arguments (by name) through the shared parser, then the handler. */
  async call<T>(
    name: string,
    kwargs: Record<string, unknown> = {},
    ctx: TestContext = context(name),
  ): Promise<T> {
    const fn = this.instance.functions.find((f) => f.name === name);
    if (!fn) throw new Error(`no function ${name}`);
    const out = await fn.handler(parseArguments(fn, [], kwargs), ctx);
    expect(out).toHaveLength(1);
    return out[0] as T;
  }

  backup(ctx?: TestContext): Promise<BackupOutput> {
    return this.call<BackupOutput>("backup", {}, ctx);
  }
}

const executors: ExecutorInstance[] = [];
async function executor(env: Record<string, string>): Promise<Executor> {
  const instance = await backupExecutor.create(env, logger);
  executors.push(instance);
  return new Executor(instance);
}

async function tempDir(name: string): Promise<string> {
  const dir = path.join(work, `${name}-${randomBytes(3).toString("hex")}`);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

async function s3Keys(prefix: string): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key as string).sort();
}

async function s3Uploads(prefix: string): Promise<string[]> {
  const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Uploads ?? []).map((u) => u.Key as string);
}

function expectNoSecrets(...texts: string[]): void {
  for (const text of [...texts, ...logged]) {
    expect(text).not.toContain(server.password);
    if (minio) expect(text).not.toContain(minio.secretKey);
  }
}

/** Waits until a dump has produced bytes (a progress line), then calls `act`. */
function whenDumping(act: () => void): (line: string) => void {
  let done = false;
  return (line) => {
    if (!done && / so far /.test(line) && !/^backup \S+: 0 B/.test(line)) {
      done = true;
      act();
    }
  };
}

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "colonyos-backup-test-"));
  server = await startPostgres();
  minio = await startMinio();
  s3 = minioClient(minio);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await createShop("shop");
  await createBig("bigdb", 1_500_000);
});

afterAll(async () => {
  for (const instance of executors) await instance.close?.();
  for (const mount of mounts.reverse()) {
    try {
      execFileSync("umount", [mount]);
    } catch {
      // already gone
    }
  }
  s3?.destroy();
  if (minio) await stopMinio(minio);
  await server?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe("backup to a directory", () => {
  it("round trip: backup → list → verify → restore, data equal table by table", async () => {
    const dir = await tempDir("dir");
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    const ctx = context("backup");
    const out = await ex.backup(ctx);

    expect(out.target).toBe("dir");
    expect(out.database).toBe("shop");
    expect(out.name).toMatch(/^backup_shop_\d{8}T\d{6}\.\d{3}Z\.bak$/);
    expect(out.filename).toBe(out.name);
    expect(out.path).toBe(path.join(dir, out.name));
    expect(out.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(out.serverVersion).toMatch(/^\d+\.\d+/);
    expect(out.retention).toEqual({ keep: 0, deleted: [] });
    const st = await fs.stat(path.join(dir, out.name));
    expect(st.size).toBe(out.size);
    expect((await fs.readdir(dir)).sort()).toEqual([out.name, `${out.name}.json`]);
    const meta = JSON.parse(await fs.readFile(path.join(dir, `${out.name}.json`), "utf8"));
    expect(meta).toMatchObject({ name: out.name, database: "shop", size: out.size, sha256: out.sha256 });
    expect(meta.start <= meta.end).toBe(true);

    const listed = await ex.call<ListedBackup[]>("list_backups");
    expect(listed).toEqual([expect.objectContaining({ name: out.name, database: "shop", size: out.size })]);

    const verified = await ex.call<VerifyOutput>("verify", { name: out.name });
    expect(verified).toMatchObject({ ok: true, name: out.name, size: out.size, sha256: out.sha256 });
    expect(verified.entries).toBeGreaterThan(5);

    const restored = await ex.call<RestoreOutput>("restore", {
      name: out.name,
      database: "restore_shop_dir",
    });
    expect(restored).toMatchObject({ name: out.name, database: "restore_shop_dir", created: true });
    const source = await tableChecksums("shop");
    expect(Object.keys(source)).toEqual(["public.customers", "public.empty_table", "sales.orders"]);
    expect(source["sales.orders"]?.rows).toBe(20000);
    expect(await tableChecksums("restore_shop_dir")).toEqual(source);
    const view = await sql("restore_shop_dir", "SELECT count(*)::int AS n FROM big_spenders");
    expect(view.rows[0].n).toBe(2000);

    // Restoring over an existing database needs the operator's BACKUP_ALLOW_RESTORE_EXISTING=true and the
    // explicit kwarg; with both the data is replaced.
    await expect(ex.call("restore", { name: out.name, database: "restore_shop_dir" })).rejects.toThrow(
      /database "restore_shop_dir" already exists.*\(choose a new name\)/,
    );
    await expect(
      ex.call("restore", { name: out.name, database: "restore_shop_dir", allow_existing: true }),
    ).rejects.toThrow(
      /allow_existing=true is not allowed on this executor: .*BACKUP_ALLOW_RESTORE_EXISTING=true/,
    );
    const allowing = await executor({
      ...pgEnv("shop"),
      BACKUP_DIR: dir,
      BACKUP_ALLOW_RESTORE_EXISTING: "true",
    });
    await expect(allowing.call("restore", { name: out.name, database: "restore_shop_dir" })).rejects.toThrow(
      /database "restore_shop_dir" already exists.*pass allow_existing=true to restore into it/,
    );
    await sql("restore_shop_dir", "DELETE FROM sales.orders WHERE id > 100");
    const again = await allowing.call<RestoreOutput>("restore", {
      name: out.name,
      database: "restore_shop_dir",
      allow_existing: true,
    });
    expect(again.created).toBe(false);
    expect(await tableChecksums("restore_shop_dir")).toEqual(source);
    expectNoSecrets(JSON.stringify(out), ...ctx.lines);
    await sql("postgres", "DROP DATABASE restore_shop_dir");
  });

  it("reports progress to the process log during a long dump; the password is in no argv", async () => {
    const dir = await tempDir("progress");
    const ex = await executor({ ...pgEnv("bigdb"), BACKUP_DIR: dir, BACKUP_PROGRESS_INTERVAL_MS: "200" });
    const seen: { argv: string; hasEnvPassword: boolean }[] = [];
    const ctx = context(
      "backup",
      whenDumping(() => {
        // While pg_dump runs: its command line (visible to every user via ps) must not hold the password.
        for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
          try {
            const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
            if (!argv.includes("pg_dump")) continue;
            const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
            seen.push({ argv, hasEnvPassword: environ.includes(`PGPASSWORD=${server.password}`) });
          } catch {
            // the process went away
          }
        }
      }),
    );
    const out = await ex.backup(ctx);
    const progress = ctx.lines.filter((l) => l.includes(" so far "));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatch(new RegExp(`^backup ${out.name.replace(/\./g, "\\.")}: [\\d.]+ \\w+ so far`));
    expect(seen).toEqual([
      { argv: expect.stringMatching(/pg_dump --format=custom --no-password/), hasEnvPassword: true },
    ]);
    expect(seen[0]?.argv).not.toContain(server.password);
    expect((await ex.call<VerifyOutput>("verify", { name: out.name })).ok).toBe(true);
  });

  it("cancellation stops pg_dump and removes the partial file; the previous backup survives", async () => {
    const dir = await tempDir("cancel");
    const ex = await executor({ ...pgEnv("bigdb"), BACKUP_DIR: dir, BACKUP_PROGRESS_INTERVAL_MS: "100" });
    const good = await ex.backup();
    const ctx = context(
      "backup",
      whenDumping(() => ctx.controller.abort(new Error("WORKER_SHUTDOWN"))),
    );
    await expect(ex.backup(ctx)).rejects.toThrow(/backup backup_bigdb_\S+ cancelled \(WORKER_SHUTDOWN\)/);
    expect((await fs.readdir(dir)).sort()).toEqual([good.name, `${good.name}.json`]);
    // pg_dump was killed: its server session ends shortly after, not necessarily before this line.
    await waitFor(
      "no pg_dump session left",
      async () => {
        const sessions = await sql(
          "postgres",
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'colonyos-backup'",
        );
        return sessions.rows[0].n === 0;
      },
      30_000,
    );
  });

  it("wrong password: a specific message, nothing written, the good backup survives", async () => {
    const dir = await tempDir("password");
    const good = await (await executor({ ...pgEnv("shop"), BACKUP_DIR: dir })).backup();
    const ex = await executor({ ...pgEnv("shop"), DB_PASSWORD: "not-the-password", BACKUP_DIR: dir });
    const err = await ex.backup().catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(
      /PostgreSQL at 127\.0\.0\.1:\d+ rejected user "postgres".*password authentication failed/,
    );
    expect((err as Error).message).not.toContain("not-the-password");
    expect((await fs.readdir(dir)).sort()).toEqual([good.name, `${good.name}.json`]);
    expect(logged.join("\n")).not.toContain("not-the-password");
  });

  it("an unwritable target directory fails with the directory and the reason", async () => {
    const dir = await tempDir("readonly");
    const good = await (await executor({ ...pgEnv("shop"), BACKUP_DIR: dir })).backup();
    if (process.getuid?.() === 0) {
      // root ignores permission bits: make the directory a read-only mount of itself.
      execFileSync("mount", ["--bind", dir, dir]);
      mounts.push(dir);
      execFileSync("mount", ["-o", "remount,bind,ro", dir]);
    } else {
      await fs.chmod(dir, 0o555);
    }
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    await expect(ex.backup()).rejects.toThrow(
      new RegExp(
        `backup directory ${dir}: cannot create a backup file: (read-only file system|permission denied)`,
      ),
    );
    expect((await fs.readdir(dir)).sort()).toEqual([good.name, `${good.name}.json`]);
    expect((await ex.call<VerifyOutput>("verify", { name: good.name })).ok).toBe(true);
  });

  it("a full target directory fails with ENOSPC, the partial file is removed, the good backup survives", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test mounts a small tmpfs: run the suite as root");
    const dir = await tempDir("full");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", dir]);
    mounts.push(dir);
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    const good = await ex.backup();
    // Shrink the file system to what it holds now plus a little: the next dump cannot fit.
    execFileSync("mount", ["-o", `remount,size=${good.size + 256 * 1024}`, dir]);
    await expect(ex.backup()).rejects.toThrow(
      new RegExp(`backup directory ${dir}: cannot write backup backup_shop_\\S+: no space left on device`),
    );
    expect((await fs.readdir(dir)).sort()).toEqual([good.name, `${good.name}.json`]);
    expect((await ex.call<VerifyOutput>("verify", { name: good.name })).ok).toBe(true);
  });

  it("two backups of one database at once: one runs, the other is refused, nothing partial", async () => {
    const dir = await tempDir("concurrent");
    const ex = await executor({ ...pgEnv("bigdb"), BACKUP_DIR: dir });
    const results = await Promise.allSettled([ex.backup(), ex.backup()]);
    const ok = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<BackupOutput>[];
    const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(String(failed[0]?.reason.message)).toMatch(
      /another backup of database "bigdb" on .* is already running/,
    );
    const name = ok[0]?.value.name as string;
    expect((await fs.readdir(dir)).sort()).toEqual([name, `${name}.json`]);
  });

  it("a damaged backup fails verify and restore, and restore leaves no database behind", async () => {
    const dir = await tempDir("damaged");
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    const out = await ex.backup();
    const file = path.join(dir, out.name);
    const bytes = await fs.readFile(file);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] as number) ^ 0xff;
    await fs.writeFile(file, bytes);
    await expect(ex.call("verify", { name: out.name })).rejects.toThrow(
      new RegExp(
        `verify: backup ${out.name.replace(/\./g, "\\.")} is damaged: ${out.size} bytes with sha256 [0-9a-f]{64}, the metadata records`,
      ),
    );
    await expect(ex.call("restore", { name: out.name, database: "restore_damaged" })).rejects.toThrow(
      /restore: backup \S+ is damaged \(.* has sha256 [0-9a-f]{64}, the metadata records [0-9a-f]{64}\); nothing was restored/,
    );
    const exists = await sql("postgres", "SELECT 1 FROM pg_database WHERE datname = 'restore_damaged'");
    expect(exists.rowCount).toBe(0);
  });

  it("bad arguments get specific messages and change nothing", async () => {
    const dir = await tempDir("args");
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    const good = await ex.backup();
    await fs.writeFile(path.join(dir, "notes.txt"), "not a backup");
    await expect(ex.call("verify", { name: "../../etc/passwd" })).rejects.toThrow(
      'verify: argument name must be a backup name as list_backups shows it (backup_<database>_<YYYYMMDDTHHMMSS.mmmZ>.bak), got "../../etc/passwd"',
    );
    await expect(ex.call("verify", { name: "notes.txt" })).rejects.toThrow(
      /verify: argument name must be a backup name .*, got "notes\.txt"/,
    );
    await expect(ex.call("verify", {})).rejects.toThrow(/verify: missing argument name/);
    await expect(ex.call("verify", { name: "backup_shop_20200101T000000.000Z.bak" })).rejects.toThrow(
      `verify: backup backup_shop_20200101T000000.000Z.bak not found in directory ${dir}`,
    );
    await expect(ex.call("restore", { name: good.name })).rejects.toThrow(
      /restore: missing argument database/,
    );
    await expect(ex.call("restore", { name: good.name, database: "x".repeat(64) })).rejects.toThrow(
      /restore: argument database must be a plain database name .*: 64 bytes long/,
    );
    await expect(ex.call("restore", { name: good.name, database: "shop" })).rejects.toThrow(
      'restore: database "shop" must start with BACKUP_RESTORE_PREFIX (restore_)',
    );
    await expect(
      ex.call("restore", { name: good.name, database: "fresh_db", allow_existing: "maybe" }),
    ).rejects.toThrow('restore: argument allow_existing must be "true" or "false", got "maybe"');
    await fs.rm(path.join(dir, `${good.name}.json`));
    await expect(ex.call("verify", { name: good.name })).rejects.toThrow(/has no metadata document/);
    expect((await sql("postgres", "SELECT 1 FROM pg_database WHERE datname = 'fresh_db'")).rowCount).toBe(0);
    expect((await fs.readdir(dir)).sort()).toEqual([good.name, "notes.txt"]);
  });

  it("bad configuration is refused at start-up with the variable named", async () => {
    await expect(backupExecutor.create({ BACKUP_TARGET: "ftp" }, logger)).rejects.toThrow(
      "invalid backup executor configuration:\n  - BACKUP_TARGET must be one of dir, s3",
    );
    await expect(backupExecutor.create({ FULL_BACKUPS: "-1" }, logger)).rejects.toThrow(
      /FULL_BACKUPS must be a whole number/,
    );
    await expect(backupExecutor.create({ BACKUP_TARGET: "s3" }, logger)).rejects.toThrow(
      /AWS_S3_BUCKET_NAME is required/,
    );
    await expect(
      backupExecutor.create({ BACKUP_RESTORE_PREFIX: "copy-", BACKUP_MAX_RESTORED: "-1" }, logger),
    ).rejects.toThrow(
      "invalid backup executor configuration:\n  - BACKUP_RESTORE_PREFIX must be letters, digits and _, starting with a letter or _\n  - BACKUP_MAX_RESTORED must be a whole number",
    );
  });
});

describe("retention", () => {
  for (const existing of [0, 1, 5]) {
    it(`keeps the newest 3 with ${existing} existing backups, never the new one, and only ours`, async () => {
      const dir = await tempDir(`retention-${existing}`);
      const plain = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
      const made: string[] = [];
      for (let i = 0; i < existing; i++) made.push((await plain.backup()).name);
      // Things retention must never touch: another database's backup, foreign files.
      const foreign = ["backup_other_20200101T000000.000Z.bak", "backup_shop.bak", "notes.txt"];
      for (const f of foreign) await fs.writeFile(path.join(dir, f), "x");

      const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir, BACKUP_KEEP: "3" });
      const out = await ex.backup();
      const expectedKept = [out.name, ...made.slice(-2).reverse()].slice(0, 3);
      const expectedDeleted = made.slice(0, Math.max(0, made.length - 2)).reverse();
      expect(out.retention).toEqual({ keep: 3, deleted: expectedDeleted });
      const listed = await ex.call<ListedBackup[]>("list_backups", { database: "shop" });
      expect(listed.map((b) => b.name)).toEqual(expectedKept);
      const files = await fs.readdir(dir);
      for (const f of foreign) expect(files).toContain(f);
      for (const d of expectedDeleted) expect(files).not.toContain(`${d}.json`);
      expect(files).toHaveLength(foreign.length + 2 * expectedKept.length);
    });
  }

  it("FULL_BACKUPS=1 keeps only the new backup; unset keeps everything", async () => {
    const dir = await tempDir("retention-one");
    const all = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir });
    await all.backup();
    await all.backup();
    expect(await all.call<ListedBackup[]>("list_backups")).toHaveLength(2);
    const one = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir, FULL_BACKUPS: "1" });
    const out = await one.backup();
    expect(out.retention.deleted).toHaveLength(2);
    expect((await one.call<ListedBackup[]>("list_backups")).map((b) => b.name)).toEqual([out.name]);
  });
});

describe("backup to S3 (MinIO)", () => {
  it("round trip: multipart upload → list → verify → restore, data equal table by table", async () => {
    // Small parts so that even this dump is a real multipart upload with several parts.
    const ex = await executor({ ...pgEnv("bigdb"), ...s3Env("rt/"), AWS_S3_PART_SIZE_MB: "5" });
    const ctx = context("backup");
    const out = await ex.backup(ctx);
    expect(out).toMatchObject({ target: "s3", bucket: BUCKET, database: "bigdb" });
    expect(out.key).toBe(`rt/${out.name}`);
    expect(out.filepath_s3).toBe(out.key);
    expect(out.size_s3).toBe(out.size);
    expect(out.size).toBeGreaterThan(10 * 1024 * 1024);
    expect(await s3Keys("rt/")).toEqual([`rt/${out.name}`, `rt/${out.name}.json`]);
    expect(await s3Uploads("rt/")).toEqual([]);
    const meta = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `rt/${out.name}.json` }));
    expect(JSON.parse(await (meta.Body?.transformToString() ?? ""))).toMatchObject({
      sha256: out.sha256,
      size: out.size,
    });

    expect(await ex.call<ListedBackup[]>("list_backups")).toEqual([
      expect.objectContaining({ name: out.name, size: out.size, bucket: BUCKET, key: out.key }),
    ]);
    expect(await ex.call<VerifyOutput>("verify", { name: out.name })).toMatchObject({
      ok: true,
      sha256: out.sha256,
    });
    await ex.call<RestoreOutput>("restore", { name: out.name, database: "restore_bigdb" });
    expect(await tableChecksums("restore_bigdb")).toEqual(await tableChecksums("bigdb"));
    await sql("postgres", "DROP DATABASE restore_bigdb");
    expectNoSecrets(JSON.stringify(out), ...ctx.lines);
  });

  it("the small database round trip too (a single part)", async () => {
    const ex = await executor({ ...pgEnv("shop"), ...s3Env("small") });
    const out = await ex.backup();
    expect(out.key).toBe(`small/${out.name}`);
    await ex.call<RestoreOutput>("restore", { name: out.name, database: "restore_shop_s3" });
    expect(await tableChecksums("restore_shop_s3")).toEqual(await tableChecksums("shop"));
    await sql("postgres", "DROP DATABASE restore_shop_s3");
  });

  it("a missing bucket fails with the bucket named and leaves nothing", async () => {
    const ex = await executor({ ...pgEnv("shop"), ...s3Env("x/", "no-such-bucket") });
    await expect(ex.backup()).rejects.toThrow(
      /S3 bucket "no-such-bucket" at http:\/\/127\.0\.0\.1:\d+: the bucket does not exist/,
    );
    expect(await ex.instance.ready?.()).toBe(false);
  });

  it("wrong S3 credentials fail with a specific message", async () => {
    const ex = await executor({
      ...pgEnv("shop"),
      ...s3Env("creds/"),
      AWS_S3_SECRET_ACCESS_KEY: "wrong-secret-key",
    });
    await expect(ex.backup()).rejects.toThrow(/credentials rejected \(SignatureDoesNotMatch\)/);
    expect(await s3Keys("creds/")).toEqual([]);
    expect(await s3Uploads("creds/")).toEqual([]);
  });

  it("PostgreSQL killed mid-dump: pg_dump's error, multipart upload aborted, the good backup survives", async () => {
    const victim = await startPostgres();
    try {
      await createBig("doomed", 1_500_000, victim);
      const ex = await executor({
        ...pgEnv("doomed", victim),
        ...s3Env("killed/"),
        AWS_S3_PART_SIZE_MB: "5",
        BACKUP_PROGRESS_INTERVAL_MS: "100",
      });
      const good = await ex.backup();
      let killing: Promise<void> | undefined;
      const ctx = context(
        "backup",
        whenDumping(() => {
          // pg_ctl stop -m immediate: the server dies without a goodbye, like a crash.
          killing = victim.stop();
        }),
      );
      const err = await ex.backup(ctx).catch((e: Error) => e);
      await killing;
      expect(killing).toBeDefined();
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        /backup of database "doomed" failed: pg_dump exited with code 1: pg_dump: error: .*(server closed the connection|terminating connection|connection to server)/s,
      );
      expect(await s3Keys("killed/")).toEqual([`killed/${good.name}`, `killed/${good.name}.json`]);
      expect(await s3Uploads("killed/")).toEqual([]);
      expect((await ex.call<VerifyOutput>("verify", { name: good.name })).ok).toBe(true);
    } finally {
      if (existsSync(victim.dataDir)) await victim.stop();
    }
  });

  it("retention on S3 touches only our keys under the prefix", async () => {
    const plain = await executor({ ...pgEnv("shop"), ...s3Env("ret/") });
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await plain.backup()).name);
    const foreign = [
      "ret/notes.txt",
      "ret/backup_other_20200101T000000.000Z.bak",
      "ret/sub/backup_shop_20200101T000000.000Z.bak",
    ];
    for (const key of foreign) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "x" }));
    const ex = await executor({ ...pgEnv("shop"), ...s3Env("ret/"), BACKUP_KEEP: "2" });
    const out = await ex.backup();
    expect(out.retention.deleted).toEqual(made.slice(0, 4).reverse());
    const keys = await s3Keys("ret/");
    expect(keys).toEqual(
      [...foreign, `ret/${made[4]}`, `ret/${made[4]}.json`, `ret/${out.name}`, `ret/${out.name}.json`].sort(),
    );
  });
});

describe("restore is bounded: BACKUP_RESTORE_PREFIX and BACKUP_MAX_RESTORED", () => {
  let dir: string;
  let good: string;
  const where = () => `${server.host}:${server.port}`;

  beforeAll(async () => {
    dir = await tempDir("bound");
    good = (await (await executor({ ...pgEnv("shop"), BACKUP_DIR: dir })).backup()).name;
  });

  /** The names of the server's databases, sorted. */
  async function names(): Promise<string[]> {
    const res = await sql("postgres", "SELECT datname FROM pg_database ORDER BY datname");
    return (res.rows as { datname: string }[]).map((r) => r.datname);
  }

  /** Drops the databases named with `prefix` (a test's own, so the next test starts from none). */
  async function dropAll(prefix: string): Promise<void> {
    for (const name of (await names()).filter((n) => n.startsWith(prefix))) {
      await sql("postgres", `DROP DATABASE ${name}`);
    }
  }

  it("a name without the prefix is refused with the message; nothing is created or replaced", async () => {
    const ex = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir, BACKUP_ALLOW_RESTORE_EXISTING: "true" });
    await sql("postgres", "CREATE DATABASE bound_other");
    const before = await names();
    await expect(ex.call("restore", { name: good, database: "copy_of_shop" })).rejects.toThrow(
      'restore: database "copy_of_shop" must start with BACKUP_RESTORE_PREFIX (restore_): this executor creates only databases with that prefix, e.g. "restore_copy_of_shop"',
    );
    await expect(
      ex.call("restore", { name: good, database: "bound_other", allow_existing: true }),
    ).rejects.toThrow(
      'restore: allow_existing=true may not target "bound_other": its name does not start with BACKUP_RESTORE_PREFIX (restore_); this executor replaces only databases with that prefix',
    );
    const none = await executor({ ...pgEnv("shop"), BACKUP_DIR: dir, BACKUP_MAX_RESTORED: "0" });
    await expect(none.call("restore", { name: good, database: "restore_none" })).rejects.toThrow(
      "restore: this executor creates no databases (BACKUP_MAX_RESTORED=0)",
    );
    expect(await names()).toEqual(before);
    expect(await tableChecksums("bound_other")).toEqual({});
    await sql("postgres", "DROP DATABASE bound_other");
  });

  it("BACKUP_MAX_RESTORED=1: a second restore is refused while the first restored database exists", async () => {
    const ex = await executor({
      ...pgEnv("shop"),
      BACKUP_DIR: dir,
      BACKUP_RESTORE_PREFIX: "bound_",
      BACKUP_MAX_RESTORED: "1",
    });
    const first = await ex.call<RestoreOutput>("restore", { name: good, database: "bound_one" });
    expect(first).toMatchObject({ database: "bound_one", created: true });
    const before = await names();
    await expect(ex.call("restore", { name: good, database: "bound_two" })).rejects.toThrow(
      `restore: 1 database with prefix bound_ already exists on ${where()}, the most BACKUP_MAX_RESTORED allows (1); drop one first`,
    );
    expect(await names()).toEqual(before);
    // Once the first is dropped there is room again.
    await sql("postgres", "DROP DATABASE bound_one");
    const second = await ex.call<RestoreOutput>("restore", { name: good, database: "bound_two" });
    expect(second).toMatchObject({ database: "bound_two", created: true });
    expect(await tableChecksums("bound_two")).toEqual(await tableChecksums("shop"));
    await dropAll("bound_");
  });

  it("two restores at once with room for one: exactly one succeeds, every round", async () => {
    const env = {
      ...pgEnv("shop"),
      BACKUP_DIR: dir,
      BACKUP_RESTORE_PREFIX: "race_",
      BACKUP_MAX_RESTORED: "1",
    };
    // Two executors of one database, as two replicas would be.
    const [a, b] = [await executor(env), await executor(env)];
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([
        a.call<RestoreOutput>("restore", { name: good, database: `race_a${round}` }),
        b.call<RestoreOutput>("restore", { name: good, database: `race_b${round}` }),
      ]);
      const ok = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<RestoreOutput>[];
      const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
      expect(ok, `round ${round}`).toHaveLength(1);
      expect(String(failed[0]?.reason?.message)).toBe(
        `restore: 1 database with prefix race_ already exists on ${where()}, the most BACKUP_MAX_RESTORED allows (1); drop one first`,
      );
      expect((await names()).filter((n) => n.startsWith("race_"))).toEqual([ok[0]?.value.database]);
      await dropAll("race_");
    }
  });

  it("executors of different databases (not under one lock): never both past the bound", async () => {
    const env = { BACKUP_DIR: dir, BACKUP_RESTORE_PREFIX: "span_", BACKUP_MAX_RESTORED: "1" };
    const a = await executor({ ...pgEnv("shop"), ...env });
    const b = await executor({ ...pgEnv("bigdb"), ...env });
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([
        a.call<RestoreOutput>("restore", { name: good, database: `span_a${round}` }),
        b.call<RestoreOutput>("restore", { name: good, database: `span_b${round}` }),
      ]);
      const ok = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<RestoreOutput>[];
      expect(ok.length, `round ${round}`).toBeLessThanOrEqual(1);
      for (const r of results) {
        if (r.status === "rejected") {
          expect(String(r.reason?.message)).toMatch(
            /^restore: 1 database with prefix span_ already exists on .*, the most BACKUP_MAX_RESTORED allows \(1\); drop one first$/,
          );
        }
      }
      // A refused restore dropped what it had created.
      expect((await names()).filter((n) => n.startsWith("span_"))).toEqual(ok.map((r) => r.value.database));
      await dropAll("span_");
    }
  });
});

describe("restore is not a way in: the attack table through a real Colonies server", () => {
  let colonies: ColoniesServer;
  const runtimes: ExecutorRuntime[] = [];
  /** Stands in for an attacker's server: counts every connection libpq would open to it. */
  let trap: net.Server;
  let trapPort: number;
  let trapped = 0;
  let dir: string;
  /** Two backup executors of one database: the operator's default, and one that allows allow_existing. */
  const STRICT = "backup-strict";
  const LENIENT = "backup-lenient";

  beforeAll(async () => {
    colonies = await startColoniesServer();
    dir = await tempDir("attack");
    const env = { ...pgEnv("shop"), BACKUP_DIR: dir };
    runtimes.push(await startRuntime(colonies, backupExecutor, { ...env, COLONIES_EXECUTOR_TYPE: STRICT }));
    runtimes.push(
      await startRuntime(colonies, backupExecutor, {
        ...env,
        COLONIES_EXECUTOR_TYPE: LENIENT,
        BACKUP_ALLOW_RESTORE_EXISTING: "true",
      }),
    );
    trap = net.createServer((socket) => {
      trapped++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    trapPort = (trap.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    for (const runtime of runtimes) await runtime.shutdown();
    await colonies?.stop();
    await new Promise((resolve) => trap?.close(resolve));
  });

  async function run(type: string, func: string, args: unknown[], kwargs: Record<string, unknown> = {}) {
    return waitDone(colonies, (await submit(colonies, type, func, args, kwargs)).processid, 120_000);
  }

  /** A backup of shop taken through Colonies; returns its name. */
  async function backupThroughColonies(): Promise<string> {
    const done = await run(STRICT, "backup", []);
    expect(done.state, JSON.stringify(done.errors)).toBe(ProcessState.SUCCESS);
    const out = done.out?.[0] as BackupOutput | undefined;
    if (!out) throw new Error(`backup closed without output: ${JSON.stringify(done)}`);
    return out.name;
  }

  /** Every database of the server, with its oid: a drop and re-create would show. */
  async function databases(): Promise<unknown[]> {
    return (
      await sql("postgres", "SELECT oid::int, datname, datistemplate FROM pg_database ORDER BY datname")
    ).rows;
  }

  const plainName = (value: string, why: string) =>
    `restore: argument database must be a plain database name (${DATABASE_RULE}), got ${JSON.stringify(value)}: ${why}`;
  const OFF =
    "restore: allow_existing=true is not allowed on this executor: the operator must set BACKUP_ALLOW_RESTORE_EXISTING=true to allow restoring into an existing database; restore into a new database instead";
  const never = (database: string, why: string) =>
    `restore: allow_existing=true may not target "${database}": ${why}`;
  const unprefixed = (database: string) =>
    `restore: database "${database}" must start with BACKUP_RESTORE_PREFIX (restore_): this executor creates only databases with that prefix, e.g. "restore_${database}"`;

  it("each attack fails with a specific message, creates or drops no database, and the executors keep serving", async () => {
    const good = await backupThroughColonies();
    await sql("postgres", "CREATE DATABASE restore_victim");
    await sql("restore_victim", "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)");
    await sql("postgres", "CREATE DATABASE restore_tpl IS_TEMPLATE true");
    await sql("postgres", "CREATE DATABASE other_app");
    const before = await databases();

    const redirect = `host=127.0.0.1 port=${trapPort} dbname=x`;
    const uri = `postgresql://postgres@127.0.0.1:${trapPort}/shop`;
    const long = "x".repeat(64);
    const where = `${server.host}:${server.port}`;
    const cases: [string, unknown[], Record<string, unknown>, string][] = [];
    for (const type of [STRICT, LENIENT]) {
      cases.push(
        [type, [good, redirect], {}, plainName(redirect, '"=" is not allowed')],
        [
          type,
          [good, "host=127.0.0.1 dbname=x"],
          {},
          plainName("host=127.0.0.1 dbname=x", '"=" is not allowed'),
        ],
        [type, [good, "dbname=shop"], {}, plainName("dbname=shop", '"=" is not allowed')],
        [type, [good, uri], {}, plainName(uri, '":" is not allowed')],
        [
          type,
          [good, "bad;drop database shop"],
          {},
          plainName("bad;drop database shop", '";" is not allowed'),
        ],
        [type, [good, long], {}, plainName(long, "64 bytes long")],
        [type, [good, redirect], { allow_existing: "true" }, plainName(redirect, '"=" is not allowed')],
        [
          type,
          ["../../etc/passwd", "fresh_db"],
          {},
          'restore: argument name must be a backup name as list_backups shows it (backup_<database>_<YYYYMMDDTHHMMSS.mmmZ>.bak), got "../../etc/passwd"',
        ],
      );
    }
    cases.push(
      // allow_existing without the operator's consent: refused whatever the database.
      [STRICT, [good, "restore_victim"], { allow_existing: "true" }, OFF],
      [STRICT, [good, "shop"], { allow_existing: "true" }, OFF],
      [STRICT, [good, "fresh_db"], { allow_existing: true }, OFF],
      // With it: never the backed-up database, postgres or a template.
      [
        LENIENT,
        [good, "shop"],
        { allow_existing: "true" },
        never(
          "shop",
          "it is the database this executor backs up (DB_DATABASE); restore into a new database instead",
        ),
      ],
      [
        LENIENT,
        [good, "postgres"],
        { allow_existing: "true" },
        never("postgres", "it is the maintenance database"),
      ],
      [
        LENIENT,
        [good, "template1"],
        { allow_existing: "true" },
        never("template1", "it is a template database"),
      ],
      [
        LENIENT,
        [good, "template0"],
        { allow_existing: "true" },
        never("template0", "it is a template database"),
      ],
      [
        LENIENT,
        [good, "restore_tpl"],
        { allow_existing: "true" },
        never("restore_tpl", "it is a template database (pg_database.datistemplate)"),
      ],
      // The bound: restore writes only into databases named with BACKUP_RESTORE_PREFIX, new or existing.
      [STRICT, [good, "fresh_db"], {}, unprefixed("fresh_db")],
      [LENIENT, [good, "other_app"], {}, unprefixed("other_app")],
      [LENIENT, [good, "postgres"], {}, unprefixed("postgres")],
      [
        LENIENT,
        [good, "other_app"],
        { allow_existing: "true" },
        never(
          "other_app",
          "its name does not start with BACKUP_RESTORE_PREFIX (restore_); this executor replaces only databases with that prefix",
        ),
      ],
      [
        LENIENT,
        [good, "fresh_db"],
        { allow_existing: "true" },
        never(
          "fresh_db",
          "its name does not start with BACKUP_RESTORE_PREFIX (restore_); this executor replaces only databases with that prefix",
        ),
      ],
      // Existing databases without allow_existing: the hint says what would work.
      [
        STRICT,
        [good, "restore_victim"],
        {},
        `restore: database "restore_victim" already exists on ${where}; restore creates a new database (choose a new name)`,
      ],
      [
        LENIENT,
        [good, "restore_tpl"],
        {},
        `restore: database "restore_tpl" already exists on ${where}; restore creates a new database (choose a new name)`,
      ],
      [
        LENIENT,
        [good, "restore_victim"],
        {},
        `restore: database "restore_victim" already exists on ${where}; restore creates a new database (pass allow_existing=true to restore into it)`,
      ],
    );
    const submitted = await Promise.all(
      cases.map(([type, args, kwargs]) => submit(colonies, type, "restore", args, kwargs)),
    );
    for (const [i, process] of submitted.entries()) {
      const done: Process = await waitDone(colonies, process.processid, 120_000);
      const [type, args, kwargs, message] = cases[i] as (typeof cases)[number];
      const label = `${type} restore ${JSON.stringify(args)} ${JSON.stringify(kwargs)}`;
      expect(done.state, label).toBe(ProcessState.FAILED);
      expect(done.errors, label).toEqual([message]);
    }

    // Nothing created, dropped or re-created; nobody connected to the attacker; the victim untouched.
    expect(await databases()).toEqual(before);
    expect(trapped).toBe(0);
    expect((await sql("restore_victim", "SELECT x FROM precious")).rows).toEqual([{ x: 42 }]);
    expect((await fs.readdir(dir)).sort()).toEqual([good, `${good}.json`]);

    // Both executors still serve: a legitimate restore into a fresh name, and (where allowed) into an existing one.
    const fresh = await run(STRICT, "restore", [good, "restore_after_attacks"]);
    expect(fresh.state, JSON.stringify(fresh.errors)).toBe(ProcessState.SUCCESS);
    expect(fresh.out).toEqual([
      expect.objectContaining({ name: good, database: "restore_after_attacks", created: true }),
    ]);
    expect(await tableChecksums("restore_after_attacks")).toEqual(await tableChecksums("shop"));
    const over = await run(LENIENT, "restore", [good, "restore_victim"], { allow_existing: "true" });
    expect(over.state, JSON.stringify(over.errors)).toBe(ProcessState.SUCCESS);
    expect(over.out).toEqual([expect.objectContaining({ database: "restore_victim", created: false })]);
    // --clean replaced what the backup holds; a table of the database's own is left alone.
    const { "public.precious": precious, ...replaced } = await tableChecksums("restore_victim");
    expect(replaced).toEqual(await tableChecksums("shop"));
    expect(precious?.rows).toBe(1);
    expect(trapped).toBe(0);

    await sql("postgres", "DROP DATABASE restore_after_attacks");
    await sql("postgres", "DROP DATABASE restore_victim");
    await sql("postgres", "ALTER DATABASE restore_tpl IS_TEMPLATE false");
    await sql("postgres", "DROP DATABASE restore_tpl");
    await sql("postgres", "DROP DATABASE other_app");
  });

  it("pg_restore gets the database as a connection string of our own: a name cannot redirect it", async () => {
    const file = path.join(dir, await backupThroughColonies());
    const config = {
      host: server.host,
      port: server.port,
      database: "shop",
      user: server.user,
      password: server.password,
      bindir: server.bindir,
      connectTimeoutMs: 5_000,
    };
    /** pg_restore with the executor's environment (toolEnv) and the given --dbname; returns its stderr. */
    async function restoreWith(dbname: string): Promise<string> {
      const tool = startTool(
        config,
        "pg_restore",
        ["--no-password", "--single-transaction", "--exit-on-error", "--no-owner", `--dbname=${dbname}`],
        toolEnv(config, { PATH: process.env.PATH }, "postgres"),
        "pipe",
      );
      tool.child.stdout?.resume();
      tool.child.stdin?.on("error", () => undefined);
      tool.child.stdin?.end(await fs.readFile(file));
      const result = await tool.exited;
      expect(result.code).toBe(1);
      return result.stderr;
    }
    const before = await databases();
    const redirect = `host=127.0.0.1 port=${trapPort} dbname=x`;
    const uri = `postgresql://postgres@127.0.0.1:${trapPort}/x`;

    // The trap works: handed over raw, as restore used to, libpq connects to the attacker's port.
    await restoreWith(redirect);
    expect(trapped).toBeGreaterThan(0);
    trapped = 0;
    await restoreWith(uri);
    expect(trapped).toBeGreaterThan(0);
    trapped = 0;

    // Through dbnameConninfo the whole value is a database name on the configured server, which has none such.
    for (const name of [redirect, uri, "x' host='127.0.0.1"]) {
      const stderr = await restoreWith(dbnameConninfo(name));
      expect(stderr).toContain(`port ${server.port} failed`);
      expect(stderr).toContain(`database "${name}" does not exist`);
    }
    expect(trapped).toBe(0);
    expect(await databases()).toEqual(before);
  });
});
