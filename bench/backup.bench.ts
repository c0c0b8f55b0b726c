/**
 * Backup benchmark, side by side on one generated database of at least 1 GB (real PostgreSQL, real MinIO):
 *  (a) raw `pg_dump -Fc > /dev/null` — the baseline;
 *  (b) backup() to a directory (streamed through sha256 into a file, published by link), vs (a);
 *  (c) backup() to S3 (MinIO, multipart upload), vs (a);
 * plus the executor's RSS peak during each dump (process.memoryUsage().rss sampled every 20 ms). Each backup()
 * runs in a child process holding nothing but the executor, so the RSS is the executor's own.
 * Rounds alternate the three so that caches and background noise hit them alike; the best round counts.
 * Targets: throughput >= 0.9x raw pg_dump; RSS < 150 MB.
 * Usage: node --import tsx bench/backup.bench.ts [--gb 1] [--rounds 2]
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { type MinioServer, minioClient, startMinio, stopMinio } from "../peers/minio.js";
import { type Postgres, query, startPostgres } from "../peers/postgres.js";
import type { ProcessContext } from "../src/executor/types.js";
import type { BackupOutput } from "../src/executors/backup/dump.js";
import { backupExecutor } from "../src/executors/backup.js";

const { values } = parseArgs({
  options: {
    gb: { type: "string", default: "1" },
    rounds: { type: "string", default: "2" },
    child: { type: "boolean", default: false },
  },
});
const TARGET_BYTES = Number(values.gb) * 1024 ** 3;
const ROUNDS = Number(values.rounds);
const DB = "benchdb";
const MB = 1024 * 1024;

const logger = pino({ level: "warn" });

const sql = query;

/** ~150 bytes a row of mixed, partly compressible data, added in batches until the database is big enough. */
async function generate(server: Postgres): Promise<number> {
  await sql(server, "postgres", `CREATE DATABASE ${DB}`);
  await sql(
    server,
    DB,
    `CREATE TABLE events (id bigint, kind int, at timestamptz, amount numeric(12,2), digest text, note text)`,
  );
  const batch = 2_000_000;
  let next = 1;
  for (;;) {
    const size = Number(
      (await sql(server, DB, "SELECT pg_database_size(current_database()) AS s")).rows[0].s,
    );
    if (size >= TARGET_BYTES) return size;
    await sql(
      server,
      DB,
      `INSERT INTO events SELECT i, i % 17, timestamptz '2020-01-01' + i * interval '1 second', (i % 100000) / 100.0,
         md5(i::text), CASE WHEN i % 4 = 0 THEN NULL ELSE 'event ' || (i % 1000) || ' ' || md5((i * 7)::text) END
       FROM generate_series(${next}, ${next + batch - 1}) i`,
    );
    next += batch;
    process.stderr.write(`  generated ${((next - 1) / 1e6).toFixed(0)}M rows\r`);
  }
}

/** Samples this process's RSS while `run` is in flight. */
async function withRss<T>(run: () => Promise<T>): Promise<{ result: T; peakRss: number; seconds: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const t0 = performance.now();
  try {
    const result = await run();
    return { result, peakRss: peak, seconds: (performance.now() - t0) / 1000 };
  } finally {
    clearInterval(timer);
  }
}

async function rawPgDump(server: Postgres): Promise<number> {
  const t0 = performance.now();
  const devnull = openSync("/dev/null", "w");
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(server.bindir, "pg_dump"), ["-Fc"], {
      env: {
        PATH: process.env.PATH,
        PGHOST: server.host,
        PGPORT: String(server.port),
        PGUSER: server.user,
        PGPASSWORD: server.password,
        PGDATABASE: DB,
      },
      stdio: ["ignore", devnull, "inherit"],
    });
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`pg_dump exited with ${code}`)),
    );
  }).finally(() => closeSync(devnull));
  return (performance.now() - t0) / 1000;
}

function ctx(): ProcessContext {
  return {
    processId: "bench",
    funcName: "backup",
    signal: new AbortController().signal,
    logger,
    log: async () => undefined,
  };
}

interface ChildResult {
  seconds: number;
  peakRss: number;
  startRss: number;
  size: number;
}

/**
 * --child: the executor alone in its own process (module loaded, instance created, one backup()), so that its
 * RSS is not mixed up with the benchmark's own clients and data generation. Configured by BENCH_BACKUP_ENV.
 */
async function child(): Promise<void> {
  const instance = await backupExecutor.create(JSON.parse(process.env.BENCH_BACKUP_ENV ?? "{}"), logger);
  const fn = instance.functions.find((f) => f.name === "backup");
  if (!fn) throw new Error("no backup function");
  const startRss = process.memoryUsage().rss;
  const { result, peakRss, seconds } = await withRss(
    async () => (await fn.handler({}, ctx()))[0] as BackupOutput,
  );
  await instance.close?.();
  const out: ChildResult = { seconds, peakRss, startRss, size: result.size };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function backupInChild(env: Record<string, string>): Promise<ChildResult> {
  const proc = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, "--child"], {
    env: { ...process.env, BENCH_BACKUP_ENV: JSON.stringify(env) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.once("close", resolve));
  if (code !== 0) throw new Error(`backup child exited with ${code}: ${out}`);
  return JSON.parse(out.trim().split("\n").at(-1) as string) as ChildResult;
}

async function main(): Promise<void> {
  let server: Postgres | undefined;
  let minio: MinioServer | undefined;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "colonyos-backup-bench-"));
  try {
    server = await startPostgres();
    minio = await startMinio();
    const s3 = minioClient(minio);
    await s3.send(new CreateBucketCommand({ Bucket: "bench" }));
    s3.destroy();

    const t0 = performance.now();
    const dbSize = await generate(server);
    await sql(server, DB, "VACUUM ANALYZE");
    console.log(
      `database ${DB}: ${(dbSize / MB).toFixed(0)} MiB, generated in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );

    const pgEnv = {
      DB_HOST: server.host,
      DB_PORT: String(server.port),
      DB_DATABASE: DB,
      DB_USER: server.user,
      DB_PASSWORD: server.password,
      BACKUP_PG_BINDIR: server.bindir,
      BACKUP_KEEP: "1", // keeps the disk from filling up over the rounds
    };
    const dirEnv = { ...pgEnv, BACKUP_DIR: path.join(work, "dir") };
    const s3Env = {
      ...pgEnv,
      BACKUP_TARGET: "s3",
      AWS_S3_ENDPOINT: minio.endpoint,
      AWS_S3_ACCESS_KEY: minio.accessKey,
      AWS_S3_SECRET_ACCESS_KEY: minio.secretKey,
      AWS_S3_BUCKET_NAME: "bench",
    };
    const best = { raw: Infinity, dir: Infinity, s3: Infinity };
    const rss = { dir: 0, s3: 0, dirIdle: 0, s3Idle: 0 };
    let dumpSize = 0;
    // The order rotates each round (and each run gets a quiet moment first), so that no mode always follows
    // the one whose aftermath (MinIO flushing, page cache) costs the most.
    const settle = () => new Promise((r) => setTimeout(r, 5_000));
    for (let round = 1; round <= ROUNDS; round++) {
      const runs: Record<string, () => Promise<void>> = {
        raw: async () => {
          await settle();
          const raw = await rawPgDump(server as Postgres);
          best.raw = Math.min(best.raw, raw);
          line.push(`raw ${raw.toFixed(1)} s`);
        },
        dir: async () => {
          await settle();
          const dir = await backupInChild(dirEnv);
          dumpSize = dir.size;
          best.dir = Math.min(best.dir, dir.seconds);
          rss.dir = Math.max(rss.dir, dir.peakRss);
          rss.dirIdle = Math.max(rss.dirIdle, dir.startRss);
          line.push(`dir ${dir.seconds.toFixed(1)} s (RSS ${(dir.peakRss / MB).toFixed(0)} MiB)`);
        },
        s3: async () => {
          await settle();
          const s3r = await backupInChild(s3Env);
          best.s3 = Math.min(best.s3, s3r.seconds);
          rss.s3 = Math.max(rss.s3, s3r.peakRss);
          rss.s3Idle = Math.max(rss.s3Idle, s3r.startRss);
          line.push(`s3 ${s3r.seconds.toFixed(1)} s (RSS ${(s3r.peakRss / MB).toFixed(0)} MiB)`);
        },
      };
      const order = ["raw", "dir", "s3"];
      const line: string[] = [];
      for (let i = 0; i < order.length; i++) await runs[order[(i + round - 1) % order.length] as string]?.();
      console.log(`round ${round}: ${line.join(", ")}`);
    }

    const mbps = (s: number) => (dbSize / MB / s).toFixed(1);
    const loader = process.execArgv.some((a) => a.includes("tsx")) ? "tsx" : "plain node";
    const rows = [
      ["mode", "seconds", "DB MiB/s", "vs raw", "RSS before MiB", "RSS peak MiB"],
      ["raw pg_dump -Fc > /dev/null", best.raw.toFixed(1), mbps(best.raw), "1.00x", "-", "-"],
      [
        "backup() -> directory",
        best.dir.toFixed(1),
        mbps(best.dir),
        `${(best.raw / best.dir).toFixed(2)}x`,
        (rss.dirIdle / MB).toFixed(0),
        (rss.dir / MB).toFixed(0),
      ],
      [
        "backup() -> S3 (MinIO)",
        best.s3.toFixed(1),
        mbps(best.s3),
        `${(best.raw / best.s3).toFixed(2)}x`,
        (rss.s3Idle / MB).toFixed(0),
        (rss.s3 / MB).toFixed(0),
      ],
    ];
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
    console.log("");
    console.log(
      `database ${(dbSize / MB).toFixed(0)} MiB, dump ${(dumpSize / MB).toFixed(0)} MiB, best of ${ROUNDS} rounds, ` +
        `${os.cpus().length} cores, executor under ${loader}`,
    );
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
    console.log("targets: throughput >= 0.90x raw pg_dump; executor RSS peak < 150 MiB");
  } finally {
    if (minio) await stopMinio(minio);
    await server?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (values.child) await child();
else await main();
