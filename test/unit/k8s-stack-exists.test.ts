import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { fileBackendHasStack } from "../../src/k8s/stacks.js";

describe("whether a file backend holds a stack, without the CLI", () => {
  const root = mkdtempSync(join(tmpdir(), "stack-exists-"));
  const url = pathToFileURL(root).href;
  const stacks = join(root, ".pulumi", "stacks");
  mkdirSync(join(stacks, "proj"), { recursive: true });
  writeFileSync(join(stacks, "proj", "web.json"), "{}");
  writeFileSync(join(stacks, "proj", "zipped.json.gz"), "");
  writeFileSync(join(stacks, "legacy.json"), "{}");
  writeFileSync(join(stacks, "proj", "web-bak.json.bak"), "{}");

  it("finds a stack's checkpoint in the project layout, compressed or not, and in the legacy layout", async () => {
    expect(await fileBackendHasStack(url, "proj", "web")).toBe(true);
    expect(await fileBackendHasStack(url, "proj", "zipped")).toBe(true);
    expect(await fileBackendHasStack(url, "proj", "legacy")).toBe(true);
  });

  it("says no for a name without a checkpoint (a backup file is not a stack), and for another project", async () => {
    expect(await fileBackendHasStack(url, "proj", "new")).toBe(false);
    expect(await fileBackendHasStack(url, "proj", "web-bak")).toBe(false);
    expect(await fileBackendHasStack(url, "other", "web")).toBe(false);
    expect(await fileBackendHasStack(pathToFileURL(join(root, "nothing")).href, "proj", "web")).toBe(false);
  });

  it("leaves other backends to the CLI", async () => {
    expect(await fileBackendHasStack("postgres://u:p@h:5432/db", "proj", "web")).toBeUndefined();
    expect(await fileBackendHasStack("s3://bucket", "proj", "web")).toBeUndefined();
  });
});
