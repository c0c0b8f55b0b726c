/**
 * The k8s executor with a key manager encrypting its stacks' secrets (K8S_PULUMI_SECRETS_PROVIDER=awskms://...)
 * instead of a passphrase, on real peers: the official CLI's calls, the real Pulumi CLI and its AWS KMS keeper,
 * a KMS speaking AWS's API on 127.0.0.1 (local-kms, scripts/peers/kms.sh) holding a key made for this run. No
 * passphrase is configured at all. Checked: the state records the key manager and holds no secret in plain; a
 * new pod (an empty work directory, the same state) updates the stack with the secrets provider its state
 * records; the key manager unreachable fails a call with a message naming it, changes nothing, and the executor
 * keeps serving.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterKubeconfig, createNamespace } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { startRuntime } from "../../peers/executor.js";
import { executorKubeconfig, k8sExecutorEnv, TEST_IMAGE } from "../../peers/k8s-executor.js";
import { type KmsServer, startKms } from "../../peers/kms.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { ProcessState } from "../../src/colonies/types.js";
import type { ExecutorRuntime } from "../../src/executor/runtime.js";
import { k8sExecutor } from "../../src/executors/k8s.js";
import { k8sCalls } from "../support/k8s-calls.js";

let server: ColoniesServer;
let kms: KmsServer;
let runtime: ExecutorRuntime | undefined;
let apps: AppsV1Api;
let core: CoreV1Api;
let namespace: string;
let kubeconfig: string;
const dataDir = mkdtempSync(join(tmpdir(), "k8s-kms-"));
const { call, ok } = k8sCalls(() => server);

/** The executor on this run's data dir, with the key manager (and no passphrase anywhere). */
async function startExecutor(secretsProvider = kms.secretsProvider): Promise<ExecutorRuntime> {
  const env = k8sExecutorEnv(
    { kubeconfig, namespace, dataDir, passphrase: "" },
    { K8S_PULUMI_SECRETS_PROVIDER: secretsProvider, K8S_ROLLOUT_TIMEOUT: "60", ...kms.env },
  );
  delete env.K8S_PULUMI_PASSPHRASE;
  return startRuntime(server, k8sExecutor, env);
}

/** Every file under the data dir: the file state backend and the stacks' work directories. */
function dataFiles(): string[] {
  return readdirSync(dataDir, { recursive: true, encoding: "utf8" })
    .map((entry) => join(dataDir, entry))
    .filter((path) => statSync(path).isFile());
}

function checkpoint(name: string): { secrets_providers?: { type: string; state: Record<string, string> } } {
  const file = join(dataDir, "state", ".pulumi", "stacks", "colonyos-executors", `${name}.json`);
  return JSON.parse(readFileSync(file, "utf8")).checkpoint.latest;
}

beforeAll(async () => {
  expect(process.env.PULUMI_CONFIG_PASSPHRASE, "this suite proves no passphrase is needed").toBeUndefined();
  const admin = loadKubeConfig({ path: clusterKubeconfig() });
  apps = admin.makeApiClient(AppsV1Api);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createNamespace(core, "k8s-kms");
  kubeconfig = await executorKubeconfig(admin, namespace, dataDir);
  [server, kms] = await Promise.all([startColoniesServer(), startKms()]);
  runtime = await startExecutor();
}, 300_000);

afterAll(async () => {
  await runtime?.shutdown();
  await server?.stop();
  await kms?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
});

describe("k8s executor with a key manager for the state's secrets", () => {
  it("deploys through the official CLI; the state records the key manager and no secret in plain", async () => {
    const { stderr } = await server.cli([
      "function",
      "exec",
      "--func",
      "deploy",
      "--args",
      `vault-web,2,1,false,${TEST_IMAGE}`,
      "--targettype",
      "k8s",
      "--wait",
    ]);
    expect(stderr).toContain("Process finished successfully");
    const deployment = await apps.readNamespacedDeployment({ name: "vault-web", namespace });
    expect(deployment.spec?.replicas).toBe(2);

    const providers = checkpoint("vault-web").secrets_providers;
    expect(providers?.type).toBe("cloud");
    expect(providers?.state.url).toBe(kms.secretsProvider);
    expect(providers?.state.encryptedkey).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    // The stack's Secret holds the deployed executor's private key: the state has it only encrypted.
    const secrets = (await core.listNamespacedSecret({ namespace })).items;
    const values = secrets
      .flatMap((s) => Object.values(s.data ?? {}))
      .map((b64) => Buffer.from(b64, "base64").toString("utf8"))
      .filter((value) => /^[0-9a-f]{64}$/.test(value));
    expect(values.length).toBeGreaterThan(0);
    const state = readFileSync(
      join(dataDir, "state", ".pulumi", "stacks", "colonyos-executors", "vault-web.json"),
      "utf8",
    );
    // Pulumi's mark of a secret value (its ciphertext beside it): the key is in the state, encrypted.
    expect(state).toContain('"4dabf18193072939515e22adb298388d":"1b47061264138c4ac30d75fd1eb44270"');
    for (const file of dataFiles()) {
      const text = readFileSync(file, "utf8");
      for (const value of [...values, server.colonyPrvKey]) expect(text, file).not.toContain(value);
    }
  });

  it("reads and updates the stack: status, scale", async () => {
    const [status] = (await ok("status", ["vault-web"])) as Record<string, unknown>[];
    expect((status?.spec as Record<string, unknown>)?.pods).toBe(2);
    expect(await ok("scale", ["vault-web", "3"])).toBeDefined();
    expect((await apps.readNamespacedDeployment({ name: "vault-web", namespace })).spec?.replicas).toBe(3);
  });

  it("a new pod (empty work directories, the same state) updates with the key manager the state records", async () => {
    await runtime?.shutdown();
    runtime = undefined;
    rmSync(join(dataDir, "stacks"), { recursive: true, force: true });
    runtime = await startExecutor();
    expect(await ok("scale", ["vault-web", "1"])).toBeDefined();
    expect((await apps.readNamespacedDeployment({ name: "vault-web", namespace })).spec?.replicas).toBe(1);
    expect(checkpoint("vault-web").secrets_providers?.state.url).toBe(kms.secretsProvider);
  });

  it("fails a call clearly while the key manager is unreachable, changes nothing, and keeps serving", async () => {
    await runtime?.shutdown();
    // The same key behind an endpoint where nothing listens.
    const unreachable = kms.secretsProvider.replace(/endpoint=[^&]+/, "endpoint=http%3A%2F%2F127.0.0.1%3A9");
    runtime = await startExecutor(unreachable);
    const failed = await call("deploy", ["vault-api", "1", "1", "false", TEST_IMAGE]);
    expect(failed.state).toBe(ProcessState.FAILED);
    expect(failed.errors?.join(" ")).toMatch(/secrets manager.*KMS.*127\.0\.0\.1:9/);
    await expect(apps.readNamespacedDeployment({ name: "vault-api", namespace })).rejects.toThrow();
    // Still serving: reads need no key manager, and the deployed stack is untouched.
    expect(await ok("get_scale", ["vault-web"])).toEqual([1]);
  });

  it("undeploys with the key manager back", async () => {
    await runtime?.shutdown();
    runtime = await startExecutor();
    await ok("undeploy", ["vault-web"]);
    await expect(apps.readNamespacedDeployment({ name: "vault-web", namespace })).rejects.toThrow();
  });
});
