import { describe, expect, it } from "vitest";
import { EnvReader } from "../../src/executor/env.js";
import { ConfigError } from "../../src/executor/types.js";
import {
  BACKUP_ENV,
  describeConfig,
  normalizeEndpoint,
  normalizePrefix,
  parseBackupConfig,
  type S3TargetConfig,
} from "../../src/executors/backup/config.js";

const CWD = "/srv/executor";

function s3(env: NodeJS.ProcessEnv): S3TargetConfig {
  const target = parseBackupConfig(env, CWD).target;
  if (target.kind !== "s3") throw new Error("expected an s3 target");
  return target;
}

function problems(env: NodeJS.ProcessEnv): string {
  try {
    parseBackupConfig(env, CWD);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("parseBackupConfig", () => {
  it("has typed defaults: local PostgreSQL, a ./backups directory, keep everything", () => {
    const cfg = parseBackupConfig({}, CWD);
    expect(cfg.pg).toMatchObject({ host: "localhost", port: 5432, database: "postgres", user: "postgres" });
    expect(cfg.pg.password).toBeUndefined();
    expect(cfg.pg.connectTimeoutMs).toBe(10_000);
    expect(cfg.target).toEqual({ kind: "dir", dir: "/srv/executor/backups" });
    expect(cfg.keep).toBe(0);
    expect(cfg.compression).toBeUndefined();
    expect(cfg.progressIntervalMs).toBe(10_000);
  });

  it("reads the original DB_* names, and they win over the standard PG* ones", () => {
    const cfg = parseBackupConfig(
      {
        DB_HOST: "db.internal",
        DB_PORT: "6432",
        DB_DATABASE: "shop",
        DB_USER: "backup",
        DB_PASSWORD: " secret with spaces ",
        PGHOST: "ignored",
        PGPORT: "1",
        PGDATABASE: "ignored",
        PGUSER: "ignored",
        PGPASSWORD: "ignored",
      },
      CWD,
    );
    expect(cfg.pg).toMatchObject({ host: "db.internal", port: 6432, database: "shop", user: "backup" });
    expect(cfg.pg.password).toBe(" secret with spaces ");
  });

  it("falls back to the standard PG* names, including sslmode", () => {
    const cfg = parseBackupConfig(
      {
        PGHOST: "pg",
        PGPORT: "5433",
        PGDATABASE: "app",
        PGUSER: "u",
        PGPASSWORD: "p",
        PGSSLMODE: "verify-full",
      },
      CWD,
    );
    expect(cfg.pg).toMatchObject({
      host: "pg",
      port: 5433,
      database: "app",
      user: "u",
      password: "p",
      sslMode: "verify-full",
    });
  });

  it("BACKUP_KEEP and its original alias FULL_BACKUPS", () => {
    expect(parseBackupConfig({ BACKUP_KEEP: "7" }, CWD).keep).toBe(7);
    expect(parseBackupConfig({ FULL_BACKUPS: "3" }, CWD).keep).toBe(3);
    expect(parseBackupConfig({ BACKUP_KEEP: "2", FULL_BACKUPS: "9" }, CWD).keep).toBe(2);
    expect(parseBackupConfig({ FULL_BACKUPS: "" }, CWD).keep).toBe(0);
  });

  it("BACKUP_DIR (alias BACKUP_PATH) is resolved to an absolute path", () => {
    expect(parseBackupConfig({ BACKUP_DIR: "/mnt/backups" }, CWD).target).toEqual({
      kind: "dir",
      dir: "/mnt/backups",
    });
    expect(parseBackupConfig({ BACKUP_PATH: "data/b" }, CWD).target).toEqual({
      kind: "dir",
      dir: "/srv/executor/data/b",
    });
  });

  it("the target is s3 when a bucket is configured and BACKUP_TARGET is unset (the original always used S3)", () => {
    expect(parseBackupConfig({ AWS_S3_BUCKET_NAME: "b" }, CWD).target.kind).toBe("s3");
    expect(parseBackupConfig({ AWS_S3_BUCKET_NAME: "b", BACKUP_TARGET: "dir" }, CWD).target.kind).toBe("dir");
    expect(parseBackupConfig({ BACKUP_TARGET: "S3", AWS_S3_BUCKET: "b" }, CWD).target.kind).toBe("s3");
  });

  it("reads the original AWS_S3_* names for MinIO: host:port endpoint, AWS_S3_SECURE, path style", () => {
    const t = s3({
      AWS_S3_ENDPOINT: "minio:9000",
      AWS_S3_SECURE: "false",
      AWS_S3_REGION: "eu-north-1",
      AWS_S3_ACCESS_KEY: "AKIA",
      AWS_S3_SECRET_ACCESS_KEY: "s3cr3t",
      AWS_S3_BUCKET_NAME: "backups",
      AWS_S3_INSECURE_SKIP_VERIFY: "true",
    });
    expect(t).toMatchObject({
      endpoint: "http://minio:9000",
      region: "eu-north-1",
      bucket: "backups",
      prefix: "backups/",
      accessKeyId: "AKIA",
      secretAccessKey: "s3cr3t",
      forcePathStyle: true,
      insecureSkipVerify: true,
      partSizeBytes: 5 * 1024 * 1024,
      queueSize: 2,
    });
  });

  it("the standard AWS_* credential names work too, with a session token", () => {
    const env = {
      AWS_S3_BUCKET_NAME: "b",
      AWS_ACCESS_KEY_ID: "id",
      AWS_SECRET_ACCESS_KEY: "secret-1",
      AWS_SESSION_TOKEN: "token-2",
    };
    expect(s3(env)).toMatchObject({
      accessKeyId: "id",
      secretAccessKey: "secret-1",
      sessionToken: "token-2",
    });
    const described = JSON.stringify(describeConfig(parseBackupConfig(env, CWD)));
    expect(described).not.toContain("secret-1");
    expect(described).not.toContain("token-2");
  });

  it("AWS proper: no endpoint, virtual-hosted style, SDK credential chain", () => {
    const t = s3({ AWS_S3_BUCKET_NAME: "b", AWS_REGION: "us-west-2" });
    expect(t.endpoint).toBeUndefined();
    expect(t.forcePathStyle).toBe(false);
    expect(t.region).toBe("us-west-2");
    expect(t.accessKeyId).toBeUndefined();
    expect(
      s3({ AWS_S3_BUCKET_NAME: "b", AWS_S3_ENDPOINT: "https://s3.example", AWS_S3_FORCE_PATH_STYLE: "false" })
        .forcePathStyle,
    ).toBe(false);
  });

  it("prefix and part size options", () => {
    const t = s3({
      AWS_S3_BUCKET_NAME: "b",
      AWS_S3_PREFIX: "/db/prod/",
      AWS_S3_PART_SIZE_MB: "16",
      AWS_S3_QUEUE_SIZE: "2",
    });
    expect(t.prefix).toBe("db/prod/");
    expect(t.partSizeBytes).toBe(16 * 1024 * 1024);
    expect(t.queueSize).toBe(2);
  });

  it("collects every problem in one ConfigError, names the variables, and never echoes a secret", () => {
    const msg = problems({
      DB_PORT: "70000",
      BACKUP_KEEP: "-1",
      BACKUP_TARGET: "s3",
      AWS_S3_SECURE: "maybe",
      AWS_S3_SECRET_ACCESS_KEY: "hunter2",
      PGSSLMODE: "sometimes",
      BACKUP_COMPRESSION: "10",
    });
    expect(msg).toBe(
      [
        "invalid backup executor configuration:",
        "DB_PORT must be between 1 and 65535",
        "PGSSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full",
        "AWS_S3_BUCKET_NAME is required with BACKUP_TARGET=s3",
        'AWS_S3_SECURE must be "true" or "false"',
        "AWS_S3_ACCESS_KEY and AWS_S3_SECRET_ACCESS_KEY must be set together",
        "BACKUP_KEEP must be a whole number",
        "BACKUP_COMPRESSION must be between 0 and 9",
      ].join("\n  - "),
    );
    expect(msg).not.toContain("hunter2");
  });

  it("rejects unknown targets, relative bindirs, bad endpoints and over-long database names", () => {
    expect(problems({ BACKUP_TARGET: "ftp" })).toContain("BACKUP_TARGET must be one of dir, s3");
    expect(problems({ BACKUP_PG_BINDIR: "bin" })).toContain("BACKUP_PG_BINDIR must be an absolute path");
    expect(problems({ AWS_S3_BUCKET_NAME: "b", AWS_S3_ENDPOINT: "ftp://x" })).toContain(
      'AWS_S3_ENDPOINT "ftp://x" is not a valid endpoint',
    );
    expect(problems({ AWS_S3_BUCKET_NAME: "b", AWS_ENDPOINT_URL: "http://x/path" })).toContain(
      'AWS_ENDPOINT_URL "http://x/path" is not a valid endpoint',
    );
    expect(problems({ DB_DATABASE: "d".repeat(64) })).toContain("at most 63 bytes");
  });

  it("describeConfig hides the secrets", () => {
    const cfg = parseBackupConfig(
      {
        DB_PASSWORD: "pw-123",
        AWS_S3_BUCKET_NAME: "b",
        AWS_S3_ACCESS_KEY: "ak",
        AWS_S3_SECRET_ACCESS_KEY: "sk-456",
      },
      CWD,
    );
    const text = JSON.stringify(describeConfig(cfg));
    expect(text).not.toContain("pw-123");
    expect(text).not.toContain("sk-456");
    expect(text).toContain('"password":"[set]"');
  });

  it("BACKUP_ALLOW_RESTORE_EXISTING: off unless the operator turns it on; documented for --help", () => {
    expect(parseBackupConfig({}, CWD).allowRestoreExisting).toBe(false);
    expect(parseBackupConfig({ BACKUP_ALLOW_RESTORE_EXISTING: "" }, CWD).allowRestoreExisting).toBe(false);
    expect(parseBackupConfig({ BACKUP_ALLOW_RESTORE_EXISTING: "false" }, CWD).allowRestoreExisting).toBe(
      false,
    );
    expect(parseBackupConfig({ BACKUP_ALLOW_RESTORE_EXISTING: "true" }, CWD).allowRestoreExisting).toBe(true);
    expect(problems({ BACKUP_ALLOW_RESTORE_EXISTING: "sometimes" })).toContain(
      'BACKUP_ALLOW_RESTORE_EXISTING must be "true" or "false"',
    );
    const doc = BACKUP_ENV.find((e) => e.name === "BACKUP_ALLOW_RESTORE_EXISTING");
    expect(doc).toMatchObject({ default: "false" });
    expect(doc?.description).toMatch(/allow_existing=true.*never the backed-up database.*postgres.*template/);
    expect(describeConfig(parseBackupConfig({}, CWD))).toMatchObject({ allowRestoreExisting: false });
  });

  it("BACKUP_RESTORE_PREFIX and BACKUP_MAX_RESTORED: bounded by default, validated, documented for --help", () => {
    const cfg = parseBackupConfig({}, CWD);
    expect(cfg.restorePrefix).toBe("restore_");
    expect(cfg.maxRestored).toBe(5);
    expect(describeConfig(cfg)).toMatchObject({ restorePrefix: "restore_", maxRestored: 5 });
    const set = parseBackupConfig({ BACKUP_RESTORE_PREFIX: " Copy_ ", BACKUP_MAX_RESTORED: "0" }, CWD);
    expect(set).toMatchObject({ restorePrefix: "Copy_", maxRestored: 0 });
    expect(parseBackupConfig({ BACKUP_RESTORE_PREFIX: "", BACKUP_MAX_RESTORED: "" }, CWD)).toMatchObject({
      restorePrefix: "restore_",
      maxRestored: 5,
    });
    expect(
      parseBackupConfig({ BACKUP_RESTORE_PREFIX: "r".repeat(62), BACKUP_MAX_RESTORED: "1000" }, CWD),
    ).toMatchObject({ restorePrefix: "r".repeat(62), maxRestored: 1000 });

    const prefixRule = "BACKUP_RESTORE_PREFIX must be letters, digits and _, starting with a letter or _";
    for (const prefix of ["restore-", "1restore_", "re store", "r%", "café_", "x=y"]) {
      expect(problems({ BACKUP_RESTORE_PREFIX: prefix }), prefix).toBe(
        `invalid backup executor configuration:\n  - ${prefixRule}`,
      );
    }
    expect(problems({ BACKUP_RESTORE_PREFIX: "r".repeat(63) })).toBe(
      "invalid backup executor configuration:\n  - BACKUP_RESTORE_PREFIX must be at most 62 bytes long",
    );
    expect(problems({ BACKUP_MAX_RESTORED: "-1" })).toContain("BACKUP_MAX_RESTORED must be a whole number");
    expect(problems({ BACKUP_MAX_RESTORED: "many" })).toContain("BACKUP_MAX_RESTORED must be a whole number");
    expect(problems({ BACKUP_MAX_RESTORED: "1001" })).toContain(
      "BACKUP_MAX_RESTORED must be between 0 and 1000",
    );
    // Both reported at once, like every other problem.
    expect(problems({ BACKUP_RESTORE_PREFIX: "a-", BACKUP_MAX_RESTORED: "x" })).toBe(
      [
        "invalid backup executor configuration:",
        prefixRule,
        "BACKUP_MAX_RESTORED must be a whole number",
      ].join("\n  - "),
    );

    const prefixDoc = BACKUP_ENV.find((e) => e.name === "BACKUP_RESTORE_PREFIX");
    expect(prefixDoc).toMatchObject({ default: "restore_" });
    expect(prefixDoc?.description).toMatch(
      /restore creates, and with allow_existing replaces, only databases/,
    );
    const maxDoc = BACKUP_ENV.find((e) => e.name === "BACKUP_MAX_RESTORED");
    expect(maxDoc).toMatchObject({ default: "5" });
    expect(maxDoc?.description).toMatch(/BACKUP_RESTORE_PREFIX.*0: restore creates no databases/);
  });

  it("booleans are the shared grammar: true or false in any case; 1/0, yes/no and on/off are refused", () => {
    const bucket = { AWS_S3_BUCKET_NAME: "b" };
    expect(s3({ ...bucket, AWS_S3_INSECURE_SKIP_VERIFY: "TRUE" }).insecureSkipVerify).toBe(true);
    expect(s3({ ...bucket, AWS_S3_INSECURE_SKIP_VERIFY: " False " }).insecureSkipVerify).toBe(false);
    for (const value of ["1", "0", "yes", "no", "on", "off"]) {
      expect(problems({ ...bucket, AWS_S3_FORCE_PATH_STYLE: value })).toBe(
        'invalid backup executor configuration:\n  - AWS_S3_FORCE_PATH_STYLE must be "true" or "false"',
      );
    }
  });

  it("a problem names the alias that was set, and the first name set wins even when it is invalid", () => {
    expect(problems({ PGPORT: "x" })).toContain("PGPORT must be a whole number");
    expect(problems({ FULL_BACKUPS: "-1" })).toContain("FULL_BACKUPS must be a whole number");
    expect(problems({ DB_PORT: "0", PGPORT: "5432" })).toContain("DB_PORT must be between 1 and 65535");
    // Blank counts as unset, so the alias is used.
    expect(parseBackupConfig({ DB_HOST: "  ", PGHOST: "pg" }, CWD).pg.host).toBe("pg");
  });

  it("case-insensitive choices; secrets kept verbatim, an empty one unset", () => {
    expect(parseBackupConfig({ PGSSLMODE: "Verify-Full" }, CWD).pg.sslMode).toBe("verify-full");
    expect(parseBackupConfig({ DB_PASSWORD: "", PGPASSWORD: " p " }, CWD).pg.password).toBe(" p ");
  });

  it("documents every variable once, secrets marked", () => {
    const names = BACKUP_ENV.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect(BACKUP_ENV.filter((e) => e.secret).map((e) => e.name)).toEqual([
      "DB_PASSWORD",
      "AWS_S3_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
    ]);
  });
});

describe("normalizeEndpoint / normalizePrefix", () => {
  it("adds the scheme from AWS_S3_SECURE only when missing", () => {
    expect(normalizeEndpoint("minio:9000", undefined)).toBe("https://minio:9000");
    expect(normalizeEndpoint("minio:9000", false)).toBe("http://minio:9000");
    expect(normalizeEndpoint("https://minio:9000/", false)).toBe("https://minio:9000");
    expect(() => normalizeEndpoint("http://minio:9000/bucket", undefined)).toThrow(/path/);
  });

  it("prefixes end in exactly one slash; empty means the bucket root", () => {
    expect(normalizePrefix("backups")).toBe("backups/");
    expect(normalizePrefix("/a/b//")).toBe("a/b/");
    expect(normalizePrefix("/")).toBe("");
    expect(normalizePrefix("")).toBe("");
  });
});

describe("EnvReader's additions for the backup executor", () => {
  it("first(): the first name set, else the first name; names after it are not read", () => {
    const read: string[] = [];
    const env = new Proxy({ B: "b", C: "c" } as NodeJS.ProcessEnv, {
      get: (target, name: string) => {
        read.push(name);
        return target[name];
      },
    });
    expect(new EnvReader(env).first("A", "B", "C")).toBe("B");
    expect(read).toEqual(["A", "B"]);
    expect(new EnvReader({ A: " " }).first("A", "B")).toBe("A");
  });

  it("oneOf() stays case-sensitive unless asked", () => {
    const e = new EnvReader({ X: "S3" });
    expect(e.oneOf("X", ["dir", "s3"] as const, { ignoreCase: true })).toBe("s3");
    expect(e.problems).toEqual([]);
    expect(e.oneOf("X", ["dir", "s3"] as const)).toBeUndefined();
    expect(e.problems).toEqual(["X must be one of dir, s3"]);
  });
});
