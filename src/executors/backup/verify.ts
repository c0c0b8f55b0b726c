/**
 * verify(name): reads the backup once, computing size and sha256 while feeding it to `pg_restore --list`
 * (which checks the archive header and table of contents), and compares them with the metadata.
 */
import { createHash } from "node:crypto";
import { type ProcessContext, ProcessError } from "../../executor/types.js";
import { type BackupDeps, cancelled } from "./dump.js";
import { messageOf } from "./errors.js";
import type { BackupMetadata } from "./metadata.js";
import { startTool, toolEnv, toolFailure } from "./pgtools.js";
import { ignoreEpipe, writeIfOpen } from "./streams.js";
import type { Target } from "./targets/target.js";

export interface VerifyOutput {
  name: string;
  ok: true;
  target: "dir" | "s3";
  path?: string;
  bucket?: string;
  key?: string;
  database: string;
  size: number;
  sha256: string;
  /** Entries in the archive's table of contents. */
  entries: number;
  serverVersion: string;
  created: string;
  durationMs: number;
}

/** The metadata of an existing backup, or a ProcessError saying which of the two is missing. */
export async function requireMetadata(target: Target, name: string, fn: string): Promise<BackupMetadata> {
  const meta = await target.readMetadata(name);
  if (meta) return meta;
  const exists = await target.stat(name);
  if (!exists) throw new ProcessError(`${fn}: backup ${name} not found in ${target.description}`);
  throw new ProcessError(
    `${fn}: backup ${name} has no metadata document (${name}.json), so its sha256 is unknown`,
  );
}

export async function runVerify(
  deps: BackupDeps,
  ctx: ProcessContext,
  /** A backup name (checked by the parser: checkBackupName). */
  name: string,
): Promise<VerifyOutput> {
  const { target, config } = deps;
  const started = Date.now();
  const meta = await requireMetadata(target, name, "verify");
  if (ctx.signal.aborted) throw cancelled(`verify ${name}`, ctx.signal);

  const source = await target.read(name, ctx.signal);
  const tool = startTool(config.pg, "pg_restore", ["--list"], toolEnv(config.pg, deps.env), "pipe");
  const stdin = tool.child.stdin;
  if (!stdin) throw new ProcessError("verify: pg_restore has no stdin");
  // pg_restore --list stops reading after the table of contents: EPIPE is expected, not a failure.
  const stdinFailure = ignoreEpipe(stdin);
  let toc = "";
  tool.child.stdout?.setEncoding("utf8");
  tool.child.stdout?.on("data", (t: string) => {
    toc += t;
  });
  const onAbort = () => {
    tool.stop();
    source.destroy();
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });

  const hash = createHash("sha256");
  let size = 0;
  try {
    let open = true;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      if (open) open = await writeIfOpen(stdin, chunk);
    }
    stdin.end();
  } catch (err) {
    tool.stop();
    await tool.exited;
    if (ctx.signal.aborted) throw cancelled(`verify ${name}`, ctx.signal);
    throw new ProcessError(
      `verify: cannot read backup ${name} from ${target.description}: ${messageOf(err)}`,
    );
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
  }
  const result = await tool.exited;
  if (ctx.signal.aborted) throw cancelled(`verify ${name}`, ctx.signal);

  const sha256 = hash.digest("hex");
  if (size !== meta.size || sha256 !== meta.sha256) {
    throw new ProcessError(
      `verify: backup ${name} is damaged: ${size} bytes with sha256 ${sha256}, the metadata records ${meta.size} bytes with sha256 ${meta.sha256}`,
    );
  }
  if (result.code !== 0)
    throw toolFailure("pg_restore", `verify: backup ${name} is not a readable archive`, result);
  const fed = stdinFailure();
  if (fed) throw new ProcessError(`verify: cannot pass backup ${name} to pg_restore: ${messageOf(fed)}`);

  const entries = toc.split("\n").filter((l) => l.trim() !== "" && !l.startsWith(";")).length;
  const location = target.locate(name);
  await ctx.log(`verify ${name}: sha256 and size match, ${entries} archive entries`);
  return {
    name,
    ok: true,
    ...location,
    database: meta.database,
    size,
    sha256,
    entries,
    serverVersion: meta.serverVersion,
    created: meta.start,
    durationMs: Date.now() - started,
  };
}
