/**
 * The blueprint RPCs a Kubernetes reconciler needs, against a real Colonies server (1.9.12) driven by the official
 * CLI: the owner adds this project's BlueprintDefinition (handler: the k8s executor's type), a member adds a blueprint
 * with a location and values that `--kwargs` could not carry; the server submits `reconcile {kind, blueprintName}`
 * to the handler's type; the client reads the blueprint back exactly, lists blueprints by kind and location, and
 * writes a status that `colonies blueprint get` shows.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { userClient } from "../../peers/executor.js";
import { waitFor } from "../../peers/ports.js";
import { ProcessState } from "../../src/colonies/types.js";
import { executorDeploymentDefinition, KIND } from "../../src/executors/k8s/blueprint/definition.js";

let server: ColoniesServer;
let dir: string;
const HANDLER = "k8s-blueprints";

function specFile(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

beforeAll(async () => {
  server = await startColoniesServer();
  dir = mkdtempSync(join(tmpdir(), "blueprints-"));
  // This project's definition, as infra registers it.
  const definition = specFile("definition.json", executorDeploymentDefinition(HANDLER));
  // The owner key, as the CLI reads it for owner commands.
  await server.cli(["blueprint", "definition", "add", "--spec", definition], {
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
  });
}, 300_000);

afterAll(async () => {
  await server?.stop();
});

describe("blueprints on a real Colonies server", () => {
  const env = { GREETING: "hello: world, and more", URL: "http://db:5432/x?a=1,b=2" };

  it("reads a member's blueprint back exactly, by name and by kind and location", async () => {
    const file = specFile("web.json", {
      kind: KIND,
      metadata: { name: "web", locationname: "cluster-a" },
      spec: { image: "registry.example.com/colonyos/executors:1", replicas: 2, executorType: "web", env },
    });
    await server.cli(["blueprint", "add", "--spec", file]);
    const client = userClient(server);
    const blueprint = await client.getBlueprint(server.colonyName, "web", server.userPrvKey);
    expect(blueprint).toMatchObject({
      kind: KIND,
      metadata: { name: "web", colonyname: server.colonyName, locationname: "cluster-a" },
      spec: { replicas: 2, executorType: "web", env },
    });
    // A spec change bumps the generation (0, left out of the JSON, on add).
    const before = blueprint.metadata.generation ?? 0;
    await server.cli(["blueprint", "set", "--name", "web", "--key", "spec.replicas", "--value", "3"]);
    const after = await client.getBlueprint(server.colonyName, "web", server.userPrvKey);
    expect(after.spec.replicas).toBe(3);
    expect(after.metadata.generation ?? 0).toBe(before + 1);
    const here = await client.getBlueprints(server.colonyName, KIND, "cluster-a", server.userPrvKey);
    expect(here.map((b) => b.metadata.name)).toEqual(["web"]);
    const elsewhere = await client.getBlueprints(server.colonyName, KIND, "cluster-b", server.userPrvKey);
    expect(elsewhere).toEqual([]);
  });

  it("validates blueprints against the definition's schema before anything is submitted", async () => {
    const file = specFile("bad.json", {
      kind: KIND,
      metadata: { name: "bad" },
      spec: { image: "registry.example.com/colonyos/executors:1", executorType: "bad", replicas: "2" },
    });
    const refused = await server.cli(["blueprint", "add", "--spec", file]).then(
      () => "",
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/field 'replicas' must be a number/);
    expect(
      await userClient(server).getBlueprints(server.colonyName, KIND, "", server.userPrvKey),
    ).toHaveLength(1);
  });

  it("submits reconcile {kind, blueprintName} to the handler's type, at the blueprint's location", async () => {
    const client = userClient(server);
    let found: Awaited<ReturnType<typeof client.getProcesses>> = [];
    await waitFor(
      "the server's reconcile process",
      async () => {
        found = (
          await client.getProcesses(
            { colonyName: server.colonyName, state: ProcessState.WAITING, executorType: HANDLER },
            server.userPrvKey,
          )
        ).filter((p) => p.spec?.kwargs?.blueprintName === "web");
        return found.length > 0;
      },
      30_000,
    );
    expect(found[0]?.spec).toMatchObject({
      funcname: "reconcile",
      kwargs: { kind: KIND, blueprintName: "web" },
      conditions: { executortype: HANDLER },
    });
  });

  it("writes a status that colonies blueprint get shows", async () => {
    const status = {
      instances: [
        { name: "web-1", id: "uid-1", type: "pod", state: "running", image: "x", lastCheck: "now" },
      ],
      runningInstances: 1,
      totalInstances: 2,
      lastUpdated: new Date().toISOString(),
    };
    await userClient(server).updateBlueprintStatus(server.colonyName, "web", status, server.userPrvKey);
    const read = await userClient(server).getBlueprint(server.colonyName, "web", server.userPrvKey);
    expect(read.status).toEqual(status);
    const { stdout } = await server.cli(["blueprint", "get", "--name", "web"]);
    expect(stdout).toContain("web-1");
  });
});
