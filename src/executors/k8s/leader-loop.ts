/**
 * A periodic job that exactly one replica runs (the autoscaler, the drift check): before each round the replica
 * asks the coordinator whether it leads the job's role; rounds never overlap; stopping aborts the round running.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { NameCoordinator } from "../../k8s/coordination.js";

export interface LeaderLoopOptions {
  role: string;
  intervalMs: number;
  coordinator: NameCoordinator;
  logger: Logger;
  /** One round; `signal` aborts when the loop stops. */
  round(signal: AbortSignal): Promise<void>;
  /** Called when this replica stops leading (state kept for the role is then stale). */
  onFollow?(): void;
}

export class LeaderLoop {
  private readonly stopping = new AbortController();
  private done?: Promise<void>;

  constructor(private readonly options: LeaderLoopOptions) {}

  start(): this {
    this.done = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error(`the ${this.options.role} stopped`));
    await this.done;
  }

  private async run(): Promise<void> {
    const { role, intervalMs, coordinator, logger } = this.options;
    const signal = this.stopping.signal;
    let leading = false;
    while (!signal.aborted) {
      // The first round too waits an interval: the executor registers with Colonies meanwhile.
      await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      try {
        const leads = await coordinator.leads(role);
        if (leading && !leads) this.options.onFollow?.();
        leading = leads;
        if (leads) await this.options.round(signal);
      } catch (error) {
        if (signal.aborted) break;
        logger.warn({ err: error, role }, "a round failed; the next one tries again");
      }
    }
  }
}
