/**
 * Structured logs: JSON lines by default, human-readable on a terminal. Values under secret-looking keys
 * (private keys, passwords, passphrases, S3 secrets, tokens) are masked wherever they appear in a log record.
 */
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";

// Loaded only for terminals: the JSON default should not pay for the pretty printer.
const require = createRequire(import.meta.url);

const SECRET_KEY = /prv_?key|private_?key|password|passwd|passphrase|secret|token|credential|authorization/i;
const MASK = "[redacted]";

export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] =
      SECRET_KEY.test(key) && item !== undefined && item !== "" ? MASK : redactSecrets(item, depth + 1);
  }
  return out;
}

export function createLogger(options: { level: string; pretty: boolean; name?: string }): Logger {
  const settings = {
    level: options.level,
    name: options.name,
    base: { pid: process.pid },
    formatters: {
      log: (record: Record<string, unknown>) => redactSecrets(record) as Record<string, unknown>,
    },
  };
  if (options.pretty) {
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pino(
      settings,
      pretty({ sync: true, destination: 2, ignore: "pid,hostname", translateTime: "HH:MM:ss.l" }),
    );
  }
  return pino(settings, pino.destination({ fd: 2, sync: true }));
}
