/**
 * The bootstrap program (Pulumi.yaml + infra/) driven by the real `pulumi` CLI and its Node.js language host,
 * against the real local Kubernetes API: preview changes nothing, up creates, destroy removes. What up creates
 * is bounded for real: the namespace enforces the `restricted` Pod Security level, a ResourceQuota and a
 * LimitRange hold, the k8s executor gets the operator's policy, and infra's own executors (which the k8s executor
 * must never see) still become ready under all of it. Against a real Colonies server, up registers this project's
 * BlueprintDefinition with the colony owner key (a secret that stays encrypted in the state), refresh notices it
 * gone, a changed handler updates it, destroy removes it; preview never calls the server.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1Deployment,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { definitionContent } from "../../infra/blueprint-definition.js";
import { clusterKubeconfig } from "../../peers/cluster.js";
import { type ColoniesServer, startColoniesServer } from "../../peers/colonies-server.js";
import { waitFor } from "../../peers/ports.js";
import { linkPulumiProject } from "../../peers/pulumi-project.js";
import { loadKubeConfig } from "../../src/atoms/kube-config.js";
import type { BlueprintDefinition } from "../../src/colonies/types.js";
import { executorDeploymentDefinition } from "../../src/executors/k8s/blueprint/definition.js";
import { K8S_EXECUTOR_RULES } from "../../src/k8s/rbac.js";

const run = promisify(execFile);
const namespace = `infra-${randomBytes(3).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "infra-"));
// The project is linked into a work directory, so that the stack's settings file lands there, not in the repo.
const projectDir = join(work, "project");
const configFile = join(projectDir, "Pulumi.test.yaml");
const image = "registry.example.com/colonyos/executors:0.1.0";
/** Resources of a stack with these settings: Stack, Namespace, LimitRange, ResourceQuota, ServiceAccount, Role,
 * RoleBinding, the k8s executor's PodDisruptionBudget, per executor (k8s, sleep) its component, Secret and
 * Deployment, and the BlueprintDefinition. */
const RESOURCES = 15;
const DEFINITION = "executor-deployment";
/** The dynamic resource's type, and the definition's URN in the stack. */
const DEFINITION_TYPE = "pulumi-nodejs:dynamic/colonies:BlueprintDefinition";
const DEFINITION_URN = `urn:pulumi:test::colonyos-executors::${DEFINITION_TYPE}::blueprint-definition`;
/** The state backend the three k8s-executor replicas share (kwok runs no containers: it is never dialled). */
const backendUrl = "postgres://pulumi:backend-password@postgres.colonyos.svc:5432/pulumi_state";
/** A profile binding a Secret to the backup command, as an operator writes it into the stack's config. */
const PROFILES = {
  "team-backup": {
    images: ["registry.example.com/team/*"],
    cmds: ["backup"],
    secrets: ["team-db"],
    env: ["DB_HOST", "DB_DATABASE"],
  },
};

// `up` and `destroy` run with --skip-preview: the previews this suite checks are its own `pulumi preview` runs.
/** Where infra's own executors run (config nodeSelector and tolerations). */
const PLACE = {
  nodeSelector: { type: "kwok" },
  tolerations: [{ key: "colonyos.io/real-node", operator: "Exists", effect: "NoSchedule" }],
};

let env: NodeJS.ProcessEnv;
let server: ColoniesServer;
let colonyPrvKey: string;
/** Everything pulumi printed (stdout and stderr), to check that no secret ever shows. */
const printed: string[] = [];
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;
let policy: PolicyV1Api;

async function pulumi(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run("pulumi", [...args, "--stack", "test", "--non-interactive"], {
      env,
      cwd: projectDir,
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    printed.push(stdout, stderr);
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    printed.push(e.message, e.stdout ?? "", e.stderr ?? "");
    throw new Error(`pulumi ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** The colony's BlueprintDefinitions, read with the official CLI (a member's key). */
async function definitions(): Promise<BlueprintDefinition[]> {
  const { stdout } = await server.cli(["blueprint", "definition", "ls", "--json"]);
  return stdout.trim() ? (JSON.parse(stdout) as BlueprintDefinition[]) : [];
}

/** The official CLI with the colony owner key. */
const asOwner = (args: string[]) => server.cli(args, { COLONIES_COLONY_PRVKEY: colonyPrvKey });

/**
 * The host of dynamic providers (`pulumi-resource-pulumi-nodejs`), which the official Pulumi distribution ships next
 * to the CLI and scripts/peers/pulumi.sh installs next to the one it builds: Pulumi finds it on PATH.
 */
async function assertDynamicProviderHost(): Promise<void> {
  await run("sh", ["-c", "command -v pulumi-resource-pulumi-nodejs"]).catch(() => {
    throw new Error(
      'pulumi-resource-pulumi-nodejs is not on PATH: run `eval "$(bash scripts/peers/all.sh --export)"` (scripts/peers/pulumi.sh installs it next to the CLI)',
    );
  });
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
  policy = kc.makeApiClient(PolicyV1Api);
  mkdirSync(join(work, "state"));
  mkdirSync(projectDir);
  linkPulumiProject(projectDir);
  // The Colonies server starts while the stack is configured.
  const starting = startColoniesServer();
  starting.catch(() => undefined);
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
  await assertDynamicProviderHost();
  await pulumi("stack", "init", "--secrets-provider", "passphrase");
  const settings: Record<string, string> = {
    namespace,
    image,
    // The pods' address of the server (kwok runs no containers: never dialled); `pulumi up` reaches it directly.
    coloniesHost: "colonies.colonyos.svc",
    k8sExecutorReplicas: "3",
    sleepReplicas: "2",
    sleepExecutorsPerPod: "2",
    // The operator's policy and the namespace's bounds (allowedCmds keeps its default, sleep).
    allowedImages: "registry.example.com/team/*, ghcr.io/acme/**",
    allowedExecutorTypes: "team-*",
    allowedTolerations: "gpu",
    maxDeployments: "5",
    maxMemory: "2Gi",
    quotaPods: "20",
    quotaCpu: "8",
    quotaMemory: "16Gi",
  };
  for (const [key, value] of Object.entries(settings)) {
    await pulumi("config", "set", "--config-file", configFile, key, value);
  }
  await pulumi("config", "set", "--config-file", configFile, "--path", "profiles", JSON.stringify(PROFILES));
  // Infra's own executors go where the operator says: a label of the kwok nodes, and a taint they tolerate.
  await pulumi(
    "config",
    "set",
    "--config-file",
    configFile,
    "--path",
    "nodeSelector",
    JSON.stringify(PLACE.nodeSelector),
  );
  await pulumi(
    "config",
    "set",
    "--config-file",
    configFile,
    "--path",
    "tolerations",
    JSON.stringify(PLACE.tolerations),
  );
  server = await starting;
  colonyPrvKey = server.colonyPrvKey;
  for (const [key, value] of Object.entries({
    colonyName: server.colonyName,
    coloniesApiHost: server.host,
    coloniesApiPort: String(server.port),
  })) {
    await pulumi("config", "set", "--config-file", configFile, key, value);
  }
  await pulumi("config", "set", "--config-file", configFile, "--secret", "colonyPrvKey", colonyPrvKey);
  await pulumi("config", "set", "--config-file", configFile, "--secret", "k8sStateBackend", backendUrl);
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
  await server?.stop();
});

describe("pulumi preview / up / destroy of infra/", () => {
  it("previews the whole plan without creating anything", async () => {
    const out = await pulumi("preview", "--config-file", configFile, "--diff");
    expect(out).toMatch(new RegExp(`\\+ ${RESOURCES} to create`));
    for (const kind of [
      "Namespace",
      "LimitRange",
      "ResourceQuota",
      "ServiceAccount",
      "Role",
      "RoleBinding",
      "Deployment",
      "Secret",
      DEFINITION_TYPE,
    ]) {
      expect(out).toContain(kind);
    }
    await expect(core.readNamespace({ name: namespace })).rejects.toMatchObject({ code: 404 });
    // The definition is planned, with its handler; the server has not been asked to register anything.
    expect(out).toContain(`+ ${DEFINITION_TYPE}: (create)`);
    expect(out).toContain('executorType: "k8s"');
    expect(await definitions()).toEqual([]);
  });

  it("registers no definition with blueprintDefinition false", async () => {
    const without = join(projectDir, "Pulumi.without.yaml");
    copyFileSync(configFile, without);
    await pulumi("config", "set", "--config-file", without, "blueprintDefinition", "false");
    const out = await pulumi("preview", "--config-file", without);
    expect(out).toMatch(new RegExp(`\\+ ${RESOURCES - 1} to create`));
    expect(out).not.toContain("BlueprintDefinition");
    expect(out).toContain("not registered (blueprintDefinition: false)");
  });

  it("refuses, in preview already, executors of its own that the namespace's limits would never admit", async () => {
    const tight = join(projectDir, "Pulumi.tight.yaml");
    copyFileSync(configFile, tight);
    // The k8s executor asks for 1536Mi (its default for 4 concurrent updates), more than a container may have;
    // 3 of them and 2 sleep pods plus rolling updates' extra pods do not fit in 2 pods either.
    await pulumi("config", "set", "--config-file", tight, "maxMemory", "512Mi");
    await pulumi("config", "set", "--config-file", tight, "quotaPods", "2");
    const failure = await pulumi("preview", "--config-file", tight).then(
      () => "",
      (error: Error) => error.message,
    );
    expect(failure).toContain("the configuration does not fit the namespace's limits");
    expect(failure).toContain("asks for memory 1536Mi (k8sExecutorCpu/Memory), more than maxMemory (512Mi)");
    expect(failure).toMatch(/need \d+ pods .*more than quotaPods \(2\)/);
    await expect(core.readNamespace({ name: namespace })).rejects.toMatchObject({ code: 404 });
  });

  it("plans a k8s executor whose stacks' secrets a key manager encrypts: no passphrase, credentials by reference", async () => {
    const kms = join(projectDir, "Pulumi.kms.yaml");
    copyFileSync(configFile, kms);
    await pulumi("config", "rm", "--config-file", kms, "k8sPulumiPassphrase");
    const url = "awskms://alias/colonyos-state?region=eu-north-1";
    await pulumi("config", "set", "--config-file", kms, "k8sStateEncryption", url);
    const setEnvRefs = (refs: Record<string, string>) =>
      pulumi("config", "set", "--config-file", kms, "--path", "k8sStateEncryptionEnv", JSON.stringify(refs));
    await setEnvRefs({
      AWS_ACCESS_KEY_ID: "kms-credentials/id",
      AWS_SECRET_ACCESS_KEY: "kms-credentials/secret",
    });
    const out = await pulumi("preview", "--config-file", kms, "--diff");
    expect(out).toMatch(new RegExp(`\\+ ${RESOURCES} to create`));
    expect(out).toContain("K8S_PULUMI_SECRETS_PROVIDER");
    expect(out).toContain(url);
    expect(out).toContain("kms-credentials");
    expect(out).not.toContain("K8S_PULUMI_PASSPHRASE");

    // A variable no key manager reads (here, the executor's own key) is refused before anything is planned.
    await setEnvRefs({ COLONIES_PRVKEY: "other/key" });
    const failure = await pulumi("preview", "--config-file", kms).then(
      () => "",
      (error: Error) => error.message,
    );
    expect(failure).toContain(
      'config k8sStateEncryptionEnv.COLONIES_PRVKEY: needs an AWS_*, GOOGLE_*, AZURE_* or VAULT_* variable set to "secret/key"',
    );
  });

  it("refuses several k8s-executor replicas without a state backend they share", async () => {
    const alone = join(projectDir, "Pulumi.alone.yaml");
    copyFileSync(configFile, alone);
    await pulumi("config", "rm", "--config-file", alone, "k8sStateBackend");
    const failure = await pulumi("preview", "--config-file", alone).then(
      () => "",
      (error: Error) => error.message,
    );
    expect(failure).toContain(
      "config k8sExecutorReplicas: 3 replicas need a state backend they share; set k8sStateBackend",
    );
  });

  it("creates the namespace, least-privilege RBAC and the executors, with keys only in Secrets", async () => {
    const out = await pulumi("up", "--config-file", configFile, "--yes", "--skip-preview");
    expect(out).toMatch(new RegExp(`\\+ ${RESOURCES} created`));

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
    // Three replicas on the shared backend: its URL (with a password) only by reference, rolled one at a time,
    // at most one away at a time, each sized for its concurrent updates.
    expect(executor.spec?.replicas).toBe(3);
    expect(executor.spec?.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
    expect(
      pod?.containers[0]?.env?.find((e) => e.name === "K8S_PULUMI_BACKEND_URL")?.valueFrom?.secretKeyRef
        ?.name,
    ).toBe("k8s-executor-keys");
    expect(JSON.stringify(executor)).not.toContain("backend-password");
    expect(pod?.containers[0]?.resources?.limits?.memory).toBe("1536Mi");
    expect(pod?.containers[0]?.env?.find((e) => e.name === "K8S_STACK_CONCURRENCY")?.value).toBe("4");
    // No state volume: the replicas keep their state in the shared backend.
    expect(pod?.volumes?.some((v) => v.persistentVolumeClaim)).toBeFalsy();
    const pdb = await policy.readNamespacedPodDisruptionBudget({ name: "colonyos-k8s-executor", namespace });
    expect(pdb.spec?.maxUnavailable).toBe(1);
    expect(pdb.spec?.selector?.matchLabels).toEqual(executor.spec?.selector?.matchLabels);
    await waitFor("the three k8s-executor replicas to be ready", async () => {
      const d = await apps.readNamespacedDeployment({ name: "k8s-executor", namespace });
      return d.status?.readyReplicas === 3;
    });
    const disruption = await policy.readNamespacedPodDisruptionBudgetStatus({
      name: "colonyos-k8s-executor",
      namespace,
    });
    expect(disruption.status?.disruptionsAllowed).toBe(1);

    const sleepers = await apps.readNamespacedDeployment({ name: "sleep-executors", namespace });
    expect(sleepers.spec?.replicas).toBe(2);
    expect(sleepers.spec?.template.spec?.containers.map((c) => c.name)).toEqual(["executor-0", "executor-1"]);
    await waitFor("the sleep executors to be ready", async () => {
      const d = await apps.readNamespacedDeployment({ name: "sleep-executors", namespace });
      return d.status?.readyReplicas === 2;
    });

    for (const deployment of [executor, sleepers])
      expect(JSON.stringify(deployment)).not.toContain(colonyPrvKey);
    // The definition is registered, as the official CLI reads it: this project's, with the k8s executor as handler.
    const { stdout } = await server.cli(["blueprint", "definition", "get", "--name", DEFINITION, "--json"], {
      COLONIES_COLONY_PRVKEY: colonyPrvKey,
    });
    const registered = JSON.parse(stdout) as BlueprintDefinition;
    const expected = executorDeploymentDefinition("k8s", DEFINITION);
    expect(registered.metadata).toMatchObject({ name: DEFINITION, colonyname: server.colonyName });
    expect(registered.spec.handler).toEqual({ executorType: "k8s", functionName: "reconcile" });
    expect(registered.spec.schema).toEqual(expected.spec.schema);
    expect(registered.spec.names).toEqual(expected.spec.names);
    // What the provider's diff compares: the server's JSON of it says the same as the program's (so a refresh of an
    // untouched definition plans no change).
    expect(definitionContent(registered)).toBe(
      definitionContent({ ...expected, metadata: { ...expected.metadata, colonyname: server.colonyName } }),
    );
    expect((await definitions()).map((d) => d.metadata.name)).toEqual([DEFINITION]);

    let stateSeen = false;
    for (const file of stateFiles(join(work, "state"))) {
      const text = readFileSync(file, "utf8");
      if (text.includes(DEFINITION_TYPE)) stateSeen = true;
      expect(text).not.toContain(colonyPrvKey);
      expect(text).not.toContain("state-passphrase");
      expect(text).not.toContain("backend-password");
    }
    // The stack's state has the definition, with the owner key as an encrypted secret (inputs and outputs).
    expect(stateSeen).toBe(true);
    const exported = JSON.parse(await pulumi("stack", "export")) as {
      deployment: {
        resources: { type: string; inputs: Record<string, unknown>; outputs: Record<string, unknown> }[];
      };
    };
    const resource = exported.deployment.resources.find((r) => r.type === DEFINITION_TYPE);
    for (const props of [resource?.inputs, resource?.outputs]) {
      expect(props?.colonyPrvKey).toMatchObject({
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
      });
      expect(JSON.stringify(props?.colonyPrvKey)).toContain("ciphertext");
    }
    expect(resource?.outputs.definitionId).toBe(registered.blueprintdefinitionid);

    const outputs = JSON.parse(await pulumi("stack", "output", "--json"));
    expect(outputs.outputs).toMatchObject({
      namespace,
      serviceAccount: "colonyos-k8s-executor",
      k8sExecutor: "k8s-executor",
      sleepExecutors: "sleep-executors",
      policy: {
        allowedImages: [image, "registry.example.com/team/*", "ghcr.io/acme/**"],
        allowedCmds: ["sleep"],
        profiles: PROFILES,
        allowedExecutorTypes: ["team-*"],
        allowedTolerations: ["gpu"],
        maxDeployments: 5,
        maxMemoryPerContainer: "2Gi",
        podSecurity: `restricted (enforced on namespace ${namespace})`,
        quota: { pods: 20, cpu: "8", memory: "16Gi" },
      },
      blueprintDefinition: { name: DEFINITION, kind: "ExecutorDeployment", handler: "k8s" },
    });
    // `pulumi up` shows it too.
    expect(out).toContain("allowedImages");
    expect(out).toContain("registry.example.com/team/*");

    const again = await pulumi("preview", "--config-file", configFile);
    expect(again).toMatch(new RegExp(`${RESOURCES} unchanged`));
  });

  it("gives the k8s executor the operator's policy: allowed images and cmds, budgets", async () => {
    const executor = await apps.readNamespacedDeployment({ name: "k8s-executor", namespace });
    const env = Object.fromEntries(
      (executor.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    expect(env.K8S_ALLOWED_IMAGES?.split(",")).toEqual([
      image,
      "registry.example.com/team/*",
      "ghcr.io/acme/**",
    ]);
    expect(env.K8S_ALLOWED_CMDS).toBe("sleep");
    expect(JSON.parse(env.K8S_PROFILES ?? "{}")).toEqual(PROFILES);
    expect(env).toMatchObject({ K8S_ALLOWED_EXECUTOR_TYPES: "team-*", K8S_ALLOWED_TOLERATIONS: "gpu" });
    expect(env).not.toHaveProperty("K8S_ALLOWED_ENV");
    expect(env).toMatchObject({ K8S_MAX_DEPLOYMENTS: "5", K8S_MAX_CPU: "4", K8S_MAX_MEMORY: "2Gi" });
    expect(env).not.toHaveProperty("K8S_MAX_CONTAINERS");
    // It registers its deployments' executor identities with the colony owner key (delivered by the Secret).
    expect(
      executor.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === "COLONIES_COLONY_PRVKEY")
        ?.valueFrom?.secretKeyRef?.name,
    ).toBe("k8s-executor-keys");
  });

  it("labels its own executors as the bootstrap's, never as the k8s executor's (no atom label), and places them as told", async () => {
    const deployments: V1Deployment[] = await Promise.all(
      ["k8s-executor", "sleep-executors"].map((name) => apps.readNamespacedDeployment({ name, namespace })),
    );
    for (const d of deployments) {
      for (const labels of [
        d.metadata?.labels,
        d.spec?.template.metadata?.labels,
        d.spec?.selector.matchLabels,
      ]) {
        expect(labels?.["app.kubernetes.io/managed-by"]).toBe("pulumi");
        expect(labels).not.toHaveProperty("colonyos.io/atom");
        expect(labels).not.toHaveProperty("colonyos.io/stack");
        expect(labels).not.toHaveProperty("colonyos.io/project");
      }
    }
    for (const d of deployments) {
      expect(d.spec?.template.spec?.nodeSelector).toEqual(PLACE.nodeSelector);
      expect(d.spec?.template.spec?.tolerations).toEqual(PLACE.tolerations);
    }
    const pods = await core.listNamespacedPod({ namespace });
    expect(pods.items.length).toBe(5); // 3 k8s executors, 2 sleep executors
    for (const pod of pods.items) {
      expect(pod.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("pulumi");
      expect(pod.metadata?.labels).not.toHaveProperty("colonyos.io/atom");
    }
    expect((await core.listNamespacedPod({ namespace, labelSelector: "colonyos.io/atom" })).items).toEqual(
      [],
    );
    expect(
      (
        await apps.listNamespacedDeployment({
          namespace,
          labelSelector: "app.kubernetes.io/managed-by=colonyos-k8s-executor",
        })
      ).items,
    ).toEqual([]);
  });

  it("bounds the namespace: restricted Pod Security, a ResourceQuota and a LimitRange that infra's pods fit", async () => {
    const ns = await core.readNamespace({ name: namespace });
    expect(ns.metadata?.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "latest",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/warn-version": "latest",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/audit-version": "latest",
    });

    const quota = await core.readNamespacedResourceQuota({ name: "colonyos-executors", namespace });
    expect(quota.spec?.hard).toEqual({
      pods: "20",
      "requests.cpu": "8",
      "requests.memory": "16Gi",
      "limits.memory": "16Gi",
    });
    const limitRange = await core.readNamespacedLimitRange({ name: "colonyos-executors", namespace });
    expect(limitRange.spec?.limits).toEqual([
      {
        type: "Container",
        defaultRequest: { cpu: "100m", memory: "128Mi" },
        _default: { cpu: "4", memory: "256Mi" },
        max: { cpu: "4", memory: "2Gi" },
      },
    ]);

    // Every pod infra made was admitted, defaulted by the LimitRange and counted by the quota: 3 k8s executors
    // (250m, 1536Mi) and 2 sleep pods of 2 containers with the defaults (100m, 128Mi; limit 256Mi).
    const pods = await core.listNamespacedPod({ namespace });
    for (const pod of pods.items) {
      const resources = pod.spec?.containers.map((c) => c.resources);
      if (pod.metadata?.labels?.["app.kubernetes.io/instance"] === "k8s-executor") {
        expect(resources).toEqual([
          { requests: { cpu: "250m", memory: "1536Mi" }, limits: { cpu: "4", memory: "1536Mi" } },
        ]);
      } else {
        const defaults = {
          requests: { cpu: "100m", memory: "128Mi" },
          limits: { cpu: "4", memory: "256Mi" },
        };
        expect(resources).toEqual([defaults, defaults]);
      }
    }
    await waitFor("the quota to count infra's pods", async () => {
      const q = await core.readNamespacedResourceQuota({ name: "colonyos-executors", namespace });
      return q.status?.used?.pods === "5";
    });
    const used = (await core.readNamespacedResourceQuota({ name: "colonyos-executors", namespace })).status
      ?.used;
    expect(used).toMatchObject({
      "requests.cpu": "1150m",
      "requests.memory": "5Gi",
      "limits.memory": "5632Mi",
    });

    // The level is enforced, by the real API server: a privileged pod is refused (even for the admin).
    const privileged = core.createNamespacedPod({
      namespace,
      dryRun: "All",
      body: {
        metadata: { name: "privileged" },
        spec: {
          containers: [
            { name: "root", image: "busybox", securityContext: { privileged: true, runAsUser: 0 } },
          ],
        },
      },
    });
    const refusal = await privileged.then(
      () => undefined,
      (error: { code?: number; body?: unknown; message?: string }) => error,
    );
    expect(refusal?.code).toBe(403);
    // The body is the API server's Status, as JSON text.
    const status = JSON.parse(String(refusal?.body)) as { reason?: string; message?: string };
    expect(status.reason).toBe("Forbidden");
    expect(status.message).toContain('violates PodSecurity "restricted:latest"');
    expect(status.message).toContain("privileged");

    // So are the LimitRange's max per container and the quota, on a pod the restricted level admits.
    const refused = async (memory: string[]) => {
      const error = await core
        .createNamespacedPod({
          namespace,
          dryRun: "All",
          body: {
            metadata: { name: "big" },
            spec: {
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 65532,
                seccompProfile: { type: "RuntimeDefault" },
              },
              containers: memory.map((m, i) => ({
                name: `c${i}`,
                image,
                resources: { requests: { memory: m }, limits: { memory: m } },
                securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              })),
            },
          },
        })
        .then(
          () => undefined,
          (e: { code?: number; body?: unknown }) => e,
        );
      expect(error?.code).toBe(403);
      return (JSON.parse(String(error?.body)) as { message: string }).message;
    };
    expect(await refused(["4Gi"])).toMatch(/maximum memory usage per Container is 2Gi/);
    // 6 x 2Gi on top of the 5632Mi of limits used: over the 16Gi of the quota.
    expect(await refused(Array(6).fill("2Gi"))).toMatch(/exceeded quota: colonyos-executors/);
  });

  it("updates the definition when its handler changes, and registers it again once it is gone (refresh)", async () => {
    const changed = join(projectDir, "Pulumi.changed.yaml");
    copyFileSync(configFile, changed);
    await pulumi("config", "set", "--config-file", changed, "k8sExecutorType", "k8s-reconciler");
    const before = (await definitions())[0];
    const updated = await pulumi(
      "up",
      "--config-file",
      changed,
      "--target",
      DEFINITION_URN,
      "--yes",
      "--skip-preview",
    );
    expect(updated).toMatch(/1 updated/);
    // Colonies 1.9.12 has no update: removed and added again, so a new id.
    const after = await definitions();
    expect(after.map((d) => d.spec.handler.executorType)).toEqual(["k8s-reconciler"]);
    expect(after[0]?.blueprintdefinitionid).not.toBe(before?.blueprintdefinitionid);

    // Gone from the server: refresh notices, up registers it again (with the stack's own handler).
    await asOwner(["blueprint", "definition", "remove", "--name", DEFINITION]);
    expect(await definitions()).toEqual([]);
    const again = await pulumi(
      "up",
      "--config-file",
      configFile,
      "--refresh",
      "--target",
      DEFINITION_URN,
      "--yes",
      "--skip-preview",
    );
    expect(again).toMatch(/1 created/);
    expect((await definitions()).map((d) => d.spec.handler)).toEqual([
      { executorType: "k8s", functionName: "reconcile" },
    ]);
  });

  it("removes everything with destroy", async () => {
    const out = await pulumi("destroy", "--config-file", configFile, "--yes", "--skip-preview");
    expect(out).toMatch(new RegExp(`- ${RESOURCES} deleted`));
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
    expect(await definitions()).toEqual([]);
    // Nothing pulumi printed, in any command of this suite, shows the colony owner key.
    expect(printed.join("\n")).not.toContain(colonyPrvKey);
  });
});
