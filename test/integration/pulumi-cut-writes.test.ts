/**
 * What a kill -9 can cut in the file state backend, with the real Pulumi CLI: a checkpoint whose `.attrs` sidecar
 * was truncated (gocloud's fileblob writes it in place) makes every command on the stack fail ("failed to load
 * checkpoint: EOF"); repairCutWrites removes exactly the empty sidecars (of one stack, or of all), and the stack is
 * readable again. Needs the Pulumi engine: eval "$(bash scripts/peers/all.sh --export)".
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { repairCutWrites } from "../../src/k8s/cut-writes.js";

const run = promisify(execFile);
const PROJECT = "cut-writes";

async function pulumi(dir: string, args: string[]) {
  return run("pulumi", [...args, "--non-interactive"], {
    cwd: dir,
    env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "cut-writes-test", PULUMI_SKIP_UPDATE_CHECK: "true" },
  }).catch((error: Error & { code?: string; stderr?: string }) => {
    if (error.code === "ENOENT")
      throw new Error('pulumi is not on PATH: eval "$(bash scripts/peers/all.sh --export)"');
    throw new Error(`pulumi ${args.join(" ")} failed: ${error.stderr ?? error.message}`);
  });
}

describe("a file backend's writes cut by a kill", () => {
  it("an empty .attrs makes the stack unreadable; repairCutWrites removes only empty ones and it reads again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cut-writes-"));
    mkdirSync(join(dir, "state"));
    const backend = pathToFileURL(join(dir, "state")).href;
    writeFileSync(
      join(dir, "Pulumi.yaml"),
      `name: ${PROJECT}\nruntime: nodejs\nbackend:\n  url: ${backend}\n`,
    );
    for (const stack of ["web", "web2"]) await pulumi(dir, ["stack", "init", stack, "--no-select"]);
    const stacks = join(dir, "state", ".pulumi", "stacks", PROJECT);
    const attrs = join(stacks, "web.json.attrs");
    expect(readFileSync(attrs, "utf8")).toMatch(/^\{/);

    // The kill landed between the sidecar's truncation and its write.
    truncateSync(attrs);
    await expect(pulumi(dir, ["stack", "output", "--stack", "web"])).rejects.toThrow(
      /failed to load checkpoint/,
    );
    const other = statSync(join(stacks, "web2.json.attrs")).size;

    expect(await repairCutWrites(backend, PROJECT, "web2")).toEqual([]);
    expect(await repairCutWrites(backend, PROJECT, "web")).toEqual([attrs]);
    expect(statSync(join(stacks, "web2.json.attrs")).size).toBe(other);
    await pulumi(dir, ["stack", "output", "--stack", "web"]);

    // All stacks at once (a single writer's start-up), and nothing for other backends.
    truncateSync(join(stacks, "web2.json.attrs"));
    expect(await repairCutWrites(backend, PROJECT)).toEqual([join(stacks, "web2.json.attrs")]);
    await pulumi(dir, ["stack", "output", "--stack", "web2"]);
    expect(await repairCutWrites("postgres://u:p@127.0.0.1:1/state", PROJECT)).toEqual([]);
  });
});
