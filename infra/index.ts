/**
 * Bootstrap: `pulumi up` puts the executors into a cluster; `pulumi preview` is the dry run.
 * It creates the namespace (optional; labelled for the `restricted` Pod Security level), a ResourceQuota and a
 * LimitRange bounding what runs in it, the k8s executor's ServiceAccount with a namespaced Role, a volume for its
 * Pulumi state, and the executors themselves through the same component the k8s executor's stacks use.
 * The k8s executor gets the operator's policy: the images and cmd strings callers may deploy, and its budgets.
 * It registers this project's BlueprintDefinition (kind ExecutorDeployment, the k8s executor as handler) in the colony
 * with the colony owner key, through a dynamic resource (blueprint-definition.ts).
 * Configuration reference: README, "Running on a real cluster".
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { executorDeploymentDefinition } from "../src/executors/k8s/blueprint/definition.js";
import { parseQuantity, QUANTITY } from "../src/executors/k8s/validation.js";
import { ExecutorDeployment } from "../src/k8s/component.js";
import { selectorLabels } from "../src/k8s/labels.js";
import { K8S_EXECUTOR_RULES } from "../src/k8s/rbac.js";
import { ColoniesBlueprintDefinition } from "./blueprint-definition.js";

const config = new pulumi.Config();
const namespace = config.get("namespace") ?? "colonyos";
const image = config.require("image");
const colonies = {
  host: config.require("coloniesHost"),
  port: config.getNumber("coloniesPort") ?? 50080,
  tls: config.getBoolean("coloniesTls") ?? false,
  colonyName: config.require("colonyName"),
};
const colonyPrvKey = config.requireSecret("colonyPrvKey");
// The k8s executor's executor type: the handler of the blueprint definition registered below.
const k8sExecutorType = config.get("k8sExecutorType") ?? "k8s";
// Where the machine running `pulumi up` reaches the Colonies server (the pods use coloniesHost/coloniesPort).
const coloniesApi = {
  host: config.get("coloniesApiHost") ?? colonies.host,
  port: config.getNumber("coloniesApiPort") ?? colonies.port,
  tls: colonies.tls,
};
const registerDefinition = config.getBoolean("blueprintDefinition") ?? true;
const definitionName = config.get("blueprintDefinitionName") ?? "executor-deployment";
const labels = { "app.kubernetes.io/part-of": "colonyos", "app.kubernetes.io/managed-by": "pulumi" };
// Volumes of WaitForFirstConsumer storage classes stay Pending until a pod uses them: do not wait for them.
const volumeAnnotations = { "pulumi.com/skipAwait": "true" };

/** A Kubernetes quantity from the config, checked now (before anything is planned). */
function quantity(key: string, fallback: string): string {
  const text = config.get(key) ?? fallback;
  if (!QUANTITY.test(text) || !((parseQuantity(text) ?? 0) > 0)) {
    throw new Error(
      `config ${key}: "${text}" is not a positive Kubernetes quantity (e.g. 500m, 2, 512Mi, 8Gi)`,
    );
  }
  return text;
}
const amount = (text: string) => parseQuantity(text) ?? 0;
const smaller = (a: string, b: string) => (amount(a) <= amount(b) ? a : b);
function count(key: string): number | undefined {
  const n = config.getNumber(key);
  if (n !== undefined && !(Number.isInteger(n) && n >= 0))
    throw new Error(`config ${key}: ${n} is not a count`);
  return n;
}
/** A count of seconds from the config as the k8s executor's variable `name`, when set. */
function seconds(key: string, name: string): Record<string, string> {
  const n = count(key);
  return n === undefined ? {} : { [name]: String(n) };
}
const list = (text: string) =>
  text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);

// What the k8s executor lets callers deploy (K8S_ALLOWED_IMAGES, K8S_ALLOWED_CMDS: nothing unless listed): the
// image installed here plus the operator's extra patterns, and cmd strings, which become the arguments of the
// image's entry point `colonyos-executor` (`sleep` runs sleep executors). Its budgets (K8S_MAX_*).
const allowedImages = [...new Set([image, ...list(config.get("allowedImages") ?? "")])];
const allowedCmds = list(config.get("allowedCmds") ?? "sleep");
// Secrets a deploy may reference (secretenv, imagepullsecret) through profiles that bind each to images and cmds,
// with the env names allowed beside it (K8S_PROFILES; none unless given), under an optional ceiling
// (K8S_ALLOWED_SECRETS); env names callers may set for any image (K8S_ALLOWED_ENV), executor types besides a
// deployment's own name (K8S_ALLOWED_EXECUTOR_TYPES), taint keys they may tolerate (K8S_ALLOWED_TOLERATIONS).
const allowedSecrets = list(config.get("allowedSecrets") ?? "");
const profiles = config.getObject<Record<string, unknown>>("profiles") ?? {};
const allowedEnv = list(config.get("allowedEnv") ?? "");
const allowedExecutorTypes = list(config.get("allowedExecutorTypes") ?? "");
const allowedTolerations = list(config.get("allowedTolerations") ?? "");
// Where infra's own executors run (a node pool, tainted nodes): their pods' nodeSelector and tolerations.
type Toleration = { key: string; operator: "Equal" | "Exists"; value?: string; effect?: string };
const placement = {
  nodeSelector: config.getObject<Record<string, string>>("nodeSelector"),
  tolerations: config.getObject<Toleration[]>("tolerations")?.map((t) => {
    if (typeof t?.key !== "string" || !["Equal", "Exists"].includes(t.operator))
      throw new Error(`config tolerations: ${JSON.stringify(t)} needs a key and operator Equal or Exists`);
    return t;
  }),
};
const maxDeployments = count("maxDeployments");
const maxContainers = count("maxContainers");
// The largest container in the namespace: the LimitRange's max, and the k8s executor's own check (K8S_MAX_CPU,
// K8S_MAX_MEMORY), always both from here so that they agree.
const maxCpu = quantity("maxCpu", "4");
const maxMemory = quantity("maxMemory", "8Gi");
// Containers that name no resources get these (LimitRange); the quota needs requests and a memory limit on all.
const containerDefaults = {
  request: { cpu: smaller("100m", maxCpu), memory: smaller("128Mi", maxMemory) },
  limit: { cpu: maxCpu, memory: smaller("256Mi", maxMemory) },
};
const quota = {
  pods: count("quotaPods") ?? 200,
  cpu: quantity("quotaCpu", "16"),
  memory: quantity("quotaMemory", "32Gi"),
};

// The executors infra runs itself, and a check that they fit the LimitRange and the quota, with room for a
// rolling update's extra pods: otherwise `pulumi up` would wait for pods that admission keeps refusing.
const k8sReplicas = count("k8sExecutorReplicas") ?? 1;
// Pulumi updates one k8s executor runs at once (K8S_STACK_CONCURRENCY), and the processes it takes at once
// (EXECUTOR_CONCURRENCY: more than the updates, so that queued operations on one name coalesce).
const k8sStackConcurrency = count("k8sStackConcurrency") ?? 4;
const k8sConcurrency = count("k8sExecutorConcurrency") ?? 2 * k8sStackConcurrency;
// Its memory, from figures measured with `npm run bench:k8s` (README): the executor itself peaks at ~420 MB,
// and each concurrent update adds a pulumi engine and a Kubernetes provider, ~240 MB together. Rounded up to
// 512Mi + 256Mi per update, so that full load does not end in an OOM kill (the default is 1536Mi for 4).
const k8sResources = {
  cpu: quantity("k8sExecutorCpu", "250m"),
  memory: quantity("k8sExecutorMemory", `${512 + 256 * k8sStackConcurrency}Mi`),
};
// Default state backend: a file backend on a ReadWriteOnce volume (one k8s executor, Recreate strategy).
// Several replicas need a backend they share (postgres://, s3://, ...): they take turns on each deployment name
// through Kubernetes Leases, roll one pod at a time and keep one up through voluntary disruptions.
const stateBackend = config.getSecret("k8sStateBackend");
const sharedBackend = stateBackend !== undefined;
if (k8sReplicas > 1 && !sharedBackend) {
  throw new Error(
    `config k8sExecutorReplicas: ${k8sReplicas} replicas need a state backend they share; set k8sStateBackend (secret) to a postgres:// or s3:// URL (the default file backend lives on one pod's volume)`,
  );
}
const k8sPods = k8sReplicas;
// What encrypts the secrets in the k8s executor's stacks: the passphrase (k8sPulumiPassphrase), or a key manager's
// URL, with the environment its keeper reads taken from Secrets of the namespace the operator made (workload
// identity needs none): k8sStateEncryptionEnv maps each variable to "secret/key".
const secretsProvider = config.get("k8sStateEncryption") ?? "passphrase";
if (!/^(passphrase|(awskms|gcpkms|azurekeyvault|hashivault):\/\/\S+)$/.test(secretsProvider)) {
  throw new Error(
    `config k8sStateEncryption: ${JSON.stringify(secretsProvider)} is not passphrase or a URL of awskms://, gcpkms://, azurekeyvault:// or hashivault://`,
  );
}
const keyManagerEnv = Object.entries(
  config.getObject<Record<string, string>>("k8sStateEncryptionEnv") ?? {},
).map(([name, ref]) => {
  const [secret, key, ...rest] = String(ref).split("/");
  if (!/^(AWS|GOOGLE|AZURE|VAULT)_[A-Z0-9_]+$/.test(name) || !secret || !key || rest.length > 0) {
    throw new Error(
      `config k8sStateEncryptionEnv.${name}: needs an AWS_*, GOOGLE_*, AZURE_* or VAULT_* variable set to "secret/key" (got ${JSON.stringify(ref)})`,
    );
  }
  return { name, secret, key };
});
const passphrase =
  secretsProvider === "passphrase"
    ? config.requireSecret("k8sPulumiPassphrase")
    : config.getSecret("k8sPulumiPassphrase");
const sleepReplicas = config.getNumber("sleepReplicas") ?? 0;
const sleepExecutorsPerPod = config.getNumber("sleepExecutorsPerPod") ?? 1;
const backup = config.getObject<{
  database: { host: string; port?: number; name: string; user: string };
  target?: "dir" | "s3";
  keep?: number;
  s3?: { endpoint?: string; region?: string; bucket: string; prefix?: string; pathStyle?: boolean };
  volumeSize?: string;
  /** Per-container request (and, for memory, limit); the namespace's defaults when absent. */
  cpu?: string;
  memory?: string;
}>("backup");
const backupTarget = backup?.target ?? "dir";
checkFits([
  {
    what: "the k8s executor",
    config: "k8sExecutorCpu/Memory",
    pods: k8sPods,
    containers: 1,
    ...k8sResources,
    rolling: sharedBackend,
  },
  {
    what: "the sleep executors",
    config: "",
    pods: sleepReplicas,
    containers: sleepExecutorsPerPod,
    rolling: true,
  },
  ...(backup
    ? [
        {
          what: "the backup executor",
          config: "backup.cpu/memory",
          pods: 1,
          containers: 1,
          cpu: backup.cpu,
          memory: backup.memory,
          rolling: backupTarget !== "dir",
        },
      ]
    : []),
]);

function checkFits(
  shapes: {
    what: string;
    config: string;
    pods: number;
    containers: number;
    cpu?: string;
    memory?: string;
    rolling: boolean;
  }[],
): void {
  const problems: string[] = [];
  const total = { pods: 0, cpu: 0, memory: 0, memoryLimit: 0 };
  for (const shape of shapes) {
    for (const [resource, text, max, maxKey] of [
      ["cpu", shape.cpu, maxCpu, "maxCpu"],
      ["memory", shape.memory, maxMemory, "maxMemory"],
    ] as const) {
      if (text !== undefined && amount(text) > amount(max)) {
        problems.push(
          `${shape.what} asks for ${resource} ${text} (${shape.config}), more than ${maxKey} (${max}) allows a container`,
        );
      }
    }
    // A rolling update adds up to 25% (rounded up) new pods before old ones go (Deployment's default maxSurge).
    const pods = shape.pods + (shape.rolling ? Math.ceil(shape.pods / 4) : 0);
    const containers = pods * shape.containers;
    total.pods += pods;
    total.cpu += containers * amount(shape.cpu ?? containerDefaults.request.cpu);
    total.memory += containers * amount(shape.memory ?? containerDefaults.request.memory);
    total.memoryLimit += containers * amount(shape.memory ?? containerDefaults.limit.memory);
  }
  if (total.pods > quota.pods)
    problems.push(
      `infra's own executors need ${total.pods} pods (with a rolling update's extra ones), more than quotaPods (${quota.pods})`,
    );
  if (total.cpu > amount(quota.cpu))
    problems.push(
      `infra's own executors request ${total.cpu} cpu (with a rolling update's extra pods), more than quotaCpu (${quota.cpu})`,
    );
  const gi = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)}Gi`;
  if (Math.max(total.memory, total.memoryLimit) > amount(quota.memory)) {
    problems.push(
      `infra's own executors need ${gi(Math.max(total.memory, total.memoryLimit))} of memory (limits, with a rolling update's extra pods), more than quotaMemory (${quota.memory})`,
    );
  }
  if (problems.length)
    throw new Error(`the configuration does not fit the namespace's limits:\n  ${problems.join("\n  ")}`);
}

// Pod Security Admission: the namespace infra creates enforces the `restricted` level (the component's pods run
// as non-root, without privilege escalation or capabilities, with the RuntimeDefault seccomp profile); warn and
// audit say the same to anyone applying pods by hand. A namespace brought by the operator is theirs to label.
const podSecurityLabels = Object.fromEntries(
  ["enforce", "warn", "audit"].flatMap((mode) => [
    [`pod-security.kubernetes.io/${mode}`, "restricted"],
    [`pod-security.kubernetes.io/${mode}-version`, "latest"],
  ]),
);
const ns =
  config.getBoolean("createNamespace") !== false
    ? new k8s.core.v1.Namespace("namespace", {
        metadata: { name: namespace, labels: { ...labels, ...podSecurityLabels } },
      })
    : undefined;
const opts = { dependsOn: ns ? [ns] : [] };

// Bounds of the namespace, whoever deploys into it (infra, the k8s executor's stacks, anyone else).
const limitRange = new k8s.core.v1.LimitRange(
  "executors",
  {
    metadata: { name: "colonyos-executors", namespace, labels },
    spec: {
      limits: [
        {
          type: "Container",
          defaultRequest: containerDefaults.request,
          default: containerDefaults.limit,
          max: { cpu: maxCpu, memory: maxMemory },
        },
      ],
    },
  },
  opts,
);
const resourceQuota = new k8s.core.v1.ResourceQuota(
  "executors",
  {
    metadata: { name: "colonyos-executors", namespace, labels },
    spec: {
      hard: {
        pods: String(quota.pods),
        "requests.cpu": quota.cpu,
        "requests.memory": quota.memory,
        "limits.memory": quota.memory,
      },
    },
  },
  // The defaults first: a pod admitted before them would lack the requests the quota insists on.
  { dependsOn: [...opts.dependsOn, limitRange] },
);
// The executors' pods come after both, so that every one of them is defaulted and counted.
const podOpts = { dependsOn: [...opts.dependsOn, limitRange, resourceQuota] };

// The k8s executor: ServiceAccount, namespaced Role, its state volume and itself.
const serviceAccount = new k8s.core.v1.ServiceAccount(
  "k8s-executor",
  { metadata: { name: "colonyos-k8s-executor", namespace, labels } },
  opts,
);
const role = new k8s.rbac.v1.Role(
  "k8s-executor",
  {
    metadata: { name: "colonyos-k8s-executor", namespace, labels },
    rules: K8S_EXECUTOR_RULES.map((r) => ({ ...r })),
  },
  opts,
);
new k8s.rbac.v1.RoleBinding(
  "k8s-executor",
  {
    metadata: { name: "colonyos-k8s-executor", namespace, labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
    subjects: [{ kind: "ServiceAccount", name: serviceAccount.metadata.name, namespace }],
  },
  opts,
);

const stateVolume = stateBackend
  ? undefined
  : new k8s.core.v1.PersistentVolumeClaim(
      "k8s-executor-state",
      {
        metadata: { name: "colonyos-k8s-executor-state", namespace, labels, annotations: volumeAnnotations },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: config.get("storageClass"),
          resources: { requests: { storage: config.get("k8sStateSize") ?? "1Gi" } },
        },
      },
      opts,
    );

if (k8sPods > 1) {
  // Voluntary disruptions (node drains) take one replica at a time: the others keep serving and take over its
  // turns once its Lease expires.
  new k8s.policy.v1.PodDisruptionBudget(
    "k8s-executor",
    {
      metadata: { name: "colonyos-k8s-executor", namespace, labels },
      spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels("k8s-executor") } },
    },
    opts,
  );
}

const k8sExecutor =
  k8sPods > 0
    ? new ExecutorDeployment(
        "k8s-executor",
        {
          name: "k8s-executor",
          ...placement,
          namespace,
          pods: k8sPods,
          executorsPerPod: 1,
          image,
          executorType: k8sExecutorType,
          colonies,
          colonyPrvKey,
          args: ["k8s"],
          serviceAccountName: serviceAccount.metadata.name,
          httpPort: 9464,
          cpu: k8sResources.cpu,
          memory: k8sResources.memory,
          // A new replica is ready before an old one goes.
          ...(sharedBackend ? { rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } : {}),
          env: {
            K8S_NAMESPACE: namespace,
            K8S_DATA_DIR: config.get("k8sDataDir") ?? "/data",
            EXECUTOR_CONCURRENCY: String(k8sConcurrency),
            K8S_STACK_CONCURRENCY: String(k8sStackConcurrency),
            K8S_ALLOWED_IMAGES: allowedImages.join(","),
            K8S_ALLOWED_CMDS: allowedCmds.join(","),
            ...(allowedSecrets.length ? { K8S_ALLOWED_SECRETS: allowedSecrets.join(",") } : {}),
            ...(Object.keys(profiles).length ? { K8S_PROFILES: JSON.stringify(profiles) } : {}),
            ...(allowedEnv.length ? { K8S_ALLOWED_ENV: allowedEnv.join(",") } : {}),
            ...(allowedExecutorTypes.length
              ? { K8S_ALLOWED_EXECUTOR_TYPES: allowedExecutorTypes.join(",") }
              : {}),
            ...(allowedTolerations.length ? { K8S_ALLOWED_TOLERATIONS: allowedTolerations.join(",") } : {}),
            // The image installed here is built on this runtime: its deployments' readiness means registered.
            K8S_RUNTIME_IMAGES: image,
            ...(maxDeployments !== undefined ? { K8S_MAX_DEPLOYMENTS: String(maxDeployments) } : {}),
            ...(maxContainers !== undefined ? { K8S_MAX_CONTAINERS: String(maxContainers) } : {}),
            K8S_MAX_CPU: maxCpu,
            K8S_MAX_MEMORY: maxMemory,
            ...(config.get("childImagePullPolicy")
              ? { K8S_IMAGE_PULL_POLICY: config.require("childImagePullPolicy") }
              : {}),
            ...(secretsProvider !== "passphrase" ? { K8S_PULUMI_SECRETS_PROVIDER: secretsProvider } : {}),
            // The autoscaler's and the drift check's periods (one replica runs each).
            ...seconds("autoscaleInterval", "K8S_AUTOSCALE_INTERVAL"),
            ...seconds("driftInterval", "K8S_DRIFT_INTERVAL"),
            ...(config.getBoolean("driftRemediate") !== undefined
              ? { K8S_DRIFT_REMEDIATE: String(config.getBoolean("driftRemediate")) }
              : {}),
          },
          secretEnv: {
            ...(passphrase ? { K8S_PULUMI_PASSPHRASE: passphrase } : {}),
            ...(stateBackend ? { K8S_PULUMI_BACKEND_URL: stateBackend } : {}),
          },
          ...(keyManagerEnv.length ? { secretRefs: keyManagerEnv } : {}),
          dataVolume: stateVolume ? { claimName: stateVolume.metadata.name, mountPath: "/data" } : undefined,
        },
        podOpts,
      )
    : undefined;

// Optional sleep executors (tests and load generation).
const sleepExecutors =
  sleepReplicas > 0
    ? new ExecutorDeployment(
        "sleep-executors",
        {
          name: "sleep-executors",
          ...placement,
          namespace,
          pods: sleepReplicas,
          executorsPerPod: sleepExecutorsPerPod,
          image,
          executorType: "sleep",
          colonies,
          colonyPrvKey,
          args: ["sleep"],
        },
        podOpts,
      )
    : undefined;

// Optional backup executor.
let backupExecutor: ExecutorDeployment | undefined;
if (backup) {
  const target = backupTarget;
  const backupVolume =
    target === "dir"
      ? new k8s.core.v1.PersistentVolumeClaim(
          "backups",
          {
            metadata: { name: "colonyos-backups", namespace, labels, annotations: volumeAnnotations },
            spec: {
              accessModes: ["ReadWriteOnce"],
              storageClassName: config.get("storageClass"),
              resources: { requests: { storage: backup.volumeSize ?? "10Gi" } },
            },
          },
          opts,
        )
      : undefined;
  backupExecutor = new ExecutorDeployment(
    "backup-executor",
    {
      name: "backup-executor",
      ...placement,
      namespace,
      pods: 1,
      executorsPerPod: 1,
      image,
      executorType: config.get("backupExecutorType") ?? "backup",
      colonies,
      colonyPrvKey,
      args: ["backup"],
      httpPort: 9464,
      cpu: backup.cpu,
      memory: backup.memory,
      env: {
        PGHOST: backup.database.host,
        PGPORT: String(backup.database.port ?? 5432),
        PGDATABASE: backup.database.name,
        PGUSER: backup.database.user,
        BACKUP_TARGET: target,
        ...(backup.keep !== undefined ? { BACKUP_KEEP: String(backup.keep) } : {}),
        ...(target === "dir" ? { BACKUP_DIR: "/backups" } : {}),
        ...(backup.s3
          ? {
              AWS_S3_BUCKET: backup.s3.bucket,
              ...(backup.s3.endpoint ? { AWS_S3_ENDPOINT: backup.s3.endpoint } : {}),
              ...(backup.s3.region ? { AWS_S3_REGION: backup.s3.region } : {}),
              ...(backup.s3.prefix ? { AWS_S3_PREFIX: backup.s3.prefix } : {}),
              ...(backup.s3.pathStyle ? { AWS_S3_FORCE_PATH_STYLE: "true" } : {}),
            }
          : {}),
      },
      secretEnv: {
        PGPASSWORD: config.requireSecret("databasePassword"),
        ...(target === "s3"
          ? {
              AWS_ACCESS_KEY_ID: config.requireSecret("s3AccessKey"),
              AWS_SECRET_ACCESS_KEY: config.requireSecret("s3SecretKey"),
            }
          : {}),
      },
      dataVolume: backupVolume ? { claimName: backupVolume.metadata.name, mountPath: "/backups" } : undefined,
    },
    podOpts,
  );
}

// This project's BlueprintDefinition (kind ExecutorDeployment), with the k8s executor as its handler, registered in
// the colony with the colony owner key: what lets users `colonies blueprint add` an ExecutorDeployment.
const blueprintDefinition = registerDefinition
  ? new ColoniesBlueprintDefinition("blueprint-definition", {
      server: coloniesApi,
      colonyPrvKey,
      definition: (() => {
        const definition = executorDeploymentDefinition(k8sExecutorType, definitionName);
        return { ...definition, metadata: { ...definition.metadata, colonyname: colonies.colonyName } };
      })(),
    })
  : undefined;

export const outputs = {
  namespace,
  serviceAccount: serviceAccount.metadata.name,
  k8sExecutor: k8sExecutor?.deploymentName,
  k8sStateBackend: stateBackend
    ? "[secret]"
    : "file:///data/state (PersistentVolumeClaim colonyos-k8s-executor-state)",
  k8sExecutorReplicas: k8sPods,
  k8sExecutorResources: {
    ...k8sResources,
    stackConcurrency: k8sStackConcurrency,
    concurrency: k8sConcurrency,
  },
  sleepExecutors: sleepExecutors?.deploymentName,
  backupExecutor: backupExecutor?.deploymentName,
  // The operator's policy, as the k8s executor enforces it, and the namespace's bounds.
  policy: {
    allowedImages,
    allowedCmds,
    allowedSecrets,
    profiles,
    allowedEnv,
    allowedExecutorTypes,
    allowedTolerations,
    maxDeployments: maxDeployments ?? "the k8s executor's default",
    maxContainers: maxContainers ?? "the k8s executor's default",
    maxCpuPerContainer: maxCpu,
    maxMemoryPerContainer: maxMemory,
    podSecurity: ns
      ? `restricted (enforced on namespace ${namespace})`
      : `not managed here: label namespace ${namespace} pod-security.kubernetes.io/enforce=restricted`,
    quota,
    containerDefaults,
  },
  blueprintDefinition: blueprintDefinition
    ? {
        name: definitionName,
        kind: blueprintDefinition.definition.spec.names.kind,
        handler: blueprintDefinition.definition.spec.handler.executorType,
        registeredAt: `${coloniesApi.tls ? "https" : "http"}://${coloniesApi.host}:${coloniesApi.port}`,
      }
    : "not registered (blueprintDefinition: false)",
  tryIt: `colonies function exec --func get_deployments --targettype ${k8sExecutorType} --wait --out`,
};
