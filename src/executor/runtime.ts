/**
 * The executor runtime: registers, runs `concurrency` assign loops, and shuts down in stages.
 *
 * Shutdown (first SIGTERM/SIGINT): stop polling, let running processes finish within the grace period, then
 * abort them (they fail with a clear reason), then deregister. A second signal skips the grace period.
 */
import type { Logger } from "pino";
import { type ColoniesApi, ColoniesClient } from "../colonies/client.js";
import { ColoniesError } from "../colonies/errors.js";
import type { Process } from "../colonies/types.js";
import type { RuntimeConfig } from "./config.js";
import { startHttp } from "./http.js";
import { ExecutorMetrics } from "./metrics.js";
import { runProcess, ShutdownAbort } from "./process-runner.js";
import { deregister, type Registration, register } from "./registration.js";
import type { ExecutorInstance, FunctionDef } from "./types.js";

type Phase = "starting" | "serving" | "draining" | "aborting" | "stopped";

/** How long a handler waits on other calls before its slot goes to a new assign loop (short waits keep it). */
const WAIT_GRACE_MS = 500;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

/** Exponential backoff with full jitter, so that many executors do not retry in step after a server restart. */
export function backoffMs(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
  return BACKOFF_MIN_MS / 2 + Math.random() * (ceiling - BACKOFF_MIN_MS / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

export class ExecutorRuntime {
  readonly client: ColoniesApi;
  readonly metrics: ExecutorMetrics;
  private phase: Phase = "starting";
  private registration: Registration | null = null;
  private registering: Promise<Registration> | null = null;
  /** Aborted when polling must stop. */
  private readonly polling = new AbortController();
  /** Aborted when running processes must stop (after the grace period, or forced). */
  private readonly processes = new AbortController();
  /** Handlers running now (one per busy slot). */
  private readonly running = new Set<Promise<unknown>>();
  /** Closes and fails on the wire: a slot polls again while its last report is being sent. */
  private readonly reporting = new Set<Promise<unknown>>();
  /** Aborted when reports still waiting for an unreachable server must give up (shutdown). */
  private readonly reportsGiveUp = new AbortController();
  private loops: Promise<void>[] = [];
  /** Assign loops running now: `concurrency`, plus one per handler waiting on other calls (ProcessContext.waiting). */
  private loopsRunning = 0;
  private handlersWaiting = 0;
  private lastContactOk = false;
  /** When the last assign request (long-poll or heartbeat) was sent: the server's "last heard from". */
  private lastAssignAt = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private http: { port: number; close(): Promise<void> } | null = null;
  private stopped: Promise<void> | null = null;
  private resolveFinished!: () => void;
  /** Resolves once shutdown has completed. */
  readonly finished = new Promise<void>((resolve) => {
    this.resolveFinished = resolve;
  });
  private readonly functions: ReadonlyMap<string, FunctionDef>;

  constructor(
    readonly config: RuntimeConfig,
    private readonly instance: ExecutorInstance,
    private readonly logger: Logger,
    /** The Colonies server to talk to; a ColoniesClient for `config.server` unless given (tests give a fake). */
    client?: ColoniesApi,
  ) {
    this.client = client ?? new ColoniesClient(config.server);
    this.metrics = new ExecutorMetrics({ executor_type: config.executorType });
    this.functions = new Map(instance.functions.map((fn) => [fn.name, fn]));
  }

  get httpPort(): number | null {
    return this.http?.port ?? null;
  }

  get executorName(): string {
    return this.registration?.executorName ?? this.config.executorName;
  }

  /** Starts the HTTP endpoints, registers (retrying until the server answers) and starts the assign loops. */
  async start(): Promise<void> {
    if (this.config.http) {
      const registry = await this.metrics.export(this.instance.registerMetrics?.bind(this.instance));
      this.http = await startHttp(this.config.http, registry, {
        ready: () => this.ready(),
      });
      this.logger.info({ port: this.http.port }, "serving /healthz, /readyz and /metrics");
    }
    await this.ensureRegistered();
    if (this.polling.signal.aborted) return;
    this.phase = "serving";
    for (let slot = 0; slot < this.config.concurrency; slot++) this.startLoop();
    if (this.config.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => void this.keepAlive(), Math.max(1000, this.config.heartbeatMs / 4));
      this.heartbeat.unref();
    }
  }

  async ready(): Promise<boolean> {
    if (this.phase !== "serving" || !this.lastContactOk) return false;
    return this.instance.ready ? this.instance.ready() : true;
  }

  /** Registers once at a time; retries with backoff while the server is unreachable or failing. */
  private ensureRegistered(): Promise<Registration> {
    this.registering ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const registration = await register(this.client, this.config, this.instance.functions, this.logger);
          this.registration = registration;
          this.lastContactOk = true;
          return registration;
        } catch (error) {
          const retryable = error instanceof ColoniesError && (error.unreachable || error.status >= 500);
          if (!retryable) throw error;
          this.lastContactOk = false;
          this.logger.warn(
            { err: error.message, attempt },
            "Colonies server not available; retrying registration",
          );
          await sleep(backoffMs(attempt), this.polling.signal);
          if (this.polling.signal.aborted) throw new ShutdownAbort("shut down before registration");
        }
      }
    })().finally(() => {
      this.registering = null;
    });
    return this.registering;
  }

  private runnerDeps() {
    return {
      client: this.client,
      prvKey: this.config.executorPrvKey,
      functions: this.functions,
      metrics: this.metrics,
      logger: this.logger,
      onReassigned: this.instance.onReassigned ?? "stop",
      reportsGiveUp: this.reportsGiveUp.signal,
      waiting: <T>(blocked: Promise<T>) => this.waiting(blocked),
    };
  }

  private startLoop(): void {
    this.loopsRunning++;
    this.loops.push(this.loop(this.loops.length));
  }

  /**
   * ProcessContext.waiting. A handler that waits on other calls would otherwise hold its slot: with every slot
   * held so, the calls they wait for (re-queued by Colonies after a replica died) are never assigned. So while
   * one waits longer than a moment, one more loop takes calls; once it is done waiting, the loops beyond
   * `concurrency` plus those still waiting end after their current process.
   */
  private async waiting<T>(blocked: Promise<T>): Promise<T> {
    let freed = false;
    const timer = setTimeout(() => {
      freed = true;
      this.handlersWaiting++;
      if (this.polling.signal.aborted) return;
      if (this.loopsRunning < this.config.concurrency + this.handlersWaiting) this.startLoop();
    }, WAIT_GRACE_MS);
    try {
      return await blocked;
    } finally {
      clearTimeout(timer);
      if (freed) this.handlersWaiting--;
    }
  }

  private async loop(slot: number): Promise<void> {
    try {
      const signal = this.polling.signal;
      let failures = 0;
      while (!signal.aborted) {
        // One loop too many since a waiting handler went on: this one ends.
        if (this.loopsRunning > this.config.concurrency + this.handlersWaiting) return;
        let process: Process;
        try {
          this.lastAssignAt = Date.now();
          process = await this.client.assign(
            this.config.colonyName,
            this.config.assignTimeoutSeconds,
            this.config.executorPrvKey,
            { signal },
          );
          this.lastContactOk = true;
          failures = 0;
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof ColoniesError && error.notFound) {
            this.lastContactOk = true; // nothing to do: poll again
            failures = 0;
            continue;
          }
          this.metrics.assignFailed();
          this.lastContactOk = !(error instanceof ColoniesError && error.unreachable);
          await this.recover(error, slot, failures++);
          continue;
        }
        const run = runProcess(this.runnerDeps(), process, this.processes.signal);
        this.running.add(run);
        const { reported } = await run;
        this.running.delete(run);
        this.reporting.add(reported);
        void reported.finally(() => this.reporting.delete(reported));
      }
    } finally {
      this.loopsRunning--;
    }
  }

  /**
   * While every slot is busy nothing polls, and the server removes executors it has not heard from for a while
   * (re-queuing their processes): a long backup or deploy would be run twice. So when no assign request went
   * out for `heartbeatMs`, send one that cannot take work.
   */
  private async keepAlive(): Promise<void> {
    if (this.phase !== "serving" || Date.now() - this.lastAssignAt < this.config.heartbeatMs) return;
    this.lastAssignAt = Date.now();
    try {
      const process = await this.client.heartbeat(this.config.colonyName, this.config.executorPrvKey);
      if (process) {
        // Cannot happen with a negative CPU budget; if a server ever assigns one anyway, run it rather than lose it.
        this.logger.warn(
          { processId: process.processid },
          "the heartbeat was assigned a process; running it",
        );
        const run = runProcess(this.runnerDeps(), process, this.processes.signal);
        this.reporting.add(run.then((r) => r.reported));
      }
    } catch (error) {
      this.logger.warn({ err: error instanceof Error ? error.message : String(error) }, "heartbeat failed");
    }
  }

  /** After a failed assign: back off; when the server no longer knows us (restarted, stale removal), re-register. */
  private async recover(error: unknown, slot: number, attempt: number): Promise<void> {
    const forbidden = error instanceof ColoniesError && error.status === 403;
    this.logger.warn(
      { err: error instanceof Error ? error.message : String(error), slot, attempt },
      forbidden ? "the server no longer accepts this executor" : "assign failed; backing off",
    );
    await sleep(backoffMs(attempt), this.polling.signal);
    if (forbidden && this.config.colonyPrvKey && !this.polling.signal.aborted) {
      try {
        await this.ensureRegistered();
      } catch (registerError) {
        this.logger.error({ err: registerError }, "re-registration failed");
      }
    }
  }

  /** Graceful shutdown; a second call (e.g. a second signal) forces it. Resolves when fully stopped. */
  shutdown(reason = "shutdown requested"): Promise<void> {
    if (this.stopped) {
      this.abortRunning(`executor forced to stop (${reason})`);
      this.reportsGiveUp.abort();
      return this.stopped;
    }
    this.stopped = this.drain(reason);
    return this.stopped;
  }

  private abortRunning(message: string): void {
    if (!this.processes.signal.aborted) {
      this.phase = "aborting";
      this.processes.abort(new ShutdownAbort(message));
    }
  }

  private async drain(reason: string): Promise<void> {
    this.logger.info(
      { reason, running: this.running.size, graceMs: this.config.shutdownGraceMs },
      "shutting down",
    );
    this.phase = "draining";
    this.polling.abort();
    if (this.heartbeat) clearInterval(this.heartbeat);
    // Loops end once their current process is reported; abort what is still running after the grace period.
    const grace = setTimeout(
      () =>
        this.abortRunning(
          `executor shut down (${reason}): the process did not finish within the ${this.config.shutdownGraceMs / 1000} s grace period`,
        ),
      this.config.shutdownGraceMs,
    );
    await Promise.allSettled(this.loops);
    clearTimeout(grace);
    // Reports wait for a server that is away (restarting) for one more grace period, then give up: the server
    // re-queues what stays unreported once it removes this executor.
    const reportsDue = setTimeout(() => this.reportsGiveUp.abort(), this.config.shutdownGraceMs);
    await Promise.allSettled([...this.reporting]);
    clearTimeout(reportsDue);
    if (this.registration) await deregister(this.client, this.config, this.registration, this.logger);
    await this.instance.close?.();
    await this.http?.close();
    this.client.close();
    this.phase = "stopped";
    this.logger.info("stopped");
    this.resolveFinished();
  }
}
