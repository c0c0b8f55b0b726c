/**
 * S3-compatible target (AWS, MinIO, ...). A backup is a multipart upload under `<prefix><name>`; it becomes
 * visible only at CompleteMultipartUpload, which happens after pg_dump exited 0 and the part sizes the store
 * reports (ListParts) add up to the bytes pg_dump wrote. The metadata object `<key>.json` is stored just
 * before completion. Any failure aborts the multipart upload (the parts are discarded by the store) and
 * deletes what was published.
 *
 * Before the upload starts, a small marker object `<prefix>.<name>.partial-<writer>` (partial.ts) records it;
 * it is deleted once the backup is published or its upload aborted. A killed executor leaves the marker, and
 * the next backup of the same writer finds the unfinished upload through it: by listing the uploads of that
 * exact key, which every store supports (MinIO lists uploads of one key only: a prefix listing finds nothing).
 *
 * Longer than most files here on purpose: it is one Target (the interface of targets/target.ts) over one SDK
 * client, and its parts (upload, list, read, retention, stale-upload cleanup) share that client and its errors.
 */

import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import { ProcessError } from "../../../executor/types.js";
import type { S3TargetConfig } from "../config.js";
import { messageOf, s3CodeOf, s3Error, s3StatusOf } from "../errors.js";
import { type BackupMetadata, decodeMetadata, encodeMetadata } from "../metadata.js";
import { metadataNameOf, NAME_PREFIX, namePrefixOf, parseBackupName } from "../names.js";
import { MultipartWriter } from "./multipart.js";
import { parsePartial, partialBase, partialPrefixOf } from "./partial.js";
import {
  type BackupLocation,
  type PendingBackup,
  STALE_LIMIT,
  type StoredBackup,
  type Target,
} from "./target.js";

/** Pages of a listing read at most for one cleanup (1000 keys each): a crowded prefix cannot stall a backup. */
const STALE_PAGES = 10;

function isNotFound(err: unknown): boolean {
  const code = s3CodeOf(err);
  return code === "NoSuchKey" || code === "NotFound" || (s3StatusOf(err) === 404 && code !== "NoSuchBucket");
}

export function s3ClientConfig(cfg: S3TargetConfig): S3ClientConfig {
  const config: S3ClientConfig = {
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    maxAttempts: 3,
  };
  if (cfg.endpoint) config.endpoint = cfg.endpoint;
  if (cfg.accessKeyId && cfg.secretAccessKey) {
    config.credentials = {
      accessKeyId: cfg.accessKeyId,
      secretAccessKey: cfg.secretAccessKey,
      ...(cfg.sessionToken ? { sessionToken: cfg.sessionToken } : {}),
    };
  }
  if (cfg.insecureSkipVerify || cfg.caFile) {
    const httpsAgent: { rejectUnauthorized?: boolean; ca?: Buffer; keepAlive: boolean } = { keepAlive: true };
    if (cfg.insecureSkipVerify) httpsAgent.rejectUnauthorized = false;
    if (cfg.caFile) httpsAgent.ca = readFileSync(cfg.caFile);
    config.requestHandler = { httpsAgent };
  }
  return config;
}

class S3Pending implements PendingBackup {
  private metaPut = false;
  private completed = false;

  constructor(
    private readonly target: S3Target,
    private readonly name: string,
    private readonly uploadId: string,
    readonly sink: MultipartWriter,
    /** The key of the marker object recording this upload. */
    private readonly marker: string,
  ) {}

  async commit(meta: BackupMetadata): Promise<{ storedSize: number }> {
    const t = this.target;
    const key = t.keyOf(this.name);
    try {
      const stored = await t.listPartsSize(key, this.uploadId);
      if (stored !== meta.size || this.sink.uploadedBytes !== meta.size) {
        throw new ProcessError(
          `S3 bucket "${t.bucket}": the parts hold ${stored} bytes but pg_dump wrote ${meta.size}; backup discarded`,
        );
      }
      await t.call(`store the metadata of ${this.name}`, (c) =>
        c.send(
          new PutObjectCommand({
            Bucket: t.bucket,
            Key: t.keyOf(metadataNameOf(this.name)),
            Body: encodeMetadata(meta),
            ContentType: "application/json",
          }),
        ),
      );
      this.metaPut = true;
      const parts = this.sink.parts.map(({ PartNumber, ETag, ChecksumCRC32 }) => ({
        PartNumber,
        ETag,
        ChecksumCRC32,
      }));
      await t.call(`complete the upload of ${this.name}`, (c) =>
        c.send(
          new CompleteMultipartUploadCommand({
            Bucket: t.bucket,
            Key: key,
            UploadId: this.uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
      this.completed = true;
      const head = await t.call(`check the size of ${this.name}`, (c) =>
        c.send(new HeadObjectCommand({ Bucket: t.bucket, Key: key })),
      );
      if (head.ContentLength !== meta.size) {
        throw new ProcessError(
          `S3 bucket "${t.bucket}": ${key} has ${head.ContentLength} bytes but pg_dump wrote ${meta.size}; backup discarded`,
        );
      }
      // Published: a marker left behind (the delete failed) is removed by the next backup, which keeps the backup.
      await t.deleteLogged(this.marker);
      return { storedSize: head.ContentLength };
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  explain(err: unknown): ProcessError {
    return this.target.explain(err, `upload ${this.name}`);
  }

  /** Never throws: what cannot be cleaned up is logged (the next backup's cleanupStale retries uploads). */
  async abort(): Promise<void> {
    const t = this.target;
    if (!this.sink.destroyed) this.sink.destroy();
    if (!this.sink.closed) await new Promise<void>((resolve) => this.sink.once("close", () => resolve()));
    const key = t.keyOf(this.name);
    const gone = this.completed ? await t.deleteLogged(key) : await t.abortUpload(key, this.uploadId);
    const metaGone = this.metaPut ? await t.deleteLogged(t.keyOf(metadataNameOf(this.name))) : true;
    // The marker is how the next backup finds what is left, so it goes only when nothing is.
    if (gone && metaGone) await t.deleteLogged(this.marker);
  }
}

export class S3Target implements Target {
  readonly kind = "s3" as const;
  readonly description: string;
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly endpointLabel: string;

  constructor(
    private readonly cfg: S3TargetConfig,
    /** Cleanup failures (which never fail an operation) are logged here. */
    readonly logger: Logger,
  ) {
    this.client = new S3Client(s3ClientConfig(cfg));
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.endpointLabel = cfg.endpoint ?? `AWS S3 (${cfg.region})`;
    this.description = `S3 bucket "${cfg.bucket}" (prefix "${cfg.prefix}") at ${this.endpointLabel}`;
  }

  keyOf(name: string): string {
    return `${this.prefix}${name}`;
  }

  locate(name: string): BackupLocation {
    return { target: "s3", bucket: this.bucket, key: this.keyOf(name) };
  }

  explain(err: unknown, doing: string): ProcessError {
    return s3Error(err, { bucket: this.bucket, endpoint: this.endpointLabel }, doing);
  }

  /** Runs one S3 call, turning its failure into a ProcessError about `doing`. */
  async call<T>(doing: string, run: (client: S3Client) => Promise<T>): Promise<T> {
    try {
      return await run(this.client);
    } catch (err) {
      throw s3Error(err, { bucket: this.bucket, endpoint: this.endpointLabel }, doing);
    }
  }

  async check(): Promise<void> {
    await this.call("check the bucket", (c) => c.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async begin(name: string, writer: string): Promise<PendingBackup> {
    const key = this.keyOf(name);
    const marker = this.keyOf(partialBase(name, writer));
    // Recorded first: an upload that exists always has its marker. If the upload cannot be started, the marker
    // stays for the next backup to remove (the store may have started it even though the answer was lost).
    await this.call(`record the upload of ${name}`, (c) =>
      c.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: marker,
          Body: JSON.stringify({ name, writer, started: new Date().toISOString() }),
          ContentType: "application/json",
        }),
      ),
    );
    const created = await this.call(`start the upload of ${name}`, (c) =>
      c.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          ContentType: "application/octet-stream",
          ChecksumAlgorithm: "CRC32",
        }),
      ),
    );
    if (!created.UploadId)
      throw new ProcessError(`S3 bucket "${this.bucket}": no upload id returned for ${key}`);
    const sink = new MultipartWriter({
      client: this.client,
      bucket: this.bucket,
      key,
      uploadId: created.UploadId,
      partSizeBytes: this.cfg.partSizeBytes,
      queueSize: this.cfg.queueSize,
    });
    return new S3Pending(this, name, created.UploadId, sink, marker);
  }

  /** Aborts a multipart upload; resolves whether that worked, and logs the upload id and error if not. */
  async abortUpload(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
      );
      return true;
    } catch (err) {
      this.logger.warn(
        { bucket: this.bucket, key, uploadId, err: messageOf(err) },
        "could not abort a multipart upload; its parts stay in the bucket until it is aborted",
      );
      return false;
    }
  }

  /** Deletes an object for a cleanup that must not fail; resolves whether that worked, and logs why not. */
  async deleteLogged(key: string): Promise<boolean> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      this.logger.warn({ bucket: this.bucket, key, err: messageOf(err) }, "could not delete an object");
      return false;
    }
  }

  async listPartsSize(key: string, uploadId: string): Promise<number> {
    let total = 0;
    let marker: string | undefined;
    for (;;) {
      const page = await this.call(`list the parts of ${key}`, (c) =>
        c.send(
          new ListPartsCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumberMarker: marker,
          }),
        ),
      );
      for (const p of page.Parts ?? []) total += p.Size ?? 0;
      if (!page.IsTruncated || !page.NextPartNumberMarker) return total;
      marker = page.NextPartNumberMarker;
    }
  }

  async cleanupStale(database: string, writer: string): Promise<string[]> {
    const markers: { key: string; name: string }[] = [];
    for await (const key of this.keys(this.keyOf(partialPrefixOf(database)), "look for unfinished uploads")) {
      const partial = parsePartial(key.slice(this.prefix.length), true);
      if (partial?.writer !== writer || parseBackupName(partial.name)?.database !== database) continue;
      markers.push({ key, name: partial.name });
      if (markers.length >= STALE_LIMIT) break;
    }
    const removed: string[] = [];
    for (const marker of markers) {
      try {
        removed.push(...(await this.removeUnfinished(marker.name, marker.key)));
      } catch (err) {
        // This one is tried again next time; the others need not wait for it.
        this.logger.warn(
          { bucket: this.bucket, marker: marker.key, err: messageOf(err) },
          "unfinished upload kept",
        );
      }
    }
    return removed;
  }

  /** What a killed write of `name` left: its unfinished uploads, metadata without a backup, then the marker. */
  private async removeUnfinished(name: string, marker: string): Promise<string[]> {
    const key = this.keyOf(name);
    const removed: string[] = [];
    let clean = true;
    for (const uploadId of await this.uploadsOf(key)) {
      if (await this.abortUpload(key, uploadId)) removed.push(`${key} (unfinished upload)`);
      else clean = false;
    }
    if (!clean) return removed;
    // Killed between storing the metadata and completing the upload: the metadata describes nothing.
    const metaKey = this.keyOf(metadataNameOf(name));
    if (!(await this.stat(name)) && (await this.exists(metaKey)) && (await this.deleteLogged(metaKey))) {
      removed.push(metaKey);
    }
    if (await this.deleteLogged(marker)) removed.push(marker);
    return removed;
  }

  /** Upload ids of unfinished uploads of exactly `key`. */
  private async uploadsOf(key: string): Promise<string[]> {
    const ids: string[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (let page = 0; page < STALE_PAGES; page++) {
      const res = await this.call(`list the unfinished uploads of ${key}`, (c) =>
        c.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: key,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const u of res.Uploads ?? []) if (u.Key === key && u.UploadId) ids.push(u.UploadId);
      if (!res.IsTruncated) break;
      keyMarker = res.NextKeyMarker;
      uploadIdMarker = res.NextUploadIdMarker;
    }
    return ids;
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw s3Error(err, { bucket: this.bucket, endpoint: this.endpointLabel }, `look up ${key}`);
    }
  }

  /** Keys under `prefix`, page by page, at most STALE_PAGES pages. */
  private async *keys(prefix: string, doing: string): AsyncGenerator<string> {
    let token: string | undefined;
    for (let page = 0; page < STALE_PAGES; page++) {
      const res = await this.call(doing, (c) =>
        c.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      for (const obj of res.Contents ?? []) if (obj.Key) yield obj.Key;
      if (!res.IsTruncated || !res.NextContinuationToken) return;
      token = res.NextContinuationToken;
    }
  }

  async list(database?: string): Promise<StoredBackup[]> {
    const listPrefix = this.keyOf(database === undefined ? NAME_PREFIX : namePrefixOf(database));
    const out: StoredBackup[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await this.call("list backups", (c) =>
        c.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: listPrefix, ContinuationToken: token }),
        ),
      );
      for (const obj of page.Contents ?? []) {
        const name = obj.Key?.slice(this.prefix.length);
        if (!name || name.includes("/")) continue;
        const parsed = parseBackupName(name);
        if (!parsed || (database !== undefined && parsed.database !== database)) continue;
        out.push({ name, size: obj.Size ?? 0, modified: obj.LastModified });
      }
      if (!page.IsTruncated || !page.NextContinuationToken) return out;
      token = page.NextContinuationToken;
    }
  }

  async stat(name: string): Promise<StoredBackup | undefined> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(name) }),
      );
      return { name, size: head.ContentLength ?? 0, modified: head.LastModified };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error(err, { bucket: this.bucket, endpoint: this.endpointLabel }, `look up ${name}`);
    }
  }

  async read(name: string, signal?: AbortSignal): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(name) }),
        signal ? { abortSignal: signal } : undefined,
      );
      if (!(res.Body instanceof Readable)) throw new Error("the response body is not a stream");
      return res.Body;
    } catch (err) {
      if (isNotFound(err)) throw new ProcessError(`backup ${name} not found in ${this.description}`);
      throw s3Error(err, { bucket: this.bucket, endpoint: this.endpointLabel }, `read ${name}`);
    }
  }

  async readMetadata(name: string): Promise<BackupMetadata | undefined> {
    let text: string;
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(metadataNameOf(name)) }),
      );
      text = (await res.Body?.transformToString("utf8")) ?? "";
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error(
        err,
        { bucket: this.bucket, endpoint: this.endpointLabel },
        `read the metadata of ${name}`,
      );
    }
    try {
      return decodeMetadata(text, name);
    } catch (err) {
      throw new ProcessError(`${this.description}: ${(err as Error).message}`);
    }
  }

  async remove(name: string): Promise<void> {
    await this.call(`delete ${name}`, (c) =>
      c.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(name) })),
    );
    await this.call(`delete the metadata of ${name}`, (c) =>
      c.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(metadataNameOf(name)) })),
    );
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
