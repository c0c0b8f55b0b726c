/**
 * Cleanups that must not fail an operation still say what went wrong: a delete that fails is neither reported
 * as done nor ignored (directory target: injected fs failures, as root ignores read-only directories; S3: a
 * client whose calls fail).
 */
import fsSync from "node:fs";
import fs from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ProcessContext } from "../../src/executor/types.js";
import type { BackupConfig, S3TargetConfig } from "../../src/executors/backup/config.js";
import { applyRetention, type BackupDeps } from "../../src/executors/backup/dump.js";
import { encodeMetadata, METADATA_FORMAT } from "../../src/executors/backup/metadata.js";
import { backupName, metadataNameOf } from "../../src/executors/backup/names.js";
import { ignoreEpipe } from "../../src/executors/backup/streams.js";
import { DirTarget } from "../../src/executors/backup/targets/dir.js";
import { S3Target } from "../../src/executors/backup/targets/s3.js";

function fakeLogger(): Logger & { warn: ReturnType<typeof vi.fn> } {
  const logger = { warn: vi.fn(), info: vi.fn(), error: vi.fn(), debug: vi.fn() };
  return logger as unknown as Logger & { warn: ReturnType<typeof vi.fn> };
}

function fakeCtx(): ProcessContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    processId: "p",
    funcName: "backup",
    signal: new AbortController().signal,
    logger: fakeLogger(),
    log: async (line: string) => {
      lines.push(line);
    },
    lines,
  };
}

const nameOn = (day: number) => backupName("shop", new Date(Date.UTC(2025, 0, day)));
/** Writer tags (writer.ts): this executor's and another one's. */
const OURS = "aaaaaaaaaaaa";
const THEIRS = "bbbbbbbbbbbb";

function metadataOf(name: string, size: number): Buffer {
  const at = new Date().toISOString();
  return encodeMetadata({
    format: METADATA_FORMAT,
    name,
    database: "shop",
    host: "db",
    port: 5432,
    user: "u",
    serverVersion: "17",
    pgDumpVersion: "17",
    start: at,
    end: at,
    durationMs: 1,
    size,
    sha256: "0".repeat(64),
  });
}

/** A backup directory holding good backups of "shop" made on the given days, each with its metadata document. */
async function backupDir(days: number[]): Promise<{ dir: string; names: string[] }> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), "backup-cleanup-"));
  const names = days.map(nameOn);
  for (const name of names) {
    await fs.writeFile(path.join(dir, name), "dump");
    await fs.writeFile(path.join(dir, metadataNameOf(name)), metadataOf(name, 4));
  }
  return { dir, names };
}

/** Makes fs.rm fail with EACCES for the files `fails` accepts; every other call goes through. */
function failRm(fails: (file: string) => boolean): void {
  const real = fs.rm.bind(fs);
  vi.spyOn(fs, "rm").mockImplementation(async (file, options) => {
    if (fails(String(file))) {
      throw Object.assign(new Error(`EACCES: permission denied, unlink '${String(file)}'`), {
        code: "EACCES",
      });
    }
    return real(file, options);
  });
}

function retentionDeps(target: DirTarget, logger: Logger, keep: number): BackupDeps {
  return {
    config: { keep, pg: { database: "shop" } } as BackupConfig,
    target,
    env: {},
    logger,
    pgDumpVersion: async () => "pg_dump (PostgreSQL) 17",
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("retention on the directory target", () => {
  it("a backup whose delete failed is not reported as deleted; the failure is reported and logged", async () => {
    const { dir, names } = await backupDir([1, 2, 3]);
    const [oldest, older, justMade] = names as [string, string, string];
    failRm((file) => file === path.join(dir, older));
    const logger = fakeLogger();
    const ctx = fakeCtx();

    const outcome = await applyRetention(retentionDeps(new DirTarget(dir, logger), logger, 1), ctx, justMade);

    expect(outcome.deleted).toEqual([oldest]);
    expect(outcome.errors).toEqual([
      `backup directory ${dir}: cannot delete backup ${older}: permission denied (EACCES)`,
    ]);
    expect((await fs.readdir(dir)).sort()).toEqual(
      [older, justMade, metadataNameOf(older), metadataNameOf(justMade)].sort(),
    );
    expect(ctx.lines).toEqual([
      `retention (keep 1): deleted ${oldest}`,
      `retention (keep 1) incomplete: ${outcome.errors?.[0]}`,
    ]);
    expect(logger.warn).toHaveBeenCalledWith({ errors: outcome.errors }, "retention incomplete");
  });

  it("a backup deleted without its metadata document counts as deleted, and the leftover is reported", async () => {
    const { dir, names } = await backupDir([1, 2]);
    const [old, justMade] = names as [string, string];
    failRm((file) => file === path.join(dir, metadataNameOf(old)));
    const logger = fakeLogger();

    const outcome = await applyRetention(
      retentionDeps(new DirTarget(dir, logger), logger, 1),
      fakeCtx(),
      justMade,
    );

    expect(outcome.deleted).toEqual([old]);
    expect(outcome.errors).toEqual([
      `backup directory ${dir}: cannot delete the metadata of ${old} (the backup itself was deleted): permission denied (EACCES)`,
    ]);
    expect(fsSync.existsSync(path.join(dir, old))).toBe(false);
  });
});

describe("DirTarget.cleanupStale", () => {
  it("reports only the leftovers it really removed and logs the others", async () => {
    const { dir } = await backupDir([]);
    const stuck = `.${nameOn(1)}.partial-${OURS}-aaaaaa`;
    const gone = `.${nameOn(2)}.partial-${OURS}-bbbbbb`;
    const other = `.${backupName("shop_x", new Date(Date.UTC(2025, 0, 3)))}.partial-${OURS}-cccccc`;
    for (const f of [stuck, gone, other]) await fs.writeFile(path.join(dir, f), "");
    failRm((file) => file === path.join(dir, stuck));
    const logger = fakeLogger();

    expect(await new DirTarget(dir, logger).cleanupStale("shop", OURS)).toEqual([gone]);

    expect((await fs.readdir(dir)).sort()).toEqual([other, stuck].sort());
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith(
      { file: path.join(dir, stuck), err: `EACCES: permission denied, unlink '${path.join(dir, stuck)}'` },
      "could not remove a file in the backup directory",
    );
  });

  it("removes this writer's and untagged (earlier versions') leftovers, never another writer's", async () => {
    const { dir, names } = await backupDir([1]);
    const ours = `.${nameOn(2)}.partial-${OURS}-0a0a0a0a0a0a`;
    const oursMeta = `${ours}.json`;
    const legacy = `.${nameOn(3)}.partial-0b0b0b0b0b0b`;
    const theirs = `.${nameOn(4)}.partial-${THEIRS}-0c0c0c0c0c0c`;
    const notOurs = [".hidden", "notes.txt", `.${nameOn(5)}.partial-XYZ`];
    for (const f of [ours, oursMeta, legacy, theirs, ...notOurs]) await fs.writeFile(path.join(dir, f), "");

    const removed = await new DirTarget(dir, fakeLogger()).cleanupStale("shop", OURS);

    expect(removed.sort()).toEqual([ours, oursMeta, legacy].sort());
    const [good] = names as [string];
    expect((await fs.readdir(dir)).sort()).toEqual([good, metadataNameOf(good), theirs, ...notOurs].sort());
  });

  it("removes metadata published without its backup (killed between the two), keeps a published backup's", async () => {
    const { dir } = await backupDir([]);
    const [orphan, published] = [nameOn(1), nameOn(2)];
    // Killed after publishing the metadata of `orphan`, and after linking `published` but before unlinking.
    await fs.writeFile(path.join(dir, metadataNameOf(orphan)), metadataOf(orphan, 4));
    await fs.writeFile(path.join(dir, `.${orphan}.partial-${OURS}-0d0d0d0d0d0d`), "dump");
    await fs.writeFile(path.join(dir, published), "dump");
    await fs.writeFile(path.join(dir, metadataNameOf(published)), metadataOf(published, 4));
    await fs.link(path.join(dir, published), path.join(dir, `.${published}.partial-${OURS}-0e0e0e0e0e0e`));

    const removed = await new DirTarget(dir, fakeLogger()).cleanupStale("shop", OURS);

    expect(removed).toContain(metadataNameOf(orphan));
    expect((await fs.readdir(dir)).sort()).toEqual([published, metadataNameOf(published)].sort());
    expect(await fs.readFile(path.join(dir, published), "utf8")).toBe("dump");
  });

  it("a missing directory has no leftovers; a directory it cannot read is an error, not an empty list", async () => {
    const { dir } = await backupDir([]);
    const logger = fakeLogger();
    expect(await new DirTarget(path.join(dir, "missing"), logger).cleanupStale("shop", OURS)).toEqual([]);
    const file = path.join(dir, "a-file");
    await fs.writeFile(file, "");
    await expect(new DirTarget(file, logger).cleanupStale("shop", OURS)).rejects.toThrow(
      `backup directory ${file}: cannot look for unfinished writes: a component of the path is not a directory (ENOTDIR)`,
    );
  });

  it("an aborted write whose temporary file cannot be removed is logged, and abort still resolves", async () => {
    const { dir } = await backupDir([]);
    const logger = fakeLogger();
    const target = new DirTarget(dir, logger);
    const pending = await target.begin(nameOn(1), OURS);
    failRm((file) => file.includes(".partial-") && !file.endsWith(".json"));
    await pending.abort();
    const [temp] = await fs.readdir(dir);
    expect(temp).toMatch(/\.partial-/);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.objectContaining({ file: path.join(dir, temp as string) }),
      "could not remove a file in the backup directory",
    );
  });
});

describe("S3 target: failed multipart aborts are logged", () => {
  const cfg: S3TargetConfig = {
    kind: "s3",
    endpoint: "http://127.0.0.1:9",
    region: "us-east-1",
    bucket: "b",
    prefix: "backups/",
    forcePathStyle: true,
    insecureSkipVerify: false,
    partSizeBytes: 5 * 1024 * 1024,
    queueSize: 2,
  };
  const refused = () =>
    Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" });

  it("aborting a pending backup logs the upload id and the error when the abort fails", async () => {
    const logger = fakeLogger();
    const target = new S3Target(cfg, logger);
    const send = vi.spyOn(target.client, "send").mockImplementation((async (command: unknown) => {
      if (command instanceof CreateMultipartUploadCommand) return { UploadId: "upload-1" };
      if (command instanceof PutObjectCommand) return {};
      throw refused();
    }) as never);
    const name = nameOn(1);
    const pending = await target.begin(name, OURS);
    await pending.abort();
    // The marker recording the upload stays: it is how the next backup finds the upload to abort.
    expect(send.mock.calls.at(-1)?.[0]).toBeInstanceOf(AbortMultipartUploadCommand);
    expect(send.mock.calls.some(([c]) => c instanceof DeleteObjectCommand)).toBe(false);
    expect(logger.warn).toHaveBeenCalledWith(
      { bucket: "b", key: `backups/${name}`, uploadId: "upload-1", err: "connect ECONNREFUSED 127.0.0.1:9" },
      "could not abort a multipart upload; its parts stay in the bucket until it is aborted",
    );
    await target.close();
  });

  /**
   * A bucket in memory, with MinIO's listing of unfinished uploads: a prefix names one key, so only a
   * cleanup that knows the exact key (from its marker) finds an upload.
   */
  function fakeBucket(target: S3Target, objects: Set<string>, uploads: Map<string, string>, failing: string) {
    return vi.spyOn(target.client, "send").mockImplementation((async (command: unknown) => {
      if (command instanceof ListObjectsV2Command) {
        const prefix = command.input.Prefix ?? "";
        return { Contents: [...objects].filter((k) => k.startsWith(prefix)).map((Key) => ({ Key })) };
      }
      if (command instanceof ListMultipartUploadsCommand) {
        const key = command.input.Prefix;
        const found = [...uploads].filter(([, k]) => k === key);
        return { Uploads: found.map(([UploadId, Key]) => ({ Key, UploadId })), IsTruncated: false };
      }
      if (command instanceof AbortMultipartUploadCommand) {
        if (command.input.UploadId === failing) throw refused();
        uploads.delete(command.input.UploadId as string);
        return {};
      }
      if (command instanceof HeadObjectCommand) {
        if (objects.has(command.input.Key as string)) return { ContentLength: 4 };
        throw Object.assign(new Error("NotFound"), { name: "NotFound", $metadata: { httpStatusCode: 404 } });
      }
      if (command instanceof DeleteObjectCommand) {
        objects.delete(command.input.Key as string);
        return {};
      }
      throw new Error(`unexpected ${String(command)}`);
    }) as never);
  }

  it("cleanupStale aborts this writer's recorded uploads only, and keeps the marker of one it could not abort", async () => {
    const logger = fakeLogger();
    const target = new S3Target(cfg, logger);
    const [a, b, c] = [nameOn(1), nameOn(2), nameOn(3)];
    const marker = (name: string, tag: string) => `backups/.${name}.partial-${tag}`;
    const objects = new Set([
      marker(a, OURS),
      marker(b, OURS),
      `backups/${metadataNameOf(b)}`, // stored just before the kill, the upload never completed
      marker(c, THEIRS),
      "backups/other-app/file",
    ]);
    const uploads = new Map([
      ["u-a", `backups/${a}`],
      ["u-b", `backups/${b}`],
      ["u-c", `backups/${c}`],
    ]);
    fakeBucket(target, objects, uploads, "u-a");

    expect(await target.cleanupStale("shop", OURS)).toEqual([
      `backups/${b} (unfinished upload)`,
      `backups/${metadataNameOf(b)}`,
      marker(b, OURS),
    ]);
    expect([...uploads.keys()].sort()).toEqual(["u-a", "u-c"]);
    expect([...objects].sort()).toEqual(
      [marker(a, OURS), marker(c, THEIRS), "backups/other-app/file"].sort(),
    );
    expect(logger.warn).toHaveBeenCalledWith(
      expect.objectContaining({
        key: `backups/${a}`,
        uploadId: "u-a",
        err: "connect ECONNREFUSED 127.0.0.1:9",
      }),
      expect.stringContaining("could not abort a multipart upload"),
    );
    await target.close();
  });

  it("cleanupStale keeps a completed backup whose marker was left, and removes the marker", async () => {
    const target = new S3Target(cfg, fakeLogger());
    const name = nameOn(1);
    const marker = `backups/.${name}.partial-${OURS}`;
    const done = [`backups/${name}`, `backups/${metadataNameOf(name)}`];
    const objects = new Set([marker, ...done]);
    fakeBucket(target, objects, new Map(), "");
    expect(await target.cleanupStale("shop", OURS)).toEqual([marker]);
    expect([...objects].sort()).toEqual(done.sort());
    await target.close();
  });
});

describe("ignoreEpipe (verify's pg_restore stdin)", () => {
  it("ignores EPIPE and keeps the first other error", () => {
    const stream = new PassThrough();
    const failure = ignoreEpipe(stream);
    stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    expect(failure()).toBeUndefined();
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    stream.emit("error", reset);
    stream.emit("error", new Error("later"));
    expect(failure()).toBe(reset);
  });
});
