/**
 * Removes the executor identities this executor registered that no stack records: what a deploy killed between
 * registering an identity and its stack recording it, or an undeploy killed between destroying the stack and
 * removing the identity, left approved in the colony. Each deployment name is swept in its own turn, so that an
 * identity a running deploy just registered (not yet recorded) is never taken for a leftover. Runs once at
 * start-up and then as one replica's loop (K8S_IDENTITY_SWEEP_INTERVAL).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { NameCoordinator } from "../../k8s/coordination.js";
import type { LeaseRole } from "../../k8s/lease-names.js";
import { inSession, ownContext } from "./apply.js";
import type { K8sDeps } from "./deps.js";
import { LeaderLoop } from "./leader-loop.js";
import { recorded } from "./spec.js";

export const SWEEP_ROLE: LeaseRole = "sweep";

export class IdentitySweep {
  /** Identities removed since start (for logs and tests). */
  removed = 0;
  private readonly loop?: LeaderLoop;
  private first?: Promise<void>;

  constructor(
    private readonly deps: K8sDeps,
    coordinator: NameCoordinator,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    if (intervalMs > 0) {
      this.loop = new LeaderLoop({
        role: SWEEP_ROLE,
        intervalMs,
        coordinator,
        logger,
        round: (signal) => this.round(signal),
      });
    }
  }

  /**
   * Sweeps once now, in the background (start-up does not wait for it), retrying until one round completes: the
   * executor may not be registered with Colonies yet, and cannot list the colony's executors until it is. Then
   * leads the loop if it may.
   */
  start(signal: AbortSignal): this {
    this.first = (async () => {
      for (let attempt = 0; !signal.aborted; attempt++) {
        try {
          return await this.round(signal);
        } catch (error) {
          if (signal.aborted) return;
          if (attempt > 0) this.logger.warn({ err: error, attempt }, "the start-up sweep failed; retrying");
          await sleep(Math.min(30_000, 1000 * 2 ** attempt), undefined, { signal }).catch(() => undefined);
        }
      }
    })();
    this.loop?.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.loop?.stop(), this.first]);
  }

  async round(signal: AbortSignal): Promise<void> {
    const registered = await this.deps.identities.registered(signal);
    for (const [name, identities] of registered) {
      if (signal.aborted) return;
      await this.sweep(name, identities, signal).catch((error: unknown) => {
        if (!signal.aborted)
          this.logger.warn({ err: error, deployment: name }, "could not sweep a deployment's identities");
      });
    }
  }

  private async sweep(name: string, identities: string[], signal: AbortSignal): Promise<void> {
    const ctx = ownContext(this.logger, "identity-sweep", name, signal);
    await inSession(this.deps, name, ctx, "none", async (session) => {
      const kept = recorded(await session.current()).identity?.name;
      for (const identity of identities) {
        if (identity === kept) continue;
        if (await this.deps.identities.remove({ name: identity })) {
          this.removed++;
          this.logger.info(
            { deployment: name, executor: identity },
            "removed an executor identity that no stack records (left by an interrupted deploy or undeploy)",
          );
        }
      }
      return [];
    });
  }
}
