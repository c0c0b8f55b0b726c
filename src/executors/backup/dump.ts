/**
 * backup(): pg_dump -Fc streamed through a meter (size + sha256) straight into the target, published only
 * when pg_dump exited 0 and the stored size matches; then retention.
 *
 * Order of events:
 *   connect (credentials checked) → take the database's backup lock → remove this writer's leftovers of
 *   killed runs (writer.ts) → begin (temp file / multipart upload) → pg_dump | meter | sink → pg_dump exit 0?
 *   → commit (sizes checked, metadata stored, backup published) → retention → unlock.
 * Any failure or cancellation before the commit finished aborts the write: nothing partial remains. A kill -9
 * leaves a temporary write that nothing lists or counts; the next backup under the same lock removes it.
 */
import type { Logger } from "pino";
import { type ProcessContext, ProcessError } from "../../executor/types.js";
import type { BackupConfig } from "./config.js";
import { connect, lockForBackup, serverVersion } from "./database.js";
import { messageOf } from "./errors.js";
import { type BackupMetadata, METADATA_FORMAT } from "./metadata.js";
import { backupName, type ParsedName, parseBackupName } from "./names.js";
import { startTool, stderrSummary, toolEnv, toolFailure } from "./pgtools.js";
import { createOutputPump } from "./pump.js";
import { planRetention } from "./retention.js";
import { formatBytes } from "./streams.js";
import type { PendingBackup, Target } from "./targets/target.js";
import { ownWriterTag } from "./writer.js";

export interface BackupDeps {
  config: BackupConfig;
  target: Target;
  /** The executor's environment; harmless parts of it are passed on to pg_dump. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** pg_dump --version, memoized by the executor instance. */
  pgDumpVersion(): Promise<string>;
  /** For tests: the clock used for names and times. */
  now?: () => Date;
}

export interface RetentionOutcome {
  keep: number;
  deleted: string[];
  errors?: string[];
}

/** The process output. `filename`, `bucket`, `filepath_s3`, `size`, `size_s3` and `exectime_backup` are the original's. */
export interface BackupOutput {
  name: string;
  filename: string;
  target: "dir" | "s3";
  database: string;
  path?: string;
  bucket?: string;
  key?: string;
  filepath_s3?: string;
  size: number;
  size_s3?: number;
  sha256: string;
  start: string;
  end: string;
  durationMs: number;
  /** Seconds, as the original reported it. */
  exectime_backup: number;
  serverVersion: string;
  pgDumpVersion: string;
  retention: RetentionOutcome;
}

export function cancelled(what: string, signal: AbortSignal): ProcessError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? "aborted");
  return new ProcessError(`${what} cancelled (${reason})`);
}

/** Streams pg_dump into the pending write; resolves with size and sha256 once pg_dump exited 0. */
async function dump(
  deps: BackupDeps,
  ctx: ProcessContext,
  name: string,
  pending: PendingBackup,
): Promise<{ size: number; sha256: string; warnings: string }> {
  const { config } = deps;
  if (ctx.signal.aborted) throw cancelled(`backup ${name}`, ctx.signal);
  const args = ["--format=custom", "--no-password"];
  if (config.compression !== undefined) args.push(`--compress=${config.compression}`);
  const meter = await createOutputPump(pending.sink);
  const tool = startTool(config.pg, "pg_dump", args, toolEnv(config.pg, deps.env), "ignore", meter.childEnd);
  meter.releaseChildEnd();
  const started = Date.now();

  const onAbort = () => {
    tool.stop();
    meter.stop(cancelled(`backup ${name}`, ctx.signal));
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  const progress = setInterval(() => {
    const secs = (Date.now() - started) / 1000;
    const line = `backup ${name}: ${formatBytes(meter.bytes)} so far after ${secs.toFixed(0)} s (${formatBytes(
      meter.bytes / Math.max(secs, 0.001),
    )}/s)`;
    deps.logger.info({ backup: name, bytes: meter.bytes }, "backup progress");
    void ctx.log(line);
  }, config.progressIntervalMs);

  let sinkError: unknown;
  try {
    const piping = meter.done.catch((err: unknown) => {
      sinkError = err;
      tool.stop();
    });
    const [result] = await Promise.all([tool.exited, piping]);
    if (ctx.signal.aborted) throw cancelled(`backup ${name}`, ctx.signal);
    if (sinkError !== undefined) {
      const err = pending.explain(sinkError);
      // pg_dump's own complaint, if it had one before we stopped it, helps too.
      const own = tool.stopped ? "" : result.stderr.trim();
      throw own ? new ProcessError(`${err.message}; pg_dump said: ${own}`) : err;
    }
    if (result.code !== 0)
      throw toolFailure("pg_dump", `backup of database "${config.pg.database}" failed`, result);
    if (meter.bytes === 0) {
      throw new ProcessError(
        `backup of database "${config.pg.database}" failed: pg_dump wrote nothing (${stderrSummary(result.stderr)})`,
      );
    }
    return { size: meter.bytes, sha256: meter.sha256(), warnings: result.stderr.trim() };
  } finally {
    clearInterval(progress);
    ctx.signal.removeEventListener("abort", onAbort);
    tool.stop();
  }
}

/**
 * Deletes the backups retention no longer keeps. Reports what was really deleted: a backup whose removal
 * failed is listed under `errors` (and logged), and under `deleted` only if it is gone nevertheless (e.g. its
 * metadata document could not be deleted). Exported for tests.
 */
export async function applyRetention(
  deps: BackupDeps,
  ctx: ProcessContext,
  justMade: string,
): Promise<RetentionOutcome> {
  const { keep } = deps.config;
  const database = deps.config.pg.database;
  const outcome: RetentionOutcome = { keep, deleted: [] };
  if (keep <= 0) return outcome;
  const errors: string[] = [];
  try {
    const stored = await deps.target.list(database);
    const existing = stored
      .map((b) => parseBackupName(b.name))
      .filter((p): p is ParsedName => p !== undefined);
    const sizes = new Map(stored.map((b) => [b.name, b.size]));
    // Good: its metadata is there and records the stored size. A metadata document that cannot be read makes
    // the backup count as not good, which only ever keeps more.
    const isGood = (name: string) =>
      deps.target.readMetadata(name).then(
        (meta) => meta !== undefined && meta.size === sizes.get(name),
        () => false,
      );
    const plan = await planRetention(existing, keep, justMade, database, isGood);
    for (const old of plan.delete) {
      try {
        await deps.target.remove(old);
        outcome.deleted.push(old);
      } catch (err) {
        errors.push(messageOf(err));
        // If even the look-up fails, the backup counts as still there (the removal's error is reported).
        const gone = await deps.target.stat(old).then(
          (found) => found === undefined,
          () => false,
        );
        if (gone) outcome.deleted.push(old);
      }
    }
  } catch (err) {
    errors.push(messageOf(err));
  }
  if (outcome.deleted.length > 0)
    await ctx.log(`retention (keep ${keep}): deleted ${outcome.deleted.join(", ")}`);
  if (errors.length > 0) {
    // The new backup is good: a retention problem is reported, not turned into a failed backup.
    outcome.errors = errors;
    deps.logger.warn({ errors }, "retention incomplete");
    await ctx.log(`retention (keep ${keep}) incomplete: ${errors.join("; ")}`);
  }
  return outcome;
}

export async function runBackup(deps: BackupDeps, ctx: ProcessContext): Promise<BackupOutput> {
  const { config, target } = deps;
  const pgc = config.pg;
  const database = pgc.database;
  const now = deps.now ?? (() => new Date());
  if (ctx.signal.aborted) throw cancelled("backup", ctx.signal);

  const session = await connect(pgc);
  try {
    await lockForBackup(session, pgc, database);
    const [version, dumpVersion] = await Promise.all([serverVersion(session, pgc), deps.pgDumpVersion()]);
    const writer = await ownWriterTag(session, pgc);
    // Best effort: a store may not allow listing unfinished uploads; the backup itself does not need it.
    try {
      const stale = await target.cleanupStale(database, writer);
      if (stale.length > 0) await ctx.log(`removed unfinished writes of earlier runs: ${stale.join(", ")}`);
    } catch (err) {
      deps.logger.warn({ err: messageOf(err) }, "could not look for unfinished writes of earlier runs");
    }

    const start = now();
    const name = backupName(database, start);
    const location = target.locate(name);
    await ctx.log(
      `backup ${name}: pg_dump of "${database}" on ${pgc.host}:${pgc.port} to ${target.description}`,
    );
    deps.logger.info({ backup: name, target: target.kind }, "backup started");

    const pending = await target.begin(name, writer);
    let meta: BackupMetadata;
    let storedSize: number;
    try {
      const { size, sha256, warnings } = await dump(deps, ctx, name, pending);
      if (warnings) await ctx.log(`pg_dump: ${warnings}`);
      const end = now();
      meta = {
        format: METADATA_FORMAT,
        name,
        database,
        host: pgc.host,
        port: pgc.port,
        user: pgc.user,
        serverVersion: version,
        pgDumpVersion: dumpVersion,
        compression: config.compression,
        start: start.toISOString(),
        end: end.toISOString(),
        durationMs: end.getTime() - start.getTime(),
        size,
        sha256,
      };
      if (ctx.signal.aborted) throw cancelled(`backup ${name}`, ctx.signal);
      ({ storedSize } = await pending.commit(meta));
    } catch (err) {
      await pending.abort();
      deps.logger.warn({ backup: name, err: messageOf(err) }, "backup failed; partial output removed");
      throw err instanceof ProcessError ? err : new ProcessError(`backup ${name} failed: ${messageOf(err)}`);
    }
    await ctx.log(
      `backup ${name}: ${formatBytes(meta.size)} in ${(meta.durationMs / 1000).toFixed(1)} s, sha256 ${meta.sha256}`,
    );
    deps.logger.info({ backup: name, size: meta.size, durationMs: meta.durationMs }, "backup finished");

    const retention = await applyRetention(deps, ctx, name);
    const output: BackupOutput = {
      name,
      filename: name,
      target: target.kind,
      database,
      size: meta.size,
      sha256: meta.sha256,
      start: meta.start,
      end: meta.end,
      durationMs: meta.durationMs,
      exectime_backup: meta.durationMs / 1000,
      serverVersion: version,
      pgDumpVersion: dumpVersion,
      retention,
    };
    if (location.path) output.path = location.path;
    if (location.bucket) {
      output.bucket = location.bucket;
      output.key = location.key;
      output.filepath_s3 = location.key;
      output.size_s3 = storedSize;
    }
    return output;
  } finally {
    await session.end();
  }
}
