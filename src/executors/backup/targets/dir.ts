/**
 * Directory target (e.g. a mounted volume). A backup is written to a hidden temporary file in the same
 * directory (`.<name>.partial-<writer>-<random>`, see partial.ts), flushed to disk, then published under its
 * final name with link() (which never replaces an existing file) and the temporary name removed; the metadata
 * document is published first, so a visible backup always has its metadata. Nothing is copied: the temporary
 * file IS the backup. A killed executor's temporary files are removed by the next backup of the same writer.
 */
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { ProcessError } from "../../../executor/types.js";
import { fsError, messageOf } from "../errors.js";
import { type BackupMetadata, decodeMetadata, encodeMetadata } from "../metadata.js";
import { metadataNameOf, parseBackupName } from "../names.js";
import { PARTIAL, type PartialWrite, parsePartial, partialBase, partialPrefixOf } from "./partial.js";
import {
  type BackupLocation,
  type PendingBackup,
  STALE_LIMIT,
  type StoredBackup,
  type Target,
} from "./target.js";

/**
 * Removes a file for a cleanup that must not fail (abort, leftovers): a failure is logged, not thrown.
 * Resolves whether the file is gone (a file that did not exist counts as gone).
 */
async function removeLogged(file: string, logger: Logger): Promise<boolean> {
  try {
    await fs.rm(file, { force: true });
    return true;
  } catch (err) {
    logger.warn({ file, err: messageOf(err) }, "could not remove a file in the backup directory");
    return false;
  }
}

/** Makes a rename/link durable: fsync the directory entry (best effort: not every file system allows it). */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r").catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close().catch(() => undefined);
}

/** Publishes `from` as `to` without ever replacing an existing `to`. */
async function publish(from: string, to: string): Promise<void> {
  try {
    await fs.link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Some mounted file systems (SMB, some FUSE) have no hard links: fall back to a checked rename.
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EXDEV") throw err;
    const exists = await fs.lstat(to).then(
      () => true,
      () => false,
    );
    if (exists) throw Object.assign(new Error(`${to} already exists`), { code: "EEXIST" });
    await fs.rename(from, to);
    return;
  }
  await fs.unlink(from);
}

class DirPending implements PendingBackup {
  private metaWritten = false;
  private published = false;

  constructor(
    private readonly target: DirTarget,
    private readonly name: string,
    private readonly tempFile: string,
    readonly sink: WriteStream,
  ) {}

  async commit(meta: BackupMetadata): Promise<{ storedSize: number }> {
    const dir = this.target.dir;
    const final = path.join(dir, this.name);
    const metaFinal = path.join(dir, metadataNameOf(this.name));
    try {
      const { size } = await fs.stat(this.tempFile);
      if (size !== meta.size) {
        throw new ProcessError(
          `backup directory ${dir}: ${size} bytes were stored but pg_dump wrote ${meta.size}; backup discarded`,
        );
      }
      const metaTemp = `${this.tempFile}.json`;
      await fs.writeFile(metaTemp, encodeMetadata(meta), { flag: "wx", flush: true });
      await publish(metaTemp, metaFinal);
      this.metaWritten = true;
      await publish(this.tempFile, final);
      this.published = true;
      await syncDir(dir);
      return { storedSize: size };
    } catch (err) {
      await this.abort();
      throw fsError(err, dir, `publish backup ${this.name}`);
    }
  }

  explain(err: unknown): ProcessError {
    return fsError(err, this.target.dir, `write backup ${this.name}`);
  }

  async abort(): Promise<void> {
    if (!this.sink.destroyed) this.sink.destroy();
    // Wait for the descriptor to close so the unlink below really frees the space.
    if (!this.sink.closed) await new Promise<void>((resolve) => this.sink.once("close", () => resolve()));
    const { dir, logger } = this.target;
    await removeLogged(this.tempFile, logger);
    await removeLogged(`${this.tempFile}.json`, logger);
    if (this.published) await removeLogged(path.join(dir, this.name), logger);
    if (this.metaWritten) await removeLogged(path.join(dir, metadataNameOf(this.name)), logger);
  }
}

export class DirTarget implements Target {
  readonly kind = "dir" as const;
  readonly description: string;

  constructor(
    readonly dir: string,
    /** Cleanup failures (which never fail an operation) are logged here. */
    readonly logger: Logger,
  ) {
    this.description = `directory ${dir}`;
  }

  locate(name: string): BackupLocation {
    return { target: "dir", path: path.join(this.dir, name) };
  }

  async check(): Promise<void> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
      const probe = path.join(this.dir, `.probe${PARTIAL}${randomBytes(6).toString("hex")}`);
      await fs.writeFile(probe, "", { flag: "wx" });
      await fs.rm(probe, { force: true });
    } catch (err) {
      throw fsError(err, this.dir, "write");
    }
  }

  async begin(name: string, writer: string): Promise<PendingBackup> {
    const tempFile = path.join(this.dir, `${partialBase(name, writer)}-${randomBytes(6).toString("hex")}`);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      const sink = createWriteStream(tempFile, { flags: "wx", mode: 0o600, flush: true });
      await new Promise<void>((resolve, reject) => {
        sink.once("open", () => resolve());
        sink.once("error", reject);
      });
      return new DirPending(this, name, tempFile, sink);
    } catch (err) {
      await removeLogged(tempFile, this.logger);
      throw fsError(err, this.dir, "create a backup file");
    }
  }

  async cleanupStale(database: string, writer: string): Promise<string[]> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw fsError(err, this.dir, "look for unfinished writes");
    }
    const prefix = partialPrefixOf(database);
    const stale: { entry: string; partial: PartialWrite }[] = [];
    for (const entry of entries) {
      const partial = entry.startsWith(prefix) ? parsePartial(entry) : undefined;
      if (!partial || parseBackupName(partial.name)?.database !== database) continue;
      // Ours: this writer's, and untagged ones of earlier versions (which removed every leftover of the database).
      if (partial.writer !== undefined && partial.writer !== writer) continue;
      stale.push({ entry, partial });
      if (stale.length >= STALE_LIMIT) break;
    }
    const present = new Set(entries);
    // Only what was really removed is reported; a failed removal is logged (and retried by the next backup).
    const removed: string[] = [];
    for (const { entry, partial } of stale) {
      if (!(await removeLogged(path.join(this.dir, entry), this.logger))) continue;
      removed.push(entry);
      // Killed between publishing the metadata and the backup: the metadata describes nothing.
      const meta = metadataNameOf(partial.name);
      if (!partial.metadata && !present.has(partial.name) && present.has(meta)) {
        if (await removeLogged(path.join(this.dir, meta), this.logger)) removed.push(meta);
        present.delete(meta);
      }
    }
    return removed;
  }

  async list(database?: string): Promise<StoredBackup[]> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw fsError(err, this.dir, "list backups");
    }
    const out: StoredBackup[] = [];
    for (const entry of entries) {
      const parsed = parseBackupName(entry);
      if (!parsed || (database !== undefined && parsed.database !== database)) continue;
      const found = await this.stat(entry);
      if (found) out.push(found);
    }
    return out;
  }

  async stat(name: string): Promise<StoredBackup | undefined> {
    try {
      const st = await fs.stat(path.join(this.dir, name));
      return st.isFile() ? { name, size: st.size, modified: st.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw fsError(err, this.dir, `read backup ${name}`);
    }
  }

  async read(name: string): Promise<Readable> {
    const file = path.join(this.dir, name);
    const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", reject);
    }).catch((err) => {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new ProcessError(`backup ${name} not found in ${this.description}`);
      }
      throw fsError(err, this.dir, `read backup ${name}`);
    });
    return stream;
  }

  async readMetadata(name: string): Promise<BackupMetadata | undefined> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dir, metadataNameOf(name)), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw fsError(err, this.dir, `read the metadata of ${name}`);
    }
    try {
      return decodeMetadata(text, name);
    } catch (err) {
      throw new ProcessError(`${this.description}: ${(err as Error).message}`);
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await fs.rm(path.join(this.dir, name), { force: true });
    } catch (err) {
      throw fsError(err, this.dir, `delete backup ${name}`);
    }
    try {
      await fs.rm(path.join(this.dir, metadataNameOf(name)), { force: true });
    } catch (err) {
      throw fsError(err, this.dir, `delete the metadata of ${name} (the backup itself was deleted)`);
    }
  }

  async close(): Promise<void> {}
}
