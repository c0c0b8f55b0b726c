/**
 * The periodic drift check (K8S_DRIFT_INTERVAL): one replica's loop (leader of the "drift" role) that compares
 * every managed deployment with its stack's record, in the name's turn (never during a running update), logs what
 * drifted and exports it as metrics; with K8S_DRIFT_REMEDIATE=true it converges what drifted through reconcile's
 * stack update.
 */
import type { Logger } from "pino";
import type { NameCoordinator } from "../../../k8s/coordination.js";
import type { LeaderRole } from "../../../k8s/lease-names.js";
import { driftOf, inSession, ownContext } from "../apply.js";
import type { K8sDeps } from "../deps.js";
import { LeaderLoop } from "../leader-loop.js";
import { recorded } from "../spec.js";
import { describeDrift } from "./compare.js";
import { type ReconcileReport, reconcileIn } from "./reconcile.js";

export const DRIFT_ROLE: LeaderRole = "drift";

export interface DriftView {
  /** Drifted fields per deployment at the last check (0: none). */
  readonly drifted: ReadonlyMap<string, number>;
  readonly totals: { checks: number; remediations: number; failures: number };
}

export class DriftCheck implements DriftView {
  readonly drifted = new Map<string, number>();
  readonly totals = { checks: 0, remediations: 0, failures: 0 };
  private readonly loop: LeaderLoop;

  constructor(
    private readonly deps: K8sDeps,
    coordinator: NameCoordinator,
    intervalMs: number,
    private readonly remediate: boolean,
    private readonly logger: Logger,
  ) {
    this.loop = new LeaderLoop({
      role: DRIFT_ROLE,
      intervalMs,
      coordinator,
      logger,
      round: (signal) => this.round(signal),
      onFollow: () => this.drifted.clear(),
    });
  }

  start(): this {
    this.loop.start();
    return this;
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async round(signal: AbortSignal): Promise<void> {
    const names = await this.deps.ownership.deploymentNames();
    for (const name of this.drifted.keys()) if (!names.includes(name)) this.drifted.delete(name);
    // One name at a time: a check is cheap, and a remediation must not take every update slot.
    for (const name of names) {
      if (signal.aborted) return;
      await this.check(name, signal).catch((error: unknown) => {
        if (signal.aborted) return;
        this.totals.failures++;
        this.logger.warn({ err: error, deployment: name }, "the drift check of a deployment failed");
      });
    }
  }

  private async check(name: string, signal: AbortSignal): Promise<void> {
    const ctx = ownContext(this.logger, "drift-check", name, signal);
    const { logger } = ctx;
    this.totals.checks++;
    // The dry check, in the name's turn: it never reads a deployment halfway through an update.
    const [found] = (await inSession(this.deps, name, ctx, "none", async (session) => {
      const record = recorded(await session.current());
      if (!record.spec) return [undefined];
      return [(await driftOf(this.deps, { ...record, spec: record.spec }, signal)).drift];
    })) as [Awaited<ReturnType<typeof driftOf>>["drift"] | undefined];
    if (!found) return;
    this.drifted.set(name, found.length);
    if (found.length === 0) return;
    logger.warn({ drift: found }, `drifted: ${describeDrift(found)}`);
    if (!this.remediate) return;
    const [report] = (await inSession(this.deps, name, ctx, "converge", async (session) => [
      await reconcileIn(this.deps, session, name, false, ctx),
    ])) as [ReconcileReport & { superseded?: boolean }];
    if (report.superseded) return;
    this.totals.remediations++;
    this.drifted.set(name, report.remaining?.length ?? 0);
    logger.info({ changes: report.changes, remaining: report.remaining }, "drift remediated");
  }
}
