import { describe, expect, it } from "vitest";
import { loadK8sConfig } from "../../src/k8s/config.js";

const key = "b".repeat(64);

describe("k8s executor configuration", () => {
  it("defaults to a file backend under the data dir and the executor's own Colonies address for the pods", () => {
    const config = loadK8sConfig({
      K8S_PULUMI_PASSPHRASE: "pw",
      K8S_DATA_DIR: "/var/lib/k8s-executor",
      COLONIES_SERVER_HOST: "colonies.local",
      COLONIES_SERVER_PORT: "8080",
      COLONIES_COLONY_NAME: "dev",
      COLONIES_COLONY_PRVKEY: key,
      EXECUTOR_NAMESPACE: "workers",
    });
    expect(config.pulumi.backendUrl).toBe("file:///var/lib/k8s-executor/state");
    expect(config.namespace).toBe("workers");
    expect(config.child).toEqual({
      host: "colonies.local",
      port: 8080,
      tls: false,
      colonyName: "dev",
      colonyPrvKey: key,
    });
    expect(config.limits).toEqual({ maxPods: 100, maxExecutorsPerPod: 16 });
    expect(config.stackConcurrency).toBe(4);
  });

  it("lets the pods use another address, key and backend", () => {
    const other = "c".repeat(64);
    const config = loadK8sConfig({
      PULUMI_CONFIG_PASSPHRASE: "pw",
      PULUMI_BACKEND_URL: "s3://state-bucket/colonyos",
      K8S_CHILD_COLONIES_SERVER_HOST: "colonies.colonyos.svc",
      K8S_CHILD_COLONIES_SERVER_PORT: "50080",
      K8S_CHILD_COLONIES_TLS: "true",
      K8S_CHILD_COLONY_PRVKEY: other,
      COLONIES_COLONY_PRVKEY: key,
    });
    expect(config.pulumi.backendUrl).toBe("s3://state-bucket/colonyos");
    expect(config.child).toMatchObject({
      host: "colonies.colonyos.svc",
      port: 50080,
      tls: true,
      colonyPrvKey: other,
    });
  });

  it("requires a passphrase and reports every bad variable", () => {
    let message = "";
    try {
      loadK8sConfig({
        K8S_NAMESPACE: "Bad_NS",
        K8S_MAX_PODS: "many",
        K8S_DEFAULT_CPU: "lots",
        K8S_IMAGE_PULL_POLICY: "Sometimes",
      });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const problem of [
      "K8S_NAMESPACE must be a DNS-1123 label",
      "K8S_DEFAULT_CPU must be a Kubernetes quantity",
      "K8S_IMAGE_PULL_POLICY must be one of Always, IfNotPresent, Never",
      "K8S_MAX_PODS must be a whole number",
      "K8S_PULUMI_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE) is required",
    ]) {
      expect(message).toContain(problem);
    }
  });
});
