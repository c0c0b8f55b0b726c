/**
 * Bootstrap: `pulumi up` puts the executors into a cluster; `pulumi preview` is the dry run.
 * It creates the namespace (optional), the k8s executor's ServiceAccount with a namespaced Role, a volume for its
 * Pulumi state, and the executors themselves through the same component the k8s executor's stacks use.
 * Configuration reference: README, "Running on a real cluster".
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ExecutorDeployment } from "../src/k8s/component.js";
import { K8S_EXECUTOR_RULES } from "../src/k8s/rbac.js";

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
const labels = { "app.kubernetes.io/part-of": "colonyos", "app.kubernetes.io/managed-by": "pulumi" };
// Volumes of WaitForFirstConsumer storage classes stay Pending until a pod uses them: do not wait for them.
const volumeAnnotations = { "pulumi.com/skipAwait": "true" };

const ns =
  config.getBoolean("createNamespace") !== false
    ? new k8s.core.v1.Namespace("namespace", { metadata: { name: namespace, labels } })
    : undefined;
const opts = { dependsOn: ns ? [ns] : [] };

// The k8s executor: ServiceAccount, namespaced Role, its state volume and itself.
const k8sReplicas = config.getNumber("k8sExecutorReplicas") ?? 1;
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

// Default state backend: a file backend on a ReadWriteOnce volume (one k8s executor, Recreate strategy).
// Any other Pulumi backend (s3://, postgres://, ...) can be given instead and then allows several replicas.
const stateBackend = config.getSecret("k8sStateBackend");
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

const k8sExecutor =
  k8sReplicas > 0
    ? new ExecutorDeployment(
        "k8s-executor",
        {
          name: "k8s-executor",
          namespace,
          pods: stateVolume ? Math.min(k8sReplicas, 1) : k8sReplicas,
          executorsPerPod: 1,
          image,
          executorType: config.get("k8sExecutorType") ?? "k8s",
          colonies,
          colonyPrvKey,
          args: ["k8s"],
          serviceAccountName: serviceAccount.metadata.name,
          httpPort: 9464,
          cpu: config.get("k8sExecutorCpu") ?? "250m",
          memory: config.get("k8sExecutorMemory") ?? "1Gi",
          env: {
            K8S_NAMESPACE: namespace,
            K8S_DATA_DIR: config.get("k8sDataDir") ?? "/data",
            EXECUTOR_CONCURRENCY: String(config.getNumber("k8sExecutorConcurrency") ?? 4),
            ...(config.get("childImagePullPolicy")
              ? { K8S_IMAGE_PULL_POLICY: config.require("childImagePullPolicy") }
              : {}),
          },
          secretEnv: {
            K8S_PULUMI_PASSPHRASE: config.requireSecret("k8sPulumiPassphrase"),
            ...(stateBackend ? { K8S_PULUMI_BACKEND_URL: stateBackend } : {}),
          },
          dataVolume: stateVolume ? { claimName: stateVolume.metadata.name, mountPath: "/data" } : undefined,
        },
        opts,
      )
    : undefined;

// Optional sleep executors (tests and load generation).
const sleepReplicas = config.getNumber("sleepReplicas") ?? 0;
const sleepExecutors =
  sleepReplicas > 0
    ? new ExecutorDeployment(
        "sleep-executors",
        {
          name: "sleep-executors",
          namespace,
          pods: sleepReplicas,
          executorsPerPod: config.getNumber("sleepExecutorsPerPod") ?? 1,
          image,
          executorType: "sleep",
          colonies,
          colonyPrvKey,
          args: ["sleep"],
        },
        opts,
      )
    : undefined;

// Optional backup executor.
const backup = config.getObject<{
  database: { host: string; port?: number; name: string; user: string };
  target?: "dir" | "s3";
  keep?: number;
  s3?: { endpoint?: string; region?: string; bucket: string; prefix?: string; pathStyle?: boolean };
  volumeSize?: string;
}>("backup");
let backupExecutor: ExecutorDeployment | undefined;
if (backup) {
  const target = backup.target ?? "dir";
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
      namespace,
      pods: 1,
      executorsPerPod: 1,
      image,
      executorType: config.get("backupExecutorType") ?? "backup",
      colonies,
      colonyPrvKey,
      args: ["backup"],
      httpPort: 9464,
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
    opts,
  );
}

export const outputs = {
  namespace,
  serviceAccount: serviceAccount.metadata.name,
  k8sExecutor: k8sExecutor?.deploymentName,
  k8sStateBackend: stateBackend
    ? "[secret]"
    : "file:///data/state (PersistentVolumeClaim colonyos-k8s-executor-state)",
  sleepExecutors: sleepExecutors?.deploymentName,
  backupExecutor: backupExecutor?.deploymentName,
  tryIt: `colonies function exec --func get_deployments --targettype ${config.get("k8sExecutorType") ?? "k8s"} --wait --out`,
};
