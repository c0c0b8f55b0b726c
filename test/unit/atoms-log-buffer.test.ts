import { describe, expect, it } from "vitest";
import { LogBuffer } from "../../src/atoms/log-buffer.js";

const texts = (buffer: LogBuffer) => buffer.lines().map((l) => l.text);

describe("LogBuffer", () => {
  it("splits chunks into lines, joining lines cut across chunks and multi-byte characters cut across chunks", () => {
    const buffer = new LogBuffer();
    const euro = Buffer.from("€");
    buffer.write("stdout", Buffer.from("first\nsec"));
    buffer.write("stdout", Buffer.concat([Buffer.from("ond "), euro.subarray(0, 1)]));
    buffer.write("stdout", Buffer.concat([euro.subarray(1), Buffer.from("\r\nunterminated")]));
    expect(texts(buffer)).toEqual(["first", "second €"]);
    buffer.end();
    expect(texts(buffer)).toEqual(["first", "second €", "unterminated"]);
  });

  it("keeps stdout and stderr lines apart while a line is incomplete", () => {
    const buffer = new LogBuffer();
    buffer.write("stdout", Buffer.from("out-"));
    buffer.write("stderr", Buffer.from("err\n"));
    buffer.write("stdout", Buffer.from("line\n"));
    expect(buffer.lines().map((l) => [l.stream, l.text])).toEqual([
      ["stderr", "err"],
      ["stdout", "out-line"],
    ]);
  });

  it("drops the oldest lines beyond maxLines", () => {
    const buffer = new LogBuffer({ maxLines: 3, maxBytes: 1024 });
    for (let i = 1; i <= 7; i++) buffer.write("stdout", Buffer.from(`${i}\n`));
    expect(texts(buffer)).toEqual(["5", "6", "7"]);
  });

  it("drops the oldest lines beyond maxBytes and cuts a single longer line", () => {
    const buffer = new LogBuffer({ maxLines: 100, maxBytes: 10 });
    buffer.write("stdout", Buffer.from("aaaa\nbbbb\ncccc\n"));
    expect(texts(buffer)).toEqual(["bbbb", "cccc"]);
    buffer.write("stdout", Buffer.from(`${"x".repeat(25)}\n`));
    expect(texts(buffer)).toEqual(["xxxxxxxxxx"]);
  });

  it("emits a line that never ends in pieces of at most maxBytes, never splitting a character", () => {
    const buffer = new LogBuffer({ maxLines: 100, maxBytes: 8 });
    buffer.write("stdout", Buffer.from("ab€€€€"));
    expect(texts(buffer)).toEqual(["ab€€"]);
    expect(Buffer.byteLength(texts(buffer)[0] ?? "")).toBe(8);
  });

  it("filters by time and keeps the last lines", () => {
    const buffer = new LogBuffer();
    buffer.write("stdout", Buffer.from("old\n"), new Date("2025-01-01T00:00:00Z"));
    buffer.write("stdout", Buffer.from("new1\nnew2\n"), new Date("2025-01-01T00:01:00Z"));
    expect(buffer.lines({ since: new Date("2025-01-01T00:00:30Z") }).map((l) => l.text)).toEqual([
      "new1",
      "new2",
    ]);
    expect(buffer.lines({ tail: 1 }).map((l) => l.text)).toEqual(["new2"]);
  });

  it("follows: the lines so far, then new ones, until the end", async () => {
    const buffer = new LogBuffer();
    buffer.write("stdout", Buffer.from("before\n"));
    const seen: string[] = [];
    const following = (async () => {
      for await (const line of buffer.follow({}, AbortSignal.timeout(5_000))) seen.push(line.text);
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    buffer.write("stdout", Buffer.from("after\nlast"));
    buffer.end();
    await following;
    expect(seen).toEqual(["before", "after", "last"]);
  });

  it("ignores writes after the end", () => {
    const buffer = new LogBuffer();
    buffer.end();
    buffer.write("stdout", Buffer.from("late\n"));
    expect(texts(buffer)).toEqual([]);
  });

  it("rejects limits that cannot hold a line", () => {
    expect(() => new LogBuffer({ maxLines: 0, maxBytes: 100 })).toThrow(TypeError);
    expect(() => new LogBuffer({ maxLines: 10, maxBytes: 3 })).toThrow(TypeError);
  });
});
