#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * One entry point for every executor: `colonyos-executor <kind>`. A small young generation (the shebang's and
 * the image's flag) keeps an idle executor's memory low; executors allocate little.
 */
import { parseArgs } from "node:util";
import { RUNTIME_ENV } from "./executor/config.js";
import { runExecutor } from "./executor/main.js";
import type { EnvDoc } from "./executor/types.js";
import { EXECUTORS } from "./executors/index.js";

function table(docs: readonly EnvDoc[]): string {
  const width = Math.max(...docs.map((d) => d.name.length)) + 2;
  return docs
    .map((d) => {
      const notes = [d.default ? `default ${d.default}` : "", d.secret ? "secret" : ""]
        .filter(Boolean)
        .join("; ");
      return `  ${d.name.padEnd(width)}${d.description}${notes ? ` (${notes})` : ""}`;
    })
    .join("\n");
}

async function help(kind?: string): Promise<string> {
  const kinds = Object.keys(EXECUTORS);
  const sections = [
    `Usage: colonyos-executor <${kinds.join("|")}> [--help]`,
    "",
    "Runs a ColonyOS executor: it registers with a Colonies server, takes processes of its type,",
    "runs them and closes or fails each exactly once. Configured by environment variables.",
    "",
    "Executors:",
  ];
  for (const name of kinds) {
    const module = await EXECUTORS[name]?.();
    if (module) sections.push(`  ${name.padEnd(8)}${module.description}`);
  }
  sections.push("", "Environment (all executors):", table(RUNTIME_ENV));
  for (const name of kind ? [kind] : kinds) {
    const module = await EXECUTORS[name]?.();
    if (module?.env.length) sections.push("", `Environment (${name}):`, table(module.env));
  }
  sections.push(
    "",
    "Signals: SIGTERM/SIGINT stop polling and let running processes finish within EXECUTOR_SHUTDOWN_GRACE;",
    "a second signal aborts them at once (they fail with the reason).",
  );
  return sections.join("\n");
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { help: { type: "boolean", short: "h" }, version: { type: "boolean" } },
    allowPositionals: true,
  });
  const kind = positionals[0];
  if (values.version) {
    const { version } = (await import("../package.json", { with: { type: "json" } })).default;
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (values.help || !kind) {
    process.stdout.write(`${await help(kind && kind in EXECUTORS ? kind : undefined)}\n`);
    return kind || values.help ? 0 : 2;
  }
  const load = EXECUTORS[kind];
  if (!load) {
    process.stderr.write(`unknown executor "${kind}"; known: ${Object.keys(EXECUTORS).join(", ")}\n`);
    return 2;
  }
  return runExecutor(await load(), process.env);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
