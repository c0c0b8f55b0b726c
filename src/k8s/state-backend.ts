/**
 * Opening the Pulumi state backend once at start-up. Pulumi's PostgreSQL backend creates its table with
 * `CREATE TABLE IF NOT EXISTS` whenever a CLI process opens it; on a new database, replicas starting together
 * race in that statement and all but one fail ("duplicate key value violates unique constraint
 * pg_type_typname_nsp_index", 23505), so a caller's first call would fail. A start-up that retries that one
 * race leaves the table in place before any call runs; an unusable backend stops the start-up with its reason.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import { runCli } from "./pulumi-update.js";
import { meaningfulLine } from "./stack-errors.js";

const ATTEMPTS = 5;
const TABLE_RACE = /pg_type_typname_nsp_index|\(23505\)/;

export function createsTableOnOpen(backendUrl: string): boolean {
  return /^postgres(ql)?:\/\//i.test(backendUrl);
}

/** Opens the backend (`pulumi whoami`) until the PostgreSQL table exists; throws what else went wrong. */
export async function openStateBackend(
  command: PulumiCommand,
  backendUrl: string,
  cwd: string,
  env: Record<string, string>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await runCli(command, ["whoami"], cwd, { ...env, PULUMI_BACKEND_URL: backendUrl });
      return;
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      if (attempt < ATTEMPTS && TABLE_RACE.test(text)) {
        await sleep(50 + Math.random() * 200 * attempt);
        continue;
      }
      throw new Error(`cannot open the Pulumi state backend: ${meaningfulLine(text)}`, { cause: error });
    }
  }
}
