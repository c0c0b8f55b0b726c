/**
 * Opening the Pulumi state backend once at start-up. Pulumi's PostgreSQL backend creates its table with
 * `CREATE TABLE IF NOT EXISTS` whenever a CLI process opens it; on a new database, replicas starting together
 * race in that statement and all but one fail ("duplicate key value violates unique constraint
 * pg_type_typname_nsp_index", 23505), so a caller's first call would fail. A start-up that retries that race
 * leaves the table in place before any call runs. A database that is not there yet (starting beside the
 * executor) is waited for a while; one still unusable then stops the start-up with its reason.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import type { Logger } from "pino";
import { runCli } from "./pulumi-update.js";
import { meaningfulLine } from "./stack-errors.js";

/** How long a start-up waits for a backend that cannot be opened yet. */
const OPEN_WAIT_MS = 30_000;
const TABLE_RACE = /pg_type_typname_nsp_index|\(23505\)/;

export function createsTableOnOpen(backendUrl: string): boolean {
  return /^postgres(ql)?:\/\//i.test(backendUrl);
}

/**
 * Opens the backend `env` names (PULUMI_BACKEND_URL) with `pulumi whoami` until the PostgreSQL table exists,
 * retrying the table race at once and other failures with growing pauses for `waitMs`; then throws the last reason.
 */
export async function openStateBackend(
  command: PulumiCommand,
  cwd: string,
  env: Record<string, string>,
  options: { logger?: Logger; waitMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (options.waitMs ?? OPEN_WAIT_MS);
  let pause = 500;
  for (let attempt = 1; ; attempt++) {
    try {
      await runCli(command, ["whoami"], cwd, env);
      return;
    } catch (error) {
      // The CLI's text, its secrets masked (redacted-cli.ts).
      const reason = meaningfulLine(error instanceof Error ? error.message : String(error));
      if (Date.now() >= deadline) {
        throw new Error(`cannot open the Pulumi state backend: ${reason}`, { cause: error });
      }
      if (TABLE_RACE.test(reason)) {
        await sleep(50 + Math.random() * 200);
        continue;
      }
      options.logger?.warn({ reason, attempt }, "cannot open the Pulumi state backend yet; retrying");
      await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
      pause = Math.min(pause * 2, 4_000);
    }
  }
}
