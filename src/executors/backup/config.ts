/**
 * Configuration of the backup executor, read once from the environment and validated at start-up.
 *
 * Names: the original executor's (`DB_*`, `AWS_S3_*`, `FULL_BACKUPS`, `BACKUP_PATH`) are accepted next to the
 * standard libpq ones (`PG*`) and new ones (`BACKUP_*`). When both spellings are set, the first listed wins.
 * Read with the runtime's EnvReader: the same grammar (booleans are "true" or "false") and one ConfigError
 * listing every problem, each naming its variable. Secrets (`DB_PASSWORD`/`PGPASSWORD`, the S3 secret key)
 * never appear in error messages or logs.
 */
import path from "node:path";
import { EnvReader } from "../../executor/env.js";
import type { EnvDoc } from "../../executor/types.js";

export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface PgConfig {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Reaches pg_dump/pg_restore through PGPASSWORD in their environment only. */
  password?: string;
  sslMode?: SslMode;
  sslRootCert?: string;
  /** Directory of pg_dump/pg_restore; unset means PATH. */
  bindir?: string;
  connectTimeoutMs: number;
}

export interface DirTargetConfig {
  kind: "dir";
  /** Absolute path. */
  dir: string;
}

export interface S3TargetConfig {
  kind: "s3";
  /** Full URL (scheme included); unset means AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Key prefix, "" or ending in "/". */
  prefix: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  forcePathStyle: boolean;
  insecureSkipVerify: boolean;
  caFile?: string;
  partSizeBytes: number;
  queueSize: number;
}

export type TargetConfig = DirTargetConfig | S3TargetConfig;

export interface BackupConfig {
  pg: PgConfig;
  target: TargetConfig;
  /** Newest backups of a database kept after a backup; 0 keeps all. */
  keep: number;
  /** pg_dump -Z level; unset means pg_dump's default. */
  compression?: number;
  progressIntervalMs: number;
  /**
   * Whether restore may honour allow_existing=true (restore over an existing database). Off unless the operator
   * turns it on; even then never the source database, `postgres` or a template database (see restore.ts).
   */
  allowRestoreExisting: boolean;
  /** restore writes only into databases whose name starts with this (a plain identifier). */
  restorePrefix: string;
  /** Databases with restorePrefix that may exist at once before restore refuses to create one; 0: none. */
  maxRestored: number;
}

const MiB = 1024 * 1024;

export const DEFAULTS = {
  host: "localhost",
  port: 5432,
  user: "postgres",
  database: "postgres",
  dir: "backups",
  region: "us-east-1",
  prefix: "backups/",
  partSizeMiB: 5,
  queueSize: 2,
  keep: 0,
  progressIntervalMs: 10_000,
  connectTimeoutMs: 10_000,
  restorePrefix: "restore_",
  maxRestored: 5,
} as const;

/** The most BACKUP_MAX_RESTORED may say: a bound, not a way around one. */
export const MAX_RESTORED_LIMIT = 1000;

/** Documented for `--help`; one entry per setting, aliases named in the description. */
export const BACKUP_ENV: readonly EnvDoc[] = [
  { name: "DB_HOST", description: "PostgreSQL host (alias PGHOST)", default: DEFAULTS.host },
  { name: "DB_PORT", description: "PostgreSQL port (alias PGPORT)", default: `${DEFAULTS.port}` },
  { name: "DB_DATABASE", description: "database to back up (alias PGDATABASE)", default: DEFAULTS.database },
  { name: "DB_USER", description: "PostgreSQL user (alias PGUSER)", default: DEFAULTS.user },
  {
    name: "DB_PASSWORD",
    description: "PostgreSQL password (alias PGPASSWORD); given to pg_dump in its environment only",
    secret: true,
  },
  { name: "PGSSLMODE", description: `libpq sslmode: ${SSL_MODES.join(", ")}`, default: "prefer" },
  { name: "PGSSLROOTCERT", description: "CA file for sslmode verify-ca / verify-full" },
  { name: "PGCONNECT_TIMEOUT", description: "connection timeout in seconds", default: "10" },
  {
    name: "BACKUP_PG_BINDIR",
    description: "directory holding pg_dump and pg_restore (must be >= the server's major version)",
    default: "PATH",
  },
  {
    name: "BACKUP_TARGET",
    description: "dir or s3; unset means s3 when AWS_S3_BUCKET_NAME is set, else dir",
    default: "dir",
  },
  {
    name: "BACKUP_DIR",
    description: "directory for the dir target, e.g. a mounted volume (alias BACKUP_PATH)",
    default: DEFAULTS.dir,
  },
  {
    name: "BACKUP_KEEP",
    description: "newest backups of the database to keep after each backup; 0 keeps all (alias FULL_BACKUPS)",
    default: `${DEFAULTS.keep}`,
  },
  { name: "BACKUP_COMPRESSION", description: "pg_dump compression level 0-9", default: "pg_dump's default" },
  {
    name: "BACKUP_PROGRESS_INTERVAL_MS",
    description: "how often progress (bytes so far) goes to the process log during a dump",
    default: `${DEFAULTS.progressIntervalMs}`,
  },
  {
    name: "BACKUP_ALLOW_RESTORE_EXISTING",
    description:
      "let restore(..., allow_existing=true) replace the contents of an existing database; never the backed-up " +
      "database (DB_DATABASE), postgres or a template database",
    default: "false",
  },
  {
    name: "BACKUP_RESTORE_PREFIX",
    description:
      "restore creates, and with allow_existing replaces, only databases whose name starts with this " +
      "(letters, digits and _, starting with a letter or _)",
    default: DEFAULTS.restorePrefix,
  },
  {
    name: "BACKUP_MAX_RESTORED",
    description:
      `databases starting with BACKUP_RESTORE_PREFIX that may exist on the server before restore refuses to ` +
      `create another (0-${MAX_RESTORED_LIMIT}); 0: restore creates no databases`,
    default: `${DEFAULTS.maxRestored}`,
  },
  {
    name: "AWS_S3_ENDPOINT",
    description:
      "S3 endpoint, host:port or URL (aliases AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); unset means AWS",
  },
  { name: "AWS_S3_SECURE", description: "https for an endpoint given without scheme", default: "true" },
  {
    name: "AWS_S3_REGION",
    description: "S3 region (aliases AWS_REGION, AWS_DEFAULT_REGION)",
    default: DEFAULTS.region,
  },
  { name: "AWS_S3_BUCKET_NAME", description: "bucket (alias AWS_S3_BUCKET); must exist" },
  { name: "AWS_S3_PREFIX", description: "key prefix of the backups", default: DEFAULTS.prefix },
  {
    name: "AWS_S3_ACCESS_KEY",
    description: "access key id (alias AWS_ACCESS_KEY_ID); unset means the SDK's default credential chain",
  },
  {
    name: "AWS_S3_SECRET_ACCESS_KEY",
    description: "secret access key (alias AWS_SECRET_ACCESS_KEY)",
    secret: true,
  },
  {
    name: "AWS_SESSION_TOKEN",
    description: "session token for temporary credentials given as AWS_S3_ACCESS_KEY/AWS_ACCESS_KEY_ID",
    secret: true,
  },
  {
    name: "AWS_S3_FORCE_PATH_STYLE",
    description: "path-style addressing (bucket in the path)",
    default: "true with AWS_S3_ENDPOINT, else false",
  },
  { name: "AWS_S3_INSECURE_SKIP_VERIFY", description: "skip TLS certificate verification", default: "false" },
  { name: "AWS_S3_CA_FILE", description: "PEM file of CA certificates to trust for the endpoint" },
  {
    name: "AWS_S3_PART_SIZE_MB",
    description: "multipart part size in MiB (5-512; doubles every 1000 parts)",
    default: `${DEFAULTS.partSizeMiB}`,
  },
  {
    name: "AWS_S3_QUEUE_SIZE",
    description: "parts uploaded concurrently (memory is about (queue + 1) x part size)",
    default: `${DEFAULTS.queueSize}`,
  },
];

/** `host:port` or a URL; a bare host gets https unless `secure` is false. */
export function normalizeEndpoint(raw: string, secure: boolean | undefined): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw)
    ? raw
    : `${secure === false ? "http" : "https"}://${raw}`;
  const url = new URL(withScheme);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme must be http or https");
  if (url.pathname !== "/" && url.pathname !== "") throw new Error("must not contain a path");
  return `${url.protocol}//${url.host}`;
}

/** "" (bucket root) or a prefix ending in "/" without a leading one. */
export function normalizePrefix(raw: string): string {
  const trimmed = raw.replace(/^\/+/, "").replace(/\/+$/, "");
  return trimmed === "" ? "" : `${trimmed}/`;
}

export function parseBackupConfig(env: NodeJS.ProcessEnv, cwd = process.cwd()): BackupConfig {
  const e = new EnvReader(env);

  const connectTimeoutS = e.int("PGCONNECT_TIMEOUT", 1, 3600);
  const database = e.string(e.first("DB_DATABASE", "PGDATABASE")) ?? DEFAULTS.database;
  if (Buffer.byteLength(database) > 63) e.problems.push("DB_DATABASE must be at most 63 bytes long");
  const pg: PgConfig = {
    host: e.string(e.first("DB_HOST", "PGHOST")) ?? DEFAULTS.host,
    port: e.int(e.first("DB_PORT", "PGPORT"), 1, 65535) ?? DEFAULTS.port,
    database,
    user: e.string(e.first("DB_USER", "PGUSER")) ?? DEFAULTS.user,
    password: e.secret("DB_PASSWORD", "PGPASSWORD"),
    sslMode: e.oneOf("PGSSLMODE", SSL_MODES, { ignoreCase: true }),
    sslRootCert: e.string("PGSSLROOTCERT"),
    bindir: e.string("BACKUP_PG_BINDIR"),
    connectTimeoutMs: (connectTimeoutS ?? DEFAULTS.connectTimeoutMs / 1000) * 1000,
  };
  if (pg.bindir && !path.isAbsolute(pg.bindir)) e.problems.push("BACKUP_PG_BINDIR must be an absolute path");

  const bucket = e.string(e.first("AWS_S3_BUCKET_NAME", "AWS_S3_BUCKET"));
  const kind =
    e.oneOf("BACKUP_TARGET", ["dir", "s3"] as const, { ignoreCase: true }) ?? (bucket ? "s3" : "dir");

  let target: TargetConfig;
  if (kind === "dir") {
    const dir = e.string(e.first("BACKUP_DIR", "BACKUP_PATH")) ?? DEFAULTS.dir;
    target = { kind: "dir", dir: path.resolve(cwd, dir) };
  } else {
    if (!bucket) e.problems.push("AWS_S3_BUCKET_NAME is required with BACKUP_TARGET=s3");
    const secure = e.bool("AWS_S3_SECURE");
    const endpointVar = e.first("AWS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    const rawEndpoint = e.string(endpointVar);
    let endpoint: string | undefined;
    if (rawEndpoint) {
      try {
        endpoint = normalizeEndpoint(rawEndpoint, secure);
      } catch (err) {
        e.problems.push(
          `${endpointVar} ${JSON.stringify(rawEndpoint)} is not a valid endpoint: ${(err as Error).message}`,
        );
      }
    }
    const accessKeyId = e.string(e.first("AWS_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"));
    const secretAccessKey = e.secret("AWS_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY");
    if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
      e.problems.push("AWS_S3_ACCESS_KEY and AWS_S3_SECRET_ACCESS_KEY must be set together");
    }
    const partSizeMiB = e.int("AWS_S3_PART_SIZE_MB", 5, 512) ?? DEFAULTS.partSizeMiB;
    target = {
      kind: "s3",
      endpoint,
      region: e.string(e.first("AWS_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")) ?? DEFAULTS.region,
      bucket: bucket ?? "",
      prefix: normalizePrefix(e.string("AWS_S3_PREFIX") ?? DEFAULTS.prefix),
      accessKeyId,
      secretAccessKey,
      sessionToken: accessKeyId ? e.secret("AWS_SESSION_TOKEN") : undefined,
      forcePathStyle: e.bool("AWS_S3_FORCE_PATH_STYLE") ?? endpoint !== undefined,
      insecureSkipVerify: e.bool("AWS_S3_INSECURE_SKIP_VERIFY") ?? false,
      caFile: e.string("AWS_S3_CA_FILE"),
      partSizeBytes: partSizeMiB * MiB,
      queueSize: e.int("AWS_S3_QUEUE_SIZE", 1, 64) ?? DEFAULTS.queueSize,
    };
  }

  const config: BackupConfig = {
    pg,
    target,
    keep: e.int(e.first("BACKUP_KEEP", "FULL_BACKUPS"), 0, 100_000) ?? DEFAULTS.keep,
    compression: e.int("BACKUP_COMPRESSION", 0, 9),
    progressIntervalMs: e.int("BACKUP_PROGRESS_INTERVAL_MS", 100, 86_400_000) ?? DEFAULTS.progressIntervalMs,
    allowRestoreExisting: e.bool("BACKUP_ALLOW_RESTORE_EXISTING") ?? false,
    restorePrefix: restorePrefix(e),
    maxRestored: e.int("BACKUP_MAX_RESTORED", 0, MAX_RESTORED_LIMIT) ?? DEFAULTS.maxRestored,
  };
  e.check("backup executor configuration");
  return config;
}

/**
 * BACKUP_RESTORE_PREFIX: the start of a plain database name (see checks.ts), leaving room for at least one more
 * byte. It cannot be empty (empty means unset): an empty prefix would count every database on the server.
 */
function restorePrefix(e: EnvReader): string {
  const prefix = e.string("BACKUP_RESTORE_PREFIX", {
    pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
    expected: "letters, digits and _, starting with a letter or _",
  });
  if (prefix !== undefined && Buffer.byteLength(prefix) > 62) {
    e.problems.push("BACKUP_RESTORE_PREFIX must be at most 62 bytes long");
  }
  return prefix ?? DEFAULTS.restorePrefix;
}

/** The configuration without secrets, for the start-up log line. */
export function describeConfig(config: BackupConfig): Record<string, unknown> {
  const { password: _password, ...pg } = config.pg;
  const target =
    config.target.kind === "s3"
      ? (({ secretAccessKey: _secret, sessionToken: _token, ...rest }) => rest)(config.target)
      : { ...config.target };
  return {
    pg: { ...pg, password: config.pg.password ? "[set]" : "[unset]" },
    target,
    keep: config.keep,
    allowRestoreExisting: config.allowRestoreExisting,
    restorePrefix: config.restorePrefix,
    maxRestored: config.maxRestored,
  };
}
