/**
 * Repair of what a kill -9 can cut in the file state backend. Its objects are written by gocloud's fileblob:
 * the data goes to a temporary file renamed into place (all or nothing), but the `<object>.attrs` sidecar is
 * truncated and then written in place. A process killed between the two leaves an empty `.attrs`, and the CLI then
 * fails on the stack for good ("failed to load checkpoint: EOF"). An empty sidecar is never valid (it holds JSON),
 * while a missing one reads as "no attributes": removing it makes the object readable again, and the object itself
 * is whole (the last version renamed into place).
 */
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The empty `.attrs` files in `dir` whose names start with `prefix`, removed; their paths. */
async function removeEmptyAttrs(dir: string, prefix = ""): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(prefix) && n.endsWith(".attrs"))) {
    const path = join(dir, name);
    const size = await stat(path).then(
      (s) => s.size,
      () => -1,
    );
    if (size !== 0) continue;
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}

/**
 * Removes the empty sidecars of a file backend's stacks (every stack's checkpoint files, or one stack's, its
 * history included); nothing for other backends. Returns the paths removed.
 */
export async function repairCutWrites(
  backendUrl: string,
  project: string,
  stack?: string,
): Promise<string[]> {
  if (!backendUrl.startsWith("file://")) return [];
  const root = join(fileURLToPath(backendUrl), ".pulumi");
  const stacks = join(root, "stacks", project);
  if (stack === undefined) return removeEmptyAttrs(stacks);
  return [
    ...(await removeEmptyAttrs(stacks, `${stack}.json`)),
    ...(await removeEmptyAttrs(join(root, "history", project, stack))),
  ];
}
