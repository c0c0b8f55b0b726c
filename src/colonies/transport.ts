/**
 * The Colonies RPC transport: `POST /api` with a signed, base64-encoded JSON message.
 * Every call has a timeout and accepts an AbortSignal.
 */
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

interface Envelope {
  payloadtype?: string;
  payload?: string;
  error?: boolean;
}

export class Transport {
  readonly url: string;

  constructor(
    address: ServerAddress,
    private readonly defaultTimeoutMs = 30_000,
  ) {
    const host = address.host.includes(":") ? `[${address.host}]` : address.host;
    this.url = `${address.tls ? "https" : "http"}://${host}:${address.port}/api`;
  }

  /** Sends a message signed with `privateKey` (null only for the two unsigned messages) and decodes the reply. */
  async call<T>(message: Message, privateKey: string | null, options: CallOptions = {}): Promise<T> {
    const payload = encodePayload(message);
    const body = JSON.stringify({
      payloadtype: message.msgtype,
      payload,
      signature: privateKey === null ? "" : sign(payload, privateKey),
    });
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.defaultTimeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal,
      });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      const reason = timeout.aborted ? "timed out" : describeNetworkError(error);
      throw new ColoniesError(message.msgtype, 0, `${reason} (${this.url})`, { cause: error });
    }
    return decodeReply<T>(message.msgtype, response.status, text);
  }
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
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
