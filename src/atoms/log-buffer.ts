/**
 * A bounded, timestamped capture of a process's stdout and stderr: a ring of the most recent lines, kept after
 * the process exits so that its logs can still be read, and followed while it runs.
 */
import { EventEmitter, on } from "node:events";
import { StringDecoder } from "node:string_decoder";

export type LogStream = "stdout" | "stderr";

export interface LogLine {
  /** When the line was read from the pipe. */
  time: Date;
  stream: LogStream;
  text: string;
}

export interface LogLimits {
  /** The oldest lines are dropped beyond this many... */
  maxLines: number;
  /** ...or beyond this many bytes of text (UTF-8). A longer single line is cut to this size. */
  maxBytes: number;
}

export const DEFAULT_LOG_LIMITS: LogLimits = { maxLines: 10_000, maxBytes: 1024 * 1024 };

export interface LogQuery {
  /** Only lines read at or after this time. */
  since?: Date;
  /** Only the last N lines. */
  tail?: number;
}

interface Slot {
  line: LogLine;
  bytes: number;
}

export class LogBuffer {
  private readonly ring: (Slot | undefined)[];
  private first = 0;
  private count = 0;
  private bytes = 0;
  private readonly partial: Record<LogStream, string> = { stdout: "", stderr: "" };
  private readonly decoders: Record<LogStream, StringDecoder> = {
    stdout: new StringDecoder("utf8"),
    stderr: new StringDecoder("utf8"),
  };
  private readonly events = new EventEmitter();
  private ended = false;

  constructor(private readonly limits: LogLimits = DEFAULT_LOG_LIMITS) {
    if (!Number.isInteger(limits.maxLines) || limits.maxLines < 1) {
      throw new TypeError("log limits: maxLines must be a positive integer");
    }
    // Four bytes hold any UTF-8 character, so a cut line always keeps at least one.
    if (!Number.isInteger(limits.maxBytes) || limits.maxBytes < 4) {
      throw new TypeError("log limits: maxBytes must be an integer of at least 4");
    }
    this.ring = new Array(limits.maxLines);
  }

  /** Appends a chunk read from a pipe; a line is complete at its newline. */
  write(stream: LogStream, chunk: Buffer, time = new Date()): void {
    if (this.ended) return;
    const pieces = (this.partial[stream] + this.decoders[stream].write(chunk)).split("\n");
    this.partial[stream] = pieces.pop() ?? "";
    for (const text of pieces) this.push({ time, stream, text: stripCarriageReturn(text) });
    // A process that never writes a newline must not grow the buffer without bound.
    while (Buffer.byteLength(this.partial[stream]) > this.limits.maxBytes) {
      const head = truncateUtf8(this.partial[stream], this.limits.maxBytes);
      this.push({ time, stream, text: head });
      this.partial[stream] = this.partial[stream].slice(head.length);
    }
  }

  /** The process is gone: keeps its unterminated last lines and ends every follower. */
  end(time = new Date()): void {
    if (this.ended) return;
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.partial[stream] + this.decoders[stream].end();
      if (rest) this.push({ time, stream, text: stripCarriageReturn(rest) });
      this.partial[stream] = "";
    }
    this.ended = true;
    this.events.emit("end");
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The lines kept now, oldest first. */
  lines(query: LogQuery = {}): LogLine[] {
    const lines: LogLine[] = [];
    for (let i = 0; i < this.count; i++) {
      const slot = this.ring[(this.first + i) % this.ring.length];
      if (slot && (!query.since || slot.line.time >= query.since)) lines.push(slot.line);
    }
    return query.tail === undefined ? lines : lines.slice(Math.max(0, lines.length - query.tail));
  }

  /** The lines kept now, then every new line until {@link end} or the signal aborts. */
  async *follow(query: LogQuery, signal: AbortSignal): AsyncGenerator<LogLine> {
    // Subscribing and taking the snapshot in the same synchronous step: no line is missed or seen twice.
    const live = this.ended ? undefined : on(this.events, "line", { signal, close: ["end"] });
    yield* this.lines(query);
    if (!live) return;
    for await (const [line] of live) yield line as LogLine;
  }

  private push(line: LogLine): void {
    const text = truncateUtf8(line.text, this.limits.maxBytes);
    const slot = { line: { ...line, text }, bytes: Buffer.byteLength(text) };
    if (this.count === this.ring.length) this.dropOldest();
    this.ring[(this.first + this.count) % this.ring.length] = slot;
    this.count++;
    this.bytes += slot.bytes;
    while (this.bytes > this.limits.maxBytes && this.count > 1) this.dropOldest();
    this.events.emit("line", slot.line);
  }

  private dropOldest(): void {
    const slot = this.ring[this.first];
    this.ring[this.first] = undefined;
    this.first = (this.first + 1) % this.ring.length;
    this.count--;
    this.bytes -= slot?.bytes ?? 0;
  }
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  // write() holds back an incomplete trailing character instead of emitting a replacement character.
  return new StringDecoder("utf8").write(bytes.subarray(0, maxBytes));
}

function stripCarriageReturn(text: string): string {
  return text.endsWith("\r") ? text.slice(0, -1) : text;
}
