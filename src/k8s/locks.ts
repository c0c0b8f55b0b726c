/**
 * Stale-lock recovery for the file state backend. Each update writes
 * `<backend>/.pulumi/locks/organization/<project>/<stack>/<id>.json` with the holder's pid and host, and nothing
 * removes it if the holder dies. A lock is stale when its holder is known to be gone:
 * - held on this host by a pid that is gone (or is no longer a pulumi process);
 * - with `singleWriter` (one executor owns the backend, e.g. a file backend on a ReadWriteOnce volume), also any
 *   lock from another host: that can only be an earlier incarnation of this executor (a replaced pod).
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { repairCutWrites } from "./cut-writes.js";

export interface LockInfo {
  file: string;
  stack: string;
  pid?: number;
  host?: string;
  stale: boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return true;
}

/** Whether the error says the file or directory is not there (anything else is a real failure). */
function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}

async function isPulumiProcess(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return /pulumi/.test(cmdline);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    // No such process, or no /proc at all: then liveness alone decides.
    return processAlive(pid);
  }
}

/** The entries of a directory; none when it does not exist. */
async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

/** The lock directory of a project in a file backend, or null for other backends. */
export function lockDir(backendUrl: string, project: string): string | null {
  if (!backendUrl.startsWith("file://")) return null;
  return join(fileURLToPath(backendUrl), ".pulumi", "locks", "organization", project);
}

export async function findLocks(
  backendUrl: string,
  project: string,
  options: { stack?: string; singleWriter?: boolean } = {},
): Promise<LockInfo[]> {
  const { stack, singleWriter = false } = options;
  const dir = lockDir(backendUrl, project);
  if (!dir) return [];
  const stacks = stack ? [stack] : await entries(dir);
  const locks: LockInfo[] = [];
  for (const name of stacks) {
    const files = await entries(join(dir, name));
    for (const entry of files.filter((f) => f.endsWith(".json"))) {
      const file = join(dir, name, entry);
      let content: { pid?: number; hostname?: string } = {};
      try {
        content = JSON.parse(await readFile(file, "utf8"));
      } catch (error) {
        if (isNotFound(error)) continue; // released meanwhile
        if (!(error instanceof SyntaxError)) throw error;
        // Not JSON (being written?): held by an unknown process, so not stale.
      }
      const local = content.hostname === hostname();
      const alive = local && typeof content.pid === "number" && (await isPulumiProcess(content.pid));
      const stale = local
        ? typeof content.pid === "number" && !alive
        : singleWriter && content.hostname !== undefined;
      locks.push({ file, stack: name, pid: content.pid, host: content.hostname, stale });
    }
  }
  return locks;
}

/**
 * Removes the stale locks of one stack (or all stacks), and repairs what their dead holders' writes left cut
 * (cut-writes.ts); returns the locks removed.
 */
export async function removeStaleLocks(
  backendUrl: string,
  project: string,
  options: { stack?: string; singleWriter?: boolean } = {},
): Promise<LockInfo[]> {
  const stale = (await findLocks(backendUrl, project, options)).filter((lock) => lock.stale);
  // The file backend (gocloud's fileblob) keeps a `.attrs` sidecar beside each object.
  await Promise.all(
    stale.flatMap((lock) => [rm(lock.file, { force: true }), rm(`${lock.file}.attrs`, { force: true })]),
  );
  for (const stack of new Set(stale.map((lock) => lock.stack)))
    await repairCutWrites(backendUrl, project, stack);
  return stale;
}
