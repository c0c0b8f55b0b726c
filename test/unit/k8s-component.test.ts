/** The ExecutorDeployment component's resource graph, with the Pulumi engine mocked in-process. */
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it, vi } from "vitest";

// Resource inputs are deeply nested untyped JSON here.
// biome-ignore lint/suspicious/noExplicitAny: test fixture access
type Inputs = Record<string, any>;
const created: { type: string; name: string; inputs: Inputs }[] = [];

beforeAll(() => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        created.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "colonyos-executors",
    "test",
    false,
  );
});

async function resolved<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

const COLONY_KEY = "a".repeat(64);

async function build(overrides: Record<string, unknown> = {}) {
  created.length = 0;
  const { ExecutorDeployment } = await import("../../src/k8s/component.js");
  const component = new ExecutorDeployment("web", {
    name: "web",
    namespace: "workers",
    pods: 3,
    executorsPerPod: 2,
    image: "registry.example.com/colonyos/executors:1.0.0",
    executorType: "sleep",
    colonies: { host: "colonies.colonyos", port: 50080, tls: false, colonyName: "dev" },
    colonyPrvKey: COLONY_KEY,
    ramdisk: true,
    cpu: "250m",
    memory: "128Mi",
    ...overrides,
  });
  await resolved(component.replicas);
  // The mocked engine registers the resources asynchronously: wait for both rather than for a while.
  const { deployment, secret } = await vi.waitFor(
    () => {
      const deployment = created.find((r) => r.type === "kubernetes:apps/v1:Deployment");
      const secret = created.find((r) => r.type === "kubernetes:core/v1:Secret");
      if (!deployment || !secret) {
        throw new Error(`missing resources: ${created.map((r) => r.type).join(", ") || "none"}`);
      }
      return { deployment, secret };
    },
    { timeout: 4_000, interval: 5 },
  );
  return { component, deployment: deployment.inputs, secret: secret.inputs };
}

describe("ExecutorDeployment", () => {
  it("makes a Deployment named after the deployment with replicas = pods and N executor containers", async () => {
    const { deployment } = await build();
    expect(deployment.metadata.name).toBe("web");
    expect(deployment.metadata.namespace).toBe("workers");
    expect(deployment.spec.replicas).toBe(3);
    const containers = deployment.spec.template.spec.containers;
    expect(containers.map((c: Inputs) => c.name)).toEqual(["executor-0", "executor-1"]);
    expect(new Set(containers.map((c: Inputs) => c.image))).toEqual(
      new Set(["registry.example.com/colonyos/executors:1.0.0"]),
    );
  });

  it("labels a stack's deployment with its owning stack and the atom label, under a selector of its own", async () => {
    const { deployment, secret } = await build({ owner: { project: "colonyos-executors", stack: "web" } });
    expect(deployment.spec.selector.matchLabels).toEqual({
      "app.kubernetes.io/name": "colonyos-executor",
      "app.kubernetes.io/instance": "web",
      "app.kubernetes.io/managed-by": "colonyos-k8s-executor",
    });
    for (const labels of [
      deployment.metadata.labels,
      deployment.spec.template.metadata.labels,
      secret.metadata.labels,
    ]) {
      expect(labels).toMatchObject(deployment.spec.selector.matchLabels);
      expect(labels).toMatchObject({
        "colonyos.io/project": "colonyos-executors",
        "colonyos.io/stack": "web",
        "colonyos.io/atom": "true",
        "app.kubernetes.io/component": "executor",
      });
    }
  });

  it("gives containers only an executor identity's key when one is given, never the colony key", async () => {
    const executorKey = "e".repeat(64);
    const { deployment, secret } = await build({ colonyPrvKey: undefined, executorPrvKey: executorKey });
    for (const container of deployment.spec.template.spec.containers) {
      const names = container.env.map((e: Inputs) => e.name);
      expect(names).not.toContain("COLONIES_COLONY_PRVKEY");
      expect(container.env.find((e: Inputs) => e.name === "COLONIES_PRVKEY").valueFrom).toEqual({
        secretKeyRef: { name: "web-keys", key: "COLONIES_PRVKEY" },
      });
    }
    expect(JSON.stringify(deployment)).not.toContain(executorKey);
    expect(secret.stringData).toEqual({
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: { COLONIES_PRVKEY: executorKey },
    });
  });

  it("labels the bootstrap's deployments (no owner) as Pulumi's, invisible to the k8s executor", async () => {
    const { deployment } = await build();
    expect(deployment.spec.selector.matchLabels["app.kubernetes.io/managed-by"]).toBe("pulumi");
    const podLabels = deployment.spec.template.metadata.labels;
    expect(podLabels["colonyos.io/atom"]).toBeUndefined();
    expect(podLabels["colonyos.io/stack"]).toBeUndefined();
  });

  it("gives each container the Colonies address and a name derived from the pod name, and keys only by reference", async () => {
    const { deployment, secret } = await build();
    const [first, second] = deployment.spec.template.spec.containers;
    const env = Object.fromEntries(first.env.map((e: Inputs) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      COLONIES_SERVER_HOST: "colonies.colonyos",
      COLONIES_SERVER_PORT: "50080",
      COLONIES_TLS: "false",
      COLONIES_COLONY_NAME: "dev",
      COLONIES_EXECUTOR_TYPE: "sleep",
      COLONIES_EXECUTOR_NAME: "$(POD_NAME)-executor-0",
      POD_NAME: { fieldRef: { fieldPath: "metadata.name" } },
    });
    expect(env.COLONIES_COLONY_PRVKEY).toEqual({
      secretKeyRef: { name: "web-keys", key: "COLONIES_COLONY_PRVKEY" },
    });
    expect(second.env.find((e: Inputs) => e.name === "COLONIES_EXECUTOR_NAME").value).toBe(
      "$(POD_NAME)-executor-1",
    );
    expect(JSON.stringify(deployment)).not.toContain(COLONY_KEY);
    expect(secret.metadata.name).toBe("web-keys");
    // A Pulumi secret: the engine encrypts it in the state.
    expect(secret.stringData).toEqual({
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: { COLONIES_COLONY_PRVKEY: COLONY_KEY },
    });
  });

  it("mounts a memory-backed emptyDir at /ramdisk only when asked, with a size limit", async () => {
    const withRamdisk = (await build({ ramdiskSizeLimit: "1Gi" })).deployment;
    expect(withRamdisk.spec.template.spec.volumes).toContainEqual({
      name: "ramdisk",
      emptyDir: { medium: "Memory", sizeLimit: "1Gi" },
    });
    for (const c of withRamdisk.spec.template.spec.containers) {
      expect(c.volumeMounts).toContainEqual({ name: "ramdisk", mountPath: "/ramdisk" });
    }
    const without = (await build({ ramdisk: false })).deployment;
    expect(JSON.stringify(without)).not.toContain("ramdisk");
  });

  it("runs as non-root without privilege escalation, with the requested resources", async () => {
    const { deployment } = await build();
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    for (const c of pod.containers) {
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
      });
      expect(c.resources).toEqual({
        requests: { cpu: "250m", memory: "128Mi" },
        limits: { memory: "128Mi" },
      });
    }
    expect(pod.automountServiceAccountToken).toBe(false);
  });
});
