/**
 * Configuration of the k8s executor, from the environment, validated at start-up. Most of its length is the
 * declarative table of variables that `--help` prints.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { EnvReader } from "../../executor/env.js";
import type { EnvDoc } from "../../executor/types.js";
import { type Profiles, parseProfiles } from "./profiles.js";
import { DNS_LABEL, parseQuantity, QUANTITY } from "./validation.js";

export interface K8sConfig {
  namespace: string;
  /** The Colonies server as this executor reaches it (to register its deployments' identities). */
  server: { host: string; port: number; tls: boolean };
  kubeconfig?: string;
  dataDir: string;
  pulumi: {
    project: string;
    backendUrl: string;
    /** Opens the stacks whose secrets a passphrase encrypts (required when secretsProvider is "passphrase"). */
    passphrase?: string;
    /** What encrypts the secrets of new stacks: "passphrase" or a key manager URL (Pulumi's --secrets-provider). */
    secretsProvider: string;
    root?: string;
    /** The key managers' and state backends' credentials and settings for the Pulumi CLI (CLOUD_ENV). */
    env: Record<string, string>;
  };
  /** How executors in the pods reach Colonies. */
  child: { host: string; port: number; tls: boolean; colonyName: string };
  /**
   * The colony owner key this executor registers its deployments' executor identities with. Deployed
   * containers get it only when `identity` is "colony" (an operator's explicit choice for images they trust).
   */
  ownerKey: string;
  identity: "executor" | "colony";
  /** This executor's own executor type: no deployment may take it (its processes would go there). */
  ownType: string;
  /**
   * What callers may use, as glob patterns (empty: nothing allowed): images, cmd strings, Secrets to reference
   * (secretenv, imagepullsecret: a ceiling when set; profiles bind each to images), env names for any image,
   * executor types besides the deployment's own name, taint keys to tolerate; the operator's profiles; and the
   * images built on this runtime (their containers get /readyz probes).
   */
  policy: {
    images: string[];
    cmds: string[];
    secrets: string[];
    env: string[];
    executorTypes: string[];
    tolerations: string[];
    profiles: Profiles;
    runtimeImages: string[];
  };
  /** The extended resource `gpu` asks for, and how many per container at most (0: refused). */
  gpu: { resource: string; max: number };
  defaults: {
    cpu?: string;
    memory?: string;
    ramdiskSize: string;
    imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  };
  limits: {
    maxPods: number;
    maxExecutorsPerPod: number;
    maxDeployments: number;
    /** Sum of pods x executorperpod over every deployment. */
    maxContainers: number;
    /** Per container, as text (for messages) and in cores / bytes. */
    maxCpu: { text: string; value: number };
    maxMemory: { text: string; value: number };
    logBytes: { default: number; max: number };
  };
  rolloutTimeoutSeconds: number;
  /** Hard deadline of one Pulumi operation; it is then cancelled cleanly and the process fails. */
  operationTimeoutSeconds: number;
  stackConcurrency: number;
  coordination: { kind: "local" | "lease"; leaseSeconds: number };
  /** Seconds between the autoscaler's looks at the Colonies queue (0: no autoscaler). */
  autoscaleIntervalSeconds: number;
  /** Seconds between sweeps of identities no stack records (0: only at start-up). */
  identitySweepIntervalSeconds: number;
  /** Seconds between drift checks of every deployment (0: none), and whether they converge what drifted. */
  drift: { intervalSeconds: number; remediate: boolean };
}

export const K8S_ENV: readonly EnvDoc[] = [
  {
    name: "K8S_NAMESPACE",
    description: "namespace of the deployments (alias EXECUTOR_NAMESPACE)",
    default: "the pod's namespace, else default",
  },
  {
    name: "KUBECONFIG",
    description: "kubeconfig file; in a pod the service account is used",
    default: "~/.kube/config",
  },
  {
    name: "K8S_DATA_DIR",
    description: "work directories of the stacks and the default file state backend",
    default: "~/.local/share/colonyos-k8s-executor",
  },
  {
    name: "K8S_PULUMI_BACKEND_URL",
    description: "Pulumi state backend (file://, s3://, postgres://, ...; alias PULUMI_BACKEND_URL)",
    default: "file://<data dir>/state",
  },
  {
    name: "K8S_PULUMI_PASSPHRASE",
    description:
      "passphrase encrypting secrets in the state (alias PULUMI_CONFIG_PASSPHRASE; or PULUMI_CONFIG_PASSPHRASE_FILE)",
    secret: true,
  },
  {
    name: "K8S_PULUMI_SECRETS_PROVIDER",
    description:
      "what encrypts secrets in the state of new stacks: passphrase, or a key manager URL (awskms://, gcpkms://, azurekeyvault://, hashivault://; its credentials from the environment)",
    default: "passphrase",
  },
  { name: "K8S_PULUMI_PROJECT", description: "Pulumi project of the stacks", default: "colonyos-executors" },
  { name: "K8S_PULUMI_ROOT", description: "directory with bin/pulumi", default: "pulumi on PATH" },
  {
    name: "K8S_CHILD_COLONIES_SERVER_HOST",
    description: "Colonies host as seen from the pods",
    default: "COLONIES_SERVER_HOST",
  },
  {
    name: "K8S_CHILD_COLONIES_SERVER_PORT",
    description: "Colonies port as seen from the pods",
    default: "COLONIES_SERVER_PORT",
  },
  { name: "K8S_CHILD_COLONIES_TLS", description: "TLS as seen from the pods", default: "COLONIES_TLS" },
  {
    name: "K8S_CHILD_COLONY_PRVKEY",
    description:
      "colony owner key with which this executor registers (adds, approves, removes) the executor identities of its deployments",
    default: "COLONIES_COLONY_PRVKEY",
    secret: true,
  },
  {
    name: "K8S_CHILD_IDENTITY",
    description:
      "executor: each deployment runs as an executor identity registered by this executor, its containers get only that key (COLONIES_PRVKEY); colony: containers get the colony owner key (only for images you trust)",
    default: "executor",
  },
  {
    name: "K8S_ALLOWED_IMAGES",
    description:
      "comma-separated glob patterns of the images deploy may run, e.g. registry.example.com/colonyos/* ('*' stays within a path segment, '**' crosses them); unset: none",
    default: "none allowed",
  },
  {
    name: "K8S_ALLOWED_CMDS",
    description:
      "comma-separated glob patterns of the cmd strings deploy may pass to the image, e.g. sleep,backup",
    default: "none allowed (the image's own command)",
  },
  {
    name: "K8S_PROFILES",
    description:
      'JSON object of profiles binding Secrets and env names to images and cmds, e.g. {"shop-backup": {"images": ["registry.example.com/colonyos/*"], "cmds": ["backup"], "secrets": ["shop-db"], "env": ["DB_HOST", "DB_DATABASE"]}}: a deploy may reference a Secret (secretenv, imagepullsecret) only through a profile that binds it to its image and cmd, and then set only that profile\'s env names',
    default: "none: no Secret may be referenced",
  },
  {
    name: "K8S_ALLOWED_SECRETS",
    description:
      "comma-separated glob patterns: a ceiling on the Secrets any profile may bind (unset: the profiles alone decide); Secrets named *-keys, Secrets of ColonyOS executors and service-account tokens are never referable",
    default: "no ceiling",
  },
  {
    name: "K8S_ALLOWED_ENV",
    description:
      "comma-separated glob patterns of env names a caller may set for any image (a deploy without Secrets); a profile for the image may allow more",
    default: "none allowed",
  },
  {
    name: "K8S_ALLOWED_EXECUTOR_TYPES",
    description:
      "comma-separated glob patterns of the executor types a deploy may give its executors besides the deployment's own name; a type with registered executors this executor did not create is always refused",
    default: "only the deployment's own name",
  },
  {
    name: "K8S_ALLOWED_TOLERATIONS",
    description:
      "comma-separated glob patterns of the taint keys a deploy may tolerate (tolerations), e.g. gpu,dedicated; Kubernetes' own taints never",
    default: "none allowed",
  },
  {
    name: "K8S_RUNTIME_IMAGES",
    description:
      "comma-separated glob patterns of images built on this runtime: their containers get EXECUTOR_HTTP_PORT and a readiness probe on /readyz, so ready means registered",
    default: "none",
  },
  { name: "K8S_MAX_GPU", description: "largest gpu count per container; 0 refuses gpu", default: "0" },
  { name: "K8S_GPU_RESOURCE", description: "the extended resource gpu asks for", default: "nvidia.com/gpu" },
  { name: "K8S_MAX_DEPLOYMENTS", description: "deployments this executor manages at most", default: "20" },
  {
    name: "K8S_MAX_CONTAINERS",
    description: "executor containers over all deployments at most (sum of pods x executorperpod)",
    default: "200",
  },
  { name: "K8S_MAX_CPU", description: "largest cpu request per container", default: "4" },
  { name: "K8S_MAX_MEMORY", description: "largest memory request per container", default: "8Gi" },
  { name: "K8S_LOG_LIMIT", description: "bytes logs returns by default", default: "1048576" },
  {
    name: "K8S_MAX_LOG_LIMIT",
    description: "largest limitbytes a logs call may ask for",
    default: "10485760",
  },
  { name: "K8S_DEFAULT_CPU", description: "CPU request per executor container", default: "none" },
  {
    name: "K8S_DEFAULT_MEMORY",
    description: "memory request and limit per executor container",
    default: "none",
  },
  { name: "K8S_RAMDISK_SIZE", description: "size limit of the /ramdisk emptyDir", default: "256Mi" },
  {
    name: "K8S_IMAGE_PULL_POLICY",
    description: "Always, IfNotPresent or Never",
    default: "Kubernetes' default",
  },
  { name: "K8S_MAX_PODS", description: "largest accepted pods argument", default: "100" },
  {
    name: "K8S_MAX_EXECUTORS_PER_POD",
    description: "largest accepted executorperpod argument",
    default: "16",
  },
  {
    name: "K8S_ROLLOUT_TIMEOUT",
    description: "seconds deploy and scale wait for the rollout to be ready",
    default: "300",
  },
  {
    name: "K8S_OPERATION_TIMEOUT",
    description:
      "seconds one Pulumi operation may take at most; it is then cancelled cleanly (no lock left) and the process fails",
    default: "K8S_ROLLOUT_TIMEOUT + 300",
  },
  {
    name: "K8S_STACK_CONCURRENCY",
    description: "Pulumi updates run at once (each runs its own pulumi and provider processes)",
    default: "4",
  },
  {
    name: "K8S_COORDINATION",
    description:
      "how operations on one deployment name take turns: local (this process owns the state backend: one replica) or lease (a Kubernetes Lease per name: replicas sharing a postgres:// or s3:// backend)",
    default: "local for a file:// backend, else lease",
  },
  {
    name: "K8S_LEASE_SECONDS",
    description:
      "with lease: how long a replica that stops renewing its turn keeps it (then another replica takes over and cleans up)",
    default: "15",
  },
  {
    name: "K8S_AUTOSCALE_INTERVAL",
    description:
      "seconds between the autoscaler's looks at the Colonies queue of each autoscaled deployment (one replica runs it); 0 turns the autoscaler off",
    default: "5",
  },
  {
    name: "K8S_IDENTITY_SWEEP_INTERVAL",
    description:
      "seconds between sweeps that remove the executor identities this executor registered and no stack records (left by a deploy or undeploy killed midway; one replica runs them); 0: only at start-up",
    default: "300",
  },
  {
    name: "K8S_DRIFT_INTERVAL",
    description:
      "seconds between drift checks of every deployment against its stack (logged, and exported as metrics; one replica runs them); 0 turns them off",
    default: "0",
  },
  {
    name: "K8S_DRIFT_REMEDIATE",
    description: "true: the drift check also converges what drifted (a reconcile of that deployment)",
    default: "false",
  },
];

const IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const NAMESPACE = { pattern: DNS_LABEL, expected: "a DNS-1123 label" };
const QUANTITY_TEXT = { pattern: QUANTITY, expected: "a Kubernetes quantity (e.g. 250m, 512Mi)" };
const URL_LIKE = { pattern: /^[a-z0-9+]+:\/\//, expected: "a URL such as file:///data/state or s3://bucket" };
const KEY = { pattern: /^[0-9a-f]{64}$/, expected: "64 lowercase hex characters" };
/**
 * What the Pulumi CLI's key managers and state backends read from the environment (AWS_*, GOOGLE_*, AZURE_*,
 * VAULT_*): handed to it explicitly, so that an executor configured from other than its process environment works too.
 */
const CLOUD_ENV = /^(AWS|GOOGLE|AZURE|VAULT)_[A-Z0-9_]+$/;
/** Pulumi's secrets providers for a DIY backend: the passphrase, or the key managers its CLI is built with. */
const SECRETS_PROVIDER = /^(passphrase|(awskms|gcpkms|azurekeyvault|hashivault):\/\/[^\s]+)$/;

function defaultNamespace(): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE, "utf8").trim() || "default";
  } catch {
    return "default";
  }
}

/** Comma-separated patterns; blanks dropped. */
function patterns(e: EnvReader, name: string): string[] {
  return (e.string(name) ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
}

function profilesFrom(e: EnvReader): Profiles {
  const text = e.raw("K8S_PROFILES");
  if (text === undefined) return {};
  const parsed = parseProfiles(text);
  if ("problem" in parsed) {
    e.problems.push(parsed.problem);
    return {};
  }
  return parsed.profiles;
}

function quantity(e: EnvReader, name: string, fallback: string): { text: string; value: number } {
  const text = e.string(name, QUANTITY_TEXT) ?? fallback;
  return { text, value: parseQuantity(text) ?? 0 };
}

function passphraseFrom(e: EnvReader): string | undefined {
  const direct = e.string("K8S_PULUMI_PASSPHRASE") ?? e.string("PULUMI_CONFIG_PASSPHRASE");
  if (direct) return direct;
  const file = e.string("PULUMI_CONFIG_PASSPHRASE_FILE");
  if (!file) return undefined;
  if (!existsSync(file)) {
    e.problems.push(`PULUMI_CONFIG_PASSPHRASE_FILE ${file} does not exist`);
    return undefined;
  }
  return readFileSync(file, "utf8").trim();
}

export function loadK8sConfig(env: NodeJS.ProcessEnv): K8sConfig {
  const e = new EnvReader(env);
  const namespace = e.string("K8S_NAMESPACE", NAMESPACE) ?? e.string("EXECUTOR_NAMESPACE", NAMESPACE);
  const dataDir = resolve(
    e.string("K8S_DATA_DIR") ??
      join(e.string("XDG_DATA_HOME") ?? join(homedir(), ".local", "share"), "colonyos-k8s-executor"),
  );
  const backendUrl = e.string("K8S_PULUMI_BACKEND_URL", URL_LIKE) ?? e.string("PULUMI_BACKEND_URL", URL_LIKE);
  const passphrase = passphraseFrom(e);
  const secretsProvider =
    e.string("K8S_PULUMI_SECRETS_PROVIDER", {
      pattern: SECRETS_PROVIDER,
      expected: "passphrase, or a URL of awskms://, gcpkms://, azurekeyvault:// or hashivault://",
    }) ?? "passphrase";
  if (!passphrase && secretsProvider === "passphrase") {
    e.problems.push(
      "K8S_PULUMI_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE) is required: it encrypts the secrets in the Pulumi state (or set K8S_PULUMI_SECRETS_PROVIDER to a key manager)",
    );
  }
  const ownerKey = e.string("K8S_CHILD_COLONY_PRVKEY", KEY) ?? e.string("COLONIES_COLONY_PRVKEY", KEY);
  if (!ownerKey && !e.raw("K8S_CHILD_COLONY_PRVKEY") && !e.raw("COLONIES_COLONY_PRVKEY")) {
    e.problems.push(
      "K8S_CHILD_COLONY_PRVKEY or COLONIES_COLONY_PRVKEY is required: the k8s executor registers the executors it deploys with the colony owner key",
    );
  }
  const rolloutTimeoutSeconds = e.int("K8S_ROLLOUT_TIMEOUT", 1, 86_400) ?? 300;
  const server = {
    host: e.string("COLONIES_SERVER_HOST") ?? "localhost",
    port: e.int("COLONIES_SERVER_PORT", 1, 65535) ?? 50080,
    tls: e.bool("COLONIES_TLS") ?? false,
  };
  const config: K8sConfig = {
    namespace: namespace ?? defaultNamespace(),
    server,
    kubeconfig: e.string("KUBECONFIG"),
    dataDir,
    pulumi: {
      project:
        e.string("K8S_PULUMI_PROJECT", {
          // It is also a label value on every object (colonyos.io/project).
          pattern: /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/,
          expected: "1-63 letters, digits, _ . - (starting and ending with a letter or digit)",
        }) ?? "colonyos-executors",
      backendUrl: backendUrl ?? pathToFileURL(join(dataDir, "state")).href,
      passphrase,
      secretsProvider,
      root: e.string("K8S_PULUMI_ROOT"),
      env: Object.fromEntries(
        Object.entries(env).filter(
          (entry): entry is [string, string] => CLOUD_ENV.test(entry[0]) && !!entry[1],
        ),
      ),
    },
    child: {
      host: e.string("K8S_CHILD_COLONIES_SERVER_HOST") ?? server.host,
      port: e.int("K8S_CHILD_COLONIES_SERVER_PORT", 1, 65535) ?? server.port,
      tls: e.bool("K8S_CHILD_COLONIES_TLS") ?? server.tls,
      colonyName: e.string("COLONIES_COLONY_NAME") ?? "",
    },
    ownerKey: ownerKey ?? "",
    identity: e.oneOf("K8S_CHILD_IDENTITY", ["executor", "colony"] as const) ?? "executor",
    ownType: e.string("COLONIES_EXECUTOR_TYPE") ?? "k8s",
    policy: {
      images: patterns(e, "K8S_ALLOWED_IMAGES"),
      cmds: patterns(e, "K8S_ALLOWED_CMDS"),
      secrets: patterns(e, "K8S_ALLOWED_SECRETS"),
      env: patterns(e, "K8S_ALLOWED_ENV"),
      executorTypes: patterns(e, "K8S_ALLOWED_EXECUTOR_TYPES"),
      tolerations: patterns(e, "K8S_ALLOWED_TOLERATIONS"),
      profiles: profilesFrom(e),
      runtimeImages: patterns(e, "K8S_RUNTIME_IMAGES"),
    },
    gpu: {
      resource:
        e.string("K8S_GPU_RESOURCE", {
          pattern: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/,
          expected: "an extended resource name such as nvidia.com/gpu",
        }) ?? "nvidia.com/gpu",
      max: e.int("K8S_MAX_GPU", 0, 64) ?? 0,
    },
    defaults: {
      cpu: e.string("K8S_DEFAULT_CPU", QUANTITY_TEXT),
      memory: e.string("K8S_DEFAULT_MEMORY", QUANTITY_TEXT),
      ramdiskSize: e.string("K8S_RAMDISK_SIZE", QUANTITY_TEXT) ?? "256Mi",
      imagePullPolicy: e.oneOf("K8S_IMAGE_PULL_POLICY", ["Always", "IfNotPresent", "Never"] as const),
    },
    limits: {
      maxPods: e.int("K8S_MAX_PODS", 0, 10_000) ?? 100,
      maxExecutorsPerPod: e.int("K8S_MAX_EXECUTORS_PER_POD", 1, 128) ?? 16,
      maxDeployments: e.int("K8S_MAX_DEPLOYMENTS", 0, 100_000) ?? 20,
      maxContainers: e.int("K8S_MAX_CONTAINERS", 0, 1_000_000) ?? 200,
      maxCpu: quantity(e, "K8S_MAX_CPU", "4"),
      maxMemory: quantity(e, "K8S_MAX_MEMORY", "8Gi"),
      logBytes: {
        default: e.int("K8S_LOG_LIMIT", 1, 1 << 30) ?? 1 << 20,
        max: e.int("K8S_MAX_LOG_LIMIT", 1, 1 << 30) ?? 10 << 20,
      },
    },
    rolloutTimeoutSeconds,
    operationTimeoutSeconds: e.int("K8S_OPERATION_TIMEOUT", 10, 7 * 86_400) ?? rolloutTimeoutSeconds + 300,
    stackConcurrency: e.int("K8S_STACK_CONCURRENCY", 1, 64) ?? 4,
    coordination: {
      kind:
        e.oneOf("K8S_COORDINATION", ["local", "lease"] as const) ??
        (!backendUrl || backendUrl.startsWith("file://") ? "local" : "lease"),
      leaseSeconds: e.int("K8S_LEASE_SECONDS", 5, 3600) ?? 15,
    },
    autoscaleIntervalSeconds: e.int("K8S_AUTOSCALE_INTERVAL", 0, 3600) ?? 5,
    identitySweepIntervalSeconds: e.int("K8S_IDENTITY_SWEEP_INTERVAL", 0, 7 * 86_400) ?? 300,
    drift: {
      intervalSeconds: e.int("K8S_DRIFT_INTERVAL", 0, 7 * 86_400) ?? 0,
      remediate: e.bool("K8S_DRIFT_REMEDIATE") ?? false,
    },
  };
  e.check("k8s executor configuration");
  return config;
}
