import type { V1Deployment, V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { describeDrift, findDrift } from "../../src/executors/k8s/drift/compare.js";
import type { DeploymentSpec } from "../../src/executors/k8s/spec.js";

const spec: DeploymentSpec = {
  deployment: "web",
  namespace: "ns",
  pods: 2,
  executorperpod: 2,
  ramdisk: false,
  image: "registry.example.com/team/executor:1.0",
  executortype: "sleep",
  cmd: ["sleep"],
  memory: "256Mi",
  env: { A: "1" },
  secretenv: [{ name: "DB_PASSWORD", secret: "db", key: "password" }],
};
const config = {
  defaults: { cpu: "100m", ramdiskSize: "256Mi" },
  gpu: { resource: "nvidia.com/gpu", max: 0 },
};
const key = "k".repeat(64);

function container(i: number) {
  return {
    name: `executor-${i}`,
    image: spec.image,
    args: ["sleep"],
    env: [
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "A", value: "1" },
      { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
    ],
    // The API server may write quantities in another form.
    resources: { requests: { cpu: "0.1", memory: "256Mi" }, limits: { memory: "268435456" } },
  };
}

function live(): { deployment: V1Deployment; secret: V1Secret } {
  return {
    deployment: {
      metadata: { name: "web" },
      spec: {
        replicas: 2,
        selector: {},
        template: { spec: { containers: [container(0), container(1)] } },
      },
    },
    secret: { data: { COLONIES_PRVKEY: Buffer.from(key).toString("base64") } },
  };
}

describe("findDrift", () => {
  it("finds nothing when the live objects are what the stack made", () => {
    expect(findDrift(spec, config, { COLONIES_PRVKEY: key }, live())).toEqual([]);
  });

  it("names a kubectl scale, an edited image and a deleted Secret", () => {
    const objects = live();
    (objects.deployment.spec as { replicas: number }).replicas = 5;
    const edited = objects.deployment.spec?.template.spec?.containers[1];
    if (edited) edited.image = "busybox:1";
    const drift = findDrift(spec, config, { COLONIES_PRVKEY: key }, { deployment: objects.deployment });
    expect(drift).toEqual([
      { object: "Deployment/web", field: "replicas", recorded: 2, live: 5 },
      { object: "Deployment/web/executor-1", field: "image", recorded: spec.image, live: "busybox:1" },
      { object: "Secret/web-keys", field: "(object)", recorded: "present", live: "deleted" },
    ]);
    expect(describeDrift(drift)).toContain("Deployment/web replicas: recorded 2, live 5");
  });

  it("sees env, resource and container edits, and a changed key without showing it", () => {
    const objects = live();
    const containers = objects.deployment.spec?.template.spec?.containers ?? [];
    const first = containers[0] as ReturnType<typeof container>;
    first.env[1] = { name: "A", value: "2" };
    first.resources.requests.memory = "1Gi";
    containers.pop();
    objects.secret.data = { COLONIES_PRVKEY: Buffer.from("x".repeat(64)).toString("base64") };
    const drift = findDrift(spec, config, { COLONIES_PRVKEY: key }, objects);
    expect(drift.map((d) => `${d.object} ${d.field}`)).toEqual([
      "Deployment/web containers",
      "Deployment/web/executor-0 env.A",
      "Deployment/web/executor-0 resources.requests.memory",
      "Secret/web-keys COLONIES_PRVKEY",
    ]);
    expect(JSON.stringify(drift)).not.toContain("x".repeat(64));
    expect(JSON.stringify(drift)).not.toContain(key);
  });

  it("reports a deleted Deployment", () => {
    const drift = findDrift(spec, config, { COLONIES_PRVKEY: key }, { secret: live().secret });
    expect(drift).toEqual([
      { object: "Deployment/web", field: "(object)", recorded: "present", live: "deleted" },
    ]);
  });
});
