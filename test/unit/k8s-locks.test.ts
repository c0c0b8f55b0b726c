import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { findLocks, removeStaleLocks } from "../../src/k8s/locks.js";

function backendWithLocks(locks: Record<string, object>): { url: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), "locks-"));
  const dir = join(root, ".pulumi", "locks", "organization", "proj");
  for (const [path, content] of Object.entries(locks)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), JSON.stringify(content));
  }
  return { url: pathToFileURL(root).href, dir };
}

describe("stale Pulumi locks", () => {
  it("removes only locks whose holder is gone", async () => {
    // A live process whose command line says pulumi (the real CLI is not needed to hold a lock).
    const live = spawn("bash", ["-c", "exec -a pulumi-fake sleep 30"]);
    try {
      await new Promise((r) => setTimeout(r, 100));
      const { url, dir } = backendWithLocks({
        "dead/1.json": { pid: 999_999, hostname: hostname() },
        "dead/1.json.attrs": { md5: "sidecar of the file blob store" },
        "alive/2.json": { pid: live.pid, hostname: hostname() },
        "elsewhere/3.json": { pid: 1, hostname: "another-host" },
      });
      expect((await findLocks(url, "proj")).map((l) => [l.stack, l.stale]).sort()).toEqual([
        ["alive", false],
        ["dead", true],
        ["elsewhere", false],
      ]);
      const removed = await removeStaleLocks(url, "proj");
      expect(removed.map((l) => l.stack)).toEqual(["dead"]);
      expect(existsSync(join(dir, "dead/1.json"))).toBe(false);
      expect(existsSync(join(dir, "dead/1.json.attrs"))).toBe(false);
      expect(existsSync(join(dir, "alive/2.json"))).toBe(true);
      // With a single writer, a lock from another host can only be an earlier incarnation of this executor.
      expect((await removeStaleLocks(url, "proj", { singleWriter: true })).map((l) => l.stack)).toEqual([
        "elsewhere",
      ]);
      expect(existsSync(join(dir, "alive/2.json"))).toBe(true);
    } finally {
      live.kill();
    }
  });

  it("ignores backends that are not file backends", async () => {
    expect(await findLocks("s3://bucket/state", "proj")).toEqual([]);
  });
});
