/**
 * The k8s executor's own metrics, read from the autoscaler's and the drift check's state at scrape time (only
 * the replica leading each loop reports values).
 */
import type { Registry } from "prom-client";
import type { AutoscalerView, Seen } from "./autoscale/autoscaler.js";
import type { DriftView } from "./drift/check.js";

export function registerK8sMetrics(
  prom: typeof import("prom-client"),
  registry: Registry,
  views: { autoscaler?: AutoscalerView; drift?: DriftView },
): void {
  const { autoscaler, drift } = views;
  const registers = [registry];
  if (autoscaler) {
    const perDeployment = (name: string, help: string, value: (seen: Seen) => number) =>
      new prom.Gauge({
        name,
        help,
        labelNames: ["deployment"],
        registers,
        collect() {
          this.reset();
          for (const [deployment, seen] of autoscaler.seen) this.set({ deployment }, value(seen));
        },
      });
    perDeployment(
      "colonyos_k8s_autoscale_waiting_processes",
      "Waiting processes of the deployment's executor type",
      (s) => s.load.waiting,
    );
    perDeployment(
      "colonyos_k8s_autoscale_running_processes",
      "Running processes of the deployment's executor type",
      (s) => s.load.running,
    );
    perDeployment(
      "colonyos_k8s_autoscale_wanted_pods",
      "Pods the load asks for, within the policy's bounds",
      (s) => s.wanted,
    );
    perDeployment(
      "colonyos_k8s_autoscale_pods",
      "Live pods of the deployment when last looked at",
      (s) => s.pods,
    );
    new prom.Gauge({
      name: "colonyos_k8s_autoscale_decisions",
      help: "Scale decisions the autoscaler applied (up, down) or could not apply (failed) since start",
      labelNames: ["direction"],
      registers,
      collect() {
        for (const [direction, n] of Object.entries(autoscaler.decisions)) this.set({ direction }, n);
      },
    });
  }
  if (drift) {
    new prom.Gauge({
      name: "colonyos_k8s_drifted_fields",
      help: "Fields of the deployment's live objects that differ from its stack's record at the last drift check",
      labelNames: ["deployment"],
      registers,
      collect() {
        this.reset();
        for (const [deployment, n] of drift.drifted) this.set({ deployment }, n);
      },
    });
    new prom.Gauge({
      name: "colonyos_k8s_drift_checks",
      help: "Drift checks (checks), convergences (remediations) and failed checks (failures) since start",
      labelNames: ["kind"],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(drift.totals)) this.set({ kind }, n);
      },
    });
  }
}
