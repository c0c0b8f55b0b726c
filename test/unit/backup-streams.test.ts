import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { createOutputPump } from "../../src/executors/backup/pump.js";
import { VerifyingStream } from "../../src/executors/backup/streams.js";
import { MultipartWriter } from "../../src/executors/backup/targets/multipart.js";

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function chunks(total: number, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < total; i += size) out.push(Buffer.alloc(Math.min(size, total - i), i % 251));
  return out;
}

function collector(): { sink: Writable; received: Buffer[] } {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      received.push(chunk);
      cb();
    },
  });
  return { sink, received };
}

describe("VerifyingStream", () => {
  it("passes everything when size and sha256 match", async () => {
    const data = chunks(100_000, 4_096);
    const all = Buffer.concat(data);
    const { sink, received } = collector();
    await pipeline(
      Readable.from(data),
      new VerifyingStream({ size: all.length, sha256: sha(all) }, "b"),
      sink,
    );
    expect(Buffer.concat(received).equals(all)).toBe(true);
  });

  it("holds the last chunk back when the sha256 differs, so the consumer never sees the end", async () => {
    const data = chunks(100_000, 4_096);
    const all = Buffer.concat(data);
    const { sink, received } = collector();
    await expect(
      pipeline(
        Readable.from(data),
        new VerifyingStream({ size: all.length, sha256: "0".repeat(64) }, "backup x"),
        sink,
      ),
    ).rejects.toThrow(/backup x has sha256 [0-9a-f]{64}, the metadata records 0{64}/);
    expect(Buffer.concat(received).length).toBe(all.length - (data.at(-1)?.length ?? 0));
  });

  it("fails on a size mismatch, short or long", async () => {
    const all = Buffer.alloc(1000, 1);
    await expect(
      pipeline(
        Readable.from([all]),
        new VerifyingStream({ size: 1001, sha256: sha(all) }, "b"),
        collector().sink,
      ),
    ).rejects.toThrow(/has 1000 bytes, the metadata records 1001/);
    await expect(
      pipeline(
        Readable.from([all, all]),
        new VerifyingStream({ size: 1000, sha256: sha(all) }, "b"),
        collector().sink,
      ),
    ).rejects.toThrow(/longer than the recorded 1000 bytes/);
  });
});

/** A fake of the one S3 call the writer makes, with a controllable delay and failure. */
function fakeClient(opts: { delayMs?: number; failPart?: number } = {}) {
  const parts: { n: number; size: number }[] = [];
  let inflight = 0;
  let maxInflight = 0;
  const client = {
    async send(cmd: UploadPartCommand) {
      const input = cmd.input;
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      try {
        await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
        if (input.PartNumber === opts.failPart)
          throw Object.assign(new Error("boom"), { name: "InternalError" });
        parts.push({ n: input.PartNumber as number, size: (input.Body as Buffer).length });
        return { ETag: `"etag-${input.PartNumber}"` };
      } finally {
        inflight--;
      }
    },
  };
  return { client: client as unknown as S3Client, parts, maxInflight: () => maxInflight };
}

describe("MultipartWriter", () => {
  const options = (client: S3Client) => ({
    client,
    bucket: "b",
    key: "k",
    uploadId: "u",
    partSizeBytes: 5 * MiB,
    queueSize: 2,
  });

  it("cuts the stream into full parts plus a last short one, in order, with bounded concurrency", async () => {
    const fake = fakeClient({ delayMs: 5 });
    const writer = new MultipartWriter(options(fake.client));
    await pipeline(Readable.from(chunks(23 * MiB + 123, 64 * 1024)), writer);
    expect(writer.parts.map((p) => p.PartNumber)).toEqual([1, 2, 3, 4, 5]);
    expect(writer.parts.map((p) => p.Size)).toEqual([5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 3 * MiB + 123]);
    expect(writer.parts[0]?.ETag).toBe('"etag-1"');
    expect(writer.uploadedBytes).toBe(23 * MiB + 123);
    expect(fake.maxInflight()).toBeLessThanOrEqual(2);
  });

  it("an empty stream is one empty part (S3 needs at least one)", async () => {
    const fake = fakeClient();
    const writer = new MultipartWriter(options(fake.client));
    await pipeline(Readable.from([]), writer);
    expect(writer.parts.map((p) => p.Size)).toEqual([0]);
  });

  it("a failed part fails the stream", async () => {
    const fake = fakeClient({ failPart: 2 });
    const writer = new MultipartWriter(options(fake.client));
    await expect(pipeline(Readable.from(chunks(20 * MiB, 1 * MiB)), writer)).rejects.toThrow("boom");
  });
});

describe("createOutputPump", () => {
  // A child writing 6 MB of a repeating pattern, the way pg_dump writes to its stdout.
  const script =
    "const b = Buffer.alloc(6_000_000); for (let i = 0; i < b.length; i++) b[i] = i % 251; process.stdout.write(b);";
  const expected = Buffer.alloc(6_000_000);
  for (let i = 0; i < expected.length; i++) expected[i] = i % 251;

  it("delivers the child's stdout intact through one reused buffer, with size and sha256, to a slow sink", async () => {
    const received: Buffer[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const sink = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _e, cb) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        received.push(Buffer.from(chunk)); // the pump reuses its buffer once we call back
        setTimeout(() => {
          inFlight--;
          cb();
        }, 1);
      },
    });
    const pump = await createOutputPump(sink);
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", pump.childEnd, "inherit"] });
    // Listened for at once: the child may close before the sink has taken the last chunks (it did under load).
    const closed = new Promise((r) => child.once("close", r));
    pump.releaseChildEnd();
    await pump.done;
    await closed;
    expect(pump.bytes).toBe(expected.length);
    expect(pump.sha256()).toBe(sha(expected));
    expect(Buffer.concat(received).equals(expected)).toBe(true);
    expect(maxInFlight).toBe(1);
  }, 30_000);

  it("a failing sink rejects and stops reading; the child sees a closed pipe", async () => {
    const sink = new Writable({
      write(_chunk, _e, cb) {
        cb(Object.assign(new Error("no space left on device"), { code: "ENOSPC" }));
      },
    });
    const pump = await createOutputPump(sink);
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", pump.childEnd, "ignore"] });
    const closed = new Promise((r) => child.once("close", r));
    pump.releaseChildEnd();
    await expect(pump.done).rejects.toThrow("no space left on device");
    const code = await closed;
    expect(code).not.toBe(0);
  });
});
