/**
 * Drift: where the live objects of a deployment differ from what its stack records. A pure comparison of the
 * live Deployment and `<name>-keys` Secret with the recorded spec (what the ExecutorDeployment component makes
 * of it), field by field, in words a user recognises: a `kubectl scale`, an edited image, a deleted Secret.
 * One read of each object, no Pulumi engine: cheap enough for a periodic check of every deployment. Converging
 * is a stack update (reconcile), which also puts back whatever this comparison does not look at.
 */
import type { V1Container } from "@kubernetes/client-node";
import type { K8sConfig } from "../config.js";
import type { LiveObjects } from "../ownership.js";
import type { DeploymentSpec } from "../spec.js";
import { parseQuantity } from "../validation.js";

export interface Drift {
  /** `Deployment/<name>`, `Deployment/<name>/executor-0`, `Secret/<name>-keys`. */
  object: string;
  field: string;
  recorded: unknown;
  live: unknown;
}

/** What the stack's Secret holds (key → value), as the program wrote it. */
export type ExpectedSecret = Record<string, string>;

export function findDrift(
  spec: DeploymentSpec,
  config: Pick<K8sConfig, "defaults" | "gpu">,
  expectedSecret: ExpectedSecret,
  live: LiveObjects,
): Drift[] {
  const drift: Drift[] = [];
  const name = spec.deployment;
  const deploymentObject = `Deployment/${name}`;
  if (!live.deployment) {
    drift.push({ object: deploymentObject, field: "(object)", recorded: "present", live: "deleted" });
  } else {
    const found = live.deployment;
    const differs = (object: string, field: string, recorded: unknown, actual: unknown) => {
      if (!same(recorded, actual)) drift.push({ object, field, recorded, live: actual ?? null });
    };
    differs(deploymentObject, "replicas", spec.pods, found.spec?.replicas ?? 1);
    const pod = found.spec?.template?.spec;
    differs(deploymentObject, "nodeSelector", spec.nodeselector ?? {}, pod?.nodeSelector ?? {});
    differs(
      deploymentObject,
      "imagePullSecrets",
      spec.imagepullsecret ?? [],
      (pod?.imagePullSecrets ?? []).map((s) => s.name),
    );
    const containers = pod?.containers ?? [];
    differs(
      deploymentObject,
      "containers",
      Array.from({ length: spec.executorperpod }, (_, i) => `executor-${i}`),
      containers.map((c) => c.name),
    );
    for (let i = 0; i < spec.executorperpod; i++) {
      const container = containers.find((c) => c.name === `executor-${i}`);
      if (container) compareContainer(spec, config, `${deploymentObject}/executor-${i}`, container, differs);
    }
  }
  const secretObject = `Secret/${name}-keys`;
  if (!live.secret) {
    drift.push({ object: secretObject, field: "(object)", recorded: "present", live: "deleted" });
  } else {
    const data = live.secret.data ?? {};
    for (const [key, value] of Object.entries(expectedSecret)) {
      const actual = data[key] === undefined ? undefined : Buffer.from(data[key], "base64").toString("utf8");
      // Values are secrets: only whether they match is reported.
      if (actual !== value) {
        drift.push({
          object: secretObject,
          field: key,
          recorded: "(secret)",
          live: actual === undefined ? "missing" : "(a different value)",
        });
      }
    }
  }
  return drift;
}

function compareContainer(
  spec: DeploymentSpec,
  config: Pick<K8sConfig, "defaults" | "gpu">,
  object: string,
  container: V1Container,
  differs: (object: string, field: string, recorded: unknown, live: unknown) => void,
): void {
  differs(object, "image", spec.image, container.image);
  differs(object, "args", spec.cmd ?? [], container.args ?? []);
  const env = new Map((container.env ?? []).map((e) => [e.name, e]));
  for (const [key, value] of Object.entries(spec.env ?? {})) {
    differs(object, `env.${key}`, value, env.get(key)?.value);
  }
  for (const ref of spec.secretenv ?? []) {
    const from = env.get(ref.name)?.valueFrom?.secretKeyRef;
    differs(
      object,
      `env.${ref.name}`,
      `${ref.secret}/${ref.key}`,
      from ? `${from.name}/${from.key}` : undefined,
    );
  }
  const memory = spec.memory ?? config.defaults.memory;
  const expected: Record<string, string | undefined> = {
    "requests.cpu": spec.cpu ?? config.defaults.cpu,
    "requests.memory": memory,
    "limits.cpu": spec.cpulimit,
    "limits.memory": spec.memorylimit ?? memory,
    [`limits.${config.gpu.resource}`]: spec.gpu ? String(spec.gpu) : undefined,
  };
  const resources = container.resources ?? {};
  for (const [field, want] of Object.entries(expected)) {
    const [kind, resource] = field.split(".", 2) as ["requests" | "limits", string];
    const actual = resources[kind]?.[resource];
    if (!sameQuantity(want, actual)) differs(object, `resources.${field}`, want ?? null, actual ?? null);
  }
}

function sameQuantity(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a === b || parseQuantity(a) === parseQuantity(b);
}

/** Structural equality of JSON values (object keys in any order). */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/** One line per drifted field, for logs and process logs. */
export function describeDrift(drift: readonly Drift[]): string {
  return drift
    .map(
      (d) => `${d.object} ${d.field}: recorded ${JSON.stringify(d.recorded)}, live ${JSON.stringify(d.live)}`,
    )
    .join("; ");
}
