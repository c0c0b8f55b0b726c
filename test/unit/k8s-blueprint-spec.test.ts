import { describe, expect, it } from "vitest";
import type { Blueprint } from "../../src/colonies/types.js";
import { executorDeploymentDefinition } from "../../src/executors/k8s/blueprint/definition.js";
import { blueprintDeployment, SPEC_FIELDS } from "../../src/executors/k8s/blueprint/spec.js";
import { loadK8sConfig } from "../../src/executors/k8s/config.js";
import { DeployPolicy } from "../../src/executors/k8s/policy.js";

const IMAGE = "registry.example.com/colonyos/executors:1";
const config = loadK8sConfig({
  K8S_PULUMI_PASSPHRASE: "pw",
  COLONIES_COLONY_PRVKEY: "a".repeat(64),
  COLONIES_COLONY_NAME: "dev",
  K8S_NAMESPACE: "colonyos",
  K8S_ALLOWED_IMAGES: "registry.example.com/colonyos/*",
  K8S_ALLOWED_CMDS: "sleep,backup",
  K8S_ALLOWED_EXECUTOR_TYPES: "sleep",
  K8S_ALLOWED_TOLERATIONS: "gpu",
  K8S_ALLOWED_ENV: "GREETING,URL",
  K8S_PROFILES: JSON.stringify({
    shop: { images: [IMAGE], cmds: ["backup"], secrets: ["shop-db"], env: ["DB_HOST"] },
  }),
  K8S_MAX_PODS: "10",
});
const policy = new DeployPolicy(config.policy);

function blueprint(spec: Record<string, unknown>, name = "web"): Blueprint {
  return { blueprintid: "id", kind: "ExecutorDeployment", metadata: { name, colonyname: "dev" }, spec };
}

const deployment = (spec: Record<string, unknown>, name?: string) =>
  blueprintDeployment(blueprint(spec, name), config, policy);

describe("an ExecutorDeployment blueprint as a deployment spec", () => {
  it("takes upstream's example fields as they are, env values with ':' and ',' included", () => {
    const env = { GREETING: "hello: world, and more", URL: "http://db:5432/x?a=1,b=2" };
    expect(
      deployment({
        image: IMAGE,
        replicas: 3,
        executorType: "sleep",
        cpu: "500m",
        memory: "512Mi",
        env,
        executorName: "my-docker-reconciler",
        ports: [{ name: "http", port: 80 }],
      }),
    ).toEqual({
      value: {
        spec: {
          deployment: "web",
          namespace: "colonyos",
          pods: 3,
          executorperpod: 1,
          ramdisk: false,
          image: IMAGE,
          executortype: "sleep",
          cpu: "500m",
          memory: "512Mi",
          env,
        },
      },
    });
  });

  it("has a name for everything deploy can do", () => {
    const result = deployment(
      {
        image: IMAGE,
        executorType: "shop",
        executorsPerPod: 2,
        ramdisk: true,
        cmd: "backup",
        cpuLimit: "1",
        memoryLimit: "1Gi",
        env: { DB_HOST: "db" },
        secretEnv: { DB_PASSWORD: "shop-db/password" },
        nodeSelector: { disk: "ssd" },
        tolerations: [{ key: "gpu", value: "true", effect: "NoSchedule" }],
        autoscale: { min: 0, max: 4, cooldown: 30 },
      },
      "shop",
    );
    expect(result).toMatchObject({
      value: {
        spec: {
          executorperpod: 2,
          ramdisk: true,
          cmd: ["backup"],
          cpulimit: "1",
          memorylimit: "1Gi",
          secretenv: [{ name: "DB_PASSWORD", secret: "shop-db", key: "password" }],
          nodeselector: { disk: "ssd" },
          tolerations: [{ key: "gpu", operator: "Equal", value: "true", effect: "NoSchedule" }],
        },
        autoscale: { min: 0, max: 4, cooldown: 30 },
      },
    });
  });

  it("refuses what deploy refuses, naming the rule", () => {
    const refusals: [Record<string, unknown>, string | RegExp, string?][] = [
      [{ image: "busybox:1", executorType: "web" }, /is not allowed by K8S_ALLOWED_IMAGES/],
      [{ image: IMAGE, executorType: "k8s" }, /executortype "k8s" is this k8s executor's own type/],
      [{ image: IMAGE, executorType: "backup" }, /executortype "backup" is not allowed/],
      [
        { image: IMAGE, executorType: "web", replicas: 11 },
        "spec.replicas 11 is more than K8S_MAX_PODS (10)",
      ],
      [{ image: IMAGE, executorType: "web", cmd: "sh -c env" }, /cmd "sh -c env" is not allowed/],
      [{ image: IMAGE, executorType: "web", memory: "1Ti" }, /memory "1Ti" is more than the largest allowed/],
      [{ image: IMAGE, executorType: "web", env: { COLONIES_PRVKEY: "x" } }, /is set by the executor/],
      [{ image: IMAGE, executorType: "web", env: { OTHER: "x" } }, /env OTHER may not be set/],
      [
        { image: IMAGE, executorType: "web", secretEnv: { K: "web-keys/COLONIES_PRVKEY" } },
        /may never be referenced/,
      ],
      [
        { image: IMAGE, executorType: "web", cmd: "sleep", secretEnv: { P: "shop-db/password" } },
        /Secret shop-db is not bound to image/,
      ],
      [{ image: IMAGE, executorType: "web", tolerations: [{ key: "dedicated" }] }, /K8S_ALLOWED_TOLERATIONS/],
      [{ image: IMAGE, executorType: "web", replica: 2 }, /^spec: Unrecognized key/],
      [{ image: IMAGE, executorType: "web", replicas: "2" }, /^spec\.replicas: /],
      [{ executorType: "web" }, /^spec\.image: /],
      [
        { image: IMAGE, executorType: "web", autoscale: { min: 0, max: 11 } },
        "spec.autoscale.max 11 is more than K8S_MAX_PODS (10)",
      ],
      [{ image: IMAGE, executorType: "web", autoscale: { min: 0, max: 0 } }, /^spec\.autoscale\.max: /],
      [
        { image: IMAGE, executorType: "web", autoscale: { min: 3, max: 1 } },
        /spec\.autoscale\.min 3 is more/,
      ],
    ];
    for (const [spec, expected] of refusals) {
      const result = deployment(spec);
      expect("problem" in result, JSON.stringify(spec)).toBe(true);
      expect((result as { problem: string }).problem, JSON.stringify(spec)).toMatch(expected);
    }
    expect(deployment({ image: IMAGE, executorType: "x" }, "autoscaler")).toEqual({
      problem: expect.stringMatching(/^blueprint name: deployment name "autoscaler" is reserved/),
    });
  });
});

describe("this project's BlueprintDefinition", () => {
  it("describes exactly the fields a blueprint's spec may have, with the k8s executor as handler", () => {
    const definition = executorDeploymentDefinition("k8s");
    expect(Object.keys(definition.spec.schema.properties).sort()).toEqual([...SPEC_FIELDS].sort());
    expect(definition.spec.handler).toEqual({ executorType: "k8s", functionName: "reconcile" });
    expect(definition.spec.names.kind).toBe("ExecutorDeployment");
    for (const [field, property] of Object.entries(definition.spec.schema.properties)) {
      expect(property.description.length, field).toBeGreaterThan(10);
    }
  });
});
