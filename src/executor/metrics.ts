/** Prometheus metrics of one executor process. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export type Outcome = "success" | "failed" | "aborted";

export class ExecutorMetrics {
  readonly registry = new Registry();
  readonly processes = new Counter({
    name: "colonies_executor_processes_total",
    help: "Processes handled, by function and outcome",
    labelNames: ["function", "outcome"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "colonies_executor_process_duration_seconds",
    help: "Time from assignment to close or fail, by function and outcome",
    labelNames: ["function", "outcome"] as const,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly running = new Gauge({
    name: "colonies_executor_processes_running",
    help: "Processes currently running",
    registers: [this.registry],
  });
  readonly assignErrors = new Counter({
    name: "colonies_executor_assign_errors_total",
    help: "Assign requests that failed for a reason other than 'nothing to do'",
    registers: [this.registry],
  });

  constructor(labels: Record<string, string>) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
  }
}
