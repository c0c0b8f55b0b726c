/**
 * `--help` documents every environment variable an executor reads: each configuration loader runs on an
 * environment that records what is read, and every name read must appear in the runtime's or the executor's
 * documentation table (as an entry, or as an alias named in an entry's description).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadRuntimeConfig, RUNTIME_ENV } from "../../src/executor/config.js";
import type { EnvDoc } from "../../src/executor/types.js";
import { BACKUP_ENV, parseBackupConfig } from "../../src/executors/backup/config.js";
import { K8S_ENV, loadK8sConfig } from "../../src/executors/k8s/config.js";
import { sleepExecutor } from "../../src/executors/sleep.js";

/** An environment that records every variable read from it. */
function recordingEnv(values: Record<string, string> = {}): { env: NodeJS.ProcessEnv; read: Set<string> } {
  const read = new Set<string>();
  const env = new Proxy(values as NodeJS.ProcessEnv, {
    get(target, name) {
      if (typeof name === "string") read.add(name);
      return target[name as string];
    },
  });
  return { env, read };
}

function undocumented(read: Set<string>, docs: readonly EnvDoc[]): string[] {
  const text = docs.map((d) => `${d.name} ${d.description}`).join("\n");
  return [...read].filter((name) => !new RegExp(`\\b${name}\\b`).test(text)).sort();
}

const KEY = "a".repeat(64);
/** Enough for every loader to get to its end (a loader stops reading at its first check). */
const VALID = { COLONIES_COLONY_NAME: "dev", COLONIES_PRVKEY: KEY, COLONIES_COLONY_PRVKEY: KEY };

describe("--help documents every variable read", () => {
  it("the runtime", () => {
    const { env, read } = recordingEnv(VALID);
    loadRuntimeConfig(env, "sleep");
    expect(read.size).toBeGreaterThan(10);
    expect(undocumented(read, RUNTIME_ENV)).toEqual([]);
  });

  it("the sleep executor", async () => {
    const { env, read } = recordingEnv(VALID);
    await sleepExecutor.create(env, undefined as never);
    expect(read.has("SLEEP_MAX_MS")).toBe(true);
    expect(undocumented(read, [...RUNTIME_ENV, ...sleepExecutor.env])).toEqual([]);
  });

  it("the k8s executor", () => {
    const file = join(mkdtempSync(join(tmpdir(), "env-docs-")), "passphrase");
    writeFileSync(file, "pw");
    const { env, read } = recordingEnv({ ...VALID, PULUMI_CONFIG_PASSPHRASE_FILE: file });
    loadK8sConfig(env);
    expect(read.has("K8S_ALLOWED_IMAGES")).toBe(true);
    // XDG_DATA_HOME only places the default data directory, as on every Linux program.
    read.delete("XDG_DATA_HOME");
    expect(undocumented(read, [...RUNTIME_ENV, ...K8S_ENV])).toEqual([]);
  });

  it("the backup executor", () => {
    const { env, read } = recordingEnv({ ...VALID, BACKUP_TARGET: "s3", AWS_S3_BUCKET_NAME: "b" });
    parseBackupConfig(env, "/tmp");
    expect(read.has("DB_HOST")).toBe(true);
    expect(undocumented(read, [...RUNTIME_ENV, ...BACKUP_ENV])).toEqual([]);
  });
});
