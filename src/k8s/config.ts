/** Configuration of the k8s executor, from the environment, validated at start-up. */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { EnvReader } from "../executor/env.js";
import type { EnvDoc } from "../executor/types.js";

export interface K8sConfig {
  namespace: string;
  kubeconfig?: string;
  dataDir: string;
  pulumi: { project: string; backendUrl: string; passphrase: string; root?: string; home?: string };
  /** How executors in the pods reach Colonies. */
  child: { host: string; port: number; tls: boolean; colonyName: string; colonyPrvKey?: string };
  defaults: {
    cpu?: string;
    memory?: string;
    ramdiskSize: string;
    imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  };
  limits: { maxPods: number; maxExecutorsPerPod: number };
  rolloutTimeoutSeconds: number;
  stackConcurrency: number;
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
    description: "colony owner key the deployed executors register with (kept in a Secret)",
    default: "COLONIES_COLONY_PRVKEY",
    secret: true,
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
    name: "K8S_STACK_CONCURRENCY",
    description: "Pulumi updates run at once (each runs its own pulumi and provider processes)",
    default: "4",
  },
];

const IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const DNS_LABEL = { pattern: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, expected: "a DNS-1123 label" };
const QUANTITY = {
  pattern: /^[0-9.]+([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$/,
  expected: "a Kubernetes quantity (e.g. 250m, 512Mi)",
};
const URL_LIKE = { pattern: /^[a-z0-9+]+:\/\//, expected: "a URL such as file:///data/state or s3://bucket" };
const KEY = { pattern: /^[0-9a-f]{64}$/, expected: "64 lowercase hex characters" };

function defaultNamespace(): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE, "utf8").trim() || "default";
  } catch {
    return "default";
  }
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
  const namespace = e.string("K8S_NAMESPACE", DNS_LABEL) ?? e.string("EXECUTOR_NAMESPACE", DNS_LABEL);
  const dataDir = resolve(
    e.string("K8S_DATA_DIR") ??
      join(e.string("XDG_DATA_HOME") ?? join(homedir(), ".local", "share"), "colonyos-k8s-executor"),
  );
  const backendUrl = e.string("K8S_PULUMI_BACKEND_URL", URL_LIKE) ?? e.string("PULUMI_BACKEND_URL", URL_LIKE);
  const passphrase = passphraseFrom(e);
  if (!passphrase) {
    e.problems.push(
      "K8S_PULUMI_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE) is required: it encrypts the secrets in the Pulumi state",
    );
  }
  const config: K8sConfig = {
    namespace: namespace ?? defaultNamespace(),
    kubeconfig: e.string("KUBECONFIG"),
    dataDir,
    pulumi: {
      project:
        e.string("K8S_PULUMI_PROJECT", {
          pattern: /^[A-Za-z0-9_.-]+$/,
          expected: "letters, digits, _ . -",
        }) ?? "colonyos-executors",
      backendUrl: backendUrl ?? pathToFileURL(join(dataDir, "state")).href,
      passphrase: passphrase ?? "",
      root: e.string("K8S_PULUMI_ROOT"),
      home: e.string("PULUMI_HOME"),
    },
    child: {
      host: e.string("K8S_CHILD_COLONIES_SERVER_HOST") ?? e.string("COLONIES_SERVER_HOST") ?? "localhost",
      port:
        e.int("K8S_CHILD_COLONIES_SERVER_PORT", 1, 65535) ?? e.int("COLONIES_SERVER_PORT", 1, 65535) ?? 50080,
      tls: e.bool("K8S_CHILD_COLONIES_TLS") ?? e.bool("COLONIES_TLS") ?? false,
      colonyName: e.string("COLONIES_COLONY_NAME") ?? "",
      colonyPrvKey: e.string("K8S_CHILD_COLONY_PRVKEY", KEY) ?? e.string("COLONIES_COLONY_PRVKEY", KEY),
    },
    defaults: {
      cpu: e.string("K8S_DEFAULT_CPU", QUANTITY),
      memory: e.string("K8S_DEFAULT_MEMORY", QUANTITY),
      ramdiskSize: e.string("K8S_RAMDISK_SIZE", QUANTITY) ?? "256Mi",
      imagePullPolicy: e.oneOf("K8S_IMAGE_PULL_POLICY", ["Always", "IfNotPresent", "Never"] as const),
    },
    limits: {
      maxPods: e.int("K8S_MAX_PODS", 0, 10_000) ?? 100,
      maxExecutorsPerPod: e.int("K8S_MAX_EXECUTORS_PER_POD", 1, 128) ?? 16,
    },
    rolloutTimeoutSeconds: e.int("K8S_ROLLOUT_TIMEOUT", 1, 86_400) ?? 300,
    stackConcurrency: e.int("K8S_STACK_CONCURRENCY", 1, 64) ?? 4,
  };
  e.check("k8s executor configuration");
  return config;
}
