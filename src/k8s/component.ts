/**
 * One deployment of ColonyOS executors on Kubernetes, as a Pulumi component. The same definition is used by the
 * k8s executor's stacks (one per deployment name) and by the bootstrap program in infra/.
 *
 * It owns a Secret with the private keys (Pulumi secrets, referenced from the pods, never in the pod spec) and
 * a Deployment of `pods` replicas, each with `executorsPerPod` executor containers named executor-0..N-1.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { deploymentLabels, type StackOwner, selectorLabels } from "./labels.js";

export interface ColoniesAddress {
  host: string;
  port: number;
  tls: boolean;
  colonyName: string;
}

export interface ExecutorDeploymentArgs {
  /** Deployment name (a DNS-1123 label); also the `instance` label. */
  name: string;
  /**
   * The k8s executor's stack that owns this deployment (labels say so, and its pods become atoms the executor
   * may act on). Absent for the bootstrap's own executors, which the k8s executor never sees.
   */
  owner?: StackOwner;
  namespace: pulumi.Input<string>;
  pods: number;
  executorsPerPod: number;
  image: string;
  executorType: string;
  /** Where the executors in the pods reach Colonies (may differ from the k8s executor's own address). */
  colonies: ColoniesAddress;
  /** Colony owner key: the executors register themselves with it (only for images the operator trusts). */
  colonyPrvKey?: pulumi.Input<string>;
  /** The key of a registered executor identity, shared by every container (the runtime's pre-registered mode). */
  executorPrvKey?: pulumi.Input<string>;
  /** An in-memory emptyDir mounted at /ramdisk in every container. */
  ramdisk?: boolean;
  ramdiskSizeLimit?: string;
  /** Per-container requests (= limits for memory unless memoryLimit says otherwise). */
  cpu?: string;
  memory?: string;
  cpuLimit?: string;
  memoryLimit?: string;
  /** An extended resource limit per container, e.g. { resource: "nvidia.com/gpu", count: 1 }. */
  gpu?: { resource: string; count: number };
  /** Environment from keys of existing Secrets, by reference (never values). */
  secretRefs?: readonly { name: string; secret: string; key: string }[];
  /** Secrets with registry credentials for pulling the image. */
  imagePullSecrets?: readonly string[];
  nodeSelector?: Record<string, string>;
  tolerations?: readonly { key: string; operator: "Equal" | "Exists"; value?: string; effect?: string }[];
  /** Extra plain environment for the containers (no secrets here). */
  env?: Record<string, string>;
  /** Extra secret environment (values stored as Pulumi secrets, delivered through the Secret). */
  secretEnv?: Record<string, pulumi.Input<string>>;
  command?: string[];
  args?: string[];
  serviceAccountName?: pulumi.Input<string>;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** How long `pulumi up` waits for the rollout to become ready. */
  rolloutTimeoutSeconds?: number;
  /** Extra labels on the Deployment and its pods. */
  labels?: Record<string, string>;
  /** Annotations on the Deployment itself (not its pods: changing them rolls nothing out). */
  annotations?: Record<string, string>;
  /** How a rollout replaces pods (Kubernetes' default when absent: 25% surge, 25% unavailable). */
  rollingUpdate?: { maxSurge: number; maxUnavailable: number };
  /** A PersistentVolumeClaim mounted in every container; the Deployment then uses the Recreate strategy. */
  dataVolume?: { claimName: pulumi.Input<string>; mountPath: string };
  /**
   * Port of the executors' /healthz, /readyz and /metrics (images built on this project's runtime): sets
   * EXECUTOR_HTTP_PORT and the probes, so that a pod is ready once its executors are registered and polling.
   * Container i of a pod listens on httpPort + i (they share the pod's network).
   */
  httpPort?: number;
}

export const RAMDISK_PATH = "/ramdisk";

/**
 * The stack is the truth for the fields it sets: server-side apply takes them over from whoever changed them
 * since (a `kubectl scale`, a `kubectl set image`), instead of failing with a field-manager conflict.
 */
const FORCE_APPLY = { "pulumi.com/patchForce": "true" };

export class ExecutorDeployment extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly secret: k8s.core.v1.Secret;
  readonly deploymentName: pulumi.Output<string>;
  readonly namespace: pulumi.Output<string>;
  readonly replicas: pulumi.Output<number>;

  constructor(name: string, args: ExecutorDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("colonyos:executors:ExecutorDeployment", name, {}, opts);
    const labels = { ...(args.labels ?? {}), ...deploymentLabels(args.name, args.executorType, args.owner) };
    const secretData: Record<string, pulumi.Input<string>> = { ...(args.secretEnv ?? {}) };
    if (args.colonyPrvKey) secretData.COLONIES_COLONY_PRVKEY = args.colonyPrvKey;
    if (args.executorPrvKey) secretData.COLONIES_PRVKEY = args.executorPrvKey;

    this.secret = new k8s.core.v1.Secret(
      `${name}-keys`,
      {
        metadata: { name: `${args.name}-keys`, namespace: args.namespace, labels, annotations: FORCE_APPLY },
        type: "Opaque",
        stringData: pulumi.secret(secretData),
      },
      { parent: this },
    );

    const port = (index: number) => (args.httpPort ? args.httpPort + index : 0);
    const portName = (index: number) => (args.executorsPerPod === 1 ? "http" : `http-${index}`);
    const plainEnv = (index: number): k8s.types.input.core.v1.EnvVar[] => [
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      // The original executors' name for it.
      { name: "PODNAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      { name: "COLONIES_SERVER_HOST", value: args.colonies.host },
      { name: "COLONIES_SERVER_PORT", value: String(args.colonies.port) },
      { name: "COLONIES_TLS", value: String(args.colonies.tls) },
      { name: "COLONIES_COLONY_NAME", value: args.colonies.colonyName },
      { name: "COLONIES_EXECUTOR_TYPE", value: args.executorType },
      // Unique per container and readable: the pod name (from the downward API) and the container index.
      { name: "COLONIES_EXECUTOR_NAME", value: `$(POD_NAME)-executor-${index}` },
      ...(args.httpPort ? [{ name: "EXECUTOR_HTTP_PORT", value: String(port(index)) }] : []),
      ...Object.entries(args.env ?? {}).map(([envName, value]) => ({ name: envName, value })),
    ];
    const probe = (path: string, index: number, periodSeconds: number) => ({
      httpGet: { path, port: portName(index) },
      periodSeconds,
      failureThreshold: 3,
    });
    const secretEnv: k8s.types.input.core.v1.EnvVar[] = [
      ...(args.secretRefs ?? []).map((ref) => ({
        name: ref.name,
        valueFrom: { secretKeyRef: { name: ref.secret, key: ref.key } },
      })),
      ...Object.keys(secretData)
        .sort()
        .map((key) => ({ name: key, valueFrom: { secretKeyRef: { name: `${args.name}-keys`, key } } })),
    ];

    const requests = {
      ...(args.cpu ? { cpu: args.cpu } : {}),
      ...(args.memory ? { memory: args.memory } : {}),
    };
    const limits = {
      ...(args.cpuLimit ? { cpu: args.cpuLimit } : {}),
      ...((args.memoryLimit ?? args.memory) ? { memory: args.memoryLimit ?? args.memory } : {}),
      ...(args.gpu ? { [args.gpu.resource]: String(args.gpu.count) } : {}),
    };
    const resources =
      Object.keys(requests).length + Object.keys(limits).length > 0
        ? {
            ...(Object.keys(requests).length ? { requests } : {}),
            ...(Object.keys(limits).length ? { limits } : {}),
          }
        : undefined;

    const containers: k8s.types.input.core.v1.Container[] = Array.from(
      { length: args.executorsPerPod },
      (_, i) => ({
        name: `executor-${i}`,
        image: args.image,
        imagePullPolicy: args.imagePullPolicy,
        command: args.command,
        args: args.args,
        env: [...plainEnv(i), ...secretEnv],
        resources,
        securityContext: {
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
        },
        volumeMounts: [
          { name: "tmp", mountPath: "/tmp" },
          ...(args.ramdisk ? [{ name: "ramdisk", mountPath: RAMDISK_PATH }] : []),
          ...(args.dataVolume ? [{ name: "data", mountPath: args.dataVolume.mountPath }] : []),
        ],
        ...(args.httpPort
          ? {
              ports: [{ name: portName(i), containerPort: port(i) }],
              livenessProbe: probe("/healthz", i, 10),
              readinessProbe: probe("/readyz", i, 2),
            }
          : {}),
      }),
    );

    const timeout = `${args.rolloutTimeoutSeconds ?? 300}s`;
    this.deployment = new k8s.apps.v1.Deployment(
      name,
      {
        metadata: {
          name: args.name,
          namespace: args.namespace,
          labels,
          annotations: { ...FORCE_APPLY, ...args.annotations },
        },
        spec: {
          replicas: args.pods,
          ...(args.dataVolume
            ? { strategy: { type: "Recreate" } }
            : args.rollingUpdate
              ? { strategy: { type: "RollingUpdate", rollingUpdate: args.rollingUpdate } }
              : {}),
          selector: { matchLabels: selectorLabels(args.name, args.owner) },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: args.serviceAccountName,
              ...(args.imagePullSecrets?.length
                ? { imagePullSecrets: args.imagePullSecrets.map((name) => ({ name })) }
                : {}),
              ...(args.nodeSelector && Object.keys(args.nodeSelector).length
                ? { nodeSelector: args.nodeSelector }
                : {}),
              ...(args.tolerations?.length ? { tolerations: args.tolerations.map((t) => ({ ...t })) } : {}),
              automountServiceAccountToken: args.serviceAccountName !== undefined,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 65532,
                fsGroup: 65532,
                seccompProfile: { type: "RuntimeDefault" },
              },
              terminationGracePeriodSeconds: 60,
              containers,
              volumes: [
                { name: "tmp", emptyDir: {} },
                ...(args.ramdisk
                  ? [
                      {
                        name: "ramdisk",
                        emptyDir: { medium: "Memory", sizeLimit: args.ramdiskSizeLimit ?? "256Mi" },
                      },
                    ]
                  : []),
                ...(args.dataVolume
                  ? [{ name: "data", persistentVolumeClaim: { claimName: args.dataVolume.claimName } }]
                  : []),
              ],
            },
          },
        },
      },
      { parent: this, dependsOn: [this.secret], customTimeouts: { create: timeout, update: timeout } },
    );

    this.deploymentName = this.deployment.metadata.name;
    this.namespace = this.deployment.metadata.namespace;
    this.replicas = this.deployment.spec.replicas;
    this.registerOutputs({
      deploymentName: this.deploymentName,
      namespace: this.namespace,
      replicas: this.replicas,
    });
  }
}
