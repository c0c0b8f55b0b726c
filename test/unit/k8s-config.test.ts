import { describe, expect, it } from "vitest";
import { loadK8sConfig } from "../../src/executors/k8s/config.js";

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
    expect(config.child).toEqual({ host: "colonies.local", port: 8080, tls: false, colonyName: "dev" });
    expect(config.server).toEqual({ host: "colonies.local", port: 8080, tls: false });
    expect(config.ownerKey).toBe(key);
    // Safe defaults: children run as registered executor identities, and no image or cmd is allowed yet.
    expect(config.identity).toBe("executor");
    expect(config.policy).toEqual({
      images: [],
      cmds: [],
      secrets: [],
      env: [],
      executorTypes: [],
      tolerations: [],
      profiles: {},
      runtimeImages: [],
    });
    expect(config.gpu).toEqual({ resource: "nvidia.com/gpu", max: 0 });
    expect(config.limits).toMatchObject({
      maxPods: 100,
      maxExecutorsPerPod: 16,
      maxDeployments: 20,
      maxContainers: 200,
      maxCpu: { text: "4", value: 4 },
      maxMemory: { text: "8Gi", value: 8 * 2 ** 30 },
      logBytes: { default: 1 << 20, max: 10 << 20 },
    });
    expect(config.stackConcurrency).toBe(4);
    expect(config.operationTimeoutSeconds).toBe(600);
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
    expect(config.child).toMatchObject({ host: "colonies.colonyos.svc", port: 50080, tls: true });
    expect(config.ownerKey).toBe(other);
  });

  it("reads the operator's policy and budgets", () => {
    const config = loadK8sConfig({
      K8S_PULUMI_PASSPHRASE: "pw",
      COLONIES_COLONY_PRVKEY: key,
      K8S_ALLOWED_IMAGES: " registry.example.com/colonyos/* , ghcr.io/team/** ",
      K8S_ALLOWED_CMDS: "sleep,backup",
      K8S_ALLOWED_ENV: "LOG_*",
      K8S_ALLOWED_EXECUTOR_TYPES: "team-*",
      K8S_ALLOWED_TOLERATIONS: "gpu",
      K8S_PROFILES: JSON.stringify({
        backup: { images: ["ghcr.io/team/**"], cmds: ["backup"], secrets: ["shop-db"], env: ["DB_HOST"] },
      }),
      K8S_CHILD_IDENTITY: "colony",
      K8S_MAX_DEPLOYMENTS: "3",
      K8S_MAX_CONTAINERS: "10",
      K8S_MAX_CPU: "500m",
      K8S_MAX_MEMORY: "1Gi",
      K8S_ROLLOUT_TIMEOUT: "60",
    });
    expect(config.policy).toEqual({
      images: ["registry.example.com/colonyos/*", "ghcr.io/team/**"],
      cmds: ["sleep", "backup"],
      secrets: [],
      env: ["LOG_*"],
      executorTypes: ["team-*"],
      tolerations: ["gpu"],
      profiles: {
        backup: { images: ["ghcr.io/team/**"], cmds: ["backup"], secrets: ["shop-db"], env: ["DB_HOST"] },
      },
      runtimeImages: [],
    });
    expect(config.identity).toBe("colony");
    expect(config.limits).toMatchObject({
      maxDeployments: 3,
      maxContainers: 10,
      maxCpu: { text: "500m", value: 0.5 },
      maxMemory: { text: "1Gi", value: 2 ** 30 },
    });
    expect(config.operationTimeoutSeconds).toBe(360);
    expect(config.pulumi.secretsProvider).toBe("passphrase");
  });

  it("takes a key manager instead of a passphrase, and hands the CLI the key managers' environment", () => {
    const url = "awskms://alias/colonyos?region=eu-north-1";
    const config = loadK8sConfig({
      K8S_PULUMI_SECRETS_PROVIDER: url,
      COLONIES_COLONY_PRVKEY: key,
      AWS_REGION: "eu-north-1",
      AWS_ROLE_ARN: "arn:aws:iam::1:role/x",
      VAULT_SERVER_URL: "https://vault.local",
      COLONIES_PRVKEY: key,
      HOME: "/root",
    });
    expect(config.pulumi.secretsProvider).toBe(url);
    expect(config.pulumi.passphrase).toBeUndefined();
    expect(config.pulumi.env).toEqual({
      AWS_REGION: "eu-north-1",
      AWS_ROLE_ARN: "arn:aws:iam::1:role/x",
      VAULT_SERVER_URL: "https://vault.local",
    });
  });

  it("refuses a secrets provider Pulumi's CLI does not have", () => {
    for (const bad of [
      "base64key://abc",
      "file:///tmp/key",
      "awskms://",
      "Passphrase",
      "hashivault://key with space",
    ]) {
      expect(
        () => loadK8sConfig({ K8S_PULUMI_SECRETS_PROVIDER: bad, COLONIES_COLONY_PRVKEY: key }),
        bad,
      ).toThrow(
        /K8S_PULUMI_SECRETS_PROVIDER must be passphrase, or a URL of awskms:\/\/, gcpkms:\/\/, azurekeyvault:\/\/ or hashivault:\/\//,
      );
    }
  });

  it("requires a passphrase and reports every bad variable", () => {
    let message = "";
    try {
      loadK8sConfig({
        K8S_NAMESPACE: "Bad_NS",
        K8S_MAX_PODS: "many",
        K8S_DEFAULT_CPU: "lots",
        K8S_IMAGE_PULL_POLICY: "Sometimes",
        K8S_CHILD_IDENTITY: "root",
        K8S_MAX_MEMORY: "a lot",
        K8S_PROFILES: JSON.stringify({ backup: { images: [], secrets: ["shop-db"] } }),
      });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const problem of [
      "K8S_NAMESPACE must be a DNS-1123 label",
      "K8S_DEFAULT_CPU must be a Kubernetes quantity",
      "K8S_IMAGE_PULL_POLICY must be one of Always, IfNotPresent, Never",
      "K8S_MAX_PODS must be a whole number",
      "K8S_PULUMI_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE) is required: it encrypts the secrets in the Pulumi state (or set K8S_PULUMI_SECRETS_PROVIDER to a key manager)",
      "K8S_CHILD_COLONY_PRVKEY or COLONIES_COLONY_PRVKEY is required",
      "K8S_CHILD_IDENTITY must be one of executor, colony",
      "K8S_MAX_MEMORY must be a Kubernetes quantity",
      "K8S_PROFILES at backup.images:",
    ]) {
      expect(message).toContain(problem);
    }
  });
});
