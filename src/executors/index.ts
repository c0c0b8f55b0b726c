/** The executors this package can run, loaded on demand so that one executor does not pay for another's libraries. */
import type { ExecutorModule } from "../executor/types.js";

export const EXECUTORS: Record<string, () => Promise<ExecutorModule>> = {
  sleep: async () => (await import("./sleep.js")).sleepExecutor,
  backup: async () => (await import("./backup.js")).backupExecutor,
  k8s: async () => (await import("./k8s.js")).k8sExecutor,
};
