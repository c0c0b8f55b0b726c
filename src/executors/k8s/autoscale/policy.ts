/**
 * Queue-aware autoscaling, the pure part: a deployment's policy (kept in its stack's outputs), the pods the work
 * in Colonies asks for, and the stabilisation that makes the autoscaler scale up at once and down slowly.
 *
 * The load of a deployment is the number of processes of its executor type that are WAITING plus those RUNNING
 * (a running process occupies an executor: scaling down under it would kill it). One executor absorbs
 * `perExecutor` of them; a pod holds `executorsPerPod` executors.
 */

export interface AutoscalePolicy {
  min: number;
  max: number;
  /** Processes (waiting or running) one executor should absorb. */
  perExecutor: number;
  /** Seconds the load must stay low before the deployment shrinks to what it asked for in that time. */
  cooldownSeconds: number;
}

/** One decision of the autoscaler, as the stack records it. */
export interface AutoscaleDecision {
  at: string;
  from: number;
  to: number;
  waiting: number;
  running: number;
  reason: string;
}

/** What a stack keeps about autoscaling: the policy, and its latest decisions (newest last). */
export interface AutoscaleState {
  policy: AutoscalePolicy;
  decisions: AutoscaleDecision[];
}

/** How many decisions a stack keeps. */
export const DECISIONS_KEPT = 20;
export const DEFAULT_COOLDOWN_SECONDS = 60;

/** The pods that absorb `load` processes, within the policy's bounds. */
export function podsFor(load: number, policy: AutoscalePolicy, executorsPerPod: number): number {
  const wanted = Math.ceil(load / (policy.perExecutor * Math.max(1, executorsPerPod)));
  return Math.min(policy.max, Math.max(policy.min, wanted));
}

/** Whether a stored value is a policy (the stack's outputs and the Deployment's annotation are read back). */
export function isAutoscalePolicy(value: unknown): value is AutoscalePolicy {
  const v = value as Partial<AutoscalePolicy> | null;
  const whole = (n: unknown, low: number) => Number.isInteger(n) && (n as number) >= low;
  return (
    typeof v === "object" &&
    v !== null &&
    whole(v.min, 0) &&
    whole(v.max, 1) &&
    (v.min as number) <= (v.max as number) &&
    whole(v.perExecutor, 1) &&
    whole(v.cooldownSeconds, 0)
  );
}

export function isAutoscaleState(value: unknown): value is AutoscaleState {
  const v = value as Partial<AutoscaleState> | null;
  return typeof v === "object" && v !== null && isAutoscalePolicy(v.policy) && Array.isArray(v.decisions);
}

/** The state with one more decision, keeping the newest DECISIONS_KEPT. */
export function withDecision(state: AutoscaleState, decision: AutoscaleDecision): AutoscaleState {
  return { ...state, decisions: [...state.decisions, decision].slice(-DECISIONS_KEPT) };
}

/**
 * Stabilisation of one deployment's recommendations (the way Kubernetes' HorizontalPodAutoscaler does it): a
 * recommendation above the current size is followed at once; below it, the deployment shrinks only to the
 * highest recommendation of the last `cooldownSeconds`, so a short lull between bursts does not flap it.
 */
export class Stabilizer {
  private history: { at: number; pods: number }[] = [];
  private since?: number;

  /** The size to go to now, given the current size and what the load asks for. */
  next(current: number, recommended: number, cooldownSeconds: number, now: number): number {
    this.since ??= now;
    const windowStart = now - cooldownSeconds * 1000;
    this.history = [...this.history.filter((h) => h.at > windowStart), { at: now, pods: recommended }];
    if (recommended >= current) return recommended;
    // Shrinking waits until a whole cooldown of recommendations has been seen.
    if (now - this.since < cooldownSeconds * 1000) return current;
    return Math.min(current, Math.max(...this.history.map((h) => h.pods)));
  }

  /** Forgets what was seen (the policy changed, or this replica just became the leader). */
  reset(): void {
    this.history = [];
    this.since = undefined;
  }
}
