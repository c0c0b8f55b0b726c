/**
 * Masking secrets in what leaves the executor (logs, process errors and logs): values under secret-looking keys,
 * passwords written into URLs (`postgres://user:password@host`), and the secret values the executor knows of
 * wherever they appear in a text (e.g. in a child process's error output).
 */
import pino from "pino";

const MASK = "[redacted]";

/** Keys whose values are secrets (private keys, passwords, passphrases, S3 secrets, tokens). */
const SECRET_KEY = /prv_?key|private_?key|password|passwd|passphrase|secret|token|credential|authorization/i;

/** `scheme://user:password@`: the password (URL-encoded, so without a raw `/` or `@`). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@"'`]*:)[^\s/@"'`]+@/gi;

/** Secrets shorter than this are not searched for in texts (they would mask ordinary words). */
const MIN_SECRET_LENGTH = 6;

/** A text with URL passwords and each of `secrets` (and its URL-encoded form) masked. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, `$1${MASK}@`);
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_LENGTH) continue;
    out = out.replaceAll(secret, MASK);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.replaceAll(encoded, MASK);
  }
  return out;
}

/** The secret values among environment variables with secret-looking names. */
export function secretValues(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .filter(([key, value]) => SECRET_KEY.test(key) && value)
    .map(([, value]) => value as string);
}

/** A log record's values with secrets masked: by key at any depth, and URL passwords in any text or error. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactText(value);
  if (depth > 8 || value === null || typeof value !== "object") return value;
  // An error's message and output (e.g. a CLI's) may quote a URL with its password.
  if (value instanceof Error) return redactSecrets(pino.stdSerializers.err(value), depth + 1);
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] =
      SECRET_KEY.test(key) && item !== undefined && item !== "" ? MASK : redactSecrets(item, depth + 1);
  }
  return out;
}
