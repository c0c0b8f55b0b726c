/**
 * The bootstrap program (Pulumi.yaml + infra/) driven by the real `pulumi` CLI and its Node.js language host,
 * against the real local Kubernetes API: preview changes nothing, up creates, destroy removes.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import { generatePrivateKey } from "../../src/colonies/crypto.js";
import { K8S_EXECUTOR_RULES } from "../../src/k8s/rbac.js";
import { clusterKubeconfig } from "../support/cluster.js";
import { waitFor } from "../support/ports.js";
import { linkPulumiProject } from "../support/pulumi-project.js";

const run = promisify(execFile);
const namespace = `infra-${randomBytes(3).toString("hex")}`;
const colonyPrvKey = generatePrivateKey();
const work = mkdtempSync(join(tmpdir(), "infra-"));
// The project is linked into a work directory, so that the stack's settings file lands there, not in the repo.
const projectDir = join(work, "project");
const configFile = join(projectDir, "Pulumi.test.yaml");
let env: NodeJS.ProcessEnv;
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;

async function pulumi(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run("pulumi", [...args, "--stack", "test", "--non-interactive"], {
      env,
      cwd: projectDir,
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`pulumi ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

function stateFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? stateFiles(path) : [path];
  });
}

beforeAll(async () => {
  const kubeconfig = clusterKubeconfig();
  const kc = loadKubeConfig({ path: kubeconfig });
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  mkdirSync(join(work, "state"));
  mkdirSync(projectDir);
  linkPulumiProject(projectDir);
  env = {
    ...process.env,
    KUBECONFIG: kubeconfig,
    PULUMI_BACKEND_URL: `file://${join(work, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: randomBytes(8).toString("hex"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  await run("pulumi", ["version"], { env }).catch(() => {
    throw new Error('the pulumi CLI is not on PATH: eval "$(bash scripts/peers/pulumi.sh --export)"');
  });
  await pulumi("stack", "init", "--secrets-provider", "passphrase");
  const settings: Record<string, string> = {
    namespace,
    image: "registry.example.com/colonyos/executors:0.1.0",
    coloniesHost: "colonies.colonyos.svc",
    colonyName: "dev",
    k8sStateBackend: "file:///data/state",
    sleepReplicas: "2",
    sleepExecutorsPerPod: "2",
  };
  for (const [key, value] of Object.entries(settings)) {
    await pulumi("config", "set", "--config-file", configFile, key, value);
  }
  await pulumi("config", "set", "--config-file", configFile, "--secret", "colonyPrvKey", colonyPrvKey);
  await pulumi(
    "config",
    "set",
    "--config-file",
    configFile,
    "--secret",
    "k8sPulumiPassphrase",
    "state-passphrase",
  );
}, 300_000);

afterAll(async () => {
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("pulumi preview / up / destroy of infra/", () => {
  it("previews the whole plan without creating anything", async () => {
    const out = await pulumi("preview", "--config-file", configFile, "--diff");
    expect(out).toMatch(/\+ 11 to create/);
    for (const kind of ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Secret"]) {
      expect(out).toContain(kind);
    }
    await expect(core.readNamespace({ name: namespace })).rejects.toMatchObject({ code: 404 });
  });

  it("creates the namespace, least-privilege RBAC and the executors, with keys only in Secrets", async () => {
    const out = await pulumi("up", "--config-file", configFile, "--yes");
    expect(out).toMatch(/\+ 11 created/);

    const role = await rbac.readNamespacedRole({ name: "colonyos-k8s-executor", namespace });
    expect(role.rules).toEqual(K8S_EXECUTOR_RULES.map((r) => ({ ...r })));
    const binding = await rbac.readNamespacedRoleBinding({ name: "colonyos-k8s-executor", namespace });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "colonyos-k8s-executor", namespace }]);

    const executor = await apps.readNamespacedDeployment({ name: "k8s-executor", namespace });
    const pod = executor.spec?.template.spec;
    expect(pod?.serviceAccountName).toBe("colonyos-k8s-executor");
    expect(pod?.containers[0]?.args).toEqual(["k8s"]);
    const envNames = pod?.containers[0]?.env?.map((e) => e.name) ?? [];
    expect(envNames).toEqual(
      expect.arrayContaining(["K8S_NAMESPACE", "K8S_PULUMI_PASSPHRASE", "COLONIES_COLONY_PRVKEY"]),
    );
    expect(
      pod?.containers[0]?.env?.find((e) => e.name === "K8S_PULUMI_PASSPHRASE")?.valueFrom?.secretKeyRef?.name,
    ).toBe("k8s-executor-keys");
    await waitFor("the k8s executor to be ready", async () => {
      const d = await apps.readNamespacedDeployment({ name: "k8s-executor", namespace });
      return d.status?.readyReplicas === 1;
    });

    const sleepers = await apps.readNamespacedDeployment({ name: "sleep-executors", namespace });
    expect(sleepers.spec?.replicas).toBe(2);
    expect(sleepers.spec?.template.spec?.containers.map((c) => c.name)).toEqual(["executor-0", "executor-1"]);

    for (const deployment of [executor, sleepers])
      expect(JSON.stringify(deployment)).not.toContain(colonyPrvKey);
    for (const file of stateFiles(join(work, "state"))) {
      const text = readFileSync(file, "utf8");
      expect(text).not.toContain(colonyPrvKey);
      expect(text).not.toContain("state-passphrase");
    }

    const outputs = JSON.parse(await pulumi("stack", "output", "--json"));
    expect(outputs.outputs).toMatchObject({
      namespace,
      serviceAccount: "colonyos-k8s-executor",
      k8sExecutor: "k8s-executor",
      sleepExecutors: "sleep-executors",
    });

    const again = await pulumi("preview", "--config-file", configFile);
    expect(again).toMatch(/11 unchanged/);
  });

  it("removes everything with destroy", async () => {
    const out = await pulumi("destroy", "--config-file", configFile, "--yes");
    expect(out).toMatch(/- 11 deleted/);
    await waitFor(
      "the namespace to go away",
      async () => {
        try {
          const ns = await core.readNamespace({ name: namespace });
          return ns.status?.phase === "Terminating";
        } catch (error) {
          return (error as { code?: number }).code === 404;
        }
      },
      120_000,
    );
    await expect(apps.readNamespacedDeployment({ name: "k8s-executor", namespace })).rejects.toMatchObject({
      code: 404,
    });
  });
});
