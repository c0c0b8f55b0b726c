/**
 * Faults end with nothing lost or half-made. The backup executor runs as its own process (its own process
 * group, so kill -9 takes pg_dump with it) against a real Colonies server, PostgreSQL and MinIO:
 * - killed mid-dump (directory and S3 targets): nothing half-written is listed or verifiable, the older good
 *   backup stays, and the restarted executor re-runs the re-queued process exactly once, removing the leftovers;
 * - a full file system (a small tmpfs): the process fails once naming ENOSPC, nothing partial stays, the good
 *   backups stay, and the executor keeps serving once there is room again;
 * - retention (BACKUP_KEEP) never deletes a good backup because of a failed one.
 * Every outcome is read back from where it lives: the process from the Colonies server, files from the disk,
 * objects and unfinished uploads from MinIO.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statfsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { submit, userClient, waitDone } from "../../peers/executor.js";
import { type MinioServer, minioClient, startMinio, stopMinio } from "../../peers/minio.js";
import { waitFor } from "../../peers/ports.js";
import { type Postgres, query, startPostgres } from "../../peers/postgres.js";
import { type Process, ProcessState } from "../../src/colonies/types.js";
import { parseArguments } from "../../src/executor/args.js";
import type { ExecutorInstance, ProcessContext } from "../../src/executor/types.js";
import type { BackupOutput } from "../../src/executors/backup/dump.js";
import type { ListedBackup } from "../../src/executors/backup/functions.js";
import type { VerifyOutput } from "../../src/executors/backup/verify.js";
import { backupExecutor } from "../../src/executors/backup.js";

let db: Postgres;
let minio: MinioServer;
let colonies: ColoniesServer;
let s3: S3Client;
let work: string;
const BUCKET = "faults";
const children: ChildProcess[] = [];
const mounts: string[] = [];
const instances: ExecutorInstance[] = [];
const logger = pino({ level: "silent" });

function pgEnv(database: string): Record<string, string> {
  return {
    DB_HOST: db.host,
    DB_PORT: String(db.port),
    DB_DATABASE: database,
    DB_USER: db.user,
    DB_PASSWORD: db.password,
    BACKUP_PG_BINDIR: db.bindir,
  };
}

function s3Env(prefix: string): Record<string, string> {
  return {
    BACKUP_TARGET: "s3",
    AWS_S3_ENDPOINT: minio.endpoint.replace("http://", ""),
    AWS_S3_SECURE: "false",
    AWS_S3_REGION: minio.region,
    AWS_S3_ACCESS_KEY: minio.accessKey,
    AWS_S3_SECRET_ACCESS_KEY: minio.secretKey,
    AWS_S3_BUCKET_NAME: BUCKET,
    AWS_S3_PREFIX: prefix,
  };
}

/** The backup executor as its own process group (like a container: kill -9 reaches pg_dump too). */
function startExecutor(name: string, type: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "backup"], {
    env: {
      ...process.env,
      ...colonies.env,
      COLONIES_COLONY_PRVKEY: colonies.colonyPrvKey,
      COLONIES_EXECUTOR_NAME: name,
      COLONIES_EXECUTOR_TYPE: type,
      EXECUTOR_ASSIGN_TIMEOUT: "5",
      EXECUTOR_LOG_FORMAT: "json",
      BACKUP_PROGRESS_INTERVAL_MS: "200",
      ...env,
    },
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.resume();
  children.push(child);
  return child;
}

/** The pids of the live processes whose parent is `parent` (from /proc). */
function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may contain spaces, so read after the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Freezes the executor's pg_dump (so that the dump cannot finish in the meantime), then kill -9 of the whole
 * process group; resolves with the pg_dump pids once the executor is gone.
 */
async function killMidDump(child: ChildProcess): Promise<number[]> {
  const pid = child.pid as number;
  const dumps = childPids(pid).filter((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "pg_dump");
  expect(dumps).toHaveLength(1);
  for (const p of dumps) process.kill(p, "SIGSTOP");
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-pid, "SIGKILL");
  await exited;
  await waitFor("pg_dump to be gone", async () => !dumps.some(alive), 10_000);
  return dumps;
}

/** Polls fast (a dump moves quickly) until `probe` says yes. */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function run(type: string, func: string, args: unknown[] = []): Promise<Process> {
  return waitDone(colonies, (await submit(colonies, type, func, args)).processid, 120_000);
}

async function backupOk(type: string): Promise<BackupOutput> {
  const done = await run(type, "backup");
  expect(done.state, JSON.stringify(done.errors)).toBe(ProcessState.SUCCESS);
  return done.out?.[0] as BackupOutput;
}

async function processLog(processId: string): Promise<string[]> {
  const logs = await userClient(colonies).getLogs(
    { colonyName: colonies.colonyName, processId, count: 500 },
    colonies.userPrvKey,
  );
  return logs.map((l) => l.message);
}

/** The name the running backup writes to, from its process log (the line it logs before writing). */
async function runningBackupName(processId: string): Promise<string> {
  let name: string | undefined;
  await until("the backup to start", async () => {
    for (const line of await processLog(processId)) {
      const m = /^backup (backup_\S+\.bak): pg_dump of /.exec(line);
      if (m) name = m[1];
    }
    return name !== undefined;
  });
  return name as string;
}

/** The function table of a backup executor, called in-process: list_backups and verify as a user sees them. */
async function inspector(env: Record<string, string>) {
  const instance = await backupExecutor.create(env, logger);
  instances.push(instance);
  const call = async <T>(name: string, kwargs: Record<string, unknown> = {}): Promise<T> => {
    const fn = instance.functions.find((f) => f.name === name);
    if (!fn) throw new Error(`no function ${name}`);
    const ctx: ProcessContext = {
      processId: randomBytes(8).toString("hex"),
      funcName: name,
      signal: new AbortController().signal,
      logger,
      log: async () => undefined,
    };
    const out = await fn.handler(parseArguments(fn, [], kwargs), ctx);
    return out[0] as T;
  };
  return {
    list: async () => (await call<ListedBackup[]>("list_backups")).map((b) => b.name),
    verify: (name: string) => call<VerifyOutput>("verify", { name }),
  };
}

const sorted = (names: string[]) => [...names].sort();
const withMeta = (...names: string[]) => sorted(names.flatMap((n) => [n, `${n}.json`]));

async function s3Keys(prefix: string): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return sorted((res.Contents ?? []).map((o) => (o.Key as string).slice(prefix.length)));
}

/** Unfinished uploads of one key: MinIO lists uploads only by their exact key (a prefix is taken as one). */
async function uploadsOf(key: string): Promise<string[]> {
  const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }));
  return (res.Uploads ?? []).filter((u) => u.Key === key).map((u) => u.UploadId as string);
}

async function partsOf(key: string, uploadId: string): Promise<number> {
  const res = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }));
  return res.Parts?.length ?? 0;
}

/** A database whose dump takes pg_dump a few seconds (md5 text, compressed at level 9). */
async function createCrashDatabase(name: string): Promise<void> {
  await query(db, "postgres", `CREATE DATABASE ${name}`);
  await query(
    db,
    name,
    `CREATE TABLE big AS SELECT i AS id, md5(i::text) || md5((i * 31)::text) || md5((i * 17)::text) AS payload
     FROM generate_series(1, 600000) i`,
  );
}

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "colonyos-backup-faults-"));
  [db, minio, colonies] = await Promise.all([startPostgres(), startMinio(), startColoniesServer()]);
  s3 = minioClient(minio);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await createCrashDatabase("crash");
});

afterAll(async () => {
  for (const child of children) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const instance of instances) await instance.close?.();
  for (const mount of mounts.reverse()) {
    try {
      execFileSync("umount", [mount]);
    } catch {
      // already gone
    }
  }
  s3?.destroy();
  await colonies?.stop();
  if (minio) await stopMinio(minio);
  await db?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

/** What a killed backup leaves and what its re-run does, checked the same way for both targets. */
interface CrashTarget {
  type: string;
  env: Record<string, string>;
  /** What the target holds, as file or object names relative to it. */
  stored(): Promise<string[]>;
  /** Resolves once the backup `name` has really written data (a part or a partial file). */
  writing(name: string): Promise<void>;
  /** The unfinished write of `name` the target holds (temporary files, markers, upload ids). */
  leftovers(name: string): Promise<string[]>;
  /**
   * Leaves an unfinished write of another writer (the same database name on another server): returns the names
   * `stored()` shows for it and a check that it is still whole.
   */
  foreign(): Promise<{ stored: string[]; intact(): Promise<boolean> }>;
}

/** A backup name of the crash database that no run here makes (its time is long past). */
const FOREIGN_NAME = "backup_crash_20200101T000000.000Z.bak";
/** A writer tag that is not this executor's (writer.ts). */
const FOREIGN_TAG = "0123456789ab";

async function killAndRerun(target: CrashTarget): Promise<void> {
  const { type, env } = target;
  const first = startExecutor(type, type, env);
  const good = await backupOk(type);
  expect(await target.stored()).toEqual(withMeta(good.name));

  const interrupted = await submit(colonies, type, "backup");
  const name = await runningBackupName(interrupted.processid);
  await target.writing(name);
  await killMidDump(first);

  // Half-made: the target holds an unfinished write, which nobody can see as a backup.
  const leftovers = await target.leftovers(name);
  expect(leftovers.length).toBeGreaterThan(0);
  const look = await inspector(env);
  expect(await look.list()).toEqual([good.name]);
  await expect(look.verify(name)).rejects.toThrow(`verify: backup ${name} not found`);
  expect((await look.verify(good.name)).ok).toBe(true);
  const stuck = await userClient(colonies).getProcess(interrupted.processid, colonies.userPrvKey);
  expect(stuck.state).toBe(ProcessState.RUNNING);

  const foreign = await target.foreign();

  // The same executor name again: the server (no COLONIES_ALLOW_EXECUTOR_REREGISTER) keeps the dead record, so
  // the new run removes it, which re-queues the interrupted process, and registers under a suffixed name.
  startExecutor(type, type, env);
  const done = await waitDone(colonies, interrupted.processid, 120_000);
  expect(done.state, JSON.stringify(done.errors)).toBe(ProcessState.SUCCESS);
  const rerun = done.out?.[0] as BackupOutput;
  expect(rerun.name).not.toBe(name);
  expect(rerun.retention).toEqual({ keep: 2, deleted: [] });
  const executors = await userClient(colonies).getExecutors(colonies.colonyName, colonies.userPrvKey);
  const assignedTo = executors.find((e) => e.executorid === done.assignedexecutorid)?.executorname;
  expect(assignedTo).toMatch(new RegExp(`^${type}-[0-9a-f]{6}$`));

  // Exactly once: one new backup beside the good one, the leftovers of the killed run gone, another writer's kept.
  expect(await target.stored()).toEqual(sorted([...withMeta(good.name, rerun.name), ...foreign.stored]));
  expect(await target.leftovers(name)).toEqual([]);
  expect(await foreign.intact()).toBe(true);
  expect(await look.list()).toEqual([rerun.name, good.name]);
  expect((await look.verify(rerun.name)).sha256).toBe(rerun.sha256);
  expect((await look.verify(good.name)).sha256).toBe(good.sha256);
  expect((await processLog(done.processid)).join("\n")).toContain(
    "removed unfinished writes of earlier runs",
  );
  // Nothing else ran or is left waiting for this type: the good backup and the one re-run.
  const client = userClient(colonies);
  const ofType = async (state: Process["state"]) =>
    (
      await client.getProcesses(
        { colonyName: colonies.colonyName, state, executorType: type },
        colonies.userPrvKey,
      )
    ).length;
  expect(await ofType(ProcessState.SUCCESS)).toBe(2);
  expect(await ofType(ProcessState.FAILED)).toBe(0);
  expect(await ofType(ProcessState.WAITING)).toBe(0);
  expect(await ofType(ProcessState.RUNNING)).toBe(0);
}

describe("kill -9 in the middle of a dump", () => {
  it("directory: the partial file is never a backup; the re-run completes once and removes it", async () => {
    const dir = path.join(work, "crash-dir");
    await fs.mkdir(dir);
    const partials = async (name: string) =>
      (await fs.readdir(dir)).filter((f) => f.startsWith(`.${name}.partial-`));
    await killAndRerun({
      type: "crash-dir",
      env: { ...pgEnv("crash"), BACKUP_DIR: dir, BACKUP_KEEP: "2", BACKUP_COMPRESSION: "9" },
      stored: async () => sorted(await fs.readdir(dir)),
      leftovers: partials,
      foreign: async () => {
        const file = `.${FOREIGN_NAME}.partial-${FOREIGN_TAG}-cdef01234567`;
        await fs.writeFile(path.join(dir, file), "another writer's dump");
        return {
          stored: [file],
          intact: async () => (await fs.readFile(path.join(dir, file), "utf8")) === "another writer's dump",
        };
      },
      writing: (name) =>
        until("the partial file to grow", async () => {
          const [partial] = await partials(name);
          return partial !== undefined && (await fs.stat(path.join(dir, partial))).size > 1024 * 1024;
        }),
    });
  });

  it("S3: the unfinished multipart upload is never a backup; the re-run completes once and aborts it", async () => {
    const prefix = "crash/";
    await killAndRerun({
      type: "crash-s3",
      env: { ...pgEnv("crash"), ...s3Env(prefix), BACKUP_KEEP: "2", BACKUP_COMPRESSION: "9" },
      stored: () => s3Keys(prefix),
      leftovers: async (name) => [
        ...(await uploadsOf(`${prefix}${name}`)),
        ...(await s3Keys(prefix)).filter((k) => k.startsWith(`.${name}.partial-`)),
      ],
      foreign: async () => {
        const key = `${prefix}${FOREIGN_NAME}`;
        const marker = `.${FOREIGN_NAME}.partial-${FOREIGN_TAG}`;
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${marker}`, Body: "{}" }));
        const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
        await s3.send(
          new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: "part one" }),
        );
        return {
          stored: [marker],
          intact: async () =>
            (await uploadsOf(key)).join() === UploadId && (await partsOf(key, UploadId as string)) === 1,
        };
      },
      writing: (name) =>
        until("a part to be stored", async () => {
          const [upload] = await uploadsOf(`${prefix}${name}`);
          return upload !== undefined && (await partsOf(`${prefix}${name}`, upload)) > 0;
        }),
    });
  });
});

describe("a full file system", () => {
  it("fails the backup once naming ENOSPC, keeps the good backups, and serves again once there is room", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test mounts a small tmpfs: run it as root");
    const dir = path.join(work, "full");
    await fs.mkdir(dir);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dir]);
    mounts.push(dir);
    await query(db, "postgres", "CREATE DATABASE grow");
    await query(db, "grow", "CREATE TABLE t AS SELECT i, md5(i::text) AS m FROM generate_series(1, 1000) i");
    const type = "full-dir";
    startExecutor(type, type, {
      ...pgEnv("grow"),
      BACKUP_DIR: dir,
      BACKUP_KEEP: "2",
      BACKUP_COMPRESSION: "0",
    });
    const older = await backupOk(type);
    const good = await backupOk(type);
    const free = () => {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    };
    const freeBefore = free();

    // About 20 MB uncompressed: the dump cannot fit into 8 MB.
    await query(
      db,
      "grow",
      "INSERT INTO t SELECT i, repeat(md5(i::text), 6) FROM generate_series(1001, 100000) i",
    );
    for (let attempt = 0; attempt < 2; attempt++) {
      const failed = await run(type, "backup");
      expect(failed.state).toBe(ProcessState.FAILED);
      expect(failed.errors).toHaveLength(1);
      expect(failed.errors?.[0]).toMatch(
        new RegExp(
          `^backup directory ${dir}: cannot write backup backup_grow_\\S+: no space left on device \\(the backup directory is full\\) \\(ENOSPC\\)`,
        ),
      );
      // Nothing partial stays (its space is free again), and retention deleted nothing.
      expect(sorted(await fs.readdir(dir))).toEqual(withMeta(older.name, good.name));
      expect(free()).toBe(freeBefore);
    }
    const failures = await userClient(colonies).getProcesses(
      { colonyName: colonies.colonyName, state: ProcessState.FAILED, executorType: type },
      colonies.userPrvKey,
    );
    expect(failures).toHaveLength(2); // each failed once, none re-queued
    const listed = await run(type, "list_backups");
    expect(listed.state).toBe(ProcessState.SUCCESS);
    expect(((listed.out ?? [])[0] as ListedBackup[]).map((b) => b.name)).toEqual([good.name, older.name]);

    // Room again: the same executor makes the backup, and only now retention drops the oldest good one.
    execFileSync("mount", ["-o", "remount,size=64m", dir]);
    const fits = await backupOk(type);
    expect(fits.retention).toEqual({ keep: 2, deleted: [older.name] });
    expect(sorted(await fs.readdir(dir))).toEqual(withMeta(good.name, fits.name));

    // Room for the dump but not for its metadata document: the publish step fails the same way.
    const used = () => {
      const s = statfsSync(dir);
      return (s.blocks - s.bfree) * s.bsize;
    };
    const page = statfsSync(dir).bsize;
    execFileSync("mount", ["-o", `remount,size=${used() + Math.ceil(fits.size / page) * page}`, dir]);
    const unpublished = await run(type, "backup");
    expect(unpublished.state).toBe(ProcessState.FAILED);
    expect(unpublished.errors).toEqual([
      expect.stringMatching(
        new RegExp(
          `^backup directory ${dir}: cannot publish backup backup_grow_\\S+: no space left on device \\(the backup directory is full\\) \\(ENOSPC\\)$`,
        ),
      ),
    ]);
    expect(sorted(await fs.readdir(dir))).toEqual(withMeta(good.name, fits.name));
    for (const b of [good, fits]) {
      const verified = await run(type, "verify", [b.name]);
      expect(verified.state, JSON.stringify(verified.errors)).toBe(ProcessState.SUCCESS);
      expect(((verified.out ?? [])[0] as VerifyOutput).sha256).toBe(b.sha256);
    }
  });
});

describe("retention (BACKUP_KEEP) and failed backups", () => {
  it("a failed backup left visible (its cleanup failed too) never pushes a good backup out", async () => {
    const dir = path.join(work, "keep");
    await fs.mkdir(dir);
    await query(db, "postgres", "CREATE DATABASE keep");
    await query(db, "keep", "CREATE TABLE t AS SELECT i FROM generate_series(1, 1000) i");
    const type = "keep-dir";
    startExecutor(type, type, { ...pgEnv("keep"), BACKUP_DIR: dir, BACKUP_KEEP: "2" });
    const older = await backupOk(type);
    const good = await backupOk(type);
    // What a run that failed after publishing leaves when its removal fails as well: a backup without metadata,
    // and one whose metadata records another size (cut short). Both newer than the good ones.
    const now = Date.now();
    const name = (ms: number) => `backup_keep_${new Date(ms).toISOString().replace(/[-:]/g, "")}.bak`;
    const [bare, short] = [name(now + 1_000), name(now + 2_000)];
    await fs.writeFile(path.join(dir, bare), "PGDMP half");
    await fs.copyFile(path.join(dir, `${good.name}.json`), path.join(dir, `${short}.json`));
    const meta = JSON.parse(await fs.readFile(path.join(dir, `${short}.json`), "utf8"));
    await fs.writeFile(path.join(dir, `${short}.json`), JSON.stringify({ ...meta, name: short }));
    await fs.writeFile(
      path.join(dir, short),
      (await fs.readFile(path.join(dir, good.name))).subarray(0, 100),
    );
    const notGood = await run(type, "verify", [short]);
    expect(notGood.state).toBe(ProcessState.FAILED);

    const next = await backupOk(type);
    // Kept: the new backup and the newest good one (and the bad ones newer than it, which do not count).
    expect(next.retention).toEqual({ keep: 2, deleted: [older.name] });
    expect(sorted(await fs.readdir(dir))).toEqual(
      sorted([...withMeta(good.name, next.name), bare, short, `${short}.json`]),
    );
    const verified = await run(type, "verify", [good.name]);
    expect(verified.state, JSON.stringify(verified.errors)).toBe(ProcessState.SUCCESS);
  });
});
