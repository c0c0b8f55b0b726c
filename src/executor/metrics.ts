/**
 * What the runtime measures. Counted in plain numbers always; exported as Prometheus metrics (prom-client)
 * only when the HTTP endpoint is on — loading prom-client costs an idle executor ~20 MB it would never use.
 */
import type { Counter, Gauge, Histogram, Registry } from "prom-client";

export type Outcome = "success" | "failed" | "aborted";

interface Exporter {
  registry: Registry;
  processes: Counter<"function" | "outcome">;
  duration: Histogram<"function" | "outcome">;
  running: Gauge;
  assignErrors: Counter;
  reportsUndelivered: Counter;
}

export class ExecutorMetrics {
  /** Processes reported (closed or failed), by outcome. */
  readonly completed: Record<Outcome, number> = { success: 0, failed: 0, aborted: 0 };
  running = 0;
  assignErrors = 0;
  /** Outcomes (close or fail) that never reached Colonies: rejected, or still failing after the retries. */
  reportsUndelivered = 0;
  private exporter: Exporter | null = null;

  constructor(private readonly labels: Record<string, string>) {}

  processStarted(): void {
    this.running++;
    this.exporter?.running.inc();
  }

  processDone(fn: string, outcome: Outcome, seconds: number): void {
    this.running--;
    this.completed[outcome]++;
    if (!this.exporter) return;
    this.exporter.running.dec();
    this.exporter.processes.inc({ function: fn, outcome });
    this.exporter.duration.observe({ function: fn, outcome }, seconds);
  }

  assignFailed(): void {
    this.assignErrors++;
    this.exporter?.assignErrors.inc();
  }

  reportUndelivered(): void {
    this.reportsUndelivered++;
    this.exporter?.reportsUndelivered.inc();
  }

  /**
   * Loads prom-client and starts exporting; counts from before are carried over. `extra` adds an executor's own
   * metrics to the registry.
   */
  async export(extra?: (prom: typeof import("prom-client"), registry: Registry) => void): Promise<Registry> {
    if (this.exporter) return this.exporter.registry;
    const prom = await import("prom-client");
    const registry = new prom.Registry();
    registry.setDefaultLabels(this.labels);
    prom.collectDefaultMetrics({ register: registry });
    const exporter: Exporter = {
      registry,
      processes: new prom.Counter({
        name: "colonies_executor_processes_total",
        help: "Processes handled, by function and outcome",
        labelNames: ["function", "outcome"],
        registers: [registry],
      }),
      duration: new prom.Histogram({
        name: "colonies_executor_process_duration_seconds",
        help: "Time from assignment to close or fail, by function and outcome",
        labelNames: ["function", "outcome"],
        buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
        registers: [registry],
      }),
      running: new prom.Gauge({
        name: "colonies_executor_processes_running",
        help: "Processes currently running",
        registers: [registry],
      }),
      assignErrors: new prom.Counter({
        name: "colonies_executor_assign_errors_total",
        help: "Assign requests that failed for a reason other than 'nothing to do'",
        registers: [registry],
      }),
      reportsUndelivered: new prom.Counter({
        name: "colonies_executor_reports_undelivered_total",
        help: "Process outcomes (close or fail) that could not be reported to Colonies",
        registers: [registry],
      }),
    };
    exporter.running.set(this.running);
    exporter.assignErrors.inc(this.assignErrors);
    exporter.reportsUndelivered.inc(this.reportsUndelivered);
    this.exporter = exporter;
    extra?.(prom, registry);
    return registry;
  }
}
