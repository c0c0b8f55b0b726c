/**
 * The backup executor: verified, streaming PostgreSQL backups (pg_dump -Fc) to a directory or S3-compatible
 * storage, with safe retention; plus list_backups, verify and restore. See backup/ for the parts:
 * config (environment), names, pgtools (pg_dump/pg_restore), database (own connection + lock), writer (whose
 * leftovers a backup may remove), targets/ (dir, s3, partial names), dump/verify/restore (the operations),
 * retention, functions (the Colonies table).
 */
import type { ExecutorModule } from "../executor/types.js";
import { BACKUP_ENV, describeConfig, parseBackupConfig } from "./backup/config.js";
import type { BackupDeps } from "./backup/dump.js";
import { backupFunctions } from "./backup/functions.js";
import { toolVersion } from "./backup/pgtools.js";
import { DirTarget } from "./backup/targets/dir.js";
import type { Target } from "./backup/targets/target.js";

export const backupExecutor: ExecutorModule = {
  kind: "backup",
  description:
    "backs up a PostgreSQL database (pg_dump -Fc) to a directory or S3; lists, verifies and restores backups",
  env: BACKUP_ENV,
  async create(env, logger) {
    const config = parseBackupConfig(env);
    // The AWS SDK is loaded only for the s3 target: it is most of a directory executor's memory otherwise.
    const target: Target =
      config.target.kind === "s3"
        ? new (await import("./backup/targets/s3.js")).S3Target(config.target, logger)
        : new DirTarget(config.target.dir, logger);
    let version: Promise<string> | undefined;
    const deps: BackupDeps = {
      config,
      target,
      env,
      logger,
      pgDumpVersion: () => {
        if (!version) {
          version = toolVersion(config.pg, "pg_dump");
          version.catch(() => {
            version = undefined; // retried next time (e.g. the client tools get installed)
          });
        }
        return version;
      },
    };
    logger.info({ config: describeConfig(config) }, "backup executor configured");
    return {
      functions: backupFunctions(deps),
      ready: () =>
        target.check().then(
          () => true,
          (err: unknown) => {
            logger.warn({ err: (err as Error).message }, "backup target not ready");
            return false;
          },
        ),
      close: () => target.close(),
    };
  },
};
