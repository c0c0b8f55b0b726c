/**
 * The Colonies RPC transport: `POST /api` with a signed, base64-encoded JSON message.
 * Every call has a timeout and accepts an AbortSignal.
 */
import http from "node:http";
import https from "node:https";
import { sign } from "./crypto.js";
import { ColoniesError } from "./errors.js";

export interface ServerAddress {
  host: string;
  port: number;
  tls: boolean;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the transport's default timeout (long-polls need more). */
  timeoutMs?: number;
}

export interface Message {
  msgtype: string;
  [field: string]: unknown;
}

export function encodePayload(message: Message): string {
  return Buffer.from(JSON.stringify(message), "utf8").toString("base64");
}

class TimeoutError extends Error {}

interface Envelope {
  payloadtype?: string;
  payload?: string;
  error?: boolean;
}

/**
 * node:http with a keep-alive agent rather than fetch: the same connections are reused across the many small
 * requests of an executor, and the process stays small (undici alone adds ~15 MB of RSS).
 */
export class Transport {
  readonly url: string;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  constructor(
    address: ServerAddress,
    private readonly defaultTimeoutMs = 30_000,
  ) {
    const host = address.host.includes(":") ? `[${address.host}]` : address.host;
    this.url = `${address.tls ? "https" : "http"}://${host}:${address.port}/api`;
    this.agent = address.tls ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.request = address.tls ? https.request : http.request;
  }

  /** Sends a message signed with `privateKey` (null only for the two unsigned messages) and decodes the reply. */
  async call<T>(message: Message, privateKey: string | null, options: CallOptions = {}): Promise<T> {
    const payload = encodePayload(message);
    const body = JSON.stringify({
      payloadtype: message.msgtype,
      payload,
      signature: privateKey === null ? "" : sign(payload, privateKey),
    });
    let reply: { status: number; text: string };
    try {
      reply = await this.post(body, options.timeoutMs ?? this.defaultTimeoutMs, options.signal);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      const reason = error instanceof TimeoutError ? "timed out" : describeNetworkError(error);
      throw new ColoniesError(message.msgtype, 0, `${reason} (${this.url})`, { cause: error });
    }
    return decodeReply<T>(message.msgtype, reply.status, reply.text);
  }

  /** One POST; the timeout is the socket's idle time, which for a long-poll is the whole wait. */
  private post(
    body: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = this.request(
        this.url,
        {
          method: "POST",
          agent: this.agent,
          signal,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
          );
          res.on("error", reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new TimeoutError()));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}

function describeNetworkError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e.code ?? e.message ?? String(error);
}

function decodeReply<T>(payloadType: string, status: number, text: string): T {
  let envelope: Envelope;
  try {
    envelope = JSON.parse(text) as Envelope;
  } catch {
    throw new ColoniesError(payloadType, status || 500, `unexpected reply: ${text.slice(0, 200)}`);
  }
  const decoded = envelope.payload ? Buffer.from(envelope.payload, "base64").toString("utf8") : "{}";
  if (envelope.error || status >= 400) {
    let serverMessage = decoded;
    try {
      const failure = JSON.parse(decoded) as { status?: number; message?: string };
      serverMessage = failure.message ?? decoded;
    } catch {
      // keep the raw text
    }
    throw new ColoniesError(payloadType, status >= 400 ? status : 500, serverMessage);
  }
  return JSON.parse(decoded) as T;
}
