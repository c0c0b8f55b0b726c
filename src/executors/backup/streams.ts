/** Stream pieces: integrity computed while the bytes pass, without buffering them. */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback, type Writable } from "node:stream";

/**
 * Passes bytes on but holds the last chunk back until the whole stream matched the expected size and sha256.
 * Fed into pg_restore, a damaged backup therefore never reaches its end, so pg_restore cannot finish (and with
 * --single-transaction commits nothing).
 */
export class VerifyingStream extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash("sha256");
  private held?: Buffer;

  constructor(
    private readonly expected: { size: number; sha256: string },
    private readonly label: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    if (this.bytes > this.expected.size) {
      callback(new IntegrityError(`${this.label} is longer than the recorded ${this.expected.size} bytes`));
      return;
    }
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const sha256 = this.hash.digest("hex");
    if (this.bytes !== this.expected.size) {
      callback(
        new IntegrityError(
          `${this.label} has ${this.bytes} bytes, the metadata records ${this.expected.size}`,
        ),
      );
    } else if (sha256 !== this.expected.sha256) {
      callback(
        new IntegrityError(
          `${this.label} has sha256 ${sha256}, the metadata records ${this.expected.sha256}`,
        ),
      );
    } else {
      callback(null, this.held);
    }
  }
}

export class IntegrityError extends Error {
  override name = "IntegrityError";
}

/**
 * Writes a chunk to a consumer that may stop reading early (pg_restore --list reads only the table of
 * contents): resolves false once the consumer is gone instead of failing.
 */
export function writeIfOpen(dest: Writable, chunk: Buffer): Promise<boolean> {
  if (dest.destroyed || dest.writableEnded) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (open: boolean) => {
      dest.off("drain", onDrain);
      dest.off("close", onClose);
      dest.off("error", onClose);
      resolve(open);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    dest.on("error", onClose);
    if (dest.write(chunk)) {
      dest.off("error", onClose);
      resolve(true);
      return;
    }
    dest.on("drain", onDrain);
    dest.on("close", onClose);
  });
}

/**
 * For a consumer that may stop reading early (see writeIfOpen): EPIPE on `dest` means it stopped, which is
 * expected; any other error is kept. Returns a function giving the first such error, if any.
 */
export function ignoreEpipe(dest: Writable): () => Error | undefined {
  let failure: Error | undefined;
  dest.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") failure ??= err;
  });
  return () => failure;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
