/** What a k8s executor may leave behind, as tests look for it: Pulumi locks of its file backend, identities. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { ColoniesServer } from "../../peers/colonies-server.js";
import { userClient } from "../../peers/executor.js";
import { ExecutorState } from "../../src/colonies/types.js";

/** The lock directory of a stack in the file backend under `dataDir/state` (project colonyos-executors). */
export function lockDir(dataDir: string, stack: string): string {
  return join(dataDir, "state", ".pulumi", "locks", "organization", "colonyos-executors", stack);
}

export function lockFiles(dataDir: string, stack: string): string[] {
  const dir = lockDir(dataDir, stack);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

/** Registered identities of a deployment at the executor's location (what its sweep may remove), sorted. */
export async function identitiesOf(
  server: ColoniesServer,
  namespace: string,
  deployment: string,
): Promise<string[]> {
  const executors = await userClient(server).getExecutors(server.colonyName, server.userPrvKey);
  return executors
    .filter(
      (e) =>
        e.state !== ExecutorState.UNREGISTERED &&
        e.locationname === `kubernetes/${namespace}/colonyos-executors` &&
        new RegExp(`^${deployment}-[0-9a-f]{6}$`).test(e.executorname),
    )
    .map((e) => e.executorname)
    .sort();
}
