/**
 * Structured logs: JSON lines by default, human-readable on a terminal, with secrets masked (redact.ts).
 */
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import { redactSecrets } from "./redact.js";

// Loaded only for terminals: the JSON default should not pay for the pretty printer.
const require = createRequire(import.meta.url);

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
