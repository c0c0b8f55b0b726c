/**
 * Submitting as a colony member does through the official CLI: `colonies function submit --spec <file>`, a raw
 * function spec with any strings (values with ':' and ',' too, which `--kwargs` cannot carry) and the priority
 * the caller chooses.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ColoniesServer } from "../../peers/colonies-server.js";

export interface CliSpec {
  funcname: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  priority?: number;
  executortype: string;
}

/** The process id the CLI prints on stderr. */
export function processIdIn(stderr: string): string {
  const id = /ProcessId=([0-9a-f]{64})/.exec(stderr)?.[1];
  if (!id) throw new Error(`no process id in the CLI's output: ${stderr}`);
  return id;
}

/** Writes the spec into `dir` and submits it with the member's key; returns the process id. */
export async function submitByCli(server: ColoniesServer, dir: string, spec: CliSpec): Promise<string> {
  const file = join(dir, `spec-${randomBytes(4).toString("hex")}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      funcname: spec.funcname,
      args: spec.args ?? [],
      kwargs: spec.kwargs ?? {},
      priority: spec.priority ?? 0,
      maxexectime: -1,
      maxretries: 0,
      maxwaittime: -1,
      conditions: { executortype: spec.executortype },
    }),
  );
  const { stderr } = await server.cli(["function", "submit", "--spec", file]);
  return processIdIn(stderr);
}
