/**
 * Where backups live. Two implementations share this interface: a directory (dir.ts) and S3-compatible
 * storage (s3.ts). A backup is written through a PendingBackup and becomes visible only on commit (rename /
 * multipart completion); abort leaves nothing behind. Every method throws ProcessError with a message naming
 * the directory or bucket and what went wrong.
 */
import type { Readable, Writable } from "node:stream";
import type { ProcessError } from "../../../executor/types.js";
import type { BackupMetadata } from "../metadata.js";

/** Leftovers one backup removes at most before it starts: the rest wait for the next one. */
export const STALE_LIMIT = 100;

export interface StoredBackup {
  name: string;
  size: number;
  /** Modification time as the storage reports it (the name's timestamp is the backup's start). */
  modified?: Date;
}

/** Where a backup is, for outputs: `path` for a directory, `bucket` + `key` for S3. */
export interface BackupLocation {
  target: "dir" | "s3";
  path?: string;
  bucket?: string;
  key?: string;
}

export interface PendingBackup {
  /** Receives the dump bytes. Ending it does not publish anything. */
  readonly sink: Writable;
  /**
   * Called after the sink finished and pg_dump exited 0: checks that the stored size equals `meta.size`,
   * stores the metadata, then makes the backup visible. On failure it cleans up what it wrote and throws.
   */
  commit(meta: BackupMetadata): Promise<{ storedSize: number }>;
  /** Turns an error of the sink into a message naming the target. */
  explain(err: unknown): ProcessError;
  /** Removes everything this write created (idempotent, never throws). */
  abort(): Promise<void>;
}

export interface Target {
  readonly kind: "dir" | "s3";
  /** "directory /backups" or "bucket b (prefix backups/) at http://..." for messages. */
  readonly description: string;
  locate(name: string): BackupLocation;
  /** Throws when the target cannot be used (missing bucket, unwritable directory). */
  check(): Promise<void>;
  /** Starts writing backup `name`; its temporary parts carry `writer` (writer.ts) until it is published. */
  begin(name: string, writer: string): Promise<PendingBackup>;
  /**
   * Removes what writes of one database tagged `writer` left unfinished (a killed executor): temporary files,
   * unfinished uploads, metadata published without its backup; at most STALE_LIMIT of them per call. Only
   * called while holding the backup lock of that tag's scope, so none of them can still be in progress; other
   * tags are never touched. Resolves with what was removed; what could not be is logged and tried next time.
   */
  cleanupStale(database: string, writer: string): Promise<string[]>;
  /** Backups in our name pattern, optionally of one database (unordered). */
  list(database?: string): Promise<StoredBackup[]>;
  /** undefined when the backup does not exist. */
  stat(name: string): Promise<StoredBackup | undefined>;
  read(name: string, signal?: AbortSignal): Promise<Readable>;
  /** undefined when there is no metadata document; throws when it is damaged. */
  readMetadata(name: string): Promise<BackupMetadata | undefined>;
  /** Deletes the backup, then its metadata. */
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}
