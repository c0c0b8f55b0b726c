/**
 * Error classification, once, at the boundary to PostgreSQL, the file system and S3: low-level errors become
 * ProcessErrors whose message says what failed, where, and (when known) what to check. Messages never carry
 * secrets: they name hosts, users, directories and buckets only.
 */
import { ProcessError } from "../../executor/types.js";

export interface ErrnoLike {
  code?: string;
  message?: string;
}

function codeOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && typeof (err as ErrnoLike).code === "string"
    ? (err as ErrnoLike).code
    : undefined;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A file-system failure while using the backup directory. */
export function fsError(err: unknown, dir: string, doing: string): ProcessError {
  if (err instanceof ProcessError) return err;
  const code = codeOf(err);
  const why: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOSPC: "no space left on device (the backup directory is full)",
    EDQUOT: "disk quota exceeded (the backup directory is full)",
    ENOTDIR: "a component of the path is not a directory",
    ENOENT: "no such file or directory",
    EEXIST: "a file of that name already exists",
    EIO: "input/output error",
  };
  const reason = (code && why[code]) || messageOf(err);
  return new ProcessError(`backup directory ${dir}: cannot ${doing}: ${reason}${code ? ` (${code})` : ""}`);
}

interface PgErrorLike {
  code?: string;
  message?: string;
  severity?: string;
}

/** A failure of the executor's own connection to PostgreSQL (lock, version, CREATE DATABASE). */
export function pgError(err: unknown, where: { host: string; port: number; user: string }): ProcessError {
  if (err instanceof ProcessError) return err;
  const e = (err ?? {}) as PgErrorLike;
  const server = `${where.host}:${where.port}`;
  switch (e.code) {
    case "28P01":
    case "28000":
      return new ProcessError(
        `PostgreSQL at ${server} rejected user "${where.user}": ${e.message} (check DB_PASSWORD/PGPASSWORD)`,
      );
    case "3D000":
      return new ProcessError(`PostgreSQL at ${server}: ${e.message}`);
    case "42501":
      return new ProcessError(
        `PostgreSQL at ${server}: permission denied for user "${where.user}": ${e.message}`,
      );
    case "57P01":
    case "57P02":
    case "57P03":
      return new ProcessError(`PostgreSQL at ${server} is shutting down or starting up: ${e.message}`);
    case "ECONNREFUSED":
      return new ProcessError(`cannot connect to PostgreSQL at ${server}: connection refused`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ProcessError(`cannot connect to PostgreSQL at ${server}: host not found`);
    case "ETIMEDOUT":
      return new ProcessError(`cannot connect to PostgreSQL at ${server}: timed out`);
  }
  const msg = messageOf(err);
  if (/timeout/i.test(msg)) return new ProcessError(`cannot connect to PostgreSQL at ${server}: ${msg}`);
  return new ProcessError(`PostgreSQL at ${server}: ${msg}`);
}

interface S3ErrorLike {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function s3StatusOf(err: unknown): number | undefined {
  return (err as S3ErrorLike | undefined)?.$metadata?.httpStatusCode;
}

export function s3CodeOf(err: unknown): string | undefined {
  const e = err as S3ErrorLike | undefined;
  return e?.Code ?? e?.name ?? e?.code;
}

/** An S3 failure; `where` names the bucket/endpoint, `doing` the operation. */
export function s3Error(
  err: unknown,
  where: { bucket: string; endpoint: string },
  doing: string,
): ProcessError {
  if (err instanceof ProcessError) return err;
  const code = s3CodeOf(err);
  const status = s3StatusOf(err);
  const at = `bucket "${where.bucket}" at ${where.endpoint}`;
  if (code === "NoSuchBucket" || (code === "NotFound" && doing === "check the bucket")) {
    return new ProcessError(`S3 ${at}: the bucket does not exist (create it first)`);
  }
  if (code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch") {
    return new ProcessError(
      `S3 ${at}: credentials rejected (${code}); check AWS_S3_ACCESS_KEY/AWS_S3_SECRET_ACCESS_KEY`,
    );
  }
  if (code === "AccessDenied" || status === 403) {
    return new ProcessError(`S3 ${at}: access denied while trying to ${doing}`);
  }
  if (code === "ECONNREFUSED" || /ECONNREFUSED/.test(messageOf(err))) {
    return new ProcessError(`S3 endpoint ${where.endpoint} refused the connection while trying to ${doing}`);
  }
  if (code === "AbortError") return new ProcessError(`S3 ${at}: ${doing} was cancelled`);
  const detail = messageOf(err) || code || "unknown error";
  return new ProcessError(
    `S3 ${at}: cannot ${doing}: ${detail}${code && !detail.includes(code) ? ` (${code})` : ""}${
      status ? ` [HTTP ${status}]` : ""
    }`,
  );
}
