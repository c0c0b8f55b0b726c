/** Starts one executor process: configuration, logging, runtime, and signal handling. */
import { loadRuntimeConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { ShutdownAbort } from "./process-runner.js";
import { ExecutorRuntime } from "./runtime.js";
import { ConfigError, type ExecutorModule } from "./types.js";

/** Returns the process exit code. */
export async function runExecutor(module: ExecutorModule, env: NodeJS.ProcessEnv): Promise<number> {
  let config: ReturnType<typeof loadRuntimeConfig>;
  try {
    config = loadRuntimeConfig(env, module.kind);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(
      `colonyos-executor ${module.kind}: ${error.message}\nSee --help for the variables.\n`,
    );
    return 2;
  }
  const logger = createLogger({ ...config.log, name: `${module.kind}-executor` });
  let instance: Awaited<ReturnType<ExecutorModule["create"]>>;
  let fatal: string | undefined;
  let stop = (_reason: string) => {};
  let executorName = () => config.executorName;
  try {
    instance = await module.create(env, logger, {
      colonyName: config.colonyName,
      executorPrvKey: config.executorPrvKey,
      locationName: config.locationName,
      fatal(reason) {
        if (fatal) return;
        fatal = reason;
        logger.fatal({ reason }, "stopping: this executor cannot keep serving");
        stop(reason);
      },
      executor: () => ({ name: executorName(), selfRegistered: config.colonyPrvKey !== undefined }),
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.fatal(error.message);
    return 2;
  }

  const runtime = new ExecutorRuntime(config, instance, logger);
  stop = (reason) => void runtime.shutdown(reason);
  executorName = () => runtime.executorName;
  if (fatal) stop(fatal);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    logger.info({ signal }, signals === 1 ? "draining (send again to force)" : "forcing shutdown");
    void runtime.shutdown(signal);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await runtime.start();
  } catch (error) {
    if (!(error instanceof ShutdownAbort)) {
      logger.fatal({ err: error }, "could not start");
      await runtime.shutdown("start-up failed");
      return 1;
    }
  }
  logger.info(
    { executor: runtime.executorName, type: config.executorType, concurrency: config.concurrency },
    "serving",
  );
  await runtime.finished;
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  return fatal ? 1 : 0;
}
