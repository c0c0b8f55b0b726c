/** The blueprint front door's pure parts: the status it writes, who owns a name, and reconcile's arguments. */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parseArguments } from "../../src/executor/args.js";
import type { ProcessContext } from "../../src/executor/types.js";
import { assertNotBlueprints, assertNotFunctions } from "../../src/executors/k8s/blueprint/owner.js";
import { blueprintStatus } from "../../src/executors/k8s/blueprint/status.js";
import type { K8sDeps } from "../../src/executors/k8s/deps.js";
import { cleanupFunction, reconcileFunction } from "../../src/executors/k8s/drift/reconcile.js";
import type { DeploymentSpec } from "../../src/executors/k8s/spec.js";

const IMAGE = "registry.example.com/colonyos/executors:1";

function pod(name: string, ready: boolean, phase = "Running"): V1Pod {
  return {
    metadata: { name, uid: `uid-${name}` },
    spec: { containers: [{ name: "executor-0", image: IMAGE }] },
    status: { phase, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  };
}

describe("blueprintStatus", () => {
  const now = new Date("2026-01-02T03:04:05Z");

  it("has one instance per pod, running once ready, and the generation converged", () => {
    const status = blueprintStatus({
      pods: [pod("web-a", true), pod("web-b", false, "Pending")],
      desired: 3,
      generation: 4,
      now,
    });
    expect(status).toEqual({
      instances: [
        {
          name: "web-a",
          id: "uid-web-a",
          type: "pod",
          state: "running",
          image: IMAGE,
          lastCheck: now.toISOString(),
        },
        {
          name: "web-b",
          id: "uid-web-b",
          type: "pod",
          state: "pending",
          image: IMAGE,
          lastCheck: now.toISOString(),
        },
      ],
      runningInstances: 1,
      totalInstances: 3,
      lastUpdated: now.toISOString(),
      generation: 4,
    });
  });

  it("says why on failure; a refused blueprint has nothing", () => {
    expect(blueprintStatus({ pods: [], desired: 0, message: "reconcile: blueprint x: no", now })).toEqual({
      instances: [],
      runningInstances: 0,
      totalInstances: 0,
      lastUpdated: now.toISOString(),
      message: "reconcile: blueprint x: no",
    });
  });
});

describe("a name has one owner", () => {
  const spec = { deployment: "web" } as DeploymentSpec;
  const fromBlueprint = { spec, blueprint: { id: "b1", name: "web", generation: 2 } };

  it("refuses a function's change of a blueprint's deployment, pointing at the blueprint", () => {
    expect(() => assertNotBlueprints("scale", "web", fromBlueprint)).toThrow(
      /scale: web is the deployment of blueprint web; change it with `colonies blueprint set\/update --name web`/,
    );
    expect(() => assertNotBlueprints("scale", "web", { spec })).not.toThrow();
  });

  it("refuses a blueprint over a function's deployment", () => {
    expect(() => assertNotFunctions("reconcile", "web", { spec })).toThrow(
      /reconcile: a deployment named web was made by the deploy function/,
    );
    expect(() => assertNotFunctions("reconcile", "web", fromBlueprint)).not.toThrow();
    expect(() => assertNotFunctions("reconcile", "web", {})).not.toThrow();
  });
});

describe("reconcile's and cleanup's arguments", () => {
  // The refusals below happen before anything is read: no dependency is touched.
  const deps = {} as K8sDeps;
  const reconcile = reconcileFunction(deps);
  const cleanup = cleanupFunction(deps);
  const ctx = {
    processId: "p",
    funcName: "reconcile",
    signal: new AbortController().signal,
  } as ProcessContext;
  const run = (fn: typeof reconcile, args: unknown[], kwargs: Record<string, unknown>) =>
    fn.handler(parseArguments(fn, args, kwargs), ctx);

  it("accepts the server's blueprint kwargs beside the positional deployment name", () => {
    expect(
      parseArguments(reconcile, [], { kind: "ExecutorDeployment", blueprintName: "web", force: true }),
    ).toEqual({ kind: "ExecutorDeployment", blueprintName: "web", force: true });
    expect(parseArguments(reconcile, ["web"], { dryrun: "true" })).toEqual({
      deploymentname: "web",
      dryrun: true,
    });
  });

  it("refuses another kind, changing nothing", async () => {
    await expect(run(reconcile, [], { kind: "DockerDeployment", blueprintName: "web" })).rejects.toThrow(
      "reconcile: this executor reconciles blueprints of kind ExecutorDeployment, not DockerDeployment",
    );
    await expect(run(reconcile, [], { kind: "DockerDeployment" })).rejects.toThrow(/not DockerDeployment/);
    await expect(run(cleanup, [], { kind: "DockerDeployment", blueprintName: "web" })).rejects.toThrow(
      "cleanup: this executor reconciles blueprints of kind ExecutorDeployment, not DockerDeployment",
    );
  });

  it("refuses mixed or missing arguments", async () => {
    await expect(run(reconcile, [], {})).rejects.toThrow(
      "reconcile: missing argument deploymentname (or kind, for blueprints)",
    );
    await expect(run(reconcile, ["web"], { blueprintName: "web" })).rejects.toThrow(
      "reconcile: blueprintName and force need kind",
    );
    await expect(run(reconcile, ["web"], { kind: "ExecutorDeployment" })).rejects.toThrow(
      "reconcile: a blueprint's reconcile takes kind, blueprintName and force only",
    );
    await expect(run(cleanup, [], { kind: "ExecutorDeployment" })).rejects.toThrow(
      "cleanup: kind and blueprintName are required",
    );
    await expect(run(cleanup, [], { kind: "ExecutorDeployment", blueprintName: "Bad_Name" })).rejects.toThrow(
      /^cleanup: /,
    );
  });
});
