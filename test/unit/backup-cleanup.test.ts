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
  ListMultipartUploadsCommand,
} from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ProcessContext } from "../../src/executor/types.js";
import type { BackupConfig, S3TargetConfig } from "../../src/executors/backup/config.js";
import { applyRetention, type BackupDeps } from "../../src/executors/backup/dump.js";
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

/** A backup directory holding backups of "shop" made on the given days, each with its metadata document. */
async function backupDir(days: number[]): Promise<{ dir: string; names: string[] }> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), "backup-cleanup-"));
  const names = days.map(nameOn);
  for (const name of names) {
    await fs.writeFile(path.join(dir, name), "dump");
    await fs.writeFile(path.join(dir, metadataNameOf(name)), "{}");
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
    const stuck = `.${nameOn(1)}.partial-aaaaaa`;
    const gone = `.${nameOn(2)}.partial-bbbbbb`;
    const other = `.${backupName("shop_x", new Date(Date.UTC(2025, 0, 3)))}.partial-cccccc`;
    for (const f of [stuck, gone, other]) await fs.writeFile(path.join(dir, f), "");
    failRm((file) => file === path.join(dir, stuck));
    const logger = fakeLogger();

    expect(await new DirTarget(dir, logger).cleanupStale("shop")).toEqual([gone]);

    expect((await fs.readdir(dir)).sort()).toEqual([other, stuck].sort());
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith(
      { file: path.join(dir, stuck), err: `EACCES: permission denied, unlink '${path.join(dir, stuck)}'` },
      "could not remove a file in the backup directory",
    );
  });

  it("a missing directory has no leftovers; a directory it cannot read is an error, not an empty list", async () => {
    const { dir } = await backupDir([]);
    const logger = fakeLogger();
    expect(await new DirTarget(path.join(dir, "missing"), logger).cleanupStale("shop")).toEqual([]);
    const file = path.join(dir, "a-file");
    await fs.writeFile(file, "");
    await expect(new DirTarget(file, logger).cleanupStale("shop")).rejects.toThrow(
      `backup directory ${file}: cannot look for unfinished writes: a component of the path is not a directory (ENOTDIR)`,
    );
  });

  it("an aborted write whose temporary file cannot be removed is logged, and abort still resolves", async () => {
    const { dir } = await backupDir([]);
    const logger = fakeLogger();
    const target = new DirTarget(dir, logger);
    const pending = await target.begin(nameOn(1));
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
      throw refused();
    }) as never);
    const name = nameOn(1);
    const pending = await target.begin(name);
    await pending.abort();
    expect(send.mock.calls.at(-1)?.[0]).toBeInstanceOf(AbortMultipartUploadCommand);
    expect(logger.warn).toHaveBeenCalledWith(
      { bucket: "b", key: `backups/${name}`, uploadId: "upload-1", err: "connect ECONNREFUSED 127.0.0.1:9" },
      "could not abort a multipart upload; its parts stay in the bucket until it is aborted",
    );
    await target.close();
  });

  it("cleanupStale reports only the uploads it aborted and logs the others", async () => {
    const logger = fakeLogger();
    const target = new S3Target(cfg, logger);
    const [a, b] = [nameOn(1), nameOn(2)];
    vi.spyOn(target.client, "send").mockImplementation((async (command: unknown) => {
      if (command instanceof ListMultipartUploadsCommand) {
        return {
          Uploads: [
            { Key: `backups/${a}`, UploadId: "u-a" },
            { Key: `backups/${b}`, UploadId: "u-b" },
          ],
          IsTruncated: false,
        };
      }
      if (command instanceof AbortMultipartUploadCommand && command.input.UploadId === "u-a") throw refused();
      return {};
    }) as never);
    expect(await target.cleanupStale("shop")).toEqual([`backups/${b}`]);
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
