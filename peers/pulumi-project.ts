import { symlinkSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Links the bootstrap project (Pulumi.yaml, infra/ and what it imports) into `dir`, so that `pulumi` runs there
 * write their stack settings files into `dir` rather than into the repository.
 */
export function linkPulumiProject(dir: string): void {
  for (const entry of ["Pulumi.yaml", "package.json", "tsconfig.json", "infra", "src", "node_modules"]) {
    symlinkSync(resolve(entry), join(dir, entry));
  }
}
