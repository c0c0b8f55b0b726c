/**
 * Blueprints split by location across two real clusters, driven by the official CLI only: two k8s executors of
 * one handler type, one per cluster (EXECUTOR_LOCATION east and west), under upstream's own example definition
 * (`examples/blueprints/executor-deployment-definition.json` of the Colonies module, its handler pointed at them).
 * A member adds upstream's example blueprint as it is (its image and location changed) at east and another at west:
 * each cluster gets only its own, each location's cron reconciles only its own, the identities carry the blueprint's
 * id and generation, and `colonies blueprint doctor` finds nothing wrong with a healthy one.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { COLONIES_VERSION, type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime, userClient } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { waitFor } from "../../peers/ports.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ExecutorState, type Process, ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { KIND } from "../../src/executors/k8s/blueprint/definition.js";
import { k8sExecutor } from "../../src/executors/k8s.js";

const run = promisify(execFile);
/** `colonies blueprint doctor` takes executors whose type contains "reconciler" for reconcilers. */
const HANDLER = "k8s-reconciler";
const LOCATIONS = ["east", "west"] as const;
type Location = (typeof LOCATIONS)[number];
const repo = resolve(import.meta.dirname, "../..");
/** The second cluster, made and deleted by this suite with the script users run. */
const WEST_CLUSTER = `west-${process.pid}`;

interface Site {
  runtime: ExecutorRuntime;
  apps: AppsV1Api;
  core: CoreV1Api;
  namespace: string;
}

let server: ColoniesServer;
const sites = {} as Record<Location, Site>;
let specDir: string;

/** A file of upstream's Colonies module (its source is in Go's module cache once the server is built). */
async function upstreamExample(name: string): Promise<Record<string, unknown>> {
  const { stdout } = await run("go", ["env", "GOMODCACHE"]);
  const file = join(
    stdout.trim(),
    `github.com/colonyos/colonies@v${COLONIES_VERSION}/examples/blueprints/${name}`,
  );
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(
      `upstream's example ${file} is not readable (${(error as Error).message}): build the Colonies server with \`bash scripts/peers/colonies.sh\`, which downloads its module`,
    );
  }
}

function specFile(name: string, content: unknown): string {
  const file = join(specDir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

async function cluster(name: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("bash", ["scripts/cluster.sh", ...args], {
    cwd: repo,
    env: { ...process.env, KWOK_CLUSTER_NAME: name },
  });
  return stdout.trim();
}

async function startSite(location: Location, kubeconfigPath: string): Promise<Site> {
  const kubeConfig = loadKubeConfig({ path: kubeconfigPath });
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = await createNamespace(core, `bp-${location}`);
  const dataDir = await mkdtemp(join(tmpdir(), `bp-${location}-`));
  const kubeconfig = await executorKubeconfig(kubeConfig, namespace, dataDir);
  const runtime = await startRuntime(
    server,
    k8sExecutor,
    k8sExecutorEnv(
      { kubeconfig, namespace, dataDir, passphrase: randomBytes(16).toString("hex") },
      {
        COLONIES_EXECUTOR_TYPE: HANDLER,
        EXECUTOR_LOCATION: location,
        K8S_ROLLOUT_TIMEOUT: "60",
        K8S_ALLOWED_EXECUTOR_TYPES: "container-executor",
      },
    ),
  );
  return { runtime, apps, core, namespace };
}

async function deployments(location: Location): Promise<string[]> {
  const { apps, namespace } = sites[location];
  return (await apps.listNamespacedDeployment({ namespace })).items.map((d) => d.metadata?.name ?? "").sort();
}

/** The Colonies executor id of each location's k8s executor. */
async function siteIds(): Promise<Record<Location, string>> {
  const executors = await userClient(server).getExecutors(server.colonyName, server.userPrvKey);
  const id = (l: Location) =>
    executors.find((e) => e.executorname === sites[l].runtime.executorName)?.executorid ?? `(${l} unknown)`;
  return { east: id("east"), west: id("west") };
}

async function succeeded(): Promise<Process[]> {
  return userClient(server).getProcesses(
    { colonyName: server.colonyName, state: ProcessState.SUCCESS, executorType: HANDLER },
    server.userPrvKey,
  );
}

beforeAll(async () => {
  server = await startColoniesServer();
  specDir = await mkdtemp(join(tmpdir(), "bp-locations-"));
  const westKubeconfig = await cluster(WEST_CLUSTER, "up");
  sites.east = await startSite("east", clusterKubeconfig());
  sites.west = await startSite("west", westKubeconfig);
  // The owner adds upstream's example definition as it is, its handler pointed at these executors.
  const definition = await upstreamExample("executor-deployment-definition.json");
  (definition.spec as { handler: { executorType: string } }).handler.executorType = HANDLER;
  await server.cli(["blueprint", "definition", "add", "--spec", specFile("def.json", definition)], {
    COLONIES_COLONY_PRVKEY: server.colonyPrvKey,
  });
}, 300_000);

afterAll(async () => {
  for (const site of Object.values(sites)) await site.runtime.shutdown();
  await server?.stop();
  await sites.east?.core.deleteNamespace({ name: sites.east.namespace }).catch(() => undefined);
  await cluster(WEST_CLUSTER, "down").catch(() => undefined);
}, 120_000);

describe("blueprints at two locations on two clusters", () => {
  it("each cluster gets only the blueprints of its location, from upstream's example as it is", async () => {
    const example = await upstreamExample("executor-deployment-instance.json");
    for (const location of LOCATIONS) {
      const blueprint = {
        ...example,
        metadata: { name: `app-${location}`, locationname: location },
        // West serves a type of its own: a type another executor serves is never deployed (the trust rule).
        spec: {
          ...(example.spec as object),
          image: TEST_IMAGE,
          replicas: 1,
          ...(location === "west" ? { executorType: "app-west" } : {}),
        },
      };
      await server.cli(["blueprint", "add", "--spec", specFile(`${location}.json`, blueprint)]);
    }
    for (const location of LOCATIONS) {
      await waitFor(
        `app-${location} running at ${location}`,
        async () => {
          const status = (
            await userClient(server).getBlueprint(server.colonyName, `app-${location}`, server.userPrvKey)
          ).status;
          return status?.runningInstances === 1;
        },
        120_000,
      );
    }
    expect(await deployments("east")).toEqual(["app-east"]);
    expect(await deployments("west")).toEqual(["app-west"]);
    // Upstream's fields arrive: its cpu and memory requests.
    const east = await sites.east.apps.readNamespacedDeployment({
      name: "app-east",
      namespace: sites.east.namespace,
    });
    expect(east.spec?.template.spec?.containers[0]?.resources?.requests).toEqual({
      cpu: "500m",
      memory: "512Mi",
    });
    // Each reconcile ran at its blueprint's location.
    const reconciles = (await succeeded()).filter((p) => p.spec?.kwargs?.blueprintName);
    const ids = await siteIds();
    for (const location of LOCATIONS) {
      const mine = reconciles.filter((p) => p.spec?.kwargs?.blueprintName === `app-${location}`);
      expect(mine.length).toBeGreaterThan(0);
      for (const p of mine) expect(p.assignedexecutorid).toBe(ids[location]);
    }
  });

  it("the identities carry the blueprint's id and generation, and doctor finds no problem", async () => {
    const executors = await userClient(server).getExecutors(server.colonyName, server.userPrvKey);
    for (const location of LOCATIONS) {
      const blueprint = await userClient(server).getBlueprint(
        server.colonyName,
        `app-${location}`,
        server.userPrvKey,
      );
      const identities = executors.filter(
        (e) => e.blueprintid === blueprint.blueprintid && e.state === ExecutorState.APPROVED,
      );
      expect(identities).toHaveLength(1);
      expect(identities[0]?.executortype).toBe(location === "east" ? "container-executor" : "app-west");
      // The server leaves out a generation of 0.
      expect(identities[0]?.blueprintgen ?? 0).toBe(blueprint.metadata.generation ?? 0);
    }
    const { stdout } = await server.cli(["blueprint", "doctor", "--name", "app-east"]);
    expect(stdout).toContain("No issues found");
    expect(stdout).toContain("All 1 replicas running");
  });

  it("each location's cron reconciles only the blueprints of its location, without updating a converged one", async () => {
    const crons: Partial<Record<Location, Process>> = {};
    const ids = await siteIds();
    await waitFor(
      "a cron reconcile at each location",
      async () => {
        for (const p of await succeeded()) {
          if (p.spec?.funcname !== "reconcile" || p.spec.kwargs?.blueprintName !== undefined) continue;
          const location = LOCATIONS.find((l) => ids[l] === p.assignedexecutorid);
          if (location) crons[location] = p;
        }
        return LOCATIONS.every((l) => crons[l]);
      },
      100_000,
    );
    for (const location of LOCATIONS) {
      // Converged already and undisturbed: the round reads it and leaves its stack alone.
      expect(crons[location]?.out?.[0]).toMatchObject({
        kind: KIND,
        location,
        converged: [],
        unchanged: [`app-${location}`],
        removed: [],
      });
    }
  }, 120_000);

  it("blueprint remove at one location deletes only there", async () => {
    await server.cli(["blueprint", "remove", "--name", "app-west"]);
    await waitFor("app-west deleted", async () => (await deployments("west")).length === 0, 120_000);
    expect(await deployments("east")).toEqual(["app-east"]);
  });
});
