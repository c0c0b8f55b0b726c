/**
 * A Writable that turns a stream of unknown length into the parts of an S3 multipart upload, with bounded
 * memory: at most `queueSize` parts in flight plus the one being filled, and part buffers are reused.
 * Writes wait (backpressure) while the queue is full, so a slow store slows pg_dump down instead of
 * filling memory. Ending the stream uploads the last part but does NOT complete the upload: the caller
 * completes it (publishing the object) only after checking pg_dump's exit status and the sizes.
 *
 * Part sizes double every 1000 parts, so the 10,000-part limit of S3 is no limit in practice
 * (5 MiB base, the S3 minimum: about 150 GiB by part 5000 and 5 TiB by part 10,000); the queue shrinks as
 * parts grow, so memory stays near (queueSize + 1) x base size until single parts exceed that (dumps beyond
 * about 15 GiB with the defaults: set AWS_S3_PART_SIZE_MB higher for very large databases).
 */

import { Writable } from "node:stream";
import { type CompletedPart, type S3Client, UploadPartCommand } from "@aws-sdk/client-s3";

export interface MultipartOptions {
  client: S3Client;
  bucket: string;
  key: string;
  uploadId: string;
  partSizeBytes: number;
  queueSize: number;
}

const MAX_PARTS = 10_000;
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;

export class MultipartWriter extends Writable {
  /** Parts the store acknowledged, with the sizes we sent (checked against ListParts before completion). */
  readonly parts: (CompletedPart & { Size: number })[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly aborter = new AbortController();
  private readonly free: Buffer[] = [];
  private buf: Buffer;
  private filled = 0;
  private partNumber = 0;
  private failure: unknown;

  constructor(private readonly opts: MultipartOptions) {
    super({ highWaterMark: 1024 * 1024 });
    this.buf = Buffer.allocUnsafe(opts.partSizeBytes);
  }

  /** Bytes acknowledged by the store so far. */
  get uploadedBytes(): number {
    return this.parts.reduce((sum, p) => sum + p.Size, 0);
  }

  private partSizeFor(partNumber: number): number {
    return Math.min(MAX_PART_BYTES, this.opts.partSizeBytes * 2 ** Math.floor((partNumber - 1) / 1000));
  }

  /** Fewer parts in flight once parts grew, so that the bytes in flight stay about queueSize x base size. */
  private queueLimit(): number {
    return Math.max(1, Math.floor((this.opts.queueSize * this.opts.partSizeBytes) / this.buf.length));
  }

  private takeBuffer(size: number): Buffer {
    const reused = this.free.pop();
    if (reused && reused.length === size) return reused;
    this.free.length = 0; // sizes changed: let the old ones go
    return Buffer.allocUnsafe(size);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.fill(chunk).then(() => callback(), callback);
  }

  private async fill(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(this.buf.length - this.filled, chunk.length - offset);
      chunk.copy(this.buf, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
      if (this.filled === this.buf.length) await this.sendPart();
    }
  }

  private async sendPart(): Promise<void> {
    while (this.inflight.size >= this.queueLimit()) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    const partNumber = ++this.partNumber;
    if (partNumber > MAX_PARTS) throw new Error(`the dump needs more than ${MAX_PARTS} parts`);
    const buffer = this.buf;
    const body = buffer.subarray(0, this.filled);
    this.buf = this.takeBuffer(this.partSizeFor(partNumber + 1));
    this.filled = 0;
    const { client, bucket, key, uploadId } = this.opts;
    const upload = client
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ChecksumAlgorithm: "CRC32",
        }),
        { abortSignal: this.aborter.signal },
      )
      .then((res) => {
        this.parts.push({
          PartNumber: partNumber,
          ETag: res.ETag,
          ChecksumCRC32: res.ChecksumCRC32,
          Size: body.length,
        });
        this.free.push(buffer);
      });
    const tracked: Promise<void> = upload.then(
      () => {
        this.inflight.delete(tracked);
      },
      (err: unknown) => {
        this.inflight.delete(tracked);
        this.failure ??= err;
        throw err;
      },
    );
    tracked.catch(() => undefined); // observed through this.failure / Promise.race
    this.inflight.add(tracked);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      if (this.filled > 0 || this.partNumber === 0) await this.sendPart();
      await Promise.all(this.inflight);
      if (this.failure) throw this.failure;
      this.parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.aborter.abort(error ?? new Error("upload stopped"));
    // Settle the parts in flight before reporting, so an abort of the upload does not race them.
    Promise.allSettled(this.inflight).then(() => callback(error));
  }
}
