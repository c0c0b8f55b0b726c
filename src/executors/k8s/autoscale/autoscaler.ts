/**
 * The autoscaler: one replica's loop (leader of the "autoscaler" role) that sizes every deployment with an
 * autoscale policy from the Colonies queue. Each round lists the managed Deployments (their annotation carries
 * the policy their stack recorded), asks Colonies for the load of each one's executor type, and when the
 * stabilised recommendation differs from the live size, scales through the same stack update as `scale`, in the
 * name's turn (it never fights a running operation, and a user's later scale supersedes it). Every decision is
 * kept in the stack's outputs (get_autoscale shows them), logged, and counted in the metrics.
 */
import type { V1Deployment } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { NameCoordinator } from "../../../k8s/coordination.js";
import type { LeaderRole } from "../../../k8s/lease-names.js";
import { applySpec, inSession, ownContext } from "../apply.js";
import type { K8sDeps } from "../deps.js";
import { LeaderLoop } from "../leader-loop.js";
import { AUTOSCALE_ANNOTATION, recorded } from "../spec.js";
import { type AutoscalePolicy, isAutoscalePolicy, podsFor, Stabilizer, withDecision } from "./policy.js";
import type { QueueLoad } from "./queue-load.js";

export const AUTOSCALER_ROLE: LeaderRole = "autoscaler";
const EXECUTOR_TYPE_LABEL = "colonyos.io/executor-type";

/** What the autoscaler last saw of one deployment: the load, the size it asks for, the live size. */
export interface Seen {
  load: QueueLoad;
  wanted: number;
  pods: number;
}

/** What the autoscaler saw and did, for the metrics. */
export interface AutoscalerView {
  readonly seen: ReadonlyMap<string, Seen>;
  /** Scale decisions applied, by direction. */
  readonly decisions: { up: number; down: number; failed: number };
}

export class Autoscaler implements AutoscalerView {
  readonly seen = new Map<string, Seen>();
  readonly decisions = { up: 0, down: 0, failed: 0 };
  private readonly stabilizers = new Map<string, { policy: string; stabilizer: Stabilizer }>();
  private readonly loop: LeaderLoop;

  constructor(
    private readonly deps: K8sDeps,
    coordinator: NameCoordinator,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.loop = new LeaderLoop({
      role: AUTOSCALER_ROLE,
      intervalMs,
      coordinator,
      logger,
      round: (signal) => this.round(signal),
      // Another replica leads now: what was seen here is not the whole story any more.
      onFollow: () => {
        this.stabilizers.clear();
        this.seen.clear();
      },
    });
  }

  start(): this {
    this.loop.start();
    return this;
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One look at every autoscaled deployment; the ones to resize are resized concurrently. */
  async round(signal: AbortSignal): Promise<void> {
    const deployments = (await this.deps.ownership.deployments()).flatMap((d) => {
      const policy = policyOf(d);
      return policy ? [{ deployment: d, policy }] : [];
    });
    const names = new Set(deployments.map((d) => d.deployment.metadata?.name as string));
    for (const name of this.stabilizers.keys()) if (!names.has(name)) this.stabilizers.delete(name);
    for (const name of this.seen.keys()) if (!names.has(name)) this.seen.delete(name);
    // Settled, not raced: the round ends only when every resize has, so rounds never overlap.
    const results = await Promise.allSettled(
      deployments.map(({ deployment, policy }) => this.size(deployment, policy, signal)),
    );
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected" && !signal.aborted) {
        const name = deployments[i]?.deployment.metadata?.name;
        this.logger.warn({ err: result.reason, deployment: name }, "could not size a deployment this round");
      }
    }
  }

  private async size(deployment: V1Deployment, policy: AutoscalePolicy, signal: AbortSignal): Promise<void> {
    const name = deployment.metadata?.name as string;
    const type = deployment.metadata?.labels?.[EXECUTOR_TYPE_LABEL];
    if (!type) return;
    const perPod = deployment.spec?.template.spec?.containers.length ?? 1;
    const pods = deployment.spec?.replicas ?? 1;
    const load = await this.deps.load(type, signal);
    const wanted = podsFor(load.waiting + load.running, policy, perPod);
    this.seen.set(name, { load, wanted, pods });
    const key = JSON.stringify(policy);
    let entry = this.stabilizers.get(name);
    if (entry?.policy !== key) {
      entry = { policy: key, stabilizer: new Stabilizer() };
      this.stabilizers.set(name, entry);
    }
    const target = entry.stabilizer.next(pods, wanted, policy.cooldownSeconds, Date.now());
    if (target === pods) return;
    const reason =
      target > pods
        ? `${load.waiting} waiting and ${load.running} running ${type} processes ask for ${wanted} pod(s)`
        : `for ${policy.cooldownSeconds} s the load asked for at most ${target} pod(s) (now ${load.waiting} waiting, ${load.running} running)`;
    await this.scale(name, pods, target, load, reason, signal);
  }

  private async scale(
    name: string,
    from: number,
    to: number,
    load: QueueLoad,
    reason: string,
    signal: AbortSignal,
  ): Promise<void> {
    const ctx = ownContext(this.logger, "autoscaler", name, signal);
    const { logger } = ctx;
    try {
      const [out] = (await inSession(this.deps, name, ctx, "pods", async (session) => {
        const record = recorded(await session.current());
        // The policy was turned off (or the name undeployed) since the round began.
        if (!record.spec || !record.autoscale) return [{ skipped: true }];
        const decision = { at: new Date().toISOString(), from, to, ...load, reason };
        await applySpec(
          this.deps,
          session,
          {
            fn: "autoscaler",
            spec: { ...record.spec, pods: to },
            preview: false,
            autoscale: withDecision(record.autoscale, decision),
          },
          ctx,
        );
        return [decision];
      })) as [{ skipped?: boolean; superseded?: boolean } | undefined];
      if (out?.skipped || out?.superseded) return;
      this.decisions[to > from ? "up" : "down"]++;
      logger.info({ from, to, ...load, reason }, "autoscaled");
    } catch (error) {
      if (signal.aborted) return;
      this.decisions.failed++;
      logger.warn({ err: error, from, to, reason }, "autoscaling failed; the next round tries again");
    }
  }
}

/** The policy a Deployment's stack put on it, when it is a valid one. */
function policyOf(deployment: V1Deployment): AutoscalePolicy | undefined {
  const text = deployment.metadata?.annotations?.[AUTOSCALE_ANNOTATION];
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isAutoscalePolicy(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
